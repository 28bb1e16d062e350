#!/usr/bin/env python3
"""CPU of a server and of a criterion bench over each function's measurement window.

Run with: python3 scripts/bench_window_cpu.py BENCH_BINARY SERVER_PID [CRITERION_FILTER]
(under `flock /tmp/cpu.lock`, with the bench's environment, e.g. `source /tmp/testenv.sh`).

Reads utime + stime of SERVER_PID and of the bench from /proc/PID/stat (10 ms ticks) at the
"Collecting" and "Analyzing" lines criterion prints for each function, and prints each
one's CPU share over that window: times criterion's time per iteration, that is the CPU
per iteration over many rounds. Criterion's own lines (`time:`) and the bench's are passed on.
"""

import os
import re
import subprocess
import sys
import time


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def main():
    binary, server = sys.argv[1], int(sys.argv[2])
    what = sys.argv[3] if len(sys.argv) > 3 else "nats_publish_consume"
    args = [binary, "--bench", "--warm-up-time", "1", "--measurement-time", "5", what]
    bench = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ)
    window = None
    line = b""
    while True:
        c = bench.stdout.read(1)
        if c and c not in (b"\r", b"\n"):
            line += c
            continue
        text = line.decode(errors="replace").strip()
        line = b""
        now = time.time()
        start = re.match(r"Benchmarking (\S+): Collecting", text)
        if start and window is None:
            window = (start.group(1), now, ticks(server), ticks(bench.pid))
        end = re.match(r"Benchmarking (\S+): Analyzing", text)
        if end and window:
            name, t0, s0, c0 = window
            window = None
            s1, c1, wall = ticks(server), ticks(bench.pid), now - t0
            print(
                f"{name}: window {wall:.2f} s, server cpu {(s1 - s0) / wall:.1f}%, "
                f"bench cpu {(c1 - c0) / wall:.1f}%",
                flush=True,
            )
        if text.startswith(("time:", "cpu ")):
            print("   ", text, flush=True)
        if not c:
            break
    sys.exit(bench.wait())


if __name__ == "__main__":
    main()

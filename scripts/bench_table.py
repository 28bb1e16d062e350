#!/usr/bin/env python3
"""Reads criterion's results under a target directory and prints one table: each measure with
our figure, the peer's from the same run, and the ratio ours / peer (below 1 is faster).

    python3 scripts/bench_table.py TARGET_DIR/criterion [EXTRA_ROWS_FILE]

EXTRA_ROWS_FILE holds rows from the server scripts (wrk runs), one per line, tab-separated:
measure, ours, peer, ratio, CPU per operation. Criterion figures are medians; a group
with a throughput of N elements per iteration is reported per element.
"""

import json
import os
import re
import sys

# (group pattern, our function id, peer function id). Groups measure one input; the first
# rule whose group pattern matches and whose two functions both ran makes a row.
PAIRS = [
    (r"^cookie_jar/client", "cookie-jar", "cookie_store-0.22"),
    (r"^cookie_jar/server", "cookie-jar", "cookie-0.18-split_parse"),
    (r"^jwt_verify_", "auth-core", "jsonwebtoken"),
    (r"^graphql/(?!hello_phases)", "graphql-core", "juniper"),
    (r"^graphql/(?!hello_phases)", "graphql-core", "async-graphql"),
    (r"^graphql/(?!hello_phases)", "graphql-core-no-validation-cache", "async-graphql"),
    (r"^routing_github_", "rest_core_router", "matchit_raw"),
    (r"^soap/", "soap-core-handle", "quick-xml-walk"),
    (r"^ws_core_echo", "ws-core", "tokio-tungstenite"),
    (r"^ws_core_echo", "ws-core", "fastwebsockets"),
    (r"^ws_core_broadcast", "ws-core Hub (broadcast + drain every queue)",
     "tokio broadcast channel (send + try_recv each)"),
    (r"^broker_core/handoff_", "embedded_one_by_one", "mpsc_one_by_one"),
    (r"^broker_core/handoff_", "embedded_batch64", "mpsc_batch"),
    (r"^broker_core/handoff_", "embedded_batch64_api", "mpsc_batch"),
    # The raw client's function is the group's one whose name does not start with
    # `adapter` (raw_async_nats, raw_redis_pipelined, raw_lapin, raw_rumqttc).
    (r"^broker_core/(nats|redis|amqp|mqtt)_", "adapter", None),
    (r"^broker_core/(nats|redis|amqp|mqtt)_", "adapter_batch_api", None),
]


def load(criterion_dir):
    """{group: {function: (median ns per element, elements)}} from criterion's files."""
    results = {}
    for dirpath, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                meta = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                estimates = json.load(f)
        except (OSError, ValueError):
            continue
        median = estimates.get("median", {}).get("point_estimate")
        if median is None:
            continue
        elements = 1
        throughput = meta.get("throughput") or {}
        if isinstance(throughput, dict):
            elements = throughput.get("Elements") or throughput.get("elements") or 1
        group = meta.get("group_id", "")
        function = meta.get("function_id") or ""
        if meta.get("value_str"):
            function = f"{function}/{meta['value_str']}" if function else meta["value_str"]
        results.setdefault(group, {})[function] = (median / elements, elements)
    return results


def human(ns):
    if ns < 1_000:
        return f"{ns:.1f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def ratio(r):
    """ours / peer, with how many times faster or slower in words."""
    if r < 1:
        return f"{r:.3f} ({1 / r:.1f}x faster)"
    return f"{r:.3f} ({r:.2f}x slower)" if r > 1 else "1.000"


def rows(results):
    out = []
    for group in sorted(results):
        functions = results[group]
        for pattern, ours, peer in PAIRS:
            if not re.search(pattern, group) or ours not in functions:
                continue
            if peer is None:
                candidates = [f for f in functions if not f.startswith("adapter")]
                if len(candidates) != 1:
                    continue
                peer = candidates[0]
            if peer not in functions:
                continue
            o, elements = functions[ours]
            p, _ = functions[peer]
            unit = " per element" if elements > 1 else ""
            out.append((f"{group}{unit}", f"{ours} {human(o)}", f"{peer} {human(p)}",
                        ratio(o / p), ""))
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench_table.py CRITERION_DIR [EXTRA_ROWS_FILE]")
    table = rows(load(sys.argv[1]))
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        with open(sys.argv[2]) as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                if len(fields) == 5:
                    table.append(tuple(fields))
    header = ("measure", "ours", "peer", "ours / peer", "CPU per operation")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(5)]
    def line(r):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(line(r))


if __name__ == "__main__":
    main()

"""Server CPU time per SOAP request: examples/soap-service (release), a spyne 2.14 server and
a node `soap` server answering the same getStock operation over SOAP 1.1, measured in one
run. Each server's user+system CPU is read from /proc/PID/stat before and after N requests
sent by CONCURRENCY keep-alive (or, for HTTP/1.0 servers, per-request) connections; the
client's own CPU is not counted. Every response is checked.

Usage: python3 cpu_per_request.py SOAP_SERVICE_BIN PEER_PYTHON PEER_NODE_MODULES [N] [CONCURRENCY]

With WRK_SECONDS set (and `wrk` on the PATH), each server is then loaded by wrk instead
(one thread, WRK_CONNECTIONS connections, default 16, for WRK_SECONDS seconds after a 1 s
warm-up): requests per second with a load generator that is not the bottleneck, and the
server's CPU per request in the same interval. wrk counts non-2xx answers; any is an error.
"""

import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "crates", "soap-core", "tests", "peers")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    # Fields 14 and 15 of /proc/PID/stat (utime, stime), all threads of the process.
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return p, line[len("listening on "):]


def envelope(ns, sku="A-1"):
    return ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            '<getStock xmlns="%s"><sku>%s</sku></getStock></s:Body></s:Envelope>' % (ns, sku)).encode()


def load(url, body, action, n, concurrency):
    u = urlparse(url)
    errors = []
    per = n // concurrency

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        for _ in range(per):
            try:
                conn.request("POST", u.path, body, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"%s"' % action})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or b">25<" not in data:
                    errors.append((r.status, data[:200]))
                if r.getheader("connection", "").lower() == "close" or r.version == 10:
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            except Exception as e:  # noqa: BLE001 - report and go on
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * concurrency, time.monotonic() - t0, errors


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = '"%s"'
"""


def wrk(url, body, action, seconds, connections, pid):
    """Runs wrk against url; returns (requests, seconds, server CPU seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (body.decode(), action))
        script = f.name
    try:
        base = ["wrk", "-t1", "-c%d" % connections, "-s", script, "--latency"]
        subprocess.run(base + ["-d1s", url], check=True, capture_output=True)
        before = cpu_seconds(pid)
        out = subprocess.run(base + ["-d%ds" % seconds, url], check=True, capture_output=True, text=True).stdout
        used = cpu_seconds(pid) - before
    finally:
        os.unlink(script)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    assert not bad, out
    done = int(re.search(r"(\d+) requests in ([\d.]+)s", out).group(1))
    wall = float(re.search(r"(\d+) requests in ([\d.]+)s", out).group(2))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return done, wall, used, p99, errors.group(1) if errors else ""


def main():
    ours_bin, python, node_modules = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 3000
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    env = dict(os.environ, PORT="0", NODE_PATH=node_modules)
    servers = [
        ("soap-core (examples/soap-service, release)", [ours_bin], "/soap", "urn:backend-kit:orders", "urn:backend-kit:orders/getStock"),
        ("spyne 2.14.0 (wsgiref, Python 3.11)", [python, os.path.join(PEERS, "spyne_server.py")], "/soap11", "urn:peer:inventory", "getStock"),
        ("node soap 1.13.0 (node http)", ["node", os.path.join(PEERS, "node_soap_server.js")], "/soap11", "urn:peer:node-inventory", "urn:peer:node-inventory#getStock"),
    ]
    wrk_rows = []
    print("| server | requests | wall s | req/s (client-bound) | server CPU s | server CPU per request |")
    print("|---|---|---|---|---|---|")
    for name, cmd, path, ns, action in servers:
        p, base = start(cmd, env)
        try:
            body = envelope(ns)
            load(base + path, body, action, 200, concurrency)  # warm-up
            before = cpu_seconds(p.pid)
            done, wall, errors = load(base + path, body, action, n, concurrency)
            used = cpu_seconds(p.pid) - before
            assert not errors, errors[:3]
            print("| %s | %d | %.2f | %.0f | %.2f | %.1f µs |" % (name, done, wall, done / wall, used, used / done * 1e6))
            if os.environ.get("WRK_SECONDS"):
                seconds = int(os.environ["WRK_SECONDS"])
                connections = int(os.environ.get("WRK_CONNECTIONS", "16"))
                done, wall, used, p99, socket_errors = wrk(base + path, body, action, seconds, connections, p.pid)
                wrk_rows.append("| %s | %d | %.0f | %s | %.1f µs | %s |" % (name, done, done / wall, p99, used / done * 1e6, socket_errors or "none"))
        finally:
            p.kill()
            p.wait()
    if wrk_rows:
        print()
        print("wrk -t1 -c%s -d%ss:" % (os.environ.get("WRK_CONNECTIONS", "16"), os.environ["WRK_SECONDS"]))
        print()
        print("| server | requests | req/s | p99 | server CPU per request | socket errors |")
        print("|---|---|---|---|---|---|")
        for row in wrk_rows:
            print(row)


if __name__ == "__main__":
    main()

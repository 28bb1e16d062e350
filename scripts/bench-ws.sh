#!/usr/bin/env bash
# WebSocket echo under load that exercises the server: many connections, each pipelining,
# messages of 16 B, 1 KiB and 64 KiB, with and without permessage-deflate. Servers: ws-core,
# tokio-tungstenite 0.30 and fastwebsockets 0.10 (benches/src/bin/ws_echo_server.rs, one
# runtime thread each) and Node's `ws` (benches/ws/echo-server.js, one thread by nature); the
# load generator (benches/src/bin/ws_load.rs) runs on one thread in its own process.
#
#   bash scripts/bench-ws.sh                  # 100 and 1000 connections, 3 s per cell
#   SECONDS_PER_RUN=10 CONNECTIONS="100 1000" SIZES="16 1024 65536" bash scripts/bench-ws.sh
#   TSV=out.tsv bash scripts/bench-ws.sh      # also append rows for scripts/bench_table.py
#   MODES=plain SERVERS="ws-core fastwebsockets" bash scripts/bench-ws.sh   # a subset
#
# Prints, per cell, messages per second and the server's CPU time per message (utime + stime
# from /proc around the measured interval), which is the figure that compares servers on 2
# shared cores; the load generator's CPU is printed apart. Each echo counts when it arrives,
# so a slow server is measured by the echoes it sent in the window; a server that sent none
# is reported as not measured and left out of the comparison. Peers without permessage-deflate
# are left out of the deflate cells. Node peers need PEER_NODE_MODULES (as .ci/run sets it);
# without it the Node column is skipped with a message.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
seconds=${SECONDS_PER_RUN:-3}
connection_counts=${CONNECTIONS:-"100 1000"}
sizes=${SIZES:-"16 1024 65536"}
tsv=${TSV:-}

if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release -q --manifest-path benches/Cargo.toml --bin ws_echo_server --bin ws_load
fi
bin=$CARGO_TARGET_DIR/release
servers=${SERVERS:-"ws-core tokio-tungstenite fastwebsockets"}
modes=${MODES:-"plain deflate"}
if [ -n "${SERVERS:-}" ]; then
  :
elif [ -n "${PEER_NODE_MODULES:-}" ] && [ -d "$PEER_NODE_MODULES/ws" ]; then
  servers="$servers node-ws"
else
  echo "skipped: node-ws (PEER_NODE_MODULES is not set or has no ws package)"
fi

pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# Starts a server; sets $pid and $addr.
start() {
  local server=$1 deflate=$2 out
  out=$(mktemp)
  case $server in
    node-ws) NODE_PATH=$PEER_NODE_MODULES node benches/ws/echo-server.js $deflate >"$out" 2>&1 & ;;
    *) "$bin/ws_echo_server" "$server" >"$out" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 1 100); do
    addr=$(head -n 1 "$out")
    if [[ $addr == 127.0.0.1:* ]]; then rm -f "$out"; return; fi
    sleep 0.05
  done
  echo "error: $server did not print its address: $(cat "$out")" >&2
  exit 1
}

pipeline_for() {
  case $1 in
    16) echo 64 ;;
    1024) echo 16 ;;
    *) echo 2 ;;
  esac
}

printf '%-28s %-18s %12s %16s %14s\n' cell server msg/s "server µs/msg" "load µs/msg"
for mode in $modes; do
  deflate=
  if [ "$mode" = deflate ]; then deflate=deflate; fi
  for connections in $connection_counts; do
    for size in $sizes; do
      pipeline=$(pipeline_for "$size")
      cell="${connections}c ${size}B p${pipeline}${deflate:+ deflate}"
      declare -A cpu=()
      for server in $servers; do
        if [ -n "$deflate" ] && [ "$server" != ws-core ] && [ "$server" != node-ws ]; then
          continue
        fi
        start "$server" "$deflate"
        line=$("$bin/ws_load" "$addr" "$connections" "$size" "$pipeline" "$seconds" $deflate --pid "$pid")
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
        rate=$(sed -n 's/.*rate=\([^ ]*\).*/\1/p' <<<"$line")
        server_cpu=$(sed -n 's/.*server_cpu_us_per_msg=\([^ ]*\).*/\1/p' <<<"$line")
        load_cpu=$(sed -n 's/.*load_cpu_us_per_msg=\([^ ]*\).*/\1/p' <<<"$line")
        messages=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' <<<"$line")
        if [ "${messages:-0}" = 0 ]; then
          # Nothing to divide by: say so, and leave the cell out of the comparison.
          printf '%-28s %-18s %s\n' "$cell" "$server" "not measured: no echo arrived in the ${seconds} s window"
          continue
        fi
        printf '%-28s %-18s %12s %16s %14s\n' "$cell" "$server" "$rate" "$server_cpu" "$load_cpu"
        cpu[$server]=$server_cpu
      done
      if [ -n "$tsv" ]; then
        for peer in tokio-tungstenite fastwebsockets node-ws; do
          if [ -n "${cpu[ws-core]:-}" ] && [ -n "${cpu[$peer]:-}" ]; then
            awk -v c="$cell" -v p="$peer" -v o="${cpu[ws-core]}" -v q="${cpu[$peer]}" \
              'BEGIN {if (q + 0 > 0 && o + 0 > 0) printf "ws echo %s (server CPU per message)\tws-core %.3f µs\t%s %.3f µs\t%.2fx\tserver CPU per message\n", c, o, p, q, o / q}' >>"$tsv"
          fi
        done
      fi
      unset cpu
    done
  done
done

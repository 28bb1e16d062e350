#!/usr/bin/env bash
# Every comparison in the workspace, each crate beside its peer in the same run, and one table
# at the end: measure, ours, peer, ratio, and the CPU per operation where the work crosses
# processes (servers under wrk).
#
#   bash scripts/bench-all.sh            # short: about 5 minutes on 2 cores after the build
#   bash scripts/bench-all.sh --long     # longer measurements and more wrk rounds
#   ONLY="graphql_core rest_core" bash scripts/bench-all.sh   # a subset of criterion files
#   SERVERS=0 bash scripts/bench-all.sh  # criterion only, no wrk runs
#
# Builds once (benchmarks, the rest-api and reverse-proxy release binaries, the WebSocket echo
# servers and load generator), then runs the criterion files one after another, then the
# server scripts (rest-api against axum and reverse-proxy against nginx, which alternate the
# two sides round by round: HTTP/1.1, cache hits against `proxy_cache`, HTTP/2 downstream; WebSocket echo under load, scripts/bench-ws.sh). The broker rows
# need NATS_URL and REDIS_URL (as .ci/run exports them); without them those rows are missing
# and the bench says why. The table is printed and written to target/bench-all/table.md with
# the date, the measurements' time span (UTC), the commit and the machine, ready for
# docs/benchmarks.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
export CARGO_INCREMENTAL=0

long=0
for arg in "$@"; do
  case $arg in
    --long) long=1 ;;
    *) echo "usage: bash scripts/bench-all.sh [--long]" >&2; exit 2 ;;
  esac
done
if [ "$long" = 1 ]; then
  criterion_args=(--warm-up-time 2 --measurement-time 8)
  export ROUNDS=${ROUNDS:-5} SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
else
  criterion_args=(--warm-up-time 1 --measurement-time 2)
  export ROUNDS=${ROUNDS:-1} SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
fi
files=${ONLY:-"cookie_jar auth_core rest_core graphql_core soap_core ws_core broker_core"}

out=$CARGO_TARGET_DIR/bench-all
rm -rf "$out"
mkdir -p "$out"
# Criterion writes this run's results here only, so the table never mixes in an older run.
export CRITERION_HOME=$out/criterion

echo "::: build"
cargo bench --manifest-path benches/Cargo.toml --no-run -q
if [ "${SERVERS:-1}" = 1 ]; then
  cargo build --release -q -p rest-api -p reverse-proxy
  cargo build --release -q --manifest-path benches/Cargo.toml --bin rest_api_axum \
    --bin ws_echo_server --bin ws_load
fi

# The table's first line gives the measurements' time span (the build above is left out).
measured_from=$(date -u +%H:%M:%S)
for file in $files; do
  echo "::: criterion $file"
  cargo bench -q --manifest-path benches/Cargo.toml --bench "$file" -- "${criterion_args[@]}" \
    2>&1 | tee "$out/$file.log" | grep -E -B1 '^(skipped|cpu |idle memory)| time: ' | grep -v '^--' || true
done

extra=$out/servers.tsv
: >"$extra"
if [ "${SERVERS:-1}" = 1 ]; then
  echo "::: rest-api against axum (wrk)"
  bash scripts/bench-rest-api.sh | tee "$out/rest-api.log"
  awk '/^median rest-api:/ {o=$3} /^median axum:/ {a=$3}
       END {if (o && a) printf "rest-api GET /users/1 (wrk, req/s, higher is better)\trest-api %s\taxum %s\t%.2fx\t\n", o, a, a / o}' \
    "$out/rest-api.log" >>"$extra"
  echo "::: reverse-proxy against nginx (wrk)"
  PROXY_BIN=$CARGO_TARGET_DIR/release/reverse-proxy bash scripts/bench-reverse-proxy.sh | tee "$out/reverse-proxy.log"
  awk '/^median reverse-proxy:/ {o=$3; op=$6; oc=$9} /^median nginx:/ {n=$3; np=$6; nc=$9}
       END {if (o && n) {
         printf "reverse-proxy, 1 KiB, keep-alive (CPU per request)\treverse-proxy %s µs\tnginx %s µs\t%.2fx\tproxy CPU per request\n", oc, nc, oc / nc;
         printf "reverse-proxy p99 latency\treverse-proxy %s ms\tnginx %s ms\t%.2fx\t\n", op, np, op / np }}' \
    "$out/reverse-proxy.log" >>"$extra"
  # The same with both proxies answering from their caches, and with HTTP/2 downstream.
  proxy_row() { # $1: log, $2: measure, $3: nginx's name
    awk -v m="$2" -v peer="$3" '/^median reverse-proxy:/ {oc=$9} /^median nginx:/ {nc=$9}
         END {if (oc && nc) printf "%s\treverse-proxy %s µs\t%s %s µs\t%.2fx\tproxy CPU per request\n", m, oc, peer, nc, oc / nc}' "$1"
  }
  echo "::: reverse-proxy cache hits against nginx proxy_cache (wrk)"
  CACHE=1 PROXY_BIN=$CARGO_TARGET_DIR/release/reverse-proxy bash scripts/bench-reverse-proxy.sh | tee "$out/reverse-proxy-cache.log"
  proxy_row "$out/reverse-proxy-cache.log" "reverse-proxy cache hit, 1 KiB (CPU per request)" "nginx proxy_cache" >>"$extra"
  echo "::: reverse-proxy HTTP/2 downstream against nginx http2 (h2load)"
  PROXY_BIN=$CARGO_TARGET_DIR/release/reverse-proxy bash scripts/bench-reverse-proxy-h2.sh | tee "$out/reverse-proxy-h2.log"
  proxy_row "$out/reverse-proxy-h2.log" "reverse-proxy HTTP/2 downstream, h2c (CPU per request)" "nginx http2" >>"$extra"
  echo "::: ws-core echo under load against tokio-tungstenite, fastwebsockets and Node's ws"
  NO_BUILD=1 TSV=$extra SECONDS_PER_RUN=$SECONDS_PER_RUN bash scripts/bench-ws.sh | tee "$out/ws.log"
fi

{
  echo "bench-all on $(date -u +%Y-%m-%d) $measured_from-$(date -u +%H:%M:%S) UTC at $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'),"
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  python3 scripts/bench_table.py "$CRITERION_HOME" "$extra"
} | tee "$out/table.md"
echo "::: written to $out/table.md"

#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind, for examples/reverse-proxy and for
# Debian's nginx in the same setup as scripts/bench-reverse-proxy.sh (an nginx origin serving
# a 1 KiB file, keep-alive to it, X-Forwarded-For only, one worker, no access log). Unlike
# timed runs, the count barely moves between runs or machines, so it shows small changes.
#
#   bash scripts/instructions-reverse-proxy.sh                 # HTTP/1.1, ours and nginx
#   MODE=h2 bash scripts/instructions-reverse-proxy.sh         # HTTP/2 h2c downstream
#   MODE=cache bash scripts/instructions-reverse-proxy.sh      # cache hits
#   SIM=1 bash scripts/instructions-reverse-proxy.sh           # + cache and branch simulation
#   PROXY_BIN=/path/to/reverse-proxy WHO=ours bash scripts/instructions-reverse-proxy.sh
#
# Each side: 2 s of load to warm up (`wrk -t1 -c8`, or `h2load -t1 -c4 -m10`), then
# instrumentation on for 5 s of the same load; the program's total over the requests the load
# generator completed. With SIM=1 it also prints the L1 instruction and data misses, the
# mispredicted branches and cachegrind's cycle estimate (instructions + 10 x (L1 misses +
# mispredictions) + 100 x last-level misses). Installs valgrind, nginx, wrk and h2load from
# Debian when missing. The profiles stay in $OUT (default /tmp) for callgrind_annotate.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The origin's, nginx's and our configurations (shared with bench-reverse-proxy.sh).
source scripts/reverse-proxy-setup.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
mode=${MODE:-h1}
who=${WHO:-ours nginx}
out=${OUT:-/tmp}
case "$mode" in h1|h2|cache) ;; *) echo "MODE is h1, h2 or cache, not $mode" >&2; exit 2 ;; esac

need=()
for tool in valgrind:valgrind nginx:nginx wrk:wrk h2load:nghttp2-client; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
proxy_bin=${PROXY_BIN:-$CARGO_TARGET_DIR/release/reverse-proxy}
if [ -z "${PROXY_BIN:-}" ] && [[ " $who " == *" ours "* ]]; then
  cargo build --release -q -p reverse-proxy
fi
vg_opts=(--tool=callgrind --instr-atstart=no)
if [ "${SIM:-0}" = 1 ]; then vg_opts+=(--cache-sim=yes --branch-sim=yes); fi

make_work
protocol=h1
if [ "$mode" = h2 ]; then protocol=h2; fi
cache=0
if [ "$mode" = cache ]; then cache=1; fi
origin_port=$(free_port)
write_origin "$work" "$origin_port" "$cache"
nginx -p "$work/origin" -c "$work/origin/nginx.conf" -g 'daemon off;' &
pids+=($!)

curl_flags=()
if [ "$mode" = h2 ]; then curl_flags=(--http2-prior-knowledge); fi

# Runs "$@" (the proxy listening on $port) under callgrind and prints its line.
measure() {
  local name=$1 port=$2 vg
  shift 2
  valgrind "${vg_opts[@]}" --callgrind-out-file="$out/cg-$name-$mode.out" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  vg=$!
  pids+=("$vg")
  for _ in $(seq 1 150); do
    curl -fsS "${curl_flags[@]}" -o /dev/null "http://127.0.0.1:$port/index.html" 2>/dev/null && break
    sleep 0.2
  done
  local url="http://127.0.0.1:$port/index.html" n
  if [ "$mode" = h2 ]; then
    h2load -t1 -c4 -m10 -D2 "$url" >/dev/null
    callgrind_control -i on "$vg" >/dev/null 2>&1
    n=$(h2load -t1 -c4 -m10 -D5 "$url" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
  else
    wrk -t1 -c8 -d2s "$url" >/dev/null
    callgrind_control -i on "$vg" >/dev/null 2>&1
    n=$(wrk -t1 -c8 -d5s "$url" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
  fi
  callgrind_control -i off "$vg" >/dev/null 2>&1
  kill -TERM "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  callgrind_annotate "$out/cg-$name-$mode.out" 2>/dev/null | grep 'PROGRAM TOTALS' | python3 -c '
import sys
name, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = [int(x.replace(",", "")) / n for x in sys.stdin.read().split("PROGRAM")[0].split()
     if x.replace(",", "").isdigit()]
line = f"{name} {mode}: {v[0]:,.0f} instructions per request ({n} requests)"
if len(v) >= 13:
    ir, _dr, _dw, i1, d1r, d1w, lli, lldr, lldw, _bc, bcm, _bi, bim = v[:13]
    est = ir + 10 * (i1 + d1r + d1w + bcm + bim) + 100 * (lli + lldr + lldw)
    line += (f", I1 misses {i1:,.0f}, D1 misses {d1r + d1w:,.0f},"
             f" mispredicted branches {bcm + bim:,.0f}, estimated cycles {est:,.0f}")
print(line)' "$name" "$mode" "$n"
}

for side in $who; do
  port=$(free_port)
  case "$side" in
    ours)
      write_ours "$work/ours.toml" "127.0.0.1:$port" "$origin_port" "$protocol" "$cache" 1
      measure ours "$port" "$proxy_bin" --config "$work/ours.toml" ;;
    nginx)
      # One process, no master: callgrind follows the one that serves.
      write_nginx_proxy "$work" "$port" "$origin_port" "$protocol" "$cache" 0
      measure nginx "$port" nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" -g 'daemon off;' ;;
    *) echo "WHO lists ours and nginx, not $side" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# examples/reverse-proxy against Debian's nginx, both proxying the same origin (an nginx
# serving a 1 KiB static file) over HTTP/1.1 keep-alive, no caching on either side,
# alternated in one run on 127.0.0.1. Clients speak HTTP/1.1 (wrk), or with PROTOCOL=h2
# HTTP/2 with prior knowledge (h2c, h2load; `scripts/bench-reverse-proxy-h2.sh` is that).
# With CACHE=1 the origin marks the file `Cache-Control: max-age=3600` and both proxies
# cache it (nginx `proxy_cache`, ours `[cache]` with `cache = true` on the route): after the
# warm-up request every request of the load is a cache hit (the origin's CPU per request is
# then about zero).
#
#   bash scripts/bench-reverse-proxy.sh                     # 3 rounds of 5 s each side
#   ROUNDS=5 SECONDS_PER_RUN=10 CONNECTIONS=64 bash scripts/bench-reverse-proxy.sh
#   PROTOCOL=h2 CONNECTIONS=16 STREAMS=10 bash scripts/bench-reverse-proxy.sh
#   PROXY_BIN=/path/to/reverse-proxy bash scripts/bench-reverse-proxy.sh   # no build
#   CACHE=1 bash scripts/bench-reverse-proxy.sh             # cache hits on both sides
#   SCHED=1 bash scripts/bench-reverse-proxy.sh             # + run-queue waits per run
#
# Prints requests/s, latency (p99 and p50 from wrk, the mean from h2load) and CPU microseconds per
# request (of each proxy, the origin and the load generator) per run, then the medians of
# each side and the ratios ours / nginx. On 2 shared cores, where the load generator, the
# origin and the proxy compete, CPU per request is the fairer figure. Installs nginx and wrk
# or nghttp2-client (h2load) from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The origin's, nginx's and our configurations (shared with instructions-reverse-proxy.sh).
source scripts/reverse-proxy-setup.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-5}
threads=${THREADS:-2}
protocol=${PROTOCOL:-h1}
case "$protocol" in
  h1) connections=${CONNECTIONS:-64}; load=wrk; package=wrk; latency=p99; curl_flags=() ;;
  h2) connections=${CONNECTIONS:-16}; load=h2load; package=nghttp2-client; latency=mean
      curl_flags=(--http2-prior-knowledge) ;;
  *) echo "PROTOCOL is h1 or h2, not $protocol" >&2; exit 2 ;;
esac
streams=${STREAMS:-10}
# CACHE=1: the origin's response is cacheable and both proxies answer from their cache.
cache=${CACHE:-0}

if ! command -v "$load" >/dev/null || ! command -v nginx >/dev/null; then
  echo "installing nginx and $package from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx "$package" >/dev/null
fi
# PROXY_BIN runs a reverse-proxy binary built elsewhere (an older commit, for an A/B).
proxy_bin=${PROXY_BIN:-$CARGO_TARGET_DIR/release/reverse-proxy}
if [ -z "${PROXY_BIN:-}" ]; then cargo build --release -q -p reverse-proxy; fi

make_work

origin_port=$(free_port)
nginx_port=$(free_port)
write_origin "$work" "$origin_port" "$cache"
write_nginx_proxy "$work" "$nginx_port" "$origin_port" "$protocol" "$cache" 2
write_ours "$work/ours.toml" 127.0.0.1:0 "$origin_port" "$protocol" "$cache" ""

nginx -p "$work/origin" -c "$work/origin/nginx.conf" -g 'daemon off;' &
origin_pid=$!; pids+=($!)
nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" -g 'daemon off;' &
nginx_pid=$!; pids+=($!)
"$proxy_bin" --config "$work/ours.toml" >"$work/ours.out" 2>/dev/null &
ours_pid=$!; pids+=($!)
for _ in $(seq 1 50); do
  grep -q '^listening on http://' "$work/ours.out" 2>/dev/null && break
  sleep 0.1
done
ours=$(sed -n 's/^listening on http:\/\///p' "$work/ours.out" | head -n 1)
theirs="127.0.0.1:$nginx_port"
sleep 0.5
curl -fsS "${curl_flags[@]}" -o /dev/null "http://$ours/index.html"
curl -fsS "${curl_flags[@]}" -o /dev/null "http://$theirs/index.html"
if [ "$cache" = 1 ]; then
  # The warm-up above stored the response; check that the next one is a hit on both sides.
  curl -fsS "${curl_flags[@]}" -D - -o /dev/null "http://$ours/index.html" | grep -qi '^x-cache: HIT' \
    || { echo "reverse-proxy did not answer from its cache" >&2; exit 1; }
  curl -fsS "${curl_flags[@]}" -D - -o /dev/null "http://$theirs/index.html" | grep -qi '^x-cache: HIT' \
    || { echo "nginx did not answer from its cache" >&2; exit 1; }
fi

# CPU time in clock ticks of a process and all its descendants (every thread of ours, nginx's
# master and workers; /proc/PID/stat covers all threads): "USER+SYS SYS".
ticks() {
  local total=0 sys=0 pid u s
  for pid in $(tree_pids "$1"); do
    read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo 0 0)
    total=$((total + u + s)); sys=$((sys + s))
  done
  echo "$total $sys"
}
tree_pids() {
  echo "$1"
  local child
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$child"; done
}
hz=$(getconf CLK_TCK)
# With SCHED=1: the time the proxy's threads waited runnable for a core, and their number
# of time slices, summed over every thread from /proc/PID/task/TID/schedstat: "WAIT_NS SLICES".
waits() {
  local total=0 slices=0 pid task wait count
  for pid in $(tree_pids "$1"); do
    for task in /proc/"$pid"/task/*; do
      read -r _ wait count < "$task/schedstat" 2>/dev/null || continue
      total=$((total + wait)); slices=$((slices + count))
    done
  done
  echo "$total $slices"
}

# Prints "RPS LATENCY_MS PROXY_US ORIGIN_US LOAD_US PROXY_SYS_US P50_MS" for one run of the
# load generator: requests/s, latency (wrk's p99 or h2load's mean), and the CPU microseconds per
# completed request of the proxy under test (all its threads or processes), of the origin,
# of the load generator itself (from its rusage), so the share each takes of the 2 shared
# cores is visible, the kernel part of the proxy's figure, and wrk's median latency (`-` from
# h2load).
run() {
  local proxy_pid=$2 before before_sys origin_before out command
  if [ "$protocol" = h2 ]; then
    command=(h2load -t"$threads" -c"$connections" -m"$streams" -D"$seconds" "http://$1/index.html")
  else
    command=(wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "http://$1/index.html")
  fi
  read -r before before_sys < <(ticks "$proxy_pid"); read -r origin_before _ < <(ticks "$origin_pid")
  local wait_before=0 slices_before=0 wait_after=0 slices_after=0
  if [ "${SCHED:-0}" = 1 ]; then read -r wait_before slices_before < <(waits "$proxy_pid"); fi
  out=$(python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(r.stdout)
print("LOADCPU %f" % (u.ru_utime + u.ru_stime))
' "${command[@]}")
  local after after_sys origin_after
  read -r after after_sys < <(ticks "$proxy_pid"); read -r origin_after _ < <(ticks "$origin_pid")
  if [ "${SCHED:-0}" = 1 ]; then
    read -r wait_after slices_after < <(waits "$proxy_pid")
    awk -v w=$((wait_after - wait_before)) -v n=$((slices_after - slices_before)) 'BEGIN {
      printf "  run-queue wait %.2f s in %d slices, %.0f us per slice\n", w / 1e9, n, (n > 0 ? w / n / 1e3 : 0)
    }' >&2
  fi
  awk -v dp=$((after - before)) -v ds=$((after_sys - before_sys)) -v dorig=$((origin_after - origin_before)) -v hz="$hz" '
    function ms(v) {
      if (v ~ /us$/) {sub(/us$/,"",v); return v/1000}
      if (v ~ /ms$/) {sub(/ms$/,"",v); return v}
      if (v ~ /s$/) {sub(/s$/,"",v); return v*1000}
      return v
    }
    # wrk
    /^Requests\/sec/ {rps=$2}
    /requests in/ {n=$1}
    /^ +99%/ {lat=ms($2)}
    /^ +50%/ {p50=ms($2)}
    /Non-2xx|Socket errors/ {print "warning: " $0 > "/dev/stderr"}
    # h2load
    /^finished in/ {rps=$4}
    /^requests:/ {n=$8; if ($10 + $12 > 0) print "warning: " $10 " failed, " $12 " errored" > "/dev/stderr"}
    /^time for request:/ {lat=ms($6)}
    /^LOADCPU/ {load=$2}
    END {printf "%s %s %.2f %.2f %.2f %.2f %s\n", rps, lat, dp / hz * 1e6 / n, dorig / hz * 1e6 / n, load * 1e6 / n, ds / hz * 1e6 / n, (p50 == "" ? "-" : p50)}' <<<"$out"
}

ours_rps=(); nginx_rps=(); ours_lat=(); nginx_lat=(); ours_cpu=(); nginx_cpu=(); ours_p50=(); nginx_p50=()
origin_cpu=(); load_cpu=()
for round in $(seq 1 "$rounds"); do
  read -r r p c o w k m < <(run "$ours" "$ours_pid"); ours_rps+=("$r"); ours_lat+=("$p"); ours_cpu+=("$c")
  origin_cpu+=("$o"); load_cpu+=("$w"); ours_p50+=("$m")
  echo "round $round reverse-proxy: $r req/s, $latency $p ms (p50 $m), proxy CPU $c us/req of which sys $k (origin $o, $load $w)"
  read -r r p c o w k m < <(run "$theirs" "$nginx_pid"); nginx_rps+=("$r"); nginx_lat+=("$p"); nginx_cpu+=("$c")
  origin_cpu+=("$o"); load_cpu+=("$w"); nginx_p50+=("$m")
  echo "round $round nginx:         $r req/s, $latency $p ms (p50 $m), proxy CPU $c us/req of which sys $k (origin $o, $load $w)"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "${ours_rps[@]}"); n=$(median "${nginx_rps[@]}")
op=$(median "${ours_lat[@]}"); np=$(median "${nginx_lat[@]}")
oc=$(median "${ours_cpu[@]}"); nc=$(median "${nginx_cpu[@]}")
echo "median reverse-proxy: $o req/s, $latency $op ms (p50 $(median "${ours_p50[@]}")), CPU $oc us/req"
echo "median nginx:         $n req/s, $latency $np ms (p50 $(median "${nginx_p50[@]}")), CPU $nc us/req"
echo "median origin CPU $(median "${origin_cpu[@]}") us/req, $load CPU $(median "${load_cpu[@]}") us/req"
awk -v o="$o" -v n="$n" -v oc="$oc" -v nc="$nc" \
  'BEGIN {printf "ratio reverse-proxy / nginx: %.2f req/s, %.2f CPU per request\n", o / n, oc / nc}'

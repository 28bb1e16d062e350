#!/usr/bin/env bash
# wrk: examples/reverse-proxy against Debian's nginx, both proxying the same origin (an nginx
# serving a 1 KiB static file), no caching on either side, alternated in one run on 127.0.0.1.
#
#   bash scripts/bench-reverse-proxy.sh                     # 3 rounds of 5 s each side
#   ROUNDS=5 SECONDS_PER_RUN=10 CONNECTIONS=64 bash scripts/bench-reverse-proxy.sh
#
# Prints requests/s and p99 latency per run, then the median of each side and the ratio
# ours / nginx. Installs nginx and wrk from Debian when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-5}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  echo "installing nginx and wrk from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi
cargo build --release -q -p reverse-proxy

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as an unprivileged user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port=$(free_port)
nginx_port=$(free_port)

mkdir -p "$work/www" "$work/origin/logs" "$work/proxy/logs"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/www/index.html"

cat >"$work/origin/nginx.conf" <<CONF
worker_processes 1;
error_log stderr error;
pid $work/origin/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/origin; proxy_temp_path $work/origin;
  fastcgi_temp_path $work/origin; uwsgi_temp_path $work/origin; scgi_temp_path $work/origin;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$origin_port; root $work/www; }
}
CONF

cat >"$work/proxy/nginx.conf" <<CONF
worker_processes 2;
error_log stderr error;
pid $work/proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/proxy; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/proxy; uwsgi_temp_path $work/proxy; scgi_temp_path $work/proxy;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF

cat >"$work/ours.toml" <<CONF
[server]
listen = "127.0.0.1:0"
access_log = false
[[pools]]
name = "origin"
upstreams = [{ address = "127.0.0.1:$origin_port" }]
[[routes]]
pool = "origin"
CONF

nginx -p "$work/origin" -c "$work/origin/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" -g 'daemon off;' &
pids+=($!)
"$CARGO_TARGET_DIR/release/reverse-proxy" --config "$work/ours.toml" >"$work/ours.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 1 50); do
  grep -q '^listening on http://' "$work/ours.out" 2>/dev/null && break
  sleep 0.1
done
ours=$(sed -n 's/^listening on http:\/\///p' "$work/ours.out" | head -n 1)
theirs="127.0.0.1:$nginx_port"
sleep 0.5
curl -fsS -o /dev/null "http://$ours/index.html"
curl -fsS -o /dev/null "http://$theirs/index.html"

# Prints "RPS P99_MS" for one wrk run.
run() {
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "http://$1/index.html" | awk '
    /^Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; p99=v}
    /Non-2xx|Socket errors/ {print "warning: " $0 > "/dev/stderr"}
    END {printf "%s %s\n", rps, p99}'
}

ours_rps=(); nginx_rps=(); ours_p99=(); nginx_p99=()
for round in $(seq 1 "$rounds"); do
  read -r r p < <(run "$ours"); ours_rps+=("$r"); ours_p99+=("$p")
  echo "round $round reverse-proxy: $r req/s, p99 $p ms"
  read -r r p < <(run "$theirs"); nginx_rps+=("$r"); nginx_p99+=("$p")
  echo "round $round nginx:         $r req/s, p99 $p ms"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "${ours_rps[@]}"); n=$(median "${nginx_rps[@]}")
op=$(median "${ours_p99[@]}"); np=$(median "${nginx_p99[@]}")
echo "median reverse-proxy: $o req/s, p99 $op ms"
echo "median nginx:         $n req/s, p99 $np ms"
awk -v o="$o" -v n="$n" 'BEGIN {printf "ratio reverse-proxy / nginx: %.2f\n", o / n}'

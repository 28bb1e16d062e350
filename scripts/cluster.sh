#!/usr/bin/env bash
# Runs several showcase instances on the shared engines behind examples/reverse-proxy, the
# way they would run on several hosts, and prints the one address to open. Ctrl-C stops
# everything it started.
#
#   bash scripts/cluster.sh            # 3 instances, the proxy on 127.0.0.1:8080
#   INSTANCES=2 PORT=9000 bash scripts/cluster.sh
#   RELEASE=1 bash scripts/cluster.sh  # optimised build
#   NO_BUILD=1 bash scripts/cluster.sh # the binaries already built in the target directory
#
# Environment:
#   REDIS_URL     sessions, accounts, throttling, idempotency keys, OAuth grants, signing
#                 keys, chat fan-out and presence, GraphQL subscription events, rate
#                 limits (default redis://127.0.0.1:6379)
#   DATABASE_URL  the REST API's rows, PostgreSQL (default
#                 postgres://postgres@127.0.0.1:5432/postgres)
#   NATS_URL      the job queue's broker, NATS JetStream (default nats://127.0.0.1:4222;
#                 set it empty to keep the jobs on Redis Streams); the job records are in
#                 Redis either way
#   INSTANCES     how many showcase processes (default 3)
#   PORT          the proxy's port, the address users open (default 8080); the instances
#                 listen on the next ports up
#   REDIS_PREFIX  the key prefix all instances share (default cluster:)
#
# The proxy balances by least connections, checks /healthz every second, retries an
# idempotent request on another instance when one fails, and passes WebSocket upgrades
# through. No route is sticky: every request works on any instance, the OAuth client's
# pending logins (state, PKCE verifier) included (docs/shared-state.md says where each
# piece of state lives).
set -euo pipefail
cd "$(dirname "$0")/.."

instances=${INSTANCES:-3}
port=${PORT:-8080}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export NATS_URL=${NATS_URL-nats://127.0.0.1:4222}
[ -n "$NATS_URL" ] || unset NATS_URL
export REDIS_PREFIX=${REDIS_PREFIX:-cluster:}
export PUBLIC_ORIGIN="http://127.0.0.1:$port"
# The instances believe the client address the proxy forwards (login throttling per client).
export TRUSTED_PROXIES=127.0.0.1/32

case $instances in
  '' | *[!0-9]*) echo "INSTANCES must be a number" >&2; exit 2 ;;
esac
if [ "$instances" -lt 1 ] || [ "$instances" -gt 16 ]; then
  echo "INSTANCES must be between 1 and 16" >&2
  exit 2
fi

profile=debug
build=(cargo build -p showcase -p reverse-proxy)
if [ -n "${RELEASE:-}" ]; then
  profile=release
  build+=(--release)
fi
[ -n "${NO_BUILD:-}" ] || "${build[@]}"
target=${CARGO_TARGET_DIR:-target}
bin=$target/$profile

work=$(mktemp -d)
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop INT TERM EXIT

# Waits until the process writing $1 has printed its `listening on` line (or died).
wait_listening() {
  local log=$1 pid=$2 name=$3
  for _ in $(seq 1 600); do
    if grep -q '^listening on ' "$log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited; its output:" >&2
      cat "$log" "$log.err" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "$name did not start within 60 s" >&2
  exit 1
}

upstreams=""
for i in $(seq 1 "$instances"); do
  instance_port=$((port + i))
  PORT=$instance_port BIND=127.0.0.1 "$bin/showcase" >"$work/showcase-$i.log" 2>"$work/showcase-$i.log.err" &
  pids+=($!)
  wait_listening "$work/showcase-$i.log" "$!" "showcase instance $i (port $instance_port)"
  upstreams+="${upstreams:+, }{ address = \"127.0.0.1:$instance_port\" }"
  echo "instance $i: http://127.0.0.1:$instance_port (log $work/showcase-$i.log.err)"
done

cat >"$work/proxy.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
pseudonym = "cluster"
trusted_proxies = []
max_head_bytes = 32768
max_headers = 100
metrics_path = "/__proxy/metrics"
access_log = true
shutdown_grace_ms = 5000

[[pools]]
name = "showcase"
algorithm = "least-connections"
upstreams = [$upstreams]
connect_timeout_ms = 500
request_timeout_ms = 30000
idle_timeout_ms = 60000
max_retries = 2
retry_statuses = [502, 503]
panic_threshold = 0.5
[pools.health]
path = "/healthz"
interval_ms = 1000
timeout_ms = 500
healthy_threshold = 1
unhealthy_threshold = 1

[[routes]]
prefix = "/"
pool = "showcase"
EOF

"$bin/reverse-proxy" --config "$work/proxy.toml" >"$work/proxy.log" 2>"$work/proxy.log.err" &
pids+=($!)
wait_listening "$work/proxy.log" "$!" "reverse-proxy"
echo "proxy log: $work/proxy.log.err"
echo
echo "open $PUBLIC_ORIGIN/   ($instances instances on Redis $REDIS_URL, $DATABASE_URL${NATS_URL:+ and NATS $NATS_URL}; Ctrl-C stops them)"
# An instance that dies is the proxy's business (health checks, retries); the cluster runs
# until Ctrl-C or until the proxy itself exits.
proxy_pid=${pids[-1]}
wait "$proxy_pid" || true
echo "the proxy exited; stopping the cluster" >&2

#!/usr/bin/env bash
# The showcase on the shared engines behind examples/reverse-proxy, for 1, 2 and 3
# instances, against the embedded single process (directly and behind the same proxy).
# Laid out as scripts/cluster.sh lays it out (release build, least connections, health
# checks on /healthz), with wrk as the client.
#
#   flock /tmp/cpu.lock bash scripts/bench-cluster.sh     # 10 s per run, 32 connections
#   SECONDS_PER_RUN=5 CONNECTIONS=64 bash scripts/bench-cluster.sh
#   NO_BUILD=1 bash scripts/bench-cluster.sh              # the release binaries already built
#
# Two workloads, each from one logged-in browser's cookies:
#   page  GET /auth/ with the session cookie: a session-checked HTML page (the session is
#         read from Redis on the shared engines, from memory embedded);
#   api   GET /api/users/ID: one REST resource (a row from PostgreSQL on the shared
#         engines, from SQLite in memory embedded).
# For each, requests/s and p99 from wrk; CPU microseconds per request of the proxy and of
# all showcase instances together (utime+stime of /proc/PID/stat, every thread); Redis
# commands per request (INFO commandstats, all commands, delta) and the redis-server's CPU
# per request; PostgreSQL transactions per request and its statement time per request
# (pg_stat_database xact_commit and active_time, delta, this database) and the CPU of all
# postgres processes per request. The Redis and PostgreSQL are the machine's (REDIS_URL,
# DATABASE_URL; defaults as in scripts/cluster.sh); the REST rows go to a schema of this
# run's own, dropped at the end; the Redis keys are under a prefix of this run's own.
# NATS_URL, when set, is passed on (the task queue's broker; nothing in the load uses it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
seconds=${SECONDS_PER_RUN:-10}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
nats_url=${NATS_URL:-}

for tool in wrk redis-cli psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench-cluster: $tool is needed" >&2; exit 2; }
done
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p showcase -p reverse-proxy
bin=$CARGO_TARGET_DIR/release

run_id=$$-$(date +%s)
schema=bench_cluster_${run_id//-/_}
work=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_all
  psql -q "$database_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -q "$database_url" -c "CREATE SCHEMA $schema" >/dev/null
sep='?'
case $database_url in *'?'*) sep='&' ;; esac
schema_url="${database_url}${sep}options=-c%20search_path%3D$schema"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hz=$(getconf CLK_TCK)

wait_listening() {
  local log=$1 pid=$2
  for _ in $(seq 1 300); do
    grep -q '^listening on ' "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$log: the process exited" >&2; cat "$log.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "$log: not listening after 30 s" >&2
  exit 1
}

# start_instance MODE PORT PREFIX ORIGIN: one showcase process; MODE embedded or shared.
start_instance() {
  local mode=$1 port=$2 prefix=$3 origin=$4 log=$work/showcase-$2.log
  local env=(env -u REDIS_URL -u DATABASE_URL -u NATS_URL -u API_SQLITE_FILE
    PORT="$port" BIND=127.0.0.1 RUST_LOG=warn PUBLIC_ORIGIN="$origin"
    TRUSTED_PROXIES=127.0.0.1/32)
  if [ "$mode" = shared ]; then
    env+=(REDIS_URL="$redis_url" DATABASE_URL="$schema_url" REDIS_PREFIX="$prefix")
    [ -z "$nats_url" ] || env+=(NATS_URL="$nats_url")
  fi
  "${env[@]}" "$bin/showcase" >"$log" 2>"$log.err" &
  pids+=($!)
  instance_pids+=($!)
  wait_listening "$log" "$!"
}

# start_proxy PORT UPSTREAM_PORT...: examples/reverse-proxy as scripts/cluster.sh runs it.
start_proxy() {
  local port=$1 upstreams="" p
  shift
  for p in "$@"; do upstreams+="${upstreams:+, }{ address = \"127.0.0.1:$p\" }"; done
  cat >"$work/proxy-$port.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
pseudonym = "cluster"
trusted_proxies = []
access_log = false
shutdown_grace_ms = 2000

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
  "$bin/reverse-proxy" --config "$work/proxy-$port.toml" >"$work/proxy-$port.log" 2>"$work/proxy-$port.log.err" &
  pids+=($!)
  proxy_pid=$!
  wait_listening "$work/proxy-$port.log" "$!"
}

# Signs a user up at BASE (over one origin, as a browser would), creates one REST row, and
# prints the Cookie header value, then the row's path.
login() {
  python3 - "$1" "$2" <<'PY'
import json, re, sys, urllib.error, urllib.parse, urllib.request
base, name = sys.argv[1], sys.argv[2]
cookies = {}
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(Keep)
def send(method, path, body=None, ctype=None):
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    if ctype:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        response = opener.open(request)
    except urllib.error.HTTPError as error:
        response = error
    for value in response.headers.get_all("Set-Cookie") or []:
        pair = value.split(";", 1)[0]
        key, _, val = pair.partition("=")
        if "max-age=0" in value.lower():
            cookies.pop(key, None)
        else:
            cookies[key] = val
    return response.status, response.read().decode()
status, page = send("GET", "/auth/")
csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
form = urllib.parse.urlencode({"csrf": csrf, "username": name, "password": "plum orbit ferry lantern 7041"})
status, _ = send("POST", "/auth/signup", form.encode(), "application/x-www-form-urlencoded")
assert status == 303, f"signup: {status}"
status, page = send("GET", "/auth/")
assert f"Logged in as <b>{name}</b>" in page, page
user = json.dumps({"name": name, "email": f"{name}@example.com"}).encode()
status, body = send("POST", "/api/users", user, "application/json")
assert status == 201, f"create: {status} {body}"
print("; ".join(f"{k}={v}" for k, v in cookies.items()))
print(f"/api/users/{json.loads(body)['id']}")
PY
}

ticks_of() {
  local total=0 pid u s
  for pid in "$@"; do
    read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo 0 0)
    total=$((total + u + s))
  done
  echo "$total"
}
redis_pid=$(redis-cli -u "$redis_url" INFO server | tr -d '\r' | sed -n 's/^process_id://p')
postgres_pids() { ps -C postgres -o pid= | tr '\n' ' '; }
redis_calls() {
  redis-cli -u "$redis_url" INFO commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\),.*/\1/p' | awk '{s += $1} END {print s + 0}'
}
# xact_commit and active_time (ms, a float) of this database.
pg_stats() {
  psql -Atq "$database_url" -F ' ' -c \
    "SELECT xact_commit, active_time FROM pg_stat_database WHERE datname = current_database()"
}

printf '%-26s %-5s %9s %8s %11s %11s %10s %10s %9s %10s %10s %6s\n' \
  setup load req/s p99 proxy_us/r inst_us/r redis_c/r redis_us/r pg_tx/r pg_stmt_us pg_us/r errors
results=$work/results
: >"$results"

# measure LABEL ORIGIN COOKIE PATH WORKLOAD
measure() {
  local label=$1 origin=$2 cookie=$3 path=$4 load=$5
  # Warm up (connections, caches, the first prepared statements).
  wrk -t "$threads" -c "$connections" -d 2s -H "Cookie: $cookie" "$origin$path" >/dev/null
  local proxy_before=0 proxy_after=0
  local inst_before redis_before redis_cpu_before pg_before pg_cpu_before pg_pids
  pg_pids=$(postgres_pids)
  [ -z "$proxy_pid" ] || proxy_before=$(ticks_of "$proxy_pid")
  inst_before=$(ticks_of "${instance_pids[@]}")
  redis_before=$(redis_calls)
  redis_cpu_before=$(ticks_of "$redis_pid")
  pg_before=$(pg_stats)
  # shellcheck disable=SC2086
  pg_cpu_before=$(ticks_of $pg_pids)
  wrk -t "$threads" -c "$connections" -d "${seconds}s" --latency -H "Cookie: $cookie" \
    "$origin$path" >"$work/wrk.out"
  [ -z "$proxy_pid" ] || proxy_after=$(ticks_of "$proxy_pid")
  local inst_after redis_after redis_cpu_after pg_after pg_cpu_after
  inst_after=$(ticks_of "${instance_pids[@]}")
  redis_after=$(redis_calls)
  redis_cpu_after=$(ticks_of "$redis_pid")
  pg_after=$(pg_stats)
  # shellcheck disable=SC2086
  pg_cpu_after=$(ticks_of $pg_pids)
  local requests rps p99 errors
  requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/wrk.out")
  rps=$(sed -n 's/^Requests\/sec: *//p' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  errors=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$work/wrk.out")
  errors=${errors:-0}
  awk -v label="$label" -v workload="$load" -v n="$requests" -v rps="$rps" -v p99="$p99" \
    -v hz="$hz" -v proxy=$((proxy_after - proxy_before)) -v inst=$((inst_after - inst_before)) \
    -v rc=$((redis_after - redis_before)) -v rcpu=$((redis_cpu_after - redis_cpu_before)) \
    -v pgb="$pg_before" -v pga="$pg_after" -v pgcpu=$((pg_cpu_after - pg_cpu_before)) \
    -v errors="$errors" -v has_proxy="${proxy_pid:+1}" 'BEGIN {
      split(pgb, b, " "); split(pga, a, " ");
      us = 1e6 / hz;
      proxy_us = has_proxy ? sprintf("%.0f", proxy * us / n) : "-";
      printf "%-26s %-5s %9.0f %8s %11s %11.0f %10.2f %10.1f %9.2f %10.1f %10.1f %6d\n",
        label, workload, rps, p99, proxy_us, inst * us / n, rc / n, rcpu * us / n,
        (a[1] - b[1]) / n, (a[2] - b[2]) * 1000 / n, pgcpu * us / n, errors
    }' | tee -a "$results"
}

# setup LABEL MODE INSTANCES PROXY(yes/no)
setup() {
  local label=$1 mode=$2 count=$3 with_proxy=$4 i origin ports=() port proxy_port
  instance_pids=()
  proxy_pid=""
  proxy_port=$(free_port)
  for i in $(seq 1 "$count"); do
    port=$(free_port)
    ports+=("$port")
    local public="http://127.0.0.1:$port"
    [ "$with_proxy" = no ] || public="http://127.0.0.1:$proxy_port"
    start_instance "$mode" "$port" "bench-cluster:$run_id:$mode$count:" "$public"
  done
  if [ "$with_proxy" = yes ]; then
    start_proxy "$proxy_port" "${ports[@]}"
    origin="http://127.0.0.1:$proxy_port"
    # Every instance healthy in the proxy's eyes before the load (one check per second).
    sleep 2
  else
    origin="http://127.0.0.1:${ports[0]}"
  fi
  local out cookie path
  out=$(login "$origin" "bench${count}${mode:0:1}${with_proxy:0:1}$$")
  cookie=$(sed -n 1p <<<"$out")
  path=$(sed -n 2p <<<"$out")
  curl -fsS -o /dev/null -H "Cookie: $cookie" "$origin$path"
  measure "$label" "$origin" "$cookie" /auth/ page
  measure "$label" "$origin" "$cookie" "$path" api
  stop_all
}

setup "embedded, direct" embedded 1 no
setup "embedded, proxy" embedded 1 yes
setup "shared x1, proxy" shared 1 yes
setup "shared x2, proxy" shared 2 yes
setup "shared x3, proxy" shared 3 yes

echo
echo "wrk -t $threads -c $connections -d ${seconds}s; $(nproc) cores; redis $redis_url;" \
  "postgres $database_url (schema $schema); nats ${nats_url:-unset}"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"

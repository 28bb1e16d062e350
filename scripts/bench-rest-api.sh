#!/usr/bin/env bash
# wrk: the rest-api example's GET /users/1 against the same handler written in axum 0.8
# (benches/src/bin/rest_api_axum.rs), alternated in one run on 127.0.0.1.
#
#   bash scripts/bench-rest-api.sh            # 3 rounds of 5 s each side
#   ROUNDS=5 SECONDS_PER_RUN=3 bash scripts/bench-rest-api.sh
#
# Prints requests/s per run, the median of each side and the ratio ours / axum. Bounded: a
# few seconds per run, 2 threads, 32 connections.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-5}
connections=${CONNECTIONS:-32}

if ! command -v wrk >/dev/null; then
  echo "wrk is missing: installing it from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p rest-api
cargo build --release -q --manifest-path benches/Cargo.toml --bin rest_api_axum

# `start` runs in a command substitution (a subshell), so the servers' pids go to a file.
pidfile=$(mktemp)
cleanup() {
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$pidfile"
  rm -f "$pidfile"
}
trap cleanup EXIT

# Starts a server with PORT=0 and echoes its address from the announce line.
start() {
  local out
  out=$(mktemp)
  # The in-process default store on both sides: a DATABASE_URL exported for the tests
  # (PostgreSQL) would need rest-api's `postgres` feature and measure the database instead.
  env -u DATABASE_URL PORT=0 RUST_LOG=warn "$@" >"$out" 2>/dev/null &
  echo $! >>"$pidfile"
  for _ in $(seq 1 50); do
    if grep -q '^listening on http://' "$out"; then
      sed -n 's/^listening on http:\/\///p' "$out" | head -n 1
      return
    fi
    sleep 0.1
  done
  echo "error: $* did not announce its address" >&2
  exit 1
}

ours=$(start "$CARGO_TARGET_DIR/release/rest-api")
axum=$(start "$CARGO_TARGET_DIR/release/rest_api_axum")
curl -fsS -o /dev/null -X POST "http://$ours/users" -H 'content-type: application/json' \
  -d '{"name":"Ada","email":"ada@example.com"}'
# Both answer the same thing (apart from Date and Last-Modified).
curl -fsS "http://$ours/users/1"; echo
curl -fsS "http://$axum/users/1"; echo

rps() {
  wrk -t2 -c"$connections" -d"${1}s" "http://$2/users/1" | awk '/^Requests\/sec/ {print $2}'
}
rps 1 "$ours" >/dev/null
rps 1 "$axum" >/dev/null

ours_runs=()
axum_runs=()
for round in $(seq 1 "$rounds"); do
  o=$(rps "$seconds" "$ours")
  a=$(rps "$seconds" "$axum")
  echo "round $round: rest-api $o req/s, axum $a req/s"
  ours_runs+=("$o")
  axum_runs+=("$a")
done

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
mo=$(median "${ours_runs[@]}")
ma=$(median "${axum_runs[@]}")
echo "median rest-api: $mo req/s"
echo "median axum:     $ma req/s"
awk -v o="$mo" -v a="$ma" 'BEGIN {printf "ratio rest-api / axum: %.3f\n", o / a}'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

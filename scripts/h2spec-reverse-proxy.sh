#!/usr/bin/env bash
# h2spec, the HTTP/2 conformance suite (github.com/summerwind/h2spec: 146 cases in its
# generic, http2 and hpack sections), against examples/reverse-proxy over cleartext h2c
# with prior knowledge and over TLS with ALPN, and against Debian's nginx (`listen ...
# http2`, h2c) in front of the same origin for comparison.
#
#   H2SPEC=/path/to/h2spec bash scripts/h2spec-reverse-proxy.sh            # all three
#   H2SPEC=... TARGETS="h2c tls" bash scripts/h2spec-reverse-proxy.sh      # ours only
#   H2SPEC=... TARGETS=h2c bash scripts/h2spec-reverse-proxy.sh http2/6.9.1 -v
#   PROXY_BIN=/path/to/reverse-proxy H2SPEC=... bash scripts/h2spec-reverse-proxy.sh
#
# Arguments after the options go to h2spec (a section, `-v`). Reports stay in $OUT
# (default /tmp/h2spec-out): NAME.txt and JUnit NAME.xml per target.
#
# h2spec is a Go program that neither Debian nor the other registries package, so it is
# not part of `.ci/run`. To build it on Debian 12 from a checkout of its repository in
# $H2SPEC_SRC, with Debian's Go and Go libraries instead of its pinned modules:
#
#   apt-get install golang-go golang-golang-x-net-dev golang-github-spf13-cobra-dev \
#     golang-github-fatih-color-dev golang-github-mattn-go-colorable-dev \
#     golang-github-mattn-go-isatty-dev golang-github-spf13-pflag-dev \
#     golang-golang-x-sys-dev golang-github-inconshreveable-mousetrap-dev
#   mkdir -p /tmp/gopath/src/github.com/summerwind
#   ln -sfn "$H2SPEC_SRC" /tmp/gopath/src/github.com/summerwind/h2spec
#   cd /tmp/gopath/src/github.com/summerwind/h2spec
#   GO111MODULE=off GOPATH=/tmp/gopath:/usr/share/gocode go build -o /tmp/h2spec ./cmd/h2spec
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source scripts/reverse-proxy-setup.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/backend-kit/target}
h2spec=${H2SPEC:-$(command -v h2spec || true)}
if [ -z "$h2spec" ] || [ ! -x "$h2spec" ]; then
  echo "h2spec not found: set H2SPEC to its binary (how to build it: the top of this script)" >&2
  exit 2
fi
targets=${TARGETS:-h2c tls nginx}
out=${OUT:-/tmp/h2spec-out}
mkdir -p "$out"
if ! command -v nginx >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
proxy_bin=${PROXY_BIN:-$CARGO_TARGET_DIR/release/reverse-proxy}
if [ -z "${PROXY_BIN:-}" ]; then cargo build --release -q -p reverse-proxy; fi

make_work

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# Starts our proxy on CONFIG and sets `port` from its `listening on` line (not in a
# subshell: `pids` must keep the proxy for the cleanup).
start_ours() {
  "$proxy_bin" --config "$1" >"$work/ours.out" 2>"$work/ours.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    local line
    line=$(sed -n 's/^listening on [a-z]*:\/\///p' "$work/ours.out" | head -n 1)
    if [ -n "$line" ]; then port=${line##*:}; return 0; fi
    sleep 0.1
  done
  echo "the proxy did not start:" >&2
  cat "$work/ours.err" >&2
  return 1
}

# Runs h2spec on PORT, writing NAME.txt and NAME.xml, and prints its count and failures.
run() {
  local name=$1 port=$2
  shift 2
  echo "== $name: h2spec -h 127.0.0.1 -p $port -P /index.html --timeout 2 $*"
  "$h2spec" -h 127.0.0.1 -p "$port" -P /index.html --timeout 2 -j "$out/$name.xml" "$@" \
    >"$out/$name.txt" 2>&1 || true
  grep -E '^[0-9]+ tests, ' "$out/$name.txt" || tail -n 5 "$out/$name.txt"
  sed 's/\x1b\[[0-9;]*m//g' "$out/$name.txt" | sed -n '/^Failures:/,$p' \
    | grep -E '^ *([0-9]+\.)+ |×' || true
}

origin_port=$(free_port)
write_origin "$work" "$origin_port" 0
nginx -p "$work/origin" -c "$work/origin/nginx.conf" -g 'daemon off;' 2>"$work/origin.err" &
pids+=($!)
wait_port "$origin_port"

for target in $targets; do
  case "$target" in
    h2c)
      write_ours "$work/h2c.toml" 127.0.0.1:0 "$origin_port" h2 0 1
      start_ours "$work/h2c.toml"
      run h2c "$port" "$@"
      ;;
    tls)
      # The development certificate (h2spec -k does not verify it); ALPN offers h2.
      write_ours "$work/tls.toml" 127.0.0.1:0 "$origin_port" h1 0 1
      sed -i '/^\[\[pools\]\]/i [server.tls]\ndev_names = ["localhost", "127.0.0.1"]\n' \
        "$work/tls.toml"
      start_ours "$work/tls.toml"
      run tls "$port" -t -k "$@"
      ;;
    nginx)
      port=$(free_port)
      write_nginx_proxy "$work" "$port" "$origin_port" h2 0 1
      nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" -g 'daemon off;' 2>"$work/nginx.err" &
      pids+=($!)
      wait_port "$port"
      run nginx "$port" "$@"
      ;;
    *) echo "TARGETS holds h2c, tls and nginx, not $target" >&2; exit 2 ;;
  esac
done

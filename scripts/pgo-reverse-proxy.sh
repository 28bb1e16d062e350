#!/usr/bin/env bash
# A profile-guided build of examples/reverse-proxy: an instrumented build serves a training
# load (HTTP/1.1 keep-alive GETs with wrk, HTTP/2 h2c GETs with h2load, then cache hits,
# each through the proxy to a local nginx origin), `llvm-profdata` merges what it counted,
# and the release build is made again with that profile. The compiler then knows which code
# is hot: it lays the hot paths out together and keeps the cold ones out of their way
# (docs/benchmarks.md: fewer instruction-cache misses and instructions per request).
#
#   bash scripts/pgo-reverse-proxy.sh           # prints the optimized binary's path
#   TRAIN_SECONDS=10 bash scripts/pgo-reverse-proxy.sh
#
# The profile only steers optimization: every path of the proxy is in the binary and
# behaves the same, the paths the training did not run are just laid out for size. Train
# on your own traffic's shape for the best result (run the instrumented binary from step 1
# under your load, send SIGTERM, then steps 3 and 4 below).
#
# `llvm-profdata` must be of the LLVM that rustc uses (`rustc -vV`); Debian packages it as
# llvm-N, installed here when missing. Builds go to their own target directories
# (instrumented and optimized), so the regular release build stays as it is.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source scripts/reverse-proxy-setup.sh
cache_dir=$HOME/.cache/backend-kit
seconds=${TRAIN_SECONDS:-5}

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=$(command -v "llvm-profdata-$llvm" || true)
if [ -z "$profdata" ] && [ -x "/usr/lib/llvm-$llvm/bin/llvm-profdata" ]; then
  profdata=/usr/lib/llvm-$llvm/bin/llvm-profdata
fi
need=()
if [ -z "$profdata" ]; then need+=("llvm-$llvm"); fi
for tool in nginx:nginx wrk:wrk h2load:nghttp2-client; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  profdata=${profdata:-$(command -v "llvm-profdata-$llvm")}
fi

make_work

# 1. The instrumented build. Build scripts run instrumented too and write their counts
# into the directory given here (a fixed one: cargo rebuilds whenever RUSTFLAGS change);
# the proxy's runs write theirs to $work/profiles.
echo "1/4 instrumented build" >&2
mkdir -p "$cache_dir/pgo"
CARGO_TARGET_DIR=$cache_dir/target-pgo-generate \
  RUSTFLAGS="-Cprofile-generate=$cache_dir/pgo/build-scripts" \
  cargo build --release -q -p reverse-proxy
instrumented=$cache_dir/target-pgo-generate/release/reverse-proxy

# 2. The training load, one configuration after another.
echo "2/4 training, ${seconds} s per load" >&2
origin_port=$(free_port)
write_origin "$work" "$origin_port" 1
nginx -p "$work/origin" -c "$work/origin/nginx.conf" -g 'daemon off;' 2>"$work/origin.err" &
pids+=($!)
train() {
  local protocol=$1 cache=$2 address proxy
  write_ours "$work/train.toml" 127.0.0.1:0 "$origin_port" "$protocol" "$cache" ""
  LLVM_PROFILE_FILE="$work/profiles/proxy-%p-%m.profraw" \
    "$instrumented" --config "$work/train.toml" >"$work/train.out" 2>"$work/train.err" &
  proxy=$!
  for _ in $(seq 1 100); do
    grep -q '^listening on http://' "$work/train.out" 2>/dev/null && break
    sleep 0.1
  done
  address=$(sed -n 's/^listening on http:\/\///p' "$work/train.out" | head -n 1)
  if [ -z "$address" ]; then cat "$work/train.err" >&2; exit 1; fi
  if [ "$protocol" = h2 ]; then
    h2load -t1 -c8 -m10 -D"$seconds" "http://$address/index.html" >/dev/null
  else
    wrk -t1 -c16 -d"${seconds}s" "http://$address/index.html" >/dev/null
  fi
  # The counts are written when the process exits; SIGTERM drains and exits.
  kill -TERM "$proxy"
  wait "$proxy" || true
}
train h1 0
train h2 0
train h1 1
ls "$work"/profiles/*.profraw >/dev/null

# 3. The counts merged into one profile.
echo "3/4 merging with $profdata" >&2
"$profdata" merge -o "$work/merged.profdata" "$work"/profiles/*.profraw
# Named by its content: cargo does not watch the file, only the flag that names it.
profile=$cache_dir/pgo/reverse-proxy-$(sha256sum "$work/merged.profdata" | cut -c1-16).profdata
rm -f "$cache_dir"/pgo/reverse-proxy-*.profdata
cp "$work/merged.profdata" "$profile"

# 4. The optimized build.
echo "4/4 optimized build with $profile" >&2
CARGO_TARGET_DIR=$cache_dir/target-pgo-use \
  RUSTFLAGS="-Cprofile-use=$profile" \
  cargo build --release -q -p reverse-proxy
echo "$cache_dir/target-pgo-use/release/reverse-proxy"

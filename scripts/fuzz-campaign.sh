#!/usr/bin/env bash
# A fuzz campaign: every target (or the ones named) until it has spent CPU_SECONDS of CPU time,
# then its corpus is minimized back into fuzz/corpus/<target> so that CI's short runs start
# from what the campaign found. Prints one line per target for docs/security.md.
#
#   bash scripts/fuzz-campaign.sh                          # every target, 600 CPU-seconds each
#   CPU_SECONDS=60 bash scripts/fuzz-campaign.sh ws_core_frame proxy_core_forwarded
#   JOBS=2 NICE=19 bash scripts/fuzz-campaign.sh            # two targets at once, low priority
#
# CPU time, not wall time, is what is counted: a target runs in slices of SLICE seconds until
# its processes' user+system time (from /proc) adds up to CPU_SECONDS, so a busy machine makes
# the campaign longer, not weaker. A crash stops that target; its input stays in
# fuzz/artifacts/<target>/ and the line says so.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/backend-kit/fuzz-target}
cpu_seconds=${CPU_SECONDS:-600}
slice=${SLICE:-120}
jobs=${JOBS:-1}
nice_level=${NICE:-0}
results=${RESULTS:-$root/fuzz/artifacts/campaign-results.txt}
mkdir -p "$(dirname "$results")"

command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
cargo fuzz build --target-dir "$target_dir" >/dev/null
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One slice of target $1 on corpus $2 for $4 wall seconds, output appended to $3. Prints
# "<cpu-seconds> <exit status>": the CPU time the fuzzer used, read from its parent shell's
# cutime/cstime in /proc after it was reaped.
slice_cpu() {
  local target=$1 corpus=$2 log=$3 seconds=$4 cu cs status
  read -r cu cs status < <(nice -n "$nice_level" bash -c '
    log=$0
    "$@" >>"$log" 2>&1
    s=$?
    read -r -a f </proc/$$/stat
    echo "${f[15]} ${f[16]} $s"
  ' "$log" "$bin_dir/$target" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$root/fuzz/artifacts/$target/")
  echo "$(((cu + cs) / $(getconf CLK_TCK))) $status"
}

run_target() {
  local target=$1
  local corpus=$root/fuzz/corpus/$target
  local work log spent=0 execs=0 status=0 cov="" ft="" crash=no
  mkdir -p "$corpus" "$root/fuzz/artifacts/$target"
  work=$(mktemp -d)
  log=$(mktemp)
  cp -r "$corpus/." "$work/"
  local before
  before=$(find "$corpus" -type f | wc -l)
  while [ "$spent" -lt "$cpu_seconds" ]; do
    : >"$log"
    local left=$((cpu_seconds - spent))
    local wall=$((left < slice ? left : slice))
    [ "$wall" -lt 5 ] && wall=5
    read -r used status < <(slice_cpu "$target" "$work" "$log" "$wall")
    spent=$((spent + used))
    local n
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=$((execs + ${n:-0}))
    local last
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    if [ "$status" -ne 0 ]; then
      crash=yes
      cp "$log" "$root/fuzz/artifacts/$target/last-failure.log"
      break
    fi
    # A slice that used no CPU at all would loop forever on a stopped machine.
    [ "$used" -eq 0 ] && [ "$wall" -ge "$slice" ] && sleep 1
  done
  # Minimize: the committed inputs stay; of what the campaign found, only inputs that add
  # coverage beyond them are added.
  nice -n "$nice_level" "$bin_dir/$target" -merge=1 -rss_limit_mb=2048 -timeout=10 \
    "$corpus" "$work" >/dev/null 2>&1 || true
  local after
  after=$(find "$corpus" -type f | wc -l)
  rm -rf "$work" "$log"
  printf '%s cpu_s=%d execs=%d cov=%s ft=%s corpus=%d->%d crash=%s\n' \
    "$target" "$spent" "$execs" "${cov:-?}" "${ft:-?}" "$before" "$after" "$crash" | tee -a "$results"
}

echo "# fuzz campaign $(date -u +%FT%TZ) commit $(git -C "$root" rev-parse --short HEAD)" \
  "cpu_seconds=$cpu_seconds" | tee -a "$results"
running=0
for target in "${targets[@]}"; do
  run_target "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

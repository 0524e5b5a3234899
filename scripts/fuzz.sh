#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for N seconds each (default 60) with cargo-fuzz (libFuzzer),
# at the lowest CPU priority. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Crash inputs land in fuzz/artifacts/<target>/: fix the bug,
# then copy the input to fuzz/regressions/<target>/ so the stable test suite replays it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment:
#   FUZZ_RUNS=N        also stop a target after N executions (libFuzzer -runs), whichever
#                      comes first: `FUZZ_RUNS=10000000 scripts/fuzz.sh 1800` is the release
#                      budget (10 M executions or 30 minutes per target).
#   FUZZ_SANITIZER=S   cargo-fuzz --sanitizer (default address; `none` runs several times
#                      faster, and volley has no unsafe code).
#   FUZZ_JOBS=N        fuzz N targets at once (default 1).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
runs="${FUZZ_RUNS:-}"
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: NO NIGHTLY TOOLCHAIN: the fuzz targets were NOT run" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz): the fuzz targets were NOT run" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# One build for every target, then the binaries run directly.
nice -n 19 cargo +nightly fuzz build -O --sanitizer "$sanitizer"
bin="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
extra=()
if [ -n "$runs" ]; then
    extra+=("-runs=$runs")
fi
fuzz_one() {
    local target="$1"
    mkdir -p "corpus/$target" "artifacts/$target"
    # A scratch corpus: new inputs libFuzzer finds stay out of the committed seeds.
    local work="target/corpus-work/$target"
    mkdir -p "$work"
    local dirs=("$work" "corpus/$target")
    if [ -d "regressions/$target" ]; then
        dirs+=("regressions/$target")
    fi
    local log="target/fuzz-$target.log"
    local start rc
    start=$(date +%s)
    set +e
    nice -n 19 "$bin/$target" "${dirs[@]}" -max_total_time="$seconds" "${extra[@]}" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
    rc=$?
    set -e
    local execs rss
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    echo "== $target: ${execs:-?} executions in $(($(date +%s) - start)) s, peak RSS ${rss:-?} MB, rc $rc"
    if [ "$rc" -ne 0 ]; then
        grep -E "^SUMMARY|panicked at|Test unit written" "$log" || true
        tail -n 30 "$log"
        return 1
    fi
}
failed=()
running=0
declare -A pids=()
for target in "${targets[@]}"; do
    fuzz_one "$target" &
    pids[$!]="$target"
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        if ! wait -n -p done; then failed+=("${pids[$done]}"); fi
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    if ! wait -n -p done; then failed+=("${pids[$done]}"); fi
    running=$((running - 1))
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "scripts/fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "scripts/fuzz.sh: every target ran ${seconds}s${runs:+ or $runs executions} without a crash"

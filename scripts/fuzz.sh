#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for N seconds each (default 60) with cargo-fuzz (libFuzzer),
# at the lowest CPU priority. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Crash inputs land in fuzz/artifacts/<target>/: fix the bug,
# then copy the input to fuzz/regressions/<target>/ so the stable test suite replays it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
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
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    # A scratch corpus: new inputs libFuzzer finds stay out of the committed seeds.
    work="target/corpus-work/$target"
    mkdir -p "$work"
    echo "== $target: ${seconds}s"
    log="target/fuzz-$target.log"
    set +e
    nice -n 19 cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    set -e
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^SUMMARY|panicked at" "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log"
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "scripts/fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "scripts/fuzz.sh: every target ran ${seconds}s without a crash"

#!/usr/bin/env bash
# The one command that runs everything CI runs: installs what the tests need (apt, npm, PyPI
# peers) when missing, then runs the gates and every test suite, printing the time per step.
# Usage: ./scripts/test.sh [--quick]   (--quick skips the peer installs and interop suites)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

declare -a SUMMARY=()
step() {
  local name=$1; shift
  local start=$SECONDS
  echo
  echo "=== STEP: $name"
  if "$@"; then
    local took=$((SECONDS - start))
    SUMMARY+=("ok    ${took}s  $name")
    echo "=== OK: $name (${took}s)"
  else
    local code=$?
    local took=$((SECONDS - start))
    SUMMARY+=("FAIL  ${took}s  $name")
    echo "=== FAILED STEP: $name (exit $code, ${took}s)" >&2
    print_summary
    exit 1
  fi
}
print_summary() {
  echo
  echo "=== Step times"
  printf '  %s\n' "${SUMMARY[@]}"
}

step "cargo fmt --check" cargo fmt --all -- --check
step "nothing reads outside the repository" scripts/checks.sh self-contained
step "cargo clippy (all targets, -D warnings)" cargo clippy --workspace --all-targets -- -D warnings
if [ "$QUICK" = 0 ] && [ -x scripts/install-peers.sh ]; then
  step "install peers (apt, npm ci, pip venv)" scripts/install-peers.sh
fi
step "build test binaries" cargo test --workspace --no-run
# In the dev profile: the point is that they compile and link, and the test build above has
# already built their dependencies that way (a release build of tonic, connectrpc and
# criterion would add minutes).
step "benchmark binaries build (not run)" cargo build -p volley-benches --benches --bins --profile dev
step "unit, property and black-box tests" cargo test --workspace
step "doc tests" cargo test --workspace --doc
# One build for both variants (they are separate binaries): the view-handler server and the
# prost server and client.
step "conformance programs with view handlers and over prost messages" \
  cargo test -p conformance --features views,prost
step "docs build without warnings" scripts/checks.sh docs
step "each example on its own features" scripts/checks.sh examples
step "each runtime feature alone (cargo hack)" scripts/checks.sh features
step "a copy with nothing beside it builds" scripts/checks.sh alone
step "cargo package (published crates)" scripts/checks.sh package
fuzz_smoke() {
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --version 0.13.2
  fi
  # fuzz.sh builds every target once, then runs each (no sanitizer: the crates have no
  # unsafe code, and the build and runs are several times faster; panics, hangs and memory
  # blow-ups are still caught).
  FUZZ_JOBS=2 FUZZ_SANITIZER=none scripts/fuzz.sh 5
}
if [ "$QUICK" = 0 ]; then
  if cargo +nightly --version >/dev/null 2>&1; then
    step "fuzz smoke (5 s per target, libFuzzer)" fuzz_smoke
  else
    echo
    echo "!!!!!!!! NO NIGHTLY TOOLCHAIN: THE FUZZ SMOKE DID NOT RUN (the corpus replay above did) !!!!!!!!"
    SUMMARY+=("SKIP  0s  fuzz smoke: no nightly toolchain")
  fi
fi
if [ "$QUICK" = 0 ] && [ -x scripts/interop.sh ]; then
  step "interop with real peers" scripts/interop.sh
fi
print_summary

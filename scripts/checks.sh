#!/usr/bin/env bash
# Repository checks that scripts/test.sh runs as separate steps:
#
#   scripts/checks.sh self-contained   no tracked non-markdown file points at the shared/
#                                      folder beside the checkout (users' clones have none)
#   scripts/checks.sh alone            builds (cargo check, build scripts run) a copy of the
#                                      repository placed where nothing is beside it
#   scripts/checks.sh features         each feature of volley-rpc alone, and none (cargo hack)
#   scripts/checks.sh docs             cargo doc for the workspace with warnings denied
#   scripts/checks.sh package          cargo package --workspace, and the published crates verified
#   scripts/checks.sh examples         checks (all targets, build scripts run) each example and
#                                      the conformance crate on its own, so features unified
#                                      across the workspace cannot hide one a package forgot
#                                      (their tests run in the workspace test step)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=never

# Packages whose features must hold on their own (the binaries a user runs).
ALONE_PACKAGES=(eliza middleware no-protoc buf-generate quickstart tower-layers unix-socket balancing stream-auth gateway prost-example conformance)
# The crates published to crates.io.
PUBLISHED=(volley-rpc volley-rpc-codegen volley-rpc-build volley-rpc-health volley-rpc-reflection volley-rpc-otel volley-rpc-dynamic)

self_contained() {
  local hits
  # The pattern is split so that this file does not match itself.
  local outside='\.\./'shared
  hits=$(git ls-files -z | grep -zv '\.md$' | xargs -0 grep -l -- "$outside" || true)
  if [ -n "$hits" ]; then
    echo "these tracked files refer to the folder beside the checkout, which a user's clone does not have:" >&2
    echo "$hits" >&2
    return 1
  fi
  echo "no tracked non-markdown file refers to anything beside the checkout"
}

alone() {
  local dir
  dir=$(mktemp -d /tmp/volley-alone.XXXXXX)
  trap 'rm -rf "$dir"' RETURN
  mkdir "$dir/volley"
  # Tracked and untracked-but-not-ignored files: what a commit of the working tree would hold.
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$dir/volley"
  echo "building a copy at $dir/volley; beside it: $(ls "$dir" | tr '\n' ' ')"
  # The checkout's own target directory: third-party crates already checked by the clippy step
  # are reused (the copy's own crates hash differently, from their path), so only the copy's
  # crates and build scripts are built again.
  (cd "$dir/volley" && CARGO_TARGET_DIR="$ROOT/target" cargo check --workspace --all-targets)
}

features() {
  if ! command -v cargo-hack >/dev/null 2>&1; then
    echo "installing cargo-hack from crates.io"
    cargo install cargo-hack --locked --version 0.6.46
  fi
  local log
  log=$(mktemp)
  trap 'rm -f "$log"' RETURN
  {
    cargo hack check -p volley-rpc --each-feature --no-dev-deps
    # The combinations users pick: each side with TLS.
    cargo hack check -p volley-rpc --no-dev-deps --no-default-features --features server,tls
    cargo hack check -p volley-rpc --no-dev-deps --no-default-features --features client,tls
  } 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  # A feature combination that compiles with warnings (dead code behind a cfg) fails too.
  if grep -q '^warning' "$log"; then
    echo "warnings in some feature combination (see above)" >&2
    return 1
  fi
}

docs() {
  RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
}

package() {
  # Cargo verifies each crate against the others' fresh tarballs through a local registry, but
  # it unpacks a tarball into CARGO_HOME only once per name, version and target path: a copy
  # left by an earlier run (older sources, same version) would be compiled instead. Drop ours.
  local home=${CARGO_HOME:-$HOME/.cargo}
  local p
  for p in "${PUBLISHED[@]}"; do
    rm -rf "$home"/registry/src/-*/"$p"-[0-9]* "$home"/registry/cache/-*/"$p"-[0-9]*
  done
  # Every package of the workspace packages cleanly...
  cargo package --workspace --no-verify --allow-dirty
  # ...and each published crate builds from its package alone, as crates.io would build it.
  local args=()
  for p in "${PUBLISHED[@]}"; do args+=(-p "$p"); done
  cargo package "${args[@]}" --allow-dirty
}

examples() {
  for p in "${ALONE_PACKAGES[@]}"; do
    echo "--- cargo check -p $p --all-targets (alone)"
    cargo check -p "$p" --all-targets
  done
}

case "${1:-}" in
  self-contained) self_contained ;;
  alone) alone ;;
  features) features ;;
  docs) docs ;;
  package) package ;;
  examples) examples ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the real `buf generate` with protoc-gen-buffa and protoc-gen-volley.
#   ./buf-generate.sh          regenerate src/gen in place
#   ./buf-generate.sh --check  generate into a temporary copy and fail if it differs from src/gen
# Exit status 2: buf or protoc-gen-buffa is not installed.
# Finds buf in $BUF, on PATH, or in interop/node_modules/.bin; protoc-gen-buffa in
# $PROTOC_GEN_BUFFA, on PATH, or in target/tools/bin (install it with
# `cargo install protoc-gen-buffa --version 0.9.2 --locked --root target/tools`).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)

BUF=${BUF:-$(command -v buf || true)}
[ -n "$BUF" ] || BUF="$ROOT/interop/node_modules/.bin/buf"
[ -x "$BUF" ] || { echo "buf not found (npm i @bufbuild/buf@1.74.0, or set BUF)" >&2; exit 2; }
BUFFA=${PROTOC_GEN_BUFFA:-$(command -v protoc-gen-buffa || true)}
for candidate in "$ROOT/target/tools/bin/protoc-gen-buffa"; do
  [ -n "$BUFFA" ] || { [ -x "$candidate" ] && BUFFA=$candidate; } || true
done
[ -n "$BUFFA" ] && [ -x "$BUFFA" ] || { echo "protoc-gen-buffa not found (see the header of $0)" >&2; exit 2; }

# $PROTOC_GEN_VOLLEY names a prebuilt plugin (tests/buf.rs passes itself).
PLUGIN=${PROTOC_GEN_VOLLEY:-}
if [ -z "$PLUGIN" ]; then
  cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p volley-rpc-codegen --bin protoc-gen-volley
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
  PLUGIN="$TARGET/debug/protoc-gen-volley"
fi

BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
ln -s "$PLUGIN" "$BIN/protoc-gen-volley"
ln -s "$BUFFA" "$BIN/protoc-gen-buffa"
export PATH="$BIN:$PATH"

if [ "${1:-}" = "--check" ]; then
  WORK="$BIN/work"
  mkdir -p "$WORK"
  cp buf.gen.yaml "$WORK/"
  mkdir -p "$WORK/src"
  # Inputs are relative to the template's directory: keep the same shape.
  ln -s "$HERE/../no-protoc" "$BIN/no-protoc"
  (cd "$WORK" && "$BUF" generate --template buf.gen.yaml)
  if ! diff -ru src/gen "$WORK/src/gen"; then
    echo "src/gen is stale: run examples/buf-generate/buf-generate.sh" >&2
    exit 1
  fi
  echo "buf generate output matches src/gen"
else
  "$BUF" generate --template buf.gen.yaml
  echo "regenerated src/gen"
fi

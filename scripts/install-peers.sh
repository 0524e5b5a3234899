#!/usr/bin/env bash
# Installs the independent interop peers and generates their code.
#
#   scripts/install-peers.sh [--force] [--no-apt]
#
# What it does, each step only when needed (so a re-run takes about a second):
#   1. apt: chromium (browser tests), nghttp2-client (h2load), curl: installed only when
#      `dpkg -s` says they are missing; `apt-get update` runs once, and only then.
#   2. npm: `npm ci` in interop/ when node_modules is missing or package-lock.json changed.
#   3. python: venv at interop/.venv, `pip install -r requirements.txt` when it changed.
#   4. codegen into interop/gen/ (gitignored) when a proto or the generator config changed:
#      gen/es (buf generate + protoc-gen-es, target=js+dts) and gen/py (grpc_tools.protoc).
#
# --force redoes steps 2-4; --no-apt skips step 1 (chromium and h2load may then be absent).
# Runs unattended (CI is root with no stdin). Any failure stops it with a non-zero exit.
set -euo pipefail

SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)
INTEROP=$ROOT/interop
GEN=$INTEROP/gen
VENV=$INTEROP/.venv

# Protos to generate peer code for. Each entry is `<include root>[:<path under it>]`,
# relative to the repository root; the path may be a file or a directory (default: the
# whole root). Entries whose root does not exist yet are skipped with a note.
PROTOS=(
  "proto:volley/interop/v1"
  "examples/eliza/proto"
)

APT_PACKAGES=(chromium nghttp2-client curl ca-certificates)

FORCE=0
NO_APT=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --no-apt) NO_APT=1 ;;
    -h|--help) sed -n '2,15p' "$SCRIPT"; exit 0 ;;
    *) echo "install-peers: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "[install-peers] $*"; }
fail() { echo "[install-peers] ERROR: $*" >&2; exit 1; }
trap 'echo "[install-peers] ERROR: command failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

START=$(date +%s)

# Hash of files' contents (and names), for stamps.
hash_files() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ $FORCE == 0 && -f "$1" && "$(cat "$1")" == "$2" ]]; }

for tool in node npm python3 sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool not found on PATH"
done

# --- 1. Debian packages -------------------------------------------------------------
if [[ $NO_APT == 1 ]]; then
  log "apt: skipped (--no-apt)"
else
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if (( ${#missing[@]} )); then
    SUDO=()
    if [[ $(id -u) != 0 ]]; then
      command -v sudo >/dev/null || fail "need root (or sudo) to install: ${missing[*]}"
      SUDO=(sudo -n)
    fi
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq </dev/null || fail "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null \
      || fail "apt-get install ${missing[*]} failed"
  else
    log "apt: ${APT_PACKAGES[*]} already installed"
  fi
fi

# --- 2. npm -------------------------------------------------------------------------
cd "$INTEROP"
npm_stamp=$INTEROP/node_modules/.volley-install-stamp
npm_hash=$(hash_files package.json package-lock.json)
if stamp_ok "$npm_stamp" "$npm_hash"; then
  log "npm: node_modules up to date"
else
  log "npm: npm ci in interop/"
  npm ci --no-audit --no-fund --loglevel=error </dev/null || fail "npm ci failed"
  [[ -x node_modules/.bin/buf && -x node_modules/.bin/protoc-gen-es ]] \
    || fail "npm ci did not install buf / protoc-gen-es"
  node_modules/.bin/buf --version >/dev/null || fail "buf does not run (postinstall skipped?)"
  node_modules/.bin/esbuild --version >/dev/null || fail "esbuild does not run"
  echo "$npm_hash" > "$npm_stamp"
fi

# --- 3. python venv -----------------------------------------------------------------
py_stamp=$VENV/.volley-install-stamp
py_hash=$(hash_files requirements.txt)-$(python3 -c 'import sys; print(sys.version.split()[0])')
if stamp_ok "$py_stamp" "$py_hash" && [[ -x $VENV/bin/python ]]; then
  log "python: .venv up to date"
else
  if [[ ! -x $VENV/bin/python ]]; then
    log "python: creating interop/.venv"
    python3 -m venv "$VENV" || fail "python3 -m venv failed (is python3-venv installed?)"
  fi
  log "python: pip install -r requirements.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt </dev/null \
    || fail "pip install failed"
  "$VENV/bin/python" -c 'import grpc, grpc_tools, grpc_status, grpc_health, grpc_reflection' \
    || fail "python peers do not import"
  echo "$py_hash" > "$py_stamp"
fi

# --- 4. code generation -------------------------------------------------------------
inputs=()
roots=()
paths=()
for entry in "${PROTOS[@]}"; do
  root=${entry%%:*}
  sub=""
  [[ $entry == *:* ]] && sub=${entry#*:}
  if [[ ! -d $ROOT/$root || ( -n $sub && ! -e $ROOT/$root/$sub ) ]]; then
    log "codegen: skipping $entry (not present)"
    continue
  fi
  files=$(cd "$ROOT/$root" && find "${sub:-.}" -name '*.proto' | sed 's|^\./||' | sort)
  if [[ -z $files ]]; then
    log "codegen: skipping $entry (no .proto files)"
    continue
  fi
  while IFS= read -r f; do
    roots+=("$root"); paths+=("$f"); inputs+=("$ROOT/$root/$f")
  done <<< "$files"
done
(( ${#inputs[@]} )) || fail "codegen: no protos found"

gen_stamp=$GEN/.volley-gen-stamp
gen_hash=$(hash_files "${inputs[@]}" buf.gen.yaml requirements.txt package-lock.json \
  "$SCRIPT")
if stamp_ok "$gen_stamp" "$gen_hash"; then
  log "codegen: interop/gen up to date"
else
  rm -rf "$GEN"
  mkdir -p "$GEN/es" "$GEN/py"
  # One buf / protoc run per include root (roots are separate modules).
  mapfile -t uniq_roots < <(printf '%s\n' "${roots[@]}" | awk '!seen[$0]++')
  for root in "${uniq_roots[@]}"; do
    rel=()
    for i in "${!roots[@]}"; do
      [[ ${roots[$i]} == "$root" ]] && rel+=("${paths[$i]}")
    done
    log "codegen: $root -> gen/es (buf generate): ${rel[*]}"
    buf_paths=()
    for p in "${rel[@]}"; do buf_paths+=(--path "$ROOT/$root/$p"); done
    node_modules/.bin/buf generate "$ROOT/$root" --template buf.gen.yaml "${buf_paths[@]}" \
      || fail "buf generate failed for $root"
    log "codegen: $root -> gen/py (grpc_tools.protoc)"
    "$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/$root" \
      --python_out="$GEN/py" --pyi_out="$GEN/py" --grpc_python_out="$GEN/py" "${rel[@]}" \
      || fail "grpc_tools.protoc failed for $root"
  done
  echo "$gen_hash" > "$gen_stamp"
fi

# --- 5. buffa's protoc plugin, for the `buf generate` check of protoc-gen-volley ------
# (crates.io only; the check in examples/buf-generate looks in target/tools/bin)
if [[ -x "$ROOT/target/tools/bin/protoc-gen-buffa" ]]; then
  log "protoc-gen-buffa: present"
else
  log "protoc-gen-buffa: cargo install protoc-gen-buffa 0.9.2 into target/tools"
  cargo install protoc-gen-buffa --version 0.9.2 --locked --root "$ROOT/target/tools" --quiet \
    || fail "cargo install protoc-gen-buffa failed"
fi

log "done in $(( $(date +%s) - START ))s"

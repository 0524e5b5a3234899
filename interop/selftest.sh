#!/usr/bin/env bash
# Checks the peers against each other (no Volley involved): every client in this folder
# against every server it can talk to. Run scripts/install-peers.sh first.
#
#   interop/selftest.sh [--quick] [--screenshot PATH]
#
# --quick runs one codec/compression per protocol instead of the whole matrix.
# Prints each client's PASS/FAIL/SKIP lines and ends with `N passed, N failed` summed
# over all runs (cases, not runs). Exits 1 if anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
QUICK=0
SHOT=""
while (( $# )); do
  case "$1" in
    --quick) QUICK=1 ;;
    --screenshot) SHOT=$2; shift ;;
    *) echo "selftest: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -d gen/es && -d gen/py && -x .venv/bin/python ]] || { echo "selftest: run scripts/install-peers.sh first" >&2; exit 2; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME CMD...: starts a server in the background, waits for `LISTENING <port>`,
# sets PORT.
start() {
  local name=$1; shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    PORT=$(awk '/^LISTENING /{print $2; exit}' "$TMP/$name.out")
    [[ -n $PORT ]] && { echo "# started $name on port $PORT"; return 0; }
    sleep 0.1
  done
  echo "selftest: $name did not start:" >&2; cat "$TMP/$name.err" >&2; exit 1
}

TOTAL_PASS=0
TOTAL_FAIL=0
# run LABEL CMD...: runs a client, echoes its output, adds its counts.
run() {
  local label=$1; shift
  echo "## $label"
  local out
  out=$("$@" 2>&1)
  local rc=$?
  echo "$out" | grep -v '^PASS '
  local line
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  if [[ -z $line ]]; then
    echo "FAIL $label: no summary line (exit $rc)"
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
    return
  fi
  local p f
  p=$(echo "$line" | awk '{print $1}')
  f=$(echo "$line" | awk '{print $3}')
  TOTAL_PASS=$((TOTAL_PASS + p))
  TOTAL_FAIL=$((TOTAL_FAIL + f))
  if (( rc != 0 && f == 0 )); then
    echo "FAIL $label: exit $rc"
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
  fi
}

PY=.venv/bin/python
start node-h2c node node/server.mjs --h2c --port 0; NODE_H2C=$PORT
start node-h1 node node/server.mjs --http1 --port 0; NODE_H1=$PORT
start py "$PY" python/server.py --port 0; PY_PORT=$PORT
start py-gzip "$PY" python/server.py --port 0 --compression gzip; PY_GZIP=$PORT

if (( QUICK )); then
  CODECS=(proto); COMPRESSIONS=(gzip)
else
  CODECS=(proto json); COMPRESSIONS=(identity gzip br)
fi

# connect-node client -> connect-node server, h2c: everything.
for proto in connect grpc grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${COMPRESSIONS[@]}"; do
      run "node client -> node server h2c: $proto $codec $comp" \
        node node/client.mjs --url "http://127.0.0.1:$NODE_H2C" --http 2 \
          --protocol "$proto" --codec "$codec" --compression "$comp"
    done
  done
done
# HTTP/1.1: connect-node's server refuses bidi over HTTP/1.1 (505), so skip half-duplex
# bidi there; connect-node's gRPC client cannot do HTTP/1.1 at all.
for proto in connect grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${COMPRESSIONS[@]}"; do
      run "node client -> node server http/1.1: $proto $codec $comp" \
        node node/client.mjs --url "http://127.0.0.1:$NODE_H1" --http 1.1 \
          --protocol "$proto" --codec "$codec" --compression "$comp" --skip bidi_half_duplex
    done
  done
done
# grpcio peers.
for comp in identity gzip deflate; do
  run "python client -> python server: $comp" "$PY" python/client.py --url "http://127.0.0.1:$PY_PORT" --compression "$comp"
done
for comp in identity gzip; do
  run "python client -> node server h2c: $comp" "$PY" python/client.py --url "http://127.0.0.1:$NODE_H2C" --compression "$comp"
done
# grpcio's server compresses responses only when told to (--compression gzip), and
# then even to clients that did not offer gzip; it does not know br.
run "node client -> python server: grpc proto identity" \
  node node/client.mjs --url "http://127.0.0.1:$PY_PORT" --protocol grpc
run "node client -> python server (gzip responses): grpc proto gzip" \
  node node/client.mjs --url "http://127.0.0.1:$PY_GZIP" --protocol grpc --compression gzip
# connect-web in Chromium against the node server (HTTP/1.1: browsers do not speak h2c).
if [[ -x /usr/bin/chromium ]]; then
  run "browser -> node server http/1.1" node browser/run.mjs --api "http://127.0.0.1:$NODE_H1" \
    ${SHOT:+--screenshot "$SHOT"}
else
  echo "SKIP browser: /usr/bin/chromium not installed"
fi

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
(( TOTAL_FAIL == 0 ))

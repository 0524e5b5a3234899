#!/usr/bin/env bash
# Interop: Volley against independent implementations (see interop/README.md).
#
#   scripts/interop.sh [--quick]
#
#   a. Volley's server (interop-server) against foreign clients: connect-node (every
#      protocol x codec x HTTP version x compression it can do), grpcio (identity, gzip,
#      deflate), `buf curl` (connect-go: Connect, gRPC, gRPC-Web on h1 and h2c, an error
#      case), plain `curl` (Connect unary JSON POST, Connect GET, error, CORS preflight,
#      404/415) and connect-web in Chromium (real CORS).
#   b. Volley's client (interop-client) against foreign servers: connect-node (h2c and
#      HTTP/1.1 instances) and grpcio, for every combination each one supports.
#   c. HTTP/3 with aioquic: its client against Volley's server, Volley's client against its
#      minimal Connect server (fails if aioquic is missing from interop/.venv).
#
# Assumes scripts/install-peers.sh ran (test.sh runs it first); runs it if interop/node_modules
# is missing. Builds the binaries with `cargo build -p volley-tests --bins` (into target/, or
# $CARGO_TARGET_DIR when set). --quick runs one codec and compression per protocol.
# Logs and the browser screenshot go to artifacts/ ($INTEROP_ARTIFACTS overrides).
# Every peer run is bounded by `timeout`; everything started here is stopped on exit.
# Ends with a summary table and `N passed, N failed` (cases summed over all runs); exits 1
# if anything failed, naming the failed steps.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "interop: unknown argument $arg" >&2; exit 2 ;;
  esac
done

ARTIFACTS=${INTEROP_ARTIFACTS:-$ROOT/artifacts}
LOGS=$ARTIFACTS/interop-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
STARTED_AT=$SECONDS
NODE=node
PY=$ROOT/interop/.venv/bin/python
BUF=$ROOT/interop/node_modules/.bin/buf
SCHEMA=$ROOT/proto
SERVICE=volley.interop.v1.InteropService

log() { echo "[interop] $*"; }

# --- bookkeeping ----------------------------------------------------------------------
# Per group (one row of the summary): runs, passed, failed, skipped. FAILED_STEPS names
# every step that failed.
declare -A G_RUNS G_PASS G_FAIL G_SKIP CASE_FAILS
GROUPS_ORDER=()
CASE_ORDER=()
FAILED_STEPS=()
TOTAL_PASS=0
TOTAL_FAIL=0

account() { # GROUP PASSED FAILED SKIPPED
  local g=$1
  if [[ -z ${G_RUNS[$g]+x} ]]; then
    GROUPS_ORDER+=("$g")
    G_RUNS[$g]=0 G_PASS[$g]=0 G_FAIL[$g]=0 G_SKIP[$g]=0
  fi
  G_RUNS[$g]=$((G_RUNS[$g] + 1))
  G_PASS[$g]=$((G_PASS[$g] + $2))
  G_FAIL[$g]=$((G_FAIL[$g] + $3))
  G_SKIP[$g]=$((G_SKIP[$g] + $4))
  TOTAL_PASS=$((TOTAL_PASS + $2))
  TOTAL_FAIL=$((TOTAL_FAIL + $3))
}

case_failed() { # "GROUP: CASE"
  if [[ -z ${CASE_FAILS[$1]+x} ]]; then
    CASE_ORDER+=("$1")
    CASE_FAILS[$1]=0
  fi
  CASE_FAILS[$1]=$((CASE_FAILS[$1] + 1))
}

STEP_NO=0
# run GROUP LABEL SECONDS CMD...: runs a peer program that prints PASS/FAIL/SKIP lines and
# `N passed, N failed[, N skipped]`; shows its FAIL lines; a missing summary line or a
# non-zero exit without failed cases counts as one failure.
run() {
  local group=$1 label=$2 limit=$3; shift 3
  STEP_NO=$((STEP_NO + 1))
  local logf
  logf=$LOGS/$(printf '%03d' "$STEP_NO")-$(echo "$group $label" | tr -c 'A-Za-z0-9.\n' '_').log
  local t0=$SECONDS
  echo "\$ $*" >"$logf"
  timeout --kill-after=5 "$limit" "$@" >>"$logf" 2>&1 </dev/null
  local rc=$?
  local took=$((SECONDS - t0))
  local line p=0 f=0 s=0
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logf" | tail -1)
  if [[ -n $line ]]; then
    p=$(awk '{print $1}' <<<"$line")
    f=$(awk '{print $3}' <<<"$line" | tr -d ,)
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | awk '{print $1}')
    s=${s:-0}
  fi
  local why=""
  if [[ -z $line ]]; then
    why="no summary line (exit $rc$([[ $rc == 124 || $rc == 137 ]] && echo ", timed out after ${limit}s"))"
    f=$((f + 1))
  elif (( rc != 0 && f == 0 )); then
    why="exit $rc with no failed case"
    f=1
  fi
  account "$group" "$p" "$f" "$s"
  if (( f > 0 )); then
    local cases
    cases=$(grep -E '^FAIL ' "$logf" | awk '{print $2}' | tr -d : | paste -sd, -)
    FAILED_STEPS+=("$group: $label${cases:+ [$cases]}${why:+ ($why)}")
    local c
    for c in ${cases//,/ }; do case_failed "$group: $c"; done
    [[ -n $why ]] && case_failed "$group: $label ($why)"
    echo "FAIL  $group: $label  ($p passed, $f failed, $s skipped, ${took}s; log $logf)"
    grep -E '^FAIL ' "$logf" | sed 's/^/        /'
    [[ -n $why ]] && { echo "        $why"; tail -5 "$logf" | sed 's/^/        | /'; }
  else
    echo "ok    $group: $label  ($p passed, $s skipped, ${took}s)"
  fi
}

# check_result GROUP LABEL: records one single-case check run inline (buf curl, curl). Call after
# setting CHECK_ERR to the failure reason, or to "" on success.
check_result() {
  local group=$1 label=$2
  STEP_NO=$((STEP_NO + 1))
  if [[ -z $CHECK_ERR ]]; then
    account "$group" 1 0 0
    echo "ok    $group: $label"
  else
    account "$group" 0 1 0
    FAILED_STEPS+=("$group: $label ($CHECK_ERR)")
    case_failed "$group: $label"
    echo "FAIL  $group: $label: $CHECK_ERR"
  fi
}

# json_check FILE JS-EXPRESSION: true if the JSON in FILE satisfies the expression over `j`.
json_check() {
  "$NODE" -e '
    const fs = require("fs");
    let j;
    try { j = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch (e) { process.exit(1); }
    process.exit(eval(process.argv[2]) ? 0 : 1);
  ' "$1" "$2"
}

# --- processes ------------------------------------------------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for _ in $(seq 30); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: starts a server in the background, waits (10 s at most) for
# `LISTENING <port>` and sets PORT. A server that does not come up fails the whole run.
start() {
  local name=$1; shift
  local out=$LOGS/server-$name.out
  "$@" >"$out" 2>"$LOGS/server-$name.err" </dev/null &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    PORT=$(awk '/^LISTENING /{print $2; exit}' "$out")
    if [[ -n $PORT ]]; then
      log "started $name (pid $pid) on port $PORT"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "[interop] ERROR: $name did not start:" >&2
  cat "$LOGS/server-$name.err" >&2
  FAILED_STEPS+=("start $name")
  summary
  exit 1
}

summary() {
  echo
  echo "=== interop summary ($((SECONDS - STARTED_AT))s; logs in $LOGS)"
  printf '%-44s %5s %7s %7s %8s\n' "peer" "runs" "passed" "failed" "skipped"
  local g
  for g in "${GROUPS_ORDER[@]}"; do
    printf '%-44s %5d %7d %7d %8d\n' "$g" "${G_RUNS[$g]}" "${G_PASS[$g]}" "${G_FAIL[$g]}" "${G_SKIP[$g]}"
  done
  if (( ${#FAILED_STEPS[@]} )); then
    echo
    echo "Failed steps:"
    printf '  - %s\n' "${FAILED_STEPS[@]}"
    echo
    echo "Failing cases (number of runs they failed in):"
    local c
    for c in "${CASE_ORDER[@]}"; do printf '  - %s  x%d\n' "$c" "${CASE_FAILS[$c]}"; done
  fi
  echo
  echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
}

# --- prerequisites --------------------------------------------------------------------
if [[ ! -d interop/node_modules || ! -x $PY || ! -d interop/gen/es ]]; then
  log "peers not installed: running scripts/install-peers.sh"
  scripts/install-peers.sh || { echo "[interop] ERROR: install-peers.sh failed" >&2; exit 1; }
fi
log "building interop-server and interop-client"
if ! cargo build -p volley-tests --bins 2>"$LOGS/cargo-build.err"; then
  tail -30 "$LOGS/cargo-build.err" >&2
  echo "[interop] ERROR: cargo build -p volley-tests --bins failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
SERVER_BIN=$BIN/interop-server
CLIENT_BIN=$BIN/interop-client

if (( QUICK )); then
  CODECS=(proto); NODE_COMPRESSIONS=(gzip); PY_COMPRESSIONS=(gzip)
else
  CODECS=(proto json); NODE_COMPRESSIONS=(identity gzip br); PY_COMPRESSIONS=(identity gzip deflate)
fi

# === a. foreign clients -> Volley's server =============================================
start volley "$SERVER_BIN" --port 0
V=$PORT
VURL=http://127.0.0.1:$V

G="node client -> volley server"
for proto in connect grpc grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${NODE_COMPRESSIONS[@]}"; do
      run "$G" "$proto $codec http/2 $comp" 120 \
        "$NODE" interop/node/client.mjs --url "$VURL" --http 2 \
          --protocol "$proto" --codec "$codec" --compression "$comp"
    done
  done
done
# connect-node's gRPC client is HTTP/2 only. Volley serves bidi over HTTP/1.1 half-duplex,
# so bidi_half_duplex runs here (the node server answers it with 505 instead).
for proto in connect grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${NODE_COMPRESSIONS[@]}"; do
      run "$G" "$proto $codec http/1.1 $comp" 120 \
        "$NODE" interop/node/client.mjs --url "$VURL" --http 1.1 \
          --protocol "$proto" --codec "$codec" --compression "$comp"
    done
  done
done

G="grpcio client -> volley server"
for comp in "${PY_COMPRESSIONS[@]}"; do
  run "$G" "grpc proto h2c $comp" 120 "$PY" interop/python/client.py --url "$VURL" --compression "$comp"
done

# buf curl (connect-go inside): Connect, gRPC and gRPC-Web on HTTP/1.1 and h2c.
G="buf curl -> volley server"
# buf_curl LABEL WANT_RC MODE CHECK ARGS...: MODE `json`: CHECK is a JS expression over the
# output `j`; `grep`: CHECK is extended regexes joined by ` @@ `, each must match; `count`:
# CHECK is `N:REGEX`, exactly N output lines must match.
buf_curl() {
  local label=$1 want_rc=$2 mode=$3 chk=$4; shift 4
  local out=$LOGS/buf-$STEP_NO.out
  timeout --kill-after=5 60 "$BUF" curl --schema "$SCHEMA" "$@" >"$out" 2>&1 </dev/null
  local rc=$?
  CHECK_ERR=""
  if [[ $rc != "$want_rc" ]]; then
    CHECK_ERR="exit $rc, want $want_rc: $(tr '\n' ' ' <"$out" | cut -c1-300)"
  elif [[ $mode == json ]] && ! json_check "$out" "$chk"; then
    CHECK_ERR="output fails $chk: $(tr '\n' ' ' <"$out" | cut -c1-300)"
  elif [[ $mode == count ]]; then
    local n=${chk%%:*} re=${chk#*:} got
    got=$(grep -cE "$re" "$out")
    [[ $got == "$n" ]] || CHECK_ERR="$got lines match /$re/, want $n: $(tr '\n' ' ' <"$out" | cut -c1-300)"
  elif [[ $mode == grep ]]; then
    local re rest=$chk
    while [[ -n $rest ]]; do
      re=${rest%% @@ *}
      [[ $rest == *" @@ "* ]] && rest=${rest#* @@ } || rest=""
      grep -qE "$re" "$out" || { CHECK_ERR="output lacks /$re/: $(tr '\n' ' ' <"$out" | cut -c1-300)"; break; }
    done
  fi
  check_result "$G" "$label"
}
for mode in "connect h1:--protocol connect" "connect h2c:--protocol connect --http2-prior-knowledge" \
            "grpc h2c:--protocol grpc --http2-prior-knowledge" \
            "grpcweb h1:--protocol grpcweb" "grpcweb h2c:--protocol grpcweb --http2-prior-knowledge"; do
  name=${mode%%:*}
  read -r -a flags <<<"${mode#*:}"
  buf_curl "$name unary Echo" 0 json 'j.text === "buf" && j.received === 1 && j.headers["x-test-echo"] === "e1"' \
    "${flags[@]}" -H "x-test-echo: e1" -d '{"text":"buf"}' "$VURL/$SERVICE/Echo"
  buf_curl "$name server stream (3 messages)" 0 count '3:"text": "st"' \
    "${flags[@]}" -d '{"text":"st","count":3}' "$VURL/$SERVICE/ServerStream"
  buf_curl "$name client stream" 0 json 'j.text === "a b" && j.received === 2' \
    "${flags[@]}" -d '{"text":"a"} {"text":"b"}' "$VURL/$SERVICE/ClientStream"
  # An RPC error: buf curl exits with (code x 8); failed_precondition (9) -> 72.
  buf_curl "$name error with ErrorInfo detail (exit 72)" 72 grep \
    '"code": "failed_precondition" @@ "message": "pre" @@ "type": "volley.interop.v1.ErrorInfo"' \
    "${flags[@]}" \
    -d '{"error":{"code":9,"message":"pre","details":[{"@type":"type.googleapis.com/volley.interop.v1.ErrorInfo","reason":"R1","domain":"d1"}]}}' \
    "$VURL/$SERVICE/Echo"
done
# The detail's bytes survive: ErrorInfo{reason "R1", domain "d1"} is CgJSMRICZDE in base64.
buf_curl "grpc h2c error detail bytes" 72 grep '"value": "CgJSMRICZDE=?"' \
  --protocol grpc --http2-prior-knowledge \
  -d '{"error":{"code":9,"message":"pre","details":[{"@type":"type.googleapis.com/volley.interop.v1.ErrorInfo","reason":"R1","domain":"d1"}]}}' \
  "$VURL/$SERVICE/Echo"
buf_curl "connect h1 invalid_argument (exit 24)" 24 grep '"code": "invalid_argument"' \
  --protocol connect -d '{"error":{"code":3,"message":"bad input"}}' "$VURL/$SERVICE/Echo"

# Plain curl: the Connect protocol by hand.
G="curl -> volley server"
# http_check LABEL WANT_STATUS JS-CHECK CURL-ARGS...: the JS check sees `raw` (the body as
# text), `j` (the body parsed, when the response is JSON) and `h` (response headers,
# lowercase names).
http_check() {
  local label=$1 want=$2 chk=$3; shift 3
  local body=$LOGS/curl-$STEP_NO.body head=$LOGS/curl-$STEP_NO.head
  local status
  status=$(timeout --kill-after=5 30 curl -sS -o "$body" -D "$head" -w '%{http_code}' "$@" 2>"$LOGS/curl-$STEP_NO.err" </dev/null)
  CHECK_ERR=""
  if [[ $status != "$want" ]]; then
    CHECK_ERR="HTTP status $status, want $want: $(head -c 300 "$body") $(head -c 200 "$LOGS/curl-$STEP_NO.err")"
  elif ! "$NODE" -e '
      const fs = require("fs");
      const raw = fs.readFileSync(process.argv[1], "utf8");
      const h = {};
      for (const line of fs.readFileSync(process.argv[2], "utf8").split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i > 0 && !line.startsWith("HTTP/")) h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      let j;
      if (raw.length && /json/.test(h["content-type"] || "")) {
        try { j = JSON.parse(raw); } catch { process.exit(1); }
      }
      process.exit(eval(process.argv[3]) ? 0 : 1);
    ' "$body" "$head" "$chk"; then
    CHECK_ERR="response fails $chk: headers [$(grep -iE '^(content-type|access-control|x-test|trailer|connect)' "$head" | tr -d '\r' | paste -sd' ' -)] body $(head -c 300 "$body")"
  fi
  check_result "$G" "$label"
}
for v in --http1.1 --http2-prior-knowledge; do
  http_check "Connect unary JSON POST ($v)" 200 \
    'h["content-type"] === "application/json" && j.text === "curl" && j.headers["x-test-echo"] === "c1" && h["x-test-echo-header"] === "c1" && h["trailer-x-test-echo-trailer"] === "c1"' \
    "$v" -X POST -H 'content-type: application/json' -H 'connect-protocol-version: 1' \
    -H 'x-test-echo: c1' --data '{"text":"curl"}' "$VURL/$SERVICE/Echo"
done
http_check "Connect GET (encoding=json)" 200 \
  'h["content-type"] === "application/json" && j.text === "via get" && j.received === 1' \
  -G --data-urlencode 'connect=v1' --data-urlencode 'encoding=json' \
  --data-urlencode 'message={"text":"via get"}' "$VURL/$SERVICE/Echo"
# {"text":"b64"} as binary protobuf, base64url: 0a 03 62 36 34 -> CgNiNjQ
http_check "Connect GET (encoding=proto, base64)" 200 \
  'h["content-type"] === "application/proto" && raw.includes("b64")' \
  -G --data-urlencode 'connect=v1' --data-urlencode 'encoding=proto' --data-urlencode 'base64=1' \
  --data-urlencode 'message=CgNiNjQ' "$VURL/$SERVICE/Echo"
http_check "Connect unary error: not_found -> HTTP 404 + JSON error" 404 \
  'h["content-type"] === "application/json" && j.code === "not_found" && j.message === "nope"' \
  -X POST -H 'content-type: application/json' --data '{"error":{"code":5,"message":"nope"}}' \
  "$VURL/$SERVICE/Echo"
http_check "unknown procedure -> 404" 404 'true' \
  -X POST -H 'content-type: application/json' --data '{}' "$VURL/$SERVICE/Nope"
http_check "unsupported content type -> 415" 415 'true' \
  -X POST -H 'content-type: text/plain' --data 'hi' "$VURL/$SERVICE/Echo"
http_check "CORS preflight" 204 \
  'h["access-control-allow-origin"] === "http://example.test" && /x-test-echo/i.test(h["access-control-allow-headers"] || "") && /POST/.test(h["access-control-allow-methods"] || "")' \
  -X OPTIONS -H 'origin: http://example.test' -H 'access-control-request-method: POST' \
  -H 'access-control-request-headers: content-type,x-test-echo' "$VURL/$SERVICE/Echo"
http_check "CORS on a call exposes the echo headers" 200 \
  'h["access-control-allow-origin"] === "http://example.test" && /x-test-echo-header/.test(h["access-control-expose-headers"] || "")' \
  -X POST -H 'origin: http://example.test' -H 'content-type: application/json' \
  --data '{"text":"cors"}' "$VURL/$SERVICE/Echo"

# connect-web in Chromium, from a page on another origin (real CORS preflights).
G="browser (connect-web) -> volley server"
if [[ -x /usr/bin/chromium ]]; then
  run "$G" "connect + grpc-web, proto + json" 180 \
    "$NODE" interop/browser/run.mjs --api "$VURL" --screenshot "$ARTIFACTS/browser.png"
else
  echo "SKIP  $G: /usr/bin/chromium is not installed"
  account "$G" 0 0 1
fi

# TLS: a second Volley server with a self-signed certificate; connect-node trusts it through
# NODE_EXTRA_CA_CERTS and negotiates HTTP/2 by ALPN.
start volley-tls "$SERVER_BIN" --port 0 --tls "$LOGS/volley-tls-cert.pem"
VTLS=https://localhost:$PORT
G="node client -> volley server (TLS)"
for proto in connect grpc grpcweb; do
  run "$G" "$proto proto h2 (ALPN) gzip" 120 \
    env NODE_EXTRA_CA_CERTS="$LOGS/volley-tls-cert.pem" \
    "$NODE" interop/node/client.mjs --url "$VTLS" --http 2 --protocol "$proto" --codec proto --compression gzip
done

# === c. the Eliza demo: reflection and health, with no schema on the caller's side ========
log "building eliza"
if cargo build -p eliza --bins 2>"$LOGS/cargo-build-eliza.err"; then
  ELIZA_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN/eliza" --addr "127.0.0.1:$ELIZA_PORT" >"$LOGS/eliza.out" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q "Eliza is listening" "$LOGS/eliza.out" 2>/dev/null && break
    sleep 0.1
  done
  EURL=http://127.0.0.1:$ELIZA_PORT
  G="buf curl -> eliza (reflection, health)"
  # reflect_curl LABEL CHECK-REGEXES ARGS...: buf curl with no --schema; each regex (joined by
  # ` @@ `) must match the output.
  reflect_curl() {
    local label=$1 chk=$2; shift 2
    local out=$LOGS/reflect-$STEP_NO.out re rest=$chk
    timeout --kill-after=5 60 "$BUF" curl "$@" >"$out" 2>&1 </dev/null
    local rc=$?
    CHECK_ERR=""
    [[ $rc == 0 ]] || CHECK_ERR="exit $rc: $(tr '\n' ' ' <"$out" | cut -c1-300)"
    while [[ -z $CHECK_ERR && -n $rest ]]; do
      re=${rest%% @@ *}
      [[ $rest == *" @@ "* ]] && rest=${rest#* @@ } || rest=""
      grep -qE "$re" "$out" || CHECK_ERR="output lacks /$re/: $(tr '\n' ' ' <"$out" | cut -c1-300)"
    done
    check_result "$G" "$label"
  }
  for refl in grpc-v1 grpc-v1alpha; do
    reflect_curl "list services ($refl)" \
      '^connectrpc.eliza.v1.ElizaService$ @@ ^grpc.health.v1.Health$ @@ ^grpc.reflection.v1.ServerReflection$' \
      --protocol grpc --http2-prior-knowledge --reflect-protocol "$refl" --list-services "$EURL"
  done
  reflect_curl "Say, schema from reflection (grpc)" '"sentence": ".+"' \
    --protocol grpc --http2-prior-knowledge -d '{"sentence":"I feel happy"}' "$EURL/connectrpc.eliza.v1.ElizaService/Say"
  reflect_curl "Say, schema from reflection (connect)" '"sentence": ".+"' \
    --protocol connect -d '{"sentence":"I feel happy"}' "$EURL/connectrpc.eliza.v1.ElizaService/Say"
  reflect_curl "Introduce stream, schema from reflection" '"sentence": ".+"' \
    --protocol grpcweb -d '{"name":"Ada"}' "$EURL/connectrpc.eliza.v1.ElizaService/Introduce"
  reflect_curl "health Check (server)" '"status": "SERVING"' \
    --protocol grpc --http2-prior-knowledge -d '{}' "$EURL/grpc.health.v1.Health/Check"
  reflect_curl "health Check (ElizaService)" '"status": "SERVING"' \
    --protocol grpc --http2-prior-knowledge -d '{"service":"connectrpc.eliza.v1.ElizaService"}' \
    "$EURL/grpc.health.v1.Health/Check"
  G="grpcio health client -> eliza"
  run "$G" "Check known and unknown services, Watch" 60 \
    "$PY" interop/python/health_check.py "$ELIZA_PORT" connectrpc.eliza.v1.ElizaService
else
  tail -30 "$LOGS/cargo-build-eliza.err" >&2
  CHECK_ERR="cargo build -p eliza failed"; G="eliza"; check_result "$G" "build"
fi

# === b. Volley's client -> foreign servers =============================================
start node-h2c "$NODE" interop/node/server.mjs --h2c --port 0
NODE_H2C=$PORT
start node-h1 "$NODE" interop/node/server.mjs --http1 --port 0
NODE_H1=$PORT
start grpcio "$PY" interop/python/server.py --port 0
PY_PORT=$PORT

G="volley client -> node server (h2c)"
for proto in connect grpc grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${NODE_COMPRESSIONS[@]}"; do
      run "$G" "$proto $codec http/2 $comp" 120 \
        "$CLIENT_BIN" --url "http://127.0.0.1:$NODE_H2C" --http 2 \
          --protocol "$proto" --codec "$codec" --compression "$comp"
    done
  done
done
# connect-node's HTTP/1.1 server takes gRPC too (trailers in chunked encoding) but answers
# bidi with HTTP 505, so half-duplex bidi is skipped there.
G="volley client -> node server (http/1.1)"
for proto in connect grpc grpcweb; do
  for codec in "${CODECS[@]}"; do
    for comp in "${NODE_COMPRESSIONS[@]}"; do
      run "$G" "$proto $codec http/1.1 $comp" 120 \
        "$CLIENT_BIN" --url "http://127.0.0.1:$NODE_H1" --http 1.1 \
          --protocol "$proto" --codec "$codec" --compression "$comp" --skip bidi_half_duplex
    done
  done
done
# grpcio: gRPC, binary protobuf, h2c; it never mirrors the request's compression.
G="volley client -> grpcio server"
for comp in "${PY_COMPRESSIONS[@]}"; do
  run "$G" "grpc proto http/2 $comp" 120 \
    "$CLIENT_BIN" --url "http://127.0.0.1:$PY_PORT" --http 2 --protocol grpc --codec proto \
      --compression "$comp" --any-response-encoding
done

# === c. HTTP/3 with aioquic (an independent QUIC + HTTP/3 stack) =======================
# Its client calls Volley's server over HTTP/3 (Connect unary and server streaming, the
# bytes and envelopes checked); Volley's client calls its minimal Connect server. A venv
# without aioquic fails here, loudly (install-peers.sh installs it from requirements.txt).
G="aioquic (HTTP/3)"
if ! "$PY" -c 'import aioquic' 2>"$LOGS/aioquic-import.err"; then
  STEP_NO=$((STEP_NO + 1))
  account "$G" 0 1 0
  FAILED_STEPS+=("$G: aioquic is not installed in interop/.venv ($(tail -1 "$LOGS/aioquic-import.err"))")
  case_failed "$G: aioquic missing"
  echo "FAIL  $G: aioquic is not installed in interop/.venv (run scripts/install-peers.sh)"
else
  start volley-h3 "$SERVER_BIN" --port 0 --tls "$LOGS/volley-h3-cert.pem" --http3
  run "$G" "aioquic client -> volley server" 60 \
    "$PY" interop/python/h3_peer.py client --port "$PORT" --ca "$LOGS/volley-h3-cert.pem"
  start aioquic-server "$PY" interop/python/h3_peer.py server --cert-out "$LOGS/aioquic-cert.pem"
  run "$G" "volley client -> aioquic server" 60 \
    "$CLIENT_BIN" --url "https://127.0.0.1:$PORT" --http 3 --protocol connect --codec proto \
      --ca "$LOGS/aioquic-cert.pem" --cases unary_echo,server_stream
fi

summary
(( TOTAL_FAIL == 0 ))

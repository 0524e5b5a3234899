#!/usr/bin/env bash
# The side-by-side load benchmark in one command: builds the release server binaries of
# benches/ (Volley, Volley with view handlers, tonic, connectrpc, raw hyper), installs h2load
# (Debian nghttp2-client) if missing, measures every workload x concurrency x contender over
# interleaved rounds, and writes benches/RESULTS.md. Not part of CI (CI only builds benches/).
# Usage: scripts/bench.sh [--quick] [--rounds N] [--duration S] ...   (see benches/run.py -h)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 benches/run.py "$@"

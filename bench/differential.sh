#!/usr/bin/env bash
# Request smuggling differential, both ways: the same mutated HTTP/1.1 requests through
# nginx, HAProxy and switchyard (configured as in run.sh), every byte each proxy sends
# its upstream read by two parsers, h11 (strict) and llhttp (Node.js's); then mutated
# responses from the upstream, and what each proxy passes to its clients read the same
# way (and checked to reach the client that asked). A proxy must pass on only what both
# read without error and as the same messages; anything else is what a peer behind it
# could read differently (see bench/http_differential.py).
#
#   bash bench/differential.sh                       # 8,000 of each per proxy, ~5 minutes
#   bash bench/differential.sh --inputs 20000 --seed 7
#   bash bench/differential.sh --targets switchyard
#
# Needs python3 with h11 and httptools (installed with pip --user if missing). Writes
# bench/results/differential/results.md (BENCH_RESULTS to change). The exit status is
# 1 if anything switchyard passed on is refused or read two ways.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS="nginx haproxy switchyard"
INPUTS=8000
SEED=1
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift ;;
    --inputs) INPUTS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/differential}
mkdir -p "$RESULTS"

LOG_TAG=differential
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 27500

if ! python3 -c 'import h11, httptools' 2>/dev/null; then
  log "installing h11 and httptools (pip --user)"
  python3 -m pip install --quiet --user h11 httptools
fi

install_proxies
build_tools
raise_nofile
setup_pinning
setup_work switchyard-differential
write_configs

PROXY_PREFIX=("${PIN_PROXY[@]}")
DIFF=(python3 "$ROOT/bench/http_differential.py")
# Starts the upstream: http_differential.py's SUBCOMMAND, logging to FILE.
start_upstream() {
  "${PIN_LOAD[@]}" "${DIFF[@]}" "$1" --port "$BACKEND_PORT" "${@:3}" --log "$2" >>"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  wait_port "$BACKEND_PORT"
}
stop_upstream() {
  # The upstream logs a connection when it ends: give the last ones their close.
  sleep 1
  stop_process "$BACKEND_PID"
  BACKEND_PID=""
}

for target in $TARGETS; do
  log "$target: $INPUTS requests (seed $SEED)"
  start_upstream backend "$WORK/upstream-$target.jsonl"
  if start_target "$target"; then
    "${PIN_LOAD[@]}" "${DIFF[@]}" drive --addr "127.0.0.1:${PORT[$target]}" --seed "$SEED" \
      --inputs "$INPUTS" --out "$WORK/clients-$target.json"
    stop_target
  else
    log "  $target did not start"
  fi
  stop_upstream

  log "$target: $INPUTS responses (seed $SEED)"
  start_upstream response-backend "$WORK/responses-$target.jsonl" --seed "$SEED"
  if start_target "$target"; then
    "${PIN_LOAD[@]}" "${DIFF[@]}" response-drive --addr "127.0.0.1:${PORT[$target]}" \
      --inputs "$INPUTS" --out "$WORK/response-clients-$target.json"
    stop_target
  fi
  stop_upstream
done

BENCH_REV=${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')} \
  "${DIFF[@]}" report --work "$WORK" --targets "$TARGETS" --out "$RESULTS/results.md"

#!/usr/bin/env bash
# Request smuggling differential: the same mutated HTTP/1.1 requests through nginx,
# HAProxy and switchyard (configured as in run.sh), and every byte each proxy sends its
# upstream read by two parsers, h11 (strict) and llhttp (Node.js's). A proxy must send
# only what both read without error and as the same requests; anything else is what a
# server behind it could read differently (see bench/http_differential.py).
#
#   bash bench/differential.sh                       # 8,000 inputs per proxy, ~5 minutes
#   bash bench/differential.sh --inputs 20000 --seed 7
#   bash bench/differential.sh --targets switchyard
#
# Needs python3 with h11 and httptools (installed with pip --user if missing). Writes
# bench/results/differential/results.md (BENCH_RESULTS to change). The exit status is
# 1 if any switchyard upstream connection is refused or read two ways.
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
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
for target in $TARGETS; do
  log "$target: $INPUTS inputs (seed $SEED)"
  "${PIN_LOAD[@]}" "${DIFF[@]}" backend --port "$BACKEND_PORT" --log "$WORK/upstream-$target.jsonl" \
    >>"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  wait_port "$BACKEND_PORT"
  if start_target "$target"; then
    "${PIN_LOAD[@]}" "${DIFF[@]}" drive --addr "127.0.0.1:${PORT[$target]}" --seed "$SEED" \
      --inputs "$INPUTS" --out "$WORK/clients-$target.json"
    stop_target
  else
    log "  $target did not start"
  fi
  # The upstream logs a connection when it ends: give the last ones their close.
  sleep 1
  stop_process "$BACKEND_PID"
  BACKEND_PID=""
done

BENCH_REV=${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')} \
  "${DIFF[@]}" report --work "$WORK" --targets "$TARGETS" --out "$RESULTS/results.md"

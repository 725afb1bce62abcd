#!/usr/bin/env bash
# Side-by-side benchmark: direct / nginx / HAProxy / tokio relay / switchyard.
#
#   bash bench/run.sh            # full run: 3 interleaved rounds, ~18 minutes
#   bash bench/run.sh --quick    # smoke run: 1 round, short windows, ~1 minute
#
# Options: --rounds N  --duration SECONDS  --warmup SECONDS  --tunnels N
#          --rate MSGS_PER_S (ws-latency, 10000)  --body-bytes N (http-body, 102400)
#          --measures "http http-body ws-echo ws-latency ws-bulk idle"
#          --targets "direct nginx haproxy relay switchyard"
# Environment: BENCH_PORT_BASE (28000), BENCH_PROXY_CPU (0), BENCH_LOAD_CPU (1),
#              BENCH_NICE (-10), BENCH_RT (1: SCHED_FIFO for ws-latency), BENCH_REV (label),
#              BENCH_RESULTS (bench/results, or bench/results/quick with --quick).
#
# Installs nginx and HAProxy with apt-get if they are missing, builds switchyard and
# switchyard-bench (release), pins every proxy to one core and the backend + load
# generator to the other, restarts the proxy for every run, and writes
# results.md (table), results.csv, results.png (chart) and raw.jsonl (every run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

ROUNDS=3 DURATION=10 WARMUP=2 TUNNELS=8000 QUICK=0
CONNS=64 BULK_CONNS=16 IN_FLIGHT=4 RATE=10000 BODY_BYTES=102400
MEASURES="http http-body ws-echo ws-latency ws-bulk idle"
TARGETS="direct nginx haproxy relay switchyard"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; ROUNDS=1; DURATION=2; WARMUP=0.5; TUNNELS=1000 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --tunnels) TUNNELS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --body-bytes) BODY_BYTES=$2; shift ;;
    --measures) MEASURES=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/quick}
else RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}; fi
mkdir -p "$RESULTS"

LOG_TAG=bench
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 28000

install_proxies
build_tools

# ---------------------------------------------------------------- limits, pinning
raise_nofile
# The proxy holds two sockets per tunnel.
MAX_TUNNELS=$(((NOFILE - 1000) / 2))
if [ "$TUNNELS" -gt "$MAX_TUNNELS" ]; then
  log "open-file limit $NOFILE: idle test reduced to $MAX_TUNNELS tunnels"
  TUNNELS=$MAX_TUNNELS
fi
setup_pinning
setup_work switchyard-bench

# ---------------------------------------------------------------- configurations
# The configurations and the process helpers (start_backend, start_target,
# stop_target) are in common.sh, shared with soak.sh.
write_configs

RAW=$WORK/raw.jsonl
: >"$RAW"

run_one() {
  local measure=$1 target=$2 round=$3
  local args=(--addr "127.0.0.1:${PORT[$target]}" --target "$target" --round "$round" --out "$RAW")
  local pid
  for pid in $MEASURE_PIDS; do args+=(--pid "$pid"); done
  args+=(--peer-pid "$BACKEND_PID")
  local timing=(--duration "$DURATION" --warmup "$WARMUP")
  case "$measure" in
    http) "${PIN_LOAD[@]}" "$BENCH" http "${args[@]}" "${timing[@]}" --connections "$CONNS" ;;
    http-body) "${PIN_LOAD[@]}" "$BENCH" http "${args[@]}" "${timing[@]}" --connections "$CONNS" \
                 --body-bytes "$BODY_BYTES" ;;
    ws-echo) "${PIN_LOAD[@]}" "$BENCH" ws-echo "${args[@]}" "${timing[@]}" --connections "$CONNS" --size 32 ;;
    ws-latency) "${PIN_LOAD_RT[@]}" "$BENCH" ws-echo "${args[@]}" "${timing[@]}" --connections "$CONNS" --size 32 \
                  --rate "$RATE" ;;
    ws-bulk) "${PIN_LOAD[@]}" "$BENCH" ws-bulk "${args[@]}" "${timing[@]}" --connections "$BULK_CONNS" \
               --size 65536 --in-flight "$IN_FLIGHT" ;;
    idle) "${PIN_LOAD[@]}" "$BENCH" idle "${args[@]}" --tunnels "$TUNNELS" ;;
  esac
}

# ---------------------------------------------------------------- the runs
start_backend
read -r -a TARGET_LIST <<<"$TARGETS"
N_TARGETS=${#TARGET_LIST[@]}
log "rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s connections=$CONNS bulk=${BULK_CONNS}x${IN_FLIGHT} tunnels=$TUNNELS"
log "proxy core $PROXY_CPU, backend + load generator core $LOAD_CPU, nice $NICE, SCHED_FIFO for ws-latency: $([ "$RT" = 1 ] && echo yes || echo no)"
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for measure in $MEASURES; do
    # Interleaved: every target once per measure per round, starting one further on
    # each round so that no target always runs first or last.
    for i in $(seq 0 $((N_TARGETS - 1))); do
      target=${TARGET_LIST[$(((i + round - 1) % N_TARGETS))]}
      if [ "$measure" = idle ] && [ "$target" = direct ]; then continue; fi
      log "round $round/$ROUNDS  $measure  $target"
      PROXY_PREFIX=("${PIN_PROXY[@]}")
      if [ "$measure" = ws-latency ] && [ "$RT" = 1 ]; then
        PROXY_PREFIX=("${PIN_PROXY_RT[@]}")
        chrt -a -f -p 1 "$BACKEND_PID"
      fi
      if start_target "$target"; then
        run_one "$measure" "$target" "$round" >/dev/null || log "  FAILED: $measure $target"
      fi
      if [ "$measure" = ws-latency ] && [ "$RT" = 1 ]; then chrt -a -o -p 0 "$BACKEND_PID"; fi
      tail -n 1 "$RAW" | cut -c1-200 >&2
      stop_target
    done
  done
done

# ---------------------------------------------------------------- report
cp "$RAW" "$RESULTS/raw.jsonl"
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), $CPUS cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))."
  echo "switchyard ${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}, $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | head -1 | awk '{print $3}')."
  echo "Each proxy: 1 worker pinned to core $PROXY_CPU, access log off, 16 KiB buffers per direction, 60 s timeouts; backend and load generator pinned to core $LOAD_CPU; all at nice $NICE$([ "$RT" = 1 ] && echo ", and SCHED_FIFO for the fixed-rate echo")."
  echo "Windows of ${DURATION} s after ${WARMUP} s warm-up; HTTP (13 B and $BODY_BYTES B bodies) and WebSocket echo: $CONNS connections, one request/message in flight each (closed loop), and for the fixed-rate echo $RATE messages/s over $CONNS connections; bulk: $BULK_CONNS connections × $IN_FLIGHT messages of 64 KiB in flight (MB/s counts each echoed payload once); idle: $TUNNELS tunnels, VmRSS growth ÷ tunnels."
} >"$WORK/notes.md"
"$BENCH" report --input "$RAW" --markdown "$RESULTS/results.md" --csv "$RESULTS/results.csv" \
  --proxy-cpu "$PROXY_CPU" --notes "$WORK/notes.md"

if ! python3 -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib for the chart (pip)"
  python3 -m pip install --quiet matplotlib 2>/dev/null ||
    python3 -m pip install --quiet --user matplotlib 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages matplotlib 2>/dev/null || true
fi
if python3 "$ROOT/bench/chart.py" "$RESULTS/results.csv" "$RESULTS/results.png"; then
  log "chart: $RESULTS/results.png"
else
  log "no chart (matplotlib unavailable); the table is in $RESULTS/results.md"
fi
log "table: $RESULTS/results.md"

#!/usr/bin/env bash
# Several workers per proxy, nothing pinned: nginx (worker_processes N), HAProxy
# (nbthread N), Switchyard with work stealing (the default) and with an event loop of
# its own per thread (work_stealing = false), all at N workers, sharing every core
# with the backend and the load generator, as a quick test on one machine would.
#
#   bash bench/workers.sh                 # 3 interleaved rounds, N = cores, ~4 minutes
#   bash bench/workers.sh --workers 4 --rounds 5
#
# Options: --workers N (default: cores)  --rounds N  --duration SECONDS  --warmup SECONDS
#          --targets "nginx haproxy switchyard switchyard-own"
# Measures: HTTP keep-alive GET (64 connections, requests/s) and the closed-loop
# WebSocket echo (64 connections, 32 B messages: messages/s and p99). Writes
# bench/results/workers/results.md (medians and every round) and raw.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

WORKERS=$(nproc) ROUNDS=3 DURATION=8 WARMUP=1 CONNS=64
TARGETS="nginx haproxy switchyard switchyard-own"
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/workers}
mkdir -p "$RESULTS"

LOG_TAG=workers
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 28200
install_proxies
build_tools
raise_nofile
setup_work switchyard-workers
write_configs

# The benchmark's configurations at $WORKERS workers; switchyard-own in a directory of
# its own, laid out as launch_proxy expects.
sed -i "s/^worker_processes 1;/worker_processes $WORKERS;/" "$WORK/nginx/nginx.conf"
sed -i "s/^  nbthread 1$/  nbthread $WORKERS/" "$WORK/haproxy.cfg"
sed -i "s/^threads = 1$/threads = $WORKERS/" "$WORK/switchyard.toml"
mkdir -p "$WORK/own"
{ echo "work_stealing = false"; cat "$WORK/switchyard.toml"; } >"$WORK/own/switchyard.toml"
"$SWITCHYARD" check --config "$WORK/own/switchyard.toml" >/dev/null

"$BENCH" backend --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
wait_port "$BACKEND_PORT"

RAW=$WORK/raw.jsonl
: >"$RAW"
PROXY_PREFIX=()
read -r -a TARGET_LIST <<<"$TARGETS"
N_TARGETS=${#TARGET_LIST[@]}
log "workers=$WORKERS rounds=$ROUNDS duration=${DURATION}s on $(nproc) cores, nothing pinned"
for round in $(seq "$ROUNDS"); do
  for measure in http ws-echo; do
    for i in $(seq 0 $((N_TARGETS - 1))); do
      target=${TARGET_LIST[$(((i + round - 1) % N_TARGETS))]}
      case "$target" in
        switchyard-own) proxy=switchyard dir=$WORK/own ;;
        *) proxy=$target dir=$WORK ;;
      esac
      log "round $round/$ROUNDS  $measure  $target"
      launch_proxy "$proxy" "$dir" "${PORT[$proxy]}" || log "  $target did not start"
      PROXY_PID=$LAUNCHED_PID
      args=(--addr "127.0.0.1:${PORT[$proxy]}" --target "$target" --round "$round" --out "$RAW"
        --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNS")
      case "$measure" in
        http) "$BENCH" http "${args[@]}" >/dev/null || log "  FAILED" ;;
        ws-echo) "$BENCH" ws-echo "${args[@]}" --size 32 >/dev/null || log "  FAILED" ;;
      esac
      tail -n 1 "$RAW" | cut -c1-160 >&2
      stop_target
    done
  done
done

cp "$RAW" "$RESULTS/raw.jsonl"
python3 - "$RAW" "$RESULTS/results.md" "$WORKERS" "$TARGETS" <<'EOF'
import json, statistics, sys, datetime, platform, os
raw, out, workers, targets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
records = [json.loads(line) for line in open(raw) if line.strip()]
rows = [("HTTP keep-alive requests/s", "http", "requests_per_s", 1e-3, "k"),
        ("WebSocket echo messages/s", "ws-echo", "messages_per_s", 1e-3, "k"),
        ("WebSocket echo p99", "ws-echo", "p99_us", 1e-3, " ms")]
def cell(measure, field, target, scale, unit):
    values = [r[field] for r in records
              if r.get("measure") == measure and r.get("target") == target and r.get(field)]
    if not values:
        return "–"
    rounds = ", ".join(f"{v * scale:.1f}" if unit == "k" else f"{v * scale:.2f}" for v in values)
    median = statistics.median(values) * scale
    return (f"**{median:.1f}{unit}**" if unit == "k" else f"**{median:.2f}{unit}**") + f" ({rounds})"
with open(out, "w") as f:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    f.write(f"Run {now} on {platform.platform()}, {os.cpu_count()} cores: every proxy at "
            f"{workers} workers, nothing pinned, sharing the cores with the backend and the "
            "load generator (64 connections each). Medians in bold, then each round.\n\n")
    f.write("| measure | " + " | ".join(targets) + " |\n")
    f.write("|---|" + "--:|" * len(targets) + "\n")
    for name, measure, field, scale, unit in rows:
        f.write(f"| {name} | " + " | ".join(cell(measure, field, t, scale, unit) for t in targets) + " |\n")
print(open(out).read())
EOF
log "table: $RESULTS/results.md"

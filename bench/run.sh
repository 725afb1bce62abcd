#!/usr/bin/env bash
# Side-by-side benchmark: direct / nginx / HAProxy / tokio relay / switchyard.
#
#   bash bench/run.sh            # full run: 3 interleaved rounds, ~15 minutes
#   bash bench/run.sh --quick    # smoke run: 1 round, short windows, ~1 minute
#
# Options: --rounds N  --duration SECONDS  --warmup SECONDS  --tunnels N
#          --rate MSGS_PER_S (ws-latency, 10000)
#          --measures "http ws-echo ws-latency ws-bulk idle"
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
CONNS=64 BULK_CONNS=16 IN_FLIGHT=4 RATE=10000
MEASURES="http ws-echo ws-latency ws-bulk idle"
TARGETS="direct nginx haproxy relay switchyard"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; ROUNDS=1; DURATION=2; WARMUP=0.5; TUNNELS=1000 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --tunnels) TUNNELS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --measures) MEASURES=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

PORT_BASE=${BENCH_PORT_BASE:-28000}
BACKEND_PORT=$PORT_BASE
declare -A PORT=([direct]=$PORT_BASE [nginx]=$((PORT_BASE + 1)) [haproxy]=$((PORT_BASE + 2))
                 [relay]=$((PORT_BASE + 3)) [switchyard]=$((PORT_BASE + 4)))
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
if [ "$QUICK" = 1 ]; then RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/quick}
else RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}; fi
mkdir -p "$RESULTS"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- nginx, HAProxy
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  log "installing nginx and haproxy (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq nginx haproxy >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nginx haproxy >/dev/null; }
fi
# Debian starts the packaged services where there is an init system; they listen on
# other ports and do not matter here.

# ---------------------------------------------------------------- build
log "building switchyard and switchyard-bench (release)"
cargo build --release --quiet -p runtime-tokio -p switchyard-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWITCHYARD=$TARGET_DIR/release/switchyard
BENCH=$TARGET_DIR/release/switchyard-bench

# ---------------------------------------------------------------- limits, pinning
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
# The proxy holds two sockets per tunnel.
MAX_TUNNELS=$(((NOFILE - 1000) / 2))
if [ "$TUNNELS" -gt "$MAX_TUNNELS" ]; then
  log "open-file limit $NOFILE: idle test reduced to $MAX_TUNNELS tunnels"
  TUNNELS=$MAX_TUNNELS
fi
CPUS=$(nproc)
# Arrays, not functions: a backgrounded function runs in a subshell, and $! would be
# the subshell's pid instead of the proxy's. taskset and nice exec what they run.
PIN_PROXY=() PIN_LOAD=()
if [ "$CPUS" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_PROXY=(taskset -c "$PROXY_CPU") PIN_LOAD=(taskset -c "$LOAD_CPU")
else
  log "fewer than 2 cores (or no taskset): nothing is pinned; numbers mean less"
fi
PIN_PROXY_RT=("${PIN_PROXY[@]}") PIN_LOAD_RT=("${PIN_LOAD[@]}")
# A higher priority than other work on the machine (compiles, tests), if allowed: the
# throughput runs keep both cores busy, and a fair share against other busy processes
# would make the numbers mostly about them.
NICE=${BENCH_NICE:--10}
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null && [ "$(nice -n "$NICE" nice)" -lt "$(nice)" ]; then
  PIN_PROXY=(nice -n "$NICE" "${PIN_PROXY[@]}") PIN_LOAD=(nice -n "$NICE" "${PIN_LOAD[@]}")
else
  NICE=0
fi
# The fixed-rate latency run uses a fraction of each core; there, SCHED_FIFO keeps the
# round trips free of other processes' time slices (BENCH_RT=0 to not).
RT=${BENCH_RT:-1}
if [ "$RT" = 1 ] && command -v chrt >/dev/null && chrt -f 1 true 2>/dev/null; then
  PIN_PROXY_RT=(chrt -f 1 "${PIN_PROXY_RT[@]}") PIN_LOAD_RT=(chrt -f 1 "${PIN_LOAD_RT[@]}")
else
  RT=0 PIN_PROXY_RT=("${PIN_PROXY[@]}") PIN_LOAD_RT=("${PIN_LOAD[@]}")
fi

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
BACKEND_PID="" PROXY_PID="" MEASURE_PIDS=""
cleanup() {
  for pid in $PROXY_PID $BACKEND_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- configurations
# Same for all: 1 worker on 1 core, no access log, 16 KiB buffers per direction,
# 60 s timeouts (connect, head, read, send, tunnel), 75 s client keep-alive,
# X-Forwarded-For / -Proto added, 64 idle upstream connections kept.
WORKER_CONNECTIONS=$((NOFILE - 100))
mkdir -p "$WORK/nginx/tmp"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $WORKER_CONNECTIONS; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_timeout 75s;
  keepalive_requests 100000000;
  client_header_timeout 60s;
  send_timeout 60s;
  # The WebSocket idiom: Connection: upgrade only when the client asked, otherwise
  # empty, so the upstream keep-alive connections stay usable.
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_connect_timeout 60s;
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
    }
  }
}
EOF

HAPROXY_MAXCONN=$(((NOFILE - 200) / 2))
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $HAPROXY_MAXCONN
  tune.bufsize 16384
defaults
  mode http
  option http-keep-alive
  option forwardfor
  timeout connect 60s
  timeout client 60s
  timeout server 60s
  timeout tunnel 60s
  timeout http-request 60s
  timeout http-keep-alive 75s
  timeout client-fin 30s
  timeout server-fin 30s
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  maxconn $HAPROXY_MAXCONN
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND_PORT
EOF

cat > "$WORK/switchyard.toml" <<EOF
listen = ["127.0.0.1:${PORT[switchyard]}"]
upstream = "127.0.0.1:$BACKEND_PORT"
threads = 1
buffer_size = 16384
[pool]
max_idle = 64
[log]
access = false
EOF
"$SWITCHYARD" check --config "$WORK/switchyard.toml" >/dev/null

# ---------------------------------------------------------------- processes
wait_port() { "$BENCH" wait --addr "127.0.0.1:$1" --timeout 10; }

start_backend() {
  "${PIN_LOAD[@]}" "$BENCH" backend --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  wait_port "$BACKEND_PORT"
}

# Pids whose parent is $1 (pgrep -P, without needing procps).
children_of() {
  local dir
  for dir in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$dir/stat" 2>/dev/null)" = "$1" ] && echo "${dir#/proc/}"
  done
  return 0
}

# Starts the proxy for $1 on the proxy core; sets PROXY_PID (what to stop) and
# MEASURE_PIDS (whose CPU and RSS are the proxy's).
start_target() {
  local target=$1
  PROXY_PID="" MEASURE_PIDS=""
  case "$target" in
    direct) return 0 ;;
    nginx)
      "${PROXY_PREFIX[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
        >"$WORK/nginx.log" 2>&1 &
      PROXY_PID=$! ;;
    haproxy)
      "${PROXY_PREFIX[@]}" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
      PROXY_PID=$! ;;
    relay)
      "${PROXY_PREFIX[@]}" "$BENCH" relay --listen "127.0.0.1:${PORT[relay]}" \
        --upstream "127.0.0.1:$BACKEND_PORT" --threads 1 >"$WORK/relay.log" 2>&1 &
      PROXY_PID=$! ;;
    switchyard)
      "${PROXY_PREFIX[@]}" "$SWITCHYARD" --config "$WORK/switchyard.toml" >"$WORK/switchyard.log" 2>&1 &
      PROXY_PID=$! ;;
    *) echo "unknown target $target" >&2; return 1 ;;
  esac
  if ! wait_port "${PORT[$target]}"; then
    log "$target did not start; its log:"
    cat "$WORK/$target.log" >&2
    return 1
  fi
  MEASURE_PIDS=$PROXY_PID
  if [ "$target" = nginx ]; then
    # The worker holds the connections; the master only supervises.
    MEASURE_PIDS=$(children_of "$PROXY_PID" | head -1)
  fi
}

stop_target() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID="" MEASURE_PIDS=""
}

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
  echo "Windows of ${DURATION} s after ${WARMUP} s warm-up; HTTP and WebSocket echo: $CONNS connections, one request/message in flight each (closed loop), and for the fixed-rate echo $RATE messages/s over $CONNS connections; bulk: $BULK_CONNS connections × $IN_FLIGHT messages of 64 KiB in flight (MB/s counts each echoed payload once); idle: $TUNNELS tunnels, VmRSS growth ÷ tunnels."
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

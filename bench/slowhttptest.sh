#!/usr/bin/env bash
# Slow clients that hold connections open, with slowhttptest (Debian's package), through
# nginx, HAProxy and switchyard configured as in run.sh, in front of the benchmark
# backend:
#   slow bodies (-B, R-U-Dead-Yet): 2,000 POSTs whose 64 KiB bodies trickle every 10 s;
#   slow readers (-X): 1,000 clients reading a 1 MiB response through a tiny window.
# For each: whether the tool's probe was served throughout, how many connections were
# open from clients and to the backend 20 s in (from /proc/net/tcp), and how many slow
# connections the proxy closed, from when.
# switchyard runs twice for slow bodies: as configured (request_buffering on, no minimum
# rate) and with limits.min_request_body_rate = 500 (for long enough to see its 60 s
# grace end).
#
#   bash bench/slowhttptest.sh                          # every target, ~8 minutes
#   bash bench/slowhttptest.sh --targets switchyard --seconds 30
#
# Writes bench/results/slowhttptest/results.md (BENCH_RESULTS to change).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS="nginx haproxy switchyard"
SECONDS_PER_RUN=45
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift ;;
    --seconds) SECONDS_PER_RUN=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$SECONDS_PER_RUN" -ge 25 ] || { echo "--seconds: at least 25 (the count is taken at 20 s)" >&2; exit 2; }

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/slowhttptest}
mkdir -p "$RESULTS"

LOG_TAG=slowhttptest
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 27100

install_if_missing slowhttptest
install_proxies
build_tools
raise_nofile
# Unpinned: slowhttptest's thousands of connections are not a rate to compare.
PIN_LOAD=() PROXY_PREFIX=()
setup_work slowhttptest
write_configs
mkdir -p "$WORK/min-rate"
{ cat "$WORK/switchyard.toml"; printf '[limits]\nmin_request_body_rate = 500\n'; } \
  >"$WORK/min-rate/switchyard.toml"
"$SWITCHYARD" check --config "$WORK/min-rate/switchyard.toml" >/dev/null
start_backend

# Open TCP connections whose local port is $1 (the proxy's accepted ones) and whose
# remote port is $2 (the proxy's own to the backend), from /proc/net/tcp: any state but
# LISTEN, TIME_WAIT and CLOSE, so that a connection the proxy closed with its response
# still queued in the kernel (FIN_WAIT1) counts as held.
count_connections() {
  python3 - "$1" "$2" <<'EOF'
import sys
local, remote = (int(p) for p in sys.argv[1:3])
counts = [0, 0]
for path in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        fields = line.split()
        if fields[3] in ("0A", "06", "07"):  # LISTEN, TIME_WAIT, CLOSE
            continue
        lport = int(fields[1].rsplit(":", 1)[1], 16)
        rport = int(fields[2].rsplit(":", 1)[1], 16)
        counts[0] += lport == local
        counts[1] += rport == remote
print(counts[0], counts[1])
EOF
}

ROWS=()
# run NAME TARGET CONFIG_DIR MODE SECONDS
run() {
  local name=$1 target=$2 dir=$3 mode=$4 seconds=$5 port args out what
  port=${PORT[$target]}
  case "$mode" in
    B) what="slow bodies"
       args=(-B -c 2000 -r 400 -i 10 -s 65536 -u "http://127.0.0.1:$port/") ;;
    X) what="slow readers"
       args=(-X -c 1000 -r 200 -w 512 -y 1024 -n 5 -z 32 -k 3
             -u "http://127.0.0.1:$port/big?bytes=1048576") ;;
  esac
  launch_proxy "$target" "$dir" "$port"
  PROXY_PID=$LAUNCHED_PID
  out="$WORK/$name-$mode"
  log "$name, $what, ${seconds} s"
  timeout $((seconds + 60)) slowhttptest "${args[@]}" -l "$seconds" -p 3 -g -o "$out" \
    >"$out.out" 2>&1 &
  local tool=$! held
  sleep 20
  held=$(count_connections "$port" "$BACKEND_PORT")
  wait "$tool" || true
  stop_target
  # The tool's live status, every second: "service available: YES" or "NO".
  local unavailable closed
  unavailable=$(sed 's/\x1b\[[0-9;]*m//g' "$out.out" | grep -c 'service available: *NO' || true)
  # The tool's count of its connections the server closed: the most, and from when.
  closed=$(awk -F, 'NR > 1 && $1 ~ /^[0-9]+$/ && $2 > 0 { if (!from) from = $1; if ($2 > c) c = $2 }
                    END { if (c) printf "%d (from %d s)", c, from; else print 0 }' "$out.csv")
  ROWS+=("| $name | $what | ${held% *} | ${held#* } | $closed | $([ "$unavailable" = 0 ] && echo yes || echo "no ($unavailable s)") |")
}

for target in $TARGETS; do
  run "$target" "$target" "$WORK" B "$SECONDS_PER_RUN"
  if [ "$target" = switchyard ]; then
    run "switchyard, min_request_body_rate = 500" switchyard "$WORK/min-rate" B \
      $((SECONDS_PER_RUN > 80 ? SECONDS_PER_RUN : 80))
  fi
  run "$target" "$target" "$WORK" X "$SECONDS_PER_RUN"
done

{
  echo "slowhttptest $(slowhttptest -h 2>&1 | grep -o 'version [0-9.]*' | head -1 | cut -d' ' -f2),"
  echo "switchyard $(git -C "$ROOT" rev-parse --short HEAD), $(nginx -v 2>&1 | cut -d' ' -f3),"
  echo "HAProxy $(haproxy -v | head -1 | cut -d' ' -f3), $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Each proxy as in bench/run.sh (defaults otherwise), unpinned, in front of the"
  echo "benchmark backend. Slow bodies: 2,000 connections, 64 KiB bodies trickled every 10 s"
  echo "(\`-B -c 2000 -r 400 -i 10 -s 65536\`); slow readers: 1,000 connections reading a"
  echo "1 MiB response through a 512-1,024-byte window (\`-X -c 1000 -w 512 -y 1024\`);"
  echo "$SECONDS_PER_RUN s each (the minimum-rate run: at least 80 s). Open connections"
  echo "counted 20 s in, from /proc/net/tcp (any state but LISTEN, TIME_WAIT and CLOSE: a"
  echo "connection closed with its response still queued in the kernel counts); closed by the"
  echo "proxy: the tool's count, the most it reached and the second of the first."
  echo
  echo "| proxy | clients | open from clients | open to the backend | closed by the proxy | probe served throughout |"
  echo "|---|---|--:|--:|--:|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$RESULTS/results.md"
cat "$RESULTS/results.md"

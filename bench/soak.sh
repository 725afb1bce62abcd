#!/usr/bin/env bash
# Soak and fault harness (issue 11): switchyard side by side with nginx and HAProxy,
# next to the benchmark: same backend, same pinning, same configurations as run.sh,
# with nginx and HAProxy at their default timeouts.
#
#   bash bench/soak.sh             # every scenario against every proxy, ~20 minutes
#   bash bench/soak.sh --quick     # smoke run: small counts, short timeouts, ~3 minutes
#
# Options: --scenarios "churn many slowloris slow-readers backend-death unreachable fd-limit malformed"
#          --targets "nginx haproxy switchyard"
#          --head-timeout SECONDS  the head timeout slowloris expects (60; --quick: 5). It is
#                                  switchyard's timeouts.client_head and nginx's
#                                  client_header_timeout (both 60 s by default); HAProxy
#                                  keeps its default, no timeout at all
#          --cycles N              churn cycles (100000)
#          --fd-limit N            open-file limit of the proxy in fd-limit (256)
#          --churn-rounds N        interleaved rounds of churn, whose cycles/s are compared
#                                  by their medians (5; --quick: 1)
#          --pairs N               slowloris, slow-readers: pairs of 2 s windows (proxy,
#                                  control) per phase (7; --quick: 1 pair of 1 s windows);
#                                  slowloris fits fewer with slow clients if need be
# Environment: BENCH_PORT_BASE (29000: run.sh uses 28000, so both can run), BENCH_PROXY_CPU (0),
#              BENCH_LOAD_CPU (1), BENCH_NICE (-10), BENCH_REV (label),
#              BENCH_RESULTS (bench/results/soak, or bench/results/soak/quick with --quick).
#
# Writes results.md (the side-by-side table: every target per proxy, then every figure)
# and raw.jsonl (one JSON record per scenario and proxy).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

ALL_SCENARIOS="churn many slowloris slow-readers backend-death unreachable fd-limit malformed"
SCENARIOS=$ALL_SCENARIOS
TARGETS="nginx haproxy switchyard"
QUICK=0 HEAD_TIMEOUT="" CYCLES="" FD_LIMIT=256 CHURN_ROUNDS="" PAIRS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    --head-timeout) HEAD_TIMEOUT=$2; shift ;;
    --cycles) CYCLES=$2; shift ;;
    --fd-limit) FD_LIMIT=$2; shift ;;
    --churn-rounds) CHURN_ROUNDS=$2; shift ;;
    --pairs) PAIRS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
for scenario in $SCENARIOS; do
  case " $ALL_SCENARIOS " in *" $scenario "*) ;; *) echo "unknown scenario: $scenario" >&2; exit 2 ;; esac
done

# Sizes: the issue's, or a smoke run's.
if [ "$QUICK" = 1 ]; then
  CYCLES=${CYCLES:-3000} CHURN_ROUNDS=${CHURN_ROUNDS:-1} WARMUP_CYCLES=200 MANY=1000 SLOW=100 GRACE=3 WINDOW=1 PAIRS=${PAIRS:-1} FILL=1
  HEAD_TIMEOUT=${HEAD_TIMEOUT:-5} READERS=100 DEATH_TUNNELS=200 UNREACHABLE_REQUESTS=2
  HOLD=2 MALFORMED=1000 MALFORMED_WARMUP=200
  RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/soak/quick}
else
  CYCLES=${CYCLES:-100000} CHURN_ROUNDS=${CHURN_ROUNDS:-5} WARMUP_CYCLES=1000 MANY=0 SLOW=1000 GRACE=10 WINDOW=2 PAIRS=${PAIRS:-7} FILL=3
  HEAD_TIMEOUT=${HEAD_TIMEOUT:-60} READERS=1000 DEATH_TUNNELS=1000 UNREACHABLE_REQUESTS=4
  HOLD=5 MALFORMED=10000 MALFORMED_WARMUP=1000
  RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/soak}
fi
mkdir -p "$RESULTS"
# The short timeouts of the unreachable scenario, on all three proxies alike.
FAULT_TIMEOUT=2


LOG_TAG=soak
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 29000
VICTIM_PORT=$((PORT_BASE + 10))     # backend-death: the backend the tool kills
BIG_PORT=$((PORT_BASE + 11))        # slow-readers: the tool's own backend
REFUSED_PORT=$((PORT_BASE + 12))    # unreachable: nobody listens
BLACKHOLE_PORT=$((PORT_BASE + 13))  # unreachable: accepts, never answers
FULL_PORT=$((PORT_BASE + 14))       # unreachable: full accept queue, SYNs dropped
CONTROL_PORT=$((PORT_BASE + 15))    # slowloris, slow-readers: the control instance

install_proxies
build_tools
raise_nofile
setup_pinning
setup_work switchyard-soak
BASE_NOFILE=$NOFILE

# ---------------------------------------------------------------- configurations
# run.sh's configurations (common.sh), then what this harness changes:
# - HAProxy at its default timeouts: none (run.sh sets 60 s everywhere). nginx's
#   60 s / 75 s in run.sh are its defaults already; switchyard's are its defaults.
# - slowloris: the head timeout (--head-timeout) for switchyard and nginx.
# - per scenario, below (each change is also a note in the record).
NOTES=()
configure() {
  local scenario=$1 upstream=$BACKEND_PORT
  case "$scenario" in
    backend-death) upstream=$VICTIM_PORT ;;
    slow-readers) upstream=$BIG_PORT ;;
  esac
  BACKEND_PORT=$upstream NOFILE=$BASE_NOFILE write_configs
  local nginx=$WORK/nginx/nginx.conf haproxy=$WORK/haproxy.cfg switchyard=$WORK/switchyard.toml
  NOTES=()
  sed -i '/^  timeout /d' "$haproxy"
  sed -i "s/client_header_timeout 60s;/client_header_timeout ${HEAD_TIMEOUT}s;/" "$nginx"
  if [ "$HEAD_TIMEOUT" != 60 ]; then
    printf '[timeouts]\nclient_head = "%ss"\n' "$HEAD_TIMEOUT" >>"$switchyard"
  fi
  case "$scenario" in
    many)
      # Room for (NOFILE - 100) / 2 tunnels, so that the open-file limit is what binds:
      # nginx ran out of worker_connections (its connection pool) at about 18,750 of
      # 20,000 ("not enough, reusing connections"), so it gets twice the limit;
      # HAProxy's maxconn counts the client sides.
      sed -i "s/worker_connections [0-9]*;/worker_connections $((2 * BASE_NOFILE));/" "$nginx"
      sed -i "s/maxconn [0-9]*/maxconn $(((BASE_NOFILE - 100) / 2))/" "$haproxy" ;;
    slow-readers)
      # nginx's default would write up to 1 GiB per response to its temp files (about
      # 10 GB here); with 0 it keeps to its buffers and applies back-pressure.
      sed -i 's/proxy_buffers 8 16k;/proxy_buffers 8 16k;\n      proxy_max_temp_file_size 0;/' "$nginx" ;;
    unreachable)
      sed -i "s/proxy_connect_timeout 60s;/proxy_connect_timeout ${FAULT_TIMEOUT}s;/; s/proxy_read_timeout 60s;/proxy_read_timeout ${FAULT_TIMEOUT}s;/" "$nginx"
      local locations="" name port
      for name in refused blackhole unreachable; do
        case $name in refused) port=$REFUSED_PORT ;; blackhole) port=$BLACKHOLE_PORT ;; *) port=$FULL_PORT ;; esac
        locations+="    location /$name { proxy_pass http://127.0.0.1:$port; proxy_connect_timeout ${FAULT_TIMEOUT}s; proxy_read_timeout ${FAULT_TIMEOUT}s; }\n"
      done
      sed -i "s#^    location / {#${locations}    location / {#" "$nginx"
      sed -i "s/^defaults$/defaults\n  timeout connect ${FAULT_TIMEOUT}s\n  timeout server ${FAULT_TIMEOUT}s/" "$haproxy"
      sed -i "s/^  default_backend be$/  use_backend refused if { path_beg \/refused }\n  use_backend blackhole if { path_beg \/blackhole }\n  use_backend unreachable if { path_beg \/unreachable }\n  default_backend be/" "$haproxy"
      printf 'backend refused\n  server s1 127.0.0.1:%s\nbackend blackhole\n  server s1 127.0.0.1:%s\nbackend unreachable\n  server s1 127.0.0.1:%s\n' \
        "$REFUSED_PORT" "$BLACKHOLE_PORT" "$FULL_PORT" >>"$haproxy"
      if ! grep -q '^\[timeouts\]' "$switchyard"; then echo '[timeouts]' >>"$switchyard"; fi
      cat >>"$switchyard" <<EOF
upstream_connect = "${FAULT_TIMEOUT}s"
upstream_response_head = "${FAULT_TIMEOUT}s"
[upstreams.refused]
servers = ["127.0.0.1:$REFUSED_PORT"]
[upstreams.blackhole]
servers = ["127.0.0.1:$BLACKHOLE_PORT"]
[upstreams.unreachable]
servers = ["127.0.0.1:$FULL_PORT"]
[[routes]]
path_prefix = "/refused"
upstream = "refused"
[[routes]]
path_prefix = "/blackhole"
upstream = "blackhole"
[[routes]]
path_prefix = "/unreachable"
upstream = "unreachable"
[[routes]]
path_prefix = "/"
upstream = "default"
EOF
      NOTES+=("connect and response timeouts ${FAULT_TIMEOUT} s on all three proxies (this scenario only)") ;;
    fd-limit)
      # Under the low limit each proxy sizes itself as it does by default: nginx's
      # worker_rlimit_nofile would try to raise it, and HAProxy refuses to start when
      # its maxconn needs more descriptors than it may have.
      sed -i '/worker_rlimit_nofile/d; s/events { worker_connections [0-9]*; }/events { }/' "$nginx"
      sed -i '/^  maxconn /d' "$haproxy" ;;
  esac
  "$SWITCHYARD" check --config "$switchyard" >/dev/null
}

# Per proxy and scenario, what the record should say about its configuration.
target_notes() {
  local target=$1 scenario=$2
  case "$target/$scenario" in
    haproxy/unreachable) ;;
    haproxy/*) NOTES+=("HAProxy at its default timeouts: none set") ;;
  esac
  case "$target/$scenario" in
    nginx/slow-readers) NOTES+=("nginx: proxy_max_temp_file_size 0 (its default buffers responses to disk, up to 1 GiB each)") ;;
    nginx/slowloris) [ "$HEAD_TIMEOUT" = 60 ] || NOTES+=("nginx: client_header_timeout ${HEAD_TIMEOUT}s (its default is 60s)") ;;
    switchyard/slowloris) [ "$HEAD_TIMEOUT" = 60 ] || NOTES+=("switchyard: timeouts.client_head ${HEAD_TIMEOUT}s (its default is 60s)") ;;
    */fd-limit) NOTES+=("started under prlimit --nofile=$FD_LIMIT") ;;
  esac
  case "$target/$scenario" in
    nginx/fd-limit) NOTES+=("nginx without worker_rlimit_nofile (it would try to raise the limit) and with its default worker_connections (512)") ;;
    haproxy/fd-limit) NOTES+=("HAProxy without maxconn: it derives one from the limit (with run.sh's maxconn it refuses to start: \"Cannot raise FD limit\")") ;;
  esac
}

# ---------------------------------------------------------------- the control
# The rate scenarios (slowloris, slow-readers) measure the normal clients against the
# proxy under test and against a control in alternating windows (src/soak/normal.rs):
# a second instance of the same proxy, configured the same (this scenario's
# configuration, listening on CONTROL_PORT), on the same core.
CONTROL_PID="" CONTROL_PIDS=""
start_control() {
  local target=$1 dir=$WORK/control
  rm -rf "$dir"
  mkdir -p "$dir/nginx/tmp"
  case "$target" in
    nginx) sed "s#$WORK/nginx/#$dir/nginx/#g; s/127.0.0.1:${PORT[nginx]} /127.0.0.1:$CONTROL_PORT /" \
             "$WORK/nginx/nginx.conf" >"$dir/nginx/nginx.conf" ;;
    haproxy) sed "s/^  bind 127.0.0.1:${PORT[haproxy]}\$/  bind 127.0.0.1:$CONTROL_PORT/" \
               "$WORK/haproxy.cfg" >"$dir/haproxy.cfg" ;;
    switchyard) sed "s/127.0.0.1:${PORT[switchyard]}\"/127.0.0.1:$CONTROL_PORT\"/" \
                  "$WORK/switchyard.toml" >"$dir/switchyard.toml" ;;
  esac
  local started=0
  launch_proxy "$target" "$dir" "$CONTROL_PORT" || started=$?
  CONTROL_PID=$LAUNCHED_PID CONTROL_PIDS=$LAUNCHED_MEASURE_PIDS EXTRA_PIDS=$LAUNCHED_PID
  return $started
}

start_both() { start_target "$1" && start_control "$1"; }

stop_control() {
  [ -n "$CONTROL_PID" ] || return 0
  stop_process "$CONTROL_PID"
  CONTROL_PID="" CONTROL_PIDS="" EXTRA_PIDS=""
}

# ---------------------------------------------------------------- the runs
RAW=$WORK/raw.jsonl
: >"$RAW"

# A record saying the scenario could not run, so that the table shows it.
failed_record() {
  local scenario=$1 target=$2 why=$3
  python3 - "$scenario" "$target" "$why" >>"$RAW" <<'EOF' || true
import json, sys
scenario, target, why = sys.argv[1:4]
print(json.dumps({"scenario": scenario, "target": target, "settings": {}, "figures": {},
                  "checks": [{"target": "the scenario ran", "measured": why, "pass": False}],
                  "notes": [why]}))
EOF
}

run_scenario() {
  local scenario=$1 target=$2
  local args=(--addr "127.0.0.1:${PORT[$target]}" --target "$target" --out "$RAW")
  local pid note
  for pid in $MEASURE_PIDS; do args+=(--pid "$pid"); done
  for note in "${NOTES[@]}"; do args+=(--note "$note"); done
  # The rate scenarios pair the proxy with its control, window by window.
  local normal=(--window "$WINDOW" --pairs "$PAIRS" --control "127.0.0.1:$CONTROL_PORT")
  for pid in $CONTROL_PIDS; do normal+=(--control-pid "$pid"); done
  case "$scenario" in
    churn) args+=(--cycles "$CYCLES" --warmup-cycles "$WARMUP_CYCLES" --workers 64) ;;
    many) args+=(--tunnels "$MANY") ;;
    slowloris) args+=(--connections "$SLOW" --head-timeout "$HEAD_TIMEOUT" --grace "$GRACE" "${normal[@]}") ;;
    slow-readers) args+=(--connections "$READERS" "${normal[@]}" --fill "$FILL"
                         --backend-listen "127.0.0.1:$BIG_PORT") ;;
    backend-death) args+=(--tunnels "$DEATH_TUNNELS" --victim "127.0.0.1:$VICTIM_PORT") ;;
    unreachable) args+=(--refused "127.0.0.1:$REFUSED_PORT" --blackhole "127.0.0.1:$BLACKHOLE_PORT"
                        --unreachable "127.0.0.1:$FULL_PORT" --requests "$UNREACHABLE_REQUESTS"
                        --connect-timeout "$FAULT_TIMEOUT" --read-timeout "$FAULT_TIMEOUT") ;;
    fd-limit)
      args+=(--hold "$HOLD" --extra 200)
      case "$target" in
        switchyard) args+=(--log "$WORK/switchyard.log" --log-pattern "accept failed") ;;
        nginx) args+=(--log "$WORK/nginx/error.log" --log-pattern "accept4() failed" --log-pattern "accept() failed") ;;
        haproxy) args+=(--log "$WORK/haproxy.log" --log-pattern "accept" --log-pattern "FD limit") ;;
      esac ;;
    malformed) args+=(--connections "$MALFORMED" --warmup "$MALFORMED_WARMUP" --backend "127.0.0.1:$BACKEND_PORT") ;;
  esac
  "${PIN_LOAD[@]}" "$BENCH" soak "$scenario" "${args[@]}" >/dev/null 2>"$WORK/tool.log"
}

# A port someone else holds would answer for the process that failed to bind it.
for port in "$BACKEND_PORT" "${PORT[nginx]}" "${PORT[haproxy]}" "${PORT[switchyard]}" "$VICTIM_PORT" \
            "$BIG_PORT" "$REFUSED_PORT" "$BLACKHOLE_PORT" "$FULL_PORT" "$CONTROL_PORT"; do
  if "$BENCH" wait --addr "127.0.0.1:$port" --timeout 0 2>/dev/null; then
    log "port $port is in use by another process; set BENCH_PORT_BASE to another base"
    exit 1
  fi
done
start_backend
log "scenarios: $SCENARIOS; targets: $TARGETS; $([ "$QUICK" = 1 ] && echo quick || echo full) sizes"
log "proxy core $PROXY_CPU, backend + load generator core $LOAD_CPU, nice $NICE, open-file limit $NOFILE"
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
STARTED=$(date +%s)
for scenario in $SCENARIOS; do
  # Churn's rate is compared across proxies, and the machine drifts by ±10% within
  # minutes: its rounds are interleaved, proxy after proxy, and medians compared.
  rounds=1
  if [ "$scenario" = churn ]; then rounds=$CHURN_ROUNDS; fi
  for round in $(seq "$rounds"); do
  for target in $TARGETS; do
    log "$scenario  $target$([ "$rounds" -gt 1 ] && echo "  (round $round of $rounds)")"
    configure "$scenario"
    target_notes "$target" "$scenario"
    PROXY_PREFIX=("${PIN_PROXY[@]}")
    if [ "$scenario" = fd-limit ]; then
      PROXY_PREFIX+=(prlimit "--nofile=$FD_LIMIT:$FD_LIMIT")
    fi
    # The proxy's log is read by fd-limit; start each run with an empty one.
    : >"$WORK/nginx/error.log"
    started=start_target
    case "$scenario" in slowloris|slow-readers) started=start_both ;; esac
    if $started "$target"; then
      if ! run_scenario "$scenario" "$target"; then
        log "  FAILED: $scenario $target"
        failed_record "$scenario" "$target" "harness error: $(tail -n 3 "$WORK/tool.log" | tr '\n' ' ' | cut -c1-300)"
      fi
      grep -E '^  (PASS|FAIL)' "$WORK/tool.log" >&2 || true
    else
      failed_record "$scenario" "$target" "the proxy did not start"
    fi
    stop_control
    stop_target
  done
  done
done
log "all scenarios: $(( $(date +%s) - STARTED )) s"

# ---------------------------------------------------------------- report
cp "$RAW" "$RESULTS/raw.jsonl"
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), $CPUS cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $([ "$QUICK" = 1 ] && echo "**quick (smoke) sizes**" || echo "full sizes")."
  echo "switchyard ${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}, $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | head -1 | awk '{print $3}')."
  echo "As in bench/run.sh: each proxy 1 worker pinned to core $PROXY_CPU, access log off, 16 KiB buffers per direction; the backend and the load generator pinned to core $LOAD_CPU; all at nice $NICE; open-file limit $NOFILE."
  echo "Timeouts: nginx and HAProxy at their defaults (nginx 60 s; HAProxy none), switchyard at its defaults; the head timeout slowloris expects is ${HEAD_TIMEOUT} s; the unreachable scenario sets ${FAULT_TIMEOUT} s connect and response timeouts on all three."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: rates are ±20%)."
} >"$WORK/notes.md"
"$BENCH" soak report --input "$RAW" --markdown "$RESULTS/results.md" --notes "$WORK/notes.md" >/dev/null
log "table: $RESULTS/results.md"

#!/usr/bin/env bash
# TLS side by side: nginx, HAProxy and switchyard terminating TLS (configured as in
# run.sh, plus a TLS listener; nginx with TLS 1.2 and 1.3 like the others), in front of
# the benchmark backend, the proxy pinned to one core and the clients to the other.
# For an ECDSA P-256 and an RSA-2048 certificate, in interleaved rounds:
#   full handshakes: `openssl s_time -new` for 5 s; the proxy's CPU per handshake;
# with the ECDSA certificate also:
#   returning clients: 600 clients connect, then come back with their sessions
#     (TLS 1.3, then TLS 1.2): how many resumed;
#   resumed connections: wrk, 32 connections, `Connection: close` (wrk resumes):
#     connections/s and the proxy's CPU per connection;
#   keep-alive HTTPS: wrk, 64 connections: requests/s and the proxy's CPU per request;
#   idle wss: 2,000 WebSockets over TLS held open: the proxy's RSS per tunnel.
# Medians of the rounds. Installs nginx, HAProxy, wrk and openssl if missing.
#
#   bash bench/tls.sh                    # ~6 minutes
#   bash bench/tls.sh --rounds 1 --targets switchyard
#
# Writes bench/results/tls/results.md (BENCH_RESULTS to change).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS="nginx haproxy switchyard"
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/tls}
mkdir -p "$RESULTS"

LOG_TAG=tls
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 27200

install_if_missing wrk
install_if_missing openssl
install_proxies
build_tools
raise_nofile
setup_pinning
PROXY_PREFIX=("${PIN_PROXY[@]}")
setup_work tls
write_configs
start_backend
CLIENTS=$ROOT/bench/tls_clients.py
TICKS=$(getconf CLK_TCK)

# The configurations of $WORK with a TLS listener and the certificate of kind $1, in
# $WORK/$1.
tls_configs() {
  local kind=$1 dir=$WORK/$1
  mkdir -p "$dir/nginx"
  case "$kind" in
    ecdsa) openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 30 -subj /CN=localhost \
             -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null ;;
    rsa) openssl req -x509 -newkey rsa:2048 -nodes \
           -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 30 -subj /CN=localhost \
           -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null ;;
  esac
  cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"
  sed -e "s|listen 127.0.0.1:${PORT[nginx]} backlog=4096;|listen 127.0.0.1:${PORT[nginx]} ssl backlog=4096;\n    ssl_certificate $dir/cert.pem;\n    ssl_certificate_key $dir/key.pem;\n    ssl_protocols TLSv1.2 TLSv1.3;|" \
    "$WORK/nginx/nginx.conf" >"$dir/nginx/nginx.conf"
  sed -e "s|bind 127.0.0.1:${PORT[haproxy]}|bind 127.0.0.1:${PORT[haproxy]} ssl crt $dir/both.pem alpn http/1.1|" \
      -e "s|X-Forwarded-Proto http|X-Forwarded-Proto https|" \
    "$WORK/haproxy.cfg" >"$dir/haproxy.cfg"
  sed -e "s|^listen = .*|listen = [{ address = \"127.0.0.1:${PORT[switchyard]}\", tls = { cert = \"cert.pem\", key = \"key.pem\" } }]|" \
    "$WORK/switchyard.toml" >"$dir/switchyard.toml"
  "$SWITCHYARD" check --config "$dir/switchyard.toml" >/dev/null
  grep -q "ssl_certificate " "$dir/nginx/nginx.conf" && grep -q "ssl crt" "$dir/haproxy.cfg"
}

cpu_ticks() { awk '{t += $14 + $15} END {print t}' $(for p in $MEASURE_PIDS; do echo "/proc/$p/stat"; done); }
# Microseconds of the proxy's CPU between tick counts $1 and $2, per $3 events.
per_event_us() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICKS" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / t / n : 0) }'; }

# Appends "measure target round value" lines to $RAW.
RAW=$WORK/raw.txt
: >"$RAW"
record() { echo "$1 $2 $3 $4" >>"$RAW"; log "$2 round $3: $1 = $4"; }

measure_full_handshakes() {
  local kind=$1 target=$2 round=$3 port=${PORT[$2]} before after n
  before=$(cpu_ticks)
  n=$("${PIN_LOAD[@]}" openssl s_time -connect "127.0.0.1:$port" -new -time 5 -tls1_3 2>&1 |
      awk '/real seconds/ {print $1}')
  after=$(cpu_ticks)
  record "full_handshake_us_$kind" "$target" "$round" "$(per_event_us "$before" "$after" "${n:-0}")"
}

# wrk for 6 s with the arguments after $3: records the rate as $1_per_s and the proxy's
# CPU per request as $1_us.
measure_wrk() {
  local name=$1 target=$2 round=$3 before after rate
  shift 3
  before=$(cpu_ticks)
  rate=$("${PIN_LOAD[@]}" wrk -t1 -d6s "$@" | awk '/Requests\/sec/ {print $2}')
  after=$(cpu_ticks)
  record "${name}_per_s" "$target" "$round" "$rate"
  record "${name}_us" "$target" "$round" "$(per_event_us "$before" "$after" "$(awk -v r="$rate" 'BEGIN {print r * 6}')")"
}

measure_ecdsa_only() {
  local target=$1 round=$2 port=${PORT[$1]} out
  out=$("${PIN_LOAD[@]}" python3 "$CLIENTS" idle-wss "$port" 2000 "${MEASURE_PIDS// /,}")
  record idle_wss_kib "$target" "$round" "${out#kib_per_tunnel=}"
  for version in 1.3 1.2; do
    out=$("${PIN_LOAD[@]}" python3 "$CLIENTS" resume "$port" 600 "$version")
    record "resumed_of_600_tls${version/./}" "$target" "$round" "$(echo "$out" | sed 's/resumed=\([0-9]*\) .*/\1/')"
  done
  measure_wrk resumed_conn "$target" "$round" -c32 -H "Connection: close" "https://127.0.0.1:$port/"
  measure_wrk keepalive_req "$target" "$round" -c64 "https://127.0.0.1:$port/"
}

for kind in ecdsa rsa; do
  tls_configs "$kind"
  for round in $(seq "$ROUNDS"); do
    for target in $TARGETS; do
      launch_proxy "$target" "$WORK/$kind" "${PORT[$target]}"
      PROXY_PID=$LAUNCHED_PID MEASURE_PIDS=$LAUNCHED_MEASURE_PIDS
      sleep 0.5
      [ "$kind" = ecdsa ] && measure_ecdsa_only "$target" "$round"
      measure_full_handshakes "$kind" "$target" "$round"
      stop_target
    done
  done
done

# ---------------------------------------------------------------- the table
python3 - "$RAW" "$RESULTS/results.md" "$TARGETS" "$ROUNDS" "$(git -C "$ROOT" rev-parse --short HEAD)" \
  "$(nginx -v 2>&1 | sed 's|.*/||')" "$(haproxy -v | awk 'NR==1 {print $3}')" <<'EOF'
import statistics, sys, datetime
raw, out, targets, rounds, commit, nginx_v, haproxy_v = sys.argv[1:8]
targets = targets.split()
values = {}
for line in open(raw):
    measure, target, _round, value = line.split()
    values.setdefault((measure, target), []).append(float(value))
rows = [
    ("full_handshake_us_ecdsa", "full handshake, ECDSA P-256: proxy CPU µs", "lower"),
    ("full_handshake_us_rsa", "full handshake, RSA-2048: proxy CPU µs", "lower"),
    ("resumed_of_600_tls13", "returning clients resumed, TLS 1.3 (of 600)", "higher"),
    ("resumed_of_600_tls12", "returning clients resumed, TLS 1.2 (of 600)", "higher"),
    ("resumed_conn_us", "resumed connection + 1 request: proxy CPU µs", "lower"),
    ("resumed_conn_per_s", "… connections/s (load core bound)", "higher"),
    ("keepalive_req_us", "keep-alive HTTPS request: proxy CPU µs", "lower"),
    ("keepalive_req_per_s", "… requests/s", "higher"),
    ("idle_wss_kib", "idle wss tunnel: proxy RSS KiB", "lower"),
]
lines = [
    "# TLS termination, side by side",
    "",
    f"`bash bench/tls.sh` at `{commit}`, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
    f"nginx {nginx_v}, HAProxy {haproxy_v}; medians of {rounds} interleaved rounds; "
    "each proxy pinned to one core, the clients (openssl s_time, wrk, Python's ssl) and "
    "the backend to the other. CPU from /proc (utime + stime) over each run.",
    "",
    "| measure | " + " | ".join(targets) + " | switchyard vs the better peer |",
    "|---|" + "--:|" * len(targets) + "--:|",
]
for key, label, better in rows:
    medians = {t: statistics.median(values[(key, t)]) for t in targets if (key, t) in values}
    if not medians:
        continue
    cells = [
        ("-" if t not in medians else f"{medians[t]:,.0f}" if medians[t] >= 1000
         or medians[t].is_integer() else f"{medians[t]:,.1f}")
        for t in targets
    ]
    ratio = "-"
    peers = [medians[t] for t in ("nginx", "haproxy") if t in medians and medians[t] > 0]
    if "switchyard" in medians and peers and not key.startswith("resumed_of"):
        best = min(peers) if better == "lower" else max(peers)
        ratio = f"{medians['switchyard'] / best:.2f}×"
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
lines += ["", "Every round:", ""]
for (key, target), vs in sorted(values.items()):
    lines.append(f"- {key} {target}: " + ", ".join(f"{v:g}" for v in vs))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "wrote $RESULTS/results.md"

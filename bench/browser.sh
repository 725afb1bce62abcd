#!/usr/bin/env bash
# What a real browser reports when the backend behind a WebSocket dies: headless
# Chromium opens a WebSocket through nginx, HAProxy and switchyard (the configurations
# of run.sh), checks an echo, then the backend is killed with SIGKILL and the page's
# CloseEvent is recorded. nginx and HAProxy pass on a bare TCP close, which a browser
# reports as 1006 (abnormal closure, no reason); switchyard sends Close 1014.
#
#   bash bench/browser.sh                        # ~1 minute
#   bash bench/browser.sh --targets "switchyard"
#   bash bench/browser.sh --idle 75              # first, 75 s quiet then one more echo:
#                                                # does a healthy idle WebSocket survive
#                                                # the 60 s idle timeouts? (~5 minutes)
#
# Installs Debian's chromium (apt-get) and playwright-core (npm, into the work directory)
# if missing; needs Node.js. Writes bench/results/browser/results.md (BENCH_RESULTS to
# change). Exits 1 if switchyard's echo fails or its close is not a clean 1014.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS="nginx haproxy switchyard"
IDLE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/browser}
mkdir -p "$RESULTS"

LOG_TAG=browser
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 26500
PAGE_PORT=$((PORT_BASE + 9))

install_proxies
build_tools
raise_nofile
setup_pinning
setup_work switchyard-browser
write_configs
setup_browser

# A page from a loopback origin, for the WebSocket to be opened from.
mkdir -p "$WORK/www" && echo '<!doctype html><title>switchyard browser check</title>' >"$WORK/www/index.html"
python3 -m http.server "$PAGE_PORT" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/page.log" 2>&1 &
EXTRA_PIDS=$!
wait_port "$PAGE_PORT"

PROXY_PREFIX=("${PIN_PROXY[@]}")
: >"$WORK/results.jsonl"
for target in $TARGETS; do
  log "$target"
  start_backend
  if ! start_target "$target"; then
    log "  $target did not start"
    kill "$BACKEND_PID" 2>/dev/null || true; wait "$BACKEND_PID" 2>/dev/null || true
    continue
  fi
  out=$WORK/$target.out
  node "$ROOT/bench/browser.js" "http://127.0.0.1:$PAGE_PORT/" "ws://127.0.0.1:${PORT[$target]}/" "$IDLE" >"$out" 2>"$WORK/$target.err" &
  node_pid=$!
  for _ in $(seq $((100 + IDLE * 10))); do grep -q READY "$out" && break; sleep 0.1; done
  kill -KILL "$BACKEND_PID" 2>/dev/null || true
  wait "$BACKEND_PID" 2>/dev/null || true
  BACKEND_PID=""
  wait "$node_pid" || true
  line=$(grep -v READY "$out" | tail -1)
  echo "{\"target\": \"$target\", \"result\": ${line:-null}}" >>"$WORK/results.jsonl"
  log "  $line"
  stop_target
done

python3 - "$WORK/results.jsonl" "$RESULTS/results.md" "$(chromium --version 2>/dev/null || "$CHROMIUM" --version)" \
  "${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}" "$IDLE" <<'PY'
import datetime, json, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
idle = int(sys.argv[5])
lines = [
    "%s, headless, through each proxy to the benchmark backend's WebSocket echo; %sthe"
    " backend killed with SIGKILL after the echo. switchyard %s, %s." % (
        sys.argv[3],
        "after one echo the page stays quiet for %d s and sends once more; " % idle if idle else "",
        sys.argv[4], datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    "",
    "| target | echo |%s the page's CloseEvent when the backend dies: code | reason | wasClean |"
    % (" after %d s idle |" % idle if idle else ""),
    "|---|---|%s--:|---|---|" % ("---|" if idle else ""),
]
ok = False
for row in rows:
    result = row["result"] or {"error": "no result"}
    closed = result.get("closed") or {}
    echo = "ok" if result.get("echo") == "hello from chromium" else result.get("error", "no echo")
    after = result.get("afterIdle") or {}
    if after.get("closedWhileIdle"):
        c = after["closedWhileIdle"]
        idle_cell = "closed after %s s: %s %s, wasClean %s" % (
            c.get("afterSeconds"), c.get("code"), json.dumps(c.get("reason", "")), json.dumps(c.get("wasClean")))
    else:
        idle_cell = "ok" if str(after.get("echo", "")).startswith("still there") else after.get("error", "no echo")
    lines.append("| %s | %s |%s %s | %s | %s |" % (
        row["target"], echo, " %s |" % idle_cell if idle else "",
        closed.get("code", closed.get("error", "—")),
        json.dumps(closed.get("reason", "")) if closed else "—",
        json.dumps(closed.get("wasClean")) if closed else "—"))
    if row["target"] == "switchyard":
        ok = echo == "ok" and closed.get("code") == 1014 and closed.get("wasClean") is True
        ok = ok and (not idle or idle_cell == "ok")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok or all(r["target"] != "switchyard" for r in rows) else 1)
PY

#!/usr/bin/env bash
# What a real browser sees of switchyard's WebSocket guards (nginx and HAProxy have
# neither): headless Chromium through switchyard with `websocket.max_message_size =
# 1000` and `websocket.allowed_origins` naming one page origin.
#  - From that page: the WebSocket opens and echoes; a 2,000-byte message then ends it
#    with the CloseEvent 1009 "message too big", wasClean true.
#  - From a page of another origin (another loopback address): the handshake is refused
#    with 403, which a browser reports only as an error and CloseEvent 1006; switchyard's
#    access log names the 403.
#
#   bash bench/browser_guards.sh          # ~1 minute
#
# Installs Debian's chromium and playwright-core as browser.sh does. Writes
# bench/results/browser-guards/results.md (BENCH_RESULTS to change). Exits 1 unless
# both pages see what is described above.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
case "${1:-}" in -h|--help) sed -n '2,15p' "$0"; exit 0 ;; esac

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/browser-guards}
mkdir -p "$RESULTS"

LOG_TAG=browser-guards
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 26600
PAGE_PORT=$((PORT_BASE + 9))
BIG=2000

build_tools
setup_work switchyard-browser-guards
setup_browser

# The same page from two origins: 127.0.0.1 (allowed) and 127.0.0.2 (not).
mkdir -p "$WORK/www" && echo '<!doctype html><title>switchyard guards</title>' >"$WORK/www/index.html"
for host in 127.0.0.1 127.0.0.2; do
  python3 -m http.server "$PAGE_PORT" --bind "$host" --directory "$WORK/www" >"$WORK/page-$host.log" 2>&1 &
  EXTRA_PIDS="$EXTRA_PIDS $!"
done
ALLOWED="http://127.0.0.1:$PAGE_PORT"
OTHER="http://127.0.0.2:$PAGE_PORT"

cat >"$WORK/switchyard.toml" <<TOML
listen = ["127.0.0.1:${PORT[switchyard]}"]
upstream = "127.0.0.1:$BACKEND_PORT"
[websocket]
max_message_size = 1000
allowed_origins = ["$ALLOWED"]
TOML
PIN_LOAD=()
start_backend
"$SWITCHYARD" --config "$WORK/switchyard.toml" >"$WORK/switchyard.log" 2>&1 &
PROXY_PID=$!
wait_port "${PORT[switchyard]}"

node "$ROOT/bench/browser_guards.js" "$ALLOWED/" "$OTHER/" "ws://127.0.0.1:${PORT[switchyard]}/" "$BIG" \
  >"$WORK/pages.jsonl" 2>"$WORK/node.err" || true
sleep 0.5
grep 'switchyard::access' "$WORK/switchyard.log" | sed 's/^[^ ]* *//' >"$WORK/access.log" || true

python3 - "$WORK/pages.jsonl" "$WORK/access.log" "$RESULTS/results.md" "$BIG" \
  "$("$CHROMIUM" --version 2>/dev/null || echo chromium)" \
  "${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}" <<'PY'
import datetime, json, sys

pages = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
access = [line.strip() for line in open(sys.argv[2])]
big = int(sys.argv[4])
allowed, other = (pages + [{}, {}])[:2]
close = lambda p: p.get("close") or {}
ok_allowed = (allowed.get("events", [])[:2] == ["open", "echo of 5 bytes"]
              and close(allowed) == {"code": 1009, "reason": "message too big", "wasClean": True})
refused_logged = any("status=403" in l and "origin not allowed" in l for l in access)
ok_other = "open" not in other.get("events", []) and close(other).get("code") == 1006 and refused_logged
lines = [
    "%s, headless, through switchyard %s (`max_message_size = 1000`, `allowed_origins` = the"
    " first page's origin) to the benchmark backend's WebSocket echo; %s." % (
        sys.argv[5], sys.argv[6],
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    "",
    "| page origin | what the page did | events | CloseEvent: code | reason | wasClean | as expected |",
    "|---|---|---|--:|---|---|---|",
]
for page, did, ok in [(allowed, "echo, then a %d-byte message" % big, ok_allowed),
                      (other, "open a WebSocket", ok_other)]:
    c = close(page)
    lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
        page.get("origin", page.get("error", "?")), did, ", ".join(page.get("events", [])),
        c.get("code", "—"), json.dumps(c.get("reason", "")), json.dumps(c.get("wasClean")),
        "yes" if ok else "**no**"))
lines += ["", "switchyard's access log:", "", "```"] + access + ["```"]
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok_allowed and ok_other else 1)
PY

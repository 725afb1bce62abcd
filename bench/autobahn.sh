#!/usr/bin/env bash
# RFC 6455 conformance through each proxy, both ways, with the Autobahn testsuite
# (framing, pings, fragmentation, UTF-8, close codes, limits, permessage-deflate),
# directly and through nginx, HAProxy and switchyard with the configurations of run.sh:
# its fuzzing client against its own echo server (what a proxy does with what clients
# send), and its testee client against its fuzzing server (with what servers send).
#
#   bash bench/autobahn.sh                      # both ways, every target, ~8 minutes
#   bash bench/autobahn.sh --cases "7.*"        # some cases
#   bash bench/autobahn.sh --all                # with the long compression cases, hours
#   bash bench/autobahn.sh --targets "direct switchyard"
#
# A proxy is judged against `direct`: it passes when no case ends worse through it
# (any case that Autobahn marks FAILED, WRONG CODE, UNCLEAN or FAILED BY CLIENT, or
# that differs from the direct run where direct passed). The exit status is 1 if
# switchyard does not pass.
#
# Needs Python 2.7 (the testsuite has no Python 3 version): `python2.7` on the PATH or
# a pyenv 2.7 (`pyenv install 2.7.18`). The testsuite is installed with pip --user if
# missing. Writes bench/results/autobahn/results.md (BENCH_RESULTS to change) and, with
# BENCH_KEEP_WORK=1, keeps Autobahn's HTML reports in the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS="direct nginx haproxy switchyard"
CASES="*"
# The compression cases 12.x.6-18 and 13.x.6-18 send 1,000 messages of 8 KiB to 1 MiB
# each, deflated in Python: hours per target. Sizes up to 4 KiB (x.1-5) run by default.
EXCLUDE=$(python3 -c 'import json; print(json.dumps(["%d.%d.%d" % (a, b, c) for a, n in ((12, 5), (13, 7)) for b in range(1, n + 1) for c in range(6, 19)]))')
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift ;;
    --cases) CASES=$2; shift ;;
    --all) EXCLUDE="[]" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/autobahn}
mkdir -p "$RESULTS"

LOG_TAG=autobahn
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
use_ports 27000

# ---------------------------------------------------------------- Python 2.7, the testsuite
find_python2() {
  local candidate version
  for candidate in python2.7 python2; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null; then
    version=$(pyenv versions --bare 2>/dev/null | grep '^2\.7' | tail -1 || true)
    if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python"; return 0; fi
  fi
  return 1
}
if ! PY2=$(find_python2); then
  echo "autobahn.sh needs Python 2.7 (python2.7 on the PATH, or 'pyenv install 2.7.18')." >&2
  exit 2
fi
if ! "$PY2" -c 'import autobahntestsuite' 2>/dev/null; then
  log "installing autobahntestsuite for $PY2 (pip --user)"
  "$PY2" -m pip install --quiet --user autobahntestsuite
fi
wstest() { "$PY2" -c 'import sys; from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; run()' "$@"; }

install_proxies
build_tools
raise_nofile
setup_pinning
setup_work switchyard-autobahn
write_configs

# ---------------------------------------------------------------- the runs
# Two sides of each proxy. "client": the fuzzing client, through the proxy, against
# the echo server (what the proxy does with what clients send). "server": the
# testsuite's testee client, through the proxy, against the fuzzing server (what it
# does with what servers send). A fuzzing server is started per target, so that each
# writes its own reports.
PROXY_PREFIX=("${PIN_PROXY[@]}")
REPORTS=$WORK/reports
CASE_LIST="[\"${CASES//,/\",\"}\"]"
start_upstream() {
  "${PIN_LOAD[@]}" "$PY2" "$@" >>"$WORK/upstream.log" 2>&1 &
  BACKEND_PID=$!
  wait_port "$BACKEND_PORT"
}
stop_upstream() { kill "$BACKEND_PID" 2>/dev/null || true; wait "$BACKEND_PID" 2>/dev/null || true; BACKEND_PID=""; }

start_upstream "$ROOT/bench/autobahn_echo.py" "$BACKEND_PORT"
for target in $TARGETS; do
  log "client side, $target: cases $CASE_LIST"
  start_target "$target" || { log "  $target did not start"; continue; }
  cat >"$WORK/spec.json" <<SPEC
{"outdir": "$REPORTS/client/$target", "servers": [{"agent": "$target", "url": "ws://127.0.0.1:${PORT[$target]}"}],
 "cases": $CASE_LIST, "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
SPEC
  (cd "$WORK" && wstest -m fuzzingclient -s "$WORK/spec.json") >"$WORK/client-$target.log" 2>&1 ||
    log "  wstest failed for $target (see $WORK/client-$target.log)"
  stop_target
done
stop_upstream

for target in $TARGETS; do
  log "server side, $target: cases $CASE_LIST"
  cat >"$WORK/spec.json" <<SPEC
{"url": "ws://127.0.0.1:$BACKEND_PORT", "outdir": "$REPORTS/server/$target",
 "cases": $CASE_LIST, "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
SPEC
  start_upstream "$ROOT/bench/autobahn_fuzzingserver.py" "$WORK/spec.json"
  if start_target "$target"; then
    (cd "$WORK" && wstest -m testeeclient -w "ws://127.0.0.1:${PORT[$target]}") >"$WORK/server-$target.log" 2>&1 ||
      log "  wstest failed for $target (see $WORK/server-$target.log)"
    stop_target
  else
    log "  $target did not start"
  fi
  stop_upstream
done

# ---------------------------------------------------------------- report
AB_VERSION=$("$PY2" -c 'import autobahntestsuite; print(autobahntestsuite.__version__)')
REV=${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}
python3 - "$REPORTS" "$RESULTS/results.md" "$TARGETS" "$AB_VERSION" "$REV" <<'PY'
import collections, datetime, json, os, sys

reports, out_path, targets, version, rev = sys.argv[1:6]
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}
SIDES = [
    ("client", "What clients send: the fuzzing client, through the proxy, to the echo server"),
    ("server", "What servers send: the testee client, through the proxy, to the fuzzing server"),
]


def outcome(case):
    return case["behavior"], case["behaviorClose"]


def bad(case):
    return case["behavior"] not in GOOD or case["behaviorClose"] not in GOOD_CLOSE


def key(case_id):
    return [int(part) for part in case_id.split(".")]


def load(side, target):
    path = os.path.join(reports, side, target, "index.json")
    if not os.path.exists(path):
        return None
    agents = json.load(open(path))
    return next(iter(agents.values())) if agents else None


lines = [
    "Autobahn testsuite %s (RFC 6455), switchyard %s, %s. The echo server accepts"
    " permessage-deflate; the proxies are configured as in run.sh." % (
        version, rev, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
]
switchyard_worse = False
for side, title in SIDES:
    results = {t: load(side, t) for t in targets.split()}
    results = {t: r for t, r in results.items() if r is not None}
    direct = results.get("direct", {})
    lines += [
        "",
        "### " + title,
        "",
        "| target | cases | OK | NON-STRICT | INFORMATIONAL | UNIMPLEMENTED | failed | worse than direct |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for target, cases in results.items():
        counts = collections.Counter(case["behavior"] for case in cases.values())
        failed = [c for c in cases if bad(cases[c])]
        worse = [c for c in cases if c in direct and outcome(cases[c]) != outcome(direct[c])
                 and (bad(cases[c]) or cases[c]["behavior"] != "OK" and direct[c]["behavior"] == "OK")]
        if target == "switchyard" and (worse or (failed and not direct)):
            switchyard_worse = True
        lines.append("| %s | %d | %d | %d | %d | %d | %d | %s |" % (
            target, len(cases), counts["OK"], counts["NON-STRICT"], counts["INFORMATIONAL"],
            counts["UNIMPLEMENTED"], len(failed), "—" if target == "direct" else len(worse)))
        for case_id in sorted(set(failed) | set(worse), key=key):
            was = direct.get(case_id)
            notes.append("- %s, case %s: %s / %s%s" % (
                (target, case_id) + outcome(cases[case_id])
                + ("" if was is None else " (direct: %s / %s)" % outcome(was),)))
    if notes:
        lines += [""] + notes
if "switchyard" in targets.split() and not os.path.exists(os.path.join(reports, "client", "switchyard")):
    switchyard_worse = True
open(out_path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if switchyard_worse else 0)
PY

#!/usr/bin/env bash
# RFC 6455 conformance through each proxy: the Autobahn testsuite's fuzzing client
# (517 cases: framing, pings, fragmentation, UTF-8, close codes, limits,
# permessage-deflate) against the testsuite's own echo server, directly and through
# nginx, HAProxy and switchyard, with the configurations of run.sh.
#
#   bash bench/autobahn.sh                      # every target, ~4 minutes
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

PORT_BASE=${BENCH_PORT_BASE:-27000}
BACKEND_PORT=$PORT_BASE
declare -A PORT=([direct]=$PORT_BASE [nginx]=$((PORT_BASE + 1)) [haproxy]=$((PORT_BASE + 2))
                 [relay]=$((PORT_BASE + 3)) [switchyard]=$((PORT_BASE + 4)))
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/autobahn}
mkdir -p "$RESULTS"

LOG_TAG=autobahn
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

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
"${PIN_LOAD[@]}" "$PY2" "$ROOT/bench/autobahn_echo.py" "$BACKEND_PORT" >"$WORK/echo.log" 2>&1 &
BACKEND_PID=$!
wait_port "$BACKEND_PORT"
PROXY_PREFIX=("${PIN_PROXY[@]}")
REPORTS=$WORK/reports
for target in $TARGETS; do
  log "$target: cases '$CASES'"
  start_target "$target" || { log "  $target did not start"; continue; }
  cat >"$WORK/spec.json" <<EOF
{"outdir": "$REPORTS/$target", "servers": [{"agent": "$target", "url": "ws://127.0.0.1:${PORT[$target]}"}],
 "cases": ["${CASES//,/\",\"}"], "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
EOF
  (cd "$WORK" && wstest -m fuzzingclient -s "$WORK/spec.json") \
    >"$WORK/wstest-$target.log" 2>&1 || log "  wstest failed for $target (see $WORK/wstest-$target.log)"
  stop_target
done

# ---------------------------------------------------------------- report
AB_VERSION=$("$PY2" -c 'import autobahntestsuite; print(autobahntestsuite.__version__)')
REV=${BENCH_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}
python3 - "$REPORTS" "$RESULTS/results.md" "$TARGETS" "$AB_VERSION" "$REV" <<'PY'
import collections, datetime, json, os, sys

reports, out_path, targets, version, rev = sys.argv[1:6]
index = {}
for target in targets.split():
    path = os.path.join(reports, target, "index.json")
    if os.path.exists(path):
        index.update(json.load(open(path)))
targets = [t for t in targets.split() if t in index]
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}

def outcome(case):
    return case["behavior"], case["behaviorClose"]

def bad(case):
    return case["behavior"] not in GOOD or case["behaviorClose"] not in GOOD_CLOSE

def key(case_id):
    return [int(part) for part in case_id.split(".")]

direct = index.get("direct", {})
lines = [
    "Autobahn testsuite %s: its fuzzing client against its own echo server (permessage-deflate"
    " accepted), switchyard %s, %s." % (
        version, rev, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    "",
    "| target | cases | OK | NON-STRICT | INFORMATIONAL | UNIMPLEMENTED | failed | worse than direct |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
]
failing = {}
for target in targets:
    cases = index[target]
    counts = collections.Counter(case["behavior"] for case in cases.values())
    failed = sorted((c for c in cases if bad(cases[c])), key=key)
    worse = sorted(
        (c for c in cases if c in direct and outcome(cases[c]) != outcome(direct[c])
         and (bad(cases[c]) or cases[c]["behavior"] != "OK" and direct[c]["behavior"] == "OK")),
        key=key)
    failing[target] = sorted(set(failed) | set(worse), key=key)
    lines.append("| %s | %d | %d | %d | %d | %d | %d | %s |" % (
        target, len(cases), counts["OK"], counts["NON-STRICT"], counts["INFORMATIONAL"],
        counts["UNIMPLEMENTED"], len(failed), "—" if target == "direct" else len(worse)))
lines.append("")
for target in targets:
    for case_id in failing[target]:
        case = index[target][case_id]
        was = direct.get(case_id)
        lines.append("- %s, case %s: %s / %s%s" % (
            target, case_id, case["behavior"], case["behaviorClose"],
            "" if was is None else " (direct: %s / %s)" % outcome(was)))
open(out_path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if failing.get("switchyard") else 0)
PY

#!/usr/bin/env bash
# Bounded fuzzing for CI: builds every target in fuzz/fuzz_targets, then runs each one
# for $1 seconds (default 20) starting from its checked-in seed corpus. Fails on the
# first crash or broken invariant and prints the input that did it as hex.
#
# Needs only the stable toolchain: cargo-fuzz's -Z flags are allowed with
# RUSTC_BOOTSTRAP=1, and cargo-fuzz itself is installed from crates.io if missing.
# FUZZ_SEED (default 1) fixes libFuzzer's seed so that a CI run is repeatable.
set -euo pipefail

seconds="${1:-20}"
seed="${FUZZ_SEED:-1}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets"
cargo fuzz build --fuzz-dir "$fuzz_dir"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for target in $(cargo fuzz list --fuzz-dir "$fuzz_dir"); do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "$work/$target" "$work/artifacts/$target"
  # New inputs go to the scratch corpus (first directory); the seeds stay untouched.
  if ! cargo fuzz run --fuzz-dir "$fuzz_dir" "$target" "$work/$target" "$fuzz_dir/corpus/$target" -- \
      -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$work/artifacts/$target/" >"$work/$target.log" 2>&1; then
    status=1
    echo "!! $target failed:"
    # The broken invariant (the panic message), or libFuzzer's own summary.
    sed -n '/panicked at/,/^stack backtrace/p' "$work/$target.log" | grep -v '^stack backtrace' | head -n 40
    grep -E '^(==[0-9]+==ERROR|SUMMARY|ERROR: libFuzzer)' "$work/$target.log" | head -n 5 || true
    for input in "$work/artifacts/$target"/*; do
      [ -f "$input" ] || continue
      echo "!! input $(basename "$input") ($(wc -c <"$input") bytes), hex:"
      od -An -v -tx1 "$input" | tr -d ' \n'
      echo
      echo "!! reproduce: save those bytes to a file and run"
      echo "   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $target <file>"
    done
  else
    grep -E '^(stat::number_of_executed_units|Done )' "$work/$target.log" || true
  fi
done
exit "$status"

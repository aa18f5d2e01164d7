#!/usr/bin/env bash
# Runs every check: lint, format, type check, and the whole test suite (as root:
# the agent tests load real eBPF programs into this machine's kernel). Ends with
# one line "N passed, N failed" counting test cases.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1

failed_checks=0
run_check() {
  local name=$1
  shift
  if "$@" >/tmp/ebpfmonitor-check.log 2>&1; then
    echo "check $name: ok"
  else
    echo "check $name: FAILED"
    tail -n 30 /tmp/ebpfmonitor-check.log
    failed_checks=$((failed_checks + 1))
  fi
}
run_check lint deno lint
run_check fmt deno fmt --check
run_check types deno check main.ts agent.ts bench/ tests/

log=$(mktemp)
deno test -A --no-prompt "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Deno's closing line: "ok | 12 passed (3 steps) | 0 failed (2s)".
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
rm -f "$log"
if [ -z "$summary" ]; then
  echo "scripts/test.sh: deno test printed no summary (exit $status)"
  passed=0
  failed=1
fi
failed=$((failed + failed_checks))
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs every check: lint, format, type check, and the whole test suite (as root:
# the agent tests load real eBPF programs into this machine's kernel). Ends with
# one line "N passed, N failed, N skipped" counting test cases (skipped: the
# tests Deno ignored, e.g. root-only tests in a run without root).
#
# STRESS=1 keeps the machine busy while the suite runs: two CPU hogs
# (`yes > /dev/null`), stopped when the script ends, however it ends. The suite
# must pass so too: tests bound work, not wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1

hogs=()
stop_hogs() {
  local pid
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null; done
  hogs=()
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT
trap 'stop_hogs; exit 143' TERM
if [ "${STRESS:-0}" = 1 ]; then
  for _ in 1 2; do
    yes >/dev/null &
    hogs+=("$!")
  done
  echo "STRESS=1: two CPU hogs running (pids ${hogs[*]})"
fi

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

# Deno's closing line: "ok | 12 passed (3 steps) | 0 failed | 5 ignored (2s)".
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
skipped=0
if grep -qE '\| [0-9]+ ignored' <<<"$summary"; then
  skipped=$(sed -E 's/.*\| ([0-9]+) ignored.*/\1/' <<<"$summary")
fi
# Root-only tests say so in their names: "... (root)".
root_only=$(grep -cE '\(root\) \.\.\. ignored' "$log")
rm -f "$log"
if [ -z "$summary" ]; then
  echo "scripts/test.sh: deno test printed no summary (exit $status)"
  passed=0
  failed=1
fi
if [ "$(id -u)" -ne 0 ] && [ "$root_only" -gt 0 ]; then
  echo "************************************************************************"
  echo "NOT ROOT: $root_only root-only tests did NOT run (real eBPF, agents, VMs)."
  echo "Run scripts/test.sh as root to test what this project is about."
  echo "************************************************************************"
fi
failed=$((failed + failed_checks))
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]

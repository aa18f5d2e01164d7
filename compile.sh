#!/usr/bin/env bash
# Compiles ebpfmonitor into one executable: agent, IDS and the eBPF objects.
# `deno compile` needs the Deno runtime (denort) of the same version as deno;
# it cannot be downloaded on an air-gapped machine, so point DENORT_BIN at a
# copy of it. Without one, use `deno task bundle` (one JS file for `deno run`).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-ebpfmonitor}
if [ -z "${DENORT_BIN:-}" ]; then
  echo "compile.sh: set DENORT_BIN to a denort binary of deno $(deno --version | head -n 1 | cut -d' ' -f2): deno compile cannot download its runtime here (or use deno task bundle)" >&2
  exit 1
fi
if [ ! -x "$DENORT_BIN" ]; then
  echo "compile.sh: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 1
fi
DENORT_BIN="$DENORT_BIN" deno compile -A --unstable-vsock --output "$out" main.ts
echo "compile.sh: wrote $out"

#!/usr/bin/env bash
# Regenerates the small BTF fixtures from the C sources next to this script, and optionally the
# capture of this machine's vmlinux BTF (pass --vmlinux). The guest kernels' BTF (5.10, 6.1, 6.12)
# is captured from their Debian packages by capture_guests.ts (deno run -A capture_guests.ts).
# Needs clang (with the BPF target) and llvm-objcopy.
set -euo pipefail
cd "$(dirname "$0")"

CLANG=${CLANG:-clang}
OBJCOPY=${OBJCOPY:-$(command -v llvm-objcopy || command -v llvm-objcopy-14)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for src in kinds task_5_13 task_5_14 module_6_4 module_6_1 module_4_4 no_module drift_missing; do
	"$CLANG" -g -O2 -target bpf -c "$src.c" -o "$tmp/$src.o"
	"$OBJCOPY" --dump-section ".BTF=$src.btf" "$tmp/$src.o"
	echo "built $src.btf ($(stat -c %s "$src.btf") bytes)"
done

if [[ "${1:-}" == "--vmlinux" ]]; then
	gzip -9 <"/sys/kernel/btf/vmlinux" >"vmlinux-$(uname -r | cut -d. -f1,2).btf.gz"
	echo "captured vmlinux-$(uname -r | cut -d. -f1,2).btf.gz"
fi

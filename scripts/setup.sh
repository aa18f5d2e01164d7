#!/usr/bin/env bash
# Installs what ebpfmonitor needs on a fresh Debian 12 machine, as root:
# Debian's libbpf, bpftool, clang and llvm, and Deno from the npm registry
# (pinned), then caches the project's npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
APT_PACKAGES=(libbpf1 libbpf-dev bpftool clang llvm util-linux)
# The VM test bed (tests/vm/): QEMU, the guest's busybox, cpio for its initramfs, xz and zstd for kernel modules.
APT_PACKAGES+=(qemu-system-x86 busybox-static cpio xz-utils zstd)
# The bed's rootkit fixtures (tests/vm/fixtures.ts): kernel modules built with make and gcc-12
# against the 5.10 and 6.1 guests' headers (kbuild's tools need libelf), and in a debootstrapped
# trixie chroot (gcc-14) for the 6.12 guest.
APT_PACKAGES+=(make gcc gcc-12 libc6-dev libelf1 debootstrap)
# objdump, against which the x86 branch decoder is tested (tests/vm/detect_test.ts).
APT_PACKAGES+=(binutils)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages, and the agent needs root)" >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v deno >/dev/null 2>&1 || [ "$(deno --version | head -n 1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: npm is needed to install Deno from the npm registry (apt-get install npm)" >&2
    exit 1
  fi
  echo "setup.sh: installing deno $DENO_VERSION from the npm registry"
  npm install -g --no-fund --no-audit "deno@$DENO_VERSION"
fi
deno --version | head -n 1

# Fetch the npm packages named in deno.json (as pinned by deno.lock) once, up front.
deno install --frozen

/**
 * What the agent tells the IDS about the kernel it runs on. The agent passes
 * the kernel's own files through untouched; the IDS parses them.
 *
 * @module
 */

import type { KernelInfo } from "../wire/ops.ts";

/** Where the kernel's BTF and symbols are read from. */
export const BTF_PATH = "/sys/kernel/btf/vmlinux";
/** The kernel's symbol table (addresses visible to root only). */
export const KALLSYMS_PATH = "/proc/kallsyms";

let pageSize: number | undefined;

/** The system page size, from libc's getpagesize(). */
export function systemPageSize(): number {
  if (pageSize === undefined) {
    const libc = Deno.dlopen(
      "libc.so.6",
      {
        getpagesize: { parameters: [], result: "i32" },
      } as const,
    );
    pageSize = libc.symbols.getpagesize();
    libc.close();
  }
  return pageSize;
}

/** Reads the kernel facts. */
export function kernelInfo(): KernelInfo {
  let btfBytes = 0;
  try {
    btfBytes = Deno.statSync(BTF_PATH).size;
  } catch {
    // no BTF: reported as 0, the IDS says what that means
  }
  return {
    release: Deno.osRelease(),
    arch: Deno.build.arch,
    page_size: systemPageSize(),
    btf_bytes: btfBytes,
    hostname: Deno.hostname(),
  };
}

/**
 * Reads a file in chunks of at most `chunkBytes` (kernel files such as
 * /proc/kallsyms report size 0, so the file is read until its end).
 */
export async function* readChunks(path: string, chunkBytes: number): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  for (;;) {
    const buffer = new Uint8Array(chunkBytes);
    let filled = 0;
    while (filled < chunkBytes) {
      const n = await file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled > 0) yield buffer.subarray(0, filled);
    if (filled < chunkBytes) return;
  }
}

/**
 * Fixture loading and a tiny BTF writer for the profile tests.
 * @module
 */

import { Btf } from "../../ids/profile/btf.ts";
import { Kallsyms } from "../../ids/profile/kallsyms.ts";

/** Reads a file from tests/testdata. */
export function testdata(path: string): Uint8Array {
  return Deno.readFileSync(new URL(`../testdata/${path}`, import.meta.url));
}

/** Parses tests/testdata/btf/<name>.btf. */
export function fixtureBtf(name: string): Btf {
  return Btf.parse(testdata(`btf/${name}.btf`));
}

/** Parses tests/testdata/kallsyms/<name>.kallsyms. */
export function fixtureKallsyms(name: string): Kallsyms {
  return Kallsyms.parse(new TextDecoder().decode(testdata(`kallsyms/${name}.kallsyms`)));
}

/**
 * Decompresses tests/testdata/btf/vmlinux-<kernel>.btf.gz: by default 6.18, this machine's
 * captured BTF; 5.10, 6.1 and 6.12 are the bed's guest kernels (capture_guests.ts).
 */
export async function vmlinuxBtfBytes(kernel = "6.18"): Promise<Uint8Array> {
  const stream = new Blob([testdata(`btf/vmlinux-${kernel}.btf.gz`) as BlobPart]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** One hand-written BTF type: kind, name, vlen, kind_flag, size/type and trailing u32 words. */
export interface RawType {
  kind: number;
  name?: string;
  vlen?: number;
  kindFlag?: boolean;
  sizeOrType: number;
  /** Trailing data as u32 words; strings given as `{ name }` become string offsets. */
  extra?: (number | { name: string })[];
}

/** Builds a little-endian BTF blob from hand-written types, for kinds clang 14 cannot emit. */
export function buildBtf(types: RawType[]): Uint8Array {
  const strings: number[] = [0];
  const stringOffsets = new Map<string, number>([["", 0]]);
  const str = (s: string): number => {
    let off = stringOffsets.get(s);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(s, off);
      strings.push(...new TextEncoder().encode(s), 0);
    }
    return off;
  };
  const words: number[] = [];
  for (const t of types) {
    const info = ((t.kindFlag ? 1 : 0) << 31) | (t.kind << 24) | (t.vlen ?? 0);
    words.push(str(t.name ?? ""), info >>> 0, t.sizeOrType);
    for (const w of t.extra ?? []) words.push(typeof w === "number" ? w >>> 0 : str(w.name));
  }
  const typeLen = words.length * 4;
  const bytes = new Uint8Array(24 + typeLen + strings.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0xeb9f, true);
  view.setUint8(2, 1);
  view.setUint32(4, 24, true);
  view.setUint32(8, 0, true);
  view.setUint32(12, typeLen, true);
  view.setUint32(16, typeLen, true);
  view.setUint32(20, strings.length, true);
  words.forEach((w, i) => view.setUint32(24 + 4 * i, w, true));
  bytes.set(strings, 24 + typeLen);
  return bytes;
}

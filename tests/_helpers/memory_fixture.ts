/**
 * Captured guest memory for the offline OS-view tests: the pages of one bulk
 * task walk, the kallsyms lines the profile needs, and what ps and /proc said
 * at capture time. Written by capture.ts (run by hand, as root), read by the
 * tests with no kernel access.
 *
 * @module
 */
import { PageCache } from "../../ids/memory/page_cache.ts";
import { Btf } from "../../ids/profile/btf.ts";
import { Kallsyms } from "../../ids/profile/kallsyms.ts";
import { KernelProfile } from "../../ids/profile/profile.ts";
import type { ProcessInfo } from "../../ids/os/tasks.ts";
import type { SocketInfo } from "../../ids/os/sockets.ts";
import type { HashTable } from "../../ids/memory/hash.ts";

/** A process as the fixture stores it: a ProcessInfo with its address as a hex string. */
export type FixtureProcess = Omit<ProcessInfo, "addr"> & { addr: string };

/** A process as /proc showed it, before and after the walk (unchanged between). */
export interface FixtureProcEntry {
  pid: number;
  ppid: number;
  comm: string;
  fullComm: string;
  uid: number;
}

/** The JSON inside tests/testdata/memory/*.json.gz. */
export interface MemoryFixture {
  /** Kernel release the memory came from (`uname -r`). */
  release: string;
  /** Page size. */
  pageSize: number;
  /** When the capture was made (ISO 8601). */
  captured: string;
  /** The task the walk started at (hex). */
  start: string;
  /** The kallsyms lines the kernel profile reads (text range, data symbols when present). */
  kallsyms: string;
  /** The pages, base64, by page address in hex. */
  pages: Record<string, string>;
  /** `listTasks` over these pages at capture time. */
  expected: FixtureProcess[];
  /** /proc at capture time: processes whose pid, ppid, comm and uid did not change. */
  proc: FixtureProcEntry[];
}

/** A hash table as a socket fixture stores it: a HashTable with its base as hex. */
export type FixtureTable = Omit<HashTable, "base"> & { base: string };

/** The JSON inside tests/testdata/memory/*-sockets.json.gz (written by capture_sockets.ts). */
export interface SocketFixture {
  /** Kernel release the memory came from. */
  release: string;
  /** Page size. */
  pageSize: number;
  /** When the capture was made (ISO 8601). */
  captured: string;
  /** The initial network namespace's socket tables (hex addresses). */
  tables: {
    net: string;
    tcpListen: FixtureTable;
    tcpEstablished: FixtureTable;
    udp: FixtureTable;
  };
  /** The bulk walk's records, in order: kind, addr (hex), value (decimal), payload (base64). */
  records: { kind: number; addr: string; value: string; payload: string }[];
  /** `listSockets` over these records at capture time. */
  expected: SocketInfo[];
  /** /proc/net at capture time: sockets unchanged from before the walk to after it. */
  proc: SocketInfo[];
}

/** Reads tests/testdata/memory/NAME.json.gz as a socket fixture. */
export async function loadSocketFixture(name: string): Promise<SocketFixture> {
  const bytes = await Deno.readFile(new URL(`${name}.json.gz`, MEMORY_FIXTURE_DIR));
  return JSON.parse(new TextDecoder().decode(await gunzip(bytes))) as SocketFixture;
}

/** Where the fixtures live. */
export const MEMORY_FIXTURE_DIR = new URL("../testdata/memory/", import.meta.url);

/** Bytes to base64. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Base64 to bytes. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** gzip of `bytes`. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Reads tests/testdata/memory/NAME.json.gz. */
export async function loadMemoryFixture(name: string): Promise<MemoryFixture> {
  const bytes = await Deno.readFile(new URL(`${name}.json.gz`, MEMORY_FIXTURE_DIR));
  return JSON.parse(new TextDecoder().decode(await gunzip(bytes))) as MemoryFixture;
}

/** The fixture's pages in a fresh cache (copies: a test may patch them). */
export function fixtureCache(fixture: MemoryFixture): PageCache {
  const cache = new PageCache(fixture.pageSize);
  for (const [addr, data] of Object.entries(fixture.pages)) {
    cache.put(BigInt(`0x${addr}`), fromBase64(data));
  }
  return cache;
}

let vmlinuxBtf: Btf | undefined;

/** This machine's captured BTF, tests/testdata/btf/vmlinux-6.18.btf.gz (parsed once). */
export async function capturedBtf(): Promise<Btf> {
  if (vmlinuxBtf === undefined) {
    const bytes = await Deno.readFile(
      new URL("../testdata/btf/vmlinux-6.18.btf.gz", import.meta.url),
    );
    vmlinuxBtf = Btf.parse(await gunzip(bytes));
  }
  return vmlinuxBtf;
}

/** The profile of the fixture's kernel, from the captured BTF and the fixture's kallsyms. */
export async function fixtureProfile(fixture: MemoryFixture): Promise<KernelProfile> {
  return new KernelProfile({
    release: fixture.release,
    btf: await capturedBtf(),
    kallsyms: Kallsyms.parse(fixture.kallsyms),
    pageSize: fixture.pageSize,
  });
}

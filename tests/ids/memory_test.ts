// The memory layer and its page cache, over a small in-test page source (a Map of pages).
import assert from "node:assert/strict";
import { KernelMemory, MemoryFault, type PageSource } from "../../ids/memory/memory.ts";
import { PageCache } from "../../ids/memory/page_cache.ts";

const PAGE = 4096;
const BASE = 0xffff_8881_0000_0000n;

/** Pages kept in a Map; a listed page address fails; counts every read. */
class MapPageSource implements PageSource {
  readonly reads: bigint[] = [];
  constructor(readonly pages: Map<bigint, Uint8Array>, readonly faulting = new Set<bigint>()) {}

  readPage(page: bigint): Promise<Uint8Array> {
    this.reads.push(page);
    if (this.faulting.has(page)) {
      return Promise.reject(new MemoryFault(page, "unreadable (EFAULT 14)"));
    }
    const bytes = this.pages.get(page);
    if (bytes === undefined) return Promise.reject(new MemoryFault(page, "no such page"));
    return Promise.resolve(bytes.slice());
  }
}

/** A page whose byte i is (seed + i) & 0xff. */
function patterned(seed: number): Uint8Array {
  return Uint8Array.from({ length: PAGE }, (_, i) => (seed + i) & 0xff);
}

function threePages(): Map<bigint, Uint8Array> {
  return new Map([0, 1, 2].map((i) => [BASE + BigInt(i * PAGE), patterned(i * 7)]));
}

Deno.test("PageCache rejects a page size that is not a power of two", () => {
  assert.throws(() => new PageCache(3000), /power of two/);
  assert.throws(() => new PageCache(0), /power of two/);
  assert.equal(new PageCache(16384).pageSize, 16384);
});

Deno.test("PageCache finds the page of an address and stores only whole, aligned pages", () => {
  const cache = new PageCache();
  assert.equal(cache.pageOf(BASE + 0x1234n), BASE + 0x1000n);
  assert.equal(cache.pageOf(0xffff_ffff_ffff_ffffn), 0xffff_ffff_ffff_f000n);
  assert.throws(() => cache.put(BASE, new Uint8Array(100)), /has 100 bytes, not 4096/);
  assert.throws(() => cache.put(BASE + 8n, new Uint8Array(PAGE)), /is not a page address/);
  cache.put(BASE, patterned(1));
  assert.equal(cache.size, 1);
  assert.equal(cache.get(BASE)?.[0], 1);
  assert.equal(cache.get(BASE + 0x1000n), undefined);
  cache.clear();
  assert.equal(cache.size, 0);
});

Deno.test("KernelMemory reads within a page and across page boundaries", async () => {
  const pages = threePages();
  const mem = new KernelMemory(new PageCache(), new MapPageSource(pages));
  assert.deepEqual(await mem.read(BASE + 10n, 4), patterned(0).subarray(10, 14));
  // 8 bytes across the first boundary, then two whole boundaries at once.
  const across = await mem.read(BASE + BigInt(PAGE - 4), 8);
  assert.deepEqual([...across], [
    ...patterned(0).subarray(PAGE - 4),
    ...patterned(7).subarray(0, 4),
  ]);
  const long = await mem.read(BASE + 100n, 2 * PAGE);
  assert.equal(long.byteLength, 2 * PAGE);
  assert.deepEqual(long.subarray(0, PAGE - 100), patterned(0).subarray(100));
  assert.deepEqual(long.subarray(PAGE - 100, 2 * PAGE - 100), patterned(7));
  assert.deepEqual(long.subarray(2 * PAGE - 100), patterned(14).subarray(0, 100));
});

Deno.test("KernelMemory decodes little-endian u64, u32, i32 and C strings", async () => {
  const page = new Uint8Array(PAGE);
  const view = new DataView(page.buffer);
  view.setBigUint64(0, 0xffff_8881_0203_0405n, true);
  view.setUint32(8, 0xfffffffe, true);
  view.setInt32(12, -2, true);
  page.set(new TextEncoder().encode("kthreadd\0junk"), 16);
  page.set(new TextEncoder().encode("0123456789abcdef"), 48); // no NUL within 16 bytes
  // A u64 across the first page boundary, a string across the second.
  view.setUint32(PAGE - 4, 0x44332211, true);
  const middle = new Uint8Array(PAGE);
  new DataView(middle.buffer).setUint32(0, 0x88776655, true);
  middle.set(new TextEncoder().encode("sy"), PAGE - 2);
  const last = new Uint8Array(PAGE);
  last.set(new TextEncoder().encode("stemd\0"), 0);
  const pages = new Map([[BASE, page], [BASE + 0x1000n, middle], [BASE + 0x2000n, last]]);
  const mem = new KernelMemory(new PageCache(), new MapPageSource(pages));
  assert.equal(await mem.u64(BASE), 0xffff_8881_0203_0405n);
  assert.equal(await mem.u32(BASE + 8n), 0xfffffffe);
  assert.equal(await mem.i32(BASE + 8n), -2);
  assert.equal(await mem.i32(BASE + 12n), -2);
  assert.equal(await mem.cString(BASE + 16n, 16), "kthreadd");
  assert.equal(await mem.cString(BASE + 48n, 16), "0123456789abcdef");
  assert.equal(await mem.cString(BASE + 48n, 4), "0123");
  assert.equal(await mem.u64(BASE + BigInt(PAGE - 4)), 0x8877_6655_4433_2211n);
  assert.equal(await mem.cString(BASE + BigInt(2 * PAGE - 2), 16), "systemd");
});

Deno.test("KernelMemory counts one miss per page and reads cached pages without the source", async () => {
  const source = new MapPageSource(threePages());
  const mem = new KernelMemory(new PageCache(), source);
  for (let i = 0; i < 10; i++) await mem.u64(BASE + BigInt(8 * i));
  assert.equal(mem.misses, 1);
  await mem.read(BASE + 4000n, 3 * PAGE - 4000);
  assert.equal(mem.misses, 3, "the read touched two more pages");
  await mem.u32(BASE + 0x2000n);
  assert.equal(mem.misses, 3);
  assert.deepEqual(source.reads, [BASE, BASE + 0x1000n, BASE + 0x2000n]);
  assert.equal(mem.cache.size, 3);
});

Deno.test("KernelMemory reads pages put in the cache (bulk mode) with no miss", async () => {
  const cache = new PageCache();
  for (const [addr, bytes] of threePages()) cache.put(addr, bytes);
  const source = new MapPageSource(new Map());
  const mem = new KernelMemory(cache, source);
  await mem.read(BASE, 3 * PAGE);
  assert.equal(mem.misses, 0);
  assert.deepEqual(source.reads, []);
});

Deno.test("KernelMemory throws MemoryFault for a faulting page and never fetches it again", async () => {
  const bad = BASE + 0x1000n;
  const source = new MapPageSource(threePages(), new Set([bad]));
  const mem = new KernelMemory(new PageCache(), source);
  const first = await mem.u64(bad + 16n).catch((error) => error);
  assert.ok(first instanceof MemoryFault);
  assert.equal(first.addr, bad);
  assert.match(first.message, /Cannot read guest memory at 0xffff888100001000: unreadable/);
  await assert.rejects(mem.u32(bad + 100n), MemoryFault);
  await assert.rejects(mem.read(BASE + 4090n, 10), MemoryFault, "a read that crosses into it");
  assert.equal(source.reads.filter((page) => page === bad).length, 1);
  assert.equal(mem.misses, 2, "the faulting page and the page before it");
  assert.equal(await mem.u32(BASE + 0x2000n), 0x1110_0f0e, "other pages still read");
});

Deno.test("KernelMemory without a page source faults on every page not in the cache", async () => {
  const mem = new KernelMemory(new PageCache());
  await assert.rejects(mem.u64(BASE), (error: unknown) => {
    assert.ok(error instanceof MemoryFault);
    assert.match(error.message, /not in the cache/);
    return true;
  });
  assert.equal(mem.misses, 0);
});

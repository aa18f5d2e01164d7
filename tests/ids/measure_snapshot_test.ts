// measureSnapshot(): a snapshot taken again after a torn walk costs every attempt, in every counter.
import assert from "node:assert/strict";
import { measureSnapshot, SNAPSHOT_ATTEMPTS } from "../../ids/guest.ts";
import type { TrafficStats } from "../../ids/client/agent_client.ts";
import { KernelMemory, type PageSource } from "../../ids/memory/memory.ts";
import { PageCache } from "../../ids/memory/page_cache.ts";
import { ListWalkError } from "../../ids/os/list.ts";

const PAGE = 4096;
const BASE = 0xffff_8880_0100_0000n;

/** Pages of zeros, each read one round trip of `PAGE` bytes received, as the agent's would be. */
class CountingSource implements PageSource {
  readonly stats: TrafficStats = { roundTrips: 0, bytesSent: 0, bytesReceived: 0 };
  readPage(_page: bigint): Promise<Uint8Array> {
    this.stats.roundTrips++;
    this.stats.bytesSent += 32;
    this.stats.bytesReceived += PAGE;
    return Promise.resolve(new Uint8Array(PAGE));
  }
}

/** A body that reads `pages[attempt - 1]` pages, and meets a torn list on the attempts in `torn`. */
function walk(pages: number[], torn: Set<number>) {
  let attempt = 0;
  return async (mem: KernelMemory) => {
    attempt++;
    for (let i = 0; i < pages[attempt - 1]!; i++) await mem.u64(BASE + BigInt(i * PAGE));
    if (torn.has(attempt)) throw new ListWalkError("task list", BASE, "it loops");
    return [attempt];
  };
}

Deno.test("measureSnapshot() counts the misses, round trips and bytes of a torn attempt too", async () => {
  const source = new CountingSource();
  const memories: KernelMemory[] = [];
  const memory = () => {
    const mem = new KernelMemory(new PageCache(PAGE), source);
    memories.push(mem);
    return mem;
  };
  const result = await measureSnapshot(
    () => ({ ...source.stats }),
    memory,
    walk([5, 3], new Set([1])),
  );
  assert.deepEqual(result.items, [2]);
  assert.deepEqual(result.cost, {
    roundTrips: 8,
    bytes: 8 * (32 + PAGE),
    misses: 8,
    attempts: 2,
  });
  assert.equal(memories.length, 2, "a fresh memory for the second attempt");
  assert.equal(result.memory, memories[1]);
  // In page mode every miss is one round trip: the counters agree whatever the retries.
  assert.equal(result.cost.misses, result.cost.roundTrips);
});

Deno.test("measureSnapshot() gives up after SNAPSHOT_ATTEMPTS torn walks, and at once on another error", async () => {
  const source = new CountingSource();
  const memory = () => new KernelMemory(new PageCache(PAGE), source);
  const torn = new Set(Array.from({ length: SNAPSHOT_ATTEMPTS }, (_, i) => i + 1));
  await assert.rejects(
    measureSnapshot(() => source.stats, memory, walk([1, 1, 1, 1], torn)),
    ListWalkError,
  );
  assert.equal(source.stats.roundTrips, SNAPSHOT_ATTEMPTS);
  let calls = 0;
  await assert.rejects(
    measureSnapshot(() => source.stats, memory, () => {
      calls++;
      return Promise.reject(new Error("Agent could not run: failed"));
    }),
    /Agent could not run/,
  );
  assert.equal(calls, 1);
});

Deno.test("measureSnapshot() with one attempt leaves a torn walk to the caller's own retry (no nesting)", async () => {
  const source = new CountingSource();
  const memory = () => new KernelMemory(new PageCache(PAGE), source);
  await assert.rejects(
    measureSnapshot(() => source.stats, memory, walk([1, 1], new Set([1])), 1),
    ListWalkError,
  );
  assert.equal(source.stats.roundTrips, 1);
});

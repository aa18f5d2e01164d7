// read_pages against a real agent (as root): many named pages in one request, each equal to
// what read_page returns for it, and a user-space address refused for itself alone.
import assert from "node:assert/strict";
import { READ_PAGES_MAX } from "../../ids/memory/agent_pages.ts";
import { MemoryFault } from "../../ids/memory/memory.ts";
import { IS_ROOT, withGuest } from "../_helpers/agent.ts";
import { processView } from "../../ids/os/process_view.ts";
import { taskLayout } from "../../ids/os/tasks_layout.ts";

Deno.test({
  name: "KernelMemory.prefetch() fetches many pages in one request, the same bytes as one by one",
  ignore: !IS_ROOT,
  async fn() {
    await withGuest(async (guest) => {
      const { items } = await guest.acquire(processView(), "bulk");
      const mem = guest.memory();
      // Pages that do not change while we look: the first page of each process's comm.
      const addrs = items.map((p) => p.addr + BigInt(taskLayout(guest.profile).comm.offset));
      const user = 0x7f00_0000_0000n;
      const before = guest.client.stats.roundTrips;
      const requests = await mem.prefetch([...addrs, user]);
      const pages = new Set(addrs.map((a) => mem.cache.pageOf(a))).size + 1;
      assert.equal(requests, Math.ceil(pages / READ_PAGES_MAX));
      assert.equal(guest.client.stats.roundTrips - before, requests);
      const batched = await Promise.all(
        addrs.map((a) => mem.cString(a, taskLayout(guest.profile).comm.size)),
      );
      assert.equal(mem.misses, 0, "a prefetched page was read again");
      assert.deepEqual(batched, items.map((p) => p.comm));
      await assert.rejects(() => mem.read(user, 8), MemoryFault);
      assert.equal(mem.misses, 0, "a page that faulted in the batch was asked again");
      // Nothing cached is asked again.
      assert.equal(await mem.prefetch(addrs), 0);
    });
  },
});

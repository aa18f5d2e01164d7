// Real eBPF on this machine's kernel (run as root): the generic hash-table walker, through both
// loop paths, on the kernel's socket tables (found by the IDS through a real agent). What it
// sends, read by the socket view from the caches alone, holds the test's own sockets.
import assert from "node:assert/strict";
import { LoadedProgram } from "../../agent/program.ts";
import { bpfObject } from "../../bpf/objects.ts";
import { type BpfRecord, decodeRecords, RecordKind } from "../../bpf/records.ts";
import {
  collectHashWalk,
  encodeHashWalk,
  type HashWalkSpec,
  hashWalkSpec,
} from "../../ids/memory/hash.ts";
import { KernelMemory } from "../../ids/memory/memory.ts";
import { PageCache } from "../../ids/memory/page_cache.ts";
import { RangeCache } from "../../ids/memory/range_cache.ts";
import { listSockets, socketHashes } from "../../ids/os/sockets.ts";
import type { Guest } from "../../ids/guest.ts";
import { IS_ROOT, withGuest } from "../_helpers/agent.ts";
import { socketTablesOf } from "../../ids/os/socket_view.ts";
import { socketCapturePlan } from "../../ids/os/socket_view.ts";
import { socketLayoutNote } from "../../ids/os/sockets_layout.ts";

/** The ring buffer's size (`EBPFMON_RING_BYTES`, bpf/common.h). */
const RING_BYTES = 4 << 20;

/** Runs a walk to its end; returns its records, fires and record bytes. */
function walk(program: LoadedProgram, spec: HashWalkSpec, limit?: number) {
  const run = program.run(encodeHashWalk(spec, limit));
  const records: BpfRecord[] = [];
  for (;;) {
    const step = run.next();
    if (step.done) return { records, fires: step.value.fires, bytes: step.value.bytes };
    for (const record of decodeRecords(step.value)) {
      // Pages are views into the chunk: keep copies.
      records.push({ ...record, payload: record.payload.slice() });
    }
  }
}

/** The sockets the view finds in what a walk sent, without any other memory. */
async function viewOf(guest: Guest, records: BpfRecord[], spec: HashWalkSpec) {
  const mem = new KernelMemory(new PageCache(4096), undefined, new RangeCache(4096));
  const result = collectHashWalk(records, mem, spec);
  const tables = (await socketTablesOf(guest.context, guest.memory()))!;
  return { result, sockets: await listSockets(mem, guest.profile, tables) };
}

Deno.test({
  name:
    "walk_hash with and without bpf_loop, as pages or by plan, sends what the socket view needs (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const bounded = LoadedProgram.load(
        "walk_hash",
        bpfObject("walk_hash", "bounded"),
      );
      const looped = LoadedProgram.load("walk_hash", bpfObject("walk_hash"));
      try {
        const tables = await socketTablesOf(guest.context, guest.memory());
        assert.ok(tables, socketLayoutNote(guest.profile));
        const plan = (await socketCapturePlan(guest.profile))!;
        const specs = {
          pages: hashWalkSpec(socketHashes(tables), plan, "bulk"),
          plan: hashWalkSpec(socketHashes(tables), plan, "fields"),
        };
        const buckets = specs.pages.tables.reduce((sum, t) => sum + t.count, 0);
        for (
          const [path, program, capture] of [
            ["bounded", bounded, "pages"],
            ["bounded", bounded, "plan"],
            ["bpf_loop", looped, "pages"],
            ["bpf_loop", looped, "plan"],
          ] as const
        ) {
          const spec = specs[capture];
          const label = `${path} ${capture}`;
          const { records, fires, bytes } = walk(program, spec);
          assert.equal(
            records.some((r) => r.kind === RecordKind.Page),
            capture === "pages",
            `${label}: pages sent`,
          );
          assert.equal(records.at(-1)?.kind, RecordKind.End, `${label}: last record`);
          // The bounded path reads 32 * 8 buckets per fire at most. The bpf_loop path walks every
          // bucket in one fire, and pauses only when the ring buffer is (all but one object's
          // room) full: a machine with many sockets (thousands of TIME_WAIT) fills it.
          if (path === "bounded") assert.ok(fires >= buckets / 256, `${label}: ${fires} fires`);
          else {
            const full = Math.floor(bytes / (RING_BYTES / 2));
            assert.ok(fires <= 1 + full, `${label}: ${fires} fires for ${bytes} bytes`);
          }
          const heads = records.filter((r) => r.kind === RecordKind.Head).length;
          assert.ok(heads > 0 && heads < buckets, `${label}: ${heads} of ${buckets} buckets sent`);
          const { sockets } = await viewOf(guest, records, spec);
          const mine = sockets.filter((s) =>
            s.local_port === listener.addr.port && s.state === "LISTEN"
          );
          assert.equal(mine.length, 1, `${label}: the test's listener`);
          assert.equal(mine[0]!.local_addr, "127.0.0.1");
          assert.ok(mine[0]!.inode > 0, `${label}: the listener's inode`);
        }
      } finally {
        bounded.close();
        looped.close();
        listener.close();
      }
    }),
});

Deno.test({
  name: "walk_hash stops at its limit (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const program = LoadedProgram.load("walk_hash", bpfObject("walk_hash"));
      try {
        const plan = (await socketCapturePlan(guest.profile))!;
        const spec = hashWalkSpec(
          socketHashes((await socketTablesOf(guest.context, guest.memory()))!),
          plan,
          "bulk",
        );
        const { records } = walk(program, spec, 1);
        const end = records.at(-1);
        assert.equal(end?.kind, RecordKind.End);
        assert.equal(end?.value, 1n);
      } finally {
        program.close();
        listener.close();
      }
    }),
});

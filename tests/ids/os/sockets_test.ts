// Offline: the socket view with no kernel access: address text, state names, the socket layout of
// this machine's captured BTF (6.18), the capture plan learned from the view, and the view over a
// captured walk of this machine's socket tables.
import assert from "node:assert/strict";
import { Btf } from "../../../ids/profile/btf.ts";
import { KernelProfile } from "../../../ids/profile/profile.ts";
import { collectHashWalk, encodeHashWalk, hashWalkSpec } from "../../../ids/memory/hash.ts";
import { KernelMemory } from "../../../ids/memory/memory.ts";
import { PageCache } from "../../../ids/memory/page_cache.ts";
import { RangeCache } from "../../../ids/memory/range_cache.ts";
import type { BpfRecord } from "../../../bpf/records.ts";
import { ListWalkError } from "../../../ids/os/list.ts";
import { fromBase64, loadSocketFixture } from "../../_helpers/memory_fixture.ts";
import { socketKey } from "../../_helpers/proc_net.ts";
import { HostileAnswer } from "../../../ids/client/budget.ts";
import {
  checkedTable,
  formatIPv4,
  formatIPv6,
  listSockets,
  socketHashes,
  socketInfo,
  type SocketTables,
  tcpStateName,
} from "../../../ids/os/sockets.ts";
import { fixtureBtf, fixtureKallsyms, vmlinuxBtfBytes } from "../../_helpers/profile_fixtures.ts";
import { socketCapturePlan } from "../../../ids/os/socket_view.ts";
import { socketLayout, socketLayoutNote } from "../../../ids/os/sockets_layout.ts";

const profile = new KernelProfile({
  release: "6.18",
  btf: Btf.parse(await vmlinuxBtfBytes()),
  kallsyms: fixtureKallsyms("machine-6.18"),
  pageSize: 4096,
});

/** WHATWG URL's IPv6 serializer (RFC 5952 compression), an independent oracle. */
function urlText(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

Deno.test("formatIPv6() compresses as RFC 5952 does, like the URL serializer", () => {
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let n = 0; n < 2000; n++) {
    const bytes = new Uint8Array(16);
    // Groups are zero half of the time, so that runs of zeros of every length occur.
    for (let g = 0; g < 8; g++) {
      if (random() < 0.5) continue;
      bytes[2 * g] = random() < 0.5 ? 0 : Math.floor(random() * 256);
      bytes[2 * g + 1] = Math.floor(random() * 256);
    }
    if (bytes.subarray(0, 12).every((b, i) => (i < 10 ? b === 0 : b === 0xff))) continue;
    assert.equal(formatIPv6(bytes), urlText(bytes), `bytes ${bytes}`);
  }
});

Deno.test("formatIPv6() writes IPv4-mapped addresses as /proc's users read them", () => {
  const bytes = new Uint8Array(16);
  bytes.set([0xff, 0xff, 192, 0, 2, 1], 10);
  assert.equal(formatIPv6(bytes), "::ffff:192.0.2.1");
  assert.equal(formatIPv4(new Uint8Array([127, 0, 0, 1])), "127.0.0.1");
});

Deno.test("tcpStateName() uses the kernel's names, and says which number it does not know", () => {
  assert.equal(tcpStateName(1), "ESTABLISHED");
  assert.equal(tcpStateName(6), "TIME_WAIT");
  assert.equal(tcpStateName(7), "CLOSE");
  assert.equal(tcpStateName(10), "LISTEN");
  assert.equal(tcpStateName(0), "state 0");
  assert.equal(tcpStateName(99), "state 99");
});

Deno.test("KernelProfile finds the socket tables of 6.18 without data symbols", () => {
  const l = socketLayout(profile);
  assert.ok(l, socketLayoutNote(profile));
  assert.equal(socketLayoutNote(profile), undefined);
  assert.equal(l.deathRowPointer, false, "tcp_death_row is embedded since 6.1");
  assert.ok("netMember" in (l.udpTable ?? {}), "net.ipv4.udp_table since 6.2");
  assert.equal(l.listenBucket.nulls, true);
  assert.equal(l.ehashBucket.nulls, true);
  assert.equal(l.udpBucket.nulls, false);
  // skc_node and skc_nulls_node share a union: every table links sockets at the same offset.
  assert.equal(l.ehashBucket.link, l.udpBucket.link);
  assert.equal(l.listenBucket.link, l.ehashBucket.link);
  assert.ok(l.skc_net && l.skc_v6_daddr && l.skc_v6_rcv_saddr);
});

Deno.test("KernelProfile without socket structs has no socket layout, and says why", () => {
  const p = new KernelProfile({
    release: "test",
    btf: fixtureBtf("module_6_4"),
    kallsyms: fixtureKallsyms("guest-6.1"),
    pageSize: 4096,
  });
  assert.equal(socketLayout(p), undefined);
  assert.match(socketLayoutNote(p) ?? "", /^Kernel has no socket tables the sockets view knows: /);
});

Deno.test("the socket capture plan follows sk_socket for full sockets, rsk_listener for requests", async () => {
  const l = socketLayout(profile)!;
  const plan = (await socketCapturePlan(profile))!;
  assert.equal(plan.guard, l.skc_state.offset);
  const follow = (pointer: number) => plan.follows.find((f) => f.pointer === pointer);
  const socket = follow(l.sk_socket.offset);
  const listener = follow(l.rsk_listener.offset);
  assert.ok(socket && listener, JSON.stringify(plan.follows));
  assert.equal(plan.follows.length, 2);
  const TIME_WAIT = 6, NEW_SYN_RECV = 12, ESTABLISHED = 1, LISTEN = 10, CLOSE = 7;
  for (const state of [ESTABLISHED, LISTEN, CLOSE]) assert.ok(socket.mask & (1 << state));
  for (const state of [TIME_WAIT, NEW_SYN_RECV]) assert.equal(socket.mask & (1 << state), 0);
  assert.equal(listener.mask, 1 << NEW_SYN_RECV);
  assert.deepEqual(socket.ranges, [{ offset: l.socketIno.offset, len: 8 }]);
  assert.deepEqual(listener.ranges, [{ offset: l.sk_uid.offset, len: 4 }]);
  // Bulk mode fetches the pages that cover the plan; the walker takes the plan in both modes.
  const table = {
    base: 0xffff_8880_0000_0000n,
    count: 1,
    stride: 8,
    head: 0,
    nulls: true,
    link: 0,
  };
  const tables = { net: 0n, tcpListen: table, tcpEstablished: table, udp: table };
  const bulk = hashWalkSpec(socketHashes(tables), plan, "bulk");
  assert.equal(bulk.ranges, undefined);
  assert.equal(bulk.span, Math.max(...plan.ranges.map((r) => r.offset + r.len)));
  assert.ok(bulk.span >= l.sk_uid.offset + 4 && bulk.span >= l.sk_socket.offset + 8);
  assert.deepEqual(bulk.follows.map((f) => f.span), [l.socketIno.offset + 8, l.sk_uid.offset + 4]);
  for (const mode of ["bulk", "fields"] as const) {
    assert.ok(encodeHashWalk(hashWalkSpec(socketHashes(tables), plan, mode)).byteLength > 0);
  }
});

// The view over captured memory, with no kernel access: one bulk walk of this machine's socket
// tables (tests/testdata/memory/host-6.18-sockets.json.gz, written by
// tests/_helpers/capture_sockets.ts) read through the same caches the IDS fills.
const fixture = await loadSocketFixture("host-6.18-sockets");
const fixtureTables: SocketTables = {
  net: BigInt(fixture.tables.net),
  tcpListen: { ...fixture.tables.tcpListen, base: BigInt(fixture.tables.tcpListen.base) },
  tcpEstablished: {
    ...fixture.tables.tcpEstablished,
    base: BigInt(fixture.tables.tcpEstablished.base),
  },
  udp: { ...fixture.tables.udp, base: BigInt(fixture.tables.udp.base) },
};
const records: BpfRecord[] = fixture.records.map((r) => ({
  kind: r.kind,
  addr: BigInt(r.addr),
  value: BigInt(r.value),
  payload: fromBase64(r.payload),
}));

/** A memory holding only what the captured walk sent, read as the IDS reads it. */
async function capturedMemory(): Promise<KernelMemory> {
  const mem = new KernelMemory(new PageCache(4096), undefined, new RangeCache(4096));
  const plan = (await socketCapturePlan(profile))!;
  collectHashWalk(records, mem, hashWalkSpec(socketHashes(fixtureTables), plan, "bulk"));
  return mem;
}

/** Writes `value` at `addr` in a copy of the page that holds it. */
function patch(mem: KernelMemory, addr: bigint, value: bigint): void {
  const page = mem.cache.pageOf(addr);
  const copy = mem.cache.get(page)!.slice();
  new DataView(copy.buffer).setBigUint64(Number(addr - page), value, true);
  mem.cache.put(page, copy);
}

Deno.test("the socket fixture comes from the captured BTF's kernel and holds v4 and v6 sockets", () => {
  assert.match(fixture.release, /^6\.18\./);
  const kinds = new Set(fixture.expected.map((s) => `${s.proto}${s.family}`));
  for (const kind of ["tcpinet", "tcpinet6", "udpinet", "udpinet6"]) assert.ok(kinds.has(kind));
});

Deno.test("listSockets() over the captured walk lists what it listed at capture time", async () => {
  const sockets = await listSockets(await capturedMemory(), profile, fixtureTables);
  assert.deepEqual(sockets.map(socketInfo), fixture.expected);
});

Deno.test("listSockets() over the captured walk lists every socket /proc/net showed", async () => {
  const listed = new Set(
    (await listSockets(await capturedMemory(), profile, fixtureTables)).map(socketKey),
  );
  assert.ok(fixture.proc.length >= 8, `${fixture.proc.length} sockets in /proc/net`);
  for (const s of fixture.proc) assert.ok(listed.has(socketKey(s)), socketKey(s));
});

/**
 * A memory whose cache is `stale` (a captured walk, patched) and whose misses
 * read `now` (the captured walk as it was): what a page-mode snapshot holds
 * when sockets moved while it was read.
 */
function memoryOver(stale: KernelMemory, now: KernelMemory): KernelMemory {
  const source = {
    async readPage(page: bigint) {
      // The captured walk holds pages, and the bucket heads as ranges: one word at a time.
      const bytes = new Uint8Array(4096);
      for (let at = 0; at < 4096; at += 8) {
        const word = await now.read(page + BigInt(at), 8).catch(() => undefined);
        if (word !== undefined) bytes.set(word, at);
      }
      return bytes;
    },
  };
  return new KernelMemory(stale.cache, source, stale.ranges);
}

Deno.test("listSockets() reads a chain again when it ends on another bucket's nulls value", async () => {
  const now = await capturedMemory();
  const stale = await capturedMemory();
  const sockets = await listSockets(stale, profile, fixtureTables);
  const established = sockets.find((s) => s.proto === "tcp" && s.state !== "LISTEN");
  assert.ok(established, "the captured walk has a socket on the established hash");
  const node = established.addr + BigInt(fixtureTables.tcpEstablished.link);
  const end = await stale.u64(node);
  assert.equal(end & 1n, 1n, "it is the last on its chain");
  // The socket was read when it sat on the next bucket's chain (freed and reused since).
  const other = (end >> 1n) + 1n;
  patch(stale, node, (other << 1n) | 1n);
  const torn = memoryOver(stale, now);
  assert.deepEqual(
    (await listSockets(torn, profile, fixtureTables)).map(socketInfo),
    fixture.expected,
  );
  assert.ok(torn.rereads > 0, "the chain was read again");
  assert.equal(torn.misses, torn.rereads, "only the torn chain was read again");
  // Without memory to read anew, the torn chain is reported (the snapshot is taken again).
  await assert.rejects(
    () => listSockets(stale, profile, fixtureTables),
    (error) =>
      error instanceof ListWalkError &&
      error.message.endsWith(
        `ends in the nulls value ${other} of another bucket than ${end >> 1n}`,
      ),
  );
});

Deno.test("listSockets() reads a looping chain again, and reports one that still loops", async () => {
  const now = await capturedMemory();
  const stale = await capturedMemory();
  const [first] = await listSockets(stale, profile, fixtureTables);
  assert.ok(first);
  const node = first.addr + BigInt(fixtureTables.tcpListen.link);
  patch(stale, node, node); // its next points at itself
  const sockets = await listSockets(memoryOver(stale, now), profile, fixtureTables);
  assert.deepEqual(sockets.map(socketInfo), fixture.expected);
  const looping = await capturedMemory();
  patch(looping, node, node);
  await assert.rejects(
    () => listSockets(memoryOver(looping, looping), profile, fixtureTables),
    (error) => error instanceof ListWalkError && /: loops$/.test(error.message),
  );
});

Deno.test("listSockets() reports a chain that leaves kernel memory", async () => {
  const mem = await capturedMemory();
  const [first] = await listSockets(mem, profile, fixtureTables);
  patch(mem, first!.addr + BigInt(fixtureTables.tcpListen.link), 0x1000n);
  await assert.rejects(
    () => listSockets(mem, profile, fixtureTables),
    (error) => error instanceof ListWalkError && /points outside kernel memory/.test(error.message),
  );
});

Deno.test("checkedTable() takes only masks the kernel makes, within the ceiling", async (t) => {
  const bucket = { size: 8, head: 0, link: 0, nulls: true };
  await t.step("a power of two minus one within the ceiling", () => {
    assert.equal(checkedTable("tcp established hash", 0n, 0xffff, bucket, 1 << 22).count, 65536);
  });
  const refused: [string, number, number, string, string][] = [
    [
      "past the configured ceiling",
      0x0fff_ffff,
      1 << 22,
      "max_hash_buckets",
      "the t's mask 0xfffffff makes 268435456 buckets, more than 4194304",
    ],
    [
      "past the kernel's own ceiling",
      0x00ff_ffff,
      65536,
      "kernel_hash_size",
      "the t's mask 0xffffff makes 16777216 buckets, more than 65536",
    ],
    [
      "no power of two",
      0x1234,
      1 << 22,
      "hash_mask",
      "the t's mask 0x1234 is not a power of two minus one",
    ],
    [
      "u32 all ones",
      0xffff_ffff,
      1 << 22,
      "max_hash_buckets",
      "the t's mask 0xffffffff makes 4294967296 buckets, more than 4194304",
    ],
  ];
  for (const [name, mask, ceiling, limit, detail] of refused) {
    await t.step(name, () =>
      assert.throws(
        () => checkedTable("t", 0n, mask, bucket, ceiling),
        (error) =>
          error instanceof HostileAnswer && error.limit === limit &&
          error.message === `Hostile agent answer (hostile_agent): ${detail} (limit ${limit})`,
      ));
  }
});

// Every layout decision of the views (ids/os/*_layout.ts), on the real BTF of each kernel the project targets:
// the bed's guests 5.10 (Debian 11), 6.1 (Debian 12), 6.12 (Debian 13), and this machine's 6.18
// (tests/testdata/btf/vmlinux-*.btf.gz; capture_guests.ts captures the guests'). No root, no VM.
// Offsets were checked against `bpftool btf dump file … format c` of the same BTF.
import assert from "node:assert/strict";
import { Btf } from "../../../ids/profile/btf.ts";
import { Kallsyms } from "../../../ids/profile/kallsyms.ts";
import { KernelProfile } from "../../../ids/profile/profile.ts";
import { credLayout, taskLayout } from "../../../ids/os/tasks_layout.ts";
import { moduleLayout } from "../../../ids/os/modules_layout.ts";
import { socketLayout } from "../../../ids/os/sockets_layout.ts";
import { vmlinuxBtfBytes } from "../../_helpers/profile_fixtures.ts";

/** The data symbols the profile looks up; their addresses do not matter here. */
const KALLSYMS = Kallsyms.parse(
  [
    "ffffffff81000000 T _stext",
    "ffffffff81e00000 T _etext",
    "ffffffff82613940 D init_task",
    "ffffffff8264b6f0 d modules",
    "ffffffff82a00000 D udp_table",
  ].join("\n") + "\n",
);

const profiles = new Map<string, KernelProfile>();
async function profile(kernel: string): Promise<KernelProfile> {
  let p = profiles.get(kernel);
  if (p === undefined) {
    const btf = Btf.parse(await vmlinuxBtfBytes(kernel));
    p = new KernelProfile({ release: kernel, btf, kallsyms: KALLSYMS, pageSize: 4096 });
    profiles.set(kernel, p);
  }
  return p;
}

Deno.test("the listening hash: a plain hlist through icsk_listen_portaddr_node before 5.19, hlist_nulls after", async (t) => {
  // 5.10's inet_listen_hashbucket is a union of head and nulls_head (5.5–5.18): lhash2 uses head.
  const cases = [
    ["5.10", { size: 16, head: 8, nulls: false, link: 1208 }],
    ["6.1", { size: 16, head: 8, nulls: true, link: 104 }],
    ["6.12", { size: 16, head: 8, nulls: true, link: 104 }],
    ["6.18", { size: 16, head: 8, nulls: true, link: 104 }],
  ] as const;
  for (const [kernel, bucket] of cases) {
    await t.step(kernel, async () => {
      const sockets = socketLayout(await profile(kernel));
      assert.ok(sockets);
      assert.deepEqual(sockets.listenBucket, bucket);
      assert.deepEqual(sockets.ehashBucket, { size: 8, head: 0, nulls: true, link: 104 });
    });
  }
});

Deno.test("the death row is embedded in netns_ipv4 on 5.10, 6.1, 6.12 and 6.18", async (t) => {
  // A pointer only from 5.19 to 6.0 ("tcp: allocate tcp_death_row outside of struct netns_ipv4",
  // undone in 6.1): none of these kernels.
  const cases = [["5.10", 1152, 48], ["6.1", 704, 64], ["6.12", 832, 64], ["6.18", 896, 64]];
  for (const [kernel, offset, lhash2] of cases) {
    await t.step(`${kernel}`, async () => {
      const sockets = socketLayout(await profile(`${kernel}`));
      assert.ok(sockets);
      assert.equal(sockets.deathRowPointer, false);
      assert.deepEqual(sockets.tcpDeathRow, { offset, size: 128 });
      assert.deepEqual(sockets.hashinfo, { offset: 64, size: 8 });
      assert.deepEqual(sockets.lhash2, { offset: lhash2, size: 8 });
    });
  }
});

Deno.test("the UDP table is the udp_table symbol before 6.2 and net->ipv4.udp_table after", async (t) => {
  const cases = [["5.10", "symbol"], ["6.1", "symbol"], ["6.12", "netMember"], [
    "6.18",
    "netMember",
  ]];
  for (const [kernel, source] of cases) {
    await t.step(`${kernel}`, async () => {
      const sockets = socketLayout(await profile(`${kernel}`));
      assert.ok(sockets?.udpTable);
      assert.deepEqual(Object.keys(sockets.udpTable), [source]);
      if (source === "symbol") assert.deepEqual(sockets.udpTable, { symbol: 0xffffffff82a00000n });
      assert.deepEqual(sockets.udpBucket, { size: 16, head: 0, nulls: false, link: 104 });
    });
  }
});

Deno.test("the module memory layout is core_layout before 6.4 and mem[] after", async (t) => {
  const cases = [
    ["5.10", "core_layout", 384, [392, 472]],
    ["6.1", "core_layout", 320, [328, 408]],
    ["6.12", "mem", 320, [328, 400, 472, 544, 616, 688, 760]],
    ["6.18", "mem", 320, [332, 348, 364, 380, 396, 412, 428]],
  ] as const;
  for (const [kernel, source, base, sizes] of cases) {
    await t.step(kernel, async () => {
      const memory = moduleLayout(await profile(kernel))?.memory;
      assert.ok(memory);
      assert.equal(memory.source, source);
      assert.deepEqual(memory.base, { offset: base, size: 8 });
      assert.deepEqual(memory.sizes, sizes.map((offset) => ({ offset, size: 4 })));
    });
  }
});

Deno.test("the task state is task_struct.state before 5.14 and __state after", async (t) => {
  const cases = [
    ["5.10", "state", { offset: 16, size: 8 }, 9408],
    ["6.1", "__state", { offset: 24, size: 4 }, 9792],
    ["6.12", "__state", { offset: 24, size: 4 }, 9792],
    ["6.18", "__state", { offset: 24, size: 4 }, 3264],
  ] as const;
  for (const [kernel, member, state, size] of cases) {
    await t.step(kernel, async () => {
      const tasks = taskLayout(await profile(kernel));
      assert.equal(tasks.stateMember, member);
      assert.deepEqual(tasks.state, state);
      assert.equal(tasks.size, size);
    });
  }
});

Deno.test("the credentials' ids are at the same offsets on every kernel, in a cred that grew", async (t) => {
  const cases = [["5.10", 168], ["6.1", 176], ["6.12", 184], ["6.18", 184]] as const;
  for (const [kernel, size] of cases) {
    await t.step(kernel, async () => {
      const cred = credLayout(await profile(kernel));
      assert.deepEqual(cred, {
        size,
        uid: { offset: 8, size: 4 },
        euid: { offset: 24, size: 4 },
        gid: { offset: 12, size: 4 },
      });
    });
  }
});

Deno.test("the pid lookup (pid namespace IDR, struct pid) resolves on every kernel", async (t) => {
  // ids/os/pids.ts reads these (pid_namespace.idr follows a kref on 5.10 and leads on 6.1+).
  const cases = [
    ["5.10", [8, 0, 16, 104, 2336, 16, 2344]],
    ["6.1", [0, 0, 16, 104, 2520, 16, 2528]],
    ["6.12", [0, 0, 16, 120, 2536, 32, 2544]],
    ["6.18", [0, 0, 16, 152, 1368, 64, 1376]],
  ] as const;
  for (const [kernel, offsets] of cases) {
    await t.step(kernel, async () => {
      const p = await profile(kernel);
      const members = [
        p.member("pid_namespace", "idr"),
        p.member("idr", "idr_rt"),
        p.member("idr", "idr_base"),
        p.member("pid", "numbers[0].ns"),
        p.member("task_struct", "thread_pid"),
        p.member("pid", "tasks[0].first"),
        p.member("task_struct", "pid_links[0]"),
      ];
      assert.deepEqual(members.map((m) => m.offset), offsets);
    });
  }
});

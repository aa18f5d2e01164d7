// End to end in real guests: Debian 11's kernel (5.10), Debian 12's (6.1) and Debian 13's (6.12)
// under QEMU (TCG),
// each running the bundled agent. The IDS's process, module and socket lists, in every fetch
// mode, are held against the guest's own view (/proc, /proc/modules, /proc/net, read in the
// guest through the bed's serial shell before and after the IDS's walk).
//
// Needs qemu-system-x86_64 (scripts/setup.sh installs it) and Debian's package archive for the
// first image build. Skipped only when QEMU is absent and EBPFMONITOR_SKIP_VM=1.
import assert from "node:assert/strict";
import { SOCKET_JSON_KEYS } from "../_helpers/proc_net.ts";
import { FETCH_MODES } from "../../ids/guest.ts";
import type { ModuleInfo } from "../../ids/os/modules.ts";
import type { ProcessInfo } from "../../ids/os/tasks.ts";
import type { SocketInfo } from "../../ids/os/sockets.ts";
import { parseProcNetUnix, socketKey, unixSocketKey } from "../_helpers/proc_net.ts";
import {
  containerProcesses,
  type GroundTruth,
  groundTruth,
  type TrueProcess,
} from "./ground_truth.ts";
import { sameComm } from "../_helpers/agent.ts";
import { buildImage, type KernelName, KERNELS, REPO } from "./image.ts";
import { bpfObject, type VariantName } from "../../bpf/objects.ts";
import { decodeRecords } from "../../bpf/records.ts";
import { expectedVariants } from "../_helpers/variants.ts";
import { BOUNDED_BATCH, checkWalkVariant, type WalkRunner } from "../_helpers/walk_scenarios.ts";
import { hasQemu, Vm } from "./qemu.ts";
import { cliSecurityArgs, openGuest } from "./session.ts";
import { moduleView } from "../../ids/os/module_view.ts";
import { namespacedSocketView, socketView } from "../../ids/os/socket_view.ts";
import { processView } from "../../ids/os/process_view.ts";
import { unixSocketView } from "../../ids/os/unix_sockets.ts";
import { taskLayout } from "../../ids/os/tasks_layout.ts";
import { moduleLayout } from "../../ids/os/modules_layout.ts";

const QEMU = hasQemu();
const SKIP = !QEMU && Deno.env.get("EBPFMONITOR_SKIP_VM") === "1";
if (SKIP) {
  console.error(
    "tests/vm: SKIPPED: qemu-system-x86_64 is not installed and EBPFMONITOR_SKIP_VM=1",
  );
}

/** What the IDS must agree on with /proc. */
const fields = (p: Pick<TrueProcess, "pid" | "ppid" | "comm" | "uid">) => ({
  pid: p.pid,
  ppid: p.ppid,
  comm: p.comm,
  uid: p.uid,
});

/**
 * Checks a process list against the guest's snapshots taken before and after
 * it: every process in both snapshots is listed with equal pid, ppid, comm and
 * uid (those of one snapshot, when they changed in between); nothing else is
 * listed but processes newer than the first snapshot (started during the walk).
 */
function checkProcesses(
  label: string,
  items: ProcessInfo[],
  before: GroundTruth,
  after: GroundTruth,
): void {
  const byPid = new Map(items.map((p) => [p.pid, p]));
  assert.equal(byPid.size, items.length, `${label}: a pid is listed twice`);
  let compared = 0;
  for (const [pid, old] of before.processes) {
    const now = after.processes.get(pid);
    if (now === undefined) continue; // ended during the walk
    const seen = byPid.get(pid);
    assert.ok(seen, `${label}: pid ${pid} (${old.comm}) is in the guest's /proc, not in the view`);
    // Fields may change during the walk (exec, reparenting): either snapshot's are right.
    const matches = (truth: TrueProcess) =>
      truth.ppid === seen.ppid && truth.uid === seen.uid && sameComm(truth, seen.comm);
    assert.ok(
      matches(old) || matches(now),
      `${label}: pid ${pid} differs from the guest's /proc: view ${
        JSON.stringify(fields(seen))
      }, /proc ${JSON.stringify(fields(old))}`,
    );
    compared++;
  }
  const newest = Math.max(...before.processes.keys());
  const extra = items.filter((p) =>
    !before.processes.has(p.pid) && !after.processes.has(p.pid) && p.pid <= newest
  );
  assert.deepEqual(
    extra.map((p) => `${p.pid} ${p.comm}`),
    [],
    `${label}: listed but in neither of the guest's /proc snapshots`,
  );
  assert.ok(compared >= 20, `${label}: only ${compared} processes compared`);
}

/** Checks a module list against /proc/modules: same names, sizes, states and bases. */
function checkModules(label: string, items: ModuleInfo[], truth: GroundTruth): void {
  const key = (m: { name: string; size: number; state: string }) =>
    `${m.name} ${m.size} ${m.state}`;
  assert.deepEqual(items.map(key).sort(), truth.modules.map(key).sort(), `${label}: modules`);
  for (const real of truth.modules) {
    if (real.base === 0n) continue;
    const seen = items.find((m) => m.name === real.name)!;
    assert.equal(seen.base, real.base, `${label}: base of ${real.name}`);
  }
}

/**
 * Checks a socket list against the guest's /proc/net snapshots taken before
 * and after it: every socket in both is listed with equal fields, nothing is
 * listed that is in neither, and the bed's own sockets are there: the agent's
 * listener and connection, init.sh's IPv6 and UDP sockets, but not the
 * container's listener (another network namespace).
 */
function checkSockets(
  label: string,
  items: SocketInfo[],
  before: GroundTruth,
  after: GroundTruth,
): void {
  const seen = new Set(items.map(socketKey));
  assert.equal(seen.size, items.length, `${label}: a socket is listed twice`);
  const afterKeys = new Set(after.sockets.map(socketKey));
  for (const s of before.sockets.filter((s) => afterKeys.has(socketKey(s)))) {
    assert.ok(seen.has(socketKey(s)), `${label}: ${socketKey(s)} is in /proc/net, not in the view`);
  }
  const known = new Set([...before.sockets, ...after.sockets].map(socketKey));
  // The IDS's connections to the agent come and go with it (the CLI's own, for one).
  const ids = (s: SocketInfo) => s.local_port === 7070 && s.state !== "LISTEN";
  assert.deepEqual(
    items.filter((s) => !known.has(socketKey(s)) && !ids(s)).map(socketKey),
    [],
    `${label}: listed but in neither of the guest's /proc/net snapshots`,
  );
  const has = (proto: string, family: string, port: number, state: string) =>
    items.some((s) =>
      s.proto === proto && s.family === family && s.local_port === port && s.state === state
    );
  assert.ok(has("tcp", "inet", 7070, "LISTEN"), `${label}: the agent's listener`);
  assert.ok(has("tcp", "inet", 7070, "ESTABLISHED"), `${label}: the IDS's connection`);
  assert.ok(has("tcp", "inet6", 8080, "LISTEN"), `${label}: httpd's IPv6 listener`);
  assert.ok(has("udp", "inet", 5353, "CLOSE"), `${label}: the IPv4 UDP socket`);
  assert.ok(has("udp", "inet6", 5354, "CLOSE"), `${label}: the IPv6 UDP socket`);
  assert.ok(
    !items.some((s) => s.local_port === 7072),
    `${label}: the container's listener (its own network namespace) is listed`,
  );
}

/**
 * The walkers' variant each kernel must be sent (bpf/variants.ts): bpf_loop came with 5.17, so
 * 5.10 gets the bounded-loop walkers, 6.1 and 6.12 the bpf_loop ones.
 */
const WALKER_VARIANT: Record<KernelName, VariantName> = {
  "5.10": "bounded",
  "6.1": "loop",
  "6.12": "loop",
};

for (const kernel of KERNELS) {
  Deno.test({
    name: `guest with kernel ${kernel}: the IDS's views equal the guest's own, in every fetch mode`,
    ignore: SKIP,
    fn: async (t) => {
      if (!QEMU) {
        throw new Error(
          "qemu-system-x86_64 is not installed: run scripts/setup.sh (or set EBPFMONITOR_SKIP_VM=1 to skip the VM tests)",
        );
      }
      const image = await buildImage(kernel, { log: (line) => console.error(`vm: ${line}`) });
      await using vm = await Vm.start(image, {
        readyTimeoutMs: 90_000,
        lifetimeMs: 10 * 60_000,
      });
      console.error(
        `vm: ${image.release} booted to agent-ready in ${(vm.bootMs / 1000).toFixed(1)} s`,
      );
      const guest = await openGuest(vm.url);
      try {
        assert.equal(guest.profile.release, image.release);
        assert.ok(guest.profile.initTask !== undefined, "kallsyms has init_task");

        for (const mode of FETCH_MODES) {
          await t.step(`ps in ${mode} mode lists every process of the guest's /proc`, async () => {
            const before = await groundTruth(vm);
            const { items, cost } = await guest.acquire(processView(), mode);
            const after = await groundTruth(vm);
            checkProcesses(`${kernel} ${mode}`, items, before, after);
            if (mode !== "page") {
              assert.equal(cost.misses, 0, `${mode} mode prefetches everything the view reads`);
              assert.equal(cost.roundTrips, 1, `${mode} mode is one request`);
            }

            const container = containerProcesses(before).filter((p) =>
              after.processes.get(p.pid)?.comm === p.comm
            );
            const comms = container.map((p) => p.comm).sort();
            assert.ok(
              comms.includes("sleep") && comms.filter((c) => c === "sh").length >= 2,
              `the container runs sh, sh and sleep: ${comms}`,
            );
            for (const proc of container) {
              const seen = items.find((p) => p.pid === proc.pid);
              assert.ok(seen, `container process ${proc.pid} (${proc.comm}) is missing`);
              assert.ok(
                sameComm(proc, seen.comm) && seen.ppid === proc.ppid && seen.uid === proc.uid,
                `container process ${proc.pid}: view ${JSON.stringify(fields(seen))}, /proc ${
                  JSON.stringify(fields(proc))
                }`,
              );
            }
          });

          await t.step(`sockets in ${mode} mode equal the guest's /proc/net`, async () => {
            const before = await groundTruth(vm);
            const { items, cost } = await guest.acquire(socketView, mode);
            const after = await groundTruth(vm);
            checkSockets(`${kernel} ${mode}`, items, before, after);
            // Page mode, first, found the socket tables; the others read them in one request.
            if (mode !== "page") {
              assert.equal(cost.misses, 0, `${mode} mode prefetches everything the view reads`);
              assert.equal(cost.roundTrips, 1, `${mode} mode is one request`);
            }
          });

          await t.step(
            `unix sockets in ${mode} mode equal the guest's /proc/net/unix`,
            async () => {
              const read = async () => {
                const { code, output } = await vm.run("cat /proc/net/unix", 60_000);
                assert.equal(code, 0, output);
                return parseProcNetUnix(output);
              };
              const before = await read();
              const { items, cost } = await guest.acquire(unixSocketView, mode);
              const after = new Set(await read());
              const seen = new Set(items.map(unixSocketKey));
              const stable = before.filter((key) => after.has(key));
              assert.ok(stable.length > 0, `${kernel} ${mode}: /proc/net/unix is empty`);
              for (const key of stable) {
                assert.ok(
                  seen.has(key),
                  `${kernel} ${mode}: ${key} is in /proc/net/unix, not in the view`,
                );
              }
              if (mode !== "page") {
                assert.equal(cost.misses, 0, `${mode} mode prefetches everything the view reads`);
                assert.equal(cost.roundTrips, 1, `${mode} mode is one request`);
              }
            },
          );

          await t.step(`lsmod in ${mode} mode lists every module of /proc/modules`, async () => {
            const truth = await groundTruth(vm);
            assert.ok(truth.modules.length >= 10, `${truth.modules.length} modules loaded`);
            const { items, cost } = await guest.acquire(moduleView, mode);
            checkModules(`${kernel} ${mode}`, items, truth);
            if (mode !== "page") {
              assert.equal(cost.misses, 0, `${mode} mode prefetches everything the view reads`);
              assert.equal(cost.roundTrips, 1, `${mode} mode is one request`);
            }
          });
        }

        await t.step("sockets of every namespace include the container's listener", async () => {
          for (const mode of FETCH_MODES) {
            const { items } = await guest.acquire(namespacedSocketView, mode);
            const agent = items.find((s) => s.local_port === 7070 && s.state === "LISTEN");
            const container = items.find((s) => s.local_port === 7072 && s.state === "LISTEN");
            assert.ok(agent && container, `${mode}: the agent's and the container's listeners`);
            assert.ok(container.netns > 0 && agent.netns > 0, `${mode}: namespaces`);
            assert.notEqual(container.netns, agent.netns, `${mode}: the container's namespace`);
          }
        });

        await t.step(
          `the walkers sent are the ${WALKER_VARIANT[kernel]} variants, and every program loaded`,
          () => {
            assert.deepEqual(
              Object.fromEntries(guest.programVariants()),
              expectedVariants(WALKER_VARIANT[kernel]),
            );
          },
        );

        if (WALKER_VARIANT[kernel] === "bounded") {
          await t.step(
            "the bpf_loop walkers do not load here: the reason for the variants",
            async () => {
              // Before 5.13 the kernel knows no pseudo functions: it rejects the object before
              // verifying one instruction ("number of funcs in func_info doesn't match number of
              // subprogs"; with a CO-RE-guarded callback, "unrecognized bpf_ld_imm64 insn").
              await assert.rejects(
                guest.client.load("walk_tasks", bpfObject("walk_tasks", "loop")),
                /bpf_object__load\(walk_tasks\) failed: Invalid argument[\s\S]*processed 0 insns/,
              );
            },
          );
        }

        await t.step(
          "every walker variant the kernel can load resumes across fires, ends a looping list with a FAULT, stops at its limit",
          async () => {
            const runInGuest: WalkRunner = async (name, variant, params) => {
              const handle = await guest.client.load(name, bpfObject(name, variant));
              try {
                const answer = await guest.client.run(handle, params);
                const records = answer.chunks.flatMap((chunk) => [...decodeRecords(chunk)]);
                return { records, fires: answer.body.fires };
              } finally {
                await guest.client.unload(handle);
              }
            };
            const p = guest.profile;
            const offsets = {
              tasks: taskLayout(p).tasks.offset,
              children: p.member("task_struct", "children").offset,
              pid: taskLayout(p).pid.offset,
            };
            // 5.10 can load only the bounded walkers (no bpf_loop); newer kernels both.
            const variants = WALKER_VARIANT[kernel] === "loop"
              ? ["loop", "bounded"] as const
              : ["bounded"] as const;
            for (const variant of variants) {
              await checkWalkVariant(
                runInGuest,
                variant,
                offsets,
                BOUNDED_BATCH + 1,
                moduleLayout(p)?.listHead,
              );
            }
          },
        );

        await t.step("the agent listens on the guest's port 7070 (/proc/net/tcp)", async () => {
          const truth = await groundTruth(vm);
          assert.ok(
            truth.sockets.some((s) => s.local_port === 7070 && s.state === "LISTEN"),
            "a LISTEN socket on port 7070",
          );
        });
      } finally {
        guest.close();
      }

      await t.step("`ids ps --json` prints the guest's processes", async () => {
        const before = await groundTruth(vm);
        const items = await cliJson([
          "ids",
          "ps",
          "--connect",
          vm.url,
          "--json",
          ...await cliSecurityArgs(),
        ]);
        const after = await groundTruth(vm);
        checkProcesses(`${kernel} cli`, items as ProcessInfo[], before, after);
      });

      await t.step("`ids sockets --json` prints the guest's sockets", async () => {
        const before = await groundTruth(vm);
        const items = await cliJson([
          "ids",
          "sockets",
          "--connect",
          vm.url,
          "--json",
          ...await cliSecurityArgs(),
        ]) as SocketInfo[];
        const after = await groundTruth(vm);
        for (const item of items) {
          assert.deepEqual(Object.keys(item), SOCKET_JSON_KEYS);
        }
        checkSockets(`${kernel} cli`, items, before, after);
      });
    },
  });
}

async function cliJson(args: string[]): Promise<unknown[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}/main.ts`, ...args],
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `ebpfmonitor ${args.join(" ")} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

// End to end in real guests: Debian 12's kernel (6.1) and Debian 13's (6.12) under QEMU (TCG),
// each running the bundled agent. The IDS's process and module lists, in page and in bulk mode,
// are held against the guest's own view (/proc, /proc/modules, read in the guest through the
// bed's serial shell before and after the IDS's walk).
//
// Needs qemu-system-x86_64 (scripts/setup.sh installs it) and Debian's package archive for the
// first image build. Skipped only when QEMU is absent and EBPFMONITOR_SKIP_VM=1.
import assert from "node:assert/strict";
import { FETCH_MODES } from "../../ids/guest.ts";
import type { ModuleInfo } from "../../ids/os/modules.ts";
import type { ProcessInfo } from "../../ids/os/tasks.ts";
import {
  containerProcesses,
  type GroundTruth,
  groundTruth,
  type TrueProcess,
} from "./ground_truth.ts";
import { sameComm } from "../_helpers/agent.ts";
import { buildImage, KERNELS, REPO } from "./image.ts";
import { hasQemu, Vm } from "./qemu.ts";
import { cliSecurityArgs, openGuest } from "./session.ts";

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
            const { items, cost } = await guest.processes(mode);
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

          await t.step(`lsmod in ${mode} mode lists every module of /proc/modules`, async () => {
            const truth = await groundTruth(vm);
            assert.ok(truth.modules.length >= 10, `${truth.modules.length} modules loaded`);
            const { items, cost } = await guest.modules(mode);
            checkModules(`${kernel} ${mode}`, items, truth);
            if (mode !== "page") {
              assert.equal(cost.misses, 0, `${mode} mode prefetches everything the view reads`);
              assert.equal(cost.roundTrips, 1, `${mode} mode is one request`);
            }
          });
        }

        await t.step("the agent listens on the guest's port 7070 (/proc/net/tcp)", async () => {
          const truth = await groundTruth(vm);
          assert.ok(
            truth.sockets.some((s) => s.localPort === 7070 && s.state === 0x0a),
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

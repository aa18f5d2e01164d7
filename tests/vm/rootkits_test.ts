// The rootkit fixtures (tests/testdata/rootkits/) act in real guests, per kernel: each is loaded
// through the bed's serial shell and what it did is observed from inside the guest (the kernel
// log, /proc, /sys) and, for the two that hide something, by the IDS's list walks (the views a
// detector compares). These tests check the fixtures, not a detector.
//
// Needs qemu-system-x86_64, root (the 6.12 fixtures build in a chroot) and Debian's package
// archive for the first build (scripts/setup.sh installs the rest). Skipped only when QEMU is
// absent and EBPFMONITOR_SKIP_VM=1.
import assert from "node:assert/strict";
import { groundTruth } from "./ground_truth.ts";
import { buildImage, KERNELS } from "./image.ts";
import { hasQemu, Vm } from "./qemu.ts";
import {
  DISPATCHER,
  hideModule,
  hideTask,
  HOOKED_SYSCALL,
  hookedCalls,
  hookSyscall,
  kallsyms,
  pokeVictim,
  unloadRootkit,
  victimPid,
} from "./rootkits.ts";
import { openGuest } from "./session.ts";
import { moduleView } from "../../ids/os/module_view.ts";
import { processView } from "../../ids/os/process_view.ts";

const QEMU = hasQemu();
const SKIP = !QEMU && Deno.env.get("EBPFMONITOR_SKIP_VM") === "1";

/** A kernel address as %px prints it. */
const px = (text: string | undefined) => BigInt(`0x${text}`);

/** The one log line matching `pattern`; fails showing the log otherwise. */
function line(log: string[], pattern: RegExp): RegExpExecArray {
  const found = log.map((l) => pattern.exec(l)).filter((m) => m !== null);
  assert.equal(
    found.length,
    1,
    `one line matching ${pattern} in the kernel log:\n${log.join("\n")}`,
  );
  return found[0]!;
}

/** Shows what a fixture logged (the test's output doubles as a record of what they do). */
const show = (log: string[]) => {
  for (const entry of log) console.error(`  guest: ${entry}`);
};

/** Runs `command` in the guest and fails unless it exits 0. */
async function ok(vm: Vm, command: string): Promise<string> {
  const { code, output } = await vm.run(command);
  assert.equal(code, 0, `${command} exited ${code} in the guest: ${output}`);
  return output;
}

/**
 * Runs `body`, then unloads fixture `name` if `body` left it loaded (a failed
 * assertion), so that the next step starts from a clean guest.
 */
async function loaded(vm: Vm, name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    await vm.run(`if test -d /sys/module/${name}; then rmmod ${name}; fi`);
  }
}

for (const kernel of KERNELS) {
  Deno.test({
    name: `guest with kernel ${kernel}: the rootkit fixtures do what they say`,
    ignore: SKIP,
    fn: async (t) => {
      if (!QEMU) {
        throw new Error(
          "qemu-system-x86_64 is not installed: run scripts/setup.sh (or set EBPFMONITOR_SKIP_VM=1 to skip the VM tests)",
        );
      }
      const image = await buildImage(kernel, { log: (l) => console.error(`vm: ${l}`) });
      await using vm = await Vm.start(image, { readyTimeoutMs: 90_000, lifetimeMs: 10 * 60_000 });
      const guest = await openGuest(vm.url);
      try {
        await t.step(
          "hide_task unlinks the victim from the task list; /proc keeps it and it runs",
          async () => {
            await loaded(vm, "hide_task", async () => {
              const pid = await victimPid(vm);
              assert.equal((await ok(vm, `cat /proc/${pid}/comm`)).trim(), "victim");
              await pokeVictim(vm, "before");
              const walked = async () =>
                (await guest.acquire(processView(), "bulk")).items.map((p) => p.pid);
              assert.ok((await walked()).includes(pid), "the IDS's task-list walk sees the victim");

              const log = await hideTask(vm, pid);
              show(log);
              line(
                log,
                new RegExp(`hide_task: unlinked pid ${pid} \\(victim, task_struct at [0-9a-f]+\\)`),
              );
              assert.ok(
                !(await walked()).includes(pid),
                "the IDS's task-list walk misses the victim",
              );
              assert.ok((await groundTruth(vm)).processes.has(pid), "/proc still lists the victim");
              await pokeVictim(vm, "hidden");
              await ok(vm, "ls / >/dev/null && sleep 0");

              const back = await unloadRootkit(vm, "hide_task");
              show(back);
              line(back, new RegExp(`hide_task: linked pid ${pid} \\(victim\\) back`));
              assert.ok((await walked()).includes(pid), "the victim is back on the task list");
              await pokeVictim(vm, "after");
            });
          },
        );

        await t.step("hook_syscall in table mode replaces the sys_call_table entry", async () => {
          await loaded(vm, "hook_syscall", async () => {
            const table = (await kallsyms(vm, ["sys_call_table"])).get("sys_call_table")!;
            const log = await hookSyscall(vm, "table");
            show(log);
            const m = line(
              log,
              /hook_syscall: sys_call_table\[(\d+)\] at ([0-9a-f]+): old (.+?) \(([0-9a-f]+)\), new (.+?) \(([0-9a-f]+)\), read back ([0-9a-f]+)/,
            );
            assert.equal(Number(m[1]), HOOKED_SYSCALL.nr);
            assert.equal(px(m[2]), table + BigInt(8 * HOOKED_SYSCALL.nr), "the entry's address");
            assert.equal(m[3], `__x64_sys_${HOOKED_SYSCALL.name}`);
            assert.equal(m[5], "hook [hook_syscall]");
            assert.equal(px(m[7]), px(m[6]), "the table entry reads back as the hook");
            await ok(vm, "dmesg >/dev/null");
            if (DISPATCHER[kernel]) {
              // 6.1 (stable backport) and 6.12 dispatch through x64_sys_call: the table is dead.
              assert.equal(await hookedCalls(vm), 0, "x64_sys_call does not read sys_call_table");
            } else {
              // 5.10 dispatches through the table: the hook runs.
              assert.ok(await hookedCalls(vm) > 0, "syslog went through the table's hook");
            }
            const restored = await unloadRootkit(vm, "hook_syscall");
            show(restored);
            line(restored, /hook_syscall: restored 8 bytes at [0-9a-f]+ \(table mode\)/);
          });
        });

        if (!DISPATCHER[kernel]) {
          await t.step(
            "5.10 has no x64_sys_call: hook_syscall's dispatch mode has no target",
            async () => {
              const { output } = await vm.run("grep -c ' x64_sys_call$' /proc/kallsyms");
              assert.equal(output.trim(), "0", "x64_sys_call in the guest's /proc/kallsyms");
              await assert.rejects(hookSyscall(vm, "dispatch"), /x64_sys_call/);
            },
          );
        }

        if (DISPATCHER[kernel]) {
          await t.step(
            "hook_syscall in dispatch mode patches x64_sys_call and forwards",
            async () => {
              await loaded(vm, "hook_syscall", async () => {
                const log = await hookSyscall(vm, "dispatch");
                show(log);
                const m = line(
                  log,
                  /hook_syscall: x64_sys_call\+(0x[0-9a-f]+) at ([0-9a-f]+): (call|jmp) (.+?) \(([0-9a-f]+)\) became \3 (.+?) \(([0-9a-f]+)\), bytes now ((?:[0-9a-f]{2} ?){5})/,
                );
                const symbols = await kallsyms(vm, [
                  "x64_sys_call",
                  `__x64_sys_${HOOKED_SYSCALL.name}`,
                ]);
                const site = px(m[2]);
                assert.equal(
                  site,
                  symbols.get("x64_sys_call")! + BigInt(m[1]!),
                  "the patched site",
                );
                assert.equal(
                  px(m[5]),
                  symbols.get(`__x64_sys_${HOOKED_SYSCALL.name}`),
                  "the old target",
                );
                const bytes = m[8]!.trim().split(" ").map((b) => parseInt(b, 16));
                assert.equal(bytes[0], m[3] === "call" ? 0xe8 : 0xe9);
                const rel32 = new DataView(new Uint8Array(bytes.slice(1)).buffer).getInt32(0, true);
                const landing = BigInt.asUintN(64, site + 5n + BigInt(rel32));
                assert.equal(landing, px(m[7]), "the patched rel32 lands on the hook");

                const before = await hookedCalls(vm);
                const dmesg = await ok(vm, "dmesg");
                assert.match(dmesg, /hook_syscall: x64_sys_call\+/, "dmesg works through the hook");
                assert.ok(await hookedCalls(vm) > before, "syslog went through the hook");
                await ok(vm, "ls / >/dev/null && cat /proc/uptime >/dev/null");

                const restored = await unloadRootkit(vm, "hook_syscall");
                show(restored);
                line(restored, /hook_syscall: restored 4 bytes at [0-9a-f]+ \(dispatch mode\)/);
                await ok(vm, "dmesg >/dev/null");
              });
            },
          );
        }

        await t.step(
          "a task hidden by hide_task can exit (its list entry is a singleton)",
          async () => {
            await loaded(vm, "hide_task", async () => {
              const pid = Number(
                (await ok(vm, "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")).trim(),
              );
              show(await hideTask(vm, pid));
              // The bed's shell is the parent: wait reaps it (release_task unhashes it).
              await vm.run(`kill ${pid}; wait ${pid}`);
              await ok(vm, `! test -e /proc/${pid}`);
              const log = await unloadRootkit(vm, "hide_task");
              show(log);
              line(log, new RegExp(`hide_task: pid ${pid} exited while hidden`));
              await ok(vm, "ls / >/dev/null");
            });
          },
        );

        await t.step(
          "hide_module leaves /proc/modules and the module list, stays in /sys/module",
          async () => {
            const log = await hideModule(vm);
            show(log);
            line(log, /hide_module: unlinked module hide_module \(struct module at [0-9a-f]+\)/);
            const truth = await groundTruth(vm);
            assert.ok(!truth.modules.some((m) => m.name === "hide_module"), "not in /proc/modules");
            assert.doesNotMatch(await ok(vm, "lsmod"), /hide_module/);
            await ok(vm, "test -d /sys/module/hide_module");
            const walked = (await guest.acquire(moduleView, "bulk")).items.map((m) => m.name);
            assert.ok(!walked.includes("hide_module"), "the IDS's module-list walk misses it");
            assert.ok(walked.includes("dummy"), "the module list is otherwise intact");
            const { code } = await vm.run("rmmod hide_module");
            assert.notEqual(code, 0, "a hidden module cannot be unloaded");
          },
        );

        await t.step("the kernel logged no warning, oops or list corruption", async () => {
          const log = await ok(vm, "dmesg");
          assert.doesNotMatch(log, /WARNING:|BUG:|Oops|Call Trace|list_(add|del) corruption/);
        });
      } finally {
        guest.close();
      }
    },
  });
}

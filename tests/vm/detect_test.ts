// The intrusion detectors in real guests (Debian's 5.10, 6.1 and 6.12 kernels under QEMU), against
// rootkit fixtures that really act (tests/testdata/rootkits/, built against each guest
// kernel's headers): every detector is silent on the clean guest, then each fixture acts and
// its detector's alert fires with the evidence, and what can be undone is undone and the alert
// goes away.
//
// Needs qemu-system-x86_64 and the fixtures' toolchain (scripts/setup.sh installs both).
// Skipped only when QEMU is absent and EBPFMONITOR_SKIP_VM=1.
import assert from "node:assert/strict";
import type { Alert, CheckReport } from "../../ids/detect/alert.ts";
import { runChecks } from "../../ids/check/check.ts";
import { decodeBranches } from "../../ids/detect/x86_branches.ts";
import { objdump } from "../_helpers/objdump.ts";
import { DEFAULT_POLICY } from "../../ids/detect/policy.ts";
import type { Guest } from "../../ids/guest.ts";
import { runCli } from "../_helpers/agent.ts";
import { buildImage, KERNELS } from "./image.ts";
import { hasQemu, Vm } from "./qemu.ts";
import {
  DISPATCHER,
  hideModule,
  hideTask,
  HOOKED_SYSCALL,
  hookSyscall,
  stealCred,
  unloadRootkit,
  victimPid,
} from "./rootkits.ts";
import { cliSecurityArgs, openGuest } from "./session.ts";
import { moduleView } from "../../ids/os/module_view.ts";
import { processView } from "../../ids/os/process_view.ts";

const SKIP = !hasQemu() && Deno.env.get("EBPFMONITOR_SKIP_VM") === "1";

/** Every detector that must run in a guest (baseline needs a baseline file). */
const MUST_RUN = ["hidden_module", "syscall_hook", "hidden_process", "credentials", "policy"];

async function check(guest: Guest): Promise<CheckReport> {
  const report = await runChecks(guest, { policy: DEFAULT_POLICY });
  for (const detector of MUST_RUN) {
    assert.ok(
      report.ran.includes(detector),
      `${detector} did not run: ${JSON.stringify(report.skipped)}`,
    );
  }
  return report;
}

/** `ids check --json` against the agent at `url`, as an operator runs it. */
async function checkCli(url: string) {
  return await runCli(["ids", "check", "--json", "--connect", url, ...await cliSecurityArgs()]);
}

const show = (alerts: Alert[]) => JSON.stringify(alerts, null, 1);

for (const kernel of KERNELS) {
  Deno.test({
    name: `detectors in a ${kernel} guest: silent when clean, each fires on its rootkit fixture`,
    ignore: SKIP,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const image = await buildImage(kernel);
      await using vm = await Vm.start(image);
      const guest = await openGuest(vm.url);
      try {
        await t.step("a clean guest: no alert from any detector, ids check exits 0", async () => {
          const report = await check(guest);
          assert.deepEqual(report.alerts, [], show(report.alerts));
          const run = await checkCli(vm.url);
          assert.equal(run.code, 0, run.stdout + run.stderr);
          assert.deepEqual(JSON.parse(run.stdout).alerts, []);
        });

        await t.step(
          'a policy {"listening":["udp/*"]} reports both TCP listeners, ids check exits 1',
          async () => {
            // The guest listens on tcp/7070 (the agent) and tcp/8080 (httpd, IPv6); before the
            // 5.5–5.18 listening hash was read right, 5.10 showed neither and exited 0.
            const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-vm-policy-" });
            try {
              await Deno.writeTextFile(`${dir}/policy.json`, '{"listening":["udp/*"]}');
              const run = await runCli([
                "ids",
                "check",
                "--json",
                "--policy",
                `${dir}/policy.json`,
                "--connect",
                vm.url,
                ...await cliSecurityArgs(),
              ]);
              assert.equal(run.code, 1, run.stdout + run.stderr);
              const alerts = (JSON.parse(run.stdout) as { alerts: Alert[] }).alerts;
              assert.deepEqual(alerts.map((a) => a.detector), ["policy", "policy"], show(alerts));
              assert.deepEqual(
                alerts.map((a) => a.summary.match(/tcp\/\d+/)?.[0]).sort(),
                ["tcp/7070", "tcp/8080"],
                show(alerts),
              );
            } finally {
              await Deno.remove(dir, { recursive: true });
            }
          },
        );

        if (DISPATCHER[kernel]) {
          await t.step("x64_sys_call decodes to exactly the branches objdump finds", async () => {
            const kallsyms = guest.profile.kallsyms;
            const start = kallsyms.lookup("x64_sys_call", { types: "Tt" });
            assert.ok(start, "x64_sys_call in kallsyms");
            const end = kallsyms.after(start)?.address;
            assert.ok(end && end > start, "a symbol after x64_sys_call");
            const code = await guest.memory().read(start, Number(end - start));
            const reference = await objdump(code, start);
            assert.deepEqual(reference.bad, [], "objdump decodes all of it");
            const branches = decodeBranches(code, start);
            assert.ok(branches.length > 300, `${branches.length} branches`);
            assert.deepEqual(branches, reference.branches);
          });
        }

        // 5.10 has no x64_sys_call (see DISPATCHER): its dispatch-mode case is that the detector
        // knows there is no dispatcher to check, and the table is the live path.
        if (!DISPATCHER[kernel]) {
          await t.step("no x64_sys_call: syscall_hook checks the table alone", () => {
            assert.equal(guest.profile.kallsyms.has("x64_sys_call"), false);
            assert.ok(guest.profile.dataSymbol("sys_call_table"), "sys_call_table in kallsyms");
          });
        }
        const modes = DISPATCHER[kernel] ? ["table", "dispatch"] as const : ["table"] as const;
        for (const mode of modes) {
          await t.step(
            `hook_syscall (${mode}): syscall_hook reports the diverted entry`,
            async () => {
              await hookSyscall(vm, mode);
              const alerts = (await check(guest)).alerts;
              assert.ok(alerts.length > 0, `no alert after hooking ${HOOKED_SYSCALL.name}`);
              assert.ok(alerts.every((a) => a.detector === "syscall_hook"), show(alerts));
              const alert = alerts[0]!;
              assert.equal(alert.severity, "critical");
              assert.equal(alert.evidence.where, "module hook_syscall");
              if (mode === "table") {
                assert.equal(alerts.length, 1, show(alerts));
                assert.equal(alert.evidence.nr, HOOKED_SYSCALL.nr);
              } else {
                assert.match(String(alert.evidence.at), /^x64_sys_call\+0x[0-9a-f]+$/);
                assert.ok(["jmp", "call"].includes(String(alert.evidence.kind)), show(alerts));
              }
              await unloadRootkit(vm, "hook_syscall");
              assert.deepEqual((await check(guest)).alerts, [], "the alert stays after the unhook");
            },
          );
        }

        await t.step("steal_cred: credentials reports a process on init_cred", async () => {
          const pid = await victimPid(vm);
          await stealCred(vm, pid);
          const alerts = (await check(guest)).alerts;
          assert.equal(alerts.length, 1, show(alerts));
          const alert = alerts[0]!;
          assert.equal(alert.detector, "credentials");
          assert.equal(alert.severity, "critical");
          assert.equal(alert.evidence.pid, pid);
          assert.equal(alert.evidence.cred, alert.evidence.init_cred);
          await unloadRootkit(vm, "steal_cred");
          assert.deepEqual((await check(guest)).alerts, [], "the alert stays after the unload");
        });

        await t.step("hide_task: hidden_process reports the unlinked process", async () => {
          const pid = await victimPid(vm);
          await hideTask(vm, pid);
          const { items } = await guest.acquire(processView(), "bulk");
          assert.ok(!items.some((p) => p.pid === pid), "the victim is still on the task list");
          const alerts = (await check(guest)).alerts;
          assert.equal(alerts.length, 1, show(alerts));
          const alert = alerts[0]!;
          assert.equal(alert.detector, "hidden_process");
          assert.equal(alert.severity, "critical");
          assert.equal(alert.evidence.pid, pid);
          assert.equal(alert.evidence.comm, "victim");
        });

        await t.step(
          "hide_module: hidden_module reports the module /proc/modules lost",
          async () => {
            await hideModule(vm);
            const { items } = await guest.acquire(moduleView, "bulk");
            assert.ok(!items.some((m) => m.name === "hide_module"), "hide_module is still listed");
            const alerts = (await check(guest)).alerts.filter((a) =>
              a.detector === "hidden_module"
            );
            assert.equal(alerts.length, 1, show(alerts));
            assert.equal(alerts[0]!.evidence.module, "hide_module");
            assert.equal(alerts[0]!.severity, "critical");
            const run = await checkCli(vm.url);
            assert.equal(run.code, 1, run.stderr);
            const json = JSON.parse(run.stdout) as { alerts: Alert[] };
            assert.deepEqual(json.alerts.map((a) => a.detector).sort(), [
              "hidden_module",
              "hidden_process",
            ]);
            for (const a of json.alerts) {
              assert.deepEqual(Object.keys(a).sort(), [
                "detector",
                "evidence",
                "severity",
                "summary",
              ]);
            }
          },
        );
      } finally {
        guest.close();
      }
    },
  });
}

/**
 * `ebpfmonitor demo`: starts an agent on this machine, connects the IDS to it,
 * and shows the processes and modules the kernel holds, with checks that the
 * views are sound: both fetch modes agree, and the kernel's task list agrees
 * with /proc; then every intrusion detector (as `ids check`).
 *
 * @module
 */
import { runChecks } from "../check/check.ts";
import { DEFAULT_POLICY } from "../detect/policy.ts";
import { reportText } from "./check.ts";
import { viewTable } from "./view_command.ts";
import { lowestPids } from "./ps.ts";
import { withGuest } from "./session.ts";
import type { ProcessInfo } from "../os/tasks.ts";
import { moduleOutput, moduleView } from "../os/module_view.ts";
import { processOutput, processView } from "../os/process_view.ts";
import { moduleLayoutNote } from "../os/modules_layout.ts";

function procPids(): Set<number> {
  const pids = new Set<number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(entry.name)) pids.add(Number(entry.name));
  }
  return pids;
}

const key = (p: ProcessInfo) => `${p.pid} ${p.ppid} ${p.comm} ${p.uid}`;

/** Runs the demo; returns the exit code (1 when a check fails). */
export function demo(): Promise<number> {
  return withGuest({}, async (guest, local) => {
    console.log(`agent pid ${local?.pid} at ${guest.client.url}, kernel ${guest.profile.release}`);
    const before = procPids();
    const bulk = await guest.acquire(processView(), "bulk");
    const page = await guest.acquire(processView(), "page");
    const after = procPids();

    console.log(
      `\nProcesses (task list, bulk fetch: ${bulk.cost.roundTrips} round trips, ${bulk.cost.bytes} bytes)`,
    );
    console.log(viewTable(processOutput, lowestPids(bulk.items)));

    const modules = await guest.acquire(moduleView, "bulk");
    console.log(`\nModules (${modules.items.length})`);
    const note = moduleLayoutNote(guest.profile);
    if (note) console.log(`note: ${note}`);
    else console.log(viewTable(moduleOutput, modules.items));

    const checks: [string, boolean, string][] = [];
    const bulkKeys = new Set(bulk.items.map(key));
    const stable = page.items.filter((p) => before.has(p.pid) && after.has(p.pid));
    const disagree = stable.filter((p) => !bulkKeys.has(key(p)));
    checks.push([
      "page and bulk fetch agree",
      disagree.length === 0,
      `${stable.length} stable processes compared, ${disagree.length} differ`,
    ]);
    const seen = new Set(bulk.items.map((p) => p.pid));
    const missing = [...before].filter((pid) => after.has(pid) && !seen.has(pid));
    checks.push([
      "every /proc process is on the task list",
      missing.length === 0,
      missing.length ? `missing: ${missing.join(", ")}` : `${seen.size} processes`,
    ]);
    const hidden = bulk.items.filter((p) => !before.has(p.pid) && !after.has(p.pid));
    checks.push([
      "no task is hidden from /proc",
      hidden.length === 0,
      hidden.length
        ? `hidden: ${hidden.map((p) => `${p.pid} ${p.comm}`).join(", ")}`
        : "none hidden",
    ]);
    console.log("\nChecks");
    for (const [name, ok, detail] of checks) {
      console.log(`${ok ? "ok  " : "FAIL"}  ${name}: ${detail}`);
    }

    const report = await runChecks(guest, { policy: DEFAULT_POLICY });
    console.log("\nIntrusion detectors (ids check)");
    console.log(reportText(report));
    return checks.every(([, ok]) => ok) && report.alerts.length === 0 ? 0 : 1;
  });
}

/**
 * The `credentials` detector: two signs of a privilege escalation that did not
 * go through the kernel's own paths.
 *
 * - A user-space task whose credentials are `init_cred` itself. Every process
 *   gets its own `struct cred` at exec; only kernel threads use `init_cred`.
 *   A rootkit that writes `task->cred = &init_cred` (or commits a cred it did
 *   not prepare) is seen here.
 * - A root process (uid or euid 0) whose parent is not root, unless its name
 *   is one the policy allows to do that (`root_from_user`: sudo, su, …).
 *
 * Misses an escalation that allocates a fresh cred for a process whose parent
 * is root anyway, and a renamed process that takes an allowed name.
 *
 * @module
 */
import type { MemoryReader } from "../memory/memory.ts";
import type { ProcessInfo } from "../os/tasks.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { type Alert, hex } from "./alert.ts";
import type { Detector } from "./detector.ts";
import { isRootProcess } from "./baseline.ts";
import { matches } from "./policy.ts";
import { taskLayout } from "../os/tasks_layout.ts";

/**
 * The address of `init_cred`: from kallsyms, or what `init_task.cred` points
 * to; `init_task` is the task list's anchor, the task before the first
 * process (pid 1 was added to the list first).
 */
async function initCred(
  mem: MemoryReader,
  profile: KernelProfile,
  processes: readonly ProcessInfo[],
): Promise<bigint | undefined> {
  const symbol = profile.dataSymbol("init_cred");
  if (symbol !== undefined) return symbol;
  let initTask = profile.initTask;
  if (initTask === undefined) {
    const init = processes.find((p) => p.pid === 1);
    if (init === undefined) return undefined;
    const tasks = taskLayout(profile).tasks.offset;
    const prev = await mem.u64(init.addr + BigInt(tasks + profile.listHead.prev.offset));
    initTask = prev - BigInt(tasks);
    if (await mem.i32(initTask + BigInt(taskLayout(profile).pid.offset)) !== 0) return undefined;
  }
  return await mem.u64(initTask + BigInt(taskLayout(profile).cred.offset));
}

/** Reports user tasks on `init_cred` and root processes of non-root parents. */
export const credentialsDetector: Detector = {
  name: "credentials",
  description: "user tasks sharing init_cred, and root processes whose parent is not root",
  async run(snapshot, { policy }) {
    const { profile, mem, processes } = snapshot;
    const alerts: Alert[] = [];
    const rootCred = await initCred(mem, profile, processes);
    const byPid = new Map(processes.map((p) => [p.pid, p]));
    for (const p of processes) {
      if (p.kthread) continue;
      const who = { pid: p.pid, ppid: p.ppid, comm: p.comm, uid: p.uid, euid: p.euid };
      if (rootCred !== undefined) {
        const cred = await mem.u64(p.addr + BigInt(taskLayout(profile).cred.offset));
        const realCred = await mem.u64(p.addr + BigInt(taskLayout(profile).real_cred.offset));
        if (cred === rootCred || realCred === rootCred) {
          alerts.push({
            detector: "credentials",
            severity: "critical",
            summary:
              `process ${p.comm} (pid ${p.pid}) runs on init_cred, the kernel's own credentials`,
            evidence: {
              ...who,
              task: hex(p.addr),
              cred: hex(cred),
              real_cred: hex(realCred),
              init_cred: hex(rootCred),
            },
          });
        }
      }
      const parent = byPid.get(p.ppid);
      if (
        isRootProcess(p) && parent !== undefined && !parent.kthread && !isRootProcess(parent) &&
        !matches(p.comm, policy.root_from_user)
      ) {
        alerts.push({
          detector: "credentials",
          severity: "high",
          summary:
            `process ${p.comm} (pid ${p.pid}) is root but its parent ${parent.comm} (pid ${parent.pid}) is uid ${parent.uid}`,
          evidence: {
            ...who,
            parent: { pid: parent.pid, comm: parent.comm, uid: parent.uid, euid: parent.euid },
            allowed: policy.root_from_user,
          },
        });
      }
    }
    return alerts;
  },
};

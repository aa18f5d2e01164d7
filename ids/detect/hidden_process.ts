/**
 * The `hidden_process` detector: the task list against the initial PID
 * namespace's IDR. Unlinking a task from the task list (`task_struct.tasks`)
 * hides it from every list walk, but the task keeps its pid, so it is still
 * found through the IDR. A process that started between the two reads would
 * look the same for a moment, so every candidate is confirmed against a task
 * list taken after the IDR.
 *
 * Like Volatility's pslist/psscan cross view, on the live kernel. Misses a
 * task that is removed from both (which also breaks its pid lookups).
 *
 * @module
 */
import { findPid, initPidNamespace, listPids } from "../os/pids.ts";
import { isTornSnapshot } from "../os/view.ts";
import { isKernelAddress } from "../os/list.ts";
import { readTask } from "../os/tasks.ts";
import { type Alert, hex } from "./alert.ts";
import type { Detector } from "./detector.ts";
import { taskLayout } from "../os/tasks_layout.ts";

/** A pid that changes while it is looked up is one that is being freed: not a hidden task. */
function ignoreTorn(error: unknown): undefined {
  if (isTornSnapshot(error)) return undefined;
  throw error;
}

/** Reports tasks whose pid is allocated but whose thread group is not on the task list. */
export const hiddenProcessDetector: Detector = {
  name: "hidden_process",
  description: "tasks in the PID namespace's IDR that the task list does not hold",
  async run(snapshot) {
    const { profile, mem } = snapshot;
    const leaderOffset = BigInt(taskLayout(profile).group_leader.offset);
    const namespace = await initPidNamespace(mem, profile, snapshot.taskListStart);
    const listed = new Set(snapshot.processes.map((p) => p.addr));
    // Thread-group leaders whose pid is allocated, by the pid number that led to them. The
    // IDR and the pids are read over time while tasks come and go: a pid freed meanwhile
    // can point at reused memory. Such a pid is looked up again below, not trusted.
    const candidates: { nr: number; seen: bigint }[] = [];
    const pids = await listPids(mem, profile, namespace);
    // Threads are not on the task list: their task_structs are fetched together.
    await mem.prefetch(
      pids.filter((e) => e.task !== 0n && !listed.has(e.task) && isKernelAddress(e.task))
        .map((e) => e.task + leaderOffset),
    );
    for (const entry of pids) {
      if (entry.task === 0n || listed.has(entry.task)) continue;
      const leader = isKernelAddress(entry.task)
        ? await mem.u64(entry.task + leaderOffset).catch((e) => ignoreTorn(e) ?? 0n) // its leader
        : 0n;
      if (!listed.has(leader)) candidates.push({ nr: entry.nr, seen: leader });
    }
    if (candidates.length === 0) return [];
    // Confirm each against a task list taken now and its pid looked up anew.
    const retaken = new Set((await snapshot.retakeProcesses()).map((p) => p.addr));
    const fresh = snapshot.freshMemory();
    const alerts: Alert[] = [];
    const reported = new Set<bigint>();
    for (const { nr, seen } of candidates) {
      if (retaken.has(seen)) continue; // started between the two reads
      const entry = await findPid(fresh, profile, namespace, nr).catch(ignoreTorn);
      if (entry === undefined || entry.task === 0n) continue; // ended meanwhile
      const leader = await fresh.u64(entry.task + leaderOffset).catch(ignoreTorn);
      // Known now, or the first read met a pid being reused, or a thread already reported.
      if (leader === undefined || retaken.has(leader) || reported.has(leader)) continue;
      reported.add(leader);
      const task = await readTask(fresh, profile, leader);
      alerts.push({
        detector: "hidden_process",
        severity: "critical",
        summary: `process ${task.comm} (pid ${task.tgid}) has a pid but is not on the task list`,
        evidence: {
          pid: task.pid,
          tgid: task.tgid,
          ppid: task.ppid,
          comm: task.comm,
          uid: task.uid,
          task: hex(leader),
          idr_nr: nr,
          seen_in: "init_pid_ns IDR",
          missing_from: "task list (task_struct.tasks), twice",
        },
      });
    }
    return alerts;
  },
};

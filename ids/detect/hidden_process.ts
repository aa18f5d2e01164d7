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
import { readTask } from "../os/tasks.ts";
import { type Alert, hex } from "./alert.ts";
import type { Detector } from "./detector.ts";

/** Reports tasks whose pid is allocated but whose thread group is not on the task list. */
export const hiddenProcessDetector: Detector = {
  name: "hidden_process",
  description: "tasks in the PID namespace's IDR that the task list does not hold",
  async run(snapshot) {
    const { profile, mem } = snapshot;
    const leaderOffset = BigInt(profile.tasks.group_leader.offset);
    const namespace = await initPidNamespace(mem, profile, snapshot.taskListStart);
    const listed = new Set(snapshot.processes.map((p) => p.addr));
    // Thread-group leaders whose pid is allocated, by the pid number that led to them.
    const candidates = new Map<bigint, number>();
    for (const entry of await listPids(mem, profile, namespace)) {
      if (entry.task === 0n || listed.has(entry.task)) continue;
      const leader = await mem.u64(entry.task + leaderOffset); // a thread: its group's leader
      if (!listed.has(leader) && !candidates.has(leader)) candidates.set(leader, entry.nr);
    }
    if (candidates.size === 0) return [];
    // Confirm each against a task list taken now and its pid looked up anew.
    const retaken = new Set((await snapshot.retakeProcesses()).map((p) => p.addr));
    const fresh = snapshot.freshMemory();
    const alerts: Alert[] = [];
    for (const [leader, nr] of candidates) {
      if (retaken.has(leader)) continue; // started between the two reads
      const entry = await findPid(fresh, profile, namespace, nr);
      if (entry === undefined || entry.task === 0n) continue; // ended meanwhile
      if (await fresh.u64(entry.task + leaderOffset) !== leader) continue; // pid reused
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

/**
 * The `baseline` detector: modules, listening sockets and root processes that
 * are new since the saved baseline.
 *
 * @module
 */
import type { Alert } from "./alert.ts";
import { hex } from "./alert.ts";
import { isRootProcess } from "./baseline.ts";
import { type Detector, DetectorSkipped } from "./detector.ts";

/** Reports what is new since the baseline. */
export const baselineDetector: Detector = {
  name: "baseline",
  description: "new modules, new listening ports and new root processes since the baseline",
  run(snapshot, { baseline }) {
    if (baseline === undefined) {
      return Promise.reject(new DetectorSkipped("no baseline given (--baseline FILE)"));
    }
    const alerts: Alert[] = [];
    const since = { baseline_taken: baseline.taken };
    const modules = new Set(baseline.modules);
    for (const m of snapshot.modules) {
      if (modules.has(m.name)) continue;
      alerts.push({
        detector: "baseline",
        severity: "high",
        summary: `module ${m.name} is new since the baseline`,
        evidence: { module: m.name, base: hex(m.base), size: m.size, ...since },
      });
    }
    if (baseline.listening !== undefined && snapshot.listening !== undefined) {
      const listening = new Set(baseline.listening);
      for (const socket of new Set(snapshot.listening)) {
        if (listening.has(socket)) continue;
        alerts.push({
          detector: "baseline",
          severity: "medium",
          summary: `listening socket ${socket} is new since the baseline`,
          evidence: { listening: socket, ...since },
        });
      }
    }
    const roots = new Set(baseline.root_processes);
    for (const p of snapshot.processes) {
      if (!isRootProcess(p) || roots.has(p.comm)) continue;
      alerts.push({
        detector: "baseline",
        severity: "medium",
        summary: `root process ${p.comm} (pid ${p.pid}) is new since the baseline`,
        evidence: { pid: p.pid, ppid: p.ppid, comm: p.comm, uid: p.uid, euid: p.euid, ...since },
      });
    }
    return Promise.resolve(alerts);
  },
};

/**
 * The `policy` detector: user-space processes, modules and listening sockets
 * that the operator's policy does not allow.
 *
 * @module
 */
import type { Alert } from "./alert.ts";
import { hex } from "./alert.ts";
import type { Detector } from "./detector.ts";
import { matches } from "./policy.ts";

/** Reports what the policy does not allow. */
export const policyDetector: Detector = {
  name: "policy",
  description: "processes, modules and listening ports the policy does not allow",
  run(snapshot, { policy }) {
    const alerts: Alert[] = [];
    if (policy.processes !== undefined) {
      for (const p of snapshot.processes) {
        if (p.kthread || matches(p.comm, policy.processes)) continue;
        alerts.push({
          detector: "policy",
          severity: "medium",
          summary: `process ${p.comm} (pid ${p.pid}) is not allowed by the policy`,
          evidence: { pid: p.pid, ppid: p.ppid, comm: p.comm, uid: p.uid, task: hex(p.addr) },
        });
      }
    }
    if (policy.modules !== undefined) {
      for (const m of snapshot.modules) {
        if (matches(m.name, policy.modules)) continue;
        alerts.push({
          detector: "policy",
          severity: "high",
          summary: `module ${m.name} is not allowed by the policy`,
          evidence: { module: m.name, base: hex(m.base), size: m.size, struct_module: hex(m.addr) },
        });
      }
    }
    if (policy.listening !== undefined && snapshot.listening !== undefined) {
      for (const socket of snapshot.listening) {
        if (matches(socket, policy.listening)) continue;
        alerts.push({
          detector: "policy",
          severity: "high",
          summary: `listening socket ${socket} is not allowed by the policy`,
          evidence: { listening: socket },
        });
      }
    }
    return Promise.resolve(alerts);
  },
};

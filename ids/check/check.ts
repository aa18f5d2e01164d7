/**
 * One check of one guest: a snapshot of its views (task list, module list,
 * sockets) taken in one fetch mode, every detector run on it, and the alerts,
 * the detectors that could not run and the cost in one report.
 *
 * @example
 * ```ts
 * const report = await runChecks(guest, { policy: DEFAULT_POLICY });
 * report.alerts; // [] on a clean guest
 * ```
 * @module
 */
import {
  costSince,
  type FetchMode,
  type Guest,
  isTornSnapshot,
  SNAPSHOT_ATTEMPTS,
} from "../guest.ts";
import { AgentError } from "../client/agent_client.ts";
import { HostileAnswer } from "../client/budget.ts";
import { hostileAgentReport } from "./hostile_agent.ts";
import { type Alert, type CheckReport, SEVERITIES, type Skipped } from "../detect/alert.ts";
import { baselineDetector } from "../detect/baseline_drift.ts";
import {
  type Detector,
  type DetectorConfig,
  DetectorSkipped,
  type Snapshot,
} from "../detect/detector.ts";
import type { SocketInfo } from "../os/sockets.ts";
import { policyDetector } from "../detect/policy_violation.ts";
import { hiddenModuleDetector } from "../detect/hidden_module.ts";
import { syscallHookDetector } from "../detect/syscall_hook.ts";
import { hiddenProcessDetector } from "../detect/hidden_process.ts";
import { credentialsDetector } from "../detect/credentials.ts";
import { moduleView } from "../os/module_view.ts";
import { processView } from "../os/process_view.ts";
import { socketView } from "../os/socket_view.ts";
import { socketLayout, socketLayoutNote } from "../os/sockets_layout.ts";

/** Every detector, in the order they run. */
export const DETECTORS: readonly Detector[] = [
  hiddenModuleDetector,
  syscallHookDetector,
  hiddenProcessDetector,
  credentialsDetector,
  policyDetector,
  baselineDetector,
];

/** How a check runs. */
export interface CheckOptions {
  /** Fetch mode of the views (default `bulk`: one request each). */
  mode?: FetchMode;
  /** The detectors to run (default all). */
  detectors?: readonly Detector[];
}

/**
 * The listening sockets as `proto/port`: TCP sockets in LISTEN, and UDP
 * sockets bound to a port and not connected (/proc/net/udp's state 07, CLOSE).
 */
export function listeningPorts(sockets: readonly SocketInfo[]): string[] {
  const listening = sockets.filter((s) =>
    s.proto === "tcp" ? s.state === "LISTEN" : s.state === "CLOSE" && s.local_port !== 0
  );
  return [...new Set(listening.map((s) => `${s.proto}/${s.local_port}`))].sort();
}

/**
 * A snapshot and the pages its views missed: in every attempt of every view
 * (`acquisitionMisses`), and how many of them were the task list's memory's
 * own at the end (`missesAtTake`), so that the detectors' misses on that
 * memory count too.
 */
export interface MeasuredSnapshot extends Snapshot {
  /** Misses of the task, module and socket acquisitions, every attempt. */
  acquisitionMisses: number;
  /** `mem.misses` when the snapshot was taken. */
  missesAtTake: number;
}

/** Takes the snapshot the detectors share. */
export async function takeSnapshot(
  guest: Guest,
  mode: FetchMode = "bulk",
): Promise<MeasuredSnapshot> {
  const acquired = await guest.acquire(processView(), mode);
  const processes = acquired.items;
  const modulesAcquired = await guest.acquire(moduleView, mode);
  const modules = modulesAcquired.items;
  let acquisitionMisses = acquired.cost.misses + modulesAcquired.cost.misses;
  const first = processes[0];
  if (first === undefined) throw new Error("The guest's task list is empty");
  // Without the sockets (tables unknown, or their walker refused by this kernel) the other
  // checks still run; the report says why listening sockets were not checked.
  let listening: string[] | undefined;
  let listeningNote = socketLayoutNote(guest.profile);
  if (socketLayout(guest.profile) !== undefined) {
    try {
      const sockets = await guest.acquire(socketView, mode);
      acquisitionMisses += sockets.cost.misses;
      listening = listeningPorts(sockets.items);
    } catch (error) {
      if (!(error instanceof AgentError) && !isTornSnapshot(error)) throw error;
      listeningNote = `cannot read the sockets: ${(error as Error).message}`;
    }
  }
  return {
    acquisitionMisses,
    missesAtTake: acquired.memory.misses,
    listening,
    listeningNote,
    profile: guest.profile,
    mem: acquired.memory,
    processes,
    taskListStart: guest.profile.initTask ?? first.addr,
    modules,
    // One attempt each: a torn retake is retried by the detector loop (checkOnce), not nested.
    retakeProcesses: async () => (await guest.acquire(processView(), mode, 1)).items,
    retakeModules: async () => (await guest.acquire(moduleView, mode, 1)).items,
    freshMemory: () => guest.memory(),
    captureList: (plan, head) => guest.captureList(acquired.memory, plan, head),
  };
}

/**
 * Runs the detectors on one snapshot of `guest`. An answer of the agent that
 * the guest's kernel cannot hold, or past the budget, ends the check with the
 * `hostile_agent` alert (ids/detect/hostile_agent.ts).
 */
export async function runChecks(
  guest: Guest,
  config: DetectorConfig,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const started = performance.now();
  const before = guest.client.stats;
  try {
    return await checkOnce(guest, config, options, started, before);
  } catch (error) {
    if (!(error instanceof HostileAnswer)) throw error;
    const cost = costSince(before, guest.client.stats, 0);
    return hostileAgentReport(error, performance.now() - started, cost);
  }
}

async function checkOnce(
  guest: Guest,
  config: DetectorConfig,
  options: CheckOptions,
  started: number,
  before: Guest["client"]["stats"],
): Promise<CheckReport> {
  const snapshot = await takeSnapshot(guest, options.mode);
  const alerts: Alert[] = [];
  const skipped: Skipped[] = [];
  const ran: string[] = [];
  if (snapshot.listening === undefined) {
    skipped.push({
      detector: "listening sockets (policy, baseline)",
      reason: snapshot.listeningNote ?? "the guest's sockets could not be read",
    });
  }
  for (const detector of options.detectors ?? DETECTORS) {
    // A detector's reads are not atomic either: what it meets torn, it reads again.
    for (let attempt = 1;; attempt++) {
      try {
        alerts.push(...await detector.run(snapshot, config));
        ran.push(detector.name);
      } catch (error) {
        if (error instanceof DetectorSkipped) {
          skipped.push({ detector: detector.name, reason: error.message });
        } else if (isTornSnapshot(error) && attempt < SNAPSHOT_ATTEMPTS) {
          snapshot.mem.forget();
          continue;
        } else if (isTornSnapshot(error)) {
          skipped.push({
            detector: detector.name,
            reason: `no consistent read in ${SNAPSHOT_ATTEMPTS} attempts: ${
              (error as Error).message
            }`,
          });
        } else throw error;
      }
      break;
    }
  }
  const rank = (a: Alert) => SEVERITIES.indexOf(a.severity);
  alerts.sort((a, b) => rank(a) - rank(b));
  return {
    alerts,
    skipped,
    ran,
    // Every view's misses in every attempt, and the detectors' on the snapshot's memory (reads
    // through a fresh memory or a retaken list count in round trips and bytes only).
    cost: costSince(
      before,
      guest.client.stats,
      snapshot.acquisitionMisses + snapshot.mem.misses - snapshot.missesAtTake,
    ),
    durationMs: performance.now() - started,
  };
}

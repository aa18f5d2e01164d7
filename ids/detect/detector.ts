/**
 * What a detector is: a named function from one snapshot of the guest (its
 * views, a memory layer for further reads, the policy and the baseline) to
 * alerts. A detector that cannot run on this guest throws
 * {@linkcode DetectorSkipped} with the reason.
 *
 * @module
 */
import type { KernelMemory } from "../memory/memory.ts";
import type { CapturePlan } from "../memory/plan.ts";
import type { ModuleInfo } from "../os/modules.ts";
import type { ProcessInfo } from "../os/tasks.ts";
import type { KernelProfile } from "../profile/profile.ts";
import type { Alert } from "./alert.ts";
import type { Baseline } from "./baseline.ts";
import type { Policy } from "./policy.ts";

/** What every detector sees of the guest. */
export interface Snapshot {
  /** The guest kernel's profile. */
  profile: KernelProfile;
  /** Reads further guest memory (each miss is one page read through the agent). */
  mem: KernelMemory;
  /** The task list, as `ids ps` shows it. */
  processes: ProcessInfo[];
  /** A task on the task list to start walks at (`init_task` when kallsyms has it). */
  taskListStart: bigint;
  /** The module list, as `ids lsmod` shows it. */
  modules: ModuleInfo[];
  /**
   * Listening sockets as `proto/port` (TCP in LISTEN, UDP bound to a port);
   * undefined when the guest's sockets could not be read.
   */
  listening?: string[];
  /** Why {@link Snapshot.listening} is undefined. */
  listeningNote?: string;
  /** Takes the task list again (to confirm a finding against a newer list). */
  retakeProcesses(): Promise<ProcessInfo[]>;
  /** A memory layer over empty caches (for reads that must not see the snapshot's pages). */
  freshMemory(): KernelMemory;
  /** Captures what `plan` reads of each object of the list at `head`, in one request. */
  captureList(plan: CapturePlan, head: bigint): Promise<void>;
  /** Takes the module list again. */
  retakeModules(): Promise<ModuleInfo[]>;
}

/** What the operator configured. */
export interface DetectorConfig {
  /** The policy. */
  policy: Policy;
  /** The saved baseline, if any. */
  baseline?: Baseline;
}

/** One detector. */
export interface Detector {
  /** Its name, as in alerts. */
  name: string;
  /** What it checks, one line. */
  description: string;
  /** Runs it. */
  run(snapshot: Snapshot, config: DetectorConfig): Promise<Alert[]>;
}

/** Thrown by a detector that cannot run on this guest. */
export class DetectorSkipped extends Error {
  /** @param reason why, in sentence case */
  constructor(reason: string) {
    super(reason);
    this.name = "DetectorSkipped";
  }
}

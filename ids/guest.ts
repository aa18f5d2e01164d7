/**
 * One monitored guest as the IDS sees it: the agent connection, the kernel
 * profile built from the guest's own BTF and kallsyms, and the OS views run in
 * a chosen fetch mode. Every acquisition starts from an empty cache, so a
 * result always reflects the guest at that moment.
 *
 * @module
 */
import { printable } from "./printable.ts";
import { AgentClient, type TrafficStats } from "./client/agent_client.ts";
import { type BackoffOptions, DEFAULT_BACKOFF, withBackoff } from "./client/backoff.ts";
import type { ClientSecurity } from "./client/channel.ts";
import { Budget, NO_DEADLINE_MS } from "./client/budget.ts";
import { DEFAULT_GUEST_LIMITS, type GuestLimits } from "./limits.ts";
import { AgentPageSource } from "./memory/agent_pages.ts";
import { ALL, bulkWalk } from "./memory/bulk.ts";
import { planWalk } from "./memory/fields.ts";
import { KernelMemory, MemoryFault } from "./memory/memory.ts";
import { ListWalkError } from "./os/list.ts";
import { PageCache } from "./memory/page_cache.ts";
import type { CapturePlan } from "./memory/plan.ts";
import { RangeCache } from "./memory/range_cache.ts";
import { ProgramSet, WalkFault } from "./memory/programs.ts";
import type { ProgramName, VariantName } from "../bpf/objects.ts";
import { Btf } from "./profile/btf.ts";
import { Kallsyms } from "./profile/kallsyms.ts";
import { KernelProfile } from "./profile/profile.ts";
import { listModules, type ModuleInfo } from "./os/modules.ts";
import { listTasks, type ProcessInfo } from "./os/tasks.ts";
import { moduleCapturePlan, socketCapturePlan, taskCapturePlan } from "./os/plans.ts";
import type { GuardedPlan } from "./memory/plan_recorder.ts";
import { hashWalk } from "./memory/hash.ts";
import {
  findInit,
  findSocketTables,
  listSockets,
  type NamespacedSocketInfo,
  netNamespaceInums,
  type SocketEntry,
  type SocketInfo,
  socketInfo,
  type SocketTables,
  socketWalkSpec,
} from "./os/sockets.ts";

/**
 * How the memory cache is filled: `page`, one round trip per page (the
 * SEVmonitor baseline); `bulk`, the pages of every object in one request (the
 * paper); `fields`, only the members the views read, in one request.
 */
export type FetchMode = "page" | "bulk" | "fields";

/** The fetch modes, in the order the benchmark runs them. */
export const FETCH_MODES: readonly FetchMode[] = ["page", "bulk", "fields"];

/** What one acquisition cost. */
export interface AcquisitionCost {
  /** Requests to the agent (round trips). */
  roundTrips: number;
  /** Bytes on the wire, both directions. */
  bytes: number;
  /** Pages the views read that the mode had not prefetched. */
  misses: number;
  /** Snapshots taken: 1, or more when a walk met a list that changed under it. */
  attempts: number;
}

/** A result and what it cost. */
export interface Acquired<T> {
  /** The view's result. */
  items: T[];
  /** The cost. */
  cost: AcquisitionCost;
  /** The memory the view read (its caches), for further reads of the same snapshot. */
  memory: KernelMemory;
}

/** Snapshots taken before a list that keeps changing under the walk is reported as broken. */
export const SNAPSHOT_ATTEMPTS = 3;

/**
 * Whether `error` is what a walk over memory that changed under it meets: a
 * list that loops or breaks, a pointer to memory that cannot be read. Taking
 * the snapshot again is the answer; a structure that stays broken is reported.
 */
export function isTornSnapshot(error: unknown): boolean {
  return error instanceof ListWalkError || error instanceof WalkFault ||
    error instanceof MemoryFault;
}

/** Parses a fetch mode name. */
export function parseFetchMode(text: string): FetchMode {
  if ((FETCH_MODES as readonly string[]).includes(text)) return text as FetchMode;
  throw new Error(`Unknown fetch mode ${text}: use ${FETCH_MODES.join(", ")}`);
}

/** The views' capture plans for one kernel (for `fields` mode). */
interface GuestPlans {
  tasks: CapturePlan;
  modules: CapturePlan | undefined;
  sockets: GuardedPlan | undefined;
}

/** How {@linkcode Guest.open} reaches the agent and bounds what it answers. */
export interface OpenOptions {
  /** Retries while the agent cannot be reached (default {@linkcode DEFAULT_BACKOFF}). */
  backoff?: BackoffOptions;
  /** Budgets and ceilings on the agent's answers (default {@linkcode DEFAULT_GUEST_LIMITS}). */
  limits?: GuestLimits;
  /** Ends the opening at its next step when aborted. */
  signal?: AbortSignal;
  /** Hears each step (connecting, the profile, the programs), for progress lines. */
  progress?: (step: string) => void;
}

/** A guest reached through its agent. */
export class Guest {
  /** The agent connection. */
  readonly client: AgentClient;
  /** The guest kernel's profile. */
  readonly profile: KernelProfile;
  /** The bounds on what this guest's agent may make the IDS do. */
  readonly limits: GuestLimits;
  readonly #programs: ProgramSet;
  /** The views' capture plans for this kernel (for `fields` mode). */
  readonly #plans: GuestPlans;
  /** The initial network namespace's socket tables, found on first use. */
  #socketTables: SocketTables | undefined;

  private constructor(
    client: AgentClient,
    profile: KernelProfile,
    plans: GuestPlans,
    limits: GuestLimits,
  ) {
    this.client = client;
    this.profile = profile;
    this.limits = limits;
    this.#programs = new ProgramSet(client, profile.bpf);
    this.#plans = plans;
  }

  /**
   * Connects to the agent at `url` (retrying with backoff while it cannot be
   * reached) and builds the profile of its kernel, within `options.limits`
   * (its deadline counts from the connection); `options.progress` hears each
   * step. Afterwards the byte, record and size limits hold for every
   * acquisition, but no deadline does until the caller starts one
   * ({@linkcode Guest.startBudget}: a command, a check).
   */
  static async open(
    url: string,
    security: ClientSecurity,
    options: OpenOptions = {},
  ): Promise<Guest> {
    const { backoff = DEFAULT_BACKOFF, limits = DEFAULT_GUEST_LIMITS, signal } = options;
    const progress = options.progress ?? (() => {});
    progress(`connecting to ${url}`);
    const client = await withBackoff(() => AgentClient.connect(url, security), backoff);
    client.budget = new Budget(limits, signal);
    try {
      progress("reading the kernel profile (BTF, kallsyms)");
      const info = await client.kernelInfo();
      if (info.btf_bytes === 0) {
        throw new Error(
          `Guest kernel ${
            printable(info.release)
          } has no BTF (/sys/kernel/btf/vmlinux): ebpfmonitor needs CONFIG_DEBUG_INFO_BTF=y`,
        );
      }
      const btf = await client.btf(limits.maxBtfBytes);
      const kallsyms = await client.kallsyms(limits.maxKallsymsBytes, limits.maxKallsymsLines);
      const profile = new KernelProfile({
        release: info.release,
        btf: Btf.parse(btf),
        kallsyms: Kallsyms.parse(kallsyms),
        pageSize: info.page_size,
      });
      const guest = new Guest(client, profile, {
        tasks: await taskCapturePlan(profile),
        modules: await moduleCapturePlan(profile),
        sockets: await socketCapturePlan(profile),
      }, limits);
      progress("loading the eBPF programs");
      await guest.#programs.preload([
        "read_page",
        "read_pages",
        "walk_tasks",
        "walk_modules",
        "walk_plan",
      ]);
      // The sockets' walker is loaded ahead too, but a kernel that refuses it keeps the other
      // views: `sockets` in bulk or fields mode loads it again and reports why it cannot.
      await guest.#programs.preload(["walk_hash"]).catch(() => {});
      guest.startBudget(NO_DEADLINE_MS, signal);
      return guest;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** The variant of each program loaded into the agent so far (bpf/objects.ts), by name. */
  programVariants(): ReadonlyMap<ProgramName, VariantName> {
    return this.#programs.loaded();
  }

  /**
   * A memory layer over empty caches whose misses are page reads, for what the
   * views do not read (the detectors' integrity checks).
   */
  memory(): KernelMemory {
    return new KernelMemory(
      new PageCache(this.profile.pageSize),
      new AgentPageSource(this.#programs),
      new RangeCache(this.profile.pageSize),
      this.client.budget,
    );
  }

  /**
   * Starts a new budget for a command or a check: its deadline (by default
   * the limits') counts from `startedAt` (default now) and bounds every
   * request and every view; aborting `signal` ends the work at its next step.
   */
  startBudget(
    deadlineMs: number = this.limits.deadlineMs,
    signal?: AbortSignal,
    startedAt?: number,
  ): void {
    this.client.budget = new Budget({ ...this.limits, deadlineMs }, signal, startedAt);
  }

  /**
   * Takes a snapshot with `body` and measures it ({@linkcode measureSnapshot});
   * each attempt starts the budget's byte and record counts afresh.
   */
  #measure<T>(body: (mem: KernelMemory) => Promise<T[]>): Promise<Acquired<T>> {
    return measureSnapshot(() => this.client.stats, () => {
      this.client.budget.startAcquisition();
      return this.memory();
    }, body);
  }

  /**
   * Lists processes (at most `limit`) in `mode`. Without `init_task` in
   * kallsyms the walk starts at the agent's own task, which the agent's walker
   * reports.
   */
  processes(mode: FetchMode, limit?: number): Promise<Acquired<ProcessInfo>> {
    return this.#measure(async (mem) => {
      let start = this.profile.initTask;
      // The list's anchor (init_task, pid 0) is walked but not listed: one more. The walker
      // is asked for one task past the ceiling, so that a longer list is seen as such.
      const maxTasks = this.limits.maxTasks;
      const walkLimit = Math.min(limit === undefined ? ALL : limit + 1, maxTasks + 1);
      if (mode === "bulk") {
        const walk = await bulkWalk(this.#programs, mem.cache, "tasks", start ?? 0n, walkLimit);
        start ??= walk.start;
      } else if (mode === "fields") {
        const walk = await planWalk(this.#programs, mem.ranges!, this.#plans.tasks, {
          addr: start ?? 0n,
          isHead: false,
          limit: walkLimit,
        });
        start ??= walk.start;
      } else if (start === undefined) {
        start = (await bulkWalk(this.#programs, mem.cache, "tasks", 0n, 0)).start;
      }
      return await listTasks(mem, this.profile, { start, limit, maxTasks });
    });
  }

  /** Lists modules in `mode`; empty on a kernel without modules (see `profile.modulesNote`). */
  modules(mode: FetchMode): Promise<Acquired<ModuleInfo>> {
    return this.#measure(async (mem) => {
      const layout = this.profile.modules;
      if (mode === "bulk" && layout !== undefined) {
        await bulkWalk(this.#programs, mem.cache, "modules", layout.listHead);
      } else if (mode === "fields" && layout !== undefined) {
        await planWalk(this.#programs, mem.ranges!, this.#plans.modules!, {
          addr: layout.listHead,
          isHead: true,
          limit: ALL,
        });
      }
      return await listModules(mem, this.profile);
    });
  }

  /**
   * Lists the TCP and UDP sockets (IPv4 and IPv6) of the guest's initial
   * network namespace in `mode`, as its /proc/net/{tcp,tcp6,udp,udp6} shows
   * them. Empty when the kernel's socket tables are unknown (see
   * `profile.socketsNote`). The tables are found once per guest, from pid 1's
   * network namespace (that acquisition's cost includes it); every
   * acquisition reads the tables and sockets afresh.
   */
  sockets(mode: FetchMode): Promise<Acquired<SocketInfo>> {
    return this.#measure(async (mem) => (await this.#sockets(mem, mode, false)).map(socketInfo));
  }

  /**
   * Like {@linkcode Guest.sockets}, but the sockets of every network namespace
   * that shares the initial namespace's tables, each with its namespace's
   * inode number (`netns`, as in `net:[4026531833]`). The walk fetches the
   * sockets only: in `bulk` and `fields` mode each namespace costs a page
   * read.
   */
  socketsOfAllNamespaces(mode: FetchMode): Promise<Acquired<NamespacedSocketInfo>> {
    return this.#measure(async (mem) => {
      const entries = await this.#sockets(mem, mode, true);
      const inums = await netNamespaceInums(mem, this.profile, entries.map((e) => e.net));
      const items = entries.map((e) => ({ ...socketInfo(e), netns: inums.get(e.net) ?? 0 }));
      return items;
    });
  }

  async #sockets(
    mem: KernelMemory,
    mode: FetchMode,
    allNamespaces: boolean,
  ): Promise<SocketEntry[]> {
    if (this.profile.sockets === undefined) return [];
    const tables = this.#socketTables ??= await this.#findSocketTables(mem);
    const plan = this.#plans.sockets;
    if (mode !== "page" && plan !== undefined) {
      await hashWalk(this.#programs, mem, socketWalkSpec(tables, plan, mode));
    }
    return await listSockets(mem, this.profile, tables, { allNamespaces });
  }

  /**
   * The initial network namespace's socket tables (found on first use, from
   * pid 1's `nsproxy->net_ns`); undefined when the kernel's are unknown.
   */
  async socketTables(): Promise<SocketTables | undefined> {
    if (this.profile.sockets === undefined) return undefined;
    return this.#socketTables ??= await this.#findSocketTables(this.memory());
  }

  async #findSocketTables(mem: KernelMemory): Promise<SocketTables> {
    const agent = (await bulkWalk(this.#programs, mem.cache, "tasks", 0n, 0)).start;
    const init = await findInit(mem, this.profile, agent);
    return await findSocketTables(mem, this.profile, init, this.limits.maxHashBuckets);
  }

  /**
   * Captures what `plan` names of every object on the list whose head is at
   * `head` into `mem`'s range cache, in one request (the `fields` walker), so
   * that a view of that list reads from the cache.
   */
  async captureList(mem: KernelMemory, plan: CapturePlan, head: bigint): Promise<void> {
    if (mem.ranges === undefined) throw new Error("captureList needs a memory with a range cache");
    await planWalk(this.#programs, mem.ranges, plan, { addr: head, isHead: true, limit: ALL });
  }

  /** Closes the agent connection. */
  close(): void {
    this.client.close();
  }
}

/**
 * Takes a snapshot with `body` over a fresh memory from `memory()`, and
 * measures what it cost. The kernel's lists change while they are walked: a
 * walk that spans several fires (or, in page mode, many requests) can meet a
 * task that ended meanwhile, and the snapshot then loops or points nowhere.
 * That is detected, never trusted: the snapshot is taken again from scratch
 * (a fresh memory), up to SNAPSHOT_ATTEMPTS times, and only a list that stays
 * broken is reported. The cost counts every attempt in every counter: round
 * trips, bytes and misses alike, and the attempts themselves.
 */
export async function measureSnapshot<T>(
  stats: () => TrafficStats,
  memory: () => KernelMemory,
  body: (mem: KernelMemory) => Promise<T[]>,
): Promise<Acquired<T>> {
  const before = stats();
  let misses = 0;
  for (let attempt = 1;; attempt++) {
    const mem = memory();
    try {
      const items = await body(mem);
      return { items, cost: costSince(before, stats(), misses + mem.misses, attempt), memory: mem };
    } catch (error) {
      misses += mem.misses;
      if (!isTornSnapshot(error) || attempt >= SNAPSHOT_ATTEMPTS) throw error;
    }
  }
}

/** What the traffic between two readings of the client's counters cost. */
export function costSince(
  before: TrafficStats,
  after: TrafficStats,
  misses: number,
  attempts = 1,
): AcquisitionCost {
  return {
    roundTrips: after.roundTrips - before.roundTrips,
    bytes: after.bytesSent - before.bytesSent + after.bytesReceived - before.bytesReceived,
    misses,
    attempts,
  };
}

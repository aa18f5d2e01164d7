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
import { hashWalk, hashWalkSpec } from "./memory/hash.ts";
import { KernelMemory } from "./memory/memory.ts";
import { PageCache } from "./memory/page_cache.ts";
import type { CapturePlan } from "./memory/plan.ts";
import { RangeCache } from "./memory/range_cache.ts";
import { ProgramSet } from "./memory/programs.ts";
import type { ProgramName, VariantName } from "../bpf/objects.ts";
import { Btf } from "./profile/btf.ts";
import { Kallsyms } from "./profile/kallsyms.ts";
import { KernelProfile } from "./profile/profile.ts";
import {
  type AcquisitionCost,
  type FetchMode,
  isTornSnapshot,
  type View,
  type ViewContext,
} from "./os/view.ts";

export {
  type AcquisitionCost,
  FETCH_MODES,
  type FetchMode,
  isTornSnapshot,
  parseFetchMode,
} from "./os/view.ts";
import { credLayout, taskLayout } from "./os/tasks_layout.ts";
import { moduleLayout } from "./os/modules_layout.ts";

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
  /** Per-guest memos of the views (e.g. where the socket tables are). */
  readonly #memos = new Map<string, unknown>();
  /** What the views may ask of this guest. */
  readonly context: ViewContext;

  private constructor(client: AgentClient, profile: KernelProfile, limits: GuestLimits) {
    this.client = client;
    this.profile = profile;
    this.limits = limits;
    this.#programs = new ProgramSet(client, profile.bpf);
    const programs = this.#programs;
    const memos = this.#memos;
    this.context = {
      profile,
      limits,
      agentTask: async (mem) => (await bulkWalk(programs, mem.cache, "tasks", 0n, 0)).start,
      async remember<V>(key: string, make: () => Promise<V>): Promise<V> {
        if (memos.has(key)) return memos.get(key) as V;
        const value = await make();
        memos.set(key, value);
        return value;
      },
    };
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
      // The views decide their layouts on first use; these are decided now, so that a kernel
      // whose task_struct, cred or struct module lacks what the views read is refused at connect.
      taskLayout(profile);
      credLayout(profile);
      moduleLayout(profile);
      const guest = new Guest(client, profile, limits);
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
  #measure<T>(body: (mem: KernelMemory) => Promise<T[]>, attempts: number): Promise<Acquired<T>> {
    return measureSnapshot(
      () => this.client.stats,
      () => {
        this.client.budget.startAcquisition();
        return this.memory();
      },
      body,
      attempts,
    );
  }

  /**
   * Acquires `view` in `mode`: a snapshot over empty caches, prefetched in
   * one request of the walker that fits the view's source (`bulk`: the list's
   * page walker or the hash walker's pages; `fields`: only the ranges of the
   * view's capture plan), then read by the view. A snapshot torn by a list
   * that changed under the walk is taken again ({@linkcode measureSnapshot}:
   * the one retry policy); the cost counts every attempt. A caller that
   * retries torn reads itself (a detector's retake) asks for one attempt, so
   * that retries never nest.
   */
  acquire<T>(
    view: View<T>,
    mode: FetchMode,
    attempts: number = SNAPSHOT_ATTEMPTS,
  ): Promise<Acquired<T>> {
    return this.#measure(async (mem) => {
      const ctx = this.context;
      const source = await view.source(ctx, mem);
      let start = source?.kind === "list" ? source.addr : undefined;
      if (source?.kind === "list" && mode === "bulk") {
        const walk = await bulkWalk(
          this.#programs,
          mem.cache,
          source.bulk,
          source.addr ?? 0n,
          source.limit,
        );
        start ??= walk.start;
      } else if (source?.kind === "list" && mode === "fields") {
        const walk = await planWalk(this.#programs, mem.ranges!, source.plan, {
          addr: source.addr ?? 0n,
          isHead: source.isHead,
          limit: source.limit,
        });
        start ??= walk.start;
      } else if (source?.kind === "hash" && mode !== "page") {
        await hashWalk(this.#programs, mem, hashWalkSpec(source.tables, source.plan, mode));
      }
      if (source?.kind === "list" && start === undefined) start = await ctx.agentTask(mem);
      return await view.read(ctx, mem, start);
    }, attempts);
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
 * (a fresh memory), up to `attempts` (SNAPSHOT_ATTEMPTS) times, and only a
 * list that stays broken is reported. The cost counts every attempt in every counter: round
 * trips, bytes and misses alike, and the attempts themselves.
 */
export async function measureSnapshot<T>(
  stats: () => TrafficStats,
  memory: () => KernelMemory,
  body: (mem: KernelMemory) => Promise<T[]>,
  attempts = SNAPSHOT_ATTEMPTS,
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
      if (!isTornSnapshot(error) || attempt >= attempts) throw error;
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

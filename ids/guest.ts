/**
 * One monitored guest as the IDS sees it: the agent connection, the kernel
 * profile built from the guest's own BTF and kallsyms, and the OS views run in
 * a chosen fetch mode. Every acquisition starts from an empty cache, so a
 * result always reflects the guest at that moment.
 *
 * @module
 */
import { AgentClient, type TrafficStats } from "./client/agent_client.ts";
import { type BackoffOptions, DEFAULT_BACKOFF, withBackoff } from "./client/backoff.ts";
import type { ClientSecurity } from "./client/channel.ts";
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

/** A guest reached through its agent. */
export class Guest {
  /** The agent connection. */
  readonly client: AgentClient;
  /** The guest kernel's profile. */
  readonly profile: KernelProfile;
  readonly #programs: ProgramSet;
  /** The views' capture plans for this kernel (for `fields` mode). */
  readonly #plans: GuestPlans;
  /** The initial network namespace's socket tables, found on first use. */
  #socketTables: SocketTables | undefined;

  private constructor(
    client: AgentClient,
    profile: KernelProfile,
    plans: GuestPlans,
  ) {
    this.client = client;
    this.profile = profile;
    this.#programs = new ProgramSet(client, profile.bpf);
    this.#plans = plans;
  }

  /**
   * Connects to the agent at `url` (retrying with backoff while it cannot be
   * reached) and builds the profile of its kernel.
   */
  static async open(
    url: string,
    security: ClientSecurity,
    backoff: BackoffOptions = DEFAULT_BACKOFF,
  ): Promise<Guest> {
    const client = await withBackoff(() => AgentClient.connect(url, security), backoff);
    try {
      const info = await client.kernelInfo();
      if (info.btf_bytes === 0) {
        throw new Error(
          `Guest kernel ${info.release} has no BTF (/sys/kernel/btf/vmlinux): ebpfmonitor needs CONFIG_DEBUG_INFO_BTF=y`,
        );
      }
      const [btf, kallsyms] = [await client.btf(), await client.kallsyms()];
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
      });
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
    );
  }

  /**
   * Takes a snapshot with `body`, and measures what it cost. The kernel's
   * lists change while they are walked: a walk that spans several fires (or,
   * in page mode, many requests) can meet a task that ended meanwhile, and the
   * snapshot then loops or points nowhere. That is detected, never trusted:
   * the snapshot is taken again from scratch, up to SNAPSHOT_ATTEMPTS times,
   * and only a list that stays broken is reported (retries count in the cost).
   */
  async #measure<T>(body: () => Promise<{ items: T[]; mem: KernelMemory }>): Promise<Acquired<T>> {
    const before = this.client.stats;
    for (let attempt = 1;; attempt++) {
      try {
        const { items, mem } = await body();
        return { items, cost: costSince(before, this.client.stats, mem.misses), memory: mem };
      } catch (error) {
        if (!isTornSnapshot(error) || attempt >= SNAPSHOT_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * Lists processes (at most `limit`) in `mode`. Without `init_task` in
   * kallsyms the walk starts at the agent's own task, which the agent's walker
   * reports.
   */
  processes(mode: FetchMode, limit?: number): Promise<Acquired<ProcessInfo>> {
    return this.#measure(async () => {
      const mem = this.memory();
      let start = this.profile.initTask;
      // The list's anchor (init_task, pid 0) is walked but not listed: one more.
      const walkLimit = limit === undefined ? ALL : limit + 1;
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
      return { items: await listTasks(mem, this.profile, { start, limit }), mem };
    });
  }

  /** Lists modules in `mode`; empty on a kernel without modules (see `profile.modulesNote`). */
  modules(mode: FetchMode): Promise<Acquired<ModuleInfo>> {
    return this.#measure(async () => {
      const mem = this.memory();
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
      return { items: await listModules(mem, this.profile), mem };
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
    return this.#measure(async () => {
      const { entries, mem } = await this.#sockets(mode, false);
      return { items: entries.map(socketInfo), mem };
    });
  }

  /**
   * Like {@linkcode Guest.sockets}, but the sockets of every network namespace
   * that shares the initial namespace's tables, each with its namespace's
   * inode number (`netns`, as in `net:[4026531833]`). The walk fetches the
   * sockets only: in `bulk` and `fields` mode each namespace costs a page
   * read.
   */
  socketsOfAllNamespaces(mode: FetchMode): Promise<Acquired<NamespacedSocketInfo>> {
    return this.#measure(async () => {
      const { entries, mem } = await this.#sockets(mode, true);
      const inums = await netNamespaceInums(mem, this.profile, entries.map((e) => e.net));
      const items = entries.map((e) => ({ ...socketInfo(e), netns: inums.get(e.net) ?? 0 }));
      return { items, mem };
    });
  }

  async #sockets(
    mode: FetchMode,
    allNamespaces: boolean,
  ): Promise<{ entries: SocketEntry[]; mem: KernelMemory }> {
    const mem = this.memory();
    if (this.profile.sockets === undefined) return { entries: [], mem };
    const tables = this.#socketTables ??= await this.#findSocketTables(mem);
    const plan = this.#plans.sockets;
    if (mode !== "page" && plan !== undefined) {
      await hashWalk(this.#programs, mem, socketWalkSpec(tables, plan, mode));
    }
    return { entries: await listSockets(mem, this.profile, tables, { allNamespaces }), mem };
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
    return await findSocketTables(mem, this.profile, init);
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

/** What the traffic between two readings of the client's counters cost. */
export function costSince(
  before: TrafficStats,
  after: TrafficStats,
  misses: number,
): AcquisitionCost {
  return {
    roundTrips: after.roundTrips - before.roundTrips,
    bytes: after.bytesSent - before.bytesSent + after.bytesReceived - before.bytesReceived,
    misses,
  };
}

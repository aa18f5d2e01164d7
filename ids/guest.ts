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
import { KernelMemory } from "./memory/memory.ts";
import { PageCache } from "./memory/page_cache.ts";
import { ProgramSet } from "./memory/programs.ts";
import { Btf } from "./profile/btf.ts";
import { Kallsyms } from "./profile/kallsyms.ts";
import { KernelProfile } from "./profile/profile.ts";
import { listModules, type ModuleInfo } from "./os/modules.ts";
import { listTasks, type ProcessInfo } from "./os/tasks.ts";

/** How the memory cache is filled. */
export type FetchMode = "page" | "bulk";

/** The fetch modes, in the order the benchmark runs them. */
export const FETCH_MODES: readonly FetchMode[] = ["page", "bulk"];

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
}

/** Parses a fetch mode name. */
export function parseFetchMode(text: string): FetchMode {
  if (text === "page" || text === "bulk") return text;
  throw new Error(`Unknown fetch mode ${text}: use page or bulk`);
}

/** A guest reached through its agent. */
export class Guest {
  /** The agent connection. */
  readonly client: AgentClient;
  /** The guest kernel's profile. */
  readonly profile: KernelProfile;
  readonly #programs: ProgramSet;

  private constructor(client: AgentClient, profile: KernelProfile) {
    this.client = client;
    this.profile = profile;
    this.#programs = new ProgramSet(client);
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
      const guest = new Guest(client, profile);
      await guest.#programs.preload(["read_page", "walk_tasks", "walk_modules"]);
      return guest;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** A memory layer over an empty cache whose misses are page reads. */
  #memory(): KernelMemory {
    return new KernelMemory(
      new PageCache(this.profile.pageSize),
      new AgentPageSource(this.#programs),
    );
  }

  async #measure<T>(body: () => Promise<{ items: T[]; mem: KernelMemory }>): Promise<Acquired<T>> {
    const before = this.client.stats;
    const { items, mem } = await body();
    return { items, cost: costSince(before, this.client.stats, mem.misses) };
  }

  /**
   * Lists processes (at most `limit`) in `mode`. Without `init_task` in
   * kallsyms the walk starts at the agent's own task, which the agent's walker
   * reports.
   */
  processes(mode: FetchMode, limit?: number): Promise<Acquired<ProcessInfo>> {
    return this.#measure(async () => {
      const mem = this.#memory();
      let start = this.profile.initTask;
      if (mode === "bulk") {
        // The list's anchor (init_task, pid 0) is walked but not listed: one more.
        const walkLimit = limit === undefined ? ALL : limit + 1;
        const walk = await bulkWalk(this.#programs, mem.cache, "tasks", start ?? 0n, walkLimit);
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
      const mem = this.#memory();
      const layout = this.profile.modules;
      if (mode === "bulk" && layout !== undefined) {
        await bulkWalk(this.#programs, mem.cache, "modules", layout.listHead);
      }
      return { items: await listModules(mem, this.profile), mem };
    });
  }

  /** Closes the agent connection. */
  close(): void {
    this.client.close();
  }
}

function costSince(before: TrafficStats, after: TrafficStats, misses: number): AcquisitionCost {
  return {
    roundTrips: after.roundTrips - before.roundTrips,
    bytes: after.bytesSent - before.bytesSent + after.bytesReceived - before.bytesReceived,
    misses,
  };
}

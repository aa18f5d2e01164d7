/**
 * `bulk` mode (the paper's eBPFmonitor): one request in which the eBPF walker
 * follows the list in the guest and streams back the pages of every object it
 * found. The pages go into the cache; the OS views then read from it as usual.
 *
 * @module
 */
import { AddrTag, type BpfRecord, RecordKind } from "../../bpf/records.ts";
import type { PageCache } from "./page_cache.ts";
import { firstFault, type ProgramSet } from "./programs.ts";

/** What a walk found. */
export interface WalkResult {
  /** Where the walk started (for tasks: the start task; for modules: the list head). */
  start: bigint;
  /** The objects visited, in list order. */
  objects: bigint[];
  /** Pages that went into the cache. */
  pages: number;
}

/** Bound on objects a walk asks for when the caller sets none. */
export const ALL = 0xffff_ffff;

function collect(what: string, records: BpfRecord[], cache: PageCache, tag: number): WalkResult {
  const fault = firstFault(what, records);
  if (fault) throw fault;
  const result: WalkResult = { start: 0n, objects: [], pages: 0 };
  for (const record of records) {
    if (record.kind === RecordKind.Page) {
      cache.put(record.addr, record.payload);
      result.pages++;
    } else if (record.kind === RecordKind.Addr) {
      if (record.value === BigInt(AddrTag.Start)) result.start = record.addr;
      else if (record.value === BigInt(tag)) result.objects.push(record.addr);
    }
  }
  if (!records.some((record) => record.kind === RecordKind.End)) {
    throw new Error(`${what} ended without its END record`);
  }
  return result;
}

/** The lists the walkers know, with the program and the tag of their objects. */
const WALKS = {
  tasks: { program: "walk_tasks", tag: AddrTag.Task, what: "Task list walk" },
  modules: { program: "walk_modules", tag: AddrTag.Module, what: "Module list walk" },
} as const;

/** A list a bulk walk can fetch. */
export type WalkedList = keyof typeof WALKS;

/**
 * Encodes a list walker's parameters (struct walk_tasks_params and
 * walk_modules_params after the agent's header): where to start, how many
 * objects at most.
 */
export function encodeListWalk(start: bigint, limit = ALL): Uint8Array {
  const params = new Uint8Array(16);
  const view = new DataView(params.buffer);
  view.setBigUint64(0, start, true);
  view.setUint32(8, Math.min(limit, ALL), true);
  return params;
}

/**
 * Walks a kernel list in the guest and caches the pages of at most `limit`
 * objects. For `tasks`, `start` is a task on the list (0: the agent's own
 * task), and each task comes with its creds and real_parent; for `modules`,
 * `start` is the address of the `modules` list head.
 */
export async function bulkWalk(
  programs: ProgramSet,
  cache: PageCache,
  list: WalkedList,
  start: bigint,
  limit = ALL,
): Promise<WalkResult> {
  const walk = WALKS[list];
  const records = await programs.run(walk.program, encodeListWalk(start, limit));
  return collect(walk.what, records, cache, walk.tag);
}

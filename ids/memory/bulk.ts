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

function walkParams(start: bigint, limit: number): Uint8Array {
  const params = new Uint8Array(16);
  const view = new DataView(params.buffer);
  view.setBigUint64(0, start, true);
  view.setUint32(8, Math.min(limit, ALL), true);
  return params;
}

/**
 * Walks the task list in the guest starting at task `start` (0: the agent's
 * own task) and caches the pages of at most `limit` tasks with their creds.
 */
export async function bulkWalkTasks(
  programs: ProgramSet,
  cache: PageCache,
  start: bigint,
  limit = ALL,
): Promise<WalkResult> {
  const records = await programs.run("walk_tasks", walkParams(start, limit));
  return collect("Task list walk", records, cache, AddrTag.Task);
}

/** Walks the module list whose head is at `head` and caches every struct module's pages. */
export async function bulkWalkModules(
  programs: ProgramSet,
  cache: PageCache,
  head: bigint,
  limit = ALL,
): Promise<WalkResult> {
  const records = await programs.run("walk_modules", walkParams(head, limit));
  return collect("Module list walk", records, cache, AddrTag.Module);
}

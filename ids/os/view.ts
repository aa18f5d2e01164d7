/**
 * What a view of kernel data is, for the one acquisition that runs every view
 * (ids/guest.ts, `Guest.acquire`): where its objects are and what of them to
 * capture (a {@linkcode ViewSource}: a linked list or hash tables, with the
 * capture plan learned from the view's own reader), and how to read it from a
 * {@linkcode KernelMemory}. A view never knows which fetch mode filled the
 * memory; it says what to walk, and the acquisition decides how.
 *
 * Adding a view is one file that exports a {@linkcode View} (with its
 * {@linkcode ViewOutput}: the columns and JSON the CLI prints), its test, and
 * one registration line where the CLI names it (ids/cli/view_command.ts
 * prints any view).
 *
 * @module
 */
import type { HashTable } from "../memory/hash.ts";
import { type KernelMemory, MemoryFault } from "../memory/memory.ts";
import { WalkFault } from "../memory/programs.ts";
import { ListWalkError } from "./list.ts";
import type { CapturePlan } from "../memory/plan.ts";
import type { GuardedPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import type { GuestLimits } from "../limits.ts";

/**
 * How the memory cache is filled: `page`, one round trip per page (the
 * SEVmonitor baseline); `bulk`, the pages of every object in one request (the
 * paper); `fields`, only the members the views read, in one request.
 */
export type FetchMode = "page" | "bulk" | "fields";

/** The fetch modes, in the order the benchmark runs them. */
export const FETCH_MODES: readonly FetchMode[] = ["page", "bulk", "fields"];

/** Parses a fetch mode name. */
export function parseFetchMode(text: string): FetchMode {
  if ((FETCH_MODES as readonly string[]).includes(text)) return text as FetchMode;
  throw new Error(`Unknown fetch mode ${text}: use ${FETCH_MODES.join(", ")}`);
}

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

/**
 * Whether `error` is what a walk over memory that changed under it meets: a
 * list that loops or breaks, a pointer to memory that cannot be read. Taking
 * the snapshot again is the answer; a structure that stays broken is reported.
 */
export function isTornSnapshot(error: unknown): boolean {
  return error instanceof ListWalkError || error instanceof WalkFault ||
    error instanceof MemoryFault;
}

/** Objects on a list linked through a `list_head`. */
export interface ListSource {
  kind: "list";
  /** The list's page walker for `bulk` mode (bpf/walk_tasks, bpf/walk_modules). */
  bulk: "tasks" | "modules";
  /** The first object, or the list head (`isHead`); undefined: the agent's own task. */
  addr: bigint | undefined;
  /** Whether `addr` is the list's head rather than its first object. */
  isHead: boolean;
  /** The most objects to walk. */
  limit: number;
  /** What to capture of each object in `fields` mode. */
  plan: CapturePlan;
}

/** Objects on the chains of hash tables (`hlist` or `hlist_nulls` buckets). */
export interface HashSource {
  kind: "hash";
  /** The tables, walked in order (bounded by `checkedTable` in ids/os/sockets.ts). */
  tables: HashTable[];
  /** What to capture of each object, and which pointers to follow for which guard byte. */
  plan: GuardedPlan;
}

/** Where a view's objects are and what of them to capture. */
export type ViewSource = ListSource | HashSource;

/** What a view may ask of the guest it reads: its profile, its bounds and per-guest memos. */
export interface ViewContext {
  /** The guest kernel's profile. */
  readonly profile: KernelProfile;
  /** The bounds on what the guest may make the IDS do. */
  readonly limits: GuestLimits;
  /** The agent's own task (its thread-group leader), as the task walker reports it. */
  agentTask(mem: KernelMemory): Promise<bigint>;
  /**
   * The value of `make` under `key`, made once per guest (a failure is not
   * remembered): e.g. where a namespace's socket tables are.
   */
  remember<V>(key: string, make: () => Promise<V>): Promise<V>;
}

/** One column of a view's table for people. */
export interface ViewColumn<T> {
  /** The column's header (`PID`). */
  readonly header: string;
  /** The cell of one item; guest text is made printable by the table, not here. */
  cell(item: T): string;
  /** Whether the column is right-aligned (numbers). */
  readonly right?: boolean;
  /** Whether the table has the column at all, given every item; always when absent. */
  shown?(items: readonly T[]): boolean;
}

/**
 * How the CLI prints a view: what its progress line says, its table's
 * columns, the JSON object of one item, and why it is empty on a kernel
 * without the structure.
 */
export interface ViewOutput<T> {
  /** What the progress line says is walked (`the task list`). */
  readonly walking: string;
  /** The table's columns, in order. */
  readonly columns: readonly ViewColumn<T>[];
  /** The JSON value of one item (`--json`): addresses as hex strings. */
  json(item: T): unknown;
  /**
   * Why the view is empty on `profile`'s kernel (the CLI prints it as
   * `note: …` on stderr); undefined when the kernel has the structure.
   */
  note?(profile: KernelProfile): string | undefined;
}

/** A view of kernel data: where to find it, how to read it from memory, and how it prints. */
export interface View<T> {
  /** The view's name, for errors and progress lines. */
  readonly name: string;
  /** How the CLI prints the view's items. */
  readonly output: ViewOutput<T>;
  /**
   * Where the view's objects are, for `bulk` and `fields` mode to prefetch
   * them in one request; undefined when there is nothing to prefetch (the
   * kernel lacks the structure, or the view reads few objects).
   */
  source(ctx: ViewContext, mem: KernelMemory): Promise<ViewSource | undefined>;
  /**
   * Reads the view. `start` is where a list source's walk started: its
   * `addr`, or the agent's own task when that was undefined.
   */
  read(ctx: ViewContext, mem: KernelMemory, start: bigint | undefined): Promise<T[]>;
}

/**
 * A memo per profile (one per guest): a view's layout, computed once from the
 * profile's type look-ups, as Volatility's object extensions do.
 */
export function memoized<L>(layout: (profile: KernelProfile) => L): (profile: KernelProfile) => L {
  const memo = new WeakMap<KernelProfile, { value: L }>();
  return (profile) => {
    let entry = memo.get(profile);
    if (entry === undefined) memo.set(profile, entry = { value: layout(profile) });
    return entry.value;
  };
}

/**
 * The one list walker every view uses: circular `list_head` lists (from their
 * head or from one of their objects) and `hlist`/`hlist_nulls` hash chains,
 * each with the same integrity checks (a pointer outside kernel memory, a
 * list that loops, more objects than a bound), and the error for a list that
 * loops or breaks.
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import { MemoryFault, type MemoryReader } from "../memory/memory.ts";

/**
 * Lowest address of the x86-64 kernel half: the canonical upper half with
 * 5-level paging (LA57, 57-bit addresses: the direct map starts at
 * 0xff11_0000_0000_0000), which contains the 4-level half (from
 * 0xffff_8000_0000_0000). A kernel built with CONFIG_X86_5LEVEL uses 5 levels
 * whenever the CPU has LA57 (Ice Lake, AMD Genoa and later).
 */
const KERNEL_SPACE_START = 0xff00_0000_0000_0000n;

/** Whether `addr` lies in the kernel half of the x86-64 address space (4- or 5-level paging). */
export function isKernelAddress(addr: bigint): boolean {
  return addr >= KERNEL_SPACE_START && addr <= 0xffff_ffff_ffff_ffffn;
}

/** A kernel list could not be walked to its end. */
export class ListWalkError extends Error {
  /** The object the walk was at. */
  readonly addr: bigint;
  /** @param list which list @param addr where @param reason what went wrong */
  constructor(list: string, addr: bigint, reason: string) {
    super(`Cannot walk the ${list} at ${formatAddress(addr)}: ${reason}`);
    this.name = "ListWalkError";
    this.addr = addr;
  }
}

/** How to walk one kind of circular `list_head` list. */
export interface ListWalk {
  /** Which list, for errors (`task list`). */
  name: string;
  /** Offset in an object of its `list_head`'s `next` pointer. */
  next: number;
  /** Offset in an object of its `list_head` (`container_of`). */
  link: number;
  /** The most objects the list may hold. */
  max: number;
  /** The error for a list longer than `max`, at object `obj`. */
  tooMany(obj: bigint): Error;
}

/**
 * The objects of the circular list whose head (not an object) is at `head`,
 * in order. A `next` outside kernel memory, a list that loops without
 * reaching its head, or one longer than `walk.max` ends the walk with an
 * error: a guest's list is walked, never trusted.
 */
export async function* listFromHead(
  mem: MemoryReader,
  head: bigint,
  walk: ListWalk,
): AsyncGenerator<bigint> {
  const seen = new Set<bigint>();
  let node = await mem.u64(head + BigInt(walk.next - walk.link));
  while (node !== head) {
    const obj = node - BigInt(walk.link);
    if (!isKernelAddress(node)) {
      throw new ListWalkError(
        walk.name,
        obj,
        `next points outside kernel memory (${formatAddress(node)})`,
      );
    }
    if (seen.has(obj)) {
      throw new ListWalkError(walk.name, obj, "loops back without reaching its head");
    }
    if (seen.size >= walk.max) throw walk.tooMany(obj);
    seen.add(obj);
    yield obj;
    node = await mem.u64(obj + BigInt(walk.next));
  }
}

/**
 * The objects of a circular list from its object `start` (a list without a
 * head of its own, like the task list from any task), `start` first; the same
 * checks as {@linkcode listFromHead}.
 */
export async function* listFrom(
  mem: MemoryReader,
  start: bigint,
  walk: ListWalk,
): AsyncGenerator<bigint> {
  const seen = new Set<bigint>();
  let obj = start;
  for (;;) {
    if (seen.size >= walk.max) throw walk.tooMany(obj);
    seen.add(obj);
    yield obj;
    const next = (await mem.u64(obj + BigInt(walk.next))) - BigInt(walk.link);
    if (next === start) return;
    if (!isKernelAddress(next)) {
      throw new ListWalkError(
        walk.name,
        obj,
        `next points outside kernel memory (${formatAddress(next)})`,
      );
    }
    if (seen.has(next)) {
      throw new ListWalkError(walk.name, obj, "loops back without reaching its start");
    }
    obj = next;
  }
}

/** How to walk the chains of one hash table of `hlist` or `hlist_nulls` heads. */
export interface ChainWalk {
  /** Which table, for errors (`tcp`: "tcp hash chain", "tcp hash table"). */
  name: string;
  /** What the table holds, for errors (`sockets`). */
  what: string;
  /** Offset in an object of its chain node. */
  link: number;
  /** Whether the chains end in nulls markers (odd values), not NULL. */
  nulls: boolean;
  /** The most objects the table may hold. */
  max: number;
  /** Objects listed so far, across the table's chains (and tables that share objects). */
  seen: Set<bigint>;
}

/** One bucket of a hash table: where its head is, and the nulls value its chain ends in. */
export interface ChainBucket {
  /** Address of the bucket's head. */
  addr: bigint;
  /** The nulls value (`hlist_nulls`) this bucket's chain ends in; unused for `hlist` chains. */
  nulls: bigint;
}

/** Times one chain is read again (from memory read anew) before it counts as broken. */
export const CHAIN_RESTARTS = 8;

/**
 * Reads the objects on the chain of `bucket`, whose head held `head`, each
 * with `read` (undefined: not listed). A table changes while it is read (in
 * `page` mode over hundreds of requests, each object's page as it was when
 * first read): a chain that loops, points outside kernel memory, meets memory
 * that cannot be read, or (`hlist_nulls`) ends in another bucket's nulls
 * value was torn by an object that moved meanwhile (freed and reused in
 * another chain). It is read again from the bucket through memory read anew
 * (`mem.fresh()`), as the kernel's own lockless lookups restart
 * (`__inet_lookup_established`), up to {@linkcode CHAIN_RESTARTS} times, then
 * reported. An object already listed from another chain is not listed again,
 * and the walk goes on past it; more than `walk.max` objects is an error.
 */
export async function readChain<T>(
  mem: MemoryReader,
  bucket: ChainBucket,
  head: bigint,
  walk: ChainWalk,
  read: (mem: MemoryReader, obj: bigint) => Promise<T | undefined>,
): Promise<T[]> {
  let reader = mem;
  for (let restart = 0;; restart++) {
    const chain = await walkChain(reader, bucket, head, walk, read);
    if (!(chain instanceof Error)) {
      for (const obj of chain.objects) walk.seen.add(obj);
      return chain.items;
    }
    const fresh = restart < CHAIN_RESTARTS ? mem.fresh?.() : undefined;
    if (fresh === undefined) throw chain;
    reader = fresh;
    head = await reader.u64(bucket.addr);
  }
}

/** Walks one chain from `head`: its new objects and what `read` made of them, or why it is torn. */
async function walkChain<T>(
  mem: MemoryReader,
  bucket: ChainBucket,
  head: bigint,
  walk: ChainWalk,
  read: (mem: MemoryReader, obj: bigint) => Promise<T | undefined>,
): Promise<{ items: T[]; objects: bigint[] } | Error> {
  const items: T[] = [];
  const objects: bigint[] = [];
  const here = new Set<bigint>();
  const chain = `${walk.name} hash chain`;
  let last = head - BigInt(walk.link);
  let node = head;
  try {
    for (; !chainEnd(node, walk.nulls); node = await mem.u64(node)) {
      if (!isKernelAddress(node)) {
        return new ListWalkError(chain, node, "points outside kernel memory");
      }
      const obj = node - BigInt(walk.link);
      if (here.has(obj)) return new ListWalkError(chain, obj, "loops");
      here.add(obj);
      last = obj;
      if (walk.seen.has(obj)) continue;
      if (walk.seen.size + objects.length >= walk.max) {
        throw new ListWalkError(`${walk.name} hash table`, obj, `holds too many ${walk.what}`);
      }
      objects.push(obj);
      const item = await read(mem, obj);
      if (item !== undefined) items.push(item);
    }
  } catch (error) {
    if (error instanceof MemoryFault) return error;
    throw error;
  }
  // A head that is a nulls value was read from the bucket itself; an end reached through an
  // object must be this bucket's.
  if (walk.nulls && node !== head && node >> 1n !== bucket.nulls) {
    return new ListWalkError(
      chain,
      last,
      `ends in the nulls value ${node >> 1n} of another bucket than ${bucket.nulls}`,
    );
  }
  return { items, objects };
}

/** Whether a chain node is its chain's end (NULL, or a nulls marker). */
function chainEnd(node: bigint, nulls: boolean): boolean {
  return node === 0n || (nulls && (node & 1n) === 1n);
}

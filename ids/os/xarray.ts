/**
 * The xarray view (`struct xarray`, what an IDR and the radix tree are built
 * on since Linux 4.20): every entry with its index, read through the memory
 * layer. Entries are tagged pointers (include/linux/xarray.h): low bits `10`
 * are internal entries, and an internal entry above 4096 is a node; the
 * others (retry, zero and sibling entries) hold nothing and are skipped.
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import type { MemoryReader } from "../memory/memory.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { isKernelAddress, ListWalkError } from "./list.ts";

/** One stored entry. */
export interface XarrayEntry {
  /** Its index. */
  index: bigint;
  /** The stored pointer. */
  entry: bigint;
}

/** XA_CHUNK_SHIFT on every distribution kernel (CONFIG_BASE_SMALL off): 64 slots a node. */
const CHUNK_SHIFT = 6;
/** The most nodes a sane xarray of 2^32 indices has; past that it is corrupt. */
const MAX_NODES = 1 << 20;

const isInternal = (entry: bigint) => (entry & 3n) === 2n;
const isNode = (entry: bigint) => isInternal(entry) && entry > 4096n;

/** Lists the entries of the xarray at `xarray`, in index order. */
export async function listXarray(
  mem: MemoryReader,
  profile: KernelProfile,
  xarray: bigint,
): Promise<XarrayEntry[]> {
  const headOffset = BigInt(profile.member("xarray", "xa_head").offset);
  const shiftOffset = BigInt(profile.member("xa_node", "shift").offset);
  const slots = profile.member("xa_node", "slots");
  const slotCount = slots.size / 8;
  if (slotCount !== 1 << CHUNK_SHIFT) {
    throw new Error(`Unsupported xarray: xa_node has ${slotCount} slots, expected 64`);
  }
  const head = await mem.u64(xarray + headOffset);
  if (head === 0n) return [];
  if (!isInternal(head)) return [{ index: 0n, entry: head }];
  if (!isNode(head)) return [];
  // Level by level: the nodes of one level are fetched together (one request each level).
  const found: XarrayEntry[] = [];
  const seen = new Set<bigint>();
  const nodeSize = BigInt(slots.offset + slots.size);
  let level = [{ node: head - 2n, base: 0n }];
  while (level.length > 0) {
    await mem.prefetch?.(level.flatMap(({ node }) => [node, node + nodeSize - 1n]));
    const next: typeof level = [];
    for (const { node, base } of level) {
      if (!isKernelAddress(node)) {
        throw new ListWalkError(
          "xarray",
          xarray,
          `node ${formatAddress(node)} is not kernel memory`,
        );
      }
      if (seen.has(node)) throw new ListWalkError("xarray", node, "a node is reached twice");
      if (seen.size >= MAX_NODES) throw new ListWalkError("xarray", node, "too many nodes");
      seen.add(node);
      const shift = BigInt((await mem.read(node + shiftOffset, 1))[0]!);
      const bytes = await mem.read(node + BigInt(slots.offset), slots.size);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let slot = 0; slot < slotCount; slot++) {
        const entry = view.getBigUint64(slot * 8, true);
        if (entry === 0n) continue;
        const index = base + (BigInt(slot) << shift);
        if (isNode(entry)) {
          if (shift === 0n) throw new ListWalkError("xarray", node, "a leaf node holds a node");
          next.push({ node: entry - 2n, base: index });
        } else if (!isInternal(entry)) found.push({ index, entry });
      }
    }
    level = next;
  }
  return found.sort((a, b) => a.index < b.index ? -1 : a.index > b.index ? 1 : 0);
}

/** The entry at `index` of the xarray at `xarray` (what `xa_load()` returns); undefined if none. */
export async function loadXarray(
  mem: MemoryReader,
  profile: KernelProfile,
  xarray: bigint,
  index: bigint,
): Promise<bigint | undefined> {
  const shiftOffset = BigInt(profile.member("xa_node", "shift").offset);
  const slots = BigInt(profile.member("xa_node", "slots").offset);
  let entry = await mem.u64(xarray + BigInt(profile.member("xarray", "xa_head").offset));
  if (isNode(entry)) {
    const top = BigInt((await mem.read(entry - 2n + shiftOffset, 1))[0]!);
    if (index >> (top + BigInt(CHUNK_SHIFT)) !== 0n) return undefined;
  } else if (index !== 0n) return undefined;
  for (let depth = 0; isNode(entry); depth++) {
    if (depth > 64 / CHUNK_SHIFT + 1) throw new ListWalkError("xarray", xarray, "too deep");
    const node = entry - 2n;
    const shift = BigInt((await mem.read(node + shiftOffset, 1))[0]!);
    const slot = (index >> shift) & ((1n << BigInt(CHUNK_SHIFT)) - 1n);
    entry = await mem.u64(node + slots + slot * 8n);
  }
  return entry === 0n || isInternal(entry) ? undefined : entry;
}

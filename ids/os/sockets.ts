/**
 * The socket view: TCP and UDP sockets, IPv4 and IPv6, read from the kernel's
 * own hash tables through the memory layer, as /proc/net/{tcp,tcp6,udp,udp6}
 * shows them: TCP's listening hash (`inet_hashinfo.lhash2`) and established
 * hash (`inet_hashinfo.ehash`, which also holds TIME_WAIT and request
 * sockets), and UDP's `udp_table.hash`. The tables are found from a task's
 * network namespace (`nsproxy->net_ns`), without data symbols where the
 * kernel allows (see ids/os/sockets_layout.ts).
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import type { MemoryReader } from "../memory/memory.ts";
import type { HashTable } from "../memory/hash.ts";
import type { KernelProfile } from "../profile/profile.ts";
import {
  type SocketBucketLayout,
  type SocketLayout,
  socketLayout,
  socketLayoutNote,
} from "./sockets_layout.ts";
import { taskLayout } from "./tasks_layout.ts";
import { isKernelAddress, ListWalkError, readChain } from "./list.ts";
import { HostileAnswer } from "../client/budget.ts";

/** One socket, as /proc/net/{tcp,tcp6,udp,udp6} shows it. */
export interface SocketInfo {
  /** Transport protocol. */
  proto: "tcp" | "udp";
  /** Address family: `inet` (AF_INET) or `inet6` (AF_INET6). */
  family: "inet" | "inet6";
  /** Local address: dotted quad, or IPv6 text (compressed; IPv4-mapped as `::ffff:a.b.c.d`). */
  local_addr: string;
  /** Local port. */
  local_port: number;
  /** Remote address (all zeros when unconnected). */
  remote_addr: string;
  /** Remote port (0 when unconnected). */
  remote_port: number;
  /** The kernel's name of the TCP state (`LISTEN`, `ESTABLISHED`, `TIME_WAIT`...; unconnected UDP: `CLOSE`). */
  state: string;
  /** `sk_uid` (a request socket: its listener's; TIME_WAIT: 0). */
  uid: number;
  /** The socket's inode number, 0 when it has none (TIME_WAIT, request sockets). */
  inode: number;
}

/** A socket and the inode number of its network namespace (`net:[N]`). */
export interface NamespacedSocketInfo extends SocketInfo {
  /** `net.ns.inum` of the socket's namespace (0 without network namespaces). */
  netns: number;
}

/** A socket and the namespace it lives in. */
export interface SocketEntry extends SocketInfo {
  /** Address of the socket (`struct sock`, `inet_timewait_sock` or `request_sock`). */
  addr: bigint;
  /** Its network namespace (`sock_common.skc_net`; 0 without network namespaces). */
  net: bigint;
}

/** Where the socket tables of one network namespace are. */
export interface SocketTables {
  /** The `struct net`. */
  net: bigint;
  /** TCP's listening hash. */
  tcpListen: HashTable;
  /** TCP's established hash (also TIME_WAIT and request sockets). */
  tcpEstablished: HashTable;
  /** UDP's hash by port; undefined when the kernel's UDP table cannot be found. */
  udp: HashTable | undefined;
}

/** Options of {@linkcode listSockets}. */
export interface SocketListOptions {
  /** List the sockets of every network namespace in the tables, not only `tables.net`'s. */
  allNamespaces?: boolean;
}

/** `AF_INET` and `AF_INET6`. */
const AF_INET = 2;
const AF_INET6 = 10;

/** The address families the view lists. */
export const SOCKET_FAMILIES: readonly number[] = [AF_INET, AF_INET6];

/** include/net/tcp_states.h, whose numbers /proc/net/tcp prints (`st`). */
const TCP_STATES = [
  "",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT1",
  "FIN_WAIT2",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "CLOSING",
  "NEW_SYN_RECV",
  "BOUND_INACTIVE",
];
const TCP_TIME_WAIT = 6;
const TCP_NEW_SYN_RECV = 12;
const TCP_SYN_RECV = 3;

/**
 * States of the TCP tables' other objects than full sockets: TIME_WAIT
 * (`inet_timewait_sock`) and NEW_SYN_RECV (`request_sock`).
 */
export const TCP_ONLY_STATES: readonly number[] = [TCP_TIME_WAIT, TCP_NEW_SYN_RECV];

/** State numbers are below this (TCP_MAX_STATES, 14 in 6.18, and room for more). */
export const SOCKET_STATE_RANGE = 16;

/** The kernel's name of a TCP state number (include/net/tcp_states.h). */
export function tcpStateName(state: number): string {
  return TCP_STATES[state] || `state ${state}`;
}

/** The most sockets a sane table holds; past that it is corrupt. */
const MAX_SOCKETS = 4_194_304;

/** The most processes between a task and pid 1 on its real_parent chain. */
const MAX_ANCESTORS = 4096;

/** The `SocketLayout`, or the reason there is none. */
function layoutOf(profile: KernelProfile): SocketLayout {
  const layout = socketLayout(profile);
  if (layout === undefined) {
    throw new Error(socketLayoutNote(profile) ?? "Kernel has no socket tables");
  }
  return layout;
}

/**
 * Finds pid 1 by following `real_parent` from `task` (any task in the
 * initial PID namespace, e.g. the agent's).
 */
export async function findInit(
  mem: MemoryReader,
  profile: KernelProfile,
  task: bigint,
): Promise<bigint> {
  const t = taskLayout(profile);
  let current = task;
  for (let i = 0; i < MAX_ANCESTORS; i++) {
    if (await mem.i32(current + BigInt(t.tgid.offset)) === 1) return current;
    const parent = await mem.u64(current + BigInt(t.real_parent.offset));
    if (parent === current || !isKernelAddress(parent)) break;
    current = parent;
  }
  throw new ListWalkError("real_parent chain", current, "does not reach pid 1");
}

/**
 * The kernel's own ceiling on the listening hash and UDP's hash: 64 Ki buckets
 * (`tcp_init()` sizes `lhash2` with a high limit of 64 * 1024; UDP_HTABLE_SIZE_MAX).
 * The established hash has no such ceiling (`thash_entries=` sizes it), only
 * the configured one.
 */
export const KERNEL_MAX_SMALL_HASH = 65_536;

/**
 * A hash table whose size is the guest's `mask` + 1, refused as a hostile
 * answer unless it is what the kernel can make: a power of two (the kernel's
 * masks are `size - 1`), at most `ceiling` buckets.
 */
export function checkedTable(
  name: string,
  base: bigint,
  mask: number,
  bucket: SocketBucketLayout,
  ceiling: number,
): HashTable {
  const count = mask + 1;
  if ((mask & count) !== 0 || mask < 0) {
    throw new HostileAnswer(
      "hash_mask",
      `the ${name}'s mask 0x${mask.toString(16)} is not a power of two minus one`,
    );
  }
  if (count > ceiling) {
    throw new HostileAnswer(
      ceiling === KERNEL_MAX_SMALL_HASH ? "kernel_hash_size" : "max_hash_buckets",
      `the ${name}'s mask 0x${mask.toString(16)} makes ${count} buckets, more than ${ceiling}`,
    );
  }
  return table(base, mask, bucket);
}

function table(base: bigint, mask: number, bucket: SocketBucketLayout): HashTable {
  return {
    base,
    count: mask + 1,
    stride: bucket.size,
    head: bucket.head,
    nulls: bucket.nulls,
    link: bucket.link,
  };
}

/**
 * Finds the socket tables of `task`'s network namespace (pid 1's is the
 * initial one, the one /proc/net shows in the initial namespace). A table's
 * size comes from guest memory: one larger than `maxHashBuckets` (or than the
 * kernel allows), or not a power of two, is a {@linkcode HostileAnswer}.
 */
export async function findSocketTables(
  mem: MemoryReader,
  profile: KernelProfile,
  task: bigint,
  maxHashBuckets = 1 << 22,
): Promise<SocketTables> {
  const l = layoutOf(profile);
  const at = (addr: bigint, member: { offset: number }) => addr + BigInt(member.offset);
  const nsproxy = await mem.u64(at(task, l.nsproxy));
  if (!isKernelAddress(nsproxy)) {
    throw new Error(`Task at ${formatAddress(task)} has no nsproxy (it is exiting)`);
  }
  const net = await mem.u64(at(nsproxy, l.net_ns));
  const deathRow = l.deathRowPointer
    ? await mem.u64(at(net, l.tcpDeathRow))
    : at(net, l.tcpDeathRow);
  const hashinfo = await mem.u64(at(deathRow, l.hashinfo));
  const small = Math.min(maxHashBuckets, KERNEL_MAX_SMALL_HASH);
  const tcpListen = checkedTable(
    "tcp listening hash",
    await mem.u64(at(hashinfo, l.lhash2)),
    await mem.u32(at(hashinfo, l.lhash2_mask)),
    l.listenBucket,
    small,
  );
  const tcpEstablished = checkedTable(
    "tcp established hash",
    await mem.u64(at(hashinfo, l.ehash)),
    await mem.u32(at(hashinfo, l.ehash_mask)),
    l.ehashBucket,
    maxHashBuckets,
  );
  let udp: HashTable | undefined;
  if (l.udpTable !== undefined) {
    const udpTable = "netMember" in l.udpTable
      ? await mem.u64(at(net, l.udpTable.netMember))
      : l.udpTable.symbol;
    udp = checkedTable(
      "udp hash",
      await mem.u64(at(udpTable, l.udp_hash)),
      await mem.u32(at(udpTable, l.udp_mask)),
      l.udpBucket,
      small,
    );
  }
  return { net, tcpListen, tcpEstablished, udp };
}

/** The tables of `tables`, in the order /proc/net lists them: TCP listening, established, UDP. */
export function socketHashes(tables: SocketTables): HashTable[] {
  return [tables.tcpListen, tables.tcpEstablished, ...(tables.udp ? [tables.udp] : [])];
}

/** Formats an IPv4 address held in network order. */
export function formatIPv4(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 4)].join(".");
}

/**
 * Formats an IPv6 address as RFC 5952 text: lowercase, leading zeros dropped,
 * the longest run (leftmost of equals) of two or more zero groups as `::`, and
 * IPv4-mapped addresses as `::ffff:a.b.c.d`.
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${formatIPv4(bytes.subarray(12, 16))}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Reads one socket on a TCP or UDP table into a {@linkcode SocketEntry}; undefined for another family. */
export async function readSocket(
  mem: MemoryReader,
  profile: KernelProfile,
  sk: bigint,
  proto: "tcp" | "udp",
): Promise<SocketEntry | undefined> {
  const l = layoutOf(profile);
  const at = (member: { offset: number }) => sk + BigInt(member.offset);
  const familyNumber = (await mem.read(at(l.skc_family), 2)).reduce(
    (v, b, i) => v | (b << (8 * i)),
    0,
  );
  if (familyNumber !== AF_INET && (familyNumber !== AF_INET6 || !l.skc_v6_daddr)) return undefined;
  const family = familyNumber === AF_INET ? "inet" : "inet6";
  const state = (await mem.read(at(l.skc_state), 1))[0] ?? 0;
  const net = l.skc_net === undefined ? 0n : await mem.u64(at(l.skc_net));
  const ports = await mem.read(at(l.skc_dport), 2);
  const num = await mem.read(at(l.skc_num), 2);
  let local_addr: string;
  let remote_addr: string;
  if (family === "inet") {
    local_addr = formatIPv4(await mem.read(at(l.skc_rcv_saddr), 4));
    remote_addr = formatIPv4(await mem.read(at(l.skc_daddr), 4));
  } else {
    local_addr = formatIPv6(await mem.read(at(l.skc_v6_rcv_saddr!), 16));
    remote_addr = formatIPv6(await mem.read(at(l.skc_v6_daddr!), 16));
  }
  let stateNumber = state;
  let uid = 0;
  let inode = 0;
  if (proto === "tcp" && state === TCP_TIME_WAIT) {
    // An inet_timewait_sock: /proc shows its substate (TIME_WAIT or FIN_WAIT2), uid and inode 0.
    stateNumber = (await mem.read(at(l.tw_substate), 1))[0] ?? 0;
  } else if (proto === "tcp" && state === TCP_NEW_SYN_RECV) {
    // A request_sock: /proc shows SYN_RECV, its listener's uid and no inode.
    stateNumber = TCP_SYN_RECV;
    const listener = await mem.u64(at(l.rsk_listener));
    if (listener !== 0n) uid = await mem.u32(listener + BigInt(l.sk_uid.offset));
  } else {
    uid = await mem.u32(at(l.sk_uid));
    const socket = await mem.u64(at(l.sk_socket));
    if (socket !== 0n) inode = Number(await mem.u64(socket + BigInt(l.socketIno.offset)));
  }
  return {
    proto,
    family,
    local_addr,
    local_port: (num[0] ?? 0) | ((num[1] ?? 0) << 8),
    remote_addr,
    remote_port: ((ports[0] ?? 0) << 8) | (ports[1] ?? 0),
    state: tcpStateName(stateNumber),
    uid,
    inode,
    addr: sk,
    net,
  };
}

/**
 * The listening hash's chains (hlist_nulls, 5.19+) end in the nulls value of
 * their bucket plus this (`LISTENING_NULLS_BASE`, include/net/inet_hashtables.h);
 * the established hash's end in their bucket's index.
 */
export const LISTENING_NULLS_BASE = 1 << 29;

/**
 * Reads every socket on the chains of `hash`, whose bucket i's chain ends in
 * the nulls value `nullsBase + i` (nulls tables). The table changes while it
 * is read (in `page` mode over hundreds of requests, each socket's page as it
 * was when first read): a chain that ends on another bucket's nulls value,
 * loops, or points outside kernel memory was torn by a socket that moved
 * meanwhile (freed and reused in another chain), and is read again from memory
 * as it is now, as the kernel's own lockless lookups restart
 * (`__inet_lookup_established`). A socket already listed from another chain is
 * not listed again, and the walk goes on past it.
 */
export async function readTable(
  mem: MemoryReader,
  profile: KernelProfile,
  hash: HashTable,
  proto: "tcp" | "udp",
  out: SocketEntry[],
  seen: Set<bigint>,
  nullsBase = 0,
): Promise<void> {
  const first = hash.base + BigInt(hash.head);
  const pageSize = BigInt(profile.pageSize);
  const walk = {
    name: proto,
    what: "sockets",
    link: hash.link,
    nulls: hash.nulls,
    max: MAX_SOCKETS,
    seen,
  };
  const read = (mem: MemoryReader, sk: bigint) => readSocket(mem, profile, sk, proto);
  for (let i = 0; i < hash.count;) {
    const at = first + BigInt(i * hash.stride);
    // Heads side by side (stride 8: the established hash): the rest of their page at once.
    const n = hash.stride !== 8
      ? 1
      : Math.max(1, Math.min(hash.count - i, Number((pageSize - at % pageSize) / 8n)));
    const bytes = await mem.read(at, n * 8);
    const heads = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0; k < n; k++) {
      const bucket = { addr: at + BigInt(k * 8), nulls: BigInt(nullsBase + i + k) };
      out.push(...await readChain(mem, bucket, heads.getBigUint64(k * 8, true), walk, read));
    }
    i += n;
  }
}

/**
 * Lists the sockets of the namespace of `tables` (or of every namespace that
 * shares them): TCP listening, then TCP established (with TIME_WAIT and
 * SYN_RECV), then UDP, each in bucket order, like /proc/net.
 */
export async function listSockets(
  mem: MemoryReader,
  profile: KernelProfile,
  tables: SocketTables,
  options: SocketListOptions = {},
): Promise<SocketEntry[]> {
  const all: SocketEntry[] = [];
  const seen = new Set<bigint>();
  await readTable(mem, profile, tables.tcpListen, "tcp", all, seen, LISTENING_NULLS_BASE);
  await readTable(mem, profile, tables.tcpEstablished, "tcp", all, seen);
  if (tables.udp !== undefined) await readTable(mem, profile, tables.udp, "udp", all, seen);
  // Without network namespaces (no skc_net) every socket is the initial namespace's.
  if (options.allNamespaces || socketLayout(profile)?.skc_net === undefined) return all;
  return all.filter((s) => s.net === tables.net);
}

/** The inode numbers (`net.ns.inum`) of network namespaces, by `struct net` address. */
export async function netNamespaceInums(
  mem: MemoryReader,
  profile: KernelProfile,
  nets: bigint[],
): Promise<Map<bigint, number>> {
  const l = layoutOf(profile);
  const inums = new Map<bigint, number>();
  for (const net of new Set(nets)) {
    if (net !== 0n) inums.set(net, await mem.u32(net + BigInt(l.netInum.offset)));
  }
  return inums;
}

/** The {@linkcode SocketInfo} part of an entry (what /proc/net shows). */
export function socketInfo(entry: SocketEntry): SocketInfo {
  const { proto, family, local_addr, local_port, remote_addr, remote_port, state, uid, inode } =
    entry;
  return { proto, family, local_addr, local_port, remote_addr, remote_port, state, uid, inode };
}

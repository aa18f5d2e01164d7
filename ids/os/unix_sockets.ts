/**
 * The Unix-domain socket view: every AF_UNIX socket of the guest's initial
 * network namespace, read from the kernel's own hash of them, as
 * /proc/net/unix shows them (Volatility's `sockstat` lists them too), with
 * each socket's peer (`unix_peer(sk)`, as `ss -x` shows it).
 *
 * Where the table is, by BTF member existence (net/unix/af_unix.c):
 * - Linux 6.0 and newer: per network namespace, `net->unx.table.buckets`
 *   (with `net->unx.table.locks`), `UNIX_HASH_SIZE` = 512 buckets; the
 *   table holds only that namespace's sockets. (Present in the BTF of 6.1,
 *   6.12 and 6.18, absent from 5.10's.)
 * - Before: one global `unix_socket_table[2 * UNIX_HASH_SIZE]` (256 * 2 = 512
 *   buckets) of every namespace's sockets, found through kallsyms (a data
 *   symbol: CONFIG_KALLSYMS_ALL), each socket's namespace read from
 *   `sk->__sk_common.skc_net`.
 * Either way the buckets are `hlist_head`s chaining `sk->__sk_common.skc_node`
 * (bound sockets in the lower half, unbound ones in the upper half).
 *
 * @module
 */
import type { KernelMemory, MemoryReader } from "../memory/memory.ts";
import type { HashTable } from "../memory/hash.ts";
import { type GuardedPlan, type PlanCase, recordGuardedPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile, MemberLayout } from "../profile/profile.ts";
import { isKernelAddress, ListWalkError, readChain } from "./list.ts";
import { checkedTable, findInit, KERNEL_MAX_SMALL_HASH, SOCKET_STATE_RANGE } from "./sockets.ts";
import { memoized, type View, type ViewContext, type ViewOutput } from "./view.ts";

/** One Unix-domain socket, as /proc/net/unix shows it (and its peer's inode). */
export interface UnixSocketInfo {
  /** Always `unix`. */
  proto: "unix";
  /** `stream`, `dgram` or `seqpacket` (/proc's `Type` 0001, 0002, 0005). */
  type: string;
  /**
   * `LISTEN` (/proc's `Flags` 00010000), else the socket state /proc prints
   * as `St`: `UNCONNECTED` (01), `CONNECTING` (02), `CONNECTED` (03),
   * `DISCONNECTING` (04).
   */
  state: string;
  /** The bound name; abstract names start with `@` (a NUL in the kernel); "" when unbound. */
  path: string;
  /** The socket's inode number (`sock_i_ino`), 0 when it has none. */
  inode: number;
  /** The inode of the connected peer (`unix_peer(sk)`), 0 without one. */
  peer_inode: number;
}

/** A socket as read, before its peer's inode is known. */
interface UnixEntry extends UnixSocketInfo {
  /** The `struct sock`. */
  addr: bigint;
  /** `unix_peer(sk)`, 0n without one. */
  peer: bigint;
  /** `sock_net(sk)`, 0n without network namespaces. */
  net: bigint;
}

/** Where the kernel keeps the table. */
type UnixTableLocation =
  /** 6.0+: `net->unx.table.buckets`, a pointer in each namespace. */
  | { netBuckets: MemberLayout }
  /** Before 6.0: the global array `unix_socket_table`. */
  | { symbol: bigint };

/** What the view reads of the kernel's structures. */
interface UnixLayout {
  table: UnixTableLocation;
  nsproxy: MemberLayout;
  net_ns: MemberLayout;
  /** `sock.__sk_common.skc_node`, the chain link. */
  link: number;
  skc_state: MemberLayout;
  skc_net: MemberLayout | undefined;
  sk_type: MemberLayout;
  sk_socket: MemberLayout;
  /** `socket_alloc.vfs_inode.i_ino`, relative to `socket_alloc.socket` (SOCK_INODE). */
  socketIno: number;
  /** `unix_sock.addr`. */
  addr: MemberLayout;
  /** `unix_sock.peer`. */
  peer: MemberLayout;
  /** `unix_address.len`. */
  addrLen: MemberLayout;
  /** `unix_address.name[0].sun_path`, and its size (108). */
  sunPath: MemberLayout;
}

/** `UNIX_HASH_SIZE` buckets of 6.0+, and `2 * UNIX_HASH_SIZE` before: 512 either way. */
export const UNIX_HASH_BUCKETS = 512;

/** `offsetof(struct sockaddr_un, sun_path)`: `unix_address.len` counts the family too. */
const SUN_FAMILY_BYTES = 2;

/** The most sockets a sane table holds; past that it is corrupt. */
const MAX_UNIX_SOCKETS = 4_194_304;

/** include/net/tcp_states.h, as af_unix uses them. */
const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 10;

/** include/linux/net.h `enum sock_type`. */
const SOCK_TYPES: Record<number, string> = { 1: "stream", 2: "dgram", 5: "seqpacket" };

/** include/uapi/linux/net.h `socket_state`, as /proc/net/unix prints it (`St`). */
const SS_NAMES = ["FREE", "UNCONNECTED", "CONNECTING", "CONNECTED", "DISCONNECTING"];

/**
 * The view's layout for `profile`; undefined with the reason when the kernel
 * has neither table (no CONFIG_UNIX, or a pre-6.0 kernel without data symbols).
 */
export const unixLayout: (profile: KernelProfile) => UnixLayout | string = memoized((profile) => {
  if (!profile.hasMember("unix_sock", "peer")) return "Kernel has no Unix-domain sockets";
  let table: UnixTableLocation;
  if (profile.hasMember("net", "unx.table.buckets")) {
    table = { netBuckets: profile.member("net", "unx.table.buckets") };
  } else {
    const symbol = profile.dataSymbol("unix_socket_table");
    if (symbol === undefined) {
      return "Kernel keeps Unix-domain sockets in unix_socket_table, which kallsyms does not list";
    }
    table = { symbol };
  }
  const socketAt = profile.member("socket_alloc", "socket").offset;
  const name = profile.member("unix_address", "name").offset;
  const sunPath = profile.member("sockaddr_un", "sun_path");
  return {
    table,
    nsproxy: profile.member("task_struct", "nsproxy"),
    net_ns: profile.member("nsproxy", "net_ns"),
    link: profile.member("sock", "__sk_common.skc_node").offset,
    skc_state: profile.member("sock", "__sk_common.skc_state"),
    skc_net: profile.hasMember("sock", "__sk_common.skc_net.net")
      ? profile.member("sock", "__sk_common.skc_net.net")
      : undefined,
    sk_type: profile.member("sock", "sk_type"),
    sk_socket: profile.member("sock", "sk_socket"),
    socketIno: profile.member("socket_alloc", "vfs_inode.i_ino").offset - socketAt,
    addr: profile.member("unix_sock", "addr"),
    peer: profile.member("unix_sock", "peer"),
    addrLen: profile.member("unix_address", "len"),
    sunPath: { offset: name + sunPath.offset, size: sunPath.size },
  };
});

function layoutOf(profile: KernelProfile): UnixLayout {
  const layout = unixLayout(profile);
  if (typeof layout === "string") throw new Error(layout);
  return layout;
}

/** The name /proc/net/unix prints for a bound address of `len` bytes (family included). */
export function unixPath(sunPath: Uint8Array, len: number): string {
  let n = Math.min(Math.max(len - SUN_FAMILY_BYTES, 0), sunPath.length);
  if (n === 0) return "";
  // A filesystem name's length counts its terminating NUL; an abstract name starts with NUL.
  if (sunPath[0] !== 0) n--;
  const bytes = sunPath.slice(0, n).map((b) => b === 0 ? 0x40 : b);
  return new TextDecoder().decode(bytes);
}

/** Reads one socket on the table (a `struct unix_sock`, whose `struct sock` is first). */
export async function readUnixSocket(
  mem: MemoryReader,
  profile: KernelProfile,
  sk: bigint,
): Promise<UnixEntry> {
  const l = layoutOf(profile);
  const at = (m: MemberLayout) => sk + BigInt(m.offset);
  const state = (await mem.read(at(l.skc_state), 1))[0] ?? 0;
  const typeBytes = await mem.read(at(l.sk_type), 2);
  const type = (typeBytes[0] ?? 0) | ((typeBytes[1] ?? 0) << 8);
  const net = l.skc_net === undefined ? 0n : await mem.u64(at(l.skc_net));
  const socket = await mem.u64(at(l.sk_socket));
  const inode = socket === 0n ? 0 : Number(await mem.u64(socket + BigInt(l.socketIno)));
  let path = "";
  const address = await mem.u64(at(l.addr));
  if (address !== 0n) {
    const len = await mem.i32(address + BigInt(l.addrLen.offset));
    path = unixPath(await mem.read(address + BigInt(l.sunPath.offset), l.sunPath.size), len);
  }
  const peer = await mem.u64(at(l.peer));
  // unix_seq_show(): St is SS_CONNECTED/SS_UNCONNECTED with a struct socket, else
  // SS_CONNECTING/SS_DISCONNECTING; Flags has __SO_ACCEPTCON for a listener.
  const established = state === TCP_ESTABLISHED;
  const ss = socket !== 0n ? (established ? 3 : 1) : (established ? 2 : 4);
  return {
    proto: "unix",
    type: SOCK_TYPES[type] ?? `type ${type}`,
    state: state === TCP_LISTEN ? "LISTEN" : SS_NAMES[ss]!,
    path,
    inode,
    peer_inode: 0,
    addr: sk,
    peer,
    net,
  };
}

/** What the view reads of each socket, for `fields` mode (every state reads the same). */
export const unixCapturePlan: (profile: KernelProfile) => Promise<GuardedPlan> = memoized(
  (profile) => {
    const l = layoutOf(profile);
    const cases: PlanCase[] = [];
    for (let state = 0; state < SOCKET_STATE_RANGE; state++) {
      cases.push({
        read: (mem, sk) => readUnixSocket(mem, profile, sk),
        preset: new Map([[l.skc_state.offset, state]]),
      });
    }
    return recordGuardedPlan(cases, [l.link], l.skc_state.offset);
  },
);

/** The initial network namespace and its table (found once per guest, from pid 1). */
async function unixTable(
  ctx: ViewContext,
  mem: KernelMemory,
): Promise<{ net: bigint; table: HashTable; perNamespace: boolean }> {
  const l = layoutOf(ctx.profile);
  return await ctx.remember("unix socket table", async () => {
    const init = await findInit(mem, ctx.profile, await ctx.agentTask(mem));
    const nsproxy = await mem.u64(init + BigInt(l.nsproxy.offset));
    if (!isKernelAddress(nsproxy)) throw new ListWalkError("pid 1's nsproxy", init, "is not set");
    const net = await mem.u64(nsproxy + BigInt(l.net_ns.offset));
    const base = "netBuckets" in l.table
      ? await mem.u64(net + BigInt(l.table.netBuckets.offset))
      : l.table.symbol;
    const bucket = { size: 8, head: 0, nulls: false, link: l.link };
    const table = checkedTable(
      "unix socket hash",
      base,
      UNIX_HASH_BUCKETS - 1,
      bucket,
      KERNEL_MAX_SMALL_HASH,
    );
    return { net, table, perNamespace: "netBuckets" in l.table };
  });
}

/**
 * Lists the Unix-domain sockets of the initial network namespace in bucket
 * order, like /proc/net/unix. A chain torn while the table was read is read
 * again ({@linkcode readChain}).
 */
export async function listUnixSockets(
  ctx: ViewContext,
  mem: KernelMemory,
): Promise<UnixSocketInfo[]> {
  const { net, table, perNamespace } = await unixTable(ctx, mem);
  const entries: UnixEntry[] = [];
  const seen = new Set<bigint>();
  const walk = {
    name: "unix",
    what: "sockets",
    link: table.link,
    nulls: false,
    max: MAX_UNIX_SOCKETS,
    seen,
  };
  const read = (mem: MemoryReader, sk: bigint) => readUnixSocket(mem, ctx.profile, sk);
  const heads = await mem.read(table.base, table.count * 8);
  const view = new DataView(heads.buffer, heads.byteOffset, heads.byteLength);
  for (let i = 0; i < table.count; i++) {
    const bucket = { addr: table.base + BigInt(i * 8), nulls: 0n };
    entries.push(...await readChain(mem, bucket, view.getBigUint64(i * 8, true), walk, read));
  }
  // The global table of kernels before 6.0 holds every namespace's sockets.
  const mine = perNamespace || net === 0n ? entries : entries.filter((e) => e.net === net);
  const inodes = new Map(entries.map((e) => [e.addr, e.inode]));
  const l = layoutOf(ctx.profile);
  const items: UnixSocketInfo[] = [];
  for (const { addr: _, peer, net: __, ...info } of mine) {
    let peerInode = inodes.get(peer);
    if (peerInode === undefined && isKernelAddress(peer)) {
      // A peer off this table (another namespace's): read it where it is.
      const socket = await mem.u64(peer + BigInt(l.sk_socket.offset));
      peerInode = socket === 0n ? 0 : Number(await mem.u64(socket + BigInt(l.socketIno)));
    }
    items.push({ ...info, peer_inode: peerInode ?? 0 });
  }
  return items;
}

/**
 * How `ids sockets --unix` prints Unix-domain sockets: the table in
 * /proc/net/unix's column order, and each socket as it is in JSON.
 */
export const unixSocketOutput: ViewOutput<UnixSocketInfo> = {
  walking: "the Unix-domain socket table",
  columns: [
    { header: "TYPE", cell: (s) => s.type },
    { header: "STATE", cell: (s) => s.state },
    { header: "INODE", cell: (s) => String(s.inode), right: true },
    { header: "PEER", cell: (s) => String(s.peer_inode), right: true },
    { header: "PATH", cell: (s) => s.path },
  ],
  json: (s) => s,
};

/** The Unix-domain sockets of the guest's initial network namespace, as /proc/net/unix lists them. */
export const unixSocketView: View<UnixSocketInfo> = {
  name: "unix sockets",
  output: unixSocketOutput,
  async source(ctx, mem) {
    if (typeof unixLayout(ctx.profile) === "string") return undefined;
    const { table } = await unixTable(ctx, mem);
    return { kind: "hash", tables: [table], plan: await unixCapturePlan(ctx.profile) };
  },
  async read(ctx, mem) {
    if (typeof unixLayout(ctx.profile) === "string") return [];
    return await listUnixSockets(ctx, mem);
  },
};

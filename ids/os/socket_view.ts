/**
 * The TCP and UDP sockets as {@linkcode View}s: the initial network
 * namespace's hash tables (found once per guest, from pid 1's
 * `nsproxy->net_ns`), read by `listSockets`; empty when the kernel's socket
 * tables are unknown (see `socketLayoutNote`).
 *
 * @module
 */
import type { KernelMemory } from "../memory/memory.ts";
import { type GuardedPlan, type PlanCase, recordGuardedPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import {
  findInit,
  findSocketTables,
  listSockets,
  type NamespacedSocketInfo,
  netNamespaceInums,
  readSocket,
  SOCKET_FAMILIES,
  SOCKET_STATE_RANGE,
  type SocketEntry,
  socketHashes,
  type SocketInfo,
  socketInfo,
  type SocketTables,
  TCP_ONLY_STATES,
} from "./sockets.ts";
import { socketLayout, socketLayoutNote } from "./sockets_layout.ts";
import {
  memoized,
  type View,
  type ViewColumn,
  type ViewContext,
  type ViewOutput,
  type ViewSource,
} from "./view.ts";

/**
 * What `listSockets` reads of each socket on the TCP and UDP tables, for every
 * family and state, for `fields` mode (learned from `readSocket`; the guard is
 * `skc_state`: TCP's TIME_WAIT and request sockets read other members and
 * follow other pointers than full sockets; UDP sockets are never in those
 * states); undefined without the socket tables.
 */
export const socketCapturePlan: (profile: KernelProfile) => Promise<GuardedPlan | undefined> =
  memoized(recordSocketPlan);

async function recordSocketPlan(profile: KernelProfile): Promise<GuardedPlan | undefined> {
  const layout = socketLayout(profile);
  if (layout === undefined) return undefined;
  const cases: PlanCase[] = [];
  for (const proto of ["tcp", "udp"] as const) {
    for (const family of SOCKET_FAMILIES) {
      for (let state = 0; state < SOCKET_STATE_RANGE; state++) {
        if (proto === "udp" && TCP_ONLY_STATES.includes(state)) continue;
        cases.push({
          read: (mem, sk) => readSocket(mem, profile, sk, proto),
          preset: new Map([
            [layout.skc_family.offset, family & 0xff],
            [layout.skc_family.offset + 1, family >> 8],
            [layout.skc_state.offset, state],
          ]),
        });
      }
    }
  }
  const links = [layout.ehashBucket, layout.listenBucket, layout.udpBucket].map((b) => b.link);
  return await recordGuardedPlan(cases, [...new Set(links)], layout.skc_state.offset);
}

/**
 * The initial network namespace's socket tables, found on first use from
 * pid 1's `nsproxy->net_ns` (that acquisition's cost includes it); undefined
 * when the kernel's are unknown.
 */
export async function socketTablesOf(
  ctx: ViewContext,
  mem: KernelMemory,
): Promise<SocketTables | undefined> {
  const profile = ctx.profile;
  if (socketLayout(profile) === undefined) return undefined;
  return await ctx.remember("socket tables", async () => {
    const init = await findInit(mem, profile, await ctx.agentTask(mem));
    return await findSocketTables(mem, profile, init, ctx.limits.maxHashBuckets);
  });
}

async function socketSource(ctx: ViewContext, mem: KernelMemory): Promise<ViewSource | undefined> {
  const tables = await socketTablesOf(ctx, mem);
  const plan = await socketCapturePlan(ctx.profile);
  if (tables === undefined || plan === undefined) return undefined;
  return { kind: "hash", tables: socketHashes(tables), plan };
}

async function entries(
  ctx: ViewContext,
  mem: KernelMemory,
  allNamespaces: boolean,
): Promise<SocketEntry[]> {
  const tables = await socketTablesOf(ctx, mem);
  if (tables === undefined) return [];
  return await listSockets(mem, ctx.profile, tables, { allNamespaces });
}

/** An address and port as `1.2.3.4:80` or `[::1]:80`. */
function endpoint(family: SocketInfo["family"], addr: string, port: number): string {
  return family === "inet6" ? `[${addr}]:${port}` : `${addr}:${port}`;
}

const SOCKET_COLUMNS: readonly ViewColumn<SocketInfo | NamespacedSocketInfo>[] = [
  { header: "PROTO", cell: (s) => s.family === "inet6" ? `${s.proto}6` : s.proto },
  { header: "LOCAL", cell: (s) => endpoint(s.family, s.local_addr, s.local_port) },
  { header: "REMOTE", cell: (s) => endpoint(s.family, s.remote_addr, s.remote_port) },
  { header: "STATE", cell: (s) => s.state },
  { header: "UID", cell: (s) => String(s.uid), right: true },
  { header: "INODE", cell: (s) => String(s.inode), right: true },
  {
    header: "NETNS",
    cell: (s) => "netns" in s ? String(s.netns) : "",
    right: true,
    shown: (items) => items.some((s) => "netns" in s),
  },
];

/**
 * How `ids sockets` prints sockets: the JSON object has exactly the keys of
 * {@linkcode SocketInfo}, and `netns` with `--all-namespaces` (whose table has
 * a NETNS column when there is a socket).
 */
export const socketOutput: ViewOutput<SocketInfo | NamespacedSocketInfo> = {
  walking: "the socket tables",
  columns: SOCKET_COLUMNS,
  json: (s) => ({
    proto: s.proto,
    family: s.family,
    local_addr: s.local_addr,
    local_port: s.local_port,
    remote_addr: s.remote_addr,
    remote_port: s.remote_port,
    state: s.state,
    uid: s.uid,
    inode: s.inode,
    ...("netns" in s ? { netns: s.netns } : {}),
  }),
  note: socketLayoutNote,
};

/**
 * The TCP and UDP sockets (IPv4 and IPv6) of the guest's initial network
 * namespace, as its /proc/net/{tcp,tcp6,udp,udp6} shows them.
 */
export const socketView: View<SocketInfo> = {
  name: "sockets",
  output: socketOutput,
  source: socketSource,
  read: async (ctx, mem) => (await entries(ctx, mem, false)).map(socketInfo),
};

/**
 * Like {@linkcode socketView}, but the sockets of every network namespace
 * that shares the initial namespace's tables, each with its namespace's inode
 * number (`netns`, as in `net:[4026531833]`). The walk fetches the sockets
 * only: in `bulk` and `fields` mode each namespace costs a page read.
 */
export const namespacedSocketView: View<NamespacedSocketInfo> = {
  name: "sockets",
  output: socketOutput,
  source: socketSource,
  async read(ctx, mem) {
    const found = await entries(ctx, mem, true);
    const inums = await netNamespaceInums(mem, ctx.profile, found.map((e) => e.net));
    return found.map((e) => ({ ...socketInfo(e), netns: inums.get(e.net) ?? 0 }));
  },
};

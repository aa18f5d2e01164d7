/**
 * The TCP/UDP socket view's layout: where a `struct net` keeps the socket
 * tables, how their chains are linked, and what `readSocket` reads of a
 * socket, decided once per profile from its BTF and kallsyms.
 *
 * @module
 */
import { DATA_SYMBOL_TYPES } from "../profile/kallsyms.ts";
import { type KernelProfile, type MemberLayout, ProfileError } from "../profile/profile.ts";
import { memoized } from "./view.ts";

/** A kernel hash table of sockets as its buckets hold it. */
export interface SocketBucketLayout {
  /** Size of one bucket (the array's stride). */
  size: number;
  /** Offset of the chain's head pointer (`first`) in a bucket. */
  head: number;
  /** Whether the chains are `hlist_nulls` (they end in an odd "nulls" value) or plain `hlist` (NULL). */
  nulls: boolean;
  /** Offset, in the socket, of the node that links it into this table's chains. */
  link: number;
}

/**
 * Where the socket tables are and what the sockets view reads of a socket: the layouts of
 * `struct sock_common` (which TIME_WAIT and request sockets share), `struct sock`,
 * `struct inet_timewait_sock`, `struct request_sock` and the tables' buckets.
 */
export interface SocketLayout {
  /** `task_struct.nsproxy`. */
  nsproxy: MemberLayout;
  /** `nsproxy.net_ns`. */
  net_ns: MemberLayout;
  /** `net.ns.inum`, the namespace's inode number (`net:[...]`). */
  netInum: MemberLayout;
  /**
   * Where a `struct net` holds the TCP tables: `net.ipv4.tcp_death_row.hashinfo`, reached through
   * a pointer `net.ipv4.tcp_death_row` on 4.x–6.0 (`deathRowPointer`) and embedded from 6.1.
   */
  tcpDeathRow: MemberLayout;
  /** Whether `net.ipv4.tcp_death_row` is a pointer (before 6.1) rather than embedded. */
  deathRowPointer: boolean;
  /** `inet_timewait_death_row.hashinfo`. */
  hashinfo: MemberLayout;
  /** `inet_hashinfo.ehash`, `ehash_mask`, `lhash2` and `lhash2_mask`. */
  ehash: MemberLayout;
  /** `inet_hashinfo.ehash_mask`. */
  ehash_mask: MemberLayout;
  /** `inet_hashinfo.lhash2`. */
  lhash2: MemberLayout;
  /** `inet_hashinfo.lhash2_mask`. */
  lhash2_mask: MemberLayout;
  /** Buckets of the established hash (`struct inet_ehash_bucket`, nulls chains through `skc_nulls_node`). */
  ehashBucket: SocketBucketLayout;
  /**
   * Buckets of the listening hash (`struct inet_listen_hashbucket`): `nulls_head` chained through
   * `skc_nulls_node` from 5.19, `head` chained through `icsk_listen_portaddr_node` before.
   */
  listenBucket: SocketBucketLayout;
  /**
   * Where the UDP table is: `net.ipv4.udp_table` (a pointer, 6.2+, when the netns may have its
   * own table), else the global `udp_table` from kallsyms; undefined when neither exists.
   */
  udpTable: { netMember: MemberLayout } | { symbol: bigint } | undefined;
  /** `udp_table.hash`. */
  udp_hash: MemberLayout;
  /** `udp_table.mask`. */
  udp_mask: MemberLayout;
  /** Buckets of `udp_table.hash` (`struct udp_hslot`, plain hlist through `skc_node`). */
  udpBucket: SocketBucketLayout;
  /** `sock_common.skc_daddr` (IPv4, network order). */
  skc_daddr: MemberLayout;
  /** `sock_common.skc_rcv_saddr` (IPv4, network order). */
  skc_rcv_saddr: MemberLayout;
  /** `sock_common.skc_dport` (network order). */
  skc_dport: MemberLayout;
  /** `sock_common.skc_num` (host order). */
  skc_num: MemberLayout;
  /** `sock_common.skc_family`. */
  skc_family: MemberLayout;
  /** `sock_common.skc_state`. */
  skc_state: MemberLayout;
  /** `sock_common.skc_net.net`; undefined without network namespaces (CONFIG_NET_NS off). */
  skc_net: MemberLayout | undefined;
  /** `sock_common.skc_v6_daddr`; undefined without IPv6. */
  skc_v6_daddr: MemberLayout | undefined;
  /** `sock_common.skc_v6_rcv_saddr`; undefined without IPv6. */
  skc_v6_rcv_saddr: MemberLayout | undefined;
  /** `sock.sk_uid.val`. */
  sk_uid: MemberLayout;
  /** `sock.sk_socket`. */
  sk_socket: MemberLayout;
  /** `inet_timewait_sock.tw_substate` (TIME_WAIT or FIN_WAIT2, what /proc shows). */
  tw_substate: MemberLayout;
  /** `request_sock.rsk_listener`, i.e. `sock_common.skc_listener`. */
  rsk_listener: MemberLayout;
  /**
   * Offset of the inode number from a `struct socket`: `socket_alloc.vfs_inode.i_ino` minus
   * `socket_alloc.socket` (what `sock_i_ino()` reads through `SOCK_INODE()`).
   */
  socketIno: MemberLayout;
}

/** The socket layout, or why the kernel has none the view knows. */
interface SocketLayoutOrNote {
  layout: SocketLayout | undefined;
  note: string | undefined;
}

const layoutOrNote: (profile: KernelProfile) => SocketLayoutOrNote = memoized((profile) => {
  try {
    return { layout: readSocketLayout(profile), note: undefined };
  } catch (error) {
    if (!(error instanceof ProfileError)) throw error;
    return {
      layout: undefined,
      note: `Kernel has no socket tables the sockets view knows: ${error.message}`,
    };
  }
});

/**
 * The socket tables' and sockets' layout of `profile`'s kernel; undefined
 * when the kernel lacks them (see {@linkcode socketLayoutNote}).
 */
export function socketLayout(profile: KernelProfile): SocketLayout | undefined {
  return layoutOrNote(profile).layout;
}

/** Why {@linkcode socketLayout} is undefined for `profile`; undefined when it is defined. */
export function socketLayoutNote(profile: KernelProfile): string | undefined {
  return layoutOrNote(profile).note;
}

/**
 * The one place that decides where the socket tables are and how their chains are linked; each
 * case names the kernel change. The readers are net/ipv4/tcp_ipv4.c and net/ipv4/udp.c's
 * /proc/net/{tcp,udp} iterators.
 */
function readSocketLayout(profile: KernelProfile): SocketLayout {
  const optional = (struct: string, path: string) =>
    profile.hasMember(struct, path) ? profile.member(struct, path) : undefined;
  const skc = (path: string) => profile.member("sock_common", path);
  const nullsNode = skc("skc_nulls_node");

  // Linux 5.19 ("tcp: allocate tcp_death_row outside of struct netns_ipv4") made
  // netns_ipv4.tcp_death_row a pointer; 6.1 ("tcp: Introduce optional per-netns ehash") embedded
  // it again (5.10 embeds it too). Both lead to the netns's inet_hashinfo, the global
  // tcp_hashinfo unless the netns has its own.
  const deathRow = profile.btf.memberOf("net", "ipv4.tcp_death_row");
  if (deathRow === undefined) {
    throw new ProfileError("Kernel profile: struct net has no member ipv4.tcp_death_row");
  }
  const deathRowPointer = deathRow.kind === "ptr";

  // Linux 5.19 ("net: inet: Retire port only listening_hash") made lhash2 the only listening
  // hash, an hlist_nulls `nulls_head` chained through skc_nulls_node, and removed
  // icsk_listen_portaddr_node. Before, lhash2 chained listeners through
  // inet_connection_sock.icsk_listen_portaddr_node in a plain hlist `head`. The member to test is
  // the node, not the bucket's `nulls_head`: from 5.5 ("inet: Add hlist_nulls_head to
  // inet_listen_hashbucket") to 5.18 the bucket is a union of `head` and `nulls_head` (the latter
  // for the port-only listening_hash), and lhash2 still uses `head`.
  const listenPortaddr = optional("inet_connection_sock", "icsk_listen_portaddr_node");
  const listenBucket: SocketBucketLayout = listenPortaddr === undefined
    ? {
      size: profile.structSize("inet_listen_hashbucket"),
      head: profile.member("inet_listen_hashbucket", "nulls_head.first").offset,
      nulls: true,
      link: nullsNode.offset,
    }
    : {
      size: profile.structSize("inet_listen_hashbucket"),
      head: profile.member("inet_listen_hashbucket", "head.first").offset,
      nulls: false,
      link: listenPortaddr.offset,
    };

  // Linux 6.2 ("udp: Introduce optional per-netns hash table") gave each netns a pointer to its
  // UDP table; before, every netns shares the global udp_table (a data symbol: kallsyms needs
  // CONFIG_KALLSYMS_ALL).
  const udpMember = optional("net", "ipv4.udp_table");
  const udpSymbol = profile.kallsyms.lookup("udp_table", { types: DATA_SYMBOL_TYPES });
  const udpTable = udpMember !== undefined
    ? { netMember: udpMember }
    : udpSymbol !== undefined
    ? { symbol: udpSymbol }
    : undefined;

  // sock_i_ino(): SOCK_INODE(sk->sk_socket), the inode allocated with the socket in struct
  // socket_alloc (every kernel since 2.6).
  const socketAt = profile.member("socket_alloc", "socket").offset;
  const ino = profile.member("socket_alloc", "vfs_inode.i_ino");

  return {
    nsproxy: profile.member("task_struct", "nsproxy"),
    net_ns: profile.member("nsproxy", "net_ns"),
    netInum: profile.member("net", "ns.inum"),
    tcpDeathRow: { offset: deathRow.offset, size: deathRow.size },
    deathRowPointer,
    hashinfo: profile.member("inet_timewait_death_row", "hashinfo"),
    ehash: profile.member("inet_hashinfo", "ehash"),
    ehash_mask: profile.member("inet_hashinfo", "ehash_mask"),
    lhash2: profile.member("inet_hashinfo", "lhash2"),
    lhash2_mask: profile.member("inet_hashinfo", "lhash2_mask"),
    ehashBucket: {
      size: profile.structSize("inet_ehash_bucket"),
      head: profile.member("inet_ehash_bucket", "chain.first").offset,
      nulls: true,
      link: nullsNode.offset,
    },
    listenBucket,
    udpTable,
    udp_hash: profile.member("udp_table", "hash"),
    udp_mask: profile.member("udp_table", "mask"),
    udpBucket: {
      size: profile.structSize("udp_hslot"),
      head: profile.member("udp_hslot", "head.first").offset,
      nulls: false,
      link: skc("skc_node").offset,
    },
    skc_daddr: skc("skc_daddr"),
    skc_rcv_saddr: skc("skc_rcv_saddr"),
    skc_dport: skc("skc_dport"),
    skc_num: skc("skc_num"),
    skc_family: skc("skc_family"),
    skc_state: skc("skc_state"),
    skc_net: optional("sock_common", "skc_net.net"),
    skc_v6_daddr: optional("sock_common", "skc_v6_daddr"),
    skc_v6_rcv_saddr: optional("sock_common", "skc_v6_rcv_saddr"),
    sk_uid: profile.member("sock", "sk_uid.val"),
    sk_socket: profile.member("sock", "sk_socket"),
    tw_substate: profile.member("inet_timewait_sock", "tw_substate"),
    // rsk_listener is a macro for __req_common.skc_listener.
    rsk_listener: skc("skc_listener"),
    socketIno: { offset: ino.offset - socketAt, size: ino.size },
  };
}

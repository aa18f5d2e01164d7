/**
 * The kernel profile: everything the OS views need to know about one guest kernel, computed once
 * from its BTF and kallsyms. Kernel drift is decided here, by member existence, and nowhere else.
 *
 * @example
 * ```ts
 * const profile = new KernelProfile({ release: "6.1.0-28-amd64", btf, kallsyms, pageSize: 4096 });
 * profile.tasks.tasks.offset; // offset of task_struct.tasks
 * profile.modules?.memory.source; // "mem" on 6.4+, "core_layout" before
 * ```
 * @module
 */

import { type Btf, BtfKind } from "./btf.ts";
import { type AddressRange, DATA_SYMBOL_TYPES, type Kallsyms } from "./kallsyms.ts";
import type { BpfFeatures } from "../../bpf/variants.ts";
import { bpfFeatures } from "./bpf_features.ts";

/** Error thrown when a mandatory part of the profile is missing from BTF or kallsyms. */
export class ProfileError extends Error {
  /** Creates the error; `message` is in sentence case, without a trailing period. */
  constructor(message: string) {
    super(message);
    this.name = "ProfileError";
  }
}

/** What a profile is built from. */
export interface KernelProfileSource {
  /** Kernel release (`uname -r`), e.g. `6.1.0-28-amd64`. */
  release: string;
  /** The kernel's BTF (`/sys/kernel/btf/vmlinux`). */
  btf: Btf;
  /** The kernel's symbols (`/proc/kallsyms`). */
  kallsyms: Kallsyms;
  /** Page size in bytes (4096 on x86-64). */
  pageSize: number;
}

/** Offset and size of one member, relative to the start of its struct. */
export interface MemberLayout {
  /** Byte offset from the start of the struct. */
  offset: number;
  /** Size in bytes of the member. */
  size: number;
}

/** Layout of `struct list_head`. */
export interface ListHeadLayout {
  /** `list_head.next`. */
  next: MemberLayout;
  /** `list_head.prev`. */
  prev: MemberLayout;
  /** `sizeof(struct list_head)`. */
  size: number;
}

/** Layout of the `task_struct` members the task views read. */
export interface TaskLayout {
  /** `sizeof(struct task_struct)`. */
  size: number;
  /** `task_struct.tasks` (a `list_head` linking every thread group leader). */
  tasks: MemberLayout;
  /** `task_struct.pid`. */
  pid: MemberLayout;
  /** `task_struct.tgid`. */
  tgid: MemberLayout;
  /** `task_struct.real_parent`. */
  real_parent: MemberLayout;
  /** `task_struct.group_leader`. */
  group_leader: MemberLayout;
  /** `task_struct.comm` (`TASK_COMM_LEN` bytes, 16). */
  comm: MemberLayout;
  /** `task_struct.cred` (effective credentials). */
  cred: MemberLayout;
  /** `task_struct.real_cred` (objective credentials). */
  real_cred: MemberLayout;
  /** `task_struct.flags` (`PF_*`). */
  flags: MemberLayout;
  /** The task state: `task_struct.__state` on 5.14+, `task_struct.state` before. */
  state: MemberLayout;
  /** Which member {@link TaskLayout.state} is. */
  stateMember: "__state" | "state";
  /** `task_struct.exit_state` (`EXIT_ZOMBIE`, `EXIT_DEAD`). */
  exit_state: MemberLayout;
}

/** Layout of the `struct cred` members the task views read. */
export interface CredLayout {
  /** `sizeof(struct cred)`. */
  size: number;
  /** `cred.uid.val`. */
  uid: MemberLayout;
  /** `cred.euid.val`. */
  euid: MemberLayout;
  /** `cred.gid.val`. */
  gid: MemberLayout;
}

/**
 * Where a module's base address and size are, relative to the start of `struct module`, so that
 * a view prints what `/proc/modules` prints: base = the pointer at {@link base}, size = the sum of
 * the `unsigned int`s at {@link sizes}.
 */
export interface ModuleMemoryLayout {
  /**
   * Which members hold them:
   * - `"mem"`: Linux 6.4+, `struct module_memory mem[MOD_MEM_NUM_TYPES]`;
   * - `"core_layout"`: Linux 4.5–6.3, `struct module_layout core_layout, init_layout`;
   * - `"module_core"`: before Linux 4.5, `module_core`, `core_size`, `init_size`.
   */
  source: "mem" | "core_layout" | "module_core";
  /** The base pointer: `mem[MOD_TEXT].base`, `core_layout.base` or `module_core`. */
  base: MemberLayout;
  /**
   * The sizes to add: `mem[t].size` for every `mod_mem_type` t, or `core_layout.size` and
   * `init_layout.size`, or `core_size` and `init_size`.
   */
  sizes: MemberLayout[];
}

/** `enum module_state` enumerator names. */
export type ModuleStateName =
  | "MODULE_STATE_LIVE"
  | "MODULE_STATE_COMING"
  | "MODULE_STATE_GOING"
  | "MODULE_STATE_UNFORMED";

/** Layout of the `struct module` members the module views read, and the module list head. */
export interface ModuleLayout {
  /** Address of the `modules` list head (a `struct list_head`). */
  listHead: bigint;
  /** `sizeof(struct module)`. */
  size: number;
  /** `module.list`. */
  list: MemberLayout;
  /** `module.name`, a `char[MODULE_NAME_LEN]`. */
  name: MemberLayout & { length: number };
  /** `module.state` (an `enum module_state`). */
  state: MemberLayout;
  /** Base address and size of the module's memory. */
  memory: ModuleMemoryLayout;
  /** Values of `enum module_state`. */
  states: Readonly<Record<ModuleStateName, number>>;
}

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

const MODULE_STATE_NAMES: readonly ModuleStateName[] = [
  "MODULE_STATE_LIVE",
  "MODULE_STATE_COMING",
  "MODULE_STATE_GOING",
  "MODULE_STATE_UNFORMED",
];

/** Struct layouts and symbol addresses of one guest kernel. */
export class KernelProfile {
  /** Kernel release (`uname -r`). */
  readonly release: string;
  /** Page size in bytes. */
  readonly pageSize: number;
  /** The BTF the profile was built from, for views that need more than the precomputed layouts. */
  readonly btf: Btf;
  /** The kallsyms the profile was built from. */
  readonly kallsyms: Kallsyms;
  /** `struct list_head`. */
  readonly listHead: ListHeadLayout;
  /** `struct task_struct`. */
  readonly tasks: TaskLayout;
  /** `struct cred`. */
  readonly cred: CredLayout;
  /**
   * Address of `init_task`; undefined when kallsyms has no data symbols (CONFIG_KALLSYMS_ALL
   * off). Callers then start the task list walk from a task supplied by the agent.
   */
  readonly initTask: bigint | undefined;
  /** Core kernel text range (`_stext` to `_etext`); undefined when kallsyms lacks either. */
  readonly text: AddressRange | undefined;
  /** Module list layout; undefined when the kernel has no modules (see {@link modulesNote}). */
  readonly modules: ModuleLayout | undefined;
  /** Why {@link modules} is undefined; undefined when it is defined. */
  readonly modulesNote: string | undefined;
  /** Socket tables and socket layout; undefined when the kernel lacks them (see {@link socketsNote}). */
  readonly sockets: SocketLayout | undefined;
  /** Why {@link sockets} is undefined; undefined when it is defined. */
  readonly socketsNote: string | undefined;
  /** What the kernel's eBPF supports: decides which program variants it is sent. */
  readonly bpf: BpfFeatures;

  /**
   * Builds the profile.
   *
   * @throws {ProfileError} when a mandatory struct, member or enum is missing, or when kallsyms
   *   addresses are restricted (all zero)
   */
  constructor(source: KernelProfileSource) {
    const { btf, kallsyms } = source;
    this.release = source.release;
    this.pageSize = source.pageSize;
    this.btf = btf;
    this.kallsyms = kallsyms;
    if (kallsyms.restricted) {
      throw new ProfileError(
        "Kernel profile: kallsyms addresses are all zero (kptr_restrict, or read without CAP_SYSLOG)",
      );
    }
    const layouts = new Layouts(btf);

    this.listHead = {
      size: layouts.structSize("list_head"),
      next: layouts.member("list_head", "next"),
      prev: layouts.member("list_head", "prev"),
    };

    // Linux 5.14 renamed task_struct.state to __state (and made it unsigned int) so that
    // direct accesses fail to compile and go through READ_ONCE/WRITE_ONCE helpers.
    const stateMember = layouts.has("task_struct", "__state") ? "__state" : "state";
    const tasks = (member: string) => layouts.member("task_struct", member);
    this.tasks = {
      size: layouts.structSize("task_struct"),
      tasks: tasks("tasks"),
      pid: tasks("pid"),
      tgid: tasks("tgid"),
      real_parent: tasks("real_parent"),
      group_leader: tasks("group_leader"),
      comm: tasks("comm"),
      cred: tasks("cred"),
      real_cred: tasks("real_cred"),
      flags: tasks("flags"),
      state: tasks(stateMember),
      stateMember,
      exit_state: tasks("exit_state"),
    };

    this.cred = {
      size: layouts.structSize("cred"),
      uid: layouts.member("cred", "uid.val"),
      euid: layouts.member("cred", "euid.val"),
      gid: layouts.member("cred", "gid.val"),
    };

    this.initTask = kallsyms.lookup("init_task", { types: DATA_SYMBOL_TYPES });
    this.text = kallsyms.has("_stext") && kallsyms.has("_etext") ? kallsyms.textRange() : undefined;

    const listHead = kallsyms.lookup("modules", { types: DATA_SYMBOL_TYPES });
    if (listHead === undefined) {
      this.modules = undefined;
      this.modulesNote = "Kernel has no module list: kallsyms has no data symbol modules " +
        "(CONFIG_MODULES off, or kallsyms without data symbols: CONFIG_KALLSYMS_ALL off)";
    } else if (btf.findStruct("module") === undefined || btf.structSize("module") === 0) {
      this.modules = undefined;
      this.modulesNote = "Kernel has no module list: BTF has no struct module (CONFIG_MODULES off)";
    } else {
      this.modules = moduleLayout(layouts, listHead);
      this.modulesNote = undefined;
    }

    let sockets: SocketLayout | undefined;
    let socketsNote: string | undefined;
    try {
      sockets = socketLayout(layouts, kallsyms);
    } catch (error) {
      if (!(error instanceof ProfileError)) throw error;
      socketsNote = `Kernel has no socket tables the sockets view knows: ${error.message}`;
    }
    this.sockets = sockets;
    this.socketsNote = socketsNote;
    this.bpf = bpfFeatures(btf);
  }

  /** Name of an `enum module_state` value (`"MODULE_STATE_LIVE"`...), or undefined. */
  moduleStateName(value: number): ModuleStateName | undefined {
    const states = this.modules?.states;
    if (!states) return undefined;
    return MODULE_STATE_NAMES.find((name) => states[name] === value);
  }

  /**
   * Offset and size of a member that the precomputed layouts do not hold, for
   * views of less common structures (`xa_node.slots`, `kobject.entry`).
   *
   * @throws {ProfileError} when BTF has no such struct or member
   */
  member(struct: string, path: string): MemberLayout {
    return new Layouts(this.btf).member(struct, path);
  }

  /** Whether BTF has that member (a kernel drift test, e.g. `pid.numbers`). */
  hasMember(struct: string, path: string): boolean {
    return this.btf.memberOf(struct, path) !== undefined;
  }

  /** Address of a data symbol (`init_pid_ns`); undefined without CONFIG_KALLSYMS_ALL. */
  dataSymbol(name: string): bigint | undefined {
    return this.kallsyms.lookup(name, { types: `${DATA_SYMBOL_TYPES}Rr` });
  }
}

/** Member and size lookups that throw a {@link ProfileError} naming what is missing. */
class Layouts {
  constructor(readonly btf: Btf) {}

  has(struct: string, path: string): boolean {
    return this.btf.memberOf(struct, path) !== undefined;
  }

  structSize(struct: string): number {
    const size = this.btf.structSize(struct);
    if (size === undefined || size === 0) {
      throw new ProfileError(`Kernel profile: BTF has no struct ${struct}`);
    }
    return size;
  }

  member(struct: string, path: string): MemberLayout {
    this.structSize(struct);
    const info = this.btf.memberOf(struct, path);
    if (!info) {
      throw new ProfileError(`Kernel profile: struct ${struct} has no member ${path}`);
    }
    if (info.bitSize !== 0) {
      throw new ProfileError(
        `Kernel profile: struct ${struct} member ${path} is a bitfield, expected a whole member`,
      );
    }
    return { offset: info.offset, size: info.size };
  }

  enumValue(enumName: string, valueName: string): number {
    const value = this.btf.enumValue(enumName, valueName);
    if (value === undefined) {
      throw new ProfileError(`Kernel profile: enum ${enumName} has no value ${valueName}`);
    }
    return value;
  }
}

function moduleLayout(layouts: Layouts, listHead: bigint): ModuleLayout {
  const name = layouts.member("module", "name");
  const nameArray = layouts.btf.array(layouts.btf.memberOf("module", "name")?.typeId ?? 0);
  if (!nameArray) throw new ProfileError("Kernel profile: module.name is not an array");

  const states = {} as Record<ModuleStateName, number>;
  for (const stateName of MODULE_STATE_NAMES) {
    states[stateName] = layouts.enumValue("module_state", stateName);
  }

  return {
    listHead,
    size: layouts.structSize("module"),
    list: layouts.member("module", "list"),
    name: { ...name, length: nameArray.count },
    state: layouts.member("module", "state"),
    memory: moduleMemoryLayout(layouts),
    states,
  };
}

/**
 * The one place that decides where a module's base and size live. Each case prints what
 * `/proc/modules` prints on that kernel (`m_show()` in kernel/module/procfs.c, kernel/module.c
 * before 5.19).
 */
function moduleMemoryLayout(layouts: Layouts): ModuleMemoryLayout {
  const btf = layouts.btf;
  const module = (path: string) => layouts.member("module", path);

  // Linux 6.4 ("module: replace module_layout with module_memory") split a module into
  // mem[MOD_MEM_NUM_TYPES]; /proc/modules prints mem[MOD_TEXT].base and the sum of
  // mem[type].size over for_each_mod_mem_type(type), i.e. every type below MOD_MEM_NUM_TYPES.
  if (layouts.has("module", "mem")) {
    const mem = btf.memberOf("module", "mem");
    const array = mem === undefined ? undefined : btf.array(mem.typeId);
    if (!array || btf.kind(btf.resolve(array.elemTypeId)) !== BtfKind.STRUCT) {
      throw new ProfileError("Kernel profile: module.mem is not an array of struct module_memory");
    }
    // enum mod_mem_type is in BTF when a function takes it; when it is missing, MOD_TEXT is 0
    // and the array length is MOD_MEM_NUM_TYPES, as in every kernel since 6.4.
    const textIndex = btf.enumValue("mod_mem_type", "MOD_TEXT") ?? 0;
    const typeCount = btf.enumValue("mod_mem_type", "MOD_MEM_NUM_TYPES") ?? array.count;
    if (typeCount !== array.count) {
      throw new ProfileError(
        `Kernel profile: module.mem has ${array.count} entries but MOD_MEM_NUM_TYPES is ${typeCount}`,
      );
    }
    const sizes: MemberLayout[] = [];
    for (let type = 0; type < typeCount; type++) sizes.push(module(`mem[${type}].size`));
    return { source: "mem", base: module(`mem[${textIndex}].base`), sizes };
  }

  // Linux 4.5 ("module: use a structure to encapsulate layout") grouped the core and init
  // sections into core_layout/init_layout; /proc/modules prints core_layout.base and
  // init_layout.size + core_layout.size.
  if (layouts.has("module", "core_layout")) {
    return {
      source: "core_layout",
      base: module("core_layout.base"),
      sizes: [module("core_layout.size"), module("init_layout.size")],
    };
  }

  // Before Linux 4.5: module_core, core_size and init_size directly in struct module.
  if (layouts.has("module", "module_core")) {
    return {
      source: "module_core",
      base: module("module_core"),
      sizes: [module("core_size"), module("init_size")],
    };
  }

  throw new ProfileError(
    "Kernel profile: struct module has none of the members mem, core_layout, module_core",
  );
}

/**
 * The one place that decides where the socket tables are and how their chains are linked; each
 * case names the kernel change. The readers are net/ipv4/tcp_ipv4.c and net/ipv4/udp.c's
 * /proc/net/{tcp,udp} iterators.
 */
function socketLayout(layouts: Layouts, kallsyms: Kallsyms): SocketLayout {
  const optional = (struct: string, path: string) =>
    layouts.has(struct, path) ? layouts.member(struct, path) : undefined;
  const skc = (path: string) => layouts.member("sock_common", path);
  const nullsNode = skc("skc_nulls_node");

  // Linux 5.19 ("tcp: allocate tcp_death_row outside of struct netns_ipv4") made
  // netns_ipv4.tcp_death_row a pointer; 6.1 ("tcp: Introduce optional per-netns ehash") embedded
  // it again (5.10 embeds it too). Both lead to the netns's inet_hashinfo, the global
  // tcp_hashinfo unless the netns has its own.
  const deathRow = layouts.btf.memberOf("net", "ipv4.tcp_death_row");
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
      size: layouts.structSize("inet_listen_hashbucket"),
      head: layouts.member("inet_listen_hashbucket", "nulls_head.first").offset,
      nulls: true,
      link: nullsNode.offset,
    }
    : {
      size: layouts.structSize("inet_listen_hashbucket"),
      head: layouts.member("inet_listen_hashbucket", "head.first").offset,
      nulls: false,
      link: listenPortaddr.offset,
    };

  // Linux 6.2 ("udp: Introduce optional per-netns hash table") gave each netns a pointer to its
  // UDP table; before, every netns shares the global udp_table (a data symbol: kallsyms needs
  // CONFIG_KALLSYMS_ALL).
  const udpMember = optional("net", "ipv4.udp_table");
  const udpSymbol = kallsyms.lookup("udp_table", { types: DATA_SYMBOL_TYPES });
  const udpTable = udpMember !== undefined
    ? { netMember: udpMember }
    : udpSymbol !== undefined
    ? { symbol: udpSymbol }
    : undefined;

  // sock_i_ino(): SOCK_INODE(sk->sk_socket), the inode allocated with the socket in struct
  // socket_alloc (every kernel since 2.6).
  const socketAt = layouts.member("socket_alloc", "socket").offset;
  const ino = layouts.member("socket_alloc", "vfs_inode.i_ino");

  return {
    nsproxy: layouts.member("task_struct", "nsproxy"),
    net_ns: layouts.member("nsproxy", "net_ns"),
    netInum: layouts.member("net", "ns.inum"),
    tcpDeathRow: { offset: deathRow.offset, size: deathRow.size },
    deathRowPointer,
    hashinfo: layouts.member("inet_timewait_death_row", "hashinfo"),
    ehash: layouts.member("inet_hashinfo", "ehash"),
    ehash_mask: layouts.member("inet_hashinfo", "ehash_mask"),
    lhash2: layouts.member("inet_hashinfo", "lhash2"),
    lhash2_mask: layouts.member("inet_hashinfo", "lhash2_mask"),
    ehashBucket: {
      size: layouts.structSize("inet_ehash_bucket"),
      head: layouts.member("inet_ehash_bucket", "chain.first").offset,
      nulls: true,
      link: nullsNode.offset,
    },
    listenBucket,
    udpTable,
    udp_hash: layouts.member("udp_table", "hash"),
    udp_mask: layouts.member("udp_table", "mask"),
    udpBucket: {
      size: layouts.structSize("udp_hslot"),
      head: layouts.member("udp_hslot", "head.first").offset,
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
    sk_uid: layouts.member("sock", "sk_uid.val"),
    sk_socket: layouts.member("sock", "sk_socket"),
    tw_substate: layouts.member("inet_timewait_sock", "tw_substate"),
    // rsk_listener is a macro for __req_common.skc_listener.
    rsk_listener: skc("skc_listener"),
    socketIno: { offset: ino.offset - socketAt, size: ino.size },
  };
}

/**
 * The kernel profile: the symbol table and type look-ups of one guest kernel, and facts about
 * it (page size, eBPF features). Each view decides its own kernel drift, by member existence,
 * in a layout memoized per profile beside it (ids/os/tasks_layout.ts, modules_layout.ts,
 * sockets_layout.ts), as Volatility's object extensions do.
 *
 * @example
 * ```ts
 * const profile = new KernelProfile({ release: "6.1.0-28-amd64", btf, kallsyms, pageSize: 4096 });
 * profile.member("task_struct", "tasks").offset; // offset of task_struct.tasks
 * profile.hasMember("module", "mem"); // true on 6.4+
 * ```
 * @module
 */

import type { Btf } from "./btf.ts";
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
  /**
   * Address of `init_task`; undefined when kallsyms has no data symbols (CONFIG_KALLSYMS_ALL
   * off). Callers then start the task list walk from a task supplied by the agent.
   */
  readonly initTask: bigint | undefined;
  /** Core kernel text range (`_stext` to `_etext`); undefined when kallsyms lacks either. */
  readonly text: AddressRange | undefined;
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

    this.initTask = kallsyms.lookup("init_task", { types: DATA_SYMBOL_TYPES });
    this.text = kallsyms.has("_stext") && kallsyms.has("_etext") ? kallsyms.textRange() : undefined;
    this.bpf = bpfFeatures(btf);
  }

  /**
   * Offset and size of a member (a path such as `uid.val` or `mem[0].size`),
   * for a view's layout (ids/os/*_layout.ts).
   *
   * @throws {ProfileError} when BTF has no such struct or member, or the member is a bitfield
   */
  member(struct: string, path: string): MemberLayout {
    return new Layouts(this.btf).member(struct, path);
  }

  /**
   * `sizeof(struct <struct>)`.
   *
   * @throws {ProfileError} when BTF has no such struct (or it is empty)
   */
  structSize(struct: string): number {
    return new Layouts(this.btf).structSize(struct);
  }

  /**
   * The value of an enumerator (`module_state`, `MODULE_STATE_LIVE`).
   *
   * @throws {ProfileError} when BTF has no such enum or value
   */
  enumValue(enumName: string, valueName: string): number {
    return new Layouts(this.btf).enumValue(enumName, valueName);
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

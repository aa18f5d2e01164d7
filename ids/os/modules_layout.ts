/**
 * The module view's layout: where the module list is and what `readModule`
 * reads of `struct module`, decided once per profile from its BTF and
 * kallsyms. The one place that knows where a module's base and size live
 * (`mem[]` 6.4+, `core_layout` 4.5–6.3, `module_core` before).
 *
 * @module
 */
import { BtfKind } from "../profile/btf.ts";
import { DATA_SYMBOL_TYPES } from "../profile/kallsyms.ts";
import { type KernelProfile, type MemberLayout, ProfileError } from "../profile/profile.ts";
import { memoized } from "./view.ts";

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

const MODULE_STATE_NAMES: readonly ModuleStateName[] = [
  "MODULE_STATE_LIVE",
  "MODULE_STATE_COMING",
  "MODULE_STATE_GOING",
  "MODULE_STATE_UNFORMED",
];

/** The module layout, or why the kernel has none. */
interface ModuleLayoutOrNote {
  layout: ModuleLayout | undefined;
  note: string | undefined;
}

const layoutOrNote: (profile: KernelProfile) => ModuleLayoutOrNote = memoized((profile) => {
  const listHead = profile.kallsyms.lookup("modules", { types: DATA_SYMBOL_TYPES });
  if (listHead === undefined) {
    return {
      layout: undefined,
      note: "Kernel has no module list: kallsyms has no data symbol modules " +
        "(CONFIG_MODULES off, or kallsyms without data symbols: CONFIG_KALLSYMS_ALL off)",
    };
  }
  if (profile.btf.findStruct("module") === undefined || profile.btf.structSize("module") === 0) {
    return {
      layout: undefined,
      note: "Kernel has no module list: BTF has no struct module (CONFIG_MODULES off)",
    };
  }
  return { layout: readModuleLayout(profile, listHead), note: undefined };
});

/**
 * The module list layout of `profile`'s kernel; undefined when the kernel has
 * no modules (see {@linkcode moduleLayoutNote}).
 *
 * @throws {ProfileError} when struct module lacks a member the module view reads
 */
export function moduleLayout(profile: KernelProfile): ModuleLayout | undefined {
  return layoutOrNote(profile).layout;
}

/**
 * Why {@linkcode moduleLayout} is undefined for `profile`; undefined when it is defined.
 *
 * @throws {ProfileError} when struct module lacks a member the module view reads
 */
export function moduleLayoutNote(profile: KernelProfile): string | undefined {
  return layoutOrNote(profile).note;
}

/** Name of an `enum module_state` value (`"MODULE_STATE_LIVE"`...), or undefined. */
export function moduleStateName(
  profile: KernelProfile,
  value: number,
): ModuleStateName | undefined {
  const states = moduleLayout(profile)?.states;
  if (!states) return undefined;
  return MODULE_STATE_NAMES.find((name) => states[name] === value);
}

function readModuleLayout(profile: KernelProfile, listHead: bigint): ModuleLayout {
  const name = profile.member("module", "name");
  const nameArray = profile.btf.array(profile.btf.memberOf("module", "name")?.typeId ?? 0);
  if (!nameArray) throw new ProfileError("Kernel profile: module.name is not an array");

  const states = {} as Record<ModuleStateName, number>;
  for (const stateName of MODULE_STATE_NAMES) {
    states[stateName] = profile.enumValue("module_state", stateName);
  }

  return {
    listHead,
    size: profile.structSize("module"),
    list: profile.member("module", "list"),
    name: { ...name, length: nameArray.count },
    state: profile.member("module", "state"),
    memory: moduleMemoryLayout(profile),
    states,
  };
}

/**
 * The one place that decides where a module's base and size live. Each case prints what
 * `/proc/modules` prints on that kernel (`m_show()` in kernel/module/procfs.c, kernel/module.c
 * before 5.19).
 */
function moduleMemoryLayout(profile: KernelProfile): ModuleMemoryLayout {
  const btf = profile.btf;
  const module = (path: string) => profile.member("module", path);

  // Linux 6.4 ("module: replace module_layout with module_memory") split a module into
  // mem[MOD_MEM_NUM_TYPES]; /proc/modules prints mem[MOD_TEXT].base and the sum of
  // mem[type].size over for_each_mod_mem_type(type), i.e. every type below MOD_MEM_NUM_TYPES.
  if (profile.hasMember("module", "mem")) {
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
  if (profile.hasMember("module", "core_layout")) {
    return {
      source: "core_layout",
      base: module("core_layout.base"),
      sizes: [module("core_layout.size"), module("init_layout.size")],
    };
  }

  // Before Linux 4.5: module_core, core_size and init_size directly in struct module.
  if (profile.hasMember("module", "module_core")) {
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

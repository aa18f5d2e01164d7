/**
 * The module view: the kernel's module list (`modules`, linked through
 * `module.list`) read through the memory layer, as /proc/modules shows it.
 *
 * @module
 */
import type { MemoryReader } from "../memory/memory.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { listFromHead, ListWalkError } from "./list.ts";
import { moduleLayout, moduleLayoutNote, moduleStateName } from "./modules_layout.ts";

/** One loaded module. */
export interface ModuleInfo {
  /** `module.name`. */
  name: string;
  /** Base of the module's core text, as /proc/modules prints it. */
  base: bigint;
  /** Bytes of module memory, as /proc/modules prints it. */
  size: number;
  /** /proc/modules' word for `module.state`: Live, Loading, Unloading (or Unformed). */
  state: string;
  /** Address of the struct module. */
  addr: bigint;
}

/** The most modules a sane list holds; past that it is corrupt. */
const MAX_MODULES = 65_536;

const STATE_WORDS: Record<string, string> = {
  MODULE_STATE_LIVE: "Live",
  MODULE_STATE_COMING: "Loading",
  MODULE_STATE_GOING: "Unloading",
  MODULE_STATE_UNFORMED: "Unformed",
};

/** Reads one struct module into a {@linkcode ModuleInfo}. */
export async function readModule(
  mem: MemoryReader,
  profile: KernelProfile,
  mod: bigint,
): Promise<ModuleInfo> {
  const layout = moduleLayout(profile);
  if (layout === undefined) {
    throw new Error(moduleLayoutNote(profile) ?? "Kernel has no module list");
  }
  const at = (offset: number) => mod + BigInt(offset);
  let size = 0;
  for (const part of layout.memory.sizes) size += await mem.u32(at(part.offset));
  const state = await mem.u32(at(layout.state.offset));
  const stateName = moduleStateName(profile, state);
  return {
    name: await mem.cString(at(layout.name.offset), layout.name.length),
    base: await mem.u64(at(layout.memory.base.offset)),
    size,
    state: stateName ? STATE_WORDS[stateName] ?? stateName : `state ${state}`,
    addr: mod,
  };
}

/**
 * Lists the modules on the module list, in list order (newest first, like
 * /proc/modules). A kernel without module support has an empty list: the
 * `moduleLayoutNote` says why.
 */
export async function listModules(
  mem: MemoryReader,
  profile: KernelProfile,
): Promise<ModuleInfo[]> {
  const layout = moduleLayout(profile);
  if (layout === undefined) return [];
  const modules: ModuleInfo[] = [];
  const walk = listFromHead(mem, layout.listHead, {
    name: "module list",
    next: layout.list.offset + profile.listHead.next.offset,
    link: layout.list.offset,
    max: MAX_MODULES,
    tooMany: (mod) => new ListWalkError("module list", mod, "holds too many modules"),
  });
  for await (const mod of walk) modules.push(await readModule(mem, profile, mod));
  return modules;
}

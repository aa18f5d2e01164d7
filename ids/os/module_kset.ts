/**
 * The sysfs view of modules: the kobjects of the module kset (`module_kset`,
 * what /sys/module lists). A loadable module's kobject is the `mkobj` inside
 * its `struct module`; built-in modules with parameters have one too, with no
 * module (`module_kobject.mod` is NULL).
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import type { MemoryReader } from "../memory/memory.ts";
import type { CapturePlan } from "../memory/plan.ts";
import { recordPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { isKernelAddress, ListWalkError } from "./list.ts";
import type { ModuleInfo } from "./modules.ts";

/** One kobject of the module kset. */
export interface ModuleKobject {
  /** `kobject.name`, the /sys/module directory's name. */
  name: string;
  /** Address of the `struct module_kobject`. */
  kobject: bigint;
  /** `module_kobject.mod`; 0 for a built-in module. */
  mod: bigint;
}

/** The most kobjects a sane kset holds. */
const MAX_KOBJECTS = 65_536;
/** MODULE_NAME_LEN. */
const NAME_MAX = 56;

/**
 * The module kset: `*module_kset` from kallsyms, or, without data symbols, the
 * kset of a listed module's kobject. Undefined when neither is available.
 */
export async function findModuleKset(
  mem: MemoryReader,
  profile: KernelProfile,
  modules: readonly ModuleInfo[],
): Promise<bigint | undefined> {
  const symbol = profile.dataSymbol("module_kset");
  if (symbol !== undefined) return await mem.u64(symbol);
  const first = modules[0];
  if (first === undefined) return undefined;
  return await mem.u64(first.addr + BigInt(profile.member("module", "mkobj.kobj.kset").offset));
}

/** Where the module kset's list is and how its objects are linked. */
export function moduleKsetLinks(profile: KernelProfile): { list: number; link: number } {
  return {
    list: profile.member("kset", "list").offset,
    link: profile.member("module_kobject", "kobj").offset +
      profile.member("kobject", "entry").offset,
  };
}

/** Reads one `struct module_kobject`. */
export async function readModuleKobject(
  mem: MemoryReader,
  profile: KernelProfile,
  kobject: bigint,
): Promise<ModuleKobject> {
  const kobj = kobject + BigInt(profile.member("module_kobject", "kobj").offset);
  const namePointer = await mem.u64(kobj + BigInt(profile.member("kobject", "name").offset));
  return {
    name: namePointer === 0n ? "" : await mem.cString(namePointer, NAME_MAX),
    kobject,
    mod: await mem.u64(kobject + BigInt(profile.member("module_kobject", "mod").offset)),
  };
}

/** Lists the kobjects of the kset at `kset`, in list order. */
export async function listModuleKobjects(
  mem: MemoryReader,
  profile: KernelProfile,
  kset: bigint,
): Promise<ModuleKobject[]> {
  const { list, link } = moduleKsetLinks(profile);
  const head = kset + BigInt(list);
  const found: ModuleKobject[] = [];
  const seen = new Set<bigint>();
  let node = await mem.u64(head);
  while (node !== head) {
    if (!isKernelAddress(node)) {
      throw new ListWalkError("module kset", head, `next is ${formatAddress(node)}`);
    }
    if (seen.has(node)) throw new ListWalkError("module kset", node, "loops back");
    if (seen.size >= MAX_KOBJECTS) throw new ListWalkError("module kset", node, "too long");
    seen.add(node);
    found.push(await readModuleKobject(mem, profile, node - BigInt(link)));
    node = await mem.u64(node);
  }
  return found;
}

/** What `listModuleKobjects` reads of each kobject of the module kset (and its name). */
export function moduleKobjectPlan(profile: KernelProfile): Promise<CapturePlan> {
  return recordPlan(
    (mem, kobject) => readModuleKobject(mem, profile, kobject),
    moduleKsetLinks(profile).link,
  );
}

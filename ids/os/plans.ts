/**
 * The capture plans of the OS views, for `fields` mode: learned from the
 * views' own per-object readers (see ids/memory/plan_recorder.ts), so they
 * hold exactly what `readTask` and `readModule` read.
 *
 * @module
 */
import type { CapturePlan } from "../memory/plan.ts";
import { recordPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { readModule } from "./modules.ts";
import { moduleKsetLinks, readModuleKobject } from "./module_kset.ts";
import { readTask } from "./tasks.ts";

/** What `listTasks` reads of each task_struct, its real_cred and its real_parent. */
export function taskCapturePlan(profile: KernelProfile): Promise<CapturePlan> {
  return recordPlan(
    (mem, task) => readTask(mem, profile, task),
    profile.tasks.tasks.offset + profile.listHead.next.offset,
  );
}

/** What `listModules` reads of each struct module; undefined without module support. */
export async function moduleCapturePlan(profile: KernelProfile): Promise<CapturePlan | undefined> {
  const layout = profile.modules;
  if (layout === undefined) return undefined;
  return await recordPlan(
    (mem, mod) => readModule(mem, profile, mod),
    layout.list.offset + profile.listHead.next.offset,
  );
}

/** What `listModuleKobjects` reads of each kobject of the module kset (and its name). */
export function moduleKobjectPlan(profile: KernelProfile): Promise<CapturePlan> {
  return recordPlan(
    (mem, kobject) => readModuleKobject(mem, profile, kobject),
    moduleKsetLinks(profile).link,
  );
}

/**
 * The module list as a {@linkcode View}: the `modules` list, read by
 * `listModules`; empty on a kernel without modules (see `moduleLayoutNote`).
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import { ALL } from "../memory/bulk.ts";
import type { CapturePlan } from "../memory/plan.ts";
import { recordPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { listModules, type ModuleInfo, readModule } from "./modules.ts";
import { moduleLayout, moduleLayoutNote } from "./modules_layout.ts";
import { memoized, type View, type ViewOutput } from "./view.ts";

/**
 * What `listModules` reads of each struct module, for `fields` mode (learned
 * from `readModule`); undefined without module support.
 */
export const moduleCapturePlan: (profile: KernelProfile) => Promise<CapturePlan | undefined> =
  memoized(async (profile) => {
    const layout = moduleLayout(profile);
    if (layout === undefined) return undefined;
    return await recordPlan(
      (mem, mod) => readModule(mem, profile, mod),
      layout.list.offset + profile.listHead.next.offset,
    );
  });

/** How `ids lsmod` prints modules; a kernel without modules says why. */
export const moduleOutput: ViewOutput<ModuleInfo> = {
  walking: "the module list",
  columns: [
    { header: "NAME", cell: (m) => m.name },
    { header: "SIZE", cell: (m) => String(m.size), right: true },
    { header: "STATE", cell: (m) => m.state },
    { header: "BASE", cell: (m) => formatAddress(m.base) },
  ],
  json: (m) => ({ name: m.name, base: formatAddress(m.base), size: m.size, state: m.state }),
  note: moduleLayoutNote,
};

/** The loaded modules, as /proc/modules lists them. */
export const moduleView: View<ModuleInfo> = {
  name: "modules",
  output: moduleOutput,
  async source(ctx) {
    const layout = moduleLayout(ctx.profile);
    const plan = await moduleCapturePlan(ctx.profile);
    if (layout === undefined || plan === undefined) return undefined;
    return { kind: "list", bulk: "modules", addr: layout.listHead, isHead: true, limit: ALL, plan };
  },
  read: (ctx, mem) => listModules(mem, ctx.profile),
};

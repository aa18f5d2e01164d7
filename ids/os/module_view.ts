/**
 * The module list as a {@linkcode View}: the `modules` list, read by
 * `listModules`; empty on a kernel without modules (see `profile.modulesNote`).
 *
 * @module
 */
import { ALL } from "../memory/bulk.ts";
import { listModules, type ModuleInfo } from "./modules.ts";
import { moduleCapturePlan } from "./plans.ts";
import type { View } from "./view.ts";

/** The loaded modules, as /proc/modules lists them. */
export const moduleView: View<ModuleInfo> = {
  name: "modules",
  async source(ctx) {
    const layout = ctx.profile.modules;
    const plan = await moduleCapturePlan(ctx.profile);
    if (layout === undefined || plan === undefined) return undefined;
    return { kind: "list", bulk: "modules", addr: layout.listHead, isHead: true, limit: ALL, plan };
  },
  read: (ctx, mem) => listModules(mem, ctx.profile),
};

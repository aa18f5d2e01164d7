/**
 * The `hidden_module` detector: the module list against the module kset (what
 * /sys/module shows). A rootkit that unlinks its `struct module` from the
 * `modules` list vanishes from /proc/modules and lsmod, but its kobject stays
 * in the kset unless it also removes that. A module found there and not on the
 * list is confirmed against a list taken again (a module being loaded joins
 * the list before sysfs, so only a race with a finished load could look like
 * this).
 *
 * Like Volatility's `check_modules`. Misses a module that also deletes its
 * kobject (`kobject_del`), which the `syscall_hook` detector's "outside every
 * listed module" evidence can still point at.
 *
 * @module
 */
import {
  findModuleKset,
  listModuleKobjects,
  type ModuleKobject,
  moduleKobjectPlan,
  moduleKsetLinks,
} from "../os/module_kset.ts";
import { readModule } from "../os/modules.ts";
import { type Alert, hex } from "./alert.ts";
import { type Detector, DetectorSkipped } from "./detector.ts";
import { moduleLayout, moduleLayoutNote } from "../os/modules_layout.ts";

/** Reports modules in the kset that the module list does not hold. */
export const hiddenModuleDetector: Detector = {
  name: "hidden_module",
  description: "modules in /sys/module's kset that the module list does not hold",
  async run(snapshot) {
    const { profile, mem } = snapshot;
    if (moduleLayout(profile) === undefined) {
      throw new DetectorSkipped(moduleLayoutNote(profile) ?? "kernel has no module list");
    }
    const kset = await findModuleKset(mem, profile, snapshot.modules);
    if (kset === undefined) {
      throw new DetectorSkipped("kallsyms has no module_kset and no module is listed");
    }
    const unlisted = (listed: ReadonlySet<bigint>, kobjects: ModuleKobject[]) =>
      kobjects.filter((k) => k.mod !== 0n && !listed.has(k.mod));
    await snapshot.captureList(
      await moduleKobjectPlan(profile),
      kset + BigInt(moduleKsetLinks(profile).list),
    );
    const kobjects = await listModuleKobjects(mem, profile, kset);
    const first = unlisted(new Set(snapshot.modules.map((m) => m.addr)), kobjects);
    if (first.length === 0) return [];
    const retaken = new Set((await snapshot.retakeModules()).map((m) => m.addr));
    const alerts: Alert[] = [];
    for (const k of unlisted(retaken, first)) {
      const mod = await readModule(mem, profile, k.mod);
      alerts.push({
        detector: "hidden_module",
        severity: "critical",
        summary: `module ${mod.name} is in /sys/module but not on the module list`,
        evidence: {
          module: mod.name,
          kobject_name: k.name,
          struct_module: hex(k.mod),
          base: hex(mod.base),
          size: mod.size,
          state: mod.state,
          seen_in: "module_kset (/sys/module)",
          missing_from: "modules list (/proc/modules), twice",
        },
      });
    }
    return alerts;
  },
};

// End to end (needs root: real eBPF): the IDS's module list, read from the kernel's module list
// through a real agent, against /proc/modules. This machine's kernel has no loadable modules
// (CONFIG_MODULES off, no /proc/modules); the comparison branch runs on the VM test bed's
// Debian kernels.
import assert from "node:assert/strict";
import { IS_ROOT, withGuest } from "../_helpers/agent.ts";
import { moduleView } from "../../ids/os/module_view.ts";
import { moduleLayout, moduleLayoutNote } from "../../ids/os/modules_layout.ts";

function procModulesText(): string | undefined {
  try {
    return Deno.readTextFileSync("/proc/modules");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** name → size from /proc/modules ("name size refcount deps state base" per line). */
function procModules(text: string): Map<string, number> {
  const modules = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [name, size] = line.split(" ");
    if (name && size) modules.set(name, Number(size));
  }
  return modules;
}

const hasModules = procModulesText() !== undefined;

Deno.test({
  name: "lsmod on a kernel without /proc/modules is empty in both modes, with a note (root)",
  ignore: !IS_ROOT || hasModules,
  fn: () =>
    withGuest(async (guest) => {
      assert.match(moduleLayoutNote(guest.profile) ?? "", /Kernel has no module list/);
      assert.equal(moduleLayout(guest.profile), undefined);
      for (const mode of ["page", "bulk"] as const) {
        const { items } = await guest.acquire(moduleView, mode);
        assert.deepEqual(items, [], `${mode} mode`);
      }
    }),
});

Deno.test({
  name: "lsmod lists every module of /proc/modules with its size, in both modes (root)",
  ignore: !IS_ROOT || !hasModules,
  fn: () =>
    withGuest(async (guest) => {
      assert.equal(moduleLayoutNote(guest.profile), undefined);
      const before = procModules(procModulesText() ?? "");
      const page = await guest.acquire(moduleView, "page");
      const bulk = await guest.acquire(moduleView, "bulk");
      const after = procModules(procModulesText() ?? "");
      assert.ok(before.size > 0, "/proc/modules lists no module");
      for (const [mode, acquired] of [["page", page], ["bulk", bulk]] as const) {
        const seen = new Map(acquired.items.map((m) => [m.name, m]));
        for (const [name, size] of before) {
          if (after.get(name) !== size) continue; // loaded or unloaded meanwhile
          const mod = seen.get(name);
          assert.ok(mod, `${mode}: module ${name} of /proc/modules is missing`);
          assert.equal(mod.size, size, `${mode}: size of ${name}`);
          assert.equal(mod.state, "Live", `${mode}: state of ${name}`);
        }
        for (const mod of acquired.items) {
          assert.ok(
            before.has(mod.name) || after.has(mod.name),
            `${mode}: module ${mod.name} is not in /proc/modules`,
          );
        }
      }
      assert.equal(bulk.cost.roundTrips, 1, "bulk mode is one request");
      assert.equal(bulk.cost.misses, 0, "bulk mode prefetches every page the view reads");
      assert.deepEqual(
        bulk.items.map((m) => [m.name, m.size, m.base]),
        page.items.map((m) => [m.name, m.size, m.base]),
      );
    }),
});

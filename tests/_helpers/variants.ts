/**
 * The program variants a kernel must be sent (bpf/variants.ts), given which
 * variant of the walkers it can load: the readers have one variant.
 *
 * @module
 */
import type { ProgramName, VariantName } from "../../bpf/objects.ts";

/** Every program's variant when the walkers are `walkers`. */
export function expectedVariants(walkers: VariantName): Record<ProgramName, VariantName> {
  return {
    read_page: "plain",
    read_pages: "plain",
    walk_tasks: walkers,
    walk_modules: walkers,
    walk_plan: walkers,
    walk_hash: walkers,
  };
}

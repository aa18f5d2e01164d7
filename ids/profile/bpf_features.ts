/**
 * What the guest kernel's eBPF supports, from its BTF: the one place that
 * decides which program variants (bpf/variants.ts) the IDS sends it.
 *
 * @module
 */
import type { BpfFeatures } from "../../bpf/variants.ts";
import type { Btf } from "./btf.ts";

/**
 * The kernel's helpers (the values of its `enum bpf_func_id`) and whether it
 * takes function pointers. A BTF without `enum bpf_func_id` (no kernel with
 * BPF lacks it) gives no helpers, so that no program is chosen for it.
 */
export function bpfFeatures(btf: Btf): BpfFeatures {
  const id = btf.findEnum("bpf_func_id");
  const values = id === undefined ? [] : btf.enumValues(id);
  const helpers = new Set(
    values.filter((v) => v.name.startsWith("BPF_FUNC_")).map((v) => v.value),
  );
  return {
    helpers,
    // Linux 5.13 ("bpf: add bpf_for_each_map_elem() helper") brought BPF_PSEUDO_FUNC, the
    // ld_imm64 of a callback's address, with its first user; BPF_PSEUDO_FUNC itself is a
    // #define, not in BTF.
    pseudoFunc: values.some((v) => v.name === "BPF_FUNC_for_each_map_elem"),
  };
}

/**
 * `fields` mode (beyond the paper): one request in which the generic walker
 * follows the list in the guest and sends back only the byte ranges that the
 * capture plan names. They go into the range cache; the OS views then read
 * from it as usual.
 *
 * @module
 */
import { AddrTag, RecordKind } from "../../bpf/records.ts";
import { type CapturePlan, encodePlan, type PlanStart, storeFields } from "./plan.ts";
import { firstFault, type ProgramSet } from "./programs.ts";
import type { RangeCache } from "./range_cache.ts";

/** What a plan walk found. */
export interface PlanWalkResult {
  /** Where the walk started (the start object, or the list head). */
  start: bigint;
  /** Objects visited. */
  objects: number;
}

/** Walks a list in the guest with `plan` and stores the captured ranges in `ranges`. */
export async function planWalk(
  programs: ProgramSet,
  ranges: RangeCache,
  plan: CapturePlan,
  start: PlanStart,
): Promise<PlanWalkResult> {
  const records = await programs.run("walk_plan", encodePlan(plan, start));
  const fault = firstFault("Capture plan walk", records);
  if (fault) throw fault;
  const result: PlanWalkResult = { start: 0n, objects: 0 };
  let ended = false;
  for (const record of records) {
    if (record.kind === RecordKind.Fields) {
      storeFields(plan, record, ranges);
    } else if (record.kind === RecordKind.Addr && record.value === BigInt(AddrTag.Start)) {
      result.start = record.addr;
    } else if (record.kind === RecordKind.End) {
      result.objects = Number(record.value);
      ended = true;
    }
  }
  if (!ended) throw new Error("Capture plan walk ended without its END record");
  return result;
}

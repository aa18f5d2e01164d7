/**
 * The capture plans of the OS views, for `fields` mode: learned from the
 * views' own per-object readers (see ids/memory/plan_recorder.ts), so they
 * hold exactly what `readTask`, `readModule` and `readSocket` read.
 *
 * @module
 */
import type { CapturePlan } from "../memory/plan.ts";
import {
  type GuardedPlan,
  type PlanCase,
  recordGuardedPlan,
  recordPlan,
} from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { memoized } from "./view.ts";
import { readModule } from "./modules.ts";
import { moduleKsetLinks, readModuleKobject } from "./module_kset.ts";
import { readTask } from "./tasks.ts";
import { readSocket, SOCKET_FAMILIES, SOCKET_STATE_RANGE, TCP_ONLY_STATES } from "./sockets.ts";

/** What `listTasks` reads of each task_struct, its real_cred and its real_parent. */
export const taskCapturePlan: (profile: KernelProfile) => Promise<CapturePlan> = memoized((
  profile,
) =>
  recordPlan(
    (mem, task) => readTask(mem, profile, task),
    profile.tasks.tasks.offset + profile.listHead.next.offset,
  )
);

/** What `listModules` reads of each struct module; undefined without module support. */
export const moduleCapturePlan: (profile: KernelProfile) => Promise<CapturePlan | undefined> =
  memoized(async (profile) => {
    const layout = profile.modules;
    if (layout === undefined) return undefined;
    return await recordPlan(
      (mem, mod) => readModule(mem, profile, mod),
      layout.list.offset + profile.listHead.next.offset,
    );
  });

/** What `listModuleKobjects` reads of each kobject of the module kset (and its name). */
export function moduleKobjectPlan(profile: KernelProfile): Promise<CapturePlan> {
  return recordPlan(
    (mem, kobject) => readModuleKobject(mem, profile, kobject),
    moduleKsetLinks(profile).link,
  );
}

/**
 * What `listSockets` reads of each socket on the TCP and UDP tables, for every
 * family and state (the guard is `skc_state`: TCP's TIME_WAIT and request
 * sockets read other members and follow other pointers than full sockets; UDP
 * sockets are never in those states); undefined without the socket tables.
 */
export const socketCapturePlan: (profile: KernelProfile) => Promise<GuardedPlan | undefined> =
  memoized(recordSocketPlan);

async function recordSocketPlan(profile: KernelProfile): Promise<GuardedPlan | undefined> {
  const layout = profile.sockets;
  if (layout === undefined) return undefined;
  const cases: PlanCase[] = [];
  for (const proto of ["tcp", "udp"] as const) {
    for (const family of SOCKET_FAMILIES) {
      for (let state = 0; state < SOCKET_STATE_RANGE; state++) {
        if (proto === "udp" && TCP_ONLY_STATES.includes(state)) continue;
        cases.push({
          read: (mem, sk) => readSocket(mem, profile, sk, proto),
          preset: new Map([
            [layout.skc_family.offset, family & 0xff],
            [layout.skc_family.offset + 1, family >> 8],
            [layout.skc_state.offset, state],
          ]),
        });
      }
    }
  }
  const links = [layout.ehashBucket, layout.listenBucket, layout.udpBucket].map((b) => b.link);
  return await recordGuardedPlan(cases, [...new Set(links)], layout.skc_state.offset);
}

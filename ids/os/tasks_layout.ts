/**
 * The task view's layout: what `readTask`, `listTasks` and the detectors read
 * of `task_struct` and `struct cred`, decided once per profile from its BTF.
 *
 * @module
 */
import type { KernelProfile, MemberLayout } from "../profile/profile.ts";
import { memoized } from "./view.ts";

/** Layout of the `task_struct` members the task views read. */
export interface TaskLayout {
  /** `sizeof(struct task_struct)`. */
  size: number;
  /** `task_struct.tasks` (a `list_head` linking every thread group leader). */
  tasks: MemberLayout;
  /** `task_struct.pid`. */
  pid: MemberLayout;
  /** `task_struct.tgid`. */
  tgid: MemberLayout;
  /** `task_struct.real_parent`. */
  real_parent: MemberLayout;
  /** `task_struct.group_leader`. */
  group_leader: MemberLayout;
  /** `task_struct.comm` (`TASK_COMM_LEN` bytes, 16). */
  comm: MemberLayout;
  /** `task_struct.cred` (effective credentials). */
  cred: MemberLayout;
  /** `task_struct.real_cred` (objective credentials). */
  real_cred: MemberLayout;
  /** `task_struct.flags` (`PF_*`). */
  flags: MemberLayout;
  /** The task state: `task_struct.__state` on 5.14+, `task_struct.state` before. */
  state: MemberLayout;
  /** Which member {@link TaskLayout.state} is. */
  stateMember: "__state" | "state";
  /** `task_struct.exit_state` (`EXIT_ZOMBIE`, `EXIT_DEAD`). */
  exit_state: MemberLayout;
}

/** Layout of the `struct cred` members the task views read. */
export interface CredLayout {
  /** `sizeof(struct cred)`. */
  size: number;
  /** `cred.uid.val`. */
  uid: MemberLayout;
  /** `cred.euid.val`. */
  euid: MemberLayout;
  /** `cred.gid.val`. */
  gid: MemberLayout;
}

/**
 * The `task_struct` layout of `profile`'s kernel.
 *
 * @throws {ProfileError} when a member the task views read is missing
 */
export const taskLayout: (profile: KernelProfile) => TaskLayout = memoized((profile) => {
  // Linux 5.14 renamed task_struct.state to __state (and made it unsigned int) so that
  // direct accesses fail to compile and go through READ_ONCE/WRITE_ONCE helpers.
  const stateMember = profile.hasMember("task_struct", "__state") ? "__state" : "state";
  const tasks = (member: string) => profile.member("task_struct", member);
  return {
    size: profile.structSize("task_struct"),
    tasks: tasks("tasks"),
    pid: tasks("pid"),
    tgid: tasks("tgid"),
    real_parent: tasks("real_parent"),
    group_leader: tasks("group_leader"),
    comm: tasks("comm"),
    cred: tasks("cred"),
    real_cred: tasks("real_cred"),
    flags: tasks("flags"),
    state: tasks(stateMember),
    stateMember,
    exit_state: tasks("exit_state"),
  };
});

/**
 * The `struct cred` layout of `profile`'s kernel.
 *
 * @throws {ProfileError} when a member the task views read is missing
 */
export const credLayout: (profile: KernelProfile) => CredLayout = memoized((profile) => ({
  size: profile.structSize("cred"),
  uid: profile.member("cred", "uid.val"),
  euid: profile.member("cred", "euid.val"),
  gid: profile.member("cred", "gid.val"),
}));

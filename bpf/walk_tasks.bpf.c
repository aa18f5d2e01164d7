// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * walk_tasks: walks the kernel's task list (task_struct.tasks, the thread-group
 * leaders) and copies, page by page, every task_struct, its cred and real_cred,
 * and its real_parent (the IDS reads the parent's tgid: the parent may be a
 * thread that is not on the list, or a leader outside a limited walk; pages
 * already sent are not sent again). For each task an ADDR record follows its
 * pages. The IDS interprets the memory; this program only collects it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"
#include <bpf/bpf_core_read.h>

struct walk_tasks_params {
	struct params_hdr hdr;
	__u64 start;  /* a task on the list, where the walk starts and closes; 0: the current task's leader */
	__u32 limit;  /* tasks to visit at most */
	__u32 unused;
};

#define PARAMS_STRUCT walk_tasks_params
#include "emit.h"
#include "walk.h"

#define MAX_TASKS 4194304 /* PID_MAX_LIMIT */

/* Worst case a task takes in the ring: task, real_parent, cred, real_cred and closing records. */
#define TASK_ROOM ((2 * MAX_OBJECT_PAGES + 2) * PAGE_RECORD_ROOM + 256)

static long visit_task(__u32 index, void *ctx)
{
	struct task_struct *task = (void *)state.cursor;
	struct task_struct *parent;
	const struct cred *cred, *real_cred;
	struct list_head *next;
	__u64 run_id = state.run_id;
	__u64 task_size = bpf_core_type_size(struct task_struct);

	if (walk_visit_blocked(TASK_ROOM))
		return 1;
	if (emit_object((__u64)task, task_size, run_id))
		return walk_fail((__u64)task, 0);
	cred = BPF_CORE_READ(task, cred);
	real_cred = BPF_CORE_READ(task, real_cred);
	if (emit_object((__u64)cred, bpf_core_type_size(struct cred), run_id))
		return walk_fail((__u64)cred, 0);
	if (real_cred != cred && emit_object((__u64)real_cred, bpf_core_type_size(struct cred), run_id))
		return walk_fail((__u64)real_cred, 0);
	parent = BPF_CORE_READ(task, real_parent);
	if (parent && emit_object((__u64)parent, task_size, run_id))
		return walk_fail((__u64)parent, 0);
	emit(REC_ADDR, (__u64)task, TAG_TASK);

	next = BPF_CORE_READ(task, tasks.next);
	if (!next)
		return walk_fail((__u64)task, -14 /* EFAULT */);
	return walk_advance((__u64)next - bpf_core_field_offset(struct task_struct, tasks));
}

SEC("uprobe")
int walk_tasks(struct pt_regs *ctx)
{
	struct walk_tasks_params *p = armed_params();
	__u64 start;

	if (!p)
		return 0;
	if (state.run_id != p->hdr.run_id) {
		start = p->start;
		if (!start) {
			struct task_struct *current = (void *)bpf_get_current_task();

			start = (__u64)BPF_CORE_READ(current, group_leader);
		}
		walk_begin(p->hdr.run_id, start, start, p->limit, MAX_TASKS);
		emit(REC_ADDR, start, TAG_START);
	}
	walk_batch(visit_task);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

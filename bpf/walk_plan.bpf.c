// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * walk_plan: one generic walker driven by a capture plan from the IDS. It walks
 * a kernel list (linked through a list_head inside each object) and, for every
 * object, copies exactly the byte ranges the plan names, plus the ranges of the
 * objects that some of its pointers point to (e.g. task_struct.real_cred ->
 * struct cred). Nothing here knows what a task or a module is: offsets and
 * lengths come from the IDS, which takes them from the guest's BTF.
 *
 * Output: one FIELDS record per object (value FIELDS_OBJECT) and per followed
 * object not sent yet in this run (value FIELDS_FOLLOW_0 + i), whose payload is
 * the planned ranges concatenated in plan order.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "plan.h"

#define MAX_FOLLOWS 3 /* pointers followed per object */

struct follow {
	__u16 pointer; /* offset of the pointer in the walked object */
	__u16 nranges;
	struct plan_range ranges[MAX_RANGES];
};

struct walk_plan_params {
	struct params_hdr hdr;
	__u64 start;       /* an object on the list, or a list head (flags bit 0); 0: current task's leader */
	__u32 limit;       /* objects to visit at most */
	__u16 link;        /* offset of the list_head in each object */
	__u8 start_is_head;
	__u8 nranges;
	__u8 nfollows;
	__u8 unused[7];
	struct plan_range ranges[MAX_RANGES];
	struct follow follows[MAX_FOLLOWS];
};

#define PARAMS_STRUCT walk_plan_params
#include "emit.h"
#include "walk.h"
#include "ranges.h"

#define MAX_OBJECTS 4194304
/* Worst case an object takes in the ring: its record and one per follow, and the closing record. */
#define OBJECT_ROOM ((1 + MAX_FOLLOWS) * RECORD_ROOM + 256)

static long visit_object(__u32 index, void *ctx)
{
	__u32 zero = 0;
	struct walk_plan_params *p = bpf_map_lookup_elem(&params, &zero);
	__u64 obj = state.cursor;
	__u64 next = 0;
	int i;

	if (!p)
		return 1;
	if (walk_visit_blocked(OBJECT_ROOM))
		return 1;
	if (emit_ranges(obj, p->ranges, p->nranges, FIELDS_OBJECT))
		return walk_fail(obj, 0);
	for (i = 0; i < MAX_FOLLOWS; i++) {
		struct follow *f = &p->follows[i];
		__u64 target = 0;

		if (i >= p->nfollows)
			break;
		if (bpf_probe_read_kernel(&target, sizeof(target), (const void *)(obj + f->pointer)))
			return walk_fail(obj + f->pointer, -14 /* EFAULT */);
		if (!target)
			continue;
		/* Objects are 8-byte aligned: target + 2 + i keeps follows apart from pages and objects. */
		if (visit_once(target + 1 + i, state.run_id))
			continue;
		if (emit_ranges(target, f->ranges, f->nranges, FIELDS_FOLLOW_0 + i))
			return walk_fail(target, 0);
	}
	if (bpf_probe_read_kernel(&next, sizeof(next), (const void *)(obj + p->link)) || !next)
		return walk_fail(obj + p->link, -14 /* EFAULT */);
	return walk_advance(next - p->link);
}

SEC("uprobe")
int walk_plan(struct pt_regs *ctx)
{
	struct walk_plan_params *p = armed_params();
	__u64 start, first = 0;

	if (!p)
		return 0;
	if (state.run_id != p->hdr.run_id) {
		start = p->start;
		if (p->start_is_head) {
			/* The walk closes at the head, compared as if it were an object. */
			if (bpf_probe_read_kernel(&first, sizeof(first), (const void *)start) || !first) {
				state.run_id = p->hdr.run_id;
				state.status = WALK_FAILED;
				emit(REC_FAULT, start, -14 /* EFAULT */);
				return 0;
			}
			walk_begin(p->hdr.run_id, start - p->link, first - p->link, p->limit, MAX_OBJECTS);
			emit(REC_ADDR, start, TAG_START);
			/* The IDS's view starts by reading the head's next pointer. */
			{
				struct plan_range anchor[1] = { { .offset = 0, .len = 8 } };

				if (emit_ranges(start, anchor, 1, FIELDS_ANCHOR)) {
					state.status = WALK_FAILED;
					return 0;
				}
			}
			if (state.cursor == state.start)
				state.status = WALK_DONE; /* an empty list */
		} else {
			if (!start) {
				struct task_struct *current = (void *)bpf_get_current_task();

				start = (__u64)BPF_CORE_READ(current, group_leader);
			}
			walk_begin(p->hdr.run_id, start, start, p->limit, MAX_OBJECTS);
			emit(REC_ADDR, start, TAG_START);
		}
	}
	walk_batch(visit_object);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

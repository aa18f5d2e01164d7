// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * walk_modules: walks the kernel's module list (the `modules` list head, linked
 * through module.list) and copies, page by page, the list head and every struct
 * module (its name, state and memory layout live inside it). For each module an
 * ADDR record follows its pages.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"
#include <bpf/bpf_core_read.h>

struct walk_modules_params {
	struct params_hdr hdr;
	__u64 head;  /* address of the kernel's `modules` list head (from kallsyms) */
	__u32 limit; /* modules to visit at most */
	__u32 unused;
};

#define PARAMS_STRUCT walk_modules_params
#include "emit.h"
#include "walk.h"

#define MAX_MODULES 65536

#define MODULE_ROOM ((MAX_OBJECT_PAGES + 2) * PAGE_RECORD_ROOM + 256)

static long visit_module(__u32 index, void *ctx)
{
	__u64 mod = state.cursor;
	struct list_head *next;

	if (walk_visit_blocked(MODULE_ROOM))
		return 1;
	if (emit_object(mod, bpf_core_type_size(struct module), state.run_id))
		return walk_fail(mod, 0);
	emit(REC_ADDR, mod, TAG_MODULE);

	next = BPF_CORE_READ((struct module *)mod, list.next);
	if (!next)
		return walk_fail(mod, -14 /* EFAULT */);
	/* The list closes at the head, which is no module: compare it as a module address too. */
	return walk_advance((__u64)next - bpf_core_field_offset(struct module, list));
}

SEC("uprobe")
int walk_modules(struct pt_regs *ctx)
{
	struct walk_modules_params *p = armed_params();
	struct list_head *first = NULL;
	__u64 head_as_module;

	if (!p)
		return 0;
	if (state.run_id != p->hdr.run_id) {
		head_as_module = p->head - bpf_core_field_offset(struct module, list);
		if (bpf_probe_read_kernel(&first, sizeof(first), (const void *)p->head) || !first) {
			state.run_id = p->hdr.run_id;
			state.status = WALK_FAILED;
			emit(REC_FAULT, p->head, -14 /* EFAULT */);
			return 0;
		}
		walk_begin(p->hdr.run_id, head_as_module,
			   (__u64)first - bpf_core_field_offset(struct module, list), p->limit,
			   MAX_MODULES);
		emit(REC_ADDR, p->head, TAG_START);
		/* The IDS starts its walk at the head: send the head's page too. */
		if (emit_object(p->head, bpf_core_type_size(struct list_head), p->hdr.run_id)) {
			state.status = WALK_FAILED;
			return 0;
		}
		if (state.cursor == head_as_module)
			state.status = WALK_DONE; /* an empty list */
	}
	walk_batch(visit_module);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

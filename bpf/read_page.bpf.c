// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * read_page: copies one page of kernel memory with bpf_probe_read_kernel(), the
 * SEVmonitor-style baseline (one round trip per page). Only kernel addresses
 * are read: anything below the kernel half of the address space is refused. An
 * unreadable page gives a FAULT record with the helper's error, never a crash.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"

struct read_page_params {
	struct params_hdr hdr;
	__u64 addr; /* any address in the page */
};

#define PARAMS_STRUCT read_page_params
#include "emit.h"

SEC("uprobe")
int read_page(struct pt_regs *ctx)
{
	struct read_page_params *p = armed_params();
	__u64 page;
	long err;

	if (!p)
		return 0;
	page = p->addr & EBPFMON_PAGE_MASK;
	if (page < KERNEL_SPACE_START)
		err = -1; /* EPERM: user memory is not the IDS's business */
	else
		err = emit_page(page);
	if (err)
		emit(REC_FAULT, page, err);
	emit(REC_END, page, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

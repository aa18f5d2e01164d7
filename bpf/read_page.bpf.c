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

	if (!p)
		return 0;
	emit_kernel_page(p->addr);
	emit(REC_END, p->addr & EBPFMON_PAGE_MASK, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

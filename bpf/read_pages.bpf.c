// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * read_pages: copies up to READ_PAGES_MAX pages of kernel memory, named by the
 * IDS, in one run: the pages a view will need once it knows where they are
 * (the nodes of one level of a tree, the objects a table points to), fetched
 * in one round trip instead of one each. Like read_page, only kernel addresses
 * are read, and an unreadable page gives a FAULT record with the helper's
 * error for that page alone.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"

#define READ_PAGES_MAX 256

struct read_pages_params {
	struct params_hdr hdr;
	__u32 count; /* pages named below */
	__u32 unused;
	__u64 addrs[READ_PAGES_MAX]; /* any address in each page */
};

#define PARAMS_STRUCT read_pages_params
#include "emit.h"

SEC("uprobe")
int read_pages(struct pt_regs *ctx)
{
	struct read_pages_params *p = armed_params();
	__u32 count;
	int i;

	if (!p)
		return 0;
	count = p->count;
	for (i = 0; i < READ_PAGES_MAX; i++) {
		if (i >= count)
			break;
		emit_kernel_page(p->addrs[i]);
	}
	emit(REC_END, 0, count);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

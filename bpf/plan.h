/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Capture plans: the byte ranges of an object that the IDS wants, as the
 * plan-driven walkers (walk_plan, walk_hash) take them in their parameters.
 */
#ifndef EBPFMON_PLAN_H
#define EBPFMON_PLAN_H

#define MAX_RANGES 12   /* ranges per object kind */
#define MAX_RANGE_LEN 255
#define SCRATCH_BYTES 1024 /* payload of one record at most */

struct plan_range {
	__u16 offset;
	__u16 len;
};

#endif

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Conventions shared by every ebpfmonitor eBPF program and by the TypeScript
 * side (bpf/records.ts). Keep the two in step.
 *
 * Every program:
 *  - is a uprobe program, attached by the agent to a libc function in the
 *    agent's own process and fired by the agent calling that function;
 *  - reads its parameters from the single-entry array map `params`, whose value
 *    is struct params_hdr (written by the agent) followed by the IDS's bytes. The
 *    agent writes it before firing and writes zeros afterwards, so a disarmed
 *    program returns at once, and a program ignores fires from other processes;
 *  - writes its output as records into the ring buffer map `events`. A record is
 *    struct record_hdr followed by hdr.len payload bytes.
 *  - ends a fire with REC_MORE when it stopped early (ring buffer nearly full or
 *    loop budget used) and wants to be fired again with the same parameters; it
 *    keeps its cursor in its own global state, keyed by params_hdr.run_id.
 */
#ifndef EBPFMON_COMMON_H
#define EBPFMON_COMMON_H

#define EBPFMON_PAGE_SIZE 4096
#define EBPFMON_PAGE_MASK (~((__u64)EBPFMON_PAGE_SIZE - 1))
/*
 * Lowest kernel address on x86-64: the canonical upper half with 5-level paging
 * (57-bit addresses), which contains the 4-level one (0xffff800000000000).
 */
#define KERNEL_SPACE_START 0xff00000000000000ULL
/* Ring buffer size of every program: a power of two and a multiple of the page size. */
#define EBPFMON_RING_BYTES (4 * 1024 * 1024)

enum record_kind {
	REC_PAGE = 1,  /* addr = page address, payload = the page's bytes */
	REC_ADDR = 2,  /* addr = object address, value = enum addr_tag */
	REC_FAULT = 3, /* addr = address that failed, value = negative errno or fault code */
	REC_MORE = 4,  /* fire again: value = objects visited so far */
	REC_END = 5,   /* walk complete: value = objects visited */
	REC_FIELDS = 6, /* addr = object, value = enum fields_of, payload = the planned ranges, in order */
	REC_HEAD = 7,   /* addr = a hash bucket's chain head, value = the head pointer (a non-empty chain) */
};

/* What a FIELDS record holds: the object's own ranges, or those of a pointer it follows. */
enum fields_of {
	FIELDS_OBJECT = 0,   /* the walked object's ranges */
	FIELDS_FOLLOW_0 = 1, /* 1 + i: the ranges of the object that follow i points to */
	FIELDS_ANCHOR = 255, /* the list head's next pointer (8 bytes), where a walk starts at a head */
};

enum addr_tag {
	TAG_START = 1,  /* where a walk started (e.g. the current task) */
	TAG_TASK = 2,   /* a task_struct on the task list */
	TAG_MODULE = 3, /* a struct module on the module list */
};

/* Fault codes beyond negative errno values. */
#define FAULT_LOOP_BOUND 1 /* the list did not close within the iteration bound */
#define FAULT_CYCLE 2      /* the list came back to an object other than its start */
#define FAULT_RING_FULL 3  /* the ring buffer had no room for a record */

struct record_hdr {
	__u32 kind;
	__u32 len;
	__u64 addr;
	__s64 value;
};

/*
 * Written by the agent in front of the IDS's parameter bytes: the IDS never
 * chooses these, so a program can trust that tgid is the agent's own process
 * and that run_id changes from one run to the next.
 */
struct params_hdr {
	__u32 armed;
	__u32 tgid;
	__u64 run_id;
};

#endif

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Copies the planned byte ranges of an object into one FIELDS record (for the
 * plan-driven walkers). Include after emit.h.
 */
#ifndef EBPFMON_RANGES_H
#define EBPFMON_RANGES_H

#include "plan.h"

struct scratch {
	struct record_hdr hdr;
	__u8 data[SCRATCH_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Room one FIELDS record takes in the ring buffer at most, with the ring's own header. */
#define RECORD_ROOM (sizeof(struct record_hdr) + SCRATCH_BYTES + 8)

/*
 * Copies the ranges of `obj` into one FIELDS record. Returns 0, or a negative
 * errno (a FAULT record is emitted).
 */
static __always_inline long emit_ranges(__u64 obj, struct plan_range *ranges, __u32 nranges, __s64 which)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	__u32 used = 0, size;
	long err;
	int i;

	if (!s)
		return -12; /* ENOMEM */
	for (i = 0; i < MAX_RANGES; i++) {
		__u32 len;

		if (i >= nranges)
			break;
		len = ranges[i].len & MAX_RANGE_LEN;
		if (used > SCRATCH_BYTES - MAX_RANGE_LEN - 1)
			return -7; /* E2BIG: the IDS's plan is larger than a record */
		err = bpf_probe_read_kernel(&s->data[used], len, (const void *)(obj + ranges[i].offset));
		if (err) {
			emit(REC_FAULT, obj + ranges[i].offset, err);
			return err;
		}
		used += len;
	}
	s->hdr.kind = REC_FIELDS;
	s->hdr.len = used;
	s->hdr.addr = obj;
	s->hdr.value = which;
	/* used < SCRATCH_BYTES already; the (kept) mask says so to the verifier. */
	barrier_var(used);
	size = sizeof(s->hdr) + (used & (SCRATCH_BYTES - 1));
	return bpf_ringbuf_output(&events, s, size, 0);
}

#endif

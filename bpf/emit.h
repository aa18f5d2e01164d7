/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Output helpers shared by the ebpfmonitor programs: the `params`, `events`
 * and `seen` maps and the functions that write records into `events`.
 * A program defines `struct PARAMS_STRUCT` (starting with struct params_hdr)
 * before including this file.
 */
#ifndef EBPFMON_EMIT_H
#define EBPFMON_EMIT_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct PARAMS_STRUCT);
} params SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EBPFMON_RING_BYTES);
} events SEC(".maps");

/*
 * Pages (and, tagged with bit 0, objects) already emitted in a run: key is the
 * address, value the run_id. Stale entries from earlier runs never match, so the
 * map needs no clearing; LRU eviction can only cause a duplicate page, never a
 * missing one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} seen SEC(".maps");

struct page_record {
	struct record_hdr hdr;
	__u8 data[EBPFMON_PAGE_SIZE];
};

/* Room one page record takes in the ring buffer, with the ring's own 8-byte header. */
#define PAGE_RECORD_ROOM (sizeof(struct page_record) + 8)

/* The parameters of this fire, or NULL when the program is disarmed or fired by another process. */
static __always_inline struct PARAMS_STRUCT *armed_params(void)
{
	__u32 zero = 0;
	struct PARAMS_STRUCT *p = bpf_map_lookup_elem(&params, &zero);

	if (!p || !p->hdr.armed)
		return NULL;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != p->hdr.tgid)
		return NULL;
	return p;
}

static __always_inline int emit(__u32 kind, __u64 addr, __s64 value)
{
	struct record_hdr *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r)
		return -1;
	r->kind = kind;
	r->len = 0;
	r->addr = addr;
	r->value = value;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* Free bytes in the ring buffer (the agent drains it between fires). */
static __always_inline __u64 ring_room(void)
{
	__u64 used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return used >= EBPFMON_RING_BYTES ? 0 : EBPFMON_RING_BYTES - used;
}

/* Copies one page of kernel memory into the ring buffer. Returns 0, or a negative errno. */
static __always_inline long emit_page(__u64 page)
{
	struct page_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	long err;

	if (!r)
		return -28; /* ENOSPC */
	err = bpf_probe_read_kernel(r->data, EBPFMON_PAGE_SIZE, (const void *)page);
	if (err) {
		bpf_ringbuf_discard(r, 0);
		return err;
	}
	r->hdr.kind = REC_PAGE;
	r->hdr.len = EBPFMON_PAGE_SIZE;
	r->hdr.addr = page;
	r->hdr.value = 0;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/*
 * Copies the page holding `addr` when it lies in the kernel half, or writes a
 * FAULT record for it (EPERM: user memory is not the IDS's business; or the
 * helper's error). What the IDS names by address goes through here.
 */
static __always_inline void emit_kernel_page(__u64 addr)
{
	__u64 page = addr & EBPFMON_PAGE_MASK;
	long err = page < KERNEL_SPACE_START ? -1 : emit_page(page);

	if (err)
		emit(REC_FAULT, page, err);
}

/* Largest object whose pages emit_object() copies: 8 pages. */
#define MAX_OBJECT_PAGES 8

/*
 * Copies every page that [addr, addr + size) touches and that this run has not
 * copied yet. Returns 0, or a negative errno (a FAULT record is emitted).
 */
static __always_inline long emit_object(__u64 addr, __u64 size, __u64 run_id)
{
	__u64 first = addr & EBPFMON_PAGE_MASK;
	__u64 last = (addr + size - 1) & EBPFMON_PAGE_MASK;
	long err;
	int i;

	if (!addr || !size)
		return 0;
	for (i = 0; i < MAX_OBJECT_PAGES; i++) {
		__u64 page = first + (__u64)i * EBPFMON_PAGE_SIZE;
		__u64 *run = NULL;

		if (page > last)
			break;
		run = bpf_map_lookup_elem(&seen, &page);
		if (run && *run == run_id)
			continue;
		err = emit_page(page);
		if (err) {
			emit(REC_FAULT, page, err);
			return err;
		}
		bpf_map_update_elem(&seen, &page, &run_id, BPF_ANY);
	}
	return 0;
}

/*
 * Marks an object as visited in this run. Returns 1 when it had been visited
 * already (the list loops), else 0.
 */
static __always_inline int visit_once(__u64 obj, __u64 run_id)
{
	__u64 key = obj | 1; /* objects are aligned: bit 0 keeps them apart from pages */
	__u64 *run = bpf_map_lookup_elem(&seen, &key);

	if (run && *run == run_id)
		return 1;
	bpf_map_update_elem(&seen, &key, &run_id, BPF_ANY);
	return 0;
}

#endif

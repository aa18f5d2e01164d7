// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * walk_hash: walks kernel hash tables whose buckets hold the head of an hlist
 * (or an hlist_nulls) and copies, page by page, every object on their chains,
 * plus where some of its pointers point. Nothing here knows what the objects
 * are: the IDS names each table's bucket array, bucket count and stride, the
 * offset of the chain head in a bucket, the offset of the chain node in an
 * object, how many bytes of an object to send and which pointers to follow.
 *
 * A large table is mostly empty buckets: they are read here and not sent. For
 * each non-empty bucket a HEAD record (addr = the head pointer's address,
 * value = its value) comes before the pages of its chain's objects; the IDS
 * knows that every bucket it was not told about held an empty chain.
 *
 * An object met twice in a run (it moved to another chain while the walk ran,
 * as sockets do) ends its chain: the walk always ends.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"
#include <bpf/bpf_core_read.h>

#define MAX_TABLES 4
#define MAX_FOLLOWS 2

struct hash_table {
	__u64 base;   /* address of the bucket array */
	__u32 count;  /* buckets */
	__u16 stride; /* bytes per bucket */
	__u16 head;   /* offset of the chain's first pointer in a bucket */
	__u16 link;   /* offset of the chain node (its next pointer) in each object */
	__u8 nulls;   /* 1: hlist_nulls, chains end in an odd value; 0: hlist, chains end in NULL */
	__u8 unused[5];
};

struct hash_follow {
	__u16 pointer; /* offset of the pointer in the object */
	__u16 guard;   /* offset of a byte in the object that decides whether to follow */
	__u32 mask;    /* follow when the guard byte is below 32 and its bit in mask is set */
	__u32 span;    /* bytes to send from where the pointer points */
	__u32 unused;
};

struct walk_hash_params {
	struct params_hdr hdr;
	__u32 ntables;
	__u32 span;  /* bytes of each object to send (the pages that cover them) */
	__u32 limit; /* objects to visit at most */
	__u32 nfollows;
	struct hash_table tables[MAX_TABLES];
	struct hash_follow follows[MAX_FOLLOWS];
};

#define PARAMS_STRUCT walk_hash_params
#include "emit.h"
#include "walk.h"

#define MAX_OBJECTS 4194304
/* Buckets one visit reads at most while it looks for a non-empty one. */
#define SCAN_BUCKETS 64
/* Worst case an object takes in the ring: its pages, its follows' pages and small records. */
#define OBJECT_ROOM (((1 + MAX_FOLLOWS) * MAX_OBJECT_PAGES) * PAGE_RECORD_ROOM + 512)

/* Where the walk is: state.cursor is the next chain node (0: read the next bucket). */
struct hash_cursor {
	__u32 table;
	__u32 bucket;
};

struct hash_cursor where = {};

static __always_inline int chain_end(__u64 node, __u8 nulls)
{
	return !node || (nulls && (node & 1));
}

/* Reads buckets until one holds a chain; returns 1 to stop the batch. */
static __always_inline long next_chain(struct walk_hash_params *p)
{
	struct hash_table *t;
	__u64 addr, first = 0;
	int i;

	if (where.table >= p->ntables || where.table >= MAX_TABLES) {
		state.status = WALK_DONE;
		return 1;
	}
	t = &p->tables[where.table & (MAX_TABLES - 1)];
	for (i = 0; i < SCAN_BUCKETS; i++) {
		if (where.bucket >= t->count) {
			where.table++;
			where.bucket = 0;
			return 0;
		}
		addr = t->base + (__u64)where.bucket * t->stride + t->head;
		if (bpf_probe_read_kernel(&first, sizeof(first), (const void *)addr))
			return walk_fail(addr, -14 /* EFAULT */);
		if (chain_end(first, t->nulls)) {
			where.bucket++;
			continue;
		}
		if (emit(REC_HEAD, addr, first))
			return 1; /* ring full: this bucket again on the next fire */
		where.bucket++;
		state.cursor = first;
		return 0;
	}
	return 0;
}

static long visit_hash(__u32 index, void *ctx)
{
	__u32 zero = 0;
	struct walk_hash_params *p = bpf_map_lookup_elem(&params, &zero);
	struct hash_table *t;
	__u64 node = state.cursor, obj, next = 0;
	__u8 guard;
	int i;

	if (!p)
		return 1;
	if (ring_room() < OBJECT_ROOM)
		return 1; /* pause: the agent drains the ring and fires again */
	if (!node)
		return next_chain(p);
	if (state.visited >= state.limit) {
		if (state.bounded)
			return walk_fail(node, -FAULT_LOOP_BOUND);
		state.status = WALK_DONE;
		return 1;
	}
	t = &p->tables[where.table & (MAX_TABLES - 1)];
	obj = node - t->link;
	if (visit_once(obj, state.run_id)) {
		state.cursor = 0; /* met before: it moved chains, and this chain is walked */
		return 0;
	}
	if (emit_object(obj, p->span, state.run_id))
		return walk_fail(obj, 0);
	for (i = 0; i < MAX_FOLLOWS; i++) {
		struct hash_follow *f = &p->follows[i];
		__u64 target = 0;

		if (i >= p->nfollows)
			break;
		guard = 0xff;
		bpf_probe_read_kernel(&guard, sizeof(guard), (const void *)(obj + f->guard));
		if (guard >= 32 || !((f->mask >> guard) & 1))
			continue;
		if (bpf_probe_read_kernel(&target, sizeof(target), (const void *)(obj + f->pointer)))
			return walk_fail(obj + f->pointer, -14 /* EFAULT */);
		if (target < KERNEL_SPACE_START)
			continue;
		if (emit_object(target, f->span, state.run_id))
			return walk_fail(target, 0);
	}
	if (bpf_probe_read_kernel(&next, sizeof(next), (const void *)node))
		return walk_fail(node, -14 /* EFAULT */);
	state.visited++;
	state.cursor = chain_end(next, t->nulls) ? 0 : next;
	return 0;
}

SEC("uprobe")
int walk_hash(struct pt_regs *ctx)
{
	struct walk_hash_params *p = armed_params();

	if (!p)
		return 0;
	if (walk_begin(p->hdr.run_id, 0, 0, p->limit, MAX_OBJECTS)) {
		where.table = 0;
		where.bucket = 0;
	}
	walk_batch(visit_hash);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

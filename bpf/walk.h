/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The resumable list walk shared by walk_tasks and walk_modules: state that
 * survives from one fire to the next, batches bounded per fire, and the
 * closing record (END, MORE, or a FAULT already emitted).
 */
#ifndef EBPFMON_WALK_H
#define EBPFMON_WALK_H

/*
 * Each walker is built twice (bpf/build.sh), and the IDS sends each kernel the
 * variant it can load (ids/memory/programs.ts):
 *  - "loop": bpf_loop() (Linux 5.17) with a callback, whose address is an
 *    ld_imm64 of a pseudo function (BPF_PSEUDO_FUNC, Linux 5.13). Kernels
 *    before 5.13 reject that instruction before verifying anything, even in a
 *    branch CO-RE would remove, so the variant holds no other path;
 *  - "bounded" (EBPFMON_BOUNDED_LOOP=1): a bounded loop (Linux 5.3) of
 *    BATCH_UNROLLED visits per fire, for kernels without bpf_loop.
 */
#ifndef EBPFMON_BOUNDED_LOOP
#define EBPFMON_BOUNDED_LOOP 0
#endif

/* Objects visited in one fire: bounded so that one fire never holds the CPU long. */
#define BATCH_LOOP 65536  /* with bpf_loop() (Linux 5.17+); the ring buffer bounds a fire too */
#define BATCH_UNROLLED 32 /* a bounded loop for older kernels (Linux 5.3+) */

enum walk_status {
	WALK_GOING = 0,
	WALK_DONE = 1,
	WALK_FAILED = 2,
};

struct walk_state {
	__u64 run_id;
	__u64 start;   /* object (or list head) where the walk closes */
	__u64 cursor;  /* next object to visit */
	__u32 visited; /* objects visited in this run */
	__u32 limit;   /* objects to visit at most */
	__u32 bounded; /* 1 when limit is the safety bound rather than the IDS's request */
	__u32 status;  /* enum walk_status */
};

struct walk_state state = {};

/* Starts a new run when the agent's run_id changed; returns 1 for a new run. */
static __always_inline int walk_begin(__u64 run_id, __u64 start, __u64 first, __u32 limit,
				      __u32 max_objects)
{
	if (state.run_id == run_id)
		return 0;
	state.run_id = run_id;
	state.start = start;
	state.cursor = first;
	state.visited = 0;
	state.bounded = limit > max_objects;
	state.limit = state.bounded ? max_objects : limit;
	state.status = WALK_GOING;
	return 1;
}

/* Ends a visit that found a fault (the FAULT record is emitted here). */
static __always_inline long walk_fail(__u64 addr, __s64 code)
{
	emit(REC_FAULT, addr, code);
	state.status = WALK_FAILED;
	return 1;
}

/*
 * Checks what every visit checks first: the limit, the room in the ring buffer and
 * loops. Returns 1 when the visit must not go on (the walk stopped or pauses).
 */
static __always_inline long walk_visit_blocked(__u64 room_needed)
{
	if (state.visited >= state.limit) {
		if (state.bounded)
			return walk_fail(state.cursor, -FAULT_LOOP_BOUND);
		state.status = WALK_DONE;
		return 1;
	}
	if (ring_room() < room_needed)
		return 1; /* pause: the agent drains the ring and fires again */
	if (visit_once(state.cursor, state.run_id))
		return walk_fail(state.cursor, -FAULT_CYCLE);
	return 0;
}

/* Moves the cursor to the next object, or ends the walk when the list closed. */
static __always_inline long walk_advance(__u64 next)
{
	state.visited++;
	if (next == state.start) {
		state.status = WALK_DONE;
		return 1;
	}
	state.cursor = next;
	return 0;
}

/* Runs one batch of visits and writes the closing record of this fire. */
static __always_inline void walk_batch(long (*visit)(__u32 index, void *ctx))
{
	if (state.status == WALK_GOING) {
#if EBPFMON_BOUNDED_LOOP
		int i;

		for (i = 0; i < BATCH_UNROLLED; i++)
			if (visit(i, NULL))
				break;
#else
		bpf_loop(BATCH_LOOP, visit, NULL, 0);
#endif
	}
	if (state.status == WALK_DONE)
		emit(REC_END, 0, state.visited);
	else if (state.status == WALK_GOING)
		emit(REC_MORE, state.cursor, state.visited);
}

#endif

/* A task_struct shaped like Linux 5.13 and older: the state member is "volatile long state". */
#include "kernel_common.h"

struct task_struct {
	struct {
		unsigned long flags;
	} thread_info;
	volatile long state;
	void *stack;
	unsigned int flags;
	unsigned int ptrace;
	/* Bitfields, as in the kernel (sched_reset_on_fork...): exercises kind_flag encoding. */
	unsigned sched_reset_on_fork : 1;
	unsigned sched_contributes_to_load : 1;
	unsigned sched_migrated : 3;
	struct list_head tasks;
	struct mm_struct *mm;
	int exit_state;
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct task_struct *parent;
	struct list_head children;
	struct task_struct *group_leader;
	const struct cred *real_cred;
	const struct cred *cred;
	char comm[16];
	/* An anonymous union with an anonymous struct inside. */
	union {
		unsigned long utime;
		struct {
			unsigned int stime_lo;
			unsigned int stime_hi;
		};
	};
};

struct task_struct init_task;
struct cred init_cred;

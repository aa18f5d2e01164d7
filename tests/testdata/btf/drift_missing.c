/* A task_struct missing "tasks" and with neither state nor __state: the profile must refuse it. */
#include "kernel_common.h"

struct task_struct {
	unsigned int flags;
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *real_cred;
	const struct cred *cred;
	char comm[16];
};

struct task_struct init_task;
struct cred init_cred;
struct list_head some_list;

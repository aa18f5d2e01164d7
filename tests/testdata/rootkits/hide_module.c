// SPDX-License-Identifier: GPL-2.0
/*
 * hide_module: a rootkit fixture that hides itself from the kernel's module
 * list. On load it unlinks THIS_MODULE->list from the `modules` list (what
 * /proc/modules, lsmod and a module-list walk read) while its kobject stays in
 * the module kset, so /sys/module/hide_module still exists: the sysfs kset
 * minus the module list is the detection.
 *
 * Parameter:
 *   module_mutex=  address of the kernel's module_mutex (not exported; the test
 *                  reads it from /proc/kallsyms). Writers of the module list
 *                  hold it; readers use RCU, hence list_del_rcu.
 *
 * The module cannot be unloaded afterwards (delete_module finds modules by
 * walking the list it is no longer on), as with a real rootkit; the guest is
 * thrown away after the test. Its list entry is re-initialised after an RCU
 * grace period so that nothing can trip over poisoned pointers.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rculist.h>
#include "fixture.h"

/*
 * Named apart from the kernel's own: linux/module.h declares module_mutex
 * before 5.12 (it was unexported and made static then).
 */
static unsigned long module_mutex_addr;
module_param_named(module_mutex, module_mutex_addr, ulong, 0400);
MODULE_PARM_DESC(module_mutex, "address of module_mutex from /proc/kallsyms");

static int __init hide_module_init(void)
{
	struct mutex *lock = (struct mutex *)module_mutex_addr;
	struct list_head *prev, *next;
	int err;

	err = fixture_check_symbol(module_mutex_addr, "module_mutex", NULL);
	if (err)
		return err;

	mutex_lock(lock);
	prev = THIS_MODULE->list.prev;
	next = THIS_MODULE->list.next;
	list_del_rcu(&THIS_MODULE->list);
	mutex_unlock(lock);
	/* Readers that were standing on our entry have moved on: make it a harmless singleton. */
	synchronize_rcu();
	INIT_LIST_HEAD(&THIS_MODULE->list);

	pr_info("hide_module: unlinked module %s (struct module at %px) from the module list between %px and %px; /sys/module/%s stays\n",
		THIS_MODULE->name, THIS_MODULE, prev, next, THIS_MODULE->name);
	return 0;
}
module_init(hide_module_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rootkit fixture: unlinks itself from the kernel's module list");

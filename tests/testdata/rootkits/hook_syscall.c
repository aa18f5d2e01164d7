// SPDX-License-Identifier: GPL-2.0
/*
 * hook_syscall: a rootkit fixture that diverts one system call to a function
 * of its own, which counts the call and forwards it to the original handler
 * (the guest keeps working). Two modes:
 *
 *   mode=table     replaces sys_call_table[nr] (the classic hook). Kernels that
 *                  dispatch through x64_sys_call() (6.9, backported to 6.6.26 and
 *                  to Debian's 6.1.0-56) no longer read the table for system calls,
 *                  so there the hook is present but never called (calls stays 0).
 *   mode=dispatch  patches the rel32 of the one direct call/jmp (e8/e9) inside
 *                  x64_sys_call() whose target is the handler, so that it goes to
 *                  the hook instead; refuses with -ENOENT when there is none or
 *                  more than one.
 *
 * Parameters (addresses from the guest's /proc/kallsyms: kallsyms_lookup_name
 * is not exported since 5.7; each is checked against its name before use):
 *   mode=        table (default) or dispatch
 *   nr=          the system call's number (table mode)
 *   table=       address of sys_call_table (table mode)
 *   dispatcher=  address of x64_sys_call (dispatch mode)
 *   target=      address of the handler __x64_sys_<name> (dispatch mode)
 *   calls        read-only: how many calls went through the hook
 *
 * Which system call: the test hooks syslog (103), whose only user in the guest
 * is busybox dmesg (klogctl), so the test triggers it at will and nothing the
 * guest depends on (init, the agent, the bed's shell) goes through it.
 *
 * Writes go through a temporary writable alias of the page (page frame from
 * lookup_address, mapped with vmap(PAGE_KERNEL)), not by clearing CR0.WP, and
 * run under stop_machine() so that no other CPU executes the bytes being
 * changed. The original is restored on unload.
 */
#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/stop_machine.h>
#include <linux/vmalloc.h>
#include <asm/pgtable_types.h>
#include <asm/ptrace.h>
#include "fixture.h"

typedef long (*syscall_fn)(const struct pt_regs *);

static char *mode = "table";
module_param(mode, charp, 0400);
MODULE_PARM_DESC(mode, "table (replace a sys_call_table entry) or dispatch (patch x64_sys_call)");
static int nr = -1;
module_param(nr, int, 0400);
MODULE_PARM_DESC(nr, "system call number (table mode)");
static unsigned long table;
module_param(table, ulong, 0400);
MODULE_PARM_DESC(table, "address of sys_call_table from /proc/kallsyms (table mode)");
static unsigned long dispatcher;
module_param(dispatcher, ulong, 0400);
MODULE_PARM_DESC(dispatcher, "address of x64_sys_call from /proc/kallsyms (dispatch mode)");
static unsigned long target;
module_param(target, ulong, 0400);
MODULE_PARM_DESC(target, "address of the __x64_sys_* handler from /proc/kallsyms (dispatch mode)");
static unsigned long calls;
module_param(calls, ulong, 0444);
MODULE_PARM_DESC(calls, "calls that went through the hook");

static syscall_fn original;
/* What was patched, for the restore: an 8-byte table entry or a 4-byte rel32. */
static void *patched_at;
static size_t patched_len;
static u8 saved[8];

/* Calls inside the hook right now: unload waits for them (syslog can sleep). */
static atomic_t inflight = ATOMIC_INIT(0);

static long hook(const struct pt_regs *regs)
{
	long ret;

	atomic_inc(&inflight);
	WRITE_ONCE(calls, READ_ONCE(calls) + 1);
	ret = original(regs);
	atomic_dec(&inflight);
	return ret;
}

/* The struct page behind a kernel virtual address (text and rodata may sit in 2 MiB pages). */
static struct page *kernel_page(unsigned long addr)
{
	unsigned int level;
	pte_t *pte = lookup_address(addr, &level);
	unsigned long pfn;

	if (!pte || !pte_present(*pte))
		return NULL;
	switch (level) {
	case PG_LEVEL_4K:
		pfn = pte_pfn(*pte);
		break;
	case PG_LEVEL_2M:
		pfn = pmd_pfn(*(pmd_t *)pte) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		break;
	case PG_LEVEL_1G:
		pfn = pud_pfn(*(pud_t *)pte) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
		break;
	default:
		return NULL;
	}
	return pfn_to_page(pfn);
}

/* A writable alias of the patched bytes, mapped at load and kept so that the restore cannot fail. */
static void *alias_map;
static u8 *alias;

/* Maps the @len bytes at read-only kernel address @addr writable (sets alias_map and alias). */
static int map_writable(void *addr, size_t len)
{
	unsigned long start = (unsigned long)addr;
	struct page *pages[2];
	unsigned int count = ((start + len - 1) >> PAGE_SHIFT) - (start >> PAGE_SHIFT) + 1;
	unsigned int i;

	for (i = 0; i < count; i++) {
		pages[i] = kernel_page((start & PAGE_MASK) + i * PAGE_SIZE);
		if (!pages[i]) {
			pr_err("hook_syscall: cannot find the page behind %px\n", addr);
			return -EFAULT;
		}
	}
	alias_map = vmap(pages, count, VM_MAP, PAGE_KERNEL);
	if (!alias_map) {
		pr_err("hook_syscall: cannot map the page behind %px writable\n", addr);
		return -ENOMEM;
	}
	alias = (u8 *)alias_map + offset_in_page(start);
	return 0;
}

struct poke {
	const void *bytes;
	size_t len;
};

static int poke_stopped(void *data)
{
	struct poke *p = data;

	memcpy(alias, p->bytes, p->len);
	return 0;
}

/* Writes @len bytes through the alias while every other CPU is stopped. */
static int poke(const void *bytes, size_t len)
{
	struct poke p = { .bytes = bytes, .len = len };

	return stop_machine(poke_stopped, &p, NULL);
}

/* Maps @addr writable and writes @len bytes there; remembers what to restore. */
static int patch(void *addr, const void *bytes, size_t len)
{
	int err = map_writable(addr, len);

	if (err)
		return err;
	memcpy(saved, addr, len);
	err = poke(bytes, len);
	if (err) {
		vunmap(alias_map);
		return err;
	}
	patched_at = addr;
	patched_len = len;
	return 0;
}

static int hook_table(void)
{
	unsigned long size;
	syscall_fn *entry;
	syscall_fn replacement = hook;
	int err = fixture_check_symbol(table, "sys_call_table", &size);

	if (err)
		return err;
	if (nr < 0 || (nr + 1) * sizeof(syscall_fn) > size) {
		pr_err("hook_syscall: system call %d is outside sys_call_table (%lu entries)\n", nr,
		       size / sizeof(syscall_fn));
		return -EINVAL;
	}
	entry = (syscall_fn *)table + nr;
	original = READ_ONCE(*entry);
	err = patch(entry, &replacement, sizeof(replacement));
	if (err)
		return err;
	pr_info("hook_syscall: sys_call_table[%d] at %px: old %ps (%px), new %ps (%px), read back %px\n",
		nr, entry, original, original, hook, hook, READ_ONCE(*entry));
	return 0;
}

static int hook_dispatch(void)
{
	unsigned long size, off, dest;
	u8 *code = (u8 *)dispatcher, *site = NULL;
	unsigned int found = 0;
	s64 rel;
	s32 rel32;
	int err = fixture_check_symbol(dispatcher, "x64_sys_call", &size);

	if (err)
		return err;
	if (!target) {
		pr_err("hook_syscall: no address given for the handler (target=)\n");
		return -EINVAL;
	}
	for (off = 0; off + 5 <= size; off++) {
		s32 disp;

		if (code[off] != 0xe8 && code[off] != 0xe9)
			continue;
		memcpy(&disp, code + off + 1, sizeof(disp));
		if ((unsigned long)(code + off + 5) + (long)disp == target) {
			site = code + off;
			found++;
		}
	}
	if (found != 1) {
		pr_err("hook_syscall: x64_sys_call (%lu bytes at %px) has %u direct calls/jumps to %ps (%px), need exactly 1\n",
		       size, code, found, (void *)target, (void *)target);
		return -ENOENT;
	}
	/* Hidden from the optimiser, which would fold hook - 5 into one misleading relocation. */
	dest = (unsigned long)hook;
	OPTIMIZER_HIDE_VAR(dest);
	rel = (long)dest - (long)(site + 5);
	if (rel != (s32)rel) {
		pr_err("hook_syscall: the hook at %px is out of rel32 reach of %px\n", hook, site);
		return -ERANGE;
	}
	rel32 = (s32)rel;
	original = (syscall_fn)target;
	err = patch(site + 1, &rel32, sizeof(rel32));
	if (err)
		return err;
	pr_info("hook_syscall: x64_sys_call+%#lx at %px: %s %ps (%px) became %s %ps (%px), bytes now %5ph\n",
		(unsigned long)(site - code), site, site[0] == 0xe8 ? "call" : "jmp", original,
		original, site[0] == 0xe8 ? "call" : "jmp", hook, hook, site);
	return 0;
}

static int __init hook_syscall_init(void)
{
	if (strcmp(mode, "table") == 0)
		return hook_table();
	if (strcmp(mode, "dispatch") == 0)
		return hook_dispatch();
	pr_err("hook_syscall: unknown mode %s (table or dispatch)\n", mode);
	return -EINVAL;
}

static void __exit hook_syscall_exit(void)
{
	/* Cannot fail: the alias was mapped at load. */
	poke(saved, patched_len);
	vunmap(alias_map);
	/*
	 * New calls no longer reach the hook; wait for those still in it. (A task
	 * preempted between the patched jump and the atomic_inc is not counted:
	 * a window of a few instructions, accepted for a test fixture.)
	 */
	while (atomic_read(&inflight) > 0)
		msleep(10);
	pr_info("hook_syscall: restored %zu bytes at %px (%s mode) after %lu hooked calls, now %*ph\n",
		patched_len, patched_at, mode, READ_ONCE(calls), (int)patched_len, patched_at);
}
module_init(hook_syscall_init);
module_exit(hook_syscall_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rootkit fixture: diverts one system call (sys_call_table or x64_sys_call)");

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the rootkit fixtures: checks that an address handed in as a module
 * parameter (read by the test from the guest's /proc/kallsyms, since
 * kallsyms_lookup_name is not exported from 5.7 on) names the symbol the
 * fixture expects, so a wrong address fails the load instead of corrupting the
 * kernel.
 */
#ifndef FIXTURE_H
#define FIXTURE_H

#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/string.h>

/*
 * 0 when @addr is the start of the kernel symbol @name (sprint_symbol prints
 * "name+0x0/0xsize"); stores the symbol's size in @size when not NULL.
 */
static inline int fixture_check_symbol(unsigned long addr, const char *name, unsigned long *size)
{
	char buf[KSYM_SYMBOL_LEN];
	size_t len = strlen(name);
	const char *tail;

	if (!addr) {
		pr_err("%s: no address given for %s\n", KBUILD_MODNAME, name);
		return -EINVAL;
	}
	sprint_symbol(buf, addr);
	tail = buf + len;
	if (strncmp(buf, name, len) != 0 || strncmp(tail, "+0x0/0x", 7) != 0) {
		pr_err("%s: %px is %s, not the start of %s\n", KBUILD_MODNAME, (void *)addr, buf,
		       name);
		return -EINVAL;
	}
	if (size && kstrtoul(tail + 7, 16, size) != 0) {
		pr_err("%s: cannot read the size of %s from %s\n", KBUILD_MODNAME, name, buf);
		return -EINVAL;
	}
	return 0;
}

#endif

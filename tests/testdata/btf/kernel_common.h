/* Kernel-shaped types shared by the BTF fixtures (layouts simplified, names as in the kernel). */
#ifndef KERNEL_COMMON_H
#define KERNEL_COMMON_H

typedef unsigned int __kernel_uid32_t;
typedef unsigned int __kernel_gid32_t;
typedef __kernel_uid32_t uid_t;
typedef __kernel_gid32_t gid_t;
typedef int pid_t;

struct list_head {
	struct list_head *next, *prev;
};

typedef struct {
	uid_t val;
} kuid_t;

typedef struct {
	gid_t val;
} kgid_t;

struct cred {
	int usage;
	kuid_t uid;
	kgid_t gid;
	kuid_t suid;
	kgid_t sgid;
	kuid_t euid;
	kgid_t egid;
	unsigned securebits;
};

struct mm_struct;

enum module_state {
	MODULE_STATE_LIVE,
	MODULE_STATE_COMING,
	MODULE_STATE_GOING,
	MODULE_STATE_UNFORMED,
};

#define MODULE_NAME_LEN (64 - sizeof(unsigned long))

#endif

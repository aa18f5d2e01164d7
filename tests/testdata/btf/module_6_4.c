/* Linux 6.4+: struct module with mem[MOD_MEM_NUM_TYPES] of struct module_memory, plus a
 * 5.14+ task_struct. */
#include "task_5_14.c"

enum mod_mem_type {
	MOD_TEXT = 0,
	MOD_DATA,
	MOD_RODATA,
	MOD_RO_AFTER_INIT,
	MOD_INIT_TEXT,
	MOD_INIT_DATA,
	MOD_INIT_RODATA,
	MOD_MEM_NUM_TYPES,
	MOD_INVALID = -1,
};

struct module_memory {
	void *base;
	_Bool is_rox;
	unsigned int size;
};

struct module {
	enum module_state state;
	struct list_head list;
	char name[MODULE_NAME_LEN];
	/* Members in anonymous unions, as the kernel's randstruct/ABI padding produces. */
	union {
		struct {
			const char *version;
			const char *srcversion;
		};
		unsigned long abi_padding[2];
	};
	int (*init)(void);
	struct module_memory mem[MOD_MEM_NUM_TYPES];
	unsigned int taints;
};

struct module __this_module;
enum mod_mem_type mod_mem_type_used;

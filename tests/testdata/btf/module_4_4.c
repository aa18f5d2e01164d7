/* Before Linux 4.5: struct module with module_core/core_size/init_size. */
#include "task_5_13.c"

struct module {
	enum module_state state;
	struct list_head list;
	char name[MODULE_NAME_LEN];
	int (*init)(void);
	void *module_init;
	void *module_core;
	unsigned int init_size, core_size;
	unsigned int init_text_size, core_text_size;
};

struct module __this_module;

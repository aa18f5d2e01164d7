/* Linux 4.5 to 6.3: struct module with core_layout/init_layout of struct module_layout, plus a
 * 5.13-style task_struct (state). */
#include "task_5_13.c"

struct mod_tree_node {
	struct module *mod;
	void *node[3];
};

struct module_layout {
	void *base;
	unsigned int size;
	unsigned int text_size;
	unsigned int ro_size;
	unsigned int ro_after_init_size;
	struct mod_tree_node mtn;
};

struct module {
	enum module_state state;
	struct list_head list;
	char name[MODULE_NAME_LEN];
	const char *version;
	int (*init)(void);
	struct module_layout core_layout __attribute__((aligned(64)));
	struct module_layout init_layout;
	unsigned int taints;
};

struct module __this_module;

/* A kernel built without CONFIG_MODULES: no struct module in BTF; task_struct as on 5.14+. */
#include "task_5_14.c"

/* Every BTF kind clang 14 emits: int, ptr, array, struct, union, enum, fwd, typedef, volatile,
 * const, restrict, func, func_proto, var, datasec, float, decl_tag, type_tag. (enum64 needs
 * clang 15; the tests build that one by hand.) */
#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __user __attribute__((btf_type_tag("user")))

struct opaque;
typedef struct opaque opaque_t;

struct tagged {
	int counter __tag("counter");
	char __user *buffer;
	volatile unsigned long jiffies;
	const struct opaque *handle;
	opaque_t *typed_handle;
	double ratio;
	unsigned char bytes[3][5];
	enum { KIND_A = 1, KIND_B = 7 } anon_enum;
	union {
		int as_int;
		float as_float;
	} value;
} __tag("struct_tag");

typedef const volatile struct tagged cv_tagged_t;

struct tagged tagged_global;
cv_tagged_t *cv_pointer;
int *restrict restrict_pointer;

__attribute__((noinline)) int tagged_sum(struct tagged *t __tag("arg"), int n)
{
	return t->counter + n;
}

int use(void)
{
	return tagged_sum(&tagged_global, 1);
}

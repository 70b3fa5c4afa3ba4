/* libFuzzer target: kb_diff_mem on two inputs split from the fuzz data
 * (a 4-byte little-endian length of A, then A, then B), with small caps so
 * that spills to temporary files and the work limit are reached too.
 * Each side gets an exact-size copy (ASan sees reads past the end).
 * Invariants: an input compared with itself is identical; two different
 * inputs give at least one difference; both printers take every result. */
#include "verify/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char *copy(const uint8_t *p, size_t n)
{
	unsigned char *c = malloc(n ? n : 1);
	if (c && n)
		memcpy(c, p, n);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	size_t la = (size_t)(data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24);
	size -= 4;
	data += 4;
	if (la > size)
		la %= size + 1;
	unsigned char *a = copy(data, la), *b = copy(data + la, size - la);
	if (!a || !b)
		abort();
	kb_diff_opts o = {.max = 20, .mem_cap = 4096, .work_cap = 8u << 20};
	static FILE *null;
	if (!null && !(null = fopen("/dev/null", "w")))
		abort();
	kb_diff_list l;
	kb_err *err = kb_diff_mem(a, la, b, size - la, "fuzz", &o, &l);
	if (err) {
		kb_err_free(err);
	} else {
		int same = la == size - la && !memcmp(a, b, la);
		if (same != (!l.n && !l.more))
			abort(); /* identical iff no difference */
		kb_diff_print(&l, null);
		err = kb_diff_print_json(&l, null);
		if (err)
			abort();
		kb_diff_list_free(&l);
	}
	if (!kb_diff_mem(a, la, a, la, "self", &o, &l)) {
		if (l.n || l.more)
			abort(); /* a thing differs from itself */
		kb_diff_list_free(&l);
	}
	free(a);
	free(b);
	return 0;
}

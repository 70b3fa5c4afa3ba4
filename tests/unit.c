/* Unit tests for common/ and the store's pure parts. Prints one line per
 * check and a closing "N passed, N failed". */
#include "../store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, name)                                                  \
	do {                                                               \
		if (cond) {                                                \
			passed++;                                          \
			printf("ok   unit: %s\n", name);                    \
		} else {                                                   \
			failed++;                                          \
			printf("FAIL unit: %s (%s:%d)\n", name, __FILE__, __LINE__); \
		}                                                          \
	} while (0)

static void test_sha(void)
{
	kb_hash h;
	char hex[KB_HEX_LEN + 1];
	kb_sha256("abc", 3, &h);
	kb_hash_hex(&h, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	      "sha256(abc) matches FIPS 180-2");
	kb_hash p;
	CHECK(kb_hash_parse(hex, 64, &p) == 0 && kb_hash_eq(&p, &h), "hex round-trips");
	CHECK(kb_hash_parse("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 64, &p) != 0,
	      "uppercase hex refused");
	CHECK(kb_hash_parse(hex, 63, &p) != 0, "short hex refused");
	kb_sha *c = kb_sha_new();
	kb_sha_update(c, "a", 1);
	kb_sha_update(c, "bc", 2);
	kb_hash h2;
	kb_sha_final(c, &h2);
	kb_sha_free(c);
	CHECK(kb_hash_eq(&h, &h2), "streaming hash equals one-shot");
}

static void test_hset(void)
{
	kb_hset *s = kb_hset_new();
	int ok = 1;
	for (int i = 0; i < 5000; i++) {
		kb_hash h;
		kb_sha256(&i, sizeof i, &h);
		ok &= kb_hset_add(s, &h) == 1;
	}
	for (int i = 0; i < 5000; i++) {
		kb_hash h;
		kb_sha256(&i, sizeof i, &h);
		ok &= kb_hset_add(s, &h) == 0 && kb_hset_has(s, &h);
	}
	kb_hash miss;
	int j = -1;
	kb_sha256(&j, sizeof j, &miss);
	CHECK(ok && kb_hset_count(s) == 5000 && !kb_hset_has(s, &miss), "hash set adds, finds, grows");
	kb_hset_free(s);
}

static void test_tree(void)
{
	kb_tree_entry e[3] = {
		{KB_ENT_FILE, {{1}}, "b", 1},
		{KB_ENT_DIR, {{2}}, "a\n\xff", 3},
		{KB_ENT_EXEC, {{3}}, "a", 1},
	};
	kb_buf b = {0};
	kb_err *err = kb_tree_encode(e, 3, &b);
	CHECK(!err, "tree encodes");
	kb_tree t;
	err = kb_tree_decode(b.p, b.len, &t);
	CHECK(!err && t.n == 3 && t.e[0].namelen == 1 && t.e[0].name[0] == 'a' &&
		      t.e[1].namelen == 3 && t.e[2].name[0] == 'b' && t.e[1].type == KB_ENT_DIR,
	      "tree decodes sorted, with a non-UTF-8 name containing a newline");
	if (!err)
		kb_tree_free(&t);
	/* any single flipped byte in the structure must be caught or change meaning */
	char *bad = kb_strndup(b.p, b.len);
	bad[14] = 'q';
	err = kb_tree_decode(bad, b.len, &t);
	CHECK(err != NULL, "unknown entry type refused");
	kb_err_free(err);
	free(bad);
	err = kb_tree_decode(b.p, b.len - 1, &t);
	CHECK(err != NULL, "tree without final NUL refused");
	kb_err_free(err);
	kb_buf_free(&b);

	kb_tree_entry dup[2] = {{KB_ENT_FILE, {{1}}, "x", 1}, {KB_ENT_FILE, {{2}}, "x", 1}};
	err = kb_tree_encode(dup, 2, &b);
	CHECK(err != NULL, "duplicate names refused");
	kb_err_free(err);
	kb_buf_free(&b);
	kb_tree_entry dots[1] = {{KB_ENT_FILE, {{1}}, "..", 2}};
	err = kb_tree_encode(dots, 1, &b);
	CHECK(err != NULL, "'..' refused as a name");
	kb_err_free(err);
	kb_buf_free(&b);
	kb_tree_entry slash[1] = {{KB_ENT_FILE, {{1}}, "a/b", 3}};
	err = kb_tree_encode(slash, 1, &b);
	CHECK(err != NULL, "'/' inside a name refused");
	kb_err_free(err);
	kb_buf_free(&b);

	/* hand-made unsorted tree */
	const char *hx = "0000000000000000000000000000000000000000000000000000000000000000";
	char *unsorted = kb_asprintf("kbuild-tree 1\nf %s b%cf %s a%c", hx, 0, hx, 0);
	size_t ulen = 14 + 2 * (2 + 64 + 1 + 2);
	err = kb_tree_decode(unsorted, ulen, &t);
	CHECK(err != NULL, "unsorted tree refused");
	kb_err_free(err);
	free(unsorted);
}

static void test_refnames(void)
{
	const char *good[] = {"a", "recipe/debian12-zfs", "x.y_z+1@2=3:4", NULL};
	const char *bad[] = {"", "/a", "a/", "a//b", "a/../b", "..", "a/.", ".hidden", "a b",
			     "a%b", NULL};
	int ok = 1;
	for (int i = 0; good[i]; i++) {
		kb_err *e = kb_ref_check_name(good[i]);
		ok &= e == NULL;
		kb_err_free(e);
	}
	CHECK(ok, "valid ref names accepted");
	ok = 1;
	for (int i = 0; bad[i]; i++) {
		kb_err *e = kb_ref_check_name(bad[i]);
		ok &= e != NULL && e->code == 2;
		kb_err_free(e);
	}
	CHECK(ok, "invalid ref names refused with a usage error");
}

static void test_misc(void)
{
	char *p = kb_abspath("/a/./b//c/../d");
	CHECK(!strcmp(p, "/a/b/d"), "abspath cleans lexically");
	free(p);
	char *q = kb_quote("a\nb\\", 4);
	CHECK(!strcmp(q, "a\\x0ab\\x5c"), "quote escapes control bytes and backslash");
	free(q);
	kb_err *e = kb_err_wrap(kb_errf("inner %d", 1), "outer %s", "x");
	CHECK(!strcmp(e->msg, "outer x: inner 1") && e->code == 1, "errors wrap with context");
	kb_err_free(e);
	kb_oid o;
	e = kb_oid_parse("tree 0000000000000000000000000000000000000000000000000000000000000000", 69, &o);
	CHECK(!e && o.type == KB_TREE, "oid parses");
	kb_err_free(e);
	e = kb_oid_parse("dir 0000", 8, &o);
	CHECK(e != NULL, "bad oid refused");
	kb_err_free(e);
}

int main(void)
{
	test_sha();
	test_hset();
	test_tree();
	test_refnames();
	test_misc();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}

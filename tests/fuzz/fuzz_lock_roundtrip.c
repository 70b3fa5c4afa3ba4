/* libFuzzer target: lock files survive a round trip. For input that
 * kb_lock_parse accepts, kb_lock_write must produce a file that parses
 * back to the same recipe, entries and keys, and writing that again must
 * give the same bytes ("the same lock always serialises to the same
 * bytes"). The files go to a private directory under $TMPDIR (default
 * /tmp), removed at exit. */
#include "builder/recipe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[4096], path[4200];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

static void die(const char *what, kb_err *err)
{
	fprintf(stderr, "fuzz_lock_roundtrip: %s%s%s\n", what, err ? ": " : "",
		err ? err->msg : "");
	abort();
}

static void write_lock(const kb_lock *l, kb_buf *out)
{
	kb_err *err = kb_lock_write(l);
	if (err)
		die("kb_lock_write failed", err);
	out->len = 0;
	if ((err = kb_read_file(AT_FDCWD, path, 1u << 30, out)))
		die("cannot read back the written lock", err);
}

static const kb_lock_entry *same_entry(const kb_lock *l, const kb_lock_entry *e)
{
	const kb_lock_entry *f = kb_lock_find(l, e->kind, e->name);
	if (!f || f->nkv != e->nkv)
		return NULL;
	for (size_t j = 0; j < e->nkv; j++) {
		const char *v = kb_lock_get(f, e->kv[j].key);
		if (!v || strcmp(v, e->kv[j].value))
			return NULL;
	}
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/kbuild-fuzz-lock.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(dir))
			die("cannot make a temporary directory", NULL);
		snprintf(path, sizeof path, "%s/fuzz.lock", dir);
		atexit(cleanup);
	}
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	if (size)
		memcpy(text, data, size);
	kb_arena *a = kb_arena_new();
	kb_lock l;
	kb_err *err = kb_lock_parse(a, path, text, size, &l);
	if (err) {
		kb_err_free(err);
		goto out;
	}
	kb_buf one = {0}, two = {0};
	write_lock(&l, &one);
	kb_lock *back;
	int found;
	if ((err = kb_lock_read(path, &back, &found)) || !found)
		die("the written lock does not parse", err);
	if (strcmp(back->recipe, l.recipe) || back->n != l.n)
		die("the written lock has another recipe or entry count", NULL);
	for (size_t i = 0; i < l.n; i++)
		if (!same_entry(back, &l.e[i]))
			die("an entry changed on the way through kb_lock_write", NULL);
	write_lock(back, &two);
	if (one.len != two.len || memcmp(one.p, two.p, one.len))
		die("writing the lock again gave other bytes", NULL);
	kb_lock_free(back);
	kb_buf_free(&one);
	kb_buf_free(&two);
out:
	kb_arena_free(a);
	free(text);
	return 0;
}

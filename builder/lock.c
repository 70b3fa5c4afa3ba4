/* Lock files: a sorted, line-based text that pins every input.
 *
 *   # comment lines
 *   kbuild-lock 1
 *   recipe NAME
 *
 *   source recipes/NAME.recipe
 *     sha256 HEX
 *
 *   input KIND NAME
 *     KEY VALUE
 *
 * Entries are sorted (sources by path, then inputs by name) and so are the
 * keys inside them; values escape '\\', control and non-ASCII bytes as
 * \xNN. The same lock always serialises to the same bytes. */
#include "recipe.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_MAGIC "kbuild-lock 1"
#define LOCK_MAX (64u << 20)

static kb_err *lerr(const char *path, int line, const char *fmt, const char *arg)
{
	return kb_errf("%s:%d: %s%s%s; run 'kbuild lock' to write it again", path, line, fmt,
		       arg ? " " : "", arg ? arg : "");
}

static int key_ok(const char *k, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '-'))
			return 0;
	return 1;
}

/* undoes the escaping kb_quote does; -1 on a malformed escape */
static int unescape(kb_arena *a, const char *s, size_t n, const char **out)
{
	char *o = kb_arena_alloc(a, n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
				return -1;
			o[j++] = s[i];
			continue;
		}
		kb_hash h; /* two hex digits through the one strict hex parser */
		char hex[KB_HEX_LEN];
		if (i + 3 >= n || s[i + 1] != 'x')
			return -1;
		memset(hex, '0', sizeof hex);
		hex[0] = s[i + 2];
		hex[1] = s[i + 3];
		if (kb_hash_parse(hex, KB_HEX_LEN, &h))
			return -1;
		o[j++] = (char)h.b[0];
		i += 3;
	}
	o[j] = 0;
	*out = o;
	return 0;
}

kb_err *kb_lock_parse(kb_arena *a, const char *path, const char *text, size_t len, kb_lock *l)
{
	memset(l, 0, sizeof *l);
	l->a = a;
	l->path = kb_arena_strdup(a, path);
	size_t cap = 0, kvcap = 0;
	int line = 0, saw_magic = 0;
	kb_lock_entry *cur = NULL;
	if (memchr(text, 0, len))
		return kb_errf("%s: contains a NUL byte; run 'kbuild lock' to write it again", path);
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return lerr(path, line + 1, "the last line has no newline (truncated?)", NULL);
		line++;
		size_t n = (size_t)(nl - p);
		const char *s = p;
		p = nl + 1;
		if (n == 0 || s[0] == '#')
			continue;
		if (!saw_magic) {
			if (n != strlen(LOCK_MAGIC) || memcmp(s, LOCK_MAGIC, n))
				return lerr(path, line, "not a kbuild lock file (expected '" LOCK_MAGIC
							"' first)", NULL);
			saw_magic = 1;
			continue;
		}
		if (s[0] == ' ') {
			if (!cur)
				return lerr(path, line, "indented line outside an entry", NULL);
			if (n < 3 || s[1] != ' ' || s[2] == ' ')
				return lerr(path, line, "expected '  key value'", NULL);
			const char *k = s + 2, *sp = memchr(k, ' ', n - 2);
			if (!sp || !key_ok(k, (size_t)(sp - k)))
				return lerr(path, line, "expected '  key value'", NULL);
			const char *v;
			if (unescape(a, sp + 1, (size_t)(s + n - sp - 1), &v))
				return lerr(path, line, "malformed escape in value", NULL);
			const char *key = kb_arena_strndup(a, k, (size_t)(sp - k));
			for (size_t i = 0; i < cur->nkv; i++)
				if (!strcmp(cur->kv[i].key, key))
					return lerr(path, line, "key given twice:", key);
			cur->kv = kb_arena_grow(a, cur->kv, cur->nkv, &kvcap, sizeof *cur->kv);
			cur->kv[cur->nkv++] = (kb_kv){key, v};
			continue;
		}
		char *ln = kb_arena_strndup(a, s, n);
		char *w1 = ln, *w2 = strchr(ln, ' '), *w3 = NULL;
		if (w2) {
			*w2++ = 0;
			w3 = strchr(w2, ' ');
			if (w3)
				*w3++ = 0;
		}
		if (!strcmp(w1, "recipe") && w2 && !w3 && !l->recipe && !l->n) {
			l->recipe = w2;
			continue;
		}
		const char *name;
		if (!strcmp(w1, "source") && w2) {
			if (w3) /* the path is the rest of the line: spaces are not escaped */
				w3[-1] = ' ';
			if (unescape(a, w2, strlen(w2), &name))
				return lerr(path, line, "malformed escape in source path", NULL);
		} else if (!strcmp(w1, "input") && w2 && w3 && !strchr(w3, ' ')) {
			name = w3;
		} else {
			char *q = kb_quote(ln, strlen(ln));
			kb_err *e = lerr(path, line, "expected 'source PATH' or 'input KIND NAME', "
						     "found:", q);
			free(q);
			return e;
		}
		for (size_t i = 0; i < l->n; i++)
			if (!strcmp(l->e[i].name, name) &&
			    !strcmp(l->e[i].kind, w1[0] == 's' ? "source" : w2))
				return lerr(path, line, "entry given twice:", name);
		l->e = kb_arena_grow(a, l->e, l->n, &cap, sizeof *l->e);
		cur = &l->e[l->n++];
		*cur = (kb_lock_entry){w1[0] == 's' ? "source" : w2, name, NULL, 0, line};
		kvcap = 0;
	}
	if (!saw_magic)
		return lerr(path, line ? line : 1, "empty or not a kbuild lock file", NULL);
	if (!l->recipe)
		return lerr(path, line, "no 'recipe NAME' line", NULL);
	return NULL;
}

kb_err *kb_lock_read(const char *path, kb_lock **out, int *found)
{
	kb_buf b = {0};
	*found = 0;
	*out = NULL;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return NULL;
	kb_err *err = kb_read_file(AT_FDCWD, path, LOCK_MAX, &b);
	if (!err) {
		kb_arena *a = kb_arena_new();
		kb_lock *l = kb_arena_alloc(a, sizeof *l);
		err = kb_lock_parse(a, path, b.p ? b.p : "", b.len, l);
		if (err)
			kb_arena_free(a);
		else {
			*out = l;
			*found = 1;
		}
	}
	kb_buf_free(&b);
	return err;
}

void kb_lock_free(kb_lock *l)
{
	if (l)
		kb_arena_free(l->a);
}

static int entry_rank(const kb_lock_entry *e) { return strcmp(e->kind, "source") != 0; }

static int entry_cmp(const void *x, const void *y)
{
	const kb_lock_entry *a = x, *b = y;
	int r = entry_rank(a) - entry_rank(b);
	return r ? r : strcmp(a->name, b->name);
}

static int kv_cmp(const void *x, const void *y)
{
	return strcmp(((const kb_kv *)x)->key, ((const kb_kv *)y)->key);
}

static void put_escaped(kb_buf *b, const char *s)
{
	char *q = kb_quote(s, strlen(s));
	kb_buf_adds(b, q);
	free(q);
}

kb_err *kb_lock_write(const kb_lock *l)
{
	kb_lock_entry *e = kb_malloc((l->n ? l->n : 1) * sizeof *e);
	if (l->n) /* l->e is NULL when there are none */
		memcpy(e, l->e, l->n * sizeof *e);
	if (l->n > 1)
		qsort(e, l->n, sizeof *e, entry_cmp);
	kb_buf b = {0};
	kb_buf_addf(&b, "# kbuild lock file, written by 'kbuild lock %s'; do not edit.\n"
			LOCK_MAGIC "\nrecipe %s\n", l->recipe, l->recipe);
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(e[i].kind, "source")) {
			kb_buf_adds(&b, "\nsource ");
			put_escaped(&b, e[i].name);
		} else {
			kb_buf_addf(&b, "\ninput %s %s", e[i].kind, e[i].name);
		}
		kb_buf_addc(&b, '\n');
		kb_kv *kv = kb_malloc((e[i].nkv ? e[i].nkv : 1) * sizeof *kv);
		if (e[i].nkv)
			memcpy(kv, e[i].kv, e[i].nkv * sizeof *kv);
		if (e[i].nkv > 1)
			qsort(kv, e[i].nkv, sizeof *kv, kv_cmp);
		for (size_t j = 0; j < e[i].nkv; j++) {
			kb_buf_addf(&b, "  %s ", kv[j].key);
			put_escaped(&b, kv[j].value);
			kb_buf_addc(&b, '\n');
		}
		free(kv);
	}
	free(e);
	char *d = kb_strdup(l->path), *n = kb_strdup(l->path);
	int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	kb_err *err = dfd < 0 ? kb_errno(errno, "cannot open the directory of %s", l->path)
			      : kb_write_file_atomic(dfd, basename(n), b.p, b.len, 0644);
	if (dfd >= 0)
		close(dfd);
	free(d);
	free(n);
	kb_buf_free(&b);
	return err;
}

const kb_lock_entry *kb_lock_find(const kb_lock *l, const char *kind, const char *name)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (!strcmp(l->e[i].kind, kind) && !strcmp(l->e[i].name, name))
			return &l->e[i];
	return NULL;
}

const char *kb_lock_get(const kb_lock_entry *e, const char *key)
{
	for (size_t i = 0; e && i < e->nkv; i++)
		if (!strcmp(e->kv[i].key, key))
			return e->kv[i].value;
	return NULL;
}

int kb_lock_child(const kb_lock_entry *e, const char *root)
{
	size_t n = strlen(root);
	return !strcmp(e->kind, "package") && !strncmp(e->name, root, n) && e->name[n] == '/';
}

/* Trees: the canonical encoding of a directory, and decoding it strictly.
 *
 *   "kbuild-tree 1\n"
 *   then per entry, sorted by name (bytewise; a prefix sorts first):
 *   TYPE ' ' HEX64 ' ' NAME '\0'
 *
 * TYPE is f (file), x (executable file), l (symlink; the blob is its
 * target) or d (directory; the hash names a tree). NAME is any bytes but
 * '/' and NUL, never empty, "." or "..". Nothing else — times, owners,
 * permission bits beyond x, umask — enters the encoding. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

kb_objtype kb_enttype_objtype(kb_enttype t) { return t == KB_ENT_DIR ? KB_TREE : KB_BLOB; }

static int name_ok(const char *p, size_t n)
{
	if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return 0;
	return memchr(p, '/', n) == NULL && memchr(p, 0, n) == NULL;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

static int ent_cmp(const void *x, const void *y)
{
	const kb_tree_entry *a = x, *b = y;
	return name_cmp(a->name, a->namelen, b->name, b->namelen);
}

static int type_ok(int c)
{
	return c == KB_ENT_FILE || c == KB_ENT_EXEC || c == KB_ENT_LINK || c == KB_ENT_DIR;
}

kb_err *kb_tree_encode(kb_tree_entry *e, size_t n, kb_buf *out)
{
	if (n > 1)
		qsort(e, n, sizeof *e, ent_cmp);
	kb_buf_add(out, TREE_MAGIC, TREE_MAGIC_LEN);
	for (size_t i = 0; i < n; i++) {
		if (!name_ok(e[i].name, e[i].namelen) || !type_ok(e[i].type)) {
			char *q = kb_quote(e[i].name, e[i].namelen);
			kb_err *err = kb_errf("cannot store a directory entry named '%s'", q);
			free(q);
			return err;
		}
		if (i && !ent_cmp(&e[i - 1], &e[i])) {
			char *q = kb_quote(e[i].name, e[i].namelen);
			kb_err *err = kb_errf("two directory entries are named '%s'", q);
			free(q);
			return err;
		}
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&e[i].hash, hex);
		kb_buf_addc(out, (char)e[i].type);
		kb_buf_addc(out, ' ');
		kb_buf_add(out, hex, KB_HEX_LEN);
		kb_buf_addc(out, ' ');
		kb_buf_add(out, e[i].name, e[i].namelen);
		kb_buf_addc(out, 0);
	}
	return NULL;
}

kb_err *kb_tree_decode(const char *p, size_t n, kb_tree *t)
{
	memset(t, 0, sizeof *t);
	if (n < TREE_MAGIC_LEN || memcmp(p, TREE_MAGIC, TREE_MAGIC_LEN))
		return kb_errf("not a tree: it does not start with 'kbuild-tree 1'");
	size_t cap = 0;
	t->data = kb_malloc(n + 1);
	memcpy(t->data, p, n);
	const char *c = t->data + TREE_MAGIC_LEN, *end = t->data + n;
	while (c < end) {
		size_t off = (size_t)(c - t->data);
		if (end - c < 3 + KB_HEX_LEN + 2 || !type_ok(c[0]) || c[1] != ' ' ||
		    c[2 + KB_HEX_LEN] != ' ')
			goto bad;
		kb_tree_entry e = {.type = (kb_enttype)c[0]};
		if (kb_hash_parse(c + 2, KB_HEX_LEN, &e.hash))
			goto bad;
		e.name = c + 3 + KB_HEX_LEN;
		const char *nul = memchr(e.name, 0, (size_t)(end - e.name));
		if (!nul)
			goto bad;
		e.namelen = (size_t)(nul - e.name);
		if (!name_ok(e.name, e.namelen))
			goto bad;
		if (t->n && ent_cmp(&t->e[t->n - 1], &e) >= 0) {
			kb_tree_free(t);
			return kb_errf("malformed tree: entries not strictly sorted at byte %zu", off);
		}
		if (t->n == cap) {
			cap = cap ? cap * 2 : 16;
			t->e = kb_realloc(t->e, cap * sizeof *t->e);
		}
		t->e[t->n++] = e;
		c = nul + 1;
		continue;
	bad:
		kb_tree_free(t);
		return kb_errf("malformed tree: bad entry at byte %zu", off);
	}
	return NULL;
}

void kb_tree_free(kb_tree *t)
{
	free(t->e);
	free(t->data);
	memset(t, 0, sizeof *t);
}

kb_err *kb_store_read_tree(kb_store *s, const kb_hash *h, kb_tree *out)
{
	kb_buf b = {0};
	kb_err *err = kb_store_read(s, h, (size_t)1 << 30, &b);
	if (!err)
		err = kb_tree_decode(b.p, b.len, out);
	kb_buf_free(&b);
	if (err) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(h, hex);
		return kb_err_wrap(err, "tree %s", hex);
	}
	return NULL;
}

kb_err *kb_txn_add_tree(kb_txn *t, kb_tree_entry *e, size_t n, kb_hash *out)
{
	kb_buf b = {0};
	kb_err *err = kb_tree_encode(e, n, &b);
	if (!err)
		err = kb_txn_add_bytes(t, b.p, b.len, 0, out);
	kb_buf_free(&b);
	return err;
}

static kb_err *walk(kb_store *s, const kb_hash *tree, kb_buf *path, int depth, kb_tree_fn fn,
		    void *ctx)
{
	if (depth > KB_TREE_MAX_DEPTH)
		return kb_errf("directory '/%s' is nested more than %d levels deep", path->p,
			       KB_TREE_MAX_DEPTH);
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(s, tree, &t);
	if (err)
		return kb_err_wrap(err, "cannot read directory '/%s'", depth ? path->p : "");
	size_t base = path->len;
	for (size_t i = 0; !err && i < t.n; i++) {
		const kb_tree_entry *e = &t.e[i];
		path->len = base;
		if (base)
			kb_buf_addc(path, '/');
		kb_buf_add(path, e->name, e->namelen);
		kb_buf_addc(path, 0);
		path->len--;
		err = fn(ctx, path->p, depth, e);
		if (!err && e->type == KB_ENT_DIR)
			err = walk(s, &e->hash, path, depth + 1, fn, ctx);
	}
	path->len = base;
	kb_tree_free(&t);
	return err;
}

kb_err *kb_tree_walk(kb_store *s, const kb_hash *tree, kb_tree_fn fn, void *ctx)
{
	kb_buf path = {0};
	kb_err *err = walk(s, tree, &path, 0, fn, ctx);
	kb_buf_free(&path);
	return err;
}

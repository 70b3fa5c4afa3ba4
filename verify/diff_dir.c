/* Directories on disk and store trees (or one of each), entry by entry:
 * presence, type, mode (the executable bit where one side is a store
 * tree, which keeps only that), symlink targets and content. Times and
 * owners of files on disk are not compared: they are not part of what a
 * build ships, and a checkout has fresh ones. A member's path is one
 * element relative to the compared roots ("usr/bin/x"). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINK_MAX_LEN 4096

typedef struct {
	char *name;
	char type; /* 'f' file, 'l' symlink, 'd' directory, 'o' other */
	int perm;  /* permission bits, -1 for a store tree: only exec */
	int exec;
	char *target;
	kb_hash hash; /* store */
} tent;

static void ents_free(tent *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].target);
	}
	free(e);
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const tent *)x)->name, ((const tent *)y)->name);
}

static kb_err *list_disk(int dirfd, tent **out, size_t *n)
{
	DIR *d;
	kb_err *err = kb_opendir_at(dirfd, ".", &d);
	if (err)
		return err;
	tent *v = NULL;
	size_t cap = 0;
	*n = 0;
	struct dirent *de;
	while (!err && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			err = kb_errno(errno, "cannot stat %s", de->d_name);
			break;
		}
		if (*n == cap)
			v = kb_realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
		tent *t = &v[(*n)++];
		memset(t, 0, sizeof *t);
		t->name = kb_strdup(de->d_name);
		t->perm = (int)(st.st_mode & 07777);
		t->exec = !!(st.st_mode & S_IXUSR);
		t->type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd'
						: S_ISLNK(st.st_mode) ? 'l' : 'o';
		if (t->type == 'l') {
			char buf[LINK_MAX_LEN + 1];
			ssize_t r = readlinkat(dirfd, de->d_name, buf, LINK_MAX_LEN);
			if (r < 0) {
				err = kb_errno(errno, "cannot read the symlink %s", de->d_name);
				break;
			}
			t->target = kb_quote(buf, (size_t)r);
		}
	}
	if (!err && errno)
		err = kb_errno(errno, "cannot list a directory");
	closedir(d);
	if (err) {
		ents_free(v, *n);
		return err;
	}
	qsort(v, *n, sizeof *v, by_name);
	*out = v;
	return NULL;
}

static kb_err *list_store(kb_store *s, const kb_hash *h, tent **out, size_t *n)
{
	kb_tree t;
	kb_err *err = kb_store_read_tree(s, h, &t);
	if (err)
		return err;
	tent *v = kb_calloc(t.n + 1, sizeof *v);
	for (size_t i = 0; i < t.n && !err; i++) {
		const kb_tree_entry *e = &t.e[i];
		v[i].name = kb_strndup(e->name, e->namelen);
		v[i].perm = -1;
		v[i].hash = e->hash;
		v[i].exec = e->type == KB_ENT_EXEC;
		v[i].type = e->type == KB_ENT_DIR ? 'd' : e->type == KB_ENT_LINK ? 'l' : 'f';
		if (e->type == KB_ENT_LINK) {
			kb_buf b = {0};
			if (!(err = kb_store_read(s, &e->hash, LINK_MAX_LEN, &b)))
				v[i].target = kb_quote(b.p ? b.p : "", b.len);
			kb_buf_free(&b);
		}
	}
	*n = t.n;
	kb_tree_free(&t);
	if (err) {
		ents_free(v, *n);
		return err;
	}
	/* a tree is sorted bytewise already */
	*out = v;
	return NULL;
}

static kb_err *list(const dtree *t, tent **out, size_t *n)
{
	return t->s ? list_store(t->s, &t->tree, out, n) : list_disk(t->dirfd, out, n);
}

static const char *type_name(char t)
{
	return t == 'f' ? "file" : t == 'd' ? "directory" : t == 'l' ? "symlink" : "special file";
}

static kb_err *open_file(const dtree *t, const tent *e, dsrc *out)
{
	if (t->s)
		return ds_open_object(t->s, &e->hash, out);
	memset(out, 0, sizeof *out);
	int fd = openat(t->dirfd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return kb_errno(errno, "cannot open %s", e->name);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kb_err *err = kb_errno(errno, "cannot stat %s", e->name);
		close(fd);
		return err;
	}
	out->fd = fd;
	out->own_fd = 1;
	out->size = (uint64_t)st.st_size;
	return NULL;
}

static kb_err *open_dir(const dtree *t, const tent *e, dtree *out)
{
	*out = *t;
	if (t->s) {
		out->tree = e->hash;
		return NULL;
	}
	out->dirfd = openat(t->dirfd, e->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (out->dirfd < 0)
		return kb_errno(errno, "cannot open the directory %s", e->name);
	return NULL;
}

static kb_err *walk(dctx *c, const dtree *a, const dtree *b, const char *prefix);

static kb_err *cmp_entry(dctx *c, const dtree *a, const dtree *b, const tent *x, const tent *y,
			 const char *rel)
{
	if (x->type != y->type) {
		d_report(c, rel, "type", NULL, "A is a %s, B is a %s", type_name(x->type),
			 type_name(y->type));
		return NULL;
	}
	if (x->perm >= 0 && y->perm >= 0 && x->perm != y->perm && x->type != 'l')
		d_report(c, rel, "mode", NULL, "mode %04o vs %04o", (unsigned)x->perm,
			 (unsigned)y->perm);
	else if ((x->perm < 0 || y->perm < 0) && x->type == 'f' && x->exec != y->exec)
		d_report(c, rel, "mode", NULL, "%s vs %s", x->exec ? "executable" : "not executable",
			 y->exec ? "executable" : "not executable");
	if (x->type == 'l') {
		if (strcmp(x->target, y->target))
			d_report(c, rel, "symlink", NULL, "symlink target %s vs %s", x->target,
				 y->target);
		return NULL;
	}
	if (x->type == 'd') {
		dtree da, db;
		kb_err *err = open_dir(a, x, &da);
		if (err)
			return kb_err_wrap(err, "A");
		if ((err = open_dir(b, y, &db))) {
			if (!a->s)
				close(da.dirfd);
			return kb_err_wrap(err, "B");
		}
		char *sub = kb_asprintf("%s/", rel);
		err = walk(c, &da, &db, sub);
		free(sub);
		if (!a->s)
			close(da.dirfd);
		if (!b->s)
			close(db.dirfd);
		return err;
	}
	if (x->type != 'f')
		return NULL;
	if (a->s && b->s && kb_hash_eq(&x->hash, &y->hash))
		return NULL;
	dsrc sa, sb;
	kb_err *err = open_file(a, x, &sa);
	if (err)
		return kb_err_wrap(err, "A");
	if ((err = open_file(b, y, &sb))) {
		ds_free(&sa);
		return kb_err_wrap(err, "B");
	}
	d_push(c, rel);
	err = d_node(c, x->name, &sa, &sb);
	d_pop(c);
	ds_free(&sa);
	ds_free(&sb);
	return err;
}

static kb_err *walk(dctx *c, const dtree *a, const dtree *b, const char *prefix)
{
	if (a->s && b->s && kb_hash_eq(&a->tree, &b->tree))
		return NULL;
	tent *ea = NULL, *eb = NULL;
	size_t na = 0, nb = 0;
	kb_err *err = list(a, &ea, &na);
	if (err)
		return kb_err_wrap(err, "A: %s", *prefix ? prefix : ".");
	if ((err = list(b, &eb, &nb))) {
		ents_free(ea, na);
		return kb_err_wrap(err, "B: %s", *prefix ? prefix : ".");
	}
	size_t i = 0, j = 0;
	while (!err && (i < na || j < nb)) {
		int r = i == na ? 1 : j == nb ? -1 : strcmp(ea[i].name, eb[j].name);
		const tent *t = r <= 0 ? &ea[i] : &eb[j];
		char *q = kb_quote(t->name, strlen(t->name));
		char *rel = kb_asprintf("%s%s", prefix, q);
		free(q);
		if (r < 0)
			d_report(c, rel, "only-in-a", NULL, "only in A (%s)", type_name(t->type));
		else if (r > 0)
			d_report(c, rel, "only-in-b", NULL, "only in B (%s)", type_name(t->type));
		else
			err = cmp_entry(c, a, b, &ea[i], &eb[j], rel);
		free(rel);
		if (r <= 0)
			i++;
		if (r >= 0)
			j++;
	}
	ents_free(ea, na);
	ents_free(eb, nb);
	return err;
}

kb_err *d_tree(dctx *c, const dtree *a, const dtree *b)
{
	return walk(c, a, b, "");
}

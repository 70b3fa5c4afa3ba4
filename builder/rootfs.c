/* Build roots: the tree under construction, where each package's entries
 * land, the fixups, and the action cache (see rootfs.h).
 *
 * Where an entry lands. The root starts as Debian bookworm's merged-/usr
 * layout: usr/bin, usr/sbin, usr/lib, usr/lib64 and the links bin, sbin,
 * lib, lib64 -> usr/...; lib32 and libx32 -> usr/... are made when a
 * package first ships something below them. An entry's parent path is
 * walked from the root: a missing directory is made; a layout link is
 * followed to its usr/ directory; any other symlink, or a file, in the
 * way refuses the entry (writing through a package's symlink could write
 * anywhere, and a relative link like "a -> ../../.." leads out of the
 * root). Then, at the entry's own name:
 *   directory: made if absent; an existing directory or layout link is
 *     kept (a package's "bin/" keeps the link);
 *   file: made if absent; the same content and x bit again is fine;
 *     anything else there is refused, naming both packages: dpkg would
 *     need Replaces: (and the root could not be the same for any order);
 *   symlink: made if absent; the same target again is fine (a layout
 *     link shipped as "bin -> usr/bin" too); anything else is refused.
 * Because nothing is ever replaced, the root is the same whatever the
 * order of the packages: the action-cache key sorts them.
 *
 * Maintainer scripts are not run. The fixups below reproduce what they
 * do that builds need, and nothing else (KB_ROOTFS_VERSION changes with
 * this list):
 *   usr/bin/awk -> mawk  if usr/bin/mawk is there and awk is not: mawk's
 *                        postinst makes this alternative (awk is
 *                        Essential in Debian; the kernel's build calls it)
 *   usr/bin/cc -> gcc    if usr/bin/gcc is there and cc is not: gcc's
 *                        postinst ("update-alternatives --install
 *                        /usr/bin/cc cc /usr/bin/gcc 20"); the gcc
 *                        package itself ships gcc -> gcc-12
 *   usr/bin/c++ -> g++   likewise from g++'s postinst
 *   etc/passwd, etc/group  if absent: root (0) and nobody/nogroup
 *                        (65534), which base-passwd's preinst would copy
 *                        from its master files (with more system users)
 * The links point straight at the program, not through
 * /etc/alternatives. Not reproduced: ldconfig's cache (the dynamic
 * loader finds the libraries in their default directories without it),
 * dpkg's database, other alternatives, users other than root and nobody,
 * anything a service would need. */
#include "rootfs.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a map (parent, name) -> value ---- */

struct kb_rf_slot {
	const void *parent;
	const char *name;
	size_t len;
	uint64_t h;
	void *val;
};

static uint64_t rf_hash(const void *parent, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)parent;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
	h ^= h >> 29;
	return h ? h : 1;
}

static struct kb_rf_slot *rf_find(const kb_rf_map *m, const void *parent, const char *name,
				  size_t len, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct kb_rf_slot *s = &m->v[i];
		if (!s->h || (s->h == h && s->parent == parent && s->len == len &&
			      !memcmp(s->name, name, len)))
			return s;
	}
}

void *kb_rf_map_get(const kb_rf_map *m, const void *parent, const char *name, size_t len)
{
	if (!m->cap)
		return NULL;
	struct kb_rf_slot *s = rf_find(m, parent, name, len, rf_hash(parent, name, len));
	return s->h ? s->val : NULL;
}

void kb_rf_map_put(kb_rf_map *m, const void *parent, const char *name, size_t len, void *val)
{
	if (2 * (m->n + 1) > m->cap) {
		kb_rf_map old = *m;
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = kb_calloc(m->cap, sizeof *m->v);
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i].h)
				*rf_find(m, old.v[i].parent, old.v[i].name, old.v[i].len,
					 old.v[i].h) = old.v[i], m->n++;
		free(old.v);
	}
	uint64_t h = rf_hash(parent, name, len);
	struct kb_rf_slot *s = rf_find(m, parent, name, len, h);
	if (!s->h)
		m->n++;
	*s = (struct kb_rf_slot){parent, name, len, h, val};
}

void kb_rf_map_free(kb_rf_map *m)
{
	free(m->v);
	memset(m, 0, sizeof *m);
}

/* ---- the tree under construction ---- */

typedef struct node {
	char type; /* 'd', 'f', 'x', 'l' */
	int layout; /* a merged-/usr layout link (redirect is its directory) */
	const char *name;
	size_t len;
	struct node *parent, *redirect;
	struct node **kids;
	size_t nkids, capkids;
	kb_hash hash;
	const char *target;
	const char *pkg; /* who made it: a package's name, or NULL (kbuild) */
} node;

struct kb_rootfs {
	kb_arena *a;
	kb_rf_map map;
	node *root;
	kb_rootfs_stats st;
	int finished;
};

static const struct {
	const char *name, *dir;
	int eager;
} layout[] = {
	{"bin", "bin", 1},     {"sbin", "sbin", 1},	{"lib", "lib", 1},
	{"lib64", "lib64", 1}, {"lib32", "lib32", 0}, {"libx32", "libx32", 0},
};

static node *kid(kb_rootfs *r, node *dir, const char *name, size_t len)
{
	return kb_rf_map_get(&r->map, dir, name, len);
}

static node *add_kid(kb_rootfs *r, node *dir, char type, const char *name, size_t len,
		     const char *pkg)
{
	node *n = kb_arena_alloc(r->a, sizeof *n);
	n->type = type;
	n->name = kb_arena_strndup(r->a, name, len);
	n->len = len;
	n->parent = dir;
	n->pkg = pkg;
	dir->kids = kb_arena_grow(r->a, dir->kids, dir->nkids, &dir->capkids, sizeof *dir->kids);
	dir->kids[dir->nkids++] = n;
	kb_rf_map_put(&r->map, dir, n->name, len, n);
	return n;
}

static node *make_layout(kb_rootfs *r, size_t i)
{
	node *usr = kid(r, r->root, "usr", 3);
	if (!usr)
		usr = add_kid(r, r->root, 'd', "usr", 3, NULL);
	node *d = kid(r, usr, layout[i].dir, strlen(layout[i].dir));
	if (!d)
		d = add_kid(r, usr, 'd', layout[i].dir, strlen(layout[i].dir), NULL);
	node *l = add_kid(r, r->root, 'l', layout[i].name, strlen(layout[i].name), NULL);
	l->layout = 1;
	l->redirect = d;
	l->target = kb_arena_printf(r->a, "usr/%s", layout[i].dir);
	kb_sha256(l->target, strlen(l->target), &l->hash);
	return l;
}

kb_rootfs *kb_rootfs_new(void)
{
	kb_rootfs *r = kb_calloc(1, sizeof *r);
	r->a = kb_arena_new();
	r->root = kb_arena_alloc(r->a, sizeof *r->root);
	r->root->type = 'd';
	r->root->name = "";
	for (size_t i = 0; i < sizeof layout / sizeof *layout; i++)
		if (layout[i].eager)
			make_layout(r, i);
	return r;
}

void kb_rootfs_free(kb_rootfs *r)
{
	if (!r)
		return;
	kb_rf_map_free(&r->map);
	kb_arena_free(r->a);
	free(r);
}

const kb_rootfs_stats *kb_rootfs_get_stats(const kb_rootfs *r)
{
	return &r->st;
}

/* the child, making a lazy layout link at the root on first use */
static node *lookup(kb_rootfs *r, node *dir, const char *name, size_t len)
{
	node *n = kid(r, dir, name, len);
	if (n || dir != r->root)
		return n;
	for (size_t i = 0; i < sizeof layout / sizeof *layout; i++) {
		if (layout[i].eager || strlen(layout[i].name) != len ||
		    memcmp(layout[i].name, name, len))
			continue;
		/* only onto a directory usr/X: a package's symlink or file
		 * there leaves X a plain directory at the root */
		node *usr = kid(r, r->root, "usr", 3);
		node *d = usr && usr->type == 'd' ? kid(r, usr, layout[i].dir, strlen(layout[i].dir))
						  : NULL;
		if (usr && usr->type == 'd' && (!d || d->type == 'd'))
			return make_layout(r, i);
	}
	return NULL;
}

static void node_path(const node *n, kb_buf *b)
{
	if (n->parent && n->parent->parent)
		node_path(n->parent, b), kb_buf_addc(b, '/');
	kb_buf_add(b, n->name, n->len);
}

static const char *what_of(const node *n)
{
	switch (n->type) {
	case 'd':
		return "a directory";
	case 'l':
		return "a symlink";
	default:
		return "a file";
	}
}

static const char *who(const node *n, const char *pkgname)
{
	return n->pkg == pkgname ? "this package"
	       : n->pkg	       ? n->pkg
				: "kbuild's merged-/usr layout";
}

/* "package X: entry 'p' ..." with the rest from fmt */
static kb_err *refuse(const kb_rootfs_pkg *p, const char *path, const char *fmt, ...)
	KB_PRINTF(3, 4);
static kb_err *refuse(const kb_rootfs_pkg *p, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *rest;
	if (vasprintf(&rest, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *q = kb_quote(path, strlen(path));
	kb_err *err = kb_errf("%s: entry '%s' %s; refused", p->name, q, rest);
	free(q);
	free(rest);
	return err;
}

static kb_err *apply(kb_rootfs *r, const kb_rootfs_pkg *p, const char *pkgname,
		     const kb_rootfs_op *o)
{
	node *dir = r->root;
	const char *c = o->path;
	for (;;) {
		const char *slash = strchr(c, '/');
		if (!slash)
			break;
		size_t len = (size_t)(slash - c);
		node *n = lookup(r, dir, c, len);
		if (!n)
			n = add_kid(r, dir, 'd', c, len, pkgname);
		if (n->layout) {
			n = n->redirect;
		} else if (n->type == 'l') {
			kb_buf b = {0};
			node_path(n, &b);
			char *t = kb_quote(n->target, strlen(n->target));
			kb_err *err = refuse(p, o->path,
					     "would be written through the symlink '%s' (-> '%s', "
					     "from %s); only the merged-/usr links bin, sbin, lib, "
					     "lib64 may be written through",
					     b.p, t, who(n, pkgname));
			free(t);
			kb_buf_free(&b);
			return err;
		} else if (n->type != 'd') {
			kb_buf b = {0};
			node_path(n, &b);
			kb_err *err = refuse(p, o->path, "needs '%s' to be a directory, but it is a "
							 "file from %s", b.p, who(n, pkgname));
			kb_buf_free(&b);
			return err;
		}
		dir = n;
		c = slash + 1;
	}
	size_t len = strlen(c);
	node *n = lookup(r, dir, c, len);
	if (!n) {
		n = add_kid(r, dir, o->type, c, len, pkgname);
		n->hash = o->hash;
		if (o->target)
			n->target = kb_arena_strdup(r->a, o->target);
		return NULL;
	}
	switch (o->type) {
	case 'd':
		if (n->type == 'd' || n->layout)
			return NULL;
		break;
	case 'l':
		if (n->type == 'l' && (!strcmp(n->target, o->target) ||
				       (n->layout && o->target[0] == '/' &&
					!strcmp(n->target, o->target + 1))))
			return NULL;
		if (n->type == 'l' && !n->layout)
			return refuse(p, o->path,
				      "is a symlink to '%s', but %s has it as a symlink to '%s' "
				      "(dpkg would need Replaces:)",
				      o->target, who(n, pkgname), n->target);
		break;
	default:
		if (n->type == o->type && kb_hash_eq(&n->hash, &o->hash))
			return NULL;
		if (n->type == 'f' || n->type == 'x')
			return refuse(p, o->path,
				      "is also shipped by %s, %s (dpkg would need Replaces:)", who(n, pkgname),
				      n->type != o->type ? "with a different mode"
							 : "with different content");
		break;
	}
	const char *what = o->type == 'd' ? "a directory" : o->type == 'l' ? "a symlink" : "a file";
	if (n->layout)
		return refuse(p, o->path, "is %s, but the root keeps its merged-/usr layout link "
					  "there ('%s' -> '%s')",
			      what, n->name, n->target);
	return refuse(p, o->path, "is %s, but %s has %s there%s", what, who(n, pkgname),
		      what_of(n), n->pkg ? " (dpkg would need Replaces:)" : "");
}

static kb_err *merge(kb_rootfs *r, kb_rootfs_pkg *p)
{
	/* nodes name the package that made them, for later messages */
	const char *name = kb_arena_strdup(r->a, p->name);
	for (size_t i = 0; i < p->n; i++) {
		kb_err *err = apply(r, p, name, &p->ops[i]);
		if (err)
			return err;
	}
	r->st.packages++;
	r->st.skipped += p->skipped;
	r->st.bytes += p->bytes;
	return NULL;
}

/* ---- unpacking several packages at once ---- */

struct pool {
	kb_store *s;
	kb_txn *t;
	kb_rootfs_pkg *pkgs;
	size_t *order; /* unpacked largest first, so no big one starts last */
	size_t n, next;
	int stop;
	char *done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void *worker(void *arg)
{
	struct pool *pl = arg;
	for (;;) {
		pthread_mutex_lock(&pl->mu);
		if (pl->stop || pl->next >= pl->n) {
			pthread_mutex_unlock(&pl->mu);
			return NULL;
		}
		size_t i = pl->order[pl->next++];
		pthread_mutex_unlock(&pl->mu);
		kb_rootfs_pkg *p = &pl->pkgs[i];
		p->err = kb_rootfs_unpack(pl->s, pl->t, p);
		pthread_mutex_lock(&pl->mu);
		pl->done[i] = 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
}

struct sized {
	uint64_t size;
	size_t i;
};

static int by_size_desc(const void *a, const void *b)
{
	const struct sized *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	return (x->i > y->i) - (x->i < y->i);
}

/* the order in which to unpack: largest blob first (a blob that cannot
 * be opened sorts last; unpacking it reports why) */
static size_t *unpack_order(kb_store *s, const kb_hash *pkgs, size_t n)
{
	struct sized *v = kb_calloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		int fd;
		struct stat st;
		v[i].i = i;
		kb_err *err = kb_store_open_object(s, &pkgs[i], &fd);
		if (err) {
			kb_err_free(err);
			continue;
		}
		if (fstat(fd, &st) == 0)
			v[i].size = (uint64_t)st.st_size;
		close(fd);
	}
	qsort(v, n, sizeof *v, by_size_desc);
	size_t *order = kb_calloc(n, sizeof *order);
	for (size_t i = 0; i < n; i++)
		order[i] = v[i].i;
	free(v);
	return order;
}

static int default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

kb_err *kb_rootfs_add(kb_rootfs *r, kb_store *s, kb_txn *t, const kb_hash *pkgs,
		      const char *const *labels, size_t n, int jobs)
{
	if (r->finished)
		return kb_errf("internal error: packages added to a finished build root");
	if (!n)
		return NULL;
	struct pool pl = {.s = s, .t = t, .n = n};
	pl.order = unpack_order(s, pkgs, n);
	pl.pkgs = kb_calloc(n, sizeof *pl.pkgs);
	pl.done = kb_calloc(n, 1);
	for (size_t i = 0; i < n; i++) {
		pl.pkgs[i].hash = pkgs[i];
		pl.pkgs[i].label = labels ? labels[i] : NULL;
	}
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	if (jobs <= 0)
		jobs = default_jobs();
	if ((size_t)jobs > n)
		jobs = (int)n;
	pthread_t *th = kb_calloc((size_t)jobs, sizeof *th);
	int started = 0;
	for (; started < jobs; started++)
		if (pthread_create(&th[started], NULL, worker, &pl))
			break;
	kb_err *err = NULL;
	if (!started)
		err = kb_errf("cannot start a thread to unpack packages");
	/* merged in the order given, each as soon as it is unpacked */
	for (size_t i = 0; !err && i < n; i++) {
		pthread_mutex_lock(&pl.mu);
		while (!pl.done[i])
			pthread_cond_wait(&pl.cv, &pl.mu);
		pthread_mutex_unlock(&pl.mu);
		kb_rootfs_pkg *p = &pl.pkgs[i];
		if (p->err) {
			err = p->err;
			p->err = NULL;
		} else {
			err = merge(r, p);
		}
	}
	pthread_mutex_lock(&pl.mu);
	pl.stop = 1;
	pthread_mutex_unlock(&pl.mu);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < n; i++) {
		kb_rootfs_pkg *p = &pl.pkgs[i];
		kb_err_free(p->err);
		kb_arena_free(p->a);
		free(p->name);
	}
	free(th);
	free(pl.order);
	free(pl.done);
	pthread_mutex_destroy(&pl.mu);
	pthread_cond_destroy(&pl.cv);
	free(pl.pkgs);
	return err;
}

/* ---- fixups and the tree ---- */

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
			     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char group[] = "root:x:0:\n"
			    "nogroup:x:65534:\n";

static kb_err *fix_link(kb_rootfs *r, kb_txn *t, node *dir, const char *name,
			const char *target)
{
	node *l = add_kid(r, dir, 'l', name, strlen(name), NULL);
	l->target = target;
	return kb_txn_add_bytes(t, target, strlen(target), 0, &l->hash);
}

static kb_err *fix_file(kb_rootfs *r, kb_txn *t, node *dir, const char *name, const char *text)
{
	node *f = add_kid(r, dir, 'f', name, strlen(name), NULL);
	return kb_txn_add_bytes(t, text, strlen(text), 0, &f->hash);
}

static kb_err *fixups(kb_rootfs *r, kb_txn *t)
{
	kb_err *err = NULL;
	node *usr = kid(r, r->root, "usr", 3), *bin = usr ? kid(r, usr, "bin", 3) : NULL;
	if (bin && bin->type == 'd') {
		static const char *const alt[][3] = {
			/* link, target, made if this is there */
			{"awk", "mawk", "mawk"},
			{"cc", "gcc", "gcc"},
			{"c++", "g++", "g++"},
		};
		for (size_t i = 0; !err && i < sizeof alt / sizeof *alt; i++) {
			node *have = kid(r, bin, alt[i][2], strlen(alt[i][2]));
			if (have && have->type != 'd' && !kid(r, bin, alt[i][0], strlen(alt[i][0])))
				err = fix_link(r, t, bin, alt[i][0], alt[i][1]);
		}
	}
	node *etc = kid(r, r->root, "etc", 3);
	if (!etc)
		etc = add_kid(r, r->root, 'd', "etc", 3, NULL);
	if (!err && etc->type == 'd' && !kid(r, etc, "passwd", 6))
		err = fix_file(r, t, etc, "passwd", passwd);
	if (!err && etc->type == 'd' && !kid(r, etc, "group", 5))
		err = fix_file(r, t, etc, "group", group);
	return err;
}

static kb_err *store_dir(kb_rootfs *r, kb_txn *t, node *d, kb_hash *out)
{
	kb_tree_entry *e = kb_calloc(d->nkids ? d->nkids : 1, sizeof *e);
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < d->nkids; i++) {
		node *k = d->kids[i];
		e[i].name = k->name;
		e[i].namelen = k->len;
		e[i].type = (kb_enttype)k->type;
		if (k->type == 'd') {
			r->st.dirs++;
			err = store_dir(r, t, k, &e[i].hash);
		} else {
			e[i].hash = k->hash;
			if (k->type == 'l')
				r->st.symlinks++;
			else
				r->st.files++;
			/* layout links were made before any transaction */
			if (k->layout)
				err = kb_txn_add_bytes(t, k->target, strlen(k->target), 0,
						       &e[i].hash);
		}
	}
	if (!err)
		err = kb_txn_add_tree(t, e, d->nkids, out);
	free(e);
	return err;
}

kb_err *kb_rootfs_finish(kb_rootfs *r, kb_txn *t, kb_hash *tree)
{
	if (r->finished)
		return kb_errf("internal error: a build root finished twice");
	r->finished = 1;
	kb_err *err = fixups(r, t);
	r->st.files = r->st.dirs = r->st.symlinks = 0;
	if (!err)
		err = store_dir(r, t, r->root, tree);
	return err;
}

/* ---- the action cache ---- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(kb_hash));
}

kb_err *kb_rootfs_build(kb_store *s, const kb_hash *pkgs, const char *const *labels,
			size_t n, int jobs, kb_hash *tree, int *cached, kb_rootfs_stats *stats)
{
	*cached = 0;
	if (!n)
		return kb_usage("a build root needs at least one package");
	kb_hash *sorted = kb_malloc(n * sizeof *sorted);
	memcpy(sorted, pkgs, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, hash_cmp);
	kb_buf k = {0};
	kb_buf_adds(&k, "kbuild-rootfs 1\n");
	for (size_t i = 0; i < n; i++) {
		if (i && kb_hash_eq(&sorted[i - 1], &sorted[i]))
			continue;
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&sorted[i], hex);
		kb_buf_addf(&k, "%s\n", hex);
	}
	kb_buf_addf(&k, "fixups %d\n", KB_ROOTFS_VERSION);
	free(sorted);
	kb_hash key;
	kb_sha256(k.p, k.len, &key);
	kb_buf_free(&k);

	kb_oid res;
	char *meta = NULL;
	int found = 0;
	kb_err *err = kb_ac_get(s, &key, &res, &meta, &found);
	free(meta);
	if (err)
		return err;
	if (found && res.type == KB_TREE) {
		*tree = res.hash;
		*cached = 1;
		return NULL;
	}
	/* the same package twice is unpacked once */
	kb_hash *uniq = kb_malloc(n * sizeof *uniq);
	const char **ulabels = kb_calloc(n, sizeof *ulabels);
	size_t nu = 0;
	kb_hset *seen = kb_hset_new();
	for (size_t i = 0; i < n; i++)
		if (kb_hset_add(seen, &pkgs[i])) {
			ulabels[nu] = labels ? labels[i] : NULL;
			uniq[nu++] = pkgs[i];
		}
	kb_hset_free(seen);
	kb_rootfs *r = kb_rootfs_new();
	kb_txn *t;
	double t0 = mono(), t1 = t0, t2 = t0;
	if (!(err = kb_txn_begin(s, &t))) {
		if (!(err = kb_rootfs_add(r, s, t, uniq, ulabels, nu, jobs))) {
			t1 = mono();
			err = kb_rootfs_finish(r, t, tree);
		}
		if (err)
			kb_txn_abort(t);
		else {
			t2 = mono();
			res = (kb_oid){KB_TREE, *tree};
			err = kb_txn_commit(t, &res, 1);
		}
	}
	if (!err)
		kb_debug("buildroot: unpacked in %.2f s, trees stored in %.2f s, committed in "
			 "%.2f s", t1 - t0, t2 - t1, mono() - t2);
	if (!err) {
		const kb_rootfs_stats *st = kb_rootfs_get_stats(r);
		char *m = kb_asprintf("packages %zu\nfiles %zu\nbytes %llu\n", st->packages,
				      st->files, (unsigned long long)st->bytes);
		err = kb_ac_put(s, &key, &res, m);
		free(m);
		if (stats)
			*stats = *st;
	}
	kb_rootfs_free(r);
	free(uniq);
	free(ulabels);
	return err;
}

/* Garbage collection. Writers hold the store lock shared for the whole of
 * a transaction; gc takes it exclusively and computes reachability under
 * it, so an object a writer just stored is either already reachable (a
 * ref, an action-cache entry, a live process's root) or its writer has
 * not started. Nothing is decided before the lock is held. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

kb_err *store_each_object(kb_store *s, obj_fn fn, void *ctx)
{
	kb_err *err = NULL;
	for (int i = 0; !err && i < 256; i++) {
		char shard[3];
		snprintf(shard, sizeof shard, "%02x", i);
		DIR *d;
		if (faccessat(s->objfd, shard, F_OK, 0) < 0 && errno == ENOENT)
			continue; /* made with its first object */
		kb_err *derr = kb_opendir_at(s->objfd, shard, &d);
		if (derr)
			return kb_err_wrap(derr, "%s/objects", s->path);
		struct dirent *de;
		while (!err && (de = readdir(d))) {
			kb_hash h;
			int exec;
			if (!strncmp(de->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX))) {
				err = fn(ctx, NULL, 0, dirfd(d), de->d_name);
				continue;
			}
			if (de->d_name[0] == '.')
				continue;
			if (obj_parse(shard, de->d_name, &h, &exec)) {
				kb_warn("%s/objects/%s/%s is not an object; leaving it alone",
					s->path, shard, de->d_name);
				continue;
			}
			err = fn(ctx, &h, exec, dirfd(d), de->d_name);
		}
		closedir(d);
	}
	return err;
}

kb_err *roots_collect(kb_store *s, int remove_dead, kb_oid **out, size_t *n, size_t *removed)
{
	*out = NULL;
	*n = *removed = 0;
	DIR *d;
	kb_err *derr = kb_opendir_at(s->rootsdir, ".", &d);
	if (derr)
		return kb_err_wrap(derr, "%s/roots", s->path);
	size_t cap = 0;
	kb_err *err = NULL;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int rf = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (rf < 0)
			continue; /* its owner removed it */
		if (flock(rf, LOCK_EX | LOCK_NB) == 0) {
			/* nobody holds it: its process is gone */
			if (remove_dead)
				unlinkat(dirfd(d), de->d_name, 0);
			(*removed)++;
			close(rf);
			continue;
		}
		kb_buf b = {0};
		char buf[4096];
		size_t got;
		do {
			if ((err = kb_read_full(rf, buf, sizeof buf, &got, de->d_name)))
				break;
			kb_buf_add(&b, buf, got);
		} while (got == sizeof buf);
		close(rf);
		/* lines may be cut short by a writer in the middle of appending */
		for (char *line = b.p; !err && line && line < b.p + b.len;) {
			char *nl = memchr(line, '\n', (size_t)(b.p + b.len - line));
			if (!nl)
				break;
			kb_oid o;
			kb_err *bad = kb_oid_parse(line, (size_t)(nl - line), &o);
			if (bad) {
				kb_err_free(bad);
			} else {
				if (*n == cap) {
					cap = cap ? 2 * cap : 16;
					*out = kb_realloc(*out, cap * sizeof **out);
				}
				(*out)[(*n)++] = o;
			}
			line = nl + 1;
		}
		kb_buf_free(&b);
	}
	closedir(d);
	return err;
}

/* Adds o and everything below it to live. Trees already in live are not
 * walked again, so shared subtrees cost once. */
static kb_err *mark(kb_store *s, const kb_oid *o, kb_hset *live)
{
	if (!kb_hset_add(live, &o->hash) || o->type != KB_TREE)
		return NULL;
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(s, &o->hash, &t);
	for (size_t i = 0; !err && i < t.n; i++) {
		kb_oid c = {kb_enttype_objtype(t.e[i].type), t.e[i].hash};
		err = mark(s, &c, live);
	}
	kb_tree_free(&t);
	return err;
}

static kb_err *closure(kb_store *s, const kb_oid *o, kb_hset *seen, const char *path)
{
	if (!kb_hset_add(seen, &o->hash))
		return NULL;
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&o->hash, hex);
	if (!kb_store_has(s, &o->hash))
		return kb_errf("%s %s%s%s is missing", kb_objtype_name(o->type), hex,
			       *path ? " at " : "", path);
	if (o->type != KB_TREE)
		return NULL;
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(s, &o->hash, &t);
	for (size_t i = 0; !err && i < t.n; i++) {
		char *name = kb_quote(t.e[i].name, t.e[i].namelen);
		char *sub = *path ? kb_asprintf("%s/%s", path, name) : name;
		kb_oid c = {kb_enttype_objtype(t.e[i].type), t.e[i].hash};
		err = closure(s, &c, seen, sub);
		if (sub != name)
			free(sub);
		free(name);
	}
	kb_tree_free(&t);
	return err;
}

kb_err *store_check_closure(kb_store *s, const kb_oid *o)
{
	kb_hset *seen = kb_hset_new();
	kb_err *err = closure(s, o, seen, "");
	kb_hset_free(seen);
	return err;
}

struct gcctx {
	kb_store *s;
	kb_hset *live;
	int dry;
	kb_gc_stats *st;
	kb_hash *stale;
	size_t nstale, capstale;
};

static kb_err *mark_ac(void *ctx, const kb_hash *key, const kb_oid *res)
{
	struct gcctx *g = ctx;
	kb_err *err = NULL;
	if (res->type == KB_NONE || !kb_store_has(g->s, &res->hash) ||
	    (err = mark(g->s, res, g->live))) {
		/* only a cache: an entry we cannot follow is dropped, not fatal */
		if (err)
			kb_err_free(err);
		if (g->nstale == g->capstale) {
			g->capstale = g->capstale ? 2 * g->capstale : 16;
			g->stale = kb_realloc(g->stale, g->capstale * sizeof *g->stale);
		}
		g->stale[g->nstale++] = *key;
	}
	return NULL;
}

static kb_err *sweep(void *ctx, const kb_hash *h, int exec, int shardfd, const char *name)
{
	(void)exec;
	struct gcctx *g = ctx;
	if (!h) { /* staged by a transaction that never finished */
		g->st->temp_removed++;
		if (!g->dry && unlinkat(shardfd, name, 0) < 0 && errno != ENOENT)
			return kb_errno(errno, "cannot remove %s", name);
		return NULL;
	}
	if (kb_hset_has(g->live, h)) {
		g->st->objects_kept++;
		return NULL;
	}
	struct stat st;
	if (fstatat(shardfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		g->st->bytes_removed += (uint64_t)st.st_size;
	g->st->objects_removed++;
	if (!g->dry && unlinkat(shardfd, name, 0) < 0 && errno != ENOENT)
		return kb_errno(errno, "cannot remove object %s", name);
	return NULL;
}

static kb_err *clean_tmp(kb_store *s, int dry, size_t *count)
{
	DIR *d;
	kb_err *derr = kb_opendir_at(s->tmpfd, ".", &d);
	if (derr)
		return kb_err_wrap(derr, "%s/tmp", s->path);
	kb_err *err = NULL;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		(*count)++;
		if (!dry)
			err = kb_remove_tree(dirfd(d), de->d_name);
	}
	closedir(d);
	return err;
}

kb_err *kb_store_gc(kb_store *s, int dry, kb_gc_stats *st)
{
	memset(st, 0, sizeof *st);
	int lockfd;
	kb_err *err = store_lock(s, 1, &lockfd);
	if (err)
		return err;
	struct gcctx g = {s, kb_hset_new(), dry, st, NULL, 0, 0};
	kb_oid *roots = NULL;
	size_t nroots = 0;
	kb_ref *refs = NULL;
	size_t nrefs = 0;
	/* no transaction is running: whatever is in tmp/ was left by a crash */
	err = clean_tmp(s, dry, &st->temp_removed);
	if (!err && !dry)
		err = store_clean_work(s, &st->temp_removed);
	if (!err)
		err = roots_collect(s, !dry, &roots, &nroots, &st->roots_removed);
	if (!err)
		err = kb_ref_list(s, NULL, &refs, &nrefs);
	for (size_t i = 0; !err && i < nrefs; i++)
		if (refs[i].oid.type == KB_NONE)
			err = kb_errf("gc stopped, nothing removed: ref '%s' is damaged and what it "
				      "protects is unknown; set it again or delete it", refs[i].name);
		else if ((err = mark(s, &refs[i].oid, g.live)))
			err = kb_err_wrap(err, "gc stopped, nothing removed: ref '%s' reaches a "
					  "missing or damaged object (run 'kbuild store fsck')",
					  refs[i].name);
	for (size_t i = 0; !err && i < nroots; i++)
		if ((err = mark(s, &roots[i], g.live)))
			err = kb_err_wrap(err, "gc stopped, nothing removed: a running kbuild "
					  "process holds a missing or damaged object");
	if (!err)
		err = ac_each(s, mark_ac, &g);
	for (size_t i = 0; !err && i < g.nstale; i++) {
		st->ac_removed++;
		if (!dry)
			err = ac_remove(s, &g.stale[i]);
	}
	if (!err)
		err = store_each_object(s, sweep, &g);
	store_unlock(lockfd);
	kb_ref_list_free(refs, nrefs);
	free(roots);
	free(g.stale);
	kb_hset_free(g.live);
	return err;
}

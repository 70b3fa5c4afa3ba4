/* fsck: rehash every object, then walk every ref and action-cache entry
 * and name each missing, corrupt or malformed object together with the
 * ref (and path inside it) that reaches it. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fsck {
	kb_store *s;
	FILE *out;
	size_t problems;
	kb_hset *corrupt; /* hashes whose content does not match */
	kb_hset *clean;	  /* trees whose whole closure checked out */
	kb_sha *sha;
	char *buf;
	size_t tmp_entries;
};

#define BUFSZ (1u << 20)

static kb_err *rehash(void *ctx, const kb_hash *h, int exec, int shardfd, const char *name)
{
	(void)exec;
	struct fsck *f = ctx;
	if (!h) /* left by an unfinished transaction: invisible, gc removes it */
		return NULL;
	int fd = openat(shardfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	if (fd < 0) {
		fprintf(f->out, "unreadable object %s: %s\n", hex, strerror(errno));
		f->problems++;
		kb_hset_add(f->corrupt, h);
		return NULL;
	}
	kb_err *err = NULL;
	for (;;) {
		size_t got;
		if ((err = kb_read_full(fd, f->buf, BUFSZ, &got, hex)))
			break;
		kb_sha_update(f->sha, f->buf, got);
		if (got < BUFSZ)
			break;
	}
	close(fd);
	kb_hash got;
	kb_sha_final(f->sha, &got);
	if (err) {
		fprintf(f->out, "unreadable object %s: %s\n", hex, err->msg);
		kb_err_free(err);
	} else if (kb_hash_eq(&got, h)) {
		return NULL;
	} else {
		char ghex[KB_HEX_LEN + 1];
		kb_hash_hex(&got, ghex);
		fprintf(f->out, "corrupt object %s: content hashes to %s (objects/%.2s/%s)\n", hex,
			ghex, hex, name);
	}
	f->problems++;
	kb_hset_add(f->corrupt, h);
	return NULL;
}

/* returns the number of problems below o */
static size_t walk(struct fsck *f, const kb_oid *o, const char *from, const char *path)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&o->hash, hex);
	const char *type = kb_objtype_name(o->type);
	const char *at = *path ? " at " : "";
	if (!kb_store_has(f->s, &o->hash)) {
		fprintf(f->out, "missing %s %s, reached from %s%s%s\n", type, hex, from, at, path);
		return 1;
	}
	if (kb_hset_has(f->corrupt, &o->hash)) {
		fprintf(f->out, "corrupt %s %s, reached from %s%s%s\n", type, hex, from, at, path);
		return 1;
	}
	if (o->type != KB_TREE || kb_hset_has(f->clean, &o->hash))
		return 0;
	kb_tree t;
	kb_err *err = kb_store_read_tree(f->s, &o->hash, &t);
	if (err) {
		fprintf(f->out, "%s, reached from %s%s%s\n", err->msg, from, at, path);
		kb_err_free(err);
		return 1;
	}
	size_t n = 0;
	for (size_t i = 0; i < t.n; i++) {
		char *name = kb_quote(t.e[i].name, t.e[i].namelen);
		char *sub = *path ? kb_asprintf("%s/%s", path, name) : kb_strdup(name);
		kb_oid c = {kb_enttype_objtype(t.e[i].type), t.e[i].hash};
		n += walk(f, &c, from, sub);
		free(sub);
		free(name);
	}
	kb_tree_free(&t);
	if (!n)
		kb_hset_add(f->clean, &o->hash);
	return n;
}

static kb_err *walk_ac(void *ctx, const kb_hash *key, const kb_oid *res)
{
	struct fsck *f = ctx;
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(key, hex);
	if (res->type == KB_NONE) {
		fprintf(f->out, "damaged action-cache entry %s\n", hex);
		f->problems++;
		return NULL;
	}
	/* a result gone from the store is a cache miss, not damage */
	if (!kb_store_has(f->s, &res->hash))
		return NULL;
	char *from = kb_asprintf("action-cache entry %s", hex);
	f->problems += walk(f, res, from, "");
	free(from);
	return NULL;
}

kb_err *kb_store_fsck(kb_store *s, FILE *out, size_t *problems)
{
	int lockfd;
	kb_err *err = store_lock(s, 0, &lockfd);
	if (err)
		return err;
	struct fsck f = {s, out, 0, kb_hset_new(), kb_hset_new(), kb_sha_new(),
			 kb_malloc(BUFSZ), 0};
	kb_ref *refs = NULL;
	size_t nrefs = 0;
	err = store_each_object(s, rehash, &f);
	if (!err)
		err = kb_ref_list(s, NULL, &refs, &nrefs);
	for (size_t i = 0; !err && i < nrefs; i++) {
		if (refs[i].oid.type == KB_NONE) {
			fprintf(out, "damaged ref '%s' (set it again or delete it)\n", refs[i].name);
			f.problems++;
			continue;
		}
		char *from = kb_asprintf("ref '%s'", refs[i].name);
		f.problems += walk(&f, &refs[i].oid, from, "");
		free(from);
	}
	if (!err)
		err = ac_each(s, walk_ac, &f);
	store_unlock(lockfd);
	kb_ref_list_free(refs, nrefs);
	kb_hset_free(f.corrupt);
	kb_hset_free(f.clean);
	kb_sha_free(f.sha);
	free(f.buf);
	*problems = f.problems;
	return err;
}

/* Action cache: ac/ab/cd… holds
 *   "kbuild-ac 1\n" "result TYPE HEX\n" then metadata lines.
 * An entry whose result has gone from the store is a miss. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AC_MAGIC "kbuild-ac 1\n"
#define AC_META_MAX (64u << 10)

kb_err *kb_ac_put(kb_store *s, const kb_hash *key, const kb_oid *result, const char *meta)
{
	size_t mlen = meta ? strlen(meta) : 0;
	if (mlen > AC_META_MAX)
		return kb_errf("action-cache metadata is %zu bytes; at most %u fit", mlen,
			       AC_META_MAX);
	kb_buf b = {0};
	char line[5 + KB_HEX_LEN + 1];
	kb_oid_fmt(result, line);
	kb_buf_adds(&b, AC_MAGIC "result ");
	kb_buf_adds(&b, line);
	kb_buf_addc(&b, '\n');
	kb_buf_add(&b, meta, mlen);
	if (mlen && meta[mlen - 1] != '\n')
		kb_buf_addc(&b, '\n');
	char name[OBJ_NAME_MAX];
	obj_name(key, 0, name);
	int lockfd = -1;
	kb_err *err = store_lock(s, 0, &lockfd);
	if (!err && (err = store_check_closure(s, result))) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&result->hash, hex);
		err = kb_err_wrap(err, "cannot cache %s %s: not all of it is in the store",
				  kb_objtype_name(result->type), hex);
	}
	if (!err) {
		char shard[3] = {name[0], name[1], 0};
		int fd = -1;
		if (!(err = store_shard(s->acfd, name)) &&
		    (fd = openat(s->acfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			err = kb_errno(errno, "cannot open %s/ac/%s", s->path, shard);
		if (!err)
			err = store_write_atomic(s, fd, name + 3, b.p, b.len);
		if (fd >= 0)
			close(fd);
	}
	store_unlock(lockfd);
	kb_buf_free(&b);
	return err;
}

static kb_err *parse_entry(const kb_buf *b, const char *name, kb_oid *result, char **meta)
{
	size_t ml = strlen(AC_MAGIC), rl = strlen("result ");
	const char *nl;
	if (b->len < ml + rl || memcmp(b->p, AC_MAGIC, ml) || memcmp(b->p + ml, "result ", rl) ||
	    !(nl = memchr(b->p + ml, '\n', b->len - ml)))
		return kb_errf("action-cache entry %s is damaged (gc removes it)", name);
	const char *r = b->p + ml + rl;
	kb_err *err = kb_oid_parse(r, (size_t)(nl - r), result);
	if (err)
		return kb_err_wrap(err, "action-cache entry %s", name);
	if (meta)
		*meta = kb_strndup(nl + 1, b->len - (size_t)(nl + 1 - b->p));
	return NULL;
}

kb_err *kb_ac_get(kb_store *s, const kb_hash *key, kb_oid *result, char **meta, int *found)
{
	char name[OBJ_NAME_MAX];
	obj_name(key, 0, name);
	*found = 0;
	if (meta)
		*meta = NULL;
	kb_buf b = {0};
	kb_err *err = kb_read_file(s->acfd, name, AC_META_MAX + 256, &b);
	if (err) {
		int missing = faccessat(s->acfd, name, F_OK, 0) < 0 && errno == ENOENT;
		kb_buf_free(&b);
		if (missing) {
			kb_err_free(err);
			return NULL;
		}
		return err;
	}
	err = parse_entry(&b, name, result, meta);
	kb_buf_free(&b);
	if (err)
		return err;
	if (!kb_store_has(s, &result->hash)) {
		if (meta) {
			free(*meta);
			*meta = NULL;
		}
		return NULL;
	}
	*found = 1;
	return NULL;
}

kb_err *ac_each(kb_store *s, ac_fn fn, void *ctx)
{
	kb_err *err = NULL;
	for (int i = 0; !err && i < 256; i++) {
		char shard[3];
		snprintf(shard, sizeof shard, "%02x", i);
		DIR *d;
		if (faccessat(s->acfd, shard, F_OK, 0) < 0 && errno == ENOENT)
			continue; /* made with its first entry */
		kb_err *derr = kb_opendir_at(s->acfd, shard, &d);
		if (derr)
			return kb_err_wrap(derr, "%s/ac", s->path);
		struct dirent *de;
		while (!err && (de = readdir(d))) {
			kb_hash key;
			int exec;
			if (de->d_name[0] == '.' || obj_parse(shard, de->d_name, &key, &exec) || exec)
				continue;
			kb_buf b = {0};
			kb_oid res;
			err = kb_read_file(dirfd(d), de->d_name, AC_META_MAX + 256, &b);
			if (!err && (err = parse_entry(&b, de->d_name, &res, NULL))) {
				/* damaged: the callback decides (gc removes, fsck reports) */
				kb_err_free(err);
				err = NULL;
				res.type = KB_NONE;
			}
			kb_buf_free(&b);
			if (!err)
				err = fn(ctx, &key, &res);
		}
		closedir(d);
	}
	return err;
}

kb_err *ac_remove(kb_store *s, const kb_hash *key)
{
	char name[OBJ_NAME_MAX];
	obj_name(key, 0, name);
	if (unlinkat(s->acfd, name, 0) < 0 && errno != ENOENT)
		return kb_errno(errno, "cannot remove action-cache entry %s", name);
	return NULL;
}

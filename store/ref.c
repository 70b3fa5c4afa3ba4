/* Refs: small files under refs/ holding "TYPE HEX\n", updated by
 * compare-and-swap under refs.lock and replaced atomically. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define REF_MAX 200

kb_err *kb_ref_check_name(const char *name)
{
	size_t n = strlen(name);
	const char *why = NULL;
	if (n == 0)
		why = "it is empty";
	else if (n > REF_MAX)
		why = "it is longer than 200 bytes";
	for (size_t i = 0; !why && i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("._+@=:-/", c)))
			why = "use only letters, digits, '/' and ._+@=:-";
	}
	for (const char *c = name; !why && c <= name + n;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 0)
			why = "it has an empty component (leading, trailing or double '/')";
		else if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			why = "a component is '.' or '..'";
		else if (c[0] == '.')
			why = "a component starts with '.'";
		c += len + 1;
	}
	if (!why)
		return NULL;
	char *q = kb_quote(name, n);
	kb_err *e = kb_usage("invalid ref name '%s': %s", q, why);
	free(q);
	return e;
}

/* '/' becomes '%' so every ref is one file in one directory */
static char *file_name(const char *name)
{
	char *f = kb_strdup(name);
	for (char *c = f; *c; c++)
		if (*c == '/')
			*c = '%';
	return f;
}

static kb_err *read_ref(kb_store *s, const char *file, const char *name, kb_oid *out,
			int *found)
{
	int fd = openat(s->reffd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			*found = 0;
			return NULL;
		}
		return kb_errno(errno, "cannot read ref '%s'", name);
	}
	char buf[128];
	size_t got;
	kb_err *err = kb_read_full(fd, buf, sizeof buf, &got, name);
	close(fd);
	if (err)
		return err;
	if (got < 1 || buf[got - 1] != '\n' || (err = kb_oid_parse(buf, got - 1, out)))
		return kb_err_wrap(err ? err : kb_errf("no newline"),
				   "ref '%s' in %s/refs is damaged (set it again or delete it)",
				   name, s->path);
	*found = 1;
	return NULL;
}

kb_err *kb_ref_get(kb_store *s, const char *name, kb_oid *out, int *found)
{
	kb_err *err = kb_ref_check_name(name);
	if (err)
		return err;
	char *f = file_name(name);
	err = read_ref(s, f, name, out, found);
	free(f);
	return err;
}

/* by hash alone: the same bytes cannot sensibly be a blob in one place
 * and a tree in another, and callers holding only a hash can still swap */
static int oid_eq(const kb_oid *a, const kb_oid *b) { return kb_hash_eq(&a->hash, &b->hash); }

kb_err *kb_ref_update(kb_store *s, const char *name, const kb_oid *old, const kb_oid *new_)
{
	kb_err *err = kb_ref_check_name(name);
	if (err)
		return err;
	int storelock = -1, reflock = -1;
	/* shared store lock: gc cannot remove the target between the check
	 * below and the ref landing */
	if ((err = store_lock(s, 0, &storelock)))
		return err;
	char hex[KB_HEX_LEN + 1];
	if (new_ && (err = store_check_closure(s, new_))) {
		kb_hash_hex(&new_->hash, hex);
		err = kb_err_wrap(err, "cannot point ref '%s' at %s %s: not all of it is in the "
				       "store %s (add it again)", name,
				  kb_objtype_name(new_->type), hex, s->path);
		goto out;
	}
	reflock = openat(s->dirfd, "refs.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (reflock < 0 || flock(reflock, LOCK_EX) < 0) {
		err = kb_errno(errno, "cannot lock %s/refs.lock", s->path);
		goto out;
	}
	char *f = file_name(name);
	kb_oid cur = {0};
	int found = 0;
	err = read_ref(s, f, name, &cur, &found);
	if (!err && old) {
		char want[80] = "absent", have[80] = "absent";
		if (old->type != KB_NONE)
			kb_oid_fmt(old, want);
		if (found)
			kb_oid_fmt(&cur, have);
		if (old->type == KB_NONE ? found : (!found || !oid_eq(old, &cur)))
			err = kb_errf("ref '%s' is %s, not %s as expected: another process changed "
				      "it; read it again and retry", name, have, want);
	}
	if (!err && new_) {
		char line[5 + KB_HEX_LEN + 2];
		kb_oid_fmt(new_, line);
		line[5 + KB_HEX_LEN] = '\n';
		err = store_write_atomic(s, s->reffd, f, line, sizeof line - 1);
	} else if (!err && found) {
		if (unlinkat(s->reffd, f, 0) < 0)
			err = kb_errno(errno, "cannot delete ref '%s'", name);
		else
			err = kb_fsync_dir(s->reffd, "refs");
	} else if (!err && !found && !old) {
		err = kb_errf("no ref named '%s' to delete", name);
	}
	free(f);
out:
	if (reflock >= 0)
		close(reflock);
	store_unlock(storelock);
	return err;
}

static int ref_cmp(const void *a, const void *b)
{
	return strcmp(((const kb_ref *)a)->name, ((const kb_ref *)b)->name);
}

kb_err *kb_ref_list(kb_store *s, const char *prefix, kb_ref **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d;
	kb_err *derr = kb_opendir_at(s->reffd, ".", &d);
	if (derr)
		return kb_err_wrap(derr, "%s/refs", s->path);
	size_t cap = 0;
	kb_err *err = NULL;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *name = kb_strdup(de->d_name);
		for (char *c = name; *c; c++)
			if (*c == '%')
				*c = '/';
		kb_err *bad = kb_ref_check_name(name);
		if (bad) { /* not ours; say so but do not stop */
			kb_warn("ignoring %s/refs/%s: not a ref file", s->path, de->d_name);
			kb_err_free(bad);
			free(name);
			continue;
		}
		if (prefix && strncmp(name, prefix, strlen(prefix))) {
			free(name);
			continue;
		}
		kb_oid o = {0};
		int found;
		kb_err *bad2 = read_ref(s, de->d_name, name, &o, &found);
		if (bad2) { /* listed as damaged: each caller decides what that means */
			kb_err_free(bad2);
			o.type = KB_NONE;
			found = 1;
		}
		if (!found) { /* deleted while we listed */
			free(name);
			continue;
		}
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*out = kb_realloc(*out, cap * sizeof **out);
		}
		(*out)[(*n)++] = (kb_ref){name, o};
	}
	closedir(d);
	if (err) {
		kb_ref_list_free(*out, *n);
		*out = NULL;
		*n = 0;
		return err;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof **out, ref_cmp);
	return NULL;
}

void kb_ref_list_free(kb_ref *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].name);
	free(r);
}

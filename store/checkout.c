/* Checkout: hardlinks from the store by default (objects are read-only, so
 * a link cannot be edited in place by accident), copies with --copy or
 * when linking is impossible. Built beside the destination and renamed. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct co {
	kb_store *s;
	int flags;
};

static kb_err *copy_fd(int in, int out, const char *what)
{
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n == 0)
			return NULL;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return kb_errno(errno, "cannot copy %s", what);
		break;
	}
	char buf[65536];
	for (;;) {
		size_t got;
		kb_err *err = kb_read_full(in, buf, sizeof buf, &got, what);
		if (!err && got)
			err = kb_write_all(out, buf, got, what);
		if (err || got < sizeof buf)
			return err;
	}
}

static kb_err *copy_obj(kb_store *s, const kb_hash *h, int dirfd, const char *name,
			mode_t mode)
{
	int in;
	kb_err *err = kb_store_open_object(s, h, &in);
	if (err)
		return err;
	int out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		err = kb_errno(errno, "cannot create %s", name);
	else {
		err = copy_fd(in, out, name);
		if (!err && fchmod(out, mode) < 0)
			err = kb_errno(errno, "cannot set the mode of %s", name);
		if (close(out) < 0 && !err)
			err = kb_errno(errno, "cannot close %s", name);
	}
	close(in);
	return err;
}

/* The same content is stored once per mode bit that a checkout needs: a
 * hardlink shares its inode's mode. */
static kb_err *ensure_variant(kb_store *s, const kb_hash *h, int exec)
{
	char tmp[64], name[OBJ_NAME_MAX];
	snprintf(tmp, sizeof tmp, "v-%ld-%u", (long)getpid(), store_seq(s));
	obj_name(h, exec, name);
	kb_err *err = copy_obj(s, h, s->tmpfd, tmp, exec ? 0555 : 0444);
	int fd = err ? -1 : openat(s->tmpfd, tmp, O_RDONLY | O_CLOEXEC);
	if (!err && (fd < 0 || fsync(fd) < 0))
		err = kb_errno(errno, "cannot sync %s/tmp/%s", s->path, tmp);
	if (fd >= 0)
		close(fd);
	if (!err && renameat(s->tmpfd, tmp, s->objfd, name) < 0)
		err = kb_errno(errno, "cannot move %s into the store", name);
	if (err)
		unlinkat(s->tmpfd, tmp, 0);
	return err;
}

static kb_err *co_file(struct co *c, const kb_hash *h, int exec, int dirfd, const char *name)
{
	mode_t ro = exec ? 0555 : 0444;
	if (c->flags & KB_CHECKOUT_COPY)
		return copy_obj(c->s, h, dirfd, name, exec ? 0755 : 0644);
	char obj[OBJ_NAME_MAX];
	obj_name(h, exec, obj);
	for (int tries = 0;; tries++) {
		if (linkat(c->s->objfd, obj, dirfd, name, 0) == 0)
			return NULL;
		if (errno == ENOENT && tries == 0 && kb_store_has(c->s, h)) {
			kb_err *err = ensure_variant(c->s, h, exec);
			if (err)
				return err;
			continue;
		}
		if (errno == EMLINK || errno == EXDEV || errno == EPERM)
			return copy_obj(c->s, h, dirfd, name, ro);
		if (errno == ENOENT) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(h, hex);
			return kb_errf("object %s is not in the store %s (run 'kbuild store fsck')",
				       hex, c->s->path);
		}
		return kb_errno(errno, "cannot link %s", name);
	}
}

static kb_err *co_link(struct co *c, const kb_hash *h, int dirfd, const char *name)
{
	kb_buf b = {0};
	kb_err *err = kb_store_read(c->s, h, 4095, &b);
	if (!err && (b.len == 0 || memchr(b.p, 0, b.len)))
		err = kb_errf("symlink %s has a malformed target", name);
	if (!err && symlinkat(b.p, dirfd, name) < 0)
		err = kb_errno(errno, "cannot create symlink %s", name);
	kb_buf_free(&b);
	return err;
}

static kb_err *co_tree(struct co *c, const kb_hash *h, int dirfd)
{
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(c->s, h, &t);
	for (size_t i = 0; !err && i < t.n; i++) {
		const kb_tree_entry *e = &t.e[i];
		char *name = kb_strndup(e->name, e->namelen);
		switch (e->type) {
		case KB_ENT_FILE:
		case KB_ENT_EXEC:
			err = co_file(c, &e->hash, e->type == KB_ENT_EXEC, dirfd, name);
			break;
		case KB_ENT_LINK:
			err = co_link(c, &e->hash, dirfd, name);
			break;
		case KB_ENT_DIR: {
			int fd = -1;
			if (mkdirat(dirfd, name, 0755) < 0 || fchmodat(dirfd, name, 0755, 0) < 0 ||
			    (fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							      O_CLOEXEC)) < 0)
				err = kb_errno(errno, "cannot create directory %s", name);
			else
				err = co_tree(c, &e->hash, fd);
			if (fd >= 0)
				close(fd);
			break;
		}
		}
		if (err)
			err = kb_err_wrap(err, "%s", name);
		free(name);
	}
	kb_tree_free(&t);
	return err;
}

kb_err *kb_store_checkout(kb_store *s, const kb_oid *o, const char *dest, int flags)
{
	char *abs = kb_abspath(dest);
	struct stat st;
	kb_err *err = NULL;
	if (lstat(abs, &st) == 0) {
		int empty_dir = 0;
		if (S_ISDIR(st.st_mode) && o->type == KB_TREE)
			empty_dir = rmdir(abs) == 0 || (errno != ENOTEMPTY && errno != EEXIST);
		if (!empty_dir)
			err = kb_errf("%s exists; checkout writes a new path (remove it or pick "
				      "another)", abs);
		else if (mkdir(abs, 0755) < 0) /* rmdir'd only to test emptiness */
			err = kb_errno(errno, "cannot recreate %s", abs);
	}
	if (err) {
		free(abs);
		return err;
	}
	char *tmp = kb_asprintf("%s.kbuild-tmp-%ld", abs, (long)getpid());
	char *dircopy = kb_strdup(tmp), *base = basename(dircopy);
	char *pcopy = kb_strdup(tmp), *parent = dirname(pcopy);
	int lockfd = -1, pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct co c = {s, flags};
	if (pfd < 0)
		err = kb_errno(errno, "cannot open %s", parent);
	if (!err)
		err = store_lock(s, 0, &lockfd);
	if (!err && o->type == KB_TREE) {
		int fd = -1;
		if (mkdirat(pfd, base, 0755) < 0 || fchmodat(pfd, base, 0755, 0) < 0 ||
		    (fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			err = kb_errno(errno, "cannot create %s", tmp);
		else
			err = co_tree(&c, &o->hash, fd);
		if (fd >= 0)
			close(fd);
	} else if (!err) {
		err = co_file(&c, &o->hash, 0, pfd, base);
	}
	store_unlock(lockfd);
	if (!err && rename(tmp, abs) < 0)
		err = kb_errno(errno, "cannot move the checkout into place at %s", abs);
	if (err && pfd >= 0) {
		kb_err *e2 = kb_remove_tree(pfd, base);
		if (e2)
			kb_err_free(e2);
	}
	if (pfd >= 0)
		close(pfd);
	free(dircopy);
	free(pcopy);
	free(tmp);
	free(abs);
	return err;
}

/* FILE.tmp-XXXXXX beside out, 0644 whatever the umask, renamed into place */
kb_err *kb_store_write_file(kb_store *s, const kb_hash *h, const char *out)
{
	char *tmp = kb_asprintf("%s.tmp-XXXXXX", out);
	int fd = mkostemp(tmp, O_CLOEXEC);
	kb_err *err = NULL;
	if (fd < 0) {
		err = kb_errno(errno, "cannot create %s (does its directory exist?)", out);
		free(tmp);
		return err;
	}
	if (fchmod(fd, 0644) < 0)
		err = kb_errno(errno, "cannot set the mode of %s", tmp);
	if (!err)
		err = kb_store_cat(s, h, fd);
	if (!err && fsync(fd) < 0)
		err = kb_errno(errno, "cannot write %s", tmp);
	if (close(fd) < 0 && !err)
		err = kb_errno(errno, "cannot write %s", tmp);
	if (!err && rename(tmp, out) < 0)
		err = kb_errno(errno, "cannot rename %s to %s", tmp, out);
	if (err)
		unlink(tmp);
	free(tmp);
	return err;
}

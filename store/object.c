/* Opening a store, object names, the store lock, and transactions that
 * stage objects in tmp/ and publish them with two syncs. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER "kbuild-store 1\n"

const char *kb_objtype_name(kb_objtype t)
{
	return t == KB_TREE ? "tree" : t == KB_BLOB ? "blob" : "none";
}

void kb_oid_fmt(const kb_oid *o, char out[5 + KB_HEX_LEN + 1])
{
	memcpy(out, kb_objtype_name(o->type), 4);
	out[4] = ' ';
	kb_hash_hex(&o->hash, out + 5);
}

kb_err *kb_oid_parse(const char *s, size_t len, kb_oid *out)
{
	if (len == 5 + KB_HEX_LEN && s[4] == ' ' &&
	    kb_hash_parse(s + 5, KB_HEX_LEN, &out->hash) == 0) {
		if (!memcmp(s, "tree", 4)) {
			out->type = KB_TREE;
			return NULL;
		}
		if (!memcmp(s, "blob", 4)) {
			out->type = KB_BLOB;
			return NULL;
		}
	}
	char *q = kb_quote(s, len);
	kb_err *e = kb_errf("'%s' is not 'tree HASH' or 'blob HASH'", q);
	free(q);
	return e;
}

void obj_name(const kb_hash *h, int exec, char out[OBJ_NAME_MAX])
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex + 2, KB_HEX_LEN - 2);
	size_t n = 3 + KB_HEX_LEN - 2;
	if (exec) {
		out[n++] = '.';
		out[n++] = 'x';
	}
	out[n] = 0;
}

int obj_parse(const char *shard, const char *name, kb_hash *h, int *exec)
{
	size_t n = strlen(name);
	*exec = 0;
	if (n == KB_HEX_LEN && !strcmp(name + n - 2, ".x")) {
		*exec = 1;
		n -= 2;
	}
	if (n != KB_HEX_LEN - 2 || strlen(shard) != 2)
		return -1;
	char hex[KB_HEX_LEN];
	memcpy(hex, shard, 2);
	memcpy(hex + 2, name, n);
	return kb_hash_parse(hex, KB_HEX_LEN, h);
}

char *kb_store_default_path(void)
{
	const char *env = getenv("KBUILD_STORE");
	if (env && *env)
		return kb_strdup(env);
	const char *xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg)
		return kb_asprintf("%s/kbuild/store", xdg);
	const char *home = getenv("HOME");
	return kb_asprintf("%s/.local/share/kbuild/store", home && *home ? home : "/");
}

static const char *const layout[] = {"objects", "ac", "refs", "roots", "tmp"};

/* A directory holding only what an interrupted initialisation leaves. */
static kb_err *check_empty_or_partial(int dirfd, const char *path)
{
	int fd = dup(dirfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return kb_errno(errno, "cannot read %s", path);
	}
	kb_err *err = NULL;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		const char *n = de->d_name;
		int ok = !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "lock") ||
			 !strncmp(n, "kbuild-store.tmp-", 17);
		for (size_t i = 0; i < sizeof layout / sizeof *layout; i++)
			ok |= !strcmp(n, layout[i]);
		if (!ok)
			err = kb_errf("%s is not empty and is not a kbuild store (found '%s'); "
				      "pass --store with a new or empty directory",
				      path, n);
	}
	closedir(d);
	return err;
}

static int has_marker(int dirfd)
{
	return faccessat(dirfd, "kbuild-store", F_OK, 0) == 0;
}

static kb_err *init_locked(int dirfd, const char *path)
{
	if (has_marker(dirfd)) /* another kbuild made it while we waited */
		return NULL;
	kb_err *err = check_empty_or_partial(dirfd, path);
	if (err)
		return err;
	for (size_t i = 0; i < sizeof layout / sizeof *layout; i++)
		if (mkdirat(dirfd, layout[i], 0755) < 0 && errno != EEXIST)
			return kb_errno(errno, "cannot create %s/%s", path, layout[i]);
	int fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return kb_errno(errno, "cannot create %s/lock", path);
	close(fd);
	if (syncfs(dirfd) < 0)
		return kb_errno(errno, "cannot sync %s", path);
	/* the marker last: a store without it is re-initialised */
	return kb_write_file_atomic(dirfd, "kbuild-store", MARKER, strlen(MARKER), 0444);
}

/* Two kbuilds creating one store at once take turns (flock on the store
 * directory itself, which nothing else locks): the second finds the marker. */
static kb_err *init_store(int dirfd, const char *path)
{
	while (flock(dirfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return kb_errno(errno, "cannot lock %s to create the store", path);
	kb_err *err = init_locked(dirfd, path);
	flock(dirfd, LOCK_UN);
	return err;
}

static kb_err *opendir_at(int dirfd, const char *store, const char *name, int *fd)
{
	*fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return kb_errno(errno, "damaged store %s: cannot open %s/ (run 'kbuild store fsck')",
				store, name);
	return NULL;
}

kb_err *kb_store_open(const char *dir, int create, kb_store **out)
{
	char *path = kb_abspath(dir);
	kb_err *err = NULL;
	if (create && (err = kb_mkdir_p(path, 0755))) {
		free(path);
		return err;
	}
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOENT && !create)
			err = kb_errf("no kbuild store at %s (it is created by the first "
				      "command that writes, e.g. 'kbuild store add')", path);
		else
			err = kb_errno(errno, "cannot open store %s", path);
		free(path);
		return err;
	}
	kb_buf marker = {0};
	err = kb_read_file(dirfd, "kbuild-store", 64, &marker);
	if (err) {
		kb_err_free(err);
		err = NULL;
		if (!create) {
			/* reading commands do not create stores, but say why */
			if (check_empty_or_partial(dirfd, path) == NULL)
				err = kb_errf("no kbuild store at %s (it is created by the first "
					      "command that writes, e.g. 'kbuild store add')", path);
			else
				err = kb_errf("%s is not a kbuild store", path);
		} else {
			err = init_store(dirfd, path);
		}
	} else if (marker.len != strlen(MARKER) || memcmp(marker.p, MARKER, marker.len)) {
		err = kb_errf("%s/kbuild-store names a store format this kbuild (%s) does not "
			      "know", path, KB_VERSION);
	}
	kb_buf_free(&marker);
	if (err) {
		close(dirfd);
		free(path);
		return err;
	}
	kb_store *s = kb_calloc(1, sizeof *s);
	s->path = path;
	s->dirfd = dirfd;
	s->objfd = s->tmpfd = s->reffd = s->acfd = s->rootsdir = s->rootsfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	if ((err = opendir_at(dirfd, path, "objects", &s->objfd)) ||
	    (err = opendir_at(dirfd, path, "tmp", &s->tmpfd)) ||
	    (err = opendir_at(dirfd, path, "refs", &s->reffd)) ||
	    (err = opendir_at(dirfd, path, "ac", &s->acfd)) ||
	    (err = opendir_at(dirfd, path, "roots", &s->rootsdir))) {
		kb_store_close(s);
		return err;
	}
	*out = s;
	return NULL;
}

void kb_store_close(kb_store *s)
{
	if (!s)
		return;
	int fds[] = {s->dirfd, s->objfd, s->tmpfd, s->reffd, s->acfd, s->rootsdir};
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* our roots die with us: gc removes a roots file nobody holds */
	if (s->rootsfd >= 0)
		close(s->rootsfd);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}

const char *kb_store_path(const kb_store *s) { return s->path; }

/* Shard directories (objects/ab, ac/ab) appear with their first entry:
 * a new store costs two directories, not 514. Racing writers both succeed. */
kb_err *store_shard(int parentfd, const char *name_in_shard)
{
	char shard[3] = {name_in_shard[0], name_in_shard[1], 0};
	if (mkdirat(parentfd, shard, 0755) < 0 && errno != EEXIST)
		return kb_errno(errno, "cannot create shard directory %s", shard);
	return NULL;
}

unsigned store_seq(kb_store *s)
{
	return __atomic_fetch_add(&s->seq, 1, __ATOMIC_RELAXED);
}

kb_err *store_lock(kb_store *s, int exclusive, int *out)
{
	int fd = openat(s->dirfd, "lock", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot open %s/lock", s->path);
	int op = exclusive ? LOCK_EX : LOCK_SH;
	if (flock(fd, op | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			close(fd);
			return kb_errno(errno, "cannot lock %s/lock", s->path);
		}
		kb_info(exclusive ? "waiting for other kbuild processes to finish writing to %s"
				  : "waiting for garbage collection of %s to finish",
			s->path);
		while (flock(fd, op) < 0) {
			if (errno != EINTR) {
				close(fd);
				return kb_errno(errno, "cannot lock %s/lock", s->path);
			}
		}
	}
	*out = fd;
	return NULL;
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the last descriptor drops the flock */
}

kb_err *store_write_atomic(kb_store *s, int dirfd, const char *name, const void *p,
			   size_t n)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, "w-%ld-%u", (long)getpid(), store_seq(s));
	int fd = openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return kb_errno(errno, "cannot create %s/tmp/%s", s->path, tmp);
	kb_err *err = kb_write_all(fd, p, n, tmp);
	if (!err && fsync(fd) < 0)
		err = kb_errno(errno, "cannot sync %s/tmp/%s", s->path, tmp);
	if (close(fd) < 0 && !err)
		err = kb_errno(errno, "cannot close %s/tmp/%s", s->path, tmp);
	if (!err && renameat(s->tmpfd, tmp, dirfd, name) < 0)
		err = kb_errno(errno, "cannot move %s into place", name);
	if (err) {
		unlinkat(s->tmpfd, tmp, 0);
		return err;
	}
	return kb_fsync_dir(dirfd, name);
}

/* ---- reading ---- */

static int open_obj(kb_store *s, const kb_hash *h)
{
	char name[OBJ_NAME_MAX];
	obj_name(h, 0, name);
	int fd = openat(s->objfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		obj_name(h, 1, name);
		fd = openat(s->objfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	return fd;
}

int kb_store_has(kb_store *s, const kb_hash *h)
{
	char name[OBJ_NAME_MAX];
	struct stat st;
	obj_name(h, 0, name);
	if (fstatat(s->objfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	obj_name(h, 1, name);
	return fstatat(s->objfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

kb_err *kb_store_open_object(kb_store *s, const kb_hash *h, int *fd)
{
	*fd = open_obj(s, h);
	if (*fd >= 0)
		return NULL;
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	if (errno == ENOENT)
		return kb_errf("object %s is not in the store %s", hex, s->path);
	return kb_errno(errno, "cannot open object %s", hex);
}

kb_err *kb_store_read(kb_store *s, const kb_hash *h, size_t max, kb_buf *out)
{
	int fd;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return err;
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	struct stat st;
	if (fstat(fd, &st) < 0)
		err = kb_errno(errno, "cannot stat object %s", hex);
	else if ((uint64_t)st.st_size > max)
		err = kb_errf("object %s is %lld bytes, more than the %zu expected here", hex,
			      (long long)st.st_size, max);
	else {
		size_t start = out->len, got;
		kb_buf_add(out, NULL, 0);
		out->p = kb_realloc(out->p, start + (size_t)st.st_size + 2);
		out->cap = start + (size_t)st.st_size + 2;
		err = kb_read_full(fd, out->p + start, (size_t)st.st_size + 1, &got, hex);
		if (!err && got != (size_t)st.st_size)
			err = kb_errf("object %s changed size while being read", hex);
		if (!err) {
			out->len = start + got;
			out->p[out->len] = 0;
		}
	}
	close(fd);
	return err;
}

kb_err *kb_store_cat(kb_store *s, const kb_hash *h, int outfd)
{
	int fd;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return err;
	static char buf[1 << 16];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = kb_errno(errno, "cannot read object");
			break;
		}
		if (r == 0)
			break;
		if ((err = kb_write_all(outfd, buf, (size_t)r, "standard output")))
			break;
	}
	close(fd);
	return err;
}

kb_err *kb_store_resolve(kb_store *s, const char *arg, kb_oid *out)
{
	if (kb_hash_parse(arg, strlen(arg), &out->hash) == 0) {
		if (!kb_store_has(s, &out->hash))
			return kb_errf("object %s is not in the store %s", arg, s->path);
		out->type = KB_BLOB;
		int fd = open_obj(s, &out->hash);
		char head[TREE_MAGIC_LEN];
		size_t got = 0;
		kb_err *err = fd < 0 ? kb_errno(errno, "cannot open object %s", arg)
				     : kb_read_full(fd, head, sizeof head, &got, arg);
		if (fd >= 0)
			close(fd);
		if (err)
			return err;
		if (got == TREE_MAGIC_LEN && !memcmp(head, TREE_MAGIC, TREE_MAGIC_LEN)) {
			kb_tree t;
			if ((err = kb_store_read_tree(s, &out->hash, &t)) == NULL) {
				out->type = KB_TREE;
				kb_tree_free(&t);
			} else {
				kb_err_free(err);
			}
		}
		return NULL;
	}
	kb_err *err = kb_ref_check_name(arg);
	if (err) {
		kb_err_free(err);
		char *q = kb_quote(arg, strlen(arg));
		err = kb_usage("'%s' is neither a 64-digit hash nor a ref name", q);
		free(q);
		return err;
	}
	int found;
	if ((err = kb_ref_get(s, arg, out, &found)))
		return err;
	if (!found)
		return kb_errf("no ref named '%s' in %s (list them with 'kbuild store ref list')",
			       arg, s->path);
	return NULL;
}

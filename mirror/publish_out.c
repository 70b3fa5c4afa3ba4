/* The output directory of a publish: files written only when their bytes
 * change (a client that has them keeps valid caches, and a republish
 * costs what changed), each beside its final name and renamed over it;
 * pool files hardlinked from the store; what a publish neither wrote
 * nor kept removed at its end. */
#include "publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* A copied (not linked) pool file carries this mtime: with its size it is
 * the quick check (as rsync's) that spares reading a package again to
 * see that it is the one wanted. An edit moves the mtime. */
#define COPY_MTIME 1

kb_err *kb_pubout_open(const char *path, kb_publish_stats *st, kb_pubout *o)
{
	memset(o, 0, sizeof *o);
	o->dirfd = -1;
	kb_err *err = kb_mkdir_p(path, 0755);
	if (err)
		return kb_err_wrap(err, "output directory %s", path);
	if ((o->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return kb_errno(errno, "cannot open output directory %s", path);
	o->path = path;
	o->st = st;
	o->keep = kb_hset_new();
	return NULL;
}

void kb_pubout_close(kb_pubout *o)
{
	if (o->dirfd >= 0)
		close(o->dirfd);
	o->dirfd = -1;
	kb_hset_free(o->keep);
	o->keep = NULL;
}

void kb_pubout_keep(kb_pubout *o, const char *rel)
{
	kb_hash h;
	kb_sha256(rel, strlen(rel), &h);
	kb_hset_add(o->keep, &h);
}

int kb_pubout_exists(kb_pubout *o, const char *rel)
{
	struct stat st;
	return fstatat(o->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static kb_err *parents(kb_pubout *o, const char *rel)
{
	const char *slash = strrchr(rel, '/');
	if (!slash)
		return NULL;
	char *dir = kb_asprintf("%s/%.*s", o->path, (int)(slash - rel), rel);
	kb_err *err = kb_mkdir_p(dir, 0755);
	free(dir);
	return err;
}

/* 1 if rel holds exactly p[0..n) */
static int same_content(kb_pubout *o, const char *rel, const void *p, size_t n)
{
	int fd = openat(o->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	struct stat st;
	int same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == n;
	char buf[1 << 16];
	for (size_t off = 0; same && off < n;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0 || (size_t)r > n - off || memcmp(buf, (const char *)p + off, (size_t)r))
			same = 0;
		else
			off += (size_t)r;
	}
	close(fd);
	return same;
}

kb_err *kb_pubout_file(kb_pubout *o, const char *rel, const void *p, size_t n)
{
	kb_pubout_keep(o, rel);
	if (same_content(o, rel, p, n))
		return NULL;
	kb_err *err = parents(o, rel);
	if (!err)
		err = kb_write_file_atomic(o->dirfd, rel, p, n, 0644);
	if (err)
		return kb_err_wrap(err, "output directory %s", o->path);
	o->st->written++;
	return NULL;
}

static kb_err *copy_fd(int in, int out, const char *what)
{
	for (;;) {
		ssize_t r = sendfile(out, in, NULL, 1 << 30);
		if (r == 0)
			return NULL;
		if (r < 0)
			return kb_errno(errno, "cannot copy into %s", what);
	}
}

kb_err *kb_pubout_link(kb_pubout *o, kb_store *s, const kb_hash *h, const char *rel)
{
	kb_pubout_keep(o, rel);
	int fd = -1;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return err;
	struct stat obj, cur;
	if (fstat(fd, &obj) < 0) {
		err = kb_errno(errno, "cannot stat the store's copy of %s", rel);
		close(fd);
		return err;
	}
	if (fstatat(o->dirfd, rel, &cur, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(cur.st_mode) &&
	    ((cur.st_dev == obj.st_dev && cur.st_ino == obj.st_ino) ||
	     (cur.st_size == obj.st_size && cur.st_mtim.tv_sec == COPY_MTIME &&
	      cur.st_mtim.tv_nsec == 0))) {
		close(fd);
		return NULL;
	}
	if ((err = parents(o, rel))) {
		close(fd);
		return kb_err_wrap(err, "output directory %s", o->path);
	}
	char *tmp = kb_asprintf("%s.tmp-%ld", rel, (long)getpid());
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	unlinkat(o->dirfd, tmp, 0);
	if (linkat(AT_FDCWD, proc, o->dirfd, tmp, AT_SYMLINK_FOLLOW) < 0) {
		/* another file system, or links to files of others refused
		 * (fs.protected_hardlinks): a copy, marked for the quick check */
		int e = errno;
		if (e != EXDEV && e != EPERM && e != EMLINK)
			err = kb_errno(e, "cannot link %s/%s to the store", o->path, tmp);
		int out = -1;
		if (!err && (out = openat(o->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
					  0444)) < 0)
			err = kb_errno(errno, "cannot create %s/%s", o->path, tmp);
		if (!err)
			err = copy_fd(fd, out, tmp);
		struct timespec t[2] = {{COPY_MTIME, 0}, {COPY_MTIME, 0}};
		if (!err && (fsync(out) < 0 || futimens(out, t) < 0))
			err = kb_errno(errno, "cannot finish %s/%s", o->path, tmp);
		if (out >= 0)
			close(out);
	}
	if (!err && renameat(o->dirfd, tmp, o->dirfd, rel) < 0)
		err = kb_errno(errno, "cannot rename %s/%s into place", o->path, tmp);
	if (err)
		unlinkat(o->dirfd, tmp, 0);
	else
		o->st->linked++;
	free(tmp);
	close(fd);
	return err;
}

static kb_err *prune(kb_pubout *o, const char *dir, int depth)
{
	if (depth > 16)
		return kb_errf("%s/%s: directories nest too deep to be a repository's", o->path, dir);
	struct stat dst;
	if (fstatat(o->dirfd, dir, &dst, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return NULL;
	DIR *d;
	kb_err *err = kb_opendir_at(o->dirfd, dir, &d);
	if (err)
		return err;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *rel = kb_asprintf("%s/%s", dir, de->d_name);
		struct stat st;
		if (fstatat(o->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			err = kb_errno(errno, "cannot stat %s/%s", o->path, rel);
		} else if (S_ISDIR(st.st_mode)) {
			err = prune(o, rel, depth + 1);
			if (!err)
				unlinkat(o->dirfd, rel, AT_REMOVEDIR); /* if empty now */
		} else {
			kb_hash h;
			kb_sha256(rel, strlen(rel), &h);
			if (!kb_hset_has(o->keep, &h)) {
				if (unlinkat(o->dirfd, rel, 0) < 0)
					err = kb_errno(errno, "cannot remove %s/%s", o->path, rel);
				else
					o->st->removed++;
			}
		}
		free(rel);
	}
	closedir(d);
	return err;
}

kb_err *kb_pubout_prune(kb_pubout *o, const char *dir)
{
	kb_err *err = prune(o, dir, 0);
	if (!err)
		err = kb_fsync_dir(o->dirfd, o->path);
	return err;
}

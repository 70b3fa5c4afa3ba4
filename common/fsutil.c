/* Careful file I/O: full reads and writes, atomic replacement (temp file,
 * fsync, rename, directory fsync), recursive removal. */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kb_err *kb_write_all(int fd, const void *p, size_t n, const char *what)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return kb_errno(errno, "cannot write %s", what);
		}
		c += w;
		n -= (size_t)w;
	}
	return NULL;
}

kb_err *kb_read_full(int fd, void *p, size_t n, size_t *got, const char *what)
{
	char *c = p;
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, c + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return kb_errno(errno, "cannot read %s", what);
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return NULL;
}

kb_err *kb_read_file(int dirfd, const char *path, size_t max, kb_buf *out)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot open %s", path);
	kb_err *err = NULL;
	char tmp[65536];
	for (;;) {
		size_t got;
		if ((err = kb_read_full(fd, tmp, sizeof tmp, &got, path)))
			break;
		if (out->len + got > max) {
			err = kb_errf("%s is larger than %zu bytes", path, max);
			break;
		}
		kb_buf_add(out, tmp, got);
		if (got < sizeof tmp)
			break;
	}
	close(fd);
	return err;
}

kb_err *kb_fsync_dir(int dirfd, const char *what)
{
	if (fsync(dirfd) < 0)
		return kb_errno(errno, "cannot sync directory %s", what);
	return NULL;
}

kb_err *kb_write_file_atomic(int dirfd, const char *name, const void *p, size_t n,
			     mode_t mode)
{
	static unsigned counter;
	char tmp[512];
	int len = snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", name, (long)getpid(),
			   __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	if (len < 0 || (size_t)len >= sizeof tmp)
		return kb_errf("file name too long: %s", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return kb_errno(errno, "cannot create %s", tmp);
	kb_err *err = kb_write_all(fd, p, n, tmp);
	if (!err && fsync(fd) < 0)
		err = kb_errno(errno, "cannot sync %s", tmp);
	if (close(fd) < 0 && !err)
		err = kb_errno(errno, "cannot close %s", tmp);
	if (!err && renameat(dirfd, tmp, dirfd, name) < 0)
		err = kb_errno(errno, "cannot rename %s to %s", tmp, name);
	if (err) {
		unlinkat(dirfd, tmp, 0);
		return err;
	}
	return kb_fsync_dir(dirfd, name);
}

kb_err *kb_opendir_at(int dirfd, const char *name, DIR **out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*out = fd < 0 ? NULL : fdopendir(fd);
	if (*out)
		return NULL;
	kb_err *err = kb_errno(errno, "cannot read directory %s", name);
	if (fd >= 0)
		close(fd);
	return err;
}

kb_err *kb_mkdir_p(const char *path, mode_t mode)
{
	char *p = kb_strdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			kb_err *e = kb_errno(errno, "cannot create directory %s", p);
			free(p);
			return e;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return NULL;
}

kb_err *kb_remove_tree(int at, const char *name)
{
	if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
		return NULL;
	if (errno != EISDIR && errno != EPERM)
		return kb_errno(errno, "cannot remove %s", name);
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot open directory %s", name);
	/* read-only directories (checkouts) must become writable first */
	fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return kb_errno(errno, "cannot read directory %s", name);
	}
	kb_err *err = NULL;
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		err = kb_remove_tree(dirfd(d), de->d_name);
	}
	closedir(d);
	if (!err && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		err = kb_errno(errno, "cannot remove directory %s", name);
	return err;
}

char *kb_abspath(const char *path)
{
	kb_buf b = {0};
	if (path[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (!cwd)
			cwd = kb_strdup("/");
		kb_buf_adds(&b, cwd);
		free(cwd);
	}
	kb_buf_addc(&b, '/');
	kb_buf_adds(&b, path);
	/* collapse "//", "/./" and "/x/../" lexically */
	char *in = kb_buf_steal(&b), *out = kb_malloc(strlen(in) + 2);
	size_t o = 0;
	for (char *s = in; *s;) {
		while (*s == '/')
			s++;
		char *e = s;
		while (*e && *e != '/')
			e++;
		size_t n = (size_t)(e - s);
		if (n == 0 || (n == 1 && s[0] == '.')) {
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			out[o++] = '/';
			memcpy(out + o, s, n);
			o += n;
		}
		s = e;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = 0;
	free(in);
	return out;
}

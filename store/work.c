/* Work directories: scratch space on the store's file system, so that
 * checkouts into it can hardlink objects. Each is work/NAME with a lock
 * file work/NAME.lock that its owner holds (flock) while it lives; a
 * directory whose lock nobody holds was left by a killed process and is
 * removed by the next kbuild that makes one, or by gc. They hold no
 * objects of their own: nothing in them is ever published as is. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct kb_workdir {
	kb_store *s;
	char *path;
	char *name;
	int lockfd;
};

static kb_err *open_work(kb_store *s, int *fd)
{
	if (mkdirat(s->dirfd, "work", 0755) < 0 && errno != EEXIST)
		return kb_errno(errno, "cannot make %s/work", s->path);
	*fd = openat(s->dirfd, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? kb_errno(errno, "cannot open %s/work", s->path) : NULL;
}

kb_err *store_clean_work(kb_store *s, size_t *count)
{
	int wfd;
	if (faccessat(s->dirfd, "work", F_OK, 0) < 0)
		return NULL;
	kb_err *err = open_work(s, &wfd);
	if (err)
		return err;
	DIR *d = fdopendir(dup(wfd));
	if (!d) {
		close(wfd);
		return kb_errno(errno, "cannot read %s/work", s->path);
	}
	struct dirent *de;
	while (!err && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".lock"))
			continue;
		int fd = openat(wfd, de->d_name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			char *dir = kb_strndup(de->d_name, n - 5);
			/* the owner is gone: the directory first, then its lock,
			 * so a crash in between leaves a lock to find next time */
			err = kb_remove_tree(wfd, dir);
			if (!err && unlinkat(wfd, de->d_name, 0) < 0 && errno != ENOENT)
				err = kb_errno(errno, "cannot remove %s/work/%s", s->path, de->d_name);
			if (!err && count)
				(*count)++;
			free(dir);
		}
		close(fd);
	}
	closedir(d);
	close(wfd);
	return err;
}

kb_err *kb_workdir_new(kb_store *s, const char *prefix, kb_workdir **out)
{
	kb_err *err = store_clean_work(s, NULL);
	int wfd;
	if (err || (err = open_work(s, &wfd)))
		return err;
	kb_workdir *w = kb_calloc(1, sizeof *w);
	w->s = s;
	w->lockfd = -1;
	for (int tries = 0; !err && w->lockfd < 0; tries++) {
		unsigned char rnd[6];
		kb_hash h;
		char hex[KB_HEX_LEN + 1];
		if (getentropy(rnd, sizeof rnd) < 0) {
			err = kb_errno(errno, "getentropy");
			break;
		}
		kb_sha256(rnd, sizeof rnd, &h);
		kb_hash_hex(&h, hex);
		free(w->name);
		w->name = kb_asprintf("%s-%.12s", prefix, hex);
		char *lock = kb_asprintf("%s.lock", w->name);
		int fd = openat(wfd, lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno == EEXIST && tries < 10) {
			free(lock);
			continue;
		}
		if (fd < 0)
			err = kb_errno(errno, "cannot make %s/work/%s", s->path, lock);
		else if (flock(fd, LOCK_EX) < 0 || mkdirat(wfd, w->name, 0755) < 0) {
			err = kb_errno(errno, "cannot make %s/work/%s", s->path, w->name);
			unlinkat(wfd, lock, 0);
			close(fd);
		} else
			w->lockfd = fd;
		free(lock);
	}
	close(wfd);
	if (err) {
		free(w->name);
		free(w);
		return err;
	}
	w->path = kb_asprintf("%s/work/%s", s->path, w->name);
	*out = w;
	return NULL;
}

const char *kb_workdir_path(const kb_workdir *w) { return w->path; }

void kb_workdir_free(kb_workdir *w)
{
	if (!w)
		return;
	int wfd;
	kb_err *err = open_work(w->s, &wfd);
	if (!err) {
		err = kb_remove_tree(wfd, w->name);
		char *lock = kb_asprintf("%s.lock", w->name);
		if (!err)
			unlinkat(wfd, lock, 0);
		free(lock);
		close(wfd);
	}
	if (err) { /* left for the next kbuild to clean: it is unlocked below */
		kb_warn("%s", err->msg);
		kb_err_free(err);
	}
	close(w->lockfd);
	free(w->path);
	free(w->name);
	free(w);
}

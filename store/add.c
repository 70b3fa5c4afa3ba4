/* Adding files and directory trees from disk. The walk is one thread; file
 * contents are hashed and staged by a small pool, since a source tree is
 * mostly small files whose cost is system calls, not hashing. A
 * directory's tree object is made by whichever worker finishes its last
 * file or subdirectory, so trees are stored while files still are, not
 * one by one after them. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SMALL_FILE (256u << 10)
#define MAX_WORKERS 4

struct dnode {
	kb_tree_entry *e;
	struct dnode **sub; /* parallel to e: the subdirectory, if any */
	size_t n;
	struct dnode *parent;
	kb_hash *dst;	/* where its tree's hash goes: the parent's entry */
	size_t pending; /* files and subdirectories not yet stored (atomic) */
};

struct job {
	char *path;
	kb_tree_entry *ent;
	struct dnode *dir;
};

struct walk {
	kb_txn *t;
	struct job *jobs;
	size_t njobs, cap;
	struct dnode **ready; /* directories with no file or subdirectory */
	size_t nready, capready;
	size_t next, done; /* atomics */
	int failed;
	kb_err *err;
	pthread_mutex_t mu;
	int progress;
};

static void set_err(struct walk *w, kb_err *err)
{
	pthread_mutex_lock(&w->mu);
	if (!w->err)
		w->err = err;
	else
		kb_err_free(err);
	__atomic_store_n(&w->failed, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&w->mu);
}

static kb_err *add_file(kb_txn *t, const char *path, char *buf, kb_tree_entry *ent)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot read %s", path);
	struct stat st;
	kb_err *err = NULL;
	if (fstat(fd, &st) < 0)
		err = kb_errno(errno, "cannot stat %s", path);
	else if (!S_ISREG(st.st_mode))
		err = kb_errf("%s changed while being added (no longer a regular file)", path);
	if (err) {
		close(fd);
		return err;
	}
	int exec = (st.st_mode & S_IXUSR) != 0;
	ent->type = exec ? KB_ENT_EXEC : KB_ENT_FILE;
	if (st.st_size < (off_t)SMALL_FILE) {
		/* one read when it returns the size fstat gave; a file that changes
		 * while being added is the caller's race either way */
		ssize_t got = read(fd, buf, SMALL_FILE);
		if (got < 0)
			err = kb_errno(errno, "cannot read %s", path);
		else if (got != st.st_size && got < (ssize_t)SMALL_FILE) {
			size_t more = 0;
			err = kb_read_full(fd, buf + got, SMALL_FILE - (size_t)got, &more, path);
			got += (ssize_t)more;
		}
		if (!err && got < (ssize_t)SMALL_FILE) {
			err = kb_txn_add_bytes(t, buf, (size_t)got, exec, &ent->hash);
			close(fd);
			return err ? kb_err_wrap(err, "%s", path) : NULL;
		}
		/* it grew while we read: stream it from the start */
		if (!err && lseek(fd, 0, SEEK_SET) < 0)
			err = kb_errno(errno, "cannot seek %s", path);
	}
	if (!err)
		err = kb_txn_add_fd(t, fd, exec, path, &ent->hash);
	close(fd);
	return err ? kb_err_wrap(err, "cannot add %s", path) : NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* d is complete: its tree is stored, and so, in turn, each parent whose
 * last pending entry it was */
static void finish(struct walk *w, struct dnode *d)
{
	for (;;) {
		kb_err *err = kb_txn_add_tree(w->t, d->e, d->n, d->dst);
		if (err) {
			set_err(w, err);
			return;
		}
		if (!(d = d->parent) || __atomic_sub_fetch(&d->pending, 1, __ATOMIC_ACQ_REL))
			return;
	}
}

static void *worker(void *arg)
{
	struct walk *w = arg;
	char *buf = kb_malloc(SMALL_FILE);
	double last = now();
	for (;;) {
		size_t i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);
		if (i >= w->njobs || __atomic_load_n(&w->failed, __ATOMIC_RELAXED))
			break;
		kb_err *err = add_file(w->t, w->jobs[i].path, buf, w->jobs[i].ent);
		if (err) {
			set_err(w, err);
			break;
		}
		if (!__atomic_sub_fetch(&w->jobs[i].dir->pending, 1, __ATOMIC_ACQ_REL))
			finish(w, w->jobs[i].dir);
		size_t done = __atomic_add_fetch(&w->done, 1, __ATOMIC_RELAXED);
		if (w->progress && (done & 255) == 0 && now() - last > 0.25) {
			last = now();
			fprintf(stderr, "\radding files: %zu/%zu", done, w->njobs);
		}
	}
	free(buf);
	return NULL;
}

static const char *kind_of(mode_t m)
{
	return S_ISFIFO(m) ? "a fifo" : S_ISSOCK(m) ? "a socket" : S_ISCHR(m) ? "a character device"
		: S_ISBLK(m) ? "a block device" : "not a file, directory or symlink";
}

static void dnode_free(struct dnode *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		dnode_free(d->sub[i]);
		free((char *)d->e[i].name);
	}
	free(d->e);
	free(d->sub);
	free(d);
}

static kb_err *walk_dir(struct walk *w, const char *path, struct dnode *parent, kb_hash *dst,
			struct dnode **out)
{
	DIR *d = opendir(path);
	if (!d)
		return kb_errno(errno, "cannot read directory %s", path);
	struct dnode *node = kb_calloc(1, sizeof *node);
	node->parent = parent;
	node->dst = dst;
	*out = node;
	size_t cap = 0;
	unsigned char *types = NULL;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (node->n == cap) {
			cap = cap ? 2 * cap : 16;
			node->e = kb_realloc(node->e, cap * sizeof *node->e);
			types = kb_realloc(types, cap);
		}
		size_t len = strlen(de->d_name);
		node->e[node->n] = (kb_tree_entry){.name = kb_strndup(de->d_name, len),
						   .namelen = len};
		types[node->n++] = de->d_type;
	}
	kb_err *err = errno ? kb_errno(errno, "cannot read directory %s", path) : NULL;
	node->sub = kb_calloc(node->n, sizeof *node->sub);
	for (size_t i = 0; !err && i < node->n; i++) {
		kb_tree_entry *e = &node->e[i];
		char *child = kb_asprintf("%s/%s", path, e->name);
		unsigned char ty = types[i];
		if (ty == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				err = kb_errno(errno, "cannot stat %s", child);
				free(child);
				break;
			}
			ty = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR
				: S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
		}
		if (ty == DT_REG) {
			e->type = KB_ENT_FILE;
			if (w->njobs == w->cap) {
				w->cap = w->cap ? 2 * w->cap : 256;
				w->jobs = kb_realloc(w->jobs, w->cap * sizeof *w->jobs);
			}
			w->jobs[w->njobs++] = (struct job){child, e, node};
			node->pending++;
			continue;
		}
		if (ty == DT_DIR) {
			e->type = KB_ENT_DIR;
			node->pending++;
			err = walk_dir(w, child, node, &e->hash, &node->sub[i]);
		} else if (ty == DT_LNK) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(dirfd(d), e->name, target, sizeof target);
			e->type = KB_ENT_LINK;
			if (n < 0)
				err = kb_errno(errno, "cannot read symlink %s", child);
			else if ((size_t)n == sizeof target)
				err = kb_errf("symlink %s has a target longer than %d bytes", child,
					      PATH_MAX);
			else
				err = kb_txn_add_bytes(w->t, target, (size_t)n, 0, &e->hash);
		} else {
			struct stat st;
			mode_t m = fstatat(dirfd(d), e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mode : 0;
			err = kb_errf("cannot store %s: it is %s; remove it or add a directory "
				      "without it", child, kind_of(m));
		}
		free(child);
	}
	free(types);
	closedir(d);
	if (!err && !node->pending) {
		if (w->nready == w->capready) {
			w->capready = w->capready ? 2 * w->capready : 16;
			w->ready = kb_realloc(w->ready, w->capready * sizeof *w->ready);
		}
		w->ready[w->nready++] = node;
	}
	return err;
}

static kb_err *add_dir(kb_txn *t, const char *path, kb_hash *out)
{
	struct walk w = {.t = t};
	pthread_mutex_init(&w.mu, NULL);
	struct dnode *root = NULL;
	kb_err *err = walk_dir(&w, path, NULL, out, &root);
	/* a directory is sorted by its encoding only once its subdirectories
	 * have written their hashes into it: finish() runs children first */
	for (size_t i = 0; !err && i < w.nready; i++)
		finish(&w, w.ready[i]);
	if (!err) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		/* creating files blocks on the file system's journal: twice as many
		 * workers as CPUs keep the CPUs busy (10% faster on a kernel tree) */
		size_t nthreads = w.njobs < 64 ? 1 : (size_t)(cpus < 1 ? 2 : 2 * cpus);
		if (nthreads > MAX_WORKERS)
			nthreads = MAX_WORKERS;
		w.progress = isatty(2) && kb_log_level >= KB_LOG_INFO && w.njobs > 2000;
		pthread_t th[MAX_WORKERS];
		size_t started = 0;
		for (size_t i = 1; i < nthreads; i++)
			if (pthread_create(&th[started], NULL, worker, &w) == 0)
				started++;
		worker(&w);
		for (size_t i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		if (w.progress)
			fprintf(stderr, "\radding files: %zu/%zu\n", w.done, w.njobs);
		err = w.err;
	}
	if (!err && !w.err && __atomic_load_n(&root->pending, __ATOMIC_ACQUIRE))
		err = kb_errf("internal error: directory %s was not finished", path);
	for (size_t i = 0; i < w.njobs; i++)
		free(w.jobs[i].path);
	free(w.jobs);
	free(w.ready);
	dnode_free(root);
	pthread_mutex_destroy(&w.mu);
	return err;
}

kb_err *kb_txn_add_path(kb_txn *t, const char *path, kb_oid *out)
{
	struct stat st;
	/* a symlink named on the command line is followed, like cp and tar -h */
	if (stat(path, &st) < 0)
		return kb_errno(errno, "cannot add %s", path);
	if (S_ISDIR(st.st_mode)) {
		out->type = KB_TREE;
		return add_dir(t, path, &out->hash);
	}
	if (!S_ISREG(st.st_mode))
		return kb_errf("cannot add %s: it is %s", path, kind_of(st.st_mode));
	out->type = KB_BLOB;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot add %s", path);
	kb_err *err = kb_txn_add_fd(t, fd, 0, path, &out->hash);
	close(fd);
	return err;
}

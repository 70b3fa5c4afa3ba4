/* Transactions: objects are staged in tmp/txn-*, made durable with one
 * syncfs, renamed into objects/, and synced again before anything may
 * point at them (one barrier per batch instead of one fsync per object). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Small objects, whose hash is known before they are written, are staged
 * as objects/ab/.s-PID-ID next to their final name: creating thousands of
 * files in one staging directory serialises on that directory's lock.
 * Streamed blobs are staged in tmp/txn-*. */
struct staged {
	kb_hash h;
	unsigned id;
	int exec, in_shard;
	int moved; /* renamed into place by the commit */
};

struct kb_txn {
	kb_store *s;
	int lockfd, dirfd;
	char dirname[64];
	pthread_mutex_t mu;
	kb_hset *set; /* staged hashes */
	struct staged *v;
	size_t n, cap;
	int failed;
	long pid; /* in staged names; getpid is a system call per name */
	uint64_t unsynced; /* bytes of small objects written since the last early sync */
	/* the commit's renames, shared by its threads */
	size_t next;
	kb_err *err;
};

static int staged_at(const kb_txn *t, const struct staged *st, char name[64]);

struct kb_blobw {
	kb_txn *t;
	int fd;
	unsigned id;
	kb_sha *sha;
	uint64_t size, flushed;
};

kb_err *kb_txn_begin(kb_store *s, kb_txn **out)
{
	kb_txn *t = kb_calloc(1, sizeof *t);
	t->s = s;
	t->dirfd = -1;
	t->pid = (long)getpid();
	kb_err *err = store_lock(s, 0, &t->lockfd);
	if (err) {
		free(t);
		return err;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->set = kb_hset_new();
	*out = t;
	return NULL;
}

static void txn_free(kb_txn *t)
{
	for (size_t i = 0; i < t->n; i++) {
		char name[64];
		if (t->v[i].in_shard && !t->v[i].moved)
			unlinkat(staged_at(t, &t->v[i], name), name, 0);
	}
	if (t->dirfd >= 0) {
		close(t->dirfd);
		kb_err *err = kb_remove_tree(t->s->tmpfd, t->dirname);
		if (err) /* harmless: gc clears tmp/ */
			kb_err_free(err);
	}
	store_unlock(t->lockfd);
	pthread_mutex_destroy(&t->mu);
	kb_hset_free(t->set);
	free(t->v);
	free(t);
}

void kb_txn_abort(kb_txn *t)
{
	if (t)
		txn_free(t);
}

static void fail(kb_txn *t)
{
	pthread_mutex_lock(&t->mu);
	t->failed = 1;
	pthread_mutex_unlock(&t->mu);
}

int kb_txn_has(kb_txn *t, const kb_hash *h)
{
	pthread_mutex_lock(&t->mu);
	int in = kb_hset_has(t->set, h);
	pthread_mutex_unlock(&t->mu);
	return in || kb_store_has(t->s, h);
}

kb_err *kb_txn_open(kb_txn *t, const kb_hash *h, int *fd)
{
	pthread_mutex_lock(&t->mu);
	*fd = -1;
	for (size_t i = 0; i < t->n && *fd < 0; i++)
		if (!t->v[i].moved && kb_hash_eq(&t->v[i].h, h)) {
			char name[64];
			int dirfd = staged_at(t, &t->v[i], name);
			*fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
		}
	pthread_mutex_unlock(&t->mu);
	return *fd >= 0 ? NULL : kb_store_open_object(t->s, h, fd);
}

/* Claims h for staging. 0: already stored or staged, nothing to write.
 * Only the wanted variant counts as stored: a hardlinked checkout will
 * need exactly that one, and checking one name is one system call. */
static int claim(kb_txn *t, const kb_hash *h, int exec)
{
	char name[OBJ_NAME_MAX];
	struct stat st;
	obj_name(h, exec, name);
	if (fstatat(t->s->objfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	pthread_mutex_lock(&t->mu);
	int fresh = kb_hset_add(t->set, h);
	pthread_mutex_unlock(&t->mu);
	return fresh;
}

static void record(kb_txn *t, const kb_hash *h, unsigned id, int exec, int in_shard)
{
	pthread_mutex_lock(&t->mu);
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 64;
		t->v = kb_realloc(t->v, t->cap * sizeof *t->v);
	}
	t->v[t->n++] = (struct staged){*h, id, exec, in_shard, 0};
	pthread_mutex_unlock(&t->mu);
}

/* where a staged object is, relative to (dirfd, name) */
static int staged_at(const kb_txn *t, const struct staged *st, char name[64])
{
	if (!st->in_shard) {
		snprintf(name, 64, "%u", st->id);
		return t->dirfd;
	}
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&st->h, hex);
	snprintf(name, 64, "%.2s/" STAGE_PREFIX "%ld-%u", hex, t->pid, st->id);
	return t->s->objfd;
}

/* the mode is the object's for good: hardlinked checkouts share it */
static mode_t obj_mode(int exec) { return exec ? 0555 : 0444; }

/* tmp/txn-*, made when the first streamed blob needs it: most
 * transactions stage only small objects, inside their shards */
static kb_err *staging_dir(kb_txn *t)
{
	kb_err *err = NULL;
	pthread_mutex_lock(&t->mu);
	if (t->dirfd < 0) {
		snprintf(t->dirname, sizeof t->dirname, "txn-%ld-%u", t->pid,
			 store_seq(t->s));
		if (mkdirat(t->s->tmpfd, t->dirname, 0700) < 0 ||
		    (t->dirfd = openat(t->s->tmpfd, t->dirname,
				       O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			err = kb_errno(errno, "cannot create staging directory %s/tmp/%s",
				       t->s->path, t->dirname);
	}
	pthread_mutex_unlock(&t->mu);
	return err;
}

static kb_err *create_staged(kb_txn *t, const struct staged *st, int *fd)
{
	char name[64];
	kb_err *err = st->in_shard ? NULL : staging_dir(t);
	if (err)
		return err;
	int dirfd = staged_at(t, st, name);
	*fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, obj_mode(st->exec));
	if (*fd < 0 && errno == ENOENT && st->in_shard) {
		if ((err = store_shard(dirfd, name)))
			return err;
		*fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			     obj_mode(st->exec));
	}
	if (*fd < 0)
		return kb_errno(errno, "cannot create a staged object in %s", t->s->path);
	return NULL;
}

/* Many small objects leave their data to the commit's syncfs, which then
 * writes it all while nothing else happens (1.3 s of a 5.4 s kernel tree
 * ingest). A sync every SYNC_EVERY bytes, by whichever writer crosses the
 * mark, starts that writeback while the other writers go on. Its result
 * does not matter: the commit's syncfs is the barrier. */
#define SYNC_EVERY (64u << 20)

static void early_sync(kb_txn *t, size_t n)
{
	if (__atomic_add_fetch(&t->unsynced, n, __ATOMIC_RELAXED) < SYNC_EVERY)
		return;
	__atomic_store_n(&t->unsynced, 0, __ATOMIC_RELAXED);
	(void)syncfs(t->s->objfd);
}

kb_err *kb_txn_add_bytes(kb_txn *t, const void *p, size_t n, int exec, kb_hash *out)
{
	kb_sha256(p, n, out);
	if (!claim(t, out, exec))
		return NULL;
	struct staged st = {*out, store_seq(t->s), exec, 1, 0};
	int fd;
	kb_err *err = create_staged(t, &st, &fd);
	if (!err) {
		err = kb_write_all(fd, p, n, "a staged object");
		if (close(fd) < 0 && !err)
			err = kb_errno(errno, "cannot close a staged object");
		if (!err) {
			record(t, out, st.id, exec, 1);
			early_sync(t, n);
		} else {
			char name[64];
			unlinkat(staged_at(t, &st, name), name, 0);
		}
	}
	if (err)
		fail(t);
	return err;
}

kb_err *kb_blob_begin(kb_txn *t, kb_blobw **out)
{
	kb_blobw *w = kb_calloc(1, sizeof *w);
	w->t = t;
	w->id = store_seq(t->s);
	struct staged st = {.id = w->id};
	kb_err *err = create_staged(t, &st, &w->fd);
	if (err) {
		fail(t);
		free(w);
		return err;
	}
	w->sha = kb_sha_new();
	*out = w;
	return NULL;
}

#define FLUSH_EVERY (8u << 20)

kb_err *kb_blob_write(kb_blobw *w, const void *p, size_t n)
{
	kb_sha_update(w->sha, p, n);
	kb_err *err = kb_write_all(w->fd, p, n, "a staged object");
	if (err) {
		fail(w->t);
		return err;
	}
	w->size += n;
	/* start writeback early so the commit's sync has little left to do */
	if (w->size - w->flushed >= FLUSH_EVERY) {
		sync_file_range(w->fd, (off64_t)w->flushed, (off64_t)(w->size - w->flushed),
				SYNC_FILE_RANGE_WRITE);
		w->flushed = w->size;
	}
	return NULL;
}

static void blob_free(kb_blobw *w, int unlink_it)
{
	if (w->fd >= 0)
		close(w->fd);
	if (unlink_it) {
		char name[16];
		snprintf(name, sizeof name, "%u", w->id);
		unlinkat(w->t->dirfd, name, 0);
	}
	kb_sha_free(w->sha);
	free(w);
}

void kb_blob_abort(kb_blobw *w)
{
	if (w)
		blob_free(w, 1);
}

kb_err *kb_blob_finish(kb_blobw *w, int exec, const kb_hash *expect, kb_hash *out)
{
	kb_hash h;
	kb_sha_final(w->sha, &h);
	if (expect && !kb_hash_eq(expect, &h)) {
		char want[KB_HEX_LEN + 1], got[KB_HEX_LEN + 1];
		kb_hash_hex(expect, want);
		kb_hash_hex(&h, got);
		blob_free(w, 1);
		return kb_errf("content hashes to %s, not the expected %s", got, want);
	}
	int fd = w->fd;
	w->fd = -1;
	if ((fchmod(fd, obj_mode(exec)) < 0 && (close(fd), 1)) || close(fd) < 0) {
		kb_err *err = kb_errno(errno, "cannot close a staged object");
		fail(w->t);
		blob_free(w, 1);
		return err;
	}
	if (out)
		*out = h;
	if (!claim(w->t, &h, exec)) {
		blob_free(w, 1);
		return NULL;
	}
	record(w->t, &h, w->id, exec, 0);
	early_sync(w->t, w->size - w->flushed);
	blob_free(w, 0);
	return NULL;
}

/* Large files: SHA-256 runs at about the speed the page cache copies, so
 * one thread hashing while this one reads and writes halves the time. The
 * bytes hashed are exactly the bytes written: both use the same buffer. */
#define PIPE_BUFS 4
#define PIPE_CHUNK (1u << 20)
#define PIPE_MIN (16u << 20)

struct pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	kb_sha *sha;
	char *buf[PIPE_BUFS];
	size_t len[PIPE_BUFS];
	size_t filled, hashed; /* chunks handed over / hashed so far */
	int eof;
};

static void *hasher(void *arg)
{
	struct pipe *p = arg;
	for (size_t j = 0;; j++) {
		pthread_mutex_lock(&p->mu);
		while (p->filled <= j && !p->eof)
			pthread_cond_wait(&p->cv, &p->mu);
		int done = p->filled <= j;
		pthread_mutex_unlock(&p->mu);
		if (done)
			return NULL;
		kb_sha_update(p->sha, p->buf[j % PIPE_BUFS], p->len[j % PIPE_BUFS]);
		pthread_mutex_lock(&p->mu);
		p->hashed = j + 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

static kb_err *copy_pipelined(kb_blobw *w, int fd, const char *what)
{
	struct pipe p = {.sha = w->sha};
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	for (int i = 0; i < PIPE_BUFS; i++)
		p.buf[i] = kb_malloc(PIPE_CHUNK);
	pthread_t th;
	kb_err *err = NULL;
	if (pthread_create(&th, NULL, hasher, &p) != 0) {
		err = kb_errf("cannot start a thread to hash %s", what);
		goto out;
	}
	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&p.mu);
		while (i >= PIPE_BUFS && p.hashed < i - PIPE_BUFS + 1)
			pthread_cond_wait(&p.cv, &p.mu);
		pthread_mutex_unlock(&p.mu);
		char *b = p.buf[i % PIPE_BUFS];
		size_t got;
		if ((err = kb_read_full(fd, b, PIPE_CHUNK, &got, what)))
			break;
		if (got) {
			p.len[i % PIPE_BUFS] = got;
			pthread_mutex_lock(&p.mu);
			p.filled = i + 1;
			pthread_cond_broadcast(&p.cv);
			pthread_mutex_unlock(&p.mu);
			if ((err = kb_write_all(w->fd, b, got, "a staged object")))
				break;
			w->size += got;
			if (w->size - w->flushed >= FLUSH_EVERY) {
				sync_file_range(w->fd, (off64_t)w->flushed,
						(off64_t)(w->size - w->flushed), SYNC_FILE_RANGE_WRITE);
				w->flushed = w->size;
			}
		}
		if (got < PIPE_CHUNK)
			break;
	}
	pthread_mutex_lock(&p.mu);
	p.eof = 1;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	pthread_join(th, NULL);
out:
	for (int i = 0; i < PIPE_BUFS; i++)
		free(p.buf[i]);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	if (err)
		fail(w->t);
	return err;
}

kb_err *kb_txn_add_fd(kb_txn *t, int fd, int exec, const char *what, kb_hash *out)
{
	kb_blobw *w;
	kb_err *err = kb_blob_begin(t, &w);
	if (err)
		return err;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (off_t)PIPE_MIN) {
		err = copy_pipelined(w, fd, what);
	} else {
		size_t bufsize = 1 << 20;
		char *buf = kb_malloc(bufsize);
		for (;;) {
			size_t got;
			if ((err = kb_read_full(fd, buf, bufsize, &got, what)))
				break;
			if (got && (err = kb_blob_write(w, buf, got)))
				break;
			if (got < bufsize)
				break;
		}
		free(buf);
	}
	if (err) {
		kb_blob_abort(w);
		return err;
	}
	return kb_blob_finish(w, exec, NULL, out);
}

/* the commit's renames, in blocks of 256 taken by each thread in turn */
static void *mover(void *arg)
{
	kb_txn *t = arg;
	kb_store *s = t->s;
	for (;;) {
		pthread_mutex_lock(&t->mu);
		size_t i = t->err ? t->n : t->next, end = i + 256 < t->n ? i + 256 : t->n;
		t->next = end;
		pthread_mutex_unlock(&t->mu);
		if (i >= end)
			return NULL;
		for (; i < end; i++) {
			char from[64], to[OBJ_NAME_MAX];
			kb_err *err = NULL;
			int fromfd = staged_at(t, &t->v[i], from);
			obj_name(&t->v[i].h, t->v[i].exec, to);
			int r = renameat(fromfd, from, s->objfd, to);
			if (r < 0 && errno == ENOENT && !(err = store_shard(s->objfd, to)))
				r = renameat(fromfd, from, s->objfd, to);
			if (r < 0 && !err)
				err = kb_errno(errno, "cannot move object %s into %s/objects", to,
					       s->path);
			if (err) {
				pthread_mutex_lock(&t->mu);
				if (t->err)
					kb_err_free(err);
				else
					t->err = err;
				pthread_mutex_unlock(&t->mu);
				break;
			}
			t->v[i].moved = 1;
		}
	}
}

kb_err *kb_txn_commit(kb_txn *t, const kb_oid *roots, size_t nroots)
{
	kb_store *s = t->s;
	kb_err *err = NULL;
	if (t->failed)
		err = kb_errf("a write in this transaction failed; nothing was stored");
	if (!err && t->n) {
		if (syncfs(s->objfd) < 0)
			err = kb_errno(errno, "cannot sync the store %s", s->path);
		/* a rename waits on its directory: with many objects, spread
		 * over the CPUs (4 at most) it takes half the time on two */
		long cpus = t->n < 4096 ? 1 : sysconf(_SC_NPROCESSORS_ONLN);
		size_t nth = cpus < 1 ? 1 : cpus > 4 ? 4 : (size_t)cpus, started = 0;
		pthread_t th[4];
		for (size_t i = 1; !err && i < nth; i++)
			if (pthread_create(&th[started], NULL, mover, t) == 0)
				started++;
		if (!err)
			mover(t);
		for (size_t i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		if (!err)
			err = t->err;
		t->err = NULL;
		/* renames durable before any ref can name these objects */
		if (!err && syncfs(s->objfd) < 0)
			err = kb_errno(errno, "cannot sync the store %s", s->path);
	}
	if (!err && nroots)
		err = store_hold(s, roots, nroots);
	txn_free(t);
	return err;
}

kb_err *store_hold(kb_store *s, const kb_oid *roots, size_t n)
{
	kb_buf b = {0};
	for (size_t i = 0; i < n; i++) {
		if (roots[i].type == KB_NONE)
			continue;
		char line[5 + KB_HEX_LEN + 1];
		kb_oid_fmt(&roots[i], line);
		kb_buf_adds(&b, line);
		kb_buf_addc(&b, '\n');
	}
	kb_err *err = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->rootsfd < 0 && b.len) {
		/* created and locked while we hold the store lock, so gc never
		 * sees it unlocked */
		char name[64];
		snprintf(name, sizeof name, "%ld-%u", (long)getpid(), store_seq(s));
		int fd = openat(s->rootsdir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			err = kb_errno(errno, "cannot create %s/roots/%s", s->path, name);
		else if (flock(fd, LOCK_EX) < 0) {
			err = kb_errno(errno, "cannot lock %s/roots/%s", s->path, name);
			close(fd);
		} else
			s->rootsfd = fd;
	}
	if (!err && b.len)
		err = kb_write_all(s->rootsfd, b.p, b.len, "the roots file");
	pthread_mutex_unlock(&s->mu);
	kb_buf_free(&b);
	return err;
}

/* Byte sources: files read with pread, bytes in memory, windows of
 * either, and a sink that spills to an unlinked temporary file once it
 * grows past its cap. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kb_err *ds_open_path(const char *path, dsrc *out)
{
	memset(out, 0, sizeof *out);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kb_err *err = kb_errno(errno, "cannot stat %s", path);
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kb_errf("%s is not a regular file", path);
	}
	out->fd = fd;
	out->own_fd = 1;
	out->size = (uint64_t)st.st_size;
	return NULL;
}

kb_err *ds_open_object(kb_store *s, const kb_hash *h, dsrc *out)
{
	memset(out, 0, sizeof *out);
	int fd;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return err;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = kb_errno(errno, "cannot stat a stored object");
		close(fd);
		return err;
	}
	out->fd = fd;
	out->own_fd = 1;
	out->size = (uint64_t)st.st_size;
	/* a stored object is named by its content's hash */
	out->has_hash = 1;
	out->hash = *h;
	return NULL;
}

void ds_mem(dsrc *s, const void *p, uint64_t n)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	s->mem = p;
	s->size = n;
}

void ds_window(const dsrc *s, uint64_t off, uint64_t n, dsrc *out)
{
	memset(out, 0, sizeof *out);
	out->fd = s->fd;
	out->mem = s->mem;
	if (off > s->size)
		off = s->size;
	if (n > s->size - off)
		n = s->size - off;
	out->base = s->base + off;
	out->size = n;
}

void ds_free(dsrc *s)
{
	if (s->own_fd && s->fd >= 0)
		close(s->fd);
	free(s->own_mem);
	memset(s, 0, sizeof *s);
	s->fd = -1;
}

kb_err *ds_read(const dsrc *s, uint64_t off, void *buf, size_t n, size_t *got)
{
	*got = 0;
	if (off >= s->size)
		return NULL;
	if (n > s->size - off)
		n = (size_t)(s->size - off);
	if (s->fd < 0) {
		if (n)
			memcpy(buf, s->mem + s->base + off, n);
		*got = n;
		return NULL;
	}
	while (*got < n) {
		ssize_t r = pread(s->fd, (char *)buf + *got, n - *got,
				  (off_t)(s->base + off + *got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kb_errno(errno, "cannot read");
		if (r == 0)
			return kb_errf("the file shrank while it was being read");
		*got += (size_t)r;
	}
	return NULL;
}

kb_err *ds_hash(dsrc *s, kb_hash *out)
{
	if (s->has_hash) {
		*out = s->hash;
		return NULL;
	}
	if (s->fd < 0) {
		/* an empty member may have no storage at all */
		kb_sha256(s->size ? s->mem + s->base : (const unsigned char *)"", (size_t)s->size,
			  &s->hash);
	} else {
		enum { CHUNK = 1 << 16 };
		unsigned char *buf = kb_malloc(CHUNK);
		kb_sha *sha = kb_sha_new();
		kb_err *err = NULL;
		for (uint64_t off = 0; off < s->size;) {
			size_t got;
			if ((err = ds_read(s, off, buf, CHUNK, &got)))
				break;
			kb_sha_update(sha, buf, got);
			off += got;
		}
		if (!err)
			kb_sha_final(sha, &s->hash);
		kb_sha_free(sha);
		free(buf);
		if (err)
			return err;
	}
	s->has_hash = 1;
	*out = s->hash;
	return NULL;
}

void ds_sink_init(ds_sink *k, uint64_t cap)
{
	memset(k, 0, sizeof *k);
	k->cap = cap;
	k->fd = -1;
	k->sha = kb_sha_new();
}

static kb_err *spill(ds_sink *k)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	k->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (k->fd < 0) {
		/* file systems without O_TMPFILE: a named one, unlinked at once */
		char *tmpl = kb_asprintf("%s/kbuild-diff.XXXXXX", dir);
		k->fd = mkostemp(tmpl, O_CLOEXEC);
		int e = errno;
		if (k->fd >= 0)
			unlink(tmpl);
		free(tmpl);
		if (k->fd < 0)
			return kb_errno(e, "cannot make a temporary file in %s for a large "
					   "member (set TMPDIR to a writable directory)", dir);
	}
	kb_err *err = kb_write_all(k->fd, k->mem.p, k->mem.len, "a temporary file");
	kb_buf_free(&k->mem);
	return err;
}

kb_err *ds_sink_write(ds_sink *k, const void *p, size_t n)
{
	kb_sha_update(k->sha, p, n);
	k->len += n;
	if (k->fd < 0 && k->len > k->cap) {
		kb_err *err = spill(k);
		if (err)
			return err;
	}
	if (k->fd >= 0)
		return kb_write_all(k->fd, p, n, "a temporary file");
	kb_buf_add(&k->mem, p, n);
	return NULL;
}

void ds_sink_done(ds_sink *k, dsrc *out)
{
	memset(out, 0, sizeof *out);
	out->has_hash = 1;
	kb_sha_final(k->sha, &out->hash);
	kb_sha_free(k->sha);
	out->size = k->len;
	if (k->fd >= 0) {
		out->fd = k->fd;
		out->own_fd = 1;
	} else {
		out->fd = -1;
		out->own_mem = (unsigned char *)k->mem.p;
		out->mem = out->own_mem;
	}
	memset(k, 0, sizeof *k);
	k->fd = -1;
}

void ds_sink_abort(ds_sink *k)
{
	if (k->fd >= 0)
		close(k->fd);
	kb_buf_free(&k->mem);
	kb_sha_free(k->sha);
	memset(k, 0, sizeof *k);
	k->fd = -1;
}

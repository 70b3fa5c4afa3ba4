/* A store tree as a zstd-compressed cpio newc archive (see image.h for
 * the rules that make it reproducible). File contents are streamed from
 * the store through the compressor into the blob; only the list of paths
 * is held in memory. */
#include "image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define LINK_MAX_LEN 4095

struct ent {
	char type;
	char *path;
	kb_hash hash;
	uint32_t nlink;
};

struct list {
	kb_arena *a;
	struct ent *e;
	size_t n, cap;
	size_t dirs[KB_TREE_MAX_DEPTH + 1];
};

int kb_path_clean(const char *p)
{
	if (!*p || *p == '/')
		return -1;
	for (const char *c = p; *c;) {
		size_t len = strcspn(c, "/");
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return -1;
		c += len;
		if (*c == '/' && !*++c)
			return -1;
	}
	return 0;
}

/* a directory's nlink is 2 plus its subdirectories: dirs[d] is the
 * index of the directory whose entries are at depth d+1 */
static kb_err *collect(void *ctx, const char *path, int depth, const kb_tree_entry *te)
{
	struct list *l = ctx;
	/* the store's tree rules already exclude '/', "." and ".."; a newline
	 * would still break cpio -t listings and the init */
	if (memchr(te->name, '\n', te->namelen)) {
		char *q = kb_quote(path, strlen(path));
		kb_err *err = kb_errf("entry '/%s' has a newline in its name; rename it", q);
		free(q);
		return err;
	}
	l->e = kb_arena_grow(l->a, l->e, l->n, &l->cap, sizeof *l->e);
	size_t idx = l->n++;
	l->e[idx] = (struct ent){(char)te->type, kb_arena_strdup(l->a, path), te->hash, 1};
	if (te->type == KB_ENT_DIR) {
		l->e[idx].nlink = 2;
		if (depth > 0)
			l->e[l->dirs[depth - 1]].nlink++;
		l->dirs[depth] = idx;
	}
	return NULL;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->path, ((const struct ent *)b)->path);
}

struct zw {
	ZSTD_CCtx *z;
	kb_blobw *w;
	char *out;
	size_t outcap;
	uint64_t written; /* uncompressed bytes */
};

static kb_err *zput(struct zw *z, const void *p, size_t n, ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer out = {z->out, z->outcap, 0};
		size_t r = ZSTD_compressStream2(z->z, &out, &in, end);
		if (ZSTD_isError(r))
			return kb_errf("zstd: %s", ZSTD_getErrorName(r));
		if (out.pos) {
			kb_err *err = kb_blob_write(z->w, z->out, out.pos);
			if (err)
				return err;
		}
		if (end == ZSTD_e_end ? r == 0 : in.pos == in.size)
			break;
	}
	z->written += n;
	return NULL;
}

static kb_err *pad4(struct zw *z)
{
	static const char zero[4];
	size_t p = (size_t)((4 - z->written % 4) % 4);
	return p ? zput(z, zero, p, ZSTD_e_continue) : NULL;
}

static kb_err *header(struct zw *z, uint32_t ino, uint32_t mode, uint32_t nlink,
		      uint32_t mtime, uint32_t size, const char *name)
{
	char h[111];
	size_t nl = strlen(name) + 1;
	snprintf(h, sizeof h,
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u, 0u,
		 nlink, mtime, size, 0u, 0u, 0u, 0u, (uint32_t)nl, 0u);
	kb_err *err = zput(z, h, 110, ZSTD_e_continue);
	if (!err)
		err = zput(z, name, nl, ZSTD_e_continue);
	if (!err)
		err = pad4(z);
	return err;
}

static kb_err *entry(kb_store *s, struct zw *z, const struct ent *e, uint32_t ino,
		     uint32_t mtime)
{
	kb_err *err;
	if (e->type == KB_ENT_DIR)
		return header(z, ino, 040755, e->nlink, mtime, 0, e->path);
	if (e->type == KB_ENT_LINK) {
		kb_buf b = {0};
		if ((err = kb_store_read(s, &e->hash, LINK_MAX_LEN + 1, &b)))
			return kb_err_wrap(err, "the target of symlink '/%s'", e->path);
		if (b.len == 0 || b.len > LINK_MAX_LEN)
			err = kb_errf("symlink '/%s' has an empty or too long target", e->path);
		if (!err)
			err = header(z, ino, 0120777, 1, mtime, (uint32_t)b.len, e->path);
		if (!err)
			err = zput(z, b.p, b.len, ZSTD_e_continue);
		if (!err)
			err = pad4(z);
		kb_buf_free(&b);
		return err;
	}
	int fd;
	if ((err = kb_store_open_object(s, &e->hash, &fd)))
		return kb_err_wrap(err, "the content of '/%s'", e->path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = kb_errno(errno, "cannot stat the content of '/%s'", e->path);
	} else if ((uint64_t)st.st_size > 0xffffffffu) {
		err = kb_errf("file '/%s' is 4 GiB or more, which cpio newc cannot hold",
			      e->path);
	} else {
		err = header(z, ino, e->type == KB_ENT_EXEC ? 0100755 : 0100644, 1, mtime,
			     (uint32_t)st.st_size, e->path);
		uint64_t left = (uint64_t)st.st_size;
		char buf[1 << 16];
		while (!err && left) {
			size_t got;
			size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
			if ((err = kb_read_full(fd, buf, want, &got, e->path)))
				break;
			if (got != want)
				err = kb_errf("the content of '/%s' changed size while read", e->path);
			else
				err = zput(z, buf, got, ZSTD_e_continue);
			left -= got;
		}
		if (!err)
			err = pad4(z);
	}
	close(fd);
	return err;
}

kb_err *kb_initramfs_write(kb_store *s, kb_txn *t, const kb_hash *tree, int64_t sde,
			   kb_hash *out)
{
	if (sde < 0 || sde > 0xffffffffll)
		return kb_usage("initramfs: SOURCE_DATE_EPOCH %lld is outside 0..4294967295 "
				"(cpio newc has 32-bit times)",
				(long long)sde);
	struct list l = {.a = kb_arena_new()};
	kb_err *err = kb_tree_walk(s, tree, collect, &l);
	if (err) {
		kb_arena_free(l.a);
		return err;
	}
	qsort(l.e, l.n, sizeof *l.e, by_path);
	struct zw z = {0};
	z.z = ZSTD_createCCtx();
	z.outcap = ZSTD_CStreamOutSize();
	z.out = kb_malloc(z.outcap);
	size_t r = ZSTD_CCtx_setParameter(z.z, ZSTD_c_compressionLevel, KB_INITRAMFS_ZSTD_LEVEL);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(z.z, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(r))
		err = kb_errf("zstd: %s", ZSTD_getErrorName(r));
	if (!err)
		err = kb_blob_begin(t, &z.w);
	for (size_t i = 0; !err && i < l.n; i++)
		err = entry(s, &z, &l.e[i], (uint32_t)(i + 1), (uint32_t)sde);
	if (!err)
		err = header(&z, 0, 0, 1, 0, 0, "TRAILER!!!");
	if (!err && z.written % 512) {
		static const char zero[512];
		err = zput(&z, zero, (size_t)(512 - z.written % 512), ZSTD_e_continue);
	}
	if (!err)
		err = zput(&z, "", 0, ZSTD_e_end);
	if (!err) {
		err = kb_blob_finish(z.w, 0, NULL, out);
		z.w = NULL;
	}
	if (z.w)
		kb_blob_abort(z.w);
	ZSTD_freeCCtx(z.z);
	free(z.out);
	kb_arena_free(l.a);
	return err;
}

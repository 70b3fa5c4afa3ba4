/* Bundles: one zstd stream holding the closure of some refs.
 *
 *   "kbuild-bundle 1\n"
 *   "object TYPE HEX SIZE\n" SIZE bytes      (children before parents)
 *   "ref NAME TYPE HEX\n"
 *   "end NOBJECTS NREFS\n"                    then the stream ends
 *
 * Import stages every object in one transaction and checks each hash, the
 * count, the end of the stream and that every tree and ref it brings is
 * complete before committing: a damaged or cut bundle changes nothing. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define BUNDLE_MAGIC "kbuild-bundle 1"
#define LINE_MAX_LEN 512

/* ---- export ---- */

struct item {
	kb_oid o;
};

struct exp {
	kb_store *s;
	kb_hset *seen;
	struct item *v;
	size_t n, cap;
};

static kb_err *collect(struct exp *x, const kb_oid *o)
{
	if (!kb_hset_add(x->seen, &o->hash))
		return NULL;
	if (!kb_store_has(x->s, &o->hash)) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&o->hash, hex);
		return kb_errf("%s %s is missing from the store (run 'kbuild store fsck')",
			       kb_objtype_name(o->type), hex);
	}
	if (o->type == KB_TREE) {
		kb_tree t = {0};
		kb_err *err = kb_store_read_tree(x->s, &o->hash, &t);
		for (size_t i = 0; !err && i < t.n; i++) {
			kb_oid c = {kb_enttype_objtype(t.e[i].type), t.e[i].hash};
			err = collect(x, &c);
		}
		kb_tree_free(&t);
		if (err)
			return err;
	}
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 64;
		x->v = kb_realloc(x->v, x->cap * sizeof *x->v);
	}
	x->v[x->n++] = (struct item){*o};
	return NULL;
}

struct zw {
	ZSTD_CCtx *cc;
	int fd;
	char *out;
	size_t outsz;
	const char *path;
};

static kb_err *zw_write(struct zw *z, const void *p, size_t n, ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer out = {z->out, z->outsz, 0};
		size_t r = ZSTD_compressStream2(z->cc, &out, &in, end);
		if (ZSTD_isError(r))
			return kb_errf("cannot compress %s: %s", z->path, ZSTD_getErrorName(r));
		kb_err *err = kb_write_all(z->fd, z->out, out.pos, z->path);
		if (err)
			return err;
		if (end == ZSTD_e_end ? r == 0 : in.pos == in.size)
			return NULL;
	}
}

static kb_err *write_bundle(kb_store *s, struct zw *z, struct exp *x, kb_ref *refs,
			    size_t nrefs)
{
	kb_buf line = {0};
	kb_buf_adds(&line, BUNDLE_MAGIC "\n");
	kb_err *err = zw_write(z, line.p, line.len, ZSTD_e_continue);
	char *buf = kb_malloc(1 << 20);
	for (size_t i = 0; !err && i < x->n; i++) {
		int fd;
		if ((err = kb_store_open_object(s, &x->v[i].o.hash, &fd)))
			break;
		struct stat st;
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&x->v[i].o.hash, hex);
		if (fstat(fd, &st) < 0) {
			err = kb_errno(errno, "cannot stat object %s", hex);
			close(fd);
			break;
		}
		line.len = 0;
		kb_buf_addf(&line, "object %s %s %lld\n", kb_objtype_name(x->v[i].o.type), hex,
			    (long long)st.st_size);
		err = zw_write(z, line.p, line.len, ZSTD_e_continue);
		uint64_t left = (uint64_t)st.st_size;
		while (!err && left) {
			size_t want = left < (1 << 20) ? (size_t)left : (1 << 20), got;
			if ((err = kb_read_full(fd, buf, want, &got, hex)))
				break;
			if (got != want)
				err = kb_errf("object %s changed size while being exported", hex);
			else
				err = zw_write(z, buf, got, ZSTD_e_continue);
			left -= got;
		}
		close(fd);
	}
	free(buf);
	for (size_t i = 0; !err && i < nrefs; i++) {
		char o[5 + KB_HEX_LEN + 1];
		kb_oid_fmt(&refs[i].oid, o);
		line.len = 0;
		kb_buf_addf(&line, "ref %s %s\n", refs[i].name, o);
		err = zw_write(z, line.p, line.len, ZSTD_e_continue);
	}
	if (!err) {
		line.len = 0;
		kb_buf_addf(&line, "end %zu %zu\n", x->n, nrefs);
		err = zw_write(z, line.p, line.len, ZSTD_e_end);
	}
	kb_buf_free(&line);
	return err;
}

kb_err *kb_store_export(kb_store *s, char *const *names, size_t n, const char *outpath,
			size_t *nobjects)
{
	struct exp x = {s, kb_hset_new(), NULL, 0, 0};
	kb_ref *refs = kb_calloc(n, sizeof *refs);
	size_t nrefs = 0;
	kb_err *err = NULL;
	int lockfd = -1;
	if ((err = store_lock(s, 0, &lockfd)))
		goto out;
	for (size_t i = 0; !err && i < n; i++) {
		kb_oid o;
		int is_hash = kb_hash_parse(names[i], strlen(names[i]), &o.hash) == 0;
		if ((err = kb_store_resolve(s, names[i], &o)))
			break;
		if (!is_hash)
			refs[nrefs++] = (kb_ref){kb_strdup(names[i]), o};
		if ((err = collect(&x, &o)))
			err = kb_err_wrap(err, "cannot export '%s'", names[i]);
	}
	if (err)
		goto out;
	char *tmp = kb_asprintf("%s.tmp-%ld", outpath, (long)getpid());
	struct zw z = {ZSTD_createCCtx(), -1, NULL, ZSTD_CStreamOutSize(), outpath};
	z.out = kb_malloc(z.outsz);
	ZSTD_CCtx_setParameter(z.cc, ZSTD_c_compressionLevel, 3);
	ZSTD_CCtx_setParameter(z.cc, ZSTD_c_checksumFlag, 1);
	z.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (z.fd < 0)
		err = kb_errno(errno, "cannot create %s", tmp);
	else
		err = write_bundle(s, &z, &x, refs, nrefs);
	if (z.fd >= 0) {
		if (!err && fsync(z.fd) < 0)
			err = kb_errno(errno, "cannot sync %s", tmp);
		if (close(z.fd) < 0 && !err)
			err = kb_errno(errno, "cannot close %s", tmp);
		if (!err && rename(tmp, outpath) < 0)
			err = kb_errno(errno, "cannot rename %s to %s", tmp, outpath);
		if (err)
			unlink(tmp);
	}
	ZSTD_freeCCtx(z.cc);
	free(z.out);
	free(tmp);
	*nobjects = x.n;
out:
	store_unlock(lockfd);
	kb_ref_list_free(refs, nrefs);
	kb_hset_free(x.seen);
	free(x.v);
	return err;
}

/* ---- import ---- */

struct zr {
	ZSTD_DCtx *dc;
	int fd;
	const char *path;
	char *in, *out;
	size_t insz, outsz;
	ZSTD_inBuffer ib;
	size_t opos, olen;
	size_t last; /* last return of ZSTD_decompressStream: 0 at a frame end */
	int eof;     /* no more input */
};

static kb_err *zr_fill(struct zr *z)
{
	for (;;) {
		if (z->ib.pos == z->ib.size && !z->eof) {
			size_t got;
			kb_err *err = kb_read_full(z->fd, z->in, z->insz, &got, z->path);
			if (err)
				return err;
			z->ib = (ZSTD_inBuffer){z->in, got, 0};
			if (got == 0)
				z->eof = 1;
		}
		if (z->ib.pos == z->ib.size && z->eof)
			return NULL; /* nothing more */
		ZSTD_outBuffer ob = {z->out, z->outsz, 0};
		z->last = ZSTD_decompressStream(z->dc, &ob, &z->ib);
		if (ZSTD_isError(z->last))
			return kb_errf("bundle %s is damaged: %s", z->path,
				       ZSTD_getErrorName(z->last));
		z->opos = 0;
		z->olen = ob.pos;
		if (ob.pos)
			return NULL;
	}
}

/* up to n bytes; *got 0 only at the end of the stream */
static kb_err *zr_read(struct zr *z, void *p, size_t n, size_t *got)
{
	if (z->opos == z->olen) {
		kb_err *err = zr_fill(z);
		if (err)
			return err;
	}
	size_t k = z->olen - z->opos < n ? z->olen - z->opos : n;
	memcpy(p, z->out + z->opos, k);
	z->opos += k;
	*got = k;
	return NULL;
}

static kb_err *truncated(struct zr *z)
{
	return kb_errf("bundle %s is truncated; nothing was imported (export it again)",
		       z->path);
}

static kb_err *zr_line(struct zr *z, char *line, size_t max)
{
	size_t n = 0;
	for (;;) {
		char c;
		size_t got;
		kb_err *err = zr_read(z, &c, 1, &got);
		if (err)
			return err;
		if (!got)
			return truncated(z);
		if (c == '\n')
			break;
		if (n + 1 >= max)
			return kb_errf("bundle %s is damaged: a record line is too long", z->path);
		line[n++] = c;
	}
	line[n] = 0;
	return NULL;
}

struct pending_ref {
	char *name;
	kb_oid oid;
};

static kb_err *import_object(struct zr *z, kb_txn *t, const char *line, kb_buf *trees,
			     size_t *ntrees)
{
	char type[8], hex[KB_HEX_LEN + 2];
	unsigned long long size;
	kb_hash h;
	char extra;
	if (sscanf(line, "object %7s %65s %llu%c", type, hex, &size, &extra) != 3 ||
	    kb_hash_parse(hex, strlen(hex), &h) ||
	    (strcmp(type, "blob") && strcmp(type, "tree")))
		return kb_errf("bundle %s is damaged: bad record '%.80s'", z->path, line);
	int is_tree = !strcmp(type, "tree");
	kb_blobw *w;
	kb_err *err = kb_blob_begin(t, &w);
	if (err)
		return err;
	kb_buf tb = {0};
	char buf[65536];
	while (!err && size) {
		size_t got;
		if ((err = zr_read(z, buf, size < sizeof buf ? (size_t)size : sizeof buf, &got)))
			break;
		if (!got) {
			err = truncated(z);
			break;
		}
		if (is_tree)
			kb_buf_add(&tb, buf, got);
		err = kb_blob_write(w, buf, got);
		size -= got;
	}
	if (err) {
		kb_blob_abort(w);
		kb_buf_free(&tb);
		return err;
	}
	if ((err = kb_blob_finish(w, 0, &h, NULL))) {
		kb_buf_free(&tb);
		return kb_err_wrap(err, "bundle %s is damaged: object %s", z->path, hex);
	}
	if (is_tree) {
		trees[*ntrees] = tb;
		(*ntrees)++;
	}
	return NULL;
}

static kb_err *check_trees(kb_txn *t, const char *path, kb_buf *trees, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kb_tree tr;
		kb_err *err = kb_tree_decode(trees[i].p, trees[i].len, &tr);
		if (err)
			return kb_err_wrap(err, "bundle %s is damaged", path);
		for (size_t j = 0; !err && j < tr.n; j++)
			if (!kb_txn_has(t, &tr.e[j].hash)) {
				char hex[KB_HEX_LEN + 1];
				kb_hash_hex(&tr.e[j].hash, hex);
				err = kb_errf("bundle %s is incomplete: it needs object %s, which is "
					      "neither in the bundle nor in the store", path, hex);
			}
		kb_tree_free(&tr);
		if (err)
			return err;
	}
	return NULL;
}

kb_err *kb_store_import(kb_store *s, const char *path, int force, size_t *nobjects,
			size_t *nrefs)
{
	*nobjects = *nrefs = 0;
	struct zr z = {.path = path};
	z.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (z.fd < 0)
		return kb_errno(errno, "cannot open bundle %s", path);
	unsigned char magic[4];
	size_t got;
	kb_err *err = kb_read_full(z.fd, magic, 4, &got, path);
	if (!err && (got < 4 || memcmp(magic, "\x28\xb5\x2f\xfd", 4)))
		err = kb_errf("%s is not a kbuild bundle (make one with 'kbuild store export')",
			      path);
	if (!err && lseek(z.fd, 0, SEEK_SET) < 0)
		err = kb_errno(errno, "cannot seek %s", path);
	if (err) {
		close(z.fd);
		return err;
	}
	z.dc = ZSTD_createDCtx();
	z.insz = ZSTD_DStreamInSize();
	z.outsz = ZSTD_DStreamOutSize();
	z.in = kb_malloc(z.insz);
	z.out = kb_malloc(z.outsz);
	kb_txn *t = NULL;
	kb_buf *trees = NULL;
	size_t ntrees = 0, cap = 0, nref = 0, nobj = 0;
	struct pending_ref *refs = NULL;
	char line[LINE_MAX_LEN];
	if ((err = zr_line(&z, line, sizeof line)))
		goto out;
	if (strcmp(line, BUNDLE_MAGIC)) {
		err = kb_errf("%s is not a kbuild bundle (make one with 'kbuild store export')",
			      path);
		goto out;
	}
	if ((err = kb_txn_begin(s, &t)))
		goto out;
	for (;;) {
		if ((err = zr_line(&z, line, sizeof line)))
			goto out;
		if (!strncmp(line, "object ", 7)) {
			if (ntrees == cap) {
				cap = cap ? 2 * cap : 64;
				trees = kb_realloc(trees, cap * sizeof *trees);
			}
			if ((err = import_object(&z, t, line, trees, &ntrees)))
				goto out;
			nobj++;
		} else if (!strncmp(line, "ref ", 4)) {
			char *sp = strrchr(line, ' ');
			char *sp2 = sp ? memrchr(line + 4, ' ', (size_t)(sp - line - 4)) : NULL;
			kb_oid o;
			if (!sp2 || (err = kb_oid_parse(sp2 + 1, strlen(sp2 + 1), &o))) {
				if (err)
					kb_err_free(err);
				err = kb_errf("bundle %s is damaged: bad record '%.80s'", path, line);
				goto out;
			}
			*sp2 = 0;
			if ((err = kb_ref_check_name(line + 4)))
				goto out;
			refs = kb_realloc(refs, (nref + 1) * sizeof *refs);
			refs[nref++] = (struct pending_ref){kb_strdup(line + 4), o};
		} else if (!strncmp(line, "end ", 4)) {
			size_t eo, er;
			char extra;
			if (sscanf(line, "end %zu %zu%c", &eo, &er, &extra) != 2 || eo != nobj ||
			    er != nref) {
				err = kb_errf("bundle %s is damaged: it ends with '%.80s' after %zu "
					      "objects and %zu refs", path, line, nobj, nref);
				goto out;
			}
			break;
		} else {
			err = kb_errf("bundle %s is damaged: bad record '%.80s'", path, line);
			goto out;
		}
	}
	/* the zstd frame (with its checksum) must end exactly here */
	char extra;
	if ((err = zr_read(&z, &extra, 1, &got)))
		goto out;
	if (got || z.last != 0 || z.ib.pos != z.ib.size) {
		err = kb_errf("bundle %s is damaged: data after its end record or an unfinished "
			      "stream", path);
		goto out;
	}
	if ((err = check_trees(t, path, trees, ntrees)))
		goto out;
	kb_oid *roots = kb_calloc(nref, sizeof *roots);
	for (size_t i = 0; !err && i < nref; i++) {
		roots[i] = refs[i].oid;
		kb_oid cur;
		int found;
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&refs[i].oid.hash, hex);
		if (!kb_txn_has(t, &refs[i].oid.hash))
			err = kb_errf("bundle %s is incomplete: ref '%s' names %s, which it does not "
				      "hold", path, refs[i].name, hex);
		else if ((err = kb_ref_get(s, refs[i].name, &cur, &found)))
			;
		else if (found && !force &&
			 (cur.type != refs[i].oid.type || !kb_hash_eq(&cur.hash, &refs[i].oid.hash)))
			err = kb_errf("ref '%s' already exists with another value; nothing was "
				      "imported (use --force to replace it)", refs[i].name);
	}
	if (!err) {
		err = kb_txn_commit(t, roots, nref);
		t = NULL;
	}
	free(roots);
	for (size_t i = 0; !err && i < nref; i++)
		err = kb_ref_update(s, refs[i].name, NULL, &refs[i].oid);
	if (!err) {
		*nobjects = nobj;
		*nrefs = nref;
	}
out:
	kb_txn_abort(t);
	for (size_t i = 0; i < ntrees; i++)
		kb_buf_free(&trees[i]);
	free(trees);
	for (size_t i = 0; i < nref; i++)
		free(refs[i].name);
	free(refs);
	ZSTD_freeDCtx(z.dc);
	free(z.in);
	free(z.out);
	close(z.fd);
	return err;
}

/* The .rpm writer: format v4 as rpm 4.18's rpmbuild writes it (see
 * rpm's docs/manual/format_v4.md, format_header.md and rpmtag.h for the
 * facts used here), from a store tree.
 *
 * Order of work: the cpio payload is compressed into a temporary file
 * first (hashing it compressed and uncompressed on the way), because the
 * main header records the payload's digest and the signature header the
 * main header's digests and the sizes of both. Then the main header, the
 * signature header, and the blob: lead, signature (padded to 8), header,
 * payload. File digests are free: a store blob's name is the SHA-256 of
 * the file, which is what FILEDIGESTS holds with FILEDIGESTALGO 8. */
#include "pkg.h"

#include "../mirror/mirror.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (64u << 10)
#define ZSTD_LEVEL 19 /* what Fedora's rpmbuild uses (w19.zstdio) */

enum { T_INT16 = 3, T_INT32 = 4, T_STRING = 6, T_BIN = 7, T_STRARR = 8, T_I18N = 9 };

enum {
	TAG_SIGNATURES = 62, TAG_IMMUTABLE = 63, TAG_I18NTABLE = 100,
	SIG_RSA = 268, SIG_SHA1 = 269, SIG_SHA256 = 273, SIG_SIZE = 1000, SIG_MD5 = 1004,
	SIG_PAYLOADSIZE = 1007,
	TAG_NAME = 1000, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_SUMMARY, TAG_DESCRIPTION,
	TAG_BUILDTIME, TAG_BUILDHOST, TAG_SIZE = 1009, TAG_LICENSE = 1014, TAG_PACKAGER,
	TAG_GROUP, TAG_URL = 1020, TAG_OS, TAG_ARCH, TAG_POSTIN = 1024, TAG_POSTUN = 1026,
	TAG_FILESIZES = 1028, TAG_FILEMODES = 1030, TAG_FILERDEVS = 1033, TAG_FILEMTIMES,
	TAG_FILEDIGESTS, TAG_FILELINKTOS, TAG_FILEFLAGS, TAG_FILEUSERNAME = 1039,
	TAG_FILEGROUPNAME, TAG_SOURCERPM = 1044, TAG_FILEVERIFYFLAGS, TAG_PROVIDENAME = 1047,
	TAG_REQUIREFLAGS, TAG_REQUIRENAME, TAG_REQUIREVERSION, TAG_CONFLICTFLAGS = 1053,
	TAG_CONFLICTNAME, TAG_CONFLICTVERSION, TAG_POSTINPROG = 1086, TAG_POSTUNPROG = 1088,
	TAG_FILEDEVICES = 1095, TAG_FILEINODES, TAG_FILELANGS, TAG_PROVIDEFLAGS = 1112,
	TAG_PROVIDEVERSION, TAG_DIRINDEXES = 1116, TAG_BASENAMES, TAG_DIRNAMES,
	TAG_PAYLOADFORMAT = 1124, TAG_PAYLOADCOMPRESSOR, TAG_PAYLOADFLAGS,
	TAG_FILEDIGESTALGO = 5011, TAG_PAYLOADDIGEST = 5092, TAG_PAYLOADDIGESTALGO,
	TAG_PAYLOADDIGESTALT = 5097,
};

enum { SENSE_LESS = 1 << 1, SENSE_GREATER = 1 << 2, SENSE_EQUAL = 1 << 3,
       SENSE_INTERP = 1 << 8, SENSE_SCRIPT_POST = 1 << 10, SENSE_SCRIPT_POSTUN = 1 << 12,
       SENSE_RPMLIB = 1 << 24 };

#define DIGEST_SHA256 8 /* PGPHASHALGO_SHA256 */

/* ---- headers ---- */

struct hent {
	uint32_t tag, type, count;
	kb_buf data;
};
struct hdr {
	struct hent *e;
	size_t n, cap;
};

static struct hent *h_add(struct hdr *h, uint32_t tag, uint32_t type, uint32_t count)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->e = kb_realloc(h->e, h->cap * sizeof *h->e);
	}
	struct hent *e = &h->e[h->n++];
	*e = (struct hent){tag, type, count, {0}};
	return e;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
	p[3] = (uint8_t)v;
}

static void h_str(struct hdr *h, uint32_t tag, const char *s)
{
	kb_buf_add(&h_add(h, tag, T_STRING, 1)->data, s, strlen(s) + 1);
}
static void h_i18n(struct hdr *h, uint32_t tag, const char *s)
{
	kb_buf_add(&h_add(h, tag, T_I18N, 1)->data, s, strlen(s) + 1);
}
static void h_bin(struct hdr *h, uint32_t tag, const void *p, size_t n)
{
	kb_buf_add(&h_add(h, tag, T_BIN, (uint32_t)n)->data, p, n);
}
static void h_strs(struct hdr *h, uint32_t tag, const char *const *v, size_t n)
{
	struct hent *e = h_add(h, tag, T_STRARR, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		kb_buf_add(&e->data, v[i], strlen(v[i]) + 1);
}
static void h_i32s(struct hdr *h, uint32_t tag, const uint32_t *v, size_t n)
{
	struct hent *e = h_add(h, tag, T_INT32, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t b[4];
		be32(b, v[i]);
		kb_buf_add(&e->data, b, 4);
	}
}
static void h_i32(struct hdr *h, uint32_t tag, uint32_t v) { h_i32s(h, tag, &v, 1); }
static void h_i16s(struct hdr *h, uint32_t tag, const uint16_t *v, size_t n)
{
	struct hent *e = h_add(h, tag, T_INT16, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t b[2] = {(uint8_t)(v[i] >> 8), (uint8_t)v[i]};
		kb_buf_add(&e->data, b, 2);
	}
}

static int by_tag(const void *a, const void *b)
{
	const struct hent *x = a, *y = b;
	return x->tag < y->tag ? -1 : x->tag > y->tag;
}

/* the on-disk header: magic, counts, index sorted by tag (the region
 * tag first), data with integers aligned, the region trailer last */
static void h_build(struct hdr *h, uint32_t region, kb_buf *out)
{
	qsort(h->e, h->n, sizeof *h->e, by_tag);
	uint32_t il = (uint32_t)h->n + 1;
	kb_buf data = {0}, index = {0};
	uint8_t ent[16];
	for (size_t i = 0; i < h->n; i++) {
		struct hent *e = &h->e[i];
		size_t align = e->type == T_INT16 ? 2 : e->type == T_INT32 ? 4 : 1;
		while (data.len % align)
			kb_buf_addc(&data, 0);
		be32(ent, e->tag), be32(ent + 4, e->type), be32(ent + 8, (uint32_t)data.len),
			be32(ent + 12, e->count);
		kb_buf_add(&index, ent, 16);
		kb_buf_add(&data, e->data.p, e->data.len);
	}
	uint32_t trailer = (uint32_t)data.len;
	be32(ent, region), be32(ent + 4, T_BIN), be32(ent + 8, (uint32_t)-(int32_t)(il * 16)),
		be32(ent + 12, 16);
	kb_buf_add(&data, ent, 16);
	static const uint8_t magic[8] = {0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0};
	kb_buf_add(out, magic, 8);
	uint8_t counts[8];
	be32(counts, il), be32(counts + 4, (uint32_t)data.len);
	kb_buf_add(out, counts, 8);
	be32(ent, region), be32(ent + 4, T_BIN), be32(ent + 8, trailer), be32(ent + 12, 16);
	kb_buf_add(out, ent, 16);
	kb_buf_add(out, index.p, index.len);
	kb_buf_add(out, data.p, data.len);
	kb_buf_free(&data);
	kb_buf_free(&index);
}

static void h_free(struct hdr *h)
{
	for (size_t i = 0; i < h->n; i++)
		kb_buf_free(&h->e[i].data);
	free(h->e);
}

/* ---- dependencies ---- */

struct dep {
	const char *name, *version;
	uint32_t flags;
};
struct deps {
	struct dep *d;
	size_t n, cap;
};

static void dep_add(struct deps *ds, const char *name, const char *version, uint32_t flags)
{
	for (size_t i = 0; i < ds->n; i++)
		if (!strcmp(ds->d[i].name, name) && !strcmp(ds->d[i].version, version) &&
		    ds->d[i].flags == flags)
			return;
	if (ds->n == ds->cap) {
		ds->cap = ds->cap ? 2 * ds->cap : 16;
		ds->d = kb_realloc(ds->d, ds->cap * sizeof *ds->d);
	}
	ds->d[ds->n++] = (struct dep){name, version, flags};
}

/* "name" or "name OP evr" (checked by kb_pkg_check_meta) */
static void dep_parse(struct deps *ds, kb_arena *a, const char *s, uint32_t extra)
{
	const char *sp = strchr(s, ' ');
	if (!sp) {
		dep_add(ds, s, "", extra);
		return;
	}
	char op[3] = {0}, evr[256] = {0};
	if (sscanf(sp, " %2[<>=] %255s", op, evr) != 2)
		abort(); /* kb_pkg_check_meta let it through: a bug */
	uint32_t f = (strchr(op, '<') ? SENSE_LESS : 0) | (strchr(op, '>') ? SENSE_GREATER : 0) |
		     (strchr(op, '=') ? SENSE_EQUAL : 0);
	dep_add(ds, kb_arena_strndup(a, s, (size_t)(sp - s)), kb_arena_strdup(a, evr), f | extra);
}

static int dep_cmp(const void *a, const void *b)
{
	const struct dep *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->flags != y->flags)
		return x->flags < y->flags ? -1 : 1;
	return strcmp(x->version, y->version);
}

static void h_deps(struct hdr *h, struct deps *ds, uint32_t tname, uint32_t tflags,
		   uint32_t tversion)
{
	if (!ds->n)
		return;
	qsort(ds->d, ds->n, sizeof *ds->d, dep_cmp);
	const char **names = kb_calloc(ds->n, sizeof *names);
	const char **vers = kb_calloc(ds->n, sizeof *vers);
	uint32_t *flags = kb_calloc(ds->n, sizeof *flags);
	for (size_t i = 0; i < ds->n; i++)
		names[i] = ds->d[i].name, vers[i] = ds->d[i].version, flags[i] = ds->d[i].flags;
	h_strs(h, tname, names, ds->n);
	h_i32s(h, tflags, flags, ds->n);
	h_strs(h, tversion, vers, ds->n);
	free(names), free(vers), free(flags);
}

/* ---- payload: cpio newc, zstd ---- */

struct pay {
	int fd;
	ZSTD_CCtx *z;
	kb_sha *raw, *comp; /* SHA-256 of the uncompressed and compressed stream */
	uint64_t rawsize, compsize;
	char *out;
	size_t outcap;
};

static kb_err *pay_push(struct pay *p, const void *src, size_t n, ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = {src, n, 0};
	kb_sha_update(p->raw, src, n);
	p->rawsize += n;
	for (;;) {
		ZSTD_outBuffer o = {p->out, p->outcap, 0};
		size_t r = ZSTD_compressStream2(p->z, &o, &in, end);
		if (ZSTD_isError(r))
			return kb_errf("cannot compress the rpm payload: %s", ZSTD_getErrorName(r));
		if (o.pos) {
			kb_err *err = kb_write_all(p->fd, p->out, o.pos, "the temporary rpm payload");
			if (err)
				return err;
			kb_sha_update(p->comp, p->out, o.pos);
			p->compsize += o.pos;
		}
		if (end == ZSTD_e_end ? r == 0 : in.pos == in.size)
			return NULL;
	}
}

static kb_err *cpio_header(struct pay *p, uint32_t ino, uint32_t mode, uint32_t nlink,
			   uint32_t mtime, uint64_t size, const char *name)
{
	size_t namesize = strlen(name) + 1;
	char h[111];
	snprintf(h, sizeof h, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", ino,
		 mode, 0u, 0u, nlink, mtime, (uint32_t)size, 0u, 0u, 0u, 0u, (uint32_t)namesize,
		 0u);
	kb_err *err = pay_push(p, h, 110, ZSTD_e_continue);
	if (!err)
		err = pay_push(p, name, namesize, ZSTD_e_continue);
	static const char zero[4];
	size_t pad = (4 - (110 + namesize) % 4) % 4;
	if (!err && pad)
		err = pay_push(p, zero, pad, ZSTD_e_continue);
	return err;
}

static kb_err *cpio_pad(struct pay *p, uint64_t size)
{
	static const char zero[4];
	size_t pad = (size_t)((4 - size % 4) % 4);
	return pad ? pay_push(p, zero, pad, ZSTD_e_continue) : NULL;
}

static uint32_t file_mode(char type)
{
	return type == 'd' ? 040755 : type == 'l' ? 0120777 : type == 'x' ? 0100755 : 0100644;
}

static kb_err *write_payload(kb_store *s, const kb_pkg_ent *const *f, size_t n, uint32_t mtime,
			     struct pay *p)
{
	kb_err *err = NULL;
	char *chunk = kb_malloc(CHUNK);
	kb_buf name = {0};
	for (size_t i = 0; !err && i < n; i++) {
		const kb_pkg_ent *e = f[i];
		name.len = 0;
		kb_buf_addf(&name, "./%s", e->path);
		uint64_t size = e->type == 'd' ? 0 : e->size;
		if ((err = cpio_header(p, (uint32_t)i + 1, file_mode(e->type), 1, mtime, size,
				       name.p)))
			break;
		if (e->type == 'l') {
			err = pay_push(p, e->target, size, ZSTD_e_continue);
		} else if (e->type != 'd') {
			int fd;
			if ((err = kb_store_open_object(s, &e->hash, &fd))) {
				err = kb_err_wrap(err, "cannot read the content of '/%s'", e->path);
				break;
			}
			for (uint64_t left = size; !err && left;) {
				size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
				if ((err = kb_read_full(fd, chunk, want, &got, e->path)))
					break;
				if (got != want)
					err = kb_errf("the content of '/%s' changed size while being "
						      "read (run 'kbuild store fsck')",
						      e->path);
				else
					err = pay_push(p, chunk, got, ZSTD_e_continue);
				left -= got;
			}
			close(fd);
		}
		if (!err)
			err = cpio_pad(p, size);
	}
	if (!err)
		err = cpio_header(p, 0, 0, 1, 0, 0, "TRAILER!!!");
	if (!err)
		err = pay_push(p, NULL, 0, ZSTD_e_end);
	kb_buf_free(&name);
	free(chunk);
	return err;
}

/* ---- the main header ---- */

static int by_path(const void *a, const void *b)
{
	const kb_pkg_ent *const *x = a, *const *y = b;
	return strcmp((*x)->path, (*y)->path);
}

static const char *isa_name(const char *arch)
{
	static const char *const map[][2] = {{"x86_64", "x86-64"},   {"aarch64", "aarch-64"},
					     {"i686", "x86-32"},     {"ppc64le", "ppc-64"},
					     {"s390x", "s390-64"},   {"riscv64", "riscv-64"}};
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (!strcmp(arch, map[i][0]))
			return map[i][1];
	return NULL;
}

static void file_tags(struct hdr *h, const kb_pkg_ent *const *f, size_t n, uint32_t mtime,
		      kb_arena *a)
{
	if (!n)
		return;
	uint32_t *sizes = kb_calloc(n, 4), *mtimes = kb_calloc(n, 4), *zero = kb_calloc(n, 4);
	uint32_t *verify = kb_calloc(n, 4), *devices = kb_calloc(n, 4), *inodes = kb_calloc(n, 4);
	uint32_t *dirindex = kb_calloc(n, 4);
	uint16_t *modes = kb_calloc(n, 2), *rdevs = kb_calloc(n, 2);
	const char **digests = kb_calloc(n, sizeof(char *)), **links = kb_calloc(n, sizeof(char *));
	const char **root = kb_calloc(n, sizeof(char *)), **empty = kb_calloc(n, sizeof(char *));
	const char **base = kb_calloc(n, sizeof(char *)), **dirs = kb_calloc(n, sizeof(char *));
	size_t ndirs = 0;
	for (size_t i = 0; i < n; i++) {
		const kb_pkg_ent *e = f[i];
		sizes[i] = e->type == 'd' ? 0 : (uint32_t)e->size;
		mtimes[i] = mtime;
		verify[i] = 0xffffffffu; /* RPMVERIFY_ALL */
		devices[i] = 1;
		inodes[i] = (uint32_t)i + 1; /* the cpio header's ino */
		modes[i] = (uint16_t)file_mode(e->type);
		root[i] = "root";
		empty[i] = "";
		links[i] = e->type == 'l' ? e->target : "";
		if (e->type == 'f' || e->type == 'x') {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&e->hash, hex);
			digests[i] = kb_arena_strdup(a, hex);
		} else {
			digests[i] = "";
		}
		const char *slash = strrchr(e->path, '/');
		base[i] = slash ? slash + 1 : e->path;
		const char *dir = slash ? kb_arena_printf(a, "/%.*s/", (int)(slash - e->path),
							  e->path)
					: "/";
		size_t k = ndirs;
		while (k > 0 && strcmp(dirs[k - 1], dir))
			k--;
		if (k == 0) {
			dirs[ndirs++] = dir;
			k = ndirs;
		}
		dirindex[i] = (uint32_t)(k - 1);
	}
	h_i32s(h, TAG_FILESIZES, sizes, n);
	h_i16s(h, TAG_FILEMODES, modes, n);
	h_i16s(h, TAG_FILERDEVS, rdevs, n);
	h_i32s(h, TAG_FILEMTIMES, mtimes, n);
	h_strs(h, TAG_FILEDIGESTS, digests, n);
	h_strs(h, TAG_FILELINKTOS, links, n);
	h_i32s(h, TAG_FILEFLAGS, zero, n);
	h_strs(h, TAG_FILEUSERNAME, root, n);
	h_strs(h, TAG_FILEGROUPNAME, root, n);
	h_i32s(h, TAG_FILEVERIFYFLAGS, verify, n);
	h_i32s(h, TAG_FILEDEVICES, devices, n);
	h_i32s(h, TAG_FILEINODES, inodes, n);
	h_strs(h, TAG_FILELANGS, empty, n);
	h_i32s(h, TAG_DIRINDEXES, dirindex, n);
	h_strs(h, TAG_BASENAMES, base, n);
	h_strs(h, TAG_DIRNAMES, dirs, ndirs);
	h_i32(h, TAG_FILEDIGESTALGO, DIGEST_SHA256);
	free(sizes), free(mtimes), free(zero), free(verify), free(devices), free(inodes);
	free(dirindex), free(modes), free(rdevs), free(digests), free(links), free(root);
	free(empty), free(base), free(dirs);
}

static void main_header(const kb_pkg_meta *m, const kb_pkg_ent *const *f, size_t n,
			const struct pay *p, kb_arena *a, kb_buf *out)
{
	struct hdr h = {0};
	uint32_t mtime = (uint32_t)m->sde;
	static const char *const c_locale[] = {"C"};
	h_strs(&h, TAG_I18NTABLE, c_locale, 1);
	h_str(&h, TAG_NAME, m->name);
	h_str(&h, TAG_VERSION, m->version);
	h_str(&h, TAG_RELEASE, m->release);
	if (m->has_epoch)
		h_i32(&h, TAG_EPOCH, (uint32_t)m->epoch);
	h_i18n(&h, TAG_SUMMARY, m->summary);
	h_i18n(&h, TAG_DESCRIPTION, m->description ? m->description : m->summary);
	h_i32(&h, TAG_BUILDTIME, mtime);
	h_str(&h, TAG_BUILDHOST, "kbuild");
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += f[i]->type == 'd' ? 0 : f[i]->size;
	h_i32(&h, TAG_SIZE, (uint32_t)total);
	h_str(&h, TAG_LICENSE, m->license);
	if (m->maintainer)
		h_str(&h, TAG_PACKAGER, m->maintainer);
	h_i18n(&h, TAG_GROUP, m->group ? m->group : "Unspecified");
	if (m->url)
		h_str(&h, TAG_URL, m->url);
	h_str(&h, TAG_OS, "linux");
	h_str(&h, TAG_ARCH, m->arch);
	if (m->postinst) {
		h_str(&h, TAG_POSTIN, m->postinst);
		h_str(&h, TAG_POSTINPROG, "/bin/sh");
	}
	if (m->postrm) {
		h_str(&h, TAG_POSTUN, m->postrm);
		h_str(&h, TAG_POSTUNPROG, "/bin/sh");
	}
	file_tags(&h, f, n, mtime, a);
	/* a binary package is one with SOURCERPM (rpm's headerIsSource) */
	h_str(&h, TAG_SOURCERPM,
	      kb_arena_printf(a, "%s-%s-%s.src.rpm", m->name, m->version, m->release));

	const char *evr = m->has_epoch ? kb_arena_printf(a, "%lu:%s-%s", m->epoch, m->version,
							 m->release)
				       : kb_arena_printf(a, "%s-%s", m->version, m->release);
	struct deps prov = {0}, req = {0}, conf = {0};
	dep_add(&prov, m->name, evr, SENSE_EQUAL);
	const char *isa = isa_name(m->arch);
	if (isa)
		dep_add(&prov, kb_arena_printf(a, "%s(%s)", m->name, isa), evr, SENSE_EQUAL);
	for (size_t i = 0; i < m->nprovides; i++)
		dep_parse(&prov, a, m->provides[i], 0);
	for (size_t i = 0; i < m->ndepends; i++)
		dep_parse(&req, a, m->depends[i], 0);
	for (size_t i = 0; i < m->nconflicts; i++)
		dep_parse(&conf, a, m->conflicts[i], 0);
	if (m->postinst)
		dep_add(&req, "/bin/sh", "", SENSE_INTERP | SENSE_SCRIPT_POST);
	if (m->postrm)
		dep_add(&req, "/bin/sh", "", SENSE_INTERP | SENSE_SCRIPT_POSTUN);
	/* the rpmlib() features this layout uses, with rpmbuild's versions */
	uint32_t lib = SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL;
	dep_add(&req, "rpmlib(CompressedFileNames)", "3.0.4-1", lib);
	dep_add(&req, "rpmlib(FileDigests)", "4.6.0-1", lib);
	dep_add(&req, "rpmlib(PayloadFilesHavePrefix)", "4.0-1", lib);
	dep_add(&req, "rpmlib(PayloadIsZstd)", "5.4.18-1", lib);
	h_deps(&h, &prov, TAG_PROVIDENAME, TAG_PROVIDEFLAGS, TAG_PROVIDEVERSION);
	h_deps(&h, &req, TAG_REQUIRENAME, TAG_REQUIREFLAGS, TAG_REQUIREVERSION);
	h_deps(&h, &conf, TAG_CONFLICTNAME, TAG_CONFLICTFLAGS, TAG_CONFLICTVERSION);
	free(prov.d), free(req.d), free(conf.d);

	h_str(&h, TAG_PAYLOADFORMAT, "cpio");
	h_str(&h, TAG_PAYLOADCOMPRESSOR, "zstd");
	h_str(&h, TAG_PAYLOADFLAGS, kb_arena_printf(a, "%d", ZSTD_LEVEL));
	char hex[KB_HEX_LEN + 1];
	kb_hash d;
	kb_sha_final(p->comp, &d);
	kb_hash_hex(&d, hex);
	const char *hp = hex;
	h_strs(&h, TAG_PAYLOADDIGEST, &hp, 1);
	h_i32(&h, TAG_PAYLOADDIGESTALGO, DIGEST_SHA256);
	kb_sha_final(p->raw, &d);
	kb_hash_hex(&d, hex);
	h_strs(&h, TAG_PAYLOADDIGESTALT, &hp, 1);
	h_build(&h, TAG_IMMUTABLE, out);
	h_free(&h);
}

/* ---- signature header, lead, assembly ---- */

static void md_hex(const EVP_MD *md, const void *p, size_t n, char *out)
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_Digest(p, n, d, &len, md, NULL);
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static kb_err *sig_header(const kb_pkg_meta *m, const kb_buf *hdr, int payfd, uint64_t paysize,
			  uint64_t rawsize, kb_buf *out)
{
	struct hdr h = {0};
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	md_hex(EVP_sha1(), hdr->p, hdr->len, hex);
	h_str(&h, SIG_SHA1, hex);
	md_hex(EVP_sha256(), hdr->p, hdr->len, hex);
	h_str(&h, SIG_SHA256, hex);
	h_i32(&h, SIG_SIZE, (uint32_t)(hdr->len + paysize));
	h_i32(&h, SIG_PAYLOADSIZE, (uint32_t)rawsize);
	/* MD5 over header and payload: rpm 4.18 still writes and checks it */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_md5(), NULL);
	EVP_DigestUpdate(md, hdr->p, hdr->len);
	kb_err *err = NULL;
	char *chunk = kb_malloc(CHUNK);
	if (lseek(payfd, 0, SEEK_SET) < 0)
		err = kb_errno(errno, "cannot rewind the temporary rpm payload");
	for (uint64_t left = paysize; !err && left;) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
		if (!(err = kb_read_full(payfd, chunk, want, &got, "the temporary rpm payload")) &&
		    got != want)
			err = kb_errf("the temporary rpm payload is shorter than written");
		if (!err)
			EVP_DigestUpdate(md, chunk, got);
		left -= got;
	}
	free(chunk);
	uint8_t d[16];
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	h_bin(&h, SIG_MD5, d, 16);
	if (!err && m->sign_key) {
		/* an OpenPGP signature over the main header's bytes, made at the
		 * epoch: RSA with SHA-256, so the same key gives the same bytes */
		kb_buf sig = {0};
		if ((err = kb_pgp_sign(m->sign_key, hdr->p, hdr->len,
					m->sign_time ? m->sign_time : m->sde, KB_PGP_DETACHED, &sig)))
			err = kb_err_wrap(err, "cannot sign the rpm header with --sign-key");
		else
			h_bin(&h, SIG_RSA, sig.p, sig.len);
		kb_buf_free(&sig);
	}
	if (!err) {
		h_build(&h, TAG_SIGNATURES, out);
		while (out->len % 8)
			kb_buf_addc(out, 0);
	}
	h_free(&h);
	return err;
}

static void lead(const kb_pkg_meta *m, uint8_t out[96])
{
	memset(out, 0, 96);
	static const uint8_t magic[4] = {0xed, 0xab, 0xee, 0xdb};
	memcpy(out, magic, 4);
	out[4] = 3; /* format 3.0, as rpm 4 writes it */
	/* archnum from rpmrc (the lead is historical; rpm reads the header) */
	int archnum = !strcmp(m->arch, "aarch64")   ? 19
		      : !strcmp(m->arch, "ppc64le") ? 16
		      : !strcmp(m->arch, "s390x")   ? 15
						    : 1;
	out[9] = (uint8_t)archnum;
	char nvr[66];
	snprintf(nvr, sizeof nvr, "%s-%s-%s", m->name, m->version, m->release);
	memcpy(out + 10, nvr, strlen(nvr));
	out[77] = 1; /* os: linux */
	out[79] = 5; /* signature type: header-style */
}

kb_err *kb_pkg_write_rpm(kb_store *s, kb_txn *t, const kb_pkg_list *pl, const kb_pkg_meta *m,
			 kb_hash *out)
{
	kb_err *err = kb_pkg_check_meta(m, KB_PKG_RPM);
	if (err)
		return err;
	/* the files rpm lists: everything but the system's directories,
	 * sorted by full path */
	const kb_pkg_ent **f = kb_calloc(pl->n ? pl->n : 1, sizeof *f);
	size_t n = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < pl->n; i++)
		if (!(pl->e[i].type == 'd' && kb_pkg_system_dir(pl->e[i].path))) {
			f[n++] = &pl->e[i];
			total += pl->e[i].type == 'd' ? 0 : pl->e[i].size;
		}
	qsort(f, n, sizeof *f, by_path);
	if (total >= (1ull << 32) - (1u << 20)) {
		free(f);
		return kb_errf("cannot make the .rpm of %s: its files add up to 4 GiB or more "
			       "(rpm's 64-bit size tags are not written here)",
			       m->name);
	}
	struct pay p = {.fd = -1};
	if ((err = kb_pkg_tmpfile(s, &p.fd))) {
		free(f);
		return err;
	}
	p.z = ZSTD_createCCtx();
	p.raw = kb_sha_new();
	p.comp = kb_sha_new();
	p.outcap = ZSTD_CStreamOutSize();
	p.out = kb_malloc(p.outcap);
	ZSTD_CCtx_setParameter(p.z, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(p.z, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(p.z, ZSTD_c_nbWorkers, 0);
	kb_arena *a = kb_arena_new();
	kb_buf hdr = {0}, sig = {0};
	err = write_payload(s, f, n, (uint32_t)m->sde, &p);
	if (!err && p.rawsize > 0xffffffffull)
		err = kb_errf("the uncompressed payload is 4 GiB or more");
	if (!err) {
		main_header(m, f, n, &p, a, &hdr);
		err = sig_header(m, &hdr, p.fd, p.compsize, p.rawsize, &sig);
	}
	kb_blobw *w = NULL;
	if (!err)
		err = kb_blob_begin(t, &w);
	if (!err) {
		uint8_t l[96];
		lead(m, l);
		if (!(err = kb_blob_write(w, l, 96)) && !(err = kb_blob_write(w, sig.p, sig.len)))
			err = kb_blob_write(w, hdr.p, hdr.len);
		if (!err && lseek(p.fd, 0, SEEK_SET) < 0)
			err = kb_errno(errno, "cannot rewind the temporary rpm payload");
		for (uint64_t left = p.compsize; !err && left;) {
			size_t want = left < p.outcap ? (size_t)left : p.outcap, got;
			if (!(err = kb_read_full(p.fd, p.out, want, &got,
						 "the temporary rpm payload")) &&
			    got != want)
				err = kb_errf("the temporary rpm payload is shorter than written");
			if (!err)
				err = kb_blob_write(w, p.out, got);
			left -= got;
		}
		if (err)
			kb_blob_abort(w);
		else
			err = kb_blob_finish(w, 0, NULL, out);
	}
	close(p.fd);
	ZSTD_freeCCtx(p.z);
	kb_sha_free(p.raw);
	kb_sha_free(p.comp);
	free(p.out);
	free(f);
	kb_buf_free(&hdr);
	kb_buf_free(&sig);
	kb_arena_free(a);
	if (err)
		return kb_err_wrap(err, "cannot make the .rpm of %s", m->name);
	return NULL;
}

/* .rpm (v3/v4): the lead, the signature header and the main header
 * compared tag by tag (by name: BUILDTIME, BUILDHOST, FILEMTIMES, ...,
 * array elements of the file-list tags named by their file), then the
 * cpio payload entry by entry (diff_archive.c).
 *
 * Layout (rpm's format_v4 document): a 96-byte lead, then headers of
 * magic 8e ad e8 01, 4 reserved bytes, the index count and data size
 * (big-endian 32-bit), 16-byte index entries (tag, type, offset, count)
 * and the data; the signature header is padded to 8 bytes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEAD 96
#define MAX_INDEX (1u << 16)
#define MAX_DATA (256u << 20) /* rpm's own limit for one header */
#define SHOW 120

enum { T_NULL, T_CHAR, T_INT8, T_INT16, T_INT32, T_INT64, T_STRING, T_BIN, T_STRARR, T_I18N };

static const struct tagname {
	unsigned tag;
	const char *name;
} main_tags[] = {
	{100, "HEADERI18NTABLE"}, {1000, "NAME"}, {1001, "VERSION"}, {1002, "RELEASE"},
	{1003, "EPOCH"}, {1004, "SUMMARY"}, {1005, "DESCRIPTION"}, {1006, "BUILDTIME"},
	{1007, "BUILDHOST"}, {1008, "INSTALLTIME"}, {1009, "SIZE"}, {1010, "DISTRIBUTION"},
	{1011, "VENDOR"}, {1014, "LICENSE"}, {1015, "PACKAGER"}, {1016, "GROUP"},
	{1017, "CHANGELOG"}, {1020, "URL"}, {1021, "OS"}, {1022, "ARCH"}, {1023, "PREIN"},
	{1024, "POSTIN"}, {1025, "PREUN"}, {1026, "POSTUN"}, {1027, "OLDFILENAMES"},
	{1028, "FILESIZES"}, {1029, "FILESTATES"}, {1030, "FILEMODES"}, {1031, "FILEUIDS"},
	{1032, "FILEGIDS"}, {1033, "FILERDEVS"}, {1034, "FILEMTIMES"}, {1035, "FILEDIGESTS"},
	{1036, "FILELINKTOS"}, {1037, "FILEFLAGS"}, {1038, "ROOT"}, {1039, "FILEUSERNAME"},
	{1040, "FILEGROUPNAME"}, {1044, "SOURCERPM"}, {1045, "FILEVERIFYFLAGS"},
	{1046, "ARCHIVESIZE"}, {1047, "PROVIDENAME"}, {1048, "REQUIREFLAGS"},
	{1049, "REQUIRENAME"}, {1050, "REQUIREVERSION"}, {1053, "CONFLICTFLAGS"},
	{1054, "CONFLICTNAME"}, {1055, "CONFLICTVERSION"}, {1064, "RPMVERSION"},
	{1065, "TRIGGERSCRIPTS"}, {1066, "TRIGGERNAME"}, {1067, "TRIGGERVERSION"},
	{1068, "TRIGGERFLAGS"}, {1069, "TRIGGERINDEX"}, {1079, "VERIFYSCRIPT"},
	{1080, "CHANGELOGTIME"}, {1081, "CHANGELOGNAME"}, {1082, "CHANGELOGTEXT"},
	{1085, "PREINPROG"}, {1086, "POSTINPROG"}, {1087, "PREUNPROG"}, {1088, "POSTUNPROG"},
	{1090, "OBSOLETENAME"}, {1094, "COOKIE"}, {1095, "FILEDEVICES"}, {1096, "FILEINODES"},
	{1097, "FILELANGS"}, {1098, "PREFIXES"}, {1112, "PROVIDEFLAGS"},
	{1113, "PROVIDEVERSION"}, {1114, "OBSOLETEFLAGS"}, {1115, "OBSOLETEVERSION"},
	{1116, "DIRINDEXES"}, {1117, "BASENAMES"}, {1118, "DIRNAMES"}, {1122, "OPTFLAGS"},
	{1123, "DISTURL"}, {1124, "PAYLOADFORMAT"}, {1125, "PAYLOADCOMPRESSOR"},
	{1126, "PAYLOADFLAGS"}, {1131, "RHNPLATFORM"}, {1132, "PLATFORM"},
	{1140, "FILECOLORS"}, {1141, "FILECLASS"}, {1142, "CLASSDICT"}, {1143, "FILEDEPENDSX"},
	{1144, "FILEDEPENDSN"}, {1145, "DEPENDSDICT"}, {1146, "SOURCEPKGID"},
	{1151, "PRETRANS"}, {1152, "POSTTRANS"}, {1153, "PRETRANSPROG"},
	{1154, "POSTTRANSPROG"}, {1155, "DISTTAG"}, {5008, "LONGFILESIZES"},
	{5009, "LONGSIZE"}, {5010, "FILECAPS"}, {5011, "FILEDIGESTALGO"}, {5012, "BUGURL"},
	{5017, "HEADERCOLOR"}, {5020, "PREINFLAGS"}, {5021, "POSTINFLAGS"},
	{5022, "PREUNFLAGS"}, {5023, "POSTUNFLAGS"}, {5034, "VCS"}, {5045, "FILENLINKS"},
	{5046, "RECOMMENDNAME"}, {5047, "RECOMMENDVERSION"}, {5048, "RECOMMENDFLAGS"},
	{5049, "SUGGESTNAME"}, {5050, "SUGGESTVERSION"}, {5051, "SUGGESTFLAGS"},
	{5052, "SUPPLEMENTNAME"}, {5053, "SUPPLEMENTVERSION"}, {5054, "SUPPLEMENTFLAGS"},
	{5055, "ENHANCENAME"}, {5056, "ENHANCEVERSION"}, {5057, "ENHANCEFLAGS"},
	{5062, "ENCODING"}, {5090, "FILESIGNATURES"}, {5091, "FILESIGNATURELENGTH"},
	{5092, "PAYLOADDIGEST"}, {5093, "PAYLOADDIGESTALGO"}, {5096, "MODULARITYLABEL"},
	{5097, "PAYLOADDIGESTALT"}, {0, NULL},
}, sig_tags[] = {
	{267, "DSAHEADER"}, {268, "RSAHEADER"}, {269, "SHA1HEADER"}, {270, "LONGSIGSIZE"},
	{271, "LONGARCHIVESIZE"}, {273, "SHA256HEADER"}, {1000, "SIZE"}, {1002, "PGP"},
	{1004, "MD5"}, {1005, "GPG"}, {1007, "PAYLOADSIZE"}, {1008, "RESERVEDSPACE"},
	{0, NULL},
};

typedef struct {
	uint32_t tag, type, count;
	const unsigned char *p; /* the value in the data store */
	size_t len;
} tagv;

typedef struct {
	unsigned char *blob; /* index + data */
	tagv *v;
	size_t n;
	uint64_t end; /* offset just past this header in the file */
	const char **files; /* file paths, when the header lists files */
	size_t nfiles;
} header;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *tag_name(const struct tagname *t, unsigned tag, char *buf, size_t n)
{
	for (; t->name; t++)
		if (t->tag == tag)
			return t->name;
	snprintf(buf, n, "%u", tag);
	return buf;
}

/* the length of a value of type/count at off in data[0..size), or -1 */
static int64_t value_len(uint32_t type, uint32_t count, const unsigned char *data, uint64_t size,
			 uint64_t off)
{
	static const int width[] = {[T_CHAR] = 1, [T_INT8] = 1, [T_INT16] = 2, [T_INT32] = 4,
				    [T_INT64] = 8, [T_BIN] = 1};
	if (off > size)
		return -1;
	switch (type) {
	case T_CHAR: case T_INT8: case T_INT16: case T_INT32: case T_INT64: case T_BIN: {
		uint64_t n = (uint64_t)count * (uint64_t)width[type];
		return n <= size - off ? (int64_t)n : -1;
	}
	case T_STRING:
	case T_STRARR:
	case T_I18N: {
		uint64_t p = off;
		for (uint32_t i = 0; i < (type == T_STRING ? 1 : count); i++) {
			const unsigned char *z = memchr(data + p, 0, (size_t)(size - p));
			if (!z)
				return -1;
			p = (uint64_t)(z - data) + 1;
		}
		return (int64_t)(p - off);
	}
	}
	return -1;
}

static int by_tag(const void *x, const void *y)
{
	const tagv *a = x, *b = y;
	return a->tag < b->tag ? -1 : a->tag > b->tag;
}

/* the header at off; pad: round the end up to 8 (the signature header) */
static kb_err *read_header(dctx *c, const dsrc *s, uint64_t off, int pad, header *h)
{
	memset(h, 0, sizeof *h);
	unsigned char pre[16];
	size_t got;
	kb_err *err = ds_read(s, off, pre, sizeof pre, &got);
	if (err)
		return err;
	if (got < 16 || memcmp(pre, "\x8e\xad\xe8\x01", 4))
		return kb_errf("no header at offset 0x%llx (truncated?)", (unsigned long long)off);
	uint32_t nindex = be32(pre + 8), dsize = be32(pre + 12);
	if (nindex > MAX_INDEX || dsize > MAX_DATA || (uint64_t)nindex * 16 + dsize > c->mem_cap)
		return kb_errf("a header of %u tags and %u bytes is larger than kbuild reads", nindex,
			       dsize);
	uint64_t len = (uint64_t)nindex * 16 + dsize;
	h->blob = kb_malloc((size_t)len + 1);
	if ((err = ds_read(s, off + 16, h->blob, (size_t)len, &got)))
		return err;
	if (got < len)
		return kb_errf("the header at 0x%llx is cut short (truncated?)",
			       (unsigned long long)off);
	const unsigned char *data = h->blob + (size_t)nindex * 16;
	h->v = kb_calloc(nindex + 1, sizeof *h->v);
	for (uint32_t i = 0; i < nindex; i++) {
		const unsigned char *e = h->blob + (size_t)i * 16;
		tagv *t = &h->v[h->n];
		t->tag = be32(e);
		t->type = be32(e + 4);
		t->count = be32(e + 12);
		uint32_t o = be32(e + 8);
		int64_t l = value_len(t->type, t->count, data, dsize, o);
		if (t->type == T_NULL)
			continue;
		if (l < 0)
			return kb_errf("tag %u's value (type %u, %u items at %u) runs past the header's "
				       "%u bytes of data", t->tag, t->type, t->count, o, dsize);
		t->p = data + o;
		t->len = (size_t)l;
		h->n++;
	}
	qsort(h->v, h->n, sizeof *h->v, by_tag);
	h->end = off + 16 + len;
	if (pad)
		h->end = (h->end + 7) & ~(uint64_t)7;
	return NULL;
}

static void header_free(header *h)
{
	free(h->blob);
	free(h->v);
	free(h->files);
}

static const tagv *find(const header *h, uint32_t tag)
{
	tagv key = {.tag = tag};
	return bsearch(&key, h->v, h->n, sizeof *h->v, by_tag);
}

/* the i-th string of a string array (bounded by the value) */
static const char *nth(const tagv *t, uint32_t i)
{
	const unsigned char *p = t->p, *end = t->p + t->len;
	for (uint32_t k = 0; k < i && p < end; k++)
		p += strnlen((const char *)p, (size_t)(end - p)) + 1;
	return p < end ? (const char *)p : "";
}

/* "dir/base" per file, from DIRINDEXES, BASENAMES and DIRNAMES */
static void file_paths(dctx *c, header *h)
{
	const tagv *di = find(h, 1116), *bn = find(h, 1117), *dn = find(h, 1118);
	if (!di || !bn || !dn || di->type != T_INT32 || bn->type != T_STRARR ||
	    dn->type != T_STRARR || di->count != bn->count)
		return;
	h->nfiles = bn->count;
	h->files = kb_calloc(h->nfiles + 1, sizeof *h->files);
	const unsigned char *b = bn->p, *bend = bn->p + bn->len;
	for (size_t i = 0; i < h->nfiles && b < bend; i++) {
		uint32_t d = be32(di->p + 4 * i);
		const char *dir = d < dn->count ? nth(dn, d) : "?";
		char *path = kb_asprintf("%s%s", dir, (const char *)b);
		char *q = kb_quote(path, strlen(path));
		h->files[i] = d_strdup(c, q);
		free(q);
		free(path);
		b += strnlen((const char *)b, (size_t)(bend - b)) + 1;
	}
}

static uint64_t int_at(const tagv *t, uint32_t i)
{
	switch (t->type) {
	case T_CHAR:
	case T_INT8:
		return t->p[i];
	case T_INT16:
		return (uint64_t)t->p[2 * i] << 8 | t->p[2 * i + 1];
	case T_INT32:
		return be32(t->p + 4 * i);
	default:
		return (uint64_t)be32(t->p + 8 * i) << 32 | be32(t->p + 8 * i + 4);
	}
}

static const char *shown(dctx *c, const char *s)
{
	size_t n = strlen(s);
	char *q = kb_quote(s, n > SHOW ? SHOW : n);
	char *r = kb_arena_printf(c->out->a, "\"%s%s\"", q, n > SHOW ? "..." : "");
	free(q);
	return r;
}

static const char *int_str(dctx *c, const char *name, uint64_t v)
{
	size_t n = strlen(name);
	if (n >= 4 && !strcmp(name + n - 4, "TIME") && v < (1ull << 40)) {
		time_t t = (time_t)v;
		struct tm tm;
		char d[32];
		if (gmtime_r(&t, &tm) && strftime(d, sizeof d, "%Y-%m-%d %H:%M:%S UTC", &tm))
			return kb_arena_printf(c->out->a, "%llu (%s)", (unsigned long long)v, d);
	}
	if (!strcmp(name, "FILEMODES"))
		return kb_arena_printf(c->out->a, "0%llo", (unsigned long long)v);
	return kb_arena_printf(c->out->a, "%llu", (unsigned long long)v);
}

static int is_int(uint32_t t)
{
	return t == T_CHAR || t == T_INT8 || t == T_INT16 || t == T_INT32 || t == T_INT64;
}

/* one tag present on both sides with different values */
static void cmp_tag(dctx *c, const char *elem, const char *name, const tagv *x, const tagv *y,
		    const header *ha, const header *hb)
{
	if (x->type != y->type) {
		d_report(c, elem, "tag", NULL, "type %u vs %u", x->type, y->type);
		return;
	}
	char counts[64] = "";
	if (x->count != y->count)
		snprintf(counts, sizeof counts, "%u vs %u items; ", x->count, y->count);
	uint32_t n = x->count < y->count ? x->count : y->count;
	if (is_int(x->type) || x->type == T_STRARR || x->type == T_I18N) {
		for (uint32_t i = 0; i < n; i++) {
			const char *va, *vb;
			if (is_int(x->type)) {
				if (int_at(x, i) == int_at(y, i))
					continue;
				va = int_str(c, name, int_at(x, i));
				vb = int_str(c, name, int_at(y, i));
			} else {
				if (!strcmp(nth(x, i), nth(y, i)))
					continue;
				va = shown(c, nth(x, i));
				vb = shown(c, nth(y, i));
			}
			if (x->count == 1 && y->count == 1) {
				d_report(c, elem, "tag", NULL, "%s vs %s", va, vb);
				return;
			}
			/* an element of a file list: which file */
			const char *file = ha->files && x->count == ha->nfiles && i < ha->nfiles &&
							   hb->files && y->count == hb->nfiles &&
							   !strcmp(ha->files[i], hb->files[i])
						   ? ha->files[i] : NULL;
			uint32_t ndiff = 0;
			for (uint32_t k = i; k < n; k++)
				ndiff += is_int(x->type) ? int_at(x, k) != int_at(y, k)
							 : !!strcmp(nth(x, k), nth(y, k));
			d_report(c, elem, "tag", NULL, "%sitem %u%s%s%s: %s vs %s (%u of %u items differ)",
				 counts, i, file ? " (" : "", file ? file : "", file ? ")" : "", va, vb,
				 ndiff, n);
			return;
		}
		d_report(c, elem, "tag", NULL, "%u vs %u items, the first %u equal", x->count,
			 y->count, n);
		return;
	}
	if (x->type == T_STRING) {
		d_report(c, elem, "tag", NULL, "%s vs %s", shown(c, (const char *)x->p),
			 shown(c, (const char *)y->p));
		return;
	}
	size_t m = x->len < y->len ? x->len : y->len, i = 0;
	while (i < m && x->p[i] == y->p[i])
		i++;
	size_t from = i > 8 ? i - 8 : 0;
	size_t la = x->len - from < 17 ? x->len - from : 17, lb = y->len - from < 17 ? y->len - from : 17;
	d_report(c, elem, "tag", NULL, "%zu vs %zu bytes, first difference at offset 0x%zx: %s vs %s",
		 x->len, y->len, i, la ? d_hexctx(c, x->p + from, la, i - from) : "(end)",
		 lb ? d_hexctx(c, y->p + from, lb, i - from) : "(end)");
}

/* every tag of two headers; the region tags (62, 63) only restate the rest */
static void cmp_headers(dctx *c, const char *what, const struct tagname *names, const header *ha,
			const header *hb)
{
	d_push(c, what);
	size_t i = 0, j = 0;
	while (i < ha->n || j < hb->n) {
		const tagv *x = i < ha->n ? &ha->v[i] : NULL, *y = j < hb->n ? &hb->v[j] : NULL;
		uint32_t tag = x && (!y || x->tag <= y->tag) ? x->tag : y->tag;
		char buf[16];
		const char *name = tag_name(names, tag, buf, sizeof buf);
		char *elem = kb_asprintf("tag %s", name);
		if (tag == 62 || tag == 63) {
			/* skip */
		} else if (x && x->tag == tag && (!y || y->tag != tag)) {
			d_report(c, elem, "tag", NULL, "only in A");
		} else if (y && y->tag == tag && (!x || x->tag != tag)) {
			d_report(c, elem, "tag", NULL, "only in B");
		} else if (x->type != y->type || x->count != y->count || x->len != y->len ||
			   memcmp(x->p, y->p, x->len)) {
			cmp_tag(c, elem, name, x, y, ha, hb);
		}
		free(elem);
		if (x && x->tag == tag)
			i++;
		if (y && y->tag == tag)
			j++;
	}
	d_pop(c);
}

kb_err *d_rpm(dctx *c, dsrc *a, dsrc *b)
{
	unsigned char la[LEAD], lb[LEAD];
	size_t ga, gb;
	kb_err *err;
	if ((err = ds_read(a, 0, la, LEAD, &ga)) || (err = ds_read(b, 0, lb, LEAD, &gb)))
		return err;
	size_t before = c->out->n + c->out->more;
	if (ga == LEAD && gb == LEAD && memcmp(la, lb, LEAD)) {
		char na[67] = {0}, nb[67] = {0};
		memcpy(na, la + 10, 66);
		memcpy(nb, lb + 10, 66);
		if (strcmp(na, nb))
			d_report(c, "lead", "tag", NULL, "name %s vs %s", shown(c, na), shown(c, nb));
		else
			d_report(c, "lead", "tag", NULL, "the 96-byte leads differ");
	}
	header sa = {0}, sb = {0}, ma = {0}, mb = {0};
	kb_err *ea = read_header(c, a, LEAD, 1, &sa), *eb = read_header(c, b, LEAD, 1, &sb);
	if (!ea)
		ea = read_header(c, a, sa.end, 0, &ma);
	if (!eb)
		eb = read_header(c, b, sb.end, 0, &mb);
	if (ea || eb) {
		if (ea)
			d_report(c, NULL, "error", NULL, "cannot read A's rpm headers: %s", ea->msg);
		if (eb)
			d_report(c, NULL, "error", NULL, "cannot read B's rpm headers: %s", eb->msg);
		kb_err_free(ea);
		kb_err_free(eb);
		err = d_bytes(c, NULL, a, b);
		goto out;
	}
	file_paths(c, &ma);
	file_paths(c, &mb);
	cmp_headers(c, "signature header", sig_tags, &sa, &sb);
	cmp_headers(c, "header", main_tags, &ma, &mb);
	/* the payload: libarchive's rpm filter skips lead and headers again */
	{
		dsrc pa, pb;
		ds_window(a, ma.end, a->size - ma.end, &pa);
		ds_window(b, mb.end, b->size - mb.end, &pb);
		kb_hash ha, hb;
		if ((err = ds_hash(&pa, &ha)) || (err = ds_hash(&pb, &hb)))
			goto out;
		if (!kb_hash_eq(&ha, &hb) && !d_full(c)) {
			d_push(c, "payload");
			err = d_archive(c, DA_RPM_PAYLOAD, a, b);
			d_pop(c);
		} else if (!kb_hash_eq(&ha, &hb)) {
			d_report(c, "payload", "content", NULL, "the payloads differ");
		}
	}
	if (!err && c->out->n + c->out->more == before)
		d_report(c, NULL, "container", NULL,
			 "the bytes differ but the lead, every tag and the payload compare equal "
			 "(header layout or padding differ)");
out:
	header_free(&sa);
	header_free(&sb);
	header_free(&ma);
	header_free(&mb);
	return err;
}

/* The comparison's core: the path of containers being compared, the list
 * of differences, recognising a format from its first bytes, and the
 * entry points for operands on disk, in the store and in memory. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX 50
#define DEFAULT_MEM_CAP (64ull << 20)
#define DEFAULT_WORK_CAP (64ull << 30)

char *d_strdup(dctx *c, const char *s)
{
	return kb_arena_strdup(c->out->a, s);
}

int d_full(const dctx *c)
{
	return c->out->n >= c->max;
}

int d_spend(dctx *c, uint64_t n)
{
	c->work += n;
	return c->work > c->work_cap;
}

void d_push(dctx *c, const char *elem)
{
	/* deeper than any real nesting: kept so pops stay balanced, the
	 * comparers stop recursing long before (see d_node) */
	if (c->depth < D_MAXDEPTH)
		c->path[c->depth] = d_strdup(c, elem);
	c->depth++;
}

void d_pop(dctx *c)
{
	c->depth--;
}

void d_report(dctx *c, const char *elem, const char *kind, const char *diff,
	      const char *fmt, ...)
{
	kb_diff_list *l = c->out;
	if (l->n >= c->max) {
		l->more++;
		return;
	}
	kb_diff_item *it;
	l->v = kb_arena_grow(l->a, l->v, l->n, &l->cap, sizeof *l->v);
	it = &l->v[l->n++];
	size_t depth = c->depth < D_MAXDEPTH ? c->depth : D_MAXDEPTH;
	it->npath = depth + (elem != NULL);
	it->path = kb_arena_alloc(l->a, (it->npath + 1) * sizeof *it->path);
	memcpy(it->path, c->path, depth * sizeof *it->path);
	if (elem)
		it->path[depth] = d_strdup(c, elem);
	it->kind = kind;
	va_list ap;
	va_start(ap, fmt);
	char *d = kb_vasprintf(fmt, ap);
	va_end(ap);
	it->detail = d_strdup(c, d);
	free(d);
	it->diff = diff ? d_strdup(c, diff) : NULL;
}

/* ---- formats by their first bytes ---- */

static int looks_text(const unsigned char *p, size_t n)
{
	size_t odd = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		if (!ch)
			return 0;
		/* control bytes other than tab, newline, CR, FF, ESC: binary */
		if (ch < 32 && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\f' && ch != 27)
			odd++;
	}
	return odd * 100 <= n;
}

kb_err *d_detect(const dsrc *s, dkind *k, const char **what)
{
	unsigned char h[8192];
	size_t n;
	kb_err *err = ds_read(s, 0, h, sizeof h, &n);
	if (err)
		return err;
	static const struct {
		const char *magic;
		size_t off, len;
		dkind k;
		const char *what;
	} m[] = {
		{"!<arch>\n", 0, 8, DK_AR, "an ar archive"},
		{"\xed\xab\xee\xdb", 0, 4, DK_RPM, "an rpm package"},
		{"\x7f" "ELF", 0, 4, DK_ELF, "an ELF file"},
		{"\x1f\x8b", 0, 2, DK_COMPRESSED, "gzip data"},
		{"\xfd" "7zXZ\0", 0, 6, DK_COMPRESSED, "xz data"},
		{"\x28\xb5\x2f\xfd", 0, 4, DK_COMPRESSED, "zstd data"},
		{"BZh", 0, 3, DK_COMPRESSED, "bzip2 data"},
		{"\x04\x22\x4d\x18", 0, 4, DK_COMPRESSED, "lz4 data"},
		{"\x5d\0\0", 0, 3, DK_COMPRESSED, "lzma data"},
		{"ustar", 257, 5, DK_TAR, "a tar archive"},
		{"070701", 0, 6, DK_CPIO, "a cpio archive"},
		{"070702", 0, 6, DK_CPIO, "a cpio archive"},
		{"070707", 0, 6, DK_CPIO, "a cpio archive"},
		{"\xc7\x71", 0, 2, DK_CPIO, "a cpio archive"},
		{"\x71\xc7", 0, 2, DK_CPIO, "a cpio archive"},
	};
	if (!s->size) {
		*k = DK_EMPTY;
		*what = "empty";
		return NULL;
	}
	for (size_t i = 0; i < sizeof m / sizeof *m; i++)
		if (n >= m[i].off + m[i].len && !memcmp(h + m[i].off, m[i].magic, m[i].len)) {
			*k = m[i].k;
			*what = m[i].what;
			return NULL;
		}
	unsigned char iso[5];
	size_t got;
	if ((err = ds_read(s, 0x8001, iso, sizeof iso, &got)))
		return err;
	if (got == 5 && !memcmp(iso, "CD001", 5)) {
		*k = DK_ISO;
		*what = "an ISO 9660 image";
	} else if (looks_text(h, n)) {
		*k = DK_TEXT;
		*what = "text";
	} else {
		*k = DK_BINARY;
		*what = "binary data";
	}
	return NULL;
}

/* ---- one pair of sources ---- */

kb_err *d_node(dctx *c, const char *name, dsrc *a, dsrc *b)
{
	(void)name;
	kb_hash ha, hb;
	kb_err *err;
	if (a->size == b->size) {
		if ((err = ds_hash(a, &ha)) || (err = ds_hash(b, &hb)))
			return err;
		if (kb_hash_eq(&ha, &hb))
			return NULL;
	}
	/* past the limit, or too deep to be anything but a quine: count it */
	if (d_full(c) || c->depth >= D_MAXDEPTH - 1 || c->work > c->work_cap) {
		d_report(c, NULL, "content", NULL, "contents differ (%llu vs %llu bytes)",
			 (unsigned long long)a->size, (unsigned long long)b->size);
		return NULL;
	}
	dkind ka, kb;
	const char *wa, *wb;
	if ((err = d_detect(a, &ka, &wa)) || (err = d_detect(b, &kb, &wb)))
		return err;
	int plain_a = ka == DK_TEXT || ka == DK_BINARY || ka == DK_EMPTY;
	int plain_b = kb == DK_TEXT || kb == DK_BINARY || kb == DK_EMPTY;
	if (ka != kb && !(plain_a && plain_b)) {
		d_report(c, NULL, "type", NULL, "A is %s, B is %s", wa, wb);
		return NULL;
	}
	switch (ka) {
	case DK_AR:
		return d_archive(c, DA_AR, a, b);
	case DK_TAR:
		return d_archive(c, DA_TAR, a, b);
	case DK_CPIO:
		return d_archive(c, DA_CPIO, a, b);
	case DK_ISO:
		return d_archive(c, DA_ISO, a, b);
	case DK_COMPRESSED:
		return d_archive(c, DA_COMPRESSED, a, b);
	case DK_RPM:
		return d_rpm(c, a, b);
	case DK_ELF:
		return d_elf(c, a, b);
	default:
		break;
	}
	if (ka == DK_TEXT && kb == DK_TEXT) {
		int done = 0;
		if ((err = d_text(c, NULL, a, b, &done)) || done)
			return err;
	}
	return d_bytes(c, NULL, a, b);
}

/* ---- operands ---- */

typedef struct {
	const char *arg;
	char *label;
	int is_dir, from_store;
	dsrc src;     /* a file or a blob */
	dtree tree;   /* a directory or a store tree */
} operand;

static const char *base_name(const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	const char *s = p + n;
	while (s > p && s[-1] != '/')
		s--;
	return s;
}

static kb_err *open_store(const kb_diff_opts *o, kb_store **s)
{
	if (*s)
		return NULL;
	if (!o->store)
		return kb_usage("no store to look operands up in");
	return kb_store_open(o->store, 0, s);
}

static kb_err *open_operand(const char *arg, const kb_diff_opts *o, kb_store **store,
			    operand *op)
{
	memset(op, 0, sizeof *op);
	op->arg = arg;
	op->src.fd = -1;
	op->tree.dirfd = -1;
	struct stat st;
	if (stat(arg, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			op->is_dir = 1;
			op->tree.dirfd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (op->tree.dirfd < 0)
				return kb_errno(errno, "cannot open the directory %s", arg);
			return NULL;
		}
		/* a fifo or device would block or never end: not a build output */
		if (!S_ISREG(st.st_mode))
			return kb_usage("%s is neither a regular file nor a directory", arg);
		return ds_open_path(arg, &op->src);
	}
	int e = errno;
	if (e != ENOENT && e != ENOTDIR)
		return kb_errno(e, "cannot read %s", arg);
	/* not on disk: a stored object's hash or a ref */
	kb_err *err = open_store(o, store);
	if (err) {
		kb_err *u = kb_usage("%s: no such file or directory (and no store to look it up "
				     "in: %s)", arg, err->msg);
		kb_err_free(err);
		return u;
	}
	kb_oid oid;
	op->from_store = 1;
	if ((err = kb_store_resolve(*store, arg, &oid))) {
		kb_err *u = kb_usage("%s: no such file or directory, and not in the store either: %s",
				     arg, err->msg);
		kb_err_free(err);
		return u;
	}
	if (oid.type == KB_TREE) {
		op->is_dir = 1;
		op->tree.s = *store;
		op->tree.tree = oid.hash;
		return NULL;
	}
	return ds_open_object(*store, &oid.hash, &op->src);
}

static const char *short_label(const operand *op, const char *name, char buf[13])
{
	kb_hash h;
	if (!op->from_store || kb_hash_parse(name, strlen(name), &h))
		return name;
	memcpy(buf, name, 12);
	buf[12] = 0;
	return buf;
}

static void close_operand(operand *op)
{
	ds_free(&op->src);
	if (op->tree.dirfd >= 0)
		close(op->tree.dirfd);
}

static void init(kb_diff_list *out, const kb_diff_opts *o, dctx *c)
{
	memset(out, 0, sizeof *out);
	out->a = kb_arena_new();
	memset(c, 0, sizeof *c);
	c->out = out;
	c->max = o && o->max ? o->max : DEFAULT_MAX;
	c->mem_cap = o && o->mem_cap ? o->mem_cap : DEFAULT_MEM_CAP;
	c->work_cap = o && o->work_cap ? o->work_cap : DEFAULT_WORK_CAP;
}

kb_err *kb_diff(const char *a, const char *b, const kb_diff_opts *o, kb_diff_list *out)
{
	static const kb_diff_opts none = {0};
	if (!o)
		o = &none;
	dctx c;
	init(out, o, &c);
	kb_store *store = NULL;
	operand oa, ob;
	kb_err *err = open_operand(a, o, &store, &oa);
	if (err) {
		close_operand(&oa);
		kb_store_close(store);
		kb_diff_list_free(out);
		return err;
	}
	if ((err = open_operand(b, o, &store, &ob))) {
		close_operand(&oa);
		close_operand(&ob);
		kb_store_close(store);
		kb_diff_list_free(out);
		return err;
	}
	/* a store hash: its first 12 digits are name enough */
	char sa[13], sb[13];
	const char *na = base_name(a), *nb = base_name(b);
	na = short_label(&oa, na, sa);
	nb = short_label(&ob, nb, sb);
	char *label = !strcmp(na, nb) ? kb_strdup(na) : kb_asprintf("{%s,%s}", na, nb);
	d_push(&c, label);
	free(label);
	if (oa.is_dir && ob.is_dir)
		err = d_tree(&c, &oa.tree, &ob.tree);
	else if (!oa.is_dir && !ob.is_dir)
		err = d_node(&c, na, &oa.src, &ob.src);
	else
		d_report(&c, NULL, "type", NULL, "A is %s, B is %s",
			 oa.is_dir ? "a directory" : "a file", ob.is_dir ? "a directory" : "a file");
	d_pop(&c);
	close_operand(&oa);
	close_operand(&ob);
	kb_store_close(store);
	if (err)
		kb_diff_list_free(out);
	return err;
}

kb_err *kb_diff_mem(const void *a, size_t na, const void *b, size_t nb, const char *label,
		    const kb_diff_opts *o, kb_diff_list *out)
{
	dctx c;
	init(out, o, &c);
	dsrc sa, sb;
	ds_mem(&sa, a, na);
	ds_mem(&sb, b, nb);
	d_push(&c, label ? label : "input");
	kb_err *err = d_node(&c, label, &sa, &sb);
	d_pop(&c);
	if (err)
		kb_diff_list_free(out);
	return err;
}

void kb_diff_list_free(kb_diff_list *l)
{
	kb_arena_free(l->a);
	memset(l, 0, sizeof *l);
}

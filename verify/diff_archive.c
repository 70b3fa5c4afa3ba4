/* Archives libarchive reads (ar, tar, cpio, ISO 9660, compressed single
 * streams, an rpm's cpio payload): each side is listed once, every
 * member hashed as it streams by (small ones kept in memory), entries are
 * matched by name, and their presence, order, metadata and content are
 * compared; members whose content differs are compared recursively,
 * read again from the archive when they were too large to keep. */
#include "internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEP_ONE (1u << 20)	/* a member kept from the listing pass */
#define KEEP_ALL (32u << 20)	/* all kept members of one listing */
#define CHUNK (1u << 16)
#define PARALLEL_MIN (1u << 20)

typedef struct {
	const char *name; /* quoted for display */
	unsigned type;	  /* AE_IF* */
	unsigned perm;
	int64_t uid, gid;
	const char *uname, *gname;
	int has_mtime;
	int64_t mtime;
	long mtime_ns;
	const char *link, *hardlink;
	int64_t size;	  /* as the header says */
	uint64_t rdev;
	kb_hash hash;	  /* of the content read */
	uint64_t nread;
	unsigned char *data; /* kept content, or NULL */
	size_t index;
} dent;

typedef struct {
	kb_arena *a;
	dent *e;
	size_t n, cap;
	const char *error; /* the listing stopped early */
	int format;
	uint64_t kept;
} dlist;

/* ---- libarchive over a dsrc ---- */

struct rd {
	const dsrc *s;
	uint64_t pos;
	unsigned char *buf;
};

static la_ssize_t rd_read(struct archive *ar, void *ud, const void **buf)
{
	struct rd *r = ud;
	if (r->s->fd < 0) {
		/* memory: hand out the bytes themselves */
		uint64_t left = r->pos < r->s->size ? r->s->size - r->pos : 0;
		size_t n = left > (1u << 20) ? (1u << 20) : (size_t)left;
		*buf = n ? r->s->mem + r->s->base + r->pos : r->buf;
		r->pos += n;
		return (la_ssize_t)n;
	}
	size_t got;
	kb_err *err = ds_read(r->s, r->pos, r->buf, CHUNK, &got);
	if (err) {
		archive_set_error(ar, EIO, "%s", err->msg);
		kb_err_free(err);
		return -1;
	}
	r->pos += got;
	*buf = r->buf;
	return (la_ssize_t)got;
}

static la_int64_t rd_seek(struct archive *ar, void *ud, la_int64_t off, int whence)
{
	(void)ar;
	struct rd *r = ud;
	int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)r->pos
								    : (int64_t)r->s->size;
	int64_t to = base + off;
	if (to < 0)
		return ARCHIVE_FATAL;
	r->pos = (uint64_t)to > r->s->size ? r->s->size : (uint64_t)to;
	return (la_int64_t)r->pos;
}

static la_int64_t rd_skip(struct archive *ar, void *ud, la_int64_t n)
{
	(void)ar;
	struct rd *r = ud;
	uint64_t left = r->s->size - r->pos;
	if (n < 0)
		return 0;
	if ((uint64_t)n > left)
		n = (la_int64_t)left;
	r->pos += (uint64_t)n;
	return n;
}

static const char *fmt_what(dafmt f)
{
	switch (f) {
	case DA_AR: return "an ar archive";
	case DA_TAR: return "a tar archive";
	case DA_CPIO: return "a cpio archive";
	case DA_ISO: return "an ISO 9660 image";
	case DA_COMPRESSED: return "compressed data";
	case DA_RPM_PAYLOAD: return "the rpm's cpio payload";
	}
	return "an archive";
}

static void filters(struct archive *ar)
{
	archive_read_support_filter_gzip(ar);
	archive_read_support_filter_xz(ar);
	archive_read_support_filter_lzma(ar);
	archive_read_support_filter_zstd(ar);
	archive_read_support_filter_bzip2(ar);
	archive_read_support_filter_lz4(ar);
}

static struct archive *open_ar(dafmt f, struct rd *r, const char **error, kb_arena *a)
{
	struct archive *ar = archive_read_new();
	switch (f) {
	case DA_AR:
		archive_read_support_format_ar(ar);
		break;
	case DA_TAR:
		archive_read_support_format_tar(ar);
		break;
	case DA_CPIO:
		archive_read_support_format_cpio(ar);
		break;
	case DA_ISO:
		archive_read_support_format_iso9660(ar);
		break;
	case DA_COMPRESSED:
		filters(ar);
		archive_read_support_format_tar(ar);
		archive_read_support_format_cpio(ar);
		/* anything else compressed is one stream: raw bids last */
		archive_read_support_format_raw(ar);
		break;
	case DA_RPM_PAYLOAD:
		archive_read_support_filter_rpm(ar);
		filters(ar);
		archive_read_support_format_cpio(ar);
		break;
	}
	archive_read_set_read_callback(ar, rd_read);
	archive_read_set_seek_callback(ar, rd_seek);
	archive_read_set_skip_callback(ar, rd_skip);
	archive_read_set_callback_data(ar, r);
	if (archive_read_open1(ar) != ARCHIVE_OK) {
		const char *m = archive_error_string(ar);
		*error = kb_arena_strdup(a, m ? m : "unrecognised format");
		archive_read_free(ar);
		return NULL;
	}
	return ar;
}

static const char *ar_msg(struct archive *ar, kb_arena *a)
{
	const char *m = archive_error_string(ar);
	return kb_arena_strdup(a, m ? m : "read error");
}

static const char *quoted(kb_arena *a, const char *s)
{
	if (!s)
		return NULL;
	char *q = kb_quote(s, strlen(s));
	char *r = kb_arena_strdup(a, q);
	free(q);
	return r;
}

/* every entry with its metadata and content hash; *spent counts the
 * bytes read (c is only read: the two sides may be listed at once) */
static void list_archive(const dctx *c, dafmt f, const dsrc *s, dlist *l, uint64_t *spent)
{
	memset(l, 0, sizeof *l);
	l->a = kb_arena_new();
	struct rd r = {s, 0, kb_malloc(CHUNK)};
	struct archive *ar = open_ar(f, &r, &l->error, l->a);
	if (!ar) {
		free(r.buf);
		return;
	}
	kb_sha *sha = kb_sha_new();
	for (size_t idx = 0;; idx++) {
		struct archive_entry *e;
		int rc = archive_read_next_header(ar, &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			l->error = ar_msg(ar, l->a);
			break;
		}
		l->format = archive_format(ar);
		l->e = kb_arena_grow(l->a, l->e, l->n, &l->cap, sizeof *l->e);
		dent *d = &l->e[l->n];
		memset(d, 0, sizeof *d);
		d->index = idx;
		const char *name = archive_entry_pathname(e);
		d->name = quoted(l->a, name ? name : "(no name)");
		d->type = archive_entry_filetype(e);
		d->perm = archive_entry_perm(e);
		d->uid = archive_entry_uid(e);
		d->gid = archive_entry_gid(e);
		d->uname = quoted(l->a, archive_entry_uname(e));
		d->gname = quoted(l->a, archive_entry_gname(e));
		d->has_mtime = archive_entry_mtime_is_set(e);
		d->mtime = archive_entry_mtime(e);
		d->mtime_ns = archive_entry_mtime_nsec(e);
		d->link = quoted(l->a, archive_entry_symlink(e));
		d->hardlink = quoted(l->a, archive_entry_hardlink(e));
		d->size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
		d->rdev = archive_entry_rdev(e);
		int keep = d->size >= 0 && d->size <= KEEP_ONE && l->kept + (uint64_t)d->size <= KEEP_ALL;
		kb_buf kept = {0};
		/* sparse holes are not filled in: members compare by the data
		 * stored, and the header's size is compared as well */
		for (;;) {
			const void *blk;
			size_t n;
			la_int64_t off;
			rc = archive_read_data_block(ar, &blk, &n, &off);
			if (rc == ARCHIVE_EOF)
				break;
			if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
				l->error = kb_arena_printf(l->a, "%s (in %s)", ar_msg(ar, l->a),
							   d->name);
				break;
			}
			*spent += n;
			if (c->work + *spent > c->work_cap) {
				l->error = "more was read than the work limit allows";
				break;
			}
			kb_sha_update(sha, blk, n);
			d->nread += n;
			if (keep && kept.len + n <= KEEP_ONE)
				kb_buf_add(&kept, blk, n);
			else if (keep) {
				keep = 0;
				kb_buf_free(&kept);
			}
		}
		kb_sha_final(sha, &d->hash);
		if (keep && kept.len) {
			d->data = kb_arena_alloc(l->a, kept.len);
			memcpy(d->data, kept.p, kept.len);
			l->kept += kept.len;
		}
		kb_buf_free(&kept);
		if (l->error)
			break; /* the entry was not read whole: leave it out */
		l->n++;
	}
	kb_sha_free(sha);
	archive_read_free(ar);
	free(r.buf);
}

struct lister {
	const dctx *c;
	dafmt f;
	const dsrc *s;
	dlist l;
	uint64_t spent;
};

static void *list_thread(void *p)
{
	struct lister *x = p;
	list_archive(x->c, x->f, x->s, &x->l, &x->spent);
	return NULL;
}

/* both sides, at the same time when they are large enough for a second
 * core to pay off (decompressing is most of the work) */
static void list_both(dctx *c, dafmt f, const dsrc *a, const dsrc *b, dlist *la, dlist *lb)
{
	struct lister x = {c, f, b, {0}, 0};
	uint64_t spent = 0;
	pthread_t t;
	int threaded = a->size + b->size > PARALLEL_MIN &&
		       !pthread_create(&t, NULL, list_thread, &x);
	list_archive(c, f, a, la, &spent);
	if (threaded)
		pthread_join(t, NULL);
	else
		list_thread(&x);
	*lb = x.l;
	d_spend(c, spent + x.spent);
}

/* member index idx again, into memory or a temporary file */
static kb_err *extract(dctx *c, dafmt f, const dsrc *s, const dent *d, dsrc *out)
{
	if (d->data || !d->nread) {
		ds_mem(out, d->data, d->nread);
		out->has_hash = 1;
		out->hash = d->hash;
		return NULL;
	}
	kb_arena *tmp = kb_arena_new();
	const char *error = NULL;
	struct rd r = {s, 0, kb_malloc(CHUNK)};
	struct archive *ar = open_ar(f, &r, &error, tmp);
	kb_err *err = NULL;
	ds_sink k;
	ds_sink_init(&k, c->mem_cap);
	int found = 0;
	for (size_t idx = 0; ar && !err && !error; idx++) {
		struct archive_entry *e;
		int rc = archive_read_next_header(ar, &e);
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			error = ar_msg(ar, tmp);
			break;
		}
		if (idx < d->index)
			continue;
		found = 1;
		for (;;) {
			const void *blk;
			size_t n;
			la_int64_t off;
			rc = archive_read_data_block(ar, &blk, &n, &off);
			if (rc == ARCHIVE_EOF)
				break;
			if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
				error = ar_msg(ar, tmp);
				break;
			}
			if ((err = ds_sink_write(&k, blk, n)))
				break;
		}
		break;
	}
	if (!err && (error || !found))
		err = kb_errf("%s could not be read a second time: %s", d->name,
			      error ? error : "it is gone");
	if (err)
		ds_sink_abort(&k);
	else
		ds_sink_done(&k, out);
	if (ar)
		archive_read_free(ar);
	free(r.buf);
	kb_arena_free(tmp);
	return err;
}

/* ---- comparing two listings ---- */

static const char *type_name(unsigned t)
{
	switch (t) {
	case AE_IFREG: return "file";
	case AE_IFDIR: return "directory";
	case AE_IFLNK: return "symlink";
	case AE_IFCHR: return "character device";
	case AE_IFBLK: return "block device";
	case AE_IFIFO: return "fifo";
	case AE_IFSOCK: return "socket";
	}
	return "entry of unknown type";
}

static void fmt_time(char *out, size_t n, int64_t t, long ns)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, n, "@%lld", (long long)t);
	size_t l = strlen(out);
	if (ns)
		snprintf(out + l, n - l, ".%09ld", ns);
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static const char *or_none(const char *s)
{
	return s ? s : "(none)";
}

/* metadata of two entries of the same name; 1 if their types differ */
static int cmp_meta(dctx *c, const dent *x, const dent *y)
{
	if (x->type != y->type) {
		d_report(c, NULL, "type", NULL, "A is a %s, B is a %s", type_name(x->type),
			 type_name(y->type));
		return 1;
	}
	if (x->perm != y->perm)
		d_report(c, NULL, "mode", NULL, "mode %04o vs %04o", x->perm, y->perm);
	if (x->uid != y->uid || x->gid != y->gid || !same_str(x->uname, y->uname) ||
	    !same_str(x->gname, y->gname))
		d_report(c, NULL, "owner", NULL, "owner %lld:%lld (%s/%s) vs %lld:%lld (%s/%s)",
			 (long long)x->uid, (long long)x->gid, or_none(x->uname), or_none(x->gname),
			 (long long)y->uid, (long long)y->gid, or_none(y->uname), or_none(y->gname));
	if (x->has_mtime && y->has_mtime && (x->mtime != y->mtime || x->mtime_ns != y->mtime_ns)) {
		char ta[48], tb[48];
		fmt_time(ta, sizeof ta, x->mtime, x->mtime_ns);
		fmt_time(tb, sizeof tb, y->mtime, y->mtime_ns);
		d_report(c, NULL, "mtime", NULL, "mtime %s vs %s UTC (%lld vs %lld)", ta, tb,
			 (long long)x->mtime, (long long)y->mtime);
	}
	if (!same_str(x->link, y->link))
		d_report(c, NULL, "symlink", NULL, "symlink target %s vs %s", or_none(x->link),
			 or_none(y->link));
	if (!same_str(x->hardlink, y->hardlink))
		d_report(c, NULL, "hardlink", NULL, "hard link to %s vs %s", or_none(x->hardlink),
			 or_none(y->hardlink));
	if ((x->type == AE_IFCHR || x->type == AE_IFBLK) && x->rdev != y->rdev)
		d_report(c, NULL, "type", NULL, "device number 0x%llx vs 0x%llx",
			 (unsigned long long)x->rdev, (unsigned long long)y->rdev);
	return 0;
}

static int by_name(const void *p, const void *q)
{
	const dent *x = *(const dent *const *)p, *y = *(const dent *const *)q;
	int r = strcmp(x->name, y->name);
	return r ? r : x->index < y->index ? -1 : x->index > y->index;
}

/* pair[i]: the index in the other list of entry i's match, or -1; equal
 * names pair up in archive order */
static void match(const dlist *la, const dlist *lb, long *pa, long *pb)
{
	const dent **sa = kb_malloc((la->n + 1) * sizeof *sa);
	const dent **sb = kb_malloc((lb->n + 1) * sizeof *sb);
	for (size_t i = 0; i < la->n; i++)
		sa[i] = &la->e[i], pa[i] = -1;
	for (size_t i = 0; i < lb->n; i++)
		sb[i] = &lb->e[i], pb[i] = -1;
	qsort(sa, la->n, sizeof *sa, by_name);
	qsort(sb, lb->n, sizeof *sb, by_name);
	size_t i = 0, j = 0;
	while (i < la->n && j < lb->n) {
		int r = strcmp(sa[i]->name, sb[j]->name);
		if (r < 0)
			i++;
		else if (r > 0)
			j++;
		else {
			size_t x = (size_t)(sa[i] - la->e), y = (size_t)(sb[j] - lb->e);
			pa[x] = (long)y;
			pb[y] = (long)x;
			i++, j++;
		}
	}
	free(sa);
	free(sb);
}

/* what the decompressed stream of "name.gz" is called */
static char *stripped(const char *name)
{
	static const char *const ext[] = {".gz", ".xz", ".zst", ".bz2", ".lz4", ".lzma", ".tgz",
					  ".zstd"};
	size_t n = name ? strlen(name) : 0;
	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
		size_t e = strlen(ext[i]);
		if (n > e && !strcmp(name + n - e, ext[i]))
			return !strcmp(ext[i], ".tgz") ? kb_asprintf("%.*s.tar", (int)(n - e), name)
						       : kb_strndup(name, n - e);
	}
	return kb_strdup("(decompressed)");
}

static kb_err *cmp_content(dctx *c, dafmt f, const dsrc *a, const dsrc *b, const dent *x,
			   const dent *y, const char *elem)
{
	dsrc ca, cb;
	kb_err *err = extract(c, f, a, x, &ca);
	if (err) {
		d_report(c, NULL, "error", NULL, "cannot read A's member: %s", err->msg);
		kb_err_free(err);
		return NULL;
	}
	if ((err = extract(c, f, b, y, &cb))) {
		d_report(c, NULL, "error", NULL, "cannot read B's member: %s", err->msg);
		kb_err_free(err);
		ds_free(&ca);
		return NULL;
	}
	err = d_node(c, elem, &ca, &cb);
	ds_free(&ca);
	ds_free(&cb);
	return err;
}

static void report_order(dctx *c, const dlist *la, const long *pa, int same_set)
{
	long last = -1;
	for (size_t i = 0; i < la->n; i++) {
		if (pa[i] < 0)
			continue;
		if (pa[i] < last) {
			d_report(c, NULL, "order", NULL,
				 "%s, different order (first out of place: %s, entry %zu in A, "
				 "entry %ld in B)",
				 same_set ? "same entries" : "common entries", la->e[i].name, i + 1,
				 pa[i] + 1);
			return;
		}
		last = pa[i];
	}
}

static kb_err *cmp_lists(dctx *c, dafmt f, const dsrc *a, const dsrc *b, dlist *la, dlist *lb)
{
	long *pa = kb_malloc((la->n + 1) * sizeof *pa);
	long *pb = kb_malloc((lb->n + 1) * sizeof *pb);
	match(la, lb, pa, pb);
	size_t only_a = 0, only_b = 0;
	for (size_t i = 0; i < la->n; i++)
		only_a += pa[i] < 0;
	for (size_t i = 0; i < lb->n; i++)
		only_b += pb[i] < 0;
	/* a listing cut short has no say about what the other side has more */
	int trust_a = !lb->error, trust_b = !la->error;
	if (!la->error && !lb->error)
		report_order(c, la, pa, !only_a && !only_b);
	kb_err *err = NULL;
	for (size_t i = 0; i < la->n && !err; i++) {
		const dent *x = &la->e[i];
		if (pa[i] < 0) {
			if (trust_a)
				d_report(c, x->name, "only-in-a", NULL, "only in A (%s, %llu bytes)",
					 type_name(x->type), (unsigned long long)x->nread);
			continue;
		}
		const dent *y = &lb->e[pa[i]];
		d_push(c, x->name);
		if (!cmp_meta(c, x, y) && !kb_hash_eq(&x->hash, &y->hash)) {
			if (d_full(c))
				d_report(c, NULL, "content", NULL, "contents differ");
			else
				err = cmp_content(c, f, a, b, x, y, x->name);
		} else if (x->size != y->size && x->type == y->type && x->type != AE_IFREG) {
			d_report(c, NULL, "content", NULL, "size %lld vs %lld", (long long)x->size,
				 (long long)y->size);
		}
		d_pop(c);
	}
	for (size_t i = 0; i < lb->n && !err; i++)
		if (pb[i] < 0 && trust_b)
			d_report(c, lb->e[i].name, "only-in-b", NULL, "only in B (%s, %llu bytes)",
				 type_name(lb->e[i].type), (unsigned long long)lb->e[i].nread);
	free(pa);
	free(pb);
	return err;
}

/* one compressed stream on each side: compare what they decompress to */
static kb_err *cmp_streams(dctx *c, const dsrc *a, const dsrc *b, dlist *la, dlist *lb)
{
	const dent *x = &la->e[0], *y = &lb->e[0];
	if (kb_hash_eq(&x->hash, &y->hash)) {
		d_report(c, NULL, "container", NULL,
			 "the compressed bytes differ but decompress to the same %llu bytes "
			 "(compression level, settings or tool differ)",
			 (unsigned long long)x->nread);
		return NULL;
	}
	char *name = stripped(c->depth && c->depth <= D_MAXDEPTH ? c->path[c->depth - 1] : NULL);
	d_push(c, name);
	kb_err *err = cmp_content(c, DA_COMPRESSED, a, b, x, y, name);
	d_pop(c);
	free(name);
	return err;
}

kb_err *d_archive(dctx *c, dafmt f, dsrc *a, dsrc *b)
{
	dlist la, lb;
	kb_err *err = NULL;
	list_both(c, f, a, b, &la, &lb);
	size_t before = c->out->n + c->out->more;
	if (la.error)
		d_report(c, NULL, "error", NULL, "cannot read A as %s: %s (truncated or damaged?)",
			 fmt_what(f), la.error);
	if (lb.error)
		d_report(c, NULL, "error", NULL, "cannot read B as %s: %s (truncated or damaged?)",
			 fmt_what(f), lb.error);
	int raw_a = la.n == 1 && la.format == ARCHIVE_FORMAT_RAW;
	int raw_b = lb.n == 1 && lb.format == ARCHIVE_FORMAT_RAW;
	if (raw_a != raw_b && la.n && lb.n)
		d_report(c, NULL, "type", NULL, "A holds %s, B %s",
			 raw_a ? "one compressed stream" : "an archive",
			 raw_b ? "one compressed stream" : "an archive");
	else if (raw_a && raw_b)
		err = cmp_streams(c, a, b, &la, &lb);
	else
		err = cmp_lists(c, f, a, b, &la, &lb);
	if (!err && c->out->n + c->out->more == before)
		d_report(c, NULL, "container", NULL,
			 "the bytes differ, but every entry and its metadata compare equal "
			 "(archive headers, padding or compression differ)");
	/* an unreadable side: where the bytes part says the rest */
	if (!err && (la.error || lb.error))
		err = d_bytes(c, NULL, a, b);
	kb_arena_free(la.a);
	kb_arena_free(lb.a);
	return err;
}

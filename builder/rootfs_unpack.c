/* Reading one package's payload with libarchive into a list of entries
 * (kb_rootfs_op), every file's content streamed into the transaction.
 *
 * .deb: an ar archive holding debian-binary ("2.x"), control.tar.* (read
 * for the package's name and version, for messages) and data.tar[.gz|.xz|
 * .zst|.bz2|.lzma]; the nested tars are read straight from the outer
 * archive's data, nothing is extracted to disk.
 * .rpm: libarchive's rpm filter skips the lead and headers, then the
 * compressed cpio payload is read; the lead names the package.
 *
 * Checked here, per entry, whatever the rest of the root holds: the path
 * (relative, no "..", not empty), symlink targets (not empty, < 4 KiB),
 * hardlinks (to a file shipped earlier in the same package). Paths are
 * normalised: "./usr//bin/x/" -> "usr/bin/x". Where an entry lands (the
 * layout links, symlinks, other packages) is rootfs.c's part. */
#include "rootfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMALL_FILE (64u << 10) /* contents up to this are hashed in memory first */
#define CONTROL_MAX (1u << 20)

struct up {
	kb_store *s;
	kb_txn *t;
	kb_rootfs_pkg *p;
	kb_rf_map paths; /* normalised path -> op index + 1 (files only) */
	char *buf;	 /* SMALL_FILE bytes */
	char *pkgname, *pkgversion;
	const char *member; /* "data.tar.xz", for messages */
};

static kb_err *pkg_err(struct up *u, const char *path, const char *fmt, ...) KB_PRINTF(3, 4);
static kb_err *pkg_err(struct up *u, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_buf b = {0};
	kb_buf_addf(&b, "%s: ", u->p->name);
	if (path) {
		char *q = kb_quote(path, strlen(path));
		kb_buf_addf(&b, "entry '%s' ", q);
		free(q);
	}
	char *msg;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	kb_buf_adds(&b, msg);
	free(msg);
	kb_err *err = kb_errf("%s", b.p);
	kb_buf_free(&b);
	return err;
}

static kb_err *ar_err(struct up *u, struct archive *a, const char *what)
{
	const char *m = archive_error_string(a);
	return pkg_err(u, NULL, "cannot read %s: %s", what, m ? m : "unknown libarchive error");
}

/* "./usr//bin/x/" -> "usr/bin/x"; "./" -> "" (the root, a directory).
 * hl_of: raw is the target of this hardlink entry (for messages). */
static kb_err *norm_path(struct up *u, const char *raw, const char *hl_of, const char **out)
{
	const char *why = NULL;
	if (!raw || !*raw)
		why = "an empty name";
	else if (raw[0] == '/')
		why = "an absolute path";
	kb_buf b = {0};
	for (const char *c = raw; !why && *c;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			why = "a '..' component";
		else if (len && !(len == 1 && c[0] == '.')) {
			if (b.len)
				kb_buf_addc(&b, '/');
			kb_buf_add(&b, c, len);
		}
		c += len;
		if (*c == '/')
			c++;
	}
	if (why) {
		kb_buf_free(&b);
		if (!hl_of)
			return pkg_err(u, raw ? raw : "", "has %s; refused", why);
		char *q = kb_quote(raw ? raw : "", raw ? strlen(raw) : 0);
		kb_err *err = pkg_err(u, hl_of, "is a hardlink to '%s', which has %s; refused", q,
				      why);
		free(q);
		return err;
	}
	*out = kb_arena_strndup(u->p->a, b.p ? b.p : "", b.len);
	kb_buf_free(&b);
	return NULL;
}

static kb_rootfs_op *new_op(struct up *u, char type, const char *path)
{
	kb_rootfs_pkg *p = u->p;
	p->ops = kb_arena_grow(p->a, p->ops, p->n, &p->cap, sizeof *p->ops);
	kb_rootfs_op *o = &p->ops[p->n++];
	memset(o, 0, sizeof *o);
	o->type = type;
	o->hl = -1;
	o->path = path;
	return o;
}

/* the entry's data into the store: small files are hashed in memory
 * first (nothing is written when the store has them), larger ones are
 * streamed block by block as libarchive decodes them (no copy); holes of
 * sparse entries are written as zeros */
struct sink {
	struct up *u;
	kb_blobw *w;
	size_t fill;
	uint64_t pos;
};

static kb_err *sink_put(struct sink *k, const void *p, size_t n)
{
	kb_err *err;
	k->pos += n;
	if (!k->w && k->fill + n <= SMALL_FILE) {
		memcpy(k->u->buf + k->fill, p, n);
		k->fill += n;
		return NULL;
	}
	if (!k->w && ((err = kb_blob_begin(k->u->t, &k->w)) ||
		      (err = kb_blob_write(k->w, k->u->buf, k->fill))))
		return err;
	return kb_blob_write(k->w, p, n);
}

static kb_err *read_blob(struct up *u, struct archive *b, const char *path, int exec,
			 kb_hash *out, uint64_t *size)
{
	static const char zeros[4096];
	struct sink k = {.u = u};
	kb_err *err = NULL;
	while (!err) {
		const void *blk;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(b, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			err = pkg_err(u, path, "cannot be read from %s: %s", u->member,
				      archive_error_string(b));
			break;
		}
		if (off < 0 || (uint64_t)off < k.pos) {
			err = pkg_err(u, path, "has data out of order in %s", u->member);
			break;
		}
		while (!err && k.pos < (uint64_t)off) {
			uint64_t gap = (uint64_t)off - k.pos;
			err = sink_put(&k, zeros, gap < sizeof zeros ? (size_t)gap : sizeof zeros);
		}
		if (!err && n)
			err = sink_put(&k, blk, n);
	}
	*size = k.pos;
	if (err) {
		if (k.w)
			kb_blob_abort(k.w);
		return err;
	}
	if (!k.w)
		return kb_txn_add_bytes(u->t, u->buf, k.fill, exec, out);
	return kb_blob_finish(k.w, exec, NULL, out);
}

static kb_err *hardlink(struct up *u, struct archive *b, struct archive_entry *e,
			const char *path, const char *raw)
{
	const char *tpath;
	kb_err *err = norm_path(u, archive_entry_hardlink(e), raw, &tpath);
	if (err)
		return err;
	uintptr_t k = (uintptr_t)kb_rf_map_get(&u->paths, NULL, tpath, strlen(tpath));
	if (!k) {
		char *q = kb_quote(tpath, strlen(tpath));
		err = pkg_err(u, raw, "is a hardlink to '%s', which is not a file the package "
				      "shipped before it; refused", q);
		free(q);
		return err;
	}
	kb_rootfs_pkg *p = u->p;
	int lead = p->ops[k - 1].hl >= 0 ? p->ops[k - 1].hl : (int)(k - 1);
	/* cpio (and some tars) put the data on the last name of a group */
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
		kb_hash h;
		uint64_t size;
		if ((err = read_blob(u, b, raw, p->ops[lead].type == 'x', &h, &size)))
			return err;
		p->bytes += size;
		for (size_t i = (size_t)lead; i < p->n; i++)
			if ((int)i == lead || p->ops[i].hl == lead)
				p->ops[i].hash = h;
	}
	kb_rootfs_op *o = new_op(u, p->ops[lead].type, path);
	o->hl = lead;
	o->hash = p->ops[lead].hash;
	kb_rf_map_put(&u->paths, NULL, path, strlen(path), (void *)(uintptr_t)p->n);
	return NULL;
}

static kb_err *entry(struct up *u, struct archive *b, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e), *path;
	kb_err *err = norm_path(u, raw, NULL, &path);
	if (err)
		return err;
	mode_t ft = archive_entry_filetype(e);
	if (archive_entry_hardlink(e))
		return *path ? hardlink(u, b, e, path, raw)
			     : pkg_err(u, raw, "is a hardlink named like the root; refused");
	if (ft == AE_IFDIR) {
		if (*path)
			new_op(u, 'd', path);
		return NULL;
	}
	if (!*path)
		return pkg_err(u, raw, "names the root but is not a directory; refused");
	if (ft == AE_IFREG) {
		int exec = (archive_entry_perm(e) & S_IXUSR) != 0;
		kb_hash h;
		uint64_t size;
		if ((err = read_blob(u, b, raw, exec, &h, &size)))
			return err;
		u->p->bytes += size;
		kb_rootfs_op *o = new_op(u, exec ? 'x' : 'f', path);
		o->hash = h;
		kb_rf_map_put(&u->paths, NULL, path, strlen(path), (void *)(uintptr_t)u->p->n);
		return NULL;
	}
	if (ft == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);
		size_t len = target ? strlen(target) : 0;
		if (!len || len > 4095)
			return pkg_err(u, raw, "is a symlink with %s target; refused",
				       len ? "a too long (over 4095 bytes)" : "an empty");
		kb_rootfs_op *o = new_op(u, 'l', path);
		o->target = kb_arena_strndup(u->p->a, target, len);
		return kb_txn_add_bytes(u->t, target, len, 0, &o->hash);
	}
	/* device nodes, fifos, sockets: a tree cannot hold them, Debian
	 * policy forbids them in packages, a build's sandbox has its /dev */
	const char *what = ft == AE_IFCHR ? "character device" : ft == AE_IFBLK ? "block device"
			 : ft == AE_IFIFO ? "fifo" : ft == AE_IFSOCK ? "socket" : "special file";
	char *q = kb_quote(raw, strlen(raw));
	kb_warn("%s: skipping %s '%s' (a build root holds only directories, files and symlinks)",
		u->p->name, what, q);
	free(q);
	u->p->skipped++;
	return NULL;
}

static void support_filters(struct archive *a)
{
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
}

/* every entry of an opened payload archive */
static kb_err *payload(struct up *u, struct archive *b)
{
	struct archive_entry *e;
	kb_err *err = NULL;
	for (;;) {
		int r = archive_read_next_header(b, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			err = ar_err(u, b, u->member);
			break;
		}
		if ((err = entry(u, b, e)))
			break;
	}
	return err;
}

/* ---- .deb ---- */

struct nested {
	struct archive *outer;
};

static la_ssize_t nested_read(struct archive *b, void *ud, const void **buf)
{
	struct nested *n = ud;
	size_t size;
	la_int64_t off;
	int r = archive_read_data_block(n->outer, buf, &size, &off);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r != ARCHIVE_OK) {
		archive_set_error(b, archive_errno(n->outer), "%s",
				  archive_error_string(n->outer) ? archive_error_string(n->outer)
								 : "read error");
		return -1;
	}
	return (la_ssize_t)size;
}

/* a tar (maybe compressed) read from the current member of outer; the
 * caller frees *b whatever this returns */
static kb_err *open_nested(struct up *u, struct archive *outer, struct nested *n,
			   struct archive **b)
{
	*b = archive_read_new();
	support_filters(*b);
	archive_read_support_format_tar(*b);
	n->outer = outer;
	if (archive_read_open(*b, n, NULL, nested_read, NULL) != ARCHIVE_OK)
		return ar_err(u, *b, u->member);
	return NULL;
}

static void control_field(const char *text, const char *field, char **out)
{
	size_t fl = strlen(field);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, field, fl) || l[fl] != ':')
			continue;
		const char *v = l + fl + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t len = strcspn(v, "\n");
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r'))
			len--;
		free(*out);
		*out = len ? kb_quote(v, len) : NULL;
		return;
	}
}

static kb_err *read_control(struct up *u, struct archive *outer)
{
	struct nested n;
	struct archive *b;
	struct archive_entry *e;
	kb_err *err = open_nested(u, outer, &n, &b);
	while (!err) {
		int r = archive_read_next_header(b, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			err = ar_err(u, b, u->member);
			break;
		}
		const char *name = archive_entry_pathname(e);
		if (!name || (strcmp(name, "./control") && strcmp(name, "control")))
			continue;
		kb_buf text = {0};
		for (;;) {
			la_ssize_t got = archive_read_data(b, u->buf, SMALL_FILE);
			if (got < 0) {
				err = ar_err(u, b, u->member);
				break;
			}
			if (!got)
				break;
			if (text.len + (size_t)got > CONTROL_MAX) {
				err = pkg_err(u, NULL, "its control file is over %u bytes", CONTROL_MAX);
				break;
			}
			kb_buf_add(&text, u->buf, (size_t)got);
		}
		if (!err) {
			kb_buf_addc(&text, 0);
			control_field(text.p, "Package", &u->pkgname);
			control_field(text.p, "Version", &u->pkgversion);
		}
		kb_buf_free(&text);
		break;
	}
	archive_read_free(b);
	return err;
}

static int data_member(const char *name)
{
	static const char *const ok[] = {"data.tar",	 "data.tar.gz",	 "data.tar.xz",
					 "data.tar.zst", "data.tar.bz2", "data.tar.lzma"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		if (!strcmp(name, ok[i]))
			return 1;
	return 0;
}

static void set_name(struct up *u, const char *what)
{
	kb_rootfs_pkg *p = u->p;
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&p->hash, hex);
	free(p->name);
	if (p->label)
		p->name = kb_asprintf("package %s (blob %.12s)", p->label, hex);
	else if (what)
		p->name = kb_asprintf("package %s (blob %.12s)", what, hex);
	else
		p->name = kb_asprintf("package blob %.12s", hex);
}

static kb_err *unpack_deb(struct up *u, int fd)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_ar(a);
	kb_err *err = NULL;
	int have_version = 0, have_data = 0;
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
		err = ar_err(u, a, "the .deb");
		goto out;
	}
	struct archive_entry *e;
	for (;;) {
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			err = ar_err(u, a, "the .deb");
			break;
		}
		const char *name = archive_entry_pathname(e);
		if (!name)
			continue;
		u->member = name;
		if (!strcmp(name, "debian-binary")) {
			char v[16] = {0};
			la_ssize_t got = archive_read_data(a, v, sizeof v - 1);
			if (got < 2 || strncmp(v, "2.", 2)) {
				err = pkg_err(u, NULL, "is not a .deb of format 2.x (debian-binary "
						       "does not start with '2.')");
				break;
			}
			have_version = 1;
		} else if (!strncmp(name, "control.tar", 11)) {
			if ((err = read_control(u, a)))
				break;
			if (u->pkgname) {
				char *what = kb_asprintf("%s %s", u->pkgname,
							 u->pkgversion ? u->pkgversion : "");
				set_name(u, what);
				free(what);
			}
		} else if (data_member(name)) {
			if (!have_version) {
				err = pkg_err(u, NULL, "is not a .deb: %s comes before debian-binary",
					      name);
				break;
			}
			if (have_data++) {
				err = pkg_err(u, NULL, "has two data members");
				break;
			}
			struct nested n;
			struct archive *b;
			if (!(err = open_nested(u, a, &n, &b)))
				err = payload(u, b);
			archive_read_free(b);
			if (err)
				break;
		} else if (!strncmp(name, "data.tar", 8)) {
			err = pkg_err(u, NULL, "has a payload %s that kbuild cannot read (data.tar "
					       "with gz, xz, zst, bz2, lzma or no compression)",
				      name);
			break;
		}
	}
	if (!err && !have_data)
		err = pkg_err(u, NULL, "has no data.tar member: not a binary .deb");
out:
	archive_read_free(a);
	return err;
}

/* ---- .rpm ---- */

static kb_err *unpack_rpm(struct up *u, int fd, const unsigned char *lead)
{
	/* the lead's name field (66 bytes at offset 10): name-version-release */
	char nvr[67];
	memcpy(nvr, lead + 10, 66);
	nvr[66] = 0;
	if (*nvr) {
		char *q = kb_quote(nvr, strlen(nvr));
		set_name(u, q);
		free(q);
	}
	u->member = "the rpm payload";
	struct archive *a = archive_read_new();
	archive_read_support_filter_rpm(a);
	support_filters(a);
	archive_read_support_format_cpio(a);
	kb_err *err;
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
		err = ar_err(u, a, u->member);
	else
		err = payload(u, a);
	archive_read_free(a);
	return err;
}

kb_err *kb_rootfs_unpack(kb_store *s, kb_txn *t, kb_rootfs_pkg *p)
{
	struct up u = {.s = s, .t = t, .p = p};
	if (!p->a)
		p->a = kb_arena_new();
	set_name(&u, NULL);
	int fd;
	kb_err *err = kb_store_open_object(s, &p->hash, &fd);
	if (err)
		return kb_err_wrap(err, "%s", p->name);
	unsigned char lead[96];
	ssize_t got = pread(fd, lead, sizeof lead, 0);
	u.buf = kb_malloc(SMALL_FILE);
	if (got < 0)
		err = kb_errno(errno, "%s: cannot read it", p->name);
	else if (got >= 8 && !memcmp(lead, "!<arch>\n", 8))
		err = unpack_deb(&u, fd);
	else if (got == (ssize_t)sizeof lead && lead[0] == 0xed && lead[1] == 0xab &&
		 lead[2] == 0xee && lead[3] == 0xdb)
		err = unpack_rpm(&u, fd, lead);
	else
		err = kb_errf("%s is neither a .deb (an ar archive) nor an .rpm", p->name);
	close(fd);
	free(u.buf);
	free(u.pkgname);
	free(u.pkgversion);
	kb_rf_map_free(&u.paths);
	return err;
}

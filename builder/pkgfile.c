/* Reading a .deb or an .rpm from the store entry by entry with
 * libarchive, for the few files images take from packages (vmlinuz,
 * busybox): a .deb's ar archive is read from the object's descriptor and
 * control.tar.* and data.tar.* straight from the outer archive's data; an
 * .rpm's cpio payload through libarchive's rpm filter (which skips the
 * lead and headers). Nothing touches the disk. */
#include "image.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL_MAX (1u << 20)

struct kb_pkgfile {
	struct archive *outer, *inner;
	const char *what;
	char buf[1 << 16];
};

static ssize_t nested_read(struct archive *a, void *ctx, const void **buf)
{
	(void)a;
	kb_pkgfile *d = ctx;
	la_ssize_t n = archive_read_data(d->outer, d->buf, sizeof d->buf);
	*buf = d->buf;
	return n;
}

static kb_err *ar_err(kb_pkgfile *d, struct archive *a, const char *member)
{
	const char *m = archive_error_string(a);
	return kb_errf("%s: cannot read %s: %s (is it a .deb or an .rpm?)", d->what, member,
		       m ? m : "unknown libarchive error");
}

static void filters(struct archive *a)
{
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_lzma(a);
}

static struct archive *open_inner(kb_pkgfile *d)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	filters(a);
	if (archive_read_open(a, d, NULL, nested_read, NULL) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* "./boot/x" -> "boot/x"; NULL for a path with ".." or an absolute one */
static char *norm(const char *raw)
{
	if (!raw || raw[0] == '/')
		return NULL;
	kb_buf b = {0};
	for (const char *c = raw; *c;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			kb_buf_free(&b);
			return NULL;
		}
		if (len && !(len == 1 && c[0] == '.')) {
			if (b.len)
				kb_buf_addc(&b, '/');
			kb_buf_add(&b, c, len);
		}
		c += len + (e != NULL);
	}
	kb_buf_addc(&b, 0);
	return kb_buf_steal(&b);
}

static kb_err *read_control(kb_pkgfile *d, kb_buf *control)
{
	struct archive *a = open_inner(d);
	if (!a)
		return kb_errf("%s: cannot read its control.tar", d->what);
	struct archive_entry *e;
	kb_err *err = NULL;
	int r, found = 0;
	while (!err && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		char *p = norm(archive_entry_pathname(e));
		if (p && !strcmp(p, "control")) {
			found = 1;
			char buf[4096];
			la_ssize_t n;
			while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
				if (control->len + (size_t)n > CONTROL_MAX) {
					err = kb_errf("%s: its control file is over 1 MiB", d->what);
					break;
				}
				kb_buf_add(control, buf, (size_t)n);
			}
			if (!err && n < 0)
				err = ar_err(d, a, "control.tar");
		}
		free(p);
	}
	if (!err && r != ARCHIVE_EOF && r != ARCHIVE_OK)
		err = ar_err(d, a, "control.tar");
	if (!err && !found)
		err = kb_errf("%s: control.tar has no control file", d->what);
	kb_buf_addc(control, 0);
	control->len--;
	archive_read_free(a);
	return err;
}

/* every entry of the payload a (d->inner), which it frees */
static kb_err *read_data(kb_pkgfile *d, struct archive *a, const char *member, kb_pkgfile_fn fn,
			 void *ctx)
{
	d->inner = a;
	struct archive_entry *e;
	kb_err *err = NULL;
	int r;
	while (!err && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *raw = archive_entry_pathname(e);
		char *p = norm(raw);
		if (!p) {
			err = kb_errf("%s: %s entry '%s' lies outside the root; refused", d->what,
				      member, raw ? raw : "");
			break;
		}
		mode_t m = archive_entry_filetype(e);
		char type = m == AE_IFDIR   ? 'd'
			    : m == AE_IFLNK ? 'l'
			    : m == AE_IFREG ? ((archive_entry_perm(e) & 0100) ? 'x' : 'f')
					    : 0;
		if (type && archive_entry_hardlink(e))
			type = 0; /* the images need no hardlinked file */
		if (type)
			err = fn(ctx, d, p, type, archive_entry_symlink(e),
				 (uint64_t)archive_entry_size(e));
		free(p);
	}
	if (!err && r != ARCHIVE_EOF)
		err = ar_err(d, a, member);
	archive_read_free(a);
	d->inner = NULL;
	return err;
}

static kb_err *walk_rpm(kb_pkgfile *d, int fd, kb_pkgfile_fn fn, void *ctx)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_rpm(a);
	filters(a);
	archive_read_support_format_cpio(a);
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
		kb_err *err = ar_err(d, a, "the rpm payload");
		archive_read_free(a);
		return err;
	}
	return read_data(d, a, "the rpm payload", fn, ctx);
}

kb_err *kb_pkgfile_walk(kb_store *s, const kb_hash *h, const char *what, kb_buf *control,
		    kb_pkgfile_fn fn, void *ctx)
{
	int fd;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return kb_err_wrap(err, "%s", what);
	kb_pkgfile *d = kb_calloc(1, sizeof *d);
	d->what = what;
	static const unsigned char rpm_lead[4] = {0xed, 0xab, 0xee, 0xdb};
	unsigned char magic[4];
	if (pread(fd, magic, 4, 0) == 4 && !memcmp(magic, rpm_lead, 4)) {
		if (control)
			control->len = 0;
		err = walk_rpm(d, fd, fn, ctx);
		close(fd);
		free(d);
		return err;
	}
	d->outer = archive_read_new();
	archive_read_support_format_ar(d->outer);
	int got_control = 0, got_data = 0;
	if (archive_read_open_fd(d->outer, fd, 1 << 16) != ARCHIVE_OK) {
		err = kb_errf("%s is not a .deb (not an ar archive)", what);
	} else {
		struct archive_entry *e;
		int r;
		while (!err && (r = archive_read_next_header(d->outer, &e)) == ARCHIVE_OK) {
			const char *n = archive_entry_pathname(e);
			if (!strncmp(n, "control.tar", 11) && control && !got_control) {
				got_control = 1;
				err = read_control(d, control);
			} else if (!strncmp(n, "data.tar", 8) && !got_data) {
				struct archive *a = fn ? open_inner(d) : NULL;
				got_data = 1;
				if (fn && !a)
					err = kb_errf("%s: cannot read its data.tar", d->what);
				else if (fn)
					err = read_data(d, a, "data.tar", fn, ctx);
			}
		}
		if (!err && r != ARCHIVE_EOF)
			err = ar_err(d, d->outer, "the ar archive");
		if (!err && (!got_data || (control && !got_control)))
			err = kb_errf("%s is not a .deb (it lacks %s)", what,
				      got_data ? "control.tar" : "data.tar");
	}
	archive_read_free(d->outer);
	close(fd);
	free(d);
	return err;
}

kb_err *kb_pkgfile_store(kb_pkgfile *d, kb_txn *t, int exec, kb_hash *out)
{
	kb_blobw *w;
	kb_err *err = kb_blob_begin(t, &w);
	if (err)
		return err;
	char buf[1 << 16];
	la_ssize_t n;
	while (!err && (n = archive_read_data(d->inner, buf, sizeof buf)) > 0)
		err = kb_blob_write(w, buf, (size_t)n);
	if (!err && n < 0)
		err = ar_err(d, d->inner, "the package payload");
	if (err) {
		kb_blob_abort(w);
		return err;
	}
	return kb_blob_finish(w, exec, NULL, out);
}

kb_err *kb_pkgfile_read(kb_pkgfile *d, void *p, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		la_ssize_t r = archive_read_data(d->inner, (char *)p + *got, n - *got);
		if (r < 0)
			return ar_err(d, d->inner, "the package payload");
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return NULL;
}

char *kb_deb_field(const char *control, const char *field)
{
	size_t fl = strlen(field);
	for (const char *l = control; l && *l;) {
		if (!strncasecmp(l, field, fl) && l[fl] == ':') {
			const char *v = l + fl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t len = strcspn(v, "\n");
			while (len && (v[len - 1] == ' ' || v[len - 1] == '\r'))
				len--;
			return kb_strndup(v, len);
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return NULL;
}

/* The .deb writer (deb(5)): what dpkg-deb --root-owner-group builds with
 * SOURCE_DATE_EPOCH, from a store tree.
 *
 * data.tar.xz is written first, to a temporary file, computing each
 * file's MD5 on the way (for md5sums): the ar container needs the
 * member's size in its header before the member, and control.tar (with
 * md5sums) comes before data.tar. So every content byte is read once.
 *
 * The ar container is written by hand, not with libarchive: libarchive's
 * SVR4/GNU ar writer ends member names with '/' ("debian-binary/"),
 * which dpkg reads but never writes; by hand it is a few 60-byte headers
 * and the bytes equal dpkg-deb's. */
#include "pkg.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64u << 10)
#define XZ_LEVEL "6" /* dpkg-deb's default */

/* where libarchive's output goes: a file (fd >= 0) or a buffer */
struct sink {
	int fd;
	kb_buf *buf;
	uint64_t size;
	kb_err *err;
	const char *what;
};

static la_ssize_t sink_write(struct archive *a, void *ctx, const void *p, size_t n)
{
	(void)a;
	struct sink *k = ctx;
	if (k->fd >= 0) {
		if ((k->err = kb_write_all(k->fd, p, n, k->what)))
			return -1;
	} else {
		kb_buf_add(k->buf, p, n);
	}
	k->size += n;
	return (la_ssize_t)n;
}

static kb_err *la_err(struct archive *a, const char *what)
{
	const char *m = archive_error_string(a);
	return kb_errf("cannot write %s: %s", what, m ? m : "unknown libarchive error");
}

/* GNU tar, xz level 6 with one thread: dpkg-deb's member format. The
 * compressed stream is not padded to a tar record (libarchive would pad the
 * xz output, not the tar). */
static kb_err *tar_open(struct sink *k, struct archive **out)
{
	struct archive *a = archive_write_new();
	if (archive_write_set_format_gnutar(a) != ARCHIVE_OK ||
	    archive_write_add_filter_xz(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "xz", "compression-level", XZ_LEVEL) !=
		    ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "xz", "threads", "1") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open(a, k, NULL, sink_write, NULL) != ARCHIVE_OK) {
		kb_err *err = la_err(a, k->what);
		archive_write_free(a);
		return err;
	}
	*out = a;
	return NULL;
}

static kb_err *tar_close(struct archive *a, struct sink *k)
{
	kb_err *err = NULL;
	if (archive_write_close(a) != ARCHIVE_OK)
		err = k->err ? k->err : la_err(a, k->what);
	else if (k->err)
		err = k->err;
	k->err = NULL;
	archive_write_free(a);
	return err;
}

static void entry_init(struct archive_entry *ae, const char *name, char type, uint64_t size,
		       int64_t mtime)
{
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, name);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_uname(ae, "root");
	archive_entry_set_gname(ae, "root");
	archive_entry_set_mtime(ae, mtime, 0);
	switch (type) {
	case 'd':
		archive_entry_set_filetype(ae, AE_IFDIR);
		archive_entry_set_perm(ae, 0755);
		break;
	case 'l':
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_perm(ae, 0777);
		break;
	default:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, type == 'x' ? 0755 : 0644);
		archive_entry_set_size(ae, (la_int64_t)size);
	}
}

static kb_err *put_header(struct archive *a, struct archive_entry *ae, struct sink *k,
			  const char *name)
{
	if (archive_write_header(a, ae) == ARCHIVE_OK)
		return NULL;
	if (k->err) {
		kb_err *e = k->err;
		k->err = NULL;
		return e;
	}
	return kb_err_wrap(la_err(a, k->what), "entry '%s'", name);
}

static kb_err *put_data(struct archive *a, struct sink *k, const void *p, size_t n,
			const char *name)
{
	if (archive_write_data(a, p, n) == (la_ssize_t)n)
		return NULL;
	if (k->err) {
		kb_err *e = k->err;
		k->err = NULL;
		return e;
	}
	return kb_err_wrap(la_err(a, k->what), "entry '%s'", name);
}

/* one file's content from the store into the tar, MD5 on the way */
static kb_err *put_file(kb_store *s, struct archive *a, struct sink *k, const kb_pkg_ent *e,
			const char *name, char *chunk, EVP_MD_CTX *md, uint8_t digest[16])
{
	int fd;
	kb_err *err = kb_store_open_object(s, &e->hash, &fd);
	if (err)
		return kb_err_wrap(err, "cannot read the content of '/%s'", e->path);
	EVP_DigestInit_ex(md, EVP_md5(), NULL);
	uint64_t left = e->size;
	while (!err && left) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
		if ((err = kb_read_full(fd, chunk, want, &got, e->path)))
			break;
		if (got != want) {
			err = kb_errf("the content of '/%s' changed size while being read "
				      "(run 'kbuild store fsck')",
				      e->path);
			break;
		}
		EVP_DigestUpdate(md, chunk, got);
		err = put_data(a, k, chunk, got, name);
		left -= got;
	}
	close(fd);
	EVP_DigestFinal_ex(md, digest, NULL);
	return err;
}

/* data.tar.xz into fd; md5sums lines into sums; *kib the Installed-Size */
static kb_err *write_data(kb_store *s, const kb_pkg_list *p, int64_t mtime, int fd,
			  kb_buf *sums, uint64_t *kib, uint64_t *size)
{
	struct sink k = {.fd = fd, .what = "data.tar.xz"};
	struct archive *a;
	kb_err *err = tar_open(&k, &a);
	if (err)
		return err;
	struct archive_entry *ae = archive_entry_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *chunk = kb_malloc(CHUNK);
	kb_buf name = {0};
	*kib = 0;
	/* two passes, symlinks last, as dpkg-deb orders them (a link is
	 * unpacked after what it may point to) */
	for (size_t j = 0; !err && j < 2 * p->n; j++) {
		const kb_pkg_ent *e = &p->e[j % p->n];
		if ((e->type == 'l') != (j >= p->n))
			continue;
		name.len = 0;
		kb_buf_adds(&name, "./");
		kb_buf_adds(&name, e->path);
		if (e->type == 'd' && *e->path)
			kb_buf_addc(&name, '/');
		kb_buf_addc(&name, 0);
		entry_init(ae, name.p, e->type, e->size, mtime);
		if (e->type == 'l')
			archive_entry_set_symlink(ae, e->target);
		/* dpkg-gencontrol's estimate: KiB rounded up per file, one per
		 * directory or symlink */
		*kib += (e->type == 'f' || e->type == 'x') ? (e->size + 1023) / 1024 : 1;
		if ((err = put_header(a, ae, &k, name.p)))
			break;
		if (e->type == 'f' || e->type == 'x') {
			uint8_t d[16];
			if ((err = put_file(s, a, &k, e, name.p, chunk, md, d)))
				break;
			for (int b = 0; b < 16; b++)
				kb_buf_addf(sums, "%02x", d[b]);
			kb_buf_addf(sums, "  %s\n", e->path);
		}
	}
	kb_err *cerr = tar_close(a, &k);
	if (!err)
		err = cerr;
	else
		kb_err_free(cerr);
	*size = k.size;
	kb_buf_free(&name);
	free(chunk);
	EVP_MD_CTX_free(md);
	archive_entry_free(ae);
	return err;
}

static void add_list(kb_buf *b, const char *field, char **v, size_t n)
{
	if (!n)
		return;
	kb_buf_addf(b, "%s: ", field);
	for (size_t i = 0; i < n; i++)
		kb_buf_addf(b, "%s%s", i ? ", " : "", v[i]);
	kb_buf_addc(b, '\n');
}

/* deb-control(5): the extended description's lines start with a space;
 * an empty line is " ."; trailing empty lines are dropped */
static void add_description(kb_buf *b, const char *summary, const char *desc)
{
	kb_buf_addf(b, "Description: %s\n", summary);
	if (!desc)
		return;
	size_t end = strlen(desc);
	while (end && (desc[end - 1] == '\n' || desc[end - 1] == ' ' || desc[end - 1] == '\t'))
		end--;
	size_t start = 0;
	while (start < end && desc[start] == '\n')
		start++;
	for (size_t i = start; i < end;) {
		const char *nl = memchr(desc + i, '\n', end - i);
		size_t len = nl ? (size_t)(nl - (desc + i)) : end - i;
		size_t blank = 1;
		for (size_t j = 0; j < len; j++)
			if (desc[i + j] != ' ' && desc[i + j] != '\t')
				blank = 0;
		if (blank)
			kb_buf_adds(b, " .\n");
		else
			kb_buf_addf(b, " %.*s\n", (int)len, desc + i);
		i += len + 1;
	}
}

static char *control_text(const kb_pkg_meta *m, uint64_t kib)
{
	kb_buf b = {0};
	kb_buf_addf(&b, "Package: %s\nVersion: ", m->name);
	if (m->has_epoch)
		kb_buf_addf(&b, "%lu:", m->epoch);
	kb_buf_adds(&b, m->version);
	if (m->release)
		kb_buf_addf(&b, "-%s", m->release);
	kb_buf_addf(&b, "\nArchitecture: %s\nMaintainer: %s\nInstalled-Size: %llu\n", m->arch,
		    m->maintainer, (unsigned long long)kib);
	add_list(&b, "Depends", m->depends, m->ndepends);
	add_list(&b, "Conflicts", m->conflicts, m->nconflicts);
	add_list(&b, "Provides", m->provides, m->nprovides);
	kb_buf_addf(&b, "Section: %s\nPriority: %s\n", m->section ? m->section : "misc",
		    m->priority ? m->priority : "optional");
	if (m->url)
		kb_buf_addf(&b, "Homepage: %s\n", m->url);
	add_description(&b, m->summary, m->description);
	return kb_buf_steal(&b);
}

static kb_err *put_member(struct archive *a, struct archive_entry *ae, struct sink *k,
			  const char *name, char type, const char *text, int64_t mtime)
{
	size_t n = text ? strlen(text) : 0;
	entry_init(ae, name, type, n, mtime);
	kb_err *err = put_header(a, ae, k, name);
	if (!err && n)
		err = put_data(a, k, text, n, name);
	return err;
}

static kb_err *write_control(const kb_pkg_meta *m, const char *control, const kb_buf *sums,
			     kb_buf *out)
{
	struct sink k = {.fd = -1, .buf = out, .what = "control.tar.xz"};
	struct archive *a;
	kb_err *err = tar_open(&k, &a);
	if (err)
		return err;
	struct archive_entry *ae = archive_entry_new();
	char *s = kb_strndup(sums->p ? sums->p : "", sums->len);
	/* sorted by name, as dpkg-deb stores them */
	if (!(err = put_member(a, ae, &k, "./", 'd', NULL, m->sde)) &&
	    !(err = put_member(a, ae, &k, "./control", 'f', control, m->sde)) &&
	    !(err = sums->len ? put_member(a, ae, &k, "./md5sums", 'f', s, m->sde) : NULL) &&
	    !(err = m->postinst ? put_member(a, ae, &k, "./postinst", 'x', m->postinst, m->sde)
				: NULL))
		err = m->postrm ? put_member(a, ae, &k, "./postrm", 'x', m->postrm, m->sde) : NULL;
	free(s);
	kb_err *cerr = tar_close(a, &k);
	if (!err)
		err = cerr;
	else
		kb_err_free(cerr);
	archive_entry_free(ae);
	return err;
}

/* one ar member header (60 bytes), as dpkg-deb writes it */
static kb_err *ar_header(kb_blobw *w, const char *name, uint64_t size, int64_t mtime)
{
	if (size > 9999999999ull)
		return kb_errf("ar member %s is %llu bytes, more than an ar header can say", name,
			       (unsigned long long)size);
	char h[61];
	snprintf(h, sizeof h, "%-16s%-12lld%-6d%-6d%-8s%-10llu`\n", name, (long long)mtime, 0, 0,
		 "100644", (unsigned long long)size);
	return kb_blob_write(w, h, 60);
}

static kb_err *ar_member(kb_blobw *w, const char *name, const void *p, size_t n,
			 int64_t mtime)
{
	kb_err *err = ar_header(w, name, n, mtime);
	if (!err)
		err = kb_blob_write(w, p, n);
	if (!err && n % 2)
		err = kb_blob_write(w, "\n", 1);
	return err;
}

static kb_err *assemble(kb_txn *t, const kb_pkg_meta *m, const kb_buf *ctl, int datafd,
			uint64_t datasize, kb_hash *out)
{
	kb_blobw *w;
	kb_err *err = kb_blob_begin(t, &w);
	if (err)
		return err;
	if (!(err = kb_blob_write(w, "!<arch>\n", 8)) &&
	    !(err = ar_member(w, "debian-binary", "2.0\n", 4, m->sde)) &&
	    !(err = ar_member(w, "control.tar.xz", ctl->p, ctl->len, m->sde)))
		err = ar_header(w, "data.tar.xz", datasize, m->sde);
	if (!err && lseek(datafd, 0, SEEK_SET) < 0)
		err = kb_errno(errno, "cannot rewind the temporary data.tar.xz");
	char *chunk = kb_malloc(CHUNK);
	for (uint64_t left = datasize; !err && left;) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
		if ((err = kb_read_full(datafd, chunk, want, &got, "the temporary data.tar.xz")))
			break;
		if (got != want) {
			err = kb_errf("the temporary data.tar.xz is shorter than written");
			break;
		}
		err = kb_blob_write(w, chunk, got);
		left -= got;
	}
	free(chunk);
	if (!err && datasize % 2)
		err = kb_blob_write(w, "\n", 1);
	if (err) {
		kb_blob_abort(w);
		return err;
	}
	return kb_blob_finish(w, 0, NULL, out);
}

kb_err *kb_pkg_write_deb(kb_store *s, kb_txn *t, const kb_pkg_list *p, const kb_pkg_meta *m,
			 kb_hash *out)
{
	kb_err *err = kb_pkg_check_meta(m, KB_PKG_DEB);
	if (err)
		return err;
	int fd;
	if ((err = kb_pkg_tmpfile(s, &fd)))
		return err;
	kb_buf sums = {0}, ctl = {0};
	uint64_t kib, datasize;
	char *control = NULL;
	if (!(err = write_data(s, p, m->sde, fd, &sums, &kib, &datasize))) {
		control = control_text(m, kib);
		err = write_control(m, control, &sums, &ctl);
	}
	if (!err)
		err = assemble(t, m, &ctl, fd, datasize, out);
	close(fd);
	free(control);
	kb_buf_free(&sums);
	kb_buf_free(&ctl);
	if (err)
		return kb_err_wrap(err, "cannot make the .deb of %s", m->name);
	return NULL;
}

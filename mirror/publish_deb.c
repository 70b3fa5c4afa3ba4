/* A .deb's control stanza, for its Packages record: the ar archive and
 * the control.tar.* member inside it are read with libarchive, in one
 * sequential pass over the file that also computes its MD5 (Packages'
 * MD5sum; SHA256 and Size the store knows already). */
#include "publish.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONTROL_MAX (1u << 20)

typedef struct {
	int fd;
	EVP_MD_CTX *md5;
	char buf[1 << 16];
	int ioerr;
} outer_src;

/* every byte libarchive gets passes through the MD5 once */
static la_ssize_t outer_read(struct archive *a, void *data, const void **p)
{
	(void)a;
	outer_src *o = data;
	ssize_t r = read(o->fd, o->buf, sizeof o->buf);
	if (r < 0) {
		o->ioerr = 1;
		return -1;
	}
	EVP_DigestUpdate(o->md5, o->buf, (size_t)r);
	*p = o->buf;
	return r;
}

typedef struct {
	struct archive *outer;
	char buf[1 << 16];
} inner_src;

static la_ssize_t inner_read(struct archive *a, void *data, const void **p)
{
	(void)a;
	inner_src *in = data;
	la_ssize_t r = archive_read_data(in->outer, in->buf, sizeof in->buf);
	*p = in->buf;
	return r;
}

/* the control file of the control.tar.* member the outer archive is at */
static kb_err *read_control(struct archive *outer, const char *what, kb_buf *control)
{
	inner_src *src = kb_calloc(1, sizeof *src);
	src->outer = outer;
	struct archive *in = archive_read_new();
	archive_read_support_format_tar(in);
	archive_read_support_filter_gzip(in);
	archive_read_support_filter_xz(in);
	archive_read_support_filter_zstd(in);
	kb_err *err = NULL;
	int found = 0;
	if (archive_read_open(in, src, NULL, inner_read, NULL) != ARCHIVE_OK)
		err = kb_errf("%s: its control archive: %s", what, archive_error_string(in));
	struct archive_entry *e;
	while (!err && !found) {
		int r = archive_read_next_header(in, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = kb_errf("%s: its control archive: %s", what, archive_error_string(in));
			break;
		}
		const char *name = archive_entry_pathname(e);
		if (!name || (strcmp(name, "./control") && strcmp(name, "control")))
			continue;
		found = 1;
		if (archive_entry_size(e) > CONTROL_MAX) {
			err = kb_errf("%s: its control file is over %u bytes", what, CONTROL_MAX);
			break;
		}
		char b[8192];
		la_ssize_t got;
		while ((got = archive_read_data(in, b, sizeof b)) > 0 && control->len <= CONTROL_MAX)
			kb_buf_add(control, b, (size_t)got);
		if (got < 0)
			err = kb_errf("%s: its control file: %s", what, archive_error_string(in));
	}
	if (!err && !found)
		err = kb_errf("%s: its control archive has no control file: not a binary package", what);
	archive_read_free(in);
	free(src);
	return err;
}

/* Field NAME's value (first line) in a stanza, or NULL */
static char *field(kb_arena *a, const char *st, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n;) {
		const char *line = st + i;
		const char *eol = memchr(line, '\n', n - i);
		size_t len = eol ? (size_t)(eol - line) : n - i;
		if (len > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < line + len && (*v == ' ' || *v == '\t'))
				v++;
			const char *end = line + len;
			while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
				end--;
			return kb_arena_strndup(a, v, (size_t)(end - v));
		}
		i += len + 1;
	}
	return NULL;
}

static int is_dropped(const char *line, size_t len)
{
	/* what the repository states itself, from the file it publishes */
	static const char *const drop[] = {"Filename", "Size", "MD5sum", "SHA1", "SHA256",
					   "SHA512", "Description-md5"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
		size_t l = strlen(drop[i]);
		if (len > l && !strncasecmp(line, drop[i], l) && line[l] == ':')
			return 1;
	}
	return 0;
}

static int token_ok(const char *s, const char *extra)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return 0;
	return 1;
}

/* the stanza as Packages holds it: one paragraph, no repository fields */
static kb_err *clean_stanza(const kb_buf *c, const char *what, kb_arena *a, kb_pubpkg *p)
{
	size_t n = c->len;
	while (n && (c->p[n - 1] == '\n' || c->p[n - 1] == '\r' || c->p[n - 1] == ' '))
		n--;
	if (!n)
		return kb_errf("%s: its control file is empty", what);
	if (memchr(c->p, 0, n))
		return kb_errf("%s: its control file holds a NUL byte", what);
	kb_buf out = {0};
	int dropping = 0;
	for (size_t i = 0; i < n;) {
		const char *line = c->p + i;
		const char *eol = memchr(line, '\n', n - i);
		size_t len = eol ? (size_t)(eol - line) : n - i;
		i += len + 1;
		if (!len || (len == 1 && line[0] == '\r')) {
			kb_buf_free(&out);
			return kb_errf("%s: its control file has more than one paragraph", what);
		}
		int cont = line[0] == ' ' || line[0] == '\t';
		if (!cont)
			dropping = is_dropped(line, len);
		if (dropping)
			continue;
		if (out.len)
			kb_buf_addc(&out, '\n');
		kb_buf_add(&out, line, len);
	}
	p->name = field(a, out.p, out.len, "Package");
	p->version = field(a, out.p, out.len, "Version");
	p->arch = field(a, out.p, out.len, "Architecture");
	kb_err *err = NULL;
	if (!token_ok(p->name, "+-.") || strlen(p->name) < 2)
		err = kb_errf("%s: its control file has no valid Package field", what);
	else if (!p->version || !*p->version || strpbrk(p->version, " \t/"))
		err = kb_errf("%s: its control file has no valid Version field", what);
	else if (!token_ok(p->arch, "-"))
		err = kb_errf("%s: its control file has no valid Architecture field", what);
	if (!err) {
		p->meta = kb_arena_strndup(a, out.p, out.len);
		p->metalen = out.len;
	}
	kb_buf_free(&out);
	return err;
}

kb_err *kb_pub_read_deb(int fd, const char *what, kb_arena *a, kb_pubpkg *p)
{
	outer_src *src = kb_calloc(1, sizeof *src);
	src->fd = fd;
	src->md5 = EVP_MD_CTX_new();
	if (!src->md5 || !EVP_DigestInit_ex(src->md5, EVP_md5(), NULL))
		abort();
	struct archive *ar = archive_read_new();
	archive_read_support_format_ar(ar);
	kb_err *err = NULL;
	kb_buf control = {0};
	int members = 0, have_control = 0;
	if (archive_read_open(ar, src, NULL, outer_read, NULL) != ARCHIVE_OK)
		err = kb_errf("%s: not a .deb (ar archive): %s", what, archive_error_string(ar));
	struct archive_entry *e;
	while (!err) {
		int r = archive_read_next_header(ar, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = kb_errf("%s: not a .deb: %s", what, archive_error_string(ar));
			break;
		}
		const char *name = archive_entry_pathname(e);
		name = name ? name : "";
		if (members++ == 0) {
			char v[8] = {0};
			if (strcmp(name, "debian-binary") || archive_read_data(ar, v, 4) != 4 ||
			    memcmp(v, "2.", 2))
				err = kb_errf("%s: not a .deb (its first member is not debian-binary "
					      "version 2.x)", what);
		} else if (!strncmp(name, "control.tar", 11) && !have_control) {
			have_control = 1;
			err = read_control(ar, what, &control);
		}
	}
	if (!err && !have_control)
		err = kb_errf("%s: a .deb without a control.tar member", what);
	if (!err && src->ioerr)
		err = kb_errno(errno, "%s: reading it", what);
	if (!err)
		err = clean_stanza(&control, what, a, p);
	/* the rest of the file (libarchive stops at the last member's header) */
	ssize_t r;
	while (!err && (r = read(fd, src->buf, sizeof src->buf)) != 0) {
		if (r < 0)
			err = kb_errno(errno, "%s: reading it", what);
		else
			EVP_DigestUpdate(src->md5, src->buf, (size_t)r);
	}
	unsigned char d[16];
	unsigned int dl = 0;
	EVP_DigestFinal_ex(src->md5, d, &dl);
	for (unsigned i = 0; i < 16; i++)
		snprintf(p->md5 + 2 * i, 3, "%02x", d[i]);
	p->fmt = 'd';
	archive_read_free(ar);
	EVP_MD_CTX_free(src->md5);
	free(src);
	kb_buf_free(&control);
	return err;
}

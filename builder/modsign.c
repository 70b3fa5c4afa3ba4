/* Kernel module signatures (see modsign.h for the layout). The CMS is
 * made with the same OpenSSL calls and flags as scripts/sign-file, which
 * is what makes the bytes equal: the content is streamed through
 * CMS_dataInit/CMS_dataFinal (what CMS_final does with a BIO) while it is
 * copied to the output, so a module is read once and never held whole. */
#include "modsign.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_LEN (sizeof KB_MODSIGN_MARKER - 1)
#define SIGINFO_LEN 12
#define PKEY_ID_PKCS7 2
/* a CMS of one RSA-16384 signer is under 3 KiB */
#define SIG_MAX (64u << 10)
#define CHUNK (64u << 10)

kb_err *kb_modsign_check_hash(const char *hash)
{
	if (!hash || !strcmp(hash, "sha256") || !strcmp(hash, "sha384") || !strcmp(hash, "sha512"))
		return NULL;
	char *q = kb_quote(hash, strlen(hash));
	kb_err *e = kb_usage("'%s' is not a hash kbuild signs modules with: use sha256, sha384 "
			     "or sha512",
			     q);
	free(q);
	return e;
}

static kb_err *ossl_err(const char *fmt, const char *arg)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	char *what = kb_asprintf(fmt, arg);
	kb_err *err = kb_errf("%s%s%s", what, e ? ": " : "", buf);
	free(what);
	return err;
}

/* An input module: its descriptor and how many of its bytes are the
 * module without any signature. */
typedef struct {
	const char *path;
	int fd;
	uint64_t len;
} module;

static kb_err *open_module(const char *path, int replace, module *m)
{
	m->path = path;
	m->len = 0;
	if ((m->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return kb_errno(errno, "cannot open the module %s", path);
	struct stat st;
	unsigned char head[4], tail[MARKER_LEN + SIGINFO_LEN];
	kb_err *err = NULL;
	if (fstat(m->fd, &st) < 0)
		err = kb_errno(errno, "cannot stat %s", path);
	else if (!S_ISREG(st.st_mode))
		err = kb_errf("the module %s is not a regular file", path);
	else if (pread(m->fd, head, 4, 0) != 4 || memcmp(head, "\177ELF", 4))
		err = kb_errf("%s is not an ELF file, so not a kernel module (a compressed "
			      ".ko.xz or .ko.zst must be decompressed first)",
			      path);
	if (err)
		goto out;
	m->len = (uint64_t)st.st_size;
	if (m->len < sizeof tail ||
	    pread(m->fd, tail, sizeof tail, (off_t)(m->len - sizeof tail)) != (ssize_t)sizeof tail ||
	    memcmp(tail + SIGINFO_LEN, KB_MODSIGN_MARKER, MARKER_LEN))
		goto out; /* not signed */
	if (!replace) {
		err = kb_errf("the module %s is signed already (it ends with \"~Module signature "
			      "appended~\"); give --replace to drop that signature and sign it "
			      "anew",
			      path);
		goto out;
	}
	uint32_t be;
	memcpy(&be, tail + 8, 4);
	uint64_t siglen = ntohl(be);
	if (tail[2] != PKEY_ID_PKCS7 || siglen + sizeof tail + 4 > m->len)
		err = kb_errf("the signature at the end of %s is not a PKCS#7 module signature "
			      "kbuild can drop (id_type %u, %llu bytes)",
			      path, tail[2], (unsigned long long)siglen);
	else
		m->len -= siglen + sizeof tail;
out:
	if (err) {
		close(m->fd);
		m->fd = -1;
	}
	return err;
}

/* The output: a temporary file beside it, renamed into place when whole. */
typedef struct {
	const char *path;
	char *tmp;
	int fd;
} outfile;

static kb_err *out_begin(const char *path, outfile *o)
{
	o->path = path;
	o->tmp = kb_asprintf("%s.tmp-%ld", path, (long)getpid());
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (o->fd >= 0)
		return NULL;
	kb_err *err = kb_errno(errno, "cannot create %s", o->tmp);
	free(o->tmp);
	o->tmp = NULL;
	return err;
}

static void out_abort(outfile *o)
{
	if (!o->tmp)
		return;
	if (o->fd >= 0)
		close(o->fd);
	unlink(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
}

static kb_err *out_finish(outfile *o)
{
	kb_err *err = NULL;
	if (fchmod(o->fd, 0644) < 0)
		err = kb_errno(errno, "cannot set the mode of %s", o->tmp);
	else if (fsync(o->fd) < 0)
		err = kb_errno(errno, "cannot sync %s", o->tmp);
	if (close(o->fd) < 0 && !err)
		err = kb_errno(errno, "cannot close %s", o->tmp);
	o->fd = -1;
	if (!err && rename(o->tmp, o->path) < 0)
		err = kb_errno(errno, "cannot rename %s to %s", o->tmp, o->path);
	if (err) {
		out_abort(o);
		return err;
	}
	free(o->tmp);
	o->tmp = NULL;
	char *copy = kb_strdup(o->path);
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		err = kb_fsync_dir(dfd, o->path);
		close(dfd);
	}
	free(copy);
	return err;
}

/* Reads the module's unsigned bytes once: into the CMS digest (sink) and,
 * unless copy is -1, to the output. */
static kb_err *stream_module(module *m, BIO *sink, int copy, const char *copy_name)
{
	char *buf = kb_malloc(CHUNK);
	kb_err *err = NULL;
	for (uint64_t off = 0; off < m->len && !err;) {
		size_t want = m->len - off < CHUNK ? (size_t)(m->len - off) : CHUNK;
		ssize_t got = pread(m->fd, buf, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			err = got < 0 ? kb_errno(errno, "cannot read %s", m->path)
				      : kb_errf("%s shrank while it was read", m->path);
			break;
		}
		if (sink && BIO_write(sink, buf, (int)got) != (int)got)
			err = ossl_err("cannot hash %s", m->path);
		if (!err && copy >= 0)
			err = kb_write_all(copy, buf, (size_t)got, copy_name);
		off += (uint64_t)got;
	}
	free(buf);
	return err;
}

/* the signature and the trailer that follow the module */
static kb_err *append_sig(outfile *o, const void *sig, size_t n)
{
	unsigned char info[SIGINFO_LEN] = {0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0};
	uint32_t be = htonl((uint32_t)n);
	memcpy(info + 8, &be, 4);
	kb_err *err = kb_write_all(o->fd, sig, n, o->tmp);
	if (!err)
		err = kb_write_all(o->fd, info, sizeof info, o->tmp);
	if (!err)
		err = kb_write_all(o->fd, KB_MODSIGN_MARKER, MARKER_LEN, o->tmp);
	return err;
}

kb_err *kb_modsign_sign(const char *in, const char *out, int detached, X509 *cert,
			EVP_PKEY *pkey, const kb_modsign_opts *o)
{
	const char *hash = o->hash ? o->hash : "sha256";
	kb_err *err = kb_modsign_check_hash(hash);
	if (err)
		return err;
	const EVP_MD *md = EVP_get_digestbyname(hash);
	if (!md)
		return kb_errf("this OpenSSL does not offer %s", hash);
	module m;
	if ((err = open_module(in, o->replace, &m)))
		return err;
	outfile of = {0};
	BIO *data = NULL, *der = NULL;
	/* as sign-file: no certificates, no signed attributes (which would
	 * hold the signing time), no S/MIME capabilities, binary content,
	 * the signer by issuer and serial */
	const unsigned flags = CMS_NOCERTS | CMS_BINARY;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL,
					flags | CMS_PARTIAL | CMS_DETACHED | CMS_STREAM);
	if (!cms || !CMS_add1_signer(cms, cert, pkey, md, flags | CMS_NOSMIMECAP | CMS_NOATTR))
		err = ossl_err("cannot set up the signature of %s", in);
	else if (!(data = CMS_dataInit(cms, NULL)))
		err = ossl_err("cannot set up the signature of %s", in);
	else if (!(err = out_begin(out, &of)) &&
		 !(err = stream_module(&m, data, detached ? -1 : of.fd, of.tmp))) {
		(void)BIO_flush(data);
		if (!CMS_dataFinal(cms, data))
			err = ossl_err("cannot sign %s", in);
	}
	BUF_MEM *sig = NULL;
	if (!err && (!(der = BIO_new(BIO_s_mem())) || !i2d_CMS_bio(der, cms)))
		err = ossl_err("cannot encode the signature of %s", in);
	if (!err)
		BIO_get_mem_ptr(der, &sig);
	if (!err)
		err = detached ? kb_write_all(of.fd, sig->data, sig->length, of.tmp)
			       : append_sig(&of, sig->data, sig->length);
	if (!err)
		err = out_finish(&of);
	if (err)
		out_abort(&of);
	BIO_free(der);
	BIO_free_all(data);
	CMS_ContentInfo_free(cms);
	close(m.fd);
	return err;
}

/* the detached signature in path: one DER CMS SignedData without content */
static kb_err *read_sig(const char *path, kb_buf *out)
{
	kb_err *err = kb_read_file(AT_FDCWD, path, SIG_MAX, out);
	if (err)
		return kb_err_wrap(err, "the detached signature");
	const unsigned char *p = (const unsigned char *)out->p;
	CMS_ContentInfo *cms = out->len ? d2i_CMS_ContentInfo(NULL, &p, (long)out->len) : NULL;
	if (!cms)
		err = kb_errf("%s is not a CMS signature in DER (what 'kbuild sign module "
			      "--detached' or 'sign-file -d' writes)",
			      path);
	else if (p != (const unsigned char *)out->p + out->len)
		err = kb_errf("%s has %zu bytes after its CMS signature", path,
			      (size_t)((const unsigned char *)out->p + out->len - p));
	else if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || CMS_is_detached(cms) != 1)
		err = kb_errf("%s is a CMS structure but not a detached signature", path);
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	return err;
}

kb_err *kb_modsign_attach(const char *in, const char *sig, const char *out,
			  const kb_modsign_opts *o)
{
	kb_buf s = {0};
	module m;
	kb_err *err = read_sig(sig, &s);
	if (!err && !(err = open_module(in, o->replace, &m))) {
		outfile of = {0};
		if (!(err = out_begin(out, &of)) && !(err = stream_module(&m, NULL, of.fd, of.tmp)) &&
		    !(err = append_sig(&of, s.p, s.len)))
			err = out_finish(&of);
		if (err)
			out_abort(&of);
		close(m.fd);
	}
	kb_buf_free(&s);
	return err;
}

/* Making keys: an X.509 Machine Owner Key for module signing, or an
 * OpenPGP signing key. The secret is written first, with O_EXCL and mode
 * 0600 (kb_key_write_new), so that the key's name is claimed before
 * anything else lands; on any failure every file made is removed. */
#include "../mirror/mirror.h"
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOK_BITS 4096
/* the kernel's certs/Makefile makes its signing key for 36500 days; a
 * module signed today must still load on a machine running years on */
#define MOK_DAYS 36500

/* refused if any file of the key exists */
static kb_err *name_free(const kb_key_dirh *d, const char *name)
{
	for (const char *const *s = kb_key_suffixes; *s; s++) {
		char *f = kb_asprintf("%s%s", name, *s);
		int there = faccessat(d->fd, f, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
		kb_err *err = there ? kb_errf("the key '%s' exists already (%s/%s); kbuild never "
					      "overwrites a key: choose another name, or remove "
					      "its files yourself",
					      name, d->path, f)
				    : NULL;
		free(f);
		if (err)
			return err;
	}
	return NULL;
}

/* the files written so far, removed when a later one fails */
typedef struct {
	const kb_key_dirh *d;
	const char *files[3];
	size_t n;
} written;

static kb_err *put(written *w, const char *name, const char *suffix, const void *p, size_t n,
		   mode_t mode)
{
	char *f = kb_asprintf("%s%s", name, suffix);
	kb_err *err = kb_key_write_new(w->d, f, p, n, mode);
	free(f);
	if (!err)
		w->files[w->n++] = suffix;
	return err;
}

static void undo(written *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++) {
		char *f = kb_asprintf("%s%s", name, w->files[i]);
		unlinkat(w->d->fd, f, 0);
		free(f);
	}
	kb_err_free(kb_fsync_dir(w->d->fd, w->d->path));
}

static kb_err *ossl_err(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return kb_errf("%s%s%s", what, e ? ": " : "", buf);
}

static kb_err *add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!e || !X509_add_ext(x, e, -1)) {
		X509_EXTENSION_free(e);
		return ossl_err(OBJ_nid2sn(nid));
	}
	X509_EXTENSION_free(e);
	return NULL;
}

/* the certificate: what the kernel's certs/x509.genkey asks for a module
 * signing key, plus extendedKeyUsage codeSigning (shim and some firmware
 * look for it) */
static kb_err *make_cert(EVP_PKEY *pk, const char *subject, X509 **out)
{
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	kb_err *err = NULL;
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	if (!x || !bn || !n || !X509_set_version(x, X509_VERSION_3) ||
	    /* a random positive 127-bit serial, as 'openssl req -x509' makes */
	    !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), MOK_DAYS, 0, NULL))
		err = ossl_err("making the certificate");
	else if (!X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)subject,
					     -1, -1, 0))
		err = ossl_err("the subject (a common name of 1 to 64 characters; see --subject)");
	else if (!X509_set_issuer_name(x, n) || !X509_set_pubkey(x, pk))
		err = ossl_err("making the certificate");
	if (!err) {
		X509V3_CTX ctx;
		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		/* the subject key id first: the authority key id is copied from
		 * it ("always": OpenSSL 3 leaves it empty on a self-signed
		 * certificate otherwise) */
		if (!(err = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) &&
		    !(err = add_ext(x, &ctx, NID_key_usage, "digitalSignature")) &&
		    !(err = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) &&
		    !(err = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")))
			err = add_ext(x, &ctx, NID_ext_key_usage, "codeSigning");
	}
	if (!err && !X509_sign(x, pk, EVP_sha256()))
		err = ossl_err("signing the certificate");
	BN_free(bn);
	if (err)
		X509_free(x);
	else
		*out = x;
	return err;
}

/* PEM or DER of a certificate, or the PEM of a private key (in secure
 * memory, cleared when freed) */
static kb_err *encode(X509 *cert, EVP_PKEY *pk, int der, kb_buf *out)
{
	BIO *b = BIO_new(pk ? BIO_s_secmem() : BIO_s_mem());
	int ok = b && (pk	  ? PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL)
			   : der ? i2d_X509_bio(b, cert)
				 : PEM_write_bio_X509(b, cert));
	BUF_MEM *m = NULL;
	if (ok)
		BIO_get_mem_ptr(b, &m);
	if (m)
		kb_buf_add(out, m->data, m->length);
	BIO_free(b);
	return m ? NULL : ossl_err("encoding the key");
}

kb_err *kb_key_new_x509(const char *name, const char *subject)
{
	kb_err *err = kb_key_check_name(name);
	kb_key_dirh d;
	if (err || (err = kb_key_open_dir(1, &d)))
		return err;
	if ((err = name_free(&d, name))) {
		kb_key_close_dir(&d);
		return err;
	}
	kb_info("making the X.509 key '%s' (RSA %d) in %s", name, MOK_BITS, d.path);
	EVP_PKEY *pk = EVP_RSA_gen(MOK_BITS);
	X509 *cert = NULL;
	kb_buf key = {0}, pem = {0}, der = {0};
	written w = {.d = &d};
	if (!pk)
		err = ossl_err("generating an RSA key");
	if (!err && !(err = make_cert(pk, subject, &cert)) && !(err = encode(NULL, pk, 0, &key)) &&
	    !(err = encode(cert, NULL, 0, &pem)) && !(err = encode(cert, NULL, 1, &der)) &&
	    !(err = put(&w, name, ".key", key.p, key.len, 0600)) &&
	    !(err = put(&w, name, ".crt", pem.p, pem.len, 0644)))
		err = put(&w, name, ".der", der.p, der.len, 0644);
	if (!err)
		err = kb_fsync_dir(d.fd, d.path);
	if (err) {
		undo(&w, name);
		err = kb_err_wrap(err, "cannot make the key '%s' in %s", name, d.path);
	}
	kb_key_buf_wipe(&key);
	kb_buf_free(&pem);
	kb_buf_free(&der);
	X509_free(cert);
	EVP_PKEY_free(pk);
	kb_key_close_dir(&d);
	return err;
}

kb_err *kb_key_new_pgp(const char *name, const char *userid)
{
	kb_err *err = kb_key_check_name(name);
	kb_key_dirh d;
	if (err || (err = kb_key_open_dir(1, &d)))
		return err;
	if ((err = name_free(&d, name))) {
		kb_key_close_dir(&d);
		return err;
	}
	kb_buf sec = {0}, pub = {0};
	written w = {.d = &d};
	kb_info("making the OpenPGP key '%s' in %s", name, d.path);
	if (!(err = kb_pgp_keygen(userid, &sec, &pub)) &&
	    !(err = put(&w, name, ".pgp.sec", sec.p, sec.len, 0600)))
		err = put(&w, name, ".pgp.pub", pub.p, pub.len, 0644);
	if (!err)
		err = kb_fsync_dir(d.fd, d.path);
	if (err) {
		undo(&w, name);
		err = kb_err_wrap(err, "cannot make the OpenPGP key '%s' in %s", name, d.path);
	}
	kb_key_buf_wipe(&sec);
	kb_buf_free(&pub);
	kb_key_close_dir(&d);
	return err;
}

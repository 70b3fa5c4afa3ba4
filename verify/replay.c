/* Sign steps under 'kbuild verify': the verifier has no private key, so
 * each rebuilt unsigned module gets the signature cut from the published
 * signed module at the same path (kb_modsign_attach). With RSA and no
 * signed attributes a module signature depends only on the key and the
 * module, so the result equals the published module byte for byte iff the
 * unsigned module was rebuilt identically; and the signature is checked
 * (CMS, detached content) against the manifest's certificate over the
 * rebuilt module. */
#include "verify_run.h"
#include "../builder/key.h"
#include "../builder/modsign.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/cms.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kb_sign_replay_fn *kb_sign_replay;
void *kb_sign_replay_ctx;

/* the blob at path below tree; found=0 when absent */
static kb_err *lookup(kb_store *s, const kb_hash *tree, const char *path, kb_hash *out,
		      int *found)
{
	kb_hash cur = *tree;
	*found = 0;
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		kb_tree t = {0};
		kb_err *err = kb_store_read_tree(s, &cur, &t);
		if (err)
			return err;
		int go = 0;
		for (size_t i = 0; i < t.n; i++) {
			const kb_tree_entry *e = &t.e[i];
			if (e->namelen != n || memcmp(e->name, p, n))
				continue;
			if (!slash && e->type != KB_ENT_DIR && e->type != KB_ENT_LINK) {
				*out = e->hash;
				*found = 1;
			} else if (slash && e->type == KB_ENT_DIR) {
				cur = e->hash;
				go = 1;
			}
		}
		kb_tree_free(&t);
		if (!go)
			return NULL;
		p = slash + 1;
	}
}

/* the CMS signature of a signed module (the bytes before its 12-byte
 * struct module_signature and the marker) into file sig */
static kb_err *cut_signature(kb_store *s, const kb_hash *h, const char *what, const char *sig)
{
	int fd;
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return err;
	static const char marker[] = KB_MODSIGN_MARKER;
	const size_t ml = sizeof marker - 1, tail = 12 + ml;
	struct stat st;
	unsigned char t[12 + sizeof marker];
	if (fstat(fd, &st) < 0)
		err = kb_errno(errno, "cannot stat %s", what);
	else if ((uint64_t)st.st_size < tail || pread(fd, t, tail, st.st_size - (off_t)tail) != (ssize_t)tail ||
		 memcmp(t + 12, marker, ml))
		err = kb_errf("%s carries no module signature (no '~Module signature appended~' "
			      "trailer)", what);
	uint32_t len = err ? 0 : (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
	if (!err && (len == 0 || len > 1 << 20 || (uint64_t)len + tail > (uint64_t)st.st_size))
		err = kb_errf("%s has a malformed signature trailer (length %u)", what, len);
	if (!err) {
		unsigned char *b = kb_malloc(len);
		if (pread(fd, b, len, st.st_size - (off_t)tail - (off_t)len) != (ssize_t)len)
			err = kb_errno(errno, "cannot read %s", what);
		else {
			int out = open(sig, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (out < 0)
				err = kb_errno(errno, "cannot write %s", sig);
			else {
				err = kb_write_all(out, b, len, sig);
				close(out);
			}
		}
		free(b);
	}
	close(fd);
	return err;
}

/* 1 if sig (DER CMS) verifies over the file content with cert */
static int cms_ok(const char *sig, const char *content, X509 *cert)
{
	BIO *sb = BIO_new_file(sig, "rb"), *cb = BIO_new_file(content, "rb");
	CMS_ContentInfo *cms = sb ? d2i_CMS_bio(sb, NULL) : NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	int ok = 0;
	if (cms && cb && certs && sk_X509_push(certs, cert))
		ok = CMS_verify(cms, certs, NULL, cb, NULL,
				CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY | CMS_DETACHED) == 1;
	sk_X509_free(certs);
	CMS_ContentInfo_free(cms);
	BIO_free(sb);
	BIO_free(cb);
	return ok;
}

kb_err *kb_verify_replay_module(void *ctx, const kb_step *st, const char *path, const char *in,
				const char *out)
{
	kb_replay *x = ctx;
	const kb_hash *pub = NULL;
	for (size_t i = 0; i < x->nsign; i++)
		if (!strcmp(x->sign[i].step, st->name))
			pub = &x->sign[i].output;
	if (!pub)
		return kb_errf("sign step '%s' is not in the manifest", st->name);
	kb_hash h;
	int found;
	kb_err *err = lookup(x->s, pub, path, &h, &found);
	if (!err && !found)
		err = kb_errf("the rebuilt input of sign step '%s' has module %s, which its published "
			      "output does not have", st->name, path);
	char *what = kb_asprintf("the published module %s/%s", st->name, path);
	char *sig = kb_asprintf("%s.p7s", out);
	if (!err)
		err = cut_signature(x->s, &h, what, sig);
	kb_modsign_opts mo = {.hash = st->hash};
	if (!err)
		err = kb_modsign_attach(in, sig, out, &mo);
	X509 *cert = NULL;
	if (!err && !(err = kb_key_x509(st->key, &cert, NULL))) {
		x->nmodules++;
		if (cms_ok(sig, in, cert))
			x->nsig_ok++;
		else {
			x->bad = kb_realloc(x->bad, (x->nbad + 1) * sizeof *x->bad);
			x->bad[x->nbad++] = kb_asprintf("%s/%s: the published signature does not verify "
							"over the rebuilt module with the manifest's "
							"certificate (key '%s')", st->name, path, st->key);
		}
		X509_free(cert);
	}
	unlink(sig);
	free(sig);
	free(what);
	return err;
}

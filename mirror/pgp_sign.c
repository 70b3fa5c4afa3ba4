/* OpenPGP key generation and signing with librnp.
 *
 * Keys: one RSA primary key that certifies and signs, no subkey, no
 * passphrase (the key directory's permissions protect it; builds run
 * unattended), no expiry. Signatures: v4, SHA-256, made at the time the
 * caller gives, so that the same key, data and time always give the same
 * bytes (RSA PKCS#1 v1.5 has no randomness).
 *
 * No pass provider is set and no password requested (librnp's default;
 * rnp_op_generate_set_request_password(op, false) in 0.16 even fails
 * with "Null pointer"), so the key is stored unprotected. */
#include "internal.h"

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PGP_KEY_BITS 4096

static kb_err *rnp_fail(const char *what, rnp_result_t rc)
{
	return kb_errf("librnp: %s: %s", what, rnp_result_to_string(rc));
}

/* Copies what out holds into b and wipes librnp's copy: it may be a
 * secret key. librnp ends armor lines with CRLF, which apt's reader of
 * armored keys (signed-by=KEY.asc) does not take; armor is not signed,
 * so with armored its lines end with LF alone. */
static kb_err *take_output(rnp_output_t out, int armored, kb_buf *b)
{
	uint8_t *p = NULL;
	size_t n = 0;
	rnp_result_t rc = rnp_output_memory_get_buf(out, &p, &n, false);
	if (rc)
		return rnp_fail("reading the output", rc);
	b->len = 0;
	if (!armored)
		kb_buf_add(b, p, n);
	else
		for (size_t i = 0; i < n; i++)
			if (p[i] != '\r')
				kb_buf_addc(b, (char)p[i]);
	explicit_bzero(p, n);
	return NULL;
}

static kb_err *export_key(rnp_key_handle_t key, uint32_t flags, kb_buf *b)
{
	rnp_output_t out = NULL;
	rnp_result_t rc = rnp_output_to_memory(&out, 0);
	kb_err *err = NULL;
	if (rc)
		return rnp_fail("memory output", rc);
	if ((rc = rnp_key_export(key, out, flags | RNP_KEY_EXPORT_ARMORED)))
		err = rnp_fail("exporting the key", rc);
	else
		err = take_output(out, 1, b);
	rnp_output_destroy(out);
	return err;
}

kb_err *kb_pgp_keygen(const char *userid, kb_buf *sec, kb_buf *pub)
{
	if (!userid || !*userid || strpbrk(userid, "\n\r"))
		return kb_errf("an OpenPGP user id must be one non-empty line");
	rnp_ffi_t ffi = NULL;
	rnp_op_generate_t op = NULL;
	rnp_key_handle_t key = NULL;
	kb_err *err = NULL;
	rnp_result_t rc;
	kb_rnp_quiet q;
	kb_rnp_quiet_begin(&q);
	if ((rc = rnp_ffi_create(&ffi, "GPG", "GPG")))
		err = rnp_fail("starting", rc);
	else if ((rc = rnp_op_generate_create(&op, ffi, "RSA")) ||
		 (rc = rnp_op_generate_set_bits(op, PGP_KEY_BITS)) ||
		 (rc = rnp_op_generate_set_hash(op, "SHA256")) ||
		 (rc = rnp_op_generate_add_usage(op, "sign")) ||
		 (rc = rnp_op_generate_add_usage(op, "certify")) ||
		 (rc = rnp_op_generate_set_userid(op, userid)) ||
		 (rc = rnp_op_generate_set_expiration(op, 0)) ||
		 (rc = rnp_op_generate_add_pref_hash(op, "SHA512")) ||
		 (rc = rnp_op_generate_add_pref_hash(op, "SHA256")))
		err = rnp_fail("setting up key generation", rc);
	else if ((rc = rnp_op_generate_execute(op)) || (rc = rnp_op_generate_get_key(op, &key)))
		err = rnp_fail("generating the key", rc);
	kb_rnp_quiet_end(&q);
	if (!err)
		err = export_key(key, RNP_KEY_EXPORT_SECRET, sec);
	if (!err)
		err = export_key(key, RNP_KEY_EXPORT_PUBLIC, pub);
	if (err) {
		explicit_bzero(sec->p, sec->len);
		sec->len = 0;
		err = kb_err_wrap(err, "cannot make the OpenPGP key '%s'", userid);
	}
	rnp_key_handle_destroy(key);
	rnp_op_generate_destroy(op);
	rnp_ffi_destroy(ffi);
	return err;
}

/* The one primary key of ffi that can sign with its secret part. */
static kb_err *signing_key(rnp_ffi_t ffi, rnp_key_handle_t *out)
{
	*out = NULL;
	rnp_identifier_iterator_t it = NULL;
	rnp_result_t rc = rnp_identifier_iterator_create(ffi, &it, "fingerprint");
	if (rc)
		return rnp_fail("listing keys", rc);
	kb_err *err = NULL;
	size_t found = 0;
	const char *fpr;
	while (!err && !rnp_identifier_iterator_next(it, &fpr) && fpr) {
		rnp_key_handle_t k = NULL;
		bool primary = false, secret = false, sign = false;
		if (rnp_locate_key(ffi, "fingerprint", fpr, &k) || !k)
			continue;
		if (!rnp_key_is_primary(k, &primary) && primary && !rnp_key_have_secret(k, &secret) &&
		    secret && !rnp_key_allows_usage(k, "sign", &sign) && sign) {
			if (found++ == 0) {
				*out = k;
				continue;
			}
			err = kb_errf("the secret key holds more than one signing key; kbuild signs "
				      "with exactly one (make one with 'kbuild key new --openpgp')");
		}
		rnp_key_handle_destroy(k);
	}
	rnp_identifier_iterator_destroy(it);
	if (!err && !found)
		err = kb_errf("no secret signing key in it (is it a public key?)");
	if (err) {
		rnp_key_handle_destroy(*out);
		*out = NULL;
	}
	return err;
}

static kb_err *load_secret(const kb_buf *sec, rnp_ffi_t ffi)
{
	char *fmt = NULL;
	if (!sec->len || rnp_detect_key_format((const uint8_t *)sec->p, sec->len, &fmt) || !fmt) {
		rnp_buffer_destroy(fmt);
		return kb_errf("it is not an OpenPGP key (armored or binary)");
	}
	rnp_input_t in = NULL;
	kb_err *err = NULL;
	rnp_result_t rc = rnp_input_from_memory(&in, (const uint8_t *)sec->p, sec->len, false);
	if (rc)
		err = rnp_fail("memory input", rc);
	else if ((rc = rnp_load_keys(ffi, fmt, in,
				     RNP_LOAD_SAVE_SECRET_KEYS | RNP_LOAD_SAVE_PUBLIC_KEYS)))
		err = kb_errf("cannot load it as %s keys: %s", fmt, rnp_result_to_string(rc));
	rnp_input_destroy(in);
	rnp_buffer_destroy(fmt);
	return err;
}

kb_err *kb_pgp_key_info(const kb_buf *key, char **fpr, char **userid, int64_t *created)
{
	*fpr = *userid = NULL;
	rnp_ffi_t ffi = NULL;
	rnp_identifier_iterator_t it = NULL;
	kb_err *err = NULL;
	rnp_result_t rc;
	kb_rnp_quiet q;
	kb_rnp_quiet_begin(&q);
	if ((rc = rnp_ffi_create(&ffi, "GPG", "GPG")))
		err = rnp_fail("starting", rc);
	else if (!(err = load_secret(key, ffi)) &&
		 (rc = rnp_identifier_iterator_create(ffi, &it, "fingerprint")))
		err = rnp_fail("listing keys", rc);
	const char *f;
	while (!err && !rnp_identifier_iterator_next(it, &f) && f) {
		rnp_key_handle_t k = NULL;
		bool primary = false;
		if (rnp_locate_key(ffi, "fingerprint", f, &k) || !k)
			continue;
		if (!rnp_key_is_primary(k, &primary) && primary) {
			if (*fpr) {
				err = kb_errf("it holds more than one primary key");
			} else {
				char *uid = NULL;
				*fpr = kb_strdup(f);
				*userid = kb_strdup(!rnp_key_get_primary_uid(k, &uid) && uid ? uid : "");
				rnp_buffer_destroy(uid);
				uint32_t kc = 0;
				if (created)
					*created = rnp_key_get_creation(k, &kc) ? 0 : (int64_t)kc;
			}
		}
		rnp_key_handle_destroy(k);
	}
	rnp_identifier_iterator_destroy(it);
	rnp_ffi_destroy(ffi);
	kb_rnp_quiet_end(&q);
	if (!err && !*fpr)
		err = kb_errf("it holds no primary key");
	if (err) {
		free(*fpr);
		free(*userid);
		*fpr = *userid = NULL;
	}
	return err;
}

/* refuses what would make a signature gpgv rejects or that needs input */
static kb_err *check_key(rnp_key_handle_t key, int64_t created)
{
	bool locked = false, prot = false;
	if (!rnp_key_is_protected(key, &prot) && prot)
		return kb_errf("the secret key is passphrase-protected; kbuild signs unattended "
			       "with keys that have none (make one with 'kbuild key new --openpgp')");
	if (!rnp_key_is_locked(key, &locked) && locked)
		return kb_errf("the secret key is locked");
	uint32_t kc = 0;
	if (!rnp_key_get_creation(key, &kc) && (int64_t)kc > created)
		return kb_errf("the signature time %lld is before the key was made (%u): gpgv "
			       "and rpm refuse such signatures; sign with a later time "
			       "(SOURCE_DATE_EPOCH) or a key made before it",
			       (long long)created, kc);
	return NULL;
}

/* librnp's own signature: detached (binary or armored) or its cleartext
 * document (mode KB_PGP_CLEARSIGN), which clearsign() reframes */
static kb_err *rnp_sign(const kb_buf *sec, const void *data, size_t len, int64_t created,
			kb_pgp_mode mode, kb_buf *out)
{
	static const uint8_t nothing[1];
	rnp_ffi_t ffi = NULL;
	rnp_key_handle_t key = NULL;
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_sign_t op = NULL;
	kb_err *err = NULL;
	rnp_result_t rc;
	kb_rnp_quiet q;
	kb_rnp_quiet_begin(&q);
	if ((rc = rnp_ffi_create(&ffi, "GPG", "GPG"))) {
		err = rnp_fail("starting", rc);
	} else if ((err = load_secret(sec, ffi)) || (err = signing_key(ffi, &key)) ||
		   (err = check_key(key, created))) {
		err = kb_err_wrap(err, "the OpenPGP secret key");
	} else if ((rc = rnp_input_from_memory(&in, len ? data : nothing, len, false)) ||
		   (rc = rnp_output_to_memory(&o, 0))) {
		err = rnp_fail("memory streams", rc);
	} else {
		rc = mode == KB_PGP_CLEARSIGN ? rnp_op_sign_cleartext_create(&op, ffi, in, o)
					      : rnp_op_sign_detached_create(&op, ffi, in, o);
		if (!rc)
			rc = rnp_op_sign_add_signature(op, key, NULL);
		if (!rc)
			rc = rnp_op_sign_set_hash(op, "SHA256");
		if (!rc)
			rc = rnp_op_sign_set_creation_time(op, (uint32_t)created);
		if (!rc && mode == KB_PGP_DETACHED_ARMOR)
			rc = rnp_op_sign_set_armor(op, true);
		if (rc)
			err = rnp_fail("setting up the signature", rc);
		else if ((rc = rnp_op_sign_execute(op)))
			err = rnp_fail("signing", rc);
	}
	kb_rnp_quiet_end(&q);
	if (!err)
		err = take_output(o, mode != KB_PGP_DETACHED, out);
	rnp_op_sign_destroy(op);
	rnp_output_destroy(o);
	rnp_input_destroy(in);
	rnp_key_handle_destroy(key);
	rnp_ffi_destroy(ffi);
	return err;
}

/* Why text cannot be clearsigned as it is (NULL: it can). RFC 4880 7.1
 * leaves trailing blanks of a line out of the signature, and readers
 * differ on carriage returns (gpgv drops what apt keeps): text whose
 * readers could disagree on what was signed is refused. */
static char *unsignable_text(const char *p, size_t n)
{
	size_t line = 1;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\0')
			return kb_asprintf("line %zu holds a NUL byte: it is not text", line);
		if (c == '\r')
			return kb_asprintf("line %zu holds a carriage return", line);
		if ((c == ' ' || c == '\t') && (i + 1 == n || p[i + 1] == '\n'))
			return kb_asprintf("line %zu ends with a blank, which a clearsigned "
					   "message does not protect (RFC 4880 7.1)",
					   line);
		if (c == '\n')
			line++;
	}
	return NULL;
}

/* The clearsigned message the way gpg writes it: LF line ends, text lines
 * starting with '-' escaped as "- -", the text's last line end being the
 * one before the signature (so the signed text is the data without its
 * final newline, and readers give back exactly the data). librnp's own
 * framing uses CRLF and adds a line end of its own after the text (gpgv
 * then hands back the data plus "\r\n"), so only its signature block is
 * kept: it is made over the same text. */
static kb_err *clearsign(const kb_buf *sec, const char *p, size_t n, int64_t created,
			 kb_buf *out)
{
	char *why = unsignable_text(p, n);
	if (why) {
		kb_err *e = kb_errf("cannot clearsign the text: %s; remove it or make a detached "
				    "signature",
				    why);
		free(why);
		return e;
	}
	size_t body = n && p[n - 1] == '\n' ? n - 1 : n;
	kb_buf doc = {0};
	kb_err *err = rnp_sign(sec, p, body, created, KB_PGP_CLEARSIGN, &doc);
	static const char begin[] = "\n-----BEGIN PGP SIGNATURE-----";
	const char *sig = NULL;
	if (!err && !(sig = memmem(doc.p, doc.len, begin, sizeof begin - 1)))
		err = kb_errf("librnp's clearsigned message has no signature block");
	if (!err) {
		out->len = 0;
		kb_buf_adds(out, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n");
		for (size_t i = 0; i < body;) {
			const char *nl = memchr(p + i, '\n', body - i);
			size_t end = nl ? (size_t)(nl - p) + 1 : body;
			if (p[i] == '-')
				kb_buf_adds(out, "- ");
			kb_buf_add(out, p + i, end - i);
			i = end;
		}
		kb_buf_add(out, sig, (size_t)(doc.p + doc.len - sig));
	}
	kb_buf_free(&doc);
	return err;
}

kb_pgp_replay_fn *kb_pgp_replay;
void *kb_pgp_replay_ctx;

kb_err *kb_pgp_sign(const kb_buf *sec, const void *data, size_t len, int64_t created,
		    kb_pgp_mode mode, kb_buf *out)
{
	/* librnp reads a creation time of 0 as "now" */
	if (created <= 0 || created > (int64_t)UINT32_MAX)
		return kb_errf("an OpenPGP signature time must be between 1 and %u seconds after "
			       "1970 (got %lld)",
			       UINT32_MAX, (long long)created);
	if (kb_pgp_replay)
		return kb_pgp_replay(kb_pgp_replay_ctx, data, len, mode, out);
	if (mode == KB_PGP_CLEARSIGN)
		return clearsign(sec, data, len, created, out);
	if (mode != KB_PGP_DETACHED && mode != KB_PGP_DETACHED_ARMOR)
		return kb_errf("unknown OpenPGP signature mode %d", (int)mode);
	return rnp_sign(sec, data, len, created, mode, out);
}

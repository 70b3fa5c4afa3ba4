/* OpenPGP signatures through librnp: a clearsigned document (InRelease)
 * or a detached signature (repomd.xml.asc), checked against a keyring
 * given as bytes (OpenPGP public keys, armored or binary).
 *
 * Accepted: at least one signature that librnp finds good, made by a key
 * of the keyring that is valid now (not expired, not revoked), over a
 * hash other than MD5, SHA-1 or RIPEMD-160 (apt refuses SHA-1 too).
 * Signatures by keys outside the keyring are ignored when a good one is
 * there, as gpgv and apt do. A clearsigned document must be exactly one
 * signed message: nothing before its first line, nothing but blank space
 * after its signature; only the signed text is handed back. */
#include "internal.h"

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CLEAR_BEGIN "-----BEGIN PGP SIGNED MESSAGE-----"
#define SIG_END "-----END PGP SIGNATURE-----"

/* a short, printable look at what arrived instead */
static char *peek(const kb_buf *b)
{
	size_t n = 0;
	while (n < b->len && n < 40 && b->p[n] != '\n' && b->p[n] != '\r')
		n++;
	return kb_quote(b->p ? b->p : "", n);
}

static kb_err *load_keyring(const kb_buf *keyring, rnp_ffi_t *out)
{
	*out = NULL;
	if (!keyring->len)
		return kb_errf("the keyring is empty");
	char *fmt = NULL;
	if (rnp_detect_key_format((const uint8_t *)keyring->p, keyring->len, &fmt) || !fmt) {
		rnp_buffer_destroy(fmt);
		return kb_errf("the keyring is not OpenPGP public keys (armored or binary)");
	}
	rnp_ffi_t ffi = NULL;
	rnp_input_t in = NULL;
	kb_err *err = NULL;
	rnp_result_t rc = rnp_ffi_create(&ffi, "GPG", "GPG");
	if (rc)
		err = kb_errf("librnp cannot start: %s", rnp_result_to_string(rc));
	else if ((rc = rnp_input_from_memory(&in, (const uint8_t *)keyring->p, keyring->len, false)))
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	else if ((rc = rnp_load_keys(ffi, fmt, in, RNP_LOAD_SAVE_PUBLIC_KEYS)))
		err = kb_errf("cannot load the keyring (%s keys): %s", fmt, rnp_result_to_string(rc));
	size_t count = 0;
	if (!err && (rc = rnp_get_public_key_count(ffi, &count)))
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	if (!err && !count)
		err = kb_errf("the keyring holds no public key");
	rnp_input_destroy(in);
	rnp_buffer_destroy(fmt);
	if (err)
		rnp_ffi_destroy(ffi);
	else
		*out = ffi;
	return err;
}

static int weak_hash(const char *h)
{
	return h && (!strcasecmp(h, "SHA1") || !strcasecmp(h, "MD5") || !strcasecmp(h, "RIPEMD160"));
}

static char *rnp_str(rnp_result_t rc, char *s)
{
	char *r = kb_strdup(!rc && s ? s : "?");
	rnp_buffer_destroy(s);
	return r;
}

static char *utc_date(uint64_t t)
{
	char b[32];
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(b, sizeof b, "%llu", (unsigned long long)t);
	return kb_strdup(b);
}

/* Why key (of the keyring) cannot vouch for anything now; NULL: it can. */
static char *key_problem(rnp_key_handle_t key, const char *fpr)
{
	bool revoked = false, expired = false, valid = false;
	if (!rnp_key_is_revoked(key, &revoked) && revoked)
		return kb_asprintf("the signing key %s is revoked", fpr);
	uint64_t till = 0;
	if (rnp_key_valid_till64(key, &till))
		till = 0;
	if ((!rnp_key_is_expired(key, &expired) && expired) ||
	    (till && till != UINT64_MAX && till < (uint64_t)time(NULL))) {
		if (till && till != UINT64_MAX) {
			char *d = utc_date(till);
			char *m = kb_asprintf("the signing key %s expired on %s", fpr, d);
			free(d);
			return m;
		}
		return kb_asprintf("the signing key %s has expired", fpr);
	}
	if (!rnp_key_is_valid(key, &valid) && !valid)
		return kb_asprintf("the signing key %s is not valid (expired, revoked or "
				   "without a valid self-signature)", fpr);
	return NULL;
}

/* After rnp_op_verify_execute: the good signature's signer, or why there
 * is none, the most telling reason first. */
static kb_err *judge(rnp_op_verify_t op, rnp_result_t exec_rc, char **signer)
{
	size_t n = 0;
	if (rnp_op_verify_get_signature_count(op, &n) || !n)
		return kb_errf("no OpenPGP signature found%s%s", exec_rc ? ": " : "",
			       exec_rc ? rnp_result_to_string(exec_rc) : "");
	char *weak = NULL, *keyprob = NULL, *bad = NULL, *unknown = NULL, *other = NULL;
	kb_err *err = NULL;
	for (size_t i = 0; i < n && !*signer; i++) {
		rnp_op_verify_signature_t sig = NULL;
		if (rnp_op_verify_get_signature_at(op, i, &sig) || !sig)
			continue;
		rnp_result_t st = rnp_op_verify_signature_get_status(sig);
		char *hash = NULL, *keyid = NULL, *fpr = NULL;
		rnp_result_t hrc = rnp_op_verify_signature_get_hash(sig, &hash);
		char *h = rnp_str(hrc, hash);
		rnp_signature_handle_t sh = NULL;
		if (!rnp_op_verify_signature_get_handle(sig, &sh) && sh) {
			char *k = NULL;
			rnp_result_t krc = rnp_signature_get_keyid(sh, &k);
			keyid = rnp_str(krc, k);
			rnp_signature_handle_destroy(sh);
		} else {
			keyid = kb_strdup("?");
		}
		rnp_key_handle_t key = NULL;
		if (rnp_op_verify_signature_get_key(sig, &key))
			key = NULL;
		if (key) {
			char *f = NULL;
			rnp_result_t frc = rnp_key_get_fprint(key, &f);
			fpr = rnp_str(frc, f);
		}
		if (!key || st == RNP_ERROR_KEY_NOT_FOUND) {
			if (!unknown)
				unknown = kb_asprintf("signed by key %s, which is not in the keyring",
						      keyid);
		} else if (weak_hash(h)) {
			/* whatever librnp thinks of it: a SHA-1 signature is refused */
			if (!weak)
				weak = kb_asprintf("the signature by %s uses %s, which is refused as "
						   "insecure (like apt, only SHA-256 or stronger)",
						   fpr, h);
		} else {
			char *kp = key_problem(key, fpr);
			if (kp) {
				if (!keyprob)
					keyprob = kp;
				else
					free(kp);
			} else if (st == RNP_SUCCESS) {
				*signer = kb_strdup(fpr);
			} else if (st == RNP_ERROR_SIGNATURE_INVALID) {
				if (!bad)
					bad = kb_asprintf("BAD signature by %s: the signed data or the "
							  "signature was modified", fpr);
			} else if (st == RNP_ERROR_SIGNATURE_EXPIRED) {
				if (!other)
					other = kb_asprintf("the signature by %s has expired", fpr);
			} else if (!other) {
				other = kb_asprintf("the signature by %s does not verify: %s", fpr,
						    rnp_result_to_string(st));
			}
		}
		if (key)
			rnp_key_handle_destroy(key);
		free(h);
		free(keyid);
		free(fpr);
	}
	if (!*signer) {
		const char *why = bad ? bad : weak ? weak : keyprob ? keyprob : other ? other
						       : unknown ? unknown
								 : "no good signature";
		err = kb_errf("%s", why);
	}
	free(weak);
	free(keyprob);
	free(bad);
	free(unknown);
	free(other);
	return err;
}

/* the whole document must be one clearsigned message */
static kb_err *check_clearsigned_shape(const kb_buf *doc)
{
	size_t bl = strlen(CLEAR_BEGIN);
	const char *p = doc->p ? doc->p : "";
	if (doc->len < bl || memcmp(p, CLEAR_BEGIN, bl) || (doc->len > bl && p[bl] != '\n' &&
							     p[bl] != '\r')) {
		char *q = peek(doc);
		kb_err *e = kb_errf("not a PGP-signed message (it starts with '%s')", q);
		free(q);
		return e;
	}
	/* the last END line, then only blank space */
	const char *end = NULL;
	size_t el = strlen(SIG_END);
	for (const char *s = p; (s = memmem(s, doc->len - (size_t)(s - p), SIG_END, el)); s += el)
		end = s;
	if (!end)
		return kb_errf("a PGP-signed message without its signature block");
	if (memmem(p + bl, (size_t)(end - p) - bl, CLEAR_BEGIN, bl))
		return kb_errf("more than one signed message in one document");
	for (const char *s = end + el; s < p + doc->len; s++)
		if (*s != '\n' && *s != '\r' && *s != ' ' && *s != '\t')
			return kb_errf("unsigned content after the signature");
	return NULL;
}

/* runs a prepared verification with librnp's own log kept quiet */
static kb_err *execute(rnp_op_verify_t op, char **signer)
{
	kb_rnp_quiet q;
	kb_rnp_quiet_begin(&q);
	rnp_result_t rc = rnp_op_verify_execute(op);
	kb_err *err = judge(op, rc, signer);
	kb_rnp_quiet_end(&q);
	if (!err && rc) /* librnp agrees with nothing less than a good signature */
		err = kb_errf("the signature does not verify: %s", rnp_result_to_string(rc));
	return err;
}

kb_err *kb_pgp_verify_clearsigned(const kb_buf *keyring, const kb_buf *doc, kb_buf *text,
				  char **signer)
{
	*signer = NULL;
	kb_err *err = check_clearsigned_shape(doc);
	if (err)
		return err;
	rnp_ffi_t ffi;
	if ((err = load_keyring(keyring, &ffi)))
		return err;
	rnp_input_t in = NULL;
	rnp_output_t out = NULL;
	rnp_op_verify_t op = NULL;
	rnp_result_t rc;
	if ((rc = rnp_input_from_memory(&in, (const uint8_t *)doc->p, doc->len, false)) ||
	    (rc = rnp_output_to_memory(&out, 0)) || (rc = rnp_op_verify_create(&op, ffi, in, out))) {
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	} else {
		err = execute(op, signer);
	}
	if (!err) {
		uint8_t *buf = NULL;
		size_t len = 0;
		if ((rc = rnp_output_memory_get_buf(out, &buf, &len, false)))
			err = kb_errf("librnp: %s", rnp_result_to_string(rc));
		else {
			text->len = 0;
			kb_buf_add(text, buf, len);
		}
	}
	if (err) {
		free(*signer);
		*signer = NULL;
	}
	rnp_op_verify_destroy(op);
	rnp_output_destroy(out);
	rnp_input_destroy(in);
	rnp_ffi_destroy(ffi);
	return err;
}

kb_err *kb_pgp_verify_detached(const kb_buf *keyring, const kb_buf *data, const kb_buf *sig,
			       char **signer)
{
	*signer = NULL;
	if (!sig->len)
		return kb_errf("the signature is empty");
	/* armored or binary; HTML and other text is neither */
	const char *armor = "-----BEGIN PGP SIGNATURE-----";
	if (!((unsigned char)sig->p[0] & 0x80) &&
	    !memmem(sig->p, sig->len, armor, strlen(armor))) {
		char *q = peek(sig);
		kb_err *e = kb_errf("not an OpenPGP signature (it starts with '%s')", q);
		free(q);
		return e;
	}
	rnp_ffi_t ffi;
	kb_err *err = load_keyring(keyring, &ffi);
	if (err)
		return err;
	static const uint8_t nothing[1];
	rnp_input_t din = NULL, sin = NULL;
	rnp_op_verify_t op = NULL;
	rnp_result_t rc;
	if ((rc = rnp_input_from_memory(&din, data->len ? (const uint8_t *)data->p : nothing,
					data->len, false)) ||
	    (rc = rnp_input_from_memory(&sin, (const uint8_t *)sig->p, sig->len, false)) ||
	    (rc = rnp_op_verify_detached_create(&op, ffi, din, sin))) {
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	} else {
		err = execute(op, signer);
	}
	if (err) {
		free(*signer);
		*signer = NULL;
	}
	rnp_op_verify_destroy(op);
	rnp_input_destroy(sin);
	rnp_input_destroy(din);
	rnp_ffi_destroy(ffi);
	return err;
}

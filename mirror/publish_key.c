/* The darksite's key: checked before anything is written (it must hold a
 * secret key that signs), and its public half exported beside the
 * repository, armored (.asc, for Signed-By and dnf's gpgkey=) and binary
 * (.gpg, for /etc/apt/keyrings), with librnp. */
#include "publish.h"

#include <rnp/rnp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static kb_err *export_pub(rnp_key_handle_t key, int armored, kb_buf *out)
{
	rnp_output_t o = NULL;
	uint8_t *p = NULL;
	size_t n = 0;
	rnp_result_t rc = rnp_output_to_memory(&o, 0);
	if (!rc)
		rc = rnp_key_export(key, o, RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS |
						    (armored ? RNP_KEY_EXPORT_ARMORED : 0));
	if (!rc)
		rc = rnp_output_memory_get_buf(o, &p, &n, false);
	/* librnp armors with CRLF; apt-key's dearmoring of a Signed-By .asc
	 * (an awk script) takes only LF-terminated armor */
	for (size_t i = 0; !rc && i < n; i++)
		if (!armored || p[i] != '\r')
			kb_buf_addc(out, (char)p[i]);
	rnp_output_destroy(o);
	return rc ? kb_errf("cannot export the public key: %s", rnp_result_to_string(rc)) : NULL;
}

/* loads key material; *primary: its (first) primary key; *secret: a
 * secret key is among it */
static kb_err *load(const kb_buf *b, const char *what, rnp_ffi_t *ffi, rnp_key_handle_t *primary,
		    int *secret)
{
	*ffi = NULL;
	*primary = NULL;
	*secret = 0;
	if (!b || !b->len)
		return kb_errf("the %s is empty", what);
	rnp_input_t in = NULL;
	rnp_identifier_iterator_t it = NULL;
	kb_err *err = NULL;
	rnp_result_t rc = rnp_ffi_create(ffi, "GPG", "GPG");
	if (!rc)
		rc = rnp_input_from_memory(&in, (const uint8_t *)b->p, b->len, false);
	if (rc)
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	else if ((rc = rnp_import_keys(*ffi, in,
				       RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS, NULL)))
		err = kb_errf("the %s is not an OpenPGP key (armored or binary): %s", what,
			      rnp_result_to_string(rc));
	else if ((rc = rnp_identifier_iterator_create(*ffi, &it, "fingerprint")))
		err = kb_errf("librnp: %s", rnp_result_to_string(rc));
	const char *fpr = NULL;
	while (!err && !rnp_identifier_iterator_next(it, &fpr) && fpr) {
		rnp_key_handle_t k = NULL;
		bool is_primary = false, sec = false;
		if (rnp_locate_key(*ffi, "fingerprint", fpr, &k) || !k)
			continue;
		rnp_key_is_primary(k, &is_primary);
		rnp_key_have_secret(k, &sec);
		*secret |= sec;
		if (is_primary && !*primary)
			*primary = k;
		else
			rnp_key_handle_destroy(k);
	}
	rnp_identifier_iterator_destroy(it);
	rnp_input_destroy(in);
	if (!err && !*primary)
		err = kb_errf("the %s holds no OpenPGP primary key", what);
	if (err) {
		rnp_key_handle_destroy(*primary);
		*primary = NULL;
		rnp_ffi_destroy(*ffi);
		*ffi = NULL;
	}
	return err;
}

kb_err *kb_pub_key(const kb_buf *sec, const kb_buf *pub, int64_t epoch, kb_pubkey *out)
{
	memset(out, 0, sizeof *out);
	rnp_ffi_t ffi = NULL;
	rnp_key_handle_t primary = NULL;
	int secret = 0;
	if (kb_pgp_replay) /* signatures are replayed: the public key is all there is */
		sec = pub;
	kb_err *err = load(sec, "signing key", &ffi, &primary, &secret);
	if (!err && !secret && !kb_pgp_replay)
		err = kb_errf("the signing key holds no secret key, only a public one: give the "
			      "secret key (kbuild key new --openpgp NAME makes one)");
	if (!err && pub && !kb_pgp_replay) { /* the public key exported is the one given */
		rnp_key_handle_destroy(primary);
		rnp_ffi_destroy(ffi);
		err = load(pub, "public key", &ffi, &primary, &secret);
	}
	if (!err)
		err = export_pub(primary, 1, &out->asc);
	if (!err)
		err = export_pub(primary, 0, &out->bin);
	rnp_key_handle_destroy(primary);
	rnp_ffi_destroy(ffi);
	/* a key that cannot sign (protected, expired, broken) fails here,
	 * before any file is written, rather than after the indexes */
	kb_buf sig = {0};
	if (!err && !kb_pgp_replay &&
	    (err = kb_pgp_sign(sec, "kbuild", 6, epoch, KB_PGP_DETACHED, &sig)))
		err = kb_err_wrap(err, "the signing key cannot sign");
	kb_buf_free(&sig);
	if (err)
		kb_pubkey_free(out);
	return err;
}

void kb_pubkey_free(kb_pubkey *k)
{
	kb_buf_free(&k->asc);
	kb_buf_free(&k->bin);
}

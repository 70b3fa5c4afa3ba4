/* Private to builder/: signing Linux kernel modules the way the kernel's
 * scripts/sign-file does, byte for byte.
 *
 * A signed module is
 *   the module's bytes (an ELF file)
 *   a CMS SignedData in DER: detached content, no certificates, no signed
 *     attributes, the signer named by issuer and serial number
 *   struct module_signature (12 bytes): algo 0, hash 0, id_type 2
 *     (PKEY_ID_PKCS7), signer_len 0, key_id_len 0, 3 zero bytes, then
 *     the CMS's length as a big-endian u32
 *   "~Module signature appended~\n" (28 bytes)
 *
 * With RSA (PKCS#1 v1.5) and no signed attributes the CMS depends only on
 * the key, the certificate, the hash and the module: signing twice gives
 * the same bytes, and so does attaching a published detached signature
 * (what 'sign-file -d' writes) to a module rebuilt from source, which is
 * how someone without the private key reproduces a signed module.
 *
 * Modules are streamed: memory does not grow with their size. */
#ifndef KB_BUILDER_MODSIGN_H
#define KB_BUILDER_MODSIGN_H

#include "../common/common.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>

#define KB_MODSIGN_MARKER "~Module signature appended~\n"

typedef struct {
	const char *hash; /* "sha256" (NULL: sha256), "sha384" or "sha512" */
	int replace;      /* an input signed already: drop its signature and
			   * sign (attach) anew; otherwise such input is refused */
} kb_modsign_opts;

/* a usage error unless hash is one the kernel's module signing offers
 * and kbuild accepts (sha256, sha384, sha512) */
KB_MUST kb_err *kb_modsign_check_hash(const char *hash);

/* Signs the module in: out gets the signed module (mode 0644, written
 * beside it and renamed into place), or with detached only the CMS
 * signature (DER). Refused: input that is not ELF, or signed already
 * (unless o->replace). */
KB_MUST kb_err *kb_modsign_sign(const char *in, const char *out, int detached, X509 *cert,
				EVP_PKEY *pkey, const kb_modsign_opts *o);

/* Attaches the detached signature in sig (a CMS SignedData in DER, as
 * kb_modsign_sign with detached or 'sign-file -d' writes it) to the
 * unsigned module in, giving out. No key is needed. */
KB_MUST kb_err *kb_modsign_attach(const char *in, const char *sig, const char *out,
				  const kb_modsign_opts *o);

/* 'kbuild sign module …' (modsign_cmd.c) */
int kb_sign_main(int argc, char **argv);
int kb_sign_help(const char *sub, FILE *out);

#endif

/* Private to builder/: the key directory. Signing keys are secrets: they
 * live in a directory outside the store (mode 0700, private keys 0600) and
 * never enter the store, a bundle, a manifest or a log. Two kinds:
 *  - x509: a Machine Owner Key for module signing (NAME.crt, NAME.key);
 *  - openpgp: a repository and RPM signing key (NAME.pgp.pub, NAME.pgp.sec).
 * The directory: --keys DIR, else $KBUILD_KEYS, else
 * $XDG_CONFIG_HOME/kbuild/keys (~/.config/kbuild/keys). */
#ifndef KB_BUILDER_KEY_H
#define KB_BUILDER_KEY_H

#include "../common/common.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>

/* --keys DIR, for this process */
void kb_key_set_dir(const char *dir);
/* the key directory (malloc'd) */
char *kb_key_dir(void);

/* An X.509 key: the certificate, and the private key unless pkey is NULL
 * (refused when its file is readable by group or others). */
KB_MUST kb_err *kb_key_x509(const char *name, X509 **cert, EVP_PKEY **pkey);
/* An OpenPGP key: the armored public key, and the secret key unless sec
 * is NULL (same permission rule). */
KB_MUST kb_err *kb_key_pgp(const char *name, kb_buf *pub, kb_buf *sec);

/* 'kbuild key …' */
int kb_key_main(int argc, char **argv);
int kb_key_help(const char *sub, FILE *out);

#endif

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
/* 1 if key name has its public half in the key directory (NAME.crt, or
 * NAME.pgp.pub with openpgp): made already, not to be made on first use */
int kb_key_exists(const char *name, int openpgp);

/* ---- between key.c, key_new.c and key_cmd.c ---- */
#define KB_KEY_NAME_MAX 64
/* every file a key NAME may have: NAME + suffix (NULL-ended) */
extern const char *const kb_key_suffixes[];
/* letters, digits, '._+-', not starting with '.' or '-' (a usage error) */
KB_MUST kb_err *kb_key_check_name(const char *name);

typedef struct {
	int fd;
	char *path;
} kb_key_dirh;
/* the key directory, made (mode 0700) with create; with create it is
 * refused when group or others may enter it */
KB_MUST kb_err *kb_key_open_dir(int create, kb_key_dirh *d);
void kb_key_close_dir(kb_key_dirh *d);
/* a new file in the directory: created with O_EXCL and its mode from the
 * start (0600 for secrets), written, synced; never replaces a file */
KB_MUST kb_err *kb_key_write_new(const kb_key_dirh *d, const char *file, const void *p,
				 size_t n, mode_t mode);
/* a key file (no symlink); with secret, refused when group or others may
 * read it */
KB_MUST kb_err *kb_key_read(const kb_key_dirh *d, const char *file, int secret, kb_buf *out);
/* overwrites a buffer that held a secret, then frees it */
void kb_key_buf_wipe(kb_buf *b);

/* makes a key NAME (key_new.c); refused if any file of NAME exists */
KB_MUST kb_err *kb_key_new_x509(const char *name, const char *subject);
KB_MUST kb_err *kb_key_new_pgp(const char *name, const char *userid);

/* 'kbuild key …' (key_cmd.c) */
int kb_key_main(int argc, char **argv);
int kb_key_help(const char *sub, FILE *out);

#endif

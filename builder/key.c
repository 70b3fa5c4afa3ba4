/* The key directory: where it is, its names, and reading and writing its
 * files with the permissions secrets need. Making keys is key_new.c; the
 * commands are key_cmd.c. */
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the most a key file may be; real ones are a few KiB */
#define KEY_FILE_MAX (1u << 20)

static char *keys_dir;

void kb_key_set_dir(const char *dir)
{
	free(keys_dir);
	keys_dir = kb_strdup(dir);
}

char *kb_key_dir(void)
{
	if (keys_dir)
		return kb_strdup(keys_dir);
	const char *e = getenv("KBUILD_KEYS");
	if (e && *e)
		return kb_strdup(e);
	const char *x = getenv("XDG_CONFIG_HOME");
	if (x && *x == '/')
		return kb_asprintf("%s/kbuild/keys", x);
	const char *h = getenv("HOME");
	return kb_asprintf("%s/.config/kbuild/keys", h && *h ? h : "/");
}

const char *const kb_key_suffixes[] = {".crt", ".der", ".key", ".pgp.pub", ".pgp.sec", NULL};

kb_err *kb_key_check_name(const char *name)
{
	size_t n = strlen(name);
	int bad = !n || n > KB_KEY_NAME_MAX || name[0] == '.' || name[0] == '-';
	for (size_t i = 0; i < n && !bad; i++)
		bad = !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-",
			      name[i]);
	if (!bad)
		return NULL;
	char *q = kb_quote(name, n);
	kb_err *e = kb_usage("'%s' is not a key name: use up to %d letters, digits and '._+-', "
			     "not starting with '.' or '-'",
			     q, KB_KEY_NAME_MAX);
	free(q);
	return e;
}

kb_err *kb_key_open_dir(int create, kb_key_dirh *d)
{
	d->path = kb_key_dir();
	d->fd = -1;
	kb_err *err = NULL;
	if (create)
		err = kb_mkdir_p(d->path, 0700);
	if (!err && (d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = errno == ENOENT && !create
			      ? kb_errf("there is no key directory %s (make a key with 'kbuild key "
					"new NAME', or name the directory with --keys DIR)",
					d->path)
			      : kb_errno(errno, "cannot open the key directory %s", d->path);
	struct stat st;
	if (!err && create && fstat(d->fd, &st) == 0 && (st.st_mode & 077))
		err = kb_errf("the key directory %s may be entered by group or others (mode "
			      "%04o): run 'chmod 700 %s' before putting keys in it",
			      d->path, (unsigned)(st.st_mode & 07777), d->path);
	if (err)
		kb_key_close_dir(d);
	return err;
}

void kb_key_close_dir(kb_key_dirh *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->path);
	d->path = NULL;
}

kb_err *kb_key_write_new(const kb_key_dirh *d, const char *file, const void *p, size_t n,
			 mode_t mode)
{
	/* created with its final mode or less (umask), never replacing anything */
	int fd = openat(d->fd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST ? kb_errf("%s/%s exists already; kbuild never overwrites a "
						 "key (choose another name, or remove it yourself)",
						 d->path, file)
				       : kb_errno(errno, "cannot create %s/%s", d->path, file);
	char *what = kb_asprintf("%s/%s", d->path, file);
	kb_err *err = NULL;
	if (fchmod(fd, mode) < 0)
		err = kb_errno(errno, "cannot set the mode of %s", what);
	if (!err)
		err = kb_write_all(fd, p, n, what);
	if (!err && fsync(fd) < 0)
		err = kb_errno(errno, "cannot sync %s", what);
	if (close(fd) < 0 && !err)
		err = kb_errno(errno, "cannot close %s", what);
	if (err)
		unlinkat(d->fd, file, 0);
	free(what);
	return err;
}

kb_err *kb_key_read(const kb_key_dirh *d, const char *file, int secret, kb_buf *out)
{
	int fd = openat(d->fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot open %s/%s", d->path, file);
	struct stat st;
	kb_err *err = NULL;
	if (fstat(fd, &st) < 0)
		err = kb_errno(errno, "cannot stat %s/%s", d->path, file);
	else if (!S_ISREG(st.st_mode))
		err = kb_errf("%s/%s is not a regular file", d->path, file);
	else if (secret && (st.st_mode & 077))
		/* as ssh does: a secret others could have read is not used */
		err = kb_errf("the private key %s/%s may be read by group or others (mode %04o): "
			      "kbuild refuses to use it; run 'chmod 600 %s/%s' (and consider the "
			      "key exposed)",
			      d->path, file, (unsigned)(st.st_mode & 07777), d->path, file);
	else if ((uint64_t)st.st_size > KEY_FILE_MAX)
		err = kb_errf("%s/%s is too large for a key (%lld bytes)", d->path, file,
			      (long long)st.st_size);
	if (!err) {
		/* sized up front: growing would leave copies of a secret in freed memory */
		if (out->cap < (size_t)st.st_size + 1) {
			kb_key_buf_wipe(out);
			out->cap = (size_t)st.st_size + 1;
			out->p = kb_malloc(out->cap);
		}
		char tmp[4096];
		size_t got;
		out->len = 0;
		do {
			if ((err = kb_read_full(fd, tmp, sizeof tmp, &got, file)))
				break;
			kb_buf_add(out, tmp, got);
		} while (got == sizeof tmp && out->len <= KEY_FILE_MAX);
		OPENSSL_cleanse(tmp, sizeof tmp);
	}
	close(fd);
	return err;
}

void kb_key_buf_wipe(kb_buf *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	kb_buf_free(b);
}

/* NAME.SUFFIX of the key, or why not */
static kb_err *key_file(const kb_key_dirh *d, const char *name, const char *suffix,
			int secret, kb_buf *out)
{
	char *file = kb_asprintf("%s%s", name, suffix);
	kb_err *err = NULL;
	if (faccessat(d->fd, file, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		err = kb_errf("there is no key '%s' in %s (no %s; 'kbuild key list' shows the "
			      "keys, 'kbuild key new %s%s' makes one)",
			      name, d->path, file, !strcmp(suffix, ".crt") || !strcmp(suffix, ".key")
						     ? "" : "--openpgp ", name);
	else
		err = kb_key_read(d, file, secret, out);
	free(file);
	return err;
}

kb_err *kb_key_x509(const char *name, X509 **cert, EVP_PKEY **pkey)
{
	*cert = NULL;
	if (pkey)
		*pkey = NULL;
	kb_err *err = kb_key_check_name(name);
	kb_key_dirh d;
	if (err || (err = kb_key_open_dir(0, &d)))
		return err;
	kb_buf b = {0};
	if (!(err = key_file(&d, name, ".crt", 0, &b))) {
		BIO *bio = BIO_new_mem_buf(b.p, (int)b.len);
		if (!bio || !(*cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
			err = kb_errf("%s/%s.crt is not a PEM certificate", d.path, name);
		BIO_free(bio);
	}
	if (!err && pkey && !(err = key_file(&d, name, ".key", 1, &b))) {
		BIO *bio = BIO_new_mem_buf(b.p, (int)b.len);
		/* no passphrase callback: kbuild's keys have none, and a build
		 * never waits for a terminal */
		if (!bio || !(*pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"")))
			err = kb_errf("%s/%s.key is not an unencrypted PEM private key", d.path,
				      name);
		else if (X509_check_private_key(*cert, *pkey) != 1)
			err = kb_errf("%s/%s.key is not the private key of %s/%s.crt", d.path, name,
				      d.path, name);
		BIO_free(bio);
	}
	kb_key_buf_wipe(&b);
	if (err) {
		X509_free(*cert);
		*cert = NULL;
		if (pkey) {
			EVP_PKEY_free(*pkey);
			*pkey = NULL;
		}
	}
	kb_key_close_dir(&d);
	return err;
}

int kb_key_exists(const char *name, int openpgp)
{
	char *dir = kb_key_dir();
	char *path = kb_asprintf("%s/%s%s", dir, name, openpgp ? ".pgp.pub" : ".crt");
	int there = access(path, F_OK) == 0 || errno != ENOENT;
	free(path);
	free(dir);
	return there;
}

kb_err *kb_key_pgp(const char *name, kb_buf *pub, kb_buf *sec)
{
	kb_err *err = kb_key_check_name(name);
	kb_key_dirh d;
	if (err || (err = kb_key_open_dir(0, &d)))
		return err;
	static const char armor[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
	if (!(err = key_file(&d, name, ".pgp.pub", 0, pub)) &&
	    (pub->len < sizeof armor - 1 || memcmp(pub->p, armor, sizeof armor - 1)))
		err = kb_errf("%s/%s.pgp.pub is not an armored OpenPGP public key", d.path, name);
	if (!err && sec)
		err = key_file(&d, name, ".pgp.sec", 1, sec);
	if (err && sec)
		kb_key_buf_wipe(sec);
	kb_key_close_dir(&d);
	return err;
}

/* 'kbuild key new|list|export': the key directory from the command line.
 * Only public parts are ever printed. */
#include "../mirror/mirror.h"
#include "key.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const usage_new = "key new [--subject TEXT] [--openpgp] NAME";
static const char *const usage_list = "key list";
static const char *const usage_export = "key export [--pem|--der] [--out FILE] NAME";

int kb_key_help(const char *sub, FILE *out)
{
	int all = !sub;
	if (all)
		fprintf(out, "Signing keys live in the key directory (--keys DIR, else $KBUILD_KEYS, "
			     "else\n$XDG_CONFIG_HOME/kbuild/keys, else ~/.config/kbuild/keys), "
			     "mode 0700, private\nkeys mode 0600. They never enter the store, a "
			     "bundle or a log.\n\n");
	if (all || !strcmp(sub, "new"))
		fprintf(out,
			"usage: kbuild %s\n\n"
			"Makes a key NAME. By default an X.509 Machine Owner Key for kernel module\n"
			"signing: RSA 4096, self-signed with SHA-256, valid for 100 years, with the\n"
			"extensions of the kernel's own module signing key plus codeSigning; files\n"
			"NAME.crt (PEM), NAME.der (for 'mokutil --import') and NAME.key (0600).\n"
			"--subject TEXT is its common name (default \"kbuild module signing key NAME\").\n"
			"--openpgp makes an OpenPGP RSA 4096 signing key for repositories and RPMs\n"
			"instead: NAME.pgp.pub (armored) and NAME.pgp.sec (0600, no passphrase);\n"
			"--subject is then its user id. An existing key is never overwritten.\n",
			usage_new);
	if (all)
		fputc('\n', out);
	if (all || !strcmp(sub, "list"))
		fprintf(out,
			"usage: kbuild %s\n\n"
			"One line per key: NAME KIND FINGERPRINT SUBJECT. KIND is x509 or openpgp\n"
			"(with \"(public)\" when the private part is not there); FINGERPRINT is the\n"
			"SHA-256 of the certificate's DER (x509) or the OpenPGP fingerprint.\n",
			usage_list);
	if (all)
		fputc('\n', out);
	if (all || !strcmp(sub, "export"))
		fprintf(out,
			"usage: kbuild %s\n\n"
			"Writes the PUBLIC part of key NAME to standard output or FILE: the\n"
			"certificate as PEM (default) or DER, or the armored OpenPGP public key.\n",
			usage_export);
	return all || !strcmp(sub, "new") || !strcmp(sub, "list") || !strcmp(sub, "export");
}

static kb_err *cmd_new(int argc, char **argv)
{
	static const struct option lo[] = {{"subject", required_argument, NULL, 's'},
					   {"openpgp", no_argument, NULL, 'p'},
					   {0}};
	const char *subject = NULL;
	int pgp = 0, c;
	kb_err *err = NULL;
	optind = 0;
	while (!err && (c = kb_getopt(argc, argv, "", lo, "key new", &err)) > 0) {
		if (c == 's')
			subject = optarg;
		else
			pgp = 1;
	}
	if (err)
		return err;
	if (argc - optind != 1)
		return kb_usage("kbuild key new: give one NAME (usage: kbuild %s)", usage_new);
	const char *name = argv[optind];
	if ((err = kb_key_check_name(name)))
		return err;
	if (subject && !*subject)
		return kb_usage("kbuild key new: --subject must not be empty");
	char *def = pgp ? kb_asprintf("kbuild signing key %s", name)
			: kb_asprintf("kbuild module signing key %s", name);
	const char *subj = subject ? subject : def;
	err = pgp ? kb_key_new_pgp(name, subj) : kb_key_new_x509(name, subj);
	if (!err) {
		char *dir = kb_key_dir();
		if (pgp)
			printf("%s/%s.pgp.pub\n", dir, name);
		else
			printf("%s/%s.crt\n%s/%s.der\n", dir, name, dir, name);
		free(dir);
	}
	free(def);
	return err;
}

static char *hex_sha256(const void *p, size_t n)
{
	kb_hash h;
	kb_sha256(p, n, &h);
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&h, hex);
	return kb_strdup(hex);
}

/* the line of an X.509 key */
static kb_err *list_x509(const char *name, int private_there)
{
	X509 *cert;
	kb_err *err = kb_key_x509(name, &cert, NULL);
	if (err)
		return err;
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);
	char *fpr = n > 0 ? hex_sha256(der, (size_t)n) : kb_strdup("?");
	BIO *bio = BIO_new(BIO_s_mem());
	char *subj = NULL;
	long sn = 0;
	if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0)
		sn = BIO_get_mem_data(bio, &subj);
	printf("%s x509%s %s %.*s\n", name, private_there ? "" : "(public)", fpr, (int)sn,
	       sn > 0 ? subj : "");
	BIO_free(bio);
	free(fpr);
	OPENSSL_free(der);
	X509_free(cert);
	return NULL;
}

static kb_err *list_pgp(const char *name, int private_there)
{
	kb_buf pub = {0};
	char *fpr = NULL, *uid = NULL;
	kb_err *err = kb_key_pgp(name, &pub, NULL);
	if (!err && (err = kb_pgp_key_info(&pub, &fpr, &uid, NULL)))
		err = kb_err_wrap(err, "the OpenPGP key '%s'", name);
	if (!err)
		printf("%s openpgp%s %s %s\n", name, private_there ? "" : "(public)", fpr, uid);
	free(fpr);
	free(uid);
	kb_buf_free(&pub);
	return err;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix, size_t *stem)
{
	size_t n = strlen(s), m = strlen(suffix);
	*stem = n - m;
	return n > m && !strcmp(s + n - m, suffix);
}

static kb_err *cmd_list(int argc, char **argv)
{
	kb_err *err = NULL;
	optind = 0;
	while (!err && kb_getopt(argc, argv, "", NULL, "key list", &err) > 0)
		;
	if (err)
		return err;
	if (argc - optind != 0)
		return kb_usage("kbuild key list: takes no arguments (usage: kbuild %s)", usage_list);
	kb_key_dirh d;
	char *dir = kb_key_dir();
	if (access(dir, F_OK) < 0 && errno == ENOENT) {
		kb_info("no keys: there is no key directory %s", dir);
		free(dir);
		return NULL;
	}
	free(dir);
	if ((err = kb_key_open_dir(0, &d)))
		return err;
	DIR *dp = NULL;
	if ((err = kb_opendir_at(d.fd, ".", &dp))) {
		kb_key_close_dir(&d);
		return err;
	}
	/* a key is its public file: NAME.crt or NAME.pgp.pub */
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		size_t stem;
		int x = ends_with(e->d_name, ".crt", &stem);
		if (!x && !ends_with(e->d_name, ".pgp.pub", &stem))
			continue;
		char *nm = kb_strndup(e->d_name, stem);
		kb_err *bad = kb_key_check_name(nm);
		if (!bad) {
			if (n == cap)
				names = kb_realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
			names[n++] = kb_asprintf("%s%c", nm, x ? 'x' : 'p');
		}
		kb_err_free(bad);
		free(nm);
	}
	closedir(dp);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		char kind = names[i][len - 1];
		names[i][len - 1] = 0;
		char *priv = kb_asprintf("%s%s", names[i], kind == 'x' ? ".key" : ".pgp.sec");
		int there = faccessat(d.fd, priv, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		free(priv);
		kb_err *le = kind == 'x' ? list_x509(names[i], there) : list_pgp(names[i], there);
		if (le) {
			/* one damaged key does not hide the others */
			kb_warn("%s", le->msg);
			kb_err_free(le);
			if (!err)
				err = kb_errf("some keys in %s could not be read (see above)", d.path);
		}
		free(names[i]);
	}
	free(names);
	kb_key_close_dir(&d);
	return err;
}

static kb_err *write_out(const char *out, const kb_buf *b)
{
	if (!out)
		return kb_write_all(STDOUT_FILENO, b->p, b->len, "standard output");
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return kb_errno(errno, "cannot create %s", out);
	kb_err *err = kb_write_all(fd, b->p, b->len, out);
	if (!err && fsync(fd) < 0)
		err = kb_errno(errno, "cannot sync %s", out);
	if (close(fd) < 0 && !err)
		err = kb_errno(errno, "cannot close %s", out);
	return err;
}

static kb_err *cmd_export(int argc, char **argv)
{
	static const struct option lo[] = {{"pem", no_argument, NULL, 'p'},
					   {"der", no_argument, NULL, 'd'},
					   {"out", required_argument, NULL, 'o'},
					   {0}};
	int der = -1, c;
	const char *out = NULL;
	kb_err *err = NULL;
	optind = 0;
	while (!err && (c = kb_getopt(argc, argv, "o:", lo, "key export", &err)) > 0) {
		if (c == 'o')
			out = optarg;
		else
			der = c == 'd';
	}
	if (err)
		return err;
	if (argc - optind != 1)
		return kb_usage("kbuild key export: give one NAME (usage: kbuild %s)", usage_export);
	const char *name = argv[optind];
	if ((err = kb_key_check_name(name)))
		return err;
	kb_key_dirh d;
	if ((err = kb_key_open_dir(0, &d)))
		return err;
	char *crt = kb_asprintf("%s.crt", name);
	int x509 = faccessat(d.fd, crt, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	free(crt);
	kb_key_close_dir(&d);
	kb_buf b = {0};
	if (x509) {
		/* re-encoded from the parsed certificate: only a certificate can come out */
		X509 *cert;
		if (!(err = kb_key_x509(name, &cert, NULL))) {
			unsigned char *p = NULL;
			int n = 0;
			if (der == 1) {
				n = i2d_X509(cert, &p);
				if (n > 0)
					kb_buf_add(&b, p, (size_t)n);
				OPENSSL_free(p);
			} else {
				BIO *bio = BIO_new(BIO_s_mem());
				char *data;
				if (bio && PEM_write_bio_X509(bio, cert) &&
				    (n = (int)BIO_get_mem_data(bio, &data)) > 0)
					kb_buf_add(&b, data, (size_t)n);
				BIO_free(bio);
			}
			if (n <= 0)
				err = kb_errf("cannot encode the certificate of key '%s'", name);
			X509_free(cert);
		}
	} else if (der == 1) {
		err = kb_usage("kbuild key export: '%s' is not an X.509 key; --der is for "
			       "certificates",
			       name);
	} else {
		err = kb_key_pgp(name, &b, NULL);
	}
	if (!err)
		err = write_out(out, &b);
	kb_buf_free(&b);
	return err;
}

int kb_key_main(int argc, char **argv)
{
	kb_err *err;
	if (argc < 1)
		err = kb_usage("kbuild key: missing command: new, list or export (see 'kbuild help "
			       "key')");
	else if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
		 (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))) {
		const char *sub = argv[0];
		if (strcmp(sub, "new") && strcmp(sub, "list") && strcmp(sub, "export"))
			sub = NULL;
		kb_key_help(sub, stdout);
		return 0;
	} else if (!strcmp(argv[0], "new"))
		err = cmd_new(argc, argv);
	else if (!strcmp(argv[0], "list"))
		err = cmd_list(argc, argv);
	else if (!strcmp(argv[0], "export"))
		err = cmd_export(argc, argv);
	else
		err = kb_usage("kbuild key: unknown command '%s' (new, list or export)", argv[0]);
	return kb_exit_status(err);
}

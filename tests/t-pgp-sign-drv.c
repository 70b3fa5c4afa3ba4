/* For t-pgp-sign.sh, which compiles it against the kbuild library under
 * test: OpenPGP key generation, signing and verification through the
 * library itself (mirror/pgp_sign.c, mirror/pgp.c).
 *
 *   t-pgp-sign-drv keygen USERID SEC PUB
 *   t-pgp-sign-drv sign SEC FILE TIME binary|armor|clear OUT
 *   t-pgp-sign-drv verify-clear PUB FILE     (the signed text on stdout)
 *   t-pgp-sign-drv verify-detached PUB FILE SIG
 *
 * verify-* print "signer FINGERPRINT" on stderr. Errors go to stderr with
 * their exit status. */
#include "../mirror/mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kb_err *load(const char *path, kb_buf *b)
{
	return kb_read_file(AT_FDCWD, path, 256u << 20, b);
}

static kb_err *save(const char *path, const kb_buf *b, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return kb_errno(errno, "cannot create %s", path);
	kb_err *err = kb_write_all(fd, b->p, b->len, path);
	close(fd);
	return err;
}

static int usage(void)
{
	fprintf(stderr, "usage: t-pgp-sign-drv keygen USERID SEC PUB | sign SEC FILE TIME "
			"binary|armor|clear OUT | verify-clear PUB FILE | "
			"verify-detached PUB FILE SIG\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	kb_buf a = {0}, b = {0}, c = {0};
	char *signer = NULL;
	kb_err *err = NULL;
	if (!strcmp(cmd, "keygen") && argc == 5) {
		if (!(err = kb_pgp_keygen(argv[2], &a, &b)) && !(err = save(argv[3], &a, 0600)))
			err = save(argv[4], &b, 0644);
	} else if (!strcmp(cmd, "sign") && argc == 7) {
		const char *m = argv[5];
		kb_pgp_mode mode = !strcmp(m, "binary") ? KB_PGP_DETACHED
				   : !strcmp(m, "armor") ? KB_PGP_DETACHED_ARMOR
				   : !strcmp(m, "clear") ? KB_PGP_CLEARSIGN
							 : (kb_pgp_mode)99;
		if (!(err = load(argv[2], &a)) && !(err = load(argv[3], &b)) &&
		    !(err = kb_pgp_sign(&a, b.p, b.len, strtoll(argv[4], NULL, 10), mode, &c)))
			err = save(argv[6], &c, 0644);
	} else if (!strcmp(cmd, "verify-clear") && argc == 4) {
		if (!(err = load(argv[2], &a)) && !(err = load(argv[3], &b)) &&
		    !(err = kb_pgp_verify_clearsigned(&a, &b, &c, &signer)))
			err = kb_write_all(STDOUT_FILENO, c.p, c.len, "stdout");
	} else if (!strcmp(cmd, "verify-detached") && argc == 5) {
		if (!(err = load(argv[2], &a)) && !(err = load(argv[3], &b)) &&
		    !(err = load(argv[4], &c)))
			err = kb_pgp_verify_detached(&a, &b, &c, &signer);
	} else {
		return usage();
	}
	if (signer)
		fprintf(stderr, "signer %s\n", signer);
	free(signer);
	kb_buf_free(&a);
	kb_buf_free(&b);
	kb_buf_free(&c);
	if (err) {
		fprintf(stderr, "%s\n", err->msg);
		int code = err->code;
		kb_err_free(err);
		return code;
	}
	return 0;
}

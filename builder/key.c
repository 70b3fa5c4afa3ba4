/* The key directory: making, listing and loading signing keys. */
#include "key.h"

#include <stdlib.h>

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

kb_err *kb_key_x509(const char *name, X509 **cert, EVP_PKEY **pkey)
{
	(void)cert, (void)pkey;
	return kb_errf("key '%s': X.509 keys are not implemented yet", name);
}

kb_err *kb_key_pgp(const char *name, kb_buf *pub, kb_buf *sec)
{
	(void)pub, (void)sec;
	return kb_errf("key '%s': OpenPGP keys are not implemented yet", name);
}

int kb_key_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	fprintf(stderr, "kbuild key: not implemented yet\n");
	return 1;
}

int kb_key_help(const char *sub, FILE *out)
{
	(void)sub;
	fprintf(out, "usage: kbuild key new NAME\n");
	return 1;
}

/* 'kbuild sign module': kernel module signatures from the command line. */
#include "key.h"
#include "modsign.h"

#include <getopt.h>
#include <string.h>

static const char *const usage_module =
	"sign module --key NAME [--hash sha256|sha384|sha512] [--detached] [--replace] IN OUT\n"
	"       kbuild sign module --attach SIG [--replace] IN OUT";

int kb_sign_help(const char *sub, FILE *out)
{
	if (sub && strcmp(sub, "module"))
		return 0;
	fprintf(out,
		"usage: kbuild %s\n\n"
		"Signs the kernel module IN with the X.509 key NAME of the key directory\n"
		"('kbuild key new NAME'), writing the signed module to OUT: the same bytes\n"
		"the kernel's scripts/sign-file makes with that key and hash (default sha256).\n"
		"  --detached   OUT is only the signature (a DER CMS, like 'sign-file -d')\n"
		"  --attach SIG appends the detached signature SIG to IN (like 'sign-file -s'):\n"
		"               no key needed, so anyone who rebuilds the unsigned module can\n"
		"               reproduce the published signed one byte for byte\n"
		"  --replace    IN may be signed already: its signature is dropped first\n"
		"Refused: IN not an ELF file, IN signed already (without --replace), a private\n"
		"key that group or others may read.\n",
		usage_module);
	return 1;
}

static kb_err *cmd_module(int argc, char **argv)
{
	static const struct option lo[] = {{"key", required_argument, NULL, 'k'},
					   {"hash", required_argument, NULL, 'H'},
					   {"detached", no_argument, NULL, 'd'},
					   {"attach", required_argument, NULL, 'a'},
					   {"replace", no_argument, NULL, 'r'},
					   {0}};
	const char *key = NULL, *attach = NULL;
	int detached = 0, c;
	kb_modsign_opts o = {0};
	kb_err *err = NULL;
	optind = 0;
	while (!err && (c = kb_getopt(argc, argv, "", lo, "sign module", &err)) > 0) {
		if (c == 'k')
			key = optarg;
		else if (c == 'H')
			o.hash = optarg;
		else if (c == 'd')
			detached = 1;
		else if (c == 'a')
			attach = optarg;
		else
			o.replace = 1;
	}
	if (err)
		return err;
	if (argc - optind != 2)
		return kb_usage("kbuild sign module: give IN and OUT (usage: kbuild %s)",
				usage_module);
	if (attach && (key || detached || o.hash))
		return kb_usage("kbuild sign module: --attach takes no --key, --hash or --detached "
				"(the signature is made already)");
	if (!attach && !key)
		return kb_usage("kbuild sign module: give --key NAME (or --attach SIG)");
	if ((err = kb_modsign_check_hash(o.hash)))
		return kb_err_wrap(err, "kbuild sign module: --hash");
	const char *in = argv[optind], *out = argv[optind + 1];
	if (attach)
		return kb_modsign_attach(in, attach, out, &o);
	X509 *cert;
	EVP_PKEY *pkey;
	if ((err = kb_key_x509(key, &cert, &pkey)))
		return err;
	err = kb_modsign_sign(in, out, detached, cert, pkey, &o);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return err;
}

int kb_sign_main(int argc, char **argv)
{
	kb_err *err;
	if (argc < 1)
		err = kb_usage("kbuild sign: missing command: module (see 'kbuild help sign')");
	else if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
		 (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))) {
		kb_sign_help(NULL, stdout);
		return 0;
	} else if (!strcmp(argv[0], "module"))
		err = cmd_module(argc, argv);
	else
		err = kb_usage("kbuild sign: unknown command '%s' (module)", argv[0]);
	return kb_exit_status(err);
}

/* kbuild's entry point: global options, then one part's commands. */
#include "../store/store.h"
#include "fetch.h"
#include "image.h"
#include "key.h"
#include "modsign.h"
#include "pkg.h"
#include "recipe.h"
#include "rootfs.h"
#include "sandbox.h"
#include "../verify/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kbuild [--store DIR] [-q|-v] COMMAND ...\n\n"
		"kbuild builds reproducible artifacts from inputs held in a content-addressed\n"
		"store.\n\n"
		"Commands:\n");
	kb_store_summary(out);
	fprintf(out,
		"  kbuild lock [--offline] NAME\n"
		"  kbuild recipe [--offline] NAME\n"
		"  kbuild upstreams NAME\n"
		"  kbuild mirror sync|closure|download|publish ...\n"
		"  kbuild fetch url URL SHA256 ...\n"
		"  kbuild fetch git URL COMMIT\n"
		"  kbuild buildroot [--checkout DIR] PACKAGE...\n"
		"  kbuild package deb|rpm --name NAME --version V [OPTIONS] TREE\n"
		"  kbuild initramfs assemble|write ...\n"
		"  kbuild iso --kernel PKG --initramfs TREE --grub-root TREE [OPTIONS]\n"
		"  kbuild sandbox --root DIR [OPTIONS] -- CMD [ARG]...\n"
		"  kbuild key new|list|export ...   signing keys (outside the store)\n"
		"  kbuild sign module --key NAME IN OUT   kernel module signatures\n"
		"  kbuild diff [--json] [--max N] A B\n"
		"  kbuild verify [--bundle FILE] MANIFEST   rebuild from a manifest, compare\n"
		"  kbuild help [COMMAND ...]\n\n"
		"Options:\n"
		"  --store DIR   the store to use (default: $KBUILD_STORE, else\n"
		"                $XDG_DATA_HOME/kbuild/store, else ~/.local/share/kbuild/store)\n"
		"  --keys DIR    the key directory (default: $KBUILD_KEYS, else\n"
		"                $XDG_CONFIG_HOME/kbuild/keys, else ~/.config/kbuild/keys)\n"
		"  --mirror NAME=URL  where upstream NAME is (repeatable); overrides the\n"
		"                config file and the host's apt sources\n"
		"  -q, --quiet   only errors on stderr\n"
		"  -v, --verbose more detail on stderr\n"
		"  --version     print the version\n"
		"  -h, --help    this text\n");
}

static int help(int argc, char **argv)
{
	if (argc == 0) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[0], "store") && kb_store_help(argc > 1 ? argv[1] : NULL, stdout))
		return 0;
	if (!strcmp(argv[0], "mirror") && kb_mirror_help(argc > 1 ? argv[1] : NULL, stdout))
		return 0;
	if (!strcmp(argv[0], "fetch") && kb_fetch_help(argc > 1 ? argv[1] : NULL, stdout))
		return 0;
	if (!strcmp(argv[0], "buildroot") && kb_rootfs_help(stdout))
		return 0;
	if (!strcmp(argv[0], "package") && kb_pkg_help(stdout))
		return 0;
	if (!strcmp(argv[0], "initramfs") && kb_initramfs_help(stdout))
		return 0;
	if (!strcmp(argv[0], "iso") && kb_iso_help(stdout))
		return 0;
	if (!strcmp(argv[0], "key") && kb_key_help(argc > 1 ? argv[1] : NULL, stdout))
		return 0;
	if (!strcmp(argv[0], "sign") && kb_sign_help(argc > 1 ? argv[1] : NULL, stdout))
		return 0;
	if (!strcmp(argv[0], "diff") && kb_diff_help(stdout))
		return 0;
	if (!strcmp(argv[0], "verify") && kb_verify_help(stdout))
		return 0;
	if (!strcmp(argv[0], "sandbox") && kb_sandbox_help(stdout))
		return 0;
	if (kb_recipe_help(argv[0], stdout))
		return 0;
	if (!strcmp(argv[0], "help")) {
		printf("usage: kbuild help [COMMAND [SUBCOMMAND]]\n");
		return 0;
	}
	fprintf(stderr, "kbuild: no help for '%s%s%s' (see 'kbuild --help')\n", argv[0],
		argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
	return 2;
}

int main(int argc, char **argv)
{
	const char *store = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("kbuild %s\n", KB_VERSION);
			return 0;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			kb_log_level = KB_LOG_QUIET;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			kb_log_level = KB_LOG_DEBUG;
		} else if (!strcmp(a, "--mirror") || !strncmp(a, "--mirror=", 9)) {
			const char *spec = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
			kb_err *err = spec ? kb_mirror_add(spec)
					   : kb_usage("option '--mirror' needs NAME=URL");
			if (err) {
				fprintf(stderr, "kbuild: %s\n", err->msg);
				kb_err_free(err);
				return 2;
			}
		} else if (!strcmp(a, "--keys") || !strncmp(a, "--keys=", 7)) {
			const char *d = a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
			if (!d || !*d) {
				fprintf(stderr, "kbuild: option '--keys' needs a directory\n");
				return 2;
			}
			kb_key_set_dir(d);
		} else if (!strcmp(a, "--store") || !strncmp(a, "--store=", 8)) {
			if (a[7] == '=')
				store = a + 8;
			else if (i + 1 < argc)
				store = argv[++i];
			else {
				fprintf(stderr, "kbuild: option '--store' needs a directory\n");
				return 2;
			}
			if (!*store) {
				fprintf(stderr, "kbuild: option '--store' needs a directory\n");
				return 2;
			}
		} else {
			fprintf(stderr, "kbuild: unknown option '%s' (see 'kbuild --help')\n", a);
			return 2;
		}
	}
	if (i == argc) {
		fprintf(stderr, "kbuild: missing command (see 'kbuild --help')\n");
		return 2;
	}
	const char *cmd = argv[i];
	if (!strcmp(cmd, "help"))
		return help(argc - i - 1, argv + i + 1);
	if (!strcmp(cmd, "sandbox"))
		return kb_sandbox_main(argc - i - 1, argv + i + 1);
	if (!strcmp(cmd, "key"))
		return kb_key_main(argc - i - 1, argv + i + 1);
	if (!strcmp(cmd, "sign"))
		return kb_sign_main(argc - i - 1, argv + i + 1);
	if (!strcmp(cmd, "lock") || !strcmp(cmd, "recipe") || !strcmp(cmd, "upstreams")) {
		char *dir = store ? kb_strdup(store) : kb_store_default_path();
		int rc = kb_recipe_main(cmd, dir, argc - i - 1, argv + i + 1);
		free(dir);
		kb_mirror_clear();
		return rc;
	}
	int (*part)(const char *, int, char **) = !strcmp(cmd, "store")    ? kb_store_main
						  : !strcmp(cmd, "mirror") ? kb_mirror_main
						  : !strcmp(cmd, "fetch")  ? kb_fetch_main
						  : !strcmp(cmd, "buildroot") ? kb_rootfs_main
						  : !strcmp(cmd, "package")   ? kb_pkg_main
						  : !strcmp(cmd, "diff")      ? kb_diff_main
						  : !strcmp(cmd, "initramfs") ? kb_initramfs_main
						  : !strcmp(cmd, "iso")       ? kb_iso_main
						  : !strcmp(cmd, "verify")    ? kb_verify_main
									   : NULL;
	if (part) {
		char *dir = store ? kb_strdup(store) : kb_store_default_path();
		int rc = part(dir, argc - i - 1, argv + i + 1);
		free(dir);
		kb_mirror_clear();
		return rc;
	}
	fprintf(stderr, "kbuild: unknown command '%s' (see 'kbuild --help')\n", cmd);
	return 2;
}

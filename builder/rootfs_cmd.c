/* 'kbuild buildroot': a build root from packages, as a store tree. The
 * building block for roots made from recipe locks. */
#include "rootfs.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const usage_line =
	"buildroot [--ref NAME] [--checkout DIR] [--jobs N] PACKAGE...";

int kb_rootfs_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild %s\n\n"
		"Makes a build root from packages and prints its tree's hash. Each PACKAGE is\n"
		"the hash of a .deb or .rpm blob in the store, or the path of a .deb or .rpm\n"
		"file (added to the store first). Their payloads (data.tar.*, the rpm's cpio)\n"
		"are unpacked into one tree; no maintainer script runs. Modes are reduced to\n"
		"executable or not, owners dropped; bin, sbin, lib, lib64 are links to usr/...\n"
		"(merged /usr) and entries below them land in usr/. A few effects of\n"
		"maintainer scripts are reproduced: usr/bin/awk -> mawk, cc -> gcc, c++ -> g++\n"
		"(when those programs are there) and a minimal etc/passwd and etc/group.\n\n"
		"Refused, naming the package and the entry, with nothing stored: absolute\n"
		"paths, '..' components, writing through a symlink other than those links,\n"
		"two packages shipping the same path differently. Device nodes and fifos\n"
		"are skipped with a warning.\n\n"
		"The root of a set of packages is cached: the same set again (in any order)\n"
		"is found at once, without unpacking.\n\n"
		"  --ref NAME      also point ref NAME at the tree\n"
		"  --checkout DIR  check the tree out to DIR (hardlinks from the store; DIR\n"
		"                  must not exist or be empty)\n"
		"  --jobs N        unpack N packages at a time (default: one per CPU, at most 8)\n",
		usage_line);
	return 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* a hash of a stored blob, or a file to add first */
static kb_err *package_arg(kb_store *s, const char *arg, kb_hash *out)
{
	size_t len = strlen(arg);
	if (len == KB_HEX_LEN && !kb_hash_parse(arg, len, out)) {
		if (!kb_store_has(s, out))
			return kb_errf("package %s is not in the store %s (add it with 'kbuild "
				       "store add FILE', or give the file's path)",
				       arg, kb_store_path(s));
		return NULL;
	}
	struct stat st;
	if (stat(arg, &st) < 0)
		return kb_errno(errno, "package '%s' is neither a 64-digit hash nor a file", arg);
	if (!S_ISREG(st.st_mode))
		return kb_errf("package '%s' is not a regular file", arg);
	kb_txn *t;
	kb_oid o;
	kb_err *err = kb_txn_begin(s, &t);
	if (err)
		return err;
	if ((err = kb_txn_add_path(t, arg, &o))) {
		kb_txn_abort(t);
		return err;
	}
	*out = o.hash;
	return kb_txn_commit(t, &o, 1);
}

static kb_err *run(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"ref", required_argument, NULL, 'r'},
					   {"checkout", required_argument, NULL, 'c'},
					   {"jobs", required_argument, NULL, 'j'},
					   {"help", no_argument, NULL, 'h'},
					   {0}};
	const char *ref = NULL, *checkout = NULL;
	int jobs = 0, c;
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
		if (c == 'r')
			ref = optarg;
		else if (c == 'c')
			checkout = optarg;
		else if (c == 'j') {
			char *end;
			long j = strtol(optarg, &end, 10);
			if (*end || j < 1 || j > 64)
				return kb_usage("kbuild buildroot: --jobs takes a number from 1 to 64");
			jobs = (int)j;
		} else if (c == 'h') {
			kb_rootfs_help(stdout);
			return NULL;
		} else {
			return kb_usage("kbuild buildroot: %s '%s' (see 'kbuild help buildroot')",
					c == ':' ? "missing value for" : "unknown option",
					argv[optind - 1]);
		}
	}
	int n = argc - optind;
	if (n < 1)
		return kb_usage("kbuild buildroot: give at least one package (usage: kbuild %s)",
				usage_line);
	if (checkout && !*checkout)
		return kb_usage("kbuild buildroot: --checkout needs a directory");
	kb_err *err;
	if (ref && (err = kb_ref_check_name(ref)))
		return err;
	kb_store *s;
	if ((err = kb_store_open(dir, 1, &s)))
		return err;
	kb_hash *pkgs = kb_calloc((size_t)n, sizeof *pkgs);
	for (int i = 0; !err && i < n; i++)
		err = package_arg(s, argv[optind + i], &pkgs[i]);
	kb_hash tree;
	int cached = 0;
	kb_rootfs_stats st = {0};
	double t0 = now();
	if (!err)
		err = kb_rootfs_build(s, pkgs, NULL, (size_t)n, jobs, &tree, &cached, &st);
	double t1 = now();
	if (!err) {
		if (cached)
			kb_info("buildroot: cached (%d packages, %.3f s)", n, t1 - t0);
		else
			kb_info("buildroot: unpacked %zu packages: %zu files (%.1f MB), %zu "
				"symlinks, %zu directories%s in %.2f s",
				st.packages, st.files, (double)st.bytes / 1e6, st.symlinks, st.dirs,
				st.skipped ? " (special files skipped)" : "", t1 - t0);
	}
	kb_oid o = {KB_TREE, tree};
	if (!err && ref)
		err = kb_ref_update(s, ref, NULL, &o);
	if (!err && checkout) {
		double t2 = now();
		if (!(err = kb_store_checkout(s, &o, checkout, 0)))
			kb_info("buildroot: checked out to %s in %.3f s", checkout, now() - t2);
	}
	if (!err) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&tree, hex);
		printf("%s\n", hex);
	}
	free(pkgs);
	kb_store_close(s);
	return err;
}

int kb_rootfs_main(const char *dir, int argc, char **argv)
{
	/* argv[0] is the first argument after 'buildroot'; getopt wants a
	 * program name before it */
	char **av = kb_calloc((size_t)argc + 2, sizeof *av);
	static char name[] = "buildroot";
	av[0] = name;
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	kb_err *err = run(dir, argc + 1, av);
	free(av);
	return kb_exit_status(err);
}

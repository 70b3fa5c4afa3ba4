/* 'kbuild package deb|rpm': a store tree into a package blob (and file). */
#include "pkg.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCRIPT_MAX (1u << 20)

static const char *const usage_line =
	"package deb|rpm --name NAME --version V [OPTIONS] TREE";

int kb_pkg_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild %s\n\n"
		"Makes a package in the vendor's own format from the store tree TREE (a hash\n"
		"or a ref; its entries are the installed paths, e.g. lib/modules/...), stores\n"
		"it as a blob and prints its hash. The bytes depend only on the tree, the\n"
		"options and SOURCE_DATE_EPOCH: every time is that epoch, owners root/root,\n"
		"entries sorted, compression fixed (deb: xz -6; rpm: zstd -19), one thread.\n\n"
		"  --name NAME           package name (with --kmod: the module set, e.g. zfs)\n"
		"  --version V           upstream version\n"
		"  --release R           deb: Debian revision (Version V-R); rpm: Release (required)\n"
		"  --epoch N             version epoch\n"
		"  --arch A              deb: amd64, all, ...; rpm: x86_64, noarch, ...\n"
		"  --maintainer TEXT     deb: Maintainer (required); rpm: Packager\n"
		"  --summary TEXT        one line (required)\n"
		"  --description TEXT    longer text, may have several lines\n"
		"  --description-file F  the same, from a file\n"
		"  --license L           rpm: License (required)\n"
		"  --url URL             deb: Homepage; rpm: URL\n"
		"  --section S / --priority P   deb (default misc / optional)\n"
		"  --group G             rpm (default Unspecified)\n"
		"  --depends DEP         deb: one Depends item ('a (>= 1) | b'); rpm: one Requires\n"
		"                        ('name', 'name >= 1.0'); repeatable (also --requires)\n"
		"  --provides P, --conflicts C   the same syntax; repeatable\n"
		"  --postinst FILE       deb postinst, rpm %%post (also --post)\n"
		"  --postrm FILE         deb postrm, rpm %%postun (also --postun)\n"
		"  --kmod KVER           kernel modules for kernel release KVER: names the package\n"
		"                        NAME-modules-KVER (deb) or kmod-NAME (rpm), depends on\n"
		"                        linux-image-KVER / kernel-uname-r = KVER, runs depmod\n"
		"                        after install and removal (see builder/pkg.h)\n"
		"  --source-date-epoch N the epoch (default: $SOURCE_DATE_EPOCH; one is required)\n"
		"  --sign-key FILE       rpm: sign the header with this OpenPGP secret key\n"
		"  --ref NAME            also point ref NAME at the package blob\n"
		"  -o, --output FILE     also write the package to FILE (replaced atomically;\n"
		"                        nothing is written on failure)\n",
		usage_line);
	return 1;
}

enum {
	O_NAME = 256, O_VERSION, O_RELEASE, O_EPOCH, O_ARCH, O_MAINT, O_SUMMARY, O_DESC,
	O_DESCFILE, O_LICENSE, O_URL, O_SECTION, O_PRIORITY, O_GROUP, O_DEPENDS, O_PROVIDES,
	O_CONFLICTS, O_POSTINST, O_POSTRM, O_KMOD, O_SDE, O_SIGNKEY, O_REF,
};

static kb_err *parse_num(const char *opt, const char *v, unsigned long long max,
			 unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!*v || *v < '0' || *v > '9')
		return kb_usage("package: %s '%s' is not a number", opt, v);
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || errno || n > max)
		return kb_usage("package: %s '%s' is not a number from 0 to %llu", opt, v, max);
	*out = n;
	return NULL;
}

static kb_err *read_text(const char *what, const char *path, kb_arena *a, const char **out)
{
	kb_buf b = {0};
	kb_err *err = kb_read_file(AT_FDCWD, path, SCRIPT_MAX, &b);
	if (err)
		return kb_err_wrap(err, "cannot read the %s", what);
	if (memchr(b.p, 0, b.len))
		err = kb_usage("package: the %s '%s' has a NUL byte; it must be text", what, path);
	else
		*out = kb_arena_strndup(a, b.p ? b.p : "", b.len);
	kb_buf_free(&b);
	return err;
}

static char **push(kb_arena *a, char **arr, size_t *n, char *v)
{
	char **na = kb_arena_alloc(a, (*n + 1) * sizeof *na);
	if (*n)
		memcpy(na, arr, *n * sizeof *na);
	na[(*n)++] = v;
	return na;
}


static kb_err *run(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {
		{"name", required_argument, NULL, O_NAME},
		{"version", required_argument, NULL, O_VERSION},
		{"release", required_argument, NULL, O_RELEASE},
		{"epoch", required_argument, NULL, O_EPOCH},
		{"arch", required_argument, NULL, O_ARCH},
		{"maintainer", required_argument, NULL, O_MAINT},
		{"packager", required_argument, NULL, O_MAINT},
		{"summary", required_argument, NULL, O_SUMMARY},
		{"description", required_argument, NULL, O_DESC},
		{"description-file", required_argument, NULL, O_DESCFILE},
		{"license", required_argument, NULL, O_LICENSE},
		{"url", required_argument, NULL, O_URL},
		{"section", required_argument, NULL, O_SECTION},
		{"priority", required_argument, NULL, O_PRIORITY},
		{"group", required_argument, NULL, O_GROUP},
		{"depends", required_argument, NULL, O_DEPENDS},
		{"requires", required_argument, NULL, O_DEPENDS},
		{"provides", required_argument, NULL, O_PROVIDES},
		{"conflicts", required_argument, NULL, O_CONFLICTS},
		{"postinst", required_argument, NULL, O_POSTINST},
		{"post", required_argument, NULL, O_POSTINST},
		{"postrm", required_argument, NULL, O_POSTRM},
		{"postun", required_argument, NULL, O_POSTRM},
		{"kmod", required_argument, NULL, O_KMOD},
		{"source-date-epoch", required_argument, NULL, O_SDE},
		{"sign-key", required_argument, NULL, O_SIGNKEY},
		{"ref", required_argument, NULL, O_REF},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	kb_arena *a = kb_arena_new();
	kb_pkg_meta m = {0};
	const char *kmod = NULL, *sde = getenv("SOURCE_DATE_EPOCH"), *signkey = NULL;
	const char *ref = NULL, *output = NULL;
	kb_err *err = NULL;
	unsigned long long num;
	int c;
	opterr = 0;
	optind = 0;
	while (!err && (c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
		switch (c) {
		case O_NAME: m.name = optarg; break;
		case O_VERSION: m.version = optarg; break;
		case O_RELEASE: m.release = optarg; break;
		case O_EPOCH:
			if (!(err = parse_num("--epoch", optarg, 0x7fffffff, &num))) {
				m.has_epoch = 1;
				m.epoch = (unsigned long)num;
			}
			break;
		case O_ARCH: m.arch = optarg; break;
		case O_MAINT: m.maintainer = optarg; break;
		case O_SUMMARY: m.summary = optarg; break;
		case O_DESC: m.description = optarg; break;
		case O_DESCFILE: err = read_text("description", optarg, a, &m.description); break;
		case O_LICENSE: m.license = optarg; break;
		case O_URL: m.url = optarg; break;
		case O_SECTION: m.section = optarg; break;
		case O_PRIORITY: m.priority = optarg; break;
		case O_GROUP: m.group = optarg; break;
		case O_DEPENDS: m.depends = push(a, m.depends, &m.ndepends, optarg); break;
		case O_PROVIDES: m.provides = push(a, m.provides, &m.nprovides, optarg); break;
		case O_CONFLICTS: m.conflicts = push(a, m.conflicts, &m.nconflicts, optarg); break;
		case O_POSTINST: err = read_text("postinst script", optarg, a, &m.postinst); break;
		case O_POSTRM: err = read_text("postrm script", optarg, a, &m.postrm); break;
		case O_KMOD: kmod = optarg; break;
		case O_SDE: sde = optarg; break;
		case O_SIGNKEY: signkey = optarg; break;
		case O_REF: ref = optarg; break;
		case 'o': output = optarg; break;
		case 'h':
			kb_pkg_help(stdout);
			kb_arena_free(a);
			return NULL;
		default:
			err = kb_usage("kbuild package: %s '%s' (see 'kbuild help package')",
				       c == ':' ? "missing value for" : "unknown option",
				       argv[optind - 1]);
		}
	}
	if (err) {
		kb_arena_free(a);
		return err;
	}
	kb_pkg_fmt fmt = KB_PKG_DEB;
	if (argc - optind != 2 ||
	    (strcmp(argv[optind], "deb") && strcmp(argv[optind], "rpm")))
		err = kb_usage("kbuild package: give the format (deb or rpm) and one TREE "
			       "(usage: kbuild %s)",
			       usage_line);
	else
		fmt = strcmp(argv[optind], "deb") ? KB_PKG_RPM : KB_PKG_DEB;
	if (!err && (!sde || !*sde))
		err = kb_usage("kbuild package: no SOURCE_DATE_EPOCH: set it in the environment "
			       "or give --source-date-epoch (a package's times come from it, "
			       "never from the clock)");
	if (!err && !(err = parse_num("SOURCE_DATE_EPOCH", sde, 0xffffffffull, &num)))
		m.sde = (int64_t)num;
	if (!err && signkey && fmt != KB_PKG_RPM)
		err = kb_usage("kbuild package: --sign-key is for rpm packages (a .deb is signed "
			       "through its repository's Release file)");
	if (!err && ref)
		err = kb_ref_check_name(ref);
	if (!err && output && !*output)
		err = kb_usage("kbuild package: --output needs a file name");
	kb_buf key = {0};
	if (!err && signkey) {
		if ((err = kb_read_file(AT_FDCWD, signkey, 1u << 20, &key)))
			err = kb_err_wrap(err, "cannot read the --sign-key file");
		else
			m.sign_key = &key;
	}
	if (!err && !kmod)
		err = kb_pkg_check_meta(&m, fmt);
	kb_store *s = NULL;
	if (!err)
		err = kb_store_open(dir, 1, &s);
	kb_oid tree;
	if (!err) {
		const char *arg = argv[optind + 1];
		if ((err = kb_store_resolve(s, arg, &tree)))
			err = kb_err_wrap(err, "payload tree '%s' (store the directory with "
					       "'kbuild store add DIR')",
					  arg);
		else if (tree.type != KB_TREE)
			err = kb_errf("payload '%s' is a blob, not a tree; give the hash 'kbuild "
				      "store add DIR' printed for the payload directory",
				      arg);
	}
	kb_pkg_list p = {0};
	if (!err)
		err = kb_pkg_walk(s, &tree.hash, &p);
	if (!err && kmod) {
		if (!(err = kb_pkg_kmod(&m, fmt, kmod, m.name, &p, a)))
			err = kb_pkg_check_meta(&m, fmt);
	}
	kb_txn *t = NULL;
	kb_hash h;
	if (!err)
		err = kb_txn_begin(s, &t);
	if (!err) {
		err = fmt == KB_PKG_DEB ? kb_pkg_write_deb(s, t, &p, &m, &h)
					: kb_pkg_write_rpm(s, t, &p, &m, &h);
		kb_oid o = {KB_BLOB, h};
		if (err)
			kb_txn_abort(t);
		else
			err = kb_txn_commit(t, &o, 1);
		if (!err && ref)
			err = kb_ref_update(s, ref, NULL, &o);
		if (!err && output)
			err = kb_store_write_file(s, &h, output);
		if (!err) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&h, hex);
			printf("%s\n", hex);
		}
	}
	if (p.a)
		kb_pkg_list_free(&p);
	if (s)
		kb_store_close(s);
	kb_buf_free(&key);
	kb_arena_free(a);
	return err;
}

int kb_pkg_main(const char *dir, int argc, char **argv)
{
	char **av = kb_calloc((size_t)argc + 2, sizeof *av);
	static char name[] = "package";
	av[0] = name;
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	kb_err *err = run(dir, argc + 1, av);
	free(av);
	return kb_exit_status(err);
}

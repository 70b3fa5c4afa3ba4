/* 'kbuild mirror sync|closure|download|publish': the mirror's commands. Upstreams
 * are defined in recipes (--recipe NAME, else the first recipe in the
 * recipes directory that defines one by that name); the mirror part gets
 * them resolved: URL from --mirror/config/recipe/apt sources, keyring as
 * a blob in the store. */
#include "../mirror/mirror.h"
#include "key.h"
#include "recipe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const usage_sync = "mirror sync [--recipe NAME] UPSTREAM...";
static const char *const usage_closure =
	"mirror closure [--recipe NAME] [--recommends] [--essential] [--arch ARCH] UPSTREAM[,UPSTREAM...] PKG...";
static const char *const usage_download =
	"mirror download [--recipe NAME] [--recommends] [--essential] [--arch ARCH] UPSTREAM[,UPSTREAM...] PKG...";
static const char *const usage_publish =
	"mirror publish -o DIR (--key NAME | --key-file FILE) [--epoch N] [--suite S]\n"
	"         [--codename C] [--component C] [--origin O] [--label L] [--key-name NAME]\n"
	"         PACKAGE...";

int kb_mirror_help(const char *sub, FILE *out)
{
	if (!sub || !strcmp(sub, "sync"))
		fprintf(out, "usage: kbuild %s\n\nFetches an upstream's signed metadata, verifies its "
			     "signature against the\nupstream's keyring, fetches the indexes it names "
			     "by their hashes and records\na snapshot under the refs mirror/UPSTREAM/TIME "
			     "and mirror/UPSTREAM/latest.\n\n", usage_sync);
	if (!sub || !strcmp(sub, "closure"))
		fprintf(out, "usage: kbuild %s\n\nSolves 'install PKG...' with libsolv over the latest "
			     "snapshots of the\nupstreams (one pool), on an empty system, without "
			     "Recommends unless asked\n(--essential: plus every Essential: yes package, as "
			     "a Debian system has\nthem), and prints NAME VERSION ARCH UPSTREAM PATH SIZE SHA256 "
			     "per package.\n\n", usage_closure);
	if (!sub || !strcmp(sub, "download"))
		fprintf(out, "usage: kbuild %s\n\nThe closure, fetched into the store: each package "
			     "checked against the size\nand sha256 its signed index names.\n",
			usage_download);
	if (!sub || !strcmp(sub, "publish"))
		fprintf(out,
			"%susage: kbuild %s\n\n"
			"Writes a darksite into DIR: a signed apt repository from .deb packages, or a\n"
			"signed rpm-md (dnf) repository from .rpm packages, never both in one DIR.\n"
			"PACKAGE is a file (added to the store), a blob hash, or a ref or tree hash\n"
			"whose files (at any depth) are packages.\n\n"
			"  apt:    pool/COMPONENT/P/NAME/*.deb (hardlinked from the store),\n"
			"          dists/SUITE/COMPONENT/binary-ARCH/Packages{,.xz} and by-hash copies,\n"
			"          dists/SUITE/Release, Release.gpg, InRelease (no Valid-Until)\n"
			"  rpm-md: Packages/L/*.rpm, repodata/ (primary, filelists, other; .xml.gz)\n"
			"          with repomd.xml and repomd.xml.asc\n"
			"  both:   KEYNAME.asc and KEYNAME.gpg, the public key (default archive-key)\n\n"
			"  -o, --output DIR   the repository (made or updated)\n"
			"  --key NAME         the OpenPGP key NAME of the key directory (kbuild key)\n"
			"  --key-file FILE    an OpenPGP secret key file instead (armored or binary)\n"
			"  --epoch N          the time it is published at: Release's Date, repomd.xml's\n"
			"                     revision and timestamps, the signatures' creation time\n"
			"                     (default: $SOURCE_DATE_EPOCH; one of them is required)\n"
			"  --suite S, --codename C, --component C, --origin O, --label L\n"
			"                     apt's names (stable, the suite, main, kbuild, kbuild)\n\n"
			"Each package's metadata is read once and kept in the store's action cache.\n"
			"The same packages, options and epoch give the same bytes. Publishing into an\n"
			"existing DIR rewrites only what changed, removes what is no longer named, and\n"
			"writes the signed file (InRelease, repomd.xml) last.\n",
			sub ? "" : "\n", usage_publish);
	return !sub || !strcmp(sub, "sync") || !strcmp(sub, "closure") || !strcmp(sub, "download") ||
	       !strcmp(sub, "publish");
}

typedef struct {
	const char *recipe, *recipes, *arch;
	int recommends, essential;
} mopts;

static kb_err *parse(const char *sub, int argc, char **argv, mopts *m)
{
	static const struct option lo[] = {{"recipe", required_argument, NULL, 'r'},
					   {"recipes", required_argument, NULL, 'R'},
					   {"recommends", no_argument, NULL, 'w'},
					   {"essential", no_argument, NULL, 'e'},
					   {"arch", required_argument, NULL, 'a'},
					   {0}};
	memset(m, 0, sizeof *m);
	optind = 0;
	kb_err *err = NULL;
	char *name = kb_asprintf("mirror %s", sub);
	int c;
	while (!err && (c = kb_getopt(argc, argv, "", lo, name, &err)) > 0) {
		if (c == 'r')
			m->recipe = optarg;
		else if (c == 'R')
			m->recipes = optarg;
		else if (c == 'w' && strcmp(sub, "sync"))
			m->recommends = 1;
		else if (c == 'e' && strcmp(sub, "sync"))
			m->essential = 1;
		else if (c == 'a' && strcmp(sub, "sync"))
			m->arch = optarg;
		else
			err = kb_usage("kbuild mirror %s: '%s' is for closure and download only", sub,
				       argv[optind - 1]);
	}
	free(name);
	return err;
}

/* the recipe that defines upstream `name` */
static kb_err *find_upstream(const mopts *m, const char *name, kb_recipe **rout,
			     const kb_upstream **uout)
{
	if (m->recipe) {
		kb_err *err = kb_recipe_load(m->recipe, m->recipes, rout);
		if (err)
			return err;
		for (size_t i = 0; i < (*rout)->nup; i++)
			if (!strcmp((*rout)->up[i].name, name)) {
				*uout = &(*rout)->up[i];
				return NULL;
			}
		err = kb_errf("recipe '%s' defines no upstream '%s'", m->recipe, name);
		kb_recipe_free(*rout);
		return err;
	}
	const char *dir = m->recipes ? m->recipes : "recipes";
	DIR *d = opendir(dir);
	if (!d)
		return kb_errf("no upstream '%s': cannot read %s/ (pass --recipe NAME or --recipes DIR)",
			       name, dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 7 && !strcmp(de->d_name + l - 7, ".recipe")) {
			names = kb_realloc(names, (n + 1) * sizeof *names);
			names[n++] = kb_strndup(de->d_name, l - 7);
		}
	}
	closedir(d);
	qsort(names, n, sizeof *names, (int (*)(const void *, const void *))strcmp);
	kb_err *err = NULL;
	*rout = NULL;
	for (size_t i = 0; i < n && !*rout; i++) {
		kb_recipe *r;
		kb_err *e = kb_recipe_load(names[i], dir, &r);
		if (e) { /* a broken recipe is not this command's business */
			kb_err_free(e);
			continue;
		}
		for (size_t j = 0; j < r->nup && !*rout; j++)
			if (!strcmp(r->up[j].name, name)) {
				*rout = r;
				*uout = &r->up[j];
			}
		if (!*rout)
			kb_recipe_free(r);
	}
	if (!*rout)
		err = kb_errf("no recipe in %s/ defines upstream '%s' (pass --recipe NAME)", dir, name);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return err;
}

/* "a,b,c" -> upstreams, each resolved from its recipe */
typedef struct {
	kb_recipe **r;
	kb_upstream_def *d;
	kb_hash *snap;
	size_t n;
} ups;

static void ups_free(ups *u)
{
	for (size_t i = 0; i < u->n; i++)
		kb_recipe_free(u->r[i]);
	free(u->r);
	free(u->d);
	free(u->snap);
}

static kb_err *load_ups(kb_store *s, const mopts *m, const char *list, int need_snapshot, ups *u)
{
	memset(u, 0, sizeof *u);
	char *copy = kb_strdup(list), *save = NULL;
	kb_err *err = NULL;
	for (char *name = strtok_r(copy, ",", &save); name && !err;
	     name = strtok_r(NULL, ",", &save)) {
		u->r = kb_realloc(u->r, (u->n + 1) * sizeof *u->r);
		u->d = kb_realloc(u->d, (u->n + 1) * sizeof *u->d);
		u->snap = kb_realloc(u->snap, (u->n + 1) * sizeof *u->snap);
		const kb_upstream *up = NULL;
		if ((err = find_upstream(m, name, &u->r[u->n], &up)))
			break;
		u->n++;
		if ((err = kb_upstream_def_of(s, u->r[u->n - 1], up, &u->d[u->n - 1])))
			break;
		int found = 1;
		if (need_snapshot && !(err = kb_mirror_latest(s, up->name, &u->snap[u->n - 1], &found)) &&
		    !found)
			err = kb_errf("upstream '%s' has no snapshot yet; run 'kbuild mirror sync %s'",
				      up->name, up->name);
	}
	free(copy);
	return err;
}

static kb_err *cmd_sync(kb_store *s, const mopts *m, int argc, char **argv)
{
	if (argc < 1)
		return kb_usage("kbuild mirror sync: name an upstream (usage: kbuild %s)", usage_sync);
	kb_fetch_opts fo;
	kb_fetch_opts_init(&fo);
	kb_err *err = NULL;
	for (int i = 0; i < argc && !err; i++) {
		ups u;
		char *ref = NULL;
		kb_hash snap;
		if (!(err = load_ups(s, m, argv[i], 0, &u)) &&
		    !(err = kb_mirror_sync(s, &u.d[0], &fo, &snap, &ref))) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&snap, hex);
			printf("%s %s\n", ref, hex);
		}
		free(ref);
		ups_free(&u);
	}
	return err;
}

static kb_err *cmd_closure(kb_store *s, const mopts *m, int argc, char **argv, int download)
{
	if (argc < 2)
		return kb_usage("kbuild mirror %s: name upstreams and packages (usage: kbuild %s)",
				download ? "download" : "closure",
				download ? usage_download : usage_closure);
	ups u;
	kb_err *err = load_ups(s, m, argv[0], 1, &u);
	kb_arena *a = kb_arena_new();
	kb_pkg *p = NULL;
	size_t n = 0;
	kb_closure_opts co = {.recommends = m->recommends, .arch = m->arch,
			      .essential = m->essential};
	if (!err)
		err = kb_mirror_closure(s, u.d, u.snap, u.n, (const char *const *)argv + 1,
					(size_t)argc - 1, &co, a, &p, &n);
	if (!err && download) {
		kb_fetch_opts fo;
		kb_fetch_opts_init(&fo);
		err = kb_mirror_download(s, u.d, u.n, p, n, &fo);
	}
	for (size_t i = 0; !err && i < n; i++) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&p[i].sha256, hex);
		printf("%s %s %s %s %s %llu %s\n", p[i].name, p[i].version, p[i].arch,
		       p[i].upstream, p[i].path, (unsigned long long)p[i].size, hex);
	}
	kb_arena_free(a);
	ups_free(&u);
	return err;
}

/* ---- publish ---- */
typedef struct {
	kb_publish_opts po;
	const char *key, *key_file, *epoch;
} popts;

static kb_err *parse_publish(int argc, char **argv, popts *p)
{
	static const struct option lo[] = {{"output", required_argument, NULL, 'o'},
					   {"key", required_argument, NULL, 'k'},
					   {"key-file", required_argument, NULL, 'K'},
					   {"epoch", required_argument, NULL, 'e'},
					   {"suite", required_argument, NULL, 's'},
					   {"codename", required_argument, NULL, 'c'},
					   {"component", required_argument, NULL, 'C'},
					   {"origin", required_argument, NULL, 'O'},
					   {"label", required_argument, NULL, 'l'},
					   {"key-name", required_argument, NULL, 'n'},
					   {0}};
	memset(p, 0, sizeof *p);
	optind = 0;
	kb_err *err = NULL;
	int c;
	while (!err && (c = kb_getopt(argc, argv, "o:", lo, "mirror publish", &err)) > 0) {
		switch (c) {
		case 'o': p->po.outdir = optarg; break;
		case 'k': p->key = optarg; break;
		case 'K': p->key_file = optarg; break;
		case 'e': p->epoch = optarg; break;
		case 's': p->po.suite = optarg; break;
		case 'c': p->po.codename = optarg; break;
		case 'C': p->po.component = optarg; break;
		case 'O': p->po.origin = optarg; break;
		case 'l': p->po.label = optarg; break;
		case 'n': p->po.keyname = optarg; break;
		}
	}
	return err;
}

/* a name that goes into a path or a Release field: plain */
static kb_err *check_word(const char *opt, const char *v)
{
	if (!v)
		return NULL;
	if (!*v || !strcmp(v, ".") || !strcmp(v, ".."))
		return kb_usage("kbuild mirror publish: %s must not be empty, '.' or '..'", opt);
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      strchr("._+-", *c)))
			return kb_usage("kbuild mirror publish: %s '%s': only letters, digits and "
					"'._+-' please", opt, v);
	return NULL;
}

static kb_err *epoch_of(const char *opt, int64_t *out)
{
	const char *src = opt ? "--epoch" : "SOURCE_DATE_EPOCH";
	const char *v = opt ? opt : getenv("SOURCE_DATE_EPOCH");
	if (!v || !*v)
		return kb_usage("kbuild mirror publish: set SOURCE_DATE_EPOCH or pass --epoch N (the "
				"time the repository says it was made; the same N gives the same "
				"bytes)");
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || *end || end == v || n < 0 || n > 253402300799LL)
		return kb_usage("kbuild mirror publish: %s '%s' is not seconds since 1970", src, v);
	*out = n;
	return NULL;
}

typedef struct {
	kb_publish_pkg *p;
	size_t n, cap;
	char **labels; /* owned */
	size_t nl;
} pkglist;

static void pl_add(pkglist *l, const kb_hash *h, char *label)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->p = kb_realloc(l->p, l->cap * sizeof *l->p);
		l->labels = kb_realloc(l->labels, l->cap * sizeof *l->labels);
	}
	l->labels[l->n] = label;
	l->p[l->n++] = (kb_publish_pkg){*h, label};
}

static void pl_free(pkglist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->labels[i]);
	free(l->labels);
	free(l->p);
}

/* every file of a tree, at any depth */
static kb_err *pl_tree(kb_store *s, const kb_hash *tree, const char *prefix, int depth, pkglist *l)
{
	if (depth > 32)
		return kb_errf("%s: trees nest deeper than 32", prefix);
	kb_tree t;
	kb_err *err = kb_store_read_tree(s, tree, &t);
	for (size_t i = 0; !err && i < t.n; i++) {
		const kb_tree_entry *e = &t.e[i];
		char *label = kb_asprintf("%s/%.*s", prefix, (int)e->namelen, e->name);
		if (e->type == KB_ENT_DIR) {
			err = pl_tree(s, &e->hash, label, depth + 1, l);
			free(label);
		} else if (e->type == KB_ENT_FILE || e->type == KB_ENT_EXEC) {
			pl_add(l, &e->hash, label);
		} else {
			err = kb_errf("%s is a symbolic link, not a package", label);
			free(label);
		}
	}
	if (!err)
		kb_tree_free(&t);
	return err;
}

static kb_err *pl_args(kb_store *s, int argc, char **argv, pkglist *l)
{
	kb_txn *txn = NULL;
	kb_err *err = NULL;
	kb_oid *roots = NULL;
	size_t nroots = 0;
	for (int i = 0; i < argc && !err; i++) {
		const char *a = argv[i];
		struct stat st;
		kb_oid o;
		if (stat(a, &st) == 0) { /* a file on disk: into the store first */
			if (!S_ISREG(st.st_mode)) {
				err = kb_errf("%s is not a file: name package files, hashes or refs", a);
				break;
			}
			if (!txn && (err = kb_txn_begin(s, &txn)))
				break;
			if ((err = kb_txn_add_path(txn, a, &o)))
				break;
			roots = kb_realloc(roots, (nroots + 1) * sizeof *roots);
			roots[nroots++] = o;
			pl_add(l, &o.hash, kb_strdup(a));
			continue;
		}
		if ((err = kb_store_resolve(s, a, &o))) {
			if (err->code == 2)
				err = kb_err_wrap(err, "%s: no such file, hash or ref", a);
			break;
		}
		if (o.type == KB_TREE)
			err = pl_tree(s, &o.hash, a, 0, l);
		else
			pl_add(l, &o.hash, kb_asprintf("package %s", a));
	}
	if (txn && err)
		kb_txn_abort(txn);
	else if (txn)
		err = kb_txn_commit(txn, roots, nroots);
	free(roots);
	return err;
}

static kb_err *cmd_publish(kb_store *s, int argc, char **argv)
{
	popts p;
	kb_err *err = parse_publish(argc, argv, &p);
	if (err)
		return err;
	int n = argc - optind;
	char **args = argv + optind;
	if (!p.po.outdir)
		return kb_usage("kbuild mirror publish: name the output directory with -o DIR (usage: "
				"kbuild %s)", usage_publish);
	if (!n)
		return kb_usage("kbuild mirror publish: name the packages (usage: kbuild %s)",
				usage_publish);
	if (!p.key == !p.key_file)
		return kb_usage("kbuild mirror publish: sign with --key NAME (from the key directory) "
				"or --key-file FILE, one of them");
	if ((err = epoch_of(p.epoch, &p.po.epoch)) || (err = check_word("--suite", p.po.suite)) ||
	    (err = check_word("--codename", p.po.codename)) ||
	    (err = check_word("--component", p.po.component)) ||
	    (err = check_word("--key-name", p.po.keyname)))
		return err;
	if ((p.po.origin && strpbrk(p.po.origin, "\n\r")) || (p.po.label && strpbrk(p.po.label, "\n\r")))
		return kb_usage("kbuild mirror publish: --origin and --label are one line each");
	kb_buf pub = {0}, sec = {0};
	if (p.key) {
		err = kb_key_pgp(p.key, &pub, &sec);
	} else {
		err = kb_read_file(AT_FDCWD, p.key_file, 1u << 20, &sec);
		if (err)
			err = kb_err_wrap(err, "--key-file %s", p.key_file);
	}
	pkglist l = {0};
	if (!err)
		err = pl_args(s, n, args, &l);
	kb_publish_stats st;
	if (!err) {
		p.po.sec = &sec;
		p.po.pub = p.key ? &pub : NULL;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		err = kb_publish(s, l.p, l.n, &p.po, &st);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!err)
			printf("published %zu packages (%s) into %s in %.2f s: %zu read, %zu pool "
			       "files linked, %zu metadata files written, %zu removed\n",
			       st.packages, st.format, p.po.outdir,
			       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
			       st.read, st.linked, st.written, st.removed);
		else
			err = kb_err_wrap(err, "publishing %s", p.po.outdir);
	}
	pl_free(&l);
	/* the secret key's bytes do not outlive the command */
	if (sec.p)
		memset(sec.p, 0, sec.cap);
	kb_buf_free(&sec);
	kb_buf_free(&pub);
	return err;
}

int kb_mirror_main(const char *dir, int argc, char **argv)
{
	kb_err *err = NULL;
	kb_store *s = NULL;
	mopts m;
	if (argc < 1) {
		err = kb_usage("kbuild mirror: missing command: sync, closure, download or publish");
	} else if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		if (kb_mirror_help(argv[0], stdout))
			return 0;
		err = kb_usage("kbuild mirror: unknown command '%s'", argv[0]);
	} else if (strcmp(argv[0], "sync") && strcmp(argv[0], "closure") &&
		   strcmp(argv[0], "download") && strcmp(argv[0], "publish")) {
		err = kb_usage("kbuild mirror: unknown command '%s' (sync, closure, download or "
			       "publish)", argv[0]);
	} else if (!strcmp(argv[0], "publish")) {
		if (!(err = kb_store_open(dir, 1, &s)))
			err = cmd_publish(s, argc, argv);
	} else if (!(err = parse(argv[0], argc, argv, &m)) && !(err = kb_store_open(dir, 1, &s))) {
		int n = argc - optind;
		char **a = argv + optind;
		if (!strcmp(argv[0], "sync"))
			err = cmd_sync(s, &m, n, a);
		else
			err = cmd_closure(s, &m, n, a, !strcmp(argv[0], "download"));
	}
	kb_store_close(s);
	return kb_exit_status(err);
}

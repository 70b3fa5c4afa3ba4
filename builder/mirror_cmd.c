/* 'kbuild mirror sync|closure|download': the mirror's commands. Upstreams
 * are defined in recipes (--recipe NAME, else the first recipe in the
 * recipes directory that defines one by that name); the mirror part gets
 * them resolved: URL from --mirror/config/recipe/apt sources, keyring as
 * a blob in the store. */
#include "../mirror/mirror.h"
#include "recipe.h"

#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_sync = "mirror sync [--recipe NAME] UPSTREAM...";
static const char *const usage_closure =
	"mirror closure [--recipe NAME] [--recommends] [--essential] [--arch ARCH] UPSTREAM[,UPSTREAM...] PKG...";
static const char *const usage_download =
	"mirror download [--recipe NAME] [--recommends] [--essential] [--arch ARCH] UPSTREAM[,UPSTREAM...] PKG...";

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
	return !sub || !strcmp(sub, "sync") || !strcmp(sub, "closure") || !strcmp(sub, "download");
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

int kb_mirror_main(const char *dir, int argc, char **argv)
{
	kb_err *err = NULL;
	kb_store *s = NULL;
	mopts m;
	if (argc < 1) {
		err = kb_usage("kbuild mirror: missing command: sync, closure or download");
	} else if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		if (kb_mirror_help(argv[0], stdout))
			return 0;
		err = kb_usage("kbuild mirror: unknown command '%s'", argv[0]);
	} else if (strcmp(argv[0], "sync") && strcmp(argv[0], "closure") &&
		   strcmp(argv[0], "download")) {
		err = kb_usage("kbuild mirror: unknown command '%s' (sync, closure or download)",
			       argv[0]);
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

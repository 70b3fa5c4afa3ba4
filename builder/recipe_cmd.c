/* 'kbuild lock NAME' resolves a recipe's inputs into its lock file;
 * 'kbuild recipe NAME' builds from the lock alone and never resolves. */
#include "build.h"
#include "key.h"
#include "../verify/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const usage_lock = "lock [--recipes DIR] [--offline] [--jobs N] NAME";
static const char *const usage_recipe =
	"recipe [--recipes DIR] [--offline] [--jobs N] [--check] [--out DIR] [--manifest FILE]\n"
	"       [--bundle FILE] NAME";
static const char *const usage_upstreams = "upstreams [--recipes DIR] NAME";

int kb_recipe_help(const char *cmd, FILE *out)
{
	if (!strcmp(cmd, "lock"))
		fprintf(out, "usage: kbuild %s\n\nResolves every input of recipes/NAME.recipe (and what "
			     "it includes),\nfetching what it must, and writes recipes/NAME.lock: a "
			     "sorted text that\npins each input by hash. Running it twice gives the "
			     "same bytes.\n", usage_lock);
	else if (!strcmp(cmd, "recipe"))
		fprintf(out, "usage: kbuild %s\n\nBuilds recipes/NAME.recipe from its lock. An input "
			     "the lock does not\ncover, or a local input that changed, stops the "
			     "build with the command\nthat fixes it. Buildroots are made from the "
			     "packages the lock pins; steps\nrun in the sandbox, in dependency order, "
			     "each found in the action cache\nwhen nothing it sees changed. The result "
			     "(every input, buildroot and\nstep output by name) is the tree of ref "
			     "recipe/NAME; step logs are in\nSTORE/logs/NAME/.\n\n"
			     "  --offline   use only what the store holds\n"
			     "  --jobs N    parallel downloads, and $JOBS inside steps (default: CPUs)\n"
			     "  --check     build every step a second time (other host directory, TZ,\n"
			     "              LANG, umask, $JOBS, a later time) and report the first\n"
			     "              difference between the two outputs\n"
			     "  --out DIR   check the artifacts (signed modules, packages, darksites,\n"
			     "              images) out to DIR/STEP, hardlinked from the store\n"
			     "  --manifest FILE  where the build manifest goes (default:\n"
			     "              STORE/manifests/NAME.json; also ref manifest/NAME), with\n"
			     "              its in-toto/SLSA statement beside it (NAME.intoto.json)\n"
			     "  --bundle FILE   also export what 'kbuild verify' needs: every input\n"
			     "              by hash, every step output as published, the manifest\n",
			     usage_recipe);
	else if (!strcmp(cmd, "upstreams"))
		fprintf(out, "usage: kbuild %s\n\nPrints each upstream of a recipe with the mirror "
			     "it resolves to and where\nthat came from: --mirror NAME=URL, the config "
			     "file, the recipe, or the\nhost's apt sources.\n", usage_upstreams);
	else
		return 0;
	return 1;
}

typedef struct {
	const char *recipes;
	kb_run_opts run;
	int check;
	const char *out;
	const char *name;
	kb_manifest_opts manifest;
	int rebuild; /* for kbuild verify: no hash on stdout */
	kb_oid *result;
} args;

static kb_err *parse(const char *cmd, int argc, char **argv, args *a)
{
	static const struct option lo[] = {{"recipes", required_argument, NULL, 'r'},
					   {"offline", no_argument, NULL, 'o'},
					   {"jobs", required_argument, NULL, 'j'},
					   {"check", no_argument, NULL, 'c'},
					   {"out", required_argument, NULL, 'O'},
					   {"manifest", required_argument, NULL, 'm'},
					   {"bundle", required_argument, NULL, 'b'},
					   {0}};
	memset(a, 0, sizeof *a);
	optind = 0;
	kb_err *err = NULL;
	int c;
	while (!err && (c = kb_getopt(argc, argv, "j:", lo, cmd, &err)) > 0) {
		if (c == 'r')
			a->recipes = optarg;
		else if (c == 'o')
			a->run.offline = 1;
		else if (c == 'c' && !strcmp(cmd, "recipe"))
			a->check = 1;
		else if (c == 'c' && strcmp(cmd, "recipe"))
			err = kb_usage("kbuild %s: --check is for 'kbuild recipe'", cmd);
		else if ((c == 'm' || c == 'b' || c == 'O') && strcmp(cmd, "recipe"))
			err = kb_usage("kbuild %s: '%s' is for 'kbuild recipe'", cmd, argv[optind - 1]);
		else if (c == 'O')
			a->out = optarg;
		else if (c == 'm')
			a->manifest.path = optarg;
		else if (c == 'b')
			a->manifest.bundle = optarg;
		else {
			char *end;
			long j = strtol(optarg, &end, 10);
			if (*end || j < 1 || j > 64)
				err = kb_usage("kbuild %s: --jobs takes a number from 1 to 64", cmd);
			a->run.jobs = (int)j;
		}
	}
	if (err)
		return err;
	if (argc - optind != 1)
		return kb_usage("kbuild %s: %s (usage: kbuild %s)", cmd,
				argc - optind ? "give one recipe name" : "missing recipe name",
				!strcmp(cmd, "lock") ? usage_lock
				: !strcmp(cmd, "recipe") ? usage_recipe : usage_upstreams);
	a->name = argv[optind];
	return NULL;
}

/* the recipe is loaded before the store is opened: a recipe that does not
 * load leaves no trace, not even a new store */
static kb_err *do_lock(kb_store *s, kb_recipe *r, const args *a)
{
	size_t changed = 0;
	kb_err *err;
	if (!(err = kb_lock_update(s, r, &a->run, &changed)))
		kb_info("%s: %zu input%s, %zu changed", r->lockpath, r->nin, r->nin == 1 ? "" : "s",
			changed);
	return err;
}

/* Each signing step's key: its public half is part of what the step is.
 * A key the directory lacks is made on first use, and the user told where
 * it is and what to do with it: modules signed with a MOK load under
 * Secure Boot only once it is enrolled; clients trust a darksite through
 * its exported public key. */
static kb_err *sign_keys(kb_recipe *r, kb_arena *a)
{
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < r->nsteps; i++) {
		kb_step *st = &r->steps[i];
		int mok = st->kind == KB_STEP_SIGN;
		if (!mok && !kb_step_pgp_signs(st))
			continue;
		char hex[KB_HEX_LEN + 1];
		char *dir = kb_key_dir();
		char *subject = kb_asprintf("kbuild %s %s", mok ? "module signing key"
								  : "darksite signing key", st->key);
		if (!kb_key_exists(st->key, !mok) &&
		    !(err = mok ? kb_key_new_x509(st->key, subject) : kb_key_new_pgp(st->key, subject))) {
			if (mok)
				kb_info("made the module signing key '%s' in %s (the private key stays "
					"there, mode 0600). To load the modules under Secure Boot, enroll "
					"its certificate: mokutil --import %s/%s.der, then reboot and "
					"confirm in the MOK manager.", st->key, dir, dir, st->key);
			else
				kb_info("made the OpenPGP key '%s' in %s for step '%s' (the secret "
					"key stays there, mode 0600); clients trust what it signs "
					"through its public key (a darksite exports it as %s.asc)",
					st->key, dir, st->name, st->key);
		}
		free(dir);
		free(subject);
		if (!err && mok)
			err = kb_cert_sha256(st, hex);
		if (!err && !mok) {
			kb_buf pub = {0}, sec = {0};
			int64_t created;
			kb_hash h;
			if (!(err = kb_darksite_key(st, &pub, &sec, &created))) {
				kb_sha256(pub.p, pub.len, &h);
				kb_hash_hex(&h, hex);
			}
			kb_key_buf_wipe(&sec);
			kb_buf_free(&pub);
		}
		if (!err)
			st->cert_sha256 = kb_arena_strdup(a, hex);
	}
	return err;
}

/* The artifacts (what sign, deb, rpm, darksite and iso steps made) checked
 * out under out/, hardlinked from the store, replacing what an earlier run
 * put there only once the new tree is whole; each is named on stderr. */
static kb_err *export_out(kb_store *s, const kb_recipe *r, const kb_oid *result,
			  const char *out)
{
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(s, &result->hash, &t);
	char *tmp = kb_asprintf("%s.kbuild-new", out), *old = kb_asprintf("%s.kbuild-old", out);
	kb_buf shown = {0};
	if (!err && (err = kb_remove_tree(AT_FDCWD, tmp)) == NULL)
		err = kb_mkdir_p(tmp, 0755);
	for (size_t i = 0; !err && i < t.n; i++) {
		const kb_tree_entry *e = &t.e[i];
		char *name = kb_strndup(e->name, e->namelen);
		const kb_step *st = kb_recipe_step(r, name);
		if (st && st->kind != KB_STEP_RUN && e->type == KB_ENT_DIR) {
			kb_oid o = {KB_TREE, e->hash};
			char *dest = kb_asprintf("%s/%s", tmp, name);
			static const char *const what[] = {"", "signed modules", "package", "package",
							   "darksite", "image"};
			if (!(err = kb_store_checkout(s, &o, dest, 0)))
				kb_buf_addf(&shown, "  %-14s %s/%s/%s\n", what[st->kind], out, name,
					    st->kind == KB_STEP_ISO ? "image.iso" : "");
			free(dest);
		}
		free(name);
	}
	kb_tree_free(&t);
	if (!err && (err = kb_remove_tree(AT_FDCWD, old)) == NULL) {
		if (rename(out, old) < 0 && errno != ENOENT)
			err = kb_errno(errno, "cannot move the earlier %s aside", out);
		else if (rename(tmp, out) < 0)
			err = kb_errno(errno, "cannot move %s into place", out);
		else
			err = kb_remove_tree(AT_FDCWD, old);
	}
	if (!err && shown.len)
		kb_info("artifacts (hardlinked from the store):\n%.*s", (int)shown.len - 1, shown.p);
	kb_buf_free(&shown);
	free(tmp);
	free(old);
	return err;
}

static kb_err *do_recipe(kb_store *s, kb_recipe *r, const args *a)
{
	kb_lock *l = NULL;
	int found;
	kb_err *err;
	if (!(err = kb_lock_read(r->lockpath, &l, &found)) && !found)
		err = kb_errf("recipe '%s' has no lock file %s; run 'kbuild lock %s' to resolve its "
			      "inputs", r->name, r->lockpath, r->name);
	if (!err)
		err = kb_lock_check(r, l);
	kb_arena *ar = kb_arena_new();
	kb_action *act = NULL;
	size_t n = 0;
	if (!err)
		err = sign_keys(r, ar);
	if (!err)
		err = kb_eval(r, l, ar, &act, &n);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!err)
		err = kb_recipe_fetch(s, r, l, &a->run);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!err)
		kb_info("inputs: all %zu in the store (%.1f s)", r->nin,
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	kb_oid result = {0};
	int hit = 0;
	if (!err && !a->check)
		err = kb_ac_get(s, &act[n - 1].key, &result, NULL, &hit);
	if (!err && !hit) {
		kb_build_opts bo = {.check = a->check, .jobs = a->run.jobs};
		err = kb_build(s, r, l, act, n, &bo);
	}
	if (!err && !hit) {
		/* the recipe's result: every input, buildroot and step by name */
		kb_tree_entry *e = kb_calloc(n, sizeof *e);
		size_t ne = 0;
		for (size_t i = 0; i + 1 < n; i++)
			e[ne++] = (kb_tree_entry){act[i].result.type == KB_TREE ? KB_ENT_DIR : KB_ENT_FILE,
						  act[i].result.hash, act[i].name, strlen(act[i].name)};
		kb_txn *t;
		result.type = KB_TREE;
		if (!(err = kb_txn_begin(s, &t))) {
			if ((err = kb_txn_add_tree(t, e, ne, &result.hash)))
				kb_txn_abort(t);
			else
				err = kb_txn_commit(t, &result, 1);
		}
		free(e);
		if (!err)
			err = kb_ac_put(s, &act[n - 1].key, &result, NULL);
	}
	char *ref = kb_asprintf("recipe/%s", r->name);
	kb_oid cur;
	int have = 0;
	if (!err && !(err = kb_ref_get(s, ref, &cur, &have)) &&
	    (!have || !kb_hash_eq(&cur.hash, &result.hash)))
		err = kb_ref_update(s, ref, NULL, &result);
	char *mpath = NULL;
	if (!err)
		err = kb_manifest_record(s, r, l, act, n, &result, &a->manifest, &mpath);
	if (!err && a->result)
		*a->result = result;
	if (!err && !a->rebuild) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&result.hash, hex);
		if (hit)
			kb_info("recipe %s is up to date: nothing to do (ref %s)", r->name, ref);
		else
			kb_info("recipe %s: %zu inputs, %zu steps (ref %s)", r->name, r->nin, r->nsteps,
				ref);
		kb_info("manifest %s", mpath);
		if (a->out)
			err = export_out(s, r, &result, a->out);
		printf("%s\n", hex);
	}
	free(mpath);
	free(ref);
	kb_arena_free(ar);
	kb_lock_free(l);
	return err;
}

kb_err *kb_recipe_rebuild(kb_store *s, const char *path, const kb_run_opts *o,
			  const char *manifest_path, kb_oid *result)
{
	args a = {.run = *o, .name = path, .rebuild = 1, .result = result};
	a.manifest.path = manifest_path;
	kb_recipe *r;
	kb_err *err = kb_recipe_load(path, NULL, &r);
	if (!err) {
		err = do_recipe(s, r, &a);
		kb_recipe_free(r);
	}
	return err;
}

static kb_err *do_upstreams(const args *a)
{
	kb_recipe *r;
	kb_err *err = kb_recipe_load(a->name, a->recipes, &r);
	for (size_t i = 0; !err && i < r->nup; i++) {
		const char *url, *from;
		if (!(err = kb_upstream_resolve(r->a, &r->up[i], &url, &from)))
			printf("%s %s %s (from %s)\n", r->up[i].name, r->up[i].type, url, from);
	}
	if (r)
		kb_recipe_free(r);
	return err;
}

int kb_recipe_main(const char *cmd, const char *dir, int argc, char **argv)
{
	args a;
	kb_store *s = NULL;
	kb_err *err;
	if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		kb_recipe_help(cmd, stdout);
		return 0;
	}
	/* argv[0] is the first argument; getopt wants a program name first */
	char **av = kb_calloc((size_t)argc + 2, sizeof *av);
	av[0] = (char *)cmd;
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	if ((err = parse(cmd, argc + 1, av, &a)))
		;
	else if (!strcmp(cmd, "upstreams"))
		err = do_upstreams(&a);
	else {
		kb_recipe *r;
		if (!(err = kb_recipe_load(a.name, a.recipes, &r))) {
			if (!(err = kb_store_open(dir, 1, &s)))
				err = !strcmp(cmd, "lock") ? do_lock(s, r, &a) : do_recipe(s, r, &a);
			kb_recipe_free(r);
		}
	}
	free(av);
	kb_store_close(s);
	return kb_exit_status(err);
}

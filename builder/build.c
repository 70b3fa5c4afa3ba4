/* Making a recipe: its buildroots (from the packages the lock pins) and
 * its steps, in dependency order. A step's run key is the hash of what it
 * is (command, environment, epoch) and of the exact trees it sees (build
 * root and inputs, by content), so a step whose inputs did not change is
 * found in the action cache and not run, even when something upstream of
 * it was rebuilt. --check builds every step a second time under other
 * conditions and reports the first difference. */
#include "build.h"
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kb_err *make_root(kb_store *s, const kb_recipe *r, const kb_lock *l, kb_action *x)
{
	const kb_input *in = kb_recipe_input(r, x->name);
	size_t n = 0, plen = strlen(in->name);
	kb_hash *pkgs = kb_calloc(l->n + 1, sizeof *pkgs);
	const char **labels = kb_calloc(l->n + 1, sizeof *labels);
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < l->n; i++) {
		const kb_lock_entry *e = &l->e[i];
		if (!kb_lock_child(e, in->name))
			continue;
		const char *h = kb_lock_get(e, "sha256");
		if (!h || kb_hash_parse(h, strlen(h), &pkgs[n]))
			err = kb_errf("%s:%d: package %s has no valid sha256; run 'kbuild lock %s'",
				      l->path, e->line, e->name, r->name);
		labels[n++] = e->name + plen + 1;
	}
	double t0 = now();
	int cached = 0;
	kb_rootfs_stats st;
	if (!err)
		err = kb_rootfs_build(s, pkgs, labels, n, 0, &x->result.hash, &cached, &st);
	if (err)
		err = kb_err_wrap(err, "buildroot '%s' (" KB_POS_FMT ")", in->name,
				  KB_POS_ARGS(in->pos));
	else if (cached)
		kb_debug("buildroot %s: cached (%zu packages)", in->name, n);
	else
		kb_info("buildroot %s: unpacked %zu packages, %zu files (%.0f MB) in %.1f s",
			in->name, n, st.files, (double)st.bytes / 1e6, now() - t0);
	x->pending = err != NULL;
	free(pkgs);
	free(labels);
	return err;
}

/* A buildroot nothing runs on (a darksite's closure) is not unpacked: its
 * result is the tree of its package files, by their file names. */
static kb_err *closure_tree(kb_store *s, const kb_lock *l, kb_action *x)
{
	size_t n = 0;
	kb_tree_entry *e = kb_calloc(l->n + 1, sizeof *e);
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < l->n; i++) {
		const kb_lock_entry *c = &l->e[i];
		if (!kb_lock_child(c, x->name))
			continue;
		const char *h = kb_lock_get(c, "sha256"), *path = kb_lock_get(c, "path");
		const char *base = path ? strrchr(path, '/') : NULL;
		base = base ? base + 1 : path;
		kb_hash hh;
		if (!h || !base || !*base || kb_hash_parse(h, strlen(h), &hh))
			err = kb_errf("%s:%d: package %s has no valid path or sha256", l->path, c->line,
				      c->name);
		else
			e[n++] = (kb_tree_entry){KB_ENT_FILE, hh, base, strlen(base)};
	}
	kb_txn *t;
	x->result.type = KB_TREE;
	if (!err && !(err = kb_txn_begin(s, &t))) {
		if ((err = kb_txn_add_tree(t, e, n, &x->result.hash)))
			kb_txn_abort(t);
		else
			err = kb_txn_commit(t, &x->result, 1);
	}
	x->pending = err != NULL;
	free(e);
	return err;
}

/* ---- comparing two outputs: the first difference, for --check ---- */

static kb_err *first_diff_blob(kb_store *s, const kb_hash *a, const kb_hash *b, char **what)
{
	int fa = -1, fb = -1;
	kb_err *err = kb_store_open_object(s, a, &fa);
	if (!err)
		err = kb_store_open_object(s, b, &fb);
	if (!err) {
		struct stat sa, sb;
		fstat(fa, &sa);
		fstat(fb, &sb);
		char *ba = kb_malloc(65536), *bb = kb_malloc(65536);
		uint64_t off = 0;
		for (;;) {
			ssize_t na = read(fa, ba, 65536), nb = read(fb, bb, 65536);
			if (na < 0 || nb < 0) {
				err = kb_errno(errno, "cannot read an output");
				break;
			}
			size_t m = (size_t)(na < nb ? na : nb), i = 0;
			while (i < m && ba[i] == bb[i])
				i++;
			if (i < m || na != nb) {
				off += i;
				break;
			}
			if (!na)
				break;
			off += (uint64_t)na;
		}
		free(ba);
		free(bb);
		if (!err)
			*what = kb_asprintf("differs from byte %llu on (sizes %lld and %lld bytes)",
					    (unsigned long long)off, (long long)sa.st_size,
					    (long long)sb.st_size);
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return err;
}

static const char *type_name(kb_enttype t)
{
	return t == KB_ENT_FILE ? "a file" : t == KB_ENT_EXEC ? "an executable"
		: t == KB_ENT_LINK ? "a symlink" : "a directory";
}

/* *where: the path of the first difference between trees a and b, in
 * sorted order, and *what: how they differ; NULL when they are equal */
static kb_err *first_diff(kb_store *s, const kb_hash *a, const kb_hash *b, const char *prefix,
			  char **where, char **what)
{
	kb_tree ta = {0}, tb = {0};
	kb_err *err = kb_store_read_tree(s, a, &ta);
	if (!err)
		err = kb_store_read_tree(s, b, &tb);
	size_t i = 0, j = 0;
	while (!err && !*where && (i < ta.n || j < tb.n)) {
		const kb_tree_entry *ea = i < ta.n ? &ta.e[i] : NULL, *eb = j < tb.n ? &tb.e[j] : NULL;
		int c = !ea ? 1 : !eb ? -1 : 0;
		if (ea && eb) {
			size_t m = ea->namelen < eb->namelen ? ea->namelen : eb->namelen;
			c = memcmp(ea->name, eb->name, m);
			if (!c)
				c = ea->namelen < eb->namelen ? -1 : ea->namelen > eb->namelen;
		}
		const kb_tree_entry *e = c <= 0 ? ea : eb;
		char *path = kb_asprintf("%s%.*s", prefix, (int)e->namelen, e->name);
		if (c) {
			*where = path;
			*what = kb_asprintf("is only in the %s build", c < 0 ? "first" : "second");
			break;
		}
		i++, j++;
		if (kb_hash_eq(&ea->hash, &eb->hash) && ea->type == eb->type) {
			free(path);
			continue;
		}
		if (ea->type != eb->type) {
			*where = path;
			*what = kb_asprintf("is %s in the first build and %s in the second",
					    type_name(ea->type), type_name(eb->type));
		} else if (ea->type == KB_ENT_DIR) {
			char *sub = kb_asprintf("%s/", path);
			free(path);
			err = first_diff(s, &ea->hash, &eb->hash, sub, where, what);
			free(sub);
		} else if (ea->type == KB_ENT_LINK) {
			*where = path;
			*what = kb_strdup("is a symlink with another target");
		} else {
			*where = path;
			err = first_diff_blob(s, &ea->hash, &eb->hash, what);
		}
	}
	kb_tree_free(&ta);
	kb_tree_free(&tb);
	return err;
}

/* ---- --check's other conditions ---- */

typedef struct {
	char *tz, *lang, *noise;
	mode_t umask;
} hostenv;

static char *save(const char *k)
{
	const char *v = getenv(k);
	return v ? kb_strdup(v) : NULL;
}

static void restore(const char *k, char *v)
{
	if (v)
		setenv(k, v, 1);
	else
		unsetenv(k);
	free(v);
}

/* kbuild's own environment, umask and clock differ in the second build;
 * none of them may reach the step */
static void vary(hostenv *h)
{
	h->tz = save("TZ");
	h->lang = save("LANG");
	h->noise = save("KBUILD_CHECK_NOISE");
	setenv("TZ", "Pacific/Kiritimati", 1);
	setenv("LANG", "fr_FR.UTF-8", 1);
	setenv("KBUILD_CHECK_NOISE", "1", 1);
	h->umask = umask(077);
	/* a later time: the second build starts in another second (a loop:
	 * a signal may cut a sleep short) */
	time_t t0 = time(NULL);
	while (time(NULL) <= t0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec = 0;
		ts.tv_nsec = 1000000000L - ts.tv_nsec;
		nanosleep(&ts, NULL);
	}
}

static void unvary(hostenv *h)
{
	restore("TZ", h->tz);
	restore("LANG", h->lang);
	restore("KBUILD_CHECK_NOISE", h->noise);
	umask(h->umask);
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static kb_err *check_step(kb_store *s, const kb_recipe *r, kb_step_run *x, const kb_oid *first)
{
	hostenv h;
	kb_step_run y = *x;
	y.jobs = x->jobs > 1 ? 1 : 2;
	y.work_prefix = "check-variant-step";
	y.logpath = kb_asprintf("%s/logs/%s/%s.check.log", kb_store_path(s), r->name, x->st->name);
	kb_info("step %s: building again to compare (JOBS=%d, TZ, LANG, umask, host directory "
		"and time changed)", x->st->name, y.jobs);
	vary(&h);
	kb_oid second;
	kb_err *err = kb_step_exec(s, &y, &second);
	if (!err && x->st->kernel)
		err = kb_kernel_modules_check(s, x->st, &second);
	unvary(&h);
	free((char *)y.logpath);
	if (err)
		return kb_err_wrap(err, "--check: the second build of step '%s' failed",
				   x->st->name);
	if (kb_hash_eq(&first->hash, &second.hash)) {
		kb_info("step %s: reproducible (both builds gave the same output)", x->st->name);
		return NULL;
	}
	/* both outputs kept for inspection */
	char *ra = kb_asprintf("check/%s/%s/first", r->name, x->st->name);
	char *rb = kb_asprintf("check/%s/%s/second", r->name, x->st->name);
	char *where = NULL, *what = NULL;
	err = kb_ref_update(s, ra, NULL, first);
	if (!err)
		err = kb_ref_update(s, rb, NULL, &second);
	if (!err)
		err = first_diff(s, &first->hash, &second.hash, "", &where, &what);
	if (!err)
		err = kb_errf("step '%s' (" KB_POS_FMT ") is not reproducible: %s %s; the two "
			      "outputs are refs %s and %s (kbuild store checkout REF DIR, then "
			      "compare)",
			      x->st->name, KB_POS_ARGS(x->st->pos),
			      where ? where : "(the top)", what ? what : "differs", ra, rb);
	free(where);
	free(what);
	free(ra);
	free(rb);
	return err;
}

/* ---- the whole ---- */

static kb_hash run_key(const kb_step_run *x, const kb_oid *root)
{
	kb_buf b = {0};
	char hex[KB_HEX_LEN + 1];
	kb_buf_addf(&b, "kbuild-step %d\n", KB_STEP_VERSION);
	kb_step_def(x->st, &b);
	if (root->type != KB_NONE) {
		kb_hash_hex(&root->hash, hex);
		kb_buf_addf(&b, "root %s\n", hex);
	}
	for (size_t i = 0; i < x->st->ninputs; i++) {
		kb_hash_hex(&x->inputs[i].hash, hex);
		kb_buf_addf(&b, "read %s %s %s\n", x->st->inputs[i], kb_objtype_name(x->inputs[i].type),
			    hex);
	}
	kb_hash k;
	kb_sha256(b.p, b.len, &k);
	kb_buf_free(&b);
	return k;
}

kb_err *kb_build(kb_store *s, const kb_recipe *r, const kb_lock *l, kb_action *act, size_t n,
		 const kb_build_opts *o)
{
	kb_err *err = NULL;
	/* a buildroot nothing runs on (a darksite's closure) is not unpacked */
	for (size_t i = 0; !err && i < n; i++) {
		const kb_step *st = act[i].step;
		const char *rn = !st ? NULL : st->kind == KB_STEP_RUN ? st->root
				 : st->kind == KB_STEP_ISO ? st->grub : NULL;
		kb_action *root = rn ? kb_action_find(act, n, rn) : NULL;
		if (root && root->pending)
			err = make_root(s, r, l, root);
	}
	for (size_t i = 0; !err && i < n; i++)
		if (act[i].pending && !strcmp(act[i].kind, "buildroot"))
			err = closure_tree(s, l, &act[i]);
	size_t nsteps = 0;
	for (size_t i = 0; i < n; i++)
		nsteps += act[i].step != NULL;
	if (err || !nsteps)
		return err;

	/* build roots are checked out once per run, when a step first needs one */
	kb_workdir *roots = NULL;
	kb_arena *a = kb_arena_new();
	int jobs = o->jobs > 0 ? o->jobs : ncpus();
	size_t done = 0;
	for (size_t i = 0; !err && i < n; i++) {
		if (!act[i].step)
			continue;
		const kb_step *st = act[i].step;
		const kb_action *root = st->root ? kb_action_find(act, n, st->root) : NULL;
		kb_step_run x = {.r = r, .st = st, .jobs = jobs, .work_prefix = "step"};
		kb_oid *in = kb_arena_alloc(a, (st->ninputs + 1) * sizeof *in);
		for (size_t k = 0; k < st->ninputs; k++) {
			in[k] = kb_action_find(act, n, st->inputs[k])->result;
		}
		x.inputs = in;
		kb_oid noroot = {KB_NONE, {{0}}};
		kb_hash key = run_key(&x, root ? &root->result : &noroot);
		int hit = 0;
		if ((err = kb_ac_get(s, &key, &act[i].result, NULL, &hit)))
			break;
		done++;
		if (hit && !o->check) {
			kb_info("[%zu/%zu] step %s: cached", done, nsteps, st->name);
			act[i].pending = 0;
			continue;
		}
		if (st->kind != KB_STEP_RUN) {
			/* kbuild's own writers: deterministic by construction, not run twice */
			double t0 = now();
			if (!hit && ((err = kb_artifact_exec(s, r, l, st, in, &act[i].result)) ||
				     (err = kb_ac_put(s, &key, &act[i].result, NULL))))
				break;
			if (!hit)
				kb_info("[%zu/%zu] step %s: done in %.1f s", done, nsteps, st->name,
					now() - t0);
			act[i].pending = 0;
			continue;
		}
		if (st->kernel && (err = kb_kernel_headers(s, st, &root->result, &x.kdir)))
			break;
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&root->result.hash, hex);
		if (!roots && (err = kb_workdir_new(s, "roots", &roots)))
			break;
		const char *rootdir = kb_arena_printf(a, "%s/%s", kb_workdir_path(roots), hex);
		if (access(rootdir, F_OK) < 0) {
			double t0 = now();
			if ((err = kb_store_checkout(s, &root->result, rootdir, 0)))
				break;
			kb_debug("buildroot %s: checked out in %.2f s", st->root, now() - t0);
		}
		x.rootdir = rootdir;
		x.logpath = kb_arena_printf(a, "%s/logs/%s/%s.log", kb_store_path(s), r->name,
					    st->name);
		if (!hit) {
			kb_info("[%zu/%zu] step %s: running (log %s)", done, nsteps, st->name,
				x.logpath);
			double t0 = now();
			if ((err = kb_step_exec(s, &x, &act[i].result)) ||
			    (st->kernel && (err = kb_kernel_modules_check(s, st, &act[i].result))) ||
			    (err = kb_ac_put(s, &key, &act[i].result, NULL)))
				break;
			kb_info("[%zu/%zu] step %s: done in %.1f s", done, nsteps, st->name, now() - t0);
		}
		act[i].pending = 0;
		if (o->check)
			err = check_step(s, r, &x, &act[i].result);
	}
	kb_workdir_free(roots);
	kb_arena_free(a);
	return err;
}

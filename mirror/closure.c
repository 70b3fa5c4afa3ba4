/* Closures with libsolv: every upstream's snapshot is loaded into one
 * pool (a repo per upstream, named after it), "install WANT..." is solved
 * on an empty system and the chosen packages come back with what their
 * signed index says about them (path, size, sha256).
 *
 * apt: every Packages index of the snapshot for the upstream's
 * architectures (Packages, .zst, .gz, .xz or .bz2, decompressed by libsolv
 * by name; the fastest of those present) goes through
 * repo_add_debpackages, filtered to the fields that matter, with each
 * stanza's Size (which libsolv does not read) set on its solvable.
 * rpm-md: repomd.xml (repo_add_repomdxml) names primary and filelists,
 * both read with repo_add_rpmmd, filelists extending the primary's
 * solvables; file dependencies are then resolved by pool_addfileprovides. */
#include "mirror.h"

#include <solv/chksum.h>
#include <solv/knownid.h>
#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/repo_deb.h>
#include <solv/repo_repomdxml.h>
#include <solv/repo_rpmmd.h>
#include <solv/repodata.h>
#include <solv/rules.h>
#include <solv/solvable.h>
#include <solv/policy.h>
#include <solv/solver.h>
#include <solv/solv_xfopen.h>
#include <solv/transaction.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the snapshot's files ---- */
typedef struct {
	char *path; /* relative to the repository root */
	kb_hash hash;
} sfile;

typedef struct {
	sfile *f;
	size_t n, cap;
} sfiles;

static void sfiles_free(sfiles *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->f[i].path);
	free(l->f);
}

static kb_err *walk(kb_store *s, const kb_hash *tree, const char *prefix, int depth, sfiles *out)
{
	if (depth > 32)
		return kb_errf("snapshot tree nests deeper than 32 directories at '%s'", prefix);
	kb_tree t;
	kb_err *err = kb_store_read_tree(s, tree, &t);
	if (err)
		return err;
	for (size_t i = 0; i < t.n && !err; i++) {
		const kb_tree_entry *e = &t.e[i];
		char *p = *prefix ? kb_asprintf("%s/%.*s", prefix, (int)e->namelen, e->name)
				  : kb_strndup(e->name, e->namelen);
		if (e->type == KB_ENT_DIR) {
			err = walk(s, &e->hash, p, depth + 1, out);
			free(p);
		} else if (e->type == KB_ENT_FILE || e->type == KB_ENT_EXEC) {
			if (out->n == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 16;
				out->f = kb_realloc(out->f, out->cap * sizeof *out->f);
			}
			out->f[out->n].path = p;
			out->f[out->n++].hash = e->hash;
		} else {
			free(p);
		}
	}
	kb_tree_free(&t);
	return err;
}

static const sfile *sfiles_find(const sfiles *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->f[i].path, path))
			return &l->f[i];
	return NULL;
}

/* a read stream on a stored blob, decompressed according to name */
static kb_err *open_blob(kb_store *s, const sfile *f, const char *upstream, FILE **fp)
{
	int fd;
	kb_err *err = kb_store_open_object(s, &f->hash, &fd);
	if (err)
		return kb_err_wrap(err, "upstream '%s': %s", upstream, f->path);
	const char *base = strrchr(f->path, '/');
	*fp = solv_xfopen_fd(base ? base + 1 : f->path, fd, "r");
	if (!*fp) {
		close(fd);
		return kb_errf("upstream '%s': cannot open %s for reading", upstream, f->path);
	}
	return NULL;
}

/* ---- apt ---- */

/* the Packages variants libsolv can read, fastest first */
static const char *const pkg_names[] = {"Packages", "Packages.zst", "Packages.gz", "Packages.xz",
					"Packages.bz2"};
enum { NPKGNAMES = sizeof pkg_names / sizeof pkg_names[0] };

static int arch_wanted(const kb_upstream_def *u, const char *a, size_t alen)
{
	if (alen == 3 && !memcmp(a, "all", 3))
		return 1;
	for (size_t i = 0; i < u->narchs; i++)
		if (strlen(u->archs[i]) == alen && !memcmp(u->archs[i], a, alen))
			return 1;
	return 0;
}

/* index (into pkg_names) of a Packages file of this upstream's
 * architectures outside by-hash and debian-installer, else -1 */
static int packages_kind(const kb_upstream_def *u, const char *path)
{
	const char *base = strrchr(path, '/');
	if (!base)
		return -1;
	int kind = -1;
	for (int k = 0; k < NPKGNAMES; k++)
		if (!strcmp(base + 1, pkg_names[k]))
			kind = k;
	if (kind < 0)
		return -1;
	const char *dir = base;
	while (dir > path && dir[-1] != '/')
		dir--;
	if (base - dir < 8 || memcmp(dir, "binary-", 7) || !arch_wanted(u, dir + 7, (size_t)(base - dir - 7)))
		return -1;
	if (strstr(path, "/by-hash/") || strstr(path, "debian-installer/") || strncmp(path, "dists/", 6))
		return -1;
	return kind;
}

/* Feeding libsolv: the index is read line by line; of each stanza only the
 * fields that can change a solution or what a closure reports are passed
 * on (libsolv would otherwise copy descriptions, homepages and the like
 * into its pool for nothing), in batches of whole stanzas, each batch read
 * by one repo_add_debpackages call. Size, which libsolv does not read, is
 * kept per stanza and set on the solvable the stanza became: stanza k of a
 * batch is solvable k of what the call added (checked: one each). */
typedef struct {
	const char *p;
	size_t left;
} memsrc;

static ssize_t memsrc_read(void *c, char *buf, size_t n)
{
	memsrc *m = c;
	if (n > m->left)
		n = m->left;
	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (ssize_t)n;
}

typedef struct {
	Repo *repo;
	FILE *feed; /* reads m */
	memsrc m;
	kb_buf out; /* whole filtered stanzas, then the one being read */
	uint64_t *sizes; /* of each whole stanza in out */
	unsigned char *ess; /* each whole stanza: Essential: yes */
	size_t nsizes, capsizes;
	/* the stanza being read */
	size_t mark; /* where it starts in out */
	int has_pkg, keep, essential;
	uint64_t size;
} debload;

enum { DEB_BATCH = 1 << 20 };

/* hands the whole stanzas in out to libsolv; -1 if the solvables it made
 * do not pair with the stanzas */
static int deb_flush(debload *d)
{
	if (!d->mark)
		return 0;
	Pool *pool = d->repo->pool;
	int before = pool->nsolvables;
	d->m.p = d->out.p;
	d->m.left = d->mark;
	clearerr(d->feed);
	repo_add_debpackages(d->repo, d->feed, REPO_REUSE_REPODATA | REPO_NO_INTERNALIZE);
	if ((size_t)(pool->nsolvables - before) != d->nsizes || d->repo->end != pool->nsolvables)
		return -1;
	Repodata *data = repo_last_repodata(d->repo);
	Queue *essential = pool->appdata; /* set when the caller wants them */
	for (size_t i = 0; i < d->nsizes; i++) {
		if (d->sizes[i])
			repodata_set_num(data, before + (Id)i, SOLVABLE_DOWNLOADSIZE, d->sizes[i]);
		if (essential && d->ess[i])
			queue_push(essential, before + (Id)i);
	}
	memmove(d->out.p, d->out.p + d->mark, d->out.len - d->mark);
	d->out.len -= d->mark;
	d->mark = 0;
	d->nsizes = 0;
	return 0;
}

static int deb_end_stanza(debload *d)
{
	if (d->has_pkg) {
		if (d->out.p[d->out.len - 1] != '\n') /* a last line without one */
			kb_buf_addc(&d->out, '\n');
		kb_buf_addc(&d->out, '\n');
		if (d->nsizes == d->capsizes) {
			d->capsizes = d->capsizes ? d->capsizes * 2 : 4096;
			d->sizes = kb_realloc(d->sizes, d->capsizes * sizeof *d->sizes);
			d->ess = kb_realloc(d->ess, d->capsizes);
		}
		d->ess[d->nsizes] = (unsigned char)d->essential;
		d->sizes[d->nsizes++] = d->size;
	} else {
		d->out.len = d->mark;
	}
	d->mark = d->out.len;
	d->has_pkg = d->keep = d->essential = 0;
	d->size = 0;
	return d->mark >= DEB_BATCH ? deb_flush(d) : 0;
}

/* the fields libsolv's control2solvable reads that matter here: those
 * that make dependencies (Suggests and Enhances too: libsolv's policy
 * prefers suggested and enhancing candidates among alternatives), name
 * and version a package, and say where it is and what it hashes to */
static int deb_field_wanted(debload *d, const char *p, size_t n)
{
	const char *c = memchr(p, ':', n);
	if (!c)
		return 0;
	size_t tl = (size_t)(c - p);
#define IS(s) (tl == sizeof(s) - 1 && !strncasecmp(p, s, tl))
	switch (p[0] | 0x20) {
	case 'p':
		if (IS("Package"))
			return d->has_pkg = 1;
		return IS("Pre-Depends") || IS("Provides");
	case 'v':
		return IS("Version");
	case 'a':
		return IS("Architecture");
	case 'd':
		return IS("Depends");
	case 'c':
		return IS("Conflicts");
	case 'b':
		return IS("Breaks");
	case 'r':
		return IS("Replaces") || IS("Recommends");
	case 'f':
		return IS("Filename");
	case 'e':
		if (IS("Essential")) { /* libsolv does not keep it: noted here */
			const char *q = c + 1, *e = p + n;
			while (q < e && (*q == ' ' || *q == '\t'))
				q++;
			d->essential = e - q >= 3 && !strncasecmp(q, "yes", 3);
			return 0;
		}
		return IS("Enhances");
	case 'm':
		return IS("Multi-Arch");
	case 's':
		if (IS("Suggests"))
			return 1;
		if (IS("Size")) {
			const char *q = c + 1, *e = p + n;
			while (q < e && (*q == ' ' || *q == '\t'))
				q++;
			uint64_t v = 0;
			while (q < e && *q >= '0' && *q <= '9')
				v = v * 10 + (uint64_t)(*q++ - '0');
			d->size = v;
			return 0;
		}
		return tl >= 4 && !strncasecmp(p, "SHA", 3); /* SHA1, SHA256, SHA512 */
	}
	return 0;
#undef IS
}

/* one line, with its '\n' unless it is the file's last */
static int deb_line(debload *d, const char *p, size_t n)
{
	if (*p == '\n')
		return deb_end_stanza(d);
	if (*p == ' ' || *p == '\t') { /* continuation */
		if (d->keep)
			kb_buf_add(&d->out, p, n);
		return 0;
	}
	if ((d->keep = deb_field_wanted(d, p, n)))
		kb_buf_add(&d->out, p, n);
	return 0;
}

static kb_err *add_packages(Repo *repo, kb_store *s, const kb_upstream_def *u, const sfile *f)
{
	FILE *fp;
	kb_err *err = open_blob(s, f, u->name, &fp);
	if (err)
		return err;
	debload d = {.repo = repo};
	d.feed = fopencookie(&d.m, "r", (cookie_io_functions_t){.read = memsrc_read});
	if (!d.feed) {
		fclose(fp);
		return kb_errno(errno, "fopencookie");
	}
	size_t cap = 1 << 20, len = 0, start = 0;
	char *buf = kb_malloc(cap);
	int bad = 0;
	for (;;) {
		if (start) {
			memmove(buf, buf + start, len - start);
			len -= start;
			start = 0;
		}
		if (len == cap) { /* a line longer than the buffer */
			cap *= 2;
			buf = kb_realloc(buf, cap);
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		if (!got) {
			if (ferror(fp))
				err = kb_errf("upstream '%s': cannot read %s (damaged, or not in the "
					      "format its name says)",
					      u->name, f->path);
			break;
		}
		len += got;
		char *nl;
		while (!bad && (nl = memchr(buf + start, '\n', len - start))) {
			size_t end = (size_t)(nl - buf) + 1;
			bad = deb_line(&d, buf + start, end - start);
			start = end;
		}
	}
	if (!err && !bad && len > start)
		bad = deb_line(&d, buf + start, len - start);
	if (!err && !bad && d.out.len > d.mark)
		bad = deb_end_stanza(&d);
	if (!err && !bad)
		bad = deb_flush(&d);
	if (!err && bad)
		err = kb_errf("upstream '%s': %s: libsolv did not read one package per stanza",
			      u->name, f->path);
	free(buf);
	free(d.sizes);
	free(d.ess);
	kb_buf_free(&d.out);
	fclose(d.feed);
	fclose(fp);
	return err;
}

static kb_err *load_apt(Repo *repo, kb_store *s, const kb_upstream_def *u, const kb_hash *snap,
			const sfiles *files)
{
	/* per directory, the fastest variant present */
	int loaded = 0;
	for (size_t i = 0; i < files->n; i++) {
		const char *path = files->f[i].path;
		int kind = packages_kind(u, path);
		if (kind < 0)
			continue;
		size_t dirlen = (size_t)(strrchr(path, '/') - path);
		int better = 0;
		for (size_t j = 0; j < files->n && !better; j++) {
			const char *q = files->f[j].path;
			int k = packages_kind(u, q);
			better = k >= 0 && k < kind && !strncmp(q, path, dirlen + 1) &&
				 !strchr(q + dirlen + 1, '/');
		}
		if (better)
			continue;
		kb_err *err = add_packages(repo, s, u, &files->f[i]);
		if (err)
			return err;
		loaded++;
	}
	if (!loaded) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(snap, hex);
		return kb_errf("upstream '%s': snapshot %s holds no Packages index under "
			       "dists/*/binary-%s/ (run 'kbuild mirror sync %s')",
			       u->name, hex, u->narchs ? u->archs[0] : "ARCH", u->name);
	}
	return NULL;
}

/* ---- rpm-md ---- */

/* where repomd.xml says the metadata of this type is (NULL: not named) */
static const char *repomd_find(Repo *repo, const char *type)
{
	Pool *pool = repo->pool;
	Dataiterator di;
	const char *loc = NULL;
	dataiterator_init(&di, pool, repo, SOLVID_META, REPOSITORY_REPOMD_TYPE, type, SEARCH_STRING);
	dataiterator_prepend_keyname(&di, REPOSITORY_REPOMD);
	if (dataiterator_step(&di)) {
		dataiterator_setpos_parent(&di);
		loc = pool_lookup_str(pool, SOLVID_POS, REPOSITORY_REPOMD_LOCATION);
	}
	dataiterator_free(&di);
	return loc;
}

static kb_err *rpmmd_part(Repo *repo, kb_store *s, const kb_upstream_def *u, const sfiles *files,
			  const char *type, int required, int flags)
{
	const char *loc = repomd_find(repo, type);
	if (!loc) {
		if (!required)
			return NULL;
		return kb_errf("upstream '%s': repodata/repomd.xml names no %s metadata", u->name,
			       type);
	}
	char *path = kb_strdup(loc);
	const sfile *f = sfiles_find(files, path);
	if (!f) {
		kb_err *err = kb_errf("upstream '%s': the snapshot lacks %s, which repomd.xml "
				      "names as its %s metadata (run 'kbuild mirror sync %s')",
				      u->name, path, type, u->name);
		free(path);
		return err;
	}
	free(path);
	FILE *fp;
	kb_err *err = open_blob(s, f, u->name, &fp);
	if (err)
		return err;
	if (repo_add_rpmmd(repo, fp, NULL, flags)) /* internalized: filelists finds primary's packages */
		err = kb_errf("upstream '%s': %s: %s", u->name, f->path, pool_errstr(repo->pool));
	fclose(fp);
	return err;
}

static kb_err *load_rpmmd(Repo *repo, kb_store *s, const kb_upstream_def *u, const kb_hash *snap,
			  const sfiles *files)
{
	const sfile *md = sfiles_find(files, "repodata/repomd.xml");
	if (!md) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(snap, hex);
		return kb_errf("upstream '%s': snapshot %s holds no repodata/repomd.xml (run "
			       "'kbuild mirror sync %s')",
			       u->name, hex, u->name);
	}
	FILE *fp;
	kb_err *err = open_blob(s, md, u->name, &fp);
	if (err)
		return err;
	if (repo_add_repomdxml(repo, fp, 0))
		err = kb_errf("upstream '%s': repodata/repomd.xml: %s", u->name,
			      pool_errstr(repo->pool));
	fclose(fp);
	if (!err)
		err = rpmmd_part(repo, s, u, files, "primary", 1, 0);
	if (!err)
		err = rpmmd_part(repo, s, u, files, "filelists", 0, REPO_EXTEND_SOLVABLES);
	return err;
}

/* ---- the request ---- */

static char *upstream_names(const kb_upstream_def *ups, size_t nups)
{
	kb_buf b = {0};
	for (size_t i = 0; i < nups; i++) {
		if (i)
			kb_buf_adds(&b, i + 1 == nups ? " and " : ", ");
		kb_buf_addf(&b, "'%s'", ups[i].name);
	}
	return kb_buf_steal(&b);
}

static int matches(Pool *pool, Id dep)
{
	Id p, pp;
	FOR_PROVIDES(p, pp, dep)
	if (pool_match_nevr(pool, pool_id2solvable(pool, p), dep))
		return 1;
	return 0;
}

/* NAME[:ARCH][=VERSION] -> a job; unknown names are added to missing */
static void add_job(Pool *pool, Queue *job, const char *w, kb_buf *missing, kb_buf *virt)
{
	const char *eq = strchr(w, '=');
	size_t nlen = eq ? (size_t)(eq - w) : strlen(w);
	const char *colon = memchr(w, ':', nlen);
	Id name = pool_strn2id(pool, w, (unsigned)(colon ? (size_t)(colon - w) : nlen), 0);
	Id dep = name;
	if (dep && colon) {
		Id arch = pool_strn2id(pool, colon + 1, (unsigned)(nlen - (size_t)(colon + 1 - w)), 0);
		dep = arch ? pool_rel2id(pool, dep, arch, REL_ARCH, 1) : 0;
	}
	if (dep && eq) {
		Id evr = pool_str2id(pool, eq + 1, 0);
		dep = evr ? pool_rel2id(pool, dep, evr, REL_EQ, 1) : 0;
	}
	if (dep && matches(pool, dep)) {
		queue_push2(job, SOLVER_INSTALL | SOLVER_SOLVABLE_NAME, dep);
		return;
	}
	/* like apt: a virtual package with exactly one provider means it;
	 * like dnf, also with a version: kernel-devel-uname-r=KVER is what
	 * provides exactly that */
	Id p, pp, only = 0;
	int nprov = 0;
	if (dep && !colon) {
		FOR_PROVIDES(p, pp, dep)
		{
			if (!only || pool_id2solvable(pool, p)->name != pool_id2solvable(pool, only)->name)
				nprov++;
			only = p;
		}
	}
	if (nprov == 1) {
		queue_push2(job, SOLVER_INSTALL | SOLVER_SOLVABLE_PROVIDES, dep);
		return;
	}
	if (nprov > 1) {
		kb_buf_addf(virt, "%s'%s' is a virtual package provided by", virt->len ? "; " : "", w);
		int k = 0;
		Id last = 0;
		FOR_PROVIDES(p, pp, dep)
		{
			Id n = pool_id2solvable(pool, p)->name;
			if (n == last)
				continue;
			if (k++ == 8) {
				kb_buf_adds(virt, " ...");
				break;
			}
			kb_buf_addf(virt, " %s", pool_id2str(pool, n));
			last = n;
		}
		kb_buf_adds(virt, " (name one)");
		return;
	}
	kb_buf_addf(missing, "%s'%s'", missing->len ? ", " : "", w);
}

/* libsolv's text for each problem, the rules that make it (each once)
 * and its first way out */
static kb_err *problems_err(Solver *solv, int nprob, const char *const *want, size_t nwant)
{
	kb_buf b = {0};
	kb_buf_adds(&b, "cannot install");
	for (size_t i = 0; i < nwant; i++)
		kb_buf_addf(&b, " %s", want[i]);
	kb_buf_addf(&b, ": %d problem%s", nprob, nprob == 1 ? "" : "s");
	Queue rules;
	queue_init(&rules);
	for (Id p = 1; p <= nprob; p++) {
		char *head = kb_strdup(solver_problem2str(solv, p));
		kb_buf_addf(&b, "\n  problem %d: %s", (int)p, head);
		solver_findallproblemrules(solv, p, &rules);
		char **seen = kb_calloc((size_t)rules.count + 1, sizeof *seen);
		int nseen = 0;
		for (int i = 0; i < rules.count; i++) {
			Id from, to, dep;
			SolverRuleinfo type = solver_ruleinfo(solv, rules.elements[i], &from, &to, &dep);
			if (type == SOLVER_RULE_JOB)
				continue; /* "install X": the request itself */
			const char *line = solver_problemruleinfo2str(solv, type, from, to, dep);
			int dup = !strcmp(line, head);
			for (int j = 0; j < nseen && !dup; j++)
				dup = !strcmp(seen[j], line);
			if (dup)
				continue;
			if (nseen == 20) {
				kb_buf_adds(&b, "\n    ...");
				break;
			}
			seen[nseen++] = kb_strdup(line);
			kb_buf_addf(&b, "\n    %s", line);
		}
		for (int j = 0; j < nseen; j++)
			free(seen[j]);
		free(seen);
		free(head);
		Id sol = solver_next_solution(solv, p, 0);
		if (!sol)
			continue;
		kb_buf_adds(&b, "\n    a way out:");
		Id e = 0, ep, rp;
		int k = 0;
		while ((e = solver_next_solutionelement(solv, p, sol, e, &ep, &rp)) != 0)
			kb_buf_addf(&b, "%s %s", k++ ? ";" : "", solver_solutionelement2str(solv, ep, rp));
	}
	queue_free(&rules);
	kb_err *err = kb_errf("%s", b.p);
	kb_buf_free(&b);
	return err;
}

static int pkg_cmp(const void *x, const void *y)
{
	const kb_pkg *a = x, *b = y;
	int c = strcmp(a->name, b->name);
	return c ? c : strcmp(a->arch, b->arch);
}

kb_err *kb_mirror_closure(kb_store *s, const kb_upstream_def *ups, const kb_hash *snapshots,
			  size_t nups, const char *const *want, size_t nwant,
			  const kb_closure_opts *o, kb_arena *a, kb_pkg **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!nups)
		return kb_usage("mirror closure: name at least one upstream");
	int deb = !strcmp(ups[0].type, "apt");
	for (size_t i = 0; i < nups; i++) {
		if (strcmp(ups[i].type, "apt") && strcmp(ups[i].type, "rpm-md"))
			return kb_errf("upstream '%s' has type '%s'; closures know apt and rpm-md",
				       ups[i].name, ups[i].type);
		if (strcmp(ups[i].type, ups[0].type))
			return kb_errf("upstreams '%s' (%s) and '%s' (%s) cannot share a closure: "
				       "their types differ",
				       ups[0].name, ups[0].type, ups[i].name, ups[i].type);
	}
	const char *arch = o && o->arch ? o->arch : ups[0].narchs ? ups[0].archs[0] : NULL;
	if (!arch)
		return kb_errf("upstream '%s' names no architectures; pass --arch", ups[0].name);

	double t0 = now_ms();
	Pool *pool = pool_create();
	if (pool_setdisttype(pool, deb ? DISTTYPE_DEB : DISTTYPE_RPM) < 0) {
		pool_free(pool);
		return kb_errf("this libsolv cannot handle %s packages (it was built without "
			       "that distribution type)", deb ? "Debian" : "RPM");
	}
	pool_setarch(pool, arch);
	Queue essential;
	queue_init(&essential);
	if (o && o->essential)
		pool->appdata = &essential;
	kb_err *err = NULL;
	for (size_t i = 0; i < nups && !err; i++) {
		sfiles files = {0};
		Repo *repo = repo_create(pool, ups[i].name);
		err = walk(s, &snapshots[i], "", 0, &files);
		if (!err) {
			if (deb) {
				repo_add_repodata(repo, 0);
				err = load_apt(repo, s, &ups[i], &snapshots[i], &files);
			} else {
				err = load_rpmmd(repo, s, &ups[i], &snapshots[i], &files);
			}
		}
		sfiles_free(&files);
	}
	pool->appdata = NULL;
	if (err) {
		queue_free(&essential);
		pool_free(pool);
		return err;
	}
	double t1 = now_ms();
	Repo *r;
	int ri;
	FOR_REPOS(ri, r)
	repo_internalize(r);
	if (!deb) /* file dependencies, answered by the (internalized) file lists */
		pool_addfileprovides(pool);
	pool_createwhatprovides(pool);
	double t2 = now_ms();

	Queue job;
	queue_init(&job);
	kb_buf missing = {0}, virt = {0};
	for (size_t i = 0; i < nwant; i++)
		add_job(pool, &job, want[i], &missing, &virt);
	for (int i = 0; i < essential.count; i++) /* by name: the policy picks the version */
		queue_push2(&job, SOLVER_INSTALL | SOLVER_SOLVABLE_NAME,
			    pool_id2solvable(pool, essential.elements[i])->name);
	queue_free(&essential);
	if (missing.len || virt.len) {
		char *names = upstream_names(ups, nups);
		if (missing.len)
			err = kb_errf("no package named %s in %s%s%s", missing.p, names,
				      virt.len ? "; " : "", virt.len ? virt.p : "");
		else
			err = kb_errf("%s", virt.p);
		free(names);
	}
	kb_buf_free(&missing);
	kb_buf_free(&virt);

	Solver *solv = NULL;
	Transaction *trans = NULL;
	Queue chosen;
	queue_init(&chosen);
	if (!err && o && o->nodeps) {
		/* each package as asked, its dependencies not followed: the best
		 * candidate by the same policy a solve would use */
		for (int i = 0; i + 1 < job.count; i += 2) {
			Queue q;
			queue_init(&q);
			pool_job2solvables(pool, &q, job.elements[i], job.elements[i + 1]);
			pool_best_solvables(pool, &q, 0);
			if (q.count)
				queue_pushunique(&chosen, q.elements[0]);
			queue_free(&q);
		}
	} else if (!err) {
		solv = solver_create(pool);
		solver_set_flag(solv, SOLVER_FLAG_IGNORE_RECOMMENDED, o && o->recommends ? 0 : 1);
		int nprob = solver_solve(solv, &job);
		if (nprob)
			err = problems_err(solv, nprob, want, nwant);
		if (!err) {
			trans = solver_create_transaction(solv);
			for (int i = 0; i < trans->steps.count; i++) {
				Id p = trans->steps.elements[i];
				if (transaction_type(trans, p, SOLVER_TRANSACTION_SHOW_ACTIVE) ==
				    SOLVER_TRANSACTION_INSTALL)
					queue_push(&chosen, p);
			}
		}
	}
	double t3 = now_ms();
	kb_debug("closure: %d packages loaded in %.0f ms, indexed in %.0f ms, solved in %.0f ms",
		 pool->nsolvables - 2, t1 - t0, t2 - t1, t3 - t2);
	if (!err) {
		size_t cap = 0;
		kb_pkg *pk = NULL;
		size_t np = 0;
		for (int i = 0; i < chosen.count && !err; i++) {
			Solvable *sv = pool_id2solvable(pool, chosen.elements[i]);
			pk = kb_arena_grow(a, pk, np, &cap, sizeof *pk);
			kb_pkg *k = &pk[np++];
			k->name = kb_arena_strdup(a, pool_id2str(pool, sv->name));
			k->version = kb_arena_strdup(a, pool_id2str(pool, sv->evr));
			k->arch = kb_arena_strdup(a, pool_id2str(pool, sv->arch));
			k->upstream = kb_arena_strdup(a, sv->repo->name);
			const char *loc = solvable_lookup_location(sv, NULL);
			k->path = loc ? kb_arena_strdup(a, loc) : NULL;
			k->size = solvable_lookup_num(sv, SOLVABLE_DOWNLOADSIZE, 0);
			Id type = 0;
			const unsigned char *c = solvable_lookup_bin_checksum(sv, SOLVABLE_CHECKSUM, &type);
			if (!k->path)
				err = kb_errf("upstream '%s': package %s has no file name in its index",
					      k->upstream, pool_solvable2str(pool, sv));
			else if (!c || type != REPOKEY_TYPE_SHA256)
				err = kb_errf("upstream '%s': package %s has no SHA256 in its index%s%s",
					      k->upstream, pool_solvable2str(pool, sv),
					      c ? ", only " : "", c ? solv_chksum_type2str(type) : "");
			else
				memcpy(k->sha256.b, c, 32);
		}
		if (!err) {
			if (np)
				qsort(pk, np, sizeof *pk, pkg_cmp);
			*out = pk;
			*n = np;
		}
	}
	queue_free(&chosen);
	if (trans)
		transaction_free(trans);
	if (solv)
		solver_free(solv);
	queue_free(&job);
	pool_free(pool);
	return err;
}

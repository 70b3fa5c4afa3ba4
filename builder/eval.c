/* Recipes meet their locks: check that a lock covers a recipe, resolve
 * inputs into a new lock, bring locked inputs into the store, and turn
 * the whole into actions keyed by the hash of their definitions. */
#include "fetch.h"
#include "recipe.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *hex_of(kb_arena *a, const kb_hash *h)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	return kb_arena_strdup(a, hex);
}

static const char *label(kb_arena *a, const kb_input *in)
{
	return kb_arena_printf(a, "input '%s' (" KB_POS_FMT ")", in->name, KB_POS_ARGS(in->pos));
}

static int same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* a list as one lock value: the items, space-separated */
static const char *joined(kb_arena *a, const char *const *v, size_t n)
{
	kb_buf b = {0};
	for (size_t i = 0; i < n; i++)
		kb_buf_addf(&b, "%s%s", i ? " " : "", v[i]);
	const char *s = kb_arena_strndup(a, b.p ? b.p : "", b.len);
	kb_buf_free(&b);
	return s;
}

/* NULL if the lock entry was written for exactly this definition */
static const char *mismatch(kb_arena *a, const kb_input *in, const kb_lock_entry *e)
{
	if (!e)
		return "it is not in the lock";
	switch (in->kind) {
	case KB_IN_URL:
		if (!same(kb_lock_get(e, "origin"), in->url))
			return "its url differs from the lock";
		if (!same(kb_lock_get(e, "sha256"), hex_of(a, &in->sha256)))
			return "its sha256 differs from the lock";
		if (in->has_size &&
		    !same(kb_lock_get(e, "size"), kb_arena_printf(a, "%llu", (unsigned long long)in->size)))
			return "its size differs from the lock";
		return NULL;
	case KB_IN_GIT:
		if (!same(kb_lock_get(e, "origin"), in->url))
			return "its url differs from the lock";
		return same(kb_lock_get(e, "commit"), in->commit) ? NULL
								   : "its commit differs from the lock";
	case KB_IN_FILE:
		return same(kb_lock_get(e, "path"), in->path) ? NULL : "its path differs from the lock";
	case KB_IN_KEY:
		if (in->path)
			return same(kb_lock_get(e, "path"), in->path) ? NULL
								       : "its path differs from the lock";
		if (!same(kb_lock_get(e, "origin"), in->url))
			return "its url differs from the lock";
		if (in->fingerprint)
			return same(kb_lock_get(e, "fingerprint"), in->fingerprint)
				       ? NULL : "its fingerprint differs from the lock";
		if (!same(kb_lock_get(e, "sha256"), hex_of(a, &in->sha256)))
			return "its sha256 differs from the lock";
		return NULL;
	case KB_IN_PACKAGE:
		if (!same(kb_lock_get(e, "upstream"), in->upstream) ||
		    !same(kb_lock_get(e, "name"), in->pkgname) ||
		    (in->arch && !same(kb_lock_get(e, "arch"), in->arch)) ||
		    (in->version && !same(kb_lock_get(e, "version"), in->version)))
			return "its upstream, name, arch or version differs from the lock";
		return NULL;
	case KB_IN_BUILDROOT:
		if (!same(kb_lock_get(e, "upstreams"), joined(a, in->upstreams, in->nupstreams)) ||
		    !same(kb_lock_get(e, "packages"), joined(a, in->pkgs, in->npkgs)) ||
		    !same(kb_lock_get(e, "essential"), in->essential ? "true" : "false"))
			return "its upstreams, packages or essential differ from the lock";
		return NULL;
	}
	return "unknown kind";
}

kb_err *kb_lock_check(const kb_recipe *r, const kb_lock *l)
{
	kb_buf why = {0};
	size_t problems = 0;
	kb_arena *a = kb_arena_new();
	if (strcmp(l->recipe, r->name)) {
		kb_buf_addf(&why, "\n  %s is the lock of recipe '%s'", l->path, l->recipe);
		problems++;
	}
	for (size_t i = 0; i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		const char *m = mismatch(a, in, kb_lock_find(l, kb_inkind_name(in->kind), in->name));
		if (m) {
			kb_buf_addf(&why, "\n  " KB_POS_FMT ": input '%s': %s", KB_POS_ARGS(in->pos),
				    in->name, m);
			problems++;
		}
	}
	for (size_t i = 0; i < r->nsrcs; i++) {
		const kb_lock_entry *e = kb_lock_find(l, "source", r->srcs[i].path);
		if (!e || !same(kb_lock_get(e, "sha256"), hex_of(a, &r->srcs[i].sha256))) {
			kb_buf_addf(&why, "\n  %s %s", r->srcs[i].path,
				    e ? "changed since the lock was written" : "is not in the lock");
			problems++;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		const kb_lock_entry *e = &l->e[i];
		int known = 0;
		if (!strcmp(e->kind, "source")) {
			for (size_t j = 0; j < r->nsrcs; j++)
				known |= !strcmp(r->srcs[j].path, e->name);
		} else if (strchr(e->name, '/')) {
			char *root = kb_strndup(e->name, (size_t)(strchr(e->name, '/') - e->name));
			const kb_input *in = kb_recipe_input(r, root);
			known = in && in->kind == KB_IN_BUILDROOT && !strcmp(e->kind, "package");
			free(root);
		} else {
			const kb_input *in = kb_recipe_input(r, e->name);
			known = in && !strcmp(kb_inkind_name(in->kind), e->kind);
			if (known && in->kind == KB_IN_BUILDROOT) {
				size_t nchild = 0;
				for (size_t j = 0; j < l->n; j++)
					nchild += kb_lock_child(&l->e[j], in->name);
				const char *count = kb_lock_get(e, "count");
				if (!count || strtoull(count, NULL, 10) != nchild) {
					kb_buf_addf(&why, "\n  %s:%d: buildroot '%s' locks %s packages but "
						    "the lock lists %zu", l->path, e->line, e->name,
						    count ? count : "no count of", nchild);
					problems++;
				}
			}
		}
		if (!known) {
			kb_buf_addf(&why, "\n  %s:%d: %s '%s' is no longer in the recipe", l->path,
				    e->line, e->kind, e->name);
			problems++;
		}
	}
	kb_arena_free(a);
	kb_err *err = NULL;
	if (problems)
		err = kb_errf("%s does not match recipe '%s' (%zu problem%s):%s\nrun 'kbuild lock %s' "
			      "to resolve the inputs again", l->path, r->name, problems,
			      problems == 1 ? "" : "s", why.p, r->name);
	kb_buf_free(&why);
	return err;
}

/* ---- keys ---- */

static int has_prefix(const kb_buf *b, const char *p)
{
	size_t n = strlen(p);
	return b->len >= n && !memcmp(b->p, p, n);
}

/* "openpgp" or "x509"; refuses private keys before they can be stored */
static kb_err *key_format(const kb_buf *b, const char *lab, const char **fmt)
{
	if ((b->len && memmem(b->p, b->len, "PRIVATE KEY", 11)) ||
	    (b->len && ((unsigned char)b->p[0] == 0x95 || (unsigned char)b->p[0] == 0xc5)))
		return kb_errf("%s is a private key; recipes name public keys and certificates only "
			       "(private keys stay in the key directory, never in the store)", lab);
	if (has_prefix(b, "-----BEGIN PGP PUBLIC KEY BLOCK-----") ||
	    (b->len > 2 && ((unsigned char)b->p[0] == 0x99 || (unsigned char)b->p[0] == 0xc6))) {
		*fmt = "openpgp";
		return NULL;
	}
	X509 *x = NULL;
	if (has_prefix(b, "-----BEGIN CERTIFICATE-----")) {
		BIO *bio = BIO_new_mem_buf(b->p, (int)b->len);
		x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	} else if (b->len) {
		const unsigned char *p = (const unsigned char *)b->p;
		x = d2i_X509(NULL, &p, (long)b->len);
	}
	if (x) {
		X509_free(x);
		*fmt = "x509";
		return NULL;
	}
	return kb_errf("%s is neither an OpenPGP public key nor an X.509 certificate", lab);
}

/* ---- inputs into the store ---- */

typedef struct {
	kb_oid oid;
	uint64_t size;
	const char *format; /* keys */
	/* packages */
	const char *version, *arch, *path;
	kb_hash metadata; /* the snapshot they were resolved from */
	/* buildroots: the closure, and each package's upstream snapshot */
	kb_pkg *pkgs;
	kb_hash *pkgmeta;
	size_t npkgs;
} resolved;

static kb_err *upstream_url(const kb_recipe *r, const char *name, kb_arena *a, const char **url)
{
	const kb_upstream *u = kb_recipe_upstream(r, name);
	const char *from;
	return kb_upstream_resolve(a, u, url, &from);
}

/* each upstream synced (or, offline, its latest snapshot) once per run */
typedef struct {
	kb_upstream_def d;
	kb_hash snap;
	int have;
} upsnap;

static kb_err *snapshot_of(kb_store *s, const kb_recipe *r, const kb_fetch_opts *fo,
			   upsnap *cache, const char *name, upsnap **out)
{
	const kb_upstream *u = kb_recipe_upstream(r, name);
	upsnap *c = &cache[u - r->up];
	*out = c;
	if (c->have)
		return NULL;
	kb_err *err = kb_upstream_def_of(s, r, u, &c->d);
	int found = 1;
	char *ref = NULL;
	if (!err && fo->offline) {
		if (!(err = kb_mirror_latest(s, u->name, &c->snap, &found)) && !found)
			err = kb_errf("upstream '%s' has no snapshot in the store and the network "
				      "is off (--offline)", u->name);
	} else if (!err) {
		err = kb_mirror_sync(s, &c->d, fo, &c->snap, &ref);
		free(ref);
	}
	c->have = !err;
	return err;
}

/* A buildroot's closure over its upstreams (one pool), downloaded. */
static kb_err *resolve_buildroot(kb_store *s, const kb_recipe *r, const kb_fetch_opts *fo,
				 upsnap *cache, kb_arena *a, const kb_input *in, resolved *res)
{
	kb_upstream_def *defs = kb_arena_alloc(a, in->nupstreams * sizeof *defs);
	kb_hash *snaps = kb_arena_alloc(a, in->nupstreams * sizeof *snaps);
	kb_err *err = NULL;
	for (size_t k = 0; !err && k < in->nupstreams; k++) {
		upsnap *u;
		if (!(err = snapshot_of(s, r, fo, cache, in->upstreams[k], &u))) {
			defs[k] = u->d;
			snaps[k] = u->snap;
		}
	}
	kb_closure_opts co = {.essential = !err && in->essential && !strcmp(defs[0].type, "apt")};
	if (!err)
		err = kb_mirror_closure(s, defs, snaps, in->nupstreams, in->pkgs, in->npkgs, &co, a,
					&res->pkgs, &res->npkgs);
	for (size_t i = 1; !err && i < res->npkgs; i++)
		if (!strcmp(res->pkgs[i].name, res->pkgs[i - 1].name))
			err = kb_errf("the closure holds %s twice (%s and %s); a build root has one "
				      "architecture", res->pkgs[i].name, res->pkgs[i - 1].arch,
				      res->pkgs[i].arch);
	if (!err) {
		res->pkgmeta = kb_arena_alloc(a, (res->npkgs + 1) * sizeof *res->pkgmeta);
		for (size_t i = 0; i < res->npkgs; i++)
			for (size_t k = 0; k < in->nupstreams; k++)
				if (!strcmp(res->pkgs[i].upstream, defs[k].name))
					res->pkgmeta[i] = snaps[k];
		kb_info("buildroot %s: %zu packages", in->name, res->npkgs);
		err = kb_mirror_download(s, defs, in->nupstreams, res->pkgs, res->npkgs, fo);
	}
	return err ? kb_err_wrap(err, "buildroot '%s' (" KB_POS_FMT ")", in->name,
				 KB_POS_ARGS(in->pos))
		   : NULL;
}

/* Package inputs and buildroots without a lock: one sync per upstream,
 * one solve per upstream for package inputs (each package as that solve
 * chose it) and one per buildroot. */
static kb_err *resolve_packages(kb_store *s, const kb_recipe *r, const kb_fetch_opts *fo,
				kb_arena *a, resolved *res)
{
	kb_err *err = NULL;
	upsnap *cache = kb_arena_alloc(a, (r->nup + 1) * sizeof *cache);
	memset(cache, 0, (r->nup + 1) * sizeof *cache);
	for (size_t ui = 0; !err && ui < r->nup; ui++) {
		const kb_upstream *u = &r->up[ui];
		const char **want = kb_arena_alloc(a, (r->nin + 1) * sizeof *want);
		size_t nwant = 0;
		for (size_t i = 0; i < r->nin; i++)
			if (r->in[i].kind == KB_IN_PACKAGE && !strcmp(r->in[i].upstream, u->name))
				want[nwant++] = r->in[i].pkgname;
		if (!nwant)
			continue;
		upsnap *us;
		if ((err = snapshot_of(s, r, fo, cache, u->name, &us)))
			break;
		kb_pkg *p = NULL;
		size_t np = 0;
		/* a package input is one file: its dependencies need not be there */
		kb_closure_opts co = {.nodeps = 1};
		err = kb_mirror_closure(s, &us->d, &us->snap, 1, want, nwant, &co, a, &p, &np);
		kb_pkg *chosen = kb_arena_alloc(a, (r->nin + 1) * sizeof *chosen);
		size_t nchosen = 0;
		for (size_t i = 0; !err && i < r->nin; i++) {
			const kb_input *in = &r->in[i];
			if (in->kind != KB_IN_PACKAGE || strcmp(in->upstream, u->name))
				continue;
			const kb_pkg *hit = NULL;
			for (size_t j = 0; j < np && !hit; j++)
				if (!strcmp(p[j].name, in->pkgname) && (!in->arch || !strcmp(p[j].arch, in->arch)))
					hit = &p[j];
			/* NAME=VERSION: the one package providing exactly that
			 * (kernel-core-uname-r=KVER), resolved on its own */
			kb_pkg *one = NULL;
			size_t none = 0;
			if (!hit && strchr(in->pkgname, '=') &&
			    !(err = kb_mirror_closure(s, &us->d, &us->snap, 1, &in->pkgname, 1, &co, a,
						      &one, &none)) && none == 1)
				hit = one;
			if (err)
				break;
			if (!hit)
				err = kb_errf("%s: upstream '%s' has no package %s%s%s", label(a, in),
					      u->name, in->pkgname, in->arch ? " for " : "",
					      in->arch ? in->arch : "");
			else if (in->version && strcmp(hit->version, in->version))
				err = kb_errf("%s: upstream '%s' has %s %s, not the version %s the recipe "
					      "asks for", label(a, in), u->name, hit->name, hit->version,
					      in->version);
			else {
				res[i] = (resolved){.oid = {KB_BLOB, hit->sha256}, .size = hit->size,
						    .version = hit->version, .arch = hit->arch,
						    .path = hit->path, .metadata = us->snap};
				chosen[nchosen++] = *hit;
			}
		}
		if (!err)
			err = kb_mirror_download(s, &us->d, 1, chosen, nchosen, fo);
	}
	for (size_t i = 0; !err && i < r->nin; i++)
		if (r->in[i].kind == KB_IN_BUILDROOT)
			err = resolve_buildroot(s, r, fo, cache, a, &r->in[i], &res[i]);
	return err;
}

/* a file or key of the repository, staged in t (one transaction for all of
 * a recipe's local inputs) */
static kb_err *add_local(kb_txn *t, kb_arena *a, const kb_input *in, resolved *out)
{
	const char *lab = label(a, in);
	kb_err *err = NULL;
	if (in->kind == KB_IN_KEY) {
		kb_buf b = {0};
		if (!(err = kb_read_file(AT_FDCWD, in->abspath, 1 << 20, &b)) &&
		    !(err = key_format(&b, lab, &out->format))) {
			out->oid.type = KB_BLOB;
			err = kb_txn_add_bytes(t, b.p ? b.p : "", b.len, 0, &out->oid.hash);
		}
		kb_buf_free(&b);
	} else {
		err = kb_txn_add_path(t, in->abspath, &out->oid);
	}
	return err ? kb_err_wrap(err, "%s", lab) : NULL;
}

/* A key fetched for its fingerprint: stored only if it is that key. */
static kb_err *pinned_key(kb_store *s, const kb_input *in, const kb_buf *body, kb_arena *a,
			  resolved *res)
{
	const char *lab = label(a, in);
	char *fpr = NULL, *uid = NULL;
	kb_err *err = key_format(body, lab, &res->format);
	if (!err && strcmp(res->format, "openpgp"))
		err = kb_errf("%s is not an OpenPGP key, so it has no fingerprint to check", lab);
	if (!err && (err = kb_pgp_key_info(body, &fpr, &uid, NULL)))
		err = kb_err_wrap(err, "%s", lab);
	if (!err && strcmp(fpr, in->fingerprint))
		err = kb_errf("%s: %s serves key %s, not %s; nothing was stored", lab, in->url, fpr,
			      in->fingerprint);
	kb_txn *t;
	if (!err && !(err = kb_txn_begin(s, &t))) {
		res->oid.type = KB_BLOB;
		if ((err = kb_txn_add_bytes(t, body->p, body->len, 0, &res->oid.hash)))
			kb_txn_abort(t);
		else
			err = kb_txn_commit(t, &res->oid, 1);
	}
	free(fpr);
	free(uid);
	return err;
}

/* the request for a package as the lock pins it */
static kb_err *locked_pkg(const kb_recipe *r, const kb_lock *l, const kb_lock_entry *e,
			  const char *upstream, const char *lab, kb_arena *a, kb_url_req *req)
{
	const char *url, *path = kb_lock_get(e, "path"), *hash = kb_lock_get(e, "sha256");
	const char *size = kb_lock_get(e, "size");
	if (!path || !hash || !size || !upstream || !kb_recipe_upstream(r, upstream) ||
	    kb_hash_parse(hash, strlen(hash), &req->sha256))
		return kb_errf("%s: %s:%d lacks its upstream, path, size or sha256; run 'kbuild lock "
			       "%s'", lab, l->path, e->line, r->name);
	kb_err *err = upstream_url(r, upstream, a, &url);
	if (err)
		return err;
	char *full = kb_mirror_url(url, path);
	req->url = kb_arena_strdup(a, full);
	free(full);
	req->size = strtoull(size, NULL, 10);
	req->has_size = 1;
	req->label = lab;
	return NULL;
}

/* Brings every input into the store. With a lock, remote inputs are taken
 * as it pins them and local ones must still hash as it says. */
static kb_err *materialize_all(kb_store *s, const kb_recipe *r, const kb_lock *l,
			       const kb_fetch_opts *fo, kb_arena *a, resolved *res, kb_buf *why,
			       size_t *nfail);

/* every input is tried, and every failure named in one error */
static kb_err *materialize(kb_store *s, const kb_recipe *r, const kb_lock *l,
			   const kb_fetch_opts *fo, kb_arena *a, resolved *res)
{
	kb_buf why = {0};
	size_t nfail = 0;
	kb_err *err = materialize_all(s, r, l, fo, a, res, &why, &nfail);
	if (!err && nfail == 1)
		err = kb_errf("%s", why.p + 3);
	else if (!err && nfail)
		err = kb_errf("%zu inputs of recipe '%s' failed:%s", nfail, r->name, why.p);
	if (err && fo->offline)
		err = kb_err_wrap(err, "offline: bring the inputs in with 'kbuild lock %s' or "
				       "'kbuild recipe %s' without --offline, or 'kbuild store import "
				       "BUNDLE'; then", r->name, r->name);
	kb_buf_free(&why);
	return err;
}

static void note(kb_buf *why, size_t *nfail, kb_err *err)
{
	kb_buf_addf(why, "\n  %s", err->msg);
	(*nfail)++;
	kb_err_free(err);
}

static kb_err *materialize_all(kb_store *s, const kb_recipe *r, const kb_lock *l,
			       const kb_fetch_opts *fo, kb_arena *a, resolved *res, kb_buf *why,
			       size_t *nfail)
{
	/* a buildroot's packages are requests of their own */
	size_t maxreq = r->nin + (l ? l->n : 0) + 1;
	kb_url_req *urls = kb_arena_alloc(a, maxreq * sizeof *urls);
	memset(urls, 0, maxreq * sizeof *urls);
	size_t *urlidx = kb_arena_alloc(a, maxreq * sizeof *urlidx), nurl = 0;
	kb_oid *local = kb_arena_alloc(a, (r->nin + 1) * sizeof *local);
	size_t nlocal = 0, local_failed = 0;
	kb_txn *t = NULL;
	kb_err *err = NULL;
	for (size_t i = 0; i < r->nin; i++) {
		if (err)
			note(why, nfail, err);
		err = NULL;
		int is_local = r->in[i].kind == KB_IN_FILE || (r->in[i].kind == KB_IN_KEY && r->in[i].path);
		if (is_local && !t && (err = kb_txn_begin(s, &t)))
			continue;
		const kb_input *in = &r->in[i];
		const kb_lock_entry *e = l ? kb_lock_find(l, kb_inkind_name(in->kind), in->name) : NULL;
		switch (in->kind) {
		case KB_IN_URL:
		case KB_IN_KEY:
			if (in->kind == KB_IN_KEY && in->path) {
				if ((err = add_local(t, a, in, &res[i])))
					break;
				local[nlocal++] = res[i].oid;
				const char *locked = e ? kb_lock_get(e, "sha256") : NULL;
				if (locked && !same(locked, hex_of(a, &res[i].oid.hash)))
					err = kb_errf("%s: %s changed since the lock was written (it hashes "
						      "to %s, the lock says %s); run 'kbuild lock %s' "
						      "if the change is intended", label(a, in), in->path,
						      hex_of(a, &res[i].oid.hash), locked, r->name);
				break;
			}
			urls[nurl] = (kb_url_req){.url = in->url, .sha256 = in->sha256,
						  .size = in->size, .has_size = in->has_size,
						  .label = label(a, in)};
			if (in->fingerprint && e) { /* the lock pins the bytes */
				const char *h = kb_lock_get(e, "sha256");
				if (!h || kb_hash_parse(h, strlen(h), &urls[nurl].sha256)) {
					err = kb_errf("%s: %s has no sha256 for it; run 'kbuild lock %s'",
						      label(a, in), l->path, r->name);
					break;
				}
			} else if (in->fingerprint) { /* locking: any bytes, checked below */
				urls[nurl].any_content = 1;
				urls[nurl].max_size = 1 << 20;
				urls[nurl].body = kb_arena_alloc(a, sizeof(kb_buf));
				memset(urls[nurl].body, 0, sizeof(kb_buf));
			}
			urlidx[nurl++] = i;
			break;
		case KB_IN_GIT: {
			kb_git_req g = {.url = in->url, .commit = in->commit, .label = label(a, in)};
			const char *tree = e ? kb_lock_get(e, "tree") : NULL;
			if (tree && !kb_hash_parse(tree, strlen(tree), &g.tree))
				g.has_tree = 1;
			if (!(err = kb_fetch_git(s, &g, fo)))
				res[i].oid = (kb_oid){KB_TREE, g.tree};
			break;
		}
		case KB_IN_FILE: {
			if ((err = add_local(t, a, in, &res[i])))
				break;
			local[nlocal++] = res[i].oid;
			const char *locked = e ? kb_lock_get(e, "sha256") : NULL;
			if (locked && !same(locked, hex_of(a, &res[i].oid.hash)))
				err = kb_errf("%s: %s changed since the lock was written; run 'kbuild "
					      "lock %s' if the change is intended", label(a, in),
					      in->path, r->name);
			break;
		}
		case KB_IN_PACKAGE:
			if (!e)
				break; /* resolved below, all of an upstream at once */
			if (!(err = locked_pkg(r, l, e, in->upstream, label(a, in), a, &urls[nurl])))
				urlidx[nurl++] = i;
			break;
		case KB_IN_BUILDROOT:
			for (size_t k = 0; e && k < l->n; k++) {
				const kb_lock_entry *c = &l->e[k];
				if (!kb_lock_child(c, in->name))
					continue;
				const char *lab = kb_arena_printf(a, "%s: package %s", label(a, in),
								  c->name + strlen(in->name) + 1);
				kb_err *perr = locked_pkg(r, l, c, kb_lock_get(c, "upstream"), lab, a,
							  &urls[nurl]);
				if (perr)
					note(why, nfail, perr);
				else
					urlidx[nurl++] = i;
			}
			break;
		}
	}
	if (err)
		note(why, nfail, err);
	err = NULL;
	/* local inputs land together, or not at all */
	local_failed = *nfail;
	if (t && local_failed)
		kb_txn_abort(t);
	else if (t && (err = kb_txn_commit(t, local, nlocal))) {
		note(why, nfail, err);
		err = NULL;
	}
	if (!l && (err = resolve_packages(s, r, fo, a, res))) {
		note(why, nfail, err);
		err = NULL;
	}
	if (nurl && (err = kb_fetch_urls(s, urls, nurl, fo))) {
		kb_err_free(err); /* each request says what went wrong for it */
		err = NULL;
	}
	for (size_t j = 0; j < nurl; j++) {
		size_t i = urlidx[j];
		if (urls[j].err) {
			note(why, nfail, urls[j].err);
			urls[j].err = NULL;
		}
		if (r->in[i].kind == KB_IN_BUILDROOT)
			continue;
		res[i].oid = (kb_oid){KB_BLOB, urls[j].sha256};
		if (r->in[i].kind != KB_IN_PACKAGE) /* a package's size is the lock's */
			res[i].size = urls[j].got_size;
	}
	for (size_t j = 0; !err && !*nfail && j < nurl; j++) {
		const kb_input *in = &r->in[urlidx[j]];
		if (in->kind != KB_IN_KEY)
			continue;
		if (urls[j].body) {
			err = pinned_key(s, in, urls[j].body, a, &res[urlidx[j]]);
			kb_buf_free(urls[j].body);
			continue;
		}
		kb_buf b = {0};
		err = kb_store_read(s, &res[urlidx[j]].oid.hash, 1 << 20, &b);
		if (!err)
			err = key_format(&b, label(a, in), &res[urlidx[j]].format);
		kb_buf_free(&b);
	}
	return err;
}

static void kv(kb_arena *a, kb_lock_entry *e, size_t *cap, const char *k, const char *v)
{
	e->kv = kb_arena_grow(a, e->kv, e->nkv, cap, sizeof *e->kv);
	e->kv[e->nkv++] = (kb_kv){k, v};
}

/* the fetchers' options for a run of kbuild lock / recipe */
static void fetch_opts(const kb_run_opts *o, kb_fetch_opts *fo)
{
	kb_fetch_opts_init(fo);
	fo->offline = o->offline;
	if (o->jobs)
		fo->jobs = o->jobs;
}

/* 1 if old has no entry like e, key for key */
static int pins_moved(const kb_lock *old, const kb_lock_entry *e)
{
	const kb_lock_entry *oe = kb_lock_find(old, e->kind, e->name);
	if (!oe || oe->nkv != e->nkv)
		return 1;
	for (size_t k = 0; k < e->nkv; k++)
		if (!same(kb_lock_get(oe, e->kv[k].key), e->kv[k].value))
			return 1;
	return 0;
}

kb_err *kb_lock_update(kb_store *s, const kb_recipe *r, const kb_run_opts *o, size_t *changed)
{
	kb_lock *old = NULL;
	int found;
	kb_err *err = kb_lock_read(r->lockpath, &old, &found);
	if (err)
		return err;
	kb_arena *a = kb_arena_new();
	kb_fetch_opts fo;
	fetch_opts(o, &fo);
	resolved *res = kb_arena_alloc(a, (r->nin + 1) * sizeof *res);
	/* the old lock is not trusted for what it pins: fetchers check again */
	err = materialize(s, r, NULL, &fo, a, res);
	kb_lock l = {a, r->lockpath, r->name, NULL, 0};
	size_t cap = 0;
	*changed = 0;
	for (size_t i = 0; !err && i < r->nsrcs; i++) {
		l.e = kb_arena_grow(a, l.e, l.n, &cap, sizeof *l.e);
		kb_lock_entry *e = &l.e[l.n++];
		size_t kc = 0;
		*e = (kb_lock_entry){"source", r->srcs[i].path, NULL, 0, 0};
		kv(a, e, &kc, "sha256", hex_of(a, &r->srcs[i].sha256));
	}
	for (size_t i = 0; !err && i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		l.e = kb_arena_grow(a, l.e, l.n, &cap, sizeof *l.e);
		kb_lock_entry *e = &l.e[l.n++];
		size_t kc = 0;
		*e = (kb_lock_entry){kb_inkind_name(in->kind), in->name, NULL, 0, 0};
		const char *h = hex_of(a, &res[i].oid.hash);
		switch (in->kind) {
		case KB_IN_URL:
			kv(a, e, &kc, "origin", in->url);
			kv(a, e, &kc, "sha256", h);
			if (res[i].size || !kb_store_has(s, &in->sha256))
				kv(a, e, &kc, "size", kb_arena_printf(a, "%llu", (unsigned long long)res[i].size));
			else {
				int fd;
				struct stat st;
				if (!(err = kb_store_open_object(s, &in->sha256, &fd))) {
					if (fstat(fd, &st) == 0)
						kv(a, e, &kc, "size",
						   kb_arena_printf(a, "%lld", (long long)st.st_size));
					close(fd);
				}
			}
			break;
		case KB_IN_GIT:
			kv(a, e, &kc, "origin", in->url);
			kv(a, e, &kc, "commit", in->commit);
			kv(a, e, &kc, "tree", h);
			break;
		case KB_IN_FILE:
			kv(a, e, &kc, "path", in->path);
			kv(a, e, &kc, "type", kb_objtype_name(res[i].oid.type));
			kv(a, e, &kc, "sha256", h);
			break;
		case KB_IN_KEY:
			kv(a, e, &kc, in->path ? "path" : "origin", in->path ? in->path : in->url);
			kv(a, e, &kc, "format", res[i].format);
			kv(a, e, &kc, "sha256", h);
			if (in->fingerprint)
				kv(a, e, &kc, "fingerprint", in->fingerprint);
			break;
		case KB_IN_PACKAGE:
			kv(a, e, &kc, "upstream", in->upstream);
			kv(a, e, &kc, "name", in->pkgname);
			kv(a, e, &kc, "version", res[i].version);
			kv(a, e, &kc, "arch", res[i].arch);
			kv(a, e, &kc, "path", res[i].path);
			kv(a, e, &kc, "size", kb_arena_printf(a, "%llu", (unsigned long long)res[i].size));
			kv(a, e, &kc, "sha256", h);
			kv(a, e, &kc, "metadata", hex_of(a, &res[i].metadata));
			break;
		case KB_IN_BUILDROOT:
			kv(a, e, &kc, "upstreams", joined(a, in->upstreams, in->nupstreams));
			kv(a, e, &kc, "packages", joined(a, in->pkgs, in->npkgs));
			kv(a, e, &kc, "essential", in->essential ? "true" : "false");
			kv(a, e, &kc, "count", kb_arena_printf(a, "%zu", res[i].npkgs));
			break;
		}
		int moved = mismatch(a, in, kb_lock_find(old, e->kind, e->name)) != NULL;
		/* same definition: did what it pins move? */
		moved = moved || pins_moved(old, e);
		for (size_t k = 0; in->kind == KB_IN_BUILDROOT && k < res[i].npkgs; k++) {
			const kb_pkg *p = &res[i].pkgs[k];
			l.e = kb_arena_grow(a, l.e, l.n, &cap, sizeof *l.e);
			kb_lock_entry *c = &l.e[l.n++];
			size_t cc = 0;
			*c = (kb_lock_entry){"package", kb_arena_printf(a, "%s/%s", in->name, p->name),
					     NULL, 0, 0};
			kv(a, c, &cc, "upstream", p->upstream);
			kv(a, c, &cc, "name", p->name);
			kv(a, c, &cc, "version", p->version);
			kv(a, c, &cc, "arch", p->arch);
			kv(a, c, &cc, "path", p->path);
			kv(a, c, &cc, "size", kb_arena_printf(a, "%llu", (unsigned long long)p->size));
			kv(a, c, &cc, "sha256", hex_of(a, &p->sha256));
			kv(a, c, &cc, "metadata", hex_of(a, &res[i].pkgmeta[k]));
			moved = moved || pins_moved(old, c);
		}
		*changed += moved;
	}
	if (!err)
		err = kb_lock_write(&l);
	kb_lock_free(old);
	kb_arena_free(a);
	return err;
}

/* ---- actions ---- */

static void entry_def(kb_buf *def, const kb_lock_entry *e)
{
	kb_buf_addf(def, "input %s %s\n", e->kind, e->name);
	for (size_t k = 0; k < e->nkv; k++)
		kb_buf_addf(def, "%s %s\n", e->kv[k].key, e->kv[k].value);
}

static void quoted(kb_buf *def, const char *what, const char *v)
{
	char *q = kb_quote(v, strlen(v));
	kb_buf_addf(def, "%s %s\n", what, q);
	free(q);
}

static void opt(kb_buf *def, const char *what, const char *v)
{
	if (v)
		quoted(def, what, v);
}

/* The output format of kbuild's own writer for a step kind. Bump it when
 * the writer makes other bytes from the same inputs, so results cached by
 * an older kbuild are made again; written into the definition only from
 * 2 on, so that keys made before this existed stay valid.
 *   iso 2: modules of a tree laid out as installed keep their place */
static int writer_version(kb_stepkind k)
{
	return k == KB_STEP_ISO ? 2 : 1;
}

/* what a step is, apart from what it reads: also part of its run key */
void kb_step_def(const kb_step *st, kb_buf *def)
{
	kb_buf_addf(def, "%s %s\nepoch %lld\n", kb_stepkind_name(st->kind), st->name,
		    (long long)st->epoch);
	if (writer_version(st->kind) > 1)
		kb_buf_addf(def, "writer %d\n", writer_version(st->kind));
	for (size_t i = 0; i < st->argc; i++)
		quoted(def, "arg", st->argv[i]);
	for (size_t i = 0; i < st->nenv; i++)
		quoted(def, "env", st->env[i]);
	opt(def, "kernel", st->kernel);
	opt(def, "key", st->key);
	opt(def, "cert", st->cert_sha256);
	opt(def, "hash", st->kind == KB_STEP_SIGN ? st->hash : NULL);
	opt(def, "certificate", st->certificate);
	const char *ds[] = {st->suite, st->codename, st->component, st->origin, st->label};
	static const char *const dn[] = {"suite", "codename", "component", "origin", "label"};
	for (size_t i = 0; i < 5; i++)
		opt(def, dn[i], ds[i]);
	const char *is[] = {st->kernel_pkg, st->busybox, st->grub, st->modules, st->darksite,
			    st->volid, st->cmdline};
	static const char *const in[] = {"kernel-package", "busybox", "grub", "modules",
					 "darksite", "volid", "cmdline"};
	for (size_t i = 0; i < 7; i++)
		opt(def, in[i], is[i]);
	for (size_t i = 0; i < st->nload; i++)
		quoted(def, "load", st->load[i]);
	if (st->secure_boot) /* only when set: older run keys stay valid */
		kb_buf_adds(def, "secure-boot\n");
	const char *f[] = {st->pkgname, st->version, st->release, st->arch, st->maintainer,
			   st->summary, st->description, st->license, st->url, st->section,
			   st->priority, st->group, st->kmod, st->postinst, st->postrm};
	static const char *const fn[] = {"name", "version", "release", "arch", "maintainer",
					 "summary", "description", "license", "url", "section",
					 "priority", "group", "kmod", "postinst", "postrm"};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		opt(def, fn[i], f[i]);
	for (size_t i = 0; i < st->ndepends; i++)
		quoted(def, "depends", st->depends[i]);
	for (size_t i = 0; i < st->nprovides; i++)
		quoted(def, "provides", st->provides[i]);
	for (size_t i = 0; i < st->nconflicts; i++)
		quoted(def, "conflicts", st->conflicts[i]);
}

kb_action *kb_action_find(kb_action *act, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(act[i].name, name))
			return &act[i];
	return NULL;
}

kb_err *kb_eval(const kb_recipe *r, const kb_lock *l, kb_arena *a, kb_action **out, size_t *n)
{
	size_t nact = r->nin + r->nsteps;
	kb_action *v = kb_arena_alloc(a, (nact + 1) * sizeof *v);
	memset(v, 0, (nact + 1) * sizeof *v);
	kb_buf top = {0};
	/* "2": the result tree names every buildroot, unpacked or not */
	kb_buf_addf(&top, "recipe 2 %s\n", r->name);
	char hex[KB_HEX_LEN + 1];
	for (size_t i = 0; i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		const kb_lock_entry *e = kb_lock_find(l, kb_inkind_name(in->kind), in->name);
		kb_buf def = {0};
		entry_def(&def, e);
		kb_action *x = &v[i];
		x->kind = in->kind == KB_IN_BUILDROOT ? "buildroot" : "input";
		x->name = in->name;
		if (in->kind == KB_IN_BUILDROOT) {
			/* the root is made when a step needs it; its packages are what it is */
			for (size_t k = 0; k < l->n; k++)
				if (kb_lock_child(&l->e[k], in->name))
					entry_def(&def, &l->e[k]);
			x->result.type = KB_TREE;
			x->pending = 1;
		} else {
			const char *h = kb_lock_get(e, in->kind == KB_IN_GIT ? "tree" : "sha256");
			const char *type = kb_lock_get(e, "type");
			x->result.type = in->kind == KB_IN_GIT || same(type, "tree") ? KB_TREE : KB_BLOB;
			if (!h || kb_hash_parse(h, strlen(h), &x->result.hash)) {
				kb_buf_free(&def);
				kb_buf_free(&top);
				return kb_errf("%s:%d: input '%s' has no valid hash; run 'kbuild lock %s'",
					       l->path, e->line, in->name, r->name);
			}
		}
		x->def = kb_arena_strndup(a, def.p, def.len);
		kb_sha256(def.p, def.len, &x->key);
		kb_buf_free(&def);
		kb_hash_hex(&x->key, hex);
		kb_buf_addf(&top, "%s %s\n", in->name, hex);
	}
	/* steps are in dependency order: what one reads has its key already */
	for (size_t i = 0; i < r->nsteps; i++) {
		const kb_step *st = &r->steps[i];
		kb_action *x = &v[r->nin + i];
		kb_buf def = {0};
		kb_step_def(st, &def);
		if (st->root) {
			kb_hash_hex(&kb_action_find(v, r->nin + i, st->root)->key, hex);
			kb_buf_addf(&def, "root %s %s\n", st->root, hex);
		}
		for (size_t k = 0; k < st->ninputs; k++) {
			kb_hash_hex(&kb_action_find(v, r->nin + i, st->inputs[k])->key, hex);
			kb_buf_addf(&def, "read %s %s\n", st->inputs[k], hex);
		}
		x->kind = "step";
		x->name = st->name;
		x->step = st;
		x->def = kb_arena_strndup(a, def.p, def.len);
		kb_sha256(def.p, def.len, &x->key);
		kb_buf_free(&def);
		x->result.type = KB_TREE;
		x->pending = 1;
		kb_hash_hex(&x->key, hex);
		kb_buf_addf(&top, "%s %s\n", st->name, hex);
	}
	kb_action *t = &v[nact];
	t->kind = "recipe";
	t->name = r->name;
	t->def = kb_arena_strndup(a, top.p, top.len);
	kb_sha256(top.p, top.len, &t->key);
	kb_buf_free(&top);
	*out = v;
	*n = nact + 1;
	return NULL;
}

kb_err *kb_recipe_fetch(kb_store *s, const kb_recipe *r, const kb_lock *l, const kb_run_opts *o)
{
	kb_arena *a = kb_arena_new();
	kb_fetch_opts fo;
	fetch_opts(o, &fo);
	resolved *res = kb_arena_alloc(a, (r->nin + 1) * sizeof *res);
	kb_err *err = materialize(s, r, l, &fo, a, res);
	kb_arena_free(a);
	return err;
}

kb_err *kb_input_fetch(kb_store *s, const kb_recipe *r, const kb_input *in,
		       const kb_run_opts *o, kb_oid *out)
{
	/* the same path as a whole recipe, for one input and without a lock */
	kb_recipe one = *r;
	one.in = (kb_input *)in;
	one.nin = 1;
	kb_arena *a = kb_arena_new();
	kb_fetch_opts fo;
	fetch_opts(o, &fo);
	resolved res = {0};
	kb_err *err = materialize(s, &one, NULL, &fo, a, &res);
	*out = res.oid;
	kb_arena_free(a);
	return err;
}

/* git inputs through libgit2.
 *
 * A git input is a URL and a full commit id. Its content is the commit's
 * tree, stored as a kbuild tree: the same tree 'kbuild store add' makes of
 * a plain checkout (git archive COMMIT | tar -x), since trees carry only
 * names, types and contents. The raw tree is taken as it is: no
 * .gitattributes (export-ignore, export-subst, eol, filters) apply.
 *
 * Repositories are mirrored, bare, in CACHE/git/<sha256 of the URL> (local
 * paths made absolute first). A mirror holds every branch and tag; a
 * commit it already has is not fetched again. The cache is only a cache:
 * what lands in the store is checked by libgit2 (object ids are hashes,
 * verified on read) and by this file (the commit id is the one asked for).
 * One process at a time uses a mirror (flock on CACHE/git/<hex>.lock). */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GIT_HEX_LEN 40
#define MAX_DEPTH 1024 /* directory nesting; deeper trees are refused */

static const char *gmsg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

static int is_hex(const char *s, size_t n, int upper_ok)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (upper_ok && c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

/* Refuses anything but 40 lowercase hex digits, before any git access. */
static kb_err *check_commit_id(const kb_git_req *r, const char *label)
{
	const char *c = r->commit ? r->commit : "";
	size_t n = strlen(c);
	if (n == GIT_HEX_LEN && is_hex(c, n, 0))
		return NULL;
	char *q = kb_quote(c, n);
	kb_err *err;
	if (n == 0)
		err = kb_usage("%s: no commit given; a git input needs the full 40-digit commit id",
			       label);
	else if (n == GIT_HEX_LEN && is_hex(c, n, 1))
		err = kb_usage("%s: commit id '%s' has uppercase letters; give the full 40-digit "
			       "commit id in lowercase", label, q);
	else if (n < GIT_HEX_LEN && n >= 4 && is_hex(c, n, 1))
		err = kb_usage("%s: '%s' looks like an abbreviated commit id; give the full "
			       "40-digit commit id (git rev-parse %s in a clone prints it)", label,
			       q, q);
	else if (n == 64 && is_hex(c, n, 1))
		err = kb_usage("%s: '%s' is a SHA-256 object id; only SHA-1 repositories (full "
			       "40-digit commit ids) are supported", label, q);
	else if (n > GIT_HEX_LEN && is_hex(c, n, 1))
		err = kb_usage("%s: '%s' is not a commit id (%zu hex digits); give the full "
			       "40-digit commit id", label, q, n);
	else
		err = kb_usage("%s: '%s' looks like a tag or branch name, not a commit id; a git "
			       "input needs the full 40-digit commit id (find it with "
			       "'git ls-remote %s %s'; for an annotated tag take the id on its ^{} "
			       "line)", label, q, r->url ? r->url : "URL", q);
	free(q);
	return err;
}

/* "scheme://…" and "host:path" (scp-like ssh) are remote URLs; the rest
 * is a local path */
static int is_path(const char *url)
{
	if (strstr(url, "://"))
		return 0;
	const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
	return !colon || (slash && slash < colon);
}

static int is_local(const char *url)
{
	return !strncmp(url, "file://", 7) || is_path(url);
}

/* local paths made absolute, so a mirror does not depend on the cwd */
static char *normalize_url(const char *url)
{
	return is_path(url) ? kb_abspath(url) : kb_strdup(url);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct progress {
	const char *label;
	double last;
};

static int on_transfer(const git_indexer_progress *st, void *payload)
{
	struct progress *p = payload;
	double t = now_s();
	if (t - p->last >= 5) {
		p->last = t;
		kb_info("%s: received %u/%u objects (%.1f MiB)", p->label, st->received_objects,
			st->total_objects, (double)st->received_bytes / (1024.0 * 1024.0));
	}
	return 0;
}

static kb_err *fetch_from(git_repository *repo, const char *url, const char *label,
			 const kb_fetch_opts *o)
{
	static char heads[] = "+refs/heads/*:refs/heads/*";
	static char tags[] = "+refs/tags/*:refs/tags/*";
	char *specs[] = {heads, tags};
	git_strarray refspecs = {specs, 2};
	int local = is_local(url);
	struct stat sb;
	if (is_path(url) && stat(url, &sb) < 0)
		return kb_errno(errno, "%s: no git repository at %s", label, url);
	long delay = o->retry_delay_ms > 0 ? o->retry_delay_ms : 0;
	/* anonymous; insteadOf was applied by the caller */
	git_remote_create_options ro;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	kb_info("%s: fetching %s", label, url);
	for (int attempt = 0;; attempt++) {
		git_remote *remote = NULL;
		if (git_remote_create_with_opts(&remote, url, &ro) < 0)
			return kb_errf("%s: cannot use git repository %s: %s", label, url, gmsg());
		struct progress p = {label, now_s()};
		git_fetch_options fo;
		git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
		fo.update_fetchhead = 0;
		fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspec has them all */
		fo.prune = GIT_FETCH_NO_PRUNE;
		fo.proxy_opts.type = GIT_PROXY_AUTO;
		fo.callbacks.transfer_progress = on_transfer;
		fo.callbacks.payload = &p;
		int rc = git_remote_fetch(remote, &refspecs, &fo, "kbuild fetch");
		if (rc == 0) {
			const git_indexer_progress *st = git_remote_stats(remote);
			if (st->received_objects)
				kb_info("%s: received %u objects (%.1f MiB)", label,
					st->received_objects,
					(double)st->received_bytes / (1024.0 * 1024.0));
			git_remote_free(remote);
			return NULL;
		}
		/* network trouble comes as NET (names) or OS (sockets); of the
		 * HTTP answers only server errors are worth another try */
		const git_error *e = git_error_last();
		int transient = !local && e &&
				(e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_OS ||
				 (e->klass == GIT_ERROR_HTTP && e->message &&
				  strstr(e->message, "status code: 5")));
		kb_err *err = kb_errf("%s: cannot fetch from git repository %s: %s", label, url,
				      gmsg());
		git_remote_free(remote);
		if (!transient || attempt >= o->retries)
			return err;
		kb_warn("%s (retrying in %ld ms)", err->msg, delay);
		kb_err_free(err);
		sleep_ms(delay);
		delay *= 2;
	}
}

/* url.<base>.insteadOf from the git configuration, longest match first,
 * as git applies it (done here: libgit2 1.5 leaks in the regex it uses) */
static char *apply_insteadof(git_repository *repo, const char *url)
{
	git_config *cfg = NULL;
	git_config_iterator *it = NULL;
	git_config_entry *ent;
	char *best = NULL;
	size_t bestlen = 0;
	static const char suffix[] = ".insteadof";
	const size_t sl = sizeof suffix - 1;
	if (git_repository_config_snapshot(&cfg, repo) == 0 &&
	    git_config_iterator_new(&it, cfg) == 0) {
		while (git_config_next(&ent, it) == 0) {
			const char *n = ent->name, *v = ent->value;
			size_t nl = strlen(n), vl = v ? strlen(v) : 0;
			if (nl <= 4 + sl || strncmp(n, "url.", 4) || strcmp(n + nl - sl, suffix) ||
			    !vl || vl <= bestlen || strncmp(url, v, vl))
				continue;
			free(best);
			best = kb_asprintf("%.*s%s", (int)(nl - 4 - sl), n + 4, url + vl);
			bestlen = vl;
		}
	}
	git_config_iterator_free(it);
	git_config_free(cfg);
	git_error_clear();
	return best ? best : kb_strdup(url);
}

/* all branches and tags of url into repo; retries dropped connections */
static kb_err *fetch_all(git_repository *repo, const char *given_url, const char *label,
			 const kb_fetch_opts *o)
{
	char *url = apply_insteadof(repo, given_url);
	kb_err *err = fetch_from(repo, url, label, o);
	free(url);
	return err;
}

/* ---- tree conversion ---- */

struct conv {
	git_repository *repo;
	kb_txn *t;
	const char *mirror; /* its path, for messages */
	kb_buf path;	 /* of the directory being converted, no trailing '/' */
	kb_hset *memo;	 /* git tree id (zero-padded) -> kbuild tree hash */
	kb_hash **owned; /* the memo's values */
	size_t nowned, capowned;
};

static void oid_key(const git_oid *id, kb_hash *k)
{
	memset(k, 0, sizeof *k);
	memcpy(k->b, id->id, GIT_OID_RAWSZ);
}

static char *conv_path(struct conv *c)
{
	return kb_quote(c->path.p ? c->path.p : "", c->path.len);
}

static kb_err *conv_err(struct conv *c, const char *what)
{
	char *p = conv_path(c);
	kb_err *err = kb_errf("cannot read %s '%s' from the git mirror %s: %s (remove the "
			      "mirror to fetch afresh)", what, p, c->mirror, gmsg());
	free(p);
	return err;
}

static kb_err *conv_tree(struct conv *c, const git_tree *tree, int depth, kb_hash *out);

static kb_err *conv_entry(struct conv *c, const git_tree_entry *te, int depth, kb_tree_entry *e)
{
	const git_oid *id = git_tree_entry_id(te);
	git_filemode_t mode = git_tree_entry_filemode(te);
	switch (mode) {
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
	case GIT_FILEMODE_LINK: {
		e->type = mode == GIT_FILEMODE_LINK		   ? KB_ENT_LINK
			  : mode == GIT_FILEMODE_BLOB_EXECUTABLE ? KB_ENT_EXEC
								 : KB_ENT_FILE;
		git_blob *b;
		if (git_blob_lookup(&b, c->repo, id) < 0)
			return conv_err(c, mode == GIT_FILEMODE_LINK ? "symlink" : "file");
		const void *p = git_blob_rawcontent(b);
		git_object_size_t n = git_blob_rawsize(b);
		kb_err *err = kb_txn_add_bytes(c->t, p ? p : "", (size_t)n, e->type == KB_ENT_EXEC,
					       &e->hash);
		git_blob_free(b);
		return err;
	}
	case GIT_FILEMODE_TREE: {
		e->type = KB_ENT_DIR;
		kb_hash key;
		oid_key(id, &key);
		const kb_hash *known = kb_hset_get(c->memo, &key);
		if (known) {
			e->hash = *known;
			return NULL;
		}
		if (depth >= MAX_DEPTH) {
			char *p = conv_path(c);
			kb_err *err = kb_errf("directory '%s' is nested more than %d levels deep", p,
					      MAX_DEPTH);
			free(p);
			return err;
		}
		git_tree *sub;
		if (git_tree_lookup(&sub, c->repo, id) < 0)
			return conv_err(c, "directory");
		kb_err *err = conv_tree(c, sub, depth + 1, &e->hash);
		git_tree_free(sub);
		if (!err) {
			kb_hash *v = kb_malloc(sizeof *v);
			*v = e->hash;
			if (c->nowned == c->capowned) {
				c->capowned = c->capowned ? 2 * c->capowned : 64;
				c->owned = kb_realloc(c->owned, c->capowned * sizeof *c->owned);
			}
			c->owned[c->nowned++] = v;
			*kb_hset_slot(c->memo, &key) = v;
		}
		return err;
	}
	case GIT_FILEMODE_COMMIT: {
		char *p = conv_path(c), hex[GIT_OID_HEXSZ + 1];
		git_oid_tostr(hex, sizeof hex, id);
		kb_err *err = kb_errf("'%s' is a git submodule (commit %s); submodules are not "
				      "supported: vendor its files into the repository or add it as "
				      "a git input of its own", p, hex);
		free(p);
		return err;
	}
	default: {
		char *p = conv_path(c);
		kb_err *err = kb_errf("'%s' has a git file mode (%06o) kbuild does not know", p,
				      (unsigned)git_tree_entry_filemode_raw(te));
		free(p);
		return err;
	}
	}
}

static kb_err *conv_tree(struct conv *c, const git_tree *tree, int depth, kb_hash *out)
{
	size_t n = git_tree_entrycount(tree);
	kb_tree_entry *ents = kb_calloc(n ? n : 1, sizeof *ents);
	size_t base = c->path.len;
	kb_err *err = NULL;
	for (size_t i = 0; i < n && !err; i++) {
		const git_tree_entry *te = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(te);
		ents[i].name = name;
		ents[i].namelen = strlen(name);
		if (base)
			kb_buf_addc(&c->path, '/');
		kb_buf_add(&c->path, name, ents[i].namelen);
		err = conv_entry(c, te, depth, &ents[i]);
		c->path.len = base;
	}
	if (!err && (err = kb_txn_add_tree(c->t, ents, n, out))) {
		char *p = base ? conv_path(c) : kb_strdup(".");
		err = kb_err_wrap(err, "directory '%s'", p);
		free(p);
	}
	free(ents);
	return err;
}

/* the commit's tree into the store, in one transaction; errors are
 * about the commit, which the caller names */
static kb_err *store_tree(kb_store *s, git_repository *repo, const char *mirror,
			  const git_commit *commit, kb_git_req *r)
{
	git_tree *tree;
	if (git_commit_tree(&tree, commit) < 0)
		return kb_errf("cannot read its tree from the git mirror %s: %s (remove the mirror "
			       "to fetch afresh)", mirror, gmsg());
	kb_txn *t;
	kb_err *err = kb_txn_begin(s, &t);
	if (err) {
		git_tree_free(tree);
		return err;
	}
	struct conv c = {.repo = repo, .t = t, .mirror = mirror, .memo = kb_hset_new()};
	kb_hash h;
	err = conv_tree(&c, tree, 0, &h);
	if (!err && r->has_tree && !kb_hash_eq(&h, &r->tree)) {
		char want[KB_HEX_LEN + 1], got[KB_HEX_LEN + 1];
		kb_hash_hex(&r->tree, want);
		kb_hash_hex(&h, got);
		err = kb_errf("its tree is %s, not %s as recorded; the lock does not match the "
			      "repository", got, want);
	}
	if (err)
		kb_txn_abort(t);
	else {
		kb_oid root = {KB_TREE, h};
		if (!(err = kb_txn_commit(t, &root, 1)))
			r->tree = h;
	}
	for (size_t i = 0; i < c.nowned; i++)
		free(c.owned[i]);
	free(c.owned);
	kb_hset_free(c.memo);
	kb_buf_free(&c.path);
	git_tree_free(tree);
	return err;
}

/* the requested object in the mirror, which must be a commit */
static kb_err *lookup_commit(git_repository *repo, const git_oid *oid, const kb_git_req *r,
			     const char *label, git_commit **out)
{
	git_object *obj;
	int rc = git_object_lookup(&obj, repo, oid, GIT_OBJECT_ANY);
	if (rc == GIT_ENOTFOUND)
		return kb_errf("%s: commit %s not found in %s (fetched all branches and tags)",
			       label, r->commit, r->url);
	if (rc < 0)
		return kb_errf("%s: cannot read commit %s from the mirror of %s: %s", label,
			       r->commit, r->url, gmsg());
	git_object_t type = git_object_type(obj);
	if (type == GIT_OBJECT_COMMIT) {
		*out = (git_commit *)obj;
		return NULL;
	}
	kb_err *err;
	if (type == GIT_OBJECT_TAG) {
		const git_tag *tag = (const git_tag *)obj;
		char hex[GIT_OID_HEXSZ + 1];
		git_oid_tostr(hex, sizeof hex, git_tag_target_id(tag));
		err = kb_errf("%s: %s is an annotated tag object ('%s'), not a commit; give the id of "
			      "the %s it points to, %s", label, r->commit, git_tag_name(tag),
			      git_object_type2string(git_tag_target_type(tag)), hex);
	} else {
		err = kb_errf("%s: %s is a %s in %s, not a commit; give the full 40-digit commit id",
			      label, r->commit, git_object_type2string(type), r->url);
	}
	git_object_free(obj);
	return err;
}

static kb_err *open_mirror(const char *path, const char *label, git_repository **repo,
			   int *created)
{
	*created = 0;
	if (git_repository_open_bare(repo, path) == 0)
		return NULL;
	*created = access(path, F_OK) != 0;
	if (git_repository_init(repo, path, 1) < 0)
		return kb_errf("%s: cannot create the git mirror %s: %s (remove it to start afresh)",
			       label, path, gmsg());
	return NULL;
}

static kb_err *fetch_locked(kb_store *s, kb_git_req *r, const kb_fetch_opts *o,
			    const char *label, const char *dir, const char *name)
{
	char *path = kb_asprintf("%s/%s", dir, name);
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_odb *odb = NULL;
	int created;
	git_oid oid;
	kb_err *err = NULL;
	if (git_oid_fromstr(&oid, r->commit) < 0) {
		err = kb_errf("%s: bad commit id %s: %s", label, r->commit, gmsg());
		goto out;
	}
	if ((err = open_mirror(path, label, &repo, &created)))
		goto out;
	if (git_repository_odb(&odb, repo) < 0) {
		err = kb_errf("%s: cannot open the git mirror %s: %s", label, path, gmsg());
		goto out;
	}
	if (git_odb_exists(odb, &oid)) {
		kb_debug("%s: %s is in the git mirror %s", label, r->commit, path);
	} else if ((err = fetch_all(repo, r->url, label, o))) {
		if (created) { /* leave no empty mirror of a repository that failed */
			git_odb_free(odb);
			git_repository_free(repo);
			odb = NULL;
			repo = NULL;
			kb_err *e2 = kb_remove_tree(AT_FDCWD, path);
			kb_err_free(e2);
		}
		goto out;
	}
	if ((err = lookup_commit(repo, &oid, r, label, &commit)))
		goto out;
	if (!git_oid_equal(git_commit_id(commit), &oid)) {
		char hex[GIT_OID_HEXSZ + 1];
		git_oid_tostr(hex, sizeof hex, git_commit_id(commit));
		err = kb_errf("%s: asked for commit %s but the mirror gave %s", label, r->commit,
			      hex);
		goto out;
	}
	if ((err = store_tree(s, repo, path, commit, r))) {
		if (!strcmp(label, r->url))
			err = kb_err_wrap(err, "%s: commit %s", label, r->commit);
		else
			err = kb_err_wrap(err, "%s: commit %s of %s", label, r->commit, r->url);
	}
out:
	git_commit_free(commit);
	git_odb_free(odb);
	git_repository_free(repo);
	free(path);
	return err;
}

static kb_err *fetch_git(kb_store *s, kb_git_req *r, const kb_fetch_opts *o, const char *label)
{
	if (!o->cache_dir || !*o->cache_dir)
		return kb_errf("%s: no cache directory for git mirrors", label);
	char *url = normalize_url(r->url);
	kb_hash uh;
	kb_sha256(url, strlen(url), &uh);
	free(url);
	char name[KB_HEX_LEN + 1];
	kb_hash_hex(&uh, name);
	char *dir = kb_asprintf("%s/git", o->cache_dir);
	char *lockpath = kb_asprintf("%s/%s.lock", dir, name);
	int fd = -1;
	kb_err *err = kb_mkdir_p(dir, 0755);
	if (err)
		err = kb_err_wrap(err, "%s: git mirrors", label);
	if (!err && (fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		err = kb_errno(errno, "%s: cannot create %s", label, lockpath);
	if (!err && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		kb_info("%s: waiting for another kbuild using the git mirror %s/%s", label, dir,
			name);
		while (!err && flock(fd, LOCK_EX) < 0)
			if (errno != EINTR)
				err = kb_errno(errno, "%s: cannot lock %s", label, lockpath);
	}
	if (!err)
		err = fetch_locked(s, r, o, label, dir, name);
	if (fd >= 0)
		close(fd);
	free(lockpath);
	free(dir);
	return err;
}

kb_err *kb_fetch_git(kb_store *s, kb_git_req *r, const kb_fetch_opts *o)
{
	const char *label = r->label ? r->label : r->url ? r->url : "git input";
	if (!r->url || !*r->url)
		return kb_usage("%s: no repository URL given", label);
	kb_err *err = check_commit_id(r, label);
	if (err)
		return err;
	if (r->has_tree && kb_store_has(s, &r->tree))
		return NULL;
	if (o->offline)
		return kb_errf("%s: the network is off (--offline) and commit %s of %s is not in "
			       "the store", label, r->commit, r->url);
	if (git_libgit2_init() < 0)
		return kb_errf("%s: cannot initialise libgit2: %s", label, gmsg());
	/* the defaults, stated: object ids are checked when objects are read
	 * and when they are created */
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 1);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
	err = fetch_git(s, r, o, label);
	git_libgit2_shutdown();
	return err;
}

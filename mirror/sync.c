/* Syncing an upstream into a snapshot, whatever its type: the pieces
 * apt.c and rpmmd.c share (metadata fetched into memory, index files
 * fetched by hash, the snapshot's tree and refs).
 *
 * A sync is one store transaction, so that a refused sync leaves nothing
 * behind: the signed metadata (InRelease, repomd.xml and its signature)
 * is fetched into memory and verified; only then are the files it names
 * fetched, staged in the transaction, each only if it hashes to what the
 * verified metadata says; last, the metadata and the snapshot's tree join
 * them and the transaction commits. Any failure aborts it: no object and
 * no ref comes of a refused sync. The refs move after the commit. */
#include "internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

kb_err *kb_up_errf(const kb_snap *sn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = kb_vasprintf(fmt, ap);
	va_end(ap);
	kb_err *e = kb_errf("upstream '%s': %s", sn->u->name, m);
	free(m);
	return e;
}

char *kb_mirror_url(const char *base, const char *path)
{
	kb_buf b = {0};
	kb_buf_adds(&b, base);
	kb_buf_addc(&b, '/');
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr("-._~/+:@=,", *p))
			kb_buf_addc(&b, (char)*p);
		else
			kb_buf_addf(&b, "%%%02X", *p);
	}
	return kb_buf_steal(&b);
}

kb_err *kb_mirror_check_path(const kb_snap *sn, const char *path, const char *what)
{
	const char *why = NULL;
	size_t n = strlen(path);
	if (!n)
		why = "is empty";
	else if (n > 1024)
		why = "is longer than 1024 bytes";
	else if (path[0] == '/')
		why = "is absolute";
	for (const char *p = path; !why && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			why = "holds a control character or a backslash";
	for (const char *c = path; !why && c;) {
		const char *e = strchr(c, '/');
		size_t l = e ? (size_t)(e - c) : strlen(c);
		if (!l || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			why = "has an empty, '.' or '..' component";
		c = e ? e + 1 : NULL;
	}
	if (!why)
		return NULL;
	char *q = kb_quote(path, n > 200 ? 200 : n);
	kb_err *e = kb_up_errf(sn, "%s names the path '%s', which %s: refused", what, q, why);
	free(q);
	return e;
}

kb_err *kb_snap_keyring(kb_snap *sn, kb_buf *out)
{
	kb_err *err = kb_store_read(sn->s, &sn->u->keyring, 16u << 20, out);
	if (err) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&sn->u->keyring, hex);
		return kb_err_wrap(err, "upstream '%s': its keyring (blob %s)", sn->u->name, hex);
	}
	return NULL;
}

/* the errors of failed requests as one (NULL: none failed) */
static kb_err *collect(const kb_snap *sn, kb_url_req *r, size_t n, const char *what)
{
	size_t nfail = 0, last = 0;
	for (size_t i = 0; i < n; i++)
		if (r[i].err)
			nfail++, last = i;
	if (!nfail)
		return NULL;
	if (nfail == 1)
		return kb_errf("%s", r[last].err->msg);
	kb_buf b = {0};
	kb_buf_addf(&b, "upstream '%s': %zu of %zu %s failed:", sn->u->name, nfail, n, what);
	for (size_t i = 0; i < n; i++)
		if (r[i].err)
			kb_buf_addf(&b, "\n  %s", r[i].err->msg);
	kb_err *e = kb_errf("%s", b.p);
	kb_buf_free(&b);
	return e;
}

static void reqs_free(kb_url_req *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kb_err_free(r[i].err);
		r[i].err = NULL;
	}
}

static int gone(long status) { return status == 404 || status == 410; }

kb_err *kb_meta_fetch(kb_snap *sn, kb_meta *m, size_t n)
{
	kb_url_req *r = kb_calloc(n, sizeof *r);
	char **labels = kb_calloc(n, sizeof *labels);
	for (size_t i = 0; i < n; i++) {
		m[i].missing = 0;
		m[i].body.len = 0;
		free(m[i].url);
		m[i].url = kb_mirror_url(sn->u->url, m[i].path);
		labels[i] = kb_asprintf("upstream '%s': %s", sn->u->name, m[i].path);
		r[i] = (kb_url_req){.url = m[i].url, .label = labels[i], .any_content = 1,
				    .max_size = m[i].max, .body = &m[i].body};
	}
	kb_err *err = kb_fetch_urls(sn->s, r, n, sn->o);
	kb_err_free(err);
	for (size_t i = 0; i < n; i++)
		if (r[i].err && m[i].optional && gone(r[i].http_status)) {
			kb_debug("%s", r[i].err->msg);
			kb_err_free(r[i].err);
			r[i].err = NULL;
			m[i].missing = 1;
		}
	err = collect(sn, r, n, "metadata files");
	reqs_free(r, n);
	for (size_t i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
	free(r);
	return err;
}

void kb_meta_free(kb_meta *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kb_buf_free(&m[i].body);
		free(m[i].url);
		m[i].url = NULL;
	}
}

static kb_snapfile *snap_slot(kb_snap *sn, const char *path, const kb_hash *h, int *dup,
			      kb_err **err)
{
	*dup = 0;
	*err = NULL;
	for (size_t i = 0; i < sn->n; i++)
		if (!strcmp(sn->f[i].path, path)) {
			if (h && !sn->f[i].mem && kb_hash_eq(&sn->f[i].hash, h)) {
				*dup = 1;
				return NULL;
			}
			*err = kb_up_errf(sn, "two different files for %s in one snapshot", path);
			return NULL;
		}
	if (sn->n == sn->cap) {
		sn->cap = sn->cap ? 2 * sn->cap : 16;
		sn->f = kb_realloc(sn->f, sn->cap * sizeof *sn->f);
	}
	kb_snapfile *f = &sn->f[sn->n++];
	memset(f, 0, sizeof *f);
	f->path = kb_strdup(path);
	return f;
}

kb_err *kb_snap_add_mem(kb_snap *sn, const char *path, kb_buf *body)
{
	int dup;
	kb_err *err;
	kb_snapfile *f = snap_slot(sn, path, NULL, &dup, &err);
	if (!f)
		return err;
	f->mem = 1;
	f->body = *body;
	memset(body, 0, sizeof *body);
	kb_sha256(f->body.p ? f->body.p : "", f->body.len, &f->hash);
	return NULL;
}

kb_err *kb_snap_add_stored(kb_snap *sn, const char *path, const kb_hash *h)
{
	int dup;
	kb_err *err;
	kb_snapfile *f = snap_slot(sn, path, h, &dup, &err);
	if (!f)
		return err;
	f->hash = *h;
	return NULL;
}

/* one index file to come: the variant tried now, and how */
typedef struct {
	size_t first, last; /* its variants f[first..last] */
	size_t cur;
	int by_hash; /* trying f[cur].alt_url */
	int done;
	kb_err *err;
} group;

kb_err *kb_snap_fetch_indexes(kb_snap *sn, kb_indexfile *f, size_t n)
{
	if (!n)
		return NULL;
	group *g = kb_calloc(n, sizeof *g);
	size_t ng = 0;
	for (size_t i = 0; i < n; i++) {
		if (!i || !f[i].alt_of_prev)
			g[ng++] = (group){.first = i, .cur = i, .by_hash = f[i].alt_url != NULL};
		g[ng - 1].last = i;
	}
	kb_url_req *r = kb_calloc(ng, sizeof *r);
	size_t *gi = kb_calloc(ng, sizeof *gi);
	kb_err *err = NULL;
	for (;;) {
		size_t nr = 0;
		for (size_t k = 0; k < ng; k++) {
			if (g[k].done || g[k].err)
				continue;
			const kb_indexfile *x = &f[g[k].cur];
			r[nr] = (kb_url_req){
				.url = g[k].by_hash ? kb_strdup(x->alt_url) : kb_mirror_url(sn->u->url, x->path),
				.label = kb_asprintf("upstream '%s': %s %s", sn->u->name, x->what, x->path),
				.sha256 = x->sha256,
				.size = x->size,
				.has_size = 1};
			gi[nr++] = k;
		}
		if (!nr)
			break;
		kb_err_free(kb_fetch_urls(sn->s, r, nr, sn->o));
		for (size_t j = 0; j < nr; j++) {
			group *x = &g[gi[j]];
			if (!r[j].err) {
				x->done = 1;
			} else if (!gone(r[j].http_status)) {
				x->err = r[j].err;
				r[j].err = NULL;
			} else if (x->by_hash) {
				/* by-hash is not there (an older archive, a partial
				 * mirror): the file's own name, same hash */
				kb_debug("%s; trying its own name", r[j].err->msg);
				x->by_hash = 0;
			} else if (x->cur < x->last) {
				/* the next variant Release lists (Packages.gz for .xz) */
				kb_debug("%s; trying %s", r[j].err->msg, f[x->cur + 1].path);
				x->cur++;
				x->by_hash = f[x->cur].alt_url != NULL;
			} else {
				x->err = x->last > x->first
						 ? kb_errf("%s (no other variant of it is there either)",
							   r[j].err->msg)
						 : kb_errf("%s", r[j].err->msg);
			}
			kb_err_free(r[j].err);
			free((char *)r[j].url);
			free((char *)r[j].label);
			r[j] = (kb_url_req){0};
		}
	}
	size_t nfail = 0;
	for (size_t k = 0; k < ng; k++)
		nfail += g[k].err != NULL;
	if (nfail == 1) {
		for (size_t k = 0; k < ng; k++)
			if (g[k].err)
				err = kb_errf("%s", g[k].err->msg);
	} else if (nfail) {
		kb_buf b = {0};
		kb_buf_addf(&b, "upstream '%s': %zu of %zu index files failed:", sn->u->name, nfail, ng);
		for (size_t k = 0; k < ng; k++)
			if (g[k].err)
				kb_buf_addf(&b, "\n  %s", g[k].err->msg);
		err = kb_errf("%s", b.p);
		kb_buf_free(&b);
	}
	for (size_t k = 0; k < ng && !err; k++)
		err = kb_snap_add_stored(sn, f[g[k].cur].path, &f[g[k].cur].sha256);
	for (size_t k = 0; k < ng; k++)
		kb_err_free(g[k].err);
	free(g);
	free(gi);
	free(r);
	return err;
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp(((const kb_snapfile *)a)->path, ((const kb_snapfile *)b)->path);
}

/* the tree of files f[0..n) (sorted), all below the same directory whose
 * path is the first off bytes of each */
static kb_err *build_tree(kb_snap *sn, kb_txn *t, kb_snapfile *f, size_t n, size_t off,
			  int depth, kb_hash *out)
{
	if (depth > 32)
		return kb_up_errf(sn, "paths nest deeper than 32 directories");
	kb_tree_entry *e = kb_calloc(n ? n : 1, sizeof *e);
	size_t ne = 0;
	kb_err *err = NULL;
	for (size_t i = 0; i < n && !err;) {
		const char *name = f[i].path + off;
		const char *slash = strchr(name, '/');
		size_t len = slash ? (size_t)(slash - name) : strlen(name);
		kb_tree_entry *x = &e[ne++];
		x->name = name;
		x->namelen = len;
		if (!slash) {
			x->type = KB_ENT_FILE;
			x->hash = f[i].hash;
			i++;
			continue;
		}
		size_t j = i + 1;
		while (j < n && !strncmp(f[j].path + off, name, len + 1))
			j++;
		x->type = KB_ENT_DIR;
		err = build_tree(sn, t, f + i, j - i, off + len + 1, depth + 1, &x->hash);
		i = j;
	}
	if (!err && (err = kb_txn_add_tree(t, e, ne, out)))
		err = kb_err_wrap(err, "upstream '%s': the snapshot's tree", sn->u->name);
	free(e);
	return err;
}

/* the newest mirror/NAME/TIME ref that holds tree, if latest does */
static kb_err *unchanged(kb_snap *sn, const kb_hash *tree, char **name)
{
	*name = NULL;
	char *latest = kb_asprintf("mirror/%s/latest", sn->u->name);
	char *prefix = kb_asprintf("mirror/%s/", sn->u->name);
	kb_oid o;
	int found = 0;
	kb_err *err = kb_ref_get(sn->s, latest, &o, &found);
	if (!err && found && o.type == KB_TREE && kb_hash_eq(&o.hash, tree)) {
		kb_ref *r = NULL;
		size_t n = 0;
		if (!(err = kb_ref_list(sn->s, prefix, &r, &n))) {
			for (size_t i = n; i-- > 0 && !*name;)
				if (strcmp(r[i].name, latest) && !strchr(r[i].name + strlen(prefix), '/') &&
				    r[i].oid.type == KB_TREE && kb_hash_eq(&r[i].oid.hash, tree))
					*name = kb_strdup(r[i].name);
			kb_ref_list_free(r, n);
		}
	}
	free(latest);
	free(prefix);
	return err;
}

/* stores the in-memory files and the tree, and commits t (always: t is
 * aborted on failure) */
static kb_err *snap_commit(kb_snap *sn, kb_txn *t, kb_hash *snapshot, char **refname)
{
	kb_err *err = NULL;
	for (size_t i = 0; i < sn->n && !err; i++) {
		kb_snapfile *f = &sn->f[i];
		kb_hash h;
		if (f->mem && !(err = kb_txn_add_bytes(t, f->body.p ? f->body.p : "", f->body.len, 0,
						       &h)) &&
		    !kb_hash_eq(&h, &f->hash))
			err = kb_up_errf(sn, "%s changed in memory", f->path);
	}
	qsort(sn->f, sn->n, sizeof *sn->f, path_cmp);
	kb_hash tree;
	if (!err)
		err = build_tree(sn, t, sn->f, sn->n, 0, 0, &tree);
	if (err) {
		kb_txn_abort(t);
		return err;
	}
	kb_oid root = {KB_TREE, tree};
	if ((err = kb_txn_commit(t, &root, 1)))
		return kb_err_wrap(err, "upstream '%s': storing the snapshot", sn->u->name);

	char *name = NULL;
	if ((err = unchanged(sn, &tree, &name)))
		return err;
	if (!name) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
		kb_oid none = {KB_NONE, {{0}}};
		/* another snapshot of the same second keeps its name */
		for (int k = 0; k < 100 && !name; k++) {
			char *cand = k ? kb_asprintf("mirror/%s/%s.%d", sn->u->name, stamp, k)
				       : kb_asprintf("mirror/%s/%s", sn->u->name, stamp);
			kb_oid cur;
			int found = 0;
			if ((err = kb_ref_get(sn->s, cand, &cur, &found))) {
				free(cand);
				return err;
			}
			if (found && cur.type == KB_TREE && kb_hash_eq(&cur.hash, &tree)) {
				name = cand;
			} else if (!found && !(err = kb_ref_update(sn->s, cand, &none, &root))) {
				name = cand;
			} else {
				kb_err_free(err); /* created meanwhile: the next name */
				err = NULL;
				free(cand);
			}
		}
		if (!name)
			return kb_up_errf(sn, "no free ref name mirror/%s/%s.N", sn->u->name, stamp);
	}
	char *latest = kb_asprintf("mirror/%s/latest", sn->u->name);
	err = kb_ref_update(sn->s, latest, NULL, &root);
	free(latest);
	if (err) {
		free(name);
		return kb_err_wrap(err, "upstream '%s'", sn->u->name);
	}
	*snapshot = tree;
	*refname = name;
	return NULL;
}

kb_err *kb_mirror_sync(kb_store *s, const kb_upstream_def *u, const kb_fetch_opts *o,
		       kb_hash *snapshot, char **refname)
{
	*refname = NULL;
	kb_fetch_opts fo = *o;
	kb_snap sn = {.s = s, .u = u, .o = &fo};
	kb_txn *t = NULL;
	kb_err *err = NULL;
	if (!u->url || !*u->url)
		err = kb_up_errf(&sn, "no URL");
	else if (u->require_signature && !u->has_keyring)
		err = kb_up_errf(&sn, "a signature is required but the upstream has no keyring; "
				      "give it one (keyring = \"KEY-INPUT\") or say "
				      "require_signature = false");
	else if (strcmp(u->type, "apt") && strcmp(u->type, "rpm-md"))
		err = kb_up_errf(&sn, "unknown type '%s' (apt or rpm-md)", u->type);
	else if ((err = kb_txn_begin(s, &t)))
		err = kb_err_wrap(err, "upstream '%s'", u->name);
	if (!err) {
		fo.txn = t;
		err = !strcmp(u->type, "apt") ? kb_apt_sync(&sn) : kb_rpmmd_sync(&sn);
		if (err)
			kb_txn_abort(t);
		else
			err = snap_commit(&sn, t, snapshot, refname);
	}
	if (!err) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(snapshot, hex);
		kb_info("upstream '%s': snapshot %s (%zu files) as %s", u->name, hex, sn.n, *refname);
	}
	for (size_t i = 0; i < sn.n; i++) {
		free(sn.f[i].path);
		kb_buf_free(&sn.f[i].body);
	}
	free(sn.f);
	return err;
}

kb_err *kb_mirror_latest(kb_store *s, const char *upstream, kb_hash *snapshot, int *found)
{
	char *ref = kb_asprintf("mirror/%s/latest", upstream);
	kb_oid o;
	kb_err *err = kb_ref_get(s, ref, &o, found);
	free(ref);
	if (!err && *found)
		*snapshot = o.hash;
	return err;
}

/* ---- dates ---- */

int kb_parse_rfc2822(const char *s, time_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	while (*s == ' ' || *s == '\t')
		s++;
	const char *p = strchr(s, ',') ? strchr(s, ',') + 1 : s; /* the weekday is optional */
	const char *end = strptime(p, " %d %b %Y %H:%M:%S", &tm);
	if (!end)
		return -1;
	while (*end == ' ')
		end++;
	long off = 0;
	if (!*end || !strcmp(end, "UTC") || !strcmp(end, "GMT") || !strcmp(end, "Z")) {
		off = 0;
	} else if ((end[0] == '+' || end[0] == '-') && strlen(end) == 5 &&
		   strspn(end + 1, "0123456789") == 4) {
		long hh = (end[1] - '0') * 10 + (end[2] - '0'), mm = (end[3] - '0') * 10 + (end[4] - '0');
		off = (hh * 60 + mm) * 60 * (end[0] == '-' ? -1 : 1);
	} else {
		return -1;
	}
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t - off;
	return 0;
}

void kb_fmt_utc(time_t t, char out[32])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, 32, "%lld", (long long)t);
}

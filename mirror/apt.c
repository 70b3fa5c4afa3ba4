/* apt upstreams: dists/SUITE/InRelease (or Release with Release.gpg),
 * verified against the keyring, names by SHA-256 and size the Packages
 * indexes of the wanted components and architectures; each is fetched by
 * that hash (through by-hash/SHA256/ when the archive offers it), and the
 * snapshot holds them all by their paths on the server:
 *
 *   dists/SUITE/InRelease
 *   dists/SUITE/COMPONENT/binary-ARCH/Packages.xz   (else .gz, else plain,
 *                                                    whichever is there first)
 *   dists/SUITE/COMPONENT/binary-all/Packages.xz    (if Release lists it and
 *                                                    does not say it is not needed)
 *   dists/SUITE/COMPONENT/binary-ARCH/Packages       decompressed here and checked
 *                                                    against the hash Release gives
 *                                                    it: closures then read it at
 *                                                    memory speed, not xz's
 *
 * Like apt: MD5Sum and SHA1 lists are not trusted, expired metadata
 * (Valid-Until) and metadata dated in the future are refused, and a
 * signature is required whenever the upstream has a keyring and wants one. */
#include "internal.h"

#include <ctype.h>
#include <solv/solv_xfopen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* clock skew accepted for a Date in the future (apt says "not valid yet") */
#define DATE_SKEW_S (10 * 60)

typedef struct {
	char *name, *value;
} field;

typedef struct {
	kb_hash sha256;
	uint64_t size;
	char *path;
} sum;

typedef struct {
	field *f;
	size_t nf;
	sum *s;
	size_t ns;
} release;

static void release_free(release *r)
{
	for (size_t i = 0; i < r->nf; i++) {
		free(r->f[i].name);
		free(r->f[i].value);
	}
	for (size_t i = 0; i < r->ns; i++)
		free(r->s[i].path);
	free(r->f);
	free(r->s);
}

static const char *get(const release *r, const char *name)
{
	for (size_t i = 0; i < r->nf; i++)
		if (!strcasecmp(r->f[i].name, name))
			return r->f[i].value;
	return NULL;
}

/* is word one of the blank-separated words of list */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t\n");
		size_t l = strcspn(p, " \t\n");
		if (l == n && !memcmp(p, word, n))
			return 1;
		p += l;
	}
	return 0;
}

/* Debian's security archive lists its components as "updates/main" while
 * the indexes are at main/...: apt accepts "main" for it, and so do we */
static int has_suffix_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t\n");
		size_t l = strcspn(p, " \t\n");
		if (l > n + 1 && p[l - n - 1] == '/' && !memcmp(p + l - n, word, n))
			return 1;
		p += l;
	}
	return 0;
}

/* deb822, first paragraph: "Name: value" lines, continuation lines
 * beginning with blank space */
static kb_err *parse_fields(const kb_snap *sn, const char *what, const char *text, size_t len,
			    release *r)
{
	size_t lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - line) : len - pos;
		pos += l + (nl ? 1 : 0);
		lineno++;
		if (l && line[l - 1] == '\r')
			l--;
		if (!l || strspn(line, " \t") == l) {
			if (r->nf)
				break; /* the end of the first paragraph */
			continue;
		}
		if (memchr(line, 0, l)) {
			return kb_up_errf(sn, "%s: line %zu holds a NUL byte: not Release metadata",
					  what, lineno);
		}
		if (line[0] == ' ' || line[0] == '\t') {
			if (!r->nf)
				return kb_up_errf(sn, "%s: line %zu continues no field: not Release "
						      "metadata", what, lineno);
			field *f = &r->f[r->nf - 1];
			size_t ol = strlen(f->value);
			f->value = kb_realloc(f->value, ol + l + 2);
			f->value[ol] = '\n';
			memcpy(f->value + ol + 1, line, l);
			f->value[ol + 1 + l] = 0;
			continue;
		}
		const char *colon = memchr(line, ':', l);
		size_t nl_ = colon ? (size_t)(colon - line) : 0;
		int ok = colon && nl_ > 0;
		for (size_t i = 0; ok && i < nl_; i++)
			ok = isgraph((unsigned char)line[i]);
		if (!ok) {
			char *q = kb_quote(line, l > 60 ? 60 : l);
			kb_err *e = kb_up_errf(sn, "%s: line %zu is not a 'Field: value' line ('%s'): "
						   "not Release metadata",
					       what, lineno, q);
			free(q);
			return e;
		}
		const char *v = colon + 1;
		const char *end = line + l;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		r->f = kb_realloc(r->f, (r->nf + 1) * sizeof *r->f);
		r->f[r->nf].name = kb_strndup(line, nl_);
		r->f[r->nf++].value = kb_strndup(v, (size_t)(end - v));
	}
	return NULL;
}

static kb_err *parse_sums(const kb_snap *sn, const char *what, release *r)
{
	const char *v = get(r, "SHA256");
	if (!v) {
		if (get(r, "SHA1") || get(r, "MD5Sum"))
			return kb_up_errf(sn, "%s lists files only by MD5 or SHA-1, which are not "
					      "trusted: it needs a SHA256 field", what);
		return kb_up_errf(sn, "%s has no SHA256 field: not Release metadata (an error "
				      "page?)", what);
	}
	size_t lineno = 0;
	for (const char *p = v; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		char *line = kb_strndup(p, l);
		p += l + (nl ? 1 : 0);
		lineno++;
		char *tok[4] = {0}, *save = NULL;
		int k = 0;
		for (char *t = strtok_r(line, " \t", &save); t && k < 4; t = strtok_r(NULL, " \t", &save))
			tok[k++] = t;
		if (!k) {
			free(line);
			continue;
		}
		kb_err *err = NULL;
		sum s = {0};
		char *endp = NULL;
		if (k != 3)
			err = kb_up_errf(sn, "%s: SHA256 line %zu is not 'HASH SIZE PATH'", what, lineno);
		for (char *c = tok[0]; !err && *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!err && kb_hash_parse(tok[0], strlen(tok[0]), &s.sha256))
			err = kb_up_errf(sn, "%s: SHA256 line %zu: '%.70s' is not a SHA-256", what,
					 lineno, tok[0]);
		if (!err) {
			unsigned long long sz = strtoull(tok[1], &endp, 10);
			if (!isdigit((unsigned char)tok[1][0]) || *endp || strlen(tok[1]) > 19)
				err = kb_up_errf(sn, "%s: SHA256 line %zu: '%.30s' is not a size", what,
						 lineno, tok[1]);
			s.size = sz;
		}
		if (!err) {
			s.path = kb_strdup(tok[2]);
			r->s = kb_realloc(r->s, (r->ns + 1) * sizeof *r->s);
			r->s[r->ns++] = s;
		}
		free(line);
		if (err)
			return err;
	}
	if (!r->ns)
		return kb_up_errf(sn, "%s: its SHA256 field lists no file", what);
	return NULL;
}

static const sum *find_sum(const release *r, const char *path)
{
	for (size_t i = 0; i < r->ns; i++)
		if (!strcmp(r->s[i].path, path))
			return &r->s[i];
	return NULL;
}

/* Date not in the future, Valid-Until not past */
static kb_err *check_dates(const kb_snap *sn, const char *what, const release *r)
{
	time_t now = time(NULL), t;
	char d[32];
	const char *date = get(r, "Date"), *until = get(r, "Valid-Until");
	if (date) {
		if (kb_parse_rfc2822(date, &t))
			return kb_up_errf(sn, "%s: its Date '%.60s' is not a date", what, date);
		if (t > now + DATE_SKEW_S) {
			kb_fmt_utc(t, d);
			return kb_up_errf(sn, "%s is dated %s, in the future: not valid yet (is the "
					      "clock right?)", what, d);
		}
	}
	if (until) {
		if (kb_parse_rfc2822(until, &t))
			return kb_up_errf(sn, "%s: its Valid-Until '%.60s' is not a date", what, until);
		if (t < now) {
			kb_fmt_utc(t, d);
			return kb_up_errf(sn, "%s expired on %s (Valid-Until): the mirror serves stale "
					      "metadata, or replays old metadata; refused", what, d);
		}
	}
	return NULL;
}

static void add_word(char ***list, size_t *n, const char *w, size_t l)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*list)[i]) == l && !memcmp((*list)[i], w, l))
			return;
	*list = kb_realloc(*list, (*n + 1) * sizeof **list);
	(*list)[(*n)++] = kb_strndup(w, l);
}

static void split_words(const char *s, char ***list, size_t *n)
{
	for (const char *p = s ? s : ""; *p;) {
		p += strspn(p, " \t\n");
		size_t l = strcspn(p, " \t\n");
		if (l)
			add_word(list, n, p, l);
		p += l;
	}
}

static int in_list(char *const *l, size_t n, const char *w)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i], w))
			return 1;
	return 0;
}

static void words_free(char **w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	free(w);
}

/* the variants of the Packages index of component/binary-arch that
 * Release lists, in the order they are tried: .xz, .gz, plain */
static size_t packages_variants(const release *r, const char *comp, const char *arch,
				const sum *out[3])
{
	static const char *const ext[] = {".xz", ".gz", ""};
	size_t n = 0;
	for (size_t i = 0; i < 3; i++) {
		char *p = kb_asprintf("%s/binary-%s/Packages%s", comp, arch, ext[i]);
		const sum *s = find_sum(r, p);
		free(p);
		if (s)
			out[n++] = s;
	}
	return n;
}

/* The plain index for a compressed one that was fetched (Release lists
 * both; archives serve only the compressed ones): decompressed, held to
 * Release's hash and size for the plain file, and added to the snapshot. */
static kb_err *add_plain(kb_snap *sn, const char *path, const kb_hash *zhash, const sum *plain,
			 const char *plainpath)
{
	int fd;
	kb_err *err = kb_txn_open(sn->o->txn, zhash, &fd);
	if (err)
		return err;
	FILE *in = solv_xfopen_fd(path, fd, "r"); /* by suffix: .xz, .gz */
	if (!in) {
		close(fd);
		return kb_up_errf(sn, "cannot decompress %s", path);
	}
	kb_blobw *w;
	if ((err = kb_blob_begin(sn->o->txn, &w))) {
		fclose(in);
		return err;
	}
	char buf[1 << 16];
	size_t got, total = 0;
	while (!err && (got = fread(buf, 1, sizeof buf, in)) > 0) {
		total += got;
		if (total > plain->size)
			err = kb_up_errf(sn, "%s decompresses to more than the %llu bytes Release "
					     "gives %s", path, (unsigned long long)plain->size, plainpath);
		else
			err = kb_blob_write(w, buf, got);
	}
	if (!err && ferror(in))
		err = kb_up_errf(sn, "%s does not decompress (damaged?)", path);
	fclose(in);
	if (!err && total != plain->size)
		err = kb_up_errf(sn, "%s decompresses to %zu bytes, not the %llu Release gives %s",
				 path, total, (unsigned long long)plain->size, plainpath);
	kb_hash h;
	if (err) {
		kb_blob_abort(w);
		return err;
	}
	if ((err = kb_blob_finish(w, 0, &plain->sha256, &h)))
		return kb_err_wrap(err, "upstream '%s': %s decompressed", sn->u->name, path);
	return kb_snap_add_stored(sn, plainpath, &h);
}

static kb_err *add_plain_indexes(kb_snap *sn, const release *r, const char *dists)
{
	kb_err *err = NULL;
	size_t n = sn->n; /* add_plain appends */
	for (size_t i = 0; i < n && !err; i++) {
		const char *p = sn->f[i].path;
		size_t l = strlen(p);
		if (sn->f[i].mem || l < 3 || (strcmp(p + l - 3, ".xz") && strcmp(p + l - 3, ".gz")) ||
		    strncmp(p, dists, strlen(dists)) || p[strlen(dists)] != '/')
			continue;
		char *plainpath = kb_strndup(p, l - 3);
		const sum *plain = find_sum(r, plainpath + strlen(dists) + 1);
		if (plain)
			err = add_plain(sn, p, &sn->f[i].hash, plain, plainpath);
		free(plainpath);
	}
	return err;
}

/* fetches and verifies the signed Release; *text gets its content */
static kb_err *fetch_release(kb_snap *sn, const char *dists, kb_buf *text, char **what)
{
	const kb_upstream_def *u = sn->u;
	char *inrel = kb_asprintf("%s/InRelease", dists), *rel = kb_asprintf("%s/Release", dists),
	     *gpg = kb_asprintf("%s/Release.gpg", dists);
	kb_buf keyring = {0};
	kb_err *err = NULL;
	char *signer = NULL;
	*what = NULL;
	if (!u->has_keyring) {
		/* no keyring (and no signature required, sync.c made sure) */
		kb_meta m = {.path = rel, .max = KB_META_MAX};
		if (!(err = kb_meta_fetch(sn, &m, 1))) {
			kb_warn("upstream '%s': no keyring: %s is taken unsigned", u->name, rel);
			kb_buf_add(text, m.body.p ? m.body.p : "", m.body.len);
			err = kb_snap_add_mem(sn, rel, &m.body);
			*what = kb_asprintf("%s (%s)", rel, m.url);
		}
		kb_meta_free(&m, 1);
		goto out;
	}
	if ((err = kb_snap_keyring(sn, &keyring)))
		goto out;
	kb_meta m = {.path = inrel, .max = KB_META_MAX, .optional = 1};
	if ((err = kb_meta_fetch(sn, &m, 1))) {
		kb_meta_free(&m, 1);
		goto out;
	}
	if (!m.missing) {
		*what = kb_asprintf("%s (%s)", inrel, m.url);
		if ((err = kb_pgp_verify_clearsigned(&keyring, &m.body, text, &signer)))
			err = kb_err_wrap(err, "upstream '%s': %s", u->name, *what);
		else
			err = kb_snap_add_mem(sn, inrel, &m.body);
		kb_meta_free(&m, 1);
		goto out;
	}
	kb_meta_free(&m, 1);
	/* no InRelease: Release with a detached signature, as older archives have */
	kb_meta mm[2] = {{.path = rel, .max = KB_META_MAX, .optional = 1},
			 {.path = gpg, .max = KB_SIG_MAX, .optional = 1}};
	if (!(err = kb_meta_fetch(sn, mm, 2))) {
		if (mm[0].missing)
			err = kb_up_errf(sn, "neither %s nor %s is there (HTTP 404): is %s an apt "
					     "archive with the suite '%s'?",
					 inrel, rel, u->url, u->suite);
		else if (mm[1].missing && u->require_signature)
			err = kb_up_errf(sn, "%s is not there and %s is not signed (no %s): the "
					     "upstream's metadata must be signed by its keyring",
					 inrel, rel, gpg);
	}
	if (!err && mm[1].missing) {
		kb_warn("upstream '%s': %s is not signed (no %s); taken as it is, since the "
			"upstream does not require a signature", u->name, rel, gpg);
		*what = kb_asprintf("%s (%s)", rel, mm[0].url);
		kb_buf_add(text, mm[0].body.p ? mm[0].body.p : "", mm[0].body.len);
		err = kb_snap_add_mem(sn, rel, &mm[0].body);
	} else if (!err) {
		*what = kb_asprintf("%s (%s)", rel, mm[0].url);
		if ((err = kb_pgp_verify_detached(&keyring, &mm[0].body, &mm[1].body, &signer))) {
			err = kb_err_wrap(err, "upstream '%s': %s, signature %s", u->name, *what, gpg);
		} else {
			kb_buf_add(text, mm[0].body.p ? mm[0].body.p : "", mm[0].body.len);
			if (!(err = kb_snap_add_mem(sn, rel, &mm[0].body)))
				err = kb_snap_add_mem(sn, gpg, &mm[1].body);
		}
	}
	kb_meta_free(mm, 2);
out:
	if (signer)
		kb_info("upstream '%s': %s signed by %s", u->name, *what ? *what : inrel, signer);
	free(signer);
	kb_buf_free(&keyring);
	free(inrel);
	free(rel);
	free(gpg);
	return err;
}

kb_err *kb_apt_sync(kb_snap *sn)
{
	const kb_upstream_def *u = sn->u;
	if (!u->suite || !*u->suite)
		return kb_up_errf(sn, "an apt upstream needs a suite");
	char *dists = kb_asprintf("dists/%s", u->suite);
	kb_err *err = kb_mirror_check_path(sn, dists, "the suite");
	kb_buf text = {0};
	char *what = NULL;
	release r = {0};
	char **comps = NULL, **archs = NULL, **rcomps = NULL, **rarchs = NULL;
	size_t ncomps = 0, narchs = 0, nrcomps = 0, nrarchs = 0;
	kb_indexfile *idx = NULL;
	size_t nidx = 0;
	if (!err)
		err = fetch_release(sn, dists, &text, &what);
	if (!err)
		err = parse_fields(sn, what, text.p ? text.p : "", text.len, &r);
	if (!err)
		err = parse_sums(sn, what, &r);
	if (!err)
		err = check_dates(sn, what, &r);
	if (err)
		goto out;
	const char *suite = get(&r, "Suite"), *codename = get(&r, "Codename");
	if ((suite || codename) && !(suite && !strcmp(suite, u->suite)) &&
	    !(codename && !strcmp(codename, u->suite)))
		kb_warn("upstream '%s': %s is for suite '%s' (codename '%s'), not '%s'", u->name, what,
			suite ? suite : "", codename ? codename : "", u->suite);
	/* apt's rules: an archive that lists packages of architecture all in
	 * every binary-ARCH index says so, and its binary-all is not needed;
	 * nor is it when Architectures (if given) does not name "all"
	 * (Debian's security archive lists a binary-all it does not serve) */
	const char *nosup = get(&r, "No-Support-for-Architecture-all");
	const char *rarch = get(&r, "Architectures");
	int implicit_all = !(nosup && has_word(nosup, "Packages")) &&
			   (!rarch || has_word(rarch, "all"));
	const char *by_hash = get(&r, "Acquire-By-Hash");
	int use_by_hash = by_hash && !strcasecmp(by_hash, "yes");
	split_words(get(&r, "Components"), &rcomps, &nrcomps);
	split_words(get(&r, "Architectures"), &rarchs, &nrarchs);
	/* the wanted components and architectures: the recipe's, else all there are */
	for (size_t i = 0; i < u->ncomponents; i++)
		add_word(&comps, &ncomps, u->components[i], strlen(u->components[i]));
	if (!u->ncomponents)
		for (size_t i = 0; i < nrcomps; i++)
			add_word(&comps, &ncomps, rcomps[i], strlen(rcomps[i]));
	for (size_t i = 0; i < u->narchs; i++)
		add_word(&archs, &narchs, u->archs[i], strlen(u->archs[i]));
	if (!u->narchs)
		for (size_t i = 0; i < nrarchs; i++)
			if (strcmp(rarchs[i], "all"))
				add_word(&archs, &narchs, rarchs[i], strlen(rarchs[i]));
	if (!ncomps || !narchs) {
		err = kb_up_errf(sn, "%s names no %s, and the recipe names none", what,
				 ncomps ? "architectures" : "components");
		goto out;
	}
	const char *rc = get(&r, "Components"), *ra = get(&r, "Architectures");
	for (size_t i = 0; i < ncomps && !err; i++)
		if (rc && !has_word(rc, comps[i]) && !has_suffix_word(rc, comps[i]))
			err = kb_up_errf(sn, "suite '%s' has no component '%s' (%s lists: %s)", u->suite,
					 comps[i], what, rc);
	for (size_t i = 0; i < narchs && !err; i++)
		if (ra && strcmp(archs[i], "all") && !has_word(ra, archs[i]))
			err = kb_up_errf(sn, "suite '%s' has no architecture '%s' (%s lists: %s)",
					 u->suite, archs[i], what, ra);
	if (err)
		goto out;
	idx = kb_calloc(3 * ncomps * (narchs + 1), sizeof *idx);
	for (size_t c = 0; c < ncomps && !err; c++) {
		for (size_t a = 0; a <= narchs && !err; a++) {
			const char *arch = a < narchs ? archs[a] : "all";
			if (a == narchs && (in_list(archs, narchs, "all") || !implicit_all))
				break; /* asked for by name already, or not needed */
			const sum *v[3];
			size_t nv = packages_variants(&r, comps[c], arch, v);
			if (!nv) {
				if (a < narchs && strcmp(arch, "all"))
					err = kb_up_errf(sn, "%s lists no Packages index for %s/binary-%s",
							 what, comps[c], arch);
				continue; /* binary-all is there only if the archive has one */
			}
			for (size_t k = 0; k < nv && !err; k++) {
				char *path = kb_asprintf("%s/%s", dists, v[k]->path);
				if ((err = kb_mirror_check_path(sn, path, what))) {
					free(path);
					break;
				}
				kb_indexfile *f = &idx[nidx++];
				f->path = path;
				f->sha256 = v[k]->sha256;
				f->size = v[k]->size;
				f->what = "Packages index";
				f->alt_of_prev = k > 0;
				if (use_by_hash) {
					char hex[KB_HEX_LEN + 1];
					kb_hash_hex(&v[k]->sha256, hex);
					const char *slash = strrchr(path, '/');
					char *dir = kb_strndup(path, (size_t)(slash - path));
					char *bh = kb_asprintf("%s/by-hash/SHA256/%s", dir, hex);
					f->alt_url = kb_mirror_url(u->url, bh);
					free(bh);
					free(dir);
				}
			}
		}
	}
	if (!err)
		err = kb_snap_fetch_indexes(sn, idx, nidx);
	if (!err)
		err = add_plain_indexes(sn, &r, dists);
out:
	for (size_t i = 0; i < nidx; i++) {
		free(idx[i].path);
		free(idx[i].alt_url);
	}
	free(idx);
	words_free(comps, ncomps);
	words_free(archs, narchs);
	words_free(rcomps, nrcomps);
	words_free(rarchs, nrarchs);
	release_free(&r);
	kb_buf_free(&text);
	free(what);
	free(dists);
	return err;
}

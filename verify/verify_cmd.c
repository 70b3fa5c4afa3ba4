/* 'kbuild verify MANIFEST': a third party rebuilds a recipe run from its
 * manifest alone and compares every output with what was published.
 *
 * In a fresh store (a temporary directory, or --keep DIR): the recipe's
 * files and lock come from the manifest's text, into a repository laid
 * out as the lock names them; every input is taken by hash from the
 * bundle, else from the local store, else from its origin with the normal
 * fetchers (the manifest's upstream URLs are given as --mirror); then the
 * same code as 'kbuild recipe' builds it, sign steps replayed without the
 * key (replay.c), and the rebuild's own manifest is compared with the
 * published one, file by file, with 'kbuild diff' explaining each step
 * output that differs. */
#include "verify_run.h"
#include "../builder/key.h"
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kb_verify_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild verify [--bundle FILE] [--keep DIR] [--jobs N] MANIFEST\n\n"
		"Rebuilds a recipe run from its manifest (STORE/manifests/NAME.json, written\n"
		"by 'kbuild recipe') in a fresh store and compares every output with the\n"
		"manifest. The recipe's files and lock are taken from the manifest; each\n"
		"input by hash from the bundle (--bundle, made by 'kbuild recipe --bundle\n"
		"FILE NAME'), else from the store (--store) when it has it, else from its\n"
		"origin (the manifest's upstream URLs, unless --mirror says otherwise).\n"
		"Sign steps need no private key: each rebuilt module gets the signature of\n"
		"the published signed module (which the bundle or store must hold), and\n"
		"the signature is checked against the manifest's certificate. Likewise a\n"
		"darksite's InRelease, Release.gpg or repomd.xml.asc and a signed RPM's\n"
		"header signature are taken from what was published once they verify\n"
		"with the manifest's OpenPGP key over the rebuilt data.\n\n"
		"  --bundle FILE  import this bundle into the fresh store first\n"
		"  --keep DIR     build in DIR (new or empty) and keep it: DIR/store holds\n"
		"                 both outputs, DIR/src the repository, DIR/rebuilt.json\n"
		"                 the rebuild's manifest\n"
		"  --jobs N       parallel downloads and $JOBS inside steps\n\n"
		"Exit status: 0 every output identical, 1 a difference (each one named, with\n"
		"'kbuild diff' down to the inner file) or a failure, 2 bad usage.\n");
	return 1;
}

typedef struct {
	const char *manifest, *bundle, *keep, *local;
	kb_run_opts run;
	json_t *m;
	char *work;    /* the working directory */
	kb_store *s;   /* the fresh store */
	kb_replay rp;
	size_t ndiff;  /* differences found */
	kb_buf report; /* what differs, one finding per line */
} verifier;

static kb_err *parse(int argc, char **argv, verifier *v)
{
	static const struct option lo[] = {{"bundle", required_argument, NULL, 'b'},
					   {"keep", required_argument, NULL, 'k'},
					   {"jobs", required_argument, NULL, 'j'},
					   {0}};
	optind = 0;
	kb_err *err = NULL;
	int c;
	while (!err && (c = kb_getopt(argc, argv, "j:", lo, "verify", &err)) > 0) {
		if (c == 'b')
			v->bundle = optarg;
		else if (c == 'k')
			v->keep = optarg;
		else {
			char *end;
			long j = strtol(optarg, &end, 10);
			if (*end || j < 1 || j > 64)
				err = kb_usage("kbuild verify: --jobs takes a number from 1 to 64");
			v->run.jobs = (int)j;
		}
	}
	if (!err && argc - optind != 1)
		err = kb_usage("kbuild verify: %s (usage: kbuild verify [--bundle FILE] [--keep DIR] "
			       "MANIFEST)", argc - optind ? "give one manifest" : "missing manifest");
	if (!err)
		v->manifest = argv[optind];
	return err;
}

static void finding(verifier *v, const char *fmt, ...) KB_PRINTF(2, 3);
static void finding(verifier *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = kb_vasprintf(fmt, ap);
	va_end(ap);
	kb_buf_addf(&v->report, "%s\n", s);
	free(s);
	v->ndiff++;
}

/* ---- the objects: bundle, local store, origin ---- */

typedef struct {
	const char *what; /* "input 'src'", "the published output of step 's'" */
	kb_hash hash;
	int required;     /* no origin to fetch it from */
} need;

static size_t needs(verifier *v, need **out)
{
	size_t cap = 16, n = 0, i, k;
	need *w = kb_calloc(cap, sizeof *w);
	json_t *x, *p;
#define ADD(WHAT, H, REQ)                                                                  \
	do {                                                                               \
		if (n == cap)                                                              \
			w = kb_realloc(w, (cap *= 2) * sizeof *w);                         \
		w[n++] = (need){WHAT, H, REQ};                                             \
	} while (0)
	json_array_foreach(json_object_get(v->m, "inputs"), i, x) {
		const char *kind = kb_jstr(x, "kind");
		int local = json_object_get(x, "repo_path") != NULL ||
			    (kind && !strcmp(kind, "file"));
		ADD(kb_asprintf("input '%s' (%s)", kb_jstr(x, "name"), kind ? kind : "?"),
		    kb_jhash(json_object_get(x, "result"), "sha256"), local);
	}
	json_array_foreach(json_object_get(v->m, "buildroots"), i, x)
		json_array_foreach(json_object_get(x, "packages"), k, p)
			ADD(kb_asprintf("package %s of buildroot '%s'", kb_jstr(p, "name"),
					kb_jstr(x, "name")), kb_jhash(p, "sha256"), 0);
	json_array_foreach(json_object_get(v->m, "steps"), i, x) {
		if (!strcmp(kb_jstr(x, "kind"), "sign"))
			ADD(kb_asprintf("the published signed output of sign step '%s'",
					kb_jstr(x, "name")), kb_jhash(x, "output"), 1);
		if (!json_object_get(x, "openpgp"))
			continue;
		json_array_foreach(json_object_get(v->m, "outputs"), k, p)
			if (!strcmp(kb_jstr(p, "step"), kb_jstr(x, "name")) &&
			    kb_pgp_candidate(kb_jstr(x, "kind"), kb_jstr(p, "path")))
				ADD(kb_asprintf("the published %s/%s (its OpenPGP signature)",
						kb_jstr(x, "name"), kb_jstr(p, "path")),
				    kb_jhash(p, "sha256"), 1);
	}
#undef ADD
	*out = w;
	return n;
}

/* what the fresh store lacks, copied from the local store through a
 * bundle (the store's own verified path) */
static kb_err *from_local(verifier *v, need *w, size_t n)
{
	kb_store *ls = NULL;
	struct stat st;
	if (!v->local || stat(v->local, &st) < 0 || kb_store_open(v->local, 0, &ls))
		return NULL; /* no local store: nothing to take */
	char **names = kb_calloc(n + 1, sizeof *names);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!kb_store_has(v->s, &w[i].hash) && kb_store_has(ls, &w[i].hash)) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&w[i].hash, hex);
			names[k++] = kb_strdup(hex);
		}
	kb_err *err = NULL;
	if (k) {
		char *b = kb_asprintf("%s/local.bundle", v->work);
		size_t no, nr;
		if (!(err = kb_store_export(ls, names, k, b, &no)))
			err = kb_store_import(v->s, b, 0, &no, &nr);
		if (!err)
			kb_info("took %zu object%s from the store %s", k, k == 1 ? "" : "s", v->local);
		unlink(b);
		free(b);
	}
	for (size_t i = 0; i < k; i++)
		free(names[i]);
	free(names);
	kb_store_close(ls);
	return err ? kb_err_wrap(err, "copying inputs from the store %s", v->local) : NULL;
}

static kb_err *gather(verifier *v)
{
	kb_err *err = NULL;
	size_t no = 0, nr = 0;
	if (v->bundle && (err = kb_store_import(v->s, v->bundle, 0, &no, &nr)))
		return kb_err_wrap(err, "bundle %s", v->bundle);
	if (v->bundle)
		kb_info("bundle %s: %zu objects", v->bundle, no);
	need *w;
	size_t n = needs(v, &w);
	err = from_local(v, w, n);
	kb_buf miss = {0};
	size_t nmiss = 0;
	for (size_t i = 0; !err && i < n; i++)
		if (w[i].required && !kb_store_has(v->s, &w[i].hash)) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&w[i].hash, hex);
			kb_buf_addf(&miss, "\n  %s: %s", w[i].what, hex);
			nmiss++;
		}
	if (!err && nmiss)
		err = kb_errf("%zu object%s the rebuild needs and cannot fetch %s missing from %s%s:%s\n"
			      "make the bundle with 'kbuild recipe --bundle FILE %s' (or 'kbuild store "
			      "export'), or give the store that has them with --store",
			      nmiss, nmiss == 1 ? "" : "s", nmiss == 1 ? "is" : "are",
			      v->bundle ? "the bundle " : "the store",
			      v->bundle ? v->bundle : (v->local ? v->local : ""), miss.p,
			      kb_jstr(json_object_get(v->m, "recipe"), "name"));
	kb_buf_free(&miss);
	for (size_t i = 0; i < n; i++)
		free((char *)w[i].what);
	free(w);
	return err;
}

/* ---- the repository, the keys, the mirrors ---- */

static kb_err *put_file(const char *root, const char *rel, json_t *f)
{
	char *path = kb_asprintf("%s/%s", root, rel), *dir = kb_strdup(path);
	*strrchr(dir, '/') = 0;
	kb_err *err = kb_mkdir_p(dir, 0755);
	json_t *t = json_object_get(f, "text");
	int fd = err ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (!err && fd < 0)
		err = kb_errno(errno, "cannot create %s", path);
	if (!err)
		err = kb_write_all(fd, json_string_value(t), json_string_length(t), path);
	if (fd >= 0)
		close(fd);
	free(dir);
	free(path);
	return err;
}

/* the repository as the lock saw it: the recipe and what it includes, the
 * lock, and the file and key inputs it holds; *cwd is where the recipe's
 * path (as the lock names it) leads to it */
static kb_err *make_repo(verifier *v, char **cwd, const char **recipe)
{
	json_t *r = json_object_get(v->m, "recipe"), *x;
	json_t *top = json_array_get(json_object_get(v->m, "sources"), 0);
	const char *shown = kb_jstr(r, "path"), *rel = kb_jstr(top, "repo_path");
	size_t sl = strlen(shown), rl = strlen(rel);
	if (strcmp(kb_jstr(top, "path"), shown) || sl < rl || strcmp(shown + sl - rl, rel) ||
	    (sl > rl && shown[sl - rl - 1] != '/') ||
	    !kb_safe_relpath(shown))
		return kb_errf("%s: the recipe was built as %s, which cannot be laid out again below "
			       "a directory (build it from the repository with a relative path)",
			       v->manifest, shown);
	*recipe = shown;
	*cwd = kb_asprintf("%s/src", v->work);
	char *root = sl > rl ? kb_asprintf("%s/%.*s", *cwd, (int)(sl - rl - 1), shown)
			     : kb_strdup(*cwd);
	kb_err *err = kb_mkdir_p(root, 0755);
	size_t i;
	json_array_foreach(json_object_get(v->m, "sources"), i, x)
		if (!err)
			err = put_file(root, kb_jstr(x, "repo_path"), x);
	if (!err) {
		json_t *l = json_object_get(v->m, "lock");
		err = put_file(root, kb_jstr(l, "repo_path"), l);
	}
	json_array_foreach(json_object_get(v->m, "inputs"), i, x) {
		const char *rp = kb_jstr(x, "repo_path");
		if (err || !rp)
			continue;
		json_t *res = json_object_get(x, "result");
		kb_oid o = {!strcmp(kb_jstr(res, "type"), "tree") ? KB_TREE : KB_BLOB,
			    kb_jhash(res, "sha256")};
		char *dest = kb_asprintf("%s/%s", root, rp), *dir = kb_strdup(dest);
		*strrchr(dir, '/') = 0;
		if (!(err = kb_mkdir_p(dir, 0755)))
			err = kb_store_checkout(v->s, &o, dest, KB_CHECKOUT_COPY);
		if (err)
			err = kb_err_wrap(err, "input '%s' into the repository", kb_jstr(x, "name"));
		free(dir);
		free(dest);
	}
	free(root);
	return err;
}

/* the public OpenPGP key of a darksite or signed RPM step as KEY.pgp.pub,
 * byte for byte as the builder's key directory held it (its hash is in
 * the step's run key); no KEY.pgp.sec: signatures are replayed */
static kb_err *pgp_key(verifier *v, const char *dir, const char *step, json_t *g)
{
	const char *key = kb_jstr(g, "key"), *text = kb_jstr(g, "public_key");
	kb_buf pub = {0}, old = {0};
	kb_buf_add(&pub, text, strlen(text));
	char *fpr = NULL, *uid = NULL;
	kb_err *err = kb_key_check_name(key);
	if (!err && (err = kb_pgp_key_info(&pub, &fpr, &uid, NULL)))
		err = kb_err_wrap(err, "%s: the OpenPGP key of step '%s'", v->manifest, step);
	else if (!err && strcmp(fpr, kb_jstr(g, "fingerprint")))
		err = kb_errf("%s: the OpenPGP key of step '%s' has fingerprint %s, not the %s "
			      "the manifest names", v->manifest, step, fpr, kb_jstr(g, "fingerprint"));
	char *path = kb_asprintf("%s/%s.pgp.pub", dir, key);
	if (!err && !access(path, F_OK)) {
		/* a second step with this key: it must be the same key */
		if (!(err = kb_read_file(AT_FDCWD, path, 1 << 20, &old)) &&
		    (old.len != pub.len || memcmp(old.p, pub.p, pub.len)))
			err = kb_errf("%s: steps name OpenPGP key '%s' with two different public "
				      "keys", v->manifest, key);
	} else if (!err) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			err = kb_errno(errno, "cannot create %s", path);
		else {
			err = kb_write_all(fd, pub.p, pub.len, path);
			close(fd);
		}
	}
	free(path);
	free(fpr);
	free(uid);
	kb_buf_free(&pub);
	kb_buf_free(&old);
	return err;
}

/* each sign step's certificate as KEY.crt in a key directory of its own:
 * the rebuild sees the key the build saw, without its private half */
static kb_err *make_keys(verifier *v)
{
	char *dir = kb_asprintf("%s/keys", v->work);
	kb_err *err = NULL;
	if (mkdir(dir, 0700) < 0)
		err = kb_errno(errno, "cannot create %s", dir);
	kb_key_set_dir(dir);
	size_t i, nsign = 0;
	json_t *x;
	json_array_foreach(json_object_get(v->m, "steps"), i, x) {
		json_t *g = json_object_get(x, "sign");
		if (err || strcmp(kb_jstr(x, "kind"), "sign"))
			continue;
		v->rp.sign = kb_realloc(v->rp.sign, (nsign + 1) * sizeof *v->rp.sign);
		v->rp.sign[nsign].step = kb_jstr(x, "name");
		v->rp.sign[nsign++].output = kb_jhash(x, "output");
		const char *key = kb_jstr(g, "key"), *b64 = kb_jstr(g, "certificate_der_base64");
		size_t n = strlen(b64);
		unsigned char *der = kb_malloc(n / 4 * 3 + 3);
		int len = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n);
		while (len > 0 && n && b64[--n] == '=')
			len--;
		const unsigned char *p = der;
		X509 *cert = len > 0 ? d2i_X509(NULL, &p, len) : NULL;
		kb_hash h, want = kb_jhash(g, "certificate_sha256");
		if (len > 0)
			kb_sha256(der, (size_t)len, &h);
		if ((err = kb_key_check_name(key)))
			;
		else if (!cert || p != der + len)
			err = kb_errf("%s: the certificate of sign step '%s' is not a DER X.509 "
				      "certificate", v->manifest, kb_jstr(x, "name"));
		else if (!kb_hash_eq(&h, &want))
			err = kb_errf("%s: the certificate of sign step '%s' does not hash to its "
				      "certificate_sha256", v->manifest, kb_jstr(x, "name"));
		char *crt = kb_asprintf("%s/%s.crt", dir, key);
		FILE *f = err ? NULL : fopen(crt, "wx");
		if (!err && !f && errno == EEXIST) {
			/* a second step with this key: it must be the same certificate */
			X509 *old = NULL;
			if (!(err = kb_key_x509(key, &old, NULL)) && X509_cmp(old, cert))
				err = kb_errf("%s: sign steps name key '%s' with two different "
					      "certificates", v->manifest, key);
			X509_free(old);
		} else if (!err && !f) {
			err = kb_errno(errno, "cannot create %s", crt);
		} else if (!err) {
			if (!PEM_write_X509(f, cert))
				err = kb_errf("cannot write %s", crt);
			if (fclose(f) && !err)
				err = kb_errno(errno, "cannot write %s", crt);
		}
		free(crt);
		X509_free(cert);
		free(der);
	}
	v->rp.nsign = nsign;
	json_array_foreach(json_object_get(v->m, "steps"), i, x) {
		json_t *g = json_object_get(x, "openpgp");
		if (!err && g)
			err = pgp_key(v, dir, kb_jstr(x, "name"), g);
	}
	free(dir);
	return err;
}

/* the manifest's upstream URLs, unless --mirror names one already */
static kb_err *mirrors(verifier *v)
{
	size_t i;
	json_t *x;
	kb_arena *a = kb_arena_new();
	kb_err *err = NULL;
	json_array_foreach(json_object_get(v->m, "upstreams"), i, x) {
		kb_upstream u = {.name = kb_jstr(x, "name"), .type = kb_jstr(x, "type"),
				 .url = kb_jstr(x, "url")};
		if (!u.url) /* the build had no mirror for it, and did not need one */
			continue;
		const char *url, *from;
		kb_err *e = kb_upstream_resolve(a, &u, &url, &from);
		int given = !e && !strcmp(from, "--mirror");
		kb_err_free(e);
		char *spec = kb_asprintf("%s=%s", u.name, u.url);
		if (!given && (err = kb_mirror_add(spec)))
			err = kb_err_wrap(err, "%s: upstream '%s'", v->manifest, u.name);
		free(spec);
		if (err)
			break;
	}
	kb_arena_free(a);
	return err;
}

/* ---- comparing ---- */

static json_t *by_name(json_t *arr, const char *key, const char *name)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x)
		if (kb_jstr(x, key) && !strcmp(kb_jstr(x, key), name))
			return x;
	return NULL;
}

static json_t *output_of(json_t *outs, const char *step, const char *path)
{
	size_t i;
	json_t *x;
	json_array_foreach(outs, i, x)
		if (!strcmp(kb_jstr(x, "step"), step) && !strcmp(kb_jstr(x, "path"), path))
			return x;
	return NULL;
}

/* 'kbuild diff' between the published and the rebuilt output of a step */
static void explain(verifier *v, const char *step, const char *pub, const char *reb)
{
	kb_hash h;
	kb_hash_parse(pub, strlen(pub), &h);
	if (!kb_store_has(v->s, &h)) {
		kb_buf_addf(&v->report, "  (the published output %s is not in the bundle or store: "
					"compare file by file above)\n", pub);
		return;
	}
	kb_diff_opts o = {.max = 20, .store = kb_store_path(v->s)};
	kb_diff_list l = {0};
	kb_err *err = kb_diff(pub, reb, &o, &l);
	if (err) {
		kb_buf_addf(&v->report, "  (kbuild diff failed: %s)\n", err->msg);
		kb_err_free(err);
		return;
	}
	kb_buf_addf(&v->report, "  kbuild diff of step %s (published, rebuilt):\n", step);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f) {
		kb_diff_print(&l, f);
		fclose(f);
		for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			kb_buf_addf(&v->report, "    %.*s\n", nl ? (int)(nl - line) : (int)strlen(line),
				    line);
		}
	}
	free(text);
	kb_diff_list_free(&l);
}

static void compare(verifier *v, json_t *rb, size_t *nfiles, size_t *nsteps)
{
	json_t *pm = v->m, *x;
	size_t i;
	json_array_foreach(json_object_get(pm, "inputs"), i, x) {
		json_t *y = by_name(json_object_get(rb, "inputs"), "name", kb_jstr(x, "name"));
		const char *a = kb_jstr(json_object_get(x, "result"), "sha256");
		const char *b = y ? kb_jstr(json_object_get(y, "result"), "sha256") : NULL;
		if (!b || strcmp(a, b))
			finding(v, "input %s: the manifest says %s, the rebuild used %s",
				kb_jstr(x, "name"), a, b ? b : "nothing");
	}
	json_array_foreach(json_object_get(pm, "buildroots"), i, x) {
		json_t *y = by_name(json_object_get(rb, "buildroots"), "name", kb_jstr(x, "name"));
		if (!y || strcmp(kb_jstr(x, "tree"), kb_jstr(y, "tree")))
			finding(v, "buildroot %s: the manifest says tree %s, the rebuild made %s",
				kb_jstr(x, "name"), kb_jstr(x, "tree"), y ? kb_jstr(y, "tree") : "none");
	}
	json_t *pouts = json_object_get(pm, "outputs"), *routs = json_object_get(rb, "outputs");
	json_array_foreach(json_object_get(pm, "steps"), i, x) {
		const char *name = kb_jstr(x, "name");
		json_t *y = by_name(json_object_get(rb, "steps"), "name", name);
		if (!y) {
			finding(v, "step %s: in the manifest but not in the rebuild", name);
			continue;
		}
		(*nsteps)++;
		if (strcmp(kb_jstr(x, "action"), kb_jstr(y, "action")))
			finding(v, "step %s: its definition differs (action %s in the manifest, %s "
				   "rebuilt): another kbuild or another recipe", name,
				kb_jstr(x, "action"), kb_jstr(y, "action"));
		size_t before = v->ndiff, k;
		json_t *o;
		json_array_foreach(pouts, k, o) {
			if (strcmp(kb_jstr(o, "step"), name))
				continue;
			json_t *p = output_of(routs, name, kb_jstr(o, "path"));
			if (!p)
				finding(v, "output %s/%s: published, but the rebuild has no such file",
					name, kb_jstr(o, "path"));
			else if (strcmp(kb_jstr(o, "sha256"), kb_jstr(p, "sha256")) ||
				 !json_equal(json_object_get(o, "size"), json_object_get(p, "size")) ||
				 !json_equal(json_object_get(o, "executable"), json_object_get(p, "executable")))
				finding(v, "output %s/%s: published sha256 %s (%lld bytes), rebuilt %s "
					   "(%lld bytes)%s", name, kb_jstr(o, "path"), kb_jstr(o, "sha256"),
					(long long)json_integer_value(json_object_get(o, "size")),
					kb_jstr(p, "sha256"),
					(long long)json_integer_value(json_object_get(p, "size")),
					json_equal(json_object_get(o, "executable"),
						   json_object_get(p, "executable")) ? "" : ", executable bit differs");
			else
				(*nfiles)++;
		}
		json_array_foreach(routs, k, o)
			if (!strcmp(kb_jstr(o, "step"), name) && !output_of(pouts, name, kb_jstr(o, "path")))
				finding(v, "output %s/%s: the rebuild made it, the manifest does not list it",
					name, kb_jstr(o, "path"));
		if (strcmp(kb_jstr(x, "output"), kb_jstr(y, "output"))) {
			if (v->ndiff == before)
				finding(v, "step %s: output tree %s in the manifest, %s rebuilt (same files: "
					   "a symlink or directory differs)", name, kb_jstr(x, "output"),
					kb_jstr(y, "output"));
			explain(v, name, kb_jstr(x, "output"), kb_jstr(y, "output"));
		}
	}
	for (i = 0; i < v->rp.nbad; i++)
		finding(v, "%s", v->rp.bad[i]);
}

/* ---- the whole ---- */

static kb_err *workdir(verifier *v)
{
	if (v->keep) {
		kb_err *err = kb_mkdir_p(v->keep, 0755);
		if (!err && rmdir(v->keep) < 0)
			err = errno == ENOTEMPTY || errno == EEXIST
				      ? kb_errf("--keep %s is not empty; give a new or empty directory",
						v->keep)
				      : kb_errno(errno, "cannot use %s", v->keep);
		if (!err && mkdir(v->keep, 0755) < 0)
			err = kb_errno(errno, "cannot create %s", v->keep);
		if (!err)
			v->work = kb_abspath(v->keep);
		return err;
	}
	const char *tmp = getenv("TMPDIR");
	char *t = kb_asprintf("%s/kbuild-verify.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(t)) {
		kb_err *err = kb_errno(errno, "cannot create a directory like %s", t);
		free(t);
		return err;
	}
	v->work = kb_abspath(t);
	free(t);
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kb_err *run(verifier *v)
{
	double t0 = now();
	kb_err *err = kb_manifest_load(v->manifest, &v->m);
	if (err)
		return err;
	const char *name = kb_jstr(json_object_get(v->m, "recipe"), "name");
	char *store = NULL, *cwd = NULL, *rebuilt = NULL;
	const char *recipe = NULL;
	if (!(err = workdir(v))) {
		store = kb_asprintf("%s/store", v->work);
		rebuilt = kb_asprintf("%s/rebuilt.json", v->work);
		err = kb_store_open(store, 1, &v->s);
	}
	if (!err)
		err = gather(v);
	if (!err)
		err = make_repo(v, &cwd, &recipe);
	if (!err)
		err = make_keys(v);
	if (!err)
		err = mirrors(v);
	v->rp.s = v->s;
	if (!err)
		err = kb_verify_pgp_load(&v->rp, v->m);
	int back = -1;
	if (!err && (back = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = kb_errno(errno, "cannot open the current directory");
	if (!err && chdir(cwd) < 0)
		err = kb_errno(errno, "cannot enter %s", cwd);
	kb_oid result;
	if (!err) {
		kb_info("verify %s: rebuilding recipe %s in %s", v->manifest, name, v->work);
		kb_sign_replay = kb_verify_replay_module;
		kb_pgp_replay = kb_verify_replay_pgp;
		kb_sign_replay_ctx = kb_pgp_replay_ctx = &v->rp;
		err = kb_recipe_rebuild(v->s, recipe, &v->run, rebuilt, &result);
		kb_sign_replay = NULL;
		kb_pgp_replay = NULL;
		kb_sign_replay_ctx = kb_pgp_replay_ctx = NULL;
		if (err)
			err = kb_err_wrap(err, "the rebuild of recipe '%s' failed", name);
	}
	if (back >= 0) {
		if (fchdir(back) < 0 && !err)
			err = kb_errno(errno, "cannot return to the current directory");
		close(back);
	}
	json_t *rb = NULL;
	if (!err)
		err = kb_manifest_load(rebuilt, &rb);
	size_t nfiles = 0, nsteps = 0;
	if (!err) {
		compare(v, rb, &nfiles, &nsteps);
		json_decref(rb);
		if (v->ndiff) {
			fputs(v->report.p, stdout);
			err = kb_errf("recipe %s does not reproduce: %zu difference%s (above); both "
				      "outputs are in %s%s", name, v->ndiff, v->ndiff == 1 ? "" : "s",
				      store, v->keep ? "" : " (removed: keep them with --keep DIR)");
		} else {
			printf("verified: recipe %s reproduces: %zu step%s, %zu output file%s, %zu "
			       "signed module%s and %zu OpenPGP signature%s identical to the "
			       "manifest (%.1f s)\n", name, nsteps, nsteps == 1 ? "" : "s", nfiles,
			       nfiles == 1 ? "" : "s", v->rp.nmodules, v->rp.nmodules == 1 ? "" : "s",
			       v->rp.npgp_ok, v->rp.npgp_ok == 1 ? "" : "s", now() - t0);
		}
	}
	free(store);
	free(cwd);
	free(rebuilt);
	return err;
}

int kb_verify_main(const char *store_dir, int argc, char **argv)
{
	if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		kb_verify_help(stdout);
		return 0;
	}
	verifier v = {.local = store_dir};
	char **av = kb_calloc((size_t)argc + 2, sizeof *av);
	av[0] = (char *)"verify";
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	kb_err *err = parse(argc + 1, av, &v);
	if (!err)
		err = run(&v);
	kb_store_close(v.s);
	if (v.work && !v.keep) {
		kb_err *e = kb_remove_tree(AT_FDCWD, v.work);
		if (e)
			kb_warn("cannot remove %s: %s", v.work, e->msg);
		kb_err_free(e);
	}
	for (size_t i = 0; i < v.rp.nbad; i++)
		free(v.rp.bad[i]);
	free(v.rp.bad);
	kb_verify_pgp_free(&v.rp);
	free(v.rp.sign);
	free(v.work);
	kb_buf_free(&v.report);
	json_decref(v.m);
	free(av);
	return kb_exit_status(err);
}

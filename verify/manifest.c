/* The build manifest: everything a third party needs to rebuild a recipe
 * run and check its outputs (the recipe's text and lock, every input by
 * hash with where it came from, every buildroot's packages, every step's
 * definition and what it read and wrote, each sign step's certificate,
 * and each artifact file). Nothing in it depends on the time or on the
 * host beyond what the build itself depends on, so the same build gives
 * the same bytes. */
#include "manifest.h"
#include "../builder/key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static json_t *hexj(const kb_hash *h)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	return json_string(hex);
}

static json_t *oidj(const kb_oid *o)
{
	json_t *j = json_object();
	json_object_set_new(j, "type", json_string(kb_objtype_name(o->type)));
	json_object_set_new(j, "sha256", hexj(&o->hash));
	return j;
}

/* a string that may not be UTF-8: as text when it is, else as base64 */
static void set_text(json_t *o, const char *key, const char *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	if (s) {
		json_object_set_new(o, key, s);
		return;
	}
	char *b64 = kb_malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)p, (int)n);
	char *k64 = kb_asprintf("%s_base64", key);
	json_object_set_new(o, k64, json_string(b64));
	free(k64);
	free(b64);
}

/* path relative to the repository, or NULL when it is outside */
static const char *in_repo(const kb_recipe *r, const char *abspath)
{
	size_t n = strlen(r->root);
	if (!strncmp(abspath, r->root, n) && abspath[n] == '/')
		return abspath + n + 1;
	return NULL;
}

/* a small file of the repository, which must still hash as it did when
 * the build checked it */
static kb_err *file_entry(const kb_recipe *r, const char *shown, const char *abspath,
			  const kb_hash *want, json_t **out)
{
	const char *rel = in_repo(r, abspath);
	if (!rel)
		return kb_errf("%s is outside the repository %s", abspath, r->root);
	kb_buf b = {0};
	kb_err *err = kb_read_file(AT_FDCWD, abspath, 16 << 20, &b);
	if (err)
		return err;
	kb_hash h;
	kb_sha256(b.p ? b.p : "", b.len, &h);
	if (want && !kb_hash_eq(&h, want))
		err = kb_errf("%s changed during the build; run 'kbuild recipe %s' again", shown,
			      r->name);
	if (!err) {
		*out = json_object();
		json_object_set_new(*out, "path", json_string(shown));
		json_object_set_new(*out, "repo_path", json_string(rel));
		json_object_set_new(*out, "sha256", hexj(&h));
		set_text(*out, "text", b.p ? b.p : "", b.len);
	}
	kb_buf_free(&b);
	return err;
}

static json_t *lock_keys(const kb_lock_entry *e)
{
	json_t *j = json_object();
	for (size_t k = 0; e && k < e->nkv; k++)
		json_object_set_new(j, e->kv[k].key, json_string(e->kv[k].value));
	return j;
}

/* the result of each action by name, from the recipe's result tree (on a
 * cached run kb_build did not fill them in) */
typedef struct {
	kb_tree t;
} results;

static int result_of(const results *rs, const char *name, kb_oid *out)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < rs->t.n; i++)
		if (rs->t.e[i].namelen == n && !memcmp(rs->t.e[i].name, name, n)) {
			out->type = kb_enttype_objtype(rs->t.e[i].type);
			out->hash = rs->t.e[i].hash;
			return 1;
		}
	return 0;
}

static kb_err *need_result(const results *rs, const char *name, kb_oid *out)
{
	return result_of(rs, name, out) ? NULL
		: kb_errf("the recipe's result tree has no entry '%s'", name);
}

typedef struct {
	kb_store *s;
	const char *step;
	json_t *out;
} filelist;

/* a regular file below a step's output, as {step, path, sha256, size, executable} */
static kb_err *list_file(void *ctx, const char *path, int depth, const kb_tree_entry *e)
{
	filelist *l = ctx;
	(void)depth;
	if (e->type == KB_ENT_LINK || e->type == KB_ENT_DIR)
		return NULL;
	int fd;
	struct stat st;
	kb_err *err = kb_store_open_object(l->s, &e->hash, &fd);
	if (!err) {
		if (fstat(fd, &st) < 0)
			err = kb_errno(errno, "cannot stat output %s/%s", l->step, path);
		close(fd);
	}
	if (!err) {
		json_t *f = json_object();
		json_object_set_new(f, "step", json_string(l->step));
		json_object_set_new(f, "path", json_string(path));
		json_object_set_new(f, "sha256", hexj(&e->hash));
		json_object_set_new(f, "size", json_integer((json_int_t)st.st_size));
		json_object_set_new(f, "executable", json_boolean(e->type == KB_ENT_EXEC));
		json_array_append_new(l->out, f);
	}
	return err;
}

static json_t *strs(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static kb_err *sign_entry(const kb_step *st, json_t *j)
{
	X509 *cert = NULL;
	kb_err *err = kb_key_x509(st->key, &cert, NULL);
	if (err)
		return err;
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);
	X509_free(cert);
	if (n <= 0)
		return kb_errf("cannot encode key '%s''s certificate", st->key);
	json_t *g = json_object();
	json_object_set_new(g, "key", json_string(st->key));
	json_object_set_new(g, "hash", json_string(st->hash ? st->hash : "sha256"));
	if (st->certificate)
		json_object_set_new(g, "certificate_path", json_string(st->certificate));
	char *b64 = kb_malloc(4 * (((size_t)n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	json_object_set_new(g, "certificate_der_base64", json_string(b64));
	kb_hash h;
	kb_sha256(der, (size_t)n, &h);
	json_object_set_new(g, "certificate_sha256", hexj(&h));
	free(b64);
	OPENSSL_free(der);
	json_object_set_new(j, "sign", g);
	return NULL;
}

/* the public half of an OpenPGP signing key (darksites, signed RPMs), as
 * the key directory holds it: the verifier's rebuild gets the same bytes
 * and with them the same run keys */
static kb_err *pgp_entry(const kb_step *st, json_t *j)
{
	kb_buf pub = {0};
	char *fpr = NULL, *uid = NULL;
	kb_err *err = kb_key_pgp(st->key, &pub, NULL);
	if (!err)
		err = kb_pgp_key_info(&pub, &fpr, &uid, NULL);
	if (!err) {
		json_t *g = json_object();
		json_object_set_new(g, "key", json_string(st->key));
		json_object_set_new(g, "fingerprint", json_string(fpr));
		json_object_set_new(g, "public_key", json_stringn(pub.p, pub.len)); /* armored */
		json_object_set_new(j, "openpgp", g);
	}
	free(fpr);
	free(uid);
	kb_buf_free(&pub);
	return err;
}

static const char *origin_of(const kb_input *in)
{
	switch (in->kind) {
	case KB_IN_URL:
	case KB_IN_GIT:
		return in->url;
	case KB_IN_KEY:
		return in->path ? in->path : in->url;
	case KB_IN_FILE:
		return in->path;
	default:
		return NULL;
	}
}

static kb_err *inputs_json(kb_store *s, const kb_recipe *r, const kb_lock *l,
			   const kb_action *act, const results *rs, json_t *m)
{
	json_t *ins = json_array(), *roots = json_array(), *ups = json_array();
	json_object_set_new(m, "inputs", ins);
	json_object_set_new(m, "buildroots", roots);
	json_object_set_new(m, "upstreams", ups);
	kb_arena *a = kb_arena_new();
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < r->nup; i++) {
		const char *url, *from;
		/* an upstream this build did not use may have no mirror here */
		kb_err *uerr = kb_upstream_resolve(a, &r->up[i], &url, &from);
		json_t *u = json_object();
		json_object_set_new(u, "name", json_string(r->up[i].name));
		json_object_set_new(u, "type", json_string(r->up[i].type));
		if (!uerr)
			json_object_set_new(u, "url", json_string(url));
		kb_err_free(uerr);
		json_array_append_new(ups, u);
	}
	for (size_t i = 0; !err && i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		const kb_lock_entry *e = kb_lock_find(l, kb_inkind_name(in->kind), in->name);
		kb_oid res;
		if ((err = need_result(rs, in->name, &res)))
			break;
		json_t *j = json_object();
		json_object_set_new(j, "name", json_string(in->name));
		json_object_set_new(j, "action", hexj(&act[i].key));
		if (in->kind == KB_IN_BUILDROOT) {
			json_object_set_new(j, "tree", hexj(&res.hash));
			json_object_set_new(j, "upstreams", strs(in->upstreams, in->nupstreams));
			json_object_set_new(j, "requested", strs(in->pkgs, in->npkgs));
			json_t *pk = json_array();
			for (size_t k = 0; !err && k < l->n; k++) {
				const kb_lock_entry *c = &l->e[k];
				if (!kb_lock_child(c, in->name))
					continue;
				json_t *p = lock_keys(c);
				const char *up = kb_lock_get(c, "upstream"), *path = kb_lock_get(c, "path");
				const kb_upstream *u = up ? kb_recipe_upstream(r, up) : NULL;
				const char *url, *from;
				if (u && path && !(err = kb_upstream_resolve(a, u, &url, &from))) {
					char *full = kb_mirror_url(url, path);
					json_object_set_new(p, "url", json_string(full));
					free(full);
				}
				json_array_append_new(pk, p);
			}
			json_object_set_new(j, "packages", pk);
			json_array_append_new(roots, j);
			continue;
		}
		json_object_set_new(j, "kind", json_string(kb_inkind_name(in->kind)));
		const char *origin = origin_of(in);
		if (origin)
			json_object_set_new(j, "origin", json_string(origin));
		if (in->abspath && in_repo(r, in->abspath))
			json_object_set_new(j, "repo_path", json_string(in_repo(r, in->abspath)));
		if (in->kind == KB_IN_PACKAGE) {
			const kb_upstream *u = kb_recipe_upstream(r, in->upstream);
			const char *path = kb_lock_get(e, "path"), *url, *from;
			if (u && path && !(err = kb_upstream_resolve(a, u, &url, &from))) {
				char *full = kb_mirror_url(url, path);
				json_object_set_new(j, "url", json_string(full));
				free(full);
			}
		}
		json_object_set_new(j, "lock", lock_keys(e));
		json_object_set_new(j, "result", oidj(&res));
		json_array_append_new(ins, j);
	}
	kb_arena_free(a);
	(void)s;
	return err;
}

static kb_err *steps_json(kb_store *s, const kb_recipe *r, const kb_action *act, size_t n,
			  const results *rs, json_t *m)
{
	json_t *steps = json_array(), *files = json_array();
	json_object_set_new(m, "steps", steps);
	json_object_set_new(m, "outputs", files);
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < n; i++) {
		const kb_step *st = act[i].step;
		if (!st)
			continue;
		kb_oid out;
		if ((err = need_result(rs, st->name, &out)))
			break;
		json_t *j = json_object();
		json_object_set_new(j, "name", json_string(st->name));
		json_object_set_new(j, "kind", json_string(kb_stepkind_name(st->kind)));
		json_object_set_new(j, "action", hexj(&act[i].key));
		if (st->root) {
			kb_oid root;
			if ((err = need_result(rs, st->root, &root))) {
				json_decref(j);
				break;
			}
			json_t *rj = json_object();
			json_object_set_new(rj, "name", json_string(st->root));
			json_object_set_new(rj, "tree", hexj(&root.hash));
			json_object_set_new(j, "root", rj);
		}
		if (st->argc)
			json_object_set_new(j, "command", strs(st->argv, st->argc));
		json_object_set_new(j, "env", strs(st->env, st->nenv));
		json_object_set_new(j, "source_date_epoch", json_integer((json_int_t)st->epoch));
		if (st->kernel)
			json_object_set_new(j, "kernel", json_string(st->kernel));
		kb_buf def = {0};
		kb_step_def(st, &def);
		set_text(j, "definition", def.p ? def.p : "", def.len);
		kb_buf_free(&def);
		json_t *ij = json_object();
		for (size_t k = 0; !err && k < st->ninputs; k++) {
			kb_oid o;
			if (!(err = need_result(rs, st->inputs[k], &o)))
				json_object_set_new(ij, st->inputs[k], oidj(&o));
		}
		json_object_set_new(j, "inputs", ij);
		json_object_set_new(j, "output", hexj(&out.hash));
		if (!err && st->kind == KB_STEP_SIGN)
			err = sign_entry(st, j);
		if (!err && kb_step_pgp_signs(st))
			err = pgp_entry(st, j);
		json_array_append_new(steps, j);
		filelist fl = {s, st->name, files};
		if (!err && out.type == KB_TREE)
			err = kb_tree_walk(s, &out.hash, list_file, &fl);
	}
	(void)r;
	return err;
}

kb_err *kb_manifest_json(kb_store *s, const kb_recipe *r, const kb_lock *l, const kb_action *act,
			 size_t n, const kb_oid *result, json_t **out)
{
	results rs = {0};
	kb_err *err = kb_store_read_tree(s, &result->hash, &rs.t);
	if (err)
		return kb_err_wrap(err, "the result of recipe '%s'", r->name);
	json_t *m = json_object();
	json_object_set_new(m, "format", json_string(KB_MANIFEST_FORMAT));
	json_object_set_new(m, "version", json_integer(KB_MANIFEST_VERSION));
	json_object_set_new(m, "kbuild", json_string(KB_VERSION));
	json_object_set_new(m, "step_version", json_integer(KB_STEP_VERSION));
	json_t *rj = json_object();
	json_object_set_new(rj, "name", json_string(r->name));
	/* as the lock names it: where the verifier's rebuild must find it */
	json_object_set_new(rj, "path", json_string(r->nsrcs ? r->srcs[0].path : ""));
	json_object_set_new(rj, "action", hexj(&act[n - 1].key));
	json_object_set_new(rj, "result", hexj(&result->hash));
	json_object_set_new(m, "recipe", rj);
	json_t *srcs = json_array();
	json_object_set_new(m, "sources", srcs);
	for (size_t i = 0; !err && i < r->nsrcs; i++) {
		json_t *j;
		if (!(err = file_entry(r, r->srcs[i].path, r->srcs[i].abspath, &r->srcs[i].sha256, &j)))
			json_array_append_new(srcs, j);
	}
	const char *lockrel = in_repo(r, r->lockpath);
	json_t *lj = NULL;
	if (!err)
		err = file_entry(r, lockrel ? lockrel : r->lockpath, r->lockpath, NULL, &lj);
	if (!err)
		json_object_set_new(m, "lock", lj);
	if (!err)
		err = inputs_json(s, r, l, act, &rs, m);
	if (!err)
		err = steps_json(s, r, act, n, &rs, m);
	kb_tree_free(&rs.t);
	if (err) {
		json_decref(m);
		return kb_err_wrap(err, "the manifest of recipe '%s'", r->name);
	}
	*out = m;
	return NULL;
}

char *kb_json_text(json_t *j, size_t *len)
{
	char *t = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII);
	if (!t)
		abort(); /* only out of memory */
	size_t n = strlen(t);
	char *out = kb_malloc(n + 2);
	memcpy(out, t, n);
	out[n] = '\n';
	out[n + 1] = 0;
	free(t);
	*len = n + 1;
	return out;
}

char *kb_intoto_path(const char *p)
{
	size_t n = strlen(p);
	if (n > 5 && !strcmp(p + n - 5, ".json"))
		return kb_asprintf("%.*s.intoto.json", (int)(n - 5), p);
	return kb_asprintf("%s.intoto.json", p);
}

static kb_err *write_file(const char *path, const char *p, size_t n)
{
	char *dir = kb_strdup(path), *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : path;
	if (slash == dir)
		dir[1] = 0;
	else if (slash)
		*slash = 0;
	kb_err *err = slash ? kb_mkdir_p(dir, 0755) : NULL;
	int fd = err ? -1 : open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!err && fd < 0)
		err = kb_errno(errno, "cannot open directory %s", slash ? dir : ".");
	if (!err)
		err = kb_write_file_atomic(fd, base, p, n, 0644);
	if (fd >= 0)
		close(fd);
	free(dir);
	return err;
}

/* what a verifier needs that it cannot make: every input (a buildroot's
 * packages one by one) and every step output as published (the signed
 * modules among them: their signatures cannot be made without the key),
 * and the manifest itself */
static kb_err *bundle(kb_store *s, json_t *m, const kb_hash *mhash, const char *path)
{
	size_t cap = 16, n = 0;
	char **names = kb_calloc(cap, sizeof *names);
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(mhash, hex);
	names[n++] = kb_strdup(hex);
	size_t i;
	json_t *v, *p;
	json_array_foreach(json_object_get(m, "inputs"), i, v) {
		if (n + 1 >= cap)
			names = kb_realloc(names, (cap *= 2) * sizeof *names);
		names[n++] = kb_strdup(json_string_value(json_object_get(json_object_get(v, "result"),
									    "sha256")));
	}
	json_array_foreach(json_object_get(m, "buildroots"), i, v) {
		size_t k;
		json_array_foreach(json_object_get(v, "packages"), k, p) {
			if (n + 1 >= cap)
				names = kb_realloc(names, (cap *= 2) * sizeof *names);
			names[n++] = kb_strdup(json_string_value(json_object_get(p, "sha256")));
		}
	}
	json_array_foreach(json_object_get(m, "steps"), i, v) {
		if (n + 1 >= cap)
			names = kb_realloc(names, (cap *= 2) * sizeof *names);
		names[n++] = kb_strdup(json_string_value(json_object_get(v, "output")));
	}
	size_t nobj = 0;
	kb_err *err = kb_store_export(s, names, n, path, &nobj);
	if (!err)
		kb_info("bundle %s: %zu objects (the inputs, the step outputs, the manifest)", path,
			nobj);
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	return err;
}

kb_err *kb_manifest_record(kb_store *s, const kb_recipe *r, const kb_lock *l,
			   const kb_action *act, size_t n, const kb_oid *result,
			   const kb_manifest_opts *o, char **written)
{
	json_t *m;
	*written = NULL;
	kb_err *err = kb_manifest_json(s, r, l, act, n, result, &m);
	if (err)
		return err;
	size_t len, slen;
	char *text = kb_json_text(m, &len);
	kb_oid blob = {KB_BLOB, {{0}}};
	kb_txn *t;
	if (!(err = kb_txn_begin(s, &t))) {
		if ((err = kb_txn_add_bytes(t, text, len, 0, &blob.hash)))
			kb_txn_abort(t);
		else
			err = kb_txn_commit(t, &blob, 1);
	}
	char *ref = kb_asprintf("manifest/%s", r->name);
	if (!err)
		err = kb_ref_update(s, ref, NULL, &blob);
	char *path = o && o->path ? kb_strdup(o->path)
				  : kb_asprintf("%s/manifests/%s.json", kb_store_path(s), r->name);
	if (!err)
		err = write_file(path, text, len);
	json_t *stmt = err ? NULL : kb_intoto_statement(m, &blob.hash);
	char *stext = stmt ? kb_json_text(stmt, &slen) : NULL;
	char *spath = kb_intoto_path(path);
	if (!err)
		err = write_file(spath, stext, slen);
	if (!err && o && o->bundle)
		err = bundle(s, m, &blob.hash, o->bundle);
	if (!err)
		*written = kb_strdup(path);
	free(spath);
	free(stext);
	json_decref(stmt);
	free(path);
	free(ref);
	free(text);
	json_decref(m);
	return err;
}

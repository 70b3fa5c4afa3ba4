/* Reading a manifest for 'kbuild verify'. A manifest comes from someone
 * else: every field verify uses is checked here, once, so that the rest
 * can take them as given, and a bad one is named by its place in the
 * document. */
#include "verify_run.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

const char *kb_jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

kb_hash kb_jhash(json_t *o, const char *key)
{
	kb_hash h = {{0}};
	const char *s = kb_jstr(o, key);
	if (s && kb_hash_parse(s, strlen(s), &h))
		memset(&h, 0, sizeof h);
	return h;
}

int kb_safe_relpath(const char *p)
{
	if (!*p || *p == '/')
		return 0;
	for (const char *c = p; *c;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		if (!n || (n == 2 && !memcmp(c, "..", 2)))
			return 0;
		if (!slash)
			break;
		c = slash + 1;
	}
	return 1;
}

typedef struct {
	const char *file;
	kb_buf where; /* the field being checked, e.g. steps[2].output */
} chk;

static kb_err *bad(chk *c, const char *field, const char *what)
{
	return kb_errf("%s: %s%s%s %s; the manifest is damaged or not one 'kbuild recipe' wrote",
		       c->file, c->where.len ? c->where.p : "", c->where.len && *field ? "." : "",
		       field, what);
}

static kb_err *str(chk *c, json_t *o, const char *k, int required)
{
	json_t *v = json_object_get(o, k);
	if (!v && !required)
		return NULL;
	if (!json_is_string(v))
		return bad(c, k, v ? "is not a string" : "is missing");
	return NULL;
}

static kb_err *hash(chk *c, json_t *o, const char *k)
{
	kb_err *err = str(c, o, k, 1);
	kb_hash h;
	const char *s = kb_jstr(o, k);
	if (!err && (strlen(s) != KB_HEX_LEN || kb_hash_parse(s, strlen(s), &h)))
		err = kb_errf("%s: %s%s%s is '%.80s', not a SHA-256 (64 lowercase hex digits)",
			      c->file, c->where.len ? c->where.p : "", c->where.len ? "." : "", k, s);
	if (!err)
		for (const char *p = s; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				err = kb_errf("%s: %s%s%s is '%s', not a SHA-256 (64 lowercase hex digits)",
					      c->file, c->where.len ? c->where.p : "",
					      c->where.len ? "." : "", k, s);
	return err;
}

static kb_err *arr(chk *c, json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_array(v) ? NULL : bad(c, k, v ? "is not an array" : "is missing");
}

static kb_err *obj(chk *c, json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_object(v) ? NULL : bad(c, k, v ? "is not an object" : "is missing");
}

static void at(chk *c, const char *k, size_t i)
{
	c->where.len = 0;
	kb_buf_addf(&c->where, "%s[%zu]", k, i);
}

static kb_err *path_field(chk *c, json_t *o, const char *k)
{
	kb_err *err = str(c, o, k, 1);
	if (!err && !kb_safe_relpath(kb_jstr(o, k)))
		err = bad(c, k, "is not a relative path inside the repository");
	return err;
}

/* a repository file: path, repo_path, sha256, text (or text_base64) */
static kb_err *file_entry(chk *c, json_t *f)
{
	kb_err *err = str(c, f, "path", 1);
	if (!err)
		err = path_field(c, f, "repo_path");
	if (!err)
		err = hash(c, f, "sha256");
	if (!err && !json_is_string(json_object_get(f, "text")))
		err = bad(c, "text", "is missing (kbuild verify takes the file's text from the "
				     "manifest)");
	if (!err) {
		kb_hash h;
		json_t *t = json_object_get(f, "text");
		kb_sha256(json_string_value(t), json_string_length(t), &h);
		kb_hash want = kb_jhash(f, "sha256");
		if (!kb_hash_eq(&h, &want))
			err = bad(c, "text", "does not hash to its sha256");
	}
	return err;
}

static kb_err *check(chk *c, json_t *m)
{
	kb_err *err = NULL;
	json_t *v, *r = json_object_get(m, "recipe");
	size_t i;
	if (!json_is_object(m))
		return bad(c, "(top)", "is not an object");
	const char *fmt = kb_jstr(m, "format");
	if (!fmt || strcmp(fmt, KB_MANIFEST_FORMAT))
		return kb_errf("%s is not a kbuild manifest (no \"format\": \"%s\")", c->file,
			       KB_MANIFEST_FORMAT);
	json_t *ver = json_object_get(m, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) != KB_MANIFEST_VERSION)
		return kb_errf("%s: manifest version %s is not one this kbuild reads (%d); use the "
			       "kbuild that wrote it", c->file, json_is_integer(ver) ? "other" : "missing",
			       KB_MANIFEST_VERSION);
	if ((err = obj(c, m, "recipe")) || (err = str(c, r, "name", 1)) ||
	    (err = str(c, r, "path", 1)) || (err = hash(c, r, "action")) ||
	    (err = hash(c, r, "result")))
		return err;
	if ((err = arr(c, m, "sources")) || (err = obj(c, m, "lock")) ||
	    (err = arr(c, m, "inputs")) || (err = arr(c, m, "buildroots")) ||
	    (err = arr(c, m, "upstreams")) || (err = arr(c, m, "steps")) ||
	    (err = arr(c, m, "outputs")))
		return err;
	if (!json_array_size(json_object_get(m, "sources")))
		return bad(c, "sources", "is empty");
	json_array_foreach(json_object_get(m, "sources"), i, v) {
		at(c, "sources", i);
		if ((err = file_entry(c, v)))
			return err;
	}
	c->where.len = 0;
	kb_buf_adds(&c->where, "lock");
	if ((err = file_entry(c, json_object_get(m, "lock"))))
		return err;
	json_array_foreach(json_object_get(m, "upstreams"), i, v) {
		at(c, "upstreams", i);
		if ((err = str(c, v, "name", 1)) || (err = str(c, v, "url", 0)))
			return err;
	}
	json_array_foreach(json_object_get(m, "inputs"), i, v) {
		at(c, "inputs", i);
		if ((err = str(c, v, "name", 1)) || (err = str(c, v, "kind", 1)) ||
		    (err = obj(c, v, "result")))
			return err;
		if (json_object_get(v, "repo_path") && (err = path_field(c, v, "repo_path")))
			return err;
		kb_buf_adds(&c->where, ".result");
		if ((err = str(c, json_object_get(v, "result"), "type", 1)) ||
		    (err = hash(c, json_object_get(v, "result"), "sha256")))
			return err;
	}
	json_array_foreach(json_object_get(m, "buildroots"), i, v) {
		at(c, "buildroots", i);
		if ((err = str(c, v, "name", 1)) || (err = hash(c, v, "tree")) ||
		    (err = arr(c, v, "packages")))
			return err;
		size_t k;
		json_t *p;
		json_array_foreach(json_object_get(v, "packages"), k, p) {
			at(c, "buildroots", i);
			kb_buf_addf(&c->where, ".packages[%zu]", k);
			if ((err = str(c, p, "name", 1)) || (err = hash(c, p, "sha256")))
				return err;
		}
	}
	json_array_foreach(json_object_get(m, "steps"), i, v) {
		at(c, "steps", i);
		if ((err = str(c, v, "name", 1)) || (err = str(c, v, "kind", 1)) ||
		    (err = hash(c, v, "action")) || (err = hash(c, v, "output")))
			return err;
		json_t *g = json_object_get(v, "sign");
		if (!strcmp(kb_jstr(v, "kind"), "sign")) {
			kb_buf_adds(&c->where, ".sign");
			if (!json_is_object(g))
				return bad(c, "", "is missing (a sign step's certificate)");
			if ((err = str(c, g, "key", 1)) || (err = str(c, g, "certificate_der_base64", 1)) ||
			    (err = hash(c, g, "certificate_sha256")))
				return err;
		}
		g = json_object_get(v, "openpgp");
		if (g || !strcmp(kb_jstr(v, "kind"), "darksite")) {
			at(c, "steps", i);
			kb_buf_adds(&c->where, ".openpgp");
			if (!json_is_object(g))
				return bad(c, "", "is missing (a darksite's public key)");
			if ((err = str(c, g, "key", 1)) || (err = str(c, g, "fingerprint", 1)) ||
			    (err = str(c, g, "public_key", 1)))
				return err;
		}
	}
	json_array_foreach(json_object_get(m, "outputs"), i, v) {
		at(c, "outputs", i);
		if ((err = str(c, v, "step", 1)) || (err = str(c, v, "path", 1)) ||
		    (err = hash(c, v, "sha256")))
			return err;
	}
	return NULL;
}

kb_err *kb_manifest_load(const char *path, json_t **out)
{
	kb_buf b = {0};
	kb_err *err = kb_read_file(AT_FDCWD, path, 256 << 20, &b);
	if (err)
		return kb_err_wrap(err, "manifest");
	json_error_t je;
	json_t *m = json_loadb(b.p ? b.p : "", b.len, JSON_REJECT_DUPLICATES, &je);
	kb_buf_free(&b);
	if (!m)
		return kb_errf("%s is not JSON (line %d, column %d: %s); give the NAME.json that "
			       "'kbuild recipe' wrote", path, je.line, je.column, je.text);
	chk c = {.file = path};
	err = check(&c, m);
	kb_buf_free(&c.where);
	if (err) {
		json_decref(m);
		return err;
	}
	*out = m;
	return NULL;
}

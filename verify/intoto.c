/* The manifest as an in-toto Statement v1 with an SLSA Provenance v1
 * predicate, for tools that speak that (slsa-verifier, in-toto, policy
 * engines). Made from the manifest alone, so it carries no more and no
 * less: each artifact file a subject, the recipe and its sources the
 * external parameters, inputs and packages the resolved dependencies,
 * the recipe's action key the invocation id, and no times. */
#include "manifest.h"

#include <string.h>

#define KB_BUILD_TYPE "https://kbuild.invalid/buildtypes/recipe/v1"
#define KB_BUILDER_ID "https://kbuild.invalid/builder/kbuild@" KB_VERSION

static json_t *sha(json_t *hex)
{
	json_t *d = json_object();
	json_object_set(d, "sha256", hex);
	return d;
}

static json_t *descriptor(const char *name, const char *uri, json_t *hex)
{
	json_t *r = json_object();
	json_object_set_new(r, "name", json_string(name));
	if (uri)
		json_object_set_new(r, "uri", json_string(uri));
	if (hex)
		json_object_set_new(r, "digest", sha(hex));
	return r;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

json_t *kb_intoto_statement(json_t *m, const kb_hash *manifest_sha)
{
	json_t *st = json_object(), *subj = json_array(), *v;
	size_t i;
	json_object_set_new(st, "_type", json_string("https://in-toto.io/Statement/v1"));
	json_object_set_new(st, "predicateType", json_string("https://slsa.dev/provenance/v1"));
	json_array_foreach(json_object_get(m, "outputs"), i, v) {
		char *name = kb_asprintf("%s/%s", str(v, "step"), str(v, "path"));
		json_array_append_new(subj, descriptor(name, NULL, json_object_get(v, "sha256")));
		free(name);
	}
	json_object_set_new(st, "subject", subj);

	json_t *recipe = json_object_get(m, "recipe");
	json_t *ext = json_object(), *srcs = json_array();
	json_object_set_new(ext, "recipe", json_string(str(recipe, "name")));
	json_array_foreach(json_object_get(m, "sources"), i, v)
		json_array_append_new(srcs, descriptor(str(v, "path"), NULL, json_object_get(v, "sha256")));
	json_object_set_new(ext, "sources", srcs);
	json_t *lock = json_object_get(m, "lock");
	json_object_set_new(ext, "lock", descriptor(str(lock, "path"), NULL, json_object_get(lock, "sha256")));

	json_t *in = json_object();
	json_object_set_new(in, "kbuild", json_string(str(m, "kbuild")));
	json_object_set(in, "stepVersion", json_object_get(m, "step_version"));
	json_t *steps = json_array();
	json_array_foreach(json_object_get(m, "steps"), i, v) {
		json_t *s = json_object();
		json_object_set_new(s, "name", json_string(str(v, "name")));
		json_object_set_new(s, "kind", json_string(str(v, "kind")));
		json_object_set(s, "action", json_object_get(v, "action"));
		json_object_set(s, "output", json_object_get(v, "output"));
		json_array_append_new(steps, s);
	}
	json_object_set_new(in, "steps", steps);

	json_t *deps = json_array();
	json_array_foreach(json_object_get(m, "inputs"), i, v) {
		const char *uri = str(v, "url") ? str(v, "url") : str(v, "origin");
		json_t *d = descriptor(str(v, "name"), uri,
				       json_object_get(json_object_get(v, "result"), "sha256"));
		json_t *ann = json_object();
		json_object_set_new(ann, "kind", json_string(str(v, "kind")));
		json_object_set_new(d, "annotations", ann);
		json_array_append_new(deps, d);
	}
	json_array_foreach(json_object_get(m, "buildroots"), i, v) {
		size_t k;
		json_t *p;
		json_array_foreach(json_object_get(v, "packages"), k, p) {
			char *name = kb_asprintf("%s/%s", str(v, "name"), str(p, "name"));
			json_t *d = descriptor(name, str(p, "url"), json_object_get(p, "sha256"));
			json_t *ann = json_object();
			json_object_set_new(ann, "kind", json_string("package"));
			json_object_set_new(ann, "version", json_string(str(p, "version")));
			json_object_set_new(ann, "upstream", json_string(str(p, "upstream")));
			json_object_set_new(d, "annotations", ann);
			json_array_append_new(deps, d);
			free(name);
		}
	}

	json_t *bd = json_object();
	json_object_set_new(bd, "buildType", json_string(KB_BUILD_TYPE));
	json_object_set_new(bd, "externalParameters", ext);
	json_object_set_new(bd, "internalParameters", in);
	json_object_set_new(bd, "resolvedDependencies", deps);

	json_t *builder = json_object();
	json_object_set_new(builder, "id", json_string(KB_BUILDER_ID));
	json_t *meta = json_object();
	json_object_set(meta, "invocationId", json_object_get(recipe, "action"));
	json_t *by = json_array();
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(manifest_sha, hex);
	char *mname = kb_asprintf("manifest/%s", str(recipe, "name"));
	json_t *mh = json_string(hex);
	json_t *md = descriptor(mname, NULL, mh);
	json_decref(mh);
	free(mname);
	json_object_set_new(md, "mediaType", json_string("application/json"));
	json_array_append_new(by, md);
	json_array_foreach(json_object_get(m, "buildroots"), i, v) {
		char *name = kb_asprintf("buildroot/%s", str(v, "name"));
		json_t *d = json_object();
		json_object_set_new(d, "name", json_string(name));
		json_t *dg = json_object();
		json_object_set(dg, "kbuild-tree-sha256", json_object_get(v, "tree"));
		json_object_set_new(d, "digest", dg);
		json_array_append_new(by, d);
		free(name);
	}
	json_t *rd = json_object();
	json_object_set_new(rd, "builder", builder);
	json_object_set_new(rd, "metadata", meta);
	json_object_set_new(rd, "byproducts", by);

	json_t *pred = json_object();
	json_object_set_new(pred, "buildDefinition", bd);
	json_object_set_new(pred, "runDetails", rd);
	json_object_set_new(st, "predicate", pred);
	return st;
}

/* Private to verify/ and builder/recipe_cmd.c: the build manifest of a
 * recipe run, and what 'kbuild verify' needs of the builder. The layout
 * of a manifest is described in verify/README.md. */
#ifndef KB_VERIFY_MANIFEST_H
#define KB_VERIFY_MANIFEST_H

#include "../builder/build.h"

#include <jansson.h>

#define KB_MANIFEST_FORMAT "kbuild-manifest"
#define KB_MANIFEST_VERSION 1

typedef struct {
	const char *path;   /* the manifest file; NULL: STORE/manifests/NAME.json */
	const char *bundle; /* also a bundle of what a verifier needs; NULL: none */
} kb_manifest_opts;

/* The manifest of a recipe whose result (the tree of ref recipe/NAME) is
 * made: as the blob of ref manifest/NAME, as a file (*written: its path)
 * and beside it the in-toto statement (NAME.intoto.json). The same build
 * gives the same bytes. */
KB_MUST kb_err *kb_manifest_record(kb_store *s, const kb_recipe *r, const kb_lock *l,
				   const kb_action *act, size_t n, const kb_oid *result,
				   const kb_manifest_opts *o, char **written);

/* the manifest and statement as JSON (manifest.c, intoto.c) */
KB_MUST kb_err *kb_manifest_json(kb_store *s, const kb_recipe *r, const kb_lock *l,
				 const kb_action *act, size_t n, const kb_oid *result, json_t **out);
json_t *kb_intoto_statement(json_t *manifest, const kb_hash *manifest_sha);
/* the deterministic text of a JSON document: sorted keys, 2-space indent,
 * a final newline (malloc'd) */
char *kb_json_text(json_t *j, size_t *len);

/* the path the statement of manifest file path goes to */
char *kb_intoto_path(const char *manifest_path);

/* ---- 'kbuild verify' replays sign steps without the private key ----
 * The sign step signs nothing: each module of its (rebuilt) input gets
 * the signature of the published signed module at the same path. Set by
 * kbuild verify for one run; NULL otherwise. */
typedef kb_err *kb_sign_replay_fn(void *ctx, const kb_step *st, const char *path,
				  const char *in, const char *out);
extern kb_sign_replay_fn *kb_sign_replay;
extern void *kb_sign_replay_ctx;

/* 'kbuild recipe' as a function (recipe_cmd.c), for the rebuild: the
 * recipe at path (relative to the current directory, as the lock names
 * it), into store s, writing its manifest to manifest_path */
KB_MUST kb_err *kb_recipe_rebuild(kb_store *s, const char *path, const kb_run_opts *o,
				  const char *manifest_path, kb_oid *result);

#endif

/* Private to verify/: one run of 'kbuild verify' (verify_cmd.c, replay.c,
 * verify_load.c). */
#ifndef KB_VERIFY_RUN_H
#define KB_VERIFY_RUN_H

#include "manifest.h"

/* what the sign-step replay needs and what it found */
typedef struct {
	kb_store *s; /* the fresh store */
	struct {
		const char *step;
		kb_hash output; /* the published signed tree */
	} *sign;
	size_t nsign;
	size_t nmodules, nsig_ok;
	char **bad; /* signatures that did not verify, one line each */
	size_t nbad;
} kb_replay;

kb_err *kb_verify_replay_module(void *ctx, const kb_step *st, const char *path, const char *in,
				const char *out);

/* A manifest, read and checked: every field verify uses is there, of its
 * type, and every hash is 64 lowercase hex digits; the error names the
 * field (steps[2].output) and the file. */
KB_MUST kb_err *kb_manifest_load(const char *path, json_t **out);
/* a relative path without '..' that stays below its directory */
int kb_safe_relpath(const char *p);
const char *kb_jstr(json_t *o, const char *key);
/* the hash at key of o (checked by kb_manifest_load) */
kb_hash kb_jhash(json_t *o, const char *key);

#endif

/* Private to verify/: one run of 'kbuild verify' (verify_cmd.c, replay.c,
 * verify_load.c). */
#ifndef KB_VERIFY_RUN_H
#define KB_VERIFY_RUN_H

#include "manifest.h"

/* a published OpenPGP signature (replay_pgp.c) */
typedef struct {
	kb_pgp_mode mode;
	kb_buf bytes;	  /* the whole file (InRelease, Release.gpg) or the RPM's packet */
	size_t key;	  /* in kb_replay.keys: the key of the step that published it */
	const char *what; /* the published STEP/PATH */
} kb_pgp_sig;

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
	kb_buf *keys; /* the public keys of the steps that sign with OpenPGP */
	size_t nkeys;
	kb_pgp_sig *pgp;
	size_t npgp, npgp_ok;
} kb_replay;

kb_err *kb_verify_replay_module(void *ctx, const kb_step *st, const char *path, const char *in,
				const char *out);

/* OpenPGP signatures (replay_pgp.c). kb_pgp_candidate: whether a
 * published file at path of a step of kind may be a signature (mode + 1)
 * or not (0), which the file's content then confirms. */
int kb_pgp_candidate(const char *kind, const char *path);
/* the published signatures of every step of m with an 'openpgp' key,
 * from x->s (which must hold the candidate files) */
KB_MUST kb_err *kb_verify_pgp_load(kb_replay *x, json_t *m);
kb_err *kb_verify_replay_pgp(void *ctx, const void *data, size_t len, kb_pgp_mode mode,
			     kb_buf *out);
void kb_verify_pgp_free(kb_replay *x);

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

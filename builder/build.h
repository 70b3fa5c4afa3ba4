/* Private to builder/: making a recipe's buildroots and steps (build.c),
 * one step in the sandbox (step.c). */
#ifndef KB_BUILDER_BUILD_H
#define KB_BUILDER_BUILD_H

#include "recipe.h"

/* changes whenever how a step runs changes what it may produce (the
 * sandbox's layout, its fixed environment); part of every step's key */
#define KB_STEP_VERSION 1

typedef struct {
	int check; /* build every step a second time, varied, and compare */
	int jobs;  /* $JOBS inside steps (0: the number of CPUs) */
} kb_build_opts;

/* Makes every pending action of act (from kb_eval): the buildroots steps
 * use, then the steps in order, each from the action cache when its key
 * is there (unless checking), else run and recorded. Fills in results. */
KB_MUST kb_err *kb_build(kb_store *s, const kb_recipe *r, const kb_lock *l, kb_action *act,
			 size_t n, const kb_build_opts *o);

/* ---- one step (step.c) ---- */
typedef struct {
	const kb_recipe *r;
	const kb_step *st;
	const char *rootdir;	  /* the build root, checked out */
	const kb_oid *inputs;	  /* st->inputs[i]'s result */
	int jobs;
	const char *work_prefix; /* the host directory's name: varies under --check */
	const char *kdir;	  /* with st->kernel: the headers' directory inside */
	const char *logpath;
} kb_step_run;

/* Runs the step and stores its output tree (committed, *out). A failure
 * stores nothing and its error holds the log's last lines and path. */
KB_MUST kb_err *kb_step_exec(kb_store *s, const kb_step_run *x, kb_oid *out);

/* ---- kbuild's own steps and kernel checks (artifact.c) ---- */
/* A step with kernel = KVER: the root must hold that kernel's headers
 * (Debian's /usr/src/linux-headers-KVER or EL's /usr/src/kernels/KVER,
 * whose utsrelease.h names KVER); *kdir gets the directory's prefix. */
KB_MUST kb_err *kb_kernel_headers(kb_store *s, const kb_step *st, const kb_oid *root,
				  const char **kdir);
/* ... and every .ko of its output has vermagic KVER (and there is one) */
KB_MUST kb_err *kb_kernel_modules_check(kb_store *s, const kb_step *st, const kb_oid *out);
/* the SHA-256 of a sign step's certificate (its key must exist) */
KB_MUST kb_err *kb_cert_sha256(const kb_step *st, char hex[KB_HEX_LEN + 1]);
/* a sign, deb, rpm or darksite step on its inputs' results (in[i] for
 * st->inputs[i]; a buildroot's is its locked packages): the output
 * committed */
KB_MUST kb_err *kb_artifact_exec(kb_store *s, const kb_recipe *r, const kb_lock *l,
				 const kb_step *st, const kb_oid *in, kb_oid *out);
/* a darksite step's OpenPGP key (pub, sec) and its creation time */
KB_MUST kb_err *kb_darksite_key(const kb_step *st, kb_buf *pub, kb_buf *sec, int64_t *created);

#endif

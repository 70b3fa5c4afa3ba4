/* Private to builder/: git inputs (URLs come from mirror/mirror.h). Every
 * fetcher verifies what it gets before it lands and names the input (its
 * label) in every message. */
#ifndef KB_BUILDER_FETCH_H
#define KB_BUILDER_FETCH_H

#include "../mirror/mirror.h"

typedef struct {
	const char *url;    /* anything libgit2 clones: https://, file://, a path */
	const char *commit; /* full 40-digit commit id */
	const char *label;
	int has_tree;	    /* tree below is known (from a lock): skip git if stored */
	/* result */
	kb_hash tree; /* the commit's tree as a kbuild tree */
} kb_git_req;

/* Verifies the commit exists in the repository and stores its tree. */
KB_MUST kb_err *kb_fetch_git(kb_store *s, kb_git_req *r, const kb_fetch_opts *o);

/* 'kbuild fetch …' (fetch_cmd.c) */
int kb_fetch_main(const char *store_dir, int argc, char **argv);
int kb_fetch_help(const char *sub, FILE *out);

#endif

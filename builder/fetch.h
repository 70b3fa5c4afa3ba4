/* Private to builder/: getting inputs into the store. Every fetcher
 * verifies what it gets before it lands and names the input (its label)
 * in every message. */
#ifndef KB_BUILDER_FETCH_H
#define KB_BUILDER_FETCH_H

#include "../store/store.h"

typedef struct {
	int jobs;	      /* parallel transfers (default 4) */
	int retries;	      /* further attempts on timeouts, 5xx, dropped connections (4) */
	long retry_delay_ms;  /* first backoff, doubling (1000; env KBUILD_RETRY_DELAY_MS) */
	long timeout_s;	      /* connect timeout and stall limit (30) */
	const char *ca_bundle; /* extra trusted CAs, PEM (env KBUILD_CA_BUNDLE); NULL: system */
	int progress;	      /* -1: a bar on a terminal, lines otherwise; 0: lines; 1: bar */
	int offline;	      /* no network: only what the store already has */
	const char *cache_dir; /* for git mirrors ($XDG_CACHE_HOME/kbuild or ~/.cache/kbuild) */
} kb_fetch_opts;

/* defaults, with the environment variables above applied */
void kb_fetch_opts_init(kb_fetch_opts *o);

typedef struct {
	const char *url;   /* http:// or https:// */
	kb_hash sha256;	   /* what the content must hash to */
	uint64_t size;	   /* expected size if has_size */
	int has_size;
	const char *label; /* e.g. "input 'zfs-src' (recipes/x.recipe:12:3)" */
	/* results */
	kb_err *err; /* NULL: the blob is in the store */
	uint64_t got_size;
	int cached; /* it was already in the store */
} kb_url_req;

/* Fetches every request whose blob the store lacks, n at a time; each is
 * hashed while it streams and lands only if it matches. On failure returns
 * an error that names every failed input; each req->err says why. */
KB_MUST kb_err *kb_fetch_urls(kb_store *s, kb_url_req *reqs, size_t n, const kb_fetch_opts *o);

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

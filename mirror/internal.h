/* mirror: what sync.c, apt.c, rpmmd.c and download.c share. */
#ifndef KB_MIRROR_INTERNAL_H
#define KB_MIRROR_INTERNAL_H

#include "mirror.h"

#include <stdio.h>
#include <time.h>

/* the most a signed metadata file (InRelease, repomd.xml) may be */
#define KB_META_MAX (64u << 20)
/* ... and a detached signature */
#define KB_SIG_MAX (1u << 20)

/* A snapshot being put together: files by their repository path. Files
 * fetched by a hash the signed metadata names are staged in the sync's
 * transaction; the signed metadata itself is held in memory until it has
 * been verified. All of it lands with the snapshot's tree when that one
 * transaction commits, or none of it. */
typedef struct {
	char *path;
	kb_hash hash;
	int mem;     /* body not yet in the store */
	kb_buf body; /* if mem */
} kb_snapfile;

typedef struct {
	kb_store *s;
	const kb_upstream_def *u;
	const kb_fetch_opts *o; /* with o->txn: the sync's one transaction */
	kb_snapfile *f;
	size_t n, cap;
} kb_snap;

/* "upstream 'NAME': ..." */
kb_err *kb_up_errf(const kb_snap *sn, const char *fmt, ...) KB_PRINTF(2, 3);

/* a relative path that stays inside the repository (no "..", ".", empty
 * components, control bytes or backslashes); what: where it was named */
KB_MUST kb_err *kb_mirror_check_path(const kb_snap *sn, const char *path, const char *what);

/* Metadata fetched into memory (its hash is not known in advance). With
 * optional, a 404 is not an error: missing is set instead. */
typedef struct {
	const char *path; /* in the repository */
	uint64_t max;
	int optional;
	/* results */
	kb_buf body;
	int missing;
	char *url;
} kb_meta;
KB_MUST kb_err *kb_meta_fetch(kb_snap *sn, kb_meta *m, size_t n);
void kb_meta_free(kb_meta *m, size_t n);

/* the upstream's keyring (a blob in the store) */
KB_MUST kb_err *kb_snap_keyring(kb_snap *sn, kb_buf *out);

/* adds a file to the snapshot: body (taken over; emptied) or a stored hash */
KB_MUST kb_err *kb_snap_add_mem(kb_snap *sn, const char *path, kb_buf *body);
KB_MUST kb_err *kb_snap_add_stored(kb_snap *sn, const char *path, const kb_hash *h);

/* A file named by signed metadata, fetched by its sha256 and size. */
typedef struct {
	char *path;	  /* in the repository and the snapshot */
	char *alt_url;	  /* tried first if set (by-hash); the path's URL on 404 */
	kb_hash sha256;
	uint64_t size;
	const char *what; /* "Packages index", "primary", ... */
	int alt_of_prev;  /* another variant of the file before (Packages.gz
			     for Packages.xz), tried only if that one is not there */
} kb_indexfile;
/* fetches them all (in parallel; each variant in turn on 404) and adds
 * the one of each group that came to the snapshot */
KB_MUST kb_err *kb_snap_fetch_indexes(kb_snap *sn, kb_indexfile *f, size_t n);

/* per repository type: fills the snapshot */
KB_MUST kb_err *kb_apt_sync(kb_snap *sn);
KB_MUST kb_err *kb_rpmmd_sync(kb_snap *sn);

/* "Sat, 10 Jun 2023 08:54:37 UTC" (RFC 2822/1123, as apt writes it); -1: not a date */
int kb_parse_rfc2822(const char *s, time_t *out);
/* "2023-06-10 08:54:37 UTC" */
void kb_fmt_utc(time_t t, char out[32]);

/* librnp (as Debian builds it) logs its own view of every failure on
 * stderr, which cannot be switched off: between begin and end, stderr
 * goes to a temporary file whose lines are shown at debug level
 * (rnp_quiet.c). */
typedef struct {
	int saved;
	FILE *tmp;
} kb_rnp_quiet;
void kb_rnp_quiet_begin(kb_rnp_quiet *q);
void kb_rnp_quiet_end(kb_rnp_quiet *q);

#endif

/* mirror: what the publish*.c files share (see mirror.h, "darksites"). */
#ifndef KB_MIRROR_PUBLISH_H
#define KB_MIRROR_PUBLISH_H

#include "mirror.h"

/* the most a package's cached metadata may be (an rpm's file list can be long) */
#define KB_PUB_META_MAX (64u << 20)

/* One package with what the repository metadata needs of it. */
typedef struct {
	kb_hash hash;
	const char *label;
	char fmt;			/* 'd': .deb, 'r': .rpm */
	char *name, *version, *arch;	/* rpm: version is [EPOCH:]VERSION-RELEASE */
	uint64_t size;
	char md5[33];			/* .deb only */
	/* .deb: its control stanza, without Filename, Size or checksums and
	 * without the final newline; .rpm: its primary, filelists and other
	 * records back to back, part[] bytes each */
	char *meta;
	size_t metalen, part[3];
	char *pool;			/* .rpm: its path in the repository */
} kb_pubpkg;

/* Reads a package's metadata from fd (the store's object, at offset 0),
 * filling fmt's fields of p (name, version, arch, meta; md5 or part and
 * pool), allocated in a. what names the package in messages. */
KB_MUST kb_err *kb_pub_read_deb(int fd, const char *what, kb_arena *a, kb_pubpkg *p);
KB_MUST kb_err *kb_pub_read_rpm(int fd, const char *what, kb_arena *a, kb_pubpkg *p);
/* -1, 0, 1 as version a sorts before, with or after b (dpkg's or rpm's order) */
int kb_pub_vercmp(char fmt, const char *a, const char *b);

/* The public key as it is exported beside the repository. */
typedef struct {
	kb_buf asc, bin; /* armored, binary */
} kb_pubkey;
/* Checks that sec holds a secret key that signs (signing a test message
 * with it), and derives the public key (from pub if given). */
KB_MUST kb_err *kb_pub_key(const kb_buf *sec, const kb_buf *pub, int64_t epoch, kb_pubkey *out);
void kb_pubkey_free(kb_pubkey *k);

/* ---- the output directory (publish_out.c) ----
 * Every file is written beside its final name and renamed over it, and
 * only when its content differs; what it wrote and kept is recorded so
 * that what is left over can be removed at the end. */
typedef struct {
	const char *path;
	int dirfd;
	kb_publish_stats *st;
	kb_hset *keep; /* sha256 of each relative path written or kept */
} kb_pubout;

KB_MUST kb_err *kb_pubout_open(const char *path, kb_publish_stats *st, kb_pubout *o);
void kb_pubout_close(kb_pubout *o);
/* rel (parents made) gets exactly these bytes */
KB_MUST kb_err *kb_pubout_file(kb_pubout *o, const char *rel, const void *p, size_t n);
/* rel is the store's blob h: a hardlink to the store's file (a copy
 * across file systems); left alone if it already is that file */
KB_MUST kb_err *kb_pubout_link(kb_pubout *o, kb_store *s, const kb_hash *h, const char *rel);
/* rel is there and is kept: not written, not removed */
void kb_pubout_keep(kb_pubout *o, const char *rel);
/* removes every file below dir (relative) that was neither written nor
 * kept, and directories left empty */
KB_MUST kb_err *kb_pubout_prune(kb_pubout *o, const char *dir);
/* 1 if rel exists as a regular file */
int kb_pubout_exists(kb_pubout *o, const char *rel);

/* the two formats: pkgs sorted by name, version, arch; all of one format */
KB_MUST kb_err *kb_pub_apt(kb_store *s, kb_pubpkg *pkgs, size_t n, const kb_publish_opts *o,
			   const kb_pubkey *key, kb_pubout *out);
KB_MUST kb_err *kb_pub_rpm(kb_store *s, kb_pubpkg *pkgs, size_t n, const kb_publish_opts *o,
			   const kb_pubkey *key, kb_pubout *out);

/* when the publication's signatures are made */
static inline int64_t kb_pub_sign_time(const kb_publish_opts *o)
{
	return o->sign_time ? o->sign_time : o->epoch;
}

#endif

/* Private to verify/: byte sources, the comparison context and one
 * comparer per format. */
#ifndef KB_VERIFY_INTERNAL_H
#define KB_VERIFY_INTERNAL_H

#include "../store/store.h"
#include "verify.h"

#include <stdint.h>

/* ---- byte sources (src.c) ----
 * A file read with pread or bytes in memory, possibly a window [base,
 * base+size) of either. Comparers read through ds_read only, so a member
 * spilled to a temporary file and one held in memory look the same. */
typedef struct {
	int fd;			 /* -1: memory */
	const unsigned char *mem;
	uint64_t base, size;
	int own_fd;		 /* close fd on ds_free */
	unsigned char *own_mem;	 /* free on ds_free */
	int has_hash;
	kb_hash hash;
} dsrc;

KB_MUST kb_err *ds_open_path(const char *path, dsrc *out);
void ds_mem(dsrc *s, const void *p, uint64_t n);
/* a window of s (which must outlive it) */
void ds_window(const dsrc *s, uint64_t off, uint64_t n, dsrc *out);
void ds_free(dsrc *s);
/* up to n bytes at off (fewer only at the end); an error names what */
KB_MUST kb_err *ds_read(const dsrc *s, uint64_t off, void *buf, size_t n, size_t *got);
/* the SHA-256 of its bytes, computed once */
KB_MUST kb_err *ds_hash(dsrc *s, kb_hash *out);

/* a writer that keeps bytes in memory up to cap, then moves them to an
 * unlinked temporary file; ds_sink_done turns it into a source */
typedef struct {
	uint64_t cap, len;
	kb_buf mem;
	int fd;
	kb_sha *sha;
} ds_sink;
void ds_sink_init(ds_sink *k, uint64_t cap);
KB_MUST kb_err *ds_sink_write(ds_sink *k, const void *p, size_t n);
void ds_sink_done(ds_sink *k, dsrc *out);
void ds_sink_abort(ds_sink *k);

/* ---- the comparison (diff.c) ---- */
#define D_MAXDEPTH 32

typedef struct {
	kb_diff_list *out;
	size_t max;
	uint64_t mem_cap, work, work_cap;
	const char *path[D_MAXDEPTH];
	size_t depth;
} dctx;

/* a difference at the current path (plus elem, if not NULL) */
void d_report(dctx *c, const char *elem, const char *kind, const char *diff,
	      const char *fmt, ...) KB_PRINTF(5, 6);
/* past the limit: count, do not look deeper */
int d_full(const dctx *c);
/* push a path element (copied); d_pop after */
void d_push(dctx *c, const char *elem);
void d_pop(dctx *c);
/* strings that live as long as the result */
char *d_strdup(dctx *c, const char *s);
/* counts bytes read from inside containers; 1 when over the budget */
int d_spend(dctx *c, uint64_t n);

/* compares two sources at the current path; what it cannot read is
 * reported, only failures of the machine (temp files) are errors.
 * name is the member's name (a hint for the format, may be NULL). */
KB_MUST kb_err *d_node(dctx *c, const char *name, dsrc *a, dsrc *b);

/* ---- formats ---- */
typedef enum {
	DK_EMPTY, DK_AR, DK_RPM, DK_TAR, DK_CPIO, DK_ISO, DK_COMPRESSED, DK_ELF,
	DK_TEXT, DK_BINARY,
} dkind;
/* what s holds, from its first bytes; *what a word for messages */
KB_MUST kb_err *d_detect(const dsrc *s, dkind *k, const char **what);

/* libarchive formats (diff_archive.c): entries matched by name, their
 * metadata, order and content (recursing); rpm: only the cpio payload */
typedef enum { DA_AR, DA_TAR, DA_CPIO, DA_ISO, DA_COMPRESSED, DA_RPM_PAYLOAD } dafmt;
KB_MUST kb_err *d_archive(dctx *c, dafmt f, dsrc *a, dsrc *b);
/* the rpm lead and header tags, then d_archive on the payload */
KB_MUST kb_err *d_rpm(dctx *c, dsrc *a, dsrc *b);
/* ELF header, sections by name, module signature */
KB_MUST kb_err *d_elf(dctx *c, dsrc *a, dsrc *b);
/* a short unified diff, if both are text under the text cap; 0 in
 * *done when they are not (the caller compares bytes) */
KB_MUST kb_err *d_text(dctx *c, const char *elem, dsrc *a, dsrc *b, int *done);
/* the first differing offset with a little hex context */
KB_MUST kb_err *d_bytes(dctx *c, const char *elem, dsrc *a, dsrc *b);
/* "0x12: 6c 69 [62] 2f" style context around off, for messages */
char *d_hexctx(dctx *c, const unsigned char *p, size_t n, size_t at);

/* directories on disk and store trees (diff_dir.c) */
typedef struct {
	kb_store *s;	   /* store tree when set */
	kb_hash tree;
	int dirfd;	   /* else a directory */
} dtree;
KB_MUST kb_err *d_tree(dctx *c, const dtree *a, const dtree *b);
/* a store object or path as a source */
KB_MUST kb_err *ds_open_object(kb_store *s, const kb_hash *h, dsrc *out);

#endif

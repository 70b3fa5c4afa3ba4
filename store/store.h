/* store: kbuild's content-addressed store.
 *
 * Objects are byte strings named by their SHA-256. A blob is a file's
 * content (or a symlink's target); a tree is the canonical encoding of a
 * directory (see tree.c and README.md). What an object *is* comes from
 * the reference to it (a typed kb_oid), never from the object itself.
 *
 * Layout of a store directory:
 *   kbuild-store          format marker
 *   objects/ab/cd...      objects, read-only; "….x" is the executable
 *                         variant of the same blob (mode 0555)
 *   refs/NAME             "tree HEX\n" or "blob HEX\n" ('/' in NAME as '%')
 *   ac/ab/cd...           action cache entries
 *   roots/                temporary roots of running kbuild processes
 *   tmp/                  staging for transactions; garbage when no
 *                         transaction holds the store lock
 *   work/NAME, NAME.lock  scratch directories of running processes
 *                         (kb_workdir_new); garbage when unlocked
 *   lock                  shared by writers, exclusive for gc
 *
 * Writes go through transactions: objects are staged in tmp/, made durable
 * with one sync, renamed into place, synced again, and only then may refs
 * or action-cache entries point at them. A process killed at any moment
 * leaves every ref at its old or its new value and every object whole. */
#ifndef KB_STORE_H
#define KB_STORE_H

#include "../common/common.h"

#include <stdint.h>
#include <stdio.h>

typedef enum { KB_NONE = 0, KB_BLOB = 1, KB_TREE = 2 } kb_objtype;

typedef struct {
	kb_objtype type;
	kb_hash hash;
} kb_oid;

const char *kb_objtype_name(kb_objtype t);
/* "tree HEX" / "blob HEX" */
void kb_oid_fmt(const kb_oid *o, char out[5 + KB_HEX_LEN + 1]);
KB_MUST kb_err *kb_oid_parse(const char *s, size_t len, kb_oid *out);

typedef struct kb_store kb_store;

/* Opens (and with create, initialises) the store at dir. */
KB_MUST kb_err *kb_store_open(const char *dir, int create, kb_store **out);
void kb_store_close(kb_store *s);
const char *kb_store_path(const kb_store *s);
/* the store directory for --store DIR / KBUILD_STORE / XDG_DATA_HOME */
char *kb_store_default_path(void);

/* ---- reading objects ---- */
/* 1 if the blob or tree with this hash is stored */
int kb_store_has(kb_store *s, const kb_hash *h);
/* read-only fd on the object's bytes */
KB_MUST kb_err *kb_store_open_object(kb_store *s, const kb_hash *h, int *fd);
/* whole object (trees, small blobs) */
KB_MUST kb_err *kb_store_read(kb_store *s, const kb_hash *h, size_t max, kb_buf *out);
/* stream to fd */
KB_MUST kb_err *kb_store_cat(kb_store *s, const kb_hash *h, int outfd);
/* Guesses the type of a bare hash given on a command line: a stored object
 * that parses as a tree is a tree. Code that knows the type never asks. */
KB_MUST kb_err *kb_store_resolve(kb_store *s, const char *hash_or_ref, kb_oid *out);

/* ---- trees ---- */
typedef enum {
	KB_ENT_FILE = 'f',
	KB_ENT_EXEC = 'x',
	KB_ENT_LINK = 'l',
	KB_ENT_DIR = 'd',
} kb_enttype;

typedef struct {
	kb_enttype type;
	kb_hash hash;
	const char *name; /* points into the tree's storage; not NUL-free-checked
			     beyond the rules: no '/', no NUL, not "." or ".." */
	size_t namelen;
} kb_tree_entry;

typedef struct {
	size_t n;
	kb_tree_entry *e;
	char *data; /* owns the names */
} kb_tree;

/* Canonical encoding; entries are sorted here, duplicates refused. */
KB_MUST kb_err *kb_tree_encode(kb_tree_entry *e, size_t n, kb_buf *out);
KB_MUST kb_err *kb_tree_decode(const char *p, size_t n, kb_tree *out);
KB_MUST kb_err *kb_store_read_tree(kb_store *s, const kb_hash *h, kb_tree *out);
void kb_tree_free(kb_tree *t);
kb_objtype kb_enttype_objtype(kb_enttype t);
/* Calls fn for every entry below tree, depth first in sorted order, a
 * directory before what it holds, with its path below tree ("a/b/c") and
 * its depth (0: an entry of tree itself); stops at the first error fn
 * returns. A tree nested deeper than KB_TREE_MAX_DEPTH is refused (a
 * bundle could hold one deep enough to exhaust the stack). */
#define KB_TREE_MAX_DEPTH 256
typedef kb_err *(*kb_tree_fn)(void *ctx, const char *path, int depth, const kb_tree_entry *e);
KB_MUST kb_err *kb_tree_walk(kb_store *s, const kb_hash *tree, kb_tree_fn fn, void *ctx);

/* ---- writing: transactions ---- */
typedef struct kb_txn kb_txn;
typedef struct kb_blobw kb_blobw;

/* Holds the store's shared lock until commit or abort (gc waits). */
KB_MUST kb_err *kb_txn_begin(kb_store *s, kb_txn **out);
/* Makes staged objects durable and visible; each root (may be NULL/0)
 * is held for the life of this process so gc keeps it. Frees txn. */
KB_MUST kb_err *kb_txn_commit(kb_txn *t, const kb_oid *roots, size_t nroots);
void kb_txn_abort(kb_txn *t);

/* Streaming blob writer: write bytes, then finish. Thread-safe across
 * writers of one transaction. With expect, a different hash is an error
 * and nothing is kept. */
KB_MUST kb_err *kb_blob_begin(kb_txn *t, kb_blobw **out);
KB_MUST kb_err *kb_blob_write(kb_blobw *w, const void *p, size_t n);
KB_MUST kb_err *kb_blob_finish(kb_blobw *w, int exec, const kb_hash *expect,
			       kb_hash *out);
void kb_blob_abort(kb_blobw *w);

KB_MUST kb_err *kb_txn_add_bytes(kb_txn *t, const void *p, size_t n, int exec,
				 kb_hash *out);
/* reads fd to its end */
KB_MUST kb_err *kb_txn_add_fd(kb_txn *t, int fd, int exec, const char *what,
			      kb_hash *out);
/* a file, symlink or directory tree on disk; progress on stderr if asked */
KB_MUST kb_err *kb_txn_add_path(kb_txn *t, const char *path, kb_oid *out);
/* a tree from entries (sorted here) */
KB_MUST kb_err *kb_txn_add_tree(kb_txn *t, kb_tree_entry *e, size_t n, kb_hash *out);
/* in this transaction or in the store */
int kb_txn_has(kb_txn *t, const kb_hash *h);
/* read-only fd on an object staged in this transaction, or stored */
KB_MUST kb_err *kb_txn_open(kb_txn *t, const kb_hash *h, int *fd);

/* ---- checkout ---- */
enum { KB_CHECKOUT_COPY = 1 };
/* dest must not exist or be an empty directory; built beside it and
 * renamed into place, so a failure leaves nothing behind */
KB_MUST kb_err *kb_store_checkout(kb_store *s, const kb_oid *o, const char *dest,
				  int flags);

/* a blob as the file out (replaced atomically, mode 0644) */
KB_MUST kb_err *kb_store_write_file(kb_store *s, const kb_hash *h, const char *out);

/* ---- work directories ----
 * Scratch space on the store's file system (checkouts into it hardlink),
 * removed by kb_workdir_free, or after a crash by the next process that
 * makes one, or by gc. */
typedef struct kb_workdir kb_workdir;
KB_MUST kb_err *kb_workdir_new(kb_store *s, const char *prefix, kb_workdir **out);
const char *kb_workdir_path(const kb_workdir *w);
void kb_workdir_free(kb_workdir *w);

/* ---- refs ----
 * Names: components of [A-Za-z0-9._+@=:-] separated by '/', none empty,
 * "." or "..", at most 200 bytes. */
KB_MUST kb_err *kb_ref_check_name(const char *name);
/* found=0 and no error when absent */
KB_MUST kb_err *kb_ref_get(kb_store *s, const char *name, kb_oid *out, int *found);
/* Compare-and-swap. old NULL: any current value; old->type KB_NONE: the
 * ref must not exist; else its hash must equal old's. new NULL deletes.
 * The new target must be stored. */
KB_MUST kb_err *kb_ref_update(kb_store *s, const char *name, const kb_oid *old,
			      const kb_oid *new_);
typedef struct {
	char *name;
	kb_oid oid;
} kb_ref;
/* sorted by name; prefix may be NULL; a damaged ref file is listed with
 * oid.type KB_NONE */
KB_MUST kb_err *kb_ref_list(kb_store *s, const char *prefix, kb_ref **out, size_t *n);
void kb_ref_list_free(kb_ref *r, size_t n);

/* ---- action cache ----
 * key -> result object plus small metadata ("name value\n" lines, at most
 * 64 KiB). A hit whose result is no longer stored is a miss. */
KB_MUST kb_err *kb_ac_put(kb_store *s, const kb_hash *key, const kb_oid *result,
			  const char *meta);
KB_MUST kb_err *kb_ac_get(kb_store *s, const kb_hash *key, kb_oid *result,
			  char **meta, int *found);

/* ---- maintenance ---- */
typedef struct {
	size_t objects_kept, objects_removed;
	uint64_t bytes_removed;
	size_t temp_removed, roots_removed, ac_removed;
} kb_gc_stats;
KB_MUST kb_err *kb_store_gc(kb_store *s, int dry_run, kb_gc_stats *st);

/* Rehashes every object and walks every ref and action-cache entry; each
 * problem is one line on report. *problems counts them. */
KB_MUST kb_err *kb_store_fsck(kb_store *s, FILE *report, size_t *problems);

/* refs or bare hashes; the bundle holds their whole closure */
KB_MUST kb_err *kb_store_export(kb_store *s, char *const *names, size_t n,
				const char *outpath, size_t *nobjects);
/* verifies every object before anything lands; force lets bundle refs
 * replace different existing values */
KB_MUST kb_err *kb_store_import(kb_store *s, const char *path, int force,
				size_t *nobjects, size_t *nrefs);

/* ---- command line: 'kbuild store …' (cmd.c) ---- */
/* argv[0] is the subcommand; returns the exit status */
int kb_store_main(const char *store_dir, int argc, char **argv);
/* help for 'kbuild help store [SUB]'; 0 if sub is unknown */
int kb_store_help(const char *sub, FILE *out);
void kb_store_summary(FILE *out);

#endif

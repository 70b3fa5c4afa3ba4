/* Private to store/: the store handle and helpers its files share. */
#ifndef KB_STORE_INTERNAL_H
#define KB_STORE_INTERNAL_H

#include "store.h"

#include <pthread.h>

struct kb_store {
	char *path;
	int dirfd, objfd, tmpfd, reffd, acfd, rootsdir;
	int rootsfd; /* this process's roots file, -1 until needed */
	pthread_mutex_t mu;
	unsigned seq;
};

/* staged objects inside shards: ignored by readers, removed by gc */
#define STAGE_PREFIX ".s-"

#define TREE_MAGIC "kbuild-tree 1\n"
#define TREE_MAGIC_LEN 14

/* "ab/cdef…" (+ ".x" for the executable variant) */
#define OBJ_NAME_MAX (KB_HEX_LEN + 4)
void obj_name(const kb_hash *h, int exec, char out[OBJ_NAME_MAX]);
/* parses "cdef…[.x]" inside shard "ab"; -1 if it is not an object name */
int obj_parse(const char *shard, const char *name, kb_hash *h, int *exec);

/* removes the work directories of processes that are gone (work.c) */
KB_MUST kb_err *store_clean_work(kb_store *s, size_t *count);

/* the store lock: shared for writers, exclusive for gc */
KB_MUST kb_err *store_lock(kb_store *s, int exclusive, int *fd);
void store_unlock(int fd);

/* temp file in tmp/, fsync, rename to dirfd/name, fsync dirfd */
KB_MUST kb_err *store_write_atomic(kb_store *s, int dirfd, const char *name,
				   const void *p, size_t n);
unsigned store_seq(kb_store *s);
/* makes the shard directory for "ab/…" below parentfd (objects/ or ac/) */
KB_MUST kb_err *store_shard(int parentfd, const char *name_in_shard);

/* records roots in this process's roots file (store lock held) */
KB_MUST kb_err *store_hold(kb_store *s, const kb_oid *roots, size_t n);

/* calls fn for each object file, and with h NULL for each staged file
 * left in a shard; stops on error */
typedef kb_err *(*obj_fn)(void *ctx, const kb_hash *h, int exec, int shardfd,
			  const char *name);
KB_MUST kb_err *store_each_object(kb_store *s, obj_fn fn, void *ctx);

/* every action-cache entry's key and result (type KB_NONE: damaged) */
typedef kb_err *(*ac_fn)(void *ctx, const kb_hash *key, const kb_oid *result);
KB_MUST kb_err *ac_each(kb_store *s, ac_fn fn, void *ctx);
KB_MUST kb_err *ac_remove(kb_store *s, const kb_hash *key);

/* everything o reaches is stored (a gc killed mid-sweep can leave a
 * tree whose children are gone: nothing may point at such a tree) */
KB_MUST kb_err *store_check_closure(kb_store *s, const kb_oid *o);

/* roots listed by live kbuild processes; removes dead processes' files */
KB_MUST kb_err *roots_collect(kb_store *s, int remove_dead, kb_oid **out, size_t *n,
			      size_t *removed);

#endif

/* common: what every part of kbuild shares — errors, SHA-256, buffers,
 * a hash set, logging and careful file I/O. Nothing here knows about
 * stores, recipes or packages. */
#ifndef KB_COMMON_H
#define KB_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KB_MUST __attribute__((warn_unused_result))
#define KB_PRINTF(a, b) __attribute__((format(printf, a, b)))

#define KB_VERSION "0.1.0"

/* ---- errors ----
 * A failing function returns a kb_err* (NULL means success). The message
 * names the object involved and, where possible, what to do; callers add
 * context with kb_err_wrap and the CLI prints it once. */
typedef struct kb_err {
	int code; /* process exit status: 1 failure, 2 usage */
	char msg[];
} kb_err;

kb_err *kb_errf(const char *fmt, ...) KB_PRINTF(1, 2);
kb_err *kb_usage(const char *fmt, ...) KB_PRINTF(1, 2);
/* appends ": strerror(e)" */
kb_err *kb_errno(int e, const char *fmt, ...) KB_PRINTF(2, 3);
/* "context: inner message"; takes ownership of inner */
kb_err *kb_err_wrap(kb_err *inner, const char *fmt, ...) KB_PRINTF(2, 3);
void kb_err_free(kb_err *e);

/* allocation failure is not recoverable for a build tool: these abort */
void *kb_malloc(size_t n);
void *kb_calloc(size_t n, size_t m);
void *kb_realloc(void *p, size_t n);
char *kb_strdup(const char *s);
char *kb_strndup(const char *s, size_t n);
char *kb_asprintf(const char *fmt, ...) KB_PRINTF(1, 2);
char *kb_vasprintf(const char *fmt, va_list ap) KB_PRINTF(1, 0);

/* ---- command line ---- */
struct option;
/* getopt_long (options may follow operands) with kbuild's messages: the
 * option's character, 0 when options end, -1 with *err set on a bad one.
 * cmd names the command in messages ("store add"); set optind = 0 first. */
int kb_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	      const char *cmd, kb_err **err);
/* "kbuild: MESSAGE" on stderr for an error (freed), then its exit status */
int kb_exit_status(kb_err *err);

/* ---- logging (stderr) ---- */
enum { KB_LOG_QUIET = 0, KB_LOG_INFO = 1, KB_LOG_DEBUG = 2 };
extern int kb_log_level;
void kb_info(const char *fmt, ...) KB_PRINTF(1, 2);
void kb_debug(const char *fmt, ...) KB_PRINTF(1, 2);
void kb_warn(const char *fmt, ...) KB_PRINTF(1, 2);

/* ---- SHA-256 ---- */
typedef struct {
	uint8_t b[32];
} kb_hash;

#define KB_HEX_LEN 64
void kb_hash_hex(const kb_hash *h, char out[KB_HEX_LEN + 1]);
/* exactly 64 lowercase hex digits; returns 0 on success, -1 otherwise */
int kb_hash_parse(const char *s, size_t len, kb_hash *out);
int kb_hash_eq(const kb_hash *a, const kb_hash *b);

typedef struct kb_sha kb_sha;
kb_sha *kb_sha_new(void);
void kb_sha_reset(kb_sha *c);
void kb_sha_update(kb_sha *c, const void *p, size_t n);
void kb_sha_final(kb_sha *c, kb_hash *out); /* also resets */
void kb_sha_free(kb_sha *c);
void kb_sha256(const void *p, size_t n, kb_hash *out);

/* ---- growable byte buffer ---- */
typedef struct {
	char *p;
	size_t len, cap;
} kb_buf;

void kb_buf_add(kb_buf *b, const void *p, size_t n);
void kb_buf_addc(kb_buf *b, char c);
void kb_buf_adds(kb_buf *b, const char *s);
void kb_buf_addf(kb_buf *b, const char *fmt, ...) KB_PRINTF(2, 3);
void kb_buf_free(kb_buf *b);
/* NUL-terminates (not counted in len) and hands the storage over */
char *kb_buf_steal(kb_buf *b);

/* ---- arena: many small allocations freed at once ---- */
typedef struct kb_arena kb_arena;
kb_arena *kb_arena_new(void);
void kb_arena_free(kb_arena *a);
void *kb_arena_alloc(kb_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *kb_arena_strndup(kb_arena *a, const char *s, size_t n);
char *kb_arena_strdup(kb_arena *a, const char *s);
char *kb_arena_printf(kb_arena *a, const char *fmt, ...) KB_PRINTF(2, 3);
/* grows an array of elem-sized items held in the arena to hold n+1 */
void *kb_arena_grow(kb_arena *a, void *arr, size_t n, size_t *cap, size_t elem);

/* ---- a set of hashes, optionally with a pointer per hash ---- */
typedef struct kb_hset kb_hset;
kb_hset *kb_hset_new(void);
void kb_hset_free(kb_hset *s);
/* 1 if newly added, 0 if it was there */
int kb_hset_add(kb_hset *s, const kb_hash *h);
int kb_hset_has(const kb_hset *s, const kb_hash *h);
/* value slot for h, added if absent (value starts NULL) */
void **kb_hset_slot(kb_hset *s, const kb_hash *h);
void *kb_hset_get(const kb_hset *s, const kb_hash *h);
size_t kb_hset_count(const kb_hset *s);

/* ---- file I/O ---- */
KB_MUST kb_err *kb_write_all(int fd, const void *p, size_t n, const char *what);
/* reads up to n bytes, retrying short reads; *got < n only at EOF */
KB_MUST kb_err *kb_read_full(int fd, void *p, size_t n, size_t *got, const char *what);
/* reads a whole small file (refuses files over max bytes) */
KB_MUST kb_err *kb_read_file(int dirfd, const char *path, size_t max, kb_buf *out);
/* temp file in the same directory, fsync, rename, fsync the directory */
KB_MUST kb_err *kb_write_file_atomic(int dirfd, const char *name, const void *p,
				     size_t n, mode_t mode);
KB_MUST kb_err *kb_fsync_dir(int dirfd, const char *what);
/* a DIR stream on dirfd/name, with a descriptor of its own */
struct __dirstream;
KB_MUST kb_err *kb_opendir_at(int dirfd, const char *name, struct __dirstream **out);
KB_MUST kb_err *kb_mkdir_p(const char *path, mode_t mode);
/* removes a file or a whole tree below dirfd (read-only entries too) */
KB_MUST kb_err *kb_remove_tree(int dirfd, const char *name);
/* absolute, lexically clean version of path (no symlink resolution) */
char *kb_abspath(const char *path);
/* a name safe to show on one line: non-printable bytes as \xNN */
char *kb_quote(const char *p, size_t n);

#endif

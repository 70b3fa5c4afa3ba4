/* Private to builder/: build roots as store trees, made by unpacking the
 * payloads of a set of packages (.deb: data.tar.*; .rpm: the cpio payload)
 * with libarchive into one tree, without running any maintainer script.
 *
 * What a root holds (rootfs.c has the details and the reasons):
 *  - every directory, regular file and symlink of every package. Modes are
 *    reduced to the tree's model (executable or not: the owner's x bit);
 *    owners, times, setuid/setgid/sticky bits are dropped. Hardlinks
 *    become files with the same content. Device nodes, fifos and sockets
 *    are skipped with a warning (a tree cannot hold them; Debian policy
 *    forbids them in packages; a build's sandbox provides /dev).
 *  - Debian bookworm's merged-/usr layout: bin, sbin, lib, lib64 (and,
 *    when a package ships something below them, lib32 and libx32) are
 *    symlinks to usr/...; entries below them land in usr/... (tar's
 *    --keep-directory-symlink behaviour). A package shipping one of them
 *    as a directory keeps the link.
 *  - a few effects of maintainer scripts that builds need (the "fixups",
 *    see rootfs.c): /usr/bin/awk, cc, c++ links and a minimal
 *    /etc/passwd and /etc/group.
 *
 * Refused, naming the package and the entry, and then nothing of the
 * root is stored: a path that is absolute, empty, or has a ".."
 * component; an entry whose parent passes through a symlink other than
 * the layout links (or through a file); two packages shipping the same
 * path with different content or type (dpkg would need Replaces:); a
 * hardlink to something the package did not ship before it.
 *
 * The result does not depend on the order of the packages: overwrites
 * are refused unless they change nothing. So a set of packages has one
 * root, and the action cache keys it by the sorted package hashes. */
#ifndef KB_BUILDER_ROOTFS_H
#define KB_BUILDER_ROOTFS_H

#include "../store/store.h"

/* changes whenever what a root holds for the same packages changes
 * (fixups, layout, mode rules); part of the action-cache key */
#define KB_ROOTFS_VERSION 1

typedef struct kb_rootfs kb_rootfs;

typedef struct {
	size_t packages, files, dirs, symlinks, skipped;
	uint64_t bytes; /* of regular files, as unpacked */
} kb_rootfs_stats;

kb_rootfs *kb_rootfs_new(void);
void kb_rootfs_free(kb_rootfs *r);

/* Unpacks the packages (blobs in the store: .deb or .rpm, told apart by
 * their content) into the root, staging every file in t; several at a
 * time (jobs; 0: one per CPU, at most 8), merged into the tree in the
 * order given. labels[i] (or NULL) names pkgs[i] in messages; by default
 * a package is named by its control data (.deb) or lead (.rpm). On
 * failure the root is unusable and the caller aborts t. */
KB_MUST kb_err *kb_rootfs_add(kb_rootfs *r, kb_store *s, kb_txn *t, const kb_hash *pkgs,
			      const char *const *labels, size_t n, int jobs);

/* Applies the fixups and stores the tree (bottom-up) in t. */
KB_MUST kb_err *kb_rootfs_finish(kb_rootfs *r, kb_txn *t, kb_hash *tree);

const kb_rootfs_stats *kb_rootfs_get_stats(const kb_rootfs *r);

/* The root for a set of packages, through the action cache: key =
 * sha256("kbuild-rootfs 1\n", the sorted distinct package hashes, one hex
 * a line, "fixups KB_ROOTFS_VERSION\n"). A hit returns the tree at once
 * (*cached = 1); a miss unpacks everything in one transaction, commits
 * it (the tree is held for the life of the process) and records it.
 * stats (may be NULL) is filled on a miss. */
KB_MUST kb_err *kb_rootfs_build(kb_store *s, const kb_hash *pkgs, const char *const *labels,
				size_t n, int jobs, kb_hash *tree, int *cached,
				kb_rootfs_stats *stats);

/* ---- between rootfs.c and rootfs_unpack.c ---- */

/* a map from (parent, name) to a pointer; names must outlive the map */
typedef struct {
	struct kb_rf_slot *v;
	size_t n, cap;
} kb_rf_map;
void *kb_rf_map_get(const kb_rf_map *m, const void *parent, const char *name, size_t len);
void kb_rf_map_put(kb_rf_map *m, const void *parent, const char *name, size_t len, void *val);
void kb_rf_map_free(kb_rf_map *m);

/* one entry of a package's payload, in archive order */
typedef struct {
	char type;	    /* 'd', 'f', 'x' (executable file) or 'l' (symlink) */
	int hl;		    /* f/x: the first name of its hardlink group, else -1 */
	const char *path;   /* normalised: "usr/bin/x"; never empty */
	const char *target; /* l: the symlink's target */
	kb_hash hash;	    /* f/x: content; l: the target as a blob */
} kb_rootfs_op;

typedef struct {
	kb_hash hash;	   /* the package blob */
	const char *label; /* from the caller, or NULL */
	char *name;	   /* "package NAME VERSION (blob HEX12)", for messages */
	kb_arena *a;
	kb_rootfs_op *ops;
	size_t n, cap;
	size_t skipped;
	uint64_t bytes;
	kb_err *err;
} kb_rootfs_pkg;

/* Reads the package blob into p->ops, staging file contents and symlink
 * targets in t; refuses bad paths (rootfs_unpack.c). Thread-safe for
 * different p. */
KB_MUST kb_err *kb_rootfs_unpack(kb_store *s, kb_txn *t, kb_rootfs_pkg *p);

/* 'kbuild buildroot …' (rootfs_cmd.c) */
int kb_rootfs_main(const char *store_dir, int argc, char **argv);
int kb_rootfs_help(FILE *out);

#endif

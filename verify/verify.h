/* verify: explaining how two builds differ.
 *
 * kb_diff compares two files, directories or store objects and returns
 * one difference per finding, outermost to innermost: the path of
 * containers and members down to the deepest one that still differs
 * (".deb > data.tar.xz > ./lib/modules/.../zfs.ko > section .comment"),
 * a kind and a one-line detail. It opens what it recognises, whatever
 * the file is named: ar (.deb), tar and cpio with any compression, ISO
 * 9660, .rpm (header tags by name, then the cpio payload), ELF (sections
 * by name; a kernel module's signature trailer on its own), single
 * compressed streams, text (a short unified diff) and other bytes (the
 * first differing offset).
 *
 * Work and memory are bounded: members are hashed while they stream by;
 * one that differs is read into memory up to a cap, else spilled to an
 * unlinked temporary file; past opts.max reported differences the rest
 * are only counted, and nothing past that limit is opened. */
#ifndef KB_VERIFY_H
#define KB_VERIFY_H

#include "../common/common.h"

#include <stdio.h>

typedef struct {
	const char **path; /* containers and members, outermost first */
	size_t npath;
	const char *kind;   /* content, text, bytes, section, elf, signature,
			       tag, mode, owner, mtime, symlink, hardlink, type,
			       only-in-a, only-in-b, order, container, error */
	const char *detail; /* one line */
	const char *diff;   /* text: a short unified diff, else NULL */
} kb_diff_item;

typedef struct {
	kb_diff_item *v;
	size_t n, cap;
	size_t more; /* differences found past the limit, not described */
	kb_arena *a; /* owns every string */
} kb_diff_list;

typedef struct {
	size_t max;	      /* differences described; 0 means 50 */
	const char *store;    /* the store directory for operands that are
				 hashes or ref names; opened only then */
	uint64_t mem_cap;     /* a differing member is read into memory up to
				 this many bytes; 0 means 64 MiB */
	uint64_t work_cap;    /* bytes decompressed and read in all, after which
				 deeper members are compared by hash only;
				 0 means 64 GiB */
} kb_diff_opts;

/* A and B: a path (file or directory), else a stored object's hash or a
 * ref name. An operand that cannot be opened is an error (code 2 for a
 * missing one); what cannot be read inside them is a difference of kind
 * "error". out is empty when they are identical. */
KB_MUST kb_err *kb_diff(const char *a, const char *b, const kb_diff_opts *o, kb_diff_list *out);
/* the same for two byte strings (labels name them in paths) */
KB_MUST kb_err *kb_diff_mem(const void *a, size_t na, const void *b, size_t nb,
			    const char *label, const kb_diff_opts *o, kb_diff_list *out);
void kb_diff_list_free(kb_diff_list *l);

/* one line per difference, "A > B > C: detail", a text diff indented
 * below its line, "... N more differences" last; "identical" if none */
void kb_diff_print(const kb_diff_list *l, FILE *out);
/* a JSON array of {"path": [...], "kind", "detail"[, "diff"]}, and
 * {"path": [], "kind": "more", "count": N} when differences were left out */
KB_MUST kb_err *kb_diff_print_json(const kb_diff_list *l, FILE *out);

/* 'kbuild verify MANIFEST' (verify_cmd.c): rebuild from a manifest in a
 * fresh store and compare every output */
int kb_verify_main(const char *store_dir, int argc, char **argv);
int kb_verify_help(FILE *out);

/* 'kbuild diff' (diff_cmd.c) */
int kb_diff_main(const char *store_dir, int argc, char **argv);
int kb_diff_help(FILE *out);

#endif

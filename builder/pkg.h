/* Private to builder/: packages in a vendor's own format (.deb, .rpm)
 * made from a store tree, written as a blob into the store.
 *
 * Bit-reproducible by construction: the bytes depend only on the tree,
 * the metadata and SOURCE_DATE_EPOCH (kb_pkg_meta.sde). Every time in
 * the package is sde (file times too: a tree has none, so "clamped to the
 * epoch" means equal to it); owners are root/root (0/0); entries are in a
 * fixed order; compressors run single-threaded at a fixed level; no host
 * name, user, umask, TZ, locale or working directory is read.
 *
 * Payload rules, both formats:
 *  - modes come from the tree: directories 0755, files 0644, executables
 *    0755, symlinks 0777 (as dpkg-deb and rpm show them).
 *  - a name with a newline or another control byte is refused (dpkg's
 *    file lists and md5sums are line-based).
 *  - symlinks may point anywhere absolute ("/etc/alternatives/x" is what
 *    packages ship) or relative within the file system; a relative target
 *    whose ".." components climb above "/" from where the link is refused:
 *    it was meant relative to some build directory, never to the installed
 *    system. Empty targets and targets over 4095 bytes are refused too.
 *    A tree cannot put entries below a symlink, so a package cannot
 *    write through one.
 *  - files of 4 GiB or more are refused (neither cpio newc nor the rpm
 *    32-bit size tags hold them; such a payload is not a kernel module).
 *
 * .deb (pkg_deb.c): ar with debian-binary "2.0\n", control.tar.xz,
 * data.tar.xz, like dpkg-deb --root-owner-group with SOURCE_DATE_EPOCH:
 * GNU tar, "./"-prefixed names, directories with a trailing '/', entries
 * depth-first with each directory's names sorted bytewise and symlinks
 * after everything else (dpkg-deb's order), xz level 6, CRC64, one thread. Every directory of the tree is in
 * data.tar, "./" first (dpkg handles a directory that is a symlink on the
 * target system, e.g. /lib on merged /usr).
 *
 * .rpm (pkg_rpm.c): v4 as rpm 4.18 writes it: lead, signature header
 * (SHA1 and SHA256 of the main header, MD5 of header+payload, sizes,
 * optionally an OpenPGP RSA header signature), main header, zstd (level
 * 19, one thread) cpio newc payload with "./" names. Files listed sorted
 * by full path (rpm looks them up by binary search). Directories: the
 * package owns the directories of the tree except the system ones
 * (kb_pkg_system_dir: "/", lib, usr, usr/lib, lib/modules, ...), which
 * the base system owns — on EL9 /lib is a symlink, and a package owning
 * /lib as a directory conflicts with the filesystem package. Requires are
 * the given ones plus the rpmlib() features used and /bin/sh for
 * scriptlets; nothing is scanned from file contents.
 *
 * Kernel-module packages (--kmod KVER, kb_pkg_kmod):
 *  Debian: Package NAME-modules-KVER (zfs-modules-6.1.0-56-amd64), one per
 *   kernel release; Depends: linux-image-KVER; Provides: NAME-modules;
 *   Section kernel; postinst (configure) and postrm (remove) run
 *   "depmod -a -F /boot/System.map-KVER KVER" when that System.map exists
 *   (as Debian's own module packages do), else "depmod -a KVER", and
 *   never fail the installation over it. Modules go below
 *   lib/modules/KVER/updates/ (they win over the kernel's own).
 *  EL: Name kmod-NAME; Requires: kernel-uname-r = KVER (built for exactly
 *   that kernel; kABI reuse across z-streams breaks, see the field notes);
 *   Provides: kmod(M.ko) for every module M; %post and %postun run the
 *   same depmod, interpreter /bin/sh. Modules go below
 *   lib/modules/KVER/extra/NAME/.
 *  The tree must hold at least one .ko below lib/modules/KVER/. */
#ifndef KB_BUILDER_PKG_H
#define KB_BUILDER_PKG_H

#include "../store/store.h"

typedef enum { KB_PKG_DEB, KB_PKG_RPM } kb_pkg_fmt;

typedef struct {
	const char *name, *version;
	const char *release; /* deb: appended as "-RELEASE" when given; rpm: required */
	int has_epoch;
	unsigned long epoch;
	const char *arch;	/* deb: amd64, all, ...; rpm: x86_64, noarch, ... */
	const char *maintainer; /* deb: Maintainer (required); rpm: PACKAGER */
	const char *summary;	/* one line */
	const char *description; /* more lines, or NULL */
	const char *license;	 /* rpm: required; deb: not a control field */
	const char *url;
	const char *section, *priority; /* deb */
	const char *group;		/* rpm */
	/* deb: relations as deb-control(5) writes one item ("a (>= 1) | b");
	 * rpm: "NAME" or "NAME OP EVR" with OP one of < <= = >= > */
	char **depends, **provides, **conflicts;
	size_t ndepends, nprovides, nconflicts;
	const char *postinst, *postrm; /* script text (deb: postinst/postrm;
					   rpm: %post/%postun), or NULL */
	int64_t sde;		       /* SOURCE_DATE_EPOCH */
	const kb_buf *sign_key;	       /* rpm: OpenPGP secret key, or NULL */
	int64_t sign_time;	       /* its signature's time; 0: sde (a key
					* made after sde signs at its creation) */
} kb_pkg_meta;

/* One entry of the payload. */
typedef struct {
	char type;	    /* 'd', 'f', 'x' (executable file), 'l' */
	const char *path;   /* "usr/bin/x"; "" is the root directory */
	kb_hash hash;	    /* f/x: content (its SHA-256); l: the target blob */
	uint64_t size;	    /* f/x: bytes; l: target length */
	const char *target; /* l */
} kb_pkg_ent;

typedef struct {
	kb_arena *a;
	kb_pkg_ent *e; /* depth-first, names sorted bytewise, root first */
	size_t n, cap;
} kb_pkg_list;

/* Reads the tree (recursively) and checks it against the rules above. */
KB_MUST kb_err *kb_pkg_walk(kb_store *s, const kb_hash *tree, kb_pkg_list *out);
void kb_pkg_list_free(kb_pkg_list *l);

/* Checks names, versions and the other fields for the format; every
 * message names the field and says what is allowed. */
KB_MUST kb_err *kb_pkg_check_meta(const kb_pkg_meta *m, kb_pkg_fmt fmt);

/* Fills in the kernel-module conventions above for kernel release kver;
 * base is the module set's name ("zfs"). Strings live in a. Fields
 * already set by the caller (depends, provides) are kept and added to. */
KB_MUST kb_err *kb_pkg_kmod(kb_pkg_meta *m, kb_pkg_fmt fmt, const char *kver, const char *base,
			    const kb_pkg_list *payload, kb_arena *a);

/* 1 for directories an rpm leaves to the base system (see above) */
int kb_pkg_system_dir(const char *path);

/* An unlinked temporary file in the store's tmp/ (gc removes what a crash
 * leaves) for compressed members whose size must be known before they are
 * written. */
KB_MUST kb_err *kb_pkg_tmpfile(kb_store *s, int *fd);

/* The package as a blob in t; *out its hash. */
KB_MUST kb_err *kb_pkg_write_deb(kb_store *s, kb_txn *t, const kb_pkg_list *payload,
				 const kb_pkg_meta *m, kb_hash *out);
KB_MUST kb_err *kb_pkg_write_rpm(kb_store *s, kb_txn *t, const kb_pkg_list *payload,
				 const kb_pkg_meta *m, kb_hash *out);

/* 'kbuild package …' (pkg_cmd.c) */
int kb_pkg_main(const char *store_dir, int argc, char **argv);
int kb_pkg_help(FILE *out);

#endif

/* Private to builder/: bootable images — initramfs archives and ISOs —
 * and what they are checked against (kernel modules, kernel packages).
 *
 * initramfs (initramfs.c, initramfs_tree.c): a store tree written as a
 * cpio "newc" archive, compressed with zstd at level 19, single-threaded
 * (Debian's 6.1 kernels have CONFIG_RD_ZSTD, and initramfs-tools itself
 * uses zstd on bookworm; libzstd's output depends only on the input, the
 * level and the parameters set here). Entries are sorted bytewise by
 * their full path (a directory precedes what it holds), owners are 0,
 * every time is SOURCE_DATE_EPOCH, inode numbers count up from 1 in that
 * order, nlink is 2 + subdirectories for a directory and 1 otherwise, and
 * the uncompressed archive ends with the TRAILER!!! entry, padded to 512
 * bytes like the kernel's own gen_init_cpio. The cpio is written here, not
 * with libarchive: every header field is then ours, none derived from the
 * host (libarchive renumbers inodes and takes nlink from the entry).
 *
 * iso (iso.c, fat.c, grubimg.c): see iso.c. */
#ifndef KB_BUILDER_IMAGE_H
#define KB_BUILDER_IMAGE_H

#include "../store/store.h"

#include <stdint.h>
#include <stdio.h>

#define KB_INITRAMFS_ZSTD_LEVEL 19

/* ---- kernel modules (kmod.c) ---- */
typedef struct {
	char *name;	/* modinfo name= (else the file name without .ko) */
	char *vermagic; /* the whole vermagic= string */
	char *release;	/* its first word: the kernel release */
	char *depends;	/* modinfo depends= ("a,b"), "" when none */
	char *signer;	/* the signing certificate's issuer CN; NULL: unsigned */
	char *sig_hash; /* "sha256", ...; NULL: unsigned */
	unsigned machine; /* ELF e_machine (62: x86-64) */
} kb_kmod;

/* Reads the module's ELF .modinfo section and its appended signature
 * (PKCS#7, as sign-file writes it) from fd with pread; what names the
 * module in messages. Refuses a file that is not a relocatable ELF64 or
 * has no vermagic. */
KB_MUST kb_err *kb_kmod_read(int fd, const char *what, kb_kmod *out);
void kb_kmod_free(kb_kmod *m);
/* a module name as the kernel keeps it: '-' made '_' */
void kb_kmod_norm_name(char *name);
/* kb_tree_walk's view of modules: 0 unless e is a file named *.ko */
int kb_kmod_is_ko(const char *path, const kb_tree_entry *e);
/* kb_kmod_read of that file's store object; name is then always set (from
 * the file name when .modinfo has none) with '-' made '_', as the kernel
 * names modules */
KB_MUST kb_err *kb_kmod_read_object(kb_store *s, const kb_hash *h, const char *path,
				    const char *what, kb_kmod *out);

/* ---- packages read from the store (pkgfile.c) ---- */
/* Called for each entry of a .deb's data.tar or an .rpm's payload: path
 * normalised ("boot/x"),
 * type 'd', 'f', 'x', 'l' (other types are skipped); data read with
 * kb_pkgfile_read while in the callback. Return non-NULL to stop. */
typedef struct kb_pkgfile kb_pkgfile;
typedef kb_err *(*kb_pkgfile_fn)(void *ctx, kb_pkgfile *d, const char *path, char type,
			     const char *target, uint64_t size);
/* control: a .deb's control file's text (NUL-terminated; may be NULL);
 * left empty for an .rpm */
KB_MUST kb_err *kb_pkgfile_walk(kb_store *s, const kb_hash *deb, const char *what, kb_buf *control,
			    kb_pkgfile_fn fn, void *ctx);
/* the current entry's bytes into t as a blob */
KB_MUST kb_err *kb_pkgfile_store(kb_pkgfile *d, kb_txn *t, int exec, kb_hash *out);
/* up to n bytes of the current entry's beginning */
KB_MUST kb_err *kb_pkgfile_read(kb_pkgfile *d, void *p, size_t n, size_t *got);
/* a control field's value (first line), allocated; NULL when absent */
char *kb_deb_field(const char *control, const char *field);

/* ---- initramfs (initramfs.c) ---- */
/* the archive for tree as a blob in t */
KB_MUST kb_err *kb_initramfs_write(kb_store *s, kb_txn *t, const kb_hash *tree, int64_t sde,
				   kb_hash *out);
/* 0 if path is relative and clean ("a/b": no empty, "." or ".." part) */
int kb_path_clean(const char *path);

/* ---- assembling an initramfs tree (initramfs_tree.c) ---- */
typedef struct {
	const char *path; /* in the initramfs, clean */
	const char *file; /* on the host */
} kb_initramfs_add;

typedef struct {
	kb_hash busybox;   /* a busybox(-static) .deb in the store */
	kb_hash modules;   /* a tree: every .ko in it goes to lib/modules/KVER/extra/ */
	int has_modules;
	const char *kver;  /* required release; NULL: the modules' vermagic */
	const char *const *load; /* module names to load (with what they
				  * depend on); none: all of them */
	size_t nload;
	const kb_initramfs_add *add;
	size_t nadd;
} kb_initramfs_spec;

/* the tree (staged in t); the init it writes prints one line
 * "kbuild-init: modules: NAME(state=live,signer=CN,hash=sha256,taint=X) ..."
 * on the console, then powers off. */
KB_MUST kb_err *kb_initramfs_assemble(kb_store *s, kb_txn *t, const kb_initramfs_spec *sp,
				      kb_hash *tree);

/* the list of modules the init loads, in order (one path below
 * lib/modules/KVER a line), inside the initramfs: the ISO checks it */
#define KB_INITRAMFS_LOADLIST "etc/kbuild-modules"
#define KB_INITRAMFS_MARKER "kbuild-init: modules:"

/* ---- FAT (fat.c) ---- */
typedef struct {
	const char *path; /* "EFI/BOOT/BOOTX64.EFI": 8.3 names, upper case */
	int fd;		  /* read from its start */
	uint64_t size;
} kb_fat_file;
/* A FAT12/16 image holding the files (and their directories), all times
 * the epoch (FAT has local times: written as UTC), volume serial from
 * serial, label label (<= 11 chars); streamed into fd. */
KB_MUST kb_err *kb_fat_write(const kb_fat_file *f, size_t n, int64_t sde, uint32_t serial,
			     const char *label, int fd);

/* ---- GRUB images (grubimg.c) ---- */
/* The early config: find the file system labelled label (the ISO's
 * volume id), then read /boot/grub/grub.cfg from it. */
char *kb_grub_early_cfg(const char *label);
/* Runs grub-mkimage from the build root tree (grub-common, grub-pc-bin,
 * grub-efi-amd64-bin) in the sandbox: the i386-pc El Torito image and
 * (unless efi is NULL) BOOTX64.EFI, each with the early config built in.
 * Blobs in t. */
KB_MUST kb_err *kb_grub_images(kb_store *s, kb_txn *t, const kb_hash *root, const char *label,
			       int64_t sde, kb_hash *bios, kb_hash *efi);

/* ---- ISO (iso.c) ---- */
typedef struct {
	kb_hash kernel;	   /* linux-image-*.deb */
	kb_hash initramfs; /* the initramfs tree (written by kbuild) */
	kb_hash grub_root; /* build root with grub-mkimage and its modules */
	kb_hash darksite;  /* a tree for /darksite */
	int has_darksite;
	const char *const *require; /* module names that must be in the initramfs */
	size_t nrequire;
	const char *volid;   /* NULL: "KBUILD" */
	const char *cmdline; /* extra kernel arguments, or NULL */
	/* UEFI boots through the grub root's shim and GRUB signed for Secure
	 * Boot (Debian's shim-signed, grub-efi-amd64-signed) instead of a
	 * GRUB made here, which no firmware would trust */
	int secure_boot;
	int64_t sde;
} kb_iso_spec;

KB_MUST kb_err *kb_iso_build(kb_store *s, const kb_iso_spec *sp, kb_hash *out);

/* the store file of an object (the plain or the executable variant) */
char *kb_object_file(kb_store *s, const kb_hash *h);

/* 'kbuild initramfs …', 'kbuild iso …' (image_cmd.c) */
int kb_initramfs_main(const char *store_dir, int argc, char **argv);
int kb_initramfs_help(FILE *out);
int kb_iso_main(const char *store_dir, int argc, char **argv);
int kb_iso_help(FILE *out);

#endif

/* A bootable ISO 9660 image from a kernel package, an initramfs tree and
 * GRUB, written with libisofs (in-process: the image streams straight
 * into a store blob, every node's owner, mode and time is set here, and
 * no build root with xorriso is needed; xorriso is the same library with
 * a command language around it).
 *
 * Layout: /boot/vmlinuz, /boot/initrd.img, /boot/grub/grub.cfg,
 * /boot/grub/i386-pc/eltorito.img (El Torito, platform 0, no emulation,
 * boot info table and GRUB2 boot info patched in as grub-mkrescue does),
 * /boot/grub/efi.img (El Torito, platform 0xEF: a FAT image holding
 * EFI/BOOT/BOOTX64.EFI, see fat.c), /boot/grub/boot.cat, /darksite.
 *
 * Deterministic: libisofs's "now" and every volume time are the epoch;
 * Rock Ridge 1.10, whose PX entries hold no inode numbers (libisofs takes
 * them from the source files, here store objects: they differ by store);
 * the volume UUID (the modification time string GRUB's search uses) is
 * the epoch in UTC; nodes get mode 0755/0644, owner 0 and the epoch
 * explicitly; files are added in a fixed order; ids are fixed strings.
 *
 * Checked before anything is written: the kernel package is for amd64
 * and holds an x86 bzImage whose version string starts with the release
 * its file name gives; the initramfs has modules for that release only,
 * each an x86-64 module whose vermagic names that release; every module
 * the init loads and every --module is there. */
#include "image.h"
#include "pkg.h"

#include <errno.h>
/* the burn_source struct is defined only for callers without libburn */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ISO_BUF (32 * 2048)

char *kb_object_file(kb_store *s, const kb_hash *h)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	char *p = kb_asprintf("%s/objects/%.2s/%s", kb_store_path(s), hex, hex + 2);
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return kb_asprintf("%s/objects/%.2s/%s.x", kb_store_path(s), hex, hex + 2);
}

/* ---- the kernel package ---- */
struct kernel {
	kb_txn *t;
	kb_hash vmlinuz;
	char *kver, *path;
	int found;
};

static kb_err *kernel_entry(void *ctx, kb_pkgfile *d, const char *path, char type,
			    const char *target, uint64_t size)
{
	(void)target;
	(void)size;
	struct kernel *k = ctx;
	/* Debian: boot/vmlinuz-KVER; EL kernel-core: lib/modules/KVER/vmlinuz
	 * (its scriptlet copies it to /boot) */
	size_t n = strlen(path);
	const char *kver = !strncmp(path, "boot/vmlinuz-", 13) ? path + 13 : NULL;
	if (!kver && !strncmp(path, "lib/modules/", 12) && n > 20 &&
	    !strcmp(path + n - 8, "/vmlinuz") && !memchr(path + 12, '/', n - 20))
		kver = path + 12;
	if (!kver || (type != 'f' && type != 'x'))
		return NULL;
	if (k->found)
		return kb_errf("the kernel package has two kernels (%s and %s)", path, k->path);
	k->found = 1;
	k->path = kb_strdup(path);
	k->kver = kver == path + 12 ? kb_strndup(kver, n - 20) : kb_strdup(kver);
	return kb_pkgfile_store(d, k->t, 0, &k->vmlinuz);
}

/* an x86 bzImage: the boot sector's 0x55AA, "HdrS" at 0x202, and the
 * version string the setup header points at */
static kb_err *check_bzimage(kb_txn *t, const kb_hash *h, const char *kver, const char *path,
			     const char *what)
{
	int fd;
	kb_err *err = kb_txn_open(t, h, &fd);
	if (err)
		return err;
	unsigned char hdr[0x300];
	ssize_t n = pread(fd, hdr, sizeof hdr, 0);
	if (n != (ssize_t)sizeof hdr || hdr[0x1fe] != 0x55 || hdr[0x1ff] != 0xaa ||
	    memcmp(hdr + 0x202, "HdrS", 4)) {
		close(fd);
		return kb_errf("%s: %s is not an x86 kernel (no bzImage boot header); give an "
			       "amd64 (x86_64) kernel package", what, path);
	}
	unsigned off = (unsigned)(hdr[0x20e] | hdr[0x20f] << 8) + 0x200;
	char ver[256] = "";
	n = pread(fd, ver, sizeof ver - 1, off);
	close(fd);
	ver[n > 0 ? n : 0] = 0;
	size_t kl = strlen(kver);
	if (strncmp(ver, kver, kl) || ver[kl] != ' ')
		return kb_errf("%s: %s says it is version '%.60s'", what, path, ver);
	return NULL;
}

static kb_err *read_kernel(kb_store *s, kb_txn *t, const kb_hash *deb, struct kernel *k)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(deb, hex);
	char *what = kb_asprintf("kernel package %.12s", hex);
	kb_buf control = {0};
	k->t = t;
	kb_err *err = kb_pkgfile_walk(s, deb, what, &control, kernel_entry, k);
	char *pkg = err ? NULL : kb_deb_field(control.p, "Package");
	char *arch = err ? NULL : kb_deb_field(control.p, "Architecture");
	/* an .rpm has no control file: its kernel's boot header says x86 */
	if (!err && control.len && (!arch || strcmp(arch, "amd64")))
		err = kb_errf("%s (%s) is for architecture %s; this ISO boots x86-64: give the "
			      "amd64 linux-image package",
			      what, pkg ? pkg : "?", arch ? arch : "(none)");
	else if (!err && !k->found)
		err = kb_errf("%s (%s) has no kernel (no boot/vmlinuz-* or "
			      "lib/modules/*/vmlinuz); give a kernel package (linux-image-*, "
			      "kernel-core)", what, pkg ? pkg : "an rpm");
	if (!err)
		err = check_bzimage(t, &k->vmlinuz, k->kver, k->path, what);
	free(pkg);
	free(arch);
	free(what);
	kb_buf_free(&control);
	return err;
}

/* ---- the initramfs's modules ---- */
struct imods {
	kb_store *s;
	const char *kver;
	struct imod {
		char *name, *path; /* path below lib/modules/KVER */
	} *m;
	size_t n, cap;
	kb_arena *a;
};

static kb_err *check_mod(void *ctx, const char *p, int depth, const kb_tree_entry *e)
{
	struct imods *m = ctx;
	(void)depth;
	if (!kb_kmod_is_ko(p, e))
		return NULL;
	kb_kmod km;
	char *what = kb_asprintf("initramfs module lib/modules/%s/%s", m->kver, p);
	kb_err *err = kb_kmod_read_object(m->s, &e->hash, p, what, &km);
	if (!err) {
		if (km.machine != 62)
			err = kb_errf("%s is not an x86-64 module (ELF machine %u)", what,
				      km.machine);
		else if (strcmp(km.release, m->kver))
			err = kb_errf("%s was built for kernel %s (vermagic '%s'), but the image's "
				      "kernel is %s; build it against the headers of %s",
				      what, km.release, km.vermagic, m->kver, m->kver);
		m->m = kb_arena_grow(m->a, m->m, m->n, &m->cap, sizeof *m->m);
		m->m[m->n++] = (struct imod){kb_arena_strdup(m->a, km.name), kb_arena_strdup(m->a, p)};
		kb_kmod_free(&km);
	}
	free(what);
	return err;
}

static const kb_tree_entry *find(const kb_tree *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].namelen == strlen(name) && !memcmp(t->e[i].name, name, t->e[i].namelen))
			return &t->e[i];
	return NULL;
}

/* the entry at a path below tree, or found=0 */
static kb_err *lookup(kb_store *s, const kb_hash *tree, const char *path, kb_tree_entry *out,
		      int *found)
{
	kb_hash h = *tree;
	*found = 0;
	char *dup = kb_strdup(path);
	kb_err *err = NULL;
	for (char *save = NULL, *c = strtok_r(dup, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		kb_tree t;
		if ((err = kb_store_read_tree(s, &h, &t)))
			break;
		const kb_tree_entry *e = find(&t, c);
		int last = !save || !*save, go = e && (last || e->type == KB_ENT_DIR);
		if (go) {
			h = e->hash;
			if (last) {
				*out = *e;
				out->name = NULL;
				*found = 1;
			}
		}
		kb_tree_free(&t);
		if (!go)
			break;
	}
	free(dup);
	return err;
}

static kb_err *check_initramfs(kb_store *s, const kb_iso_spec *sp, const char *kver)
{
	kb_tree_entry e;
	int found;
	struct imods m = {.s = s, .kver = kver, .a = kb_arena_new()};
	kb_err *err = lookup(s, &sp->initramfs, "lib/modules", &e, &found);
	if (!err && found && e.type == KB_ENT_DIR) {
		kb_tree t;
		if (!(err = kb_store_read_tree(s, &e.hash, &t))) {
			for (size_t i = 0; !err && i < t.n; i++)
				if (t.e[i].namelen != strlen(kver) ||
				    memcmp(t.e[i].name, kver, t.e[i].namelen))
					err = kb_errf("the initramfs has lib/modules/%.*s, but the "
						      "image's kernel is %s; assemble it with "
						      "modules built for %s",
						      (int)t.e[i].namelen, t.e[i].name, kver, kver);
				else if (t.e[i].type == KB_ENT_DIR)
					err = kb_tree_walk(s, &t.e[i].hash, check_mod, &m);
			kb_tree_free(&t);
		}
	}
	/* what the init loads must be there */
	kb_buf list = {0};
	if (!err)
		err = lookup(s, &sp->initramfs, KB_INITRAMFS_LOADLIST, &e, &found);
	if (!err && found && (err = kb_store_read(s, &e.hash, 1u << 20, &list)))
		err = kb_err_wrap(err, "initramfs %s", KB_INITRAMFS_LOADLIST);
	if (!err && list.len) {
		kb_buf_addc(&list, 0);
		for (char *save = NULL, *l = strtok_r(list.p, "\n", &save); !err && l;
		     l = strtok_r(NULL, "\n", &save)) {
			size_t i = 0;
			while (i < m.n && strcmp(m.m[i].path, l))
				i++;
			if (i == m.n)
				err = kb_errf("the initramfs's init loads lib/modules/%s/%s, which is "
					      "missing (or is not a module for %s)",
					      kver, l, kver);
		}
	}
	kb_buf_free(&list);
	for (size_t r = 0; !err && r < sp->nrequire; r++) {
		char *want = kb_strdup(sp->require[r]);
		kb_kmod_norm_name(want);
		size_t i = 0;
		while (i < m.n && strcmp(m.m[i].name, want))
			i++;
		if (i == m.n)
			err = kb_errf("module %s is missing from the initramfs (it has %zu module%s "
				      "for %s); assemble it with that module",
				      sp->require[r], m.n, m.n == 1 ? "" : "s", kver);
		free(want);
	}
	kb_arena_free(m.a);
	return err;
}

/* ---- libisofs ---- */
static kb_err *iso_err(int r, const char *what)
{
	return kb_errf("libisofs: %s: %s (error 0x%x)", what, iso_error_to_msg(r), (unsigned)r);
}

static void fix_node(IsoNode *n, mode_t mode, time_t t)
{
	iso_node_set_permissions(n, mode);
	iso_node_set_uid(n, 0);
	iso_node_set_gid(n, 0);
	iso_node_set_atime(n, t);
	iso_node_set_mtime(n, t);
	iso_node_set_ctime(n, t);
}

static kb_err *add_dir(IsoDir *parent, const char *name, time_t t, IsoDir **out)
{
	int r = iso_tree_add_new_dir(parent, name, out);
	if (r < 0)
		return iso_err(r, name);
	fix_node((IsoNode *)*out, 0755, t);
	return NULL;
}

static kb_err *add_file(kb_store *s, IsoImage *img, IsoDir *parent, const char *name,
			const kb_hash *h, int exec, time_t t)
{
	char *p = kb_object_file(s, h);
	IsoNode *n;
	int r = iso_tree_add_new_node(img, parent, name, p, &n);
	free(p);
	if (r < 0)
		return iso_err(r, name);
	fix_node(n, exec ? 0755 : 0644, t);
	return NULL;
}

static kb_err *add_tree(kb_store *s, IsoImage *img, IsoDir *dir, const kb_hash *h,
			const char *prefix, int depth, time_t t)
{
	if (depth > 64)
		return kb_errf("darksite: '%s' is nested too deep", prefix);
	kb_tree tr;
	kb_err *err = kb_store_read_tree(s, h, &tr);
	int have = !err;
	for (size_t i = 0; !err && i < tr.n; i++) {
		const kb_tree_entry *e = &tr.e[i];
		char *name = kb_strndup(e->name, e->namelen);
		if (e->type == KB_ENT_DIR) {
			IsoDir *sub;
			char *p = kb_asprintf("%s/%s", prefix, name);
			if (!(err = add_dir(dir, name, t, &sub)))
				err = add_tree(s, img, sub, &e->hash, p, depth + 1, t);
			free(p);
		} else if (e->type == KB_ENT_LINK) {
			kb_buf b = {0};
			IsoSymlink *l;
			if (!(err = kb_store_read(s, &e->hash, 4096, &b))) {
				kb_buf_addc(&b, 0);
				int r = iso_tree_add_new_symlink(dir, name, b.p, &l);
				if (r < 0)
					err = iso_err(r, name);
				else
					fix_node((IsoNode *)l, 0777, t);
			}
			kb_buf_free(&b);
		} else {
			err = add_file(s, img, dir, name, &e->hash, e->type == KB_ENT_EXEC, t);
		}
		if (err)
			err = kb_err_wrap(err, "%s/%s", prefix, name);
		free(name);
	}
	if (have)
		kb_tree_free(&tr);
	return err;
}

struct parts {
	kb_hash vmlinuz, initrd, bios, efi, efiimg, cfg;
};

static kb_err *write_iso(kb_store *s, const kb_iso_spec *sp, const struct parts *p,
			 const char *volid, kb_hash *out)
{
	time_t t = (time_t)sp->sde;
	IsoImage *img = NULL;
	IsoWriteOpts *opts = NULL;
	struct burn_source *src = NULL;
	kb_txn *tx = NULL;
	kb_blobw *w = NULL;
	kb_err *err = NULL;
	int r;
	iso_nowtime(&t, 1);
	if ((r = iso_image_new(volid, &img)) < 0)
		return iso_err(r, "a new image");
	iso_image_set_application_id(img, "KBUILD");
	iso_image_set_data_preparer_id(img, "KBUILD");
	iso_image_set_publisher_id(img, "");
	iso_image_set_system_id(img, "LINUX");
	IsoDir *root = iso_image_get_root(img), *boot, *grub, *pc;
	fix_node((IsoNode *)root, 0755, t);
	if (!(err = add_dir(root, "boot", t, &boot)) && !(err = add_dir(boot, "grub", t, &grub)) &&
	    !(err = add_dir(grub, "i386-pc", t, &pc)) &&
	    !(err = add_file(s, img, boot, "vmlinuz", &p->vmlinuz, 0, t)) &&
	    !(err = add_file(s, img, boot, "initrd.img", &p->initrd, 0, t)) &&
	    !(err = add_file(s, img, grub, "grub.cfg", &p->cfg, 0, t)) &&
	    !(err = add_file(s, img, grub, "efi.img", &p->efiimg, 0, t)) &&
	    !(err = add_file(s, img, pc, "eltorito.img", &p->bios, 0, t)) && sp->has_darksite) {
		IsoDir *dk;
		if (!(err = add_dir(root, "darksite", t, &dk)))
			err = add_tree(s, img, dk, &sp->darksite, "/darksite", 0, t);
	}
	ElToritoBootImage *bios = NULL, *efi = NULL;
	if (!err && (r = iso_image_set_boot_image(img, "/boot/grub/i386-pc/eltorito.img",
						  ELTORITO_NO_EMUL, "/boot/grub/boot.cat",
						  &bios)) < 0)
		err = iso_err(r, "the BIOS boot image");
	if (!err) {
		el_torito_set_load_size(bios, 4);
		/* bit0: boot info table, bit9: GRUB2 boot info (grub-mkrescue's
		 * -boot-info-table --grub2-boot-info) */
		el_torito_set_isolinux_options(bios, 1 | 1 << 9, 0);
		if ((r = iso_image_add_boot_image(img, "/boot/grub/efi.img", ELTORITO_NO_EMUL, 0,
						  &efi)) < 0)
			err = iso_err(r, "the EFI boot image");
	}
	if (!err) {
		el_torito_set_boot_platform_id(efi, 0xef);
		el_torito_set_full_load(efi, 1);
		IsoBoot *cat;
		if (iso_image_get_boot_image(img, NULL, NULL, &cat) == 1 && cat)
			fix_node((IsoNode *)cat, 0644, t);
	}
	if (!err && (r = iso_write_opts_new(&opts, 0)) < 0)
		err = iso_err(r, "write options");
	if (!err) {
		struct tm tm;
		gmtime_r(&t, &tm);
		char uuid[64];
		snprintf(uuid, sizeof uuid, "%04d%02d%02d%02d%02d%02d00", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		iso_write_opts_set_iso_level(opts, 3);
		iso_write_opts_set_rockridge(opts, 1);
		iso_write_opts_set_joliet(opts, 1);
		iso_write_opts_set_joliet_long_names(opts, 1);
		iso_write_opts_set_pvd_times(opts, t, t, 0, t, uuid);
		iso_write_opts_set_always_gmt(opts, 1);
		iso_write_opts_set_replace_timestamps(opts, 2);
		iso_write_opts_set_default_timestamp(opts, t);
		iso_write_opts_set_replace_mode(opts, 0, 0, 0, 0);
		iso_write_opts_set_hardlinks(opts, 0);
		/* RRIP 1.12's PX entry carries inode numbers, which libisofs
		 * derives from the source files' (the store objects') inodes:
		 * another store, another image. RRIP 1.10 has none; Linux,
		 * GRUB and xorriso read either */
		iso_write_opts_set_rrip_version_1_10(opts, 1);
		iso_write_opts_set_rrip_1_10_px_ino(opts, 0);
		iso_write_opts_set_record_md5(opts, 0, 0);
		/* 300 KiB of zeros after the last file, as xorriso pads by
		 * default: firmware and GRUB read ahead in whole cache blocks,
		 * and a read past the end of the medium fails or returns
		 * garbage; the kernel, the last file, was loaded damaged */
		iso_write_opts_set_tail_blocks(opts, 150);
		if ((r = iso_image_create_burn_source(img, opts, &src)) < 0)
			err = iso_err(r, "starting to write the image");
	}
	if (!err && !(err = kb_txn_begin(s, &tx)))
		err = kb_blob_begin(tx, &w);
	/* read block by block, as libisofs's own demo does: a read of more
	 * than what is left returns 0 and would drop the image's tail */
	unsigned char *buf = kb_malloc(ISO_BUF);
	size_t fill = 0;
	while (!err) {
		int n = src->read_xt(src, buf + fill, 2048);
		if (n < 0)
			err = kb_errf("libisofs: writing the image failed (see the messages above)");
		else if (n != 0 && n != 2048)
			err = kb_errf("libisofs: a short read of %d bytes from the image", n);
		else
			fill += (size_t)n;
		if (!err && fill && (n == 0 || fill == ISO_BUF)) {
			err = kb_blob_write(w, buf, fill);
			fill = 0;
		}
		if (n == 0)
			break;
	}
	free(buf);
	if (src) {
		/* reading it to its end (or cancelling) lets the writer thread finish */
		if (err)
			src->cancel(src);
		src->free_data(src);
		free(src);
	}
	if (!err) {
		err = kb_blob_finish(w, 0, NULL, out);
		w = NULL;
	}
	if (w)
		kb_blob_abort(w);
	if (tx) {
		kb_oid o = {KB_BLOB, *out};
		if (err)
			kb_txn_abort(tx);
		else
			err = kb_txn_commit(tx, &o, 1);
	}
	if (opts)
		iso_write_opts_free(opts);
	iso_image_unref(img);
	return err;
}

/* Secure Boot: the firmware trusts shim (signed by Microsoft), shim
 * trusts GRUB and the kernel (signed by the distribution) and the MOK
 * list, whose keys the kernel then trusts for modules. Debian's GRUB for
 * CDs reads $cmdpath/grub.cfg, here the early config, when no medium has
 * a /.disk/info; MokManager is there for 'mokutil --import'. */
static const struct {
	const char *fat, *root;
} sb_files[] = {
	{"EFI/BOOT/BOOTX64.EFI", "usr/lib/shim/shimx64.efi.signed"},
	{"EFI/BOOT/GRUBX64.EFI", "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"},
	{"EFI/BOOT/MMX64.EFI", "usr/lib/shim/mmx64.efi.signed"},
};
#define SB_FILES (sizeof sb_files / sizeof *sb_files)

/* the FAT image El Torito's UEFI entry boots: EFI/BOOT/BOOTX64.EFI, or
 * with secure_boot the signed chain and GRUB.CFG */
static kb_err *efi_image(kb_store *s, kb_txn *t, const kb_iso_spec *sp, const char *volid,
			 struct parts *p)
{
	kb_fat_file f[SB_FILES + 1];
	size_t n = 0;
	kb_err *err = NULL;
	if (!sp->secure_boot) {
		f[n].path = "EFI/BOOT/BOOTX64.EFI";
		err = kb_txn_open(t, &p->efi, &f[n].fd);
		n += !err;
	}
	for (size_t i = 0; sp->secure_boot && !err && i < SB_FILES; i++) {
		kb_tree_entry e;
		int found;
		if ((err = lookup(s, &sp->grub_root, sb_files[i].root, &e, &found)))
			break;
		if (!found || (e.type != KB_ENT_FILE && e.type != KB_ENT_EXEC)) {
			err = kb_errf("iso: Secure Boot needs /%s from the GRUB build root, which "
				      "has none; add shim-signed and grub-efi-amd64-signed to its "
				      "packages",
				      sb_files[i].root);
			break;
		}
		f[n].path = sb_files[i].fat;
		if (!(err = kb_store_open_object(s, &e.hash, &f[n].fd)))
			n++;
	}
	if (!err && sp->secure_boot) {
		char *cfg = kb_grub_early_cfg(volid);
		kb_hash h;
		f[n].path = "EFI/BOOT/GRUB.CFG";
		if (!(err = kb_txn_add_bytes(t, cfg, strlen(cfg), 0, &h)) &&
		    !(err = kb_txn_open(t, &h, &f[n].fd)))
			n++;
		free(cfg);
	}
	for (size_t i = 0; !err && i < n; i++) {
		struct stat st;
		if (fstat(f[i].fd, &st) < 0)
			err = kb_errno(errno, "cannot stat %s", f[i].path);
		else
			f[i].size = (uint64_t)st.st_size;
	}
	int fd = -1;
	if (!err)
		err = kb_pkg_tmpfile(s, &fd);
	/* the serial: the epoch, as mkfs.fat would take it from the clock */
	if (!err)
		err = kb_fat_write(f, n, sp->sde, (uint32_t)sp->sde, "KBUILD_EFI", fd);
	if (!err && lseek(fd, 0, SEEK_SET) < 0)
		err = kb_errno(errno, "cannot rewind the FAT image");
	if (!err)
		err = kb_txn_add_fd(t, fd, 0, "the FAT image", &p->efiimg);
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < n; i++)
		close(f[i].fd);
	return err;
}

static kb_err *check_volid(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 32)
		return kb_usage("iso: volume id '%s' must have 1 to 32 characters", v);
	for (const char *c = v; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return kb_usage("iso: volume id '%s' may only have A-Z, 0-9 and '_' (ISO "
					"9660 d-characters)",
					v);
	return NULL;
}

kb_err *kb_iso_build(kb_store *s, const kb_iso_spec *sp, kb_hash *out)
{
	const char *volid = sp->volid ? sp->volid : "KBUILD";
	kb_err *err = check_volid(volid);
	if (err)
		return err;
	if (sp->cmdline && strpbrk(sp->cmdline, "\n\"'\\$;{}"))
		return kb_usage("iso: --cmdline '%s' has characters grub.cfg would interpret "
				"(newline, quotes, '\\', '$', ';', braces)",
				sp->cmdline);
	if (!kb_store_has(s, &sp->kernel))
		return kb_errf("no kernel: the kernel package is not in the store");
	struct kernel k = {0};
	struct parts p = {0};
	kb_txn *t;
	if ((err = kb_txn_begin(s, &t)))
		return err;
	err = read_kernel(s, t, &sp->kernel, &k);
	if (!err)
		err = check_initramfs(s, sp, k.kver);
	if (!err)
		p.vmlinuz = k.vmlinuz;
	if (!err)
		err = kb_initramfs_write(s, t, &sp->initramfs, sp->sde, &p.initrd);
	if (!err)
		err = kb_grub_images(s, t, &sp->grub_root, volid, sp->sde, &p.bios,
				     sp->secure_boot ? NULL : &p.efi);
	if (!err) {
		char *cfg = kb_asprintf(
			"# written by kbuild iso\n"
			"serial --unit=0 --speed=115200\n"
			"terminal_input serial console\n"
			"terminal_output serial console\n"
			"set timeout=0\n"
			"set default=0\n"
			"menuentry \"kbuild %s\" {\n"
			"\tlinux /boot/vmlinuz console=ttyS0,115200 panic=-1%s%s\n"
			"\tinitrd /boot/initrd.img\n"
			"}\n",
			k.kver, sp->cmdline ? " " : "", sp->cmdline ? sp->cmdline : "");
		err = kb_txn_add_bytes(t, cfg, strlen(cfg), 0, &p.cfg);
		free(cfg);
	}
	if (!err)
		err = efi_image(s, t, sp, volid, &p);
	if (err) {
		kb_txn_abort(t);
	} else {
		kb_oid roots[] = {{KB_BLOB, p.vmlinuz}, {KB_BLOB, p.initrd}, {KB_BLOB, p.bios},
				  {KB_BLOB, p.efiimg}, {KB_BLOB, p.cfg}};
		err = kb_txn_commit(t, roots, sizeof roots / sizeof *roots);
	}
	if (!err) {
		int r = iso_init();
		if (r < 0)
			err = iso_err(r, "initialising");
		else {
			err = write_iso(s, sp, &p, volid, out);
			iso_finish();
		}
	}
	free(k.kver);
	free(k.path);
	return err;
}

/* 'kbuild initramfs assemble|write' and 'kbuild iso'. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kb_initramfs_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild initramfs assemble --busybox DEB [--modules TREE] [OPTIONS]\n"
		"       kbuild initramfs write [-o FILE] [--ref NAME] TREE\n\n"
		"assemble: makes an initramfs tree and prints its hash: busybox from the .deb\n"
		"DEB (busybox-static), every .ko of TREE below lib/modules/KVER/extra/ with\n"
		"modules.dep, and an /init that loads them with insmod in dependency order,\n"
		"prints one console line '" KB_INITRAMFS_MARKER " NAME(state=...,signer=...,\n"
		"hash=...,taint=...) ...' and powers off.\n"
		"  --busybox DEB      the busybox package (a hash, ref or file)\n"
		"  --modules TREE     modules (a tree hash, ref or directory)\n"
		"  --kver KVER        the kernel release the modules must be built for\n"
		"                     (default: their vermagic, which must agree)\n"
		"  --load NAME        load this module and its dependencies (repeatable;\n"
		"                     default: all)\n"
		"  --add PATH=FILE    also put FILE at PATH (relative, clean)\n\n"
		"write: the tree as a cpio newc archive compressed with zstd -%d, entries\n"
		"sorted, owners 0, times SOURCE_DATE_EPOCH; stores it and prints its hash.\n"
		"  --source-date-epoch N  (default: $SOURCE_DATE_EPOCH; one is required)\n"
		"  -o, --output FILE  also write it to FILE\n\n"
		"Both: --ref NAME points ref NAME at the result.\n",
		KB_INITRAMFS_ZSTD_LEVEL);
	return 1;
}

int kb_iso_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild iso --kernel PKG --initramfs TREE --grub-root TREE [OPTIONS]\n\n"
		"Writes a bootable ISO 9660 image (Rock Ridge, Joliet; El Torito for BIOS with\n"
		"GRUB's i386-pc image and for UEFI with a FAT image holding BOOTX64.EFI),\n"
		"stores it and prints its hash. Holds /boot/vmlinuz (from the kernel package),\n"
		"/boot/initrd.img (the initramfs tree, written as by 'kbuild initramfs write'),\n"
		"/boot/grub/grub.cfg (console on ttyS0) and /darksite. Byte-identical for the\n"
		"same inputs and SOURCE_DATE_EPOCH. Refused: a kernel package for another\n"
		"architecture, a module in the initramfs whose vermagic names another kernel\n"
		"release, a module the init would load that is not there.\n"
		"  --kernel PKG         linux-image-*.deb or an EL kernel-core .rpm (a hash,\n"
		"                       ref or file)\n"
		"  --initramfs TREE     from 'kbuild initramfs assemble' (hash, ref or directory)\n"
		"  --grub-root TREE     a build root of grub-common, grub-pc-bin and\n"
		"                       grub-efi-amd64-bin (grub-mkimage runs in the sandbox)\n"
		"  --darksite TREE      a tree to put under /darksite\n"
		"  --module NAME        the initramfs must hold this module (repeatable)\n"
		"  --volid ID           volume label (default KBUILD; A-Z 0-9 _, at most 32)\n"
		"  --cmdline TEXT       more kernel arguments\n"
		"  --secure-boot        UEFI boots through the signed shim and GRUB of the\n"
		"                       GRUB root (add Debian's shim-signed and\n"
		"                       grub-efi-amd64-signed to it): with Secure Boot on, the\n"
		"                       kernel then loads modules signed by a key enrolled with\n"
		"                       'mokutil --import' (MokManager is on the image)\n"
		"  --source-date-epoch N  (default: $SOURCE_DATE_EPOCH; one is required)\n"
		"  --ref NAME           point ref NAME at the image\n"
		"  -o, --output FILE    also write the image to FILE\n");
	return 1;
}

/* a stored object by hash or ref, else a file or directory to add */
static kb_err *obj_arg(kb_store *s, const char *opt, const char *arg, kb_objtype want,
		       kb_hash *out)
{
	kb_oid o;
	struct stat st;
	kb_err *err = NULL;
	size_t len = strlen(arg);
	int is_hash = len == KB_HEX_LEN && !kb_hash_parse(arg, len, &o.hash);
	if (is_hash || stat(arg, &st) < 0) {
		if ((err = kb_store_resolve(s, arg, &o)))
			return kb_err_wrap(err, "%s '%s' (neither a stored object nor a file)", opt,
					   arg);
	} else {
		kb_txn *t;
		if ((err = kb_txn_begin(s, &t)))
			return err;
		if ((err = kb_txn_add_path(t, arg, &o))) {
			kb_txn_abort(t);
			return kb_err_wrap(err, "%s '%s'", opt, arg);
		}
		if ((err = kb_txn_commit(t, &o, 1)))
			return err;
	}
	if (o.type != want)
		return kb_errf("%s '%s' is a %s; give a %s", opt, arg, kb_objtype_name(o.type),
			       want == KB_TREE ? "tree (a directory)" : "file (a blob)");
	*out = o.hash;
	return NULL;
}

static kb_err *parse_sde(const char *v, int64_t *out)
{
	if (!v || !*v)
		return kb_usage("no SOURCE_DATE_EPOCH: set it in the environment or give "
				"--source-date-epoch (an image's times come from it, never from "
				"the clock)");
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || n > 0xffffffffull)
		return kb_usage("SOURCE_DATE_EPOCH '%s' is not a number from 0 to 4294967295", v);
	*out = (int64_t)n;
	return NULL;
}


static kb_err *finish(kb_store *s, const kb_oid *o, const char *ref, const char *output)
{
	kb_err *err = NULL;
	if (ref)
		err = kb_ref_update(s, ref, NULL, o);
	if (!err && output)
		err = kb_store_write_file(s, &o->hash, output);
	if (!err) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&o->hash, hex);
		printf("%s\n", hex);
	}
	return err;
}

enum { O_BUSYBOX = 256, O_MODULES, O_KVER, O_LOAD, O_ADD, O_SDE, O_REF, O_KERNEL,
       O_INITRAMFS, O_GRUB, O_DARK, O_MODULE, O_VOLID, O_CMDLINE, O_SECBOOT };

static kb_err *bad_opt(const char *cmd, int c, char **argv)
{
	return kb_usage("kbuild %s: %s '%s' (see 'kbuild help %s')", cmd,
			c == ':' ? "missing value for" : "unknown option", argv[optind - 1], cmd);
}

static kb_err *initramfs(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {
		{"busybox", required_argument, NULL, O_BUSYBOX},
		{"modules", required_argument, NULL, O_MODULES},
		{"kver", required_argument, NULL, O_KVER},
		{"load", required_argument, NULL, O_LOAD},
		{"add", required_argument, NULL, O_ADD},
		{"source-date-epoch", required_argument, NULL, O_SDE},
		{"ref", required_argument, NULL, O_REF},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	const char *busybox = NULL, *modules = NULL, *ref = NULL, *output = NULL;
	const char *sdes = getenv("SOURCE_DATE_EPOCH");
	kb_initramfs_spec sp = {0};
	const char **load = kb_calloc((size_t)argc, sizeof *load);
	kb_initramfs_add *add = kb_calloc((size_t)argc, sizeof *add);
	kb_err *err = NULL;
	int c;
	opterr = 0;
	optind = 0;
	while (!err && (c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
		switch (c) {
		case O_BUSYBOX: busybox = optarg; break;
		case O_MODULES: modules = optarg; break;
		case O_KVER: sp.kver = optarg; break;
		case O_LOAD: load[sp.nload++] = optarg; break;
		case O_ADD: {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || !eq[1])
				err = kb_usage("kbuild initramfs: --add takes PATH=FILE, not '%s'",
					       optarg);
			else {
				*eq = 0;
				add[sp.nadd++] = (kb_initramfs_add){optarg, eq + 1};
			}
			break;
		}
		case O_SDE: sdes = optarg; break;
		case O_REF: ref = optarg; break;
		case 'o': output = optarg; break;
		case 'h': kb_initramfs_help(stdout); goto out;
		default: err = bad_opt("initramfs", c, argv);
		}
	}
	sp.load = load;
	sp.add = add;
	const char *sub = optind < argc ? argv[optind] : "";
	int assemble = !strcmp(sub, "assemble"), write = !strcmp(sub, "write");
	if (!err && !assemble && !write)
		err = kb_usage("kbuild initramfs: give 'assemble' or 'write' (see 'kbuild help "
			       "initramfs')");
	if (!err && assemble && (argc - optind != 1 || !busybox))
		err = kb_usage("kbuild initramfs assemble: give --busybox DEB and no operand");
	if (!err && write && argc - optind != 2)
		err = kb_usage("kbuild initramfs write: give one TREE");
	int64_t sde = 0;
	if (!err && write)
		err = parse_sde(sdes, &sde);
	if (!err && ref)
		err = kb_ref_check_name(ref);
	if (!err && output && (!*output || assemble))
		err = kb_usage("kbuild initramfs: --output is for 'write', with a file name");
	kb_store *s = NULL;
	if (!err)
		err = kb_store_open(dir, 1, &s);
	kb_txn *t = NULL;
	kb_oid o;
	if (!err && assemble) {
		err = obj_arg(s, "--busybox", busybox, KB_BLOB, &sp.busybox);
		if (!err && modules) {
			sp.has_modules = 1;
			err = obj_arg(s, "--modules", modules, KB_TREE, &sp.modules);
		}
		o.type = KB_TREE;
		if (!err && !(err = kb_txn_begin(s, &t))) {
			if ((err = kb_initramfs_assemble(s, t, &sp, &o.hash)))
				kb_txn_abort(t);
			else
				err = kb_txn_commit(t, &o, 1);
		}
	} else if (!err) {
		kb_hash tree;
		o.type = KB_BLOB;
		err = obj_arg(s, "initramfs tree", argv[optind + 1], KB_TREE, &tree);
		if (!err && !(err = kb_txn_begin(s, &t))) {
			if ((err = kb_initramfs_write(s, t, &tree, sde, &o.hash)))
				kb_txn_abort(t);
			else
				err = kb_txn_commit(t, &o, 1);
		}
	}
	if (!err)
		err = finish(s, &o, ref, output);
	if (s)
		kb_store_close(s);
out:
	free(load);
	free(add);
	return err;
}

static kb_err *iso(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {
		{"kernel", required_argument, NULL, O_KERNEL},
		{"initramfs", required_argument, NULL, O_INITRAMFS},
		{"grub-root", required_argument, NULL, O_GRUB},
		{"darksite", required_argument, NULL, O_DARK},
		{"module", required_argument, NULL, O_MODULE},
		{"volid", required_argument, NULL, O_VOLID},
		{"cmdline", required_argument, NULL, O_CMDLINE},
		{"secure-boot", no_argument, NULL, O_SECBOOT},
		{"source-date-epoch", required_argument, NULL, O_SDE},
		{"ref", required_argument, NULL, O_REF},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	const char *kernel = NULL, *initrd = NULL, *grub = NULL, *dark = NULL, *ref = NULL;
	const char *output = NULL, *sdes = getenv("SOURCE_DATE_EPOCH");
	kb_iso_spec sp = {0};
	const char **req = kb_calloc((size_t)argc, sizeof *req);
	kb_err *err = NULL;
	int c;
	opterr = 0;
	optind = 0;
	while (!err && (c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
		switch (c) {
		case O_KERNEL: kernel = optarg; break;
		case O_INITRAMFS: initrd = optarg; break;
		case O_GRUB: grub = optarg; break;
		case O_DARK: dark = optarg; break;
		case O_MODULE: req[sp.nrequire++] = optarg; break;
		case O_VOLID: sp.volid = optarg; break;
		case O_CMDLINE: sp.cmdline = optarg; break;
		case O_SECBOOT: sp.secure_boot = 1; break;
		case O_SDE: sdes = optarg; break;
		case O_REF: ref = optarg; break;
		case 'o': output = optarg; break;
		case 'h': kb_iso_help(stdout); goto out;
		default: err = bad_opt("iso", c, argv);
		}
	}
	sp.require = req;
	if (!err && argc != optind)
		err = kb_usage("kbuild iso: unexpected operand '%s' (see 'kbuild help iso')",
			       argv[optind]);
	if (!err && !kernel)
		err = kb_usage("kbuild iso: no kernel: give --kernel with the linux-image .deb");
	if (!err && !initrd)
		err = kb_usage("kbuild iso: no initramfs: give --initramfs with the tree "
			       "'kbuild initramfs assemble' printed");
	if (!err && !grub)
		err = kb_usage("kbuild iso: give --grub-root (a build root of grub-common, "
			       "grub-pc-bin and grub-efi-amd64-bin)");
	if (!err)
		err = parse_sde(sdes, &sp.sde);
	if (!err && ref)
		err = kb_ref_check_name(ref);
	if (!err && output && !*output)
		err = kb_usage("kbuild iso: --output needs a file name");
	kb_store *s = NULL;
	if (!err)
		err = kb_store_open(dir, 1, &s);
	if (!err)
		err = obj_arg(s, "--kernel", kernel, KB_BLOB, &sp.kernel);
	if (!err)
		err = obj_arg(s, "--initramfs", initrd, KB_TREE, &sp.initramfs);
	if (!err)
		err = obj_arg(s, "--grub-root", grub, KB_TREE, &sp.grub_root);
	if (!err && dark) {
		sp.has_darksite = 1;
		err = obj_arg(s, "--darksite", dark, KB_TREE, &sp.darksite);
	}
	kb_oid o = {KB_BLOB, {{0}}};
	if (!err)
		err = kb_iso_build(s, &sp, &o.hash);
	if (!err)
		err = finish(s, &o, ref, output);
	if (s)
		kb_store_close(s);
out:
	free(req);
	return err;
}

static int main_of(kb_err *(*fn)(const char *, int, char **), const char *name,
		   const char *dir, int argc, char **argv)
{
	char **av = kb_calloc((size_t)argc + 2, sizeof *av);
	av[0] = (char *)name;
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	kb_err *err = fn(dir, argc + 1, av);
	free(av);
	return kb_exit_status(err);
}

int kb_initramfs_main(const char *dir, int argc, char **argv)
{
	return main_of(initramfs, "initramfs", dir, argc, argv);
}

int kb_iso_main(const char *dir, int argc, char **argv)
{
	return main_of(iso, "iso", dir, argc, argv);
}

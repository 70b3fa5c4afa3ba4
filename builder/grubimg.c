/* GRUB's boot images, made by the grub-mkimage of a build root (Debian's
 * grub-common, with the module directories of grub-pc-bin and
 * grub-efi-amd64-bin) run in the sandbox: the host needs no GRUB, and the
 * images come from the locked packages alone. grub-mkimage writes no
 * time or host detail into either image (checked by tests/t-iso.sh: two
 * runs are byte-identical).
 *
 * Both images embed the same early configuration: find the file system
 * labelled with the ISO's volume id, then read /boot/grub/grub.cfg from
 * it. Everything grub.cfg uses is built into the image, so the ISO needs
 * no module directory. */
#include "image.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_S 120
#define MAX_OUT (64u << 20)

static const char common_mods[] = "iso9660 search search_label configfile normal linux echo "
				  "serial terminal test";

static kb_err *mkimage(const char *root, const char *wd, const char *format, const char *dir,
		       const char *mods, const char *out, int64_t sde)
{
	char *modsdup = kb_asprintf("%s %s", common_mods, mods);
	const char *argv[64] = {"grub-mkimage", "-O", format, "-d", dir, "-p", "/boot/grub",
				"-c", "/cfg/early.cfg", "-o", out};
	size_t n = 11;
	for (char *save = NULL, *m = strtok_r(modsdup, " ", &save); m && n < 63;
	     m = strtok_r(NULL, " ", &save))
		argv[n++] = m;
	argv[n] = NULL;
	char *log = kb_asprintf("%s/log", wd);
	int logfd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char **env = NULL;
	kb_err *err = logfd < 0 ? kb_errno(errno, "cannot write %s", log)
				: kb_sandbox_env(sde, NULL, 0, &env);
	char *cfg = kb_asprintf("%s/cfg", wd), *odir = kb_asprintf("%s/out", wd);
	kb_bind binds[] = {{cfg, "/cfg", 0}, {odir, "/out", 1}};
	kb_sandbox_spec spec = {
		.root = root,
		.argv = argv,
		.env = (const char *const *)env,
		.cwd = "/out",
		.binds = binds,
		.nbinds = 2,
		.timeout_s = TIMEOUT_S,
		.max_output_bytes = MAX_OUT,
		.log_fd = logfd,
		.err_fd = -1,
	};
	int status = 0;
	if (!err) {
		err = kb_sandbox_run(&spec, &status);
		if (err && err->code == KB_SANDBOX_ENOENT) {
			kb_err_free(err);
			err = kb_errf("the GRUB build root has no grub-mkimage; make it from "
				      "grub-common, grub-pc-bin and grub-efi-amd64-bin");
		} else if (!err && status) {
			char tail[1024] = "";
			ssize_t r = pread(logfd, tail, sizeof tail - 1, 0);
			tail[r > 0 ? r : 0] = 0;
			err = kb_errf("grub-mkimage -O %s failed (exit status %d): %s", format, status,
				      tail);
		}
	}
	if (logfd >= 0)
		close(logfd);
	free(env);
	free(cfg);
	free(odir);
	free(log);
	free(modsdup);
	return err;
}

static kb_err *add_file(kb_txn *t, const char *path, kb_hash *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "grub-mkimage wrote no %s", path);
	kb_err *err = kb_txn_add_fd(t, fd, 0, path, out);
	close(fd);
	return err;
}

char *kb_grub_early_cfg(const char *label)
{
	return kb_asprintf("search --no-floppy --set=root --label %s\n"
			   "set prefix=($root)/boot/grub\n"
			   "configfile ($root)/boot/grub/grub.cfg\n",
			   label);
}

kb_err *kb_grub_images(kb_store *s, kb_txn *t, const kb_hash *root, const char *label,
		       int64_t sde, kb_hash *bios, kb_hash *efi)
{
	kb_workdir *w;
	kb_err *err = kb_workdir_new(s, "grub", &w);
	if (err)
		return err;
	const char *wd = kb_workdir_path(w);
	char *rdir = kb_asprintf("%s/root", wd), *cfg = kb_asprintf("%s/cfg", wd);
	char *odir = kb_asprintf("%s/out", wd);
	kb_oid ro = {KB_TREE, *root};
	if ((err = kb_store_checkout(s, &ro, rdir, 0)))
		err = kb_err_wrap(err, "cannot check out the GRUB build root");
	if (!err && (mkdir(cfg, 0755) < 0 || mkdir(odir, 0755) < 0))
		err = kb_errno(errno, "cannot make directories in %s", wd);
	if (!err) {
		char *early = kb_grub_early_cfg(label);
		int cfd = open(cfg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		err = cfd < 0 ? kb_errno(errno, "cannot open %s", cfg)
			      : kb_write_file_atomic(cfd, "early.cfg", early, strlen(early), 0644);
		if (cfd >= 0)
			close(cfd);
		free(early);
	}
	if (!err)
		err = mkimage(rdir, wd, "i386-pc-eltorito", "/usr/lib/grub/i386-pc", "biosdisk",
			      "/out/eltorito.img", sde);
	if (!err && efi)
		err = mkimage(rdir, wd, "x86_64-efi", "/usr/lib/grub/x86_64-efi",
			      "part_gpt part_msdos efi_gop all_video", "/out/bootx64.efi", sde);
	char *p = kb_asprintf("%s/eltorito.img", odir);
	if (!err)
		err = add_file(t, p, bios);
	free(p);
	p = kb_asprintf("%s/bootx64.efi", odir);
	if (!err && efi)
		err = add_file(t, p, efi);
	free(p);
	free(rdir);
	free(cfg);
	free(odir);
	kb_workdir_free(w);
	return err;
}

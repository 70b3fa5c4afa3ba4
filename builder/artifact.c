/* kbuild's own artifact writers as recipe steps: kernel modules signed
 * with a key of the key directory (the private key is used here, outside
 * the sandbox, and never stored), trees packaged as .deb or .rpm; and the
 * kernel checks of module-building steps (the root's headers are for the
 * kernel asked for, before anything compiles; every module built has that
 * kernel's vermagic). */
#include "build.h"
#include "image.h"
#include "key.h"
#include "modsign.h"
#include "pkg.h"
#include "../verify/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kb_err *step_err(const kb_step *st, kb_err *err)
{
	return kb_err_wrap(err, "step '%s' (" KB_POS_FMT ")", st->name, KB_POS_ARGS(st->pos));
}

/* the entry at path (a/b/c) below tree; found=0 when absent */
static kb_err *lookup(kb_store *s, const kb_hash *tree, const char *path, kb_tree_entry *out,
		      int *found)
{
	kb_hash cur = *tree;
	*found = 0;
	kb_err *err = NULL;
	for (const char *p = path; !err && *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		kb_tree t = {0};
		if ((err = kb_store_read_tree(s, &cur, &t)))
			break;
		const kb_tree_entry *hit = NULL;
		for (size_t i = 0; i < t.n && !hit; i++)
			if (t.e[i].namelen == n && !memcmp(t.e[i].name, p, n))
				hit = &t.e[i];
		int last = !slash;
		if (hit && last) {
			*out = *hit;
			out->name = NULL; /* points into t */
			*found = 1;
		}
		int go = hit && !last && hit->type == KB_ENT_DIR;
		if (go)
			cur = hit->hash;
		kb_tree_free(&t);
		if (!go)
			break;
		p = slash + 1;
	}
	return err;
}

/* ---- kernel checks ---- */

kb_err *kb_kernel_headers(kb_store *s, const kb_step *st, const kb_oid *root, const char **kdir)
{
	static const char *const dirs[] = {"usr/src/linux-headers-", "usr/src/kernels/"};
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < 2; i++) {
		char *path = kb_asprintf("%s%s/include/generated/utsrelease.h", dirs[i], st->kernel);
		kb_tree_entry e;
		int found;
		err = lookup(s, &root->hash, path, &e, &found);
		free(path);
		if (err || !found)
			continue;
		kb_buf b = {0};
		if (!(err = kb_store_read(s, &e.hash, 4096, &b))) {
			char *want = kb_asprintf("\"%s\"", st->kernel);
			if (!memmem(b.p, b.len, want, strlen(want)))
				err = kb_errf("the build root's headers in /%s%s are not for kernel %s "
					      "(their utsrelease.h says otherwise)", dirs[i], st->kernel,
					      st->kernel);
			free(want);
		}
		kb_buf_free(&b);
		*kdir = i ? "/usr/src/kernels/" : "/usr/src/linux-headers-";
		return err ? step_err(st, err) : NULL;
	}
	if (err)
		return step_err(st, err);
	/* name what the root has instead */
	kb_buf have = {0};
	kb_tree_entry src;
	int found;
	if (!(err = lookup(s, &root->hash, "usr/src", &src, &found)) && found &&
	    src.type == KB_ENT_DIR) {
		kb_tree t = {0};
		if (!(err = kb_store_read_tree(s, &src.hash, &t)))
			for (size_t i = 0; i < t.n; i++)
				/* the -common halves hold no configured kernel */
				if (t.e[i].namelen > 14 && !memcmp(t.e[i].name, "linux-headers-", 14) &&
				    !(t.e[i].namelen > 21 &&
				      !memcmp(t.e[i].name + t.e[i].namelen - 7, "-common", 7)))
					kb_buf_addf(&have, "%s%.*s", have.len ? ", " : "",
						    (int)t.e[i].namelen - 14, t.e[i].name + 14);
		kb_tree_free(&t);
	}
	if (!err)
		err = kb_errf("build root '%s' has no headers for kernel %s (it has %s); lock the "
			      "headers package of that exact kernel into the buildroot, e.g. "
			      "linux-headers-%s or kernel-devel-%s", st->root, st->kernel,
			      have.len ? have.p : "none", st->kernel, st->kernel);
	kb_buf_free(&have);
	return step_err(st, err);
}

typedef struct {
	kb_store *s;
	const kb_step *st;
	size_t n;
} vmcheck;

/* a .ko below the output says it is for st->kernel */
static kb_err *check_vermagic(void *ctx, const char *path, int depth, const kb_tree_entry *e)
{
	vmcheck *c = ctx;
	(void)depth;
	if (!kb_kmod_is_ko(path, e))
		return NULL;
	kb_kmod km;
	kb_err *err = kb_kmod_read_object(c->s, &e->hash, path, path, &km);
	if (!err && strcmp(km.release, c->st->kernel))
		err = step_err(c->st, kb_errf("module %s has vermagic '%s', not kernel %s", path,
					      km.vermagic, c->st->kernel));
	kb_kmod_free(&km);
	c->n++;
	return err;
}

kb_err *kb_kernel_modules_check(kb_store *s, const kb_step *st, const kb_oid *out)
{
	vmcheck c = {s, st, 0};
	kb_err *err = kb_tree_walk(s, &out->hash, check_vermagic, &c);
	size_t n = c.n;
	if (!err && !n)
		err = step_err(st, kb_errf("it builds for kernel %s but its output holds no .ko "
					   "module", st->kernel));
	if (!err)
		kb_info("step %s: %zu module%s, each for kernel %s", st->name, n, n == 1 ? "" : "s",
			st->kernel);
	return err;
}

/* ---- signing ---- */

typedef struct {
	kb_store *s;
	kb_txn *t;
	const kb_step *st;
	X509 *cert;
	EVP_PKEY *pkey;
	const char *wd;
	size_t signed_;
	const kb_hash *certblob;
} signer;

/* the tree with every .ko signed, and the certificate added at rest (the
 * remaining path below this directory, or NULL) */
static kb_err *sign_tree(signer *g, const kb_hash *tree, const char *prefix, const char *rest,
			 kb_hash *out)
{
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(g->s, tree, &t);
	kb_tree_entry *e = kb_calloc(t.n + 1, sizeof *e);
	size_t n = 0;
	const char *slash = rest ? strchr(rest, '/') : NULL;
	size_t restlen = rest ? (slash ? (size_t)(slash - rest) : strlen(rest)) : 0;
	int placed = 0;
	for (size_t i = 0; !err && i < t.n; i++) {
		e[n] = t.e[i];
		char *path = kb_asprintf("%s%.*s", prefix, (int)e[n].namelen, e[n].name);
		int here = rest && e[n].namelen == restlen && !memcmp(e[n].name, rest, restlen);
		if (e[n].type == KB_ENT_DIR && here && !slash) {
			err = kb_errf("the certificate's path %s%s is a directory in the modules' "
				      "output", prefix, rest);
		} else if (e[n].type == KB_ENT_DIR) {
			char *sub = kb_asprintf("%s/", path);
			err = sign_tree(g, &t.e[i].hash, sub, here && slash ? slash + 1 : NULL,
					&e[n].hash);
			placed |= here && slash;
			free(sub);
		} else if (here) {
			err = kb_errf("the certificate's path %s%s is taken in the modules' output",
				      prefix, rest);
		} else if (e[n].type != KB_ENT_LINK && e[n].namelen > 3 &&
			   !memcmp(e[n].name + e[n].namelen - 3, ".ko", 3)) {
			char *in = kb_asprintf("%s/in.ko", g->wd), *signedp = kb_asprintf("%s/out.ko", g->wd);
			int fd = open(in, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			kb_modsign_opts mo = {.hash = g->st->hash};
			if (fd < 0)
				err = kb_errno(errno, "cannot write %s", in);
			else {
				err = kb_store_cat(g->s, &t.e[i].hash, fd);
				if (close(fd) < 0 && !err)
					err = kb_errno(errno, "cannot write %s", in);
			}
			if (!err && kb_sign_replay) /* kbuild verify: no key, the published signature */
				err = kb_sign_replay(kb_sign_replay_ctx, g->st, path, in, signedp);
			else if (!err)
				err = kb_modsign_sign(in, signedp, 0, g->cert, g->pkey, &mo);
			kb_oid o;
			if (!err && !(err = kb_txn_add_path(g->t, signedp, &o)))
				e[n].hash = o.hash;
			if (err)
				err = kb_err_wrap(err, "%s", path);
			g->signed_++;
			free(in);
			free(signedp);
		}
		free(path);
		n++;
	}
	if (!err && rest && !placed && !slash) {
		e[n++] = (kb_tree_entry){KB_ENT_FILE, *g->certblob, rest, restlen};
		placed = 1;
	} else if (!err && rest && !placed) { /* a directory the output lacks */
		kb_hash empty, sub;
		kb_tree_entry none;
		if (!(err = kb_txn_add_tree(g->t, &none, 0, &empty)) &&
		    !(err = sign_tree(g, &empty, prefix, slash + 1, &sub)))
			e[n++] = (kb_tree_entry){KB_ENT_DIR, sub, rest, restlen};
	}
	if (!err)
		err = kb_txn_add_tree(g->t, e, n, out);
	free(e);
	kb_tree_free(&t);
	return err;
}

kb_err *kb_cert_sha256(const kb_step *st, char hex[KB_HEX_LEN + 1])
{
	X509 *cert = NULL;
	kb_err *err = kb_key_x509(st->key, &cert, NULL);
	if (err)
		return step_err(st, err);
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);
	kb_hash h;
	if (n > 0) {
		kb_sha256(der, (size_t)n, &h);
		kb_hash_hex(&h, hex);
	}
	OPENSSL_free(der);
	X509_free(cert);
	return n > 0 ? NULL : step_err(st, kb_errf("cannot encode key '%s''s certificate", st->key));
}

static kb_err *do_sign(kb_store *s, const kb_step *st, const kb_oid *in, kb_txn *t, kb_oid *out)
{
	signer g = {.s = s, .t = t, .st = st};
	kb_err *err = kb_key_x509(st->key, &g.cert, kb_sign_replay ? NULL : &g.pkey);
	kb_workdir *w = NULL;
	kb_hash certblob;
	if (!err)
		err = kb_workdir_new(s, "sign", &w);
	if (!err && st->certificate) {
		unsigned char *der = NULL;
		int n = i2d_X509(g.cert, &der);
		err = n > 0 ? kb_txn_add_bytes(t, der, (size_t)n, 0, &certblob)
			    : kb_errf("cannot encode key '%s''s certificate", st->key);
		OPENSSL_free(der);
		g.certblob = &certblob;
	}
	if (!err) {
		g.wd = kb_workdir_path(w);
		out->type = KB_TREE;
		err = sign_tree(&g, &in->hash, "", st->certificate, &out->hash);
	}
	if (!err && !g.signed_)
		err = kb_errf("its input holds no .ko module to sign");
	if (!err)
		kb_info("step %s: %zu module%s signed with key '%s' (%s)", st->name, g.signed_,
			g.signed_ == 1 ? "" : "s", st->key, st->hash);
	kb_workdir_free(w);
	X509_free(g.cert);
	EVP_PKEY_free(g.pkey);
	return err;
}

/* ---- packages ---- */

static kb_err *do_package(kb_store *s, const kb_step *st, const kb_oid *in, kb_txn *t,
			  kb_oid *out)
{
	int rpm = st->kind == KB_STEP_RPM;
	kb_pkg_fmt fmt = rpm ? KB_PKG_RPM : KB_PKG_DEB;
	kb_pkg_list list = {0};
	kb_arena *a = kb_arena_new();
	kb_pkg_meta m = {
		.name = st->pkgname, .version = st->version, .release = st->release,
		.arch = st->arch ? st->arch : rpm ? "x86_64" : "amd64",
		.maintainer = st->maintainer, .summary = st->summary,
		.description = st->description, .license = st->license, .url = st->url,
		.section = st->section, .priority = st->priority, .group = st->group,
		.depends = (char **)st->depends, .ndepends = st->ndepends,
		.provides = (char **)st->provides, .nprovides = st->nprovides,
		.conflicts = (char **)st->conflicts, .nconflicts = st->nconflicts,
		.postinst = st->postinst, .postrm = st->postrm, .sde = st->epoch,
	};
	kb_err *err = in->type == KB_TREE ? kb_pkg_walk(s, &in->hash, &list)
					  : kb_errf("its payload '%s' is a file, not a tree",
						    st->inputs[0]);
	kb_buf pub = {0}, sec = {0};
	int64_t created = 0;
	if (!err && st->key && !(err = kb_darksite_key(st, &pub, &sec, &created))) {
		m.sign_key = &sec;
		m.sign_time = st->epoch > created ? st->epoch : created;
	}
	if (!err && st->kmod)
		err = kb_pkg_kmod(&m, fmt, st->kmod, st->pkgname, &list, a);
	if (!err)
		err = kb_pkg_check_meta(&m, fmt);
	kb_hash pkg;
	if (!err)
		err = rpm ? kb_pkg_write_rpm(s, t, &list, &m, &pkg) : kb_pkg_write_deb(s, t, &list, &m, &pkg);
	if (!err) {
		const char *file = rpm ? kb_arena_printf(a, "%s-%s-%s.%s.rpm", m.name, m.version,
							 m.release ? m.release : "1", m.arch)
				       : kb_arena_printf(a, "%s_%s%s%s_%s.deb", m.name, m.version,
							 m.release ? "-" : "", m.release ? m.release : "",
							 m.arch);
		kb_tree_entry e = {KB_ENT_FILE, pkg, file, strlen(file)};
		out->type = KB_TREE;
		err = kb_txn_add_tree(t, &e, 1, &out->hash);
		if (!err)
			kb_info("step %s: %s", st->name, file);
	}
	kb_key_buf_wipe(&sec);
	kb_buf_free(&pub);
	kb_pkg_list_free(&list);
	kb_arena_free(a);
	return err;
}

/* ---- darksites ---- */

typedef struct {
	kb_publish_pkg *v;
	size_t n, cap;
	kb_arena *a;
	const char *step; /* the one being walked, for labels */
} pkgset;

static void add_pkg(pkgset *p, const kb_hash *h, const char *label)
{
	p->v = kb_arena_grow(p->a, p->v, p->n, &p->cap, sizeof *p->v);
	p->v[p->n++] = (kb_publish_pkg){*h, label};
}

/* a .deb or .rpm below a step's output */
static kb_err *tree_pkg(void *ctx, const char *path, int depth, const kb_tree_entry *e)
{
	pkgset *p = ctx;
	size_t len = strlen(path);
	(void)depth;
	if (e->type != KB_ENT_LINK && e->type != KB_ENT_DIR && len > 4 &&
	    (!strcmp(path + len - 4, ".deb") || !strcmp(path + len - 4, ".rpm")))
		add_pkg(p, &e->hash, kb_arena_printf(p->a, "%s/%s", p->step, path));
	return NULL;
}

kb_err *kb_darksite_key(const kb_step *st, kb_buf *pub, kb_buf *sec, int64_t *created)
{
	/* kbuild verify has the public key only: signatures are replayed */
	kb_err *err = kb_key_pgp(st->key, pub, kb_pgp_replay ? NULL : sec);
	char *fpr = NULL, *uid = NULL;
	if (!err)
		err = kb_pgp_key_info(pub, &fpr, &uid, created);
	free(fpr);
	free(uid);
	return err;
}

static kb_err *do_darksite(kb_store *s, const kb_recipe *r, const kb_lock *l, const kb_step *st,
			   const kb_oid *in, kb_txn *t, kb_oid *out)
{
	pkgset p = {.a = kb_arena_new()};
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < st->ninputs; i++) {
		const kb_input *ri = kb_recipe_input(r, st->inputs[i]);
		if (ri && ri->kind == KB_IN_BUILDROOT) { /* its locked closure */
			for (size_t k = 0; !err && k < l->n; k++) {
				const kb_lock_entry *e = &l->e[k];
				const char *h = kb_lock_get(e, "sha256");
				kb_hash hh;
				if (!kb_lock_child(e, ri->name))
					continue;
				if (!h || kb_hash_parse(h, strlen(h), &hh))
					err = kb_errf("%s:%d: package %s has no valid sha256", l->path,
						      e->line, e->name);
				else
					add_pkg(&p, &hh, e->name);
			}
		} else if (in[i].type == KB_BLOB) {
			add_pkg(&p, &in[i].hash, st->inputs[i]);
		} else {
			p.step = st->inputs[i];
			err = kb_tree_walk(s, &in[i].hash, tree_pkg, &p);
		}
	}
	kb_buf pub = {0}, sec = {0};
	int64_t created = 0;
	kb_workdir *w = NULL;
	if (!err && !p.n)
		err = kb_errf("its inputs hold no .deb or .rpm package");
	if (!err)
		err = kb_darksite_key(st, &pub, &sec, &created);
	if (!err)
		err = kb_workdir_new(s, "darksite", &w);
	kb_publish_stats ps = {0};
	if (!err) {
		const char *dir = kb_arena_printf(p.a, "%s/site", kb_workdir_path(w));
		/* a signature may not predate its key: a key made after the epoch
		 * signs at its own creation time, the same every time */
		kb_publish_opts o = {.outdir = dir, .epoch = st->epoch,
				     .sign_time = st->epoch > created ? st->epoch : created,
				     .sec = &sec, .pub = &pub, .keyname = st->key,
				     .origin = st->origin, .label = st->label, .suite = st->suite,
				     .codename = st->codename, .component = st->component};
		if (!(err = kb_publish(s, p.v, p.n, &o, &ps)))
			err = kb_txn_add_path(t, dir, out);
	}
	if (!err)
		kb_info("step %s: %s darksite of %zu packages, signed with key '%s'", st->name,
			ps.format, ps.packages, st->key);
	kb_key_buf_wipe(&sec);
	kb_buf_free(&pub);
	kb_workdir_free(w);
	kb_arena_free(p.a);
	return err;
}

/* ---- bootable images ---- */

static const kb_oid *input_of(const kb_step *st, const kb_oid *in, const char *name)
{
	for (size_t i = 0; name && i < st->ninputs; i++)
		if (!strcmp(st->inputs[i], name))
			return &in[i];
	return NULL;
}

/* commits or aborts t */
static kb_err *do_iso(kb_store *s, const kb_step *st, const kb_oid *in, kb_txn *t, kb_oid *out)
{
	const kb_oid *kernel = input_of(st, in, st->kernel_pkg), *bb = input_of(st, in, st->busybox);
	const kb_oid *grub = input_of(st, in, st->grub), *mods = input_of(st, in, st->modules);
	const kb_oid *site = input_of(st, in, st->darksite);
	if (kernel->type != KB_BLOB || bb->type != KB_BLOB) {
		kb_txn_abort(t);
		return kb_errf("kernel and busybox name package inputs (a .deb or an .rpm each)");
	}
	kb_initramfs_spec sp = {.busybox = bb->hash, .load = st->load, .nload = st->nload};
	if (mods) {
		sp.modules = mods->hash;
		sp.has_modules = 1;
	}
	kb_hash initramfs;
	kb_err *err = kb_initramfs_assemble(s, t, &sp, &initramfs);
	kb_oid io = {KB_TREE, initramfs};
	/* the ISO is written in a transaction of its own: what it reads must
	 * be stored first */
	if (err)
		kb_txn_abort(t);
	else
		err = kb_txn_commit(t, &io, 1);
	if (err)
		return err;
	kb_iso_spec is = {.kernel = kernel->hash, .initramfs = initramfs, .grub_root = grub->hash,
			  .require = st->load, .nrequire = st->nload, .volid = st->volid,
			  .cmdline = st->cmdline, .secure_boot = st->secure_boot,
			  .sde = st->epoch};
	if (site) {
		is.darksite = site->hash;
		is.has_darksite = 1;
	}
	kb_hash iso;
	if (!(err = kb_iso_build(s, &is, &iso))) {
		kb_tree_entry e[] = {{KB_ENT_FILE, iso, "image.iso", 9},
				     {KB_ENT_DIR, initramfs, "initramfs", 9}};
		kb_txn *t2;
		out->type = KB_TREE;
		if (!(err = kb_txn_begin(s, &t2))) {
			if ((err = kb_txn_add_tree(t2, e, 2, &out->hash)))
				kb_txn_abort(t2);
			else
				err = kb_txn_commit(t2, out, 1);
		}
	}
	if (!err)
		kb_info("step %s: image.iso written", st->name);
	return err;
}

kb_err *kb_artifact_exec(kb_store *s, const kb_recipe *r, const kb_lock *l, const kb_step *st,
			 const kb_oid *in, kb_oid *out)
{
	kb_txn *t;
	kb_err *err = kb_txn_begin(s, &t);
	if (err)
		return err;
	if (st->kind == KB_STEP_ISO) /* ends t itself: it needs two transactions */
		return (err = do_iso(s, st, in, t, out)) ? step_err(st, err) : NULL;
	err = st->kind == KB_STEP_SIGN	   ? do_sign(s, st, in, t, out)
	      : st->kind == KB_STEP_DARKSITE ? do_darksite(s, r, l, st, in, t, out)
					     : do_package(s, st, in, t, out);
	if (err) {
		kb_txn_abort(t);
		return step_err(st, err);
	}
	return kb_txn_commit(t, out, 1);
}

/* Assembling an initramfs tree from parts: busybox taken from a .deb
 * (its /bin/busybox, with links for the few applets the init uses), the
 * modules (every .ko of a tree, at its place below lib/modules/KVER/
 * when the tree is laid out so, else below lib/modules/KVER/extra/, with a
 * modules.dep made from their .modinfo depends=), an init written here,
 * and extra files. The init loads the modules with insmod in dependency
 * order (no modprobe, no depmod: the order is computed here, at build
 * time, where a missing dependency is an error rather than a boot that
 * hangs), prints one line on the console naming each module with its
 * state, its signer and its taint, and powers off. The signer is read
 * from the .ko here: the running kernel does not expose it (neither
 * /sys/module nor /proc/modules), and busybox's modinfo does not parse
 * signatures; the taint read at run time shows whether the kernel
 * trusted that signature ('E' when it did not). */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the applets the init calls, as links to busybox */
static const char *const applets[] = {"cat", "insmod", "ls", "mount", "poweroff", "sh"};

/* ---- a small tree being built: nodes with children ---- */
struct node {
	char *name;
	char type; /* d f x l */
	kb_hash hash;
	struct node **kids;
	size_t nkids, cap;
};

static struct node *child(kb_arena *a, struct node *dir, const char *name, size_t len)
{
	for (size_t i = 0; i < dir->nkids; i++)
		if (strlen(dir->kids[i]->name) == len && !memcmp(dir->kids[i]->name, name, len))
			return dir->kids[i];
	struct node *n = kb_arena_alloc(a, sizeof *n);
	n->name = kb_arena_strndup(a, name, len);
	dir->kids = kb_arena_grow(a, dir->kids, dir->nkids, &dir->cap, sizeof *dir->kids);
	dir->kids[dir->nkids++] = n;
	return n;
}

/* puts an entry at a clean path, making its directories */
static kb_err *put(kb_arena *a, struct node *root, const char *path, char type, const kb_hash *h)
{
	if (kb_path_clean(path))
		return kb_errf("initramfs entry '%s' would lie outside the root (give a relative "
			       "path without '.', '..' or empty parts)",
			       path);
	struct node *dir = root;
	for (const char *c = path;;) {
		size_t len = strcspn(c, "/");
		struct node *n = child(a, dir, c, len);
		if (!c[len]) {
			if (n->type && !(n->type == 'd' && type == 'd'))
				return kb_errf("initramfs entry '%s' is given twice", path);
			n->type = type;
			if (h)
				n->hash = *h;
			return NULL;
		}
		if (n->type && n->type != 'd')
			return kb_errf("initramfs entry '%s' would lie below '%.*s', which is not a "
				       "directory",
				       path, (int)(c - path + len), path);
		n->type = 'd';
		dir = n;
		c += len + 1;
	}
}

static kb_err *store_node(kb_txn *t, struct node *n)
{
	if (n->type != 'd')
		return NULL;
	kb_tree_entry *e = kb_calloc(n->nkids ? n->nkids : 1, sizeof *e);
	kb_err *err = NULL;
	for (size_t i = 0; !err && i < n->nkids; i++) {
		struct node *k = n->kids[i];
		err = store_node(t, k);
		e[i] = (kb_tree_entry){(kb_enttype)k->type, k->hash, k->name, strlen(k->name)};
	}
	if (!err)
		err = kb_txn_add_tree(t, e, n->nkids, &n->hash);
	free(e);
	return err;
}

static kb_err *put_bytes(kb_arena *a, kb_txn *t, struct node *root, const char *path, int exec,
			 const char *text)
{
	kb_hash h;
	kb_err *err = kb_txn_add_bytes(t, text, strlen(text), exec, &h);
	return err ? err : put(a, root, path, exec ? 'x' : 'f', &h);
}

/* ---- busybox ---- */
struct bb {
	kb_txn *t;
	kb_hash h;
	int found;
};

static kb_err *bb_entry(void *ctx, kb_pkgfile *d, const char *path, char type, const char *target,
			uint64_t size)
{
	(void)target;
	(void)size;
	struct bb *b = ctx;
	if (b->found || (strcmp(path, "bin/busybox") && strcmp(path, "usr/bin/busybox")))
		return NULL;
	if (type != 'x')
		return kb_errf("busybox package: '%s' is not an executable file", path);
	b->found = 1;
	return kb_pkgfile_store(d, b->t, 1, &b->h);
}

/* ---- modules ---- */
struct mod {
	char *path; /* below lib/modules/KVER */
	kb_hash hash;
	kb_kmod info;
	int state; /* 0 unvisited, 1 visiting, 2 ordered */
};

struct mods {
	struct mod *m;
	size_t n, cap;
	kb_arena *a;
};

struct kos {
	kb_store *s;
	struct mods *ms;
};

/* where a module goes below lib/modules/KVER: a tree laid out as
 * installed (lib/modules/KVER/extra/zfs/zfs.ko, as packages and the sign
 * step have it) keeps its place; anything else goes below extra/ */
static char *mod_path(kb_arena *a, const char *p, const char *kver)
{
	static const char *const roots[] = {"lib/modules/", "usr/lib/modules/"};
	size_t k = strlen(kver);
	for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
		size_t n = strlen(roots[i]);
		if (!strncmp(p, roots[i], n) && !strncmp(p + n, kver, k) && p[n + k] == '/')
			return kb_arena_strdup(a, p + n + k + 1);
	}
	return kb_arena_printf(a, "extra/%s", p);
}

static kb_err *find_ko(void *ctx, const char *p, int depth, const kb_tree_entry *e)
{
	struct kos *c = ctx;
	struct mods *ms = c->ms;
	(void)depth;
	if (!kb_kmod_is_ko(p, e))
		return NULL;
	ms->m = kb_arena_grow(ms->a, ms->m, ms->n, &ms->cap, sizeof *ms->m);
	struct mod *m = &ms->m[ms->n];
	memset(m, 0, sizeof *m);
	m->hash = e->hash;
	char *what = kb_asprintf("module '/%s'", p);
	kb_err *err = kb_kmod_read_object(c->s, &e->hash, p, what, &m->info);
	free(what);
	if (err)
		return err;
	m->path = mod_path(ms->a, p, m->info.release);
	ms->n++;
	return NULL;
}

static struct mod *by_name(struct mods *ms, const char *name)
{
	char *n = kb_strdup(name);
	kb_kmod_norm_name(n);
	struct mod *r = NULL;
	for (size_t i = 0; i < ms->n && !r; i++)
		if (!strcmp(ms->m[i].info.name, n))
			r = &ms->m[i];
	free(n);
	return r;
}

/* depth first: what m depends on, then m */
static kb_err *order(struct mods *ms, struct mod *m, struct mod ***out, size_t *n)
{
	if (m->state == 2)
		return NULL;
	if (m->state == 1)
		return kb_errf("module %s depends on itself (a depends= cycle)", m->info.name);
	m->state = 1;
	kb_err *err = NULL;
	char *deps = kb_strdup(m->info.depends);
	for (char *save = NULL, *d = strtok_r(deps, ",", &save); !err && d;
	     d = strtok_r(NULL, ",", &save)) {
		struct mod *dm = by_name(ms, d);
		if (!dm)
			err = kb_errf("module %s depends on %s, which is not among the modules; add "
				      "it to the module tree",
				      m->info.name, d);
		else
			err = order(ms, dm, out, n);
	}
	free(deps);
	if (!err) {
		(*out)[(*n)++] = m;
		m->state = 2;
	}
	return err;
}

/* 'text' in single quotes for sh, control bytes as '?' */
static void sq(kb_buf *b, const char *s)
{
	kb_buf_addc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			kb_buf_adds(b, "'\\''");
		else
			kb_buf_addc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	}
	kb_buf_addc(b, '\'');
}

static char *init_script(const char *kver, struct mod **load, size_t n)
{
	kb_buf b = {0};
	kb_buf_adds(&b, "#!/bin/sh\n"
			"# written by kbuild initramfs: load the modules, report them on one\n"
			"# console line, power off\n"
			"export PATH=/bin\n"
			"mount -t proc proc /proc\n"
			"mount -t sysfs sysfs /sys\n"
			"mount -t devtmpfs devtmpfs /dev\n"
			"exec </dev/console >/dev/console 2>&1\n"
			"state() { if [ -e /sys/module/$1/initstate ]; then cat /sys/module/$1/initstate; "
			"else echo missing; fi; }\n"
			"taint() { t=$(cat /sys/module/$1/taint 2>/dev/null); echo \"${t:--}\"; }\n");
	for (size_t i = 0; i < n; i++) {
		kb_buf_addf(&b, "insmod /lib/modules/%s/", kver);
		kb_buf_adds(&b, load[i]->path);
		kb_buf_adds(&b, " || echo 'kbuild-init: insmod ");
		kb_buf_adds(&b, load[i]->info.name);
		kb_buf_adds(&b, " failed'\n");
	}
	kb_buf_adds(&b, "line='" KB_INITRAMFS_MARKER "'\n");
	for (size_t i = 0; i < n; i++) {
		const kb_kmod *k = &load[i]->info;
		kb_buf_addf(&b, "line=\"$line %s(state=$(state %s),signer=\\\"\"", k->name,
			    k->name);
		sq(&b, k->signer ? k->signer : "none");
		kb_buf_addf(&b, "\"\\\",hash=%s,taint=$(taint %s))\"\n", k->sig_hash ? k->sig_hash : "none",
			    k->name);
	}
	kb_buf_adds(&b, "echo \"$line\"\n"
			"poweroff -f\n");
	kb_buf_addc(&b, 0);
	return kb_buf_steal(&b);
}

kb_err *kb_initramfs_assemble(kb_store *s, kb_txn *t, const kb_initramfs_spec *sp,
			      kb_hash *tree)
{
	kb_arena *a = kb_arena_new();
	struct node root = {.name = "", .type = 'd'};
	struct mods ms = {.a = a};
	struct mod **load = NULL;
	size_t nload = 0;
	kb_buf dep = {0}, list = {0};
	char *init = NULL;
	const char *kver = sp->kver;
	kb_err *err;

	struct bb bb = {.t = t};
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&sp->busybox, hex);
	char *what = kb_asprintf("busybox package %.12s", hex);
	err = kb_pkgfile_walk(s, &sp->busybox, what, NULL, bb_entry, &bb);
	if (!err && !bb.found)
		err = kb_errf("%s has no bin/busybox; give the busybox-static (or busybox) .deb",
			      what);
	free(what);
	if (!err)
		err = put(a, &root, "bin/busybox", 'x', &bb.h);
	for (size_t i = 0; !err && i < sizeof applets / sizeof *applets; i++) {
		kb_hash h;
		if (!(err = kb_txn_add_bytes(t, "busybox", 7, 0, &h))) {
			char *p = kb_arena_printf(a, "bin/%s", applets[i]);
			err = put(a, &root, p, 'l', &h);
		}
	}
	kb_hash empty;
	if (!err)
		err = kb_txn_add_tree(t, NULL, 0, &empty);
	for (const char *const *d = (const char *const[]){"dev", "proc", "sys", "run", "tmp", NULL};
	     !err && *d; d++)
		err = put(a, &root, *d, 'd', &empty);

	if (!err && sp->has_modules)
		err = kb_tree_walk(s, &sp->modules, find_ko, &(struct kos){s, &ms});
	if (!err && sp->has_modules && ms.n == 0)
		err = kb_errf("the module tree has no .ko file");
	for (size_t i = 0; !err && i < ms.n; i++) {
		const kb_kmod *k = &ms.m[i].info;
		if (k->machine != 62)
			err = kb_errf("module %s (%s) is not for x86-64 (ELF machine %u)", k->name,
				      ms.m[i].path, k->machine);
		else if (!kver)
			kver = k->release;
		else if (strcmp(kver, k->release))
			err = kb_errf("module %s was built for kernel %s, not %s (its vermagic: "
				      "'%s'); build it against the headers of %s",
				      k->name, k->release, kver, k->vermagic, kver);
		for (size_t j = 0; !err && j < i; j++)
			if (!strcmp(ms.m[j].info.name, k->name))
				err = kb_errf("two modules are named %s (%s and %s)", k->name,
					      ms.m[j].path, ms.m[i].path);
	}
	if (!err && ms.n) {
		if (kb_path_clean(kver) || strchr(kver, '/'))
			err = kb_errf("kernel release '%s' cannot be a directory name", kver);
		load = kb_calloc(ms.n, sizeof *load);
		if (sp->nload == 0)
			for (size_t i = 0; !err && i < ms.n; i++)
				err = order(&ms, &ms.m[i], &load, &nload);
		for (size_t i = 0; !err && i < sp->nload; i++) {
			struct mod *m = by_name(&ms, sp->load[i]);
			if (!m)
				err = kb_errf("module %s is to be loaded, but the module tree has no "
					      "module of that name",
					      sp->load[i]);
			else
				err = order(&ms, m, &load, &nload);
		}
	} else if (!err && sp->nload) {
		err = kb_errf("modules to load are named (%s, ...), but no module tree is given",
			      sp->load[0]);
	}
	/* modules.dep: each module, then what it needs, the one loaded last first */
	for (size_t i = 0; !err && i < ms.n; i++) {
		struct mod **o = kb_calloc(ms.n, sizeof *o);
		size_t no = 0;
		for (size_t j = 0; j < ms.n; j++)
			ms.m[j].state = 0;
		err = order(&ms, &ms.m[i], &o, &no);
		kb_buf_addf(&dep, "%s:", ms.m[i].path);
		for (size_t j = no - 1; !err && j-- > 0;)
			kb_buf_addf(&dep, " %s", o[j]->path);
		kb_buf_addc(&dep, '\n');
		free(o);
	}
	for (size_t i = 0; !err && i < ms.n; i++) {
		char *p = kb_arena_printf(a, "lib/modules/%s/%s", kver, ms.m[i].path);
		err = put(a, &root, p, 'f', &ms.m[i].hash);
	}
	for (size_t i = 0; i < nload; i++)
		kb_buf_addf(&list, "%s\n", load[i]->path);
	if (!err && ms.n) {
		kb_buf_addc(&dep, 0);
		err = put_bytes(a, t, &root, kb_arena_printf(a, "lib/modules/%s/modules.dep", kver),
				0, dep.p);
	}
	if (!err) {
		kb_buf_addc(&list, 0);
		err = put_bytes(a, t, &root, KB_INITRAMFS_LOADLIST, 0, list.p);
	}
	if (!err) {
		init = init_script(kver ? kver : "none", load, nload);
		err = put_bytes(a, t, &root, "init", 1, init);
	}
	for (size_t i = 0; !err && i < sp->nadd; i++) {
		int fd = open(sp->add[i].file, O_RDONLY | O_CLOEXEC);
		kb_hash h;
		if (fd < 0) {
			err = kb_errno(errno, "cannot open %s (for initramfs entry '%s')",
				       sp->add[i].file, sp->add[i].path);
			break;
		}
		if (kb_path_clean(sp->add[i].path))
			err = kb_errf("initramfs entry '%s' would lie outside the root (give a "
				      "relative path without '.', '..' or empty parts)",
				      sp->add[i].path);
		else if (!(err = kb_txn_add_fd(t, fd, 0, sp->add[i].file, &h)))
			err = put(a, &root, sp->add[i].path, 'f', &h);
		close(fd);
	}
	if (!err)
		err = store_node(t, &root);
	if (!err)
		*tree = root.hash;
	for (size_t i = 0; i < ms.n; i++)
		kb_kmod_free(&ms.m[i].info);
	free(load);
	free(init);
	kb_buf_free(&dep);
	kb_buf_free(&list);
	kb_arena_free(a);
	return err;
}

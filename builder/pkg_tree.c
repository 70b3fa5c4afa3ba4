/* What both package writers share: the payload read from a store tree
 * and checked, the metadata checks, the kernel-module conventions and a
 * temporary file for compressed members. */
#include "pkg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TARGET_MAX 4095

void kb_pkg_list_free(kb_pkg_list *l)
{
	kb_arena_free(l->a);
	memset(l, 0, sizeof *l);
}

static kb_pkg_ent *add_ent(kb_pkg_list *l)
{
	l->e = kb_arena_grow(l->a, l->e, l->n, &l->cap, sizeof *l->e);
	return &l->e[l->n++];
}

/* a relative target's ".." may climb at most as high as "/" from the
 * link's directory (depth: that directory's number of components) */
static int climbs_out(const char *target, int depth)
{
	if (target[0] == '/')
		return 0;
	for (const char *c = target; *c;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return 1;
		} else if (len && !(len == 1 && c[0] == '.')) {
			depth++;
		}
		c += len + (e != NULL);
	}
	return 0;
}

struct walk {
	kb_store *s;
	kb_pkg_list *l;
};

static kb_err *collect(void *ctx, const char *path, int depth, const kb_tree_entry *te)
{
	struct walk *w = ctx;
	for (size_t k = 0; k < te->namelen; k++)
		if ((unsigned char)te->name[k] < 0x20 || te->name[k] == 0x7f) {
			char *q = kb_quote(path, strlen(path));
			kb_err *err = kb_errf("payload entry '/%s' has a control character in its "
					      "name, which package file lists cannot hold; rename it",
					      q);
			free(q);
			return err;
		}
	kb_pkg_ent *e = add_ent(w->l);
	e->type = (char)te->type;
	e->path = kb_arena_strdup(w->l->a, path);
	e->hash = te->hash;
	kb_err *err = NULL;
	if (te->type == KB_ENT_LINK) {
		kb_buf b = {0};
		if ((err = kb_store_read(w->s, &te->hash, 1u << 16, &b))) {
			err = kb_err_wrap(err, "cannot read the target of symlink '/%s'", path);
		} else if (b.len == 0 || b.len > TARGET_MAX || memchr(b.p, 0, b.len)) {
			err = kb_errf("symlink '/%s' has %s; a package needs a target of 1 to %d "
				      "bytes without NUL",
				      path,
				      b.len == 0	   ? "an empty target"
				      : b.len > TARGET_MAX ? "a target that is too long"
							   : "a NUL byte in its target",
				      TARGET_MAX);
		} else if (climbs_out(b.p, depth)) {
			char *q = kb_quote(b.p, b.len);
			err = kb_errf("symlink '/%s' -> '%s' climbs above '/' of the installed "
				      "system; make the target absolute, or relative from the "
				      "link's directory",
				      path, q);
			free(q);
		} else {
			e->target = kb_arena_strndup(w->l->a, b.p, b.len);
			e->size = b.len;
		}
		kb_buf_free(&b);
	} else if (te->type != KB_ENT_DIR) {
		int fd;
		struct stat st;
		if ((err = kb_store_open_object(w->s, &te->hash, &fd)))
			return kb_err_wrap(err, "cannot open the content of '/%s'", path);
		if (fstat(fd, &st) < 0)
			err = kb_errno(errno, "cannot stat the content of '/%s'", path);
		else if ((uint64_t)st.st_size >= (1ull << 32))
			err = kb_errf("file '/%s' is 4 GiB or more, which a package payload "
				      "cannot hold here",
				      path);
		else
			e->size = (uint64_t)st.st_size;
		close(fd);
	}
	return err;
}

kb_err *kb_pkg_walk(kb_store *s, const kb_hash *tree, kb_pkg_list *out)
{
	memset(out, 0, sizeof *out);
	out->a = kb_arena_new();
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(tree, hex);
	if (!kb_store_has(s, tree)) {
		kb_pkg_list_free(out);
		return kb_errf("payload tree %s is not in the store %s (store the directory "
			       "with 'kbuild store add DIR' and give the hash it prints)",
			       hex, kb_store_path(s));
	}
	kb_pkg_ent *root = add_ent(out);
	root->type = 'd';
	root->path = "";
	root->hash = *tree;
	struct walk w = {s, out};
	kb_err *err = kb_tree_walk(s, tree, collect, &w);
	if (err) {
		kb_pkg_list_free(out);
		return kb_err_wrap(err, "payload tree %s", hex);
	}
	return NULL;
}

int kb_pkg_system_dir(const char *path)
{
	/* what Debian's base-files and EL's filesystem package own, and
	 * lib/modules (the kernel's), as far as module and tool packages
	 * reach */
	static const char *const sys[] = {
		"", "bin", "boot", "etc", "etc/modprobe.d", "etc/modules-load.d", "lib",
		"lib/firmware", "lib/modules", "lib64", "opt", "sbin", "usr", "usr/bin",
		"usr/include", "usr/lib", "usr/lib/firmware", "usr/lib/modules",
		"usr/lib/modprobe.d", "usr/lib/modules-load.d", "usr/lib64", "usr/libexec",
		"usr/local", "usr/sbin", "usr/share", "usr/share/doc", "usr/share/licenses",
		"usr/share/man", "usr/share/man/man1", "usr/share/man/man5",
		"usr/share/man/man8", "usr/src", "var", "var/lib",
	};
	for (size_t i = 0; i < sizeof sys / sizeof *sys; i++)
		if (!strcmp(path, sys[i]))
			return 1;
	return 0;
}

kb_err *kb_pkg_tmpfile(kb_store *s, int *fd)
{
	char *dir = kb_asprintf("%s/tmp", kb_store_path(s));
	kb_err *err = NULL;
	*fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (*fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* no O_TMPFILE on this file system: a named file, unlinked at once */
		char *tmpl = kb_asprintf("%s/pkg-XXXXXX", dir);
		*fd = mkostemp(tmpl, O_CLOEXEC);
		if (*fd >= 0)
			unlink(tmpl);
		free(tmpl);
	}
	if (*fd < 0)
		err = kb_errno(errno, "cannot make a temporary file in %s (is the store writable?)",
			       dir);
	free(dir);
	return err;
}

/* ---- metadata ---- */

static int all_in(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return 0;
	return 1;
}

static int has_ctl(const char *s, int newline_ok)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && !(newline_ok && (*s == '\n' || *s == '\t'))) ||
		    *s == 0x7f)
			return 1;
	return 0;
}

static kb_err *check_line(const char *field, const char *v, int required)
{
	if (!v || !*v)
		return required ? kb_usage("package: --%s is required", field) : NULL;
	if (has_ctl(v, 0))
		return kb_usage("package: --%s must be one line without control characters",
				field);
	return NULL;
}

static kb_err *check_rel(const char *field, const char *v, kb_pkg_fmt fmt)
{
	if (!*v || has_ctl(v, 0))
		return kb_usage("package: --%s '%s' is empty or has control characters", field, v);
	if (fmt == KB_PKG_DEB) {
		if (strchr(v, ','))
			return kb_usage("package: --%s '%s' has a comma; give each relation with "
					"its own --%s",
					field, v, field);
		return NULL;
	}
	/* rpm: NAME [OP EVR] */
	const char *sp = strchr(v, ' ');
	size_t nlen = sp ? (size_t)(sp - v) : strlen(v);
	int ok = nlen > 0;
	for (size_t i = 0; i < nlen; i++)
		if (strchr("<>=\t", v[i]))
			ok = 0;
	if (ok && sp) {
		char op[3] = {0}, evr[256];
		int n = 0;
		if (sscanf(sp, " %2[<>=] %255s %n", op, evr, &n) != 2 || sp[n] ||
		    !(strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 || strcmp(op, "=") == 0 ||
		      strcmp(op, ">=") == 0 || strcmp(op, ">") == 0))
			ok = 0;
	}
	if (!ok)
		return kb_usage("package: --%s '%s' is not 'NAME' or 'NAME OP VERSION' (OP one "
				"of < <= = >= >)",
				field, v);
	return NULL;
}

kb_err *kb_pkg_check_meta(const kb_pkg_meta *m, kb_pkg_fmt fmt)
{
	kb_err *err;
	int deb = fmt == KB_PKG_DEB;
	if (!m->name || !*m->name)
		return kb_usage("package: --name is required");
	if (!m->version || !*m->version)
		return kb_usage("package: --version is required");
	if (deb && (strlen(m->name) < 2 || !all_in(m->name, "+-.") ||
		    !((m->name[0] >= 'a' && m->name[0] <= 'z') ||
		      (m->name[0] >= '0' && m->name[0] <= '9')) ||
		    strpbrk(m->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")))
		return kb_usage("package: name '%s' is not a Debian package name (lowercase "
				"letters, digits, '+', '-', '.'; at least two, starting with a "
				"letter or digit)",
				m->name);
	if (!deb && (!all_in(m->name, "+-._") || m->name[0] == '-'))
		return kb_usage("package: name '%s' is not an rpm package name (letters, "
				"digits, '+', '-', '.', '_')",
				m->name);
	if (deb && (!all_in(m->version, ".+~-:") || m->version[0] < '0' ||
		    m->version[0] > '9' || strchr(m->version, ':') ||
		    (m->release && strchr(m->version, '-'))))
		return kb_usage("package: version '%s' is not a Debian upstream version (starts "
				"with a digit; letters, digits, '.', '+', '~'; '-' only without "
				"--release; the epoch goes in --epoch)",
				m->version);
	if (!deb && !all_in(m->version, ".+~^_"))
		return kb_usage("package: version '%s' is not an rpm version (letters, digits, "
				"'.', '+', '~', '^', '_'; no '-')",
				m->version);
	if (!deb && (!m->release || !*m->release))
		return kb_usage("package: --release is required for an rpm");
	if (m->release && (!*m->release || !all_in(m->release, deb ? ".+~" : ".+~^_")))
		return kb_usage("package: release '%s' has characters a %s release cannot have",
				m->release, deb ? "Debian" : "rpm");
	if (!m->arch || !*m->arch)
		return kb_usage("package: --arch is required (e.g. %s)", deb ? "amd64" : "x86_64");
	if (!all_in(m->arch, deb ? "-" : "_"))
		return kb_usage("package: architecture '%s' has characters an architecture "
				"cannot have",
				m->arch);
	if ((err = check_line("maintainer", m->maintainer, deb)) ||
	    (err = check_line("summary", m->summary, 1)) ||
	    (err = check_line("license", m->license, !deb)) ||
	    (err = check_line("url", m->url, 0)) || (err = check_line("section", m->section, 0)) ||
	    (err = check_line("priority", m->priority, 0)) ||
	    (err = check_line("group", m->group, 0)))
		return err;
	if (m->description && has_ctl(m->description, 1))
		return kb_usage("package: the description has control characters other than "
				"newlines and tabs");
	for (size_t i = 0; i < m->ndepends; i++)
		if ((err = check_rel("depends", m->depends[i], fmt)))
			return err;
	for (size_t i = 0; i < m->nprovides; i++)
		if ((err = check_rel("provides", m->provides[i], fmt)))
			return err;
	for (size_t i = 0; i < m->nconflicts; i++)
		if ((err = check_rel("conflicts", m->conflicts[i], fmt)))
			return err;
	if (m->sde < 0 || m->sde > 0xffffffffll)
		return kb_usage("package: SOURCE_DATE_EPOCH %lld is outside 0..4294967295",
				(long long)m->sde);
	return NULL;
}

/* ---- kernel modules ---- */

static char **push(kb_arena *a, char **arr, size_t *n, char *v)
{
	char **na = kb_arena_alloc(a, (*n + 1) * sizeof *na);
	if (*n)
		memcpy(na, arr, *n * sizeof *na);
	na[(*n)++] = v;
	return na;
}

static const char *script(kb_arena *a, kb_pkg_fmt fmt, const char *kver, int post_install)
{
	/* Debian: postinst runs for "configure", postrm for "remove" (also
	 * for upgrade, purge ...: nothing to do then). rpm: %post and
	 * %postun run on install and erase (and upgrade: harmless). */
	const char *guard = fmt == KB_PKG_RPM ? ""
			    : post_install  ? "[ \"$1\" = configure ] || exit 0\n"
					    : "[ \"$1\" = remove ] || exit 0\n";
	return kb_arena_printf(a,
			       "#!/bin/sh\n"
			       "set -e\n"
			       "%s"
			       "# written by kbuild package --kmod: refresh the module index\n"
			       "if [ -e /boot/System.map-%s ]; then\n"
			       "\tdepmod -a -F /boot/System.map-%s %s || true\n"
			       "elif [ -d /lib/modules/%s ]; then\n"
			       "\tdepmod -a %s || true\n"
			       "fi\n"
			       "exit 0\n",
			       guard, kver, kver, kver, kver, kver);
}

kb_err *kb_pkg_kmod(kb_pkg_meta *m, kb_pkg_fmt fmt, const char *kver, const char *base,
		    const kb_pkg_list *p, kb_arena *a)
{
	if (!kver || !*kver || !all_in(kver, ".+-_~"))
		return kb_usage("package: --kmod '%s' is not a kernel release (like "
				"6.1.0-56-amd64 or 5.14.0-427.13.1.el9_4.x86_64)",
				kver ? kver : "");
	if (!base || !*base)
		return kb_usage("package: --kmod needs --name (the module set, e.g. zfs)");
	char *dir = kb_arena_printf(a, "lib/modules/%s/", kver);
	size_t dlen = strlen(dir), nko = 0;
	for (size_t i = 0; i < p->n; i++) {
		const kb_pkg_ent *e = &p->e[i];
		size_t len = strlen(e->path);
		if (e->type != 'f' && e->type != 'x')
			continue;
		if (strncmp(e->path, dir, dlen) || len < 4 || strcmp(e->path + len - 3, ".ko"))
			continue;
		nko++;
		if (fmt == KB_PKG_RPM) {
			const char *slash = strrchr(e->path, '/');
			m->provides = push(a, m->provides, &m->nprovides,
					   kb_arena_printf(a, "kmod(%s)", slash + 1));
		}
	}
	if (!nko)
		return kb_errf("--kmod %s: the payload has no module (.ko file) below /%s; "
			       "install the modules there (Debian: updates/, EL: extra/%s/)",
			       kver, dir, base);
	if (fmt == KB_PKG_DEB) {
		m->name = kb_arena_printf(a, "%s-modules-%s", base, kver);
		m->depends = push(a, m->depends, &m->ndepends,
				  kb_arena_printf(a, "linux-image-%s", kver));
		m->provides = push(a, m->provides, &m->nprovides,
				   kb_arena_printf(a, "%s-modules", base));
		if (!m->section)
			m->section = "kernel";
	} else {
		m->name = kb_arena_printf(a, "kmod-%s", base);
		m->depends = push(a, m->depends, &m->ndepends,
				  kb_arena_printf(a, "kernel-uname-r = %s", kver));
		if (!m->group)
			m->group = "System Environment/Kernel";
	}
	if (!m->postinst)
		m->postinst = script(a, fmt, kver, 1);
	if (!m->postrm)
		m->postrm = script(a, fmt, kver, 0);
	return NULL;
}

/* Where an upstream's repository is. No recipe names a Debian mirror: the
 * URL comes from --mirror NAME=URL, else the config file
 * ($XDG_CONFIG_HOME/kbuild/config: "mirror NAME URL" lines), else the
 * recipe's own url, else, for apt upstreams, the host's apt sources
 * ($KBUILD_APT_DIR or /etc/apt: sources.list, sources.list.d/ *.list and
 * deb822 *.sources), taking the first deb entry that carries the suite. */
#include "recipe.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct {
	char *name, *url;
} mirror;

static mirror *cli;
static size_t ncli;

kb_err *kb_mirror_add(const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (!eq || eq == spec || !eq[1] || (strncmp(eq + 1, "http://", 7) &&
					    strncmp(eq + 1, "https://", 8) &&
					    strncmp(eq + 1, "file://", 7)))
		return kb_usage("--mirror takes NAME=URL with an http://, https:// or file:// URL, "
				"not '%s'", spec);
	cli = kb_realloc(cli, (ncli + 1) * sizeof *cli);
	cli[ncli++] = (mirror){kb_strndup(spec, (size_t)(eq - spec)), kb_strdup(eq + 1)};
	return NULL;
}

void kb_mirror_clear(void)
{
	for (size_t i = 0; i < ncli; i++) {
		free(cli[i].name);
		free(cli[i].url);
	}
	free(cli);
	cli = NULL;
	ncli = 0;
}

static char *config_path(void)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
	return x && *x ? kb_asprintf("%s/kbuild/config", x)
		       : kb_asprintf("%s/.config/kbuild/config", h && *h ? h : "/");
}

static const char *strip_slash(kb_arena *a, const char *s, size_t n)
{
	while (n > 1 && s[n - 1] == '/')
		n--;
	return kb_arena_strndup(a, s, n);
}

static kb_err *from_config(kb_arena *a, const char *name, const char **url, const char **from)
{
	char *path = config_path();
	kb_buf b = {0};
	kb_err *err = NULL;
	if (access(path, F_OK) == 0 && !(err = kb_read_file(AT_FDCWD, path, 1 << 20, &b))) {
		int line = 0;
		for (char *s = b.p; s && *s;) {
			char *nl = strchr(s, '\n');
			if (nl)
				*nl = 0;
			line++;
			char w[3][1024];
			int n = sscanf(s, "%1023s %1023s %1023s", w[0], w[1], w[2]);
			if (n > 0 && w[0][0] != '#') {
				if (strcmp(w[0], "mirror") || n != 3) {
					err = kb_errf("%s:%d: expected 'mirror NAME URL'", path, line);
					break;
				}
				if (!*url && !strcmp(w[1], name)) {
					*url = strip_slash(a, w[2], strlen(w[2]));
					*from = kb_arena_printf(a, "%s:%d", path, line);
				}
			}
			s = nl ? nl + 1 : NULL;
		}
	}
	kb_buf_free(&b);
	free(path);
	return err;
}

static int has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *s = list; (s = strstr(s, w)); s += n)
		if ((s == list || s[-1] == ' ' || s[-1] == '\t') &&
		    (s[n] == 0 || s[n] == ' ' || s[n] == '\t' || s[n] == '\n'))
			return 1;
	return 0;
}

/* one-line format: deb [options] URI SUITE COMPONENT... */
static void scan_list(kb_arena *a, const char *text, const char *suite, const char **url)
{
	for (const char *s = text; s && *s && !*url;) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		char *line = kb_strndup(s, n);
		char *tok[4] = {0};
		char *p = line, *save;
		int k = 0;
		if (!strncmp(p, "deb ", 4) || !strncmp(p, "deb\t", 4)) {
			p += 4;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '[') { /* options */
				char *e = strchr(p, ']');
				p = e ? e + 1 : p + strlen(p);
			}
			for (char *t = strtok_r(p, " \t", &save); t && k < 4; t = strtok_r(NULL, " \t", &save))
				tok[k++] = t;
			if (k >= 2 && !strcmp(tok[1], suite))
				*url = strip_slash(a, tok[0], strlen(tok[0]));
		}
		free(line);
		s = nl ? nl + 1 : NULL;
	}
}

/* deb822: stanzas of "Field: value" separated by blank lines */
static void scan_sources(kb_arena *a, const char *text, const char *suite, const char **url)
{
	const char *s = text;
	while (*s && !*url) {
		const char *end = strstr(s, "\n\n");
		size_t n = end ? (size_t)(end - s) : strlen(s);
		char *st = kb_strndup(s, n);
		char *types = NULL, *uris = NULL, *suites = NULL;
		int enabled = 1;
		for (char *l = st, *nl; l && *l; l = nl) {
			nl = strchr(l, '\n');
			if (nl)
				*nl++ = 0;
			if (*l == '#')
				continue;
			char *c = strchr(l, ':');
			if (!c)
				continue;
			*c = 0;
			char *v = c + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			if (!strcasecmp(l, "Types"))
				types = v;
			else if (!strcasecmp(l, "URIs"))
				uris = v;
			else if (!strcasecmp(l, "Suites"))
				suites = v;
			else if (!strcasecmp(l, "Enabled"))
				enabled = strcasecmp(v, "no") != 0;
		}
		if (enabled && types && uris && suites && has_word(types, "deb") &&
		    has_word(suites, suite)) {
			size_t ulen = strcspn(uris, " \t");
			*url = strip_slash(a, uris, ulen);
		}
		free(st);
		if (!end)
			break;
		s = end + 2;
	}
}

static int ends_with(const char *s, const char *t)
{
	size_t a = strlen(s), b = strlen(t);
	return a >= b && !strcmp(s + a - b, t);
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static kb_err *from_apt(kb_arena *a, const char *suite, const char **url, const char **from)
{
	const char *etc = getenv("KBUILD_APT_DIR");
	if (!etc || !*etc)
		etc = "/etc/apt";
	char **files = NULL;
	size_t n = 0;
	files = kb_realloc(files, sizeof *files);
	files[n++] = kb_asprintf("%s/sources.list", etc);
	char *dpath = kb_asprintf("%s/sources.list.d", etc);
	DIR *d = opendir(dpath);
	if (d) {
		struct dirent *de;
		char **part = NULL;
		size_t np = 0;
		while ((de = readdir(d)))
			if (ends_with(de->d_name, ".list") || ends_with(de->d_name, ".sources")) {
				part = kb_realloc(part, (np + 1) * sizeof *part);
				part[np++] = kb_asprintf("%s/%s", dpath, de->d_name);
			}
		closedir(d);
		if (np > 1)
			qsort(part, np, sizeof *part, name_cmp); /* apt's own order */
		files = kb_realloc(files, (n + np) * sizeof *files);
		if (np)
			memcpy(files + n, part, np * sizeof *part);
		n += np;
		free(part);
	}
	free(dpath);
	kb_err *err = NULL;
	for (size_t i = 0; i < n; i++) {
		kb_buf b = {0};
		if (!*url && access(files[i], F_OK) == 0 &&
		    !(err = kb_read_file(AT_FDCWD, files[i], 1 << 20, &b))) {
			if (ends_with(files[i], ".sources"))
				scan_sources(a, b.p ? b.p : "", suite, url);
			else
				scan_list(a, b.p ? b.p : "", suite, url);
			if (*url)
				*from = kb_arena_strdup(a, files[i]);
		}
		kb_buf_free(&b);
		if (err) {
			kb_err_free(err); /* an unreadable file is skipped, like apt warns */
			err = NULL;
		}
		free(files[i]);
	}
	free(files);
	return NULL;
}

kb_err *kb_upstream_resolve(kb_arena *a, const kb_upstream *u, const char **url,
			    const char **from)
{
	*url = *from = NULL;
	for (size_t i = 0; i < ncli; i++)
		if (!strcmp(cli[i].name, u->name)) {
			*url = strip_slash(a, cli[i].url, strlen(cli[i].url));
			*from = "--mirror";
		}
	kb_err *err = NULL;
	if (!*url && (err = from_config(a, u->name, url, from)))
		return err;
	if (!*url && u->url) {
		*url = strip_slash(a, u->url, strlen(u->url));
		*from = kb_arena_printf(a, "%s:%d", u->pos.file, u->pos.line);
	}
	if (!*url && !strcmp(u->type, "apt") && (err = from_apt(a, u->suite, url, from)))
		return err;
	if (!*url)
		return kb_pos_err(u->pos, "upstream '%s' has no mirror: %s; pass --mirror %s=URL or "
					  "put 'mirror %s URL' in ~/.config/kbuild/config",
				  u->name,
				  !strcmp(u->type, "apt")
					  ? kb_arena_printf(a, "no deb entry for suite '%s' in the "
							       "host's apt sources", u->suite)
					  : "the recipe gives no url",
				  u->name, u->name);
	return NULL;
}

kb_err *kb_upstream_def_of(kb_store *s, const kb_recipe *r, const kb_upstream *u,
			   kb_upstream_def *d)
{
	memset(d, 0, sizeof *d);
	d->name = u->name;
	d->type = u->type;
	d->suite = u->suite;
	d->components = u->components;
	d->ncomponents = u->ncomponents;
	d->archs = u->archs;
	d->narchs = u->narchs;
	d->require_signature = u->require_signature;
	const char *from;
	kb_err *err = kb_upstream_resolve(r->a, u, &d->url, &from);
	if (err || !u->keyring)
		return err;
	kb_run_opts ro = {0};
	kb_oid key;
	if ((err = kb_input_fetch(s, r, kb_recipe_input(r, u->keyring), &ro, &key)))
		return err;
	d->has_keyring = 1;
	d->keyring = key.hash;
	return NULL;
}

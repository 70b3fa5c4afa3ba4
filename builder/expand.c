/* From syntax to meaning: follow includes, bind variables, expand
 * templates, and check every block against its schema, so that a recipe
 * that loads is one whose inputs are all well formed. */
#include "recipe.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INCLUDE_DEPTH 16
#define MAX_USE_DEPTH 16
#define MAX_FILE (1u << 20)
/* a few lines can otherwise expand into gigabytes: "${a}${a}" doubling,
 * or templates that use each other three times over */
#define MAX_EXPANDED (64u << 10)
#define MAX_USES 10000
#define MAX_INPUTS 100000

/* a value after interpolation */
typedef struct rval {
	kb_vtype type;
	kb_pos pos;
	const char *s;
	long long num;
	struct rval *items;
	size_t n;
} rval;

typedef struct var {
	const char *name;
	kb_pos pos;
	rval v;
} var;

typedef struct scope {
	struct scope *parent;
	var *v;
	size_t n, cap;
} scope;

typedef struct {
	const char *name;
	kb_pos pos;
	const kb_node *node;
} tmpl;

typedef struct {
	kb_recipe *r;
	kb_arena *a;
	size_t insrc_cap, in_cap, up_cap, t_cap;
	tmpl *t;
	size_t nt;
	const char *stack[MAX_INCLUDE_DEPTH + 1]; /* absolute paths being included */
	size_t depth, use_depth, uses;
	kb_hset *names; /* input and step names -> (index + 1) << 1 | is_step */
	size_t step_cap;
} ctx;

const char *kb_inkind_name(kb_inkind k)
{
	static const char *const n[] = {"url", "git", "file", "key", "package", "buildroot"};
	return n[k];
}

/* ---- values ---- */

static const var *lookup(const scope *sc, const char *name)
{
	for (; sc; sc = sc->parent)
		for (size_t i = 0; i < sc->n; i++)
			if (!strcmp(sc->v[i].name, name))
				return &sc->v[i];
	return NULL;
}

static kb_err *eval(ctx *c, const scope *sc, const kb_val *v, rval *out)
{
	memset(out, 0, sizeof *out);
	out->type = v->type;
	out->pos = v->pos;
	out->num = v->num;
	if (v->type == KB_V_STR) {
		kb_buf b = {0};
		for (size_t i = 0; i < v->nsegs; i++) {
			const kb_seg *s = &v->segs[i];
			if (!s->is_var) {
				kb_buf_add(&b, s->text, s->len);
				continue;
			}
			const var *x = lookup(sc, s->text);
			if (!x) {
				kb_buf_free(&b);
				return kb_pos_err(s->pos, "'%s' is not defined here; define it with "
							  "let %s = \"...\" (or as a template param)",
						  s->text, s->text);
			}
			if (x->v.type == KB_V_STR)
				kb_buf_adds(&b, x->v.s);
			else if (x->v.type == KB_V_NUM)
				kb_buf_addf(&b, "%lld", x->v.num);
			else {
				kb_buf_free(&b);
				return kb_pos_err(s->pos, "'%s' is a %s and cannot go inside a string",
						  s->text, x->v.type == KB_V_LIST ? "list" : "boolean");
			}
			if (b.len > MAX_EXPANDED) {
				kb_buf_free(&b);
				return kb_pos_err(v->pos, "this string grows beyond %u bytes once its "
							  "variables are filled in", MAX_EXPANDED);
			}
		}
		out->s = kb_arena_strndup(c->a, b.p ? b.p : "", b.len);
		kb_buf_free(&b);
	} else if (v->type == KB_V_LIST) {
		out->n = v->nitems;
		out->items = kb_arena_alloc(c->a, v->nitems * sizeof *out->items);
		for (size_t i = 0; i < v->nitems; i++) {
			kb_err *err = eval(c, sc, &v->items[i], &out->items[i]);
			if (err)
				return err;
		}
	}
	return NULL;
}

static kb_err *bind(ctx *c, scope *sc, const char *name, kb_pos pos, const rval *v)
{
	for (size_t i = 0; i < sc->n; i++)
		if (!strcmp(sc->v[i].name, name))
			return kb_pos_err(pos, "'%s' is already defined at %s:%d:%d", name,
					  sc->v[i].pos.file, sc->v[i].pos.line, sc->v[i].pos.col);
	sc->v = kb_arena_grow(c->a, sc->v, sc->n, &sc->cap, sizeof *sc->v);
	sc->v[sc->n++] = (var){name, pos, *v};
	return NULL;
}

/* ---- schemas ---- */

typedef struct {
	const char *key;
	kb_vtype type;
	int required;
	const char *example;
} keyspec;

static const keyspec url_keys[] = {
	{"url", KB_V_STR, 1, "\"https://example.org/file.tar.gz\""},
	{"sha256", KB_V_STR, 1, "\"<the file's sha256: 64 lowercase hex digits>\""},
	{"size", KB_V_NUM, 0, "12345"},
	{0}};
static const keyspec git_keys[] = {
	{"url", KB_V_STR, 1, "\"https://example.org/repo.git\""},
	{"commit", KB_V_STR, 1, "\"<the full 40-digit commit id>\""},
	{0}};
static const keyspec file_keys[] = {{"path", KB_V_STR, 1, "\"relative/to/this/file\""}, {0}};
static const keyspec key_keys[] = {
	{"path", KB_V_STR, 0, "\"keys/signing-key.asc\""},
	{"url", KB_V_STR, 0, "\"https://example.org/key.asc\""},
	{"sha256", KB_V_STR, 0, "\"<64 lowercase hex digits>\""},
	{"fingerprint", KB_V_STR, 0, "\"<the OpenPGP key's 40 hex digits>\""},
	{0}};
static const keyspec package_keys[] = {
	{"upstream", KB_V_STR, 1, "\"debian\""},
	{"name", KB_V_STR, 1, "\"linux-headers-amd64\""},
	{"arch", KB_V_STR, 0, "\"amd64\""},
	{"version", KB_V_STR, 0, "\"6.1.106-3\""},
	{0}};
static const keyspec upstream_keys[] = {
	{"type", KB_V_STR, 1, "\"apt\" or \"rpm-md\""},
	{"url", KB_V_STR, 0, "\"https://mirror.example.org/rocky/9\""},
	{"suite", KB_V_STR, 0, "\"bookworm\""},
	{"components", KB_V_LIST, 0, "[\"main\", \"contrib\"]"},
	{"architectures", KB_V_LIST, 0, "[\"amd64\"]"},
	{"keyring", KB_V_STR, 0, "\"name-of-a-key-input\""},
	{"require_signature", KB_V_BOOL, 0, "true"},
	{0}};

static const keyspec buildroot_keys[] = {
	{"upstreams", KB_V_LIST, 1, "[\"bookworm\", \"bookworm-security\"]"},
	{"packages", KB_V_LIST, 1, "[\"build-essential\"]"},
	{"essential", KB_V_BOOL, 0, "true"},
	{0}};
static const keyspec step_keys[] = {
	{"root", KB_V_STR, 1, "\"<a buildroot>\""},
	{"inputs", KB_V_LIST, 0, "[\"src\", \"<another step>\"]"},
	{"command", KB_V_LIST, 0, "[\"make\", \"-C\", \"/inputs/src\"]"},
	{"script", KB_V_STR, 0, "\"make -C /inputs/src && cp hello /out/\""},
	{"env", KB_V_LIST, 0, "[\"CFLAGS=-O2\"]"},
	{"source_date_epoch", KB_V_NUM, 1, "1700000000"},
	{"timeout", KB_V_NUM, 0, "3600"},
	{"max_output", KB_V_NUM, 0, "4294967296"},
	{"kernel", KB_V_STR, 0, "\"6.1.0-26-amd64\""},
	{0}};
static const keyspec sign_keys[] = {
	{"modules", KB_V_STR, 1, "\"<a step whose output holds .ko files>\""},
	{"key", KB_V_STR, 1, "\"<an X.509 key of the key directory: kbuild key new NAME>\""},
	{"hash", KB_V_STR, 0, "\"sha256\""},
	{"certificate", KB_V_STR, 0, "\"usr/share/kbuild/mok.der\""},
	{0}};
static const keyspec darksite_keys[] = {
	{"packages", KB_V_LIST, 1, "[\"<steps making packages, package inputs, buildroots>\"]"},
	{"key", KB_V_STR, 1, "\"<an OpenPGP key of the key directory: kbuild key new --openpgp NAME>\""},
	{"source_date_epoch", KB_V_NUM, 1, "1700000000"},
	{"suite", KB_V_STR, 0, "\"stable\""},
	{"codename", KB_V_STR, 0, "\"bookworm\""},
	{"component", KB_V_STR, 0, "\"main\""},
	{"origin", KB_V_STR, 0, "\"kbuild\""},
	{"label", KB_V_STR, 0, "\"kbuild\""},
	{0}};
static const keyspec iso_keys[] = {
	{"kernel", KB_V_STR, 1, "\"<a package input: linux-image-KVER or kernel-core>\""},
	{"busybox", KB_V_STR, 1, "\"<a package input: busybox-static>\""},
	{"grub", KB_V_STR, 1, "\"<a buildroot of grub-common, grub-pc-bin, grub-efi-amd64-bin>\""},
	{"source_date_epoch", KB_V_NUM, 1, "1700000000"},
	{"modules", KB_V_STR, 0, "\"<a step whose output holds the signed modules>\""},
	{"load", KB_V_LIST, 0, "[\"zfs\"]"},
	{"darksite", KB_V_STR, 0, "\"<a darksite step>\""},
	{"volid", KB_V_STR, 0, "\"KBUILD\""},
	{"cmdline", KB_V_STR, 0, "\"quiet\""},
	{"secure_boot", KB_V_BOOL, 0, "true"},
	{0}};
static const keyspec pkg_keys[] = {
	{"tree", KB_V_STR, 1, "\"<a step whose output is the payload>\""},
	{"name", KB_V_STR, 1, "\"zfs\""},
	{"version", KB_V_STR, 1, "\"2.1.11\""},
	{"source_date_epoch", KB_V_NUM, 1, "1700000000"},
	{"release", KB_V_STR, 0, "\"1\""},
	{"arch", KB_V_STR, 0, "\"amd64\""},
	{"maintainer", KB_V_STR, 0, "\"Name <mail@example.org>\""},
	{"summary", KB_V_STR, 0, "\"one line\""},
	{"description", KB_V_STR, 0, "\"more text\""},
	{"license", KB_V_STR, 0, "\"CDDL\""},
	{"url", KB_V_STR, 0, "\"https://example.org\""},
	{"section", KB_V_STR, 0, "\"kernel\""},
	{"priority", KB_V_STR, 0, "\"optional\""},
	{"group", KB_V_STR, 0, "\"System Environment/Kernel\""},
	{"kmod", KB_V_STR, 0, "\"<a kernel release: the kernel-module package conventions>\""},
	{"postinst", KB_V_STR, 0, "\"#!/bin/sh\\n...\""},
	{"postrm", KB_V_STR, 0, "\"#!/bin/sh\\n...\""},
	{"depends", KB_V_LIST, 0, "[\"libc6 (>= 2.36)\"]"},
	{"provides", KB_V_LIST, 0, "[\"zfs-modules\"]"},
	{"conflicts", KB_V_LIST, 0, "[\"zfs-dkms\"]"},
	{"key", KB_V_STR, 0, "\"<rpm: an OpenPGP key of the key directory that signs it>\""},
	{0}};

#define STEP_TIMEOUT 3600
#define STEP_MAX_OUTPUT (16ull << 30)

static const char *const block_kinds[] = {"upstream", "url",	  "git", "file", "key",
					  "package",  "buildroot", "step", "sign", "deb", "rpm",
					  "darksite", "iso", "template", "use", NULL};

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 99;
	size_t d[33][33];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* " (did you mean 'x'?)" or "" */
static const char *suggest(kb_arena *a, const char *word, const char *const *cands, size_t stride)
{
	const char *best = NULL;
	size_t bd = 3;
	for (const char *const *c = cands; *c; c = (const char *const *)((const char *)c + stride)) {
		size_t d = edit_distance(word, *c);
		if (d < bd) {
			bd = d;
			best = *c;
		}
	}
	return best ? kb_arena_printf(a, "; did you mean '%s'?", best) : "";
}

static const char *type_word(kb_vtype t)
{
	return t == KB_V_STR ? "a \"string\"" : t == KB_V_NUM ? "a number"
		: t == KB_V_BOOL ? "true or false" : "a [list]";
}

/* evaluated attributes of one block, indexed like its keyspec */
typedef struct {
	rval v[24];
	int set[24];
	kb_pos pos[24];
} attrs;

static kb_err *check_block(ctx *c, const scope *sc, const kb_node *b, const char *what,
			   const keyspec *keys, attrs *at)
{
	memset(at, 0, sizeof *at);
	for (size_t i = 0; i < b->nkids; i++) {
		const kb_node *k = &b->kids[i];
		if (k->type != KB_N_ATTR)
			return kb_pos_err(k->pos, "a %s holds only 'key = value' lines; move '%s' out "
						  "of it", what, k->word);
		size_t j = 0;
		while (keys[j].key && strcmp(keys[j].key, k->word))
			j++;
		if (!keys[j].key) {
			kb_buf known = {0};
			for (size_t m = 0; keys[m].key; m++)
				kb_buf_addf(&known, "%s%s", m ? ", " : "", keys[m].key);
			kb_err *err = kb_pos_err(k->pos, "unknown key '%s' in %s%s (keys: %s)", k->word,
						 what, suggest(c->a, k->word, &keys[0].key, sizeof *keys),
						 known.p);
			kb_buf_free(&known);
			return err;
		}
		if (at->set[j])
			return kb_pos_err(k->pos, "'%s' is set twice in %s (first at line %d)", k->word,
					  what, at->pos[j].line);
		kb_err *err = eval(c, sc, k->val, &at->v[j]);
		if (err)
			return err;
		if (keys[j].type == KB_V_NUM && at->v[j].type == KB_V_STR && *at->v[j].s &&
		    strlen(at->v[j].s) <= 18 && strspn(at->v[j].s, "0123456789") == strlen(at->v[j].s)) {
			/* a number through a variable: "${epoch}" */
			at->v[j].num = strtoll(at->v[j].s, NULL, 10);
			at->v[j].type = KB_V_NUM;
		}
		if (at->v[j].type != keys[j].type)
			return kb_pos_err(k->val->pos, "'%s' takes %s, like %s = %s", k->word,
					  type_word(keys[j].type), k->word, keys[j].example);
		if (keys[j].type == KB_V_LIST)
			for (size_t m = 0; m < at->v[j].n; m++)
				if (at->v[j].items[m].type != KB_V_STR)
					return kb_pos_err(at->v[j].items[m].pos,
							  "'%s' is a list of strings, like %s = %s",
							  k->word, k->word, keys[j].example);
		at->set[j] = 1;
		at->pos[j] = k->pos;
	}
	for (size_t j = 0; keys[j].key; j++)
		if (keys[j].required && !at->set[j])
			return kb_pos_err(b->pos, "%s needs %s = %s", what, keys[j].key,
					  keys[j].example);
	return NULL;
}

static int valid_name(const char *s)
{
	if (!*s || strlen(s) > 128 || *s == '.' || *s == '-')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("._+-", *s)))
			return 0;
	return 1;
}

static int is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static const char *str_at(const attrs *at, int j) { return at->set[j] ? at->v[j].s : NULL; }

/* a path in the repository: relative, and lexically inside root */
static kb_err *repo_path(ctx *c, const char *path, kb_pos pos, const char *basedir,
			 const char **out)
{
	if (!*path || path[0] == '/')
		return kb_pos_err(pos, "write a path relative to this file, not '%s'", path);
	char *joined = kb_asprintf("%s/%s", basedir, path);
	char *abs = kb_abspath(joined);
	free(joined);
	size_t rl = strlen(c->r->root);
	int inside = !strncmp(abs, c->r->root, rl) && (abs[rl] == '/' || abs[rl] == 0);
	if (!inside) {
		kb_err *err = kb_pos_err(pos, "path '%s' leaves the repository %s; keep inputs "
					      "inside it", path, c->r->root);
		free(abs);
		return err;
	}
	*out = kb_arena_strdup(c->a, abs);
	free(abs);
	return NULL;
}

/* inputs and steps share one name space: a step names either */
static kb_err *claim_name(ctx *c, const kb_node *b, const char *name, void ***slot)
{
	kb_hash key;
	kb_sha256(name, strlen(name), &key);
	*slot = kb_hset_slot(c->names, &key);
	if (!**slot)
		return NULL;
	uintptr_t v = (uintptr_t)**slot;
	kb_pos o = v & 1 ? c->r->steps[(v >> 1) - 1].pos : c->r->in[(v >> 1) - 1].pos;
	return kb_pos_err(b->pos, "'%s' is already defined at " KB_POS_FMT "; give this one "
				  "another name",
			  name, KB_POS_ARGS(o));
}

static const char **strlist(ctx *c, const attrs *at, int j, size_t *n);

static kb_err *add_input(ctx *c, const scope *sc, const kb_node *b, const char *name,
			 kb_inkind kind, const char *basedir)
{
	static const keyspec *const specs[] = {url_keys, git_keys, file_keys, key_keys,
					       package_keys, buildroot_keys};
	const char *what = kb_arena_printf(c->a, "%s input '%s'", kb_inkind_name(kind), name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, specs[kind], &at);
	if (err)
		return err;
	kb_input in = {.kind = kind, .name = name, .pos = b->pos};
	switch (kind) {
	case KB_IN_URL:
	case KB_IN_KEY:
		in.url = str_at(&at, kind == KB_IN_URL ? 0 : 1);
		if (kind == KB_IN_KEY) {
			in.path = str_at(&at, 0);
			if (!in.path == !in.url)
				return kb_pos_err(b->pos, "%s needs either path = \"keys/file.asc\" or "
							  "url = \"https://...\" with sha256 = \"...\"",
						  what);
			if (in.url && !at.set[2] && !at.set[3])
				return kb_pos_err(b->pos, "%s comes from a URL, so it needs sha256 = "
							  "\"<64 lowercase hex digits>\" or (OpenPGP) "
							  "fingerprint = \"<40 hex digits>\"", what);
			if (at.set[3]) {
				/* as vendors print it: spaces allowed, any case */
				char *f = kb_arena_alloc(c->a, strlen(at.v[3].s) + 1), *o = f;
				for (const char *p = at.v[3].s; *p; p++)
					if (*p != ' ')
						*o++ = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
				*o = 0;
				if (strlen(f) != 40 || strspn(f, "0123456789ABCDEF") != 40)
					return kb_pos_err(at.v[3].pos, "%s: fingerprint is 40 hex digits, not "
								       "'%s'", what, at.v[3].s);
				if (!in.url)
					return kb_pos_err(at.v[3].pos, "%s: fingerprint is for keys fetched "
								       "from a url", what);
				in.fingerprint = f;
			}
		}
		if (in.url && strncmp(in.url, "https://", 8) && strncmp(in.url, "http://", 7))
			return kb_pos_err(at.pos[kind == KB_IN_URL ? 0 : 1],
					  "%s: url must start with https:// or http://", what);
		{
			int j = kind == KB_IN_URL ? 1 : 2;
			if (at.set[j]) {
				if (kb_hash_parse(at.v[j].s, strlen(at.v[j].s), &in.sha256))
					return kb_pos_err(at.v[j].pos, "sha256 must be 64 lowercase hex "
								       "digits, not '%s'", at.v[j].s);
				in.has_sha256 = 1;
			}
		}
		if (kind == KB_IN_URL && at.set[2]) {
			if (at.v[2].num < 0)
				return kb_pos_err(at.v[2].pos, "size cannot be negative");
			in.size = (uint64_t)at.v[2].num;
			in.has_size = 1;
		}
		break;
	case KB_IN_GIT:
		in.url = str_at(&at, 0);
		in.commit = str_at(&at, 1);
		if (!is_hex(in.commit, 40))
			return kb_pos_err(at.v[1].pos, "commit must be the full 40-digit commit id, not "
						       "'%s'%s; find it with git ls-remote", in.commit,
					  is_hex(in.commit, strlen(in.commit)) ? " (an abbreviated id)"
									       : " (a tag or branch name?)");
		break;
	case KB_IN_FILE:
		in.path = str_at(&at, 0);
		break;
	case KB_IN_PACKAGE:
		in.upstream = str_at(&at, 0);
		in.pkgname = str_at(&at, 1);
		in.arch = str_at(&at, 2);
		in.version = str_at(&at, 3);
		break;
	case KB_IN_BUILDROOT:
		in.upstreams = strlist(c, &at, 0, &in.nupstreams);
		in.pkgs = strlist(c, &at, 1, &in.npkgs);
		in.essential = at.set[2] ? (int)at.v[2].num : 1;
		if (!in.nupstreams || !in.npkgs)
			return kb_pos_err(b->pos, "%s needs at least one upstream and one package", what);
		for (size_t i = 0; i < in.npkgs; i++)
			if (!*in.pkgs[i] || strpbrk(in.pkgs[i], " \t/"))
				return kb_pos_err(at.v[1].items[i].pos, "'%s' is not a package name",
						  in.pkgs[i]);
		break;
	}
	if (in.path && (err = repo_path(c, in.path, at.pos[0], basedir, &in.abspath)))
		return err;
	void **slot;
	if ((err = claim_name(c, b, name, &slot)))
		return err;
	if (c->r->nin == MAX_INPUTS)
		return kb_pos_err(b->pos, "more than %d inputs", MAX_INPUTS);
	*slot = (void *)(uintptr_t)((c->r->nin + 1) << 1);
	c->r->in = kb_arena_grow(c->a, c->r->in, c->r->nin, &c->in_cap, sizeof *c->r->in);
	c->r->in[c->r->nin++] = in;
	return NULL;
}

static kb_err *push_step(ctx *c, const kb_node *b, const kb_step *st);

static kb_err *add_step(ctx *c, const scope *sc, const kb_node *b, const char *name)
{
	const char *what = kb_arena_printf(c->a, "step '%s'", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, step_keys, &at);
	if (err)
		return err;
	kb_step st = {.kind = KB_STEP_RUN, .name = name, .pos = b->pos, .root = at.v[0].s,
		      .root_pos = at.v[0].pos, .epoch = at.v[5].num, .kernel = str_at(&at, 8),
		      .timeout_s = at.set[6] ? (long)at.v[6].num : STEP_TIMEOUT,
		      .max_output = at.set[7] ? (uint64_t)at.v[7].num : STEP_MAX_OUTPUT};
	st.inputs = strlist(c, &at, 1, &st.ninputs);
	st.input_pos = kb_arena_alloc(c->a, (st.ninputs + 1) * sizeof *st.input_pos);
	for (size_t i = 0; i < st.ninputs; i++) {
		st.input_pos[i] = at.v[1].items[i].pos;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(st.inputs[i], st.inputs[j]))
				return kb_pos_err(st.input_pos[i], "%s names input '%s' twice", what,
						  st.inputs[i]);
	}
	if (at.set[2] == at.set[3])
		return kb_pos_err(b->pos, "%s needs either command = [\"prog\", \"arg\"] or script = "
					  "\"shell commands\" (not both)", what);
	if (at.set[2]) {
		size_t n;
		const char **l = strlist(c, &at, 2, &n);
		if (!n || !*l[0])
			return kb_pos_err(at.v[2].pos, "%s: command needs at least the program", what);
		st.argv = kb_arena_alloc(c->a, (n + 1) * sizeof *st.argv);
		memcpy(st.argv, l, n * sizeof *l);
		st.argc = n;
	} else {
		/* -e: a failing command fails the step; -u: so does a typo'd variable */
		st.argv = kb_arena_alloc(c->a, 4 * sizeof *st.argv);
		st.argv[0] = "/bin/sh";
		st.argv[1] = "-euc";
		st.argv[2] = at.v[3].s;
		st.argc = 3;
	}
	st.env = strlist(c, &at, 4, &st.nenv);
	for (size_t i = 0; i < st.nenv; i++) {
		const char *eq = strchr(st.env[i], '=');
		if (!eq || eq == st.env[i])
			return kb_pos_err(at.v[4].items[i].pos, "%s: env entries are \"NAME=value\", "
								"not '%s'", what, st.env[i]);
	}
	if (st.epoch < 0 || st.timeout_s <= 0)
		return kb_pos_err(b->pos, "%s: source_date_epoch must be >= 0 and timeout > 0", what);
	return push_step(c, b, &st);
}

/* one input, at the position of the key that names it */
static void one_input(ctx *c, kb_step *st, const rval *v)
{
	st->inputs = kb_arena_alloc(c->a, sizeof *st->inputs);
	st->input_pos = kb_arena_alloc(c->a, sizeof *st->input_pos);
	st->inputs[0] = v->s;
	st->input_pos[0] = v->pos;
	st->ninputs = 1;
}

static kb_err *add_sign(ctx *c, const scope *sc, const kb_node *b, const char *name)
{
	const char *what = kb_arena_printf(c->a, "sign '%s'", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, sign_keys, &at);
	if (err)
		return err;
	kb_step st = {.kind = KB_STEP_SIGN, .name = name, .pos = b->pos, .key = at.v[1].s,
		      .hash = at.set[2] ? at.v[2].s : "sha256", .certificate = str_at(&at, 3)};
	one_input(c, &st, &at.v[0]);
	if (strcmp(st.hash, "sha256") && strcmp(st.hash, "sha384") && strcmp(st.hash, "sha512"))
		return kb_pos_err(at.v[2].pos, "%s: hash is \"sha256\", \"sha384\" or \"sha512\"", what);
	if (st.certificate && (!*st.certificate || st.certificate[0] == '/' ||
			       strstr(st.certificate, "..") || st.certificate[strlen(st.certificate) - 1] == '/'))
		return kb_pos_err(at.v[3].pos, "%s: certificate is a relative path in the output, "
					       "like \"usr/share/kbuild/mok.der\"", what);
	return push_step(c, b, &st);
}

static kb_err *add_pkg(ctx *c, const scope *sc, const kb_node *b, const char *name, int rpm)
{
	const char *what = kb_arena_printf(c->a, "%s '%s'", rpm ? "rpm" : "deb", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, pkg_keys, &at);
	if (err)
		return err;
	kb_step st = {.kind = rpm ? KB_STEP_RPM : KB_STEP_DEB, .name = name, .pos = b->pos,
		      .pkgname = at.v[1].s, .version = at.v[2].s, .epoch = at.v[3].num,
		      .release = str_at(&at, 4), .arch = str_at(&at, 5),
		      .maintainer = str_at(&at, 6), .summary = str_at(&at, 7),
		      .description = str_at(&at, 8), .license = str_at(&at, 9),
		      .url = str_at(&at, 10), .section = str_at(&at, 11),
		      .priority = str_at(&at, 12), .group = str_at(&at, 13), .kmod = str_at(&at, 14),
		      .postinst = str_at(&at, 15), .postrm = str_at(&at, 16)};
	one_input(c, &st, &at.v[0]);
	st.depends = strlist(c, &at, 17, &st.ndepends);
	st.provides = strlist(c, &at, 18, &st.nprovides);
	st.conflicts = strlist(c, &at, 19, &st.nconflicts);
	st.key = str_at(&at, 20);
	if (st.key && !rpm)
		return kb_pos_err(at.v[20].pos, "%s: key signs .rpm packages; a .deb is trusted "
						"through the darksite that holds it", what);
	if (st.epoch < 0)
		return kb_pos_err(b->pos, "%s: source_date_epoch must be >= 0", what);
	return push_step(c, b, &st);
}

static kb_err *add_darksite(ctx *c, const scope *sc, const kb_node *b, const char *name)
{
	const char *what = kb_arena_printf(c->a, "darksite '%s'", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, darksite_keys, &at);
	if (err)
		return err;
	kb_step st = {.kind = KB_STEP_DARKSITE, .name = name, .pos = b->pos, .key = at.v[1].s,
		      .epoch = at.v[2].num, .suite = str_at(&at, 3), .codename = str_at(&at, 4),
		      .component = str_at(&at, 5), .origin = str_at(&at, 6), .label = str_at(&at, 7)};
	st.inputs = strlist(c, &at, 0, &st.ninputs);
	st.input_pos = kb_arena_alloc(c->a, (st.ninputs + 1) * sizeof *st.input_pos);
	for (size_t i = 0; i < st.ninputs; i++)
		st.input_pos[i] = at.v[0].items[i].pos;
	if (!st.ninputs)
		return kb_pos_err(b->pos, "%s publishes nothing: name its packages", what);
	return push_step(c, b, &st);
}

static kb_err *add_iso(ctx *c, const scope *sc, const kb_node *b, const char *name)
{
	const char *what = kb_arena_printf(c->a, "iso '%s'", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, iso_keys, &at);
	if (err)
		return err;
	kb_step st = {.kind = KB_STEP_ISO, .name = name, .pos = b->pos, .kernel_pkg = at.v[0].s,
		      .busybox = at.v[1].s, .grub = at.v[2].s, .epoch = at.v[3].num,
		      .modules = str_at(&at, 4), .darksite = str_at(&at, 6), .volid = str_at(&at, 7),
		      .cmdline = str_at(&at, 8), .secure_boot = at.set[9] && at.v[9].num};
	st.load = strlist(c, &at, 5, &st.nload);
	static const int keys[] = {0, 1, 2, 4, 6};
	st.inputs = kb_arena_alloc(c->a, 5 * sizeof *st.inputs);
	st.input_pos = kb_arena_alloc(c->a, 5 * sizeof *st.input_pos);
	for (size_t i = 0; i < 5; i++)
		if (at.set[keys[i]]) {
			st.inputs[st.ninputs] = at.v[keys[i]].s;
			st.input_pos[st.ninputs++] = at.v[keys[i]].pos;
		}
	return push_step(c, b, &st);
}

static kb_err *push_step(ctx *c, const kb_node *b, const kb_step *st)
{
	void **slot;
	kb_err *err = claim_name(c, b, st->name, &slot);
	if (err)
		return err;
	*slot = (void *)(uintptr_t)(((c->r->nsteps + 1) << 1) | 1);
	c->r->steps = kb_arena_grow(c->a, c->r->steps, c->r->nsteps, &c->step_cap,
				    sizeof *c->r->steps);
	c->r->steps[c->r->nsteps++] = *st;
	return NULL;
}

static const char **strlist(ctx *c, const attrs *at, int j, size_t *n)
{
	*n = at->set[j] ? at->v[j].n : 0;
	const char **l = kb_arena_alloc(c->a, (*n ? *n : 1) * sizeof *l);
	for (size_t i = 0; i < *n; i++)
		l[i] = at->v[j].items[i].s;
	return l;
}

static kb_err *add_upstream(ctx *c, const scope *sc, const kb_node *b, const char *name)
{
	const char *what = kb_arena_printf(c->a, "upstream '%s'", name);
	attrs at;
	kb_err *err = check_block(c, sc, b, what, upstream_keys, &at);
	if (err)
		return err;
	kb_upstream u = {.name = name, .pos = b->pos, .type = at.v[0].s, .url = str_at(&at, 1),
			 .suite = str_at(&at, 2), .keyring = str_at(&at, 5),
			 .require_signature = at.set[6] ? (int)at.v[6].num : 1};
	u.components = strlist(c, &at, 3, &u.ncomponents);
	u.archs = strlist(c, &at, 4, &u.narchs);
	if (strcmp(u.type, "apt") && strcmp(u.type, "rpm-md"))
		return kb_pos_err(at.v[0].pos, "%s: type is \"apt\" or \"rpm-md\", not \"%s\"", what,
				  u.type);
	if (!strcmp(u.type, "apt") && (!u.suite || !u.ncomponents || !u.narchs))
		return kb_pos_err(b->pos, "%s: an apt upstream needs suite, components and "
					  "architectures, like suite = \"bookworm\", components = "
					  "[\"main\"], architectures = [\"amd64\"]", what);
	if (!strcmp(u.type, "rpm-md") && !u.narchs)
		return kb_pos_err(b->pos, "%s: an rpm-md upstream needs architectures, like "
					  "architectures = [\"x86_64\", \"noarch\"]", what);
	if (u.require_signature && !u.keyring)
		return kb_pos_err(b->pos, "%s needs keyring = \"<a key input>\" to verify its "
					  "signature (or require_signature = false)", what);
	for (size_t i = 0; i < c->r->nup; i++)
		if (!strcmp(c->r->up[i].name, name))
			return kb_pos_err(b->pos, "upstream '%s' is already defined at " KB_POS_FMT,
					  name, KB_POS_ARGS(c->r->up[i].pos));
	c->r->up = kb_arena_grow(c->a, c->r->up, c->r->nup, &c->up_cap, sizeof *c->r->up);
	c->r->up[c->r->nup++] = u;
	return NULL;
}

/* ---- items ---- */

static kb_err *load_file(ctx *c, const char *shown, const char *abspath, kb_pos from,
			 scope *sc);

static kb_err *label_of(ctx *c, const scope *sc, const kb_node *b, const char **out)
{
	if (!b->label)
		return kb_pos_err(b->pos, "a %s block needs a name: %s \"name\" { ... }", b->word,
				  b->word);
	rval v;
	kb_err *err = eval(c, sc, b->label, &v);
	if (err)
		return err;
	if (!valid_name(v.s))
		return kb_pos_err(b->label->pos, "'%s' is not a usable name: use letters, digits "
						 "and ._+- (not first)", v.s);
	*out = v.s;
	return NULL;
}

static kb_err *items(ctx *c, scope *sc, const kb_node *it, size_t n, int toplevel,
		     const char *basedir);

static void add_via(ctx *c, kb_pos *p, const char *link)
{
	p->via = p->via ? kb_arena_printf(c->a, "%s, %s", p->via, link) : link;
}

/* What this use made keeps where it was used; a use inside a template
 * appends its own site when that template's use returns. */
static void mark_use(ctx *c, kb_pos at, const char *name, size_t nin, size_t nsteps, size_t nup)
{
	const char *link = kb_arena_printf(c->a, "in use \"%s\" at %s:%d:%d", name, at.file,
					   at.line, at.col);
	for (size_t i = nin; i < c->r->nin; i++)
		add_via(c, &c->r->in[i].pos, link);
	for (size_t i = nup; i < c->r->nup; i++)
		add_via(c, &c->r->up[i].pos, link);
	for (size_t i = nsteps; i < c->r->nsteps; i++) {
		kb_step *st = &c->r->steps[i];
		add_via(c, &st->pos, link);
		add_via(c, &st->root_pos, link);
		for (size_t k = 0; k < st->ninputs; k++)
			add_via(c, &st->input_pos[k], link);
	}
}

static kb_err *use_template(ctx *c, scope *sc, const kb_node *b, const char *basedir)
{
	rval name;
	kb_err *err;
	if (!b->label)
		return kb_pos_err(b->pos, "write use \"template-name\" { param = value ... }");
	if ((err = eval(c, sc, b->label, &name)))
		return err;
	const tmpl *t = NULL;
	for (size_t i = 0; i < c->nt; i++)
		if (!strcmp(c->t[i].name, name.s))
			t = &c->t[i];
	if (!t)
		return kb_pos_err(b->label->pos, "no template named '%s' is defined before this line "
						 "(define it first, or include the file that does)",
				  name.s);
	if (++c->uses > MAX_USES)
		return kb_pos_err(b->pos, "more than %d template uses in this recipe (do templates "
					  "use each other over and over?)", MAX_USES);
	if (++c->use_depth > MAX_USE_DEPTH)
		return kb_pos_err(b->pos, "templates used more than %d deep (does '%s' use itself?)",
				  MAX_USE_DEPTH, name.s);
	/* params see the template's definitions, never the caller's variables */
	scope inner = {0};
	scope *global = sc;
	while (global->parent)
		global = global->parent;
	inner.parent = global;
	for (size_t i = 0; i < b->nkids; i++) {
		const kb_node *k = &b->kids[i];
		if (k->type != KB_N_ATTR)
			return kb_pos_err(k->pos, "use \"%s\" takes only 'param = value' lines", name.s);
		int declared = 0;
		for (size_t j = 0; j < t->node->nkids; j++)
			declared |= t->node->kids[j].type == KB_N_PARAM &&
				    !strcmp(t->node->kids[j].word, k->word);
		if (!declared)
			return kb_pos_err(k->pos, "template '%s' (%s:%d) has no param '%s'", name.s,
					  t->pos.file, t->pos.line, k->word);
		rval v;
		if ((err = eval(c, sc, k->val, &v)) || (err = bind(c, &inner, k->word, k->pos, &v)))
			return err;
	}
	for (size_t j = 0; j < t->node->nkids; j++) {
		const kb_node *p = &t->node->kids[j];
		if (p->type != KB_N_PARAM || lookup(&inner, p->word) != NULL)
			continue;
		if (!p->val)
			return kb_pos_err(b->pos, "use \"%s\" needs %s = ... (param declared at %s:%d:%d)",
					  name.s, p->word, p->pos.file, p->pos.line, p->pos.col);
		rval v;
		if ((err = eval(c, &inner, p->val, &v)) || (err = bind(c, &inner, p->word, p->pos, &v)))
			return err;
	}
	size_t nin = c->r->nin, nsteps = c->r->nsteps, nup = c->r->nup;
	err = items(c, &inner, t->node->kids, t->node->nkids, 0, basedir);
	if (err)
		err = kb_err_wrap(err, "%s:%d:%d: in use \"%s\"", b->pos.file, b->pos.line, b->pos.col,
				  name.s);
	else
		mark_use(c, b->pos, name.s, nin, nsteps, nup);
	c->use_depth--;
	return err;
}

static kb_err *items(ctx *c, scope *sc, const kb_node *it, size_t n, int toplevel,
		     const char *basedir)
{
	for (size_t i = 0; i < n; i++) {
		const kb_node *x = &it[i];
		kb_err *err = NULL;
		rval v;
		const char *name;
		switch (x->type) {
		case KB_N_INCLUDE: {
			if ((err = eval(c, sc, x->val, &v)))
				return err;
			const char *abs;
			if ((err = repo_path(c, v.s, x->val->pos, basedir, &abs)))
				return err;
			/* shown relative to the including file's shown path */
			const char *shown = kb_arena_printf(c->a, "%s", abs + strlen(c->r->root) +
								  (abs[strlen(c->r->root)] == '/'));
			err = load_file(c, shown, abs, x->pos, sc);
			break;
		}
		case KB_N_LET:
			if ((err = eval(c, sc, x->val, &v)) == NULL)
				err = bind(c, sc, x->word, x->pos, &v);
			break;
		case KB_N_PARAM:
			if (toplevel)
				err = kb_pos_err(x->pos, "'param' belongs inside a template; at the top "
							 "level write let %s = ...", x->word);
			break;
		case KB_N_ATTR:
			err = kb_pos_err(x->pos, "'%s = ...' must be inside a block; for a variable "
						 "write let %s = ...", x->word, x->word);
			break;
		case KB_N_BLOCK:
			if (!strcmp(x->word, "template")) {
				if (!toplevel)
					return kb_pos_err(x->pos, "templates are defined at the top level");
				if ((err = label_of(c, sc, x, &name)))
					return err;
				for (size_t j = 0; j < c->nt; j++)
					if (!strcmp(c->t[j].name, name))
						return kb_pos_err(x->pos, "template '%s' is already defined "
									  "at %s:%d:%d", name, c->t[j].pos.file,
								  c->t[j].pos.line, c->t[j].pos.col);
				c->t = kb_arena_grow(c->a, c->t, c->nt, &c->t_cap, sizeof *c->t);
				c->t[c->nt++] = (tmpl){name, x->pos, x};
			} else if (!strcmp(x->word, "use")) {
				err = use_template(c, sc, x, basedir);
			} else if (!strcmp(x->word, "upstream")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_upstream(c, sc, x, name);
			} else if (!strcmp(x->word, "step")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_step(c, sc, x, name);
			} else if (!strcmp(x->word, "sign")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_sign(c, sc, x, name);
			} else if (!strcmp(x->word, "iso")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_iso(c, sc, x, name);
			} else if (!strcmp(x->word, "darksite")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_darksite(c, sc, x, name);
			} else if (!strcmp(x->word, "deb") || !strcmp(x->word, "rpm")) {
				if (!(err = label_of(c, sc, x, &name)))
					err = add_pkg(c, sc, x, name, x->word[0] == 'r');
			} else {
				static const char *const kinds[] = {"url",     "git",	   "file",
								    "key",     "package", "buildroot"};
				size_t k = 0;
				while (k < 6 && strcmp(kinds[k], x->word))
					k++;
				if (k == 6)
					return kb_pos_err(x->pos, "unknown block '%s'%s (blocks: upstream, "
								  "url, git, file, key, package, buildroot, "
								  "step, sign, deb, rpm, darksite, iso, template, "
								  "use)", x->word,
							  suggest(c->a, x->word, block_kinds, sizeof *block_kinds));
				if (!(err = label_of(c, sc, x, &name)))
					err = add_input(c, sc, x, name, (kb_inkind)k, basedir);
			}
			break;
		}
		if (err)
			return err;
	}
	return NULL;
}

static kb_err *load_file(ctx *c, const char *shown, const char *abspath, kb_pos from,
			 scope *sc)
{
	for (size_t i = 0; i < c->depth; i++)
		if (!strcmp(c->stack[i], abspath)) {
			kb_buf chain = {0};
			for (size_t j = i; j < c->depth; j++)
				kb_buf_addf(&chain, "%s -> ", c->stack[j] + strlen(c->r->root) + 1);
			kb_buf_adds(&chain, shown);
			kb_err *err = kb_pos_err(from, "include cycle: %s; remove one of these includes",
						 chain.p);
			kb_buf_free(&chain);
			return err;
		}
	if (c->depth == MAX_INCLUDE_DEPTH)
		return kb_pos_err(from, "includes nested deeper than %d", MAX_INCLUDE_DEPTH);
	kb_buf text = {0};
	kb_err *err = kb_read_file(AT_FDCWD, abspath, MAX_FILE, &text);
	if (err) {
		kb_buf_free(&text);
		return from.file ? kb_err_wrap(err, "%s:%d:%d: cannot include %s", from.file,
					       from.line, from.col, shown)
				 : err;
	}
	kb_recipe *r = c->r;
	r->srcs = kb_arena_grow(c->a, r->srcs, r->nsrcs, &c->insrc_cap, sizeof *r->srcs);
	kb_source *src = &r->srcs[r->nsrcs++];
	src->path = kb_arena_strdup(c->a, shown);
	src->abspath = kb_arena_strdup(c->a, abspath);
	kb_sha256(text.p ? text.p : "", text.len, &src->sha256);
	kb_node *it;
	size_t n;
	err = kb_parse(c->a, src->path, text.p ? text.p : "", text.len, &it, &n);
	kb_buf_free(&text);
	if (err)
		return err;
	c->stack[c->depth++] = src->abspath;
	char *dcopy = kb_strdup(abspath);
	const char *basedir = kb_arena_strdup(c->a, dirname(dcopy));
	free(dcopy);
	err = items(c, sc, it, n, 1, basedir);
	c->depth--;
	return err;
}

static const char *names_of(kb_arena *a, const kb_recipe *r, const char *near)
{
	kb_buf b = {0};
	const char **cand = kb_arena_alloc(a, (r->nin + r->nsteps + 1) * sizeof *cand);
	size_t n = 0;
	for (size_t i = 0; i < r->nin; i++)
		if (r->in[i].kind != KB_IN_BUILDROOT)
			cand[n++] = r->in[i].name;
	for (size_t i = 0; i < r->nsteps; i++)
		cand[n++] = r->steps[i].name;
	cand[n] = NULL;
	for (size_t i = 0; i < n && i < 12; i++)
		kb_buf_addf(&b, "%s%s", i ? ", " : "", cand[i]);
	if (n > 12)
		kb_buf_addf(&b, ", ... (%zu in all)", n);
	const char *s = kb_arena_printf(a, "%s (declared: %s)", suggest(a, near, cand, sizeof *cand),
					n ? b.p : "none");
	kb_buf_free(&b);
	return s;
}

/* Checks what steps name and sorts them so that a step comes after the
 * steps it reads (depth-first; a cycle is an error naming it). */
static kb_err *order_steps(kb_recipe *r)
{
	size_t n = r->nsteps;
	if (!n)
		return NULL;
	kb_err *err = NULL;
	for (size_t i = 0; i < n; i++) {
		const kb_step *st = &r->steps[i];
		const kb_input *root = st->root ? kb_recipe_input(r, st->root) : NULL;
		if (st->kind == KB_STEP_RUN && (!root || root->kind != KB_IN_BUILDROOT))
			return kb_pos_err(st->root_pos, "step '%s': root '%s' is not a buildroot of this "
							"recipe; add buildroot \"%s\" { upstreams = [...] "
							"packages = [...] }", st->name, st->root, st->root);
		for (size_t k = 0; k < st->ninputs; k++) {
			const char *nm = st->inputs[k];
			const kb_input *in = kb_recipe_input(r, nm);
			if (in && in->kind == KB_IN_BUILDROOT && st->kind != KB_STEP_DARKSITE &&
			    !(st->kind == KB_STEP_ISO && !strcmp(nm, st->grub)))
				return kb_pos_err(st->input_pos[k], "step '%s': '%s' is a buildroot; name "
								    "it as root = \"%s\", not as an input",
						  st->name, nm, nm);
			if (!in && !kb_recipe_step(r, nm))
				return kb_pos_err(st->input_pos[k], "step '%s' reads input '%s', which is "
								    "not declared%s", st->name, nm,
						  names_of(r->a, r, nm));
			if ((st->kind == KB_STEP_SIGN || st->kind == KB_STEP_DEB ||
			     st->kind == KB_STEP_RPM) && in && in->kind != KB_IN_GIT &&
			    in->kind != KB_IN_FILE)
				return kb_pos_err(st->input_pos[k], "%s '%s' reads '%s', which is a file; "
								    "it needs a tree (a step's output, a "
								    "git or file input)",
						  st->kind == KB_STEP_SIGN ? "sign" : "package",
						  st->name, nm);
			if (!strcmp(nm, st->name))
				return kb_pos_err(st->input_pos[k], "step '%s' cannot read its own "
								    "output", st->name);
		}
	}
	/* 0 new, 1 on the path, 2 done */
	int *state = kb_calloc(n, sizeof *state);
	size_t *stack = kb_calloc(n, sizeof *stack), *next = kb_calloc(n, sizeof *next);
	kb_step *sorted = kb_arena_alloc(r->a, n * sizeof *sorted);
	size_t ns = 0;
	for (size_t s0 = 0; !err && s0 < n; s0++) {
		if (state[s0])
			continue;
		size_t sp = 0;
		stack[sp++] = s0;
		state[s0] = 1;
		next[s0] = 0;
		while (!err && sp) {
			size_t cur = stack[sp - 1];
			const kb_step *st = &r->steps[cur];
			if (next[cur] == st->ninputs) {
				state[cur] = 2;
				sorted[ns++] = *st;
				sp--;
				continue;
			}
			size_t k = next[cur]++;
			const kb_step *dep = kb_recipe_step(r, st->inputs[k]);
			if (!dep)
				continue;
			size_t d = (size_t)(dep - r->steps);
			if (state[d] == 1) {
				kb_buf chain = {0};
				size_t from = 0;
				while (stack[from] != d)
					from++;
				for (size_t j = from; j < sp; j++)
					kb_buf_addf(&chain, "%s -> ", r->steps[stack[j]].name);
				kb_buf_adds(&chain, dep->name);
				err = kb_pos_err(st->input_pos[k], "steps read each other in a cycle: %s",
						 chain.p);
				kb_buf_free(&chain);
			} else if (!state[d]) {
				state[d] = 1;
				next[d] = 0;
				stack[sp++] = d;
			}
		}
	}
	if (!err)
		memcpy(r->steps, sorted, n * sizeof *sorted);
	free(state);
	free(stack);
	free(next);
	return err;
}

static kb_err *cross_check(kb_recipe *r)
{
	for (size_t i = 0; i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		if (in->kind != KB_IN_PACKAGE)
			continue;
		size_t j = 0;
		while (j < r->nup && strcmp(r->up[j].name, in->upstream))
			j++;
		if (j == r->nup)
			return kb_pos_err(in->pos, "package input '%s' names upstream '%s', which is not "
						   "defined; add upstream \"%s\" { ... }",
					  in->name, in->upstream, in->upstream);
	}
	for (size_t i = 0; i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		for (size_t k = 0; k < in->nupstreams; k++)
			if (!kb_recipe_upstream(r, in->upstreams[k]))
				return kb_pos_err(in->pos, "buildroot '%s' names upstream '%s', which is "
							   "not defined; add upstream \"%s\" { ... }",
						  in->name, in->upstreams[k], in->upstreams[k]);
	}
	kb_err *err = order_steps(r);
	if (err)
		return err;
	for (size_t j = 0; j < r->nup; j++) {
		const kb_input *k = r->up[j].keyring ? kb_recipe_input(r, r->up[j].keyring) : NULL;
		if (r->up[j].keyring && (!k || k->kind != KB_IN_KEY))
			return kb_pos_err(r->up[j].pos, "upstream '%s' names keyring '%s', which is not "
							"a key input; add key \"%s\" { path = \"...\" }",
					  r->up[j].name, r->up[j].keyring, r->up[j].keyring);
	}
	return NULL;
}

const kb_upstream *kb_recipe_upstream(const kb_recipe *r, const char *name)
{
	for (size_t i = 0; i < r->nup; i++)
		if (!strcmp(r->up[i].name, name))
			return &r->up[i];
	return NULL;
}

const char *kb_stepkind_name(kb_stepkind k)
{
	static const char *const n[] = {"step", "sign", "deb", "rpm", "darksite", "iso"};
	return n[k];
}

const kb_step *kb_recipe_step(const kb_recipe *r, const char *name)
{
	for (size_t i = 0; i < r->nsteps; i++)
		if (!strcmp(r->steps[i].name, name))
			return &r->steps[i];
	return NULL;
}

const kb_input *kb_recipe_input(const kb_recipe *r, const char *name)
{
	for (size_t i = 0; i < r->nin; i++)
		if (!strcmp(r->in[i].name, name))
			return &r->in[i];
	return NULL;
}

kb_err *kb_recipe_load(const char *arg, const char *recipes_dir, kb_recipe **out)
{
	size_t alen = strlen(arg);
	int is_path = strchr(arg, '/') || (alen > 7 && !strcmp(arg + alen - 7, ".recipe"));
	char *path = is_path ? kb_strdup(arg)
			     : kb_asprintf("%s/%s.recipe", recipes_dir ? recipes_dir : "recipes", arg);
	char *abs = kb_abspath(path);
	char *d1 = kb_strdup(abs), *d2 = kb_strdup(abs), *b = kb_strdup(abs);
	const char *dir = dirname(d1), *base = basename(b);
	const char *root = dirname(dirname(d2));
	kb_arena *a = kb_arena_new();
	kb_recipe *r = kb_arena_alloc(a, sizeof *r);
	r->a = a;
	size_t blen = strlen(base);
	r->name = kb_arena_strndup(a, base, blen > 7 && !strcmp(base + blen - 7, ".recipe")
						    ? blen - 7 : blen);
	r->dir = kb_arena_strdup(a, dir);
	r->root = kb_arena_strdup(a, root);
	r->lockpath = kb_arena_printf(a, "%s/%s.lock", dir, r->name);
	kb_err *err = NULL;
	if (!valid_name(r->name))
		err = kb_usage("'%s' is not a recipe name (letters, digits and ._+-)", r->name);
	else if (access(abs, F_OK) < 0)
		err = is_path ? kb_errno(errno, "cannot read recipe %s", path)
			      : kb_errf("no recipe named '%s': %s does not exist (recipes live in "
					"%s/; pass --recipes DIR for another place)", arg, path,
					recipes_dir ? recipes_dir : "recipes");
	if (!err) {
		ctx c = {.r = r, .a = a, .names = kb_hset_new()};
		scope global = {0};
		err = load_file(&c, path, abs, (kb_pos){0}, &global);
		if (!err)
			err = cross_check(r);
		kb_hset_free(c.names);
	}
	free(path);
	free(abs);
	free(d1);
	free(d2);
	free(b);
	if (err) {
		kb_arena_free(a);
		return err;
	}
	*out = r;
	return NULL;
}

void kb_recipe_free(kb_recipe *r)
{
	if (r)
		kb_arena_free(r->a);
}

/* Private to builder/: recipes (parse.c, expand.c), lock files (lock.c)
 * and their evaluation into actions (eval.c). The language is described
 * in RECIPES.md. */
#ifndef KB_BUILDER_RECIPE_H
#define KB_BUILDER_RECIPE_H

#include "../mirror/mirror.h"

typedef struct {
	const char *file; /* as shown to users, e.g. recipes/x.recipe */
	int line, col;
	/* for inputs and steps a template made: 'in use "T" at FILE:L:C',
	 * innermost use first, so an error at build time names the use
	 * site too; NULL otherwise */
	const char *via;
} kb_pos;

/* printf a kb_pos: "file:line:col" or "file:line:col (in use ...)" */
#define KB_POS_FMT "%s:%d:%d%s%s%s"
#define KB_POS_ARGS(p)                                                                   \
	(p).file, (p).line, (p).col, (p).via ? " (" : "", (p).via ? (p).via : "",          \
		(p).via ? ")" : ""

/* "file:line:col: message" */
kb_err *kb_pos_err(kb_pos p, const char *fmt, ...) KB_PRINTF(2, 3);

/* ---- syntax (parse.c) ---- */
typedef struct {
	int is_var;
	const char *text; /* literal text, or the variable's name */
	size_t len;
	kb_pos pos;
} kb_seg;

typedef enum { KB_V_STR, KB_V_NUM, KB_V_BOOL, KB_V_LIST } kb_vtype;

typedef struct kb_val {
	kb_vtype type;
	kb_pos pos;
	kb_seg *segs; /* strings: literal text and ${var} pieces */
	size_t nsegs;
	long long num; /* numbers; bools as 0/1 */
	struct kb_val *items;
	size_t nitems;
} kb_val;

typedef enum { KB_N_ATTR, KB_N_BLOCK, KB_N_INCLUDE, KB_N_LET, KB_N_PARAM } kb_ntype;

typedef struct kb_node {
	kb_ntype type;
	kb_pos pos;
	const char *word; /* block kind, or the attr/let/param name */
	kb_val *label;	  /* block: its quoted name (may be NULL) */
	kb_val *val;	  /* attr/let/include value; param default (may be NULL) */
	struct kb_node *kids;
	size_t nkids;
} kb_node;

/* Parses text (the contents of file) into items allocated in a. */
KB_MUST kb_err *kb_parse(kb_arena *a, const char *file, const char *text, size_t len,
			 kb_node **items, size_t *n);

/* ---- meaning (expand.c) ---- */
typedef enum {
	KB_IN_URL,
	KB_IN_GIT,
	KB_IN_FILE,
	KB_IN_KEY,
	KB_IN_PACKAGE,
	KB_IN_BUILDROOT /* a package closure, unpacked into a tree */
} kb_inkind;
const char *kb_inkind_name(kb_inkind k);

typedef struct {
	kb_inkind kind;
	const char *name;
	kb_pos pos;
	const char *url;      /* url, git, key (remote) */
	const char *commit;   /* git */
	const char *path;     /* file, key (local): as written */
	const char *abspath;  /* resolved inside the repository */
	const char *upstream; /* package */
	const char *pkgname, *arch, *version;
	const char *fingerprint; /* key (remote): pinned by fingerprint, the
				  * lock pins the bytes */
	kb_hash sha256; /* url, key (remote) */
	int has_sha256;
	uint64_t size;
	int has_size;
	/* buildroot: the packages asked for (their closure is locked) */
	const char **upstreams, **pkgs;
	size_t nupstreams, npkgs;
	int essential; /* apt: add every Essential: yes package */
} kb_input;

typedef enum {
	KB_STEP_RUN,  /* a command in the sandbox on a build root */
	KB_STEP_SIGN, /* kernel modules signed with a key of the key directory */
	KB_STEP_DEB,  /* a tree packaged as a .deb */
	KB_STEP_RPM,  /* ... or as an .rpm */
	KB_STEP_DARKSITE, /* packages published as a signed apt or rpm-md repository */
	KB_STEP_ISO	  /* a bootable image: kernel, initramfs with the modules, darksite */
} kb_stepkind;

/* A step: a command run in the sandbox, on a build root, with named
 * inputs read-only at /inputs/NAME, writing its output to /out; or one of
 * kbuild's own artifact writers (signing, packages), which read one input
 * tree (inputs[0]) and run outside the sandbox. */
typedef struct {
	kb_stepkind kind;
	const char *name;
	kb_pos pos;
	const char *root; /* run: a buildroot input */
	kb_pos root_pos;
	const char **inputs; /* inputs or other steps */
	kb_pos *input_pos;
	size_t ninputs;
	const char **argv; /* run: NULL-ended */
	size_t argc;
	const char **env; /* run: "K=V" */
	size_t nenv;
	int64_t epoch; /* SOURCE_DATE_EPOCH */
	long timeout_s;
	uint64_t max_output;
	const char *kernel; /* run: the kernel release modules are built for */
	/* sign */
	const char *key, *hash, *certificate;
	const char *cert_sha256; /* the key's certificate, set before kb_eval */
	/* deb, rpm: the package's fields, as kbuild package takes them */
	const char *pkgname, *version, *release, *arch, *maintainer, *summary, *description,
		*license, *url, *section, *priority, *group, *kmod, *postinst, *postrm;
	const char **depends, **provides, **conflicts;
	size_t ndepends, nprovides, nconflicts;
	/* darksite: inputs are the packages (steps' outputs, package inputs,
	 * or buildroots: their locked closure); key is an OpenPGP key */
	const char *suite, *codename, *component, *origin, *label;
	/* iso: each names one of inputs (kernel and busybox: package inputs;
	 * grub: a buildroot with GRUB; modules, darksite: steps, optional) */
	const char *kernel_pkg, *busybox, *grub, *modules, *darksite, *volid, *cmdline;
	const char **load;
	size_t nload;
	int secure_boot;
} kb_step;

typedef struct {
	const char *name;
	kb_pos pos;
	const char *type; /* "apt" or "rpm-md" */
	const char *url;  /* NULL: from the host or --mirror; rpm-md: holds repodata/ */
	const char *suite, *keyring;
	const char **components, **archs;
	size_t ncomponents, narchs;
	int require_signature;
} kb_upstream;

typedef struct {
	const char *path; /* as shown */
	const char *abspath;
	kb_hash sha256;
} kb_source;

typedef struct {
	kb_arena *a;
	const char *name;
	const char *dir;  /* absolute directory of the recipe file */
	const char *root; /* the repository: file inputs stay inside it */
	const char *lockpath;
	kb_source *srcs; /* the recipe file and everything it includes */
	size_t nsrcs;
	kb_input *in;
	size_t nin;
	kb_upstream *up;
	size_t nup;
	kb_step *steps; /* in an order where inputs come first */
	size_t nsteps;
} kb_recipe;

/* Loads recipes/NAME.recipe (or a path ending in .recipe), follows its
 * includes, expands templates and checks every block against its schema. */
KB_MUST kb_err *kb_recipe_load(const char *name_or_path, const char *recipes_dir,
			       kb_recipe **out);
void kb_recipe_free(kb_recipe *r);
const kb_input *kb_recipe_input(const kb_recipe *r, const char *name);
const kb_step *kb_recipe_step(const kb_recipe *r, const char *name);
/* the block word of a step kind: "step", "sign", "deb", "rpm", "darksite", "iso" */
const char *kb_stepkind_name(kb_stepkind k);
/* the step signs with an OpenPGP key of the key directory (st->key) */
static inline int kb_step_pgp_signs(const kb_step *st)
{
	return st->key && (st->kind == KB_STEP_DARKSITE || st->kind == KB_STEP_RPM);
}

/* ---- upstreams (upstream.c) ---- */
/* --mirror NAME=URL, for this process */
KB_MUST kb_err *kb_mirror_add(const char *spec);
void kb_mirror_clear(void);
/* the repository URL and where it came from (for messages) */
KB_MUST kb_err *kb_upstream_resolve(kb_arena *a, const kb_upstream *u, const char **url,
				    const char **from);

/* what the mirror part needs of an upstream: URL resolved, keyring in the store */
KB_MUST kb_err *kb_upstream_def_of(kb_store *s, const kb_recipe *r, const kb_upstream *u,
				   kb_upstream_def *d);
const kb_upstream *kb_recipe_upstream(const kb_recipe *r, const char *name);

/* ---- lock files (lock.c) ---- */
typedef struct {
	const char *key, *value;
} kb_kv;

typedef struct {
	const char *kind; /* "source" or an input kind */
	const char *name; /* source path or input name */
	kb_kv *kv;
	size_t nkv;
	int line;
} kb_lock_entry;

typedef struct {
	kb_arena *a;
	const char *path;
	const char *recipe;
	kb_lock_entry *e;
	size_t n;
} kb_lock;

/* found=0 and no error when the file does not exist */
KB_MUST kb_err *kb_lock_read(const char *path, kb_lock **out, int *found);
KB_MUST kb_err *kb_lock_parse(kb_arena *a, const char *path, const char *text, size_t len,
			      kb_lock *out);
/* sorted, escaped, written atomically */
KB_MUST kb_err *kb_lock_write(const kb_lock *l);
void kb_lock_free(kb_lock *l);
const kb_lock_entry *kb_lock_find(const kb_lock *l, const char *kind, const char *name);
const char *kb_lock_get(const kb_lock_entry *e, const char *key);
/* 1 if e pins one of buildroot root's packages ("package ROOT/NAME") */
int kb_lock_child(const kb_lock_entry *e, const char *root);

/* ---- evaluation (eval.c) ---- */
typedef struct {
	const char *kind; /* "input", "buildroot", "step", "recipe" */
	const char *name;
	const char *def; /* canonical definition text: what the key hashes */
	kb_hash key;
	kb_oid result;	     /* known from the lock for inputs */
	int pending;	     /* buildroots and steps: result made by kb_build */
	const kb_step *step; /* steps */
} kb_action;

typedef struct {
	int offline;
	int jobs;
} kb_run_opts;

/* Checks the recipe against its lock: every input covered, with the same
 * definition, every source unchanged. The error says to run 'kbuild lock'. */
KB_MUST kb_err *kb_lock_check(const kb_recipe *r, const kb_lock *l);
/* Resolves every input (fetching what it must) and writes the lock. */
KB_MUST kb_err *kb_lock_update(kb_store *s, const kb_recipe *r, const kb_run_opts *o,
			       size_t *changed);
/* Brings every input into the store as the lock pins it; local inputs
 * must still hash as locked. */
KB_MUST kb_err *kb_recipe_fetch(kb_store *s, const kb_recipe *r, const kb_lock *l,
				const kb_run_opts *o);
/* One input into the store, resolved afresh (no lock). */
KB_MUST kb_err *kb_input_fetch(kb_store *s, const kb_recipe *r, const kb_input *in,
			       const kb_run_opts *o, kb_oid *out);
/* The graph of actions for a checked recipe and lock: the inputs (in the
 * recipe's order), the steps (in dependency order), and last the recipe,
 * whose key covers every other action's. */
KB_MUST kb_err *kb_eval(const kb_recipe *r, const kb_lock *l, kb_arena *a, kb_action **out,
			size_t *n);

/* the action named name (an input, buildroot or step), or NULL */
kb_action *kb_action_find(kb_action *act, size_t n, const char *name);

/* a step's own definition (command, environment, epoch), without what
 * it reads */
void kb_step_def(const kb_step *st, kb_buf *def);

/* 'kbuild mirror …' (mirror_cmd.c) */
int kb_mirror_main(const char *store_dir, int argc, char **argv);
int kb_mirror_help(const char *sub, FILE *out);

/* 'kbuild lock' and 'kbuild recipe' (recipe_cmd.c) */
int kb_recipe_main(const char *cmd, const char *store_dir, int argc, char **argv);
int kb_recipe_help(const char *cmd, FILE *out);

#endif

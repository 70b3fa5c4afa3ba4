/* 'kbuild store …': the store's commands. Each parses its own options,
 * opens the store only once the arguments are known to be good, and
 * returns an exit status (0 ok, 1 failure, 2 usage). */
#include "internal.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cmd {
	const char *name, *usage, *help;
	kb_err *(*run)(const char *store, int argc, char **argv);
	int writes; /* creates the store if missing */
};

static const struct cmd cmds[];
static const struct cmd *find_cmd(const char *name);

/* kb_getopt, naming the command as "store CMD" */
static int next_opt(int argc, char **argv, const char *shortopts,
		    const struct option *longopts, const char *cmd, kb_err **err)
{
	char name[32];
	snprintf(name, sizeof name, "store %s", cmd);
	return kb_getopt(argc, argv, shortopts, longopts, name, err);
}

/* for commands without options: "--frob" is still read as a long option */
static const struct option no_long[] = {{0}};

static kb_err *nargs(const char *cmd, int have, int min, int max)
{
	if (have < min)
		return kb_usage("kbuild store %s: missing argument (usage: kbuild store %s)", cmd,
				find_cmd(cmd)->usage);
	if (max >= 0 && have > max)
		return kb_usage("kbuild store %s: too many arguments (usage: kbuild store %s)", cmd,
				find_cmd(cmd)->usage);
	return NULL;
}

static kb_err *open_store(const char *dir, const char *cmd, kb_store **s)
{
	return kb_store_open(dir, find_cmd(cmd)->writes, s);
}

static void print_hash(const kb_hash *h)
{
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(h, hex);
	printf("%s\n", hex);
}

static kb_err *cmd_add(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"ref", required_argument, NULL, 'r'}, {0}};
	const char *ref = NULL;
	kb_err *err = NULL;
	int c;
	while ((c = next_opt(argc, argv, "", lo, "add", &err)) > 0)
		ref = optarg;
	if (err || (err = nargs("add", argc - optind, 1, ref ? 1 : -1)))
		return err;
	if (ref && (err = kb_ref_check_name(ref)))
		return err;
	kb_store *s;
	if ((err = open_store(dir, "add", &s)))
		return err;
	int n = argc - optind;
	kb_oid *o = kb_calloc((size_t)n, sizeof *o);
	kb_txn *t;
	if (!(err = kb_txn_begin(s, &t))) {
		for (int i = 0; !err && i < n; i++)
			err = kb_txn_add_path(t, argv[optind + i], &o[i]);
		if (err)
			kb_txn_abort(t);
		else
			err = kb_txn_commit(t, o, (size_t)n);
	}
	if (!err && ref)
		err = kb_ref_update(s, ref, NULL, &o[0]);
	for (int i = 0; !err && i < n; i++)
		print_hash(&o[i].hash);
	free(o);
	kb_store_close(s);
	return err;
}

static kb_err *resolve_one(const char *dir, const char *cmd, const char *arg, kb_store **s,
			   kb_oid *o)
{
	kb_err *err = open_store(dir, cmd, s);
	if (!err && (err = kb_store_resolve(*s, arg, o))) {
		kb_store_close(*s);
		*s = NULL;
	}
	return err;
}

static kb_err *cmd_cat(const char *dir, int argc, char **argv)
{
	kb_err *err = NULL;
	if (next_opt(argc, argv, "", no_long, "cat", &err) || err ||
	    (err = nargs("cat", argc - optind, 1, 1)))
		return err ? err : kb_usage("kbuild store cat takes no options");
	kb_store *s;
	kb_oid o;
	if ((err = resolve_one(dir, "cat", argv[optind], &s, &o)))
		return err;
	err = kb_store_cat(s, &o.hash, 1);
	kb_store_close(s);
	return err;
}

static kb_err *ls_tree(kb_store *s, const kb_hash *h, const char *prefix, int recursive)
{
	kb_tree t = {0};
	kb_err *err = kb_store_read_tree(s, h, &t);
	for (size_t i = 0; !err && i < t.n; i++) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&t.e[i].hash, hex);
		char *q = kb_quote(t.e[i].name, t.e[i].namelen);
		char *path = kb_asprintf("%s%s", prefix, q);
		printf("%c %s %s\n", t.e[i].type, hex, path);
		if (recursive && t.e[i].type == KB_ENT_DIR) {
			char *sub = kb_asprintf("%s/", path);
			err = ls_tree(s, &t.e[i].hash, sub, 1);
			free(sub);
		}
		free(path);
		free(q);
	}
	kb_tree_free(&t);
	return err;
}

static kb_err *cmd_ls(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"recursive", no_argument, NULL, 'r'}, {0}};
	int rec = 0, c;
	kb_err *err = NULL;
	while ((c = next_opt(argc, argv, "r", lo, "ls", &err)) > 0)
		rec = 1;
	if (err || (err = nargs("ls", argc - optind, 1, 1)))
		return err;
	kb_store *s;
	kb_oid o;
	if ((err = resolve_one(dir, "ls", argv[optind], &s, &o)))
		return err;
	if (o.type != KB_TREE)
		err = kb_errf("%s is a blob; ls lists trees (use 'kbuild store cat')", argv[optind]);
	else
		err = ls_tree(s, &o.hash, "", rec);
	kb_store_close(s);
	return err;
}

static kb_err *cmd_checkout(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"copy", no_argument, NULL, 'c'}, {0}};
	int flags = 0, c;
	kb_err *err = NULL;
	while ((c = next_opt(argc, argv, "", lo, "checkout", &err)) > 0)
		flags |= KB_CHECKOUT_COPY;
	if (err || (err = nargs("checkout", argc - optind, 2, 2)))
		return err;
	kb_store *s;
	kb_oid o;
	if ((err = resolve_one(dir, "checkout", argv[optind], &s, &o)))
		return err;
	err = kb_store_checkout(s, &o, argv[optind + 1], flags);
	kb_store_close(s);
	return err;
}

/* --old: a hash, or "none" for "must not exist yet" */
static kb_err *parse_old(const char *arg, kb_oid *old)
{
	if (!strcmp(arg, "none")) {
		old->type = KB_NONE;
		return NULL;
	}
	old->type = KB_BLOB; /* compared by hash */
	if (kb_hash_parse(arg, strlen(arg), &old->hash))
		return kb_usage("--old takes a 64-digit hash or 'none', not '%s'", arg);
	return NULL;
}

static kb_err *cmd_ref(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"old", required_argument, NULL, 'o'}, {0}};
	kb_err *err = NULL;
	kb_oid old;
	int have_old = 0, c;
	if (argc < 2)
		return kb_usage("kbuild store ref: missing subcommand (set, get, list or delete)");
	const char *sub = argv[1];
	argc--;
	argv++;
	while ((c = next_opt(argc, argv, "", lo, "ref", &err)) > 0) {
		if ((err = parse_old(optarg, &old)))
			return err;
		have_old = 1;
	}
	if (err)
		return err;
	int n = argc - optind;
	char **a = argv + optind;
	kb_store *s = NULL;
	if (!strcmp(sub, "set")) {
		if ((err = nargs("ref", n, 2, 2)) || (err = kb_ref_check_name(a[0])))
			return err;
		kb_oid o;
		if (!(err = resolve_one(dir, "ref", a[1], &s, &o)))
			err = kb_ref_update(s, a[0], have_old ? &old : NULL, &o);
	} else if (!strcmp(sub, "delete")) {
		if ((err = nargs("ref", n, 1, 1)) || (err = kb_ref_check_name(a[0])) ||
		    (err = open_store(dir, "ref", &s)))
			return err;
		err = kb_ref_update(s, a[0], have_old ? &old : NULL, NULL);
	} else if (!strcmp(sub, "get")) {
		kb_oid o;
		int found;
		/* reading: a missing store is an error, not created */
		if ((err = nargs("ref", n, 1, 1)) || (err = kb_ref_check_name(a[0])) ||
		    (err = kb_store_open(dir, 0, &s)))
			return err;
		if (!(err = kb_ref_get(s, a[0], &o, &found))) {
			char line[80];
			kb_oid_fmt(&o, line);
			if (found)
				printf("%s\n", line);
			else
				err = kb_errf("no ref named '%s'", a[0]);
		}
	} else if (!strcmp(sub, "list")) {
		kb_ref *r;
		size_t nr;
		if ((err = nargs("ref", n, 0, 1)) || (err = kb_store_open(dir, 0, &s)))
			return err;
		if (!(err = kb_ref_list(s, n ? a[0] : NULL, &r, &nr))) {
			for (size_t i = 0; i < nr; i++) {
				char line[80];
				if (r[i].oid.type == KB_NONE)
					strcpy(line, "damaged (set it again or delete it)");
				else
					kb_oid_fmt(&r[i].oid, line);
				printf("%s %s\n", r[i].name, line);
			}
			kb_ref_list_free(r, nr);
		}
	} else {
		return kb_usage("kbuild store ref: unknown subcommand '%s' (set, get, list or delete)",
				sub);
	}
	kb_store_close(s);
	return err;
}

static kb_err *parse_key(const char *arg, kb_hash *k)
{
	if (kb_hash_parse(arg, strlen(arg), k))
		return kb_usage("an action key is 64 lowercase hex digits, not '%s'", arg);
	return NULL;
}

static kb_err *cmd_ac(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"meta", required_argument, NULL, 'm'}, {0}};
	kb_err *err = NULL;
	const char *meta = NULL;
	int c;
	if (argc < 2)
		return kb_usage("kbuild store ac: missing subcommand (put or get)");
	const char *sub = argv[1];
	argc--;
	argv++;
	while ((c = next_opt(argc, argv, "", lo, "ac", &err)) > 0)
		meta = optarg;
	if (err)
		return err;
	int n = argc - optind;
	char **a = argv + optind;
	kb_store *s = NULL;
	kb_hash key;
	if (!strcmp(sub, "put")) {
		kb_oid o;
		if ((err = nargs("ac", n, 2, 2)) || (err = parse_key(a[0], &key)) ||
		    (err = resolve_one(dir, "ac", a[1], &s, &o)))
			return err;
		err = kb_ac_put(s, &key, &o, meta);
	} else if (!strcmp(sub, "get")) {
		kb_oid o;
		char *m = NULL;
		int found;
		if ((err = nargs("ac", n, 1, 1)) || (err = parse_key(a[0], &key)) ||
		    (err = kb_store_open(dir, 0, &s)))
			return err;
		if (!(err = kb_ac_get(s, &key, &o, &m, &found))) {
			char line[80];
			kb_oid_fmt(&o, line);
			if (found)
				printf("%s\n%s", line, m ? m : "");
			else
				err = kb_errf("no action-cache entry for %s", a[0]);
		}
		free(m);
	} else {
		return kb_usage("kbuild store ac: unknown subcommand '%s' (put or get)", sub);
	}
	kb_store_close(s);
	return err;
}

static kb_err *cmd_gc(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"dry-run", no_argument, NULL, 'n'}, {0}};
	int dry = 0, c;
	kb_err *err = NULL;
	while ((c = next_opt(argc, argv, "n", lo, "gc", &err)) > 0)
		dry = 1;
	if (err || (err = nargs("gc", argc - optind, 0, 0)))
		return err;
	kb_store *s;
	if ((err = open_store(dir, "gc", &s)))
		return err;
	kb_gc_stats st;
	if (!(err = kb_store_gc(s, dry, &st)))
		printf("%s %zu objects (%llu bytes), kept %zu; %zu temporary files, %zu stale "
		       "roots files, %zu stale action-cache entries\n",
		       dry ? "would remove" : "removed", st.objects_removed,
		       (unsigned long long)st.bytes_removed, st.objects_kept, st.temp_removed,
		       st.roots_removed, st.ac_removed);
	kb_store_close(s);
	return err;
}

static kb_err *cmd_fsck(const char *dir, int argc, char **argv)
{
	kb_err *err = NULL;
	if (next_opt(argc, argv, "", no_long, "fsck", &err) || err ||
	    (err = nargs("fsck", argc - optind, 0, 0)))
		return err ? err : kb_usage("kbuild store fsck takes no options");
	kb_store *s;
	if ((err = open_store(dir, "fsck", &s)))
		return err;
	size_t problems;
	if (!(err = kb_store_fsck(s, stdout, &problems)) && problems)
		err = kb_errf("fsck found %zu problem%s in %s", problems, problems == 1 ? "" : "s",
			      kb_store_path(s));
	if (!err)
		printf("store %s is consistent\n", kb_store_path(s));
	kb_store_close(s);
	return err;
}

static kb_err *cmd_export(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"output", required_argument, NULL, 'o'}, {0}};
	const char *out = NULL;
	int c;
	kb_err *err = NULL;
	while ((c = next_opt(argc, argv, "o:", lo, "export", &err)) > 0)
		out = optarg;
	if (err || (err = nargs("export", argc - optind, 1, -1)))
		return err;
	if (!out)
		return kb_usage("kbuild store export: say where to write with -o FILE");
	kb_store *s;
	if ((err = open_store(dir, "export", &s)))
		return err;
	size_t n;
	if (!(err = kb_store_export(s, argv + optind, (size_t)(argc - optind), out, &n)))
		kb_info("exported %zu objects to %s", n, out);
	kb_store_close(s);
	return err;
}

static kb_err *cmd_import(const char *dir, int argc, char **argv)
{
	static const struct option lo[] = {{"force", no_argument, NULL, 'f'}, {0}};
	int force = 0, c;
	kb_err *err = NULL;
	while ((c = next_opt(argc, argv, "", lo, "import", &err)) > 0)
		force = 1;
	if (err || (err = nargs("import", argc - optind, 1, 1)))
		return err;
	kb_store *s;
	if ((err = open_store(dir, "import", &s)))
		return err;
	size_t no, nr;
	if (!(err = kb_store_import(s, argv[optind], force, &no, &nr)))
		kb_info("imported %zu objects and %zu refs from %s", no, nr, argv[optind]);
	kb_store_close(s);
	return err;
}

static const struct cmd cmds[] = {
	{"add", "add [--ref NAME] PATH...",
	 "Stores each file or directory tree and prints its hash. A directory becomes a\n"
	 "tree: names, file/executable/symlink/directory and content only; no times,\n"
	 "owners or other mode bits. With --ref, NAME points at the result.",
	 cmd_add, 1},
	{"cat", "cat HASH|REF", "Writes an object's bytes to standard output.", cmd_cat, 0},
	{"ls", "ls [-r] HASH|REF",
	 "Lists a tree: TYPE HASH NAME per entry (f file, x executable, l symlink,\n"
	 "d directory). -r descends into directories.",
	 cmd_ls, 0},
	{"checkout", "checkout [--copy] HASH|REF DIR",
	 "Writes a tree (or blob) to DIR, which must not exist or be empty. Files are\n"
	 "hardlinked from the store and read-only; --copy writes ordinary copies.",
	 cmd_checkout, 0},
	{"ref", "ref set|get|list|delete [--old HASH|none] [NAME [HASH|REF]]",
	 "Refs name objects and keep them from gc. 'set' and 'delete' with --old only\n"
	 "succeed if the ref still has that value ('none': does not exist yet).",
	 cmd_ref, 1},
	{"ac", "ac put [--meta TEXT] KEY HASH|REF | ac get KEY",
	 "The action cache: an action's key (64 hex digits) to its result and metadata.",
	 cmd_ac, 1},
	{"gc", "gc [--dry-run]",
	 "Removes objects not reachable from refs, action-cache entries or roots held\n"
	 "by running kbuild processes. Safe while other kbuild processes write.",
	 cmd_gc, 0},
	{"fsck", "fsck",
	 "Rehashes every object and checks that everything refs and action-cache\n"
	 "entries reach is present and whole. Exits 1 on any problem.",
	 cmd_fsck, 0},
	{"export", "export -o FILE REF|HASH...",
	 "Writes one zstd-compressed bundle with the named refs and everything they reach.",
	 cmd_export, 0},
	{"import", "import [--force] FILE",
	 "Verifies a bundle completely, then adds its objects and refs. A damaged or\n"
	 "truncated bundle changes nothing. --force replaces refs that differ.",
	 cmd_import, 1},
	{0},
};

static const struct cmd *find_cmd(const char *name)
{
	for (const struct cmd *c = cmds; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

void kb_store_summary(FILE *out)
{
	for (const struct cmd *c = cmds; c->name; c++)
		fprintf(out, "  kbuild store %s\n", c->usage);
}

int kb_store_help(const char *sub, FILE *out)
{
	if (!sub) {
		fprintf(out, "usage: kbuild [--store DIR] store COMMAND ...\n\n"
			     "The content-addressed store (default: $KBUILD_STORE, else\n"
			     "$XDG_DATA_HOME/kbuild/store, else ~/.local/share/kbuild/store).\n\n");
		kb_store_summary(out);
		fprintf(out, "\n'kbuild help store COMMAND' tells more.\n");
		return 1;
	}
	const struct cmd *c = find_cmd(sub);
	if (!c)
		return 0;
	fprintf(out, "usage: kbuild store %s\n\n%s\n", c->usage, c->help);
	return 1;
}

int kb_store_main(const char *dir, int argc, char **argv)
{
	kb_err *err;
	if (argc < 1) {
		err = kb_usage("kbuild store: missing command (see 'kbuild help store')");
	} else if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		kb_store_help(NULL, stdout);
		return 0;
	} else {
		const struct cmd *c = find_cmd(argv[0]);
		if (!c) {
			err = kb_usage("kbuild store: unknown command '%s' (see 'kbuild help store')",
				       argv[0]);
		} else if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			kb_store_help(c->name, stdout);
			return 0;
		} else {
			optind = 0; /* full getopt reset: each command parses afresh */
			err = c->run(dir, argc, argv);
		}
	}
	return kb_exit_status(err);
}

/* 'kbuild fetch url|git': fetch one-off inputs into the store. Recipes use
 * the same fetchers through their lock; these commands are for scripts
 * and for checking a URL or a commit by hand. */
#include "fetch.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const usage_url = "fetch url [--jobs N] [--offline] URL SHA256 [URL SHA256]...";
static const char *const usage_git = "fetch git [--offline] URL COMMIT";

int kb_fetch_help(const char *sub, FILE *out)
{
	if (!sub || !strcmp(sub, "url"))
		fprintf(out, "usage: kbuild %s\n\nDownloads each URL into the store; its content must "
			     "hash to SHA256.\nRetries timeouts and server errors, resumes dropped "
			     "transfers, N at a time.\n", usage_url);
	if (!sub)
		fputc('\n', out);
	if (!sub || !strcmp(sub, "git"))
		fprintf(out, "usage: kbuild %s\n\nStores the tree of COMMIT (a full 40-digit id) "
			     "from the repository at URL\nand prints its hash.\n", usage_git);
	return !sub || !strcmp(sub, "url") || !strcmp(sub, "git");
}

static kb_err *parse_opts(int argc, char **argv, kb_fetch_opts *o, const char *cmd)
{
	static const struct option lo[] = {{"jobs", required_argument, NULL, 'j'},
					   {"offline", no_argument, NULL, 'o'},
					   {0}};
	kb_err *err = NULL;
	char *name = kb_asprintf("fetch %s", cmd);
	optind = 0;
	int c;
	while (!err && (c = kb_getopt(argc, argv, "j:", lo, name, &err)) > 0) {
		if (c == 'j') {
			char *end;
			long j = strtol(optarg, &end, 10);
			if (*end || j < 1 || j > 64)
				err = kb_usage("kbuild %s: --jobs takes a number from 1 to 64", name);
			o->jobs = (int)j;
		} else {
			o->offline = 1;
		}
	}
	free(name);
	return err;
}

static kb_err *cmd_url(kb_store **s, const char *dir, int argc, char **argv)
{
	kb_fetch_opts o;
	kb_fetch_opts_init(&o);
	kb_err *err = parse_opts(argc, argv, &o, "url");
	if (err)
		return err;
	int n = argc - optind;
	if (n < 2 || n % 2)
		return kb_usage("kbuild fetch url: give URL SHA256 pairs (usage: kbuild %s)",
				usage_url);
	kb_url_req *r = kb_calloc((size_t)n / 2, sizeof *r);
	for (int i = 0; i < n / 2 && !err; i++) {
		const char *h = argv[optind + 2 * i + 1];
		r[i].url = argv[optind + 2 * i];
		r[i].label = r[i].url;
		if (kb_hash_parse(h, strlen(h), &r[i].sha256))
			err = kb_usage("kbuild fetch url: '%s' is not a sha256 (64 lowercase hex digits)",
				       h);
	}
	if (!err && !(err = kb_store_open(dir, 1, s)))
		err = kb_fetch_urls(*s, r, (size_t)n / 2, &o);
	for (int i = 0; i < n / 2; i++) {
		if (!err) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&r[i].sha256, hex);
			printf("%s\n", hex);
		}
		kb_err_free(r[i].err);
	}
	free(r);
	return err;
}

static kb_err *cmd_git(kb_store **s, const char *dir, int argc, char **argv)
{
	kb_fetch_opts o;
	kb_fetch_opts_init(&o);
	kb_err *err = parse_opts(argc, argv, &o, "git");
	if (err)
		return err;
	if (argc - optind != 2)
		return kb_usage("kbuild fetch git: give URL and COMMIT (usage: kbuild %s)", usage_git);
	kb_git_req r = {.url = argv[optind], .commit = argv[optind + 1], .label = argv[optind]};
	if (!(err = kb_store_open(dir, 1, s)) && !(err = kb_fetch_git(*s, &r, &o))) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&r.tree, hex);
		printf("%s\n", hex);
	}
	return err;
}

int kb_fetch_main(const char *dir, int argc, char **argv)
{
	kb_err *err;
	kb_store *s = NULL;
	if (argc < 1)
		err = kb_usage("kbuild fetch: missing command: url or git (see 'kbuild help fetch')");
	else if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		kb_fetch_help(argv[0], stdout);
		return 0;
	} else if (!strcmp(argv[0], "url"))
		err = cmd_url(&s, dir, argc, argv);
	else if (!strcmp(argv[0], "git"))
		err = cmd_git(&s, dir, argc, argv);
	else
		err = kb_usage("kbuild fetch: unknown command '%s' (url or git)", argv[0]);
	kb_store_close(s);
	return kb_exit_status(err);
}

/* For t-fetch-git.sh, which compiles it against the kbuild library under
 * test: calls kb_fetch_git with what the CLI cannot give, a tree already
 * known from a lock (has_tree).
 *
 *   t-fetch-git-drv STORE URL COMMIT TREE|- offline|online
 *
 * prints the tree hash, or the error on stderr with its exit status. */
#include "../builder/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s STORE URL COMMIT TREE|- offline|online\n", argv[0]);
		return 2;
	}
	kb_fetch_opts o;
	kb_fetch_opts_init(&o);
	o.offline = !strcmp(argv[5], "offline");
	kb_git_req r = {.url = argv[2], .commit = argv[3], .label = "input 'src' (test:1:1)"};
	if (strcmp(argv[4], "-")) {
		if (kb_hash_parse(argv[4], strlen(argv[4]), &r.tree)) {
			fprintf(stderr, "bad tree hash %s\n", argv[4]);
			return 2;
		}
		r.has_tree = 1;
	}
	kb_store *s;
	kb_err *err = kb_store_open(argv[1], 1, &s);
	if (!err) {
		err = kb_fetch_git(s, &r, &o);
		kb_store_close(s);
	}
	if (err) {
		fprintf(stderr, "%s\n", err->msg);
		int code = err->code;
		kb_err_free(err);
		return code;
	}
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&r.tree, hex);
	printf("%s\n", hex);
	return 0;
}

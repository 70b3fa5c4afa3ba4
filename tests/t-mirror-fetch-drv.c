/* For t-mirror-sync.sh, which compiles it against the kbuild library
 * under test: fetches metadata whose hash is not known (any_content),
 * what no command does by itself.
 *
 *   t-mirror-fetch-drv STORE URL MAX-SIZE store|memory
 *
 * prints "SHA256 SIZE HTTP-STATUS", or the error on stderr with its exit
 * status. "memory": into a buffer, nothing stored. */
#include "../mirror/mirror.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s STORE URL MAX-SIZE store|memory\n", argv[0]);
		return 2;
	}
	kb_fetch_opts o;
	kb_fetch_opts_init(&o);
	kb_buf body = {0};
	kb_url_req r = {.url = argv[2], .label = "metadata 'test'", .any_content = 1,
			.max_size = strtoull(argv[3], NULL, 10)};
	if (!strcmp(argv[4], "memory"))
		r.body = &body;
	kb_store *s;
	kb_err *err = kb_store_open(argv[1], 1, &s);
	if (!err) {
		err = kb_fetch_urls(s, &r, 1, &o);
		kb_store_close(s);
	}
	if (!err && r.body) {
		kb_hash h;
		kb_sha256(body.p ? body.p : "", body.len, &h);
		if (!kb_hash_eq(&h, &r.sha256) || body.len != r.got_size)
			err = kb_errf("the body is not what sha256/got_size say");
	}
	int code = 0;
	if (err) {
		fprintf(stderr, "%s\n", err->msg);
		code = err->code;
		kb_err_free(err);
	} else {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&r.sha256, hex);
		printf("%s %" PRIu64 " %ld\n", hex, r.got_size, r.http_status);
	}
	kb_err_free(r.err);
	kb_buf_free(&body);
	return code;
}

/* URL inputs through libcurl (placeholder until the fetcher lands). */
#include "fetch.h"

kb_err *kb_fetch_urls(kb_store *s, kb_url_req *reqs, size_t n, const kb_fetch_opts *o)
{
	(void)s, (void)reqs, (void)n, (void)o;
	return kb_errf("url inputs are not implemented yet");
}

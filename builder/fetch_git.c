/* git inputs through libgit2 (placeholder until the fetcher lands). */
#include "fetch.h"

kb_err *kb_fetch_git(kb_store *s, kb_git_req *r, const kb_fetch_opts *o)
{
	(void)s, (void)r, (void)o;
	return kb_errf("git inputs are not implemented yet");
}

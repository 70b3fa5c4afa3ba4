/* Closures with libsolv (placeholder until it lands). */
#include "mirror.h"

kb_err *kb_mirror_closure(kb_store *s, const kb_upstream_def *ups, const kb_hash *snapshots,
			  size_t nups, const char *const *want, size_t nwant,
			  const kb_closure_opts *o, kb_arena *a, kb_pkg **out, size_t *n)
{
	(void)s, (void)ups, (void)snapshots, (void)nups, (void)want, (void)nwant, (void)o, (void)a;
	*out = NULL;
	*n = 0;
	return kb_errf("mirror closure is not implemented yet");
}

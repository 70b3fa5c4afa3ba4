/* Syncing upstream metadata into snapshots (placeholder until it lands). */
#include "mirror.h"

#include <stdlib.h>

kb_err *kb_mirror_sync(kb_store *s, const kb_upstream_def *u, const kb_fetch_opts *o,
		       kb_hash *snapshot, char **refname)
{
	(void)s, (void)o, (void)snapshot, (void)refname;
	return kb_errf("upstream '%s': mirror sync is not implemented yet", u->name);
}

kb_err *kb_mirror_latest(kb_store *s, const char *upstream, kb_hash *snapshot, int *found)
{
	char *ref = kb_asprintf("mirror/%s/latest", upstream);
	kb_oid o;
	kb_err *err = kb_ref_get(s, ref, &o, found);
	free(ref);
	if (!err && *found)
		*snapshot = o.hash;
	return err;
}

kb_err *kb_mirror_download(kb_store *s, const kb_upstream_def *ups, size_t nups,
			   const kb_pkg *pkgs, size_t n, const kb_fetch_opts *o)
{
	(void)s, (void)ups, (void)nups, (void)pkgs, (void)n, (void)o;
	return kb_errf("mirror download is not implemented yet");
}

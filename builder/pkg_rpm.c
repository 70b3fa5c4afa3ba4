/* The .rpm writer (stub until the next commit). */
#include "pkg.h"

kb_err *kb_pkg_write_rpm(kb_store *s, kb_txn *t, const kb_pkg_list *p, const kb_pkg_meta *m,
			 kb_hash *out)
{
	(void)s, (void)t, (void)p, (void)out;
	return kb_errf("cannot make the .rpm of %s: not implemented yet", m->name);
}

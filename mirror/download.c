/* Downloading packages a closure chose: each from its upstream's URL plus
 * the path its signed index names, checked against the size and sha256
 * that index names, all in one parallel fetch. */
#include "mirror.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

kb_err *kb_mirror_download(kb_store *s, const kb_upstream_def *ups, size_t nups,
			   const kb_pkg *pkgs, size_t n, const kb_fetch_opts *o)
{
	if (!n)
		return NULL;
	kb_url_req *r = kb_calloc(n, sizeof *r);
	kb_err *err = NULL;
	size_t made = 0;
	for (size_t i = 0; i < n && !err; i++, made++) {
		const kb_pkg *p = &pkgs[i];
		const kb_upstream_def *u = NULL;
		for (size_t k = 0; k < nups && !u; k++)
			if (!strcmp(ups[k].name, p->upstream))
				u = &ups[k];
		if (!u) {
			err = kb_errf("package %s %s %s names upstream '%s', which is not among the "
				      "upstreams given", p->name, p->version, p->arch, p->upstream);
			break;
		}
		kb_snap sn = {.s = s, .u = u, .o = o};
		if ((err = kb_mirror_check_path(&sn, p->path, "the index of package")))
			break;
		r[i] = (kb_url_req){
			.url = kb_mirror_url(u->url, p->path),
			.label = kb_asprintf("package %s %s %s from %s", p->name, p->version, p->arch,
					     u->name),
			.sha256 = p->sha256,
			.size = p->size,
			.has_size = p->size != 0,
		};
	}
	if (!err)
		err = kb_fetch_urls(s, r, n, o);
	for (size_t i = 0; i < made && i < n; i++) {
		free((char *)r[i].url);
		free((char *)r[i].label);
		kb_err_free(r[i].err);
	}
	free(r);
	return err;
}

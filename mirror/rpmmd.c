/* rpm-md upstreams (one repository: URL holds repodata/): repomd.xml,
 * verified with its detached signature repomd.xml.asc against the
 * keyring, names each metadata file with a checksum, a size and a
 * location; primary, filelists, other, group (comps) and modules are
 * fetched by their sha256 and size. The snapshot holds them by their
 * paths on the server:
 *
 *   repodata/repomd.xml
 *   repodata/repomd.xml.asc
 *   repodata/HASH-primary.xml.gz ... (as repomd.xml names them)
 *
 * repomd.xml is parsed by libsolv (repo_add_repomdxml), which closure.c
 * reads it with too. A wanted file with only an MD5 or SHA-1 checksum is
 * refused, as is one whose checksum kbuild cannot check (sha512). */
#include "internal.h"

#include <solv/chksum.h>
#include <solv/knownid.h>
#include <solv/pool.h>
#include <solv/repo.h>
#include <solv/repo_repomdxml.h>
#include <solv/repodata.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPOMD "repodata/repomd.xml"
#define REPOMD_ASC "repodata/repomd.xml.asc"

/* the metadata a build needs, and what comes with it; primary is required */
static const char *const wanted[] = {"primary", "filelists", "other",  "group",
				     "group_gz", "group_xz",  "modules"};

/* fetches repomd.xml and checks its signature; *xml gets it */
static kb_err *fetch_repomd(kb_snap *sn, kb_buf *xml, char **url)
{
	const kb_upstream_def *u = sn->u;
	kb_meta m[2] = {{.path = REPOMD, .max = KB_META_MAX},
			{.path = REPOMD_ASC, .max = KB_SIG_MAX, .optional = 1}};
	kb_buf keyring = {0};
	char *signer = NULL;
	kb_err *err = kb_meta_fetch(sn, m, u->has_keyring ? 2 : 1);
	if (!err)
		*url = kb_strdup(m[0].url);
	if (!err && !u->has_keyring) {
		kb_warn("upstream '%s': no keyring: %s is taken unsigned", u->name, REPOMD);
	} else if (!err && m[1].missing) {
		if (u->require_signature)
			err = kb_up_errf(sn, "%s (%s) is not signed: %s is not there (HTTP 404), and "
					     "the upstream's metadata must be signed by its keyring",
					 REPOMD, m[0].url, REPOMD_ASC);
		else
			kb_warn("upstream '%s': %s is not signed (no %s); taken as it is, since the "
				"upstream does not require a signature", u->name, REPOMD, REPOMD_ASC);
	} else if (!err) {
		if (!(err = kb_snap_keyring(sn, &keyring)) &&
		    (err = kb_pgp_verify_detached(&keyring, &m[0].body, &m[1].body, &signer)))
			err = kb_err_wrap(err, "upstream '%s': %s (%s), signature %s", u->name, REPOMD,
					  m[0].url, REPOMD_ASC);
		if (!err) {
			kb_info("upstream '%s': %s signed by %s", u->name, REPOMD, signer);
			err = kb_snap_add_mem(sn, REPOMD_ASC, &m[1].body);
		}
	}
	if (!err) {
		kb_buf_add(xml, m[0].body.p ? m[0].body.p : "", m[0].body.len);
		err = kb_snap_add_mem(sn, REPOMD, &m[0].body);
	}
	free(signer);
	kb_buf_free(&keyring);
	kb_meta_free(m, 2);
	return err;
}

static const char *chk_name(Id type)
{
	return type == REPOKEY_TYPE_MD5	     ? "md5"
	       : type == REPOKEY_TYPE_SHA1   ? "sha1"
	       : type == REPOKEY_TYPE_SHA224 ? "sha224"
	       : type == REPOKEY_TYPE_SHA256 ? "sha256"
	       : type == REPOKEY_TYPE_SHA384 ? "sha384"
	       : type == REPOKEY_TYPE_SHA512 ? "sha512"
					     : "unknown";
}

/* the wanted files repomd.xml names */
static kb_err *parse_repomd(kb_snap *sn, const kb_buf *xml, const char *what, kb_indexfile **out,
			    size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (!xml->len)
		return kb_up_errf(sn, "%s is empty", what);
	FILE *fp = fmemopen(xml->p, xml->len, "r");
	if (!fp)
		return kb_up_errf(sn, "%s: cannot read it from memory", what);
	Pool *pool = pool_create();
	Repo *repo = repo_create(pool, "repomd");
	kb_err *err = NULL;
	if (repo_add_repomdxml(repo, fp, 0))
		err = kb_up_errf(sn, "%s is not repomd.xml: %s", what, pool_errstr(pool));
	fclose(fp);
	kb_indexfile *f = NULL;
	size_t n = 0, cap = 0;
	int primary = 0;
	for (size_t w = 0; !err && w < sizeof wanted / sizeof wanted[0]; w++) {
		const char *t = wanted[w];
		Dataiterator di;
		dataiterator_init(&di, pool, repo, SOLVID_META, REPOSITORY_REPOMD_TYPE, t,
				  SEARCH_STRING);
		dataiterator_prepend_keyname(&di, REPOSITORY_REPOMD);
		if (!dataiterator_step(&di)) {
			dataiterator_free(&di);
			continue;
		}
		dataiterator_setpos_parent(&di);
		const char *loc = pool_lookup_str(pool, SOLVID_POS, REPOSITORY_REPOMD_LOCATION);
		Id ct = 0;
		const unsigned char *chk =
			pool_lookup_bin_checksum(pool, SOLVID_POS, REPOSITORY_REPOMD_CHECKSUM, &ct);
		unsigned long long size = pool_lookup_num(pool, SOLVID_POS, REPOSITORY_REPOMD_SIZE, 0);
		if (!loc || !*loc)
			err = kb_up_errf(sn, "%s gives the %s metadata no location", what, t);
		else if (!chk || !ct)
			err = kb_up_errf(sn, "%s gives the %s metadata (%s) no checksum", what, t, loc);
		else if (ct != REPOKEY_TYPE_SHA256)
			err = kb_up_errf(sn, "%s gives the %s metadata (%s) only a %s checksum; only "
					     "sha256 is accepted%s",
					 what, t, loc, chk_name(ct),
					 ct == REPOKEY_TYPE_MD5 || ct == REPOKEY_TYPE_SHA1
						 ? " (md5 and sha1 are not trusted)"
						 : "");
		else if (!size)
			err = kb_up_errf(sn, "%s gives the %s metadata (%s) no size", what, t, loc);
		else
			err = kb_mirror_check_path(sn, loc, what);
		for (size_t i = 0; i < n && !err; i++)
			if (!strcmp(f[i].path, loc))
				err = kb_up_errf(sn, "%s names %s twice", what, loc);
		if (!err) {
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				f = kb_realloc(f, cap * sizeof *f);
			}
			kb_indexfile *x = &f[n++];
			memset(x, 0, sizeof *x);
			x->path = kb_strdup(loc);
			memcpy(x->sha256.b, chk, 32);
			x->size = size;
			x->what = t; /* static */
			primary |= !strcmp(t, "primary");
		}
		dataiterator_free(&di);
	}
	if (!err && !primary)
		err = kb_up_errf(sn, "%s names no primary metadata: not an rpm-md repository?", what);
	pool_free(pool);
	if (err) {
		for (size_t i = 0; i < n; i++)
			free(f[i].path);
		free(f);
		return err;
	}
	*out = f;
	*nout = n;
	return NULL;
}

kb_err *kb_rpmmd_sync(kb_snap *sn)
{
	kb_buf xml = {0};
	char *url = NULL;
	kb_indexfile *f = NULL;
	size_t n = 0;
	kb_err *err = fetch_repomd(sn, &xml, &url);
	if (!err) {
		char *what = kb_asprintf("%s (%s)", REPOMD, url);
		err = parse_repomd(sn, &xml, what, &f, &n);
		free(what);
	}
	if (!err)
		err = kb_snap_fetch_indexes(sn, f, n);
	for (size_t i = 0; i < n; i++)
		free(f[i].path);
	free(f);
	free(url);
	kb_buf_free(&xml);
	return err;
}

/* A darksite's apt repository (Debian's repository format, as apt
 * reads it):
 *
 *   pool/COMPONENT/P/NAME/NAME_VERSION_ARCH.deb      (P: l, or libl for lib*)
 *   dists/SUITE/COMPONENT/binary-ARCH/Packages, Packages.xz
 *   dists/SUITE/COMPONENT/binary-ARCH/by-hash/SHA256/HEX
 *   dists/SUITE/Release, Release.gpg (armored, detached), InRelease (clearsigned)
 *   KEYNAME.asc, KEYNAME.gpg                          (the public key)
 *
 * One suite and one component per directory. Architecture "all" packages
 * are listed in every architecture's index; a repository of only those
 * has the one architecture "all". No Valid-Until: an offline site's
 * clients have clocks that drift and nobody to re-sign. Everything,
 * signatures included, is made in memory before the first file is
 * written; the by-hash files named by the Release being replaced are
 * kept, for clients that fetched it a moment before. */
#include "publish.h"

#include <lzma.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
	char *rel;    /* path below dists/SUITE/ */
	kb_buf body;
	kb_hash sha;
	char md5[33];
} index_file;

static void rfc2822(int64_t epoch, char out[40])
{
	static const char *const day[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)epoch;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d UTC", day[tm.tm_wday], tm.tm_mday,
		 mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void md5_hex(const void *p, size_t n, char out[33])
{
	unsigned char d[16];
	unsigned int dl = 0;
	EVP_Digest(p, n, d, &dl, EVP_md5(), NULL);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static kb_err *xz(const kb_buf *in, kb_buf *out)
{
	size_t cap = lzma_stream_buffer_bound(in->len), pos = 0;
	out->p = kb_realloc(out->p, cap);
	out->cap = cap;
	/* preset 6, CRC64: what xz(1) does; the same input gives the same bytes */
	lzma_ret r = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, (const uint8_t *)in->p,
					     in->len, (uint8_t *)out->p, &pos, cap);
	if (r != LZMA_OK)
		return kb_errf("xz compression failed (liblzma error %d)", (int)r);
	out->len = pos;
	return NULL;
}

static char *pool_path(kb_arena *a, const char *comp, const kb_pubpkg *p)
{
	const char *colon = strchr(p->version, ':'); /* the epoch is not in file names */
	const char *v = colon ? colon + 1 : p->version;
	int lib = !strncmp(p->name, "lib", 3) && strlen(p->name) > 3;
	return kb_arena_printf(a, "pool/%s/%.*s/%s/%s_%s_%s.deb", comp, lib ? 4 : 1, p->name,
			       p->name, p->name, v, p->arch);
}

static void finish_index(index_file *f)
{
	kb_sha256(f->body.p ? f->body.p : "", f->body.len, &f->sha);
	md5_hex(f->body.p ? f->body.p : "", f->body.len, f->md5);
}

static void by_hash_rel(kb_buf *b, const char *rel, const char *hex)
{
	const char *slash = strrchr(rel, '/');
	b->len = 0;
	kb_buf_addf(b, "%.*s/by-hash/SHA256/%s", slash ? (int)(slash - rel) : 0, rel, hex);
}

/* keeps the by-hash files the Release being replaced names */
static void keep_old_by_hash(kb_pubout *out, const char *dists)
{
	char *rel = kb_asprintf("%s/Release", dists);
	kb_buf old = {0}, path = {0};
	kb_err *err = kb_read_file(out->dirfd, rel, 64u << 20, &old);
	kb_err_free(err);
	int in_sha = 0;
	char *save = NULL;
	kb_buf_addc(&old, 0);
	for (char *l = strtok_r(old.p, "\n", &save); !err && l; l = strtok_r(NULL, "\n", &save)) {
		if (l[0] != ' ') {
			in_sha = !strcmp(l, "SHA256:");
			continue;
		}
		char hex[65], file[1024];
		unsigned long long size;
		if (!in_sha || sscanf(l, " %64s %llu %1023s", hex, &size, file) != 3)
			continue;
		by_hash_rel(&path, file, hex);
		kb_buf_addc(&path, 0);
		char *p = kb_asprintf("%s/%s", dists, path.p);
		kb_pubout_keep(out, p);
		free(p);
	}
	kb_buf_free(&path);
	kb_buf_free(&old);
	free(rel);
}

kb_err *kb_pub_apt(kb_store *s, kb_pubpkg *pkgs, size_t n, const kb_publish_opts *o,
		   const kb_pubkey *key, kb_pubout *out)
{
	const char *suite = o->suite ? o->suite : "stable";
	const char *codename = o->codename ? o->codename : suite;
	const char *comp = o->component ? o->component : "main";
	const char *keyname = o->keyname ? o->keyname : "archive-key";
	kb_arena *a = kb_arena_new();
	char **pool = kb_arena_alloc(a, n * sizeof *pool);
	for (size_t i = 0; i < n; i++)
		pool[i] = pool_path(a, comp, &pkgs[i]);

	/* the architectures: every one named, "all" only if nothing else is */
	const char **arch = kb_arena_alloc(a, (n + 1) * sizeof *arch);
	size_t narch = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(pkgs[i].arch, "all"))
			continue;
		size_t k = 0;
		while (k < narch && strcmp(arch[k], pkgs[i].arch))
			k++;
		if (k == narch)
			arch[narch++] = pkgs[i].arch;
	}
	if (!narch)
		arch[narch++] = "all";
	qsort(arch, narch, sizeof *arch, (int (*)(const void *, const void *))strcmp);

	/* the indexes, two per architecture */
	index_file *f = kb_calloc(2 * narch, sizeof *f);
	kb_err *err = NULL;
	for (size_t k = 0; k < narch && !err; k++) {
		index_file *plain = &f[2 * k], *x = &f[2 * k + 1];
		for (size_t i = 0; i < n; i++) {
			const kb_pubpkg *p = &pkgs[i];
			if (strcmp(p->arch, arch[k]) && strcmp(p->arch, "all"))
				continue;
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&p->hash, hex);
			kb_buf_add(&plain->body, p->meta, p->metalen);
			kb_buf_addf(&plain->body, "\nFilename: %s\nSize: %llu\nMD5sum: %s\nSHA256: %s\n\n",
				    pool[i], (unsigned long long)p->size, p->md5, hex);
		}
		plain->rel = kb_asprintf("%s/binary-%s/Packages", comp, arch[k]);
		x->rel = kb_asprintf("%s/binary-%s/Packages.xz", comp, arch[k]);
		err = xz(&plain->body, &x->body);
		finish_index(plain);
		finish_index(x);
	}

	/* Release, and its two signatures */
	kb_buf rel = {0}, inrel = {0}, gpg = {0}, path = {0};
	char date[40];
	rfc2822(o->epoch, date);
	if (!err) {
		kb_buf_addf(&rel, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\nDate: %s\n",
			    o->origin ? o->origin : "kbuild", o->label ? o->label : "kbuild", suite,
			    codename, date);
		kb_buf_adds(&rel, "Architectures:");
		for (size_t k = 0; k < narch; k++)
			kb_buf_addf(&rel, " %s", arch[k]);
		kb_buf_addf(&rel, "\nComponents: %s\nAcquire-By-Hash: yes\nMD5Sum:\n", comp);
		for (size_t i = 0; i < 2 * narch; i++)
			kb_buf_addf(&rel, " %s %llu %s\n", f[i].md5, (unsigned long long)f[i].body.len,
				    f[i].rel);
		kb_buf_adds(&rel, "SHA256:\n");
		for (size_t i = 0; i < 2 * narch; i++) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&f[i].sha, hex);
			kb_buf_addf(&rel, " %s %llu %s\n", hex, (unsigned long long)f[i].body.len,
				    f[i].rel);
		}
		err = kb_pgp_sign(o->sec, rel.p, rel.len, kb_pub_sign_time(o), KB_PGP_CLEARSIGN, &inrel);
		if (!err)
			err = kb_pgp_sign(o->sec, rel.p, rel.len, kb_pub_sign_time(o), KB_PGP_DETACHED_ARMOR,
					  &gpg);
		if (err)
			err = kb_err_wrap(err, "signing dists/%s/Release", suite);
	}

	/* the writes: packages, indexes (by hash first), key; the signed files last */
	char *dists = kb_asprintf("dists/%s", suite);
	for (size_t i = 0; i < n && !err; i++)
		err = kb_pubout_link(out, s, &pkgs[i].hash, pool[i]);
	for (size_t i = 0; i < 2 * narch && !err; i++) {
		char hex[KB_HEX_LEN + 1];
		kb_hash_hex(&f[i].sha, hex);
		by_hash_rel(&path, f[i].rel, hex);
		kb_buf_addc(&path, 0);
		char *bh = kb_asprintf("%s/%s", dists, path.p);
		err = kb_pubout_file(out, bh, f[i].body.p, f[i].body.len);
		free(bh);
	}
	for (size_t i = 0; i < 2 * narch && !err; i++) {
		char *p = kb_asprintf("%s/%s", dists, f[i].rel);
		err = kb_pubout_file(out, p, f[i].body.p, f[i].body.len);
		free(p);
	}
	char *asc = kb_asprintf("%s.asc", keyname), *bin = kb_asprintf("%s.gpg", keyname);
	if (!err)
		err = kb_pubout_file(out, asc, key->asc.p, key->asc.len);
	if (!err)
		err = kb_pubout_file(out, bin, key->bin.p, key->bin.len);
	char *rg = kb_asprintf("%s/Release.gpg", dists), *r = kb_asprintf("%s/Release", dists),
	     *ir = kb_asprintf("%s/InRelease", dists);
	if (!err)
		keep_old_by_hash(out, dists);
	if (!err)
		err = kb_pubout_file(out, rg, gpg.p, gpg.len);
	if (!err)
		err = kb_pubout_file(out, r, rel.p, rel.len);
	if (!err)
		err = kb_pubout_file(out, ir, inrel.p, inrel.len);
	/* then what nothing names any more */
	if (!err)
		err = kb_pubout_prune(out, "pool");
	if (!err)
		err = kb_pubout_prune(out, dists);
	free(rg), free(r), free(ir), free(asc), free(bin), free(dists);
	for (size_t i = 0; i < 2 * narch; i++) {
		free(f[i].rel);
		kb_buf_free(&f[i].body);
	}
	free(f);
	kb_buf_free(&rel), kb_buf_free(&inrel), kb_buf_free(&gpg), kb_buf_free(&path);
	kb_arena_free(a);
	return err;
}

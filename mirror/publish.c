/* Publishing a darksite: each package's metadata from the store's action
 * cache (or, the first time, from the package itself, then cached under
 * its hash), the packages checked and put in their canonical order, the
 * key checked, then the format's writer.
 *
 * Cache entry: key sha256("kbuild publish-meta 1\0" + package hash);
 * result a blob with the control stanza or the rpm-md records; metadata
 * lines "format deb|rpm", "name", "version", "arch", "size", and "md5"
 * (deb) or "parts" and "pool" (rpm). Bump the version in the key when
 * what is cached changes. */
#include "publish.h"

#include <solv/evr.h>
#include <solv/pool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char cache_tag[] = "kbuild publish-meta 1";

int kb_pub_vercmp(char fmt, const char *a, const char *b)
{
	/* libsolv knows both orders (dpkg's ~ and epochs, rpm's rpmvercmp) */
	static Pool *deb, *rpm;
	Pool **p = fmt == 'd' ? &deb : &rpm;
	if (!*p) {
		*p = pool_create();
		pool_setdisttype(*p, fmt == 'd' ? DISTTYPE_DEB : DISTTYPE_RPM);
	}
	int c = pool_evrcmp_str(*p, a, b, EVRCMP_COMPARE);
	return c < 0 ? -1 : c > 0;
}

static void cache_key(const kb_hash *pkg, kb_hash *key)
{
	char b[sizeof cache_tag + 32];
	memcpy(b, cache_tag, sizeof cache_tag); /* with its NUL */
	memcpy(b + sizeof cache_tag, pkg->b, 32);
	kb_sha256(b, sizeof b, key);
}

static const char *meta_val(kb_arena *a, const char *meta, const char *name)
{
	size_t nl = strlen(name);
	for (const char *l = meta; l && *l;) {
		const char *eol = strchr(l, '\n');
		size_t len = eol ? (size_t)(eol - l) : strlen(l);
		if (len > nl && !strncmp(l, name, nl) && l[nl] == ' ')
			return kb_arena_strndup(a, l + nl + 1, len - nl - 1);
		l = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/* a cache hit: 1 if the entry is whole and used */
static int from_cache(kb_store *s, kb_arena *a, const kb_oid *res, const char *meta, kb_pubpkg *p)
{
	const char *fmt = meta_val(a, meta, "format"), *size = meta_val(a, meta, "size");
	p->name = (char *)meta_val(a, meta, "name");
	p->version = (char *)meta_val(a, meta, "version");
	p->arch = (char *)meta_val(a, meta, "arch");
	if (!fmt || !size || !p->name || !p->version || !p->arch)
		return 0;
	p->size = strtoull(size, NULL, 10);
	if (!strcmp(fmt, "deb")) {
		const char *md5 = meta_val(a, meta, "md5");
		if (!md5 || strlen(md5) != 32)
			return 0;
		memcpy(p->md5, md5, 33);
		p->fmt = 'd';
	} else if (!strcmp(fmt, "rpm")) {
		const char *parts = meta_val(a, meta, "parts");
		p->pool = (char *)meta_val(a, meta, "pool");
		if (!parts || !p->pool ||
		    sscanf(parts, "%zu %zu %zu", &p->part[0], &p->part[1], &p->part[2]) != 3)
			return 0;
		p->fmt = 'r';
	} else {
		return 0;
	}
	kb_buf b = {0};
	kb_err *err = kb_store_read(s, &res->hash, KB_PUB_META_MAX, &b);
	if (err || (p->fmt == 'r' && b.len != p->part[0] + p->part[1] + p->part[2])) {
		kb_err_free(err);
		kb_buf_free(&b);
		return 0;
	}
	p->meta = kb_arena_strndup(a, b.p ? b.p : "", b.len);
	p->metalen = b.len;
	kb_buf_free(&b);
	return 1;
}

static char *meta_of(const kb_pubpkg *p)
{
	if (p->fmt == 'd')
		return kb_asprintf("format deb\nname %s\nversion %s\narch %s\nsize %llu\nmd5 %s\n",
				   p->name, p->version, p->arch, (unsigned long long)p->size,
				   p->md5);
	return kb_asprintf("format rpm\nname %s\nversion %s\narch %s\nsize %llu\nparts %zu %zu "
			   "%zu\npool %s\n", p->name, p->version, p->arch,
			   (unsigned long long)p->size, p->part[0], p->part[1], p->part[2], p->pool);
}

/* a cache miss: the package itself, once */
static kb_err *from_package(kb_store *s, kb_arena *a, kb_pubpkg *p)
{
	int fd = -1;
	kb_err *err = kb_store_open_object(s, &p->hash, &fd);
	if (err)
		return kb_err_wrap(err, "%s", p->label);
	unsigned char magic[8] = {0};
	struct stat st;
	ssize_t got = pread(fd, magic, sizeof magic, 0);
	if (got < 0 || fstat(fd, &st) < 0)
		err = kb_errno(errno, "%s: reading it from the store", p->label);
	else if (got == 8 && !memcmp(magic, "!<arch>\n", 8))
		err = kb_pub_read_deb(fd, p->label, a, p);
	else if (got >= 4 && !memcmp(magic, "\xed\xab\xee\xdb", 4))
		err = kb_pub_read_rpm(fd, p->label, a, p);
	else
		err = kb_errf("%s is neither a .deb nor an .rpm package (it does not start like "
			      "either)", p->label);
	if (!err)
		p->size = (uint64_t)st.st_size;
	close(fd);
	return err;
}

static int cmp_pkg(const void *x, const void *y)
{
	const kb_pubpkg *a = x, *b = y;
	int c = strcmp(a->name, b->name);
	if (!c)
		c = kb_pub_vercmp(a->fmt, a->version, b->version);
	if (!c)
		c = strcmp(a->arch, b->arch);
	if (!c)
		c = memcmp(a->hash.b, b->hash.b, 32);
	return c;
}

/* every package's metadata; *np: how many distinct ones */
static kb_err *gather(kb_store *s, const kb_publish_pkg *in, size_t n, kb_arena *a,
		      kb_pubpkg *pp, size_t *np, kb_publish_stats *st)
{
	kb_hset *seen = kb_hset_new();
	kb_txn *txn = NULL;
	kb_err *err = NULL;
	size_t m = 0, nmiss = 0;
	size_t *miss = kb_calloc(n ? n : 1, sizeof *miss);
	kb_hash *missblob = kb_calloc(n ? n : 1, sizeof *missblob);
	for (size_t i = 0; i < n && !err; i++) {
		if (!kb_hset_add(seen, &in[i].hash))
			continue; /* named twice */
		kb_pubpkg *p = &pp[m++];
		memset(p, 0, sizeof *p);
		p->hash = in[i].hash;
		p->label = in[i].label;
		if (!kb_store_has(s, &p->hash)) {
			char hex[KB_HEX_LEN + 1];
			kb_hash_hex(&p->hash, hex);
			err = kb_errf("%s: package %s is not in the store (add it with 'kbuild store "
				      "add', or download it with 'kbuild mirror download')",
				      p->label, hex);
			break;
		}
		kb_hash key;
		kb_oid res;
		char *meta = NULL;
		int found = 0;
		cache_key(&p->hash, &key);
		if ((err = kb_ac_get(s, &key, &res, &meta, &found)))
			break;
		int hit = found && meta && from_cache(s, a, &res, meta, p);
		free(meta);
		if (hit)
			continue;
		memset(p->md5, 0, sizeof p->md5);
		p->part[0] = p->part[1] = p->part[2] = 0;
		if ((err = from_package(s, a, p)))
			break;
		st->read++;
		if (!txn && (err = kb_txn_begin(s, &txn)))
			break;
		if ((err = kb_txn_add_bytes(txn, p->meta, p->metalen, 0, &missblob[nmiss])))
			break;
		miss[nmiss++] = m - 1;
	}
	if (txn && err)
		kb_txn_abort(txn);
	else if (txn)
		err = kb_txn_commit(txn, NULL, 0);
	/* the cache is an optimisation: a failure to fill it is only a warning */
	for (size_t i = 0; !err && i < nmiss; i++) {
		kb_pubpkg *p = &pp[miss[i]];
		kb_hash key;
		kb_oid res = {KB_BLOB, missblob[i]};
		cache_key(&p->hash, &key);
		char *meta = meta_of(p);
		kb_err *e = kb_ac_put(s, &key, &res, meta);
		if (e) {
			kb_warn("%s: its metadata stays uncached: %s", p->label, e->msg);
			kb_err_free(e);
		}
		free(meta);
	}
	free(miss);
	free(missblob);
	kb_hset_free(seen);
	*np = m;
	return err;
}

static kb_err *check_set(const kb_pubpkg *pp, size_t n)
{
	if (!n)
		return kb_usage("nothing to publish: name at least one package");
	for (size_t i = 1; i < n; i++)
		if (pp[i].fmt != pp[0].fmt)
			return kb_errf("%s is %s but %s is %s: a repository holds either .deb or "
				       ".rpm packages; publish them into two directories",
				       pp[0].label, pp[0].fmt == 'd' ? "a .deb" : "an .rpm",
				       pp[i].label, pp[i].fmt == 'd' ? "a .deb" : "an .rpm");
	for (size_t i = 1; i < n; i++)
		if (!strcmp(pp[i].name, pp[i - 1].name) && !strcmp(pp[i].arch, pp[i - 1].arch) &&
		    !kb_pub_vercmp(pp[i].fmt, pp[i].version, pp[i - 1].version))
			return kb_errf("%s and %s are both %s %s %s, with different contents: a "
				       "repository can hold only one of them", pp[i - 1].label,
				       pp[i].label, pp[i].name, pp[i].version, pp[i].arch);
	return NULL;
}

kb_err *kb_publish(kb_store *s, const kb_publish_pkg *pkgs, size_t n, const kb_publish_opts *o,
		   kb_publish_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!o->outdir || !*o->outdir)
		return kb_usage("publish: no output directory");
	if (o->epoch < 0)
		return kb_usage("publish: SOURCE_DATE_EPOCH must not be negative");
	if (!o->sec)
		return kb_usage("publish: no signing key");
	kb_arena *a = kb_arena_new();
	kb_pubpkg *pp = kb_calloc(n ? n : 1, sizeof *pp);
	size_t m = 0;
	kb_pubkey key = {0};
	kb_pubout out = {.dirfd = -1};
	kb_err *err = gather(s, pkgs, n, a, pp, &m, st);
	if (!err) {
		qsort(pp, m, sizeof *pp, cmp_pkg);
		err = check_set(pp, m);
	}
	if (!err)
		err = kb_pub_key(o->sec, o->pub, kb_pub_sign_time(o), &key);
	if (!err)
		err = kb_pubout_open(o->outdir, st, &out);
	if (!err) {
		st->packages = m;
		st->format = pp[0].fmt == 'd' ? "apt" : "rpm-md";
		err = pp[0].fmt == 'd' ? kb_pub_apt(s, pp, m, o, &key, &out)
				       : kb_pub_rpm(s, pp, m, o, &key, &out);
	}
	kb_pubout_close(&out);
	kb_pubkey_free(&key);
	free(pp);
	kb_arena_free(a);
	return err;
}

/* OpenPGP signatures under 'kbuild verify': the verifier has the public
 * key (from the manifest) but not the secret one, so every signature a
 * darksite or a signed RPM asks for is taken from what was published,
 * after checking that it verifies with that key over exactly the data the
 * rebuild would sign: a rebuilt Release, repomd.xml or RPM header. A
 * rebuild is then byte-identical iff it signs the same bytes, as with the
 * module signatures of replay.c. When nothing published verifies over the
 * data (the rebuild differs), a placeholder stands in for the signature,
 * the build goes on, and the comparison names the files that differ. */
#include "verify_run.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* armored files are small; an RPM's signature header is read on its own */
#define ARMOR_MAX (1u << 20)
#define RPM_SIGTAG_RSA 268

int kb_pgp_candidate(const char *kind, const char *path)
{
	size_t n = strlen(path);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!strcmp(kind, "rpm"))
		return n > 4 && !strcmp(path + n - 4, ".rpm") ? KB_PGP_DETACHED + 1 : 0;
	if (strcmp(kind, "darksite"))
		return 0;
	if (!strcmp(base, "InRelease"))
		return KB_PGP_CLEARSIGN + 1;
	if (n > 4 && (!strcmp(path + n - 4, ".gpg") || !strcmp(path + n - 4, ".asc")))
		return KB_PGP_DETACHED_ARMOR + 1; /* or the exported key: see the content */
	return 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* the RSA header signature (RPMSIGTAG_RSA) in an rpm's signature header;
 * out stays empty when the package has none */
static kb_err *rpm_signature(int fd, const char *what, kb_buf *out)
{
	unsigned char h[96 + 16];
	size_t got;
	kb_err *err = kb_read_full(fd, h, sizeof h, &got, what);
	if (err)
		return err;
	static const unsigned char lead[4] = {0xed, 0xab, 0xee, 0xdb}, hm[4] = {0x8e, 0xad, 0xe8, 0x01};
	if (got < sizeof h || memcmp(h, lead, 4) || memcmp(h + 96, hm, 4))
		return kb_errf("%s is not an rpm (no lead or signature header)", what);
	uint32_t nidx = be32(h + 104), hsize = be32(h + 108);
	if (nidx > 4096 || hsize > 64u << 20)
		return kb_errf("%s has an implausible signature header (%u entries, %u bytes)", what,
			       nidx, hsize);
	size_t isz = (size_t)nidx * 16;
	unsigned char *b = kb_malloc(isz + hsize + 1);
	if (!(err = kb_read_full(fd, b, isz + hsize, &got, what)) && got != isz + hsize)
		err = kb_errf("%s ends inside its signature header", what);
	for (uint32_t i = 0; !err && i < nidx; i++) {
		const unsigned char *e = b + (size_t)i * 16;
		uint32_t off = be32(e + 8), cnt = be32(e + 12);
		if (be32(e) != RPM_SIGTAG_RSA)
			continue;
		if (be32(e + 4) != 7 /* BIN */ || off > hsize || cnt > hsize - off)
			err = kb_errf("%s has a malformed RSA signature entry", what);
		else
			kb_buf_add(out, b + isz + off, cnt);
		break;
	}
	free(b);
	return err;
}

static int starts(const kb_buf *b, const char *p)
{
	return b->len >= strlen(p) && !memcmp(b->p, p, strlen(p));
}

/* a published file of step name, kept when it is a signature of mode */
static kb_err *add_file(kb_replay *x, size_t key, const char *name, const char *path,
			const kb_hash *h, int mode)
{
	char *what = kb_asprintf("the published %s/%s", name, path);
	int fd;
	kb_err *err = kb_store_open_object(x->s, h, &fd);
	kb_buf b = {0};
	struct stat st;
	if (!err) {
		if (mode == KB_PGP_DETACHED)
			err = rpm_signature(fd, what, &b);
		else if (fstat(fd, &st) < 0 || st.st_size > ARMOR_MAX)
			; /* no signature: too big */
		else {
			size_t got;
			b.p = kb_malloc((size_t)st.st_size + 1);
			b.cap = (size_t)st.st_size + 1;
			if (!(err = kb_read_full(fd, b.p, (size_t)st.st_size, &got, what)))
				b.len = got;
		}
		close(fd);
	}
	int keep = !err && b.len &&
		   (mode == KB_PGP_DETACHED ||
		    (mode == KB_PGP_CLEARSIGN && starts(&b, "-----BEGIN PGP SIGNED MESSAGE-----")) ||
		    (mode == KB_PGP_DETACHED_ARMOR && starts(&b, "-----BEGIN PGP SIGNATURE-----")));
	if (keep) {
		x->pgp = kb_realloc(x->pgp, (x->npgp + 1) * sizeof *x->pgp);
		x->pgp[x->npgp++] = (kb_pgp_sig){(kb_pgp_mode)mode, b, key, what};
	} else {
		kb_buf_free(&b);
		free(what);
	}
	return err;
}

kb_err *kb_verify_pgp_load(kb_replay *x, json_t *m)
{
	size_t i, k;
	json_t *st, *o;
	kb_err *err = NULL;
	json_array_foreach(json_object_get(m, "steps"), i, st) {
		json_t *g = json_object_get(st, "openpgp");
		if (err || !g)
			continue;
		const char *name = kb_jstr(st, "name"), *pub = kb_jstr(g, "public_key");
		x->keys = kb_realloc(x->keys, (x->nkeys + 1) * sizeof *x->keys);
		x->keys[x->nkeys] = (kb_buf){0};
		kb_buf_add(&x->keys[x->nkeys], pub, strlen(pub));
		x->nkeys++;
		json_array_foreach(json_object_get(m, "outputs"), k, o) {
			int mode = kb_pgp_candidate(kb_jstr(st, "kind"), kb_jstr(o, "path"));
			kb_hash h = kb_jhash(o, "sha256");
			if (!err && mode && !strcmp(kb_jstr(o, "step"), name))
				err = add_file(x, x->nkeys - 1, name, kb_jstr(o, "path"), &h, mode - 1);
		}
	}
	return err;
}

static const char *mode_name(kb_pgp_mode m)
{
	return m == KB_PGP_CLEARSIGN	     ? "clearsigned document (InRelease)"
	       : m == KB_PGP_DETACHED_ARMOR ? "armored detached signature (Release.gpg, "
					      "repomd.xml.asc)"
					    : "RPM header signature";
}

/* 1 if sig, signed by key, is a signature of mode over data */
static int verifies(const kb_pgp_sig *sig, const kb_buf *key, const kb_buf *data)
{
	char *signer = NULL;
	kb_buf text = {0};
	kb_err *err = sig->mode == KB_PGP_CLEARSIGN
			      ? kb_pgp_verify_clearsigned(key, &sig->bytes, &text, &signer)
			      : kb_pgp_verify_detached(key, data, &sig->bytes, &signer);
	/* a clearsigned text without a final newline is read back with one */
	int ok = !err && (sig->mode != KB_PGP_CLEARSIGN ||
			  (text.len == data->len && !memcmp(text.p, data->p, data->len)) ||
			  (text.len == data->len + 1 && !memcmp(text.p, data->p, data->len) &&
			   text.p[data->len] == '\n' && (!data->len || data->p[data->len - 1] != '\n')));
	kb_err_free(err);
	kb_buf_free(&text);
	free(signer);
	return ok;
}

kb_err *kb_verify_replay_pgp(void *ctx, const void *data, size_t len, kb_pgp_mode mode,
			     kb_buf *out)
{
	kb_replay *x = ctx;
	const kb_buf d = {(char *)data, len, 0};
	out->len = 0;
	for (size_t i = 0; i < x->npgp; i++) {
		const kb_pgp_sig *c = &x->pgp[i];
		if (c->mode == mode && verifies(c, &x->keys[c->key], &d)) {
			kb_buf_add(out, c->bytes.p, c->bytes.len);
			x->npgp_ok++;
			return NULL;
		}
	}
	x->bad = kb_realloc(x->bad, (x->nbad + 1) * sizeof *x->bad);
	x->bad[x->nbad++] = kb_asprintf("a rebuilt %s: no published signature verifies over the "
					"rebuilt data with the manifest's OpenPGP key, so what was "
					"signed differs (the files below say how)", mode_name(mode));
	kb_buf_adds(out, "kbuild verify: no published signature verifies over this rebuilt data\n");
	return NULL;
}

void kb_verify_pgp_free(kb_replay *x)
{
	for (size_t i = 0; i < x->npgp; i++) {
		kb_buf_free(&x->pgp[i].bytes);
		free((char *)x->pgp[i].what);
	}
	for (size_t i = 0; i < x->nkeys; i++)
		kb_buf_free(&x->keys[i]);
	free(x->pgp);
	free(x->keys);
}

/* SHA-256 through OpenSSL's EVP interface (uses the CPU's SHA extensions),
 * hex conversion, and an open-addressing set keyed by hashes. */
#include "common.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kb_sha {
	EVP_MD_CTX *ctx;
};

static EVP_MD *sha_md;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

/* fetched once: implicit fetching on every init costs more than hashing a
 * small file */
static void sha_init(void)
{
	sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha_md) {
		fputs("kbuild: OpenSSL has no SHA-256\n", stderr);
		abort();
	}
}

kb_sha *kb_sha_new(void)
{
	pthread_once(&sha_once, sha_init);
	kb_sha *c = kb_malloc(sizeof *c);
	c->ctx = EVP_MD_CTX_new();
	if (!c->ctx)
		abort();
	kb_sha_reset(c);
	return c;
}

void kb_sha_reset(kb_sha *c)
{
	if (!EVP_DigestInit_ex2(c->ctx, sha_md, NULL))
		abort();
}

void kb_sha_update(kb_sha *c, const void *p, size_t n)
{
	if (n && !EVP_DigestUpdate(c->ctx, p, n))
		abort();
}

void kb_sha_final(kb_sha *c, kb_hash *out)
{
	unsigned int len = 0;
	if (!EVP_DigestFinal_ex(c->ctx, out->b, &len) || len != 32)
		abort();
	kb_sha_reset(c);
}

void kb_sha_free(kb_sha *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->ctx);
	free(c);
}

void kb_sha256(const void *p, size_t n, kb_hash *out)
{
	kb_sha *c = kb_sha_new();
	kb_sha_update(c, p, n);
	kb_sha_final(c, out);
	kb_sha_free(c);
}

void kb_hash_hex(const kb_hash *h, char out[KB_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[h->b[i] >> 4];
		out[2 * i + 1] = digits[h->b[i] & 15];
	}
	out[KB_HEX_LEN] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int kb_hash_parse(const char *s, size_t len, kb_hash *out)
{
	if (len != KB_HEX_LEN)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int kb_hash_eq(const kb_hash *a, const kb_hash *b)
{
	return memcmp(a->b, b->b, 32) == 0;
}

/* ---- hash set ---- */
struct slot {
	kb_hash h;
	void *val;
	int used;
};

struct kb_hset {
	struct slot *slots;
	size_t cap, n; /* cap is a power of two */
};

kb_hset *kb_hset_new(void)
{
	kb_hset *s = kb_malloc(sizeof *s);
	s->cap = 64;
	s->n = 0;
	s->slots = kb_calloc(s->cap, sizeof *s->slots);
	return s;
}

void kb_hset_free(kb_hset *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s);
}

/* SHA-256 output is uniform, so its first bytes are a good bucket index */
static size_t bucket(const kb_hash *h, size_t cap)
{
	uint64_t v;
	memcpy(&v, h->b, sizeof v);
	return (size_t)v & (cap - 1);
}

static struct slot *find(const kb_hset *s, const kb_hash *h)
{
	size_t i = bucket(h, s->cap);
	for (;;) {
		struct slot *sl = &s->slots[i];
		if (!sl->used || kb_hash_eq(&sl->h, h))
			return sl;
		i = (i + 1) & (s->cap - 1);
	}
}

static void grow(kb_hset *s)
{
	struct slot *old = s->slots;
	size_t oldcap = s->cap;
	s->cap *= 2;
	s->slots = kb_calloc(s->cap, sizeof *s->slots);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].used)
			*find(s, &old[i].h) = old[i];
	free(old);
}

void **kb_hset_slot(kb_hset *s, const kb_hash *h)
{
	if ((s->n + 1) * 4 > s->cap * 3)
		grow(s);
	struct slot *sl = find(s, h);
	if (!sl->used) {
		sl->used = 1;
		sl->h = *h;
		sl->val = NULL;
		s->n++;
	}
	return &sl->val;
}

int kb_hset_add(kb_hset *s, const kb_hash *h)
{
	size_t before = s->n;
	kb_hset_slot(s, h);
	return s->n != before;
}

int kb_hset_has(const kb_hset *s, const kb_hash *h) { return find(s, h)->used; }

void *kb_hset_get(const kb_hset *s, const kb_hash *h)
{
	struct slot *sl = find(s, h);
	return sl->used ? sl->val : NULL;
}

size_t kb_hset_count(const kb_hset *s) { return s->n; }

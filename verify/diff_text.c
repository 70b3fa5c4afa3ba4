/* Plain contents: text as a short unified diff, anything else as the
 * first differing offset with a little hex context. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define TEXT_CAP (1u << 20)	  /* larger text is compared as bytes */
#define LCS_CELLS (4u << 20)	  /* beyond: the changed block shown whole */
#define CONTEXT 3
#define DIFF_LINES 30		  /* lines of diff output per difference */
#define LINE_CUT 200		  /* bytes shown of one line */
#define HEX_AROUND 8

char *d_hexctx(dctx *c, const unsigned char *p, size_t n, size_t at)
{
	kb_buf b = {0};
	for (size_t i = 0; i < n; i++) {
		if (i)
			kb_buf_addc(&b, ' ');
		kb_buf_addf(&b, i == at ? "[%02x]" : "%02x", p[i]);
	}
	kb_buf_addc(&b, 0);
	char *r = d_strdup(c, b.p);
	kb_buf_free(&b);
	return r;
}

/* the bytes around off of s, and where off is among them */
static kb_err *around(dctx *c, const dsrc *s, uint64_t off, char **out)
{
	unsigned char w[2 * HEX_AROUND + 1];
	uint64_t from = off > HEX_AROUND ? off - HEX_AROUND : 0;
	size_t got;
	kb_err *err = ds_read(s, from, w, sizeof w, &got);
	if (err)
		return err;
	*out = got ? d_hexctx(c, w, got, (size_t)(off - from)) : "(end)";
	return NULL;
}

kb_err *d_bytes(dctx *c, const char *elem, dsrc *a, dsrc *b)
{
	enum { N = 1 << 16 };
	unsigned char *x = kb_malloc(N), *y = kb_malloc(N);
	uint64_t common = a->size < b->size ? a->size : b->size;
	uint64_t first = UINT64_MAX, ndiff = 0;
	kb_err *err = NULL;
	for (uint64_t off = 0; off < common && !err;) {
		size_t want = common - off > N ? N : (size_t)(common - off), ga, gb;
		if ((err = ds_read(a, off, x, want, &ga)) || (err = ds_read(b, off, y, want, &gb)))
			break;
		if (ga != want || gb != want) {
			err = kb_errf("a file shrank while it was being read");
			break;
		}
		if (memcmp(x, y, want)) {
			for (size_t i = 0; i < want; i++)
				if (x[i] != y[i]) {
					if (first == UINT64_MAX)
						first = off + i;
					ndiff++;
				}
			/* different sizes: the first difference is all there is to say */
			if (a->size != b->size)
				break;
		}
		off += want;
	}
	free(x);
	free(y);
	if (err)
		return err;
	char *ca, *cb;
	if (first == UINT64_MAX) {
		if (a->size == b->size)
			return NULL;
		const char *shorter = a->size < b->size ? "A" : "B";
		if ((err = around(c, a->size < b->size ? b : a, common, &ca)))
			return err;
		d_report(c, elem, "bytes", NULL,
			 "%s is a prefix of the other (%llu vs %llu bytes); the longer goes on at "
			 "offset 0x%llx: %s",
			 shorter, (unsigned long long)a->size, (unsigned long long)b->size,
			 (unsigned long long)common, ca);
		return NULL;
	}
	if ((err = around(c, a, first, &ca)) || (err = around(c, b, first, &cb)))
		return err;
	if (a->size == b->size)
		d_report(c, elem, "bytes", NULL,
			 "differs at offset 0x%llx (%llu of %llu bytes differ): %s vs %s",
			 (unsigned long long)first, (unsigned long long)ndiff,
			 (unsigned long long)a->size, ca, cb);
	else
		d_report(c, elem, "bytes", NULL, "differs at offset 0x%llx (%llu vs %llu bytes): %s vs %s",
			 (unsigned long long)first, (unsigned long long)a->size,
			 (unsigned long long)b->size, ca, cb);
	return NULL;
}

/* ---- text ---- */

typedef struct {
	const char *p;
	size_t n;
} line;

typedef struct {
	line *v;
	size_t n;
} lines;

static void split(const char *p, size_t n, lines *out)
{
	size_t cap = 16;
	out->v = kb_malloc(cap * sizeof *out->v);
	out->n = 0;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - p) : n;
		if (out->n == cap)
			out->v = kb_realloc(out->v, (cap *= 2) * sizeof *out->v);
		out->v[out->n++] = (line){p + i, e - i};
		i = e + 1;
	}
}

static int leq(const line *x, const line *y)
{
	return x->n == y->n && !memcmp(x->p, y->p, x->n);
}

typedef struct {
	char op; /* ' ', '-', '+' */
	size_t ai, bi;
} edit;

/* the edits turning a[0..m) into b[0..n): the longest common subsequence
 * when the table is small enough, else all of a out and all of b in */
static edit *script(const line *a, size_t m, const line *b, size_t n, size_t a0, size_t b0,
		    edit *e, size_t *ne)
{
	if (m && n && (uint64_t)(m + 1) * (n + 1) <= LCS_CELLS) {
		uint32_t *L = kb_calloc((m + 1) * (n + 1), sizeof *L);
#define AT(i, j) L[(size_t)(i) * (n + 1) + (j)]
		for (size_t i = m; i-- > 0;)
			for (size_t j = n; j-- > 0;)
				AT(i, j) = leq(&a[i], &b[j]) ? AT(i + 1, j + 1) + 1
					   : AT(i + 1, j) >= AT(i, j + 1) ? AT(i + 1, j)
									  : AT(i, j + 1);
		size_t i = 0, j = 0;
		while (i < m || j < n) {
			if (i < m && j < n && leq(&a[i], &b[j]))
				e[(*ne)++] = (edit){' ', a0 + i++, b0 + j++};
			else if (i < m && (j == n || AT(i + 1, j) >= AT(i, j + 1)))
				e[(*ne)++] = (edit){'-', a0 + i++, b0 + j};
			else
				e[(*ne)++] = (edit){'+', a0 + i, b0 + j++};
		}
#undef AT
		free(L);
		return e;
	}
	for (size_t i = 0; i < m; i++)
		e[(*ne)++] = (edit){'-', a0 + i, b0};
	for (size_t j = 0; j < n; j++)
		e[(*ne)++] = (edit){'+', a0 + m, b0 + j};
	return e;
}

static void add_line(kb_buf *o, char op, const line *l)
{
	kb_buf_addc(o, op);
	size_t n = l->n > LINE_CUT ? LINE_CUT : l->n;
	if (n && l->p[n - 1] == '\r')
		n--;
	/* tabs as they are; other control bytes and non-ASCII escaped, so
	 * the line is one line and valid UTF-8 for the JSON output */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)l->p[i];
		if (ch == '\t' || (ch >= 0x20 && ch < 0x7f && ch != '\\'))
			kb_buf_addc(o, (char)ch);
		else
			kb_buf_addf(o, "\\x%02x", ch);
	}
	if (l->n > LINE_CUT)
		kb_buf_adds(o, "...");
	kb_buf_addc(o, '\n');
}

/* unified hunks over the edits, at most DIFF_LINES lines */
static void hunks(const edit *e, size_t ne, const lines *A, const lines *B, kb_buf *o)
{
	size_t out = 0, i = 0;
	while (i < ne) {
		size_t k = i;
		while (k < ne && e[k].op == ' ')
			k++;
		if (k == ne)
			break;
		size_t start = k > i + CONTEXT ? k - CONTEXT : i, last = k, end;
		for (end = k; end < ne; end++) {
			if (e[end].op != ' ')
				last = end;
			else if (end - last > 2 * CONTEXT)
				break;
		}
		end = last + CONTEXT + 1 < ne ? last + CONTEXT + 1 : ne;
		size_t na = 0, nb = 0;
		for (size_t j = start; j < end; j++) {
			na += e[j].op != '+';
			nb += e[j].op != '-';
		}
		if (out >= DIFF_LINES) {
			kb_buf_adds(o, "...\n");
			return;
		}
		kb_buf_addf(o, "@@ -%zu,%zu +%zu,%zu @@\n", e[start].ai + (na != 0), na,
			    e[start].bi + (nb != 0), nb);
		out++;
		for (size_t j = start; j < end; j++, out++) {
			if (out >= DIFF_LINES) {
				kb_buf_adds(o, "...\n");
				return;
			}
			add_line(o, e[j].op, e[j].op == '+' ? &B->v[e[j].bi] : &A->v[e[j].ai]);
		}
		i = end;
	}
}

static kb_err *slurp(const dsrc *s, kb_buf *out)
{
	out->len = 0;
	kb_buf_add(out, "", 0);
	if (!s->size)
		return NULL;
	char *p = kb_malloc((size_t)s->size);
	size_t got;
	kb_err *err = ds_read(s, 0, p, (size_t)s->size, &got);
	if (!err)
		kb_buf_add(out, p, got);
	free(p);
	return err;
}

kb_err *d_text(dctx *c, const char *elem, dsrc *a, dsrc *b, int *done)
{
	*done = 0;
	if (a->size > TEXT_CAP || b->size > TEXT_CAP)
		return NULL;
	kb_buf ta = {0}, tb = {0};
	kb_err *err = slurp(a, &ta);
	if (!err)
		err = slurp(b, &tb);
	if (err) {
		kb_buf_free(&ta);
		kb_buf_free(&tb);
		return err;
	}
	lines A, B;
	split(ta.p, ta.len, &A);
	split(tb.p, tb.len, &B);
	size_t pre = 0, suf = 0;
	while (pre < A.n && pre < B.n && leq(&A.v[pre], &B.v[pre]))
		pre++;
	while (suf < A.n - pre && suf < B.n - pre && leq(&A.v[A.n - 1 - suf], &B.v[B.n - 1 - suf]))
		suf++;
	size_t ma = A.n - pre - suf, mb = B.n - pre - suf;
	size_t cpre = pre > CONTEXT ? CONTEXT : pre, csuf = suf > CONTEXT ? CONTEXT : suf;
	edit *e = kb_malloc((cpre + ma + mb + csuf + 1) * sizeof *e);
	size_t ne = 0;
	for (size_t i = pre - cpre; i < pre; i++)
		e[ne++] = (edit){' ', i, i};
	script(A.v + pre, ma, B.v + pre, mb, pre, pre, e, &ne);
	for (size_t i = 0; i < csuf; i++)
		e[ne++] = (edit){' ', A.n - suf + i, B.n - suf + i};
	size_t del = 0, add = 0;
	for (size_t i = 0; i < ne; i++)
		del += e[i].op == '-', add += e[i].op == '+';
	if (del || add) {
		kb_buf o = {0};
		hunks(e, ne, &A, &B, &o);
		kb_buf_addc(&o, 0);
		d_report(c, elem, "text", o.p, "text differs from line %zu (%zu line%s removed, %zu added)",
			 pre + 1, del, del == 1 ? "" : "s", add);
		kb_buf_free(&o);
		*done = 1;
	}
	/* equal lines, different bytes (a final newline): the caller's bytes */
	free(e);
	free(A.v);
	free(B.v);
	kb_buf_free(&ta);
	kb_buf_free(&tb);
	return NULL;
}

/* Growable byte buffer. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(kb_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->p = kb_realloc(b->p, cap);
	b->cap = cap;
}

void kb_buf_add(kb_buf *b, const void *p, size_t n)
{
	reserve(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

void kb_buf_addc(kb_buf *b, char c) { kb_buf_add(b, &c, 1); }

void kb_buf_adds(kb_buf *b, const char *s) { kb_buf_add(b, s, strlen(s)); }

void kb_buf_addf(kb_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	reserve(b, (size_t)n);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	b->len += (size_t)n;
}

void kb_buf_free(kb_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *kb_buf_steal(kb_buf *b)
{
	reserve(b, 0);
	b->p[b->len] = 0;
	char *p = b->p;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

char *kb_quote(const char *p, size_t n)
{
	kb_buf b = {0};
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c >= 0x7f || c == '\\')
			kb_buf_addf(&b, "\\x%02x", c);
		else
			kb_buf_addc(&b, (char)c);
	}
	return kb_buf_steal(&b);
}

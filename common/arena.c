/* Arena allocation: parsers allocate many small nodes that all die
 * together, so one free beats tracking each. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

struct kb_arena {
	struct chunk *head;
};

kb_arena *kb_arena_new(void) { return kb_calloc(1, sizeof(kb_arena)); }

void kb_arena_free(kb_arena *a)
{
	if (!a)
		return;
	for (struct chunk *c = a->head, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

void *kb_arena_alloc(kb_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		c = kb_malloc(sizeof *c + cap);
		c->used = 0;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *kb_arena_strndup(kb_arena *a, const char *s, size_t n)
{
	char *p = kb_arena_alloc(a, n + 1);
	memcpy(p, s, n);
	return p;
}

char *kb_arena_strdup(kb_arena *a, const char *s) { return kb_arena_strndup(a, s, strlen(s)); }

char *kb_arena_printf(kb_arena *a, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = kb_arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

void *kb_arena_grow(kb_arena *a, void *arr, size_t n, size_t *cap, size_t elem)
{
	if (n < *cap)
		return arr;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = kb_arena_alloc(a, ncap * elem);
	if (n)
		memcpy(p, arr, n * elem);
	*cap = ncap;
	return p;
}

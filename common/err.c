/* Errors as values, allocation that aborts, and stderr logging. */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kb_log_level = KB_LOG_INFO;

static kb_err *verr(int code, const char *suffix, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	size_t slen = suffix ? strlen(suffix) + 2 : 0;
	kb_err *e = kb_malloc(sizeof *e + (size_t)n + slen + 1);
	e->code = code;
	vsnprintf(e->msg, (size_t)n + 1, fmt, ap);
	if (suffix) {
		memcpy(e->msg + n, ": ", 2);
		memcpy(e->msg + n + 2, suffix, slen - 2);
		e->msg[n + slen] = 0;
	}
	return e;
}

kb_err *kb_errf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_err *e = verr(1, NULL, fmt, ap);
	va_end(ap);
	return e;
}

kb_err *kb_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_err *e = verr(2, NULL, fmt, ap);
	va_end(ap);
	return e;
}

kb_err *kb_errno(int en, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_err *e = verr(1, strerror(en), fmt, ap);
	va_end(ap);
	return e;
}

kb_err *kb_err_wrap(kb_err *inner, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_err *e = verr(inner->code, inner->msg, fmt, ap);
	va_end(ap);
	kb_err_free(inner);
	return e;
}

void kb_err_free(kb_err *e) { free(e); }

static void oom(void)
{
	fputs("kbuild: out of memory\n", stderr);
	abort();
}

void *kb_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *kb_calloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *kb_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *kb_strdup(const char *s) { return kb_strndup(s, strlen(s)); }

char *kb_strndup(const char *s, size_t n)
{
	char *p = kb_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *kb_vasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	char *p = kb_malloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *kb_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = kb_vasprintf(fmt, ap);
	va_end(ap);
	return p;
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
	/* one write per line so concurrent processes do not interleave */
	char line[4096];
	int n = snprintf(line, sizeof line, "%s", prefix);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void kb_info(const char *fmt, ...)
{
	if (kb_log_level < KB_LOG_INFO)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void kb_debug(const char *fmt, ...)
{
	if (kb_log_level < KB_LOG_DEBUG)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog("debug: ", fmt, ap);
	va_end(ap);
}

void kb_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("kbuild: warning: ", fmt, ap);
	va_end(ap);
}

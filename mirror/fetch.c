/* Fetching URLs into the store through libcurl's multi interface.
 *
 * One store transaction for the whole call (or the caller's, o->txn, which
 * the caller commits or aborts: then nothing lands before it says so). Each request streams into its
 * own blob writer (hashed as it arrives); a dropped transfer is resumed
 * with a Range request into the same writer, so the hash just continues.
 * A finished transfer lands only if it hashes to what was asked for; the
 * blobs that did are committed together at the end, with every blob the
 * caller asked for held as a root of this process.
 *
 * Metadata whose hash nobody knows beforehand (any_content) is fetched
 * even if stored, bounded by max_size, and reports its hash; with a body
 * buffer it goes there instead of into the store, so that nothing of it
 * lands before its signature is checked. */
#include "mirror.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REDIRS 10
#define MAX_BACKOFF_MS 60000L
#define BAR_TICK_MS 200

void kb_fetch_opts_init(kb_fetch_opts *o)
{
	memset(o, 0, sizeof *o);
	o->jobs = 4;
	o->retries = 4;
	o->retry_delay_ms = 1000;
	o->timeout_s = 30;
	o->progress = -1;
	const char *d = getenv("KBUILD_RETRY_DELAY_MS");
	if (d && *d)
		o->retry_delay_ms = atol(d);
	const char *ca = getenv("KBUILD_CA_BUNDLE");
	if (ca && *ca)
		o->ca_bundle = ca;
	static char *cache; /* one per process, like the environment it comes from */
	if (!cache) {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		cache = xdg && *xdg ? kb_asprintf("%s/kbuild", xdg)
				    : kb_asprintf("%s/.cache/kbuild", home && *home ? home : "/tmp");
	}
	o->cache_dir = cache;
}

/* ---- libcurl, once per process ---- */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	/* leak checkers then see nothing of curl's (or its TLS library's) state */
	if (curl_init_rc == CURLE_OK)
		atexit(curl_global_cleanup);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum xstate { X_QUEUED, X_RUNNING, X_WAITING, X_DONE };

struct ctx;

struct xfer {
	struct ctx *c;
	kb_url_req *r;
	CURL *h;
	kb_blobw *w;
	int mem;	     /* the body goes to r->body, not into the store */
	enum xstate state;
	int attempts;
	int64_t due_ms;	     /* X_WAITING: when to try again */
	uint64_t got;	     /* bytes in w */
	uint64_t range_from; /* this attempt asked for the bytes from here on */
	int64_t total;	     /* the whole file's size as the server says, -1: unknown */
	/* the current response */
	int began;		    /* its body has been looked at */
	int64_t cr_start, cr_total; /* its Content-Range, -1: none */
	kb_err *cb_err;		    /* why a callback stopped the transfer */
	int cb_retry;		    /* ... and whether another attempt may help */
	char range[32];
	char errbuf[CURL_ERROR_SIZE];
};

struct ctx {
	kb_store *s;
	kb_txn *t;
	const kb_fetch_opts *o;
	CURLM *m;
	struct xfer *x;
	size_t n, running, nfetch, ndone;
	int bar;
	int64_t start_ms, bar_ms;
	uint64_t rx; /* bytes received, for the rate */
};

/* the input as messages name it: its label, and the URL if that says more */
static kb_err *req_errf(const kb_url_req *r, const char *fmt, ...) KB_PRINTF(2, 3);
static kb_err *req_errf(const kb_url_req *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = kb_vasprintf(fmt, ap);
	va_end(ap);
	kb_err *e;
	if (r->label && strcmp(r->label, r->url))
		e = kb_errf("%s: %s: %s", r->label, r->url, why);
	else
		e = kb_errf("%s: %s", r->url, why);
	free(why);
	return e;
}

static const char *label_of(const kb_url_req *r) { return r->label ? r->label : r->url; }

/* ---- where the body goes: a blob writer, or r->body ---- */

static int sink_open(const struct xfer *x) { return x->mem || x->w; }

static kb_err *sink_begin(struct xfer *x)
{
	if (x->mem) {
		x->r->body->len = 0;
		return NULL;
	}
	kb_err *err = kb_blob_begin(x->c->t, &x->w);
	return err ? kb_err_wrap(err, "%s", label_of(x->r)) : NULL;
}

/* forgets what arrived so far */
static void sink_drop(struct xfer *x)
{
	if (x->mem)
		x->r->body->len = 0;
	else if (x->w)
		kb_blob_abort(x->w);
	x->w = NULL;
	x->got = 0;
}

static kb_err *sink_write(struct xfer *x, const void *p, size_t n)
{
	if (x->mem) {
		kb_buf_add(x->r->body, p, n);
		return NULL;
	}
	kb_err *err = kb_blob_write(x->w, p, n);
	return err ? kb_err_wrap(err, "%s", label_of(x->r)) : NULL;
}

/* ---- callbacks ---- */

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb;
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) { /* a new response (redirects have several) */
		x->cr_start = x->cr_total = -1;
		x->began = 0;
	} else if (len > 14 && !strncasecmp(p, "content-range:", 14)) {
		char v[128];
		size_t vl = len - 14 < sizeof v - 1 ? len - 14 : sizeof v - 1;
		memcpy(v, p + 14, vl);
		v[vl] = 0;
		unsigned long long a, b, total;
		char star;
		if (sscanf(v, " bytes %llu-%llu/%llu", &a, &b, &total) == 3) {
			x->cr_start = (int64_t)a;
			x->cr_total = (int64_t)total;
		} else if (sscanf(v, " bytes %llu-%llu/%c", &a, &b, &star) == 3 && star == '*') {
			x->cr_start = (int64_t)a;
		}
	}
	return len;
}

static void cb_fail(struct xfer *x, int retry, kb_err *e)
{
	kb_err_free(x->cb_err);
	x->cb_err = e;
	x->cb_retry = retry;
}

/* The first look at the final response's body (or at its end, if it has
 * none): a Range request answered in full starts the blob over. 0: go on */
static int begin_body(struct xfer *x)
{
	kb_url_req *r = x->r;
	x->began = 1;
	long code = 0;
	curl_off_t cl = -1;
	CURLcode rc = curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	if (!rc)
		rc = curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (rc) {
		cb_fail(x, 0, req_errf(r, "libcurl: %s", curl_easy_strerror(rc)));
		return -1;
	}
	if (code < 200 || code > 299) {
		cb_fail(x, 0, req_errf(r, "HTTP %ld", code));
		return -1;
	}
	if (x->range_from && code == 206) {
		if (x->cr_start != (int64_t)x->range_from) {
			/* start over (416 handling below does the same) */
			sink_drop(x);
			cb_fail(x, 1, req_errf(r, "the server resumed at byte %" PRId64 ", not at %" PRIu64,
					       x->cr_start, x->range_from));
			return -1;
		}
		x->total = x->cr_total >= 0 ? x->cr_total
			   : cl >= 0	     ? (int64_t)x->range_from + cl
					     : -1;
	} else {
		if (x->range_from) {
			/* the server ignored the Range: the body is the whole file */
			kb_debug("%s: the server does not resume (HTTP %ld); starting over",
				 label_of(r), code);
			sink_drop(x);
			x->range_from = 0;
			kb_err *err = sink_begin(x);
			if (err) {
				cb_fail(x, 0, err);
				return -1;
			}
		}
		x->total = cl >= 0 ? (int64_t)cl : -1;
	}
	if (r->has_size && x->total >= 0 && (uint64_t)x->total != r->size) {
		cb_fail(x, 0, req_errf(r, "the server says the size is %" PRId64 " bytes, expected %" PRIu64,
				       x->total, r->size));
		return -1;
	}
	if (r->any_content && r->max_size && x->total >= 0 && (uint64_t)x->total > r->max_size) {
		cb_fail(x, 0, req_errf(r, "the server says the size is %" PRId64 " bytes, more than "
					  "the %" PRIu64 " accepted for it", x->total, r->max_size));
		return -1;
	}
	return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb;
	if (!x->began && begin_body(x) < 0)
		return 0;
	if (x->r->has_size && x->got + len > x->r->size) {
		cb_fail(x, 0, req_errf(x->r, "more than the expected %" PRIu64 " bytes", x->r->size));
		return 0;
	}
	if (x->r->any_content && x->r->max_size && x->got + len > x->r->max_size) {
		cb_fail(x, 0, req_errf(x->r, "more than the %" PRIu64 " bytes accepted for it",
				       x->r->max_size));
		return 0;
	}
	kb_err *err = sink_write(x, p, len);
	if (err) {
		cb_fail(x, 0, err);
		return 0;
	}
	x->got += len;
	x->c->rx += len;
	return len;
}

/* ---- progress ---- */

static void human(uint64_t n, char *out, size_t sz)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4)
		v /= 1024, u++;
	if (u == 0)
		snprintf(out, sz, "%" PRIu64 " B", n);
	else
		snprintf(out, sz, "%.1f %s", v, unit[u]);
}

static void bar_draw(struct ctx *c, int final)
{
	if (!c->bar)
		return;
	int64_t now = now_ms();
	if (!final && now - c->bar_ms < BAR_TICK_MS)
		return;
	c->bar_ms = now;
	uint64_t got = 0, total = 0;
	int unknown = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct xfer *x = &c->x[i];
		if (x->r->cached || (x->state == X_DONE && x->r->err))
			continue;
		got += x->got;
		if (x->r->has_size)
			total += x->r->size;
		else if (x->total >= 0)
			total += (uint64_t)x->total;
		else
			unknown = 1;
	}
	double secs = (double)(now - c->start_ms) / 1000;
	char g[32], tt[32], rate[32];
	human(got, g, sizeof g);
	human(total, tt, sizeof tt);
	human(secs > 0.05 ? (uint64_t)((double)c->rx / secs) : 0, rate, sizeof rate);
	if (final)
		fprintf(stderr, "\r\033[Kfetched %zu of %zu files: %s in %.1f s\n", c->ndone,
			c->nfetch, g, secs);
	else if (!total)
		fprintf(stderr, "\r\033[Kfetching %zu/%zu: %s at %s/s", c->ndone, c->nfetch, g, rate);
	else
		fprintf(stderr, "\r\033[Kfetching %zu/%zu: %s of %s%s at %s/s", c->ndone, c->nfetch, g,
			tt, unknown ? "+" : "", rate);
	fflush(stderr);
}

/* ---- transfers ---- */

#define SET(opt, val)                                          \
	do {                                                   \
		if (rc == CURLE_OK)                            \
			rc = curl_easy_setopt(x->h, opt, val); \
	} while (0)

static kb_err *setup(struct ctx *c, struct xfer *x)
{
	const kb_fetch_opts *o = c->o;
	if (!(x->h = curl_easy_init()))
		return req_errf(x->r, "libcurl cannot start a transfer");
	CURLcode rc = CURLE_OK;
	SET(CURLOPT_URL, x->r->url);
	SET(CURLOPT_PRIVATE, (void *)x);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, (long)MAX_REDIRS);
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, (void *)x);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, (void *)x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_USERAGENT, "kbuild/" KB_VERSION);
	if (o->timeout_s > 0) {
		SET(CURLOPT_CONNECTTIMEOUT, o->timeout_s);
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, o->timeout_s);
	}
	if (o->ca_bundle)
		SET(CURLOPT_CAINFO, o->ca_bundle);
	if (rc)
		return req_errf(x->r, "cannot set up libcurl: %s", curl_easy_strerror(rc));
	return NULL;
}

static kb_err *start(struct ctx *c, struct xfer *x)
{
	kb_err *err;
	if (!x->h && (err = setup(c, x)))
		return err;
	if (!sink_open(x)) {
		x->got = 0;
		if ((err = sink_begin(x)))
			return err;
	}
	x->attempts++;
	x->range_from = x->got;
	x->began = 0;
	x->cr_start = x->cr_total = -1;
	x->errbuf[0] = 0;
	CURLcode rc = CURLE_OK;
	if (x->got) {
		snprintf(x->range, sizeof x->range, "%" PRIu64 "-", x->got);
		SET(CURLOPT_RANGE, x->range);
	} else {
		SET(CURLOPT_RANGE, (char *)NULL);
	}
	if (rc)
		return req_errf(x->r, "cannot set up libcurl: %s", curl_easy_strerror(rc));
	CURLMcode mc = curl_multi_add_handle(c->m, x->h);
	if (mc)
		return req_errf(x->r, "libcurl: %s", curl_multi_strerror(mc));
	if (x->got)
		kb_debug("%s: resuming at byte %" PRIu64 " (attempt %d)", label_of(x->r), x->got,
			 x->attempts);
	x->state = X_RUNNING;
	c->running++;
	return NULL;
}

static void release(struct xfer *x)
{
	if (x->w)
		kb_blob_abort(x->w);
	x->w = NULL;
	if (x->h)
		curl_easy_cleanup(x->h);
	x->h = NULL;
	kb_err_free(x->cb_err);
	x->cb_err = NULL;
}

static void give_up(struct ctx *c, struct xfer *x, kb_err *why)
{
	release(x);
	if (x->mem)
		x->r->body->len = 0;
	x->r->err = why;
	x->state = X_DONE;
	c->ndone++;
}

static const char *detail(struct xfer *x, CURLcode res)
{
	size_t n = strlen(x->errbuf);
	while (n && (x->errbuf[n - 1] == '\n' || x->errbuf[n - 1] == '\r'))
		x->errbuf[--n] = 0;
	return n ? x->errbuf : curl_easy_strerror(res);
}

/* why an attempt failed, and whether another may do better */
static kb_err *classify(struct xfer *x, CURLcode res, long code, int *retry)
{
	kb_url_req *r = x->r;
	const char *eff = NULL;
	if (curl_easy_getinfo(x->h, CURLINFO_EFFECTIVE_URL, &eff) || (eff && !strcmp(eff, r->url)))
		eff = NULL;
	char total[48] = "";
	int64_t whole = r->has_size ? (int64_t)r->size : x->total;
	if (whole >= 0)
		snprintf(total, sizeof total, " of %" PRId64, whole);
	*retry = 0;
	switch (res) {
	case CURLE_HTTP_RETURNED_ERROR:
		if (code == 416 && x->range_from) {
			/* nothing left to resume from where we are: start over */
			sink_drop(x);
			*retry = 1;
		} else
			*retry = code >= 500 || code == 408 || code == 429;
		return eff ? req_errf(r, "HTTP %ld (from %s)", code, eff) : req_errf(r, "HTTP %ld", code);
	case CURLE_TOO_MANY_REDIRECTS:
		return req_errf(r, "redirect loop: still redirected after %d redirects", MAX_REDIRS);
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		*retry = 1;
		return req_errf(r, "connection closed after %" PRIu64 "%s bytes (%s)", x->got, total,
				detail(x, res));
	case CURLE_OPERATION_TIMEDOUT:
		*retry = 1;
		return req_errf(r, "timed out after %" PRIu64 "%s bytes (%s)", x->got, total,
				detail(x, res));
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		*retry = 1;
		return req_errf(r, "cannot connect (%s)", detail(x, res));
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return req_errf(r, "untrusted TLS certificate (%s); KBUILD_CA_BUNDLE can name "
				   "a file of extra trusted CAs",
				detail(x, res));
	case CURLE_UNSUPPORTED_PROTOCOL:
		return req_errf(r, "only http and https URLs are fetched (%s)", detail(x, res));
	default:
		return req_errf(r, "%s", detail(x, res));
	}
}

static void fetched(struct ctx *c, struct xfer *x)
{
	release(x);
	x->r->got_size = x->got;
	x->state = X_DONE;
	c->ndone++;
	if (!c->bar)
		kb_info("fetched %s (%" PRIu64 " bytes)", label_of(x->r), x->got);
}

static void done(struct ctx *c, struct xfer *x, CURLcode res)
{
	kb_url_req *r = x->r;
	c->running--;
	x->state = X_WAITING; /* for now; below decides */
	long code = 0;
	if (curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code))
		code = 0;
	r->http_status = code;
	CURLMcode mc = curl_multi_remove_handle(c->m, x->h);
	if (mc) {
		give_up(c, x, req_errf(r, "libcurl: %s", curl_multi_strerror(mc)));
		return;
	}
	if (res == CURLE_OK && !x->began)
		(void)begin_body(x); /* an empty body */
	kb_err *why = NULL;
	int retry = 0;
	if (x->cb_err) {
		why = x->cb_err;
		retry = x->cb_retry;
		x->cb_err = NULL;
	} else if (res != CURLE_OK) {
		why = classify(x, res, code, &retry);
	} else if (x->total >= 0 && x->got < (uint64_t)x->total) {
		why = req_errf(r, "connection closed after %" PRIu64 " of %" PRId64 " bytes", x->got,
			       x->total);
		retry = 1;
	} else if (r->has_size && x->got != r->size) {
		why = req_errf(r, "size is %" PRIu64 " bytes, expected %" PRIu64, x->got, r->size);
	} else if (x->mem) {
		kb_sha256(r->body->p ? r->body->p : "", r->body->len, &r->sha256);
		fetched(c, x);
		return;
	} else {
		kb_blobw *w = x->w;
		x->w = NULL;
		kb_err *err = r->any_content ? kb_blob_finish(w, 0, NULL, &r->sha256)
					     : kb_blob_finish(w, 0, &r->sha256, NULL);
		if (!err) {
			fetched(c, x);
			return;
		}
		/* the store's words for a mismatch: "content hashes to A, not the expected B" */
		int mismatch = !strncmp(err->msg, "content hashes to", 17);
		why = req_errf(r, "%s%s", mismatch ? "sha256 mismatch: " : "", err->msg);
		kb_err_free(err);
	}
	if (retry && x->attempts <= c->o->retries) {
		long delay = c->o->retry_delay_ms > 0 ? c->o->retry_delay_ms : 0;
		for (int i = 1; i < x->attempts && delay < MAX_BACKOFF_MS; i++)
			delay *= 2;
		if (delay > MAX_BACKOFF_MS && c->o->retry_delay_ms < MAX_BACKOFF_MS)
			delay = MAX_BACKOFF_MS;
		kb_debug("%s; trying again in %ld ms", why->msg, delay);
		kb_err_free(why);
		x->due_ms = now_ms() + delay;
		return;
	}
	if (retry) {
		kb_err *e = kb_errf("%s; gave up after %d attempt%s", why->msg, x->attempts,
				    x->attempts == 1 ? "" : "s");
		kb_err_free(why);
		why = e;
	}
	give_up(c, x, why);
}

/* ---- the loop ---- */

static int ready(const struct xfer *x, int64_t now)
{
	return x->state == X_QUEUED || (x->state == X_WAITING && x->due_ms <= now);
}

static kb_err *run(struct ctx *c)
{
	if (!(c->m = curl_multi_init()))
		return kb_errf("libcurl cannot start its transfer loop");
	size_t jobs = c->o->jobs > 0 ? (size_t)c->o->jobs : 1;
	kb_err *err = NULL;
	for (;;) {
		int64_t now = now_ms(), next_due = -1;
		int pending = 0;
		for (size_t i = 0; i < c->n; i++) {
			struct xfer *x = &c->x[i];
			if (c->running < jobs && ready(x, now)) {
				kb_err *e = start(c, x);
				if (e)
					give_up(c, x, e);
			}
			if (x->state == X_QUEUED || x->state == X_WAITING) {
				pending = 1;
				if (x->state == X_WAITING && (next_due < 0 || x->due_ms < next_due))
					next_due = x->due_ms;
			}
		}
		if (!c->running && !pending)
			break;
		int still;
		CURLMcode mc = curl_multi_perform(c->m, &still);
		if (mc) {
			err = kb_errf("libcurl: %s", curl_multi_strerror(mc));
			break;
		}
		int finished = 0, left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(c->m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			CURL *h = msg->easy_handle;
			CURLcode res = msg->data.result; /* msg is gone after remove_handle */
			struct xfer *x = NULL;
			if (curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x) || !x) {
				err = kb_errf("libcurl lost track of a transfer");
				break;
			}
			done(c, x, res);
			finished = 1;
		}
		if (err)
			break;
		bar_draw(c, 0);
		if (finished)
			continue;
		long wait = c->bar ? BAR_TICK_MS : 1000;
		if (next_due >= 0) {
			int64_t d = next_due - now_ms();
			if (d < wait)
				wait = d < 0 ? 0 : (long)d;
		}
		if ((mc = curl_multi_poll(c->m, NULL, 0, (int)wait, NULL))) {
			err = kb_errf("libcurl: %s", curl_multi_strerror(mc));
			break;
		}
	}
	/* on a loop error: whatever is unfinished fails with it */
	for (size_t i = 0; i < c->n; i++) {
		struct xfer *x = &c->x[i];
		if (x->state == X_RUNNING) {
			c->running--;
			/* if this fails, curl_easy_cleanup still takes it out */
			(void)curl_multi_remove_handle(c->m, x->h);
		}
		if (x->state != X_DONE)
			give_up(c, x, req_errf(x->r, "%s", err ? err->msg : "not fetched"));
	}
	CURLMcode mc = curl_multi_cleanup(c->m);
	c->m = NULL;
	if (mc && !err)
		err = kb_errf("libcurl: %s", curl_multi_strerror(mc));
	return err;
}

kb_err *kb_fetch_urls(kb_store *s, kb_url_req *reqs, size_t n, const kb_fetch_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		reqs[i].err = NULL;
		reqs[i].cached = 0;
		reqs[i].got_size = 0;
		reqs[i].http_status = 0;
	}
	if (!n)
		return NULL;
	pthread_once(&curl_once, curl_init);
	kb_err *err = NULL;
	if (curl_init_rc)
		err = kb_errf("cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
	struct ctx c = {.s = s, .o = o, .n = n};
	/* the transaction first: its shared lock keeps gc from removing what
	 * is found in the store before it is held as a root */
	if (!err && o->txn)
		c.t = o->txn;
	else if (!err)
		err = kb_txn_begin(s, &c.t);
	if (err) {
		for (size_t i = 0; i < n; i++)
			reqs[i].err = req_errf(&reqs[i], "%s", err->msg);
		return err;
	}
	c.x = kb_calloc(n, sizeof *c.x);
	for (size_t i = 0; i < n; i++) {
		struct xfer *x = &c.x[i];
		kb_url_req *r = &reqs[i];
		x->c = &c;
		x->r = r;
		x->total = -1;
		x->state = X_DONE;
		x->mem = r->any_content && r->body;
		if (x->mem)
			r->body->len = 0;
		if (!r->any_content && (o->txn ? kb_txn_has(c.t, &r->sha256) : kb_store_has(s, &r->sha256))) {
			r->cached = 1;
			int fd;
			struct stat st;
			kb_err *e = kb_store_open_object(s, &r->sha256, &fd);
			if (!e) {
				if (fstat(fd, &st) == 0)
					r->got_size = (uint64_t)st.st_size;
				close(fd);
			}
			kb_err_free(e);
			kb_debug("%s: already in the store", label_of(r));
		} else if (strncasecmp(r->url, "http://", 7) && strncasecmp(r->url, "https://", 8)) {
			r->err = req_errf(r, "only http:// and https:// URLs can be fetched");
		} else if (o->offline) {
			r->err = req_errf(r, r->any_content
						     ? "always fetched afresh, and the network is off (--offline)"
						     : "not in the store, and the network is off (--offline)");
		} else {
			x->state = X_QUEUED;
			c.nfetch++;
		}
	}
	if (c.nfetch) {
		c.bar = kb_log_level >= KB_LOG_INFO &&
			(o->progress == 1 || (o->progress < 0 && isatty(STDERR_FILENO)));
		c.start_ms = now_ms();
		c.bar_ms = c.start_ms; /* quick downloads show just the summary */
		err = run(&c);
		bar_draw(&c, 1);
	}
	/* what landed, and what was already there, held as roots (a caller's
	 * transaction is the caller's to commit) */
	kb_oid *roots = kb_calloc(n, sizeof *roots);
	size_t nroots = 0, nfail = 0;
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].err || (reqs[i].any_content && reqs[i].body))
			continue;
		roots[nroots].type = KB_BLOB;
		roots[nroots++].hash = reqs[i].sha256;
	}
	kb_err *cerr = o->txn ? NULL : kb_txn_commit(c.t, roots, nroots);
	free(roots);
	if (cerr) {
		for (size_t i = 0; i < n; i++)
			if (!reqs[i].err && !reqs[i].cached && !(reqs[i].any_content && reqs[i].body))
				reqs[i].err = req_errf(&reqs[i], "%s", cerr->msg);
		if (!err)
			err = cerr;
		else
			kb_err_free(cerr);
	}
	free(c.x);
	for (size_t i = 0; i < n; i++)
		nfail += reqs[i].err != NULL;
	if (!nfail)
		return err; /* NULL, or a loop error that nobody's request carries */
	kb_err_free(err);
	if (nfail == 1) {
		for (size_t i = 0; i < n; i++)
			if (reqs[i].err)
				return kb_errf("%s", reqs[i].err->msg);
	}
	kb_buf b = {0};
	kb_buf_addf(&b, "%zu of %zu downloads failed:", nfail, n);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].err)
			kb_buf_addf(&b, "\n  %s", reqs[i].err->msg);
	err = kb_errf("%s", b.p);
	kb_buf_free(&b);
	return err;
}

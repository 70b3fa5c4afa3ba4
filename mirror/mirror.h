/* mirror: what kbuild knows of package repositories. Fetching over
 * HTTP(S) into the store (fetch.c), OpenPGP signatures (pgp.c), syncing
 * apt and rpm-md metadata into snapshots (apt.c, rpmmd.c), closing a set
 * of packages with libsolv (closure.c) and downloading them (download.c).
 * Everything lands in the store through store/store.h. */
#ifndef KB_MIRROR_H
#define KB_MIRROR_H

#include "../store/store.h"

/* ---- fetching (fetch.c) ---- */
typedef struct {
	int jobs;	      /* parallel transfers (default 4) */
	int retries;	      /* further attempts on timeouts, 5xx, dropped connections (4) */
	long retry_delay_ms;  /* first backoff, doubling (1000; env KBUILD_RETRY_DELAY_MS) */
	long timeout_s;	      /* connect timeout and stall limit (30) */
	const char *ca_bundle; /* extra trusted CAs, PEM (env KBUILD_CA_BUNDLE); NULL: system */
	int progress;	      /* -1: a bar on a terminal, lines otherwise; 0: lines; 1: bar */
	int offline;	      /* no network: only what the store already has */
	const char *cache_dir; /* for git mirrors ($XDG_CACHE_HOME/kbuild or ~/.cache/kbuild) */
	/* NULL: one transaction of its own per kb_fetch_urls call, committed
	 * at its end; else blobs are staged in this open transaction, and
	 * land only if and when its owner commits it (all or nothing) */
	kb_txn *txn;
} kb_fetch_opts;

/* defaults, with the environment variables above applied */
void kb_fetch_opts_init(kb_fetch_opts *o);

typedef struct {
	const char *url;   /* http:// or https:// */
	kb_hash sha256;	   /* what the content must hash to */
	uint64_t size;	   /* expected size if has_size */
	int has_size;
	const char *label; /* e.g. "input 'zfs-src' (recipes/x.recipe:12:3)" */
	/* Metadata whose hash is not known in advance (InRelease, repomd.xml):
	 * fetched even if something is stored, accepted whatever it hashes to
	 * (sha256 is set to the result), refused beyond max_size bytes. Its
	 * authenticity is the caller's to check, by signature. */
	int any_content;
	uint64_t max_size; /* 0: no limit */
	/* any_content only: if set, the body is kept here (up to max_size)
	 * and nothing lands in the store, for the caller to verify the
	 * signature first and store it then */
	kb_buf *body;
	/* results */
	kb_err *err; /* NULL: fetched (into the store, o->txn or body) */
	uint64_t got_size;
	int cached; /* it was already in the store */
	long http_status; /* of the last response (404: not there), 0: none */
} kb_url_req;

/* Fetches every request whose blob the store lacks, n at a time; each is
 * hashed while it streams and lands only if it matches. On failure returns
 * an error that names every failed input; each req->err says why. */
KB_MUST kb_err *kb_fetch_urls(kb_store *s, kb_url_req *reqs, size_t n, const kb_fetch_opts *o);


/* ---- OpenPGP (pgp.c, with librnp) ----
 * keyring: OpenPGP public keys, armored or binary. signer gets the
 * fingerprint (uppercase hex) of the key that made the good signature. */
/* a clearsigned document (InRelease): *text gets the signed content */
KB_MUST kb_err *kb_pgp_verify_clearsigned(const kb_buf *keyring, const kb_buf *doc,
					  kb_buf *text, char **signer);
/* a detached signature (repomd.xml.asc) over data */
KB_MUST kb_err *kb_pgp_verify_detached(const kb_buf *keyring, const kb_buf *data,
				       const kb_buf *sig, char **signer);

/* ---- OpenPGP keys and signatures (pgp_sign.c, with librnp) ----
 * Signatures are byte-reproducible: RSA, SHA-256, and the creation time
 * given (SOURCE_DATE_EPOCH), never the clock. */
typedef enum {
	KB_PGP_DETACHED,       /* binary signature packet(s): RPM headers */
	KB_PGP_DETACHED_ARMOR, /* ASCII-armored: Release.gpg, repomd.xml.asc */
	KB_PGP_CLEARSIGN       /* InRelease */
} kb_pgp_mode;

/* A new RSA signing key for userid; *sec gets the transferable secret key,
 * *pub the public key, both ASCII-armored. */
KB_MUST kb_err *kb_pgp_keygen(const char *userid, kb_buf *sec, kb_buf *pub);
/* The fingerprint (uppercase hex) and first user id of the one primary
 * key in key (public or secret, armored or binary), malloc'd, and when
 * created is not NULL the key's creation time. */
KB_MUST kb_err *kb_pgp_key_info(const kb_buf *key, char **fpr, char **userid,
				 int64_t *created);
/* Signs data with the secret key in sec (armored or binary). created may
 * not be before the key's own creation (gpgv and rpm refuse that).
 * KB_PGP_CLEARSIGN takes text only: no NUL, no CR, no line ending in a
 * blank (RFC 4880 leaves those unsigned; such text is refused); a text
 * without a final newline is read back with one. */
KB_MUST kb_err *kb_pgp_sign(const kb_buf *sec, const void *data, size_t len, int64_t created,
			    kb_pgp_mode mode, kb_buf *out);
/* 'kbuild verify' holds no secret key: while kb_pgp_replay is set,
 * kb_pgp_sign makes no signature and sec may be empty; the hook hands
 * back a published signature that verifies over exactly this data
 * (verify/replay_pgp.c), so a rebuild is identical iff what was signed
 * is. kb_pub_key then takes the public key alone. */
typedef kb_err *kb_pgp_replay_fn(void *ctx, const void *data, size_t len, kb_pgp_mode mode,
				 kb_buf *out);
extern kb_pgp_replay_fn *kb_pgp_replay;
extern void *kb_pgp_replay_ctx;

/* ---- upstreams and snapshots (apt.c, rpmmd.c, sync.c) ---- */
typedef struct {
	const char *name;
	const char *type; /* "apt" or "rpm-md" */
	const char *url;  /* resolved base URL: apt: holds dists/; rpm-md: holds repodata/ */
	const char *suite;					/* apt */
	const char *const *components;				/* apt */
	size_t ncomponents;
	const char *const *archs; /* apt: amd64 (+ "all" is implied); rpm-md: x86_64 */
	size_t narchs;
	int has_keyring;
	kb_hash keyring; /* a blob in the store */
	int require_signature;
} kb_upstream_def;

/* Fetches the upstream's signed metadata (verified against the keyring)
 * and the indexes it names (each checked against the hash it names), and
 * records a snapshot: a tree of exactly those files by their repository
 * path, under the refs mirror/NAME/UTC-TIME and mirror/NAME/latest (if
 * latest holds that very tree already, *refname is the time ref that
 * does: no new ref). Files already stored cost nothing. One transaction:
 * a refused sync stores nothing and moves no ref. */
KB_MUST kb_err *kb_mirror_sync(kb_store *s, const kb_upstream_def *u, const kb_fetch_opts *o,
			       kb_hash *snapshot, char **refname);
/* the snapshot mirror/NAME/latest points at; found=0 if never synced */
KB_MUST kb_err *kb_mirror_latest(kb_store *s, const char *upstream, kb_hash *snapshot,
				 int *found);

/* base + "/" + path, with bytes that do not belong in a URL path escaped
 * (Debian file names hold "%3a" for an epoch's colon) */
char *kb_mirror_url(const char *base, const char *path);

/* ---- closure (closure.c, with libsolv) ---- */
typedef struct {
	const char *name, *version, *arch;
	const char *upstream; /* the upstream it comes from */
	const char *path;     /* in the repository: Filename / location href */
	uint64_t size;
	kb_hash sha256; /* as the signed index names it */
} kb_pkg;

typedef struct {
	int recommends; /* also install Recommends / weak dependencies (0: buildd style) */
	const char *arch; /* the pool's architecture (default: the first upstream's first) */
	int essential;	  /* apt: also install every Essential: yes package, as a
			   * Debian system has them (debootstrap's base) */
	int nodeps;	  /* only the packages asked for, each the best candidate:
			   * no dependencies followed (package inputs are files) */
} kb_closure_opts;

/* Loads every snapshot (snapshots[i] belongs to ups[i]) into one libsolv
 * pool and solves "install want[...]" on an empty system. The packages
 * chosen are returned sorted by name, allocated in a. If the request
 * cannot be satisfied the error holds libsolv's problem text, naming the
 * missing or conflicting package. */
KB_MUST kb_err *kb_mirror_closure(kb_store *s, const kb_upstream_def *ups,
				  const kb_hash *snapshots, size_t nups, const char *const *want,
				  size_t nwant, const kb_closure_opts *o, kb_arena *a,
				  kb_pkg **out, size_t *n);

/* Fetches each package (upstream url + path) into the store, in parallel,
 * each checked against the size and sha256 its signed index names. */
KB_MUST kb_err *kb_mirror_download(kb_store *s, const kb_upstream_def *ups, size_t nups,
				   const kb_pkg *pkgs, size_t n, const kb_fetch_opts *o);

/* ---- darksites: signed apt and rpm-md repositories from the store
 * (publish.c: inputs and the per-package metadata cache; publish_apt.c,
 * publish_rpm.c: the two formats; publish_out.c: the output directory;
 * publish_key.c: the exported public key) ----
 * Every package's metadata (its control stanza, or its rpm-md records)
 * is read from the package once and then kept in the store's action
 * cache under the package's hash, so a republish reads no package. The
 * same packages, options and epoch give byte-identical metadata and
 * signatures. Republishing into a directory rewrites only what changed;
 * the signed file (InRelease, repomd.xml) is written last. */
typedef struct {
	kb_hash hash;	   /* the package: a blob in the store */
	const char *label; /* where it was named (path, hash, ref entry), for messages */
} kb_publish_pkg;

typedef struct {
	const char *outdir;
	int64_t epoch;	    /* SOURCE_DATE_EPOCH: Date, revision, timestamps, signature time */
	int64_t sign_time;  /* the signatures' time instead, when set (a key made
			     * after epoch cannot sign at epoch) */
	const kb_buf *sec;  /* the OpenPGP secret key that signs (armored or binary) */
	const kb_buf *pub;  /* its public key; NULL: derived from sec */
	const char *keyname; /* exported as KEYNAME.asc and KEYNAME.gpg ("archive-key") */
	/* apt only (defaults: "kbuild", "kbuild", "stable", the suite, "main") */
	const char *origin, *label, *suite, *codename, *component;
} kb_publish_opts;

typedef struct {
	const char *format; /* "apt" or "rpm-md" */
	size_t packages;    /* distinct packages published */
	size_t read;	    /* packages read (not in the metadata cache yet) */
	size_t linked;	    /* pool files added or replaced */
	size_t removed;	    /* stale files removed */
	size_t written;	    /* metadata files written (the rest were unchanged) */
} kb_publish_stats;

/* Publishes pkgs (all .deb or all .rpm) into o->outdir. Everything is
 * checked (packages, formats, key, signatures made) before the first
 * write; files are replaced atomically. */
KB_MUST kb_err *kb_publish(kb_store *s, const kb_publish_pkg *pkgs, size_t n,
			   const kb_publish_opts *o, kb_publish_stats *st);

#endif

/* One build step: its build root and inputs laid out in a work directory
 * on the store's file system (hardlinked, mounted read-only), the command
 * run in the sandbox with /out and /build writable, and /out stored as a
 * tree. A tree holds no times, owners or permission bits beyond "exe-
 * cutable", and its entries are sorted: storing the output is what
 * normalises it. Nothing is stored unless the step succeeded, and then in
 * one transaction, so a kill at any moment leaves no partial output. */
#include "build.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_TAIL 20
#define PROGRESS_LINE 100

static const char *where(kb_arena *a, const kb_step *st)
{
	return kb_arena_printf(a, "step '%s' (" KB_POS_FMT ")", st->name, KB_POS_ARGS(st->pos));
}

/* the last n lines of the log, each after prefix and made printable */
static char *log_tail(const char *path, int n, const char *prefix)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_strdup("");
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > 16384 ? size - 16384 : 0;
	kb_buf b = {0};
	char buf[16384];
	ssize_t got = pread(fd, buf, sizeof buf, from);
	close(fd);
	if (got <= 0)
		return kb_asprintf("%s(the log is empty)\n", prefix);
	size_t len = (size_t)got;
	if (buf[len - 1] == '\n')
		len--;
	size_t start = len;
	for (int lines = 0; start > 0; start--)
		if (buf[start - 1] == '\n' && ++lines == n)
			break;
	for (size_t i = start; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - buf) : len;
		kb_buf_adds(&b, prefix);
		for (size_t k = i; k < e; k++) /* a log may hold terminal escapes */
			kb_buf_addc(&b, (unsigned char)buf[k] < 0x20 && buf[k] != '\t' ? '?' : buf[k]);
		kb_buf_addc(&b, '\n');
		i = e + 1;
	}
	return kb_buf_steal(&b);
}

struct progress {
	const char *step, *logpath;
};

/* a long step (OpenZFS: minutes) says that it lives and what it does */
static void progress(void *ctx, double seconds)
{
	const struct progress *p = ctx;
	char *last = log_tail(p->logpath, 1, "");
	size_t n = strcspn(last, "\n");
	kb_info("step %s: running for %.0f s; log: %.*s%s", p->step, seconds,
		n > PROGRESS_LINE ? PROGRESS_LINE : (int)n, last, n > PROGRESS_LINE ? "..." : "");
	free(last);
}

static unsigned progress_ms(void)
{
	const char *e = getenv("KBUILD_PROGRESS_MS"); /* tests make it short */
	long v = e && *e ? strtol(e, NULL, 10) : 0;
	return v > 0 && v < 3600000 ? (unsigned)v : 30000;
}

static kb_err *mkdirs(const char *base, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *p = kb_asprintf("%s/%s", base, names[i]);
		int rc = mkdir(p, 0755);
		kb_err *err = rc < 0 ? kb_errno(errno, "cannot make %s", p) : NULL;
		free(p);
		if (err)
			return err;
	}
	return NULL;
}

kb_err *kb_step_exec(kb_store *s, const kb_step_run *x, kb_oid *out)
{
	const kb_step *st = x->st;
	kb_arena *a = kb_arena_new();
	const char *me = where(a, st);
	kb_workdir *w = NULL;
	kb_err *err = kb_workdir_new(s, x->work_prefix, &w);
	const char *wd = err ? NULL : kb_workdir_path(w);
	static const char *const dirs[] = {"in", "out", "build"};
	if (!err)
		err = mkdirs(wd, dirs, 3);
	for (size_t i = 0; !err && i < st->ninputs; i++)
		err = kb_store_checkout(s, &x->inputs[i],
					kb_arena_printf(a, "%s/in/%s", wd, st->inputs[i]), 0);
	if (err) {
		err = kb_err_wrap(err, "%s: cannot lay out its inputs", me);
		kb_workdir_free(w);
		kb_arena_free(a); /* me lives there */
		return err;
	}

	char *ldir = kb_strdup(x->logpath);
	err = kb_mkdir_p(dirname(ldir), 0755);
	free(ldir);
	int logfd = err ? -1 : open(x->logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!err && logfd < 0)
		err = kb_errno(errno, "cannot write the log %s", x->logpath);

	const char **extra = kb_arena_alloc(a, (st->nenv + 4) * sizeof *extra);
	size_t nextra = 0;
	extra[nextra++] = kb_arena_printf(a, "JOBS=%d", x->jobs);
	if (st->kernel) {
		extra[nextra++] = kb_arena_printf(a, "KVER=%s", st->kernel);
		extra[nextra++] = kb_arena_printf(a, "KDIR=%s%s", x->kdir, st->kernel);
	}
	memcpy(extra + nextra, st->env, st->nenv * sizeof *extra);
	nextra += st->nenv;
	char **env = NULL;
	if (!err)
		err = kb_sandbox_env(st->epoch, extra, nextra, &env);
	kb_bind binds[] = {
		{kb_arena_printf(a, "%s/in", wd), "/inputs", 0},
		{kb_arena_printf(a, "%s/out", wd), "/out", 1},
		{kb_arena_printf(a, "%s/build", wd), "/build", 1},
	};
	kb_sandbox_spec spec = {
		.root = x->rootdir,
		.argv = st->argv,
		.env = (const char *const *)env,
		.cwd = "/build",
		.binds = binds,
		.nbinds = 3,
		.timeout_s = st->timeout_s,
		.max_output_bytes = st->max_output,
		.log_fd = logfd,
		.err_fd = -1,
		.progress = progress,
		.progress_ctx = &(struct progress){st->name, x->logpath},
		.progress_ms = progress_ms(),
	};
	int status = 0;
	if (!err) {
		err = kb_sandbox_run(&spec, &status);
		if (err && err->code == KB_SANDBOX_ENOENT) {
			const kb_input *root = kb_recipe_input(x->r, st->root);
			kb_err_free(err);
			err = kb_errf("%s: '%s' is not in build root '%s' (" KB_POS_FMT "); add "
				      "the package that has it to the buildroot's packages",
				      me, st->argv[0], st->root, KB_POS_ARGS(root->pos));
		} else if (err)
			err = kb_err_wrap(err, "%s", me);
		else if (status)
			err = kb_errf("%s failed: %s %d", me, status > 128 ? "killed by signal"
									  : "exit status",
				      status > 128 ? status - 128 : status);
		if (err) {
			char *tail = log_tail(x->logpath, LOG_TAIL, "    | ");
			kb_err *full = kb_errf("%s\n  last lines of its log:\n%s  full log: %s",
					       err->msg, tail, x->logpath);
			kb_err_free(err);
			err = full;
			free(tail);
		}
	}
	if (logfd >= 0)
		close(logfd);
	free(env);

	kb_txn *t = NULL;
	if (!err && !(err = kb_txn_begin(s, &t))) {
		if ((err = kb_txn_add_path(t, binds[1].host, out))) {
			kb_txn_abort(t);
			err = kb_err_wrap(err, "%s: its output cannot be stored", me);
		} else {
			err = kb_txn_commit(t, out, 1);
		}
	}
	kb_workdir_free(w);
	kb_arena_free(a);
	return err;
}

/* 'kbuild sandbox': runs one command in the build sandbox, by hand or from
 * a script; the builder's steps use kb_sandbox_run the same way. */
#include "sandbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_line =
	"sandbox --root DIR [--bind HOST:INSIDE[:rw]]... [--cwd DIR] [--timeout S]\n"
	"              [--max-output BYTES] [--env K=V]... [--epoch N] [--hostname NAME]\n"
	"              -- CMD [ARG]...";

int kb_sandbox_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild %s\n\n"
		"Runs CMD in the build sandbox: namespaces of its own (user, mount, pid,\n"
		"network with loopback only, uts, ipc), DIR as its read-only root, the binds\n"
		"read-only unless ':rw', /tmp and a minimal /dev on tmpfs, its own /proc, uid\n"
		"and gid 0, umask 022, host name 'kbuild', stdin /dev/null. CMD's stdout and\n"
		"stderr are kbuild's; the environment is exactly:\n"
		"  HOME=/nonexistent LC_ALL=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"
		"  SOURCE_DATE_EPOCH=N TZ=UTC\n"
		"plus each --env (which may replace one of those). When CMD ends, every\n"
		"process it started is killed.\n\n"
		"  --root DIR            the build root (required)\n"
		"  --bind HOST:INSIDE[:rw|:ro]  mount HOST (a directory or a file) at INSIDE\n"
		"  --cwd DIR             the working directory inside (default /build,\n"
		"                        made empty and read-only when nothing is bound there)\n"
		"  --timeout S           kill the step after S seconds\n"
		"  --max-output BYTES    limit on the writable binds' total size, and on /tmp\n"
		"                        (suffixes k, M, G: powers of 1024)\n"
		"  --env K=V             add or replace a variable (repeatable)\n"
		"  --epoch N             SOURCE_DATE_EPOCH (default 0)\n"
		"  --hostname NAME       the host name inside (default kbuild)\n\n"
		"Exit status: CMD's (128+N when signal N killed it); 124 the time limit;\n"
		"125 the output limit or a sandbox failure; 126 CMD cannot run; 127 CMD is\n"
		"missing in the root; 2 usage.\n",
		usage_line);
	return 1;
}

static int parse_u64(const char *s, uint64_t *out, int suffixes)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	uint64_t v = strtoull(s, &end, 10), m = 1;
	if (errno)
		return -1;
	if (suffixes && *end && !end[1]) {
		switch (*end) {
		case 'k': case 'K': m = 1024; end++; break;
		case 'm': case 'M': m = 1024 * 1024; end++; break;
		case 'g': case 'G': m = 1024 * 1024 * 1024; end++; break;
		}
	}
	if (*end || v > UINT64_MAX / m)
		return -1;
	*out = v * m;
	return 0;
}

static kb_err *parse_bind(char *a, kb_bind *b)
{
	size_t n = strlen(a);
	b->writable = 0;
	if (n > 3 && (!strcmp(a + n - 3, ":rw") || !strcmp(a + n - 3, ":ro"))) {
		b->writable = a[n - 1] == 'w';
		a[n - 3] = 0;
	}
	char *colon = strrchr(a, ':');
	if (!colon || colon == a || !colon[1])
		return kb_usage("kbuild sandbox: --bind wants HOST:INSIDE[:rw], not '%s'", a);
	*colon = 0;
	b->host = a;
	b->inside = colon + 1;
	return NULL;
}

static const char *opt_value(int argc, char **argv, int *i, const char *name, kb_err **err)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (a[n] == '=')
		return a + n + 1;
	if (*i + 1 < argc)
		return argv[++*i];
	*err = kb_usage("kbuild sandbox: option '%s' needs a value", name);
	return NULL;
}

static kb_err *run(int argc, char **argv, int *status)
{
	kb_sandbox_spec s;
	memset(&s, 0, sizeof s);
	s.log_fd = 1;
	s.err_fd = 2;
	kb_bind *binds = kb_calloc((size_t)argc + 1, sizeof *binds);
	const char **extra = kb_calloc((size_t)argc + 1, sizeof *extra);
	size_t nextra = 0;
	int64_t epoch = 0;
	kb_err *err = NULL;
	int i = 0;
	for (; i < argc && !err; i++) {
		const char *a = argv[i], *v = NULL;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
#define OPT(name) ((!strcmp(a, name) || (!strncmp(a, name "=", sizeof name))) && \
		   (v = opt_value(argc, argv, &i, name, &err)))
		if (OPT("--root")) {
			s.root = v;
		} else if (OPT("--bind")) {
			err = parse_bind((char *)v, &binds[s.nbinds]);
			if (!err)
				s.nbinds++;
		} else if (OPT("--cwd")) {
			s.cwd = v;
		} else if (OPT("--timeout")) {
			uint64_t t;
			if (parse_u64(v, &t, 0) || !t || t > 365 * 86400)
				err = kb_usage("kbuild sandbox: --timeout wants a number of seconds, "
					       "not '%s'", v);
			s.timeout_s = (long)t;
		} else if (OPT("--max-output")) {
			if (parse_u64(v, &s.max_output_bytes, 1) || !s.max_output_bytes)
				err = kb_usage("kbuild sandbox: --max-output wants a number of bytes "
					       "(k, M, G suffixes allowed), not '%s'", v);
		} else if (OPT("--env")) {
			extra[nextra++] = v;
		} else if (OPT("--epoch")) {
			uint64_t e;
			if (parse_u64(v, &e, 0) || e > INT64_MAX)
				err = kb_usage("kbuild sandbox: --epoch wants seconds since 1970, "
					       "not '%s'", v);
			epoch = (int64_t)e;
		} else if (OPT("--hostname")) {
			s.hostname = v;
		} else if (!err) {
			err = kb_usage("kbuild sandbox: unknown option '%s' (see 'kbuild help "
				       "sandbox')", a);
		}
#undef OPT
	}
	char **env = NULL;
	if (!err && !s.root)
		err = kb_usage("kbuild sandbox: --root DIR is required (usage: kbuild %s)",
			       usage_line);
	if (!err && i >= argc)
		err = kb_usage("kbuild sandbox: no command (usage: kbuild %s)", usage_line);
	if (!err)
		err = kb_sandbox_env(epoch, extra, nextra, &env);
	if (!err) {
		s.argv = (const char *const *)(argv + i);
		s.env = (const char *const *)env;
		s.binds = binds;
		err = kb_sandbox_run(&s, status);
		if (err)
			err = kb_err_wrap(err, "kbuild sandbox");
	}
	free(env);
	free(extra);
	free(binds);
	return err;
}

int kb_sandbox_main(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return !kb_sandbox_help(stdout);
	int status = 0;
	kb_err *err = run(argc, argv, &status);
	return err ? kb_exit_status(err) : status;
}

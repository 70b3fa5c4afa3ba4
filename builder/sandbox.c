/* The build sandbox (see sandbox.h for what the step sees).
 *
 * Three processes besides the caller:
 *
 *  supervisor  forked by kb_sandbox_run. Unshares the pid namespace (and,
 *              without root, a user namespace mapping the caller to 0),
 *              forks the init, writes the id maps of the step's user
 *              namespace, enforces the time and output limits (it stays in
 *              the host's mount namespace, so it measures the writable
 *              binds by their host paths) and reports to the caller.
 *  init        PID 1 of the new pid namespace. Unshares mount, net, uts
 *              and ipc; builds the new root on a tmpfs; pivots into it;
 *              detaches the host's root; then unshares a user and a mount
 *              namespace once more, so that every mount it made is locked
 *              for the step (read-only stays read-only, nothing can be
 *              unmounted to uncover what lies below); forks the command and
 *              reaps whatever ends up as its child until the command exits.
 *              Its exit kills every process left in the namespace.
 *  command     closes everything but stdin (/dev/null), stdout and stderr,
 *              drops its controlling terminal, sets the umask, the file
 *              size limit and no_new_privs, and execs the step's argv.
 *
 * Every process reports to the caller through one pipe of NUL-ended
 * records (each shorter than PIPE_BUF, so written at once): the first
 * byte says what it is, the rest is text. The write ends are close-on-exec,
 * so the command's exec closes its copy; the caller reads until the
 * supervisor, the last holder, exits.
 *   E msg   the sandbox could not be set up (or the supervisor failed)
 *   M msg   the command is missing in the root
 *   X msg   the command is there but cannot be executed
 *   T       the time limit was reached; everything was killed
 *   O n     the writable binds held n bytes, over the limit; killed
 *   S n     the command ended with status n (128+signal when killed) */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
#define DEFAULT_CWD "/build"
#define DEFAULT_HOST "kbuild"
#define STAGE "/tmp"       /* host path the staging tmpfs is mounted on */
#define NEWROOT "/newroot" /* below the staging root: the step's root */
#define OLDROOT "/oldroot" /* below the staging root: the host's root */
#define REC_MAX 1024       /* a record's text, well below PIPE_BUF */

/* ---- the environment ---- */

static int env_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

kb_err *kb_sandbox_env(int64_t epoch, const char *const *extra, size_t nextra, char ***out)
{
	*out = NULL;
	if (epoch < 0)
		return kb_usage("SOURCE_DATE_EPOCH must not be negative (got %" PRId64 ")", epoch);
	char sde[64];
	snprintf(sde, sizeof sde, "SOURCE_DATE_EPOCH=%" PRId64, epoch);
	const char *defaults[] = {"HOME=/nonexistent", "LC_ALL=C.UTF-8", "PATH=" DEFAULT_PATH, sde,
				  "TZ=UTC"};
	size_t ndef = sizeof defaults / sizeof defaults[0];
	const char **v = kb_calloc(ndef + nextra + 1, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < ndef; i++)
		v[n++] = defaults[i];
	for (size_t i = 0; i < nextra; i++) {
		const char *e = extra[i], *eq = strchr(e, '=');
		if (!eq || eq == e) {
			free(v);
			char *q = kb_quote(e, strlen(e));
			kb_err *err = kb_usage("environment entry '%s' is not KEY=VALUE", q);
			free(q);
			return err;
		}
		size_t klen = (size_t)(eq - e) + 1, j = 0;
		while (j < n && strncmp(v[j], e, klen))
			j++;
		v[j] = e;
		if (j == n)
			n++;
	}
	qsort(v, n, sizeof *v, env_cmp);
	size_t bytes = (n + 1) * sizeof(char *);
	for (size_t i = 0; i < n; i++)
		bytes += strlen(v[i]) + 1;
	char **r = kb_malloc(bytes);
	char *p = (char *)(r + n + 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]) + 1;
		memcpy(p, v[i], l);
		r[i] = p;
		p += l;
	}
	r[n] = NULL;
	free(v);
	*out = r;
	return NULL;
}

/* ---- what the children need, prepared before the fork ---- */

typedef struct {
	char *src;    /* OLDROOT + the real host path */
	char *dst;    /* NEWROOT + the inside path */
	char *inside; /* for messages */
	int dir, writable;
} sb_mount;

typedef struct {
	const kb_sandbox_spec *s;
	char *root_src; /* OLDROOT + the real path of the root */
	sb_mount *m;
	size_t nm;
	char **outs; /* host paths of the writable binds, for measuring */
	size_t nouts;
	char *cwd;     /* inside */
	char *cwd_dst; /* NEWROOT + cwd */
	const char *path; /* PATH for looking up argv[0] */
	const char *hostname;
	char tmpfs_opts[64]; /* for /tmp and /dev/shm */
	int log_fd, err_fd;
	pid_t caller;
	int rep; /* the report pipe's write end */
} sb_plan;

static void plan_free(sb_plan *p)
{
	for (size_t i = 0; i < p->nm; i++) {
		free(p->m[i].src);
		free(p->m[i].dst);
		free(p->m[i].inside);
	}
	free(p->m);
	free(p->outs); /* the strings belong to m[].src */
	free(p->root_src);
	free(p->cwd);
	free(p->cwd_dst);
}

/* an absolute inside path, clean: no empty, "." or ".." components */
static kb_err *clean_inside(const char *p, const char *what, char **out)
{
	*out = NULL;
	char *q = kb_quote(p, strlen(p));
	kb_err *err = NULL;
	if (p[0] != '/')
		err = kb_usage("%s '%s' must be an absolute path inside the sandbox", what, q);
	kb_buf b = {0};
	for (const char *c = p; !err && *c;) {
		while (*c == '/')
			c++;
		const char *e = c;
		while (*e && *e != '/')
			e++;
		size_t n = (size_t)(e - c);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			err = kb_usage("%s '%s' must not have '.' or '..' components", what, q);
		else if (n) {
			kb_buf_addc(&b, '/');
			kb_buf_add(&b, c, n);
		}
		c = e;
	}
	if (!err && b.len > 1024)
		err = kb_usage("%s '%s' is too long", what, q);
	free(q);
	if (err) {
		kb_buf_free(&b);
		return err;
	}
	if (!b.len)
		kb_buf_addc(&b, '/');
	*out = kb_buf_steal(&b);
	return NULL;
}

static int under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(p, dir, n) && (p[n] == 0 || p[n] == '/');
}

static int mount_cmp(const void *a, const void *b)
{
	return strcmp(((const sb_mount *)a)->inside, ((const sb_mount *)b)->inside);
}

static kb_err *plan_make(const kb_sandbox_spec *s, sb_plan *p)
{
	memset(p, 0, sizeof *p);
	p->s = s;
	if (!s->argv || !s->argv[0] || !s->argv[0][0])
		return kb_usage("no command to run");
	if (!s->env)
		return kb_usage("no environment given");
	if (!s->root || !*s->root)
		return kb_usage("no build root given");
	if (s->timeout_s < 0)
		return kb_usage("the time limit must not be negative");
	p->log_fd = s->log_fd;
	p->err_fd = s->err_fd < 0 ? s->log_fd : s->err_fd;
	if (fcntl(p->log_fd, F_GETFD) < 0 || fcntl(p->err_fd, F_GETFD) < 0)
		return kb_usage("the log file descriptor is not open");
	p->hostname = s->hostname && *s->hostname ? s->hostname : DEFAULT_HOST;
	if (strlen(p->hostname) > 64)
		return kb_usage("host name '%s' is longer than 64 bytes", p->hostname);
	p->path = DEFAULT_PATH;
	for (const char *const *e = s->env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			p->path = *e + 5;

	char *real = realpath(s->root, NULL);
	struct stat st;
	if (!real || stat(real, &st) || !S_ISDIR(st.st_mode)) {
		kb_err *err = kb_errno(real ? ENOTDIR : errno, "build root '%s'", s->root);
		free(real);
		return err;
	}
	p->root_src = kb_asprintf(OLDROOT "%s", strcmp(real, "/") ? real : "");
	free(real);

	kb_err *err = clean_inside(s->cwd ? s->cwd : DEFAULT_CWD, "working directory", &p->cwd);
	if (err)
		return err;
	p->cwd_dst = kb_asprintf(NEWROOT "%s", strcmp(p->cwd, "/") ? p->cwd : "");
	if (under(p->cwd, "/proc") || under(p->cwd, "/dev"))
		return kb_usage("working directory '%s' is in /proc or /dev", p->cwd);

	p->m = kb_calloc(s->nbinds ? s->nbinds : 1, sizeof *p->m);
	p->outs = kb_calloc(s->nbinds ? s->nbinds : 1, sizeof *p->outs);
	for (size_t i = 0; i < s->nbinds; i++) {
		const kb_bind *b = &s->binds[i];
		sb_mount *m = &p->m[p->nm];
		if (!b->host || !b->inside)
			return kb_usage("bind %zu lacks a path", i + 1);
		if ((err = clean_inside(b->inside, "bind target", &m->inside)))
			return err;
		p->nm++;
		if (!strcmp(m->inside, "/") || under(m->inside, "/proc") || under(m->inside, "/dev"))
			return kb_usage("bind target '%s' is '/' or in /proc or /dev",
					m->inside);
		for (size_t j = 0; j + 1 < p->nm; j++)
			if (!strcmp(p->m[j].inside, m->inside))
				return kb_usage("two binds onto '%s'", m->inside);
		real = realpath(b->host, NULL);
		if (!real)
			return kb_errno(errno, "bind source '%s'", b->host);
		if (stat(real, &st) || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
			err = kb_errf("bind source '%s' is neither a directory nor a file",
				      b->host);
			free(real);
			return err;
		}
		m->dir = S_ISDIR(st.st_mode);
		m->writable = b->writable;
		m->src = kb_asprintf(OLDROOT "%s", strcmp(real, "/") ? real : "");
		free(real);
		m->dst = kb_asprintf(NEWROOT "%s", m->inside);
		if (m->writable)
			p->outs[p->nouts++] = m->src + strlen(OLDROOT);
	}
	/* parents before what is mounted below them */
	qsort(p->m, p->nm, sizeof *p->m, mount_cmp);
	if (s->max_output_bytes)
		snprintf(p->tmpfs_opts, sizeof p->tmpfs_opts, "mode=1777,size=%" PRIu64,
			 s->max_output_bytes);
	else
		snprintf(p->tmpfs_opts, sizeof p->tmpfs_opts, "mode=1777");
	p->caller = getpid();
	return NULL;
}

/* ---- helpers for the children (they only _exit) ---- */

static int g_rep = -1;

static void rec_v(char type, int en, const char *fmt, va_list ap)
{
	char b[REC_MAX + 2];
	b[0] = type;
	int n = vsnprintf(b + 1, REC_MAX, fmt, ap);
	size_t len = n < 0 ? 1 : (size_t)n + 1 < REC_MAX ? (size_t)n + 1 : REC_MAX;
	if (en)
		len += (size_t)snprintf(b + len, REC_MAX + 1 - len, ": %s", strerror(en));
	if (len > REC_MAX)
		len = REC_MAX;
	b[len] = 0;
	if (g_rep >= 0 && write(g_rep, b, len + 1) < 0) {
		/* the caller is gone: nobody to tell */
	}
}

static void rec(char type, const char *fmt, ...) KB_PRINTF(2, 3);
static void rec(char type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rec_v(type, 0, fmt, ap);
	va_end(ap);
}

/* reports a setup failure (with strerror(en) when en) and exits */
static _Noreturn void die(int en, const char *fmt, ...) KB_PRINTF(2, 3);
static _Noreturn void die(int en, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rec_v('E', en, fmt, ap);
	va_end(ap);
	_exit(KB_SANDBOX_EFAIL);
}

static int fd_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* closes every descriptor but those in keep[] */
static void close_except(int *keep, int n)
{
	qsort(keep, (size_t)n, sizeof *keep, fd_cmp);
	unsigned lo = 0;
	for (int i = 0; i < n; i++) {
		if (keep[i] < 0)
			continue;
		if ((unsigned)keep[i] > lo && syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0)) {
			for (unsigned fd = lo; fd < (unsigned)keep[i]; fd++)
				close((int)fd);
		}
		lo = (unsigned)keep[i] + 1;
	}
	if (syscall(SYS_close_range, lo, ~0U, 0)) {
		struct rlimit rl;
		unsigned max = getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > 65536 ? 65536
										    : (unsigned)rl.rlim_cur;
		for (unsigned fd = lo; fd < max; fd++)
			close((int)fd);
	}
}

static void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(errno, "cannot open %s", path);
	ssize_t n = write(fd, s, strlen(s));
	if (n != (ssize_t)strlen(s))
		die(n < 0 ? errno : EIO, "cannot write '%s' to %s", s, path);
	close(fd);
}

/* ---- the init: building the root ---- */

/* the flags of the mount at path that a remount must keep (in a user
 * namespace, the locked ones may not be cleared) */
static unsigned long kept_flags(const char *path)
{
	struct statvfs v;
	if (statvfs(path, &v))
		return 0;
	unsigned long f = 0;
	if (v.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (v.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (v.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (v.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (v.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (v.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (v.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* inside path of a NEWROOT path, for messages */
static const char *in_name(const char *p)
{
	size_t n = strlen(NEWROOT);
	return !strncmp(p, NEWROOT, n) ? (p[n] ? p + n : "/") : p;
}

static void remount(const char *dst, unsigned long add, int rdonly)
{
	unsigned long f = kept_flags(dst) | add;
	if (rdonly)
		f |= MS_RDONLY;
	if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | f, NULL))
		die(errno, "cannot remount %s %s", in_name(dst), rdonly ? "read-only" : "");
}

/* a path for messages: the host's without OLDROOT, the step's without
 * NEWROOT */
static const char *shown(const char *p)
{
	size_t n = strlen(OLDROOT);
	return !strncmp(p, OLDROOT, n) && (p[n] == '/' || !p[n]) ? (p[n] ? p + n : "/")
								  : in_name(p);
}

/* binds src onto dst (both exist), not recursively: what is mounted below
 * src on the host stays out, so read-only holds for the whole subtree */
static void bind_path(const char *src, const char *dst, unsigned long add, int rdonly)
{
	if (mount(src, dst, NULL, MS_BIND, NULL))
		die(errno, "cannot bind %s onto %s", shown(src), in_name(dst));
	remount(dst, add, rdonly);
}

/* makes the mount point dst (a NEWROOT path) and its parents; refuses a
 * symlink on the way (it could point anywhere) */
static void make_point(const char *dst, int dir)
{
	char b[PATH_MAX];
	size_t n = strlen(dst), start = strlen(NEWROOT);
	if (n >= sizeof b)
		die(ENAMETOOLONG, "mount point %s", in_name(dst));
	memcpy(b, dst, n + 1);
	for (size_t i = start + 1; i <= n; i++) {
		if (b[i] != '/' && b[i] != 0)
			continue;
		char c = b[i];
		b[i] = 0;
		int last = i == n;
		struct stat st;
		if (!lstat(b, &st)) {
			if (S_ISLNK(st.st_mode))
				die(0, "mount point %s passes through a symlink in the build root (%s)",
				    in_name(dst), in_name(b));
			if (!last && !S_ISDIR(st.st_mode))
				die(0, "mount point %s: %s is not a directory", in_name(dst), in_name(b));
			if (last && !dir != !S_ISDIR(st.st_mode))
				die(0, "mount point %s is a %s in the build root, the bind a %s",
				    in_name(dst), S_ISDIR(st.st_mode) ? "directory" : "file",
				    dir ? "directory" : "file");
		} else if (errno != ENOENT) {
			die(errno, "mount point %s", in_name(b));
		} else if (!last || dir) {
			if (mkdir(b, 0755))
				die(errno, "cannot make mount point %s%s", in_name(b),
				    errno == EROFS ? " (the build root lacks it)" : "");
		} else {
			int fd = open(b, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (fd < 0)
				die(errno, "cannot make mount point %s%s", in_name(b),
				    errno == EROFS ? " (the build root lacks it)" : "");
			close(fd);
		}
		b[i] = c;
	}
}

/* each top-level entry of the root: directories and files bound
 * read-only, symlinks copied; proc, dev and tmp are the sandbox's own */
static void bind_root(const sb_plan *p)
{
	DIR *d = opendir(p->root_src);
	if (!d)
		die(errno, "cannot read the build root %s", p->root_src + strlen(OLDROOT));
	struct dirent *e;
	char src[PATH_MAX], dst[PATH_MAX], target[PATH_MAX];
	while ((errno = 0, e = readdir(d))) {
		const char *n = e->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "proc") || !strcmp(n, "dev") ||
		    !strcmp(n, "tmp"))
			continue;
		if ((size_t)snprintf(src, sizeof src, "%s/%s", p->root_src, n) >= sizeof src ||
		    (size_t)snprintf(dst, sizeof dst, NEWROOT "/%s", n) >= sizeof dst)
			die(ENAMETOOLONG, "build root entry %s", n);
		struct stat st;
		if (lstat(src, &st))
			die(errno, "build root entry %s", n);
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(dst, 0755))
				die(errno, "cannot make %s", in_name(dst));
			bind_path(src, dst, MS_NOSUID | MS_NODEV, 1);
		} else if (S_ISREG(st.st_mode)) {
			int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			if (fd < 0)
				die(errno, "cannot make %s", in_name(dst));
			close(fd);
			bind_path(src, dst, MS_NOSUID | MS_NODEV, 1);
		} else if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlink(src, target, sizeof target - 1);
			if (l < 0)
				die(errno, "build root entry %s", n);
			target[l] = 0;
			if (symlink(target, dst))
				die(errno, "cannot make %s", in_name(dst));
		} /* devices, fifos, sockets: not in a root */
	}
	if (errno)
		die(errno, "cannot read the build root %s", p->root_src + strlen(OLDROOT));
	closedir(d);
}

static void make_dev(const sb_plan *p)
{
	static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {{"fd", "/proc/self/fd"},
					       {"stdin", "/proc/self/fd/0"},
					       {"stdout", "/proc/self/fd/1"},
					       {"stderr", "/proc/self/fd/2"}};
	char src[64], dst[64];
	if (mkdir(NEWROOT "/dev", 0755) ||
	    mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k"))
		die(errno, "cannot mount a tmpfs on /dev");
	for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
		snprintf(src, sizeof src, OLDROOT "/dev/%s", devs[i]);
		snprintf(dst, sizeof dst, NEWROOT "/dev/%s", devs[i]);
		if (access(src, F_OK))
			continue; /* a host without it: the step goes without */
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			die(errno, "cannot make /dev/%s", devs[i]);
		close(fd);
		bind_path(src, dst, MS_NOSUID | MS_NOEXEC, 0);
	}
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		snprintf(dst, sizeof dst, NEWROOT "/dev/%s", links[i][0]);
		if (symlink(links[i][1], dst))
			die(errno, "cannot make /dev/%s", links[i][0]);
	}
	if (mkdir(NEWROOT "/dev/shm", 01777) ||
	    mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts))
		die(errno, "cannot mount a tmpfs on /dev/shm");
	remount(NEWROOT "/dev", MS_NOSUID | MS_NOEXEC, 1);
}

/* a proc of the new pid namespace; what it has that reaches the whole
 * machine read-only or hidden (the step's uid 0 may be the host's) */
static void make_proc(void)
{
	static const char *const ro[] = {"sys", "sysrq-trigger", "irq", "bus", "fs", "acpi"};
	static const char *const hide[] = {"kcore", "keys", "timer_list", "sched_debug",
					   "latency_stats", "kallsyms"};
	char b[64];
	if (mkdir(NEWROOT "/proc", 0555) ||
	    mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die(errno, "cannot mount /proc");
	for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
		snprintf(b, sizeof b, NEWROOT "/proc/%s", ro[i]);
		if (!access(b, F_OK))
			bind_path(b, b, MS_NOSUID | MS_NODEV | MS_NOEXEC, 1);
	}
	for (size_t i = 0; i < sizeof hide / sizeof hide[0]; i++) {
		snprintf(b, sizeof b, NEWROOT "/proc/%s", hide[i]);
		if (!access(b, F_OK) && mount(OLDROOT "/dev/null", b, NULL, MS_BIND, NULL))
			die(errno, "cannot hide /proc/%s", hide[i]);
	}
}

static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die(errno, "cannot make a socket to bring up loopback");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		die(errno, "cannot read the flags of lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		die(errno, "cannot bring up lo");
	close(s);
}

static int status_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
}

static void move_fd(int from, int to)
{
	if (from == to)
		fcntl(to, F_SETFD, 0);
	else if (dup2(from, to) < 0)
		die(errno, "cannot set up descriptor %d", to);
}

static _Noreturn void command_main(const sb_plan *p)
{
	const kb_sandbox_spec *s = p->s;
	if (setsid() < 0)
		die(errno, "setsid");
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			signal(i, SIG_DFL);

	int lfd = fcntl(p->log_fd, F_DUPFD_CLOEXEC, 3);
	int efd = fcntl(p->err_fd, F_DUPFD_CLOEXEC, 3);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (lfd < 0 || efd < 0 || nul < 0)
		die(errno, "cannot set up the step's stdin, stdout and stderr");
	move_fd(nul, 0);
	move_fd(lfd, 1);
	move_fd(efd, 2);
	/* the report pipe stays open until exec */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC)) {
		for (int fd = 3; fd < 65536; fd++)
			if (fd != g_rep)
				close(fd);
		fcntl(g_rep, F_SETFD, FD_CLOEXEC);
	}
	umask(022);
	/* no supplementary groups (unprivileged, setgroups is denied and
	 * there are none that map anyway) */
	setgroups(0, NULL);
	/* no core files: they would land in the output */
	struct rlimit nocore = {0, 0};
	if (setrlimit(RLIMIT_CORE, &nocore))
		die(errno, "cannot set the core file size limit");
	if (s->max_output_bytes) {
		struct rlimit rl = {s->max_output_bytes + 1, s->max_output_bytes + 1};
		if (setrlimit(RLIMIT_FSIZE, &rl))
			die(errno, "cannot set the file size limit");
	}
	/* a session keyring of its own (KEYCTL_JOIN_SESSION_KEYRING); none at
	 * all where keys are not built in */
	syscall(SYS_keyctl, 1, NULL);
	if (chdir(p->cwd))
		die(errno, "cannot enter the working directory %s", p->cwd);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die(errno, "cannot set no_new_privs");

	const char *cmd = s->argv[0];
	char *const *av = (char *const *)s->argv;
	char *const *ev = (char *const *)s->env;
	if (strchr(cmd, '/')) {
		execve(cmd, av, ev);
		int en = errno;
		struct stat st;
		if ((en == ENOENT || en == ENOTDIR) && stat(cmd, &st))
			rec('M', "step's command '%s' is missing in the build root", cmd);
		else if (en == ENOENT)
			rec('X', "step's command '%s' cannot run: its interpreter (ELF loader or #! "
				 "line) is missing in the build root", cmd);
		else
			rec('X', "step's command '%s' cannot run: %s", cmd, strerror(en));
		_exit(KB_SANDBOX_ENOEXEC);
	}
	char b[PATH_MAX], denied[PATH_MAX] = "", nointerp[PATH_MAX] = "";
	int other = 0;
	for (const char *d = p->path;;) {
		const char *e = strchr(d, ':');
		size_t n = e ? (size_t)(e - d) : strlen(d);
		if ((size_t)snprintf(b, sizeof b, "%.*s/%s", (int)n, n ? d : ".", cmd) < sizeof b) {
			execve(b, av, ev);
			int en = errno;
			struct stat st;
			if (en == EACCES && !denied[0])
				snprintf(denied, sizeof denied, "%s", b);
			else if (en == ENOENT && !stat(b, &st) && !nointerp[0])
				snprintf(nointerp, sizeof nointerp, "%s", b);
			else if (en != ENOENT && en != ENOTDIR && en != EACCES && !other) {
				rec('X', "step's command '%s' cannot run (%s): %s", cmd, b,
				    strerror(en));
				other = 1;
				break;
			}
		}
		if (!e)
			break;
		d = e + 1;
	}
	if (other)
		_exit(KB_SANDBOX_ENOEXEC);
	if (nointerp[0])
		rec('X', "step's command '%s' (%s) cannot run: its interpreter (ELF loader or #! "
			 "line) is missing in the build root", cmd, nointerp);
	else if (denied[0])
		rec('X', "step's command '%s' (%s) is not executable", cmd, denied);
	else
		rec('M', "step's command '%s' is missing in the build root (PATH=%s)", cmd, p->path);
	_exit(nointerp[0] || denied[0] ? KB_SANDBOX_ENOEXEC : KB_SANDBOX_ENOENT);
}

static _Noreturn void init_main(const sb_plan *p, int b2a, int a2b, int alive)
{
	/* dies with the supervisor; and if that already happened, now */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct pollfd pf = {alive, POLLIN, 0};
	if (poll(&pf, 1, 0) != 0)
		_exit(KB_SANDBOX_EFAIL);

	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC))
		die(errno, "cannot make the mount, network, uts and ipc namespaces");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die(errno, "cannot make the mounts private");
	if (sethostname(p->hostname, strlen(p->hostname)) || setdomainname("(none)", 6))
		die(errno, "cannot set the host name");
	loopback_up();

	/* a staging root, with the host's root below it at OLDROOT */
	if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k"))
		die(errno, "cannot mount the staging tmpfs on " STAGE);
	if (chdir(STAGE) || mkdir("." NEWROOT, 0755) || mkdir("." OLDROOT, 0755))
		die(errno, "cannot prepare the staging tmpfs");
	if (syscall(SYS_pivot_root, ".", "." OLDROOT) || chdir("/"))
		die(errno, "cannot pivot into the staging tmpfs");
	if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m"))
		die(errno, "cannot mount the new root's tmpfs");

	bind_root(p);
	make_proc();
	make_dev(p);
	if (mkdir(NEWROOT "/tmp", 01777) ||
	    mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts))
		die(errno, "cannot mount a tmpfs on /tmp");
	for (size_t i = 0; i < p->nm; i++) {
		const sb_mount *m = &p->m[i];
		make_point(m->dst, m->dir);
		bind_path(m->src, m->dst, MS_NOSUID | MS_NODEV, !m->writable);
	}
	make_point(p->cwd_dst, 1);
	remount(NEWROOT, MS_NOSUID | MS_NODEV, 1);

	/* into the new root; the host's is detached and gone */
	if (umount2(OLDROOT, MNT_DETACH))
		die(errno, "cannot detach the host's root");
	if (chdir(NEWROOT) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) ||
	    chdir("/"))
		die(errno, "cannot pivot into the new root");

	/* the step's own user namespace (its maps come from the supervisor)
	 * and a copy of the mounts, locked */
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS))
		die(errno, "cannot make the step's user namespace");
	char c = 'u';
	if (write(b2a, &c, 1) != 1 || read(a2b, &c, 1) != 1 || c != 'k')
		_exit(KB_SANDBOX_EFAIL); /* the supervisor said why */
	close(b2a);
	close(a2b);
	/* this process is a copy of kbuild's memory (its environment, what
	 * it has loaded): the step may not read it through /proc/1/mem,
	 * /proc/1/environ or ptrace. (Not earlier: unprivileged, the maps
	 * just written need /proc/PID/ files owned by the caller.) */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		die(errno, "cannot make the sandbox's init undumpable");

	pid_t cmd = fork();
	if (cmd < 0)
		die(errno, "cannot fork the step's command");
	if (cmd == 0)
		command_main(p);
	int keep[] = {alive};
	close_except(keep, 1);
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w == cmd)
			_exit(status_code(st));
		if (w < 0 && errno != EINTR)
			_exit(KB_SANDBOX_EFAIL);
	}
}

/* ---- the supervisor ---- */

static uint64_t g_total;
static kb_hset *g_seen;

static int measure_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)f;
	if (flag != FTW_F && flag != FTW_SL && flag != FTW_SLN)
		return 0;
	if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
		return 0;
	if (st->st_nlink > 1) {
		uint64_t key[2] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino};
		kb_hash h;
		kb_sha256(key, sizeof key, &h);
		if (!kb_hset_add(g_seen, &h))
			return 0;
	}
	g_total += (uint64_t)st->st_size;
	return 0;
}

/* the apparent size of the files in the writable binds, each inode once */
static uint64_t measure(const sb_plan *p)
{
	g_total = 0;
	g_seen = kb_hset_new();
	for (size_t i = 0; i < p->nouts; i++)
		nftw(p->outs[i], measure_one, 16, FTW_PHYS | FTW_MOUNT);
	kb_hset_free(g_seen);
	g_seen = NULL;
	return g_total;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* the step's user namespace maps each id of ours to itself */
static int write_map(pid_t pid, const char *which)
{
	char self[64], path[64], in[4096], out[4096];
	snprintf(self, sizeof self, "/proc/self/%s", which);
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
	int fd = open(self, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, in, sizeof in - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		rec('E', "cannot read %s: %s", self, strerror(n < 0 ? errno : EIO));
		return -1;
	}
	in[n] = 0;
	size_t o = 0;
	for (char *line = strtok(in, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long a, b, c;
		if (sscanf(line, "%lu %lu %lu", &a, &b, &c) == 3 && o < sizeof out - 64)
			o += (size_t)snprintf(out + o, sizeof out - o, "%lu %lu %lu\n", a, a, c);
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, out, o) != (ssize_t)o) {
		int en = errno;
		rec('E', "cannot write the step's %s (%s): %s", which, out, strerror(en));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static _Noreturn void supervisor_main(const sb_plan *p)
{
	const kb_sandbox_spec *s = p->s;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != p->caller)
		_exit(KB_SANDBOX_EFAIL);
	/* as root, namespaces of our own; otherwise (or where root may not)
	 * a user namespace in which we are 0 */
	int userns = geteuid() != 0;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (!userns && unshare(CLONE_NEWPID)) {
		if (errno != EPERM)
			die(errno, "cannot make a pid namespace");
		userns = 1;
	}
	if (userns) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWPID))
			die(errno, "cannot make a user and pid namespace (are unprivileged user "
				   "namespaces allowed? see /proc/sys/user/max_user_namespaces)");
		char m[64];
		write_str("/proc/self/setgroups", "deny");
		snprintf(m, sizeof m, "0 %u 1\n", (unsigned)uid);
		write_str("/proc/self/uid_map", m);
		snprintf(m, sizeof m, "0 %u 1\n", (unsigned)gid);
		write_str("/proc/self/gid_map", m);
	}
	int b2a[2], a2b[2], alive[2];
	if (pipe2(b2a, O_CLOEXEC) || pipe2(a2b, O_CLOEXEC) || pipe2(alive, O_CLOEXEC))
		die(errno, "pipe");
	pid_t b = fork();
	if (b < 0)
		die(errno, "cannot fork the sandbox's init");
	if (b == 0) {
		close(b2a[0]);
		close(a2b[1]);
		close(alive[1]);
		init_main(p, b2a[1], a2b[0], alive[0]);
	}
	int keep[] = {g_rep, b2a[0], a2b[1], alive[1]};
	close_except(keep, 4);

	int pidfd = (int)syscall(SYS_pidfd_open, b, 0);
	int64_t start = now_ms();
	int64_t deadline = s->timeout_s ? start + (int64_t)s->timeout_s * 1000 : INT64_MAX;
	int64_t interval = 100, next_sample = s->max_output_bytes ? start + interval : INT64_MAX;
	int st = 0, handshake = 1;
	char what = 0;
	uint64_t used = 0;
	for (;;) {
		if (waitpid(b, &st, WNOHANG) == b)
			break;
		int64_t now = now_ms();
		if (now >= deadline) {
			what = 'T';
		} else if (now >= next_sample) {
			int64_t t0 = now_ms();
			used = measure(p);
			int64_t took = now_ms() - t0;
			if (used > s->max_output_bytes)
				what = 'O';
			/* sampling costs at most about 5% of the time */
			interval = took * 20 > 100 ? took * 20 : 100;
			next_sample = now_ms() + interval;
		}
		if (what) {
			kill(b, SIGKILL);
			while (waitpid(b, &st, 0) < 0 && errno == EINTR)
				;
			break;
		}
		int64_t until = deadline < next_sample ? deadline : next_sample;
		int ms = until == INT64_MAX ? -1 : until - now > 60000 ? 60000 : (int)(until - now);
		if (pidfd < 0 && (ms < 0 || ms > 50))
			ms = 50; /* no pidfd (before Linux 5.3): poll */
		struct pollfd pf[2] = {{pidfd, POLLIN, 0}, {handshake ? b2a[0] : -1, POLLIN, 0}};
		if (poll(pf, 2, ms) < 0 && errno != EINTR)
			die(errno, "poll");
		if (handshake && pf[1].revents) {
			char c;
			handshake = 0;
			if (read(b2a[0], &c, 1) == 1) {
				if (write_map(b, "uid_map") || write_map(b, "gid_map"))
					kill(b, SIGKILL);
				else if (write(a2b[1], "k", 1) != 1)
					kill(b, SIGKILL);
			}
			close(b2a[0]);
			close(a2b[1]);
		}
	}
	if (!what && s->max_output_bytes && (used = measure(p)) > s->max_output_bytes)
		what = 'O';
	if (what == 'T')
		rec('T', "%ld", s->timeout_s);
	else if (what == 'O')
		rec('O', "%" PRIu64, used);
	else
		rec('S', "%d", status_code(st));
	_exit(0);
}

/* ---- the caller ---- */

kb_err *kb_sandbox_run(const kb_sandbox_spec *s, int *status)
{
	*status = -1;
	sb_plan p;
	kb_err *err = plan_make(s, &p);
	if (err) {
		plan_free(&p);
		return err;
	}
	int rep[2];
	if (pipe2(rep, O_CLOEXEC)) {
		plan_free(&p);
		return kb_errno(errno, "pipe");
	}
	/* never 0, 1 or 2: the command's dup2s would close it */
	for (int i = 0; i < 2; i++)
		if (rep[i] < 3) {
			int fd = fcntl(rep[i], F_DUPFD_CLOEXEC, 3);
			close(rep[i]);
			rep[i] = fd;
		}
	if (rep[0] < 0 || rep[1] < 0) {
		err = kb_errno(errno, "pipe");
		goto out;
	}
	fflush(NULL);
	pid_t sup = fork();
	if (sup < 0) {
		err = kb_errno(errno, "fork");
		goto out;
	}
	if (sup == 0) {
		close(rep[0]);
		g_rep = p.rep = rep[1];
		supervisor_main(&p);
	}
	close(rep[1]);
	rep[1] = -1;

	kb_buf b = {0};
	char chunk[4096];
	int64_t start = now_ms(), next = s->progress_ms ? start + s->progress_ms : INT64_MAX;
	for (;;) {
		if (next != INT64_MAX) {
			int64_t now = now_ms();
			if (now >= next) {
				s->progress(s->progress_ctx, (double)(now - start) / 1000);
				next = now + s->progress_ms;
			}
			struct pollfd pf = {rep[0], POLLIN, 0};
			int64_t wait = next - now_ms();
			if (poll(&pf, 1, wait > 0 ? (int)wait : 0) == 0)
				continue;
		}
		ssize_t n = read(rep[0], chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		kb_buf_add(&b, chunk, (size_t)n);
	}
	int st;
	while (waitpid(sup, &st, 0) < 0 && errno == EINTR)
		;
	kb_buf_addc(&b, 0);
	/* the first failure of setting up or starting the step wins; then a
	 * limit; then the status */
	const char *fail = NULL, *limit = NULL, *done = NULL;
	for (size_t i = 0; i + 1 < b.len; i += strlen(b.p + i) + 1) {
		const char *r = b.p + i;
		if ((r[0] == 'E' || r[0] == 'M' || r[0] == 'X') && !fail)
			fail = r;
		else if ((r[0] == 'T' || r[0] == 'O') && !limit)
			limit = r;
		else if (r[0] == 'S' && !done)
			done = r;
	}
	if (fail) {
		err = fail[0] == 'E' ? kb_errf("cannot set up the sandbox: %s", fail + 1) : kb_errf("%s", fail + 1);
		err->code = fail[0] == 'E'   ? KB_SANDBOX_EFAIL
			    : fail[0] == 'M' ? KB_SANDBOX_ENOENT
					     : KB_SANDBOX_ENOEXEC;
	} else if (limit && limit[0] == 'T') {
		err = kb_errf("step killed: it ran past its time limit of %ld s", s->timeout_s);
		err->code = KB_SANDBOX_ETIME;
	} else if (limit) {
		err = kb_errf("step killed: its output passed its limit of %" PRIu64
			      " bytes (the writable directories held %s bytes)",
			      s->max_output_bytes, limit + 1);
		err->code = KB_SANDBOX_EFAIL;
	} else if (done) {
		*status = atoi(done + 1);
	} else {
		err = kb_errf("the sandbox's supervisor died (%s %d) without a report",
			      WIFSIGNALED(st) ? "signal" : "status",
			      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		err->code = KB_SANDBOX_EFAIL;
	}
	kb_buf_free(&b);
out:
	if (rep[0] >= 0)
		close(rep[0]);
	if (rep[1] >= 0)
		close(rep[1]);
	plan_free(&p);
	return err;
}

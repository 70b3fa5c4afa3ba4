/* Private to builder/: running one build step in a sandbox made of Linux
 * namespaces (pid, mount, net, uts, ipc, user), with a build root as its
 * read-only root file system.
 *
 * What the step sees:
 *  - "/": the build root, read-only (each top-level entry of the root is
 *    bound read-only onto a read-only tmpfs, so mount points such as
 *    /build can be made even when the root lacks them);
 *  - the binds: each host path read-only, or writable when asked (the
 *    one output directory); the host's other files are unreachable (the
 *    host's root is detached after pivot_root);
 *  - /proc of its own pid namespace (only the step's processes; /proc/sys,
 *    /proc/sysrq-trigger and the like read-only or masked), a minimal
 *    /dev (null zero full random urandom tty, /dev/shm, fd links) and
 *    /tmp, both tmpfs;
 *  - a network namespace with only loopback, up: 127.0.0.1 is its own;
 *  - hostname and domain name fixed, uid and gid 0 without supplementary
 *    groups, umask 022, stdin /dev/null, no controlling terminal, a fresh
 *    session keyring, no other inherited file descriptors, no core files,
 *    no_new_privs, exactly the environment given.
 *
 * The step runs as uid 0 of a user namespace of its own, nested below the
 * one that set the sandbox up: it may mount inside its mount namespace
 * (tmpfs, binds of what it sees), but the mounts it was given are locked
 * (it cannot remount an input writable or uncover what a mount hides),
 * and it has no power over the pid, net or uts namespace nor anything of
 * the host's kernel. When kbuild runs as root the namespace maps ids
 * one to one (files the step writes belong to the ids it chose); when it
 * does not, unprivileged user namespaces are used and only the caller's
 * ids exist inside (mapped to 0).
 *
 * PID 1 of the pid namespace is a small init that reaps orphans and exits
 * when the command exits; that kills every process the step left behind.
 *
 * Limits: the time limit kills the whole namespace; the output limit
 * bounds the total apparent size of the files in the writable binds. It
 * is enforced three ways: no single file may grow beyond it (RLIMIT_FSIZE
 * of limit+1 bytes: a runaway write stops at once), the writable binds are
 * measured a few times a second while the step runs (the step is killed
 * when over), and once more after it ended (a step over the limit fails
 * even when it was quicker than the sampling). /tmp is a tmpfs of that
 * size too.
 *
 * The init is a copy of kbuild made undumpable: the step cannot read its
 * memory or environment (/proc/1/mem, /proc/1/environ, ptrace).
 *
 * Not covered: memory, CPU and process-count limits (no cgroups); what
 * the kernel shares regardless of namespaces (uname -r, the time, the
 * CPU, /proc/cpuinfo and /proc/meminfo, a core_pattern pipe handler);
 * host paths are visible in /proc/self/mountinfo (where the root and the
 * binds come from) and /proc/1/cmdline (kbuild's arguments). A writer
 * faster than the sampling may pass the output limit by what it writes in
 * one sampling interval (at least 0.1 s) before it is killed. */
#ifndef KB_BUILDER_SANDBOX_H
#define KB_BUILDER_SANDBOX_H

#include "../common/common.h"

#include <stdint.h>
#include <stdio.h>

/* exit statuses kb_sandbox_run's errors carry (err->code), after
 * timeout(1) and env(1) */
#define KB_SANDBOX_ETIME 124  /* the time limit */
#define KB_SANDBOX_EFAIL 125  /* the sandbox failed, or the output limit */
#define KB_SANDBOX_ENOEXEC 126 /* the command is there but does not run */
#define KB_SANDBOX_ENOENT 127 /* the command is missing in the root */

typedef struct {
	const char *host;   /* a directory or a file on the host */
	const char *inside; /* absolute path inside the sandbox */
	int writable;       /* 0: read-only */
} kb_bind;

typedef struct {
	const char *root;         /* the build root (a directory) */
	const char *const *argv;  /* the command; argv[0] is looked up in PATH
				   * of env when it has no slash */
	const char *const *env;   /* the complete environment (NULL-ended);
				   * kb_sandbox_env makes the fixed one */
	const char *cwd;          /* inside; NULL: /build (made if missing) */
	const kb_bind *binds;     /* mounted in order of their inside paths */
	size_t nbinds;
	const char *hostname;     /* NULL: "kbuild" */
	long timeout_s;           /* 0: none */
	uint64_t max_output_bytes; /* 0: none */
	int log_fd;               /* the command's stdout */
	int err_fd;               /* its stderr; -1: log_fd */
	/* called every progress_ms while the command runs (0: never), in
	 * the calling process, with the seconds since it started */
	void (*progress)(void *ctx, double seconds);
	void *progress_ctx;
	unsigned progress_ms;
} kb_sandbox_spec;

/* Runs the step and waits for it. *status: the command's exit status, or
 * 128+N when a signal N killed it. Errors: the sandbox could not be set
 * up, the command is missing (code KB_SANDBOX_ENOENT) or not executable,
 * the time or output limit was reached (the message names the limit and
 * every process of the step has been killed). */
KB_MUST kb_err *kb_sandbox_run(const kb_sandbox_spec *s, int *status);

/* The fixed environment, sorted and NULL-ended, one allocation (free()):
 *   HOME=/nonexistent  LC_ALL=C.UTF-8
 *   PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
 *   SOURCE_DATE_EPOCH=epoch  TZ=UTC
 * plus extra ("K=V"; a K given there replaces the default, the last of
 * the same K wins). Refuses an entry without '=' or with an empty K. */
KB_MUST kb_err *kb_sandbox_env(int64_t epoch, const char *const *extra, size_t nextra,
			       char ***out);

/* 'kbuild sandbox' */
int kb_sandbox_main(int argc, char **argv);
int kb_sandbox_help(FILE *out);

#endif

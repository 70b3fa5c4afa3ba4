/* What every command shares: option errors worded one way, and one place
 * where an error becomes a line on stderr and an exit status. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int kb_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	      const char *cmd, kb_err **err)
{
	static const struct option none[] = {{0}};
	/* leading ':': a missing value is ':', not '?' like an unknown option */
	char opts[32];
	snprintf(opts, sizeof opts, ":%s", shortopts);
	opterr = 0;
	int c = getopt_long(argc, argv, opts, longopts ? longopts : none, NULL);
	if (c == -1)
		return 0;
	if (c != '?' && c != ':')
		return c;
	/* a long option's error leaves optind past it ("--name" or
	 * "--name=value"); a short one's inside a cluster ("-zr") does not,
	 * so a short option is named by optopt */
	const char *arg = argv[optind - 1];
	char shortopt[3] = {'-', (char)optopt, 0};
	if (optopt && (strncmp(arg, "--", 2) || (c == '?' && !strchr(arg, '='))))
		arg = shortopt;
	*err = c == ':' ? kb_usage("kbuild %s: option '%s' needs a value (see 'kbuild help %s')",
				   cmd, arg, cmd)
			: kb_usage("kbuild %s: unknown option '%s' (see 'kbuild help %s')", cmd, arg,
				   cmd);
	return -1;
}

int kb_exit_status(kb_err *err)
{
	if (fflush(stdout) != 0 && !err)
		err = kb_errf("cannot write to standard output");
	if (!err)
		return 0;
	fprintf(stderr, "kbuild: %s\n", err->msg);
	int code = err->code;
	kb_err_free(err);
	return code;
}

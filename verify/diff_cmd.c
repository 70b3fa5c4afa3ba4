/* 'kbuild diff A B': how two builds differ, as lines or JSON; exit 0 when
 * identical, 1 when different, 2 on bad usage or an unreadable operand
 * (like diff(1)). */
#include "verify.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int kb_diff_help(FILE *out)
{
	fprintf(out,
		"usage: kbuild diff [--json] [--max N] A B\n\n"
		"Explains how A and B differ, one line per difference, outermost container\n"
		"first: 'pkg.deb > data.tar.xz > ./lib/modules/.../zfs.ko > section .comment:\n"
		"differs at offset 0x12 (...)'. A and B are files, directories, or store\n"
		"objects (a hash or a ref name) when no such path exists; trees are compared\n"
		"entry by entry.\n\n"
		"Opened whatever their names: .deb and other ar archives, tar and cpio\n"
		"(initramfs) with any compression (gzip, xz, zstd, bzip2, lz4, lzma), ISO 9660\n"
		"images, .rpm (lead and header tags by name, then the cpio payload), ELF files\n"
		"(sections by name; a kernel module's appended signature as 'signature'),\n"
		"single compressed streams; text gets a short unified diff, other bytes the\n"
		"first differing offset with hex context. Inside archives: presence (only in\n"
		"A/B), order, type, mode, owner, mtime, symlink and hard link targets.\n"
		"Directories on disk: type, mode, symlink targets, content (not times or\n"
		"owners).\n\n"
		"  --json      a JSON array of {\"path\": [...], \"kind\", \"detail\", \"diff\"?}\n"
		"  --max N     describe at most N differences (default 50); the rest are\n"
		"              counted ('... N more differences') and not opened\n\n"
		"Exit status: 0 identical, 1 different, 2 bad usage or an operand that\n"
		"cannot be read. Members are read into memory up to 64 MiB, larger ones\n"
		"through a temporary file in $TMPDIR.\n");
	return 1;
}

enum { O_JSON = 256, O_MAX };

int kb_diff_main(const char *store_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, O_JSON},
		{"max", required_argument, NULL, O_MAX},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	kb_diff_opts o = {.store = store_dir, .max = 50};
	int json = 0, c;
	kb_err *err = NULL;
	/* argv[0] is the first argument: getopt wants a program name there */
	char **av = kb_malloc((size_t)(argc + 2) * sizeof *av);
	av[0] = "diff";
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	av[argc + 1] = NULL;
	optind = 0;
	while ((c = kb_getopt(argc + 1, av, "h", longopts, "diff", &err)) > 0) {
		if (c == 'h') {
			free(av);
			kb_diff_help(stdout);
			return 0;
		} else if (c == O_JSON) {
			json = 1;
		} else if (c == O_MAX) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(optarg, &end, 10);
			if (!*optarg || *end || errno || !n || n > 1000000 || *optarg == '-') {
				err = kb_usage("kbuild diff: --max '%s' is not a number from 1 to 1000000",
					       optarg);
				break;
			}
			o.max = (size_t)n;
		}
	}
	if (!err && argc + 1 - optind != 2)
		err = kb_usage("kbuild diff takes two operands, A and B (see 'kbuild help diff')");
	if (err) {
		free(av);
		return kb_exit_status(err);
	}
	kb_diff_list l;
	err = kb_diff(av[optind], av[optind + 1], &o, &l);
	free(av);
	if (err) {
		/* like diff(1): trouble is 2, whatever kind it was */
		err->code = 2;
		return kb_exit_status(err);
	}
	if (json)
		err = kb_diff_print_json(&l, stdout);
	else
		kb_diff_print(&l, stdout);
	int different = l.n || l.more;
	kb_diff_list_free(&l);
	if (err) {
		err->code = 2;
		return kb_exit_status(err);
	}
	int rc = kb_exit_status(NULL);
	return rc ? 2 : different;
}

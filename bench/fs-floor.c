/* bench/fs-floor: the least a store that keeps one file per object must do
 * to ingest a tree, with nothing else: read each file, create a file for
 * it in one of 256 shard directories under a staging name, write, close,
 * rename it to its final name; then one syncfs. No hashing, no tree
 * objects, no checks. Run by bench/store-ingest beside kbuild and git to
 * show how close kbuild is to what the file system allows.
 *
 *   fs-floor SRC-DIR DEST-DIR THREADS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char **files;
static size_t nfiles, cap, next;
static int dest;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int collect(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (nfiles == cap && !(files = realloc(files, (cap = cap ? 2 * cap : 4096) * sizeof *files)))
		return -1;
	return (files[nfiles++] = strdup(p)) ? 0 : -1;
}

static void *ingest(void *arg)
{
	(void)arg;
	size_t bufsize = 1 << 20;
	char *buf = malloc(bufsize);
	for (;;) {
		pthread_mutex_lock(&mu);
		size_t i = next++;
		pthread_mutex_unlock(&mu);
		if (i >= nfiles || !buf)
			break;
		int in = open(files[i], O_RDONLY | O_CLOEXEC);
		ssize_t n = in < 0 ? -1 : read(in, buf, bufsize);
		if (in >= 0)
			close(in);
		unsigned h = (unsigned)(i * 2654435761u);
		char stage[64], final[64];
		snprintf(stage, sizeof stage, "%02x/.s-%zu", h >> 24, i);
		snprintf(final, sizeof final, "%02x/%08x%zu", h >> 24, h, i);
		int out = openat(dest, stage, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
		if (n < 0 || out < 0 || write(out, buf, (size_t)n) != n || close(out) < 0 ||
		    renameat(dest, stage, dest, final) < 0) {
			perror(files[i]);
			exit(1);
		}
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	int nth = argc == 4 ? atoi(argv[3]) : 0;
	if (nth < 1 || nth > 64) {
		fprintf(stderr, "usage: fs-floor SRC-DIR DEST-DIR THREADS (1-64)\n");
		return 2;
	}
	if (nftw(argv[1], collect, 64, FTW_PHYS) != 0) {
		perror(argv[1]);
		return 1;
	}
	if ((mkdir(argv[2], 0755) < 0 && errno != EEXIST) ||
	    (dest = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(argv[2]);
		return 1;
	}
	for (int i = 0; i < 256; i++) {
		char d[3];
		snprintf(d, sizeof d, "%02x", i);
		if (mkdirat(dest, d, 0755) < 0 && errno != EEXIST) {
			perror(d);
			return 1;
		}
	}
	pthread_t th[64];
	for (int i = 1; i < nth; i++)
		if (pthread_create(&th[i], NULL, ingest, NULL) != 0)
			return 1;
	ingest(NULL);
	for (int i = 1; i < nth; i++)
		pthread_join(th[i], NULL);
	if (syncfs(dest) < 0) {
		perror("syncfs");
		return 1;
	}
	printf("%zu files\n", nfiles);
	return 0;
}

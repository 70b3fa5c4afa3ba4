/* libFuzzer target: the whole recipe front end (kb_recipe_load: parse,
 * includes, variables, templates, schemas) on arbitrary bytes. Each input
 * is written to recipes/fuzz.recipe in a private repository under $TMPDIR
 * (default /tmp, removed at exit) that also holds recipes/module.inc (a
 * template), recipes/vars.inc and a src/ directory, so includes, use and
 * file inputs have something real to find. */
#include "builder/recipe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[4096], recipe[4200];

static void cleanup(void)
{
	if (!root[0])
		return;
	kb_err *err = kb_remove_tree(AT_FDCWD, root);
	kb_err_free(err);
}

static void write_to(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	kb_err *err = fd < 0 ? kb_errf("cannot create %s", path) : kb_write_all(fd, p, n, path);
	if (fd >= 0)
		close(fd);
	if (err) {
		fprintf(stderr, "fuzz_recipe_load: %s\n", err->msg);
		abort();
	}
}

static void put(const char *rel, const char *text)
{
	char p[4300];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	write_to(p, text, strlen(text));
}

static void setup(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/kbuild-fuzz-load.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(root)) {
		perror("fuzz_recipe_load: mkdtemp");
		abort();
	}
	atexit(cleanup);
	char p[4300];
	snprintf(p, sizeof p, "%s/recipes", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/src", root);
	mkdir(p, 0755);
	put("src/a.c", "int a;\n");
	put("recipes/vars.inc", "let base = \"http://127.0.0.1:9\"\nlet n = 7\n");
	put("recipes/module.inc",
	    "include \"vars.inc\"\n"
	    "template \"module\" {\n"
	    "    param name\n"
	    "    param format = \"deb\"\n"
	    "    let src = \"${name}-src\"\n"
	    "    file \"${src}-${format}\" { path = \"../src\" }\n"
	    "}\n");
	snprintf(recipe, sizeof recipe, "%s/recipes/fuzz.recipe", root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0])
		setup();
	write_to(recipe, data, size);
	kb_err *err;
	kb_recipe *r = NULL;
	if ((err = kb_recipe_load(recipe, NULL, &r))) {
		kb_err_free(err);
		return 0;
	}
	/* what a loaded recipe promises */
	for (size_t i = 0; i < r->nin; i++) {
		const kb_input *in = &r->in[i];
		if (!in->name || kb_recipe_input(r, in->name) != in)
			abort();
		if ((in->kind == KB_IN_FILE) && (!in->abspath || strncmp(in->abspath, root, strlen(root))))
			abort(); /* file inputs stay inside the repository */
	}
	if (r->nsrcs < 1)
		abort();
	kb_recipe_free(r);
	return 0;
}

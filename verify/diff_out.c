/* The differences as lines for people and as JSON for programs. */
#include "verify.h"

#include <jansson.h>
#include <string.h>

void kb_diff_print(const kb_diff_list *l, FILE *out)
{
	if (!l->n && !l->more) {
		fprintf(out, "identical\n");
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		const kb_diff_item *it = &l->v[i];
		for (size_t k = 0; k < it->npath; k++)
			fprintf(out, "%s%s", k ? " > " : "", it->path[k]);
		fprintf(out, ": %s\n", it->detail);
		/* the text diff below its line, indented */
		for (const char *p = it->diff; p && *p;) {
			size_t n = strcspn(p, "\n");
			fprintf(out, "    %.*s\n", (int)n, p);
			p += n + (p[n] == '\n');
		}
	}
	if (l->more)
		fprintf(out, "... %zu more difference%s (see --max)\n", l->more,
			l->more == 1 ? "" : "s");
}

kb_err *kb_diff_print_json(const kb_diff_list *l, FILE *out)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < l->n; i++) {
		const kb_diff_item *it = &l->v[i];
		json_t *o = json_object(), *path = json_array();
		/* paths and details are quoted for display already: plain UTF-8
		 * or \xNN escapes, which jansson accepts as they are */
		for (size_t k = 0; k < it->npath; k++)
			json_array_append_new(path, json_string(it->path[k]));
		json_object_set_new(o, "path", path);
		json_object_set_new(o, "kind", json_string(it->kind));
		json_object_set_new(o, "detail", json_string(it->detail));
		if (it->diff)
			json_object_set_new(o, "diff", json_string(it->diff));
		json_array_append_new(arr, o);
	}
	if (l->more) {
		json_t *o = json_object();
		json_object_set_new(o, "path", json_array());
		json_object_set_new(o, "kind", json_string("more"));
		json_object_set_new(o, "count", json_integer((json_int_t)l->more));
		json_array_append_new(arr, o);
	}
	int r = json_dumpf(arr, out, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(arr);
	if (r < 0 || fputc('\n', out) == EOF)
		return kb_errf("cannot write the JSON output");
	return NULL;
}

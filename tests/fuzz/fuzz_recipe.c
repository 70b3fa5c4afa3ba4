/* libFuzzer target: the recipe parser (kb_parse) on arbitrary bytes.
 * Each input gets its own arena and an exact-size copy of the bytes (no
 * NUL after them), so ASan sees any read past the end; errors are freed,
 * so LeakSanitizer sees anything the parser forgets. */
#include "builder/recipe.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	if (size)
		memcpy(text, data, size);
	kb_arena *a = kb_arena_new();
	kb_node *items = NULL;
	size_t n = 0;
	kb_err *err = kb_parse(a, "recipes/fuzz.recipe", text, size, &items, &n);
	if (err) {
		/* every error names file:line:col */
		if (strncmp(err->msg, "recipes/fuzz.recipe:", 20))
			abort();
		kb_err_free(err);
	}
	kb_arena_free(a);
	free(text);
	return 0;
}

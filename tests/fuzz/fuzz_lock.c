/* libFuzzer target: the lock file parser (kb_lock_parse) on arbitrary
 * bytes. Each input gets its own arena and an exact-size copy of the
 * bytes (no NUL after them), so ASan sees any read past the end; errors
 * are freed, so LeakSanitizer sees anything the parser forgets. For a lock
 * that parses, every lookup the rest of kbuild does must work on it. */
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
	kb_lock l;
	kb_err *err = kb_lock_parse(a, "recipes/fuzz.lock", text, size, &l);
	if (err) {
		kb_err_free(err);
	} else {
		if (!l.recipe)
			abort();
		for (size_t i = 0; i < l.n; i++) {
			const kb_lock_entry *e = &l.e[i];
			if (!e->kind || !e->name || kb_lock_find(&l, e->kind, e->name) != e)
				abort(); /* entries are unique by kind and name */
			for (size_t j = 0; j < e->nkv; j++)
				if (kb_lock_get(e, e->kv[j].key) != e->kv[j].value)
					abort(); /* keys are unique in an entry */
		}
	}
	kb_arena_free(a);
	free(text);
	return 0;
}

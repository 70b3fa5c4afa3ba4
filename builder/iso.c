/* placeholder until the ISO writer lands */
#include "image.h"

kb_err *kb_iso_build(kb_store *s, const kb_iso_spec *sp, kb_hash *out)
{
	(void)s, (void)sp, (void)out;
	return kb_errf("kbuild iso: not written yet");
}

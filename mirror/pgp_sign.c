/* OpenPGP key generation and signing with librnp. */
#include "mirror.h"

kb_err *kb_pgp_keygen(const char *userid, kb_buf *sec, kb_buf *pub)
{
	(void)sec;
	(void)pub;
	return kb_errf("cannot make OpenPGP key '%s': not implemented yet", userid);
}

kb_err *kb_pgp_sign(const kb_buf *sec, const void *data, size_t len, int64_t created,
		    kb_pgp_mode mode, kb_buf *out)
{
	(void)sec, (void)data, (void)len, (void)created, (void)mode, (void)out;
	return kb_errf("OpenPGP signing is not implemented yet");
}

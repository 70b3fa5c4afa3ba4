/* OpenPGP signatures through librnp (placeholder until it lands). */
#include "mirror.h"

kb_err *kb_pgp_verify_clearsigned(const kb_buf *keyring, const kb_buf *doc, kb_buf *text,
				  char **signer)
{
	(void)keyring, (void)doc, (void)text, (void)signer;
	return kb_errf("OpenPGP verification is not implemented yet");
}

kb_err *kb_pgp_verify_detached(const kb_buf *keyring, const kb_buf *data, const kb_buf *sig,
			       char **signer)
{
	(void)keyring, (void)data, (void)sig, (void)signer;
	return kb_errf("OpenPGP verification is not implemented yet");
}

/* What a kernel module says about itself: the .modinfo section of its
 * ELF file (vermagic, name, depends) and the signature sign-file appends
 * (PKCS#7 SignedData, then struct module_signature, then the magic
 * string). Read with pread: a module is random access, never loaded. */
#include "image.h"

#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODINFO_MAX (1u << 20)
#define SIG_MAX (1u << 16)
static const char sig_magic[] = "~Module signature appended~\n";

void kb_kmod_free(kb_kmod *m)
{
	free(m->name);
	free(m->vermagic);
	free(m->release);
	free(m->depends);
	free(m->signer);
	free(m->sig_hash);
	memset(m, 0, sizeof *m);
}

void kb_kmod_norm_name(char *name)
{
	for (; *name; name++)
		if (*name == '-')
			*name = '_';
}

int kb_kmod_is_ko(const char *path, const kb_tree_entry *e)
{
	size_t len = strlen(path);
	return (e->type == KB_ENT_FILE || e->type == KB_ENT_EXEC) && len > 3 &&
	       !strcmp(path + len - 3, ".ko");
}

kb_err *kb_kmod_read_object(kb_store *s, const kb_hash *h, const char *path, const char *what,
			    kb_kmod *m)
{
	int fd;
	memset(m, 0, sizeof *m);
	kb_err *err = kb_store_open_object(s, h, &fd);
	if (err)
		return kb_err_wrap(err, "%s", what);
	err = kb_kmod_read(fd, what, m);
	close(fd);
	if (err)
		return err;
	if (!m->name) {
		const char *b = strrchr(path, '/');
		b = b ? b + 1 : path;
		m->name = kb_strndup(b, strlen(b) - 3);
	}
	kb_kmod_norm_name(m->name);
	return NULL;
}

static kb_err *pread_all(int fd, void *p, size_t n, uint64_t off, const char *what)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)p + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kb_errno(errno, "cannot read %s", what);
		if (r == 0)
			return kb_errf("%s is truncated (it ends inside its ELF headers)", what);
		done += (size_t)r;
	}
	return NULL;
}

/* struct module_signature: algo, hash, id_type, signer_len, key_id_len,
 * 3 bytes padding, sig_len (big endian); id_type 2 is PKCS#7 */
static kb_err *signature(int fd, uint64_t size, const char *what, kb_kmod *m)
{
	size_t ml = sizeof sig_magic - 1;
	unsigned char tail[12 + sizeof sig_magic];
	if (size < ml + 12)
		return NULL;
	kb_err *err = pread_all(fd, tail, 12 + ml, size - ml - 12, what);
	if (err)
		return err;
	if (memcmp(tail + 12, sig_magic, ml))
		return NULL; /* unsigned */
	uint32_t sl = (uint32_t)tail[8] << 24 | (uint32_t)tail[9] << 16 |
		      (uint32_t)tail[10] << 8 | tail[11];
	if (tail[2] != 2 || sl == 0 || sl > SIG_MAX || sl > size - ml - 12)
		return kb_errf("%s has a module signature kbuild cannot read (id type %u, "
			       "%u bytes; sign-file writes PKCS#7)",
			       what, tail[2], sl);
	unsigned char *der = kb_malloc(sl);
	if ((err = pread_all(fd, der, sl, size - ml - 12 - sl, what))) {
		free(der);
		return err;
	}
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, sl);
	STACK_OF(PKCS7_SIGNER_INFO) *sis = p7 ? PKCS7_get_signer_info(p7) : NULL;
	PKCS7_SIGNER_INFO *si = sis && sk_PKCS7_SIGNER_INFO_num(sis) > 0
					? sk_PKCS7_SIGNER_INFO_value(sis, 0)
					: NULL;
	if (!si || !si->issuer_and_serial || !si->issuer_and_serial->issuer) {
		err = kb_errf("%s: its appended signature is not PKCS#7 SignedData with a "
			      "signer; sign it again with sign-file",
			      what);
	} else {
		X509_NAME *iss = si->issuer_and_serial->issuer;
		int i = X509_NAME_get_index_by_NID(iss, NID_commonName, -1);
		char buf[256];
		if (i >= 0) {
			ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(iss, i));
			unsigned char *u = NULL;
			int n = ASN1_STRING_to_UTF8(&u, v);
			m->signer = n >= 0 ? kb_strndup((char *)u, (size_t)n) : kb_strdup("?");
			OPENSSL_free(u);
		} else {
			X509_NAME_oneline(iss, buf, sizeof buf);
			m->signer = kb_strdup(buf);
		}
		const char *sn = si->digest_alg ? OBJ_nid2sn(OBJ_obj2nid(si->digest_alg->algorithm))
						: NULL;
		m->sig_hash = kb_strdup(sn ? sn : "unknown");
		for (char *c = m->sig_hash; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	PKCS7_free(p7);
	free(der);
	return err;
}

kb_err *kb_kmod_read(int fd, const char *what, kb_kmod *m)
{
	memset(m, 0, sizeof *m);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kb_errno(errno, "cannot stat %s", what);
	uint64_t size = (uint64_t)st.st_size;
	Elf64_Ehdr eh;
	if (size < sizeof eh)
		return kb_errf("%s is not a kernel module (too short for an ELF file)", what);
	kb_err *err = pread_all(fd, &eh, sizeof eh, 0, what);
	if (err)
		return err;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_REL)
		return kb_errf("%s is not a kernel module (not a little-endian 64-bit relocatable "
			       "ELF file)",
			       what);
	m->machine = eh.e_machine;
	if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > 65000 ||
	    eh.e_shstrndx >= eh.e_shnum ||
	    eh.e_shoff + (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > size)
		return kb_errf("%s has a damaged ELF section table", what);
	Elf64_Shdr *sh = kb_calloc(eh.e_shnum, sizeof *sh);
	char *names = NULL, *info = NULL;
	if ((err = pread_all(fd, sh, eh.e_shnum * sizeof *sh, eh.e_shoff, what)))
		goto out;
	Elf64_Shdr *ss = &sh[eh.e_shstrndx];
	if (ss->sh_size > MODINFO_MAX || ss->sh_offset + ss->sh_size > size) {
		err = kb_errf("%s has a damaged section name table", what);
		goto out;
	}
	names = kb_calloc(1, ss->sh_size + 1);
	if ((err = pread_all(fd, names, ss->sh_size, ss->sh_offset, what)))
		goto out;
	Elf64_Shdr *mi = NULL;
	for (unsigned i = 0; i < eh.e_shnum; i++)
		if (sh[i].sh_name < ss->sh_size && !strcmp(names + sh[i].sh_name, ".modinfo"))
			mi = &sh[i];
	if (!mi || mi->sh_type == SHT_NOBITS) {
		err = kb_errf("%s has no .modinfo section: not a kernel module", what);
		goto out;
	}
	if (mi->sh_size > MODINFO_MAX || mi->sh_offset + mi->sh_size > size) {
		err = kb_errf("%s has a damaged .modinfo section", what);
		goto out;
	}
	info = kb_calloc(1, mi->sh_size + 1);
	if ((err = pread_all(fd, info, mi->sh_size, mi->sh_offset, what)))
		goto out;
	/* NUL-separated key=value strings (with NUL padding between them) */
	for (size_t o = 0; o < mi->sh_size;) {
		const char *kv = info + o;
		size_t len = strlen(kv);
		char **dst = !strncmp(kv, "vermagic=", 9) ? &m->vermagic
			     : !strncmp(kv, "name=", 5)	  ? &m->name
			     : !strncmp(kv, "depends=", 8) ? &m->depends
							   : NULL;
		if (dst && !*dst)
			*dst = kb_strdup(strchr(kv, '=') + 1);
		o += len + 1;
	}
	if (!m->vermagic) {
		err = kb_errf("%s has no vermagic in its .modinfo section: not a module built "
			      "with a kernel's build system",
			      what);
		goto out;
	}
	size_t rl = strcspn(m->vermagic, " ");
	m->release = kb_strndup(m->vermagic, rl);
	if (!m->depends)
		m->depends = kb_strdup("");
	err = signature(fd, size, what, m);
out:
	free(sh);
	free(names);
	free(info);
	if (err)
		kb_kmod_free(m);
	return err;
}

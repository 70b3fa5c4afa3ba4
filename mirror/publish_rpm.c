/* A darksite's rpm-md repository, written with libcreaterepo_c (the
 * library behind createrepo_c, which every dnf/yum distribution's own
 * repositories are made with: its XML is what dnf expects, escaping,
 * file classification and changelog limits included; kbuild does not
 * grow a second writer of that format):
 *
 *   Packages/L/NAME-VERSION-RELEASE.ARCH.rpm
 *   repodata/SHA256-primary.xml.gz, -filelists.xml.gz, -other.xml.gz
 *   repodata/repomd.xml, repomd.xml.asc (armored, detached)
 *   KEYNAME.asc, KEYNAME.gpg                  (the public key)
 *
 * A package's three records are made once from its header (librpm
 * through createrepo_c; the payload is never read) and cached: its
 * checksum is its store hash, its location follows from the header, and
 * its file time is its build time, so nothing in them depends on where
 * or when it is published. repomd.xml's revision and timestamps are
 * SOURCE_DATE_EPOCH.
 *
 * TODO: modules.yaml and comps (group) pass-through from an upstream
 * snapshot; this writer only knows the packages it is given. */
#include "publish.h"

#include <createrepo_c/createrepo_c.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void init_once(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	cr_xml_dump_init();
	cr_package_parser_init();
}

static kb_err *gerr(GError **ge, const char *fmt, const char *what)
{
	kb_err *e = kb_errf("%s: %s: %s", what, fmt, *ge ? (*ge)->message : "unknown error");
	g_clear_error(ge);
	return e;
}

kb_err *kb_pub_read_rpm(int fd, const char *what, kb_arena *a, kb_pubpkg *p)
{
	init_once();
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	GError *ge = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kb_errno(errno, "%s: reading it from the store", what);
	cr_Package *pkg = cr_package_from_rpm_base(path, 10, CR_HDRR_NONE, &ge);
	if (!pkg)
		return gerr(&ge, "not a readable .rpm package", what);
	struct cr_HeaderRangeStruct hr = cr_get_header_byte_range(path, &ge);
	kb_err *err = NULL;
	if (ge || !hr.end)
		err = gerr(&ge, "cannot find its header", what);
	else if (!pkg->name || !pkg->version || !pkg->release || !pkg->arch || !*pkg->name ||
		 strchr(pkg->name, '/') || strchr(pkg->arch, '/'))
		err = kb_errf("%s: its header lacks a name, version, release or architecture", what);
	if (err) {
		cr_package_free(pkg);
		return err;
	}
	char hex[KB_HEX_LEN + 1];
	kb_hash_hex(&p->hash, hex);
	char lead = pkg->name[0] >= 'A' && pkg->name[0] <= 'Z' ? pkg->name[0] - 'A' + 'a'
							       : pkg->name[0];
	p->pool = kb_arena_printf(a, "Packages/%c/%s-%s-%s.%s.rpm", lead, pkg->name, pkg->version,
				  pkg->release, pkg->arch);
	pkg->pkgId = cr_safe_string_chunk_insert(pkg->chunk, hex);
	pkg->checksum_type = cr_safe_string_chunk_insert(pkg->chunk, "sha256");
	pkg->location_href = cr_safe_string_chunk_insert(pkg->chunk, p->pool);
	pkg->location_base = NULL;
	pkg->size_package = st.st_size;
	pkg->time_file = pkg->time_build;
	pkg->rpm_header_start = hr.start;
	pkg->rpm_header_end = hr.end;
	struct cr_XmlStruct x = cr_xml_dump(pkg, &ge);
	if (!x.primary || !x.filelists || !x.other) {
		err = gerr(&ge, "cannot make its rpm-md records", what);
	} else {
		p->fmt = 'r';
		p->name = kb_arena_strdup(a, pkg->name);
		p->arch = kb_arena_strdup(a, pkg->arch);
		p->version = pkg->epoch && *pkg->epoch && strcmp(pkg->epoch, "0")
				     ? kb_arena_printf(a, "%s:%s-%s", pkg->epoch, pkg->version,
						       pkg->release)
				     : kb_arena_printf(a, "%s-%s", pkg->version, pkg->release);
		p->part[0] = strlen(x.primary);
		p->part[1] = strlen(x.filelists);
		p->part[2] = strlen(x.other);
		p->metalen = p->part[0] + p->part[1] + p->part[2];
		p->meta = kb_arena_alloc(a, p->metalen + 1);
		memcpy(p->meta, x.primary, p->part[0]);
		memcpy(p->meta + p->part[0], x.filelists, p->part[1]);
		memcpy(p->meta + p->part[0] + p->part[1], x.other, p->part[2]);
	}
	g_free(x.primary);
	g_free(x.filelists);
	g_free(x.other);
	cr_package_free(pkg);
	return err;
}

static const char *const types[3] = {"primary", "filelists", "other"};
static const cr_XmlFileType xtypes[3] = {CR_XMLFILE_PRIMARY, CR_XMLFILE_FILELISTS,
					 CR_XMLFILE_OTHER};

/* sha256 and size of a file below the output directory */
static kb_err *hash_file(kb_pubout *out, const char *rel, kb_hash *h, uint64_t *size)
{
	int fd = openat(out->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kb_errno(errno, "cannot read %s/%s", out->path, rel);
	kb_sha *c = kb_sha_new();
	char buf[1 << 16];
	ssize_t r;
	*size = 0;
	while ((r = read(fd, buf, sizeof buf)) > 0) {
		kb_sha_update(c, buf, (size_t)r);
		*size += (uint64_t)r;
	}
	kb_err *err = r < 0 ? kb_errno(errno, "cannot read %s/%s", out->path, rel) : NULL;
	kb_sha_final(c, h);
	kb_sha_free(c);
	close(fd);
	return err;
}

/* writes one metadata file under its checksum's name (kept if it is
 * there already) and describes it in rec */
static kb_err *write_xml(kb_pubout *out, const kb_pubpkg *pkgs, size_t n, int t, int64_t epoch,
			 cr_RepomdRecord **recout)
{
	char *tmp = kb_asprintf("repodata/.%s.xml.gz.tmp-%ld", types[t], (long)getpid());
	char *full = kb_asprintf("%s/%s", out->path, tmp);
	unlinkat(out->dirfd, tmp, 0);
	GError *ge = NULL;
	kb_err *err = NULL;
	cr_ContentStat *cs = cr_contentstat_new(CR_CHECKSUM_SHA256, &ge);
	cr_XmlFile *xf = cs ? cr_xmlfile_sopen(full, xtypes[t], CR_CW_GZ_COMPRESSION, cs, &ge) : NULL;
	if (!xf || cr_xmlfile_set_num_of_pkgs(xf, (long)n, &ge))
		err = gerr(&ge, "cannot start it", full);
	for (size_t i = 0; i < n && !err; i++) {
		const kb_pubpkg *p = &pkgs[i];
		size_t off = t == 0 ? 0 : t == 1 ? p->part[0] : p->part[0] + p->part[1];
		char *chunk = kb_strndup(p->meta + off, p->part[t]);
		if (cr_xmlfile_add_chunk(xf, chunk, &ge))
			err = gerr(&ge, "cannot write it", full);
		free(chunk);
	}
	if (xf && cr_xmlfile_close(xf, &ge) && !err)
		err = gerr(&ge, "cannot finish it", full);
	kb_hash h;
	uint64_t size = 0;
	char hex[KB_HEX_LEN + 1], *final = NULL;
	if (!err)
		err = hash_file(out, tmp, &h, &size);
	if (!err) {
		kb_hash_hex(&h, hex);
		final = kb_asprintf("repodata/%s-%s.xml.gz", hex, types[t]);
		kb_hash have;
		uint64_t hsize;
		kb_pubout_keep(out, final);
		kb_err *e = kb_pubout_exists(out, final) ? hash_file(out, final, &have, &hsize) : NULL;
		if (e || !kb_pubout_exists(out, final) || !kb_hash_eq(&have, &h)) {
			kb_err_free(e);
			int fd = openat(out->dirfd, tmp, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || fsync(fd) < 0 || renameat(out->dirfd, tmp, out->dirfd, final) < 0)
				err = kb_errno(errno, "cannot put %s/%s in place", out->path, final);
			else
				out->st->written++;
			if (fd >= 0)
				close(fd);
		}
	}
	unlinkat(out->dirfd, tmp, 0);
	if (!err) {
		cr_RepomdRecord *rec = cr_repomd_record_new(types[t], NULL);
		rec->location_href = cr_safe_string_chunk_insert(rec->chunk, final);
		rec->checksum = cr_safe_string_chunk_insert(rec->chunk, hex);
		rec->checksum_type = cr_safe_string_chunk_insert(rec->chunk, "sha256");
		rec->checksum_open = cr_safe_string_chunk_insert(rec->chunk, cs->checksum);
		rec->checksum_open_type = cr_safe_string_chunk_insert(rec->chunk, "sha256");
		rec->timestamp = epoch;
		rec->size = (gint64)size;
		rec->size_open = cs->size;
		*recout = rec;
	}
	if (cs)
		cr_contentstat_free(cs, NULL);
	free(final);
	free(full);
	free(tmp);
	return err;
}

kb_err *kb_pub_rpm(kb_store *s, kb_pubpkg *pkgs, size_t n, const kb_publish_opts *o,
		   const kb_pubkey *key, kb_pubout *out)
{
	init_once();
	const char *keyname = o->keyname ? o->keyname : "archive-key";
	char *dir = kb_asprintf("%s/repodata", o->outdir);
	kb_err *err = kb_mkdir_p(dir, 0755);
	free(dir);
	cr_Repomd *md = cr_repomd_new();
	for (int t = 0; t < 3 && !err; t++) {
		cr_RepomdRecord *rec = NULL;
		if (!(err = write_xml(out, pkgs, n, t, o->epoch, &rec)))
			cr_repomd_set_record(md, rec);
	}
	char rev[32];
	snprintf(rev, sizeof rev, "%lld", (long long)o->epoch);
	cr_repomd_set_revision(md, rev);
	GError *ge = NULL;
	char *xml = err ? NULL : cr_xml_dump_repomd(md, &ge);
	if (!err && !xml)
		err = gerr(&ge, "cannot make it", "repodata/repomd.xml");
	kb_buf asc = {0};
	if (!err && (err = kb_pgp_sign(o->sec, xml, strlen(xml), kb_pub_sign_time(o), KB_PGP_DETACHED_ARMOR,
				       &asc)))
		err = kb_err_wrap(err, "signing repodata/repomd.xml");
	for (size_t i = 0; i < n && !err; i++)
		err = kb_pubout_link(out, s, &pkgs[i].hash, pkgs[i].pool);
	char *kasc = kb_asprintf("%s.asc", keyname), *kbin = kb_asprintf("%s.gpg", keyname);
	if (!err)
		err = kb_pubout_file(out, kasc, key->asc.p, key->asc.len);
	if (!err)
		err = kb_pubout_file(out, kbin, key->bin.p, key->bin.len);
	/* the signature, then what it signs: a client that reads repomd.xml
	 * and its .asc in between the two renames sees a mismatch and retries
	 * rather than trusting anything */
	if (!err)
		err = kb_pubout_file(out, "repodata/repomd.xml.asc", asc.p, asc.len);
	if (!err)
		err = kb_pubout_file(out, "repodata/repomd.xml", xml, strlen(xml));
	if (!err)
		err = kb_pubout_prune(out, "Packages");
	if (!err)
		err = kb_pubout_prune(out, "repodata");
	free(kasc);
	free(kbin);
	kb_buf_free(&asc);
	g_free(xml);
	cr_repomd_free(md);
	return err;
}

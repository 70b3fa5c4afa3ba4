/* ELF files (objects, executables, kernel modules): the header, then the
 * sections matched by name, each compared on its own; a kernel module's
 * appended signature (the "~Module signature appended~" trailer after
 * struct module_signature and the signature bytes) is set aside first
 * and reported as "signature", so a signed-vs-unsigned or re-signed
 * module is explained as such and not as bytes past the last section.
 * Everything is read through bounds-checked windows of the source. */
#include "internal.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECTIONS (1u << 16)
#define NAME_MAX_LEN 256
#define STR_SHOW 160

static const char marker[] = "~Module signature appended~\n";
#define MARKER_LEN (sizeof marker - 1)
#define MODSIG_LEN 12 /* struct module_signature */

typedef struct {
	const char *name;
	uint32_t name_off, type;
	uint64_t flags, off, size;
	size_t index;
} esec;

typedef struct {
	int cls, data;
	uint16_t type, machine;
	uint64_t entry;
	uint32_t flags;
	esec *s;
	size_t n;
} elf;

static uint64_t get(const unsigned char *p, int len, int big)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v |= (uint64_t)p[big ? len - 1 - i : i] << (8 * i);
	return v;
}

/* a section name from the string table, bounded */
static const char *sec_name(dctx *c, const dsrc *s, const esec *strtab, uint32_t off, size_t idx)
{
	char buf[NAME_MAX_LEN + 1];
	size_t got = 0;
	if (strtab && off < strtab->size) {
		uint64_t left = strtab->size - off;
		kb_err *err = ds_read(s, strtab->off + off, buf,
				      left < NAME_MAX_LEN ? (size_t)left : NAME_MAX_LEN, &got);
		if (err) {
			kb_err_free(err);
			got = 0;
		}
	}
	buf[got] = 0;
	if (!*buf)
		return kb_arena_printf(c->out->a, "#%zu", idx);
	char *q = kb_quote(buf, strlen(buf));
	char *r = d_strdup(c, q);
	free(q);
	return r;
}

static kb_err *parse(dctx *c, const dsrc *s, elf *e)
{
	memset(e, 0, sizeof *e);
	unsigned char h[64];
	size_t got;
	kb_err *err = ds_read(s, 0, h, sizeof h, &got);
	if (err)
		return err;
	if (got < 52 || memcmp(h, ELFMAG, SELFMAG))
		return kb_errf("too short for an ELF header");
	e->cls = h[EI_CLASS];
	e->data = h[EI_DATA];
	if ((e->cls != ELFCLASS32 && e->cls != ELFCLASS64) ||
	    (e->data != ELFDATA2LSB && e->data != ELFDATA2MSB))
		return kb_errf("unknown ELF class %d or data encoding %d", e->cls, e->data);
	int big = e->data == ELFDATA2MSB, w = e->cls == ELFCLASS64 ? 8 : 4;
	if (w == 8 && got < 64)
		return kb_errf("too short for an ELF header");
	e->type = (uint16_t)get(h + 16, 2, big);
	e->machine = (uint16_t)get(h + 18, 2, big);
	e->entry = get(h + 24, w, big);
	size_t p = 24 + (size_t)w; /* e_phoff */
	uint64_t shoff = get(h + p + w, w, big);
	e->flags = (uint32_t)get(h + p + 2 * w, 4, big);
	size_t q = p + 2 * (size_t)w + 4; /* e_ehsize */
	uint64_t shentsize = get(h + q + 6, 2, big), shnum = get(h + q + 8, 2, big);
	uint64_t shstrndx = get(h + q + 10, 2, big);
	size_t need = w == 8 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
	if (!shoff)
		return NULL; /* no section headers: the header and bytes say it all */
	if (shentsize < need)
		return kb_errf("section header entries of %llu bytes are too small",
			       (unsigned long long)shentsize);
	unsigned char sh[64];
	if (shoff >= s->size || (err = ds_read(s, shoff, sh, need, &got)) || got < need)
		return err ? err : kb_errf("the section headers at 0x%llx are past the end",
					   (unsigned long long)shoff);
	/* more than 0xff00 sections: the real count and string table index
	 * are in section 0 */
	if (!shnum)
		shnum = get(sh + (w == 8 ? 32 : 20), w, big);
	if (shstrndx == SHN_XINDEX)
		shstrndx = get(sh + (w == 8 ? 40 : 24), 4, big);
	if (shnum > MAX_SECTIONS)
		return kb_errf("%llu sections are more than kbuild reads (%u)",
			       (unsigned long long)shnum, MAX_SECTIONS);
	if (shnum * shentsize > s->size - shoff)
		return kb_errf("the %llu section headers at 0x%llx run past the end of the file",
			       (unsigned long long)shnum, (unsigned long long)shoff);
	e->s = kb_arena_alloc(c->out->a, (shnum + 1) * sizeof *e->s);
	e->n = (size_t)shnum;
	for (size_t i = 0; i < e->n; i++) {
		if ((err = ds_read(s, shoff + i * shentsize, sh, need, &got)))
			return err;
		esec *x = &e->s[i];
		x->index = i;
		x->name_off = (uint32_t)get(sh, 4, big);
		x->type = (uint32_t)get(sh + 4, 4, big);
		x->flags = get(sh + 8, w, big);
		x->off = get(sh + 8 + 2 * w, w, big);
		x->size = get(sh + 8 + 3 * w, w, big);
		if (x->type != SHT_NOBITS && (x->off > s->size || x->size > s->size - x->off))
			return kb_errf("section %zu (0x%llx bytes at 0x%llx) runs past the end of "
				       "the file", i, (unsigned long long)x->size,
				       (unsigned long long)x->off);
	}
	const esec *strtab = shstrndx < e->n && e->s[shstrndx].type != SHT_NOBITS
				     ? &e->s[shstrndx] : NULL;
	for (size_t i = 0; i < e->n; i++)
		e->s[i].name = sec_name(c, s, strtab, e->s[i].name_off, i);
	return NULL;
}

static int by_name(const void *p, const void *q)
{
	const esec *x = *(const esec *const *)p, *y = *(const esec *const *)q;
	int r = strcmp(x->name, y->name);
	return r ? r : x->index < y->index ? -1 : x->index > y->index;
}

/* pa[i]: B's section matching A's section i (same name, in order), or -1 */
static void match(const elf *a, const elf *b, long *pa, long *pb)
{
	const esec **sa = kb_malloc((a->n + 1) * sizeof *sa), **sb = kb_malloc((b->n + 1) * sizeof *sb);
	for (size_t i = 0; i < a->n; i++)
		sa[i] = &a->s[i], pa[i] = -1;
	for (size_t i = 0; i < b->n; i++)
		sb[i] = &b->s[i], pb[i] = -1;
	qsort(sa, a->n, sizeof *sa, by_name);
	qsort(sb, b->n, sizeof *sb, by_name);
	for (size_t i = 0, j = 0; i < a->n && j < b->n;) {
		int r = strcmp(sa[i]->name, sb[j]->name);
		if (r < 0)
			i++;
		else if (r > 0)
			j++;
		else {
			pa[sa[i]->index] = (long)sb[j]->index;
			pb[sb[j]->index] = (long)sa[i]->index;
			i++, j++;
		}
	}
	free(sa);
	free(sb);
}

/* the NUL-terminated string around off in a string section, quoted */
static char *string_at(dctx *c, const dsrc *s, const esec *x, uint64_t off)
{
	unsigned char buf[2 * STR_SHOW];
	uint64_t from = off > STR_SHOW ? off - STR_SHOW : 0;
	uint64_t n = x->size - from < sizeof buf ? x->size - from : sizeof buf;
	size_t got;
	kb_err *err = ds_read(s, x->off + from, buf, (size_t)n, &got);
	if (err) {
		kb_err_free(err);
		return "?";
	}
	size_t at = (size_t)(off - from), st = at, en = at;
	while (st > 0 && buf[st - 1])
		st--;
	while (en < got && buf[en])
		en++;
	char *q = kb_quote((const char *)buf + st, en - st);
	char *r = kb_arena_printf(c->out->a, "\"%s%s%s\"", st == 0 && from ? "..." : "", q,
				  en == got && got == sizeof buf ? "..." : "");
	free(q);
	return r;
}

static int stringy(const esec *x)
{
	return (x->flags & SHF_STRINGS) || x->type == SHT_STRTAB || !strcmp(x->name, ".comment") ||
	       !strcmp(x->name, ".modinfo") || !strncmp(x->name, ".debug_str", 10) ||
	       !strcmp(x->name, ".debug_line_str");
}

static kb_err *cmp_section(dctx *c, const dsrc *a, const dsrc *b, const esec *x, const esec *y)
{
	char *elem = kb_asprintf("section %s", x->name);
	kb_err *err = NULL;
	if (x->type != y->type || x->flags != y->flags) {
		d_report(c, elem, "section", NULL, "type %u vs %u, flags 0x%llx vs 0x%llx", x->type,
			 y->type, (unsigned long long)x->flags, (unsigned long long)y->flags);
		goto out;
	}
	if (x->type == SHT_NOBITS) {
		if (x->size != y->size)
			d_report(c, elem, "section", NULL, "size 0x%llx vs 0x%llx (no bytes in the file)",
				 (unsigned long long)x->size, (unsigned long long)y->size);
		goto out;
	}
	dsrc wa, wb;
	ds_window(a, x->off, x->size, &wa);
	ds_window(b, y->off, y->size, &wb);
	kb_hash ha, hb;
	if ((err = ds_hash(&wa, &ha)) || (err = ds_hash(&wb, &hb)))
		goto out;
	if (kb_hash_eq(&ha, &hb))
		goto out;
	/* the first differing offset, streaming */
	enum { N = 1 << 14 };
	unsigned char *p = kb_malloc(N), *q = kb_malloc(N);
	uint64_t common = x->size < y->size ? x->size : y->size, first = common;
	for (uint64_t off = 0; off < common && first == common;) {
		size_t want = common - off > N ? N : (size_t)(common - off), ga, gb;
		if ((err = ds_read(&wa, off, p, want, &ga)) || (err = ds_read(&wb, off, q, want, &gb)))
			break;
		for (size_t i = 0; i < want && i < ga && i < gb; i++)
			if (p[i] != q[i]) {
				first = off + i;
				break;
			}
		off += want;
	}
	free(p);
	free(q);
	if (err)
		goto out;
	char sizes[64] = "";
	if (x->size != y->size)
		snprintf(sizes, sizeof sizes, ", size 0x%llx vs 0x%llx", (unsigned long long)x->size,
			 (unsigned long long)y->size);
	if (first < common && stringy(x)) {
		d_report(c, elem, "section", NULL, "differs at offset 0x%llx%s: %s vs %s",
			 (unsigned long long)first, sizes, string_at(c, a, x, first),
			 string_at(c, b, y, first));
	} else if (first < common) {
		unsigned char wa_[17], wb_[17];
		uint64_t from = first > 8 ? first - 8 : 0;
		size_t ga, gb;
		if ((err = ds_read(&wa, from, wa_, sizeof wa_, &ga)) ||
		    (err = ds_read(&wb, from, wb_, sizeof wb_, &gb)))
			goto out;
		d_report(c, elem, "section", NULL, "differs at offset 0x%llx%s: %s vs %s",
			 (unsigned long long)first, sizes, d_hexctx(c, wa_, ga, (size_t)(first - from)),
			 d_hexctx(c, wb_, gb, (size_t)(first - from)));
	} else {
		d_report(c, elem, "section", NULL, "one is a prefix of the other%s", sizes);
	}
out:
	free(elem);
	return err;
}

static kb_err *cmp_elf(dctx *c, const dsrc *a, const dsrc *b)
{
	elf ea, eb;
	kb_err *pa_err = parse(c, a, &ea), *pb_err = parse(c, b, &eb);
	if (pa_err || pb_err) {
		if (pa_err)
			d_report(c, NULL, "error", NULL, "cannot read A as ELF: %s", pa_err->msg);
		if (pb_err)
			d_report(c, NULL, "error", NULL, "cannot read B as ELF: %s", pb_err->msg);
		kb_err_free(pa_err);
		kb_err_free(pb_err);
		return d_bytes(c, NULL, (dsrc *)a, (dsrc *)b);
	}
	size_t before = c->out->n + c->out->more;
	if (ea.cls != eb.cls || ea.data != eb.data || ea.type != eb.type ||
	    ea.machine != eb.machine || ea.entry != eb.entry || ea.flags != eb.flags)
		d_report(c, "ELF header", "elf", NULL,
			 "class %d/%d, data %d/%d, type %u/%u, machine %u/%u, entry 0x%llx/0x%llx, "
			 "flags 0x%x/0x%x (A/B)",
			 ea.cls, eb.cls, ea.data, eb.data, ea.type, eb.type, ea.machine, eb.machine,
			 (unsigned long long)ea.entry, (unsigned long long)eb.entry, ea.flags,
			 eb.flags);
	long *pa = kb_malloc((ea.n + 1) * sizeof *pa), *pb = kb_malloc((eb.n + 1) * sizeof *pb);
	match(&ea, &eb, pa, pb);
	kb_err *err = NULL;
	for (size_t i = 0; i < ea.n && !err; i++) {
		if (i == 0 && pa[i] == 0 && ea.s[0].type == SHT_NULL)
			continue;
		if (pa[i] < 0)
			d_report(c, kb_arena_printf(c->out->a, "section %s", ea.s[i].name), "section",
				 NULL, "only in A (0x%llx bytes)", (unsigned long long)ea.s[i].size);
		else
			err = cmp_section(c, a, b, &ea.s[i], &eb.s[pa[i]]);
	}
	for (size_t i = 0; i < eb.n && !err; i++)
		if (pb[i] < 0)
			d_report(c, kb_arena_printf(c->out->a, "section %s", eb.s[i].name), "section",
				 NULL, "only in B (0x%llx bytes)", (unsigned long long)eb.s[i].size);
	free(pa);
	free(pb);
	if (!err && c->out->n + c->out->more == before)
		err = d_bytes(c, "outside the sections", (dsrc *)a, (dsrc *)b);
	return err;
}

/* the module signature trailer: body is what precedes it; 0 if none */
static int sig_split(const dsrc *s, uint64_t *body, uint64_t *siglen, unsigned char ms[MODSIG_LEN])
{
	unsigned char t[MODSIG_LEN + MARKER_LEN];
	size_t got;
	if (s->size < sizeof t)
		return 0;
	kb_err *err = ds_read(s, s->size - sizeof t, t, sizeof t, &got);
	if (err) {
		kb_err_free(err);
		return 0;
	}
	if (got != sizeof t || memcmp(t + MODSIG_LEN, marker, MARKER_LEN))
		return 0;
	memcpy(ms, t, MODSIG_LEN);
	uint64_t len = get(t + 8, 4, 1); /* sig_len, big-endian */
	if (len > s->size - sizeof t)
		return 0;
	*siglen = len;
	*body = s->size - sizeof t - len;
	return 1;
}

static const char *id_type(unsigned t)
{
	return t == 2 ? "PKCS#7" : t == 1 ? "X.509" : t == 0 ? "PGP" : "unknown type";
}

kb_err *d_elf(dctx *c, dsrc *a, dsrc *b)
{
	uint64_t bodya = a->size, bodyb = b->size, la = 0, lb = 0;
	unsigned char ma[MODSIG_LEN], mb[MODSIG_LEN];
	int sa = sig_split(a, &bodya, &la, ma), sb = sig_split(b, &bodyb, &lb, mb);
	dsrc ba, bb;
	ds_window(a, 0, bodya, &ba);
	ds_window(b, 0, bodyb, &bb);
	kb_err *err = NULL;
	if (sa != sb) {
		const unsigned char *m = sa ? ma : mb;
		d_report(c, "signature", "signature", NULL,
			 "only %s is signed: a module signature of %llu bytes (%s) appended",
			 sa ? "A" : "B", (unsigned long long)(sa ? la : lb), id_type(m[2]));
	} else if (sa) {
		dsrc ga, gb;
		kb_hash ha, hb;
		ds_window(a, bodya, la + MODSIG_LEN, &ga);
		ds_window(b, bodyb, lb + MODSIG_LEN, &gb);
		if ((err = ds_hash(&ga, &ha)) || (err = ds_hash(&gb, &hb)))
			return err;
		if (!kb_hash_eq(&ha, &hb))
			d_report(c, "signature", "signature", NULL,
				 "the module signatures differ (%llu vs %llu bytes, %s/%s): signed "
				 "again, or with another key", (unsigned long long)la,
				 (unsigned long long)lb, id_type(ma[2]), id_type(mb[2]));
	}
	kb_hash ha, hb;
	if (bodya == bodyb) {
		if ((err = ds_hash(&ba, &ha)) || (err = ds_hash(&bb, &hb)))
			return err;
		if (kb_hash_eq(&ha, &hb))
			return NULL;
	}
	return cmp_elf(c, &ba, &bb);
}

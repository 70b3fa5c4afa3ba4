/* A small FAT12/16 file system image, written here rather than with
 * mkfs.fat and mtools in a build root: the EFI El Torito image needs one
 * directory chain and one or two files, and writing every byte ourselves
 * makes it reproducible without options to pin (mkfs.fat would take its
 * serial from the clock and mtools its times from the files).
 *
 * Layout: 512-byte sectors, 2 KiB clusters, one reserved sector, two
 * FATs, a 512-entry root directory, then the clusters: directories first
 * (each in one cluster, parents before children), then the files in the
 * order given, contiguous. FAT12 below 4085 clusters, else FAT16 (up to
 * 65524 clusters: 128 MiB, plenty for a boot loader). Every time is the
 * epoch as UTC (FAT has no time zone), short 8.3 names only. */
#include "image.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 512
#define SPC 4 /* sectors per cluster */
#define CLUSTER (SECTOR * SPC)
#define ROOT_ENTRIES 512
#define MAX_DIRS 64

struct dir {
	char name[11];
	int parent; /* -1: the root */
	uint32_t cluster;
	unsigned char ent[CLUSTER]; /* 64 entries; the root's are written apart */
	size_t nent;
};

static void put16(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

/* "BOOTX64.EFI" -> "BOOTX64 EFI"; -1 if not an upper-case 8.3 name */
static int short_name(const char *s, size_t len, char out[11])
{
	memset(out, ' ', 11);
	size_t i = 0, o = 0;
	for (; i < len && s[i] != '.'; i++, o++) {
		if (o >= 8)
			return -1;
		out[o] = s[i];
	}
	if (o == 0)
		return -1;
	if (i < len) {
		i++;
		for (o = 8; i < len; i++, o++) {
			if (o >= 11 || s[i] == '.')
				return -1;
			out[o] = s[i];
		}
	}
	for (int k = 0; k < 11; k++) {
		char c = out[k];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '_' ||
		      c == '-'))
			return -1;
	}
	return 0;
}

static void dirent(unsigned char *e, const char name[11], int isdir, uint32_t cluster,
		   uint32_t size, uint16_t date, uint16_t tm)
{
	memset(e, 0, 32);
	memcpy(e, name, 11);
	e[11] = isdir ? 0x10 : 0x20;
	put16(e + 14, tm);
	put16(e + 16, date);
	put16(e + 18, date);
	put16(e + 22, tm);
	put16(e + 24, date);
	put16(e + 26, cluster);
	put32(e + 28, size);
}

kb_err *kb_fat_write(const kb_fat_file *f, size_t n, int64_t sde, uint32_t serial,
		     const char *label, int fd)
{
	struct dir *d = kb_calloc(MAX_DIRS, sizeof *d);
	size_t nd = 0;
	unsigned char *root = kb_calloc(ROOT_ENTRIES, 32);
	size_t nroot = 0;
	int *fdir = kb_calloc(n ? n : 1, sizeof *fdir);
	char (*fname)[11] = kb_calloc(n ? n : 1, sizeof *fname);
	unsigned char *fat = NULL;
	kb_err *err = NULL;

	/* the directories each file needs, in order of appearance */
	for (size_t i = 0; !err && i < n; i++) {
		int parent = -1;
		for (const char *c = f[i].path; !err;) {
			size_t len = strcspn(c, "/");
			char nm[11];
			if (short_name(c, len, nm)) {
				err = kb_errf("FAT image: '%s' is not a path of upper-case 8.3 names",
					      f[i].path);
				break;
			}
			if (!c[len]) {
				fdir[i] = parent;
				memcpy(fname[i], nm, 11);
				break;
			}
			int found = -1;
			for (size_t k = 0; k < nd; k++)
				if (d[k].parent == parent && !memcmp(d[k].name, nm, 11))
					found = (int)k;
			if (found < 0) {
				if (nd == MAX_DIRS) {
					err = kb_errf("FAT image: more than %d directories", MAX_DIRS);
					break;
				}
				memcpy(d[nd].name, nm, 11);
				d[nd].parent = parent;
				found = (int)nd++;
			}
			parent = found;
			c += len + 1;
		}
	}
	/* clusters: directories, then files */
	uint32_t next = 2;
	for (size_t k = 0; k < nd; k++)
		d[k].cluster = next++;
	uint32_t *fclus = kb_calloc(n ? n : 1, sizeof *fclus);
	for (size_t i = 0; !err && i < n; i++) {
		if (f[i].size > 0xffffffffu) {
			err = kb_errf("FAT image: '%s' is 4 GiB or more", f[i].path);
			break;
		}
		uint64_t nc = (f[i].size + CLUSTER - 1) / CLUSTER;
		fclus[i] = nc ? next : 0;
		next += (uint32_t)nc;
		if (next > 65524 + 2)
			err = kb_errf("FAT image: the files need more than 128 MiB");
	}
	uint32_t clusters = next - 2 + 1; /* one spare: never an empty data area */
	int fat16 = clusters >= 4085;
	uint32_t fatsz = fat16 ? ((clusters + 2) * 2 + SECTOR - 1) / SECTOR
			       : ((clusters + 2) * 3 / 2 + 1 + SECTOR - 1) / SECTOR;
	uint32_t rootsz = ROOT_ENTRIES * 32 / SECTOR;
	uint32_t total = 1 + 2 * fatsz + rootsz + clusters * SPC;

	/* times: FAT's are local; the epoch is written as UTC, from 1980 */
	time_t tt = (time_t)(sde < 315532800 ? 315532800 : sde);
	struct tm tm;
	gmtime_r(&tt, &tm);
	if (tm.tm_year > 207)
		tm = (struct tm){.tm_year = 207, .tm_mon = 11, .tm_mday = 31};
	uint16_t date = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
	uint16_t tim = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);

	/* directory entries: "." and ".." first in subdirectories */
	for (size_t k = 0; !err && k < nd; k++) {
		char dot[11], dotdot[11];
		memset(dot, ' ', 11);
		memset(dotdot, ' ', 11);
		dot[0] = dotdot[0] = dotdot[1] = '.';
		dirent(d[k].ent, dot, 1, d[k].cluster, 0, date, tim);
		dirent(d[k].ent + 32, dotdot, 1, d[k].parent < 0 ? 0 : d[d[k].parent].cluster, 0,
		       date, tim);
		d[k].nent = 2;
	}
	if (!err && label) {
		char lb[11];
		memset(lb, ' ', 11);
		memcpy(lb, label, strlen(label) < 11 ? strlen(label) : 11);
		dirent(root, lb, 0, 0, 0, date, tim);
		root[11] = 0x08;
		nroot = 1;
	}
	for (size_t k = 0; !err && k < nd + n; k++) {
		int parent = k < nd ? d[k].parent : fdir[k - nd];
		unsigned char *slot;
		if (parent < 0) {
			if (nroot == ROOT_ENTRIES) {
				err = kb_errf("FAT image: the root directory is full");
				break;
			}
			slot = root + 32 * nroot++;
		} else {
			if (d[parent].nent == CLUSTER / 32) {
				err = kb_errf("FAT image: a directory has more than %d entries",
					      CLUSTER / 32 - 2);
				break;
			}
			slot = d[parent].ent + 32 * d[parent].nent++;
		}
		if (k < nd)
			dirent(slot, d[k].name, 1, d[k].cluster, 0, date, tim);
		else
			dirent(slot, fname[k - nd], 0, fclus[k - nd], (uint32_t)f[k - nd].size, date,
			       tim);
	}

	/* the FAT: chains; media byte and end mark in entries 0 and 1 */
	fat = kb_calloc(fatsz, SECTOR);
	uint32_t eoc = fat16 ? 0xffff : 0xfff;
	uint32_t *chain = kb_calloc(clusters + 2, sizeof *chain);
	chain[0] = fat16 ? 0xfff8 : 0xff8;
	chain[1] = eoc;
	for (size_t k = 0; k < nd; k++)
		chain[d[k].cluster] = eoc;
	for (size_t i = 0; i < n; i++) {
		uint32_t nc = (uint32_t)((f[i].size + CLUSTER - 1) / CLUSTER);
		for (uint32_t c = 0; c < nc; c++)
			chain[fclus[i] + c] = c + 1 < nc ? fclus[i] + c + 1 : eoc;
	}
	for (uint32_t c = 0; c < clusters + 2; c++) {
		if (fat16) {
			put16(fat + 2 * c, chain[c]);
		} else if (c % 2 == 0) {
			fat[c * 3 / 2] = (unsigned char)chain[c];
			fat[c * 3 / 2 + 1] = (unsigned char)((fat[c * 3 / 2 + 1] & 0xf0) |
							     ((chain[c] >> 8) & 0x0f));
		} else {
			size_t o = c * 3 / 2;
			fat[o] = (unsigned char)((fat[o] & 0x0f) | ((chain[c] & 0x0f) << 4));
			fat[o + 1] = (unsigned char)(chain[c] >> 4);
		}
	}
	free(chain);

	unsigned char bs[SECTOR] = {0xeb, 0x3c, 0x90};
	memcpy(bs + 3, "KBUILD  ", 8);
	put16(bs + 11, SECTOR);
	bs[13] = SPC;
	put16(bs + 14, 1);
	bs[16] = 2;
	put16(bs + 17, ROOT_ENTRIES);
	if (total < 65536)
		put16(bs + 19, total);
	else
		put32(bs + 32, total);
	bs[21] = 0xf8;
	put16(bs + 22, fatsz);
	put16(bs + 24, 32);
	put16(bs + 26, 64);
	bs[36] = 0x80;
	bs[38] = 0x29;
	put32(bs + 39, serial);
	memset(bs + 43, ' ', 11);
	if (label)
		memcpy(bs + 43, label, strlen(label) < 11 ? strlen(label) : 11);
	memcpy(bs + 54, fat16 ? "FAT16   " : "FAT12   ", 8);
	bs[510] = 0x55;
	bs[511] = 0xaa;

	if (!err)
		err = kb_write_all(fd, bs, SECTOR, "the FAT image");
	for (int i = 0; !err && i < 2; i++)
		err = kb_write_all(fd, fat, (size_t)fatsz * SECTOR, "the FAT image");
	if (!err)
		err = kb_write_all(fd, root, ROOT_ENTRIES * 32, "the FAT image");
	for (size_t k = 0; !err && k < nd; k++)
		err = kb_write_all(fd, d[k].ent, CLUSTER, "the FAT image");
	char *buf = kb_malloc(CLUSTER);
	for (size_t i = 0; !err && i < n; i++) {
		uint64_t left = f[i].size, nc = (left + CLUSTER - 1) / CLUSTER;
		for (uint64_t c = 0; !err && c < nc; c++) {
			size_t want = left < CLUSTER ? (size_t)left : CLUSTER, got;
			memset(buf, 0, CLUSTER);
			if ((err = kb_read_full(f[i].fd, buf, want, &got, f[i].path)))
				break;
			if (got != want)
				err = kb_errf("FAT image: '%s' is shorter than its size", f[i].path);
			else
				err = kb_write_all(fd, buf, CLUSTER, "the FAT image");
			left -= want;
		}
	}
	/* the spare cluster */
	memset(buf, 0, CLUSTER);
	if (!err)
		err = kb_write_all(fd, buf, CLUSTER, "the FAT image");
	free(buf);
	free(fclus);
	free(fat);
	free(fname);
	free(fdir);
	free(root);
	free(d);
	return err;
}

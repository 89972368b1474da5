/*
 * test/fuzz/fuzz_czdir.c - libFuzzer target for the Clonezilla directory
 * parsers and table builders (formats/czdir.c, czpt.c): the sfdisk -d text
 * (then the EBR chain of what it describes), parted's text, image file
 * names, the backup GPT built from a saved primary, and the whole GPT
 * built from a GPT .sf.
 *
 * Input: byte 0 = selector (mod 4): 0 .sf text, 1 .parted text, 2 a file
 * name (then a partition name after a '/'), 3 a primary GPT (34 sectors,
 * zero-padded) with the disk size from bytes 1-4. The rest = the data.
 *
 * Invariants: no crash or leak; an error has a one-line message naming the
 * file; parsed partitions have a type and a size; an EBR chain stays inside
 * its extended partition, in ascending order, each EBR before its partition
 * and ending in 55 AA; a built backup GPT header has a valid CRC-32 and sits
 * at the disk's last sector; a GPT from a .sf has both headers right and
 * the same entries twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fmt.h"
#include "formats/czdir.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static char *as_text(const uint8_t *p, size_t n)
{
	char *t = malloc(n + 1);
	if (!t)
		abort();
	memcpy(t, p, n);
	t[n] = 0;
	return t;
}

static void check_ebrs(const img_cz_part *parts, size_t n)
{
	const img_cz_part *ext = NULL;
	for (size_t i = 0; i < n; i++)
		if (parts[i].kind == IMG_CZ_EXTENDED && !ext)
			ext = &parts[i];
	if (!ext)
		return;
	struct cz_ebr *e;
	size_t ne;
	img_err err = { 0 };
	int rc = cz_build_ebrs(parts, n, 0, ext, "sda-pt.sf", &e, &ne, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "sda-pt.sf");
		return;
	}
	for (size_t i = 0; i < ne; i++) {
		FUZZ_CHECK(e[i].lba >= ext->start && e[i].lba < ext->start + ext->size, "EBR %zu outside", i);
		FUZZ_CHECK(i == 0 || e[i].lba > e[i - 1].lba, "EBRs out of order");
		FUZZ_CHECK(e[i].sector[510] == 0x55 && e[i].sector[511] == 0xAA, "EBR without signature");
	}
	free(e);
}

static int gpt_header_ok(const uint8_t *h, uint64_t my, uint64_t alt)
{
	uint8_t c[92];
	memcpy(c, h, sizeof c);
	memset(c + 16, 0, 4);
	return get_le32(h + 16) == crc32_fast(0, c, sizeof c) && get_le64(h + 24) == my && get_le64(h + 32) == alt;
}

/* A GPT .sf: the GPT sfdisk would write, on a disk just large enough. */
static void check_gpt_from_sf(const img_cz_disk *d, const img_cz_part *parts, size_t n)
{
	if (d->label != IMG_CZ_LABEL_GPT)
		return;
	uint64_t end = 0;
	for (size_t i = 0; i < n; i++)
		if (parts[i].start + parts[i].size > end)
			end = parts[i].start + parts[i].size;
	uint32_t ss = d->sector_size;
	uint64_t ent = ((uint64_t)d->table_length * 128 + ss - 1) / ss, sectors = end + ent + 2;
	if (end > ((uint64_t)1 << 40))
		return;
	struct cz_gpt g;
	img_err err = { 0 };
	int rc = cz_gpt_from_sf(d, parts, n, 0, sectors, "sda-pt.sf", &g, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "sda-pt.sf");
		return;
	}
	FUZZ_CHECK(g.primary_len == (2 + ent) * ss && g.backup_len == (1 + ent) * ss, "GPT sizes");
	FUZZ_CHECK(gpt_header_ok(g.primary + ss, 1, sectors - 1), "primary GPT header wrong");
	FUZZ_CHECK(gpt_header_ok(g.backup + ent * ss, sectors - 1, 1), "backup GPT header wrong");
	FUZZ_CHECK(g.backup_lba + 1 + ent == sectors, "backup GPT not at the disk's end");
	FUZZ_CHECK(memcmp(g.primary + 2 * ss, g.backup, (size_t)(ent * ss)) == 0, "backup entries differ");
	cz_gpt_free(&g);
}

static void fuzz_sf(const uint8_t *p, size_t n)
{
	char *t = as_text(p, n);
	img_cz_disk d = { 0 };
	img_cz_part *parts = calloc(CZ_MAX_PARTS, sizeof *parts);
	size_t np = 0;
	img_err err = { 0 };
	if (!parts)
		abort();
	int rc = cz_parse_sf(t, "sda-pt.sf", 0, &d, parts, CZ_MAX_PARTS, &np, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "sda-pt.sf");
	} else {
		for (size_t i = 0; i < np; i++)
			FUZZ_CHECK(parts[i].size > 0 && parts[i].type[0], "partition %zu without size or type", i);
		check_ebrs(parts, np);
		check_gpt_from_sf(&d, parts, np);
	}
	free(parts);
	free(t);
}

static void fuzz_parted(const uint8_t *p, size_t n)
{
	char *t = as_text(p, n);
	uint64_t sectors;
	int gpt;
	img_err err = { 0 };
	int rc = cz_parse_parted(t, "sda-pt.parted", &sectors, &gpt, &err);
	if (rc != IMG_OK)
		fuzz_check_err(rc, &err, "sda-pt.parted");
	else
		FUZZ_CHECK(sectors > 0, "a size of 0 sectors accepted");
	free(t);
}

static void fuzz_name(const uint8_t *p, size_t n)
{
	char *t = as_text(p, n);
	char *slash = strchr(t, '/');
	const char *part = "sda1";
	if (slash) {
		*slash = 0;
		part = slash + 1;
	}
	struct cz_name cn;
	if (cz_parse_image_name(t, part, &cn)) {
		FUZZ_CHECK(cn.base_len <= strlen(t), "base longer than the name");
		FUZZ_CHECK(cn.tool != NULL, "no tool");
	}
	free(t);
}

static void fuzz_gpt(const uint8_t *p, size_t n)
{
	if (n < 4)
		return;
	uint64_t sectors = get_le32(p) % 100000000u;
	uint8_t *g = calloc(1, 34 * 512), hdr[512];
	if (!g)
		abort();
	memcpy(g, p + 4, n - 4 < 34 * 512 ? n - 4 : 34 * 512);
	uint64_t lba;
	size_t len;
	img_err err = { 0 };
	int rc = cz_gpt_backup(g, 34 * 512, sectors, "sda-gpt-1st", hdr, &lba, &len, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "sda-gpt-1st");
	} else {
		uint32_t hsize = get_le32(hdr + 12), crc = get_le32(hdr + 16);
		memset(hdr + 16, 0, 4);
		FUZZ_CHECK(crc == crc32_fast(0, hdr, hsize), "backup header CRC-32 wrong");
		FUZZ_CHECK(get_le64(hdr + 24) == sectors - 1, "backup header not at the last sector");
		FUZZ_CHECK(lba + len / 512 == sectors - 1, "backup entries do not end before the header");
	}
	free(g);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: fuzz_sf(data + 1, size - 1); break;
	case 1: fuzz_parted(data + 1, size - 1); break;
	case 2: fuzz_name(data + 1, size - 1); break;
	default: fuzz_gpt(data + 1, size - 1); break;
	}
	return 0;
}

/*
 * formats/czpt.c - partition table sectors a Clonezilla directory does not
 * save, rebuilt as the tools that restore it write them: the EBR chain of
 * MBR logical partitions (as libfdisk writes it: util-linux dos.c, checked
 * with sfdisk 2.38.1 on a loop device, aligned and 63-sector layouts, CHS
 * capped past cylinder 1023) and the backup GPT at the disk's end (from the
 * saved primary, CRC-32s recomputed).
 *
 * Pure functions over buffers: no files, no printing. Used by czdisk.c.
 */
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "czdir.h"

/* libfdisk's geometry when the device reports none (loop devices, images). */
#define CHS_HEADS 255u
#define CHS_SECTORS 63u
/* libfdisk's first_lba for 512-byte sectors and 1 MiB alignment. */
#define ALIGNED_FIRST_LBA 2048u
#define MBR_TYPE_EXTENDED 0x05
#define MBR_ACTIVE 0x80
#define MBR_TABLE 446
#define GPT_HEADER_MIN 92
#define GPT_SIG "EFI PART"

void cz_chs(uint64_t lba, uint8_t out[3])
{
	if (lba / (CHS_HEADS * CHS_SECTORS) > 1023)
		lba = (uint64_t)CHS_HEADS * CHS_SECTORS * 1024 - 1;
	unsigned s = (unsigned)(lba % CHS_SECTORS) + 1;
	lba /= CHS_SECTORS;
	unsigned h = (unsigned)(lba % CHS_HEADS);
	lba /= CHS_HEADS;
	out[0] = (uint8_t)h;
	out[1] = (uint8_t)(s | ((lba >> 2) & 0xc0));
	out[2] = (uint8_t)(lba & 0xff);
}

/* One 16-byte MBR entry: boot flag, CHS start, type, CHS end, LBA start (relative), size. */
static void mbr_entry(uint8_t *e, int boot, uint8_t type, uint64_t abs_start, uint64_t rel_start,
		      uint64_t size)
{
	e[0] = boot ? MBR_ACTIVE : 0;
	cz_chs(abs_start, e + 1);
	e[4] = type;
	cz_chs(abs_start + size - 1, e + 5);
	store_le32(e + 8, (uint32_t)rel_start);
	store_le32(e + 12, (uint32_t)size);
}

/* The logical partitions of `disk`, in table order (number >= 5). */
static size_t collect_logicals(const img_cz_part *parts, size_t nparts, int disk,
			       const img_cz_part **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < nparts && n < max; i++)
		if (parts[i].disk == disk && parts[i].number >= 5)
			out[n++] = &parts[i];
	return n;
}

/* libfdisk starts with first_lba 2048 and drops to 1 for the rest of a
 * script once a partition starts before where it would put one. */
static uint64_t script_first_lba(const img_cz_part *parts, size_t nparts, int disk,
				 const img_cz_part *ext)
{
	uint64_t first = ALIGNED_FIRST_LBA;
	for (size_t i = 0; i < nparts; i++) {
		const img_cz_part *p = &parts[i];
		if (p->disk != disk)
			continue;
		uint64_t lowest = p->number >= 5 ? ext->start + first : first;
		if (p->start < lowest)
			first = 1;
	}
	return first;
}

static int ebr_fail(img_err *err, const char *file, const img_cz_part *p, const char *why)
{
	return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: logical partition %s: %s", file, p->name, why);
}

/* Where each logical partition's EBR goes. @return IMG_OK or an error. */
static int place_ebrs(const img_cz_part *const *lp, size_t n, const img_cz_part *ext, uint64_t first_lba,
		      const char *file, uint64_t *lba, img_err *err)
{
	uint64_t ext_end = ext->start + ext->size;
	for (size_t i = 0; i < n; i++) {
		const img_cz_part *p = lp[i];
		if (p->start + p->size > ext_end || p->start <= ext->start)
			return ebr_fail(err, file, p, "not inside the extended partition");
		lba[i] = i == 0 ? ext->start : p->start - first_lba;
		if (i > 0 && lba[i] == ext->start)
			lba[i]++;
		if (p->start < first_lba || lba[i] >= p->start ||
		    (i > 0 && lba[i] < lp[i - 1]->start + lp[i - 1]->size))
			return ebr_fail(err, file, p, "no room for its EBR where libfdisk puts it");
	}
	return IMG_OK;
}

int cz_build_ebrs(const img_cz_part *parts, size_t nparts, int disk, const img_cz_part *ext,
		  const char *file, struct cz_ebr **out, size_t *n, img_err *err)
{
	*out = NULL;
	*n = 0;
	const img_cz_part **lp = malloc(CZ_MAX_PARTS * sizeof *lp);
	uint64_t *lba = malloc(CZ_MAX_PARTS * sizeof *lba);
	struct cz_ebr *ebr = NULL;
	int rc = IMG_OK;
	if (!lp || !lba) {
		rc = img_err_set(err, IMG_E_IO, 0, 0, 0, "%s: out of memory", file);
		goto done;
	}
	size_t count = collect_logicals(parts, nparts, disk, lp, CZ_MAX_PARTS);
	if (count == 0)
		goto done;
	rc = place_ebrs(lp, count, ext, script_first_lba(parts, nparts, disk, ext), file, lba, err);
	if (rc != IMG_OK)
		goto done;
	ebr = calloc(count, sizeof *ebr);
	if (!ebr) {
		rc = img_err_set(err, IMG_E_IO, 0, 0, 0, "%s: out of memory", file);
		goto done;
	}
	for (size_t i = 0; i < count; i++) {
		const img_cz_part *p = lp[i];
		uint8_t *s = ebr[i].sector;
		ebr[i].lba = lba[i];
		mbr_entry(s + MBR_TABLE, p->bootable, (uint8_t)strtoul(p->type, NULL, 16), p->start,
			  p->start - lba[i], p->size);
		if (i + 1 < count) {
			const img_cz_part *q = lp[i + 1];
			uint64_t link_size = q->start + q->size - lba[i + 1];
			mbr_entry(s + MBR_TABLE + 16, 0, MBR_TYPE_EXTENDED, lba[i + 1], lba[i + 1] - ext->start,
				  link_size);
		}
		s[510] = 0x55;
		s[511] = 0xAA;
	}
	*out = ebr;
	*n = count;
done:
	free(lp);
	free(lba);
	return rc;
}

/* ---- GPT ------------------------------------------------------------------ */

static int gpt_fail(img_err *err, const char *file, const char *why)
{
	return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: %s", file, why);
}

static uint32_t gpt_header_crc(uint8_t *h, uint32_t size)
{
	uint8_t saved[4];
	memcpy(saved, h + 16, 4);
	memset(h + 16, 0, 4);
	uint32_t crc = crc32_fast(0, h, size);
	memcpy(h + 16, saved, 4);
	return crc;
}

/* The highest last LBA of the used entries. */
static uint64_t gpt_highest_end(const uint8_t *e, uint32_t count, uint32_t esize)
{
	uint64_t end = 0;
	static const uint8_t unused[16];
	for (uint32_t i = 0; i < count; i++, e += esize)
		if (memcmp(e, unused, 16) != 0 && get_le64(e + 40) > end)
			end = get_le64(e + 40);
	return end;
}

/* The primary GPT of a disk of another size, as sfdisk writes a saved table
 * without its last-lba: alternate LBA, last usable LBA, protective MBR size. */
static void resize_primary(uint8_t *gpt1, uint8_t *h, uint32_t hsize, uint64_t sectors, uint64_t ent_sectors)
{
	store_le64(h + 32, sectors - 1);
	store_le64(h + 48, sectors - 2 - ent_sectors);
	if (gpt1[446 + 4] == 0xEE)
		store_le32(gpt1 + 446 + 12, sectors - 1 > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)(sectors - 1));
	store_le32(h + 16, gpt_header_crc(h, hsize));
}

int cz_gpt_backup(uint8_t *gpt1, size_t len, uint64_t sectors, const char *file,
		  uint8_t header[512], uint64_t *entries_lba, size_t *entries_len, img_err *err)
{
	if (len < 2 * 512 || memcmp(gpt1 + 512, GPT_SIG, 8) != 0)
		return gpt_fail(err, file, "no GPT header at LBA 1 (signature \"EFI PART\" missing)");
	uint8_t *h = gpt1 + 512;
	uint32_t hsize = get_le32(h + 12);
	if (hsize < GPT_HEADER_MIN || hsize > 512)
		return gpt_fail(err, file, "GPT header size out of range");
	if (gpt_header_crc(h, hsize) != get_le32(h + 16))
		return gpt_fail(err, file, "GPT header CRC-32 does not match");
	uint64_t ent_lba = get_le64(h + 72);
	uint32_t count = get_le32(h + 80), esize = get_le32(h + 84);
	uint64_t bytes = (uint64_t)count * esize;
	if (get_le64(h + 24) != 1 || ent_lba != 2 || esize < 128 || bytes == 0 || 1024 + bytes > len)
		return gpt_fail(err, file, "GPT entries not where a saved 34-sector GPT holds them");
	if (crc32_fast(0, gpt1 + 1024, (size_t)bytes) != get_le32(h + 88))
		return gpt_fail(err, file, "GPT entries CRC-32 does not match");
	uint64_t ent_sectors = (bytes + 511) / 512;
	if (sectors < 2 * ent_sectors + 3 || gpt_highest_end(gpt1 + 1024, count, esize) >= sectors - 1 - ent_sectors)
		return img_err_set(err, IMG_E_USAGE, 0, 0, 0, "%s: the partitions do not fit a disk of %llu sectors",
				   file, (unsigned long long)sectors);
	if (get_le64(h + 32) != sectors - 1)
		resize_primary(gpt1, h, hsize, sectors, ent_sectors);
	memset(header, 0, 512);
	memcpy(header, h, hsize);
	store_le64(header + 24, sectors - 1);
	store_le64(header + 32, 1);
	*entries_lba = sectors - 1 - ent_sectors;
	store_le64(header + 72, *entries_lba);
	store_le32(header + 16, gpt_header_crc(header, hsize));
	*entries_len = (size_t)(ent_sectors * 512);
	return IMG_OK;
}

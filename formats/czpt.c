/*
 * formats/czpt.c - partition table sectors a Clonezilla directory does not
 * save, rebuilt as the tools that restore it write them: the EBR chain of
 * MBR logical partitions (as libfdisk writes it: util-linux dos.c, checked
 * with sfdisk 2.38.1 on a loop device, aligned and 63-sector layouts, CHS
 * capped past cylinder 1023), the backup GPT at the disk's end (from the
 * saved primary, CRC-32s recomputed), and a whole GPT from the .sf facts
 * alone where the primary was not saved or not whole (4Kn disks), as sfdisk
 * writes it for `grep -v last-lba NAME-pt.sf`.
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

/* ---- GPT from the .sf file ---------------------------------------------------- */

#define GPT_ENTRY_SIZE 128u
#define GPT_NAME_UNITS 36u

static void store_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "0FC63DAF-8483-4772-8E79-3D69D8477DE4" -> 16 bytes as GPT stores a GUID
 * (the first three groups little-endian). @return 0, or -1 when malformed. */
int cz_guid_bytes(const char *s, uint8_t out[16])
{
	static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	uint8_t b[16];
	size_t k = 0;
	for (size_t i = 0; s[i] && k < 16; i++) {
		if (s[i] == '-' && (i == 8 || i == 13 || i == 18 || i == 23))
			continue;
		int hi = hexval(s[i]), lo = s[i + 1] ? hexval(s[i + 1]) : -1;
		if (hi < 0 || lo < 0)
			return -1;
		b[k++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	if (k != 16 || strlen(s) != 36)
		return -1;
	for (size_t i = 0; i < 16; i++)
		out[i] = b[order[i]];
	return 0;
}

/* attrs="RequiredPartition NoBlockIOProtocol LegacyBIOSBootable GUID:48,63"
 * as libfdisk writes them. @return 0, or -1 for a word it does not write. */
int cz_gpt_attrs(const char *s, uint64_t *out)
{
	*out = 0;
	while (*s) {
		while (*s == ' ' || *s == ',')
			s++;
		size_t n = strcspn(s, " ");
		if (n == 0)
			break;
		if (n == 17 && !strncmp(s, "RequiredPartition", n))
			*out |= 1;
		else if (n == 17 && !strncmp(s, "NoBlockIOProtocol", n))
			*out |= 2;
		else if (n == 18 && !strncmp(s, "LegacyBIOSBootable", n))
			*out |= 4;
		else if (n > 5 && !strncmp(s, "GUID:", 5)) {
			for (const char *p = s + 5; p < s + n;) {
				char *end;
				unsigned long bit = strtoul(p, &end, 10);
				if (end == p || bit > 63 || (end < s + n && *end != ','))
					return -1;
				*out |= (uint64_t)1 << bit;
				p = end < s + n ? end + 1 : end;
			}
		} else
			return -1;
		s += n;
	}
	return 0;
}

/* UTF-8 -> UTF-16LE, at most GPT_NAME_UNITS units (as libfdisk truncates). */
static void gpt_name(const char *s, uint8_t *out)
{
	size_t u = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && u < GPT_NAME_UNITS) {
		uint32_t c = *p++;
		int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
		if (more)
			c &= 0x3Fu >> more;
		for (; more > 0 && (*p & 0xC0) == 0x80; more--)
			c = c << 6 | (*p++ & 0x3F);
		if (c >= 0x10000) {
			if (u + 2 > GPT_NAME_UNITS)
				break;
			c -= 0x10000;
			store_le16(out + 2 * u++, (uint16_t)(0xD800 | c >> 10));
			c = 0xDC00 | (c & 0x3FF);
		}
		store_le16(out + 2 * u++, (uint16_t)c);
	}
}

static int gpt_entries(const img_cz_part *parts, size_t nparts, int disk, uint32_t count, uint8_t *e,
		       const char *file, img_err *err)
{
	for (size_t i = 0; i < nparts; i++) {
		const img_cz_part *p = &parts[i];
		if (p->disk != disk)
			continue;
		if (p->number == 0 || p->number > count)
			return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: partition %s has no entry in a %u-entry GPT",
					   file, p->name, count);
		uint8_t *x = e + (size_t)(p->number - 1) * GPT_ENTRY_SIZE;
		uint64_t attrs;
		if (cz_guid_bytes(p->type, x) != 0 || cz_guid_bytes(p->uuid, x + 16) != 0)
			return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: %s: type= or uuid= is not a GUID", file,
					   p->name);
		if (cz_gpt_attrs(p->attrs, &attrs) != 0)
			return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: %s: attrs=\"%s\" not understood", file,
					   p->name, p->attrs);
		store_le64(x + 32, p->start);
		store_le64(x + 40, p->start + p->size - 1);
		store_le64(x + 48, attrs);
		gpt_name(p->label, x + 56);
	}
	return IMG_OK;
}

static void gpt_header(uint8_t *h, uint64_t my, uint64_t alt, uint64_t first, uint64_t last,
		       const uint8_t guid[16], uint64_t ent_lba, uint32_t count, uint32_t ent_crc)
{
	memcpy(h, GPT_SIG, 8);
	store_le32(h + 8, 0x00010000);
	store_le32(h + 12, GPT_HEADER_MIN);
	store_le64(h + 24, my);
	store_le64(h + 32, alt);
	store_le64(h + 40, first);
	store_le64(h + 48, last);
	memcpy(h + 56, guid, 16);
	store_le64(h + 72, ent_lba);
	store_le32(h + 80, count);
	store_le32(h + 84, GPT_ENTRY_SIZE);
	store_le32(h + 88, ent_crc);
	store_le32(h + 16, gpt_header_crc(h, GPT_HEADER_MIN));
}

/* The protective MBR entry libfdisk writes (gpt.c): type EE from LBA 1 over the disk. */
static void gpt_protective(uint8_t *mbr, uint64_t sectors)
{
	static const uint8_t chs[8] = { 0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF };
	memset(mbr + MBR_TABLE, 0, 64);
	memcpy(mbr + MBR_TABLE, chs, 8);
	store_le32(mbr + MBR_TABLE + 8, 1);
	store_le32(mbr + MBR_TABLE + 12, sectors - 1 > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)(sectors - 1));
	mbr[510] = 0x55;
	mbr[511] = 0xAA;
}

int cz_gpt_from_sf(const img_cz_disk *d, const img_cz_part *parts, size_t nparts, int disk,
		   uint64_t sectors, const char *file, struct cz_gpt *out, img_err *err)
{
	memset(out, 0, sizeof *out);
	uint32_t ss = d->sector_size, count = d->table_length ? d->table_length : 128;
	uint8_t guid[16];
	if (ss < 512 || (ss & (ss - 1)) || count > 4096)
		return gpt_fail(err, file, "sector-size or table-length out of range");
	if (cz_guid_bytes(d->label_id, guid) != 0)
		return gpt_fail(err, file, "label-id is not a GUID");
	uint64_t ent_sectors = ((uint64_t)count * GPT_ENTRY_SIZE + ss - 1) / ss;
	uint64_t first = d->first_lba ? d->first_lba : 2 + ent_sectors;
	if (sectors < 2 * ent_sectors + 4 || first < 2 + ent_sectors)
		return img_err_set(err, IMG_E_USAGE, 0, 0, 0, "%s: a GPT does not fit a disk of %llu sectors", file,
				   (unsigned long long)sectors);
	uint64_t last = sectors - 2 - ent_sectors;
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].disk == disk && (parts[i].start < first || parts[i].start + parts[i].size - 1 > last))
			return img_err_set(err, IMG_E_USAGE, 0, 0, 0,
					   "%s: partition %s lies outside the usable sectors %llu-%llu of a disk of %llu sectors",
					   file, parts[i].name, (unsigned long long)first, (unsigned long long)last,
					   (unsigned long long)sectors);
	out->primary_len = (size_t)((2 + ent_sectors) * ss);
	out->backup_len = (size_t)((1 + ent_sectors) * ss);
	out->primary = calloc(1, out->primary_len);
	out->backup = calloc(1, out->backup_len);
	if (!out->primary || !out->backup) {
		cz_gpt_free(out);
		return img_err_set(err, IMG_E_IO, 0, 0, 0, "%s: out of memory", file);
	}
	uint8_t *ent = out->primary + 2 * ss;
	int rc = gpt_entries(parts, nparts, disk, count, ent, file, err);
	if (rc != IMG_OK) {
		cz_gpt_free(out);
		return rc;
	}
	uint32_t ecrc = crc32_fast(0, ent, (size_t)count * GPT_ENTRY_SIZE);
	gpt_protective(out->primary, sectors);
	gpt_header(out->primary + ss, 1, sectors - 1, first, last, guid, 2, count, ecrc);
	out->backup_lba = sectors - 1 - ent_sectors;
	memcpy(out->backup, ent, (size_t)(ent_sectors * ss));
	gpt_header(out->backup + ent_sectors * ss, sectors - 1, 1, first, last, guid, out->backup_lba, count, ecrc);
	return IMG_OK;
}

void cz_gpt_free(struct cz_gpt *g)
{
	free(g->primary);
	free(g->backup);
	g->primary = g->backup = NULL;
}

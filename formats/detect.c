/*
 * formats/detect.c - the one table of image formats, and what to say about
 * bytes that are none of them ("an ext4 filesystem, not a backup image").
 *
 * To add a format: write formats/NAME.c with a `struct img_format` and add
 * one line to img_formats[] below.
 */
#include <string.h>

#include "fmt.h"

const struct img_format *const img_formats[] = {
	&fmt_partclone,
	&fmt_partimage,
	&fmt_ntfsclone,
	NULL,
};

const struct img_format *fmt_detect(const uint8_t *p, size_t n)
{
	for (size_t i = 0; img_formats[i]; i++)
		if (n >= img_formats[i]->magic_len && img_formats[i]->bid(p, n))
			return img_formats[i];
	return NULL;
}

int fmt_is_image(const uint8_t *p, size_t n)
{
	return fmt_detect(p, n) != NULL;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int mostly_text(const uint8_t *p, size_t n)
{
	size_t printable = 0;
	for (size_t i = 0; i < n; i++)
		if ((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')
			printable++;
	return n > 0 && printable * 100 >= n * 95;
}

/* Filesystems and containers people mistake for backup images. */
const char *fmt_describe_foreign(const uint8_t *p, size_t n)
{
	if (n == 0)
		return "an empty file";
	if (n >= 1082 && get_le16(p + 1080) == 0xEF53)
		return "an ext2/3/4 filesystem, not a backup image (use it directly, or image it with partclone.extfs)";
	if (n >= 0x10048 && memcmp(p + 0x10040, "_BHRfS_M", 8) == 0)
		return "a btrfs filesystem, not a backup image";
	if (n >= 4 && memcmp(p, "XFSB", 4) == 0)
		return "an XFS filesystem, not a backup image";
	if (n >= 11 && memcmp(p + 3, "NTFS    ", 8) == 0)
		return "an NTFS filesystem, not a backup image";
	if (n >= 11 && memcmp(p + 3, "EXFAT   ", 8) == 0)
		return "an exFAT filesystem, not a backup image";
	if (n >= 90 && memcmp(p + 82, "FAT32", 5) == 0)
		return "a FAT32 filesystem, not a backup image";
	if (n >= 62 && memcmp(p + 54, "FAT1", 4) == 0)
		return "a FAT12/16 filesystem, not a backup image";
	if (n >= 6 && memcmp(p, "LUKS\xba\xbe", 6) == 0)
		return "a LUKS encrypted volume, not a backup image";
	if (n >= 512 && p[510] == 0x55 && p[511] == 0xAA)
		return "a disk or partition with a boot sector, not a backup image";
	if (n >= 4 && memcmp(p, "LZIP", 4) == 0)
		return "an lzip stream, which imgbk does not decompress (use lzip -dc IMAGE | imgbk ... -)";
	if (n >= 9 && memcmp(p, "\x89LZO\0\r\n\x1a\n", 9) == 0)
		return "an lzop stream, which imgbk does not decompress (use lzop -dc IMAGE | imgbk ... -)";
	if (all_zero(p, n < 4096 ? n : 4096))
		return "all zero bytes at the start, not a backup image";
	if (mostly_text(p, n < 512 ? n : 512))
		return "text, not a backup image";
	return "not a supported backup image (partclone, ntfsclone or partimage)";
}

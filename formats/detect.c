/*
 * formats/detect.c - the one table of image formats, and what bytes look
 * like when they are none of them: a refusal ("an ext4 filesystem, not a
 * backup image") or, for a raw image, the description of its content.
 *
 * To add a format: write formats/NAME.c with a `struct img_format` and add
 * one line to img_formats[] below. The raw format has no magic: it is chosen
 * by name or --raw (fmt_choose), never by fmt_detect.
 */
#include <string.h>

#include "fmt.h"

const struct img_format *const img_formats[] = {
	&fmt_partclone,
	&fmt_partimage,
	&fmt_ntfsclone,
	&fmt_raw,
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

const struct img_format *fmt_choose(const uint8_t *p, size_t n, int raw_wanted)
{
	const struct img_format *f = fmt_detect(p, n);
	return f ? f : raw_wanted ? &fmt_raw : NULL;
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

static int at(const uint8_t *p, size_t n, size_t off, const char *magic, size_t len)
{
	return n >= off + len && memcmp(p + off, magic, len) == 0;
}

static int is_empty(const uint8_t *p, size_t n) { (void)p; return n == 0; }
static int is_ext(const uint8_t *p, size_t n) { return n >= 1082 && get_le16(p + 1080) == 0xEF53; }
static int is_btrfs(const uint8_t *p, size_t n) { return at(p, n, 0x10040, "_BHRfS_M", 8); }
static int is_xfs(const uint8_t *p, size_t n) { return at(p, n, 0, "XFSB", 4); }
static int is_ntfs(const uint8_t *p, size_t n) { return at(p, n, 3, "NTFS    ", 8); }
static int is_exfat(const uint8_t *p, size_t n) { return at(p, n, 3, "EXFAT   ", 8); }
static int is_fat32(const uint8_t *p, size_t n) { return at(p, n, 82, "FAT32", 5) && n >= 90; }
static int is_fat16(const uint8_t *p, size_t n) { return at(p, n, 54, "FAT1", 4) && n >= 62; }
static int is_luks(const uint8_t *p, size_t n) { return at(p, n, 0, "LUKS\xba\xbe", 6); }
static int is_boot(const uint8_t *p, size_t n) { return n >= 512 && p[510] == 0x55 && p[511] == 0xAA; }
static int is_lzip(const uint8_t *p, size_t n) { return at(p, n, 0, "LZIP", 4); }
static int is_lzop(const uint8_t *p, size_t n) { return at(p, n, 0, "\x89LZO\0\r\n\x1a\n", 9); }
static int is_zero(const uint8_t *p, size_t n) { return all_zero(p, n < 4096 ? n : 4096); }
static int is_text(const uint8_t *p, size_t n) { return mostly_text(p, n < 512 ? n : 512); }

struct content_kind {
	int (*match)(const uint8_t *p, size_t n);
	struct fmt_content c;
	const char *refusal;  /* said when these bytes were taken for a backup image */
};

#define NOT_IMAGE ", not a backup image"
/* Filesystems and containers people mistake for backup images, in the
 * order they are tested (ext before the boot-sector test, ...). */
static const struct content_kind kinds[] = {
	{ is_empty, { "an empty file", NULL, 0 }, "an empty file" },
	{ is_ext, { "an ext2/3/4 filesystem", "EXTFS", 0 },
	  "an ext2/3/4 filesystem" NOT_IMAGE " (use it directly, or image it with partclone.extfs)" },
	{ is_btrfs, { "a btrfs filesystem", "BTRFS", 0 }, "a btrfs filesystem" NOT_IMAGE },
	{ is_xfs, { "an XFS filesystem", "XFS", 0 }, "an XFS filesystem" NOT_IMAGE },
	{ is_ntfs, { "an NTFS filesystem", "NTFS", 0 }, "an NTFS filesystem" NOT_IMAGE },
	{ is_exfat, { "an exFAT filesystem", "EXFAT", 0 }, "an exFAT filesystem" NOT_IMAGE },
	{ is_fat32, { "a FAT32 filesystem", "FAT32", 0 }, "a FAT32 filesystem" NOT_IMAGE },
	{ is_fat16, { "a FAT12/16 filesystem", "FAT16", 0 }, "a FAT12/16 filesystem" NOT_IMAGE },
	{ is_luks, { "a LUKS encrypted volume", NULL, 0 }, "a LUKS encrypted volume" NOT_IMAGE },
	{ is_boot, { "a disk or partition with a boot sector", NULL, 0 },
	  "a disk or partition with a boot sector" NOT_IMAGE },
	{ is_lzip, { "an lzip stream", NULL, 1 },
	  "an lzip stream with a header imgbk does not decode (not lzip version 1; try lzip -dc IMAGE | imgbk ... -)" },
	{ is_lzop, { "an lzop stream", NULL, 1 },
	  "an lzop stream, which imgbk does not decompress (use lzop -dc IMAGE | imgbk ... -)" },
	{ is_zero, { "all zero bytes at the start", NULL, 0 }, "all zero bytes at the start" NOT_IMAGE },
	{ is_text, { "text", NULL, 0 }, "text" NOT_IMAGE },
};

static const struct content_kind *kind_of(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].match(p, n))
			return &kinds[i];
	return NULL;
}

const struct fmt_content *fmt_content_of(const uint8_t *p, size_t n)
{
	static const struct fmt_content unknown = { "no filesystem or container imgbk recognises",
						    NULL, 0 };
	const struct content_kind *k = kind_of(p, n);
	return k ? &k->c : &unknown;
}

const char *fmt_describe_foreign(const uint8_t *p, size_t n)
{
	const struct content_kind *k = kind_of(p, n);
	return k ? k->refusal : "not a supported backup image (partclone, ntfsclone or partimage)";
}

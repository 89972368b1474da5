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

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* blocks * block size, 0 when the product overflows or a factor is 0 */
static uint64_t times(uint64_t blocks, uint64_t bs)
{
	uint64_t r;
	return __builtin_mul_overflow(blocks, bs, &r) ? 0 : r;
}

/* ext2/3/4: s_blocks_count (hi half with INCOMPAT_64BIT) << (10 + s_log_block_size) */
static uint64_t ext_size(const uint8_t *p, size_t n)
{
	const uint8_t *sb = p + 1024;
	if (n < 1024 + 0x154 || get_le32(sb + 24) > 6)
		return 0;
	uint32_t log = get_le32(sb + 24);
	uint64_t blocks = get_le32(sb + 4);
	if (get_le32(sb + 0x60) & 0x80)
		blocks |= (uint64_t)get_le32(sb + 0x150) << 32;
	return times(blocks, (uint64_t)1024 << log);
}

/* NTFS: total sectors (the backup boot sector follows them) * bytes per sector */
static uint64_t ntfs_size(const uint8_t *p, size_t n)
{
	return n < 0x30 ? 0 : times(get_le64(p + 0x28), get_le16(p + 0x0B));
}

/* FAT: the 16-bit total sectors, or the 32-bit one when that is 0 */
static uint64_t fat_size(const uint8_t *p, size_t n)
{
	if (n < 0x24)
		return 0;
	uint32_t sectors = get_le16(p + 0x13);
	return times(sectors ? sectors : get_le32(p + 0x20), get_le16(p + 0x0B));
}

/* XFS: sb_dblocks * sb_blocksize (big-endian) */
static uint64_t xfs_size(const uint8_t *p, size_t n)
{
	return n < 16 ? 0 : times(get_be64(p + 8), get_be32(p + 4));
}

/* btrfs: total_bytes of the superblock at 64 KiB */
static uint64_t btrfs_size(const uint8_t *p, size_t n)
{
	return n < 0x10078 ? 0 : get_le64(p + 0x10070);
}

/* exFAT: VolumeLength sectors << BytesPerSectorShift */
static uint64_t exfat_size(const uint8_t *p, size_t n)
{
	return n < 0x70 || p[0x6C] > 12 ? 0 : times(get_le64(p + 0x48), (uint64_t)1 << p[0x6C]);
}

struct content_kind {
	int (*match)(const uint8_t *p, size_t n);
	struct fmt_content c;
	const char *refusal;  /* said when these bytes were taken for a backup image */
};

#define NOT_IMAGE ", not a backup image"
/* Filesystems and containers people mistake for backup images, in the
 * order they are tested (ext before the boot-sector test, ...). */
static const struct content_kind kinds[] = {
	{ is_empty, { "an empty file", NULL, 0, NULL }, "an empty file" },
	{ is_ext, { "an ext2/3/4 filesystem", "EXTFS", 0, ext_size },
	  "an ext2/3/4 filesystem" NOT_IMAGE " (use it directly, or image it with partclone.extfs)" },
	{ is_btrfs, { "a btrfs filesystem", "BTRFS", 0, btrfs_size }, "a btrfs filesystem" NOT_IMAGE },
	{ is_xfs, { "an XFS filesystem", "XFS", 0, xfs_size }, "an XFS filesystem" NOT_IMAGE },
	{ is_ntfs, { "an NTFS filesystem", "NTFS", 0, ntfs_size }, "an NTFS filesystem" NOT_IMAGE },
	{ is_exfat, { "an exFAT filesystem", "EXFAT", 0, exfat_size }, "an exFAT filesystem" NOT_IMAGE },
	{ is_fat32, { "a FAT32 filesystem", "FAT32", 0, fat_size }, "a FAT32 filesystem" NOT_IMAGE },
	{ is_fat16, { "a FAT12/16 filesystem", "FAT16", 0, fat_size }, "a FAT12/16 filesystem" NOT_IMAGE },
	{ is_luks, { "a LUKS encrypted volume", NULL, 0, NULL }, "a LUKS encrypted volume" NOT_IMAGE },
	{ is_boot, { "a disk or partition with a boot sector", NULL, 0, NULL },
	  "a disk or partition with a boot sector" NOT_IMAGE },
	{ is_lzip, { "an lzip stream", NULL, 1, NULL },
	  "an lzip stream, which imgbk does not decompress (use lzip -dc IMAGE | imgbk ... -)" },
	{ is_lzop, { "an lzop stream", NULL, 1, NULL },
	  "an lzop stream, which imgbk does not decompress (use lzop -dc IMAGE | imgbk ... -)" },
	{ is_zero, { "all zero bytes at the start", NULL, 0, NULL }, "all zero bytes at the start" NOT_IMAGE },
	{ is_text, { "text", NULL, 0, NULL }, "text" NOT_IMAGE },
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
						    NULL, 0, NULL };
	const struct content_kind *k = kind_of(p, n);
	return k ? &k->c : &unknown;
}

const char *fmt_describe_foreign(const uint8_t *p, size_t n)
{
	const struct content_kind *k = kind_of(p, n);
	return k ? k->refusal : "not a supported backup image (partclone, ntfsclone or partimage)";
}

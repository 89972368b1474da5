/*
 * formats/partimage_info.c - the header print of partimage images for
 * `imgbk info`, in the imagebackup tools' layout (vpartimage -v): a
 * "PartImage" title, then the sections Volume Header, Main Header, Local
 * Header and "<FS> Info Header", each underlined with '-', its labels padded
 * to its longest one, strings in double quotes, numbers without separators.
 * The labels are partimage's own structure members as imagebackup names
 * them (CInfoExt2Header, CInfoFatHeader, CInfoNtfsHeader, CInfoReiserHeader,
 * CInfoHpfsHeader, CInfoJfsHeader, CInfoXfsHeader, CInfoHfsHeader,
 * CInfoAfsHeader/BeFS, CInfoUfsHeader; little-endian, at imagebackup's
 * offsets). One deliberate difference: the ext2/3 uuid is printed as it is
 * stored (the true UUID), not with its first three groups byte-swapped.
 * imgbk's own facts (header sums, the compression's name, MBR records, ...)
 * are IMG_FIELD_VERBOSE (`info -v`) or IMG_FIELD_JSON; JSON keys are unique
 * across sections.
 *
 * Not here: reading or checking anything (partimage.c reads the structures
 * and checks their byte sums before they are printed).
 */
#include <stdio.h>
#include <string.h>

#include "partimage.h"

#define PI_MBR_FIELDS 1164   /* bytes of a CMbr record that hold fields */
#define PI_MAX_MBR_SHOWN 4
#define PI_TEXT_MAX 4096     /* longest text field: the description */

/* Length of the well-formed UTF-8 sequence of 2 to 4 bytes at p[0..n), or 0. */
static size_t utf8_sequence(const uint8_t *p, size_t n)
{
	size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (len == 0 || len > n || p[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* A NUL-padded text field as imagebackup shows it: UTF-8, with '?' for
 * control characters and bytes that are not UTF-8. */
static void utf8_text(char *out, size_t outsz, const uint8_t *p, size_t n)
{
	size_t len = 0, o = 0;
	while (len < n && p[len])
		len++;
	for (size_t i = 0; i < len && o + 5 < outsz;) {
		size_t seq = p[i] >= 0x80 ? utf8_sequence(p + i, len - i) : 0;
		if (seq) {
			memcpy(out + o, p + i, seq);
			o += seq;
			i += seq;
			continue;
		}
		out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
		i++;
	}
	out[o] = 0;
}

/* A text field, printed in double quotes. */
static img_field *text_field(img_image *im, const char *label, const char *key, const uint8_t *p,
			     size_t n)
{
	char t[PI_TEXT_MAX * 4 + 8];
	utf8_text(t, sizeof t, p, n);
	return fmt_field_quoted(im, label, key, t);
}

static const char *compression_name(uint32_t c)
{
	switch (c) {
	case 0: return "none";
	case 1: return "gzip";
	case 2: return "bzip2";
	case 3: return "lzo";
	default: return "unknown";
	}
}

static void u32f(img_image *im, const char *label, const char *key, const uint8_t *p)
{
	fmt_field_num(im, label, key, get_le32(p), "%u", get_le32(p));
}

static void u64f(img_image *im, const char *label, const char *key, const uint8_t *p)
{
	fmt_field_num(im, label, key, get_le64(p), "%llu", (unsigned long long)get_le64(p));
}

/* imagebackup's hex rule: below 10 in decimal, else 0x and lower-case hex. */
static void hexf(img_image *im, const char *label, const char *key, uint64_t v)
{
	if (v < 10)
		fmt_field_num(im, label, key, v, "%llu", (unsigned long long)v);
	else
		fmt_field_num(im, label, key, v, "0x%llx", (unsigned long long)v);
}

static void sum_field(img_image *im, const char *key, uint32_t sum)
{
	fmt_level(fmt_field_num(im, "header sum", key, sum, "0x%08x", sum), IMG_FIELD_VERBOSE);
}

/* The title and the Volume Header section. */
void pi_add_volume_fields(img_image *im, const uint8_t *vh)
{
	im->field_list.title = "PartImage";
	im->field_list.label_width = 0;
	im->field_list.separator = ": ";
	fmt_section(im, "Volume Header");
	text_field(im, "version", "volume_version", vh + 32, 64);
	u32f(im, "volume", "volume_number", vh + 96);
	hexf(im, "identifier", "identificator", get_le64(vh + 100));
	fmt_level(text_field(im, "magic", "volume_magic", vh, 32), IMG_FIELD_VERBOSE);
}

/* CMainHeader; imagebackup shows the partimage version (at 9728) under the
 * name of the uname version (at 9410), which imgbk shows with -v. */
void pi_add_main_fields(img_image *im, const uint8_t *h, uint64_t part_size)
{
	fmt_section(im, "Main Header");
	text_field(im, "filesystem", "filesystem", h, 512);
	text_field(im, "description", "description", h + 512, 4096);
	text_field(im, "device", "original_device", h + 4608, 512);
	text_field(im, "firstpath", "original_filepath", h + 5120, 4095);
	text_field(im, "sysname", "sysname", h + 9215, 65);
	text_field(im, "nodename", "node_name", h + 9280, 65);
	text_field(im, "release", "release", h + 9345, 65);
	text_field(im, "version", "main_version", h + 9728, 64);
	text_field(im, "machine", "machine", h + 9475, 65);
	uint32_t c = get_le32(h + 9540);
	fmt_field_num(im, "compression", "compression", c, "%u", c);
	u32f(im, "flags", "main_flags", h + 9544);
	const uint8_t *d = h + 9548;  /* portable tm: sec, min, hour, mday, mon, year-1900 */
	fmt_field(im, "datetime", "creation_date", "%04u-%02u-%02u %02u:%02u:%02u",
		  (get_le32(d + 20) + 1900) % 100000, (get_le32(d + 16) + 1) % 100, get_le32(d + 12) % 100,
		  get_le32(d + 8) % 100, get_le32(d + 4) % 100, get_le32(d) % 100);
	fmt_field_num(im, "part_size", "partition_size", part_size, "%llu",
		      (unsigned long long)part_size);
	text_field(im, "hostname", "hostname", h + 9600, 128);
	u32f(im, "mbr_count", "mbr_count", h + 9792);
	u32f(im, "mbr_size", "mbr_size", h + 9796);
	u32f(im, "encrypt_algo", "encryption", h + 9800);
	fmt_level(text_field(im, "uname version", "uname_version", h + 9410, 65), IMG_FIELD_VERBOSE);
	fmt_level(fmt_field_quoted(im, "compression name", "compression_name", compression_name(c)),
		  IMG_FIELD_VERBOSE);
	sum_field(im, "main_header_sum", get_le32(h + PI_STRUCT));
	char machine[300], sysname[300], release[300];
	utf8_text(machine, sizeof machine, h + 9475, 65);
	utf8_text(sysname, sizeof sysname, h + 9215, 65);
	utf8_text(release, sizeof release, h + 9345, 65);
	fmt_level(fmt_field(im, "system", "system", "%s / %s / %s", machine, sysname, release),
		  IMG_FIELD_JSON);
}

/* CMbr record number index (0-based) of `size` bytes; the first few, with -v. */
void pi_add_mbr_fields(img_image *im, uint32_t index, const uint8_t *p, uint32_t size)
{
	static const char *const titles[PI_MAX_MBR_SHOWN] = { "MBR Record 1", "MBR Record 2",
							      "MBR Record 3", "MBR Record 4" };
	static const char *const keys[PI_MAX_MBR_SHOWN][4] = {
		{ "mbr1_device", "mbr1_blocks", "mbr1_model", "mbr1_sum" },
		{ "mbr2_device", "mbr2_blocks", "mbr2_model", "mbr2_sum" },
		{ "mbr3_device", "mbr3_blocks", "mbr3_model", "mbr3_sum" },
		{ "mbr4_device", "mbr4_blocks", "mbr4_model", "mbr4_sum" },
	};
	if (index >= PI_MAX_MBR_SHOWN || size < PI_MBR_FIELDS)
		return;
	fmt_level(fmt_section(im, titles[index]), IMG_FIELD_VERBOSE);
	text_field(im, "device", keys[index][0], p + 516, 512);
	fmt_field_num(im, "size (KiB)", keys[index][1], get_le64(p + 1028), "%llu",
		      (unsigned long long)get_le64(p + 1028));
	text_field(im, "model", keys[index][2], p + 1036, 128);
	fmt_field_num(im, "data sum", keys[index][3], get_le32(p + 512), "0x%08x", get_le32(p + 512));
}

/* CLocalHeader: imagebackup lists the label first. */
void pi_add_local_fields(img_image *im, const uint8_t *h)
{
	fmt_section(im, "Local Header");
	text_field(im, "label", "label", h + 40, 64);
	u64f(im, "blockSize", "block_size", h);
	u64f(im, "usedBlocks", "used_blocks", h + 8);
	u64f(im, "blockCount", "blocks_count", h + 16);
	u64f(im, "bitmapSize", "bitmap_size", h + 24);
	u64f(im, "badBlocks", "bad_blocks_count", h + 32);
	sum_field(im, "local_header_sum", get_le32(h + PI_STRUCT));
}

/* ---- the "<FS> Info Header" section ----------------------------------------- */

enum pi_kind { PI_U8, PI_U16, PI_U32, PI_U64, PI_HEX32, PI_HEX64, PI_UUID };

/* One member of an info header: label (partimage's name), JSON key, byte
 * offset, and how it is read and shown. */
struct pi_member {
	const char *label, *key;
	uint16_t off;
	uint8_t kind;
};

/* CInfoExt2Header; the uuid as stored, upper-case like imagebackup's. */
static const struct pi_member ext2_members[] = {
	{ "groupsCount", "ext2_groups_count", 0, PI_U32 },
	{ "totalBlocksCount", "ext2_total_blocks", 4, PI_U32 },
	{ "firstBlock", "ext2_first_block", 8, PI_U32 },
	{ "blockSize", "ext2_block_size", 12, PI_U32 },
	{ "logicalBlocksPerExt2Block", "ext2_logical_per_block", 16, PI_U32 },
	{ "blocksPerGroup", "ext2_blocks_per_group", 20, PI_U32 },
	{ "featureCompat", "ext2_feature_compat", 24, PI_HEX32 },
	{ "featureIncompat", "ext2_feature_incompat", 28, PI_HEX32 },
	{ "featureRoCompat", "ext2_feature_ro_compat", 32, PI_HEX32 },
	{ "revLevel", "ext2_rev_level", 36, PI_U32 },
	{ "uuid", "ext2_uuid", 40, PI_UUID },
	{ "descBlocks", "ext2_desc_blocks", 56, PI_U32 },
	{ "descPerBlock", "ext2_desc_per_block", 60, PI_U32 },
	{ NULL, NULL, 0, 0 },
};

/* CInfoFatHeader: eleven u32 and one unused, three u16, two u8, one u16. */
static const struct pi_member fat_members[] = {
	{ "totalSectorsCount", "fat_total_sectors", 0, PI_U32 },
	{ "clustersCount", "fat_clusters", 4, PI_U32 },
	{ "rootDirSectors", "fat_root_dir_sectors", 8, PI_U32 },
	{ "rootEntriesCount", "fat_root_entries_count", 12, PI_U32 },
	{ "sectorsPerFAT", "fat_sectors_per_fat", 16, PI_U32 },
	{ "dataSectors", "fat_data_sectors", 20, PI_U32 },
	{ "fileSystem", "fat_type", 24, PI_U32 },
	{ "usedClusters", "fat_used_clusters", 28, PI_U32 },
	{ "damagedClusters", "fat_damaged_clusters", 32, PI_U32 },
	{ "freeClusters", "fat_free_clusters", 36, PI_U32 },
	{ "bytesPerFatEntry", "fat_bytes_per_entry", 40, PI_U32 },
	{ "bytesPerSector", "fat_bytes_per_sector", 48, PI_U16 },
	{ "reservedSectors", "fat_reserved_sectors", 50, PI_U16 },
	{ "rootEntries", "fat_root_entries", 52, PI_U16 },
	{ "sectorsPerCluster", "fat_sectors_per_cluster", 54, PI_U8 },
	{ "numberOfFATs", "fat_number_of_fats", 55, PI_U8 },
	{ "fsInfoSector", "fat_fsinfo_sector", 56, PI_U16 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member ntfs_members[] = {
	{ "totalSectorsCount", "ntfs_total_sectors", 0, PI_U64 },
	{ "LCNOfMftDataAttrib", "ntfs_mft_lcn", 8, PI_HEX64 },
	{ "FileRecordSize", "ntfs_file_record_size", 16, PI_U32 },
	{ "clusterSize", "ntfs_cluster_size", 20, PI_U32 },
	{ "bytesPerSector", "ntfs_bytes_per_sector", 24, PI_U16 },
	{ "ntfsVersion", "ntfs_version", 26, PI_U16 },
	{ "sectorsPerCluster", "ntfs_sectors_per_cluster", 28, PI_U8 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member reiser_members[] = {
	{ "version", "reiser_version", 0, PI_U32 },
	{ "bitmapBlocksCount", "reiser_bitmap_blocks", 4, PI_U32 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member hpfs_members[] = {
	{ "bitmapPointer", "hpfs_bitmap_pointer", 0, PI_U32 },
	{ "bitmapQuadBlocksCount", "hpfs_bitmap_quad_blocks", 4, PI_U32 },
	{ "hpfsVersion", "hpfs_version", 8, PI_U8 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member jfs_members[] = {
	{ "officialBlocksCount", "jfs_official_blocks", 0, PI_U64 },
	{ "mappedBlocksByBitmap", "jfs_mapped_blocks", 8, PI_U64 },
	{ "allocTreeMaxLevel", "jfs_alloc_tree_max_level", 16, PI_U32 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member xfs_members[] = {
	{ "AgCount", "xfs_ag_count", 0, PI_U32 },
	{ "AgBlocksCount", "xfs_ag_blocks", 4, PI_U32 },
	{ NULL, NULL, 0, 0 },
};

static const struct pi_member hfs_members[] = {
	{ "allocCount", "hfs_alloc_count", 0, PI_U64 },
	{ "bitmapSectLocation", "hfs_bitmap_sector", 8, PI_U64 },
	{ "freeAllocs", "hfs_free_allocs", 16, PI_U64 },
	{ "firstAllocBlock", "hfs_first_alloc_block", 24, PI_U64 },
	{ "allocSize", "hfs_alloc_size", 32, PI_U32 },
	{ "blocksPerAlloc", "hfs_blocks_per_alloc", 36, PI_U32 },
	{ NULL, NULL, 0, 0 },
};

/* CInfoAfsHeader (BeFS the same): seven u32, then the u64 bitmapStart, read
 * at byte 28 as imagebackup reads it. */
static const struct pi_member afs_members[] = {
	{ "byteOrder", "afs_byte_order", 0, PI_U32 },
	{ "blockShift", "afs_block_shift", 4, PI_U32 },
	{ "blockPerGroup", "afs_blocks_per_group", 8, PI_U32 },
	{ "allocGrpShift", "afs_alloc_group_shift", 12, PI_U32 },
	{ "allocGroupCount", "afs_alloc_groups", 16, PI_U32 },
	{ "flags", "afs_flags", 20, PI_HEX32 },
	{ "bootLoaderSize", "afs_boot_loader_size", 24, PI_U32 },
	{ "bitmapStart", "afs_bitmap_start", 28, PI_U64 },
	{ NULL, NULL, 0, 0 },
};

/* CInfoUfsHeader: eight u32, then the u64 dataFrags. */
static const struct pi_member ufs_members[] = {
	{ "cylinderGroupsCount", "ufs_cylinder_groups", 0, PI_U32 },
	{ "fs_fpg", "ufs_fs_fpg", 4, PI_U32 },
	{ "fs_cgoffset", "ufs_fs_cgoffset", 8, PI_U32 },
	{ "fs_cgmask", "ufs_fs_cgmask", 12, PI_U32 },
	{ "fs_cblkno", "ufs_fs_cblkno", 16, PI_U32 },
	{ "fragsPerBlock", "ufs_frags_per_block", 20, PI_U32 },
	{ "cylinderGroupSize", "ufs_cylinder_group_size", 24, PI_U32 },
	{ "basicBlockSize", "ufs_basic_block_size", 28, PI_U32 },
	{ "dataFrags", "ufs_data_frags", 32, PI_U64 },
	{ NULL, NULL, 0, 0 },
};

static void member_field(img_image *im, const struct pi_member *m, const uint8_t *info)
{
	const uint8_t *p = info + m->off;
	switch (m->kind) {
	case PI_U8: fmt_field_num(im, m->label, m->key, p[0], "%u", p[0]); break;
	case PI_U16: fmt_field_num(im, m->label, m->key, get_le16(p), "%u", get_le16(p)); break;
	case PI_U32: fmt_field_num(im, m->label, m->key, get_le32(p), "%u", get_le32(p)); break;
	case PI_U64:
		fmt_field_num(im, m->label, m->key, get_le64(p), "%llu", (unsigned long long)get_le64(p));
		break;
	case PI_HEX32: hexf(im, m->label, m->key, get_le32(p)); break;
	case PI_HEX64: hexf(im, m->label, m->key, get_le64(p)); break;
	case PI_UUID:
		fmt_field(im, m->label, m->key,
			  "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", p[0],
			  p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13],
			  p[14], p[15]);
		break;
	}
}

/* Which info header a filesystem name has, as imagebackup picks it. */
static const struct {
	const char *name;
	int prefix;          /* name is a prefix of the filesystem name, else equal */
	const char *title;
	const struct pi_member *members;
} fs_table[] = {
	{ "afs", 0, "AFS Info Header", afs_members },
	{ "befs", 0, "BEFS Info Header", afs_members },
	{ "fat", 1, "FAT Info Header", fat_members },
	{ "ext", 1, "Ext2/3 Info Header", ext2_members },
	{ "hfs", 1, "HFS Info Header", hfs_members },
	{ "hpfs", 0, "HPFS Info Header", hpfs_members },
	{ "jfs", 0, "JFS Info Header", jfs_members },
	{ "ntfs", 0, "NTFS Info Header", ntfs_members },
	{ "reiserfs", 1, "ReiserFS Info Header", reiser_members },
	{ "ufs", 0, "UFS Info Header", ufs_members },
	{ "xfs", 0, "XFS Info Header", xfs_members },
};

static int fs_matches(const char *fs, size_t i)
{
	if (fs_table[i].prefix)
		return strncmp(fs, fs_table[i].name, strlen(fs_table[i].name)) == 0;
	return strcmp(fs, fs_table[i].name) == 0;
}

/* The info block of filesystem fs; another filesystem gets an empty "Info Header". */
void pi_add_info_fields(img_image *im, const char *fs, const uint8_t *info, uint32_t stored_sum)
{
	size_t i, n = sizeof fs_table / sizeof fs_table[0];
	for (i = 0; i < n && !fs_matches(fs, i); i++)
		;
	fmt_section(im, i < n ? fs_table[i].title : "Info Header");
	for (const struct pi_member *m = i < n ? fs_table[i].members : NULL; m && m->label; m++)
		member_field(im, m, info);
	fmt_level(fmt_field(im, "filesystem", "info_filesystem", "%s", fs), IMG_FIELD_JSON);
	sum_field(im, "info_sum", stored_sum);
}

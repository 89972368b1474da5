/*
 * formats/partimage_info.c - the header print of partimage images for
 * `imgbk info`: the volume header, main header, MBR records, local header,
 * and the 16384-byte filesystem info block decoded per filesystem, as far as
 * partimage 0.6.x's structures are known (CInfoExt2Header, CInfoFatHeader,
 * CInfoNtfsHeader, CInfoReiserHeader, CInfoHpfsHeader, CInfoJfsHeader,
 * CInfoXfsHeader, CInfoHfsHeader, CInfoAfsHeader; little-endian, every field
 * at its natural alignment). For a filesystem whose layout is not known (ufs,
 * befs, others) only its name and the raw size are shown, nothing is guessed.
 * Labels are padded to 22 columns; JSON keys are unique across sections.
 *
 * Not here: reading or checking anything (partimage.c reads the structures
 * and checks their byte sums before they are printed).
 */
#include <stdio.h>
#include <string.h>

#include "partimage.h"

#define PI_MBR_FIELDS 1164   /* bytes of a CMbr record that hold fields */
#define PI_MAX_MBR_SHOWN 4

/* A NUL-padded text field of at most n bytes as printable ASCII ('?' for others). */
void pi_copy_text(char *out, size_t outsz, const uint8_t *p, size_t n)
{
	size_t len = 0;
	while (len < n && p[len])
		len++;
	if (len >= outsz)
		len = outsz - 1;
	for (size_t i = 0; i < len; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[len] = 0;
}

static void text_field(img_image *im, const char *label, const char *key, const uint8_t *p, size_t n)
{
	char t[96];
	pi_copy_text(t, sizeof t, p, n);
	fmt_field(im, label, key, "%s", t);
}

static void size_field(img_image *im, const char *label, const char *key, uint64_t v, int human)
{
	char a[40], b[40];
	img_fmt_thousands(a, sizeof a, v);
	img_fmt_human(b, sizeof b, v);
	if (human)
		fmt_field_num(im, label, key, v, "%s (%s)", a, b);
	else
		fmt_field_num(im, label, key, v, "%s", a);
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

/* The first section: its title is the list's title. */
void pi_add_volume_fields(img_image *im, const uint8_t *vh)
{
	im->field_list.title = "Volume Header";
	im->field_list.label_width = 22;
	im->field_list.separator = "";
	text_field(im, "magic", "volume_magic", vh, 32);
	text_field(im, "version", "volume_version", vh + 32, 64);
	fmt_field_num(im, "volume number", "volume_number", get_le32(vh + 96), "%u", get_le32(vh + 96));
	uint64_t id = get_le64(vh + 100);
	fmt_field_num(im, "identificator", "identificator", id, "%llu (0x%016llX)",
		      (unsigned long long)id, (unsigned long long)id);
}

void pi_add_main_fields(img_image *im, const uint8_t *h, const char *fs, uint64_t part_size)
{
	char sys[3][40];
	fmt_section(im, "Main Header");
	fmt_field(im, "filesystem", "filesystem", "%s", fs);
	text_field(im, "description", "description", h + 512, 4096);
	text_field(im, "original device", "original_device", h + 4608, 512);
	text_field(im, "original filepath", "original_filepath", h + 5120, 4095);
	pi_copy_text(sys[0], sizeof sys[0], h + 9475, 65);  /* machine */
	pi_copy_text(sys[1], sizeof sys[1], h + 9215, 65);  /* sysname */
	pi_copy_text(sys[2], sizeof sys[2], h + 9345, 65);  /* release */
	fmt_field(im, "system of the backup", "system", "%s / %s / %s", sys[0], sys[1], sys[2]);
	text_field(im, "node name", "node_name", h + 9280, 65);
	text_field(im, "hostname", "hostname", h + 9600, 128);
	uint32_t c = get_le32(h + 9540);
	fmt_field_num(im, "compression", "compression", c, "%u (%s)", c, compression_name(c));
	fmt_field_num(im, "flags", "main_flags", get_le32(h + 9544), "0x%x", get_le32(h + 9544));
	const uint8_t *d = h + 9548;  /* portable tm: sec, min, hour, mday, mon, year-1900 */
	fmt_field(im, "creation date", "creation_date", "%04u-%02u-%02u %02u:%02u:%02u",
		  (get_le32(d + 20) + 1900) % 100000, (get_le32(d + 16) + 1) % 100, get_le32(d + 12) % 100,
		  get_le32(d + 8) % 100, get_le32(d + 4) % 100, get_le32(d) % 100);
	size_field(im, "partition size", "partition_size", part_size, 1);
	text_field(im, "version", "main_version", h + 9728, 64);
	fmt_field_num(im, "MBR count", "mbr_count", get_le32(h + 9792), "%u", get_le32(h + 9792));
	fmt_field_num(im, "MBR record size", "mbr_size", get_le32(h + 9796), "%u", get_le32(h + 9796));
	fmt_field_num(im, "encryption", "encryption", get_le32(h + 9800), "%u (%s)", get_le32(h + 9800),
		      get_le32(h + 9800) ? "unknown" : "none");
	fmt_field_num(im, "header sum", "main_header_sum", get_le32(h + PI_STRUCT), "0x%08x",
		      get_le32(h + PI_STRUCT));
}

/* CMbr record number index (0-based) of `size` bytes; the first few are shown. */
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
	fmt_section(im, titles[index]);
	text_field(im, "device", keys[index][0], p + 516, 512);
	fmt_field_num(im, "size (KiB)", keys[index][1], get_le64(p + 1028), "%llu",
		      (unsigned long long)get_le64(p + 1028));
	text_field(im, "model", keys[index][2], p + 1036, 128);
	fmt_field_num(im, "data sum", keys[index][3], get_le32(p + 512), "0x%08x", get_le32(p + 512));
}

void pi_add_local_fields(img_image *im, const uint8_t *h)
{
	fmt_section(im, "Local Header");
	fmt_field_num(im, "block size", "block_size", get_le64(h), "%llu", (unsigned long long)get_le64(h));
	size_field(im, "used blocks", "used_blocks", get_le64(h + 8), 0);
	size_field(im, "blocks count", "blocks_count", get_le64(h + 16), 0);
	size_field(im, "bitmap size", "bitmap_size", get_le64(h + 24), 0);
	size_field(im, "bad blocks count", "bad_blocks_count", get_le64(h + 32), 0);
	text_field(im, "label", "label", h + 40, 64);
	fmt_field_num(im, "header sum", "local_header_sum", get_le32(h + PI_STRUCT), "0x%08x",
		      get_le32(h + PI_STRUCT));
}

/* ---- the "<FS> Info Header" section ----------------------------------------- */

static void u32f(img_image *im, const char *label, const char *key, const uint8_t *p)
{
	fmt_field_num(im, label, key, get_le32(p), "%u", get_le32(p));
}

static void u64f(img_image *im, const char *label, const char *key, const uint8_t *p)
{
	fmt_field_num(im, label, key, get_le64(p), "%llu", (unsigned long long)get_le64(p));
}

static void hex32f(img_image *im, const char *label, const char *key, const uint8_t *p)
{
	fmt_field_num(im, label, key, get_le32(p), "0x%08x", get_le32(p));
}

static void ext2_fields(img_image *im, const uint8_t *p)
{
	u32f(im, "groups count", "ext2_groups_count", p);
	u32f(im, "total blocks", "ext2_total_blocks", p + 4);
	u32f(im, "first block", "ext2_first_block", p + 8);
	u32f(im, "fs block size", "ext2_block_size", p + 12);
	u32f(im, "blocks per fs block", "ext2_logical_per_block", p + 16);
	u32f(im, "blocks per group", "ext2_blocks_per_group", p + 20);
	hex32f(im, "feature compat", "ext2_feature_compat", p + 24);
	hex32f(im, "feature incompat", "ext2_feature_incompat", p + 28);
	hex32f(im, "feature ro compat", "ext2_feature_ro_compat", p + 32);
	u32f(im, "revision level", "ext2_rev_level", p + 36);
	const uint8_t *u = p + 40;
	fmt_field(im, "uuid", "ext2_uuid",
		  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		  u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	u32f(im, "descriptor blocks", "ext2_desc_blocks", p + 56);
	u32f(im, "descriptors per block", "ext2_desc_per_block", p + 60);
}

static void fat_fields(img_image *im, const uint8_t *p)
{
	u32f(im, "total sectors", "fat_total_sectors", p);
	u32f(im, "clusters", "fat_clusters", p + 4);
	u32f(im, "root dir sectors", "fat_root_dir_sectors", p + 8);
	u32f(im, "root entries", "fat_root_entries_count", p + 12);
	u32f(im, "sectors per FAT", "fat_sectors_per_fat", p + 16);
	u32f(im, "data sectors", "fat_data_sectors", p + 20);
	uint32_t t = get_le32(p + 24);  /* partimage's FS_FAT12/16/32 codes */
	fmt_field_num(im, "FAT type", "fat_type", t, "%u (%s)", t,
		      t == 3 ? "FAT12" : t == 4 ? "FAT16" : t == 5 ? "FAT32" : "unknown");
	u32f(im, "used clusters", "fat_used_clusters", p + 28);
	u32f(im, "damaged clusters", "fat_damaged_clusters", p + 32);
	u32f(im, "free clusters", "fat_free_clusters", p + 36);
	u32f(im, "bytes per FAT entry", "fat_bytes_per_entry", p + 40);
	fmt_field_num(im, "bytes per sector", "fat_bytes_per_sector", get_le16(p + 48), "%u",
		      get_le16(p + 48));
	fmt_field_num(im, "reserved sectors", "fat_reserved_sectors", get_le16(p + 50), "%u",
		      get_le16(p + 50));
	fmt_field_num(im, "sectors per cluster", "fat_sectors_per_cluster", p[54], "%u", p[54]);
	fmt_field_num(im, "number of FATs", "fat_number_of_fats", p[55], "%u", p[55]);
	fmt_field_num(im, "fs info sector", "fat_fsinfo_sector", get_le16(p + 56), "%u", get_le16(p + 56));
}

static void ntfs_fields(img_image *im, const uint8_t *p)
{
	u64f(im, "total sectors", "ntfs_total_sectors", p);
	u64f(im, "MFT LCN", "ntfs_mft_lcn", p + 8);
	u32f(im, "file record size", "ntfs_file_record_size", p + 16);
	u32f(im, "cluster size", "ntfs_cluster_size", p + 20);
	fmt_field_num(im, "bytes per sector", "ntfs_bytes_per_sector", get_le16(p + 24), "%u",
		      get_le16(p + 24));
	fmt_field_num(im, "ntfs version", "ntfs_version", get_le16(p + 26), "0x%04x", get_le16(p + 26));
	fmt_field_num(im, "sectors per cluster", "ntfs_sectors_per_cluster", p[28], "%u", p[28]);
}

static void reiser_fields(img_image *im, const uint8_t *p)
{
	u32f(im, "version", "reiser_version", p);
	u32f(im, "bitmap blocks", "reiser_bitmap_blocks", p + 4);
}

static void hpfs_fields(img_image *im, const uint8_t *p)
{
	u32f(im, "bitmap pointer", "hpfs_bitmap_pointer", p);
	u32f(im, "bitmap quad blocks", "hpfs_bitmap_quad_blocks", p + 4);
	fmt_field_num(im, "hpfs version", "hpfs_version", p[8], "%u", p[8]);
}

static void jfs_fields(img_image *im, const uint8_t *p)
{
	u64f(im, "official blocks", "jfs_official_blocks", p);
	u64f(im, "blocks in bitmap", "jfs_mapped_blocks", p + 8);
	u32f(im, "alloc tree max level", "jfs_alloc_tree_max_level", p + 16);
}

static void xfs_fields(img_image *im, const uint8_t *p)
{
	u32f(im, "AG count", "xfs_ag_count", p);
	u32f(im, "AG blocks", "xfs_ag_blocks", p + 4);
}

static void hfs_fields(img_image *im, const uint8_t *p)
{
	u64f(im, "allocation blocks", "hfs_alloc_count", p);
	u64f(im, "bitmap sector", "hfs_bitmap_sector", p + 8);
	u64f(im, "free allocations", "hfs_free_allocs", p + 16);
	u64f(im, "first alloc block", "hfs_first_alloc_block", p + 24);
	u32f(im, "allocation size", "hfs_alloc_size", p + 32);
	u32f(im, "blocks per alloc", "hfs_blocks_per_alloc", p + 36);
}

/* CInfoAfsHeader: seven u32 fields, then a u64 whose offset depends on the
 * creator's alignment (28 or 32): left out. */
static void afs_fields(img_image *im, const uint8_t *p)
{
	hex32f(im, "byte order", "afs_byte_order", p);
	u32f(im, "block shift", "afs_block_shift", p + 4);
	u32f(im, "blocks per group", "afs_blocks_per_group", p + 8);
	u32f(im, "alloc group shift", "afs_alloc_group_shift", p + 12);
	u32f(im, "alloc groups", "afs_alloc_groups", p + 16);
	hex32f(im, "flags", "afs_flags", p + 20);
	u32f(im, "boot loader size", "afs_boot_loader_size", p + 24);
}

static const struct {
	const char *prefix;  /* szFileSystem starts with this */
	const char *title;
	void (*decode)(img_image *im, const uint8_t *p);
} fs_table[] = {
	{ "ext2", "Ext2 Info Header", ext2_fields },
	{ "ext3", "Ext3 Info Header", ext2_fields },
	{ "reiserfs", "ReiserFS Info Header", reiser_fields },
	{ "fat", "FAT Info Header", fat_fields },
	{ "vfat", "FAT Info Header", fat_fields },
	{ "ntfs", "NTFS Info Header", ntfs_fields },
	{ "hpfs", "HPFS Info Header", hpfs_fields },
	{ "jfs", "JFS Info Header", jfs_fields },
	{ "xfs", "XFS Info Header", xfs_fields },
	{ "hfs", "HFS Info Header", hfs_fields },
	{ "afs", "AFS Info Header", afs_fields },
	{ "ufs", "UFS Info Header", NULL },
	{ "befs", "BeFS Info Header", NULL },
};

void pi_add_info_fields(img_image *im, const char *fs, const uint8_t *info, uint32_t stored_sum)
{
	size_t i, n = sizeof fs_table / sizeof fs_table[0];
	for (i = 0; i < n; i++)
		if (strncmp(fs, fs_table[i].prefix, strlen(fs_table[i].prefix)) == 0)
			break;
	fmt_section(im, i < n ? fs_table[i].title : "Filesystem Info Header");
	fmt_field(im, "filesystem", "info_filesystem", "%s", fs);
	if (i < n && fs_table[i].decode)
		fs_table[i].decode(im, info);
	else
		fmt_field_num(im, "raw size", "info_raw_size", PI_STRUCT,
			      "%u bytes (layout not decoded)", PI_STRUCT);
	fmt_field_num(im, "info sum", "info_sum", stored_sum, "0x%08x", stored_sum);
}

/*
 * formats/partimage_info.c - the "<FS> Info Header" section of `imgbk info`
 * for partimage images: the 16384-byte filesystem info block decoded per
 * filesystem, as far as partimage 0.6.x's structures are known (CInfoExt2Header,
 * CInfoFatHeader, CInfoNtfsHeader, CInfoReiserHeader, CInfoHpfsHeader,
 * CInfoJfsHeader, CInfoXfsHeader, CInfoHfsHeader, CInfoAfsHeader; all
 * little-endian, every field at its natural alignment). For a filesystem
 * whose layout is not known (ufs, befs, others) only its name and the raw
 * size are shown, nothing is guessed.
 *
 * Not here: reading or checking the block (partimage.c checks its byte sum).
 */
#include <stdio.h>
#include <string.h>

#include "fmt.h"

#define PI_INFO_SIZE 16384

void pi_add_info_fields(img_image *im, const char *fs, const uint8_t *info, uint32_t stored_sum);

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
	u32f(im, "FAT type", "fat_type", p + 24);
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
		fmt_field_num(im, "raw size", "info_raw_size", PI_INFO_SIZE,
			      "%u bytes (layout not decoded)", PI_INFO_SIZE);
	fmt_field_num(im, "info sum", "info_sum", stored_sum, "0x%08x", stored_sum);
}

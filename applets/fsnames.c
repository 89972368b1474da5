/*
 * applets/fsnames.c - filesystem name -> (read-only check command, mount
 * type): one table for partclone, ntfsclone and partimage names. Every
 * check command is one that only reads (-n, --readonly, --check, ...).
 * Not here: the hint sentences (applets/mount.c prints them).
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "fsnames.h"

/* A name ending in '*' matches every name that starts with the part before it. */
static const struct fs_tools table[] = {
	/* partclone (header field "fs") and ntfsclone */
	{ "EXTFS", "fsck.ext4 -n", "ext4", NULL },
	{ "EXT2", "fsck.ext4 -n", "ext4", NULL },
	{ "EXT3", "fsck.ext4 -n", "ext4", NULL },
	{ "EXT4", "fsck.ext4 -n", "ext4", NULL },
	{ "NTFS", "ntfsfix -n", "ntfs-3g", "the kernel driver works too: mount -t ntfs3" },
	{ "FAT", "fsck.fat -n", "vfat", NULL },
	{ "FAT12", "fsck.fat -n", "vfat", NULL },
	{ "FAT16", "fsck.fat -n", "vfat", NULL },
	{ "FAT32", "fsck.fat -n", "vfat", NULL },
	{ "VFAT", "fsck.fat -n", "vfat", NULL },
	{ "EXFAT", "fsck.exfat -n", "exfat", NULL },
	{ "BTRFS", "btrfs check --readonly", "btrfs", NULL },
	{ "XFS", "xfs_repair -f -n", "xfs", "a log that needs replaying: add -o norecovery" },
	{ "F2FS", "fsck.f2fs --dry-run", "f2fs", NULL },
	{ "HFS Plus", "fsck.hfsplus -n", "hfsplus", NULL },
	{ "HFSPLUS", "fsck.hfsplus -n", "hfsplus", NULL },
	{ "HFS", "fsck.hfs -n", "hfs", NULL },
	{ "MINIX", "fsck.minix", "minix", NULL },
	{ "REISERFS", "reiserfsck --check", "reiserfs", NULL },
	{ "REISER4", "fsck.reiser4 --check", "reiser4", NULL },
	{ "JFS", "fsck.jfs -n", "jfs", NULL },
	{ "UFS", NULL, "ufs", "ufs needs its variant: add -o ufstype=ufs2 (or 44bsd, ...)" },
	{ "VMFS", NULL, NULL, "no kernel driver: use vmfs-fuse or vmfs6-fuse on the file" },
	{ "NILFS", NULL, "nilfs2", NULL },
	{ "NILFS2", NULL, "nilfs2", NULL },
	{ "APFS", "fsck.apfs", "apfs", "needs the out-of-tree apfs module" },
	{ "raw", NULL, NULL, "a raw (imager) image: the file is the whole device" },
	{ "dd", NULL, NULL, "a raw (dd) image: the file is the whole device" },
	/* partimage (szFileSystem) */
	{ "ext2fs", "fsck.ext2 -n", "ext4", NULL },
	{ "ext3fs", "fsck.ext3 -n", "ext4", NULL },
	{ "fat16", "fsck.fat -n", "vfat", NULL },
	{ "fat32", "fsck.fat -n", "vfat", NULL },
	{ "ntfs", "ntfsfix -n", "ntfs-3g", "the kernel driver works too: mount -t ntfs3" },
	{ "reiserfs-3*", "reiserfsck --check", "reiserfs", NULL },
	{ "reiserfs-4*", "fsck.reiser4 --check", "reiser4", NULL },
	{ "jfs", "fsck.jfs -n", "jfs", NULL },
	{ "xfs", "xfs_repair -f -n", "xfs", "a log that needs replaying: add -o norecovery" },
	{ "hfs", "fsck.hfs -n", "hfs", NULL },
	{ "ufs", NULL, "ufs", "ufs needs its variant: add -o ufstype=ufs2 (or 44bsd, ...)" },
	{ "hpfs", NULL, "hpfs", NULL },
	{ "befs", NULL, "befs", NULL },
	{ "afs", NULL, NULL, "AtheOS afs: Linux has no driver for it" },
};

static const struct fs_tools unknown = { "", NULL, NULL, NULL };

static int name_matches(const char *pattern, const char *fs)
{
	size_t n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '*')
		return strncasecmp(pattern, fs, n - 1) == 0;
	return strcasecmp(pattern, fs) == 0;
}

const struct fs_tools *fs_tools_lookup(const char *fs)
{
	if (!fs)
		return &unknown;
	/* an exact entry wins over one that differs only by case (HFS vs hfs: same tools) */
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strcmp(table[i].name, fs) == 0)
			return &table[i];
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (name_matches(table[i].name, fs))
			return &table[i];
	return &unknown;
}

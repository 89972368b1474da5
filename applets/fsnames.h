/*
 * applets/fsnames.h - the one table from a filesystem name as an image
 * stores it (partclone "EXTFS", "FAT32", "HFS Plus"; ntfsclone "NTFS";
 * partimage "ext3fs", "reiserfs-3.6", ...) to the tools that handle it: a
 * read-only check command and the type for `mount -t`. Used for the hints
 * that `imgbk mount` and vpartclone print. Not here: detecting filesystems.
 */
#ifndef IMGBK_FSNAMES_H
#define IMGBK_FSNAMES_H

struct fs_tools {
	const char *name;        /* as stored in the image (compared without case) */
	const char *fsck;        /* a check that changes nothing, e.g. "fsck.ext4 -n"; NULL: none */
	const char *mount_type;  /* for mount -t; NULL: let mount(8) find out */
	const char *note;        /* one line of advice, or NULL */
};

/* @return the tools for filesystem `fs`; never NULL (an unknown name gets
 * an entry with no fsck and no mount type). */
const struct fs_tools *fs_tools_lookup(const char *fs);

#endif

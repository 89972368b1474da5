/*
 * formats/czdir.h - internals of the Clonezilla image directory reader
 * (czdir.c: the folder, file names, the .sf and .parted files; czdisk.c:
 * the whole-disk view; czpt.c: MBR/EBR and GPT sectors). Internal to
 * libimgbk: unit tests include it to reach the parsers and builders.
 */
#ifndef IMGBK_FORMATS_CZDIR_H
#define IMGBK_FORMATS_CZDIR_H

#include <stddef.h>
#include <stdint.h>

#include "../imgbk.h"

/* Most partitions in one .sf file, and of a whole directory. */
#define CZ_MAX_PARTS 256
/* Largest table file read (.sf, .parted, lists). */
#define CZ_MAX_TEXT ((size_t)1 << 20)

struct img_czdir {
	char path[IMG_CZ_PATH_MAX];
	size_t ndisks, nparts;
	img_cz_disk disks[16];
	img_cz_part *parts;        /* nparts entries */
};

/*
 * Parse the text of `sfdisk -d` (NAME-pt.sf) into the disk header fields
 * and its partitions (disk index `disk_index`; names are the device paths
 * without /dev/, '/' as '-'). `file` names the file in messages.
 * @return IMG_OK, or IMG_E_CORRUPT with err naming the file and line.
 */
int cz_parse_sf(const char *text, const char *file, int disk_index, img_cz_disk *d,
		img_cz_part *parts, size_t max, size_t *n, img_err *err);

/* The disk size in sectors from `parted -s DEV unit s print` text.
 * @return IMG_OK and *sectors, or IMG_E_CORRUPT when there is no
 * "Disk ...: Ns" line. *gpt is set to 1/0 from "Partition Table:" (-1 when absent). */
int cz_parse_parted(const char *text, const char *file, uint64_t *sectors, int *gpt, img_err *err);

/* A file name split into what Clonezilla put in it. */
struct cz_name {
	char part[IMG_CZ_NAME_MAX];  /* "sda1" */
	char fs[24];                 /* "ext4", "ntfs", "dd", "" (partimage) */
	const char *tool;
	char compressor[8];
	int raw;
	int split_len;               /* letters of the split suffix (2, 3), 0 when none */
	int first_piece;             /* the suffix is aa / aaa, or there is none */
	int rank;                    /* Clonezilla's restore order: partimage 0, ntfs-img 1, ptcl 2, dd-img 3, old -img 4 */
	size_t base_len;             /* bytes of the name before the split suffix (and its dot) */
};

/* @return 1 when `file` names an image of partition `part`, filling *out. */
int cz_parse_image_name(const char *file, const char *part, struct cz_name *out);

/* ---- partition table sectors (czpt.c) ------------------------------------- */
/* An EBR to write at `lba`. */
struct cz_ebr {
	uint64_t lba;
	uint8_t sector[512];
};

/*
 * The EBR chain libfdisk writes for the logical partitions of `parts`
 * (those of disk `disk` numbered 5 and up, in number order) inside the
 * extended partition `ext`. *out is malloc'd (*n entries, may be 0).
 * @return IMG_OK, IMG_E_CORRUPT (a logical partition outside the extended
 * one, or no room for its EBR) with err, or IMG_E_IO.
 */
int cz_build_ebrs(const img_cz_part *parts, size_t nparts, int disk, const img_cz_part *ext,
		  const char *file, struct cz_ebr **out, size_t *n, img_err *err);

/* CHS bytes (head, sector|cyl-high, cyl-low) of `lba` as libfdisk writes them (255/63, capped). */
void cz_chs(uint64_t lba, uint8_t out[3]);

/*
 * Check a saved primary GPT (gpt1: LBA 0..33, len >= 17408) and build the
 * backup for a disk of `sectors`: `entries` (entries_len bytes, placed at
 * LBA *entries_lba) and `header` (512 B at LBA sectors-1). The primary
 * header's alternate LBA is set to sectors-1 when it says otherwise, and
 * then, as sfdisk does for a table without last-lba, its last usable LBA to
 * the last sector before the backup entries and the protective MBR entry's
 * size to the disk's (CRC recomputed). @return IMG_OK, or IMG_E_CORRUPT
 * naming `file` (IMG_E_USAGE when the partitions would not fit).
 */
int cz_gpt_backup(uint8_t *gpt1, size_t len, uint64_t sectors, const char *file,
		  uint8_t header[512], uint64_t *entries_lba, size_t *entries_len, img_err *err);

/* A GPT built from the .sf facts: `primary` is LBA 0 (protective MBR: only
 * its partition entry and 55AA set; the caller puts the boot code in), the
 * header at LBA 1 and the entries from LBA 2; `backup` is the backup
 * entries and header, at LBA backup_lba to the disk's last sector. */
struct cz_gpt {
	uint8_t *primary, *backup;
	size_t primary_len, backup_len;
	uint64_t backup_lba;
};

/*
 * The GPT sfdisk writes for `grep -v last-lba NAME-pt.sf` on a disk of
 * `sectors` sectors of d->sector_size bytes: d's label-id, first-lba and
 * table-length; partition N of `disk` in entry N-1 with its type, uuid,
 * start, size, attrs and name (UTF-16LE); last usable LBA = sectors - 2 -
 * the entry sectors; both headers and CRC-32s. *out is filled (free with
 * cz_gpt_free). @return IMG_OK, IMG_E_CORRUPT naming `file` (a field that is
 * not a GUID, attrs not understood, a partition number past the table),
 * IMG_E_USAGE (the partitions do not fit), IMG_E_IO.
 */
int cz_gpt_from_sf(const img_cz_disk *d, const img_cz_part *parts, size_t nparts, int disk,
		   uint64_t sectors, const char *file, struct cz_gpt *out, img_err *err);
void cz_gpt_free(struct cz_gpt *g);

/* "0FC63DAF-8483-4772-8E79-3D69D8477DE4" -> the 16 bytes GPT stores. @return 0 or -1. */
int cz_guid_bytes(const char *s, uint8_t out[16]);
/* libfdisk's attrs words -> the attribute bits. @return 0 or -1. */
int cz_gpt_attrs(const char *s, uint64_t *out);

#endif

/*
 * imgbk_czdir.h - Clonezilla image directories in libimgbk: open a backup
 * folder such as 2026-11-20-10-img/, list its disks and partitions with
 * their saved partition tables and image files, and read a saved disk as
 * one read-only virtual disk. Included by imgbk.h; part of the manual.
 *
 * HowTo (list, then serve the whole disk):
 *
 *     img_czdir *cz;
 *     img_err err;
 *     if (img_czdir_open("2026-11-20-10-img", &cz, &err) != IMG_OK) { print err.msg; }
 *     for (size_t i = 0; i < img_czdir_part_count(cz); i++) {
 *         const img_cz_part *p = img_czdir_part(cz, i);
 *         ... p->name, p->start, p->image (the first file of its image, or "") ...
 *     }
 *     img_image *ims[n] = { 0 };  img_err why[n];
 *     for each partition i of the disk: img_czdir_open_image(cz, i, NULL, &ro, &ims[i], &why[i]);
 *     img_cz_vdisk *vd;
 *     img_cz_vdisk_open(cz, 0, ims, why, &vd, &err);
 *     img_cz_vdisk_read_at(vd, off, buf, len, &got, &err);    (any thread)
 *     img_cz_vdisk_close(vd); then img_close every ims[i]; img_czdir_close(cz);
 *
 * What Clonezilla writes, and where these facts come from: ../shared
 * CLONEZILLA.md of the project notes; summarised at each declaration.
 */
#ifndef IMGBK_CZDIR_H
#define IMGBK_CZDIR_H

#include <stddef.h>
#include <stdint.h>

/* Partition table kinds (img_cz_disk.label). */
enum { IMG_CZ_LABEL_NONE = 0, IMG_CZ_LABEL_MBR = 1, IMG_CZ_LABEL_GPT = 2 };

/* What a partition is (img_cz_part.kind). */
enum {
	IMG_CZ_DATA = 0,      /* a filesystem saved as an image (or expected to be) */
	IMG_CZ_SWAP,          /* swap: never saved; swappt-NAME.info holds its UUID and label */
	IMG_CZ_EXTENDED,      /* an MBR extended partition: holds the logical ones */
	IMG_CZ_LVM_PV,        /* an LVM physical volume: its logical volumes are saved instead */
	IMG_CZ_LV,            /* an LVM logical volume (vg-lv): saved, but on no disk of the table */
};

#define IMG_CZ_NAME_MAX 64
#define IMG_CZ_PATH_MAX 1024

typedef struct img_cz_part {
	char name[IMG_CZ_NAME_MAX];   /* "sda1", "nvme0n1p2", "vg-root" */
	int disk;                     /* index of its disk, -1 when in no saved table (LVs) */
	unsigned number;              /* partition number in the table, 0 when none */
	uint64_t start, size;         /* in sectors of the disk; 0 when in no table */
	char type[40];                /* as the .sf file says: "83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4" */
	char uuid[40];                /* GPT partition GUID, "" for MBR */
	char label[80];               /* GPT name="...", "" when none */
	char attrs[80];               /* GPT attrs="...", "" when none */
	int bootable;                 /* MBR boot flag */
	int kind;                     /* IMG_CZ_* */
	int listed;                   /* named in the `parts` file */
	/* the image, found by its file name (every naming generation Clonezilla used) */
	char image[IMG_CZ_PATH_MAX + 256]; /* its first file (NAME.aa for a split set); "" when none */
	char fs[24];                  /* filesystem from the name: "ext4", "ntfs", "vfat", "dd"; "" unknown */
	const char *tool;             /* "partclone", "ntfsclone", "partclone.dd", "dd", "partimage", "" */
	char compressor[8];           /* suffix in the name: "zst", "gz", "uncomp", ...; "" when it says none */
	unsigned pieces;              /* files of the image (1, or the pieces of a split set) */
	uint64_t image_bytes;         /* their total size */
	int raw;                      /* the data is the raw partition (dd-ptcl-img, dd-img): no header */
	char swap_uuid[40];           /* from swappt-NAME.info, "" when none */
	char swap_label[64];
	/* LVM (lvm_vg_dev.list, lvm_logv.list): a PV's volume group and PV UUID;
	 * an LV's volume group and volume name (/dev/VG/LV); "" otherwise */
	char vg[64];
	char lv[64];
	char pv_uuid[48];
} img_cz_part;

typedef struct img_cz_disk {
	char name[IMG_CZ_NAME_MAX];   /* "sda", "nvme0n1" */
	int label;                    /* IMG_CZ_LABEL_* */
	char label_id[48];            /* "0x1c2f8a4e" or the disk GUID */
	uint64_t first_lba, last_lba; /* GPT usable range from the .sf, 0 when not given */
	uint32_t sector_size;         /* from the .sf, 512 when not given */
	uint32_t table_length;        /* GPT entries (table-length), 128 when not given */
	uint64_t sectors;             /* size of the disk in sectors (see img_czdir_open) */
	int sectors_from_parted;      /* sectors came from NAME-pt.parted (else a fallback) */
	int whole_disk;               /* listed in `disk`: the whole disk was saved (savedisk) */
} img_cz_disk;

typedef struct img_czdir img_czdir;

/*
 * Open a Clonezilla image directory: read `disk` and `parts`, each disk's
 * NAME-pt.sf (partitions) and NAME-pt.parted (its size: "Disk ...: Ns";
 * without it the size is last-lba + 34 for GPT, the end of the last
 * partition for MBR), swappt-*.info, lvm_logv.list, and find every
 * partition's image files by name.
 * @return IMG_OK and *out; IMG_E_FORMAT when `dir` is not a Clonezilla image
 *         directory (no `disk` and no `parts` file) or is encrypted
 *         (ecryptfs.info, gocryptfs.info: refused); IMG_E_CORRUPT when a
 *         table file is damaged; IMG_E_IO. err names the directory or file.
 */
int img_czdir_open(const char *dir, img_czdir **out, img_err *err);

void img_czdir_close(img_czdir *cz);

/* @return nonzero when `dir` holds a `disk` or `parts` file, an
 * ecryptfs.info or a gocryptfs.info (so img_czdir_open is the way to open it). */
int img_czdir_probe(const char *dir);

const char *img_czdir_path(const img_czdir *cz);
size_t img_czdir_disk_count(const img_czdir *cz);
const img_cz_disk *img_czdir_disk(const img_czdir *cz, size_t i);
/* Partitions in disk order (by disk, then start), then the LVs. */
size_t img_czdir_part_count(const img_czdir *cz);
const img_cz_part *img_czdir_part(const img_czdir *cz, size_t i);
/* @return the index of the partition called `name` ("sda2", "vg-root"), or -1. */
long img_czdir_find(const img_czdir *cz, const char *name);

/*
 * Open partition i's image (img_open on p->image) and, with `ro`, prepare
 * random reads (img_random_open). A partition without an image gives
 * IMG_E_MISSING with a message naming it and the directory.
 * @return IMG_OK and *out, or a negative status with err filled.
 */
int img_czdir_open_image(const img_czdir *cz, size_t i, const img_options *opt,
			 const img_random_options *ro, img_image **out, img_err *err);

/* ---- the whole disk ------------------------------------------------------ */
/*
 * A read-only virtual disk built from a saved disk, byte-identical to what
 * Clonezilla's restore writes on a zeroed disk of the same size:
 *   - LBA 0: NAME-mbr as saved (512 B); MBR disks: NAME-hidden-data-after-mbr
 *     at LBA 1 where it was saved; the first EBR's boot code from NAME?-ebr;
 *   - MBR logical partitions: the EBR chain rebuilt where and as libfdisk
 *     writes it (first EBR at the start of the extended partition, each next
 *     one first_lba sectors before its partition: 2048, or 1 for a table
 *     whose partitions start before that; CHS from 255 heads, 63 sectors);
 *   - GPT: the primary table as saved (NAME-gpt-1st, checked: signature and
 *     both CRC-32s) and the backup rebuilt at the disk's end (entries at
 *     N-33, header at N-1, CRCs recomputed; NAME-gpt-2nd is never used);
 *     without NAME-gpt-1st, or on a disk of 4096-byte sectors (whose table
 *     the 34 saved 512-byte sectors do not hold), both tables are built
 *     from NAME-pt.sf as sfdisk writes them (boot code from NAME-mbr);
 *   - each partition's bytes at its start, read through img_read_at of the
 *     image the caller opened (images[i], for partition index i);
 *   - zeros everywhere else: gaps, swap partitions (only zeros: no swap
 *     signature is written), the space of a partition beyond its image.
 * A partition with no usable image (images[i] NULL; why[i] says why, may be
 * NULL), an LVM physical volume, and any saved partition that is not there
 * read as errors for their range (never zeros).
 * Only disks listed in `disk` have a whole-disk view; sizes and places are
 * in the disk's own sectors (sector-size of the .sf: 512, 4096); a disk of
 * other than 512-byte sectors with MBR logical partitions has none.
 * The vdisk keeps pointers to images[] (the caller closes them after it).
 * @return IMG_OK and *out; IMG_E_FORMAT (no view for this disk: err says
 *         why), IMG_E_MISSING/CORRUPT (NAME-mbr missing, NAME-gpt-1st
 *         damaged, a .sf field the GPT cannot hold), IMG_E_IO.
 */
typedef struct img_cz_vdisk img_cz_vdisk;

int img_cz_vdisk_open(const img_czdir *cz, size_t disk, img_image *const *images,
		      const img_err *why, img_cz_vdisk **out, img_err *err);

/*
 * The same view for a disk of `sectors` (a restore target of another size;
 * 0 = the saved size): the backup GPT goes to the end of that disk and the
 * primary GPT and protective MBR say so (last usable LBA sectors-34, as
 * sfdisk writes a saved table without its last-lba). IMG_E_USAGE when the
 * partitions (and a GPT's backup) do not fit.
 */
int img_cz_vdisk_open_sized(const img_czdir *cz, size_t disk, uint64_t sectors,
			    img_image *const *images, const img_err *why, img_cz_vdisk **out,
			    img_err *err);

/* The i-th range of table sectors (saved or rebuilt: MBR, hidden data, EBRs,
 * GPTs), in disk order, for a restore to write. @return 1 and the range
 * (valid until img_cz_vdisk_close), 0 after the last. */
int img_cz_vdisk_table(const img_cz_vdisk *vd, size_t i, uint64_t *offset, const uint8_t **data,
		       size_t *len);

/* Bytes of the virtual disk. */
uint64_t img_cz_vdisk_size(const img_cz_vdisk *vd);

/*
 * Read len bytes at `offset`. Thread-safe: any number of threads at once.
 * *got < len only at the end of the disk.
 * @return IMG_OK, or the status of the first range that cannot be read
 *         (IMG_E_MISSING for a partition without an image, the image's own
 *         status for a damaged one) with err naming the disk, the byte range
 *         and the partition.
 */
int img_cz_vdisk_read_at(img_cz_vdisk *vd, uint64_t offset, void *buf, size_t len, size_t *got,
			 img_err *err);

/* Free the view (not the images). NULL is fine. */
void img_cz_vdisk_close(img_cz_vdisk *vd);

/* One line per range the view cannot rebuild ("sda3: bytes A-B: ..."), for
 * a log; i from 0. @return NULL after the last. */
const char *img_cz_vdisk_problem(const img_cz_vdisk *vd, size_t i);

#endif

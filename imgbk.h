/*
 * imgbk.h - the public interface of libimgbk: open a partition backup image
 * (partclone, ntfsclone, partimage), plain, compressed or split, read its
 * header facts, walk its used blocks without copying them, and read the
 * partition at random (the FUSE mount).
 *
 * This header is the manual. Applets, the FUSE front end and the tests use
 * nothing else. The library never prints and never exits: every call returns
 * an int status and leaves a one-line message on the handle or error slot.
 *
 * HowTo (restore-like walk):
 *
 *     img_err err;
 *     img_image *im;
 *     if (img_open(path, &opts, &im, &err) != IMG_OK) { print err.msg; }
 *     const img_info *info = img_get_info(im);
 *     img_run run;
 *     int rc;
 *     while ((rc = img_next_run(im, &run)) == IMG_OK)
 *         write run.len bytes from run.data at device offset run.offset;
 *     if (rc != IMG_EOF) { print img_error(im)->msg; }
 *     img_close(im);
 *
 * Status codes: IMG_OK (0), IMG_EOF (1) and the negative IMG_E_* below.
 * img_exit_code() maps a status to the exit code every applet uses.
 */
#ifndef IMGBK_H
#define IMGBK_H

#include <stddef.h>
#include <stdint.h>

#define IMGBK_VERSION "0.1.0"

/* ---- status codes ------------------------------------------------------ */
enum {
	IMG_OK = 0,
	IMG_EOF = 1,             /* no more data / runs: the normal end */
	IMG_E_IO = -1,           /* the system failed: open, read, memory (exit 3) */
	IMG_E_FORMAT = -2,       /* not a supported image, or a feature we do not read (exit 1) */
	IMG_E_CORRUPT = -3,      /* structure damaged: header CRC, bad field, bad compressed data (exit 1) */
	IMG_E_TRUNCATED = -4,    /* the data ends before the structure says it should (exit 1) */
	IMG_E_CHECKSUM = -5,     /* a data checksum does not match; the walk may go on (exit 1) */
	IMG_E_MISSING = -6,      /* a piece of a split set or a volume is missing (exit 1) */
	IMG_E_TRAILING = -7,     /* bytes after the end of the image data (exit 1) */
	IMG_E_USAGE = -8,        /* a caller passed something invalid (exit 2) */
};

/* Exit codes shared by every applet. */
enum { IMG_EXIT_OK = 0, IMG_EXIT_DAMAGED = 1, IMG_EXIT_USAGE = 2, IMG_EXIT_SYSTEM = 3 };

/*
 * The error slot: the first error of a handle sticks here (a checksum error,
 * after which a walk may go on, gives way to any later one). msg is one line,
 * without a trailing newline, that names the file and, where it applies, the
 * byte offset, e.g. "disk.img.gz: gzip: invalid compressed data at byte
 * 81920 of the compressed stream (invalid distance too far back)".
 */
typedef struct img_err {
	int code;               /* IMG_E_*, or IMG_OK when no error */
	int sys_errno;          /* errno for IMG_E_IO, else 0 */
	int has_offset;         /* offset below is meaningful */
	uint64_t offset;        /* byte offset the error refers to */
	char msg[512];
} img_err;

/* @return the exit code (IMG_EXIT_*) an applet uses for status `code`. */
int img_exit_code(int code);

/* ---- options ----------------------------------------------------------- */
typedef struct img_options {
	int verify;             /* check data checksums while walking (default 1) */
	int rescue;             /* hand out the blocks of a bad checksum group as `bad`
	                           runs (data NULL: write zeros) instead of skipping them */
	size_t buffer_size;     /* read-ahead of the top stream; 0 = default (4 MiB) */
	/* Raw partition images (partclone.dd, dd: no header, no magic): the one
	 * case where the file name decides. A file is read as raw when its
	 * bytes carry no image magic and its name ends in .dd-img or
	 * .dd-ptcl-img (then any compressor and split suffixes), or when `raw`
	 * is set (--raw); `raw` on bytes with an image magic is refused
	 * (IMG_E_USAGE). Its img_info: format "raw", checksum "NONE", fs a short
	 * name of what the bytes look like ("EXTFS", "NTFS", ... or "unknown"),
	 * block_size 1 (blocks and runs count bytes; every byte is a used one). */
	int raw;
	/* A raw image under compression learns its size only by being decoded
	 * to the end. With raw_size set, img_open does that (again from the
	 * file, so the walk still starts at byte 0; from standard input the
	 * stream is used up by it and no run can be read afterwards). Without
	 * it, device_size is 0 (unknown) after img_open; the walk raises it (and
	 * total_blocks, used_blocks) to the bytes handed out so far, so it is
	 * the size at IMG_EOF; img_random_open sets it from the decoded data. */
	int raw_size;
} img_options;

/* Fill `o` with the defaults. */
void img_options_init(img_options *o);

/* ---- the image handle --------------------------------------------------- */
typedef struct img_image img_image;

/*
 * Open `path` ("-" = standard input): the split set is followed, compression
 * layers are detected by their magic bytes and stacked, then the image format
 * is detected and its header and bitmap are read and checked.
 * @return IMG_OK and *out, or a negative status with `err` filled (nothing to
 *         close then). `opt` may be NULL for the defaults.
 */
int img_open(const char *path, const img_options *opt, img_image **out, img_err *err);
/* Process-wide, before images are opened: this process reads its images at
 * random (mount, index, the NBD plugin), so the stream img_open reads the
 * header and bitmap from decodes compressed data with one decoder, not
 * independent units on several cores ahead of what it reads (work and
 * memory for nothing; a mount daemon would carry that memory over its fork). */
void img_open_for_random(void);

/* Free everything of the handle. NULL is fine. */
void img_close(img_image *im);

/* @return the sticky error of the handle (code IMG_OK when none). */
const img_err *img_error(const img_image *im);

/* ---- header facts ------------------------------------------------------ */
typedef struct img_info {
	const char *format;          /* "partclone" */
	const char *format_version;  /* "2" */
	const char *fs;              /* filesystem name as stored, e.g. "EXTFS" */
	const char *layers;          /* how the bytes reach the parser, e.g. "split+gzip", "file" */
	const char *path;            /* the name given to img_open */
	uint64_t device_size;        /* bytes of the restored partition */
	uint32_t block_size;         /* bytes per block */
	uint64_t total_blocks;       /* blocks covered by the bitmap */
	uint64_t used_blocks;        /* blocks stored in the image (bitmap count) */
	const char *checksum;        /* "NONE", "CRC32", "XXH64", "XXH128" */
	int has_checksums;           /* data carries checksums that verify can check */
	int checksums_chained;       /* each checksum covers all data before it (partclone -K):
	                                after a bad group the later ones cannot be checked */
	uint64_t image_data_size;    /* expected bytes of the uncompressed image, 0 if unknown */
	const char *read_check;      /* what a random read (the mount) checks before it hands
	                                out bytes, one sentence (info --json: read_check) */
} img_info;

/* @return the header facts; valid until img_close. */
const img_info *img_get_info(const img_image *im);

/*
 * The header as the imagebackup tools print it, one field per entry, in
 * order, plus facts of imgbk's own (`info -v`, `--json`).
 * label: the text label; key: a JSON-friendly name, unique in the list;
 * text: the value as printed (thousands separators, "(432.9 MB)", quoted
 * strings), of any length, owned by the image; comment: text after a TAB or
 * NULL; is_number/number: the raw value for --json, else str.
 * level says where a field (or section) shows: IMG_FIELD_TOOL in the tools'
 * layout (plain `info`), IMG_FIELD_VERBOSE with `info -v` too, IMG_FIELD_JSON
 * in --json only. Every field is in --json.
 * A format with several header parts (partimage) puts a `section` entry
 * before each part; its label is the part's title (printed underlined with
 * '-'), and the labels of the fields up to the next section are padded to the
 * longest label shown in it, unless the list has a fixed label_width.
 */
enum { IMG_FIELD_TOOL = 0, IMG_FIELD_VERBOSE = 1, IMG_FIELD_JSON = 2 };

typedef struct img_field {
	int section;            /* nonzero: starts a new titled section; label is the title */
	int level;              /* IMG_FIELD_TOOL, _VERBOSE or _JSON */
	const char *label;
	const char *key;
	const char *text;
	const char *comment;
	int is_number;
	uint64_t number;
	const char *str;
} img_field;

typedef struct img_field_list {
	const char *title;     /* "Partclone Header", printed underlined with '=' */
	int label_width;       /* column where values start (labels are padded);
	                          0: padded per section to its longest label */
	const char *separator; /* between padded label and value: "" or ": " */
	size_t count;
	const img_field *fields;
} img_field_list;

/* @return the header print of the image; valid until img_close. */
const img_field_list *img_get_fields(const img_image *im);

/* ---- the zero-copy block iterator -------------------------------------- */
/*
 * One run of consecutive used blocks. data points into the library's read
 * buffer: read-only, valid until the next img_next_run or img_close, never
 * copied by the library to hand it out. len = nblocks * block_size, except
 * that the last run of an image may be shorter (ntfsclone's partial last
 * cluster).
 */
typedef struct img_run {
	uint64_t first_block;   /* number of the first block */
	uint64_t nblocks;       /* blocks in the run (>= 1) */
	uint64_t offset;        /* byte offset in the partition = first_block * block_size */
	size_t len;             /* bytes at data = nblocks * block_size */
	const uint8_t *data;
	int verified;           /* the checksums covering these bytes were checked before hand-out */
	int bad;                /* rescue mode: these blocks failed their checksum; data is NULL */
} img_run;

/*
 * Hand out the next run, in ascending block order, except for ntfsclone
 * metadata images: their runs come in stream order, can go back and can
 * repeat a block; written in the order given, the later one wins.
 * @return IMG_OK and *run; IMG_EOF after the last block (and after the image
 *         was checked to end there); or a negative status with img_error()
 *         set. After IMG_E_CHECKSUM the walk can go on with the next call:
 *         a group checked before hand-out is skipped, or with options.rescue
 *         handed out as `bad` runs without data; a group larger than the
 *         read-ahead (16 MiB) was handed out before its check failed.
 *         IMG_E_TRAILING comes instead of IMG_EOF when bytes follow the data.
 *         Any other error ends the walk.
 */
int img_next_run(img_image *im, img_run *run);

/*
 * Hand out up to `max` runs at once, in ascending order; every data pointer
 * stays valid until the next img_next_run/img_next_runs call. Formats with
 * small runs (one cluster per record) fill several, so a caller can write
 * adjacent runs with one pwritev(). Same status codes as img_next_run; with
 * IMG_OK, *n >= 1; otherwise *n == 0.
 */
int img_next_runs(img_image *im, img_run *runs, size_t max, size_t *n);

/* Progress of the walk: blocks handed out so far, of info->used_blocks. */
uint64_t img_blocks_done(const img_image *im);

/* Number of checksum groups found bad so far. */
uint64_t img_bad_groups(const img_image *im);

/*
 * Is the file with this device and inode number one the image is read from
 * (the image file, a piece of its split set, a volume of its set)? Asked
 * before a restore overwrites a file or device, so it never destroys its
 * own source. For a block device pass its st_rdev as dev and 0 as ino.
 * @return 1 yes, 0 no.
 */
int img_reads_file(const img_image *im, uint64_t dev, uint64_t ino);

/* ---- random access ------------------------------------------------------ */
/*
 * Random reads of the partition's bytes, for the FUSE mount. The image comes
 * from a regular file, a block device or a split set of files, plain or under
 * one compression layer whose codec has access points (io/zseek.h: gzip,
 * bzip2, xz with several blocks, zstd with several frames, lz4); the first
 * open decodes it once to find them, and they are saved in the index. Data
 * without access points (stdin, lzma, one big zstd frame or xz block, two
 * compression layers) gives IMG_E_FORMAT with a message that names the
 * command which makes it mountable. The index (block -> image offset) is loaded from
 * a saved index file when one matches the image, else built (one pass over
 * the bitmap, or over the whole stream for ntfsclone) and, with `save`,
 * written next to the image (IMAGE.ibkx) or, where that folder is read-only,
 * to $XDG_CACHE_HOME/imgbk/ (default ~/.cache/imgbk/).
 */
typedef struct img_random_options {
	uint32_t index_interval;  /* blocks per rank-index entry; 0 = 1024; >= 8, multiple of 8 */
	int verify;               /* check the checksum group of every block read (default 1) */
	int save;                 /* save a built index (default 1) */
	const char *index_path;   /* NULL = the default place */
	/* called now and then while an index is built; NULL = none */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
} img_random_options;

void img_random_options_init(img_random_options *o);

/*
 * Prepare img_read_at. Call once, after img_open, before any img_next_run.
 * @return IMG_OK, or a negative status with img_error() set.
 * *index_state (may be NULL) tells what happened: 0 built, 1 loaded, 2 built
 * and saved, 3 built but not saved (say why: img_error() is not set for it).
 */
int img_random_open(img_image *im, const img_random_options *o, int *index_state);

/*
 * Read len bytes of the partition at byte `offset` into buf. Unused blocks
 * read as zeros; *got < len only at the end of the partition. Thread-safe
 * after img_random_open: any number of threads may call it at once.
 * @return IMG_OK, IMG_E_CHECKSUM when a checksum group under the range is
 * bad (err says which blocks; other ranges still read), IMG_E_IO when the
 * image file cannot be read (e.g. the disk went away), IMG_E_TRUNCATED
 * when the image is shorter than its header says.
 */
int img_read_at(img_image *im, uint64_t offset, void *buf, size_t len, size_t *got, img_err *err);

/* Where the index of this image is (or would be) saved; "" if nowhere. */
const char *img_index_path(const img_image *im);

/* Where the index of the last img_random_open came from. */
enum img_index_origin {
	IMG_INDEX_NONE,     /* the image needs none (a plain raw image), or not opened yet */
	IMG_INDEX_LOADED,   /* all of it from the saved index file */
	IMG_INDEX_BUILT,    /* there was no index file: built */
	IMG_INDEX_REBUILT   /* an index file was there but stale, damaged, for another
			     * interval, or (a part of it) not fitting this image: built again */
};
/* @return an enum img_index_origin. For a compressed image the index holds
 * the access points too: it is LOADED only when both parts were taken. */
int img_index_origin(const img_image *im);
/* For messages after an index was built for a compressed image: its access
 * points with a state (checkpoints), the codec's data units (zstd frames)
 * and those that got none inside (reads there decode from the unit's start,
 * slower). All 0 otherwise. *codec: the codec's name, or "". */
void img_index_points(const img_image *im, uint64_t *checkpoints, uint64_t *units, uint64_t *blind,
		      const char **codec);

/* ---- small shared helpers (used by applets and tests) ------------------ */
/* 1 when sfx (len bytes, no dot, any case) is a compressor's file suffix
 * ("gz", "zst", ...: the codec table, io/codecs.c). */
int img_codec_suffix(const char *sfx, size_t len);
/* "671,088,640" */
void img_fmt_thousands(char *out, size_t outsz, uint64_t v);
/* "640.0 MB" with 1024-based units and one decimal, "512 B" under 1 KiB,
 * as the imagebackup tools print sizes */
void img_fmt_human(char *out, size_t outsz, uint64_t bytes);

/* ---- Clonezilla image directories and whole disks ------------------------ */
#include "imgbk_czdir.h"

#endif

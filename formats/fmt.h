/*
 * formats/fmt.h - what the format readers share: the image handle, the one
 * table of formats, checksum and bitmap helpers, and the error setter.
 *
 * Internal to libimgbk: the command layer and tests use imgbk.h only (unit tests may
 * include this to reach the helpers). Formats read bytes only through the
 * stream layer (io/io.h) and never print or exit.
 */
#ifndef IMGBK_FMT_H
#define IMGBK_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "../imgbk.h"
#include "../io/io.h"

#define IMG_MAX_FIELDS 128
/* Bytes for the text of all fields of an image (partimage's description and
 * first path are up to 4 KiB each); a text that does not fit is cut. */
#define IMG_FIELD_TEXT_BYTES 32768

/* One entry per image format (formats/detect.c is the one place to add one). */
struct img_format {
	const char *name;
	size_t magic_len;
	int (*bid)(const uint8_t *p, size_t n);  /* nonzero: these bytes are mine */
	int (*open)(img_image *im);              /* read and check header and bitmap */
	int (*next_run)(img_image *im, img_run *run);
	/* Optional: several runs at once, all valid until the next call (formats
	 * whose runs are small, e.g. one cluster per record). NULL: one at a time. */
	int (*next_batch)(img_image *im, img_run *runs, size_t max, size_t *n);
	void (*close)(img_image *im);            /* free im->priv */
	/* Optional random access. random_open builds the index from what open()
	 * read, or takes it from `saved` (the payload of a matching index file,
	 * NULL if none); when it builds the index (no saved one, or one that did
	 * not fit) it returns the payload to save (malloc'd), else none. read_at
	 * reads [off, off+len) inside the partition; it must be thread-safe. */
	int (*random_open)(img_image *im, const img_random_options *o, const uint8_t *saved,
			   size_t saved_len, uint8_t **payload, size_t *payload_len);
	int (*read_at)(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
	/* Optional, for an image under a compression layer: @return IMG_OK when
	 * the format can read it at random through the decoded bytes (`seekable`:
	 * the codec has access points), else say why and what makes it readable
	 * (a volume set needs every volume decompressed). */
	int (*reject_compressed)(img_image *im, const char *codec, int seekable);
};

extern const struct img_format *const img_formats[];  /* NULL-terminated */
extern const struct img_format fmt_partclone;
extern const struct img_format fmt_partimage;
extern const struct img_format fmt_ntfsclone;
extern const struct img_format fmt_raw;

/* The format whose magic starts p, or NULL (formats/detect.c). */
const struct img_format *fmt_detect(const uint8_t *p, size_t n);
int fmt_is_image(const uint8_t *p, size_t n);
/* fmt_detect, else the raw format when raw_wanted (the name or --raw says
 * so): a known magic wins over the name. */
const struct img_format *fmt_choose(const uint8_t *p, size_t n, int raw_wanted);
/* Does this file name say it is a raw (dd) image? "sda3.dd-ptcl-img.zst.aa",
 * "sda1.dd-img": .dd-img or .dd-ptcl-img, then any compressor suffixes and
 * one split suffix (formats/raw.c). @return 1 yes, 0 no. */
int fmt_raw_name(const char *path);
/* What the bytes of a raw image look like. */
struct fmt_content {
	const char *what;  /* "an ext2/3/4 filesystem" */
	const char *fs;    /* short filesystem name (mount hints), NULL when none */
	int compressed;    /* a compressor imgbk does not decode: no partition bytes */
	/* The filesystem's own size in bytes from its superblock or boot
	 * sector (its partition is at least this large), 0 when unknown. */
	uint64_t (*fs_size)(const uint8_t *p, size_t n);
};
const struct fmt_content *fmt_content_of(const uint8_t *p, size_t n);
/* What bytes that are no image look like, as a phrase for an error message. */
const char *fmt_describe_foreign(const uint8_t *p, size_t n);
/* Bytes fmt_describe_foreign and fmt_content_of want to see (btrfs keeps its
 * magic and its size at 64 KiB). */
#define FMT_SNIFF_FOREIGN 0x10080

/* The handle behind img_image. */
struct img_image {
	const struct img_format *fmt;
	img_stream *s;          /* top of the stream stack */
	img_err err;
	img_options opt;
	img_info info;
	img_field_list field_list;
	img_field fields[IMG_MAX_FIELDS];
	char field_text[IMG_FIELD_TEXT_BYTES];  /* the fields' texts, one after another */
	size_t field_text_used;
	char path[1024];
	char layers[96];
	struct rsrc_layers stack;  /* the layers under the image bytes, as sniffed (io.h) */
	uint64_t blocks_done;
	uint64_t bad_groups;
	void *priv;
	/* random access (formats/access.c) */
	img_rsrc *rs;           /* random reads of the image bytes */
	int random_ready;
	int read_verify;        /* img_read_at checks checksums */
	char index_path[1200];
	int index_origin;       /* enum img_index_origin of the last img_random_open */
};

/* img_open on an already open source stream (memory, for tests and fuzzing):
 * the image takes the stream (closed on failure too); `name` is used in
 * messages. */
int img_open_source(img_stream *src, const char *name, const img_options *opt, img_image **out,
		    img_err *err);

/* Read image bytes for random access; a short read is IMG_E_TRUNCATED naming
 * what was being read. Thread-safe. */
int fmt_pread(img_image *im, void *buf, size_t len, uint64_t off, const char *what, img_err *err);
/* The len bytes at off where the image's source holds them in memory, with
 * no copy (rsrc_peek): *p NULL when it does not (read them with fmt_pread);
 * fmt_unpeek(im, *pin) when done. */
int fmt_peek(img_image *im, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err);
void fmt_unpeek(img_image *im, void *pin);

/* Record an error on a caller's slot, "PATH: FORMAT: what at byte N". */
int fmt_fail_to(img_image *im, img_err *err, int code, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Record a format error at image byte `offset` ("PATH: FORMAT: what at byte N").
 * @return code. */
int fmt_fail(img_image *im, int code, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Append a field to the header print. text is formatted with printf rules. */
img_field *fmt_field(img_image *im, const char *label, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, with a raw number for --json. */
/* A NUL-padded text field of at most n bytes of a header as printable
 * ASCII ('?' for other bytes), for names and messages. */
void fmt_copy_text(char *out, size_t outsz, const uint8_t *p, size_t n);
img_field *fmt_field_num(img_image *im, const char *label, const char *key, uint64_t number,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A string printed in double quotes ("ext2fs"); --json gets it without them. */
img_field *fmt_field_quoted(img_image *im, const char *label, const char *key, const char *s);

/* A count with its size: "110,829 (432.9 MB)"; the raw count goes to --json. */
img_field *fmt_field_amount(img_image *im, const char *label, const char *key, uint64_t n,
			     uint64_t bytes);

/* The data must end here: @return IMG_EOF, or IMG_E_TRAILING naming `what`
 * the image should have ended after. */
int fmt_expect_end(img_image *im, const char *what);

/* Start a new titled section of the header print. */
img_field *fmt_section(img_image *im, const char *title);

/* Set the level (IMG_FIELD_*) of a field or section; f may be NULL (the list
 * was full). @return f. */
img_field *fmt_level(img_field *f, int level);

/* ---- little-endian reads from a byte buffer ---------------------------- */
static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}
static inline void store_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void store_le64(uint8_t *p, uint64_t v)
{
	store_le32(p, (uint32_t)v);
	store_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- checksums (formats/checksum.c) ------------------------------------ */
enum img_hash_kind { HASH_NONE, HASH_CRC32, HASH_XXH64, HASH_XXH128 };

typedef struct img_hash {
	enum img_hash_kind kind;
	uint32_t crc;   /* zlib-style running CRC-32 */
	void *state;    /* XXH64_state_t or XXH3_state_t */
} img_hash;

/* @return IMG_OK, or IMG_E_IO when out of memory. */
int hash_init(img_hash *h, enum img_hash_kind kind);
void hash_reset(img_hash *h);
void hash_update(img_hash *h, const void *p, size_t n);
/* The digest as partclone stores it (little-endian native form); @return its size. */
size_t hash_digest(const img_hash *h, uint8_t out[16]);
size_t hash_size(enum img_hash_kind kind);
void hash_free(img_hash *h);
/* Make dst (initialised, same kind) a copy of src. @return IMG_OK, or
 * IMG_E_USAGE when the kinds differ. */
int hash_copy(img_hash *dst, const img_hash *src);

/* A running state as bytes, to save and take up again in another process:
 * hash_state_size(kind) bytes, little-endian fields, never the struct.
 * hash_state_load fills an initialised h of the same kind; `hashed` is the
 * number of bytes the state must have taken in. @return IMG_OK, or
 * IMG_E_CORRUPT when the saved length differs or a field is out of range
 * (such a state is never used). Only the digest tells whether the lanes are
 * right: compare it with a stored checksum before trusting a loaded state. */
size_t hash_state_size(enum img_hash_kind kind);
void hash_state_save(const img_hash *h, uint8_t *out);
int hash_state_load(img_hash *h, const uint8_t *in, uint64_t hashed);

/* partclone's CRC-32 of a whole buffer: zlib's without the final inversion. */
static inline uint32_t crc32_partclone(const void *p, size_t n) { return ~crc32_fast(0, p, n); }

/* ---- bitmaps, bit i = bit (i & 7) of byte i >> 3 (formats/bitmap.c) ---- */
uint64_t bitmap_count(const uint8_t *bm, uint64_t nbits);
/* First set bit at or after `from`, or nbits when none. */
uint64_t bitmap_next_set(const uint8_t *bm, uint64_t nbits, uint64_t from);
/* Number of consecutive set bits starting at `from`, at most `max`. */
uint64_t bitmap_run(const uint8_t *bm, uint64_t nbits, uint64_t from, uint64_t max);
static inline int bitmap_test(const uint8_t *bm, uint64_t i) { return bm[i >> 3] >> (i & 7) & 1; }

/* A rank index over a bitmap: the set bits before every k-th bit, so the
 * rank of a block (its place among the stored blocks) is one lookup plus a
 * popcount of at most k bits. Always counted from the bitmap itself; a saved
 * copy is only compared with it (rank_index_matches), never trusted. */
struct rank_index {
	const uint8_t *bm;   /* not owned */
	uint64_t nbits;
	uint32_t k;          /* a multiple of 8 */
	uint64_t entries;
	uint64_t *ranks;     /* ranks[i] = set bits before bit i * k */
};

/* @return IMG_OK, or IMG_E_IO when out of memory. */
int rank_index_build(struct rank_index *ri, const uint8_t *bm, uint64_t nbits, uint32_t k);
/* Set bits before bit b. */
uint64_t rank_index_rank(const struct rank_index *ri, uint64_t b);
/* The bit whose rank is r (nbits when there is none). */
uint64_t rank_index_select(const struct rank_index *ri, uint64_t r);
/* The ranks as little-endian u64s (entries * 8 bytes), and a comparison with such bytes. */
void rank_index_store(const struct rank_index *ri, uint8_t *out);
int rank_index_matches(const struct rank_index *ri, const uint8_t *saved, size_t len);
void rank_index_free(struct rank_index *ri);

#endif

/*
 * formats/partimage.h - the state of an open partimage image, shared by the
 * sequential reader (partimage.c), the header print (partimage_info.c) and
 * random access (partimage_access.c). Private to these three files. Its
 * layout (lay, partimage_layout.h) is read-only after the open; the walk's
 * cursor and random access's tables each belong to one file.
 */
#ifndef IMGBK_PARTIMAGE_H
#define IMGBK_PARTIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"
#include "partimage_layout.h"

#define PI_VOLUME_MAGIC "PaRtImAgE-VoLuMe"
#define PI_VOLUME_HEADER 512

/* The volume layer: the volume files as one logical byte stream. */
struct pi_vol {
	img_stream *cur;        /* the current volume's stack, after its 512-byte header */
	char *cur_path;         /* its name when this layer opened it (NULL for volume 0) */
	char *base;             /* volume 0's name */
	size_t suffix_at;       /* index of the digits in base; 0: one stream, no volumes */
	uint32_t volno;         /* number of cur */
	uint64_t ident;         /* qwIdentificator of volume 0 */
	uint64_t *starts;       /* logical offset where the payload of volume n starts */
	size_t nstarts, starts_cap;
	uint64_t produced;      /* logical bytes produced so far */
	uint64_t sum;           /* unsigned byte sum of those bytes */
	int tail_seen;          /* the parser read the tail: */
	uint32_t last_volume;   /* ... and its volume number */
};

/* One volume file as random access sees it (partimage_access.c). */
struct pi_rvol {
	char *path;
	uint64_t start;         /* logical offset of its first payload byte */
	uint64_t size;          /* payload bytes: file size - 512 */
	int64_t mtime_ns;
};

struct pi_state {
	struct pi_vol *vol;      /* the layer's state (owned by im->s) */
	struct pi_layout lay;    /* what the headers say: read-only after the open */
	/* the walk (partimage.c) */
	uint64_t dpos;           /* data bytes passed (handed out or skipped) */
	uint64_t cur, rank;      /* next block to look at, used blocks passed */
	size_t pending;          /* bytes handed out, consumed at the next call */
	uint64_t chunk_left;     /* data bytes of the current chunk not handed out yet */
	int chunk_has_chk;       /* the current chunk ends with a CHK record */
	int chunk_verified;      /* the current chunk was checked before hand-out */
	int hashing;             /* checksums are checked (verify on) */
	uint8_t *side;           /* blocks > 64 KiB are gathered here */
	/* qwPos emulation (FORMATS.md 3.7): the writer's current copy run */
	uint64_t wrun_start, wrun_end;
	uint64_t qwpos_bad;      /* CHK records whose qwPos differs from the emulation */
	uint64_t qwpos_first_bad;
	int unsigned_sums;       /* a header sum matched only the unsigned rule */
	int finished;
	int deferred;            /* status met inside a batch, returned by the next call */
	char fs[64];
	char version[8];         /* of volume 0: "0.6.1" or "0.6.0" */
	/* random access (partimage_access.c) */
	struct rank_index ranks; /* used blocks before every K-th block */
	struct pi_rvol *rvols;
	uint32_t nrvols;
	img_rsrc *set;           /* the volume payloads as one range (rsrc_concat) */
	uint64_t nchunks;        /* data chunks closed by a CHK record: data_len / 65536 */
	uint8_t *chunk_ok;       /* bit per chunk: checked good (set atomically) */
	uint8_t *chunk_bad;      /* bit per chunk: found bad */
	int read_verify;         /* random reads check their chunk */
	/* the final partial chunk, checked through the tail's qwCRC (set once, atomically) */
	int final_verdict;       /* 0 not yet; else good, bad, or uncheckable (a full chunk is bad) */
	uint64_t final_stored, final_sum, final_first_bad;
};

/* partimage.c */
/* Name of volume n into out (the base name when the image is one stream). */
void pi_vol_name(const struct pi_vol *v, uint32_t n, char *out, size_t outsz);
/* Check a volume header h (512 bytes) of file `name`: volume `want`, and the
 * identificator *ident unless ident_known is 0 (then it is stored). */
int pi_check_volume_header(img_err *err, const char *name, const uint8_t *h, uint32_t want,
			   uint64_t *ident, int ident_known);

/* partimage_info.c: the header print of `info` */
void pi_add_volume_fields(img_image *im, const uint8_t *vh);
void pi_add_main_fields(img_image *im, const uint8_t *h, uint64_t part_size);
void pi_add_mbr_fields(img_image *im, uint32_t index, const uint8_t *rec, uint32_t size);
void pi_add_local_fields(img_image *im, const uint8_t *h);
void pi_add_info_fields(img_image *im, const char *fs, const uint8_t *info, uint32_t stored_sum);

/* partimage_access.c: random access */
int pi_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len);
int pi_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
void pi_random_free(struct pi_state *st);
/* IMG_E_FORMAT: volume n (file name) is compressed with codec; the message
 * names the commands that decompress every volume of the set. */
int pi_reject_compressed(img_image *im, const char *name, uint32_t n, const char *codec);
/* The format's reject_compressed hook: volume 0 is compressed. */
int pi_reject_volume0(img_image *im, const char *codec, int seekable);

#endif

/*
 * formats/partclone.h - the state of an open partclone image, shared by the
 * sequential reader (partclone.c) and random access (partclone_access.c).
 */
#ifndef IMGBK_PARTCLONE_H
#define IMGBK_PARTCLONE_H

#include <stdint.h>

#include "fmt.h"

#define PC_MAGIC "partclone-image"
#define PC_HEADER_SIZE 110
#define PC_MAX_BLOCK_SIZE ((uint64_t)64 << 20)
#define PC_MAX_BITMAP_BYTES ((uint64_t)4 << 30)
/* Largest checksum group (data + checksum) checked before hand-out. */
#define VERIFY_AHEAD_MAX ((uint64_t)16 << 20)

enum { BM_NONE = 0x00, BM_BIT = 0x01, BM_BYTE = 0x08 };
enum { CSM_NONE = 0x00, CSM_CRC32 = 0x20, CSM_XXH64 = 0x30, CSM_XXH128 = 0x31 };

struct pc_state {
	int big_endian;         /* written on a big-endian machine (marker C0 DE) */
	unsigned cpu_bits;      /* word size of the creator: a big-endian bitmap is made of such words */
	uint8_t *bitmap;        /* NULL in NONE mode: every block is used */
	uint64_t total, used, device_size, data_start;
	uint32_t bs;
	uint64_t bpc;           /* blocks per checksum, 0 without checksums */
	size_t cs;              /* checksum size, 0 without checksums */
	int reseed;
	img_hash hash;
	int hashing;            /* checksums are checked (they exist and verify is on) */

	uint64_t cur;           /* next block number to look at */
	uint64_t rank;          /* used blocks passed so far */
	uint64_t group_left;    /* blocks still to come in the current group */
	uint64_t group_blocks;  /* blocks of the current group passed so far */
	uint64_t group_first;   /* first block of the current group */
	uint64_t group_offset;  /* image offset of the current group */
	uint64_t group_index;
	int group_checked;      /* the current group was checked ahead */
	int group_rescued;      /* rescue: the current group failed; hand it out as bad runs */
	int chain_broken;       /* a running checksum failed: later ones cannot be checked */
	size_t pending;         /* bytes handed out, consumed at the next call */
	/* format 0001 */
	int v1;
	size_t v1_stride;       /* bytes from one block to the next: bs + 4 (or + 8, see below) */
	size_t v1_crc_at;       /* where the CRC sits after the block: 0, or 4 with junk first */
	uint8_t *v1_fill;       /* bs copies of one byte, for the 0001 CRC quirk */
	int v1_fill_byte;
	int v1_bad_next;        /* rescue: hand out the next block as a bad run */
	int finished;
	char version[16];
	char fs[17];
	/* random access */
	struct rank_index ranks;  /* used blocks before every K-th block */
	uint64_t ngroups;
	uint8_t *group_ok;      /* bit per checksum group: checked good (set atomically) */
	uint8_t *group_bad;     /* bit per checksum group: found bad */
	int read_verify;        /* random reads check their group */
	uint64_t access_id;     /* names this open image in the shared group slots */
	/* running XXH checksums: the hash state before every ckpt_every-th group */
	uint64_t ckpt_every;    /* 0: no states kept (reseeded or CRC32 checksums) */
	uint64_t nckpt;
	size_t ckpt_size;       /* bytes of one saved state (hash_state_size) */
	uint8_t *ckpt;          /* nckpt saved states, state k before group k * ckpt_every */
	uint8_t *ckpt_bad;      /* bit per state: its digest is not the stored checksum before it */
	uint64_t first_bad;     /* first group found bad by the state pass (UINT64_MAX: none) */
};


/* Random access (partclone_access.c). */
int pc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len);
int pc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
void pc_random_free(struct pc_state *st);
/* Our digest (little-endian form) as this image stores it. */
void pc_digest_as_stored(const struct pc_state *st, uint8_t *d);

#endif

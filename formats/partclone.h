/*
 * formats/partclone.h - an open partclone image: its layout (read-only after
 * the open, partclone_layout.h), the cursor of the sequential walk
 * (partclone.c) and the state of random access (partclone_access.c). Each
 * file changes only its own part; both read the layout.
 */
#ifndef IMGBK_PARTCLONE_H
#define IMGBK_PARTCLONE_H

#include <stdint.h>

#include "partclone_layout.h"

/* Largest checksum group (data + checksum) checked before hand-out. */
#define VERIFY_AHEAD_MAX ((uint64_t)16 << 20)

/* The sequential walk (partclone.c). */
struct pc_walk {
	img_hash hash;          /* the running checksum of the current group */
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
	int v1_bad_next;        /* 0001, rescue: hand out the next block as a bad run */
	int finished;
};

/* Random access (partclone_access.c). */
struct pc_access {
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

struct pc_state {
	struct pc_layout lay;
	struct pc_walk walk;
	struct pc_access acc;
};

/* Random access (partclone_access.c). */
int pc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len);
int pc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
void pc_random_free(struct pc_access *acc);

#endif

/*
 * formats/ntfsclone.h - an open ntfsclone image: its layout (read-only after
 * the open, ntfsclone_layout.h), the cursor of the sequential walk
 * (ntfsclone.c) and the run index of random access (ntfsclone_access.c).
 * Each file changes only its own part; both read the layout.
 *
 * Internal to these files; everything else goes through fmt_ntfsclone.
 */
#ifndef IMGBK_NTFSCLONE_H
#define IMGBK_NTFSCLONE_H

#include <stddef.h>
#include <stdint.h>

#include "ntfsclone_layout.h"

/* Clusters start..start+count-1, stored back to back: the data of cluster
 * start+i is at image byte off + i * (cluster size + 1). */
struct nc_run {
	uint64_t first;
	uint64_t count;
	uint64_t off;
};

/* The sequential walk (ntfsclone.c). */
struct nc_walk {
	uint64_t pos;           /* cluster position of the next record */
	size_t pending;         /* bytes handed out (records parsed), consumed at the next call */
	int ended;              /* pos reached end_pos: only the trailing check is left */
	int finished;           /* IMG_EOF (or IMG_E_TRAILING) was returned */
	int unordered;          /* a negative GAP was seen: runs are not ascending */
};

/* Random access (ntfsclone_access.c), read-only after random_open. */
struct nc_access {
	struct nc_run *runs;    /* ascending, disjoint: what a restore leaves */
	uint64_t nruns;
	int stop_code;          /* IMG_OK, or why the command stream could not be followed */
	uint64_t stop_pos;      /* cluster position where it stopped */
	uint64_t stop_at;       /* image byte where it stopped */
	int stop_unordered;     /* the stream went backwards before it stopped */
};

struct nc_state {
	struct nc_layout lay;
	struct nc_walk walk;
	struct nc_access acc;
};

/* ntfsclone_access.c */
int nc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len);
int nc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
void nc_random_free(struct nc_access *acc);

#endif

/*
 * formats/ntfsclone.h - what the ntfsclone reader (ntfsclone.c: header and
 * sequential walk) shares with its random access (ntfsclone_access.c): the
 * reader state, the record helpers and the run index.
 *
 * Internal to the two files; everything else goes through fmt_ntfsclone.
 */
#ifndef IMGBK_NTFSCLONE_H
#define IMGBK_NTFSCLONE_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

enum { CMD_GAP = 0x00, CMD_NEXT = 0x01 };
enum { GAP_RECORD = 9 };

/* Clusters start..start+count-1, stored back to back: the data of cluster
 * start+i is at image byte off + i * (cluster size + 1). */
struct nc_run {
	uint64_t first;
	uint64_t count;
	uint64_t off;
};

struct nc_state {
	uint32_t cs;            /* cluster size */
	uint64_t device_size;
	uint64_t nr_clusters;   /* clusters of the volume (positions 0 .. nr_clusters-1) */
	uint64_t inuse;
	uint32_t data_offset;
	unsigned minor;
	uint64_t end_pos;       /* pos at which the stream ends: nr_clusters (10.0) or +1 (10.1) */

	uint64_t pos;           /* cluster position of the next record */
	size_t pending;         /* bytes handed out (records parsed), consumed at the next call */
	int ended;              /* pos reached end_pos: only the trailing check is left */
	int finished;           /* IMG_EOF (or IMG_E_TRAILING) was returned */
	int unordered;          /* a negative GAP was seen: runs are not ascending */
	char version[8];

	/* random access (ntfsclone_access.c), read-only after random_open */
	struct nc_run *runs;    /* ascending, disjoint: what a restore leaves */
	uint64_t nruns;
	int stop_code;          /* IMG_OK, or why the command stream could not be followed */
	uint64_t stop_pos;      /* cluster position where it stopped */
	uint64_t stop_at;       /* image byte where it stopped */
	int stop_unordered;     /* the stream went backwards before it stopped */
};

/* Bytes of cluster `pos`'s record: a full cluster, or what is left of the
 * device (pos <= nr_clusters + 1, so pos * cs fits: see check_header). */
static inline uint64_t nc_record_len(const struct nc_state *st, uint64_t pos)
{
	uint64_t start = pos * st->cs;
	if (start >= st->device_size)
		return 0;
	uint64_t left = st->device_size - start;
	return left < st->cs ? left : st->cs;
}

/* Where a GAP record (9 bytes at p) moves pos (*to_out). */
enum gap_fault { GAP_OK, GAP_ZERO, GAP_OUTSIDE };

static inline enum gap_fault nc_gap_target(const struct nc_state *st, uint64_t pos,
					   const uint8_t *p, uint64_t *to_out)
{
	int64_t count = (int64_t)get_le64(p + 1);
	int64_t to;
	if (count == 0)
		return GAP_ZERO;
	if (__builtin_add_overflow((int64_t)pos, count, &to) || to < 0 ||
	    (uint64_t)to > st->nr_clusters)
		return GAP_OUTSIDE;
	*to_out = (uint64_t)to;
	return GAP_OK;
}

/* ntfsclone_access.c */
int nc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len);
int nc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err);
void nc_random_free(struct nc_state *st);

#endif

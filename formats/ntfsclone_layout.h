/*
 * formats/ntfsclone_layout.h - the layout of an ntfsclone image, once: the
 * header facts and the decoding of one record of the command stream (0x00
 * GAP + s64 count, 0x01 NEXT + one cluster), FORMATS.md section 2.
 *
 * Used by the sequential walk (ntfsclone.c) and the run index of random
 * access (ntfsclone_access.c); it depends on neither. No I/O, no moving state.
 */
#ifndef IMGBK_NTFSCLONE_LAYOUT_H
#define IMGBK_NTFSCLONE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

enum { CMD_GAP = 0x00, CMD_NEXT = 0x01 };
enum { GAP_RECORD = 9 };

/* Filled by the open (ntfsclone.c, check_header), read-only after it. */
struct nc_layout {
	uint32_t cs;            /* cluster size */
	uint64_t device_size;
	uint64_t nr_clusters;   /* clusters of the volume (positions 0 .. nr_clusters-1) */
	uint64_t inuse;
	uint32_t data_offset;
	unsigned minor;
	uint64_t end_pos;       /* pos at which the stream ends: nr_clusters (10.0) or +1 (10.1) */
	char version[8];
};

/* Bytes of cluster `pos`'s record data: a full cluster, or what is left of
 * the device (pos <= nr_clusters + 1, so pos * cs fits: see check_header). */
static inline uint64_t nc_record_len(const struct nc_layout *l, uint64_t pos)
{
	uint64_t start = pos * l->cs;
	if (start >= l->device_size)
		return 0;
	uint64_t left = l->device_size - start;
	return left < l->cs ? left : l->cs;
}

/* One record of the command stream, decoded. */
enum nc_record_kind {
	NC_REC_GAP,        /* pos moves to `to` */
	NC_REC_NEXT,       /* the data of cluster pos: `len` bytes after the command byte */
	NC_REC_SHORT,      /* fewer bytes visible than the record's head needs (`need`) */
	NC_REC_GAP_ZERO,   /* bad: a GAP of 0 clusters */
	NC_REC_GAP_OUTSIDE,/* bad: a GAP that leaves the volume (`count`) */
	NC_REC_BAD_COMMAND /* bad: neither GAP nor NEXT */
};

struct nc_record {
	enum nc_record_kind kind;
	size_t size;       /* GAP, NEXT: bytes of the whole record, command byte included */
	size_t need;       /* SHORT: bytes the head needs */
	uint64_t to;       /* GAP */
	int64_t count;     /* GAP, GAP_OUTSIDE: the stored count */
	uint64_t len;      /* NEXT: data bytes (the data itself may be beyond avail) */
};

/* Decode the record at p (avail bytes visible, at least 1) met at cluster
 * position pos. Only its head is looked at: a NEXT record's data may still
 * be beyond avail (the caller checks `size`). */
void nc_decode_record(const struct nc_layout *l, uint64_t pos, const uint8_t *p, size_t avail,
		      struct nc_record *r);

/* The text of a bad record (GAP_ZERO, GAP_OUTSIDE, BAD_COMMAND) met at pos
 * with command byte `cmd`. @return out. */
const char *nc_bad_record_text(char *out, size_t outsz, const struct nc_layout *l, uint64_t pos,
			       uint8_t cmd, const struct nc_record *r);

#endif

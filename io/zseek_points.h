/*
 * io/zseek_points.h - inside the random-read core (zseek.h): the list of
 * access points a scan hands in, as io/zseek.c's view and
 * io/zseek_points.c share it. Not for the codecs, which see zseek.h only.
 */
#ifndef IMGBK_IO_ZSEEK_POINTS_H
#define IMGBK_IO_ZSEEK_POINTS_H

#include "zseek.h"

/* A point as kept: its state zlib-packed when that is smaller. A view
 * loaded from an index file keeps no state in memory (p.state NULL): it is
 * read from the file when a decoder starts there (zs_core_unpack_state). */
struct kept_point {
	struct zs_point p;     /* p.state = stored bytes (or NULL: in core.states), p.state_len = their length */
	uint32_t raw_len;      /* state bytes once unpacked */
	int packed;            /* stored bytes are a zlib stream */
	int has_crc;           /* crc holds the CRC-32 of the segment from here to the next point */
	uint32_t crc;
	uint64_t soff;         /* saved form: the stored bytes' offset among the states */
	uint32_t scrc;         /* saved form: their CRC-32 */
};

struct zs_core {
	struct kept_point *pts;
	size_t n, cap;
	size_t stateful;
	uint64_t state_bytes;  /* stored bytes of all states */
	uint64_t last_state;
	uint64_t raw_size;
	uint32_t run_crc;      /* scan: CRC-32 of the open segment so far */
	int preset;            /* scan: the last point's segment CRC came from the codec */
	int fed;               /* scan: zs_scan_output was called */
	img_rsrc *states;      /* the saved states (an index file), read on demand; owned, or NULL */
	uint64_t states_at;    /* where in it the states start */
	uint64_t states_len;   /* and their bytes */
};

/* Close the open segment (the last point's) with the CRC fed so far
 * (unless the codec gave it with zs_add_point_crc); at the end of a scan. */
void zs_core_close_segment(struct zs_core *c);
/* Unpack a kept point's state into dst (k->raw_len bytes), reading it from
 * the saved states when it is not in memory. @return IMG_OK, IMG_E_CORRUPT
 * (damaged), IMG_E_IO (out of memory, or the index file cannot be read). */
int zs_core_unpack_state(const struct zs_core *c, const struct kept_point *k, uint8_t *dst);
/* The points in their saved form (zs_view_save), malloc'd.
 * @return IMG_OK, or IMG_E_IO (out of memory, or the saved states they
 * were loaded from cannot be read back). */
int zs_core_save(const struct zs_core *c, uint64_t usize, uint64_t span, uint8_t **out, size_t *len);
/* Load a saved form b[0..len) into *core when it fits the data (core's
 * raw_size) and holds together: core's states, states_at and states_len
 * say where the states are when b is the front only (they are then read
 * from there when a decoder needs them); else they follow the points in b.
 * @return 1 when loaded (*core, *usize and *span set), 0 when not (*core
 * unchanged). */
int zs_core_load(struct zs_core *core, const uint8_t *b, size_t len, uint64_t *usize, uint64_t *span);
/* Free the points and states, close the saved states; *c is zeroed. */
void zs_core_free(struct zs_core *c);

#endif

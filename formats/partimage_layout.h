/*
 * formats/partimage_layout.h - the layout of a partimage image, once: the
 * facts its headers give (block size, counts, bitmap, where the data starts)
 * and pure functions over them: where data byte x and CHK record c lie in the
 * logical stream, where the tail is, the check of a CHK record, the byte sum
 * of the tail's qwCRC, and the text of their errors (FORMATS.md 3.7, 3.8).
 *
 * Used by the sequential walk (partimage.c) and random access
 * (partimage_access.c); it depends on neither. No I/O, no state that moves.
 */
#ifndef IMGBK_PARTIMAGE_LAYOUT_H
#define IMGBK_PARTIMAGE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fmt.h"

#define PI_STRUCT 16384            /* main header, local header, info block, tail */
#define PI_CHUNK 65536             /* data bytes between two CHK records */
#define PI_CHK 16                  /* "CHK\0" + u32 CRC + u64 qwPos */
#define PI_TAIL_MAGIC "MAGIC-BEGIN-TAIL"
#define PI_TAIL_MAGIC_LEN 16

/* Filled by the open (partimage.c), read-only after it. Logical offsets
 * count from the start of the main header (volume headers left out). */
struct pi_layout {
	uint8_t *bitmap;         /* bits of blocks < nbits */
	uint64_t nbits;          /* min(qwBlocksCount, 8 * qwBitmapSize) */
	uint64_t total, used, part_size, bitmap_size;
	uint32_t bs;
	uint64_t data_start;     /* logical offset of the first data byte */
	uint64_t data_len;       /* used * bs */
};

/* Chunks closed by a CHK record (the final partial chunk has none). */
static inline uint64_t pi_full_chunks(const struct pi_layout *l) { return l->data_len / PI_CHUNK; }

/* Data bytes after the last CHK record: 0, or the final partial chunk. */
static inline uint64_t pi_final_len(const struct pi_layout *l) { return l->data_len % PI_CHUNK; }

/* Logical offset of data byte x (a CHK record after every 65536 of them). */
static inline uint64_t pi_data_at(const struct pi_layout *l, uint64_t x)
{
	return l->data_start + x + PI_CHK * (x / PI_CHUNK);
}

/* Logical offset of the first data byte of chunk c. */
static inline uint64_t pi_chunk_at(const struct pi_layout *l, uint64_t c)
{
	return pi_data_at(l, c * PI_CHUNK);
}

/* Logical offset of the TAIL magic, right after the data. */
static inline uint64_t pi_tail_at(const struct pi_layout *l)
{
	return l->data_start + l->data_len + PI_CHK * pi_full_chunks(l);
}

/* Logical bytes from the start of the main header to the end of the tail. */
static inline uint64_t pi_logical_end(const struct pi_layout *l)
{
	return pi_tail_at(l) + PI_TAIL_MAGIC_LEN + PI_STRUCT;
}

/* Does p start with the TAIL magic? */
static inline int pi_is_tail(const uint8_t *p)
{
	return memcmp(p, PI_TAIL_MAGIC, PI_TAIL_MAGIC_LEN) == 0;
}

/* The tail's qwCRC, from p at the TAIL magic (PI_TAIL_MAGIC_LEN + 8 bytes). */
static inline uint64_t pi_tail_stored_sum(const uint8_t *p)
{
	return get_le64(p + PI_TAIL_MAGIC_LEN);
}

/* Unsigned sum of n bytes (the tail's qwCRC rule). */
uint64_t pi_byte_sum(const uint8_t *p, size_t n);

/* Is `chk` (PI_CHK bytes) a CHK record? @return 1 yes, 0 no (structure lost). */
int pi_chk_is_record(const uint8_t *chk);
/* Does its CRC match the PI_CHUNK data bytes before it? @return 1 yes, 0 no. */
int pi_chk_crc_matches(const uint8_t *data, const uint8_t *chk);

/* Error texts (without file and offset): a chunk whose CRC does not match,
 * a CHK record or the TAIL magic that is not there, the tail's byte sum that does not match
 * (`what`: what is likely damaged). @return out. */
const char *pi_bad_chunk_text(char *out, size_t outsz, uint64_t first, uint64_t last, uint64_t c);
const char *pi_missing_chk_text(char *out, size_t outsz, uint64_t c);
const char *pi_missing_tail_text(char *out, size_t outsz);
const char *pi_tail_sum_text(char *out, size_t outsz, uint64_t stored, uint64_t computed,
			     const char *what);

#endif

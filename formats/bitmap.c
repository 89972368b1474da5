/*
 * formats/bitmap.c - counting and scanning the used-block bitmaps of backup
 * images (bit i = bit (i & 7) of byte i >> 3, LSB first), 64 bits at a time.
 *
 * Not here: where a bitmap is stored or how it is checked (format readers).
 */
#include <string.h>

#include "fmt.h"

/* 64 bitmap bits starting at bit 64*w, bits beyond nbits cleared. */
static uint64_t word_at(const uint8_t *bm, uint64_t nbits, uint64_t w)
{
	uint64_t first = w * 64;
	uint64_t nbytes = (nbits + 7) / 8;
	uint64_t byte0 = first / 8;
	uint64_t v = 0;
	if (byte0 + 8 <= nbytes) {
		uint8_t b[8];
		memcpy(b, bm + byte0, 8);
		v = get_le64(b);
	} else {
		for (uint64_t i = 0; byte0 + i < nbytes; i++)
			v |= (uint64_t)bm[byte0 + i] << (8 * i);
	}
	if (nbits - first < 64)
		v &= (UINT64_C(1) << (nbits - first)) - 1;
	return v;
}

uint64_t bitmap_count(const uint8_t *bm, uint64_t nbits)
{
	uint64_t n = 0, words = (nbits + 63) / 64;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(word_at(bm, nbits, w));
	return n;
}

uint64_t bitmap_next_set(const uint8_t *bm, uint64_t nbits, uint64_t from)
{
	if (from >= nbits)
		return nbits;
	uint64_t w = from / 64, words = (nbits + 63) / 64;
	uint64_t v = word_at(bm, nbits, w) & (~UINT64_C(0) << (from % 64));
	while (!v) {
		if (++w >= words)
			return nbits;
		v = word_at(bm, nbits, w);
	}
	return w * 64 + (uint64_t)__builtin_ctzll(v);
}

uint64_t bitmap_run(const uint8_t *bm, uint64_t nbits, uint64_t from, uint64_t max)
{
	uint64_t i = from, limit = nbits - from < max ? nbits : from + max;
	if (from >= nbits)
		return 0;
	while (i < limit) {
		uint64_t w = i / 64;
		uint64_t v = ~word_at(bm, nbits, w) >> (i % 64);  /* zeros mark used bits */
		uint64_t span = 64 - i % 64;
		uint64_t ones = v ? (uint64_t)__builtin_ctzll(v) : span;
		if (ones > span)
			ones = span;
		i += ones;
		if (ones < span)
			break;
	}
	return (i < limit ? i : limit) - from;
}

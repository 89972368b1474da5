/*
 * formats/bitmap.c - counting and scanning the used-block bitmaps of backup
 * images (bit i = bit (i & 7) of byte i >> 3, LSB first), 64 bits at a time.
 *
 * Also the rank index over a bitmap, which random access uses to find a
 * block's place among the stored blocks.
 *
 * Not here: where a bitmap is stored or how it is checked (format readers).
 */
#include <stdlib.h>
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

int rank_index_build(struct rank_index *ri, const uint8_t *bm, uint64_t nbits, uint32_t k)
{
	ri->bm = bm;
	ri->nbits = nbits;
	ri->k = k;
	ri->entries = nbits / k + 1;
	ri->ranks = malloc(ri->entries * sizeof *ri->ranks);
	if (!ri->ranks)
		return IMG_E_IO;
	uint64_t count = 0;
	for (uint64_t i = 0; i < ri->entries; i++) {
		ri->ranks[i] = count;
		uint64_t first = i * k;
		if (first < nbits)
			count += bitmap_count(bm + first / 8, nbits - first < k ? nbits - first : k);
	}
	return IMG_OK;
}

uint64_t rank_index_rank(const struct rank_index *ri, uint64_t b)
{
	uint64_t i = b / ri->k, first = i * ri->k;
	return ri->ranks[i] + bitmap_count(ri->bm + first / 8, b - first);
}

uint64_t rank_index_select(const struct rank_index *ri, uint64_t r)
{
	uint64_t lo = 0, hi = ri->entries;
	while (hi - lo > 1) {
		uint64_t mid = (lo + hi) / 2;
		if (ri->ranks[mid] <= r)
			lo = mid;
		else
			hi = mid;
	}
	uint64_t b = lo * ri->k, seen = ri->ranks[lo];
	for (;;) {
		b = bitmap_next_set(ri->bm, ri->nbits, b);
		if (b >= ri->nbits || seen == r)
			return b;
		seen++;
		b++;
	}
}

void rank_index_store(const struct rank_index *ri, uint8_t *out)
{
	for (uint64_t i = 0; i < ri->entries; i++)
		for (int k = 0; k < 8; k++)
			out[8 * i + k] = (uint8_t)(ri->ranks[i] >> (8 * k));
}

int rank_index_matches(const struct rank_index *ri, const uint8_t *saved, size_t len)
{
	if (len != ri->entries * 8)
		return 0;
	for (uint64_t i = 0; i < ri->entries; i++)
		if (get_le64(saved + 8 * i) != ri->ranks[i])
			return 0;
	return 1;
}

void rank_index_free(struct rank_index *ri)
{
	free(ri->ranks);
	ri->ranks = NULL;
}

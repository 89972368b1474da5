/*
 * formats/checksum.c - the data checksums of backup images: CRC-32 (zlib's,
 * crc32_fast in io/crc.c), XXH64 and XXH3-128 (libxxhash), each
 * with a digest in the byte form the image stores.
 *
 * A running state can be saved as bytes and taken up again (an index keeps
 * the state of a running checksum every few groups): its fields one by one,
 * little-endian, never the struct (XXH3's holds a pointer to its secret).
 *
 * Not here: where checksums sit in an image or when they are reset (the
 * format readers decide that).
 */
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY  /* the state's fields, to save and restore them */
#include <xxhash.h>
#include <zlib.h>

#include "fmt.h"

size_t hash_size(enum img_hash_kind kind)
{
	switch (kind) {
	case HASH_CRC32: return 4;
	case HASH_XXH64: return 8;
	case HASH_XXH128: return 16;
	default: return 0;
	}
}

int hash_init(img_hash *h, enum img_hash_kind kind)
{
	memset(h, 0, sizeof *h);
	h->kind = kind;
	if (kind == HASH_XXH64)
		h->state = XXH64_createState();
	else if (kind == HASH_XXH128)
		h->state = XXH3_createState();
	if ((kind == HASH_XXH64 || kind == HASH_XXH128) && !h->state)
		return IMG_E_IO;
	hash_reset(h);
	return IMG_OK;
}

void hash_reset(img_hash *h)
{
	h->crc = 0;
	if (h->kind == HASH_XXH64)
		XXH64_reset(h->state, 0);
	else if (h->kind == HASH_XXH128)
		XXH3_128bits_reset(h->state);
}

void hash_update(img_hash *h, const void *p, size_t n)
{
	switch (h->kind) {
	case HASH_CRC32: h->crc = crc32_fast(h->crc, p, n); break;
	case HASH_XXH64: XXH64_update(h->state, p, n); break;
	case HASH_XXH128: XXH3_128bits_update(h->state, p, n); break;
	default: break;
	}
}

static void put_le64(uint8_t *out, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

size_t hash_digest(const img_hash *h, uint8_t out[16])
{
	switch (h->kind) {
	case HASH_CRC32: {
		uint32_t v = ~h->crc;  /* partclone stores the register without the final XOR */
		for (int i = 0; i < 4; i++)
			out[i] = (uint8_t)(v >> (8 * i));
		return 4;
	}
	case HASH_XXH64:
		put_le64(out, XXH64_digest(h->state));
		return 8;
	case HASH_XXH128: {
		XXH128_hash_t d = XXH3_128bits_digest(h->state);
		put_le64(out, d.low64);
		put_le64(out + 8, d.high64);
		return 16;
	}
	default:
		return 0;
	}
}

void hash_free(img_hash *h)
{
	if (h->kind == HASH_XXH64)
		XXH64_freeState(h->state);
	else if (h->kind == HASH_XXH128)
		XXH3_freeState(h->state);
	h->state = NULL;
}

int hash_copy(img_hash *dst, const img_hash *src)
{
	dst->crc = src->crc;
	if (src->kind == HASH_XXH64)
		XXH64_copyState(dst->state, src->state);
	else if (src->kind == HASH_XXH128)
		XXH3_copyState(dst->state, src->state);
	return dst->kind == src->kind ? IMG_OK : IMG_E_USAGE;
}

/* The fields of libxxhash's XXH64 state: named v/mem64/memsize up to 0.8.1,
 * acc/buffer/bufferedSize from 0.8.2 on. */
#if XXH_VERSION_NUMBER >= 802
#define X64_LANES(s) ((s)->acc)
#define X64_BUF(s) ((uint8_t *)(s)->buffer)
#define X64_BUFFERED(s) ((s)->bufferedSize)
#elif XXH_VERSION_NUMBER == 801
#define X64_LANES(s) ((s)->v)
#define X64_BUF(s) ((uint8_t *)(s)->mem64)
#define X64_BUFFERED(s) ((s)->memsize)
#else
#error "formats/checksum.c needs libxxhash 0.8.1 or later (the XXH64 state's field names)"
#endif

/* Saved forms: CRC32 the register (4 bytes); XXH64 length hashed (8), four
 * lanes (32), buffer (32), bytes buffered (4); XXH128 length hashed (8),
 * stripes in the block (8), bytes buffered (4), eight lanes (64), buffer
 * (256: its tail is read even when fewer bytes are buffered). */
#define X64_SAVED (8 + 32 + 32 + 4)
#define X3_BUFFER 256
#define X3_SAVED (8 + 8 + 4 + 64 + X3_BUFFER)

size_t hash_state_size(enum img_hash_kind kind)
{
	switch (kind) {
	case HASH_CRC32: return 4;
	case HASH_XXH64: return X64_SAVED;
	case HASH_XXH128: return X3_SAVED;
	default: return 0;
	}
}

static void put_le32(uint8_t *out, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

void hash_state_save(const img_hash *h, uint8_t *out)
{
	if (h->kind == HASH_CRC32) {
		put_le32(out, h->crc);
	} else if (h->kind == HASH_XXH64) {
		const XXH64_state_t *s = h->state;
		put_le64(out, s->total_len);
		for (int i = 0; i < 4; i++)
			put_le64(out + 8 + 8 * i, X64_LANES(s)[i]);
		memcpy(out + 40, X64_BUF(s), 32);
		put_le32(out + 72, X64_BUFFERED(s));
	} else if (h->kind == HASH_XXH128) {
		const XXH3_state_t *s = h->state;
		put_le64(out, s->totalLen);
		put_le64(out + 8, (uint64_t)s->nbStripesSoFar);
		put_le32(out + 16, s->bufferedSize);
		for (int i = 0; i < 8; i++)
			put_le64(out + 20 + 8 * i, s->acc[i]);
		memcpy(out + 84, s->buffer, X3_BUFFER);
	}
}

int hash_state_load(img_hash *h, const uint8_t *in, uint64_t hashed)
{
	hash_reset(h);  /* the fields not saved (seed, secret) as a fresh state has them */
	if (h->kind == HASH_CRC32) {
		h->crc = le32(in);
	} else if (h->kind == HASH_XXH64) {
		XXH64_state_t *s = h->state;
		uint32_t buffered = le32(in + 72);
		if (le64(in) != hashed || buffered != hashed % 32)
			return IMG_E_CORRUPT;
		s->total_len = hashed;
		for (int i = 0; i < 4; i++)
			X64_LANES(s)[i] = le64(in + 8 + 8 * i);
		memcpy(X64_BUF(s), in + 40, 32);
		X64_BUFFERED(s) = buffered;
	} else if (h->kind == HASH_XXH128) {
		XXH3_state_t *s = h->state;
		uint64_t stripes = le64(in + 8);
		uint32_t buffered = le32(in + 16);
		if (le64(in) != hashed || buffered > X3_BUFFER || buffered > hashed ||
		    stripes >= s->nbStripesPerBlock)
			return IMG_E_CORRUPT;
		s->totalLen = hashed;
		s->nbStripesSoFar = (size_t)stripes;
		s->bufferedSize = buffered;
		for (int i = 0; i < 8; i++)
			s->acc[i] = le64(in + 20 + 8 * i);
		memcpy(s->buffer, in + 84, X3_BUFFER);
	}
	return IMG_OK;
}

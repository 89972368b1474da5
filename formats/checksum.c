/*
 * formats/checksum.c - the data checksums of backup images: CRC-32 (zlib's,
 * crc32_fast in io/crc.c), XXH64 and XXH3-128 (libxxhash), each
 * with a digest in the byte form the image stores.
 *
 * Not here: where checksums sit in an image or when they are reset (the
 * format readers decide that).
 */
#include <stdlib.h>
#include <string.h>
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

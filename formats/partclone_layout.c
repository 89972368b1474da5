/*
 * formats/partclone_layout.c - the pure functions of a partclone image's
 * layout (partclone_layout.h): byte order, block and checksum places, group
 * bounds, the checksum comparison, format 0001's CRC rule and the error
 * texts. Shared by the walk (partclone.c) and random access
 * (partclone_access.c), so each rule and each message exists once.
 * No I/O, no state.
 */
#include <stdio.h>
#include <string.h>

#include "partclone_layout.h"

uint16_t pc_rd16(const struct pc_layout *l, const uint8_t *p)
{
	return l->big_endian ? (uint16_t)(p[0] << 8 | p[1]) : get_le16(p);
}

uint32_t pc_rd32(const struct pc_layout *l, const uint8_t *p)
{
	return l->big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
			     : get_le32(p);
}

uint64_t pc_rd64(const struct pc_layout *l, const uint8_t *p)
{
	return l->big_endian ? (uint64_t)pc_rd32(l, p) << 32 | pc_rd32(l, p + 4) : get_le64(p);
}

const char *pc_checksum_name(unsigned mode)
{
	switch (mode) {
	case CSM_NONE: return "NONE";
	case CSM_CRC32: return "CRC32";
	case CSM_XXH64: return "XXH64";
	case CSM_XXH128: return "XXH128";
	default: return "unknown";
	}
}

const char *pc_read_check_text(const struct pc_layout *l)
{
	if (l->v1)
		return "the first byte of each block, against the running CRC32_0001 checksum (it covers "
		       "nothing else: the other bytes of a block are not checked)";
	if (!l->cs)
		return "nothing: the image has no data checksums";
	if (l->reseed)
		return "every byte, against the checksum of its group";
	if (l->kind == HASH_CRC32)
		return "every byte, against the running CRC32 of its group, continued from the checksum "
		       "stored before the group";
	return "every byte, against the running checksum of its group, hashed on from a state kept in "
	       "the index; after a bad group the later groups cannot be checked and do not read";
}

uint64_t pc_next_used(const struct pc_layout *l, uint64_t from)
{
	return l->bitmap ? bitmap_next_set(l->bitmap, l->total, from) : from;
}

uint64_t pc_used_run(const struct pc_layout *l, uint64_t from, uint64_t max)
{
	if (!l->bitmap)
		return l->total - from < max ? l->total - from : max;
	return bitmap_run(l->bitmap, l->total, from, max);
}

uint64_t pc_data_offset(const struct pc_layout *l, uint64_t r)
{
	if (l->v1)
		return l->data_start + r * l->v1_stride;
	return l->data_start + r * l->bs + (l->cs ? r / l->bpc * l->cs : 0);
}

uint64_t pc_groups(const struct pc_layout *l)
{
	return l->cs ? (l->used + l->bpc - 1) / l->bpc : 0;
}

uint64_t pc_group_blocks(const struct pc_layout *l, uint64_t g)
{
	uint64_t left = l->used - g * l->bpc;
	return left < l->bpc ? left : l->bpc;
}

size_t pc_group_tail(const struct pc_layout *l)
{
	return l->v1 ? l->v1_stride - l->bs : l->cs;
}

size_t pc_checksum_in_tail(const struct pc_layout *l)
{
	return l->v1 ? l->v1_crc_at : 0;
}

uint64_t pc_checksum_offset(const struct pc_layout *l, uint64_t g)
{
	return pc_data_offset(l, g * l->bpc) + pc_group_blocks(l, g) * l->bs + pc_checksum_in_tail(l);
}

uint64_t pc_image_data_size(const struct pc_layout *l)
{
	if (l->v1)
		return l->data_start + l->used * l->v1_stride;
	return l->data_start + l->used * l->bs + pc_groups(l) * l->cs;
}

void pc_digest_as_stored(const struct pc_layout *l, uint8_t *d)
{
	if (!l->big_endian)
		return;
	size_t unit = l->cs < 8 ? l->cs : 8;
	for (size_t u = 0; u < l->cs; u += unit)
		for (size_t i = 0; i < unit / 2; i++) {
			uint8_t t = d[u + i];
			d[u + i] = d[u + unit - 1 - i];
			d[u + unit - 1 - i] = t;
		}
}

int pc_checksum_matches(const struct pc_layout *l, const img_hash *h, const uint8_t *stored)
{
	uint8_t d[16];
	hash_digest(h, d);
	pc_digest_as_stored(l, d);
	return memcmp(d, stored, l->cs) == 0;
}

void pc_group_update(const struct pc_layout *l, img_hash *h, const uint8_t *p, uint64_t pos,
		     size_t len)
{
	if (!l->v1) {
		hash_update(h, p, len);
		return;
	}
	if (pos != 0 || len == 0)
		return;
	uint8_t fill[4096];
	memset(fill, p[0], sizeof fill);
	for (uint64_t left = l->bs; left > 0;) {
		size_t step = left < sizeof fill ? (size_t)left : sizeof fill;
		hash_update(h, fill, step);
		left -= step;
	}
}

const char *pc_bad_group_text(char *out, size_t outsz, const char *checksum, uint64_t first,
			      uint64_t last, uint64_t g)
{
	snprintf(out, outsz, "%s checksum mismatch in blocks %llu-%llu (checksum group %llu)", checksum,
		 (unsigned long long)first, (unsigned long long)last, (unsigned long long)g);
	return out;
}

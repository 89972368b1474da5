/*
 * io/zunits.c - the unit finders of img_codec.unit_len (zseek.h): where an
 * independently decodable unit of compressed data ends, found from headers
 * and magics without decoding, so io/zpar.c can decode units on two cores.
 *
 *  - bzip2: a unit is one stream ("BZh" + level, blocks, the end-of-stream
 *    magic 0x177245385090, the combined CRC, zero bits up to a byte), as
 *    pbzip2 writes one per block. The next stream starts at a byte with
 *    "BZh1".."BZh9" and a block (or end-of-stream) magic, and the 80 bits
 *    before it, give or take the padding bits, must be an end-of-stream
 *    magic and a CRC. Such bytes can occur by chance inside compressed
 *    data: the layer finds out when the unit before fails to decode alone,
 *    and then decodes from there in one piece.
 *  - zstd: a unit is one frame with the skippable frames before it (pzstd
 *    writes one before each frame), walked by its header and block
 *    headers: the frame header's size from its descriptor byte, each
 *    block's 3-byte header (last flag, type, size), the optional 4-byte
 *    checksum. Exact: no guessing.
 *
 * Not here: decoding (the codecs' start(), io/bz2.c, io/zseek_zstd.c), the
 * layer that uses the finders (io/zpar.c).
 */
#include <string.h>

#include "codec_util.h"
#include "zseek.h"

/* ---- bzip2 ---------------------------------------------------------------------- */

#define BZ_BLOCK_MAGIC 0x314159265359ULL
#define BZ_EOS_MAGIC 0x177245385090ULL
#define BZ_HEAD 4  /* "BZh" + level */
#define BZ_MAGIC_BYTES 6

/* 48 bits of p from bit `bit` on (most significant first). */
static uint64_t bits48(const uint8_t *p, uint64_t bit)
{
	const uint8_t *q = p + (bit >> 3);
	int sh = (int)(bit & 7);
	uint64_t v = 0;
	for (int i = 0; i < 7; i++)
		v = v << 8 | (i < 6 || sh ? q[i] : 0);
	return (v >> (8 - sh)) & 0xFFFFFFFFFFFFULL;
}

/* Does a stream header start at p (BZ_HEAD + BZ_MAGIC_BYTES bytes visible)? */
static int bz_stream_head(const uint8_t *p)
{
	if (memcmp(p, "BZh", 3) != 0 || p[3] < '1' || p[3] > '9')
		return 0;
	uint64_t m = bits48(p + BZ_HEAD, 0);
	return m == BZ_BLOCK_MAGIC || m == BZ_EOS_MAGIC;
}

/* Does a stream end right before byte j of p: an end-of-stream magic, a
 * 32-bit CRC and 0..7 zero padding bits? */
static int bz_stream_ends_at(const uint8_t *p, size_t j)
{
	for (int pad = 0; pad < 8; pad++) {
		uint64_t end = (uint64_t)j * 8 - (uint64_t)pad;
		if (end < (uint64_t)(BZ_HEAD + BZ_MAGIC_BYTES + 4 + 1) * 8)
			break;
		if (pad && (p[j - 1] & ((1u << pad) - 1)) != 0)
			break;
		if (bits48(p, end - 80) == BZ_EOS_MAGIC)
			return 1;
	}
	return 0;
}

size_t zs_bzip2_unit_len(const uint8_t *p, size_t n, int at_end)
{
	const size_t head = BZ_HEAD + BZ_MAGIC_BYTES;
	if (n < head)
		return at_end ? ZS_UNIT_NONE : 0;
	if (!bz_stream_head(p))
		return ZS_UNIT_NONE;
	/* the shortest stream: a header and an end-of-stream magic + CRC */
	for (size_t j = head + 4; j + head <= n;) {
		const uint8_t *b = memchr(p + j, 'B', n - head + 1 - j);
		if (!b)
			break;
		j = (size_t)(b - p);
		if (bz_stream_head(b) && bz_stream_ends_at(p, j))
			return j;
		j++;
	}
	return at_end ? n : 0;
}

/* ---- zstd -------------------------------------------------------------------------- */

#define ZSTD_MAGIC 0xFD2FB528u
#define ZSTD_SKIP_MAGIC 0x184D2A50u  /* low 4 bits free */
#define ZSTD_BLOCK_HEADER 3
#define ZSTD_CHECKSUM 4

/* The frame header's length, from its descriptor byte. */
static size_t zstd_header_len(uint8_t fhd)
{
	static const size_t did[4] = { 0, 1, 2, 4 }, fcs[4] = { 0, 2, 4, 8 };
	int single = (fhd >> 5) & 1;
	size_t fcs_len = fcs[fhd >> 6];
	if ((fhd >> 6) == 0 && single)
		fcs_len = 1;
	return 4 + 1 + (single ? 0 : 1) + did[fhd & 3] + fcs_len;
}

/* The end of the frame at p[off] (magic checked), or 0 when it goes past n,
 * or ZS_UNIT_NONE when a block header is invalid. */
static uint64_t zstd_frame_end(const uint8_t *p, size_t n, uint64_t off)
{
	if (off + 5 > n)
		return 0;
	uint8_t fhd = p[off + 4];
	if (fhd & 0x08)  /* the reserved bit */
		return ZS_UNIT_NONE;
	int checksum = (fhd >> 2) & 1;
	off += zstd_header_len(fhd);
	for (;;) {
		if (off + ZSTD_BLOCK_HEADER > n)
			return 0;
		uint32_t h = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16;
		uint32_t type = (h >> 1) & 3, size = h >> 3;
		if (type == 3)
			return ZS_UNIT_NONE;
		off += ZSTD_BLOCK_HEADER + (type == 1 ? 1 : size);
		if (h & 1)
			break;
	}
	off += checksum ? ZSTD_CHECKSUM : 0;
	return off > n ? 0 : off;
}

size_t zs_zstd_unit_len(const uint8_t *p, size_t n, int at_end)
{
	size_t need = at_end ? ZS_UNIT_NONE : 0;
	uint64_t off = 0;
	for (;;) {
		if (off + 4 > n)
			return need;
		uint32_t m = codec_le32(p + off);
		if ((m & 0xFFFFFFF0u) != ZSTD_SKIP_MAGIC)
			break;
		if (off + 8 > n)
			return need;
		off += 8 + (uint64_t)codec_le32(p + off + 4);
	}
	if (codec_le32(p + off) != ZSTD_MAGIC)
		return ZS_UNIT_NONE;
	uint64_t end = zstd_frame_end(p, n, off);
	return end == 0 ? need : (size_t)end;
}

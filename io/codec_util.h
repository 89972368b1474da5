/*
 * io/codec_util.h - helpers shared by the codecs, private to io/ and
 * implemented in codecs.c: the staging of whole decoded blocks (lz4.c,
 * lzop.c) and small byte helpers. (Every codec words its errors with
 * zseek.h's zs_corrupt, zs_truncated and zs_input_finish; io/zstream.c
 * defers an error found after good bytes for all of them.)
 *
 * Not here: the codec table (io.h, codecs.c) or anything a caller outside
 * io/ needs.
 */
#ifndef IMGBK_IO_CODEC_UTIL_H
#define IMGBK_IO_CODEC_UTIL_H

#include "io.h"

/* Most bytes handed to one library call (zlib/libbz2 count in unsigned int). */
#define CODEC_MAX_STEP ((size_t)1 << 30)

/*
 * Decoders that decode whole blocks (lz4.c, lzop.c): a block goes
 * straight into the caller's buffer when its largest size fits there, else
 * into a staging buffer that the next reads hand out first.
 */
struct codec_stage {
	uint8_t *buf;
	size_t cap, pos, len;  /* buf[pos..len) waits to be handed out */
};

/* Where a block of up to `most` bytes goes: dst when room >= most, else the
 * stage (grown to most). NULL when out of memory. */
uint8_t *codec_stage_target(struct codec_stage *st, uint8_t *dst, size_t room, size_t most);

/* A block of n bytes was decoded at out (from codec_stage_target): *made =
 * n when it went to dst, else 0 and the stage holds it. */
void codec_stage_done(struct codec_stage *st, const uint8_t *dst, const uint8_t *out, size_t n,
		      size_t *made);

/* One step of a block decoder: a block into dst (room bytes), *made bytes
 * there; or a boundary handled (*made 0). */
typedef int (*codec_block_step)(void *dec, uint8_t *dst, size_t room, size_t *made, img_err *err);

/* zs_ops.read for such a decoder: staged bytes first, then steps until cap
 * bytes are out or *finished. */
int codec_stage_read(struct codec_stage *st, void *dec, codec_block_step step, const int *finished,
		     uint8_t *dst, size_t cap, size_t *got, img_err *err);

/* Little-endian u32 at p. */
static inline uint32_t codec_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Store v at p, little-endian. */
static inline void codec_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void codec_put_le64(uint8_t *p, uint64_t v)
{
	codec_put_le32(p, (uint32_t)v);
	codec_put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif

/*
 * io/lz4.c - the lz4 decoding layer: the frame format (liblz4 LZ4F, magic
 * 04 22 4D 18) and the legacy format of `lz4 -l` (magic 02 21 4C 18, then
 * blocks of u32 LE compressed size + data, each decoding to at most 8 MiB),
 * reading its input in place from the layer below.
 *
 * Like the lz4 tool, one input may hold several frames, skippable frames
 * (0x184D2A50..5F, skipped by LZ4F), and legacy streams, in any order; in a
 * legacy stream a repeated legacy magic between blocks (concatenated files)
 * is skipped. At each boundary, zero bytes up to the end of the input are
 * accepted as padding; any other byte that does not start a frame or block is
 * IMG_E_TRAILING with its offset. An input that ends inside a frame or a
 * legacy block is IMG_E_TRUNCATED.
 *
 * Frames decode straight into the buffer produce() is given. A legacy block
 * does too when 8 MiB of room are left there; else it is decoded into an
 * 8 MiB staging buffer and copied out (legacy blocks cannot be resumed).
 *
 * Not here: detecting lz4 (codecs.c).
 */
#include <errno.h>
#include <lz4.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "codec_util.h"

#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_SKIPPABLE_MASK 0xFFFFFFF0u
#define LZ4_SKIPPABLE_MAGIC 0x184D2A50u
#define LEGACY_BLOCK_MAX ((size_t)8 << 20)

enum lz4_mode { LZ4_AT_BOUNDARY, LZ4_IN_FRAME, LZ4_IN_LEGACY };

struct lz4_dec {
	LZ4F_dctx *dctx;
	enum lz4_mode mode;
	int finished;       /* the input ended cleanly */
	uint64_t units;     /* frames and legacy streams started */
	int last_legacy;    /* the last unit was a legacy stream (for messages) */
	uint8_t *stage;     /* legacy block decoded, not yet handed out */
	size_t stage_pos, stage_len;
	struct codec_defer d;
};

static int is_frame_magic(uint32_t m)
{
	return m == LZ4_FRAME_MAGIC || (m & LZ4_SKIPPABLE_MASK) == LZ4_SKIPPABLE_MAGIC;
}

/* Between frames/streams: pick what comes next, or end, or record trailing garbage. */
static int lz4_next_unit(img_stream *s, struct lz4_dec *l)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 4, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&l->d, rc);
		return rc;
	}
	uint32_t m = avail >= 4 ? codec_le32(p) : 0;
	if (avail >= 4 && m == LZ4_LEGACY_MAGIC) {
		stream_consume(s->up, 4);
		l->units++;
		l->last_legacy = 1;
		l->mode = LZ4_IN_LEGACY;
		return IMG_OK;
	}
	static const uint8_t magic[4] = { 0x04, 0x22, 0x4D, 0x18 };
	/* A cut frame magic at the very end: LZ4F reports the frame truncated. */
	int cut = avail > 0 && avail < 4 && memcmp(p, magic, avail) == 0;
	if (l->units == 0 || cut || (avail >= 4 && is_frame_magic(m))) {
		l->units++;
		l->last_legacy = 0;
		l->mode = LZ4_IN_FRAME;  /* LZ4F reads the magic (and rejects a wrong one) */
		return IMG_OK;
	}
	rc = codec_finish_input(s, &l->d, l->last_legacy ? "lz4 legacy block" : "lz4 frame");
	if (rc == IMG_OK)
		l->finished = 1;
	return rc;
}

/* Run LZ4F once over the visible input. @return IMG_OK or a status (recorded). */
static int lz4_frame_step(img_stream *s, struct lz4_dec *l, uint8_t *out, size_t room,
			  size_t *made)
{
	const uint8_t *in;
	size_t avail;
	int rc = stream_peek(s->up, 1, &in, &avail);
	if (rc < 0) {
		codec_raise_up(&l->d, rc);
		return rc;
	}
	size_t used = avail < CODEC_LOCATE_STEP ? avail : CODEC_LOCATE_STEP, outsz = room;
	size_t ret = LZ4F_decompress(l->dctx, out, &outsz, in, &used, NULL);
	uint64_t at = s->up->offset + (LZ4F_isError(ret) ? 0 : used);
	*made = LZ4F_isError(ret) ? 0 : outsz;
	if (LZ4F_isError(ret)) {
		codec_corrupt(&l->d, at, "lz4", LZ4F_getErrorName(ret));
		return IMG_E_CORRUPT;
	}
	stream_consume(s->up, used);
	if (ret == 0) {
		l->mode = LZ4_AT_BOUNDARY;
		return IMG_OK;
	}
	if (used > 0 || outsz > 0)
		return IMG_OK;
	if (avail == 0)
		codec_truncated(&l->d, at, "lz4 frame");
	else
		codec_corrupt(&l->d, at, "lz4", "the decoder made no progress");
	return l->d.code;
}

/* Hand out staged legacy bytes. */
static size_t lz4_unstage(struct lz4_dec *l, uint8_t *out, size_t room)
{
	size_t n = l->stage_len - l->stage_pos;
	if (n > room)
		n = room;
	memcpy(out, l->stage + l->stage_pos, n);
	l->stage_pos += n;
	return n;
}

/* Decode one legacy block of `size` bytes at in (visible). @return IMG_OK or a status. */
static int lz4_legacy_block(img_stream *s, struct lz4_dec *l, const uint8_t *in, uint32_t size,
			    uint8_t *out, size_t room, size_t *made)
{
	uint8_t *to = out;
	if (room < LEGACY_BLOCK_MAX) {
		if (!l->stage && !(l->stage = malloc(LEGACY_BLOCK_MAX))) {
			codec_nomem(&l->d, s->up->offset, "lz4");
			return IMG_E_IO;
		}
		to = l->stage;
	}
	int n = LZ4_decompress_safe((const char *)in, (char *)to, (int)size, (int)LEGACY_BLOCK_MAX);
	if (n < 0) {
		codec_raise(&l->d, IMG_E_CORRUPT, 0, s->up->offset,
			    "invalid compressed data at byte %llu of the compressed stream "
			    "(lz4: legacy block of %u bytes does not decode)",
			    (unsigned long long)s->up->offset, size);
		return IMG_E_CORRUPT;
	}
	stream_consume(s->up, size);
	if (to == out) {
		*made = (size_t)n;
	} else {
		l->stage_pos = 0;
		l->stage_len = (size_t)n;
		*made = lz4_unstage(l, out, room);
	}
	return IMG_OK;
}

/* One step of a legacy stream: the next block, a repeated magic, or its end. */
static int lz4_legacy_step(img_stream *s, struct lz4_dec *l, uint8_t *out, size_t room,
			   size_t *made)
{
	const uint8_t *p;
	size_t avail;
	if (l->stage_pos < l->stage_len) {
		*made = lz4_unstage(l, out, room);
		return IMG_OK;
	}
	int rc = stream_peek(s->up, 4, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&l->d, rc);
		return rc;
	}
	uint32_t size = avail >= 4 ? codec_le32(p) : 0;
	if (size == LZ4_LEGACY_MAGIC) {
		stream_consume(s->up, 4);
		return IMG_OK;
	}
	if (size == 0 || size > (uint32_t)LZ4_compressBound((int)LEGACY_BLOCK_MAX)) {
		l->mode = LZ4_AT_BOUNDARY;  /* end of input, a frame, padding or garbage */
		return IMG_OK;
	}
	rc = stream_peek(s->up, 4 + (size_t)size, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&l->d, rc);
		return rc;
	}
	if (avail < 4 + (size_t)size) {
		codec_truncated(&l->d, s->up->offset + avail, "lz4 legacy block");
		return IMG_E_TRUNCATED;
	}
	stream_consume(s->up, 4);
	return lz4_legacy_block(s, l, p + 4, size, out, room, made);
}

static int lz4_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct lz4_dec *l = s->priv;
	size_t done = 0;
	while (done < cap && !l->finished && l->d.code == IMG_OK) {
		size_t made = 0;
		int rc;
		if (l->mode == LZ4_IN_FRAME)
			rc = lz4_frame_step(s, l, dst + done, cap - done, &made);
		else if (l->mode == LZ4_IN_LEGACY)
			rc = lz4_legacy_step(s, l, dst + done, cap - done, &made);
		else
			rc = lz4_next_unit(s, l);
		done += made;
		if (rc != IMG_OK)
			break;
	}
	return codec_done(s, &l->d, done, got);
}

static void lz4_close(img_stream *s)
{
	struct lz4_dec *l = s->priv;
	LZ4F_freeDecompressionContext(l->dctx);
	free(l->stage);
	free(l);
}

static const struct img_stream_ops lz4_ops = { "lz4", lz4_produce, lz4_close };

int codec_lz4_open(img_stream *up, img_stream **out)
{
	struct lz4_dec *l = calloc(1, sizeof *l);
	if (!l || LZ4F_isError(LZ4F_createDecompressionContext(&l->dctx, LZ4F_VERSION))) {
		free(l);
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: lz4: out of memory", up->path);
	}
	int rc = codec_layer_new(up, &lz4_ops, l, out);
	if (rc != IMG_OK)
		lz4_close(&(img_stream){ .priv = l });
	return rc;
}

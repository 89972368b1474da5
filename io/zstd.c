/*
 * io/zstd.c - the zstd decoding layer (libzstd ZSTD_decompressStream),
 * decoding straight into the buffer produce() is given and reading its input
 * in place from the layer below.
 *
 * Multi-frame: frames follow each other (zstd -T, pzstd, `cat a.zst b.zst`);
 * skippable frames (magic 0x184D2A50..5F, pzstd writes one first) are
 * skipped by libzstd itself. At each frame boundary the next 4 bytes must be
 * a zstd or skippable magic; otherwise zero bytes up to the end of the input
 * are accepted as padding and any other byte is IMG_E_TRAILING with its
 * offset. An input that ends inside a frame is IMG_E_TRUNCATED.
 *
 * Windows up to 128 MiB are accepted, the limit of the zstd tool itself
 * (windowLog 27: every level, --ultra -22 included): imgbk stays within its
 * memory bound on a rescue stick. A frame made with --long=28..31 is rejected
 * with the command that decodes it (zstd --long=31 -dc IMAGE | imgbk ... -).
 *
 * Not here: detecting zstd (codecs.c), the legacy v0.x formats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec_util.h"

#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define ZSTD_SKIPPABLE_MASK 0xFFFFFFF0u
#define ZSTD_SKIPPABLE_MAGIC 0x184D2A50u
/* 128 MiB, as the zstd tool's default decoding limit. */
#define ZSTD_WINDOW_LOG_LIMIT 27

struct zs_dec {
	ZSTD_DStream *ds;
	int mid_frame;     /* a frame started and its end was not seen */
	int finished;      /* the input ended cleanly */
	uint64_t frames;   /* frames started (skippable ones included) */
	struct codec_defer d;
};

static int is_frame_magic(uint32_t m)
{
	return m == ZSTD_FRAME_MAGIC || (m & ZSTD_SKIPPABLE_MASK) == ZSTD_SKIPPABLE_MAGIC;
}

/* At a frame boundary: let the next frame start, or end, or record trailing garbage. */
static int zs_next_frame(img_stream *s, struct zs_dec *z)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 4, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&z->d, rc);
		return rc;
	}
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	/* A cut frame magic at the very end: libzstd reports the frame truncated. */
	int cut = avail > 0 && avail < 4 && memcmp(p, magic, avail) == 0;
	if (z->frames == 0 || cut || (avail >= 4 && is_frame_magic(codec_le32(p)))) {
		z->frames++;
		z->mid_frame = 1;
		return IMG_OK;
	}
	rc = codec_finish_input(s, &z->d, "zstd frame");
	if (rc == IMG_OK)
		z->finished = 1;
	return rc;
}

static void zs_error(struct zs_dec *z, uint64_t at, size_t ret)
{
	if (ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation)
		codec_nomem(&z->d, at, "libzstd");
	else if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge)
		codec_corrupt(&z->d, at, "zstd",
			      "the frame needs a window over 128 MiB (made with zstd --long=28 or more); "
			      "decode it with: zstd --long=31 -dc IMAGE | imgbk APPLET -");
	else
		codec_corrupt(&z->d, at, "zstd", ZSTD_getErrorName(ret));
}

/* Run the decoder once over the visible input. @return IMG_OK or a status (recorded). */
static int zs_step(img_stream *s, struct zs_dec *z, uint8_t *out, size_t room, size_t *made)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 1, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&z->d, rc);
		return rc;
	}
	ZSTD_inBuffer in = { p, avail < CODEC_LOCATE_STEP ? avail : CODEC_LOCATE_STEP, 0 };
	ZSTD_outBuffer ob = { out, room, 0 };
	size_t ret = ZSTD_decompressStream(z->ds, &ob, &in);
	*made = ob.pos;
	uint64_t at = s->up->offset + in.pos;
	stream_consume(s->up, in.pos);
	if (ZSTD_isError(ret)) {
		zs_error(z, at, ret);
		return z->d.code;
	}
	if (ret == 0) {
		z->mid_frame = 0;
		return IMG_OK;
	}
	if (in.pos > 0 || ob.pos > 0)
		return IMG_OK;
	if (avail == 0)
		codec_truncated(&z->d, at, "zstd frame");
	else
		codec_corrupt(&z->d, at, "zstd", "the decoder made no progress");
	return z->d.code;
}

static int zs_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct zs_dec *z = s->priv;
	size_t done = 0;
	while (done < cap && !z->finished && z->d.code == IMG_OK) {
		size_t made = 0;
		int rc = z->mid_frame ? zs_step(s, z, dst + done, cap - done, &made)
				      : zs_next_frame(s, z);
		done += made;
		if (rc != IMG_OK)
			break;
	}
	return codec_done(s, &z->d, done, got);
}

static void zs_close(img_stream *s)
{
	struct zs_dec *z = s->priv;
	ZSTD_freeDStream(z->ds);
	free(z);
}

static const struct img_stream_ops zs_ops = { "zstd", zs_produce, zs_close };

int codec_zstd_open(img_stream *up, img_stream **out)
{
	struct zs_dec *z = calloc(1, sizeof *z);
	ZSTD_DStream *ds = z ? ZSTD_createDStream() : NULL;
	if (!ds) {
		free(z);
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", up->path);
	}
	z->ds = ds;
	ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_LIMIT);
	int rc = codec_layer_new(up, &zs_ops, z, out);
	if (rc != IMG_OK)
		zs_close(&(img_stream){ .priv = z });
	return rc;
}

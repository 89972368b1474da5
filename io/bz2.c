/*
 * io/bz2.c - the bzip2 decoding layer (libbz2), decoding straight into the
 * buffer produce() is given and reading its input in place from the layer
 * below.
 *
 * Multi-stream: pbzip2 and lbzip2 write many complete bzip2 streams one after
 * the other; when a stream ends and the next bytes are "BZh", the next stream
 * is decoded too. After the last stream, zero bytes up to the end of the
 * input are accepted as padding; any other byte is IMG_E_TRAILING with its
 * offset. An input that ends inside a stream is IMG_E_TRUNCATED.
 *
 * Not here: detecting bzip2 (codecs.c).
 */
#include <bzlib.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec_util.h"

struct bz_dec {
	bz_stream z;
	int live;          /* z is initialised */
	int in_stream;     /* a stream started and its end was not seen */
	int finished;      /* the input ended cleanly */
	uint64_t streams;  /* streams started */
	struct codec_defer d;
};

static const char *bz_error_name(int rc)
{
	switch (rc) {
	case BZ_DATA_ERROR: return "data integrity error";
	case BZ_DATA_ERROR_MAGIC: return "not a bzip2 stream header";
	case BZ_PARAM_ERROR: return "parameter error";
	case BZ_CONFIG_ERROR: return "library misconfigured";
	default: return "decoder error";
	}
}

/* (Re)initialise the decoder for a new stream. */
static int bz_start(img_stream *s, struct bz_dec *b)
{
	if (b->live)
		BZ2_bzDecompressEnd(&b->z);
	memset(&b->z, 0, sizeof b->z);
	b->live = 0;
	int rc = BZ2_bzDecompressInit(&b->z, 0, 0);
	if (rc == BZ_MEM_ERROR) {
		codec_nomem(&b->d, s->up->offset, "libbz2");
		return IMG_E_IO;
	}
	if (rc != BZ_OK) {
		codec_corrupt(&b->d, s->up->offset, "libbz2", bz_error_name(rc));
		return IMG_E_CORRUPT;
	}
	b->live = 1;
	b->in_stream = 1;
	b->streams++;
	return IMG_OK;
}

/* At a stream boundary: start the next stream, or end, or record trailing garbage. */
static int bz_next_stream(img_stream *s, struct bz_dec *b)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 3, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&b->d, rc);
		return rc;
	}
	/* "B" or "BZ" at the very end is a cut stream: libbz2 reports it truncated. */
	if (b->streams == 0 || (avail > 0 && memcmp(p, "BZh", avail < 3 ? avail : 3) == 0))
		return bz_start(s, b);
	rc = codec_finish_input(s, &b->d, "bzip2 stream");
	if (rc == IMG_OK)
		b->finished = 1;
	return rc;
}

/* Run the decoder once over the visible input. @return IMG_OK or a status (recorded). */
static int bz_step(img_stream *s, struct bz_dec *b, uint8_t *out, size_t room, size_t *made)
{
	const uint8_t *in;
	size_t avail;
	int rc = stream_peek(s->up, 1, &in, &avail);
	if (rc < 0) {
		codec_raise_up(&b->d, rc);
		return rc;
	}
	unsigned in_len = (unsigned)(avail < CODEC_MAX_STEP ? avail : CODEC_MAX_STEP);
	unsigned out_len = (unsigned)(room < CODEC_MAX_STEP ? room : CODEC_MAX_STEP);
	b->z.next_in = (char *)in;
	b->z.avail_in = in_len;
	b->z.next_out = (char *)out;
	b->z.avail_out = out_len;
	int brc = BZ2_bzDecompress(&b->z);
	size_t used = in_len - b->z.avail_in;
	*made = out_len - b->z.avail_out;
	uint64_t at = s->up->offset + used;
	stream_consume(s->up, used);
	if (brc == BZ_STREAM_END) {
		b->in_stream = 0;
		return IMG_OK;
	}
	if (brc == BZ_MEM_ERROR) {
		codec_nomem(&b->d, at, "libbz2");
		return IMG_E_IO;
	}
	if (brc != BZ_OK) {
		codec_corrupt(&b->d, at, "libbz2", bz_error_name(brc));
		return IMG_E_CORRUPT;
	}
	if (used > 0 || *made > 0)
		return IMG_OK;
	if (avail == 0)
		codec_truncated(&b->d, at, "bzip2 stream");
	else
		codec_corrupt(&b->d, at, "libbz2", "the decoder made no progress");
	return b->d.code;
}

static int bz_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct bz_dec *b = s->priv;
	size_t done = 0;
	while (done < cap && !b->finished && b->d.code == IMG_OK) {
		size_t made = 0;
		int rc = b->in_stream ? bz_step(s, b, dst + done, cap - done, &made)
				      : bz_next_stream(s, b);
		done += made;
		if (rc != IMG_OK)
			break;
	}
	return codec_done(s, &b->d, done, got);
}

static void bz_close(img_stream *s)
{
	struct bz_dec *b = s->priv;
	if (b->live)
		BZ2_bzDecompressEnd(&b->z);
	free(b);
}

static const struct img_stream_ops bz_ops = { "bzip2", bz_produce, bz_close };

int codec_bzip2_open(img_stream *up, img_stream **out)
{
	struct bz_dec *b = calloc(1, sizeof *b);
	if (!b)
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: bzip2: out of memory", up->path);
	int rc = codec_layer_new(up, &bz_ops, b, out);
	if (rc != IMG_OK)
		free(b);
	return rc;
}

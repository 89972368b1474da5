/*
 * io/xz.c - the xz and lzma-alone (.lzma) decoding layers (liblzma),
 * decoding straight into the buffer produce() is given and reading their
 * input in place from the layer below.
 *
 * xz: lzma_stream_decoder_mt with LZMA_CONCATENATED: many streams, many
 * blocks, stream padding (zeros in multiples of 4, as the xz format allows).
 * Blocks that carry their sizes (xz -T output) are decoded on up to
 * XZ_MAX_THREADS threads; memory for threading is capped at a quarter of RAM
 * (the xz tool's default), beyond which liblzma falls back to one thread.
 * Anything after the last stream that is not a stream or padding is reported
 * by liblzma as corrupt data (IMG_E_CORRUPT, with the offset), as xz does.
 *
 * lzma-alone: lzma_alone_decoder, one stream (the format cannot be
 * concatenated). After its end, zero bytes up to the end of the input are
 * accepted as padding and any other byte is IMG_E_TRAILING with its offset.
 *
 * Both: an input that ends inside a stream is IMG_E_TRUNCATED.
 *
 * Not here: detecting xz or the lzma-alone heuristic (codecs.c), .lz (lzip).
 */
#include <errno.h>
#include <lzma.h>
#include <stdlib.h>

#include "codec_util.h"

#define XZ_MAX_THREADS 8
/* Hostile-input limit: a 20-byte .lzma header may ask for a 4 GiB dictionary.
 * The xz tool writes dictionaries of at most 1.5 GiB; more is rejected as
 * "memory usage limit reached" (IMG_E_CORRUPT) instead of allocated. */
#define XZ_MEMLIMIT ((uint64_t)1600 << 20)

struct xz_dec {
	lzma_stream z;
	int alone;         /* lzma-alone, not xz */
	int stream_ended;  /* lzma-alone: the stream ended, only padding may follow */
	int finished;      /* the input ended cleanly */
	int idle;          /* calls in a row without progress */
	struct codec_defer d;
};

static const char *xz_unit(const struct xz_dec *x)
{
	return x->alone ? "lzma stream" : "xz stream";
}

const char *codec_lzma_error_name(int ret)
{
	switch (ret) {
	case LZMA_FORMAT_ERROR: return "file format not recognized";
	case LZMA_OPTIONS_ERROR: return "unsupported compression options";
	case LZMA_DATA_ERROR: return "compressed data is corrupt";
	case LZMA_BUF_ERROR: return "the decoder made no progress";
	case LZMA_MEMLIMIT_ERROR: return "memory usage limit reached";
	case LZMA_MEM_ERROR: return "out of memory";
	case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
	default: return "internal error";
	}
}

/* Record the outcome of an lzma_code() call that returned `ret`. */
static int xz_outcome(struct xz_dec *x, lzma_ret ret, uint64_t at, int at_eof, int progress)
{
	if (ret == LZMA_STREAM_END) {
		if (x->alone)
			x->stream_ended = 1;
		else
			x->finished = 1;
		return IMG_OK;
	}
	if (ret == LZMA_OK) {
		x->idle = progress ? 0 : x->idle + 1;
		if (x->idle < 3)  /* liblzma says LZMA_BUF_ERROR on the 2nd idle call */
			return IMG_OK;
		ret = LZMA_BUF_ERROR;
	}
	if (ret == LZMA_MEM_ERROR)
		codec_nomem(&x->d, at, "liblzma");
	else if (ret == LZMA_BUF_ERROR && at_eof)
		codec_truncated(&x->d, at, xz_unit(x));
	else
		codec_corrupt(&x->d, at, x->alone ? "lzma" : "xz", codec_lzma_error_name(ret));
	return x->d.code;
}

/* Run the decoder once over the visible input. @return IMG_OK or a status (recorded). */
static int xz_step(img_stream *s, struct xz_dec *x, uint8_t *out, size_t room, size_t *made)
{
	const uint8_t *in;
	size_t avail;
	int rc = stream_peek(s->up, 1, &in, &avail);
	if (rc < 0) {
		codec_raise_up(&x->d, rc);
		return rc;
	}
	x->z.next_in = in;
	x->z.avail_in = avail;
	x->z.next_out = out;
	x->z.avail_out = room;
	lzma_ret ret = lzma_code(&x->z, avail == 0 ? LZMA_FINISH : LZMA_RUN);
	size_t used = avail - x->z.avail_in;
	*made = room - x->z.avail_out;
	uint64_t at = s->up->offset + used;
	stream_consume(s->up, used);
	return xz_outcome(x, ret, at, avail == 0, used > 0 || *made > 0);
}

static int xz_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct xz_dec *x = s->priv;
	size_t done = 0;
	while (done < cap && !x->finished && x->d.code == IMG_OK) {
		size_t made = 0;
		int rc;
		if (x->stream_ended) {
			rc = codec_finish_input(s, &x->d, xz_unit(x));
			x->finished = rc == IMG_OK;
		} else {
			rc = xz_step(s, x, dst + done, cap - done, &made);
		}
		done += made;
		if (rc != IMG_OK)
			break;
	}
	return codec_done(s, &x->d, done, got);
}

static void xz_close(img_stream *s)
{
	struct xz_dec *x = s->priv;
	lzma_end(&x->z);
	free(x);
}

static const struct img_stream_ops xz_ops = { "xz", xz_produce, xz_close };
static const struct img_stream_ops lzma_ops = { "lzma", xz_produce, xz_close };

static lzma_ret xz_init_decoder(lzma_stream *z)
{
	uint32_t threads = lzma_cputhreads();
	lzma_mt mt = {
		.flags = LZMA_CONCATENATED,
		.threads = threads == 0 ? 1 : threads > XZ_MAX_THREADS ? XZ_MAX_THREADS : threads,
		.timeout = 0,
		.memlimit_threading = lzma_physmem() / 4,
		.memlimit_stop = XZ_MEMLIMIT,
	};
	if (mt.memlimit_threading == 0)
		mt.memlimit_threading = (uint64_t)1 << 30;
	lzma_ret ret = lzma_stream_decoder_mt(z, &mt);
	if (ret != LZMA_OK)
		ret = lzma_stream_decoder(z, XZ_MEMLIMIT, LZMA_CONCATENATED);
	return ret;
}

static int xz_open_common(img_stream *up, int alone, img_stream **out)
{
	struct xz_dec *x = calloc(1, sizeof *x);
	const char *name = alone ? "lzma" : "xz";
	if (!x)
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", up->path,
				   name);
	x->z = (lzma_stream)LZMA_STREAM_INIT;
	x->alone = alone;
	lzma_ret ret = alone ? lzma_alone_decoder(&x->z, XZ_MEMLIMIT) : xz_init_decoder(&x->z);
	if (ret != LZMA_OK) {
		free(x);
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: %s: cannot set up liblzma (error %d)", up->path, name, (int)ret);
	}
	int rc = codec_layer_new(up, alone ? &lzma_ops : &xz_ops, x, out);
	if (rc != IMG_OK)
		xz_close(&(img_stream){ .priv = x });
	return rc;
}

int codec_xz_open(img_stream *up, img_stream **out)
{
	return xz_open_common(up, 0, out);
}

int codec_lzma_open(img_stream *up, img_stream **out)
{
	return xz_open_common(up, 1, out);
}

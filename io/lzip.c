/*
 * io/lzip.c - the lzip decoding layer (lzlib): lzip -3 and plzip -3, the
 * compressors Clonezilla's -z6/-z6p run. Sequential reads only: no access
 * points (random reads of lzip data are not offered; access.c names the
 * command that decompresses it).
 *
 * Multi-member: plzip writes many members one after the other; lzlib
 * decodes them in turn and checks each member's CRC-32 and sizes. Bytes
 * after the last member that are not another member are IMG_E_TRAILING (as
 * lzip -d says "trailing data"); an input that ends inside a member is
 * IMG_E_TRUNCATED.
 *
 * lzlib copies its input (LZ_decompress_write): the offset an error names
 * is the count of compressed bytes the decoder had taken when it failed.
 *
 * Not here: detecting lzip (codecs.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <lzlib.h>

#include "codec_util.h"

struct lz_dec {
	struct LZ_Decoder *z;
	int input_done;    /* LZ_decompress_finish was called */
	int finished;      /* the last member ended and the input with it */
	struct codec_defer d;
};

/* Hand the decoder what it takes of the visible input, or tell it the input ended. */
static int lz_feed(img_stream *s, struct lz_dec *l, int *fed)
{
	*fed = 0;
	int room = LZ_decompress_write_size(l->z);
	if (room <= 0)
		return IMG_OK;
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 1, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&l->d, rc);
		return rc;
	}
	if (avail == 0) {
		LZ_decompress_finish(l->z);
		l->input_done = 1;
		return IMG_OK;
	}
	int n = avail < (size_t)room ? (int)avail : room;
	int w = LZ_decompress_write(l->z, p, n);
	if (w < 0) {
		codec_corrupt(&l->d, s->up->offset, "lzlib", "the decoder refused its input");
		return IMG_E_CORRUPT;
	}
	stream_consume(s->up, (size_t)w);
	*fed = w;
	return IMG_OK;
}

/* A failed LZ_decompress_read, as an error of ours. */
static int lz_fail(struct lz_dec *l)
{
	uint64_t at = LZ_decompress_total_in_size(l->z);
	switch (LZ_decompress_errno(l->z)) {
	case LZ_mem_error:
		codec_nomem(&l->d, at, "lzlib");
		break;
	case LZ_unexpected_eof:
		codec_truncated(&l->d, at, "lzip member");
		break;
	case LZ_header_error:
		if (LZ_decompress_total_out_size(l->z) > 0 || LZ_decompress_member_finished(l->z))
			codec_raise(&l->d, IMG_E_TRAILING, 0, at,
				    "trailing garbage at byte %llu of the compressed stream, after the last "
				    "lzip member", (unsigned long long)at);
		else
			codec_corrupt(&l->d, at, "lzlib", "not an lzip member header");
		break;
	case LZ_data_error:
		codec_corrupt(&l->d, at, "lzlib", "damaged member data, CRC-32 or size");
		break;
	default:
		codec_corrupt(&l->d, at, "lzlib", "decoder error");
		break;
	}
	return l->d.code;
}

static int lz_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct lz_dec *l = s->priv;
	size_t done = 0;
	while (done < cap && !l->finished && l->d.code == IMG_OK) {
		int fed = 0;
		if (!l->input_done && lz_feed(s, l, &fed) != IMG_OK)
			break;
		size_t want = cap - done < INT_MAX ? cap - done : INT_MAX;
		int r = LZ_decompress_read(l->z, dst + done, (int)want);
		if (r < 0) {
			lz_fail(l);
			break;
		}
		done += (size_t)r;
		if (LZ_decompress_finished(l->z) == 1) {
			l->finished = 1;
			break;
		}
		if (r == 0 && fed == 0 && l->input_done) {
			codec_truncated(&l->d, LZ_decompress_total_in_size(l->z), "lzip member");
			break;
		}
	}
	return codec_done(s, &l->d, done, got);
}

static void lz_close(img_stream *s)
{
	struct lz_dec *l = s->priv;
	if (l->z)
		LZ_decompress_close(l->z);
	free(l);
}

static const struct img_stream_ops lz_ops = { "lzip", lz_produce, lz_close };

int codec_lzip_open(img_stream *up, img_stream **out)
{
	struct lz_dec *l = calloc(1, sizeof *l);
	if (l)
		l->z = LZ_decompress_open();
	if (!l || !l->z || LZ_decompress_errno(l->z) != LZ_ok) {
		if (l && l->z)
			LZ_decompress_close(l->z);
		free(l);
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: lzip: out of memory", up->path);
	}
	int rc = codec_layer_new(up, &lz_ops, l, out);
	if (rc != IMG_OK) {
		LZ_decompress_close(l->z);
		free(l);
	}
	return rc;
}

/*
 * io/zstream.c - the one sequential decoding layer: a codec's decoder
 * (zseek.h, zs_ops.start) started at the start of the layer below's data,
 * reading it in place through peek/consume (struct zs_input over a stream),
 * decoding straight into the buffer produce() is given.
 *
 * The deferral: produce() must not lose the bytes decoded before damage (or
 * the end of a truncated input) was found in the same call. The decoder
 * reports into this layer's own error slot; when bytes came with the error,
 * they go out and the error is handed to the stack's slot by the next
 * produce(), which then makes no bytes.
 *
 * A codec whose data has independent units (img_codec.unit_len) gets the
 * layer of io/zpar.c instead, which decodes them on two cores.
 *
 * Not here: any codec (gz.c, ...), the choice of codec (open.c, codecs.c).
 */
#include <errno.h>
#include <stdlib.h>

#include "zseek.h"

struct zstream {
	const struct zs_ops *ops;
	void *dec;
	struct zs_point first;  /* all zeros: the start of the data */
	struct zs_defer d;      /* the decoder's errors, and one deferred */
	struct img_stream_ops sops;  /* named after the codec, for messages */
};

/* Hand the decoder's error to the stack's slot. @return its code. */
static int report(img_stream *s, const img_err *e, int code)
{
	if (e->code == IMG_OK)  /* the layer below failed: its message is in the slot */
		return code;
	return img_err_set(s->err, e->code, e->sys_errno, e->has_offset, e->offset, "%s", e->msg);
}

int zs_defer_due(img_stream *s, struct zs_defer *d)
{
	return d->pending ? report(s, &d->err, d->pending) : IMG_OK;
}

int zs_defer_outcome(img_stream *s, struct zs_defer *d, int rc, size_t got)
{
	if (rc == IMG_OK)
		return IMG_OK;
	if (got > 0) {
		d->pending = rc;
		return IMG_OK;
	}
	return report(s, &d->err, rc);
}

static int zstream_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct zstream *z = s->priv;
	*got = 0;
	int rc = zs_defer_due(s, &z->d);
	if (rc != IMG_OK)
		return rc;
	rc = z->ops->read(z->dec, dst, cap, got, &z->d.err);
	return zs_defer_outcome(s, &z->d, rc, *got);
}

static void zstream_close(img_stream *s)
{
	struct zstream *z = s->priv;
	if (z->dec)
		z->ops->close(z->dec);
	free(z);
}

int zs_stream_open(img_stream *up, const char *codec, const struct zs_ops *ops, img_stream **out)
{
	struct zstream *z = calloc(1, sizeof *z);
	if (!z)
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", up->path, codec);
	z->ops = ops;
	z->sops = (struct img_stream_ops){ codec, zstream_produce, zstream_close, NULL, NULL };
	struct zs_start st = { .up = up, .name = up->path ? up->path : "?", .p = &z->first, .whole = 1 };
	int rc = ops->start(&st, &z->dec, &z->d.err);
	if (rc != IMG_OK) {
		img_err_set(up->err, z->d.err.code ? z->d.err.code : rc, z->d.err.sys_errno, z->d.err.has_offset,
			    z->d.err.offset, "%s", z->d.err.msg);
		free(z);
		return rc;
	}
	img_stream *s = stream_new(&z->sops, z, up, NULL, NULL, 0);
	if (!s) {
		ops->close(z->dec);
		free(z);
		return IMG_E_IO;
	}
	s->decodes_ahead = ops->decodes_ahead;
	*out = s;
	return IMG_OK;
}

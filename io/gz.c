/*
 * io/gz.c - the gzip decoding layer (zlib inflate with the gzip wrapper,
 * windowBits 16+MAX_WBITS), decoding straight into the buffer produce() is
 * given and reading its input in place from the layer below.
 *
 * Multi-member: when a member ends and the next two bytes are 1F 8B, the
 * next member follows (pigz, `cat a.gz b.gz`); the output is the
 * concatenation. After the last member, zero bytes up to the end of the
 * input are accepted as padding (a tape block or a device larger than the
 * file; every member's CRC-32 and length were checked, so no data is lost or
 * made up). Any other byte after a member is IMG_E_TRAILING naming its offset
 * (GNU gzip only warns "trailing garbage ignored"; we do not drop bytes
 * silently). An input that ends inside a member is IMG_E_TRUNCATED.
 *
 * Not here: detecting gzip (codecs.c), zlib-wrapped or raw deflate data.
 */
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>

#include "codec_util.h"

struct gz_dec {
	z_stream z;
	int in_member;      /* a member started and its end was not seen */
	int finished;       /* the input ended cleanly */
	uint64_t members;   /* members started */
	struct codec_defer d;
};

/* At a member boundary: start the next member, or end, or record trailing garbage. */
static int gz_next_member(img_stream *s, struct gz_dec *g)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(s->up, 2, &p, &avail);
	if (rc < 0) {
		codec_raise_up(&g->d, rc);
		return rc;
	}
	/* A lone 1F at the very end is a cut member: inflate reports it truncated. */
	int magic = (avail >= 2 && p[0] == 0x1F && p[1] == 0x8B) || (avail == 1 && p[0] == 0x1F);
	if (g->members == 0 || magic) {
		if (g->members > 0 && inflateReset(&g->z) != Z_OK) {
			codec_corrupt(&g->d, s->up->offset, "zlib", "inflateReset failed");
			return IMG_E_CORRUPT;
		}
		g->members++;
		g->in_member = 1;
		return IMG_OK;
	}
	rc = codec_finish_input(s, &g->d, "gzip member");
	if (rc == IMG_OK)
		g->finished = 1;
	return rc;
}

/* Run inflate once over the visible input. @return IMG_OK or a status (recorded). */
static int gz_step(img_stream *s, struct gz_dec *g, uint8_t *out, size_t room, size_t *made)
{
	const uint8_t *in;
	size_t avail;
	int rc = stream_peek(s->up, 1, &in, &avail);
	if (rc < 0) {
		codec_raise_up(&g->d, rc);
		return rc;
	}
	uInt in_len = (uInt)(avail < CODEC_MAX_STEP ? avail : CODEC_MAX_STEP);
	uInt out_len = (uInt)(room < CODEC_MAX_STEP ? room : CODEC_MAX_STEP);
	g->z.next_in = (Bytef *)in;
	g->z.avail_in = in_len;
	g->z.next_out = out;
	g->z.avail_out = out_len;
	int zrc = inflate(&g->z, Z_NO_FLUSH);
	size_t used = in_len - g->z.avail_in;
	*made = out_len - g->z.avail_out;
	uint64_t at = s->up->offset + used;
	stream_consume(s->up, used);
	if (zrc == Z_STREAM_END) {
		g->in_member = 0;
		return IMG_OK;
	}
	if (zrc == Z_MEM_ERROR) {
		codec_nomem(&g->d, at, "zlib");
		return IMG_E_IO;
	}
	if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
		codec_corrupt(&g->d, at, "zlib", g->z.msg ? g->z.msg : zError(zrc));
		return IMG_E_CORRUPT;
	}
	if (used > 0 || *made > 0)
		return IMG_OK;
	if (avail == 0)
		codec_truncated(&g->d, at, "gzip member");
	else
		codec_corrupt(&g->d, at, "zlib", "the decoder made no progress");
	return g->d.code;
}

static int gz_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct gz_dec *g = s->priv;
	size_t done = 0;
	while (done < cap && !g->finished && g->d.code == IMG_OK) {
		size_t made = 0;
		int rc = g->in_member ? gz_step(s, g, dst + done, cap - done, &made)
				      : gz_next_member(s, g);
		done += made;
		if (rc != IMG_OK)
			break;
	}
	return codec_done(s, &g->d, done, got);
}

static void gz_close(img_stream *s)
{
	struct gz_dec *g = s->priv;
	inflateEnd(&g->z);
	free(g);
}

static const struct img_stream_ops gz_ops = { "gzip", gz_produce, gz_close };

int codec_gzip_open(img_stream *up, img_stream **out)
{
	struct gz_dec *g = calloc(1, sizeof *g);
	if (!g)
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: out of memory", up->path);
	if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) {
		free(g);
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: cannot set up zlib", up->path);
	}
	int rc = codec_layer_new(up, &gz_ops, g, out);
	if (rc != IMG_OK)
		gz_close(&(img_stream){ .priv = g });
	return rc;
}

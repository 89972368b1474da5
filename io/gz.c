/*
 * io/gz.c - gzip: the codec's one decoder (zseek.h, zs_ops.start), used for
 * the sequential stream, the scan and random reads alike.
 *
 * From a member start it inflates with the gzip wrapper (zlib, windowBits
 * 16+MAX_WBITS), so every member's CRC-32 and length are checked. Started
 * whole (stream, scan) it goes on through every member: when one ends and
 * the next two bytes are 1F 8B, another follows (pigz, `cat a.gz b.gz`);
 * after the last, zero bytes up to the end are padding (a tape block, a
 * device larger than the file), any other byte is IMG_E_TRAILING naming its
 * offset (GNU gzip only warns; we drop nothing silently). An input that ends
 * inside a member is IMG_E_TRUNCATED.
 *
 * Access points, the zran.c idea: every member start is one without state
 * (aux 0); in scan mode inflate stops at deflate block ends (Z_BLOCK), and
 * where a point is due the decoder records the compressed offset, the bits
 * of the last byte not yet used and the 32 KiB of output before it (aux 1).
 * Started there it resumes with raw inflate, inflatePrime and
 * inflateSetDictionary, and stops at the member's end (the core goes on from
 * the next member's point). Raw inflate checks no CRC, so the scan hands its
 * output to the core, whose segment CRCs stand in for it.
 *
 * Not here: detecting gzip (codecs.c), zlib-wrapped or raw deflate data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec_util.h"
#include "zseek.h"

#define GZ_WINDOW 32768u
#define GZ_STEP_IN ((size_t)64 << 10)  /* compressed bytes wanted visible per inflate call */
/* Points inside a member every span / GZ_SPAN_DIV decoded bytes (2 MiB by
 * default): a random read inflates a whole segment, so the span is its
 * cost; each point keeps a 32 KiB window, about 21 KB packed on filesystem
 * data. On the bench image (gzip -1) the index is 1.6% of the compressed
 * size at 2 MiB (0.8% at 4 MiB, 3.1% at 1 MiB: over the 2% budget). */
#define GZ_SPAN_DIV 2

enum { POINT_MEMBER = 0, POINT_INSIDE = 1 };

struct gz_dec {
	const char *name;
	struct zs_input in;
	z_stream z;
	struct zs_scan *sc;   /* scan mode, or NULL */
	int whole;            /* go on after a member's end */
	int in_member;        /* a member started and its end was not seen */
	int finished;         /* nothing more to decode */
	uint64_t uout;        /* decoded offset of the next byte */
	uint64_t member_out;  /* decoded bytes of the current member */
	uint8_t *window;      /* scan: circular, the last GZ_WINDOW bytes of output */
	size_t wpos;          /* next write position in window */
	int wfull;            /* the window has wrapped */
};

static int gz_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return img_err_set(err, IMG_E_CORRUPT, 0, 1, at,
			   "%s: gzip: invalid compressed data at byte %llu of the compressed stream (zlib: %s)",
			   name, (unsigned long long)at, detail);
}

/* ---- scan mode: the window and the points ---------------------------------------- */

static void window_push(struct gz_dec *d, const uint8_t *p, size_t n)
{
	if (n >= GZ_WINDOW) {
		memcpy(d->window, p + n - GZ_WINDOW, GZ_WINDOW);
		d->wpos = 0;
		d->wfull = 1;
		return;
	}
	size_t k = GZ_WINDOW - d->wpos < n ? GZ_WINDOW - d->wpos : n;
	memcpy(d->window + d->wpos, p, k);
	d->wpos += k;
	if (d->wpos == GZ_WINDOW) {
		d->wpos = 0;
		d->wfull = 1;
	}
	if (n > k) {
		memcpy(d->window, p + k, n - k);
		d->wpos = n - k;
	}
}

/* Record a point inside a member, at a deflate block end. */
static int add_inside(struct gz_dec *d)
{
	uint8_t lin[GZ_WINDOW];
	size_t n;
	if (d->wfull) {
		memcpy(lin, d->window + d->wpos, GZ_WINDOW - d->wpos);
		memcpy(lin + GZ_WINDOW - d->wpos, d->window, d->wpos);
		n = GZ_WINDOW;
	} else {
		memcpy(lin, d->window, d->wpos);
		n = d->wpos;
	}
	if (n > d->member_out)  /* the window never reaches into the previous member */
		memmove(lin, lin + n - d->member_out, (size_t)d->member_out), n = (size_t)d->member_out;
	struct zs_point p = { .cin = zs_input_at(&d->in), .uout = d->uout,
			      .bits = (uint32_t)(d->z.data_type & 7), .aux = POINT_INSIDE,
			      .state_len = (uint32_t)n, .state = lin };
	return zs_add_point(d->sc, &p);
}

/* Scan mode, after an inflate call that made `made` bytes at p. */
static int scan_saw(struct gz_dec *d, const uint8_t *p, size_t made, int zr)
{
	zs_scan_output(d->sc, p, made);  /* segment CRCs: raw inflate checks none */
	window_push(d, p, made);
	/* a deflate block just ended (not the member's last): a place to restart */
	if (zr != Z_STREAM_END && (d->z.data_type & 128) && !(d->z.data_type & 64) && d->member_out > 0 &&
	    d->uout >= zs_last_state_point(d->sc) + d->sc->span / GZ_SPAN_DIV)
		return add_inside(d);
	return IMG_OK;
}

/* ---- members ------------------------------------------------------------------ */

static int begin_member(struct gz_dec *d)
{
	d->in_member = 1;
	d->member_out = 0;
	d->wpos = 0;
	d->wfull = 0;
	if (!d->sc)
		return IMG_OK;
	struct zs_point p = { .cin = zs_input_at(&d->in), .uout = d->uout, .aux = POINT_MEMBER };
	return zs_add_point(d->sc, &p);
}

/* A member ended (whole mode): start the next one, or end, or refuse trailing garbage. */
static int next_member(struct gz_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, 2, err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos;
	size_t avail = d->in.end - d->in.pos;
	/* a lone 1F at the very end is a cut member: inflate reports it truncated */
	if ((avail >= 2 && p[0] == 0x1F && p[1] == 0x8B) || (avail == 1 && p[0] == 0x1F)) {
		if (inflateReset(&d->z) != Z_OK)
			return gz_corrupt(err, d->name, zs_input_at(&d->in), "inflateReset failed");
		return begin_member(d);
	}
	rc = zs_input_finish(&d->in, d->name, "gzip", "gzip member", err);
	d->finished = rc == IMG_OK;
	return rc;
}

/* One inflate call over the visible input into dst. */
static int inflate_step(struct gz_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	int rc = zs_input_fill(&d->in, GZ_STEP_IN, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	uint64_t at = zs_input_at(&d->in);
	uInt in_len = (uInt)(avail < CODEC_MAX_STEP ? avail : CODEC_MAX_STEP);
	uInt out_len = (uInt)(room < CODEC_MAX_STEP ? room : CODEC_MAX_STEP);
	d->z.next_in = d->in.buf + d->in.pos;
	d->z.avail_in = in_len;
	d->z.next_out = dst;
	d->z.avail_out = out_len;
	int zr = inflate(&d->z, d->sc ? Z_BLOCK : Z_NO_FLUSH);
	size_t used = in_len - d->z.avail_in;
	*made = out_len - d->z.avail_out;
	d->in.pos += used;
	d->uout += *made;
	d->member_out += *made;
	if (zr == Z_MEM_ERROR)
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at + used,
				   "%s: gzip: out of memory in zlib at byte %llu of the compressed stream",
				   d->name, (unsigned long long)(at + used));
	if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END)
		return gz_corrupt(err, d->name, at + used, d->z.msg ? d->z.msg : zError(zr));
	if (d->sc && (rc = scan_saw(d, dst, *made, zr)) != IMG_OK)
		return rc;
	if (zr == Z_STREAM_END) {
		d->in_member = 0;
		d->finished = !d->whole;
		return IMG_OK;
	}
	if (used > 0 || *made > 0)
		return IMG_OK;
	if (avail == 0)
		return zs_truncated(err, d->name, "gzip", "gzip member", at);
	return gz_corrupt(err, d->name, at, "the decoder made no progress");
}

static int gz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct gz_dec *d = dp;
	*got = 0;
	while (*got < cap && !d->finished) {
		size_t made = 0;
		int rc = d->in_member ? inflate_step(d, dst + *got, cap - *got, &made, err)
				      : next_member(d, err);
		*got += made;
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

/* ---- start and end ---------------------------------------------------------------- */

static void gz_close(void *dp)
{
	struct gz_dec *d = dp;
	inflateEnd(&d->z);
	zs_input_free(&d->in);
	free(d->window);
	free(d);
}

/* Position a raw inflate at a point inside a member: the unused bits of the
 * byte before cin, then the window as the dictionary. */
static int resume_inside(struct gz_dec *d, const struct zs_point *p, img_err *err)
{
	if (p->bits) {
		int rc = zs_input_fill(&d->in, 1, err);
		if (rc != IMG_OK)
			return rc;
		if (d->in.end == d->in.pos)
			return zs_truncated(err, d->name, "gzip", "gzip member", p->cin - 1);
		int byte = d->in.buf[d->in.pos++];
		inflatePrime(&d->z, (int)p->bits, byte >> (8 - p->bits));
	}
	if (p->state_len && inflateSetDictionary(&d->z, p->state, p->state_len) != Z_OK)
		return gz_corrupt(err, d->name, p->cin, "cannot restart decoding here");
	d->in_member = 1;
	return IMG_OK;
}

static int gz_start(const struct zs_start *st, void **out, img_err *err)
{
	const struct zs_point *p = st->p;
	int inside = p->aux == POINT_INSIDE;
	if (p->aux > POINT_INSIDE || (inside && (p->bits > 7 || p->cin == 0 || p->state_len > GZ_WINDOW)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: gzip: the access point at decoded byte %llu is damaged", st->name,
				   (unsigned long long)p->uout);
	struct gz_dec *d = calloc(1, sizeof *d);
	if (!d || (st->sc && !(d->window = malloc(GZ_WINDOW)))) {
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: out of memory", st->name);
	}
	d->name = st->name;
	d->sc = st->sc;
	d->whole = st->whole && !inside;
	d->uout = p->uout;
	uint64_t from = inside && p->bits ? p->cin - 1 : p->cin;
	int rc = zs_input_start(&d->in, st, from, st->sc ? 0 : (size_t)256 << 10, err);
	if (rc != IMG_OK) {
		free(d->window);
		free(d);
		return rc;
	}
	if (inflateInit2(&d->z, inside ? -MAX_WBITS : 16 + MAX_WBITS) != Z_OK) {
		zs_input_free(&d->in);
		free(d->window);
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: cannot set up zlib", st->name);
	}
	rc = inside ? resume_inside(d, p, err) : begin_member(d);
	if (rc != IMG_OK) {
		gz_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

const struct zs_ops zs_gzip_ops = { .read = gz_read, .close = gz_close, .start = gz_start };

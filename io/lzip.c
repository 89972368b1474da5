/*
 * io/lzip.c - lzip (lzlib): lzip -3 and plzip -3, the compressors
 * Clonezilla's -z6/-z6p run. The codec's one decoder (zseek.h), used for the
 * sequential stream, the scan and random reads alike.
 *
 * Multi-member: plzip writes many members one after the other; lzlib
 * decodes them in turn and checks each member's CRC-32 and sizes. Bytes
 * after the last member that are not another member are IMG_E_TRAILING (as
 * lzip -d says "trailing data"); an input that ends inside a member is
 * IMG_E_TRUNCATED.
 *
 * Access points: every member start (no state: a member is independent).
 * A decoder started at one decodes that member, whose CRC-32 lzlib checks
 * at its end, and stops there (self_checked); the core goes on from the
 * next member's point. One member of more than LZIP_ONE_MEMBER_MAX bytes
 * (lzip, or plzip of a small file) has no inner points: the scan refuses
 * it with the command that makes it mountable (plzip: many members).
 *
 * lzlib copies its input (LZ_decompress_write): the offset an error names
 * is where the decoder started plus the compressed bytes it had taken when
 * it failed. lzlib's reads never cross a member's end, so a member ended
 * exactly when LZ_decompress_member_finished says so after a read.
 *
 * Not here: detecting lzip (codecs.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lzlib.h>

#include "zseek.h"

#define LZIP_ONE_MEMBER_MAX ((uint64_t)64 << 20)

struct lz_dec {
	const char *name;
	struct zs_input in;
	struct LZ_Decoder *z;
	struct zs_scan *sc;   /* scan mode, or NULL */
	int whole;            /* go on after a member's end */
	uint64_t base;        /* compressed offset the decoder started at */
	uint64_t uout;        /* decoded offset of the next byte */
	uint64_t members;     /* members ended */
	int point_due;        /* scan: a member starts with the next decoded byte */
	int end_seen;         /* the member end lzlib reports was counted */
	int input_done;       /* LZ_decompress_finish was called */
	int finished;
};

static uint64_t lz_at(const struct lz_dec *d)
{
	return d->base + (uint64_t)LZ_decompress_total_in_size(d->z);
}

static int lz_corrupt(const struct lz_dec *d, img_err *err, const char *detail)
{
	uint64_t at = lz_at(d);
	return img_err_set(err, IMG_E_CORRUPT, 0, 1, at,
			   "%s: lzip: invalid compressed data at byte %llu of the compressed stream (lzlib: %s)",
			   d->name, (unsigned long long)at, detail);
}

/* Hand the decoder what it takes of the visible input, or tell it the input ended. */
static int lz_feed(struct lz_dec *d, int *fed, img_err *err)
{
	*fed = 0;
	int room = LZ_decompress_write_size(d->z);
	if (room <= 0 || d->input_done)
		return IMG_OK;
	int rc = zs_input_fill(&d->in, 1, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	if (avail == 0) {
		LZ_decompress_finish(d->z);
		d->input_done = 1;
		return IMG_OK;
	}
	int n = avail < (size_t)room ? (int)avail : room;
	int w = LZ_decompress_write(d->z, d->in.buf + d->in.pos, n);
	if (w < 0)
		return lz_corrupt(d, err, "the decoder refused its input");
	d->in.pos += (size_t)w;
	*fed = w;
	return IMG_OK;
}

/* A failed LZ_decompress_read, as an error of ours. */
static int lz_fail(struct lz_dec *d, img_err *err)
{
	uint64_t at = lz_at(d);
	switch (LZ_decompress_errno(d->z)) {
	case LZ_mem_error:
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at, "%s: lzip: out of memory in lzlib at byte %llu",
				   d->name, (unsigned long long)at);
	case LZ_unexpected_eof:
		return zs_truncated(err, d->name, "lzip", "lzip member", at);
	case LZ_header_error:
		if (d->uout > 0 || d->members > 0)
			return img_err_set(err, IMG_E_TRAILING, 0, 1, at,
					   "%s: lzip: trailing garbage at byte %llu of the compressed stream, after "
					   "the last lzip member", d->name, (unsigned long long)at);
		return lz_corrupt(d, err, "not an lzip member header");
	case LZ_data_error:
		return lz_corrupt(d, err, "damaged member data, CRC-32 or size");
	default:
		return lz_corrupt(d, err, "decoder error");
	}
}

/* Scan mode: the point of a member whose first bytes were just decoded. */
static int scan_member_point(struct lz_dec *d)
{
	if (!d->sc || !d->point_due)
		return IMG_OK;
	d->point_due = 0;
	struct zs_point p = { .cin = d->base + (uint64_t)LZ_decompress_total_in_size(d->z) -
				     (uint64_t)LZ_decompress_member_position(d->z),
			      .uout = d->uout };
	return zs_add_point(d->sc, &p);
}

/* The input and the last member ended. Scan mode: refuse one huge member. */
static int lz_end(struct lz_dec *d)
{
	d->finished = 1;
	if (!d->sc || d->members != 1 || d->uout <= LZIP_ONE_MEMBER_MAX)
		return IMG_OK;
	char what[80];
	snprintf(what, sizeof what, "one lzip member of %llu bytes", (unsigned long long)d->uout);
	return zs_not_mountable(d->sc, what);
}

static int lz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct lz_dec *d = dp;
	*got = 0;
	while (*got < cap && !d->finished) {
		int fed = 0, rc = lz_feed(d, &fed, err);
		if (rc != IMG_OK)
			return rc;
		size_t want = cap - *got < INT_MAX ? cap - *got : INT_MAX;
		int r = LZ_decompress_read(d->z, dst + *got, (int)want);
		if (r < 0)
			return lz_fail(d, err);
		if (r > 0 && (rc = scan_member_point(d)) != IMG_OK)
			return rc;
		*got += (size_t)r;
		d->uout += (size_t)r;
		int ended = LZ_decompress_member_finished(d->z) == 1;
		if (ended && !d->end_seen) {
			d->members++;
			d->point_due = 1;
			if (!d->whole) {
				d->finished = 1;
				break;
			}
		}
		d->end_seen = ended;
		if (LZ_decompress_finished(d->z) == 1)
			return lz_end(d);
		if (r == 0 && fed == 0 && d->input_done)
			return zs_truncated(err, d->name, "lzip", "lzip member", lz_at(d));
	}
	return IMG_OK;
}

static void lz_close(void *dp)
{
	struct lz_dec *d = dp;
	if (d->z)
		LZ_decompress_close(d->z);
	zs_input_free(&d->in);
	free(d);
}

static int lz_start(const struct zs_start *st, void **out, img_err *err)
{
	struct lz_dec *d = calloc(1, sizeof *d);
	if (d)
		d->z = LZ_decompress_open();
	if (!d || !d->z || LZ_decompress_errno(d->z) != LZ_ok) {
		if (d && d->z)
			LZ_decompress_close(d->z);
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: lzip: out of memory", st->name);
	}
	d->name = st->name;
	d->sc = st->sc;
	d->whole = st->whole;
	d->base = st->p->cin;
	d->uout = st->p->uout;
	d->point_due = 1;
	int rc = zs_input_start(&d->in, st, st->p->cin, 0, err);
	if (rc != IMG_OK) {
		lz_close(d);
		return rc;
	}
	if (st->up)
		d->base = st->up->offset;
	*out = d;
	return IMG_OK;
}

const struct zs_ops zs_lzip_ops = { .read = lz_read, .close = lz_close, .self_checked = 1, .start = lz_start };

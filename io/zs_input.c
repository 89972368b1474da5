/*
 * io/zs_input.c - the compressed bytes as codecs read them (zseek.h): a
 * zs_input over an img_rsrc at an offset or over the img_stream below a
 * decoding layer, the kept buffers that spare each decoder fresh pages, the
 * end-of-data rule (zero padding read over, anything else trailing garbage),
 * and the one wording of codec errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

#include "zseek.h"

#define ZS_INPUT_DEFAULT ((size_t)1 << 20)
#define ZS_PROGRESS_EVERY ((uint64_t)64 << 20)  /* compressed bytes between progress reports */

/* Compressed-input buffers kept for the next decoder: a random read starts
 * one each time, and a fresh buffer is fresh pages for the kernel to fault
 * in (under AddressSanitizer, a mapping of its own each time). A few of each
 * usual size are kept, lock-free; one that does not fit goes to free(). In
 * an ASan build a kept buffer is poisoned, so a stale pointer still trips. */
#define ZS_POOL_SLOTS 4
static const size_t pool_size[] = {(size_t)256 << 10, (size_t)512 << 10, ZS_INPUT_DEFAULT};
#define ZS_POOL_SIZES (sizeof pool_size / sizeof pool_size[0])
static uint8_t *pool_slot[ZS_POOL_SIZES][ZS_POOL_SLOTS];

static int pool_class(size_t cap)
{
	for (size_t k = 0; k < ZS_POOL_SIZES; k++)
		if (pool_size[k] == cap)
			return (int)k;
	return -1;
}

uint8_t *zs_buf_take(size_t cap)
{
	int k = pool_class(cap);
	for (int i = 0; k >= 0 && i < ZS_POOL_SLOTS; i++) {
		uint8_t *b = __atomic_exchange_n(&pool_slot[k][i], NULL, __ATOMIC_ACQ_REL);
		if (b) {
			ASAN_UNPOISON_MEMORY_REGION(b, cap);
			return b;
		}
	}
	return malloc(cap);
}

void zs_buf_give(uint8_t *b, size_t cap)
{
	int k = pool_class(cap);
	if (!b)
		return;
	if (k >= 0) {
		ASAN_POISON_MEMORY_REGION(b, cap);
		for (int i = 0; i < ZS_POOL_SLOTS; i++) {
			uint8_t *none = NULL;
			if (__atomic_compare_exchange_n(&pool_slot[k][i], &none, b, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE))
				return;
		}
		ASAN_UNPOISON_MEMORY_REGION(b, cap);
	}
	free(b);
}

int zs_input_init(struct zs_input *in, img_rsrc *raw, uint64_t offset, size_t cap, img_err *err)
{
	memset(in, 0, sizeof *in);
	in->raw = raw;
	in->offset = offset;
	in->cap = cap ? cap : ZS_INPUT_DEFAULT;
	in->buf = zs_buf_take(in->cap);
	if (!in->buf)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory (compressed input buffer)",
				   rsrc_first_path(raw));
	return IMG_OK;
}

int zs_input_start(struct zs_input *in, const struct zs_start *st, uint64_t offset, size_t cap,
		   img_err *err)
{
	if (!st->up) {
		int rc = zs_input_init(in, st->raw, offset, cap, err);
		in->sc = st->sc;
		return rc;
	}
	memset(in, 0, sizeof *in);
	in->up = st->up;
	in->offset = st->up->offset;
	in->cap = STREAM_MAX_PEEK;
	return IMG_OK;
}

/* Stream source: hand back what the decoder used, then peek (zero copy). */
static int fill_from_stream(struct zs_input *in, size_t min)
{
	stream_consume(in->up, in->pos);
	const uint8_t *p = NULL;
	size_t avail = 0;
	int rc = stream_peek(in->up, min, &p, &avail);
	in->buf = rc < 0 ? NULL : (uint8_t *)p;
	in->pos = 0;
	in->end = rc < 0 ? 0 : avail;
	in->offset = in->up->offset;
	if (rc < 0)
		return rc;
	in->eof = rc == IMG_EOF;
	return IMG_OK;
}

int zs_input_fill(struct zs_input *in, size_t min, img_err *err)
{
	if (min > in->cap)
		min = in->cap;
	if (in->end - in->pos >= min || in->eof)
		return IMG_OK;
	if (in->up)
		return fill_from_stream(in, min);
	if (in->pos > 0) {
		memmove(in->buf, in->buf + in->pos, in->end - in->pos);
		in->offset += in->pos;
		in->end -= in->pos;
		in->pos = 0;
	}
	while (in->end < min && !in->eof) {
		size_t got = 0;
		int rc = rsrc_pread(in->raw, in->buf + in->end, in->cap - in->end, in->offset + in->end, &got,
				    err);
		if (rc != IMG_OK)
			return rc;
		if (got < in->cap - in->end)
			in->eof = 1;
		in->end += got;
	}
	if (in->sc && in->offset >= in->next_progress) {
		zs_scan_progress(in->sc, in->offset);
		in->next_progress = in->offset + ZS_PROGRESS_EVERY;
	}
	return IMG_OK;
}

int zs_input_need(struct zs_input *in, size_t min, img_err *err)
{
	if (!in->up && min > in->cap) {
		if (in->pos > 0) {
			memmove(in->buf, in->buf + in->pos, in->end - in->pos);
			in->offset += in->pos;
			in->end -= in->pos;
			in->pos = 0;
		}
		uint8_t *b = realloc(in->buf, min);
		if (!b)
			return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory (compressed input buffer)",
					   rsrc_first_path(in->raw));
		in->buf = b;
		in->cap = min;
	}
	return zs_input_fill(in, min, err);
}

int zs_input_finish(struct zs_input *in, const char *name, const char *codec, const char *unit,
		    img_err *err)
{
	for (;;) {
		int rc = zs_input_fill(in, 1, err);
		if (rc != IMG_OK)
			return rc;
		if (in->end == in->pos)
			return IMG_OK;
		const uint8_t *p = in->buf + in->pos;
		size_t n = in->end - in->pos, z = 0;
		while (z < n && p[z] == 0)
			z++;
		if (z < n)
			return img_err_set(err, IMG_E_TRAILING, 0, 1, zs_input_at(in) + z,
					   "%s: %s: trailing garbage at byte %llu of the compressed stream, "
					   "after the last %s (0x%02x is not the start of another one)",
					   name, codec, (unsigned long long)(zs_input_at(in) + z), unit, p[z]);
		in->pos = in->end;
	}
}

void zs_input_free(struct zs_input *in)
{
	if (in->up) {
		if (in->buf)
			stream_consume(in->up, in->pos);
	} else {
		zs_buf_give(in->buf, in->cap);
	}
	in->buf = NULL;
	in->pos = in->end = 0;
}

int zs_corrupt(img_err *err, const char *name, const char *codec, uint64_t at, const char *detail)
{
	return img_err_set(err, IMG_E_CORRUPT, 0, 1, at,
			   "%s: %s: invalid compressed data at byte %llu of the compressed stream (%s: %s)",
			   name, codec, (unsigned long long)at, codec, detail);
}

int zs_truncated(img_err *err, const char *name, const char *codec, const char *unit, uint64_t at)
{
	/* "an xz stream", "an lz4 frame", "an lzop block": by the sound of the first letter */
	const char *article = strchr("aeioux", unit[0]) || !strncmp(unit, "lz", 2) ? "an" : "a";
	return img_err_set(err, IMG_E_TRUNCATED, 0, 1, at,
			   "%s: %s: the compressed stream ends inside %s %s at byte %llu (truncated)", name,
			   codec, article, unit, (unsigned long long)at);
}

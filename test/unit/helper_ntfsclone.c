/*
 * test/unit/helper_ntfsclone.c - the shared part of the ntfsclone unit tests
 * (see helper_ntfsclone.h): the synthetic-image writer, the temp directory,
 * opening over a memory source, the checked walk and the expected device.
 *
 * Not for the library: only unit tests link it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_memsrc.h"
#include "helper_ntfsclone.h"

/* ---- a tiny ntfsclone writer ------------------------------------------- */
void nch_put(struct nch_wbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

void nch_put_le(struct nch_wbuf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	nch_put(b, x, (size_t)n);
}

void nch_w_header(struct nch_wbuf *b, const struct nch_hdr *h)
{
	nch_put(b, "\0ntfsclone-image", 16);
	uint8_t v[2] = { (uint8_t)h->major, (uint8_t)h->minor };
	nch_put(b, v, 2);
	nch_put_le(b, h->cs, 4);
	nch_put_le(b, h->dev, 8);
	nch_put_le(b, h->nr, 8);
	nch_put_le(b, h->inuse, 8);
	nch_put_le(b, h->off, 4);
	for (uint32_t i = 50; i < h->off; i++)
		nch_put(b, "\xEE", 1);  /* padding: readers must ignore its contents */
}

/* Byte i of cluster `pos` as written by generation `gen`. */
uint8_t nch_pattern(uint64_t pos, size_t i, unsigned gen)
{
	return (uint8_t)(pos * 31 + i * 7 + gen * 101 + (i >> 8));
}

void nch_w_next(struct nch_wbuf *b, uint64_t pos, size_t len, unsigned gen)
{
	nch_put(b, "\x01", 1);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = nch_pattern(pos, i, gen);
		nch_put(b, &c, 1);
	}
}

void nch_w_gap(struct nch_wbuf *b, int64_t count)
{
	nch_put(b, "\x00", 1);
	nch_put_le(b, (uint64_t)count, 8);
}

/* ---- opening and walking ------------------------------------------------ */
char nch_tmpdir[64];

const char *nch_save_tmp(const char *name, const uint8_t *data, size_t len)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/%s", nch_tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

/* Open an image over a memory source that gives at most `chunk` bytes per read. */
int nch_open_mem(const struct nch_wbuf *b, size_t chunk, img_image **out)
{
	img_image *im = calloc(1, sizeof *im);
	assert_non_null(im);
	img_options_init(&im->opt);
	snprintf(im->path, sizeof im->path, "mem");
	snprintf(im->layers, sizeof im->layers, "file");
	assert_int_equal(memsrc_open(b->p, b->len, chunk, &im->err, &im->s), IMG_OK);
	const uint8_t *p;
	size_t avail;
	stream_peek(im->s, 64, &p, &avail);
	im->fmt = fmt_detect(p, avail);
	assert_ptr_equal(im->fmt, &fmt_ntfsclone);
	int rc = im->fmt->open(im);
	im->info.format = im->fmt->name;
	im->field_list.fields = im->fields;
	*out = im;
	return rc;
}

/* Walk with img_next_runs(max) (max 0: img_next_run). Checks every run's shape. */
void nch_walk_image(img_image *im, size_t max, struct nch_walk *w)
{
	memset(w, 0, sizeof *w);
	const img_info *in = img_get_info(im);
	w->dev_size = in->device_size;
	/* hostile headers can claim huge devices: only small ones are rebuilt */
	if (in->device_size <= ((uint64_t)64 << 20)) {
		w->dev = calloc(1, in->device_size);
		assert_non_null(w->dev);
	}
	w->ascending = 1;
	uint64_t last_end = 0;
	img_run runs[256];
	int rc;
	for (;;) {
		size_t n = 0;
		if (max == 0) {
			rc = img_next_run(im, &runs[0]);
			n = rc == IMG_OK;
		} else {
			rc = img_next_runs(im, runs, max, &n);
			if (rc == IMG_OK)
				assert_true(n >= 1 && n <= max);
			else
				assert_int_equal(n, 0);
		}
		if (rc != IMG_OK)
			break;
		if (n > w->max_batch)
			w->max_batch = n;
		/* every pointer of the batch is still valid here (poisoned buffers
		 * in the unit-test library would show a stale one) */
		for (size_t i = 0; i < n; i++) {
			const img_run *r = &runs[i];
			assert_int_equal(r->nblocks, 1);
			assert_int_equal(r->offset, r->first_block * in->block_size);
			assert_true(r->len >= 1 && r->len <= in->block_size);
			assert_true(r->offset + r->len <= in->device_size);
			assert_true(r->first_block < in->total_blocks);
			assert_int_equal(r->verified, 0);
			if (r->offset < last_end)
				w->ascending = 0;
			last_end = r->offset + r->len;
			if (w->dev)
				memcpy(w->dev + r->offset, r->data, r->len);
			if (w->nruns < 64)
				w->first[w->nruns] = r->first_block;
			w->nruns++;
		}
	}
	w->rc = rc;
	w->blocks_done = img_blocks_done(im);
	snprintf(w->msg, sizeof w->msg, "%s", img_error(im)->msg);
	w->err_offset = img_error(im)->offset;
	/* the end is sticky */
	img_run r;
	assert_int_equal(img_next_run(im, &r), rc);
}

int nch_walk_file(const char *path, size_t max, struct nch_walk *w, img_err *err)
{
	img_image *im;
	int rc = img_open(path, NULL, &im, err);
	if (rc != IMG_OK)
		return rc;
	nch_walk_image(im, max, w);
	img_close(im);
	return IMG_OK;
}

void nch_expect_init(struct nch_expect *e, uint64_t size)
{
	e->dev = calloc(1, size);
	e->size = size;
	assert_non_null(e->dev);
}

void nch_expect_cluster(struct nch_expect *e, uint32_t cs, uint64_t pos, size_t len, unsigned gen)
{
	for (size_t i = 0; i < len; i++)
		e->dev[pos * cs + i] = nch_pattern(pos, i, gen);
}

/* ---- images both test files use ---------------------------------------- */
/* 10.1, 512-byte clusters, 8 clusters + backup boot sector of `last` bytes. */
void nch_build_v101(struct nch_wbuf *b, struct nch_expect *e, size_t last)
{
	struct nch_hdr h = { 10, 1, 512, 8 * 512 + last, 8, 4, 56 };
	memset(b, 0, sizeof *b);
	nch_w_header(b, &h);
	nch_expect_init(e, h.dev);
	uint64_t used[] = { 0, 1, 5, 7 };
	uint64_t pos = 0;
	for (size_t i = 0; i < 4; i++) {
		if (used[i] != pos)
			nch_w_gap(b, (int64_t)(used[i] - pos));
		nch_w_next(b, used[i], 512, 0);
		nch_expect_cluster(e, 512, used[i], 512, 0);
		pos = used[i] + 1;
	}
	nch_w_next(b, 8, last, 0);  /* backup boot sector */
	nch_expect_cluster(e, 512, 8, last, 0);
}

/* 4 KiB clusters over more than the stream buffer: runs of used clusters
 * with gaps, a partial backup boot sector. */
void nch_build_large(struct nch_wbuf *b, struct nch_expect *e)
{
	const uint64_t nr = 3000;
	struct nch_hdr h = { 10, 1, 4096, nr * 4096 + 3584, nr, 0, 56 };
	memset(b, 0, sizeof *b);
	uint64_t inuse = 0;
	for (uint64_t c = 0; c < nr; c++)
		inuse += (c % 97) < 80;
	h.inuse = inuse;
	nch_w_header(b, &h);
	nch_expect_init(e, h.dev);
	uint64_t pos = 0;
	for (uint64_t c = 0; c < nr; c++) {
		if ((c % 97) >= 80)
			continue;
		if (c != pos)
			nch_w_gap(b, (int64_t)(c - pos));
		nch_w_next(b, c, 4096, 0);
		nch_expect_cluster(e, 4096, c, 4096, 0);
		pos = c + 1;
	}
	if (pos != nr)
		nch_w_gap(b, (int64_t)(nr - pos));
	nch_w_next(b, nr, 3584, 0);
	nch_expect_cluster(e, 4096, nr, 3584, 0);
}

/* ---- the group fixture ----------------------------------------------------- */
int nch_setup(void **state)
{
	(void)state;
	snprintf(nch_tmpdir, sizeof nch_tmpdir, "/tmp/imgbk-nc-XXXXXX");
	return mkdtemp(nch_tmpdir) ? 0 : -1;
}

int nch_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", nch_tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}


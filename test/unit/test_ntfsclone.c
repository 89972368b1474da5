/*
 * test/unit/test_ntfsclone.c - unit tests of formats/ntfsclone.c: synthetic
 * ntfsclone streams built in memory by a tiny writer (10.0 and 10.1, partial
 * last cluster, metadata-style negative GAPs, every header field out of
 * range, bad command bytes, truncation, trailing bytes, GAP 0), walked one
 * run at a time and in batches, from temp files, gzip files and a memory
 * source that hands out a few bytes per read; a mutation fuzz; and the real
 * ntfsclone fixtures in test/data (NTFSCLONE.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/fmt.h"
#include "helper_memsrc.h"

/* ---- a tiny ntfsclone writer ------------------------------------------- */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct wbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_le(struct wbuf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, (size_t)n);
}

struct hdr {
	unsigned major, minor;
	uint32_t cs;
	uint64_t dev, nr, inuse;
	uint32_t off;
};

static void w_header(struct wbuf *b, const struct hdr *h)
{
	put(b, "\0ntfsclone-image", 16);
	uint8_t v[2] = { (uint8_t)h->major, (uint8_t)h->minor };
	put(b, v, 2);
	put_le(b, h->cs, 4);
	put_le(b, h->dev, 8);
	put_le(b, h->nr, 8);
	put_le(b, h->inuse, 8);
	put_le(b, h->off, 4);
	for (uint32_t i = 50; i < h->off; i++)
		put(b, "\xEE", 1);  /* padding: readers must ignore its contents */
}

/* Byte i of cluster `pos` as written by generation `gen`. */
static uint8_t pattern(uint64_t pos, size_t i, unsigned gen)
{
	return (uint8_t)(pos * 31 + i * 7 + gen * 101 + (i >> 8));
}

static void w_next(struct wbuf *b, uint64_t pos, size_t len, unsigned gen)
{
	put(b, "\x01", 1);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = pattern(pos, i, gen);
		put(b, &c, 1);
	}
}

static void w_gap(struct wbuf *b, int64_t count)
{
	put(b, "\x00", 1);
	put_le(b, (uint64_t)count, 8);
}

/* ---- opening and walking ------------------------------------------------ */
static char tmpdir[64];

static const char *save_tmp(const char *name, const uint8_t *data, size_t len)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

/* Open an image over a memory source that gives at most `chunk` bytes per read. */
static int open_mem(const struct wbuf *b, size_t chunk, img_image **out)
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

struct walk {
	int rc;            /* status that ended the walk */
	uint8_t *dev;      /* restored device, records applied in stream order */
	uint64_t dev_size;
	size_t nruns;
	uint64_t first[64];  /* first_block of the first 64 runs */
	uint64_t blocks_done;
	int ascending;
	size_t max_batch;  /* most runs one call gave */
	char msg[512];
	uint64_t err_offset;
};

/* Walk with img_next_runs(max) (max 0: img_next_run). Checks every run's shape. */
static void walk_image(img_image *im, size_t max, struct walk *w)
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

static int walk_file(const char *path, size_t max, struct walk *w, img_err *err)
{
	img_image *im;
	int rc = img_open(path, NULL, &im, err);
	if (rc != IMG_OK)
		return rc;
	walk_image(im, max, w);
	img_close(im);
	return IMG_OK;
}

/* Expected device: apply records the way the writer emitted them. */
struct expect {
	uint8_t *dev;
	uint64_t size;
};

static void expect_init(struct expect *e, uint64_t size)
{
	e->dev = calloc(1, size);
	e->size = size;
	assert_non_null(e->dev);
}

static void expect_cluster(struct expect *e, uint32_t cs, uint64_t pos, size_t len, unsigned gen)
{
	for (size_t i = 0; i < len; i++)
		e->dev[pos * cs + i] = pattern(pos, i, gen);
}

/* ---- well-formed streams ------------------------------------------------ */
/* 10.1, 512-byte clusters, 8 clusters + backup boot sector of `last` bytes. */
static void build_v101(struct wbuf *b, struct expect *e, size_t last)
{
	struct hdr h = { 10, 1, 512, 8 * 512 + last, 8, 4, 56 };
	memset(b, 0, sizeof *b);
	w_header(b, &h);
	expect_init(e, h.dev);
	uint64_t used[] = { 0, 1, 5, 7 };
	uint64_t pos = 0;
	for (size_t i = 0; i < 4; i++) {
		if (used[i] != pos)
			w_gap(b, (int64_t)(used[i] - pos));
		w_next(b, used[i], 512, 0);
		expect_cluster(e, 512, used[i], 512, 0);
		pos = used[i] + 1;
	}
	w_next(b, 8, last, 0);  /* backup boot sector */
	expect_cluster(e, 512, 8, last, 0);
}

static void test_v101_full_last(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 512);
	img_image *im;
	assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
	const img_info *in = img_get_info(im);
	assert_string_equal(in->format, "ntfsclone");
	assert_string_equal(in->format_version, "10.1");
	assert_string_equal(in->fs, "NTFS");
	assert_string_equal(in->checksum, "NONE");
	assert_int_equal(in->has_checksums, 0);
	assert_int_equal(in->block_size, 512);
	assert_int_equal(in->device_size, 4608);
	assert_int_equal(in->total_blocks, 9);
	assert_int_equal(in->used_blocks, 4);
	const img_field_list *fl = img_get_fields(im);
	assert_string_equal(fl->title, "NtfsClone Header");
	assert_int_equal(fl->label_width, 20);
	assert_string_equal(fl->separator, ": ");
	assert_int_equal(fl->count, 7);
	const char *labels[] = { "major_ver", "minor_ver", "cluster_size", "device_size",
				 "nr_clusters", "inuse", "offset_to_image_data" };
	const char *texts[] = { "10", "1", "512", "4,608 (4.5 KB)", "8", "4 (2.0 KB)", "56" };
	for (size_t i = 0; i < 7; i++) {
		assert_string_equal(fl->fields[i].label, labels[i]);
		assert_string_equal(fl->fields[i].key, labels[i]);
		assert_string_equal(fl->fields[i].text, texts[i]);
		assert_int_equal(fl->fields[i].is_number, 1);
	}
	assert_int_equal(fl->fields[3].number, 4608);
	struct walk w;
	walk_image(im, 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 5);
	assert_int_equal(w.blocks_done, 5);  /* records: inuse + the backup boot sector */
	uint64_t order[] = { 0, 1, 5, 7, 8 };
	assert_memory_equal(w.first, order, sizeof order);
	assert_true(w.ascending);
	assert_memory_equal(w.dev, e.dev, e.size);
	img_close(im);
	free(w.dev);
	free(e.dev);
	free(b.p);
}

static void test_v101_partial_last(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 100);
	const char *path = save_tmp("partial.nc", b.p, b.len);
	struct walk w;
	img_err err;
	assert_int_equal(walk_file(path, 0, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 5);
	assert_int_equal(w.dev_size, 8 * 512 + 100);
	assert_memory_equal(w.dev, e.dev, e.size);
	free(w.dev);
	/* the same in batches */
	assert_int_equal(walk_file(path, 16, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 5);
	assert_int_equal(w.max_batch, 5);
	assert_memory_equal(w.dev, e.dev, e.size);
	free(w.dev);
	free(e.dev);
	free(b.p);
}

/* The device ends with the volume: the backup boot sector record is empty. */
static void test_v101_empty_backup_record(void **state)
{
	(void)state;
	struct wbuf b = { 0 };
	struct hdr h = { 10, 1, 512, 4 * 512, 4, 1, 56 };
	w_header(&b, &h);
	w_next(&b, 0, 512, 0);
	w_gap(&b, 3);
	put(&b, "\x01", 1);  /* NEXT of cluster 4: 0 bytes left on the device */
	img_image *im;
	assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
	struct walk w;
	walk_image(im, 8, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 1);
	img_close(im);
	free(w.dev);
	free(b.p);
}

static void test_v100(void **state)
{
	(void)state;
	/* ends with a GAP up to nr_clusters */
	struct wbuf b = { 0 };
	struct hdr h = { 10, 0, 1024, 8 * 1024 + 512, 8, 2, 56 };
	w_header(&b, &h);
	w_next(&b, 0, 1024, 0);
	w_gap(&b, 2);
	w_next(&b, 3, 1024, 0);
	w_gap(&b, 4);
	img_image *im;
	assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
	assert_string_equal(img_get_info(im)->format_version, "10.0");
	assert_int_equal(img_get_info(im)->total_blocks, 8);
	struct walk w;
	walk_image(im, 4, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 2);
	img_close(im);
	free(w.dev);

	/* ends with the NEXT of the last cluster */
	b.len = 0;
	w_header(&b, &h);
	w_gap(&b, 7);
	w_next(&b, 7, 1024, 0);
	assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
	walk_image(im, 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 1);
	img_close(im);
	free(w.dev);

	/* 10.0 has no backup boot sector record: one after the end is trailing */
	w_next(&b, 8, 512, 0);
	assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
	walk_image(im, 0, &w);
	assert_int_equal(w.rc, IMG_E_TRAILING);
	assert_int_equal(w.nruns, 1);
	img_close(im);
	free(w.dev);
	free(b.p);
}

/* Metadata images: negative GAPs, a cluster stored twice (the later wins). */
static void test_negative_gap(void **state)
{
	(void)state;
	struct wbuf b = { 0 };
	struct expect e;
	struct hdr h = { 10, 1, 512, 9 * 512, 8, 6, 56 };
	w_header(&b, &h);
	expect_init(&e, h.dev);
	w_next(&b, 0, 512, 0);
	w_next(&b, 1, 512, 0);
	w_gap(&b, 4);   /* -> 6 */
	w_next(&b, 6, 512, 0);
	w_gap(&b, -5);  /* 7 -> 2 */
	w_next(&b, 2, 512, 0);
	w_gap(&b, -2);  /* 3 -> 1 */
	w_next(&b, 1, 512, 1);  /* cluster 1 again, other bytes */
	w_gap(&b, 6);   /* 2 -> 8 */
	w_next(&b, 8, 512, 0);
	expect_cluster(&e, 512, 0, 512, 0);
	expect_cluster(&e, 512, 6, 512, 0);
	expect_cluster(&e, 512, 2, 512, 0);
	expect_cluster(&e, 512, 1, 512, 1);
	expect_cluster(&e, 512, 8, 512, 0);
	const char *path = save_tmp("meta.nc", b.p, b.len);
	for (size_t max = 0; max <= 64; max += 64) {
		struct walk w;
		img_err err;
		assert_int_equal(walk_file(path, max, &w, &err), IMG_OK);
		assert_int_equal(w.rc, IMG_EOF);
		assert_int_equal(w.nruns, 6);
		uint64_t order[] = { 0, 1, 6, 2, 1, 8 };
		assert_memory_equal(w.first, order, sizeof order);
		assert_false(w.ascending);
		assert_memory_equal(w.dev, e.dev, e.size);
		free(w.dev);
	}
	free(e.dev);
	free(b.p);
}

/* ---- damaged streams ---------------------------------------------------- */
static void test_bad_command(void **state)
{
	(void)state;
	struct wbuf b = { 0 };
	struct hdr h = { 10, 1, 512, 9 * 512, 8, 2, 56 };
	w_header(&b, &h);
	w_next(&b, 0, 512, 0);
	put(&b, "\x07", 1);  /* at 56 + 513 = 569 */
	w_next(&b, 1, 512, 0);
	for (size_t max = 0; max <= 8; max += 8) {
		img_image *im;
		assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
		struct walk w;
		walk_image(im, max, &w);
		assert_int_equal(w.nruns, 1);  /* the run before the bad byte is handed out */
		assert_int_equal(w.rc, IMG_E_CORRUPT);
		assert_non_null(strstr(w.msg, "invalid command byte 0x07 at byte 569"));
		assert_int_equal(w.err_offset, 569);
		img_close(im);
		free(w.dev);
	}
	free(b.p);
}

static void test_truncated(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 100);
	free(e.dev);
	/* offsets: header 56 | N0 56..568 | N1 569..1081 | G 1082..1090 | N5 1091..1603
	 * | G 1604..1612 | N7 1613..2125 | N8 2126..2226 (101 bytes) | end 2227 */
	assert_int_equal(b.len, 2227);
	static const struct { size_t cut; int code; size_t runs; const char *what; } cases[] = {
		{ 2226, IMG_E_TRUNCATED, 4, "data of cluster 8" },
		{ 2126, IMG_E_TRUNCATED, 4, "backup boot sector" },
		{ 1100, IMG_E_TRUNCATED, 2, "data of cluster 5" },
		{ 1085, IMG_E_TRUNCATED, 2, "GAP record" },
		{ 1082, IMG_E_TRUNCATED, 2, "cluster position 2 of 9" },
		{ 56, IMG_E_TRUNCATED, 0, "cluster position 0" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct wbuf c = { b.p, cases[i].cut, b.cap };
		for (size_t max = 0; max <= 3; max += 3) {
			img_image *im;
			assert_int_equal(open_mem(&c, 5, &im), IMG_OK);
			struct walk w;
			walk_image(im, max, &w);
			assert_int_equal(w.rc, cases[i].code);
			assert_int_equal(w.nruns, cases[i].runs);
			if (!strstr(w.msg, cases[i].what))
				fail_msg("cut %zu: %s", cases[i].cut, w.msg);
			assert_non_null(strstr(w.msg, "truncated"));
			img_close(im);
			free(w.dev);
		}
	}
	/* inside the header, inside the padding */
	for (size_t cut = 17; cut <= 55; cut += 19) {
		struct wbuf c = { b.p, cut, b.cap };
		img_image *im;
		assert_int_equal(open_mem(&c, 0, &im), IMG_E_TRUNCATED);
		img_close(im);
	}
	free(b.p);
}

static void test_trailing(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 512);
	put(&b, "\x01", 1);
	const char *path = save_tmp("trailing.nc", b.p, b.len);
	struct walk w;
	img_err err;
	assert_int_equal(walk_file(path, 32, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_E_TRAILING);
	assert_int_equal(w.nruns, 5);  /* every record came first */
	assert_memory_equal(w.dev, e.dev, e.size);
	assert_non_null(strstr(w.msg, "trailing"));
	free(w.dev);
	free(e.dev);
	free(b.p);
}

static void test_gap_errors(void **state)
{
	(void)state;
	static const struct { int64_t count; const char *what; } cases[] = {
		{ 0, "GAP record of 0 clusters" },
		{ 9, "leaves the volume" },         /* 1 + 9 > nr_clusters 8 */
		{ -2, "leaves the volume" },        /* 1 - 2 < 0 */
		{ INT64_MAX, "leaves the volume" }, /* overflow */
		{ INT64_MIN, "leaves the volume" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct wbuf b = { 0 };
		struct hdr h = { 10, 1, 512, 9 * 512, 8, 2, 56 };
		w_header(&b, &h);
		w_next(&b, 0, 512, 0);
		w_gap(&b, cases[i].count);
		w_next(&b, 8, 512, 0);
		img_image *im;
		assert_int_equal(open_mem(&b, 0, &im), IMG_OK);
		struct walk w;
		walk_image(im, 4, &w);
		assert_int_equal(w.rc, IMG_E_CORRUPT);
		assert_int_equal(w.nruns, 1);
		assert_non_null(strstr(w.msg, cases[i].what));
		assert_int_equal(w.err_offset, 569);
		img_close(im);
		free(w.dev);
		free(b.p);
	}
}

static void test_header_errors(void **state)
{
	(void)state;
	static const struct {
		struct hdr h;
		int code;
		const char *what;
	} cases[] = {
		{ { 10, 1, 1000, 1 << 20, 100, 1, 56 }, IMG_E_CORRUPT, "cluster size 1000" },
		{ { 10, 1, 256, 1 << 20, 100, 1, 56 }, IMG_E_CORRUPT, "cluster size 256" },
		{ { 10, 1, 4 << 20, 1 << 30, 100, 1, 56 }, IMG_E_CORRUPT, "cluster size" },
		{ { 10, 1, 0, 1 << 20, 100, 1, 56 }, IMG_E_CORRUPT, "cluster size 0" },
		{ { 3, 1, 4096, 1 << 20, 100, 1, 56 }, IMG_E_FORMAT, "legacy" },
		{ { 11, 0, 4096, 1 << 20, 100, 1, 56 }, IMG_E_FORMAT, "11.0 is not supported" },
		{ { 10, 2, 4096, 1 << 20, 100, 1, 56 }, IMG_E_FORMAT, "10.2 is not supported" },
		{ { 10, 1, 4096, 0, 100, 1, 56 }, IMG_E_CORRUPT, "device size 0" },
		{ { 10, 1, 4096, UINT64_MAX, 100, 1, 56 }, IMG_E_CORRUPT, "device size" },
		{ { 10, 1, 4096, 1 << 20, 0, 0, 56 }, IMG_E_CORRUPT, "do not fit" },
		{ { 10, 1, 4096, 1 << 20, 257, 1, 56 }, IMG_E_CORRUPT, "do not fit" },
		{ { 10, 1, 4096, 1 << 20, UINT64_MAX / 2, 1, 56 }, IMG_E_CORRUPT, "do not fit" },
		{ { 10, 1, 4096, 1 << 20, UINT64_MAX, 1, 56 }, IMG_E_CORRUPT, "do not fit" },
		{ { 10, 1, 4096, 1 << 20, 255, 257, 56 }, IMG_E_CORRUPT, "in use exceed" },
		{ { 10, 1, 4096, 1 << 20, 255, 1, 49 }, IMG_E_CORRUPT, "offset to image data 49" },
		{ { 10, 1, 4096, 1 << 20, 255, 1, 0x12345678 }, IMG_E_CORRUPT, "offset to image data" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct wbuf b = { 0 };
		struct hdr h = cases[i].h;
		uint32_t off = h.off;
		h.off = 56;
		w_header(&b, &h);
		b.p[46] = (uint8_t)off;  /* the stored value, without padding for it */
		b.p[47] = (uint8_t)(off >> 8);
		b.p[48] = (uint8_t)(off >> 16);
		b.p[49] = (uint8_t)(off >> 24);
		w_next(&b, 0, 512, 0);
		img_image *im;
		int rc = open_mem(&b, 0, &im);
		if (rc != cases[i].code || !strstr(im->err.msg, cases[i].what))
			fail_msg("case %zu: rc %d: %s", i, rc, im->err.msg);
		img_close(im);
		/* the same through img_open */
		img_err err;
		rc = img_open(save_tmp("hdr.nc", b.p, b.len), NULL, &im, &err);
		assert_int_equal(rc, cases[i].code);
		assert_non_null(strstr(err.msg, cases[i].what));
		free(b.p);
	}
	/* a legacy header is only 46 bytes long: refused by its version, not as truncated */
	struct wbuf b = { 0 };
	struct hdr h = { 3, 1, 4096, 1 << 20, 100, 1, 56 };
	w_header(&b, &h);
	b.len = 46;
	img_image *im;
	assert_int_equal(open_mem(&b, 0, &im), IMG_E_FORMAT);
	img_close(im);
	free(b.p);
}

/* ---- batches, refills, compression --------------------------------------- */
/* 4 KiB clusters over more than the stream buffer: runs of used clusters
 * with gaps, a partial backup boot sector. */
static void build_large(struct wbuf *b, struct expect *e)
{
	const uint64_t nr = 3000;
	struct hdr h = { 10, 1, 4096, nr * 4096 + 3584, nr, 0, 56 };
	memset(b, 0, sizeof *b);
	uint64_t inuse = 0;
	for (uint64_t c = 0; c < nr; c++)
		inuse += (c % 97) < 80;
	h.inuse = inuse;
	w_header(b, &h);
	expect_init(e, h.dev);
	uint64_t pos = 0;
	for (uint64_t c = 0; c < nr; c++) {
		if ((c % 97) >= 80)
			continue;
		if (c != pos)
			w_gap(b, (int64_t)(c - pos));
		w_next(b, c, 4096, 0);
		expect_cluster(e, 4096, c, 4096, 0);
		pos = c + 1;
	}
	if (pos != nr)
		w_gap(b, (int64_t)(nr - pos));
	w_next(b, nr, 3584, 0);
	expect_cluster(e, 4096, nr, 3584, 0);
}

static void test_batches_match_single_runs(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_large(&b, &e);
	assert_true(b.len > ((size_t)8 << 20));
	static const size_t chunks[] = { 0, 4093, 65536 };
	static const size_t maxes[] = { 0, 1, 7, 256 };
	for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
		for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
			img_image *im;
			assert_int_equal(open_mem(&b, chunks[c], &im), IMG_OK);
			struct walk w;
			walk_image(im, maxes[m], &w);
			assert_int_equal(w.rc, IMG_EOF);
			assert_int_equal(w.nruns, img_get_info(im)->used_blocks + 1);
			assert_int_equal(w.blocks_done, w.nruns);
			assert_true(w.ascending);
			assert_memory_equal(w.dev, e.dev, e.size);
			if (maxes[m] == 256)
				assert_true(w.max_batch > 100);  /* a window holds many records */
			img_close(im);
			free(w.dev);
		}
	}
	free(e.dev);
	free(b.p);
}

/* A memory source handing out 1, 3 or 7 bytes at a time: every record
 * boundary falls between two reads somewhere. */
static void test_tiny_reads(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 100);
	for (size_t chunk = 1; chunk <= 7; chunk += 2) {
		img_image *im;
		assert_int_equal(open_mem(&b, chunk, &im), IMG_OK);
		struct walk w;
		walk_image(im, 3, &w);
		assert_int_equal(w.rc, IMG_EOF);
		assert_int_equal(w.nruns, 5);
		assert_memory_equal(w.dev, e.dev, e.size);
		img_close(im);
		free(w.dev);
	}
	free(e.dev);
	free(b.p);
}

static void test_gzip_layer(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_large(&b, &e);
	char path[600];
	snprintf(path, sizeof path, "%s/large.nc.gz", tmpdir);
	gzFile gz = gzopen(path, "wb1");
	assert_non_null(gz);
	assert_int_equal(gzwrite(gz, b.p, (unsigned)b.len), (int)b.len);
	assert_int_equal(gzclose(gz), Z_OK);
	struct walk w;
	img_err err;
	assert_int_equal(walk_file(path, 64, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_memory_equal(w.dev, e.dev, e.size);
	free(w.dev);
	img_image *im;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	assert_non_null(strstr(img_get_info(im)->layers, "gzip"));
	img_close(im);
	free(e.dev);
	free(b.p);
}

/* ---- hostile input: random damage never crashes or hangs ---------------- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_fuzz(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 100);
	free(e.dev);
	/* a metadata-style tail so negative GAPs get mutated too */
	b.len -= 101;
	w_gap(&b, -6);
	w_next(&b, 2, 512, 3);
	w_gap(&b, 5);
	w_next(&b, 8, 100, 0);
	uint8_t *m = malloc(b.len + 16);
	assert_non_null(m);
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(m, b.p, b.len);
		size_t len = b.len;
		int edits = 1 + (int)(rnd() % 4);
		for (int k = 0; k < edits; k++) {
			size_t at = (size_t)(rnd() % len);
			switch (rnd() % 4) {
			case 0: m[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
			case 1: m[at] = (uint8_t)rnd(); break;
			case 2: len = at + 1; break;
			default: m[at] = (uint8_t)(rnd() % 3); break;  /* GAP/NEXT/bad */
			}
		}
		if (len < 16)
			continue;
		memcpy(m, b.p, 16);  /* keep the magic: damage is what is tested, not detection */
		struct wbuf c = { m, len, b.len + 16 };
		img_image *im;
		int rc = open_mem(&c, 1 + (size_t)(rnd() % 600), &im);
		if (rc == IMG_OK) {
			struct walk w;
			walk_image(im, (size_t)(rnd() % 5), &w);
			assert_true(w.rc == IMG_EOF || w.rc == IMG_E_CORRUPT || w.rc == IMG_E_TRUNCATED ||
				    w.rc == IMG_E_TRAILING);
			assert_true(w.nruns <= 64);
			free(w.dev);
		} else {
			assert_true(rc == IMG_E_CORRUPT || rc == IMG_E_TRUNCATED || rc == IMG_E_FORMAT);
		}
		img_close(im);
	}
	free(m);
	free(b.p);
}

/* ---- real images (test/data/NTFSCLONE.md) -------------------------------- */
static void test_real_fixtures(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		uint64_t dev, nr, inuse;
		size_t records;
		int ascending;
		uint32_t crc;
	} fx[] = {
		{ "ntfsclone_2m.nc.gz", 2097152, 511, 177, 178, 1, 0x66e4032fu },
		{ "ntfsclone_partial.nc.gz", 2098688, 512, 241, 242, 1, 0xafb62624u },
		{ "ntfsclone_partial_meta.nc.gz", 2098688, 512, 129, 126, 0, 0x1b1e0e3cu },
	};
	const char *dir = getenv("IMGBK_TEST_DATA");
	for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
		char path[600];
		snprintf(path, sizeof path, "%s/%s", dir ? dir : "test/data", fx[i].name);
		if (access(path, R_OK) != 0)
			fail_msg("missing fixture %s", path);
		for (size_t max = 0; max <= 128; max += 128) {
			img_image *im;
			img_err err;
			assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
			const img_info *in = img_get_info(im);
			assert_string_equal(in->format_version, "10.1");
			assert_int_equal(in->device_size, fx[i].dev);
			assert_int_equal(in->block_size, 4096);
			assert_int_equal(in->total_blocks, fx[i].nr + 1);
			assert_int_equal(in->used_blocks, fx[i].inuse);
			struct walk w;
			walk_image(im, max, &w);
			assert_int_equal(w.rc, IMG_EOF);
			assert_int_equal(w.nruns, fx[i].records);
			assert_int_equal(w.ascending, fx[i].ascending);
			assert_int_equal(crc32_fast(0, w.dev, w.dev_size), fx[i].crc);
			img_close(im);
			free(w.dev);
		}
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/imgbk-nc-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v101_full_last),
		cmocka_unit_test(test_v101_partial_last),
		cmocka_unit_test(test_v101_empty_backup_record),
		cmocka_unit_test(test_v100),
		cmocka_unit_test(test_negative_gap),
		cmocka_unit_test(test_bad_command),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_gap_errors),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_batches_match_single_runs),
		cmocka_unit_test(test_tiny_reads),
		cmocka_unit_test(test_gzip_layer),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_real_fixtures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

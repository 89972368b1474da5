/*
 * test/unit/test_ntfsclone.c - unit tests of formats/ntfsclone.c: synthetic
 * ntfsclone streams built in memory by a tiny writer (10.0 and 10.1, partial
 * last cluster, metadata-style negative GAPs, every header field out of
 * range, bad command bytes, truncation, trailing bytes, GAP 0), walked one
 * run at a time and in batches, from temp files, gzip files and a memory
 * source that hands out a few bytes per read; a mutation fuzz; the real
 * ntfsclone fixtures in test/data (NTFSCLONE.md); and random access
 * (img_random_open / img_read_at) against the sequential walk: synthetic,
 * metadata and fixture images, saved / loaded / tampered index files, reads
 * from several threads, damaged images and hostile index payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
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

/* ---- random access (ntfsclone_access.c) ----------------------------------- */
static uint64_t xr(uint64_t *s)  /* splitmix64 */
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#define RA_SEED 20240611u

/* The device a sequential walk (img_next_runs into memory) restores. */
static uint8_t *seq_device(const char *path, uint64_t *size)
{
	struct walk w;
	img_err err;
	assert_int_equal(walk_file(path, 256, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_non_null(w.dev);
	*size = w.dev_size;
	return w.dev;
}

/* One random read as the checks draw it: small, cluster-sized, up to 1 MiB
 * or up to 4 MiB, at any offset (sometimes aligned, sometimes past the end). */
static void draw_read(uint64_t *s, uint64_t size, uint32_t cs, uint64_t *off, size_t *len)
{
	switch (xr(s) % 4) {
	case 0: *len = 1 + (size_t)(xr(s) % 16); break;
	case 1: *len = 1 + (size_t)(xr(s) % (3 * (uint64_t)cs)); break;
	case 2: *len = 1 + (size_t)(xr(s) % ((uint64_t)1 << 20)); break;
	default: *len = 1 + (size_t)(xr(s) % ((uint64_t)4 << 20)); break;
	}
	*off = xr(s) % (size + 2 * (uint64_t)cs);
	if (xr(s) % 3 == 0)
		*off -= *off % cs;
}

/* @return the number of reads that failed or differed from ref. */
static int random_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed, int n)
{
	uint32_t cs = img_get_info(im)->block_size;
	uint8_t *buf = malloc(((size_t)4 << 20) + 16);
	if (!buf)
		return n;
	int bad = 0;
	for (int i = 0; i < n; i++) {
		uint64_t off;
		size_t len, got;
		draw_read(&seed, size, cs, &off, &len);
		img_err err;
		int rc = img_read_at(im, off, buf, len, &got, &err);
		size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		if (rc != IMG_OK || got != want || memcmp(buf, ref + (off < size ? off : 0), got) != 0)
			bad++;
	}
	free(buf);
	return bad;
}

/* The whole device read in steps of `step` bytes equals ref. */
static void sweep_reads(img_image *im, const uint8_t *ref, uint64_t size, size_t step)
{
	uint8_t *buf = malloc(step);
	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += step) {
		size_t got;
		img_err err;
		assert_int_equal(img_read_at(im, off, buf, step, &got, &err), IMG_OK);
		assert_int_equal(got, size - off < step ? size - off : step);
		if (memcmp(buf, ref + off, got) != 0)
			fail_msg("bytes differ in [%llu, +%zu)", (unsigned long long)off, got);
	}
	free(buf);
}

struct reader {
	img_image *im;
	const uint8_t *ref;
	uint64_t size, seed;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->bad = random_reads(r->im, r->ref, r->size, r->seed, 300);
	return NULL;
}

static void threaded_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed)
{
	enum { NT = 6 };
	pthread_t t[NT];
	struct reader r[NT];
	for (int i = 0; i < NT; i++) {
		r[i] = (struct reader){ im, ref, size, seed + 1000 * (uint64_t)(i + 1), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (r[i].bad)
			fail_msg("thread %d: %d of 300 reads differ (seed %llu)", i, r[i].bad,
				 (unsigned long long)r[i].seed);
	}
}

struct progress_log {
	uint64_t calls, last_done, total;
	int backwards;
};

static void progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct progress_log *p = ctx;
	if (p->calls && done < p->last_done)
		p->backwards = 1;
	p->calls++;
	p->last_done = done;
	p->total = total;
}

static img_image *random_open_path(const char *path, int save, int want_state)
{
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	img_random_options o;
	img_random_options_init(&o);
	o.save = save;
	struct progress_log pl = { 0 };
	o.progress = progress_cb;
	o.progress_ctx = &pl;
	int state = -1;
	int rc = img_random_open(im, &o, &state);
	if (rc != IMG_OK)
		fail_msg("%s: img_random_open: %s", path, img_error(im)->msg);
	if (want_state >= 0 && state != want_state)
		fail_msg("%s: index state %d, expected %d", path, state, want_state);
	if (state != 1) {  /* built: progress reached the image size, never went back */
		assert_true(pl.calls >= 2);
		assert_false(pl.backwards);
		assert_int_equal(pl.last_done, pl.total);
	}
	return im;
}

/* Everything random access promises, on the image at `path`. */
static void random_suite(const char *path)
{
	uint64_t size;
	uint8_t *ref = seq_device(path, &size);
	char idx[700];
	snprintf(idx, sizeof idx, "%s.ibkx", path);
	unlink(idx);
	print_message("    %s: random reads, seed %u\n", path, RA_SEED);

	/* built and saved next to the image */
	img_image *im = random_open_path(path, 1, 2);
	assert_string_equal(img_index_path(im), idx);
	assert_int_equal(access(idx, R_OK), 0);
	sweep_reads(im, ref, size, (size_t)1 << 20);
	sweep_reads(im, ref, size, 4097);
	assert_int_equal(random_reads(im, ref, size, RA_SEED, 400), 0);
	threaded_reads(im, ref, size, RA_SEED);
	img_close(im);

	/* loaded: the same bytes */
	im = random_open_path(path, 1, 1);
	sweep_reads(im, ref, size, 65536 + 3);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 1, 400), 0);
	threaded_reads(im, ref, size, RA_SEED + 7);
	img_close(im);

	/* a byte of the index flipped: ignored, rebuilt */
	FILE *f = fopen(idx, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long isz = ftell(f);
	assert_true(isz > 80);
	assert_int_equal(fseek(f, isz / 2, SEEK_SET), 0);
	int c = fgetc(f);
	assert_int_equal(fseek(f, isz / 2, SEEK_SET), 0);
	fputc(c ^ 0x20, f);
	fclose(f);
	im = random_open_path(path, 1, -1);
	sweep_reads(im, ref, size, (size_t)1 << 20);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 2, 200), 0);
	img_close(im);
	im = random_open_path(path, 1, 1);  /* the rebuilt index was saved again */
	img_close(im);

	/* save = 0: built, nothing written */
	unlink(idx);
	im = random_open_path(path, 0, 0);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 3, 100), 0);
	assert_int_equal(access(idx, F_OK), -1);
	img_close(im);
	free(ref);
}

/* A metadata-style image: segments at random places, going back and forth,
 * overwriting each other; each segment writes its own generation. */
static void build_random_meta(struct wbuf *b, uint64_t seed)
{
	const uint64_t nr = 3000;
	struct hdr h = { 10, 1, 512, (nr + 1) * 512, nr, 0, 56 };
	memset(b, 0, sizeof *b);
	w_header(b, &h);
	uint64_t pos = 0;
	for (unsigned seg = 0; seg < 400; seg++) {
		uint64_t p = xr(&seed) % nr;
		if (xr(&seed) % 4 == 0)
			p = pos < nr ? pos : p;  /* continue where the last one ended */
		uint64_t len = 1 + xr(&seed) % 40;
		if (len > nr - p)
			len = nr - p;
		if (p != pos)
			w_gap(b, (int64_t)p - (int64_t)pos);
		for (uint64_t c = p; c < p + len; c++)
			w_next(b, c, 512, seg % 200);
		pos = p + len;
	}
	if (pos != nr)
		w_gap(b, (int64_t)nr - (int64_t)pos);
	w_next(b, nr, 512, 0);
}

static void test_random_synthetic(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_v101(&b, &e, 512);
	random_suite(save_tmp("ra_full.nc", b.p, b.len));
	free(b.p);
	free(e.dev);
	build_v101(&b, &e, 100);
	random_suite(save_tmp("ra_partial.nc", b.p, b.len));
	free(b.p);
	free(e.dev);
	build_large(&b, &e);
	random_suite(save_tmp("ra_large.nc", b.p, b.len));
	free(b.p);
	free(e.dev);

	/* 10.0 ending with a GAP; a device longer than the volume */
	memset(&b, 0, sizeof b);
	struct hdr h0 = { 10, 0, 1024, 8 * 1024 + 512, 8, 2, 56 };
	w_header(&b, &h0);
	w_next(&b, 0, 1024, 0);
	w_gap(&b, 2);
	w_next(&b, 3, 1024, 0);
	w_next(&b, 4, 1024, 0);
	w_gap(&b, 3);
	random_suite(save_tmp("ra_v100.nc", b.p, b.len));
	free(b.p);

	/* the empty backup boot sector record */
	memset(&b, 0, sizeof b);
	struct hdr h1 = { 10, 1, 512, 4 * 512, 4, 1, 56 };
	w_header(&b, &h1);
	w_next(&b, 0, 512, 0);
	w_gap(&b, 3);
	put(&b, "\x01", 1);
	random_suite(save_tmp("ra_empty_last.nc", b.p, b.len));
	free(b.p);
}

static void test_random_metadata(void **state)
{
	(void)state;
	/* the small metadata stream of test_negative_gap */
	struct wbuf b = { 0 };
	struct hdr h = { 10, 1, 512, 9 * 512, 8, 6, 56 };
	w_header(&b, &h);
	w_next(&b, 0, 512, 0);
	w_next(&b, 1, 512, 0);
	w_gap(&b, 4);
	w_next(&b, 6, 512, 0);
	w_gap(&b, -5);
	w_next(&b, 2, 512, 0);
	w_gap(&b, -2);
	w_next(&b, 1, 512, 1);
	w_gap(&b, 6);
	w_next(&b, 8, 512, 0);
	random_suite(save_tmp("ra_meta.nc", b.p, b.len));
	free(b.p);
	for (uint64_t seed = 1; seed <= 3; seed++) {
		build_random_meta(&b, RA_SEED + seed);
		char name[64];
		snprintf(name, sizeof name, "ra_meta_%llu.nc", (unsigned long long)seed);
		random_suite(save_tmp(name, b.p, b.len));
		free(b.p);
	}
}

/* gunzip src to a temp file (compressed images are refused for random access). */
static const char *gunzip_tmp(const char *src, const char *name)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	gzFile in = gzopen(src, "rb");
	assert_non_null(in);
	FILE *out = fopen(path, "wb");
	assert_non_null(out);
	char buf[65536];
	int n;
	while ((n = gzread(in, buf, sizeof buf)) > 0)
		assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
	assert_int_equal(n, 0);
	gzclose(in);
	assert_int_equal(fclose(out), 0);
	return path;
}

static void test_random_fixtures(void **state)
{
	(void)state;
	static const char *const names[] = { "ntfsclone_2m", "ntfsclone_partial",
					     "ntfsclone_partial_meta" };
	const char *dir = getenv("IMGBK_TEST_DATA");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char src[600], name[64];
		snprintf(src, sizeof src, "%s/%s.nc.gz", dir ? dir : "test/data", names[i]);
		snprintf(name, sizeof name, "%s.nc", names[i]);
		const char *path = gunzip_tmp(src, name);
		random_suite(path);
		/* the .gz itself is refused, naming the command that helps */
		img_image *im;
		img_err err;
		assert_int_equal(img_open(src, NULL, &im, &err), IMG_OK);
		img_random_options o;
		img_random_options_init(&o);
		o.save = 0;
		assert_int_equal(img_random_open(im, &o, NULL), IMG_E_FORMAT);
		assert_non_null(strstr(img_error(im)->msg, "gzip -dc"));
		img_close(im);
	}
}

/* The payload of a saved index is checked in full: bad ones are rebuilt. */
static void test_random_payload_checks(void **state)
{
	(void)state;
	struct wbuf b;
	build_random_meta(&b, RA_SEED + 9);
	const char *path = save_tmp("ra_payload.nc", b.p, b.len);
	uint64_t size;
	uint8_t *ref = seq_device(path, &size);
	img_image *im = random_open_path(path, 0, 0);
	img_random_options o;
	img_random_options_init(&o);
	uint8_t *good = NULL, *p = NULL;
	size_t glen = 0, plen = 0;
	/* a build returns the payload */
	assert_int_equal(im->fmt->random_open(im, &o, NULL, 0, &good, &glen), IMG_OK);
	assert_non_null(good);
	assert_true(glen >= 64 && (glen - 64) % 24 == 0);
	assert_memory_equal(good, "NCIX", 4);
	/* a good payload is taken as it is: nothing to save */
	assert_int_equal(im->fmt->random_open(im, &o, good, glen, &p, &plen), IMG_OK);
	assert_null(p);
	assert_int_equal(random_reads(im, ref, size, RA_SEED, 100), 0);
	uint8_t *m = malloc(glen + 24);
	assert_non_null(m);
	/* field edits that must be refused (the result is a rebuild: the good payload) */
	static const struct { size_t at; uint64_t v; int width; } edits[] = {
		{ 0, 'X', 1 },            /* magic */
		{ 4, 2, 4 },              /* version */
		{ 8, 1024, 4 },           /* cluster size */
		{ 12, 60, 4 },            /* offset to data */
		{ 16, 2999, 8 },          /* nr_clusters */
		{ 24, 12345, 8 },         /* device size */
		{ 32, (uint32_t)-4, 4 },  /* stop code TRUNCATED without stop offset = size */
		{ 32, 7, 4 },             /* unknown stop code */
		{ 36, 1, 4 },             /* flags without a stop */
		{ 56, 0, 8 },             /* run count */
		{ 56, UINT64_MAX / 8, 8 },
		{ 64 + 8, 0, 8 },         /* count 0 */
		{ 64 + 16, 1, 8 },        /* offset inside the header */
		{ 64 + 16, UINT64_MAX - 5, 8 },
		{ 64 + 8, UINT64_MAX, 8 },
		{ 64 + 24, 0, 8 },        /* second run starts inside the first / not ascending */
		{ 64 + 24 + 16, 1ull << 40, 8 },  /* data past the end of the image */
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		memcpy(m, good, glen);
		for (int k = 0; k < edits[i].width; k++)
			m[edits[i].at + k] = (uint8_t)(edits[i].v >> (8 * k));
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, m, glen, &p, &plen), IMG_OK);
		if (!p)
			fail_msg("edit %zu (byte %zu) was accepted", i, edits[i].at);
		assert_int_equal(plen, glen);
		assert_memory_equal(p, good, glen);
		free(p);
	}
	/* wrong lengths */
	for (size_t len = 0; len < 70; len += 7) {
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, good, len, &p, &plen), IMG_OK);
		assert_non_null(p);
		free(p);
	}
	memcpy(m, good, glen);
	p = NULL;
	assert_int_equal(im->fmt->random_open(im, &o, m, glen + 24, &p, &plen), IMG_OK);
	assert_non_null(p);
	free(p);
	/* random byte flips: refused (rebuilt), or taken when still consistent;
	 * never a crash, never a read outside the image */
	uint64_t s = RA_SEED;
	for (int i = 0; i < 2000; i++) {
		memcpy(m, good, glen);
		m[xr(&s) % glen] ^= (uint8_t)(1u << (xr(&s) % 8));
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, m, glen, &p, &plen), IMG_OK);
		if (p) {
			assert_memory_equal(p, good, glen);
			free(p);
		} else {
			uint8_t buf[3000];
			size_t got;
			img_err err;
			for (int k = 0; k < 4; k++) {
				uint64_t off = xr(&s) % size;
				int rc = img_read_at(im, off, buf, sizeof buf, &got, &err);
				assert_true(rc == IMG_OK || rc == IMG_E_TRUNCATED || rc == IMG_E_CORRUPT);
			}
		}
	}
	/* back to the good one */
	assert_int_equal(im->fmt->random_open(im, &o, good, glen, &p, &plen), IMG_OK);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 5, 100), 0);
	img_close(im);
	free(m);
	free(good);
	free(ref);
	free(b.p);
}

/* Read cluster c (cs bytes); @return the status, err filled. */
static int read_cluster(img_image *im, uint64_t c, uint8_t *buf, img_err *err)
{
	size_t got;
	uint32_t cs = img_get_info(im)->block_size;
	return img_read_at(im, c * cs, buf, cs, &got, err);
}

static void test_random_damaged(void **state)
{
	(void)state;
	struct wbuf b;
	struct expect e;
	build_large(&b, &e);
	const uint64_t nr = 3000;
	uint8_t buf[4096];
	img_err err;
	/* cut in the middle, inside a record's data and right after a command byte */
	for (int variant = 0; variant < 3; variant++) {
		size_t cut = variant == 0 ? b.len / 2 : variant == 1 ? 56 + 1 + 4096 / 2 : b.len - 3585;
		const char *path = save_tmp("ra_cut.nc", b.p, cut);
		char idx[700];
		snprintf(idx, sizeof idx, "%s.ibkx", path);
		unlink(idx);
		for (int pass = 0; pass < 2; pass++) {  /* built, then loaded */
			img_image *im = random_open_path(path, 1, pass ? 1 : 2);
			uint64_t first_bad = UINT64_MAX;
			for (uint64_t c = 0; c <= nr; c++) {
				int rc = read_cluster(im, c, buf, &err);
				if (rc == IMG_OK) {
					if (first_bad != UINT64_MAX)
						fail_msg("cluster %llu reads after the cut at %llu",
							 (unsigned long long)c, (unsigned long long)first_bad);
					size_t n = c == nr ? 3584 : 4096;
					assert_memory_equal(buf, e.dev + c * 4096, n);
				} else {
					assert_int_equal(rc, IMG_E_TRUNCATED);
					assert_true(err.has_offset);
					assert_int_equal(err.offset, cut);
					assert_non_null(strstr(err.msg, "truncated"));
					if (first_bad == UINT64_MAX)
						first_bad = c;
				}
			}
			assert_true(first_bad < nr + 1);
			if (variant == 1)
				assert_int_equal(first_bad, 0);
			if (variant == 2)
				assert_int_equal(first_bad, nr);
			/* a read across the cut fails too; one before it works */
			size_t got;
			if (first_bad > 0) {
				assert_int_equal(img_read_at(im, (first_bad - 1) * 4096, buf, 4096, &got,
							     &err), IMG_OK);
				uint8_t two[8192];
				assert_int_equal(img_read_at(im, (first_bad - 1) * 4096, two, 8192, &got,
							     &err), IMG_E_TRUNCATED);
			}
			img_close(im);
		}
	}
	free(e.dev);
	free(b.p);

	/* a bad command byte after two clusters: 0 and 1 read, the rest does not */
	memset(&b, 0, sizeof b);
	struct hdr h = { 10, 1, 512, 9 * 512, 8, 3, 56 };
	w_header(&b, &h);
	w_next(&b, 0, 512, 0);
	w_next(&b, 1, 512, 0);
	put(&b, "\x07", 1);  /* at 56 + 2 * 513 = 1082 */
	w_next(&b, 2, 512, 0);
	img_image *im = random_open_path(save_tmp("ra_bad.nc", b.p, b.len), 0, 0);
	for (uint64_t c = 0; c < 9; c++) {
		int rc = read_cluster(im, c, buf, &err);
		if (c < 2) {
			assert_int_equal(rc, IMG_OK);
			for (size_t i = 0; i < 512; i++)
				assert_int_equal(buf[i], pattern(c, i, 0));
		} else {
			assert_int_equal(rc, IMG_E_CORRUPT);
			assert_int_equal(err.offset, 1082);
			assert_non_null(strstr(err.msg, "damaged"));
		}
	}
	img_close(im);
	free(b.p);

	/* a metadata image cut after going backwards: nothing reads */
	memset(&b, 0, sizeof b);
	w_header(&b, &h);
	w_next(&b, 0, 512, 0);
	w_gap(&b, 5);
	w_next(&b, 6, 512, 0);
	w_gap(&b, -5);
	w_next(&b, 2, 512, 0);
	b.len -= 10;
	im = random_open_path(save_tmp("ra_meta_cut.nc", b.p, b.len), 0, 0);
	for (uint64_t c = 0; c < 9; c++) {
		assert_int_equal(read_cluster(im, c, buf, &err), IMG_E_TRUNCATED);
		assert_int_equal(err.offset, b.len);
	}
	img_close(im);
	free(b.p);
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
		cmocka_unit_test(test_random_synthetic),
		cmocka_unit_test(test_random_metadata),
		cmocka_unit_test(test_random_fixtures),
		cmocka_unit_test(test_random_payload_checks),
		cmocka_unit_test(test_random_damaged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

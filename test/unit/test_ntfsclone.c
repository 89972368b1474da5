/*
 * test/unit/test_ntfsclone.c - unit tests of the sequential ntfsclone reader
 * (formats/ntfsclone.c): synthetic ntfsclone streams built in memory by the
 * writer of helper_ntfsclone.c (10.0 and 10.1, partial last cluster,
 * metadata-style negative GAPs, every header field out of range, bad command
 * bytes, truncation, trailing bytes, GAP 0), walked one run at a time and in
 * batches, from temp files, gzip files and a memory source that hands out a
 * few bytes per read; a mutation fuzz; the real ntfsclone fixtures in
 * test/data (NTFSCLONE.md). Random access is tested in
 * test_ntfsclone_access.c.
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
#include "helper_ntfsclone.h"

/* ---- well-formed streams ------------------------------------------------ */
static void test_v101_full_last(void **state)
{
	(void)state;
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 512);
	img_image *im;
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
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
	struct nch_walk w;
	nch_walk_image(im, 0, &w);
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
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 100);
	const char *path = nch_save_tmp("partial.nc", b.p, b.len);
	struct nch_walk w;
	img_err err;
	assert_int_equal(nch_walk_file(path, 0, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 5);
	assert_int_equal(w.dev_size, 8 * 512 + 100);
	assert_memory_equal(w.dev, e.dev, e.size);
	free(w.dev);
	/* the same in batches */
	assert_int_equal(nch_walk_file(path, 16, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 5);
	assert_int_equal(w.max_batch, 5);
	assert_memory_equal(w.dev, e.dev, e.size);
	free(w.dev);
	free(e.dev);
	free(b.p);
}

/* The device ends with the volume: the backup boot sector record is empty.
 * Its one cluster of 512 bytes in use is a size under 1 KiB: printed with
 * the unit B, as imagebackup's reportSize does ("1 (512 B)"). */
static void test_v101_empty_backup_record(void **state)
{
	(void)state;
	struct nch_wbuf b = { 0 };
	struct nch_hdr h = { 10, 1, 512, 4 * 512, 4, 1, 56 };
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 512, 0);
	nch_w_gap(&b, 3);
	nch_put(&b, "\x01", 1);  /* NEXT of cluster 4: 0 bytes left on the device */
	img_image *im;
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
	const img_field_list *fl = img_get_fields(im);
	assert_string_equal(fl->fields[5].label, "inuse");
	assert_string_equal(fl->fields[5].text, "1 (512 B)");
	assert_string_equal(fl->fields[3].text, "2,048 (2.0 KB)");
	struct nch_walk w;
	nch_walk_image(im, 8, &w);
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
	struct nch_wbuf b = { 0 };
	struct nch_hdr h = { 10, 0, 1024, 8 * 1024 + 512, 8, 2, 56 };
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 1024, 0);
	nch_w_gap(&b, 2);
	nch_w_next(&b, 3, 1024, 0);
	nch_w_gap(&b, 4);
	img_image *im;
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
	assert_string_equal(img_get_info(im)->format_version, "10.0");
	assert_int_equal(img_get_info(im)->total_blocks, 8);
	struct nch_walk w;
	nch_walk_image(im, 4, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 2);
	img_close(im);
	free(w.dev);

	/* ends with the NEXT of the last cluster */
	b.len = 0;
	nch_w_header(&b, &h);
	nch_w_gap(&b, 7);
	nch_w_next(&b, 7, 1024, 0);
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
	nch_walk_image(im, 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.nruns, 1);
	img_close(im);
	free(w.dev);

	/* 10.0 has no backup boot sector record: one after the end is trailing */
	nch_w_next(&b, 8, 512, 0);
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
	nch_walk_image(im, 0, &w);
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
	struct nch_wbuf b = { 0 };
	struct nch_expect e;
	struct nch_hdr h = { 10, 1, 512, 9 * 512, 8, 6, 56 };
	nch_w_header(&b, &h);
	nch_expect_init(&e, h.dev);
	nch_w_next(&b, 0, 512, 0);
	nch_w_next(&b, 1, 512, 0);
	nch_w_gap(&b, 4);   /* -> 6 */
	nch_w_next(&b, 6, 512, 0);
	nch_w_gap(&b, -5);  /* 7 -> 2 */
	nch_w_next(&b, 2, 512, 0);
	nch_w_gap(&b, -2);  /* 3 -> 1 */
	nch_w_next(&b, 1, 512, 1);  /* cluster 1 again, other bytes */
	nch_w_gap(&b, 6);   /* 2 -> 8 */
	nch_w_next(&b, 8, 512, 0);
	nch_expect_cluster(&e, 512, 0, 512, 0);
	nch_expect_cluster(&e, 512, 6, 512, 0);
	nch_expect_cluster(&e, 512, 2, 512, 0);
	nch_expect_cluster(&e, 512, 1, 512, 1);
	nch_expect_cluster(&e, 512, 8, 512, 0);
	const char *path = nch_save_tmp("meta.nc", b.p, b.len);
	for (size_t max = 0; max <= 64; max += 64) {
		struct nch_walk w;
		img_err err;
		assert_int_equal(nch_walk_file(path, max, &w, &err), IMG_OK);
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
	struct nch_wbuf b = { 0 };
	struct nch_hdr h = { 10, 1, 512, 9 * 512, 8, 2, 56 };
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 512, 0);
	nch_put(&b, "\x07", 1);  /* at 56 + 513 = 569 */
	nch_w_next(&b, 1, 512, 0);
	for (size_t max = 0; max <= 8; max += 8) {
		img_image *im;
		assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
		struct nch_walk w;
		nch_walk_image(im, max, &w);
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
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 100);
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
		struct nch_wbuf c = { b.p, cases[i].cut, b.cap };
		for (size_t max = 0; max <= 3; max += 3) {
			img_image *im;
			assert_int_equal(nch_open_mem(&c, 5, &im), IMG_OK);
			struct nch_walk w;
			nch_walk_image(im, max, &w);
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
		struct nch_wbuf c = { b.p, cut, b.cap };
		img_image *im;
		assert_int_equal(nch_open_mem(&c, 0, &im), IMG_E_TRUNCATED);
		img_close(im);
	}
	free(b.p);
}

static void test_trailing(void **state)
{
	(void)state;
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 512);
	nch_put(&b, "\x01", 1);
	const char *path = nch_save_tmp("trailing.nc", b.p, b.len);
	struct nch_walk w;
	img_err err;
	assert_int_equal(nch_walk_file(path, 32, &w, &err), IMG_OK);
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
		struct nch_wbuf b = { 0 };
		struct nch_hdr h = { 10, 1, 512, 9 * 512, 8, 2, 56 };
		nch_w_header(&b, &h);
		nch_w_next(&b, 0, 512, 0);
		nch_w_gap(&b, cases[i].count);
		nch_w_next(&b, 8, 512, 0);
		img_image *im;
		assert_int_equal(nch_open_mem(&b, 0, &im), IMG_OK);
		struct nch_walk w;
		nch_walk_image(im, 4, &w);
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
		struct nch_hdr h;
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
		struct nch_wbuf b = { 0 };
		struct nch_hdr h = cases[i].h;
		uint32_t off = h.off;
		h.off = 56;
		nch_w_header(&b, &h);
		b.p[46] = (uint8_t)off;  /* the stored value, without padding for it */
		b.p[47] = (uint8_t)(off >> 8);
		b.p[48] = (uint8_t)(off >> 16);
		b.p[49] = (uint8_t)(off >> 24);
		nch_w_next(&b, 0, 512, 0);
		img_image *im;
		int rc = nch_open_mem(&b, 0, &im);
		if (rc != cases[i].code || !strstr(im->err.msg, cases[i].what))
			fail_msg("case %zu: rc %d: %s", i, rc, im->err.msg);
		img_close(im);
		/* the same through img_open */
		img_err err;
		rc = img_open(nch_save_tmp("hdr.nc", b.p, b.len), NULL, &im, &err);
		assert_int_equal(rc, cases[i].code);
		assert_non_null(strstr(err.msg, cases[i].what));
		free(b.p);
	}
	/* a legacy header is only 46 bytes long: refused by its version, not as truncated */
	struct nch_wbuf b = { 0 };
	struct nch_hdr h = { 3, 1, 4096, 1 << 20, 100, 1, 56 };
	nch_w_header(&b, &h);
	b.len = 46;
	img_image *im;
	assert_int_equal(nch_open_mem(&b, 0, &im), IMG_E_FORMAT);
	img_close(im);
	free(b.p);
}

/* ---- batches, refills, compression --------------------------------------- */
static void test_batches_match_single_runs(void **state)
{
	(void)state;
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_large(&b, &e);
	assert_true(b.len > ((size_t)8 << 20));
	static const size_t chunks[] = { 0, 4093, 65536 };
	static const size_t maxes[] = { 0, 1, 7, 256 };
	for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
		for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
			img_image *im;
			assert_int_equal(nch_open_mem(&b, chunks[c], &im), IMG_OK);
			struct nch_walk w;
			nch_walk_image(im, maxes[m], &w);
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
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 100);
	for (size_t chunk = 1; chunk <= 7; chunk += 2) {
		img_image *im;
		assert_int_equal(nch_open_mem(&b, chunk, &im), IMG_OK);
		struct nch_walk w;
		nch_walk_image(im, 3, &w);
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
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_large(&b, &e);
	char path[600];
	snprintf(path, sizeof path, "%s/large.nc.gz", nch_tmpdir);
	gzFile gz = gzopen(path, "wb1");
	assert_non_null(gz);
	assert_int_equal(gzwrite(gz, b.p, (unsigned)b.len), (int)b.len);
	assert_int_equal(gzclose(gz), Z_OK);
	struct nch_walk w;
	img_err err;
	assert_int_equal(nch_walk_file(path, 64, &w, &err), IMG_OK);
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
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 100);
	free(e.dev);
	/* a metadata-style tail so negative GAPs get mutated too */
	b.len -= 101;
	nch_w_gap(&b, -6);
	nch_w_next(&b, 2, 512, 3);
	nch_w_gap(&b, 5);
	nch_w_next(&b, 8, 100, 0);
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
		struct nch_wbuf c = { m, len, b.len + 16 };
		img_image *im;
		int rc = nch_open_mem(&c, 1 + (size_t)(rnd() % 600), &im);
		if (rc == IMG_OK) {
			struct nch_walk w;
			nch_walk_image(im, (size_t)(rnd() % 5), &w);
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
			struct nch_walk w;
			nch_walk_image(im, max, &w);
			assert_int_equal(w.rc, IMG_EOF);
			assert_int_equal(w.nruns, fx[i].records);
			assert_int_equal(w.ascending, fx[i].ascending);
			assert_int_equal(crc32_fast(0, w.dev, w.dev_size), fx[i].crc);
			img_close(im);
			free(w.dev);
		}
	}
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
	return cmocka_run_group_tests(tests, nch_setup, nch_teardown);
}

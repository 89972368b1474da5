/*
 * test/unit/test_partimage_access.c - unit tests of partimage random access
 * (img_random_open / img_read_at, formats/partimage_access.c) on images of
 * the synthetic writer of helper_partimage.c: reads at random offsets and
 * lengths (fixed, printed seed), from several threads at once, equal the
 * sequential walk's bytes on synthetic single and multi-volume images and on
 * the real samples of test/data (decompressed here first); bad CHK chunks,
 * the saved index (reused, rebuilt when another volume changed), compressed,
 * missing and truncated volumes.
 */
#include <bzlib.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "formats/fmt.h"
#include "io/zseek.h"
#include "helper_partimage.h"

/* ---- random access ----------------------------------------------------------- */

#define RA_SEED 0x5EED1234ABCDull
static int ra_seed_printed;

static uint64_t ra_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Open for random access (index at pih_tmpdir/index.ibkx unless idx given). */
static img_image *ra_open(const char *path, uint32_t interval, int verify, const char *idx, int save,
			  int *state)
{
	img_image *im;
	img_err err;
	int rc = img_open(path, NULL, &im, &err);
	if (rc != IMG_OK)
		fail_msg("%s: %s", path, err.msg);
	img_random_options o;
	img_random_options_init(&o);
	o.index_interval = interval;
	o.verify = verify;
	o.save = save;
	o.index_path = idx ? idx : pih_tpath("index.ibkx");
	if (!idx)
		unlink(o.index_path);
	rc = img_random_open(im, &o, state);
	if (rc != IMG_OK)
		fail_msg("%s: img_random_open: %s", path, img_error(im)->msg);
	return im;
}

/* n reads at random offsets/lengths; @return how many differ from ref. */
static int ra_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed, int n)
{
	uint8_t *buf = malloc(600000);
	assert_non_null(buf);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		uint64_t r = ra_rand(&seed);
		uint64_t off = (r & 15) == 0 ? size - r % 70000 % (size + 1) : (r & 15) == 1 ? size + r % 100
			       : r % (size + 1);
		uint64_t l = ra_rand(&seed);
		size_t len = (size_t)((l & 3) == 0 ? l % 600000 : (l & 3) == 1 ? l % 70000 : l % 5000);
		size_t got = 12345, want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		img_err err;
		int rc = img_read_at(im, off, buf, len, &got, &err);
		if (rc != IMG_OK || got != want || memcmp(buf, ref + (off < size ? off : 0), got) != 0) {
			if (!bad)
				print_error("read at %llu of %zu: rc %d got %zu want %zu %s\n",
					    (unsigned long long)off, len, rc, got, want,
					    rc != IMG_OK ? err.msg : "");
			bad++;
		}
	}
	free(buf);
	return bad;
}

/* The whole device in steps of `step` bytes equals ref. */
static void ra_sweep(img_image *im, const uint8_t *ref, uint64_t size, size_t step)
{
	uint8_t *buf = malloc(step);
	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += step) {
		size_t got;
		img_err err;
		int rc = img_read_at(im, off, buf, step, &got, &err);
		if (rc != IMG_OK)
			fail_msg("read at %llu: %s", (unsigned long long)off, err.msg);
		assert_int_equal(got, size - off < step ? size - off : step);
		if (memcmp(buf, ref + off, got) != 0)
			fail_msg("bytes differ in [%llu, +%zu)", (unsigned long long)off, got);
	}
	free(buf);
}

struct ra_reader {
	img_image *im;
	const uint8_t *ref;
	uint64_t size, seed;
	int bad;
};

static void *ra_reader_main(void *arg)
{
	struct ra_reader *r = arg;
	r->bad = ra_reads(r->im, r->ref, r->size, r->seed, 150);
	return NULL;
}

static void ra_threads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed)
{
	enum { NT = 6 };
	pthread_t t[NT];
	struct ra_reader r[NT];
	for (int i = 0; i < NT; i++) {
		r[i] = (struct ra_reader){ im, ref, size, seed + 977 * (uint64_t)(i + 1), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, ra_reader_main, &r[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (r[i].bad)
			fail_msg("thread %d: %d of 150 reads differ (seed 0x%llx)", i, r[i].bad,
				 (unsigned long long)r[i].seed);
	}
}

/*
 * The sequential walk of path is the reference: random reads (single thread,
 * then threads, then a sweep) with verify on and off and two index intervals
 * return the same bytes. `expect` (may be NULL) must equal the walk.
 */
static void ra_check(const char *path, const uint8_t *expect)
{
	if (!ra_seed_printed++)
		print_message("random reads: seed 0x%llx\n", (unsigned long long)RA_SEED);
	struct pih_walk w;
	pih_walk(path, 1, &w);
	if (w.rc != IMG_EOF || w.checksum_errors)
		fail_msg("%s: walk: %s", path, w.err.msg);
	if (expect)
		assert_memory_equal(w.dev, expect, w.devlen);
	static const uint32_t intervals[] = { 0, 8 };
	for (int v = 0; v < 2; v++)
		for (size_t k = 0; k < 2; k++) {
			img_image *im = ra_open(path, intervals[k], v, NULL, 0, NULL);
			uint64_t seed = RA_SEED + 31 * k + v;
			int bad = ra_reads(im, w.dev, w.devlen, seed, 300);
			if (bad)
				fail_msg("%s: %d of 300 reads differ (seed 0x%llx)", path, bad,
					 (unsigned long long)seed);
			ra_threads(im, w.dev, w.devlen, seed);
			if (v == 1 && k == 0)
				ra_sweep(im, w.dev, w.devlen, 40000);
			img_close(im);
		}
	pih_walk_free(&w);
}

static void test_random_single(void **state)
{
	(void)state;
	static const struct { uint32_t bs; uint64_t total; int density; } shapes[] = {
		{ 1024, 3000, 60 },    /* final partial chunk */
		{ 512, 4096, 100 },    /* 2 MiB used: ends on a CHK record */
		{ 4096, 700, 50 },
		{ 131072, 40, 50 },    /* blocks straddle CHK records */
		{ 65536, 30, 70 },
		{ 1024, 100, 0 },      /* nothing used */
	};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct pih_synth s = { .bs = shapes[i].bs, .total = shapes[i].total,
				   .density = shapes[i].density, .mbrs = 1, .fs = "ext2fs" };
		pih_synth_build(&s);
		pih_write_volumes(&s, "rsingle", NULL, 0, 0, 0);
		ra_check(pih_tpath("rsingle.000"), s.dev);
		/* gzip (partimage -z1), with access points every 16 KiB */
		zs_set_first_span(16384);
		pih_write_volumes(&s, "rsinglegz", NULL, 0, 1, 0);
		ra_check(pih_tpath("rsinglegz.000"), s.dev);
		zs_set_first_span(0);
		pih_write_volumes(&s, "rstdout.pimg", NULL, 0, 0, 1);
		ra_check(pih_tpath("rstdout.pimg"), s.dev);
		pih_synth_free(&s);
	}
}

static void test_random_multi(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t d = s.data_start;
	size_t cuts[] = {
		100, HS + 2, s.local_at + 10, s.bitmap_at + 7, s.info_at + HS + 1,
		d + CHUNK + 5,                /* inside a CHK record */
		d + 2 * (CHUNK + 16),         /* right after a CHK record */
		d + 3 * (CHUNK + 16) + 1000,  /* mid data */
		d + 3 * (CHUNK + 16) + 1000,  /* an empty volume */
		d + 3 * (CHUNK + 16) + 1001,  /* a one-byte volume */
		s.tail_magic_at + 7,          /* inside the TAIL magic */
		s.tail_magic_at + 16 + 100,   /* inside the tail */
	};
	pih_write_volumes(&s, "rmulti", cuts, sizeof cuts / sizeof cuts[0], 0, 0);
	ra_check(pih_tpath("rmulti.000"), s.dev);
	/* NAME where only NAME.000 exists: opened as the set */
	pih_expect_good(&s, pih_tpath("rmulti"));
	ra_check(pih_tpath("rmulti"), s.dev);
	/* the tail in a volume of its own, the data ending exactly at a cut */
	size_t cuts2[] = { d + 1, s.tail_magic_at };
	pih_write_volumes(&s, "rmulti2", cuts2, 2, 0, 0);
	ra_check(pih_tpath("rmulti2.000"), s.dev);
	/* many volumes: more than are kept open (the rest opened for each read) */
	size_t many[150];
	for (size_t i = 0; i < 150; i++)
		many[i] = d + (i + 1) * ((s.img.len - d) / 152);
	pih_write_volumes(&s, "rmany", many, 150, 0, 0);
	ra_check(pih_tpath("rmany.000"), s.dev);
	/* big blocks split across volumes */
	struct pih_synth b = { .bs = 262144, .total = 30, .density = 60, .fs = "ntfs" };
	pih_synth_build(&b);
	size_t bcuts[] = { b.data_start + 70000, b.data_start + 300000, b.data_start + 300016 };
	pih_write_volumes(&b, "rbig", bcuts, 3, 0, 0);
	ra_check(pih_tpath("rbig.000"), b.dev);
	pih_synth_free(&b);
	pih_synth_free(&s);
}

/* Reads of [off, off+len) fail with `code` and a message holding `needle`. */
static void ra_expect(img_image *im, uint64_t off, size_t len, int code, const char *needle)
{
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 99;
	img_err err;
	int rc = img_read_at(im, off, buf, len, &got, &err);
	if (rc != code || (needle && !strstr(err.msg, needle)))
		fail_msg("read at %llu of %zu: got %d (%s), want %d with \"%s\"", (unsigned long long)off,
			 len, rc, rc ? err.msg : "", code, needle ? needle : "");
	if (rc != IMG_OK)
		assert_int_equal(got, 0);
	free(buf);
}

/* A byte of the final partial chunk damaged: reads that touch that chunk fail
 * (found bad, then known bad) naming its blocks and the tail sum; the rest
 * reads right; with verify off the damaged byte is served. buf holds the device. */
/* The first and last block of the final partial chunk (after the last CHK record). */
static void final_chunk_blocks(const struct pih_synth *s, uint64_t *first, uint64_t *last)
{
	uint64_t rank = 0, full = s->used * s->bs / CHUNK * CHUNK / s->bs;
	const uint8_t *bm = s->img.p + s->bitmap_at;
	*first = *last = 0;
	for (uint64_t b = 0; b < s->total; b++)
		if (bm[b / 8] >> (b % 8) & 1) {
			if (rank == full)
				*first = b;
			*last = b;
			rank++;
		}
	assert_true(s->used * s->bs % CHUNK != 0 && *first > 0);
}

static void test_final_chunk(struct pih_synth *s, uint8_t *buf)
{
	uint64_t first, last;
	final_chunk_blocks(s, &first, &last);
	const char *path = pih_damaged(s, "rfinal.pimg", s->tail_magic_at - 10, 0x04);
	char needle[80];
	snprintf(needle, sizeof needle, "blocks %llu-%llu after the last CHK record",
		 (unsigned long long)first, (unsigned long long)last);
	img_image *im = ra_open(path, 0, 1, NULL, 0, NULL);
	for (int k = 0; k < 2; k++) {
		ra_expect(im, last * s->bs, 10, IMG_E_CHECKSUM, needle);
		ra_expect(im, 0, (size_t)(s->total * s->bs), IMG_E_CHECKSUM, "tail checksum");
	}
	size_t got;
	img_err err;
	assert_int_equal(img_read_at(im, 0, buf, (size_t)(first * s->bs), &got, &err), IMG_OK);
	assert_memory_equal(buf, s->dev, got);
	img_close(im);
	im = ra_open(path, 0, 0, NULL, 0, NULL);
	assert_int_equal(img_read_at(im, 0, buf, (size_t)(s->total * s->bs), &got, &err), IMG_OK);
	size_t diff = 0;
	for (size_t i = 0; i < got; i++)
		diff += buf[i] != s->dev[i];
	assert_int_equal(diff, 1);
	img_close(im);
}

static void test_random_damage(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t d = s.data_start;
	/* the device range of chunk 1: ranks 64..127 */
	uint64_t first = 0, last = 0, rank = 0;
	/* ranks from the bitmap stored in the image */
	const uint8_t *bm = s.img.p + s.bitmap_at;
	for (uint64_t b = 0; b < s.total; b++) {
		if (!(bm[b / 8] >> (b % 8) & 1))
			continue;
		if (rank == 64)
			first = b;
		if (rank == 127)
			last = b;
		rank++;
	}
	const char *path = pih_damaged(&s, "rdata.pimg", d + CHUNK + 16 + 100, 0x01);
	char needle[64];
	snprintf(needle, sizeof needle, "blocks %llu-%llu (CHK record 1)", (unsigned long long)first,
		 (unsigned long long)last);
	img_image *im = ra_open(path, 0, 1, NULL, 0, NULL);
	for (int k = 0; k < 2; k++) {  /* found bad, then known bad */
		ra_expect(im, first * s.bs, 10, IMG_E_CHECKSUM, needle);
		ra_expect(im, last * s.bs + 1000, 30, IMG_E_CHECKSUM, "rdata.pimg");
		ra_expect(im, 0, (size_t)(first * s.bs + 1), IMG_E_CHECKSUM, "CHK record 1");
	}
	/* ranges off chunk 1 still read, up to the final partial chunk: the
	 * tail's byte sum, its only check, covers chunk 1 too */
	uint8_t *buf = malloc((size_t)(first * s.bs));
	size_t got;
	img_err err;
	assert_int_equal(img_read_at(im, 0, buf, (size_t)(first * s.bs), &got, &err), IMG_OK);
	assert_memory_equal(buf, s.dev, got);
	uint64_t final_first, final_last;
	final_chunk_blocks(&s, &final_first, &final_last);
	uint64_t after = (last + 1) * s.bs, n = final_first * s.bs - after;
	buf = realloc(buf, (size_t)n);
	assert_int_equal(img_read_at(im, after, buf, (size_t)n, &got, &err), IMG_OK);
	assert_int_equal(got, n);
	assert_memory_equal(buf, s.dev + after, got);
	for (int k = 0; k < 2; k++)
		ra_expect(im, final_last * s.bs, 10, IMG_E_CHECKSUM,
			  "cannot be checked: the tail's byte sum, its only check, covers CHK record 1 too");
	img_close(im);
	/* verify off: the damaged bytes are served */
	im = ra_open(path, 0, 0, NULL, 0, NULL);
	buf = realloc(buf, (size_t)s.total * s.bs);
	assert_int_equal(img_read_at(im, 0, buf, (size_t)s.total * s.bs, &got, &err), IMG_OK);
	size_t diff = 0;
	for (size_t i = 0; i < got; i++)
		diff += buf[i] != s.dev[i];
	assert_int_equal(diff, 1);
	img_close(im);
	/* a CHK record's magic: structure lost, reads of that chunk fail */
	path = pih_damaged(&s, "rchk.pimg", d + CHUNK + 1, 0x20);
	im = ra_open(path, 0, 1, NULL, 0, NULL);
	ra_expect(im, 0, 100, IMG_E_CORRUPT, "CHK record 0 expected");
	img_close(im);
	/* the final partial chunk (no CHK record) is checked through the tail's byte sum */
	test_final_chunk(&s, buf);
	/* a truncated single file opens; reads past its end fail */
	{
		pih_synth_seal(&s, 0);
		uint8_t *f = malloc(VH + s.img.len);
		pih_volume_header(f, 0, IDENT);
		memcpy(f + VH, s.img.p, s.img.len);
		pih_write_file(pih_tpath("rshort.pimg"), f, VH + d + 3 * (CHUNK + 16), 0);
		free(f);
		im = ra_open(pih_tpath("rshort.pimg"), 0, 0, NULL, 0, NULL);
		ra_expect(im, 0, (size_t)s.total * s.bs, IMG_E_TRUNCATED, "truncated");
		ra_expect(im, 0, 1000, IMG_OK, NULL);
		img_close(im);
	}
	free(buf);
	pih_synth_free(&s);
}

/* img_random_open fails with code, message holding needle (and needle2). */
static void ra_open_fails(const char *path, int code, const char *needle, const char *needle2)
{
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	img_random_options o;
	img_random_options_init(&o);
	o.save = 0;
	o.index_path = pih_tpath("none.ibkx");
	int rc = img_random_open(im, &o, NULL);
	const char *msg = img_error(im)->msg;
	if (rc != code || !strstr(msg, needle) || (needle2 && !strstr(msg, needle2)))
		fail_msg("%s: got %d (%s), want %d with \"%s\"", path, rc, msg, code, needle);
	img_close(im);
}

static void test_random_volume_errors(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	/* every volume gzip: volume 0 is read through access points, volume 1
	 * stops it, with the command that decompresses every volume */
	pih_write_volumes(&s, "rgz", cuts, 3, 0xF, 0);
	ra_open_fails(pih_tpath("rgz.000"), IMG_E_FORMAT, "volume 1 is compressed (gzip)", "gzip -dc");
	/* volume 0 plain, the others compressed: each volume must be decompressed */
	pih_write_volumes(&s, "rgz1", cuts, 3, 0xE, 0);
	ra_open_fails(pih_tpath("rgz1.000"), IMG_E_FORMAT, "volume 1 is compressed (gzip)",
		      "for v in");
	/* bzip2 */
	{
		pih_write_volumes(&s, "rbz", cuts, 3, 0, 0);
		char cmd[600];
		snprintf(cmd, sizeof cmd, "bzip2 -q -f '%s' && mv '%s.bz2' '%s'", pih_tpath("rbz.002"),
			 pih_tpath("rbz.002"), pih_tpath("rbz.002"));
		if (system(cmd) == 0)
			ra_open_fails(pih_tpath("rbz.000"), IMG_E_FORMAT, "volume 2 is compressed (bzip2)",
				      "bzip2 -dc");
	}
	/* a missing volume */
	pih_write_volumes(&s, "rmiss", cuts, 3, 0, 0);
	unlink(pih_tpath("rmiss.002"));
	ra_open_fails(pih_tpath("rmiss.000"), IMG_E_MISSING, "rmiss.002", "missing");
	/* a truncated middle volume: a next one is looked for */
	pih_write_volumes(&s, "rtrunc", cuts, 3, 0, 0);
	assert_int_equal(truncate(pih_tpath("rtrunc.001"), 400000), 0);
	ra_open_fails(pih_tpath("rtrunc.000"), IMG_E_MISSING, "rtrunc.004", "rtrunc.003 is truncated");
	/* a middle volume that grew: the sizes no longer put the tail where it is */
	pih_write_volumes(&s, "rgrew", cuts, 3, 0, 0);
	{
		FILE *f = fopen(pih_tpath("rgrew.001"), "ab");
		assert_non_null(f);
		fputs("more bytes", f);
		fclose(f);
	}
	ra_open_fails(pih_tpath("rgrew.000"), IMG_E_CORRUPT, "MAGIC-BEGIN-TAIL", "rgrew.003");
	/* a foreign volume */
	pih_write_volumes(&s, "rforeign", cuts, 3, 0, 0);
	{
		uint8_t *f = malloc(VH + (cuts[2] - cuts[1]));
		pih_volume_header(f, 2, IDENT ^ 1);
		memcpy(f + VH, s.img.p + cuts[1], cuts[2] - cuts[1]);
		pih_write_file(pih_tpath("rforeign.002"), f, VH + (cuts[2] - cuts[1]), 0);
		free(f);
	}
	ra_open_fails(pih_tpath("rforeign.000"), IMG_E_CORRUPT, "another image", NULL);
	/* the tail names a wrong last volume */
	pih_write_volumes(&s, "rlast", cuts, 3, 0, 0);
	pih_synth_seal(&s, 7);
	{
		size_t len = s.img.len - cuts[2];
		uint8_t *f = malloc(VH + len);
		pih_volume_header(f, 3, IDENT);
		memcpy(f + VH, s.img.p + cuts[2], len);
		pih_write_file(pih_tpath("rlast.003"), f, VH + len, 0);
		free(f);
	}
	ra_open_fails(pih_tpath("rlast.000"), IMG_E_CORRUPT, "last volume is 7", NULL);
	/* a later volume's trailing bytes and stale volumes after the last are not looked at */
	pih_write_volumes(&s, "rextra", cuts, 3, 0, 0);
	pih_write_file(pih_tpath("rextra.004"), (const uint8_t *)"junk", 4, 0);
	ra_check(pih_tpath("rextra.000"), s.dev);
	pih_synth_free(&s);
}

/* Add delta to the u64 at byte `at` of index file idx (from its end when
 * negative) and make its file checksum valid again. */
static void tamper_index(const char *idx, long at, uint64_t delta)
{
	FILE *f = fopen(idx, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long flen = ftell(f);
	uint8_t *b = malloc((size_t)flen);
	rewind(f);
	assert_int_equal(fread(b, 1, (size_t)flen, f), (size_t)flen);
	size_t e = (size_t)(at < 0 ? flen + at : at);
	pih_set_le64(b + e, get_le64(b + e) + delta);
	pih_set_le64(b + flen - 8, XXH64(b, (size_t)flen - 8, 0));
	rewind(f);
	assert_int_equal(fwrite(b, 1, (size_t)flen, f), (size_t)flen);
	fclose(f);
	free(b);
}

static void test_random_index(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 5000, .density = 60, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	pih_write_volumes(&s, "ridx", cuts, 3, 0, 0);
	char idx[256];
	snprintf(idx, sizeof idx, "%s", pih_tpath("ridx.ibkx"));
	unlink(idx);
	int st = -1;
	img_image *im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);  /* built and saved */
	assert_int_equal(img_index_origin(im), IMG_INDEX_BUILT);
	img_close(im);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);  /* loaded */
	assert_int_equal(img_index_origin(im), IMG_INDEX_LOADED);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED, 300), 0);
	img_close(im);
	/* another interval: not this index */
	im = ra_open(pih_tpath("ridx.000"), 128, 1, idx, 0, &st);
	assert_int_equal(st, 0);
	img_close(im);
	/* a newer .002 (same bytes): the saved volume table no longer matches */
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 2000000000, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, pih_tpath("ridx.002"), ts, 0), 0);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);  /* rebuilt and saved again */
	assert_int_equal(img_index_origin(im), IMG_INDEX_REBUILT);
	img_close(im);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 1, 300), 0);
	img_close(im);
	/* .001 and .002 rewritten with other sizes (cut elsewhere), .000 the same bytes
	 * and mtime: only the volume table of the payload tells; rebuilt, reads follow */
	struct timespec t0[2] = { { 0, UTIME_OMIT }, { 1000000000, 0 } };
	unlink(idx);
	assert_int_equal(utimensat(AT_FDCWD, pih_tpath("ridx.000"), t0, 0), 0);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	img_close(im);
	size_t cuts2[] = { 20000, 600000, 1000000 };
	pih_write_volumes(&s, "ridx", cuts2, 3, 0, 0);
	assert_int_equal(utimensat(AT_FDCWD, pih_tpath("ridx.000"), t0, 0), 0);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 2, 300), 0);
	img_close(im);
	/* a payload whose rank entries do not add up (file checksum made valid): rebuilt */
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);
	img_close(im);
	size_t e2 = 72 + 56 + 4 * 24 + 2 * 8;  /* rank entry 2 */
	tamper_index(idx, (long)e2, 65);
	im = ra_open(pih_tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	assert_int_equal(img_index_origin(im), IMG_INDEX_REBUILT);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 3, 300), 0);
	img_close(im);
	/* gzip: the index holds the access points and the rank table; built,
	 * loaded, and rebuilt when only the rank table does not fit (the
	 * access points are taken) */
	zs_set_first_span(16384);
	pih_write_volumes(&s, "ridxgz", NULL, 0, 1, 0);
	zs_set_first_span(0);
	snprintf(idx, sizeof idx, "%s", pih_tpath("ridxgz.ibkx"));
	unlink(idx);
	static const int origins[] = { IMG_INDEX_BUILT, IMG_INDEX_LOADED, IMG_INDEX_REBUILT };
	static const int states[] = { 2, 1, 2 };
	for (int pass = 0; pass < 3; pass++) {
		if (pass == 2)
			tamper_index(idx, -16, 1);  /* the last rank entry */
		im = ra_open(pih_tpath("ridxgz.000"), 0, 1, idx, 1, &st);
		assert_int_equal(st, states[pass]);
		assert_int_equal(img_index_origin(im), origins[pass]);
		assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 4, 100), 0);
		img_close(im);
	}
	pih_synth_free(&s);
}

/* Decompress src (gzip or bzip2) to dst. */
static void decompress_to(const char *src, const char *dst, int bz)
{
	FILE *out = fopen(dst, "wb");
	assert_non_null(out);
	char buf[65536];
	if (!bz) {
		gzFile g = gzopen(src, "rb");
		assert_non_null(g);
		int n;
		while ((n = gzread(g, buf, sizeof buf)) > 0)
			assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
		assert_int_equal(n, 0);
		gzclose(g);
	} else {
		FILE *in = fopen(src, "rb");
		assert_non_null(in);
		int e;
		BZFILE *b = BZ2_bzReadOpen(&e, in, 0, 0, NULL, 0);
		assert_int_equal(e, BZ_OK);
		while (e == BZ_OK) {
			int n = BZ2_bzRead(&e, b, buf, sizeof buf);
			if (n > 0)
				assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
		}
		assert_int_equal(e, BZ_STREAM_END);
		BZ2_bzReadClose(&e, b);
		fclose(in);
	}
	fclose(out);
}

static void test_random_real_samples(void **state)
{
	(void)state;
	const char *dir = getenv("IMGBK_TEST_DATA") ? getenv("IMGBK_TEST_DATA") : "test/data";
	char path[512];
	snprintf(path, sizeof path, "%s/partimage_ext2_stdout.pimg", dir);
	ra_check(path, NULL);
	/* a gzip volume (-z1) is read through its access points, as it is ... */
	snprintf(path, sizeof path, "%s/partimage_ext2_z1.pimg.000", dir);
	ra_check(path, NULL);
	/* ... and the same once decompressed */
	decompress_to(path, pih_tpath("real_ext2.000"), 0);
	ra_check(pih_tpath("real_ext2.000"), NULL);
	snprintf(path, sizeof path, "%s/partimage_fat16_z2.pimg.000", dir);
	ra_check(path, NULL);  /* bzip2 (-z2): its blocks are the access points */
	decompress_to(path, pih_tpath("real_fat.000"), 1);
	ra_check(pih_tpath("real_fat.000"), NULL);
	/* the CRC-32 of partimage's own restore, through random reads */
	img_image *im = ra_open(pih_tpath("real_fat.000"), 0, 1, NULL, 0, NULL);
	uint64_t size = img_get_info(im)->device_size;
	uint8_t *buf = malloc((size_t)size);
	size_t got;
	img_err err;
	assert_int_equal(img_read_at(im, 0, buf, (size_t)size, &got, &err), IMG_OK);
	assert_int_equal(got, size);
	assert_int_equal(crc32_fast(0, buf, got), 0x406fecf4);
	free(buf);
	img_close(im);
}

/*
 * These tests used to run in one binary after those of test_partimage.c, on
 * the writer's sequence where those left it. Starting from that state keeps
 * the synthetic images the very ones the tests were written against
 * (test_random_damage, for one, reads device offset 0 of a damaged CHK
 * chunk and needs block 0 in use there).
 */
#define RA_RND_STATE 0x98919389bc6f1f15ull

static int setup(void **state)
{
	pih_rnd_set_state(RA_RND_STATE);
	return pih_setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_single),
		cmocka_unit_test(test_random_multi),
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_random_volume_errors),
		cmocka_unit_test(test_random_index),
		cmocka_unit_test(test_random_real_samples),
	};
	return cmocka_run_group_tests(tests, setup, pih_teardown);
}

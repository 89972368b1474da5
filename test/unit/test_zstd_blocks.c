/*
 * test/unit/test_zstd_blocks.c - unit tests of the zstd block and sequence
 * parser (io/zstd_blocks.c) against libzstd itself.
 *
 * Fixtures are made here with libzstd's API from deterministic mixed data
 * (random runs, text-like lines, zeros, repeated structures, copies from far
 * back): levels 1, 3 and 19, two workers (the multi-thread engine that
 * zstd -T0 uses), windowLog 27 with long-distance matching (zstd --long=27).
 * For EVERY block boundary B of each fixture the checkpoint is built as
 * imgbk builds it: the parser's dictionary header, then a sparse window (only
 * the bytes before B that matches after B copy, the rest zeros); the frame is
 * resumed with a 6-byte frame header and the original blocks from B, decoded
 * by libzstd with that dictionary, and compared with the true bytes up to the
 * next 1 MiB past B. An exact resume at every boundary is the proof that the
 * parser's repeat offsets and tables at B are the decoder's.
 * Also: FSE description write/read round trips, the predefined tables
 * against the RFC's Appendix A, a single-segment frame, damaged frames
 * (errors, never a crash), and a 24 MiB frame read through a view
 * (io/zstd_scan.c) with its checkpoints and with the parser forced off
 * (zs_zstd_set_follow: no checkpoints, the frame counted as not followed,
 * reads still right).
 *
 * Not here: the index and reads (test_zseek_codecs.c), fuzzing
 * (test/fuzz/fuzz_zstd_blocks.c).
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "io/zseek.h"
#include "io/zstd_blocks.h"

#define RESUME_CHECK ((size_t)1 << 20)  /* bytes compared after each boundary */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 33);
}

/* Mixed data: random runs, text-like lines, zeros, repeated structures and
 * copies of earlier stretches (some from far back, for long windows). */
static uint8_t *make_data(size_t size, uint64_t seed)
{
	static const char *words[] = { "partclone", "image", "block", "the", "of", "bitmap", "ext4",
				       "inode", "super", "journal", "0x1f", "size=", "\n", "error", "data" };
	uint8_t *d = malloc(size);
	assert_non_null(d);
	rng_state = seed;
	size_t at = 0;
	while (at < size) {
		size_t run = 512 + rnd() % (96 << 10);
		if (run > size - at)
			run = size - at;
		switch (rnd() % 6) {
		case 0:
			for (size_t i = 0; i < run; i++)
				d[at + i] = (uint8_t)rnd();
			break;
		case 1:
			for (size_t i = 0; i < run;) {
				const char *w = words[rnd() % 15];
				for (; *w && i < run; w++)
					d[at + i++] = (uint8_t)*w;
				if (i < run)
					d[at + i++] = ' ';
			}
			break;
		case 2:
			memset(d + at, 0, run);
			break;
		case 3:
			for (size_t i = 0; i < run; i++)  /* records with a counter */
				d[at + i] = (uint8_t)((i % 64) < 8 ? (i / 64) >> ((i % 8) * 8 % 32) : i % 64);
			break;
		default:
			if (at > run) {  /* a copy from anywhere earlier, a few bytes changed */
				size_t from = rnd() % (at - run);
				memmove(d + at, d + from, run);
				for (int k = 0; k < 4; k++)
					d[at + rnd() % run] ^= 0x5A;
			} else {
				memset(d + at, 'x', run);
			}
		}
		at += run;
	}
	return d;
}

static uint8_t *compress(const uint8_t *src, size_t n, int level, int workers, int wlog, size_t *out_len)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	assert_non_null(cc);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)));
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	if (workers)  /* a library without threads refuses: then one thread */
		ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, workers);
	if (wlog) {
		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog)));
		ZSTD_CCtx_setParameter(cc, ZSTD_c_enableLongDistanceMatching, 1);
	}
	size_t cap = ZSTD_compressBound(n);
	uint8_t *dst = malloc(cap);
	assert_non_null(dst);
	ZSTD_inBuffer in = { src, n, 0 };
	ZSTD_outBuffer out = { dst, cap, 0 };
	size_t r;
	do {
		r = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
		assert_false(ZSTD_isError(r));
	} while (r != 0);
	ZSTD_freeCCtx(cc);
	*out_len = out.pos;
	return dst;
}

struct match {
	uint64_t dst, src;
	uint32_t len;
};

struct matches {
	struct match *m;
	size_t n, cap;
};

static void on_match(void *ctx, uint64_t dst, uint64_t src, uint32_t len)
{
	struct matches *ms = ctx;
	if (ms->n == ms->cap) {
		ms->cap = ms->cap ? ms->cap * 2 : 4096;
		ms->m = realloc(ms->m, ms->cap * sizeof *ms->m);
		assert_non_null(ms->m);
	}
	ms->m[ms->n++] = (struct match){ dst, src, len };
}

struct boundary {
	uint64_t cpos;         /* frame-relative compressed offset of the block */
	struct zb_state st;    /* the parser's state before it */
	int unusable;
};

/* Resume at boundary b and compare want bytes with truth. @return 1 when exact. */
static int resume_exact(const uint8_t *frame, size_t flen, const struct zb_frame *fh, const struct boundary *b,
			const struct matches *ms, size_t *first_match, const uint8_t *truth, uint64_t total)
{
	uint64_t B = b->st.pos, W = fh->window_size;
	/* the matches in [B, B + W) that copy bytes from before B */
	uint64_t lowest = B;
	size_t i = *first_match;
	while (i < ms->n && ms->m[i].dst < B)
		i++;
	*first_match = i;
	for (size_t k = i; k < ms->n && ms->m[k].dst < B + W; k++)
		if (ms->m[k].src < lowest)
			lowest = ms->m[k].src;
	uint64_t clen = B - lowest;
	if (clen < zb_dict_min_content(&b->st))
		clen = zb_dict_min_content(&b->st);
	uint8_t head[ZB_DICT_HEAD_MAX];
	size_t hlen;
	assert_int_equal(zb_dict_header(&b->st, 0x8000 + 1, head, sizeof head, &hlen), ZB_OK);
	uint8_t *dict = calloc(1, hlen + clen);
	assert_non_null(dict);
	memcpy(dict, head, hlen);
	uint8_t *content = dict + hlen;  /* content[clen - 1] is the byte at B - 1 */
	for (size_t k = i; k < ms->n && ms->m[k].dst < B + W; k++) {
		const struct match *m = &ms->m[k];
		if (m->src >= B)
			continue;
		uint64_t end = m->src + m->len < B ? m->src + m->len : B;
		memcpy(content + clen - (B - m->src), truth + m->src, end - m->src);
	}
	uint8_t head6[6] = { 0x28, 0xB5, 0x2F, 0xFD, 0, fh->window_byte };
	/* one decoder context for every boundary (reset each time): a fresh one
	 * per boundary is fresh pages each time, most of this test's time under
	 * the sanitizers */
	static ZSTD_DCtx *dc;
	if (!dc)
		dc = ZSTD_createDCtx();
	assert_non_null(dc);
	ZSTD_DCtx_reset(dc, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 27);
	int ok = !ZSTD_isError(ZSTD_DCtx_loadDictionary_byReference(dc, dict, hlen + clen));
	uint64_t want = total - B < RESUME_CHECK ? total - B : RESUME_CHECK;
	uint8_t *out = malloc(want + 1);
	assert_non_null(out);
	/* the 6-byte frame header, then the original blocks from the boundary on */
	ZSTD_inBuffer ib = { head6, sizeof head6, 0 };
	int on_blocks = 0;
	ZSTD_outBuffer ob = { out, want, 0 };
	while (ok && ob.pos < want) {
		if (ib.pos == ib.size && !on_blocks) {
			ib = (ZSTD_inBuffer){ frame + b->cpos, flen - b->cpos, 0 };
			on_blocks = 1;
		}
		size_t before = ob.pos, ipos = ib.pos;
		size_t r = ZSTD_decompressStream(dc, &ob, &ib);
		if (ZSTD_isError(r) || r == 0 || (ob.pos == before && ib.pos == ipos && on_blocks))
			ok = ZSTD_isError(r) ? 0 : ob.pos == want;
	}
	ok = ok && ob.pos == want && memcmp(out, truth + B, want) == 0;
	free(out);
	free(dict);
	return ok;
}

/* Parse every block of the one-frame file, then resume at every boundary. */
static void check_fixture(const char *what, size_t size, uint64_t seed, int level, int workers, int wlog)
{
	uint8_t *truth = make_data(size, seed);
	size_t flen;
	uint8_t *frame = compress(truth, size, level, workers, wlog, &flen);
	struct zb_frame fh;
	assert_int_equal(zb_frame_header(frame, flen, &fh), ZB_OK);
	assert_int_equal(fh.dict_id, 0);
	struct zb_state st;
	zb_state_init(&st, &fh);
	struct matches ms = { 0 };
	struct boundary *bd = NULL;
	size_t nb = 0, cap = 0, compressed = 0, rle_tables = 0;
	while (!st.ended) {
		if (nb == cap) {
			cap = cap ? cap * 2 : 256;
			bd = realloc(bd, cap * sizeof *bd);
			assert_non_null(bd);
		}
		bd[nb].cpos = st.cpos;
		bd[nb].st = st;
		bd[nb].unusable = 0;
		nb++;
		struct zb_block_info info;
		size_t need;
		int rc = zb_block(&st, frame + st.cpos, flen - st.cpos, &need, &info, on_match, &ms);
		if (rc != ZB_OK)
			fail_msg("%s: block at %llu: %d %s", what, (unsigned long long)st.cpos, rc, st.why);
		compressed += info.type == 2;
		for (int t = 0; t < 3; t++)
			rle_tables += info.type == 2 && info.sequences && st.t[t].mode == ZB_RLE;
		for (size_t k = 0; info.unusable_after != UINT64_MAX && k < nb; k++)
			if (bd[k].cpos > info.unusable_after)
				bd[k].unusable = 1;
	}
	assert_int_equal(st.pos, size);
	assert_int_equal(st.cpos + (fh.checksum ? 4 : 0), flen);
	size_t exact = 0, unusable = 0, first = 0;
	for (size_t k = 0; k < nb; k++) {
		if (bd[k].unusable) {
			unusable++;
			continue;
		}
		if (resume_exact(frame, flen, &fh, &bd[k], &ms, &first, truth, size))
			exact++;
		else
			print_error("%s: resume at block %zu (decoded %llu, compressed %llu) not exact\n", what, k,
				    (unsigned long long)bd[k].st.pos, (unsigned long long)bd[k].cpos);
	}
	print_message("%s: %zu blocks (%zu compressed, %zu RLE tables in force), %zu matches, %zu exact "
		      "resumes, %zu unusable\n", what, nb, compressed, rle_tables, ms.n, exact, unusable);
	assert_int_equal(exact + unusable, nb);
	assert_int_equal(unusable, 0);  /* libzstd never writes RLE then Repeat */
	assert_true(nb > 20);
	free(ms.m);
	free(bd);
	free(frame);
	free(truth);
}

static void test_level1(void **st)
{
	check_fixture("level 1", (size_t)8 << 20, 11, 1, 0, 0);
}

static void test_level3(void **st)
{
	check_fixture("level 3", (size_t)12 << 20, 12, 3, 0, 0);
}

static void test_level3_mt(void **st)
{
	check_fixture("level 3, 2 workers", (size_t)24 << 20, 13, 3, 2, 0);
}

static void test_level19(void **st)
{
	check_fixture("level 19, 2 workers", (size_t)6 << 20, 14, 19, 2, 0);
}

static void test_level19_st(void **st)
{
	check_fixture("level 19", (size_t)3 << 20, 15, 19, 0, 0);
}

static void test_long27(void **st)
{
	check_fixture("level 3, windowLog 27 + long matching", (size_t)40 << 20, 16, 3, 0, 27);
}

/* The predefined literal length table against RFC 8878 Appendix A (first rows). */
/* One view of a one-frame file: its checkpoints, frames and frames
 * without checkpoints (zs_view_points), and 60 random reads against truth. */
static void view_points(const char *path, const uint8_t *truth, size_t size, uint64_t *ck, uint64_t *units,
			uint64_t *blind)
{
	img_err err;
	memset(&err, 0, sizeof err);
	img_rsrc *raw = NULL;
	zs_view *v = NULL;
	int rebuilt = 0;
	assert_int_equal(rsrc_open(path, &err, &raw), IMG_OK);
	if (zs_view_open(raw, path, &zs_zstd_ops, NULL, 0, NULL, NULL, &rebuilt, &err, &v) != IMG_OK)
		fail_msg("%s: %s", path, err.msg);
	assert_int_equal(zs_view_size(v), size);
	zs_view_points(v, ck, units, blind);
	uint8_t *buf = malloc((size_t)1 << 20);
	assert_non_null(buf);
	rng_state = 99;
	for (int i = 0; i < 60; i++) {
		uint64_t off = rnd() % size;
		size_t len = 1 + rnd() % ((size_t)1 << 20), got = 0;
		assert_int_equal(zs_view_pread(v, buf, len, off, &got, &err), IMG_OK);
		assert_int_equal(got, len < size - off ? len : (size_t)(size - off));
		assert_memory_equal(buf, truth + off, got);
	}
	free(buf);
	zs_view_close(v);
	rsrc_close(raw);
}

/* A frame the parser does not follow (forced: zstd's tools write none that
 * it cannot) gets no checkpoints, says so (blind), and still reads right. */
static void test_frame_not_followed(void **st)
{
	(void)st;
	size_t size = (size_t)24 << 20, flen;
	uint8_t *truth = make_data(size, 21);
	uint8_t *frame = compress(truth, size, 3, 0, 0, &flen);
	char path[] = "/tmp/imgbk-zb-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, frame, flen), (ssize_t)flen);
	close(fd);
	uint64_t ck, units, blind;
	view_points(path, truth, size, &ck, &units, &blind);
	print_message("followed: %llu checkpoints in %llu frame, %llu without\n", (unsigned long long)ck,
		      (unsigned long long)units, (unsigned long long)blind);
	assert_true(ck >= 5);
	assert_int_equal(units, 1);
	assert_int_equal(blind, 0);
	zs_zstd_set_follow(0);
	view_points(path, truth, size, &ck, &units, &blind);
	zs_zstd_set_follow(1);
	print_message("not followed: %llu checkpoints in %llu frame, %llu without\n", (unsigned long long)ck,
		      (unsigned long long)units, (unsigned long long)blind);
	assert_int_equal(ck, 0);
	assert_int_equal(units, 1);
	assert_int_equal(blind, 1);
	unlink(path);
	free(frame);
	free(truth);
}

static void test_predefined_tables(void **st)
{
	static const int16_t ll[36] = { 4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2,
					2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1 };
	static const uint8_t sym[12] = { 0, 0, 1, 3, 4, 6, 7, 9, 10, 12, 14, 16 };
	static const uint8_t bits[12] = { 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 5 };
	static const uint16_t base[12] = { 0, 16, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct zb_fse_cell cell[64];
	assert_int_equal(zb_fse_build(cell, ll, 36, 6), ZB_OK);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(cell[i].symbol, sym[i]);
		assert_int_equal(cell[i].bits, bits[i]);
		assert_int_equal(cell[i].base, base[i]);
	}
	assert_int_equal(cell[63].symbol, 32);  /* "less than 1" symbols from the end back */
	assert_int_equal(cell[63].bits, 6);
	assert_int_equal(cell[60].symbol, 35);
	assert_int_equal(cell[59].symbol, 24);  /* Appendix A: 59 -> 24, 5 bits, base 32 */
	assert_int_equal(cell[59].base, 32);
	int16_t bad[2] = { 40, 40 };
	assert_int_equal(zb_fse_build(cell, bad, 2, 6), ZB_E_CORRUPT);
}

/* Descriptions written by zb_ncount_write read back the same. */
static void test_ncount_roundtrip(void **st)
{
	rng_state = 99;
	for (int round = 0; round < 2000; round++) {
		unsigned log = 5 + rnd() % 5, nsym = 2 + rnd() % 50;
		int16_t norm[64] = { 0 }, back[64];
		int left = 1 << log;
		for (unsigned s = 0; s + 1 < nsym && left > 1; s++) {
			unsigned pick = rnd() % 4;
			int v = pick == 0 ? 0 : pick == 1 ? -1 : (int)(rnd() % (unsigned)(left / 2 + 1));
			if (v == -1 || v > 0) {
				left -= v < 0 ? 1 : v;
				norm[s] = (int16_t)v;
			}
		}
		norm[nsym - 1] = (int16_t)left;
		uint8_t buf[ZB_FSE_DESC_MAX];
		size_t len, used;
		unsigned n2, l2;
		assert_int_equal(zb_ncount_write(norm, nsym, log, buf, sizeof buf, &len), ZB_OK);
		assert_int_equal(zb_ncount_read(buf, len, 63, 9, back, &n2, &l2, &used), ZB_OK);
		assert_int_equal(l2, log);
		assert_int_equal(used, len);
		assert_int_equal(n2, nsym);
		assert_memory_equal(back, norm, nsym * sizeof *norm);
	}
	int16_t rle[40] = { 0 };
	rle[39] = 32;
	uint8_t buf[ZB_FSE_DESC_MAX];
	size_t len, used;
	unsigned n2, l2;
	int16_t back[64];
	assert_int_equal(zb_ncount_write(rle, 40, 5, buf, sizeof buf, &len), ZB_OK);
	assert_int_equal(zb_ncount_read(buf, len, 52, 9, back, &n2, &l2, &used), ZB_OK);
	assert_int_equal(n2, 40);
	assert_int_equal(back[39], 32);
}

/* A small frame is single-segment: its window is its content size. */
static void test_single_segment(void **st)
{
	uint8_t *truth = make_data(100000, 5);
	size_t cap = ZSTD_compressBound(100000);
	uint8_t *frame = malloc(cap);
	size_t flen = ZSTD_compress(frame, cap, truth, 100000, 3);
	assert_false(ZSTD_isError(flen));
	struct zb_frame fh;
	assert_int_equal(zb_frame_header(frame, flen, &fh), ZB_OK);
	assert_true(fh.single_segment);
	assert_int_equal(fh.window_size, 100000);
	assert_int_equal(fh.content_size, 100000);
	unsigned e = fh.window_byte >> 3, m = fh.window_byte & 7;
	uint64_t w = ((uint64_t)1 << (10 + e)) + (((uint64_t)1 << (10 + e)) / 8) * m;
	assert_true(w >= 100000 && w < 100000 + 100000 / 8 + 1024);
	struct zb_state s;
	zb_state_init(&s, &fh);
	struct zb_block_info info;
	size_t need;
	while (!s.ended)
		assert_int_equal(zb_block(&s, frame + s.cpos, flen - s.cpos, &need, &info, NULL, NULL), ZB_OK);
	assert_int_equal(s.pos, 100000);
	/* short input asks for the whole block */
	zb_state_init(&s, &fh);
	assert_int_equal(zb_block(&s, frame + s.cpos, 2, &need, &info, NULL, NULL), ZB_E_SHORT);
	assert_int_equal(zb_block(&s, frame + s.cpos, 3, &need, &info, NULL, NULL), ZB_E_SHORT);
	assert_true(need > 3);
	free(frame);
	free(truth);
}

/* Every single-byte change of a frame: ZB_OK or ZB_E_CORRUPT, and a frame
 * the parser accepts decodes to as many bytes as libzstd says, when libzstd
 * accepts it too. */
static void test_damaged(void **st)
{
	uint8_t *truth = make_data(300000, 6);
	size_t cap = ZSTD_compressBound(300000);
	uint8_t *frame = malloc(cap), *copy = malloc(cap), *out = malloc(300000 + 4096);
	size_t flen = ZSTD_compress(frame, cap, truth, 300000, 19);
	size_t errors = 0;
	for (size_t at = 6; at < flen; at += 1 + at / 40) {
		memcpy(copy, frame, flen);
		copy[at] ^= (uint8_t)(1u << (at % 8));
		struct zb_frame fh;
		if (zb_frame_header(copy, flen, &fh) != ZB_OK)
			continue;
		struct zb_state s;
		zb_state_init(&s, &fh);
		int rc = ZB_OK;
		while (!s.ended && rc == ZB_OK) {
			struct zb_block_info info;
			size_t need;
			rc = zb_block(&s, copy + s.cpos, flen - s.cpos, &need, &info, NULL, NULL);
		}
		assert_true(rc == ZB_OK || rc == ZB_E_CORRUPT || rc == ZB_E_SHORT);
		errors += rc != ZB_OK;
		if (rc == ZB_E_CORRUPT)
			assert_non_null(s.why);
	}
	assert_true(errors > 0);
	free(out);
	free(copy);
	free(frame);
	free(truth);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_predefined_tables),
		cmocka_unit_test(test_ncount_roundtrip),
		cmocka_unit_test(test_single_segment),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_frame_not_followed),
		cmocka_unit_test(test_level1),
		cmocka_unit_test(test_level3),
		cmocka_unit_test(test_level3_mt),
		cmocka_unit_test(test_level19),
		cmocka_unit_test(test_level19_st),
		cmocka_unit_test(test_long27),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

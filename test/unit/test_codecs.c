/*
 * test/unit/test_codecs.c - unit tests of the decoding layers (io/gz.c,
 * bz2.c, zstd.c, xz.c, lz4.c, lzop.c, lzip) and their bids (io/codecs.c).
 * Compressed data is made in-process with the libraries themselves (the
 * lz4 legacy framing by hand) or by the real tools, decoded over the
 * memory source in steps of 1, 7 and 4096 bytes, and compared byte for byte.
 *
 * Not here: the split-set source (test_codecs_split.c), the stream core
 * (test_stream.c), sniffing/stacking (open.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bzlib.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include "helper_codecs.h"
#include "helper_memsrc.h"
#include "io/zseek.h"

/* ---- encoders (the real libraries) ------------------------------------------ */

static void enc_bzip2(struct buf *o, const uint8_t *in, size_t n)
{
	unsigned len = (unsigned)(n + n / 100 + 1000);
	buf_reserve(o, len);
	assert_int_equal(BZ2_bzBuffToBuffCompress((char *)o->p + o->n, &len, (char *)in, (unsigned)n, 1, 0, 0),
			 BZ_OK);
	o->n += len;
}

static void enc_zstd(struct buf *o, const uint8_t *in, size_t n)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	size_t bound = ZSTD_compressBound(n);
	buf_reserve(o, bound);
	size_t r = ZSTD_compress2(c, o->p + o->n, bound, in, n);
	assert_false(ZSTD_isError(r));
	o->n += r;
	ZSTD_freeCCtx(c);
}

/* One frame with a 256 MiB window (as zstd --long=28 writes when it is not
 * told the size): streamed, so libzstd does not shrink the window to the data. */
static void enc_zstd_window28(struct buf *o, const uint8_t *in, size_t n)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 28)));
	size_t bound = ZSTD_compressBound(n) + 64;
	buf_reserve(o, bound);
	ZSTD_outBuffer ob = { o->p + o->n, bound, 0 };
	ZSTD_inBuffer ib = { in, n, 0 };
	assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
	size_t left;
	do
		left = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
	while (left != 0 && !ZSTD_isError(left));
	assert_false(ZSTD_isError(left));
	o->n += ob.pos;
	ZSTD_freeCCtx(c);
}

static void enc_skippable(struct buf *o, uint32_t nibble, size_t payload)
{
	buf_le32(o, 0x184D2A50u + nibble);
	buf_le32(o, (uint32_t)payload);
	for (size_t i = 0; i < payload; i++)
		buf_add(o, "\x5a", 1);
}

static void lzma_run(lzma_stream *z, struct buf *o, const uint8_t *in, size_t n)
{
	z->next_in = in;
	z->avail_in = n;
	lzma_ret r;
	do {
		buf_reserve(o, 65536);
		z->next_out = o->p + o->n;
		z->avail_out = o->cap - o->n;
		r = lzma_code(z, LZMA_FINISH);
		o->n = o->cap - z->avail_out;
	} while (r == LZMA_OK);
	assert_int_equal(r, LZMA_STREAM_END);
	lzma_end(z);
}

static void enc_xz(struct buf *o, const uint8_t *in, size_t n)
{
	lzma_stream z = LZMA_STREAM_INIT;
	assert_int_equal(lzma_easy_encoder(&z, 1, LZMA_CHECK_CRC64), LZMA_OK);
	lzma_run(&z, o, in, n);
}

/* Many blocks with sizes in their headers, as xz -T2 writes. */
static void enc_xz_mt(struct buf *o, const uint8_t *in, size_t n)
{
	lzma_stream z = LZMA_STREAM_INIT;
	lzma_mt mt = { .threads = 2, .block_size = 64 * 1024, .preset = 1, .check = LZMA_CHECK_CRC32 };
	assert_int_equal(lzma_stream_encoder_mt(&z, &mt), LZMA_OK);
	lzma_run(&z, o, in, n);
}

static void enc_lzma(struct buf *o, const uint8_t *in, size_t n)
{
	lzma_stream z = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	assert_false(lzma_lzma_preset(&opt, 1));
	assert_int_equal(lzma_alone_encoder(&z, &opt), LZMA_OK);
	lzma_run(&z, o, in, n);
}

static void enc_lz4f(struct buf *o, const uint8_t *in, size_t n)
{
	LZ4F_preferences_t prefs;
	memset(&prefs, 0, sizeof prefs);
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	size_t bound = LZ4F_compressFrameBound(n, &prefs);
	buf_reserve(o, bound);
	size_t r = LZ4F_compressFrame(o->p + o->n, bound, in, n, &prefs);
	assert_false(LZ4F_isError(r));
	o->n += r;
}

/* lz4 -l: magic, then u32 LE size + block per 8 MiB of input. */
static void enc_lz4_legacy(struct buf *o, const uint8_t *in, size_t n, int magic)
{
	const size_t blk = (size_t)8 << 20;
	if (magic)
		buf_le32(o, 0x184C2102u);
	for (size_t off = 0; off < n; off += blk) {
		int len = (int)(n - off < blk ? n - off : blk);
		int bound = LZ4_compressBound(len);
		buf_reserve(o, 4 + (size_t)bound);
		int r = LZ4_compress_default((const char *)in + off, (char *)o->p + o->n + 4, len, bound);
		assert_true(r > 0);
		buf_le32(o, (uint32_t)r);
		o->n += (size_t)r;
	}
}

/* ---- decoding through the layers -------------------------------------------- */

typedef int (*open_fn)(img_stream *up, img_stream **out);

/* Decode comp through `open` over a memsrc of `chunk` steps. @return the final status. */
static int decode(open_fn open, const struct buf *comp, size_t chunk, struct buf *out, img_err *err)
{
	static const size_t wants[] = { 1, 5000, 1 << 20, 3, 65536, 77 };
	img_stream *src = NULL, *s = NULL;
	memset(err, 0, sizeof *err);
	out->n = 0;
	assert_int_equal(memsrc_open(comp->p, comp->n, chunk, err, &src), IMG_OK);
	int rc = open(src, &s);
	if (rc != IMG_OK) {
		stream_close(src);
		return rc;
	}
	for (size_t i = 0;; i++) {
		const uint8_t *p;
		size_t avail;
		rc = stream_peek(s, wants[i % 6], &p, &avail);
		if (rc < 0)
			break;
		buf_add(out, p, avail);
		stream_consume(s, avail);
		if (rc == IMG_EOF && avail == 0)
			break;
	}
	stream_close(s);
	return rc;
}

static void expect_same(open_fn open, const struct buf *comp, const struct buf *plain, size_t chunk)
{
	struct buf out = { 0 };
	img_err err;
	int rc = decode(open, comp, chunk, &out, &err);
	if (rc != IMG_EOF)
		fail_msg("chunk %zu: status %d: %s", chunk, rc, err.msg);
	assert_int_equal(out.n, plain->n);
	assert_memory_equal(out.p, plain->p, plain->n);
	assert_int_equal(err.code, IMG_OK);
	buf_free(&out);
}

static void expect_same_all_chunks(open_fn open, const struct buf *comp, const struct buf *plain)
{
	static const size_t chunks[] = { 1, 7, 4096 };
	for (size_t i = 0; i < 3; i++)
		expect_same(open, comp, plain, chunks[i]);
}

/* An error whose message names "byte N" with N = err.offset, within the input. */
static void expect_error_with_offset(const img_err *err, int rc, size_t comp_len)
{
	char want[64];
	assert_true(rc < 0);
	assert_int_equal(err->code, rc);
	assert_true(err->has_offset);
	assert_true(err->offset <= comp_len);
	snprintf(want, sizeof want, "byte %llu", (unsigned long long)err->offset);
	if (!strstr(err->msg, want))
		fail_msg("message lacks \"%s\": %s", want, err->msg);
}

/* Damage: a flipped byte gives an error (never silent), truncation gives IMG_E_TRUNCATED. */
static void expect_damage_detected(open_fn open, const struct buf *comp, const struct buf *plain,
				   size_t flip_at)
{
	static const size_t chunks[] = { 1, 7, 4096 };
	struct buf bad = { 0 }, out = { 0 };
	img_err err;
	buf_add(&bad, comp->p, comp->n);
	bad.p[flip_at] ^= 0x55;
	for (size_t i = 0; i < 3; i++) {
		int rc = decode(open, &bad, chunks[i], &out, &err);
		if (rc >= 0)
			fail_msg("flip at %zu, chunk %zu: status %d, %zu bytes out", flip_at, chunks[i], rc,
				 out.n);
		expect_error_with_offset(&err, rc, bad.n);
	}
	const size_t cuts[] = { comp->n / 2, comp->n - 1, 1 };
	for (size_t c = 0; c < 3; c++) {
		bad.n = 0;
		buf_add(&bad, comp->p, cuts[c]);
		for (size_t i = 0; i < 3; i++) {
			int rc = decode(open, &bad, chunks[i], &out, &err);
			if (rc != IMG_E_TRUNCATED)
				fail_msg("cut at %zu, chunk %zu: status %d: %s", cuts[c], chunks[i], rc, err.msg);
			expect_error_with_offset(&err, rc, bad.n);
			assert_true(out.n <= plain->n);
			assert_memory_equal(out.p, plain->p, out.n);
		}
	}
	buf_free(&bad);
	buf_free(&out);
}

/* Zero padding after the data is accepted; other trailing bytes are IMG_E_TRAILING
 * after every byte of the data was handed out (garbage_code 0: any error). */
static void expect_trailing_policy(open_fn open, const struct buf *comp, const struct buf *plain,
				   int garbage_code)
{
	struct buf more = { 0 }, out = { 0 };
	img_err err;
	static const uint8_t zeros[4096];
	buf_add(&more, comp->p, comp->n);
	buf_add(&more, zeros, sizeof zeros);
	expect_same(open, &more, plain, 7);
	expect_same(open, &more, plain, 4096);
	more.n = comp->n;
	buf_add(&more, "\0\0\0\0JUNK", 8);
	int rc = decode(open, &more, 7, &out, &err);
	if (garbage_code)
		assert_int_equal(rc, garbage_code);
	expect_error_with_offset(&err, rc, more.n);
	if (garbage_code == IMG_E_TRAILING) {
		assert_int_equal(err.offset, comp->n + 4);
		assert_int_equal(out.n, plain->n);
		assert_memory_equal(out.p, plain->p, plain->n);
	}
	buf_free(&more);
	buf_free(&out);
}

/* Each codec's layer, the way open.c stacks it (open_by_table). */
static int gzip_open(img_stream *up, img_stream **out)
{
	return open_by_table("gzip", up, out);
}

static int bzip2_open(img_stream *up, img_stream **out)
{
	return open_by_table("bzip2", up, out);
}

static int xz_open(img_stream *up, img_stream **out)
{
	return open_by_table("xz", up, out);
}

static int lzma_open(img_stream *up, img_stream **out)
{
	return open_by_table("lzma", up, out);
}

static int zstd_open(img_stream *up, img_stream **out)
{
	return open_by_table("zstd", up, out);
}

static int lz4_open(img_stream *up, img_stream **out)
{
	return open_by_table("lz4", up, out);
}

/* ---- per-codec tests ---------------------------------------------------------- */

#define SMALL (150 * 1000 + 3)
#define LARGE ((size_t)5 * 1024 * 1024 + 777)  /* more than a 4 MiB read buffer */

static void test_gzip(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 }, empty = { 0 };
	make_plain(&plain, SMALL, 1);
	enc_gzip(&comp, plain.p, plain.n);
	expect_same_all_chunks(gzip_open, &comp, &plain);
	expect_damage_detected(gzip_open, &comp, &plain, comp.n / 2);
	expect_trailing_policy(gzip_open, &comp, &plain, IMG_E_TRAILING);

	/* multi-member (pigz, cat a.gz b.gz), with an empty member */
	comp.n = 0;
	enc_gzip(&comp, plain.p, 1000);
	enc_gzip(&comp, plain.p + 1000, 0);
	enc_gzip(&comp, plain.p + 1000, plain.n - 1000);
	expect_same_all_chunks(gzip_open, &comp, &plain);
	expect_trailing_policy(gzip_open, &comp, &plain, IMG_E_TRAILING);

	make_plain(&big, LARGE, 2);
	enc_gzip(&bigc, big.p, big.n / 3);
	enc_gzip(&bigc, big.p + big.n / 3, big.n - big.n / 3);
	expect_same(gzip_open, &bigc, &big, 4096);
	expect_same(gzip_open, &bigc, &big, 7);

	comp.n = 0;
	enc_gzip(&comp, plain.p, 0);
	expect_same_all_chunks(gzip_open, &comp, &empty);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

static void test_bzip2(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 3);
	enc_bzip2(&comp, plain.p, plain.n);
	expect_same_all_chunks(bzip2_open, &comp, &plain);
	expect_damage_detected(bzip2_open, &comp, &plain, comp.n / 2);
	expect_trailing_policy(bzip2_open, &comp, &plain, IMG_E_TRAILING);

	/* multi-stream (pbzip2, lbzip2), with an empty stream */
	comp.n = 0;
	enc_bzip2(&comp, plain.p, 50000);
	enc_bzip2(&comp, plain.p, 0);
	enc_bzip2(&comp, plain.p + 50000, plain.n - 50000);
	expect_same_all_chunks(bzip2_open, &comp, &plain);
	expect_trailing_policy(bzip2_open, &comp, &plain, IMG_E_TRAILING);

	make_plain(&big, LARGE, 4);
	for (size_t off = 0; off < big.n; off += 900000)
		enc_bzip2(&bigc, big.p + off, big.n - off < 900000 ? big.n - off : 900000);
	expect_same(bzip2_open, &bigc, &big, 4096);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

static void test_zstd(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 5);
	enc_zstd(&comp, plain.p, plain.n);
	expect_same_all_chunks(zstd_open, &comp, &plain);
	expect_damage_detected(zstd_open, &comp, &plain, comp.n / 2);
	expect_trailing_policy(zstd_open, &comp, &plain, IMG_E_TRAILING);

	/* pzstd-like: a skippable frame first, frames, skippable frames between */
	comp.n = 0;
	enc_skippable(&comp, 0, 4);
	enc_zstd(&comp, plain.p, 20000);
	enc_skippable(&comp, 0xF, 0);
	enc_skippable(&comp, 0x3, 300);
	enc_zstd(&comp, plain.p + 20000, 0);
	enc_zstd(&comp, plain.p + 20000, plain.n - 20000);
	enc_skippable(&comp, 0x1, 9);
	expect_same_all_chunks(zstd_open, &comp, &plain);
	expect_trailing_policy(zstd_open, &comp, &plain, IMG_E_TRAILING);

	/* a skippable frame cut short at the end is truncated too */
	struct buf cut = { 0 };
	buf_add(&cut, comp.p, comp.n - 3);
	struct buf out = { 0 };
	img_err err;
	assert_int_equal(decode(zstd_open, &cut, 7, &out, &err), IMG_E_TRUNCATED);
	buf_free(&cut);
	buf_free(&out);

	make_plain(&big, LARGE, 6);
	enc_zstd(&bigc, big.p, big.n / 2);
	enc_zstd(&bigc, big.p + big.n / 2, big.n - big.n / 2);
	expect_same(zstd_open, &bigc, &big, 4096);
	expect_same(zstd_open, &bigc, &big, 7);

	/* a window over 128 MiB: refused at the frame's start, with the pipe that decodes it */
	comp.n = 0;
	enc_zstd_window28(&comp, plain.p, 5000);
	assert_int_equal(decode(zstd_open, &comp, 4096, &out, &err), IMG_E_CORRUPT);
	assert_true(err.has_offset);
	assert_int_equal(err.offset, 0);
	assert_non_null(strstr(err.msg, "at byte 0 of the compressed stream"));
	assert_non_null(strstr(err.msg, "decode it with: zstd --long=31 -dc IMAGE | imgbk APPLET -"));
	buf_free(&out);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

static void test_xz(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 7);
	enc_xz(&comp, plain.p, plain.n);
	expect_same_all_chunks(xz_open, &comp, &plain);
	expect_damage_detected(xz_open, &comp, &plain, comp.n / 2);
	/* xz: 4096 zeros are valid stream padding; 4 junk bytes look like a cut
	 * stream header to liblzma, more junk is corrupt data */
	expect_trailing_policy(xz_open, &comp, &plain, 0);
	{
		struct buf more = { 0 }, out = { 0 };
		img_err err;
		buf_add(&more, comp.p, comp.n);
		for (int i = 0; i < 8; i++)
			buf_add(&more, "JUNKJUNK", 8);
		int rc = decode(xz_open, &more, 7, &out, &err);
		assert_int_equal(rc, IMG_E_CORRUPT);
		expect_error_with_offset(&err, rc, more.n);
		assert_int_equal(out.n, plain.n);
		buf_free(&more);
		buf_free(&out);
	}

	/* multi-stream with stream padding, multi-block (xz -T2) */
	comp.n = 0;
	enc_xz(&comp, plain.p, 30000);
	buf_add(&comp, "\0\0\0\0\0\0\0\0", 8);
	enc_xz_mt(&comp, plain.p + 30000, plain.n - 30000);
	expect_same_all_chunks(xz_open, &comp, &plain);

	make_plain(&big, LARGE, 8);
	enc_xz_mt(&bigc, big.p, big.n);
	enc_xz(&bigc, big.p, 0);
	expect_same(xz_open, &bigc, &big, 4096);
	expect_same(xz_open, &bigc, &big, 7);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

static void test_lzma_alone(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 9);
	enc_lzma(&comp, plain.p, plain.n);
	expect_same_all_chunks(lzma_open, &comp, &plain);
	expect_damage_detected(lzma_open, &comp, &plain, 40);
	expect_trailing_policy(lzma_open, &comp, &plain, IMG_E_TRAILING);

	make_plain(&big, LARGE, 10);
	enc_lzma(&bigc, big.p, big.n);
	expect_same(lzma_open, &bigc, &big, 4096);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

static void test_lz4_frame(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 11);
	enc_lz4f(&comp, plain.p, plain.n);
	expect_same_all_chunks(lz4_open, &comp, &plain);
	expect_damage_detected(lz4_open, &comp, &plain, comp.n / 2);
	expect_trailing_policy(lz4_open, &comp, &plain, IMG_E_TRAILING);

	/* concatenated frames, skippable frames, an empty frame */
	comp.n = 0;
	enc_skippable(&comp, 0xA, 16);
	enc_lz4f(&comp, plain.p, 70000);
	enc_lz4f(&comp, plain.p, 0);
	enc_skippable(&comp, 0x0, 0);
	enc_lz4f(&comp, plain.p + 70000, plain.n - 70000);
	expect_same_all_chunks(lz4_open, &comp, &plain);
	expect_trailing_policy(lz4_open, &comp, &plain, IMG_E_TRAILING);

	make_plain(&big, LARGE, 12);
	enc_lz4f(&bigc, big.p, big.n);
	expect_same(lz4_open, &bigc, &big, 4096);
	expect_same(lz4_open, &bigc, &big, 7);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

/* Linked blocks (lz4 -BD) with block checksums, the content size and the
 * content checksum: the stream decodes across blocks with the dictionary and
 * checks every one of them. */
static void test_lz4_linked(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, bad = { 0 }, out = { 0 };
	img_err err;
	make_plain(&plain, SMALL, 15);
	LZ4F_preferences_t prefs;
	memset(&prefs, 0, sizeof prefs);
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.blockMode = LZ4F_blockLinked;
	prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	prefs.frameInfo.contentSize = plain.n;
	size_t bound = LZ4F_compressFrameBound(plain.n, &prefs);
	buf_reserve(&comp, bound);
	size_t r = LZ4F_compressFrame(comp.p, bound, plain.p, plain.n, &prefs);
	assert_false(LZ4F_isError(r));
	comp.n = r;
	expect_same_all_chunks(lz4_open, &comp, &plain);
	expect_damage_detected(lz4_open, &comp, &plain, comp.n / 2);
	expect_trailing_policy(lz4_open, &comp, &plain, IMG_E_TRAILING);
	/* the content checksum (the last 4 bytes) damaged: every byte out, then the error at it */
	buf_add(&bad, comp.p, comp.n);
	bad.p[bad.n - 1] ^= 1;
	assert_int_equal(decode(lz4_open, &bad, 4096, &out, &err), IMG_E_CORRUPT);
	assert_non_null(strstr(err.msg, "content checksum mismatch"));
	assert_int_equal(err.offset, comp.n - 4);
	assert_int_equal(out.n, plain.n);
	/* the content size in the header (bytes 6..13) one less, its header checksum redone */
	bad.n = 0;
	buf_add(&bad, comp.p, comp.n);
	bad.p[6] -= 1;
	bad.p[14] = (uint8_t)(XXH32(bad.p + 4, 10, 0) >> 8);
	assert_int_equal(decode(lz4_open, &bad, 4096, &out, &err), IMG_E_CORRUPT);
	assert_non_null(strstr(err.msg, "content size differs"));
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&bad);
	buf_free(&out);
}

static void test_lz4_legacy(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, big = { 0 }, bigc = { 0 };
	make_plain(&plain, SMALL, 13);
	enc_lz4_legacy(&comp, plain.p, plain.n, 1);
	expect_same_all_chunks(lz4_open, &comp, &plain);
	expect_trailing_policy(lz4_open, &comp, &plain, IMG_E_TRAILING);

	/* damage: a block size past the end, a mangled block, cuts */
	struct buf bad = { 0 }, out = { 0 };
	img_err err;
	buf_add(&bad, comp.p, comp.n);
	memset(bad.p + 8, 0xFF, 64);  /* the first block's token/literal lengths */
	int rc = decode(lz4_open, &bad, 7, &out, &err);
	assert_int_equal(rc, IMG_E_CORRUPT);
	expect_error_with_offset(&err, rc, bad.n);
	assert_int_equal(err.offset, 8);
	expect_damage_detected(lz4_open, &comp, &plain, 5);  /* flips the block size */

	/* concatenated legacy files (magic again between blocks), then a frame */
	comp.n = 0;
	enc_lz4_legacy(&comp, plain.p, 40000, 1);
	enc_lz4_legacy(&comp, plain.p + 40000, 60000, 1);
	enc_lz4f(&comp, plain.p + 100000, plain.n - 100000);
	expect_same_all_chunks(lz4_open, &comp, &plain);

	/* more than one 8 MiB block (9,000,000 bytes -> 2 blocks, as lz4 -l writes) */
	make_plain(&big, 9000000, 14);
	enc_lz4_legacy(&bigc, big.p, big.n, 1);
	expect_same(lz4_open, &bigc, &big, 4096);
	expect_same(lz4_open, &bigc, &big, 1 << 20);
	buf_free(&bad);
	buf_free(&out);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&big);
	buf_free(&bigc);
}

/* An error below a codec (an I/O error of the source) reaches the caller. */
static void test_upstream_error(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 };
	make_plain(&plain, SMALL, 15);
	enc_gzip(&comp, plain.p, plain.n);
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *src, *s;
	assert_int_equal(memsrc_open(comp.p, comp.n, 1000, &err, &src), IMG_OK);
	memsrc_fail_at(src, 5);
	assert_int_equal(gzip_open(src, &s), IMG_OK);
	size_t got = 0;
	uint8_t *out = malloc(plain.n);
	int rc = stream_read(s, out, plain.n, &got);
	assert_int_equal(rc, IMG_E_IO);
	assert_int_equal(err.code, IMG_E_IO);
	assert_non_null(strstr(err.msg, "injected"));
	assert_memory_equal(out, plain.p, got);
	stream_close(s);
	free(out);
	buf_free(&plain);
	buf_free(&comp);
}

/*
 * Damaged samples never hang or crash: 300 seeded random damages (1..4 bytes
 * changed, or a cut) of every codec's sample end with IMG_EOF or an error.
 * Silent wrong output is possible only for lz4 legacy (no checksum).
 */
static void test_damage_fuzz(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 }, bad = { 0 }, out = { 0 };
	const struct {
		open_fn open;
		void (*enc)(struct buf *, const uint8_t *, size_t);
		int checked;
	} c[] = {
		{ gzip_open, enc_gzip, 1 }, { bzip2_open, enc_bzip2, 1 },
		{ zstd_open, enc_zstd, 1 }, { xz_open, enc_xz, 1 },
		{ lzma_open, enc_lzma, 0 }, { lz4_open, enc_lz4f, 1 },
	};
	uint32_t seed = 12345;
	print_message("damage fuzz seed %u\n", seed);
	make_plain(&plain, 40000, 18);
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		comp.n = 0;
		c[k].enc(&comp, plain.p, plain.n);
		for (int i = 0; i < 300; i++) {
			bad.n = 0;
			buf_add(&bad, comp.p, comp.n);
			seed = seed * 1103515245u + 12345u;
			int edits = (int)(seed >> 16) % 5;
			for (int e = 0; e < edits; e++) {
				seed = seed * 1103515245u + 12345u;
				bad.p[(seed >> 8) % bad.n] ^= (uint8_t)(1 + (seed >> 24) % 255);
			}
			if (edits == 0)
				bad.n = (seed >> 8) % bad.n;
			img_err err;
			int rc = decode(c[k].open, &bad, i % 2 ? 4096 : 7, &out, &err);
			assert_true(rc == IMG_EOF || rc < 0);
			if (rc < 0)
				expect_error_with_offset(&err, rc, bad.n);
			else if (c[k].checked)
				assert_true(out.n == plain.n && memcmp(out.p, plain.p, plain.n) == 0);
		}
	}
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&bad);
	buf_free(&out);
}

/* ---- bids ------------------------------------------------------------------------ */

/* @return the names of the codecs that bid on b, joined by '+' (shown 64 bytes, as open.c does). */
static const char *bidders(const struct buf *b, char *out, size_t size)
{
	size_t n = b->n < 64 ? b->n : 64;
	out[0] = '\0';
	for (size_t i = 0; img_codecs[i]; i++) {
		if (n >= img_codecs[i]->magic_len && img_codecs[i]->bid(b->p, n)) {
			if (out[0])
				strncat(out, "+", size - strlen(out) - 1);
			strncat(out, img_codecs[i]->name, size - strlen(out) - 1);
		}
	}
	return out;
}

static void expect_bid(const struct buf *b, const char *want)
{
	char got[128];
	assert_string_equal(bidders(b, got, sizeof got), want);
}

static void test_bids(void **state)
{
	(void)state;
	struct buf plain = { 0 }, c = { 0 };
	make_plain(&plain, 100000, 16);
	size_t sizes[] = { 0, 1, 5000, 100000 };
	for (size_t i = 0; i < 4; i++) {
		size_t n = sizes[i];
		c.n = 0, enc_gzip(&c, plain.p, n), expect_bid(&c, "gzip");
		c.n = 0, enc_bzip2(&c, plain.p, n), expect_bid(&c, "bzip2");
		c.n = 0, enc_zstd(&c, plain.p, n), expect_bid(&c, "zstd");
		c.n = 0, enc_xz(&c, plain.p, n), expect_bid(&c, "xz");
		c.n = 0, enc_xz_mt(&c, plain.p, n), expect_bid(&c, "xz");
		c.n = 0, enc_lzma(&c, plain.p, n), expect_bid(&c, "lzma");
		c.n = 0, enc_lz4f(&c, plain.p, n), expect_bid(&c, "lz4");
		c.n = 0, enc_lz4_legacy(&c, plain.p, n, 1), expect_bid(&c, "lz4");
		/* pzstd: skippable frame of 4 bytes first */
		c.n = 0, enc_skippable(&c, 0, 4), enc_zstd(&c, plain.p, n), expect_bid(&c, "zstd");
		c.n = 0, enc_skippable(&c, 5, 4), enc_lz4f(&c, plain.p, n), expect_bid(&c, "lz4");
		c.n = 0, enc_skippable(&c, 0, 0), enc_lz4_legacy(&c, plain.p, n, 1), expect_bid(&c, "lz4");
	}
	/* a skippable frame too long to see past: zstd takes it */
	c.n = 0, enc_skippable(&c, 0, 100), enc_lz4f(&c, plain.p, 10), expect_bid(&c, "zstd");
	/* the smallest files: an empty zstd frame (9 bytes), an empty lz4 frame */
	c.n = 0;
	size_t r = ZSTD_compress((buf_reserve(&c, 64), c.p), 64, "", 0, 1);
	assert_false(ZSTD_isError(r));
	c.n = r;
	assert_true(r < 16);
	expect_bid(&c, "zstd");
	c.n = 0;
	r = LZ4F_compressFrame((buf_reserve(&c, 64), c.p), 64, "", 0, NULL);
	assert_false(LZ4F_isError(r));
	c.n = r;
	expect_bid(&c, "lz4");
	/* a skippable frame followed by neither */
	c.n = 0, enc_skippable(&c, 0, 0), buf_add(&c, "JUNKJUNK", 8), expect_bid(&c, "");
	/* plain data, zeros, image magics, near misses */
	expect_bid(&plain, "");
	c.n = 0, buf_add(&c, (const uint8_t[64]){ 0 }, 64), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "partclone-image\0" "0.3.23\0\0\0\0\0\0\0\0" "0002", 34), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "\0ntfsclone-image\0\0\0\0", 20), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "PaRtImAgE-VoLuMe\0\0\0\0", 20), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "\x1f\x8b\x07\x00\0\0\0\0", 8), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "BZh0\x31\x41\x59\x26\x53\x59", 10), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "BZh9\x31\x41\x59\x26\x53\x58", 10), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "\xfd\x37\x7a\x58\x5a\x01", 6), expect_bid(&c, "");
	c.n = 0, buf_add(&c, "\x1f\x8b", 2), expect_bid(&c, "");
	/* lzma-alone header near misses: dictionary not 2^n / 3*2^n, props >= 225, first rc byte */
	const uint8_t good[14] = { 0x5D, 0, 0, 0x80, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0 };
	uint8_t h[14];
	c.n = 0, buf_add(&c, good, 14), expect_bid(&c, "lzma");
	memcpy(h, good, 14), h[2] = 0x01, c.n = 0, buf_add(&c, h, 14), expect_bid(&c, "");
	memcpy(h, good, 14), h[3] = 0xC0, c.n = 0, buf_add(&c, h, 14), expect_bid(&c, "lzma");
	memcpy(h, good, 14), h[0] = 225, c.n = 0, buf_add(&c, h, 14), expect_bid(&c, "");
	memcpy(h, good, 14), h[13] = 1, c.n = 0, buf_add(&c, h, 14), expect_bid(&c, "");
	memcpy(h, good, 14), h[12] = 0x7F, c.n = 0, buf_add(&c, h, 14), expect_bid(&c, "");
	buf_free(&plain);
	buf_free(&c);
}

/* ---- codecs of one file and one table line (io/lzop.c; lrzip: refused) ------- */

static int lzop_open(img_stream *up, img_stream **out)
{
	return open_by_table("lzop", up, out);
}

static void remove_dir(const char *dir)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* plain through the real `tool ARGS` (stdin to stdout) in dir, into out. */
static void enc_tool(const char *dir, const char *tool, const struct buf *plain, struct buf *out)
{
	char in[300], cmd[900];
	snprintf(in, sizeof in, "%s/plain", dir);
	write_file(in, plain->n ? plain->p : (const uint8_t *)"", plain->n);
	snprintf(cmd, sizeof cmd, "%s < '%s' > '%s/out'", tool, in, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(in, sizeof in, "%s/out", dir);
	FILE *f = fopen(in, "rb");
	assert_non_null(f);
	out->n = 0;
	uint8_t chunk[65536];
	size_t k;
	while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(out, chunk, k);
	fclose(f);
}

static void test_lzop(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-lzop-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct buf plain = { 0 }, comp = { 0 }, one = { 0 }, big = { 0 }, empty = { 0 };
	make_plain(&plain, SMALL, 3);
	/* the default checksums (Adler-32 of the decoded bytes), CRC-32 ones, none */
	static const char *const tools[] = { "lzop -q -c", "lzop -q -9 --crc32 -c", "lzop -q -F -c" };
	for (int t = 0; t < 3; t++) {
		enc_tool(dir, tools[t], &plain, &comp);
		expect_bid(&comp, "lzop");
		expect_same_all_chunks(lzop_open, &comp, &plain);
		if (t < 2)  /* without checksums a flipped byte may decode to other bytes */
			expect_damage_detected(lzop_open, &comp, &plain, comp.n / 2);
		expect_trailing_policy(lzop_open, &comp, &plain, IMG_E_TRAILING);
	}
	/* concatenated files (cat a.lzo b.lzo), the first with many 256 KiB blocks */
	make_plain(&big, LARGE, 4);
	enc_tool(dir, "lzop -q -1 -c", &big, &comp);
	enc_tool(dir, "lzop -q -c", &plain, &one);
	buf_add(&comp, one.p, one.n);
	buf_add(&big, plain.p, plain.n);
	expect_same(lzop_open, &comp, &big, 4096);
	expect_same(lzop_open, &comp, &big, 7);
	enc_tool(dir, "lzop -q -c", &empty, &comp);
	expect_same_all_chunks(lzop_open, &comp, &empty);
	remove_dir(dir);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&one);
	buf_free(&big);
}

static int lzip_open(img_stream *up, img_stream **out)
{
	return open_by_table("lzip", up, out);
}

/* lzip (io/lzip.c, lzlib): members made by the real lzip, one and many (-b). */
static void test_lzip(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-lzip-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct buf plain = { 0 }, comp = { 0 }, out = { 0 }, one = { 0 };
	make_plain(&plain, SMALL, 6);
	for (int t = 0; t < 2; t++) {
		enc_tool(dir, "lzip -q -3 -c", &plain, &comp);
		if (t == 1) {  /* two members (cat a.lz b.lz), as plzip writes many */
			enc_tool(dir, "lzip -q -0 -c", &plain, &one);
			buf_add(&comp, one.p, one.n);
			buf_reserve(&plain, plain.n);  /* first: adding plain to itself must not move it */
			buf_add(&plain, plain.p, plain.n);
		}
		expect_bid(&comp, "lzip");
		expect_same_all_chunks(lzip_open, &comp, &plain);
		expect_damage_detected(lzip_open, &comp, &plain, comp.n / 2);
		size_t n = comp.n;
		buf_add(&comp, "JUNK", 4);  /* lzip -d: "trailing data" */
		img_err err;
		assert_int_equal(decode(lzip_open, &comp, 4096, &out, &err), IMG_E_TRAILING);
		assert_true(err.has_offset && err.offset >= n);
		assert_int_equal(out.n, plain.n);
		assert_memory_equal(out.p, plain.p, plain.n);
	}
	remove_dir(dir);
	buf_free(&plain);
	buf_free(&comp);
	buf_free(&out);
	buf_free(&one);
}

/* lrzip (Clonezilla -z7): one line naming the file and the command that converts it. */
static void test_lrzip_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-lrz-XXXXXX", path[300];
	assert_non_null(mkdtemp(dir));
	struct buf plain = { 0 }, comp = { 0 };
	make_plain(&plain, SMALL, 5);
	enc_tool(dir, "lrzip -q -o - 2>/dev/null", &plain, &comp);
	expect_bid(&comp, "lrzip");
	snprintf(path, sizeof path, "%s/disk.lrz", dir);
	write_file(path, comp.p, comp.n);
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *s = NULL;
	int rc = stream_open_stack(path, &err, NULL, NULL, 0, &s);
	assert_int_equal(rc, IMG_E_FORMAT);
	assert_null(strchr(err.msg, '\n'));
	char want[700];
	snprintf(want, sizeof want, "%s: lrzip: ", path);
	assert_memory_equal(err.msg, want, strlen(want));
	snprintf(want, sizeof want, "convert it with: lrzip -q -d -o - %s | zstd -T0 > %s.zst", path, path);
	if (!strstr(err.msg, want))
		fail_msg("no \"%s\" in: %s", want, err.msg);
	/* and that command does convert it */
	snprintf(want, sizeof want, "cd '%s' && lrzip -q -d -o - disk.lrz 2>/dev/null | zstd -q -T0 > disk.lrz.zst", dir);
	assert_int_equal(system(want), 0);
	snprintf(path, sizeof path, "%s/disk.lrz.zst", dir);
	assert_int_equal(stream_open_stack(path, &err, NULL, NULL, 0, &s), IMG_OK);
	expect_all_then_close(s, &plain);
	remove_dir(dir);
	buf_free(&plain);
	buf_free(&comp);
}

/* pzstd data (independent frames) opened as a stream: its units decoded on
 * several cores (io/zpar.c under the top stream), unless the process said
 * it reads its images at random (img_open_for_random: mount, index, the
 * NBD plugin), when one decoder reads what the header needs. The bytes are
 * the same either way. */
static void test_units_for_random(void **state)
{
	(void)state;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip();
	char dir[] = "/tmp/imgbk-units-XXXXXX", path[300];
	assert_non_null(mkdtemp(dir));
	struct buf plain = { 0 }, comp = { 0 };
	make_plain(&plain, (size_t)3 << 20, 9);
	enc_tool(dir, "pzstd -q -p2 -1 -c", &plain, &comp);
	snprintf(path, sizeof path, "%s/units.pzst", dir);
	write_file(path, comp.p, comp.n);
	for (int random = 0; random < 2; random++) {
		if (random)
			img_open_for_random();
		img_err err;
		memset(&err, 0, sizeof err);
		img_stream *s = NULL;
		assert_int_equal(stream_open_stack(path, &err, NULL, NULL, 0, &s), IMG_OK);
		struct zpar_counts c;
		assert_int_equal(zpar_stream_counts(s, &c), random ? -1 : 0);
		expect_all_then_close(s, &plain);
	}
	codec_units_parallel(1);
	remove_dir(dir);
	buf_free(&plain);
	buf_free(&comp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_bzip2),
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_xz),
		cmocka_unit_test(test_lzma_alone),
		cmocka_unit_test(test_lz4_frame),
		cmocka_unit_test(test_lz4_linked),
		cmocka_unit_test(test_lz4_legacy),
		cmocka_unit_test(test_lzop),
		cmocka_unit_test(test_lzip),
		cmocka_unit_test(test_lrzip_refused),
		cmocka_unit_test(test_upstream_error),
		cmocka_unit_test(test_damage_fuzz),
		cmocka_unit_test(test_bids),
		cmocka_unit_test(test_units_for_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

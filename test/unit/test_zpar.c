/*
 * test/unit/test_zpar.c - unit tests of the unit finders (io/zunits.c) and
 * of the layer that decodes units on worker threads (io/zpar.c): the
 * finders' boundaries against the units the data was made of, and the
 * layer's bytes, status, error message and offset against one decoder's
 * (the same codec's ops without a finder) for multi-stream bzip2 as pbzip2
 * writes it (made in-process with libbz2), pbzip2 and lbzip2 output (made by
 * the tools), damage in a later unit, truncation, trailing bytes, false
 * boundaries, a unit too big for the memory budget, and a pipe source.
 *
 * Not here: the codecs' own tests (test_codecs.c), random reads (test_zseek_*).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <bzlib.h>
#include <zstd.h>

#include "helper_codecs.h"
#include "helper_memsrc.h"
#include "helper_tmpdir.h"
#include "io/zseek.h"

#define STREAM_PLAIN 300000  /* decoded bytes of each pbzip2-like stream */
#define STREAMS 24

/* ---- byte buffers ------------------------------------------------------------------- */

/* The codec under test: its name, decoder, finder and unit encoder. */
struct codec_case {
	const char *name;
	const struct zs_ops *ops;
	zs_unit_len_fn unit_len;
	size_t (*enc)(struct buf *o, const uint8_t *in, size_t n);
	/* Its errors name the exact byte. zstd's name the start of the input
	 * step libzstd failed in (it does not say where), which depends on how
	 * the input came in: compared without the numbers, and the bytes out
	 * before the error (a step's) may differ: one is the other's prefix. */
	int exact;
};
static const struct codec_case *cc;

/* Compressible bytes with incompressible stretches. */
static void make_mixed(struct buf *b, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint8_t c = (i / 8192) % 3 == 0 ? (uint8_t)x : (uint8_t)("imgbk unit test "[i % 16]);
		buf_add(b, &c, 1);
	}
}

/* One bzip2 stream of in[0..n) appended to o; @return its length. */
static size_t enc_bzip2(struct buf *o, const uint8_t *in, size_t n)
{
	unsigned len = (unsigned)(n + n / 50 + 1000);
	char *tmp = malloc(len);
	assert_non_null(tmp);
	assert_int_equal(BZ2_bzBuffToBuffCompress(tmp, &len, (char *)(in ? in : (const uint8_t *)""), (unsigned)n, 9,
						  0, 0),
			 BZ_OK);
	buf_add(o, tmp, len);
	free(tmp);
	return len;
}

/* pbzip2's or pzstd's layout: one unit per STREAM_PLAIN bytes (cc's
 * encoder). ends[] gets each unit's end. */
static size_t enc_streams(struct buf *o, const struct buf *plain, size_t *ends, size_t max)
{
	size_t k = 0;
	for (size_t off = 0; off < plain->n; off += STREAM_PLAIN) {
		size_t n = plain->n - off < STREAM_PLAIN ? plain->n - off : STREAM_PLAIN;
		cc->enc(o, plain->p + off, n);
		if (k < max)
			ends[k] = o->n;
		k++;
	}
	return k;
}

/* ---- decoding ------------------------------------------------------------------------ */

static size_t enc_zstd_frame(struct buf *o, const uint8_t *in, size_t n, int checksum, int skip)
{
	if (skip) {
		uint8_t sk[12] = { 0x5A, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4 };
		buf_add(o, sk, sizeof sk);
	}
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, !checksum);
	size_t bound = ZSTD_compressBound(n);
	uint8_t *tmp = malloc(bound);
	assert_non_null(tmp);
	size_t len = ZSTD_compress2(c, tmp, bound, in, n);
	assert_false(ZSTD_isError(len));
	buf_add(o, tmp, len);
	free(tmp);
	ZSTD_freeCCtx(c);
	return o->n;
}

/* pzstd's layout: a skippable frame, then a frame with a checksum. */
static size_t enc_pzstd(struct buf *o, const uint8_t *in, size_t n)
{
	size_t before = o->n;
	return enc_zstd_frame(o, in, n, 1, 1) - before;
}

static const struct codec_case bzip2_case = { "bzip2", &zs_bzip2_ops, zs_bzip2_unit_len, enc_bzip2, 1 };
static const struct codec_case zstd_case = { "zstd", &zs_zstd_ops, zs_zstd_unit_len, enc_pzstd, 0 };

static size_t liar_cut;             /* a false boundary: this many bytes into the unit that */
static const uint8_t *liar_unit;     /* starts with these LIAR_LOOK bytes */
#define LIAR_LOOK 64

static size_t false_unit_len(const uint8_t *p, size_t n, int at_end)
{
	size_t real = cc->unit_len(p, n, at_end);
	if (real == 0 || real == ZS_UNIT_NONE || n < LIAR_LOOK || memcmp(p, liar_unit, LIAR_LOOK) != 0)
		return real;
	return liar_cut < real ? liar_cut : real;
}

struct result {
	struct buf out;
	int rc;
	img_err err;
};

typedef int (*open_fn)(img_stream *up, img_stream **out);

static int open_par(img_stream *up, img_stream **out)
{
	return zpar_stream_open(up, cc->name, cc->ops, cc->unit_len, out);
}

/* One decoder: the reference. */
static int open_single(img_stream *up, img_stream **out)
{
	return zs_stream_open(up, cc->name, cc->ops, out);
}

/* As open.c stacks it: the read-ahead layer over the unit layer. */
static int open_par_ahead(img_stream *up, img_stream **out)
{
	img_stream *par = NULL;
	int rc = open_par(up, &par);
	if (rc != IMG_OK)
		return rc;
	rc = stream_push_thread(par, out);
	if (rc != IMG_OK)
		stream_close(par);
	return rc;
}

static int open_liar(img_stream *up, img_stream **out)
{
	return zpar_stream_open(up, cc->name, cc->ops, false_unit_len, out);
}

/* Read everything from s into r, in reads of varied sizes that keep every
 * byte handed out before an error (a peek that fails drops the bytes
 * before it); closes s. r->rc: IMG_EOF at the end, or the error. */
static int peeking;                /* drain reads by peeks: whole buffers handed over */
static struct zpar_counts counted;  /* the last drained stream's, when it has them */

/* Read everything from s by peeks (every byte visible is taken before the
 * next peek, so an error loses none): the read-ahead layer hands its
 * buffers over, and a unit layer below it its own (exchange). */
static void drain_peeking(img_stream *s, struct result *r)
{
	for (;;) {
		const uint8_t *p;
		size_t avail = 0;
		r->rc = stream_peek(s, 1, &p, &avail);
		if (r->rc < 0)
			break;
		if (avail == 0) {
			r->rc = IMG_EOF;
			break;
		}
		buf_add(&r->out, p, avail);
		stream_consume(s, avail);
	}
}

static void drain(img_stream *s, struct result *r)
{
	static const size_t wants[] = { 1, 5000, 1 << 20, 3, 65536, 77 };
	static uint8_t chunk[1 << 20];
	memset(&counted, 0, sizeof counted);
	if (peeking) {
		drain_peeking(s, r);
		zpar_stream_counts(s, &counted);
		stream_close(s);
		return;
	}
	for (size_t i = 0;; i++) {
		size_t got = 0;
		r->rc = stream_read_direct(s, chunk, wants[i % 6], &got);
		if (r->rc < 0)
			break;
		buf_add(&r->out, chunk, got);
		if (got == 0) {
			r->rc = IMG_EOF;
			break;
		}
	}
	zpar_stream_counts(s, &counted);
	stream_close(s);
}

static void decode(open_fn open, const struct buf *comp, size_t chunk, struct result *r)
{
	img_stream *src = NULL, *s = NULL;
	memset(r, 0, sizeof *r);
	assert_int_equal(memsrc_open(comp->p, comp->n, chunk, &r->err, &src), IMG_OK);
	r->rc = open(src, &s);
	if (r->rc != IMG_OK) {
		stream_close(src);
		return;
	}
	drain(s, r);
}

/* msg without its digits (zstd's offsets, see struct codec_case). */
static void no_digits(const char *msg, char *out, size_t size)
{
	size_t k = 0;
	for (; *msg && k + 1 < size; msg++)
		if (*msg < '0' || *msg > '9')
			out[k++] = *msg;
	out[k] = 0;
}

/* An error whose message names "byte N" with N = err.offset. */
static void expect_offset_named(const img_err *err)
{
	char want[64];
	assert_true(err->has_offset);
	snprintf(want, sizeof want, "byte %llu", (unsigned long long)err->offset);
	if (!strstr(err->msg, want))
		fail_msg("message lacks \"%s\": %s", want, err->msg);
}

/* open's result equals one decoder's: bytes, status, message, offset (cc->exact). */
static void expect_as_single(open_fn open, const struct buf *comp, size_t chunk)
{
	struct result a, b;
	decode(open_single, comp, chunk, &a);
	decode(open, comp, chunk, &b);
	char ma[sizeof a.err.msg], mb[sizeof b.err.msg];
	no_digits(a.err.msg, ma, sizeof ma);
	no_digits(b.err.msg, mb, sizeof mb);
	if (a.rc != b.rc || strcmp(cc->exact ? a.err.msg : ma, cc->exact ? b.err.msg : mb) != 0)
		fail_msg("one decoder: %d \"%s\"; units: %d \"%s\"", a.rc, a.err.msg, b.rc, b.err.msg);
	assert_int_equal(a.err.has_offset, b.err.has_offset);
	if (b.rc < 0 && b.err.has_offset)
		expect_offset_named(&b.err);
	if (cc->exact) {
		assert_int_equal(a.err.offset, b.err.offset);
		assert_int_equal(a.out.n, b.out.n);
	}
	assert_memory_equal(a.out.p, b.out.p, a.out.n < b.out.n ? a.out.n : b.out.n);
	buf_free(&a.out);
	buf_free(&b.out);
}

static void expect_plain(open_fn open, const struct buf *comp, const struct buf *plain, size_t chunk)
{
	struct result r;
	decode(open, comp, chunk, &r);
	if (r.rc != IMG_EOF)
		fail_msg("status %d: %s", r.rc, r.err.msg);
	assert_int_equal(r.out.n, plain->n);
	assert_memory_equal(r.out.p, plain->p, plain->n);
	buf_free(&r.out);
}


/* ---- the finders ------------------------------------------------------------------------ */

static void test_bzip2_finder(void **state)
{
	(void)state;
	cc = &bzip2_case;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * 5 + 1234, 1);
	size_t k = enc_streams(&comp, &plain, ends, STREAMS);
	assert_int_equal(k, 6);
	enc_bzip2(&comp, NULL, 0);  /* an empty stream at the end */
	size_t at = 0;
	for (size_t i = 0; i < k; i++) {
		assert_int_equal(zs_bzip2_unit_len(comp.p + at, comp.n - at, 0), ends[i] - at);
		/* the end not visible yet: more bytes are needed */
		assert_int_equal(zs_bzip2_unit_len(comp.p + at, ends[i] - at + 5, 0), 0);
		at = ends[i];
	}
	/* the last (empty) stream: to the end of the data when it ends there */
	assert_int_equal(zs_bzip2_unit_len(comp.p + at, comp.n - at, 1), comp.n - at);
	assert_int_equal(zs_bzip2_unit_len(comp.p + at, comp.n - at, 0), 0);
	/* not a stream start */
	assert_int_equal(zs_bzip2_unit_len(comp.p + 1, comp.n - 1, 0), ZS_UNIT_NONE);
	assert_int_equal(zs_bzip2_unit_len((const uint8_t *)"BZh9", 4, 1), ZS_UNIT_NONE);
	/* "BZh9" + a block magic without an end-of-stream magic before it is no boundary */
	struct buf fake = { 0 };
	buf_add(&fake, comp.p, ends[0] / 2);
	buf_add(&fake, "xxxxxxxxxxBZh9\x31\x41\x59\x26\x53\x59", 20);
	buf_add(&fake, comp.p + ends[0] / 2, comp.n - ends[0] / 2);
	assert_int_equal(zs_bzip2_unit_len(fake.p, fake.n, 0), ends[0] + 20);
	buf_free(&fake);
	buf_free(&plain);
	buf_free(&comp);
}

static void test_zstd_finder(void **state)
{
	(void)state;
	struct buf plain = { 0 }, comp = { 0 };
	make_mixed(&plain, 600000, 2);
	size_t ends[4];
	ends[0] = enc_zstd_frame(&comp, plain.p, 300000, 1, 1);  /* pzstd: a skippable frame before each */
	ends[1] = enc_zstd_frame(&comp, plain.p + 300000, 200000, 0, 1);
	ends[2] = enc_zstd_frame(&comp, plain.p + 500000, 0, 1, 0);  /* an empty frame */
	ends[3] = enc_zstd_frame(&comp, plain.p + 500000, 100000, 0, 0);
	size_t at = 0;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(zs_zstd_unit_len(comp.p + at, comp.n - at, 0), ends[i] - at);
		assert_int_equal(zs_zstd_unit_len(comp.p + at, ends[i] - at - 1, 0), 0);
		assert_int_equal(zs_zstd_unit_len(comp.p + at, ends[i] - at - 1, 1), ZS_UNIT_NONE);
		at = ends[i];
	}
	assert_int_equal(zs_zstd_unit_len((const uint8_t *)"\0\0\0\0\0\0", 6, 1), ZS_UNIT_NONE);
	buf_free(&plain);
	buf_free(&comp);
}

/* ---- the layer ----------------------------------------------------------------------------- */

static void test_streams_identical(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * (STREAMS - 1) + 4321, 3);
	enc_streams(&comp, &plain, ends, STREAMS);
	expect_plain(open_par, &comp, &plain, 0);
	expect_plain(open_par, &comp, &plain, 4096);
	expect_plain(open_par, &comp, &plain, 7);
	/* through the table, as open.c stacks it */
	const struct img_codec *c = codec_by_name(cc->name, strlen(cc->name));
	assert_non_null(c);
	assert_ptr_equal(c->unit_len, cc->unit_len);
	expect_as_single(open_par, &comp, 65536);
	/* zero padding after the last stream is read over; other bytes are trailing garbage */
	static const uint8_t zeros[5000];
	buf_add(&comp, zeros, sizeof zeros);
	expect_plain(open_par, &comp, &plain, 0);
	buf_add(&comp, "JUNK", 4);
	expect_as_single(open_par, &comp, 0);
	buf_free(&plain);
	buf_free(&comp);
}

/* Damage in each unit (the second one above all): the same bytes out, and
 * the same error at the same offset, as one decoder. */
static void test_damage_as_single(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * 6, 4);
	size_t k = enc_streams(&comp, &plain, ends, STREAMS);
	size_t flips[] = { ends[0] + (ends[1] - ends[0]) / 2, ends[0] + 3, ends[0] + 20, ends[1] - 3,
			   ends[k - 2] + 100, 40 };
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		comp.p[flips[i]] ^= 0x21;
		struct result r;
		decode(open_par, &comp, 0, &r);
		assert_true(r.rc < 0);
		assert_true(r.err.has_offset);
		if (flips[i] >= ends[0]) {  /* the first unit's bytes all came out */
			assert_true(r.out.n >= STREAM_PLAIN);
			assert_memory_equal(r.out.p, plain.p, STREAM_PLAIN);
		}
		buf_free(&r.out);
		expect_as_single(open_par, &comp, 0);
		expect_as_single(open_par, &comp, 4096);
		comp.p[flips[i]] ^= 0x21;
	}
	buf_free(&plain);
	buf_free(&comp);
}

static void test_truncation_as_single(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 }, cut = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * 5, 5);
	enc_streams(&comp, &plain, ends, STREAMS);
	size_t cuts[] = { ends[0], ends[0] + 2, ends[1] + 11, ends[2] - 1, comp.n - 1, comp.n / 2, 3 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		cut.n = 0;
		buf_add(&cut, comp.p, cuts[i]);
		expect_as_single(open_par, &cut, 0);
		expect_as_single(open_par, &cut, 7);
	}
	/* a cut at a unit boundary is a complete file */
	cut.n = 0;
	buf_add(&cut, comp.p, ends[1]);
	struct buf head = { 0 };
	buf_add(&head, plain.p, 2 * STREAM_PLAIN);
	expect_plain(open_par, &cut, &head, 0);
	buf_free(&head);
	buf_free(&cut);
	buf_free(&plain);
	buf_free(&comp);
}

/* A false boundary (a candidate that is not a stream start): the unit
 * before it fails alone, and the output is still exactly the data. */
static void test_false_boundary(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * 8, 6);
	enc_streams(&comp, &plain, ends, STREAMS);
	size_t cuts[] = { 1, 14, (ends[1] - ends[0]) / 2, ends[1] - ends[0] - 1 };
	liar_unit = comp.p + ends[0];
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		liar_cut = cuts[i];
		expect_plain(open_liar, &comp, &plain, 0);
		expect_plain(open_liar, &comp, &plain, 4096);
	}
	/* and with damage after the false boundary: the one decoder's error */
	comp.p[ends[2] + 50] ^= 0x10;
	liar_cut = 14;
	expect_as_single(open_liar, &comp, 0);
	buf_free(&plain);
	buf_free(&comp);
}

/* A unit of zeros decodes to far more than the layer buffers: decoded
 * straight into the reader's buffer instead, same bytes. */
static void test_unit_over_budget(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	make_mixed(&plain, STREAM_PLAIN, 7);
	cc->enc(&comp, plain.p, plain.n);
	size_t zn = (size_t)48 << 20;
	uint8_t *z = calloc(1, zn);
	assert_non_null(z);
	cc->enc(&comp, z, zn);
	buf_add(&plain, z, zn);
	cc->enc(&comp, plain.p, STREAM_PLAIN);
	buf_add(&plain, plain.p, STREAM_PLAIN);
	cc->enc(&comp, z, zn);
	buf_add(&plain, z, zn);
	free(z);
	expect_plain(open_par, &comp, &plain, 0);
	buf_free(&plain);
	buf_free(&comp);
}

/* Tool-made files: pbzip2 (a stream per block) and lbzip2 (one stream of
 * many blocks: no unit boundary, one decoder); pzstd (a frame per chunk)
 * and zstd -T2 (one frame). */
static void tool_file(const char *dir, const char *cmd, const struct buf *plain, struct buf *out)
{
	char path[300], line[900];
	snprintf(path, sizeof path, "%s/plain", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(plain->p, 1, plain->n, f), plain->n);
	fclose(f);
	snprintf(line, sizeof line, "%s < '%s/plain' > '%s/out'", cmd, dir, dir);
	assert_int_equal(system(line), 0);
	snprintf(path, sizeof path, "%s/out", dir);
	f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t chunk[65536];
	size_t k;
	out->n = 0;
	while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(out, chunk, k);
	fclose(f);
}

static void test_tools(void **state)
{
	cc = *state;
	char dir[256];
	assert_int_equal(test_tmpdir_make(dir, sizeof dir, "zpar"), 0);
	struct buf plain = { 0 }, comp = { 0 };
	make_mixed(&plain, (size_t)6 << 20, 8);
	int bz = strcmp(cc->name, "bzip2") == 0;
	tool_file(dir, bz ? "pbzip2 -p2 -1 -c" : "pzstd -q -p 2 -1 -c", &plain, &comp);
	assert_true(cc->unit_len(comp.p, comp.n, 1) < comp.n);  /* several units */
	expect_plain(open_par, &comp, &plain, 0);
	tool_file(dir, bz ? "lbzip2 -n2 -1 -c" : "zstd -q -T2 -1 -c", &plain, &comp);
	expect_plain(open_par, &comp, &plain, 0);
	buf_free(&plain);
	buf_free(&comp);
	test_tmpdir_remove(dir);
}

/* A pipe: the units are read from it in order and buffered in memory. */
static void test_pipe(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * 10 + 99, 9);
	enc_streams(&comp, &plain, ends, STREAMS);
	int fd[2];
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fd[0]);
		for (size_t off = 0; off < comp.n;) {  /* small writes: the reader waits on the pipe */
			size_t n = comp.n - off < 3000 ? comp.n - off : 3000;
			ssize_t w = write(fd[1], comp.p + off, n);
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(fd[1]);
	char path[64];
	snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
	struct result r;
	memset(&r, 0, sizeof r);
	img_stream *src = NULL, *s = NULL;
	assert_int_equal(source_open_file(path, &r.err, &src), IMG_OK);
	assert_int_equal(open_par(src, &s), IMG_OK);
	drain(s, &r);
	close(fd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	assert_int_equal(r.rc, IMG_EOF);
	assert_int_equal(r.out.n, plain.n);
	assert_memory_equal(r.out.p, plain.p, plain.n);
	buf_free(&r.out);
	buf_free(&plain);
	buf_free(&comp);
}

/* Through the read-ahead layer, read by peeks: units are handed over
 * whole (zstd's decoded at once), with the same bytes, and damage gives
 * the same error as one decoder. */
static void test_whole_units(void **state)
{
	cc = *state;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * (STREAMS - 1) + 4321, 8);
	size_t k = enc_streams(&comp, &plain, ends, STREAMS);
	peeking = 1;
	expect_plain(open_par_ahead, &comp, &plain, 0);
	assert_int_equal(counted.units, k);
	assert_int_equal(counted.tails, 0);
	assert_true(counted.whole >= k / 2);
	assert_int_equal(counted.at_once, cc->ops->unit_decode ? k : 0);
	/* the compressed bytes of a decoded unit go before it is handed out
	 * (the damage below then replays units after such ones) */
	assert_true(counted.early_free >= k / 2);
	expect_plain(open_par_ahead, &comp, &plain, 4096);
	size_t flips[] = { ends[0] + 40, ends[3] - 9, ends[k - 3] + 100 };
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		comp.p[flips[i]] ^= 0x21;
		expect_as_single(open_par_ahead, &comp, 0);
		assert_int_equal(counted.tails, 1);
		comp.p[flips[i]] ^= 0x21;
	}
	peeking = 0;
	buf_free(&plain);
	buf_free(&comp);
}

/* As format sniffing does it: a peek at the unit layer before the
 * read-ahead layer goes on top reads the first unit partly through
 * produce(); the rest of that unit is handed over whole too (its bytes
 * moved to the front of its buffer), and every byte comes out once, in
 * order. */
static void test_sniffed_head_whole(void **state)
{
	(void)state;
	cc = &zstd_case;
	struct buf plain = { 0 }, comp = { 0 };
	size_t ends[STREAMS];
	make_mixed(&plain, STREAM_PLAIN * (STREAMS - 1) + 4321, 8);
	size_t k = enc_streams(&comp, &plain, ends, STREAMS);
	struct result r;
	memset(&r, 0, sizeof r);
	img_stream *src = NULL, *par = NULL, *s = NULL;
	assert_int_equal(memsrc_open(comp.p, comp.n, 0, &r.err, &src), IMG_OK);
	assert_int_equal(open_par(src, &par), IMG_OK);
	const uint8_t *p;
	size_t avail = 0;
	assert_int_equal(stream_peek(par, 4096, &p, &avail), IMG_OK);
	assert_true(avail >= 4096 && avail < STREAM_PLAIN);
	assert_memory_equal(p, plain.p, 4096);
	assert_int_equal(stream_push_thread(par, &s), IMG_OK);
	peeking = 1;
	drain(s, &r);
	peeking = 0;
	assert_int_equal(r.rc, IMG_EOF);
	assert_int_equal(r.out.n, plain.n);
	assert_memory_equal(r.out.p, plain.p, plain.n);
	assert_int_equal(counted.units, k);
	assert_int_equal(counted.whole, k);  /* the first unit's rest included */
	buf_free(&r.out);
	buf_free(&plain);
	buf_free(&comp);
}

/* pzstd's units of 8 MiB that do not compress are 8 MiB + 205 bytes of
 * frame: units still, decoded two at once, not the tail (one decoder);
 * the buffers the reader empties, and the units' compressed bytes, are let
 * go as soon as they can be. */
static void test_units_of_8_mib(void **state)
{
	(void)state;
	cc = &zstd_case;
	struct buf plain = { 0 }, comp = { 0 };
	size_t unit = (size_t)8 << 20;
	make_mixed(&plain, 3 * unit + 5000, 9);
	uint64_t x = 88172645463325252ULL;  /* xorshift: bytes zstd cannot compress */
	for (size_t i = 0; i + 8 <= 3 * unit; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(plain.p + i, &x, 8);
	}
	for (size_t off = 0; off < plain.n; off += unit)
		enc_pzstd(&comp, plain.p + off, plain.n - off < unit ? plain.n - off : unit);
	assert_true(comp.n > 3 * unit + 3 * 200);
	peeking = 1;
	expect_plain(open_par_ahead, &comp, &plain, 0);
	peeking = 0;
	assert_int_equal(counted.units, 4);
	assert_int_equal(counted.tails, 0);
	assert_int_equal(counted.at_once, 4);
	/* each buffer the reader emptied came back at once (give_back), not at
	 * the read-ahead layer's next fill; every unit's compressed bytes but
	 * the last one's went once it was decoded and the next one read */
	assert_int_equal(counted.whole, 4);
	assert_int_equal(counted.given_back, 4);
	assert_int_equal(counted.early_free, 3);
	buf_free(&plain);
	buf_free(&comp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzip2_finder),
		cmocka_unit_test(test_zstd_finder),
#define BOTH(t) cmocka_unit_test_prestate(t, (void *)&bzip2_case), cmocka_unit_test_prestate(t, (void *)&zstd_case)
		BOTH(test_streams_identical),
		BOTH(test_damage_as_single),
		BOTH(test_truncation_as_single),
		BOTH(test_false_boundary),
		BOTH(test_unit_over_budget),
		BOTH(test_tools),
		BOTH(test_pipe),
		BOTH(test_whole_units),
		cmocka_unit_test(test_units_of_8_mib),
		cmocka_unit_test(test_sniffed_head_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test/unit/test_zseek_codecs.c - unit tests of random reads into bzip2,
 * xz, zstd and lz4 data (io/bz2.c, xz.c, zstd.c + zstd_scan.c,
 * lz4.c through the core, io/zseek.c). Deterministic data (random and
 * repetitive parts) is compressed at test time with the real tools (bzip2,
 * pbzip2, xz -T2, zstd, pzstd, lz4 in its frame variants and legacy), into
 * a scratch folder; each file is opened as a view with a 64 KiB span and
 * read at random offsets and lengths, across points, at and past the end,
 * from its saved points too, and from several threads at once (single zstd
 * frames through checkpoints inside them). The threads a view runs start
 * after a fork() (a mount daemon forks after the view was opened). Damaged, truncated, padded and
 * garbage-followed copies, and single xz blocks too large to read at
 * random, must fail with a message naming the file.
 *
 * Not here: gzip (test_partimage_access.c, fuzz_zseek.c), the streaming
 * layers (test_codecs.c), the index file around the saved points.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper_tmpdir.h"
#include "io/io.h"
#include "io/zseek.h"

#define PLAIN_SIZE (((size_t)8 << 20) + 300000)  /* over one 8 MiB legacy lz4 block */
#define BIG_SIZE ((size_t)70 << 20)               /* over the 64 MiB single-unit limit */
#define SPAN ((uint64_t)64 << 10)
#define THREADS 4

static char tmp[256];
static uint8_t *plain;

/* ---- helpers -------------------------------------------------------------------- */

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

/* Random 4 KiB blocks, text lines, zero runs and a slowly changing pattern. */
static void make_data(uint8_t *p, size_t n, uint64_t seed)
{
	static const char line[] = "partition backup image, block group descriptor table\n";
	for (size_t i = 0; i < n; i += 4096) {
		size_t len = n - i < 4096 ? n - i : 4096, kind = (i / 4096) % 7;
		for (size_t k = 0; k < len; k++) {
			if (kind == 0 || kind == 4)
				p[i + k] = (uint8_t)rnd(&seed);
			else if (kind == 2)
				p[i + k] = 0;
			else if (kind == 5)
				p[i + k] = (uint8_t)((i >> 12) + k / 64);
			else
				p[i + k] = (uint8_t)line[(i + k) % (sizeof line - 1)];
		}
	}
}

static void path_of(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
}

/* Run a shell command in the scratch folder. */
static void run(const char *fmt, ...)
{
	char cmd[1024], line[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(line, sizeof line, "cd '%s' && %s", tmp, cmd);
	if (system(line) != 0)
		fail_msg("command failed: %s", cmd);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	path_of(path, sizeof path, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *name, size_t *n)
{
	char path[512];
	path_of(path, sizeof path, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc(*n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, *n, f), *n);
	fclose(f);
	return p;
}

/* `copies` times the plain data, as `cat` makes it. */
static uint8_t *expected(int copies, size_t *n)
{
	*n = PLAIN_SIZE * (size_t)copies;
	uint8_t *p = malloc(*n);
	assert_non_null(p);
	for (int i = 0; i < copies; i++)
		memcpy(p + (size_t)i * PLAIN_SIZE, plain, PLAIN_SIZE);
	return p;
}

struct opened {
	img_rsrc *raw;
	zs_view *v;
	img_err err;
	int rebuilt;
	char path[512];
};

static int open_view(struct opened *o, const char *name, const struct zs_ops *ops, const uint8_t *saved,
		     size_t saved_len)
{
	memset(o, 0, sizeof *o);
	path_of(o->path, sizeof o->path, name);
	int rc = rsrc_open(o->path, &o->err, &o->raw);
	assert_int_equal(rc, IMG_OK);
	rc = zs_view_open(o->raw, o->path, ops, saved, saved_len, NULL, NULL, &o->rebuilt, &o->err, &o->v);
	if (rc != IMG_OK) {
		rsrc_close(o->raw);
		o->raw = NULL;
	}
	return rc;
}

static void close_view(struct opened *o)
{
	zs_view_close(o->v);
	rsrc_close(o->raw);
	o->v = NULL;
	o->raw = NULL;
}

/* One read at off, checked against exp. */
static void check_read(zs_view *v, const uint8_t *exp, size_t n, uint64_t off, size_t len, uint8_t *buf)
{
	img_err err;
	memset(&err, 0, sizeof err);
	size_t got = 99;
	int rc = zs_view_pread(v, buf, len, off, &got, &err);
	if (rc != IMG_OK)
		fail_msg("read of %zu at %llu: %s", len, (unsigned long long)off, err.msg);
	size_t want = off >= n ? 0 : (n - off < len ? n - (size_t)off : len);
	assert_int_equal(got, want);
	if (got && memcmp(buf, exp + off, got) != 0)
		fail_msg("read of %zu at %llu: wrong bytes", len, (unsigned long long)off);
}

/* Random reads of 1 byte to 700 KiB, then the edges: start, end, past the end, empty. */
static void check_reads(zs_view *v, const uint8_t *exp, size_t n, uint64_t seed, int count)
{
	static const size_t lens[4] = { 1, 4096, 70000, 700000 };
	uint8_t *buf = malloc(lens[3]);
	assert_non_null(buf);
	for (int i = 0; i < count; i++) {
		uint64_t off = rnd(&seed) % (n + 1000);
		size_t len = 1 + rnd(&seed) % lens[rnd(&seed) % 4];
		check_read(v, exp, n, off, len, buf);
	}
	check_read(v, exp, n, 0, 1, buf);
	check_read(v, exp, n, n - 1, 100, buf);
	check_read(v, exp, n, n - 70000, 70000, buf);
	check_read(v, exp, n, n, 10, buf);
	check_read(v, exp, n, n + 12345, 10, buf);
	check_read(v, exp, n, n / 2, 0, buf);
	free(buf);
}

struct reader {
	zs_view *v;
	const uint8_t *exp;
	size_t n;
	uint64_t seed;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t *buf = malloc(300000);
	for (int i = 0; buf && i < 60 && !r->bad; i++) {
		uint64_t off = rnd(&r->seed) % r->n;
		size_t len = 1 + rnd(&r->seed) % 300000, got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		size_t want = r->n - off < len ? r->n - (size_t)off : len;
		if (zs_view_pread(r->v, buf, len, off, &got, &err) != IMG_OK || got != want ||
		    memcmp(buf, r->exp + off, got) != 0)
			r->bad = 1;
	}
	free(buf);
	return NULL;
}

static void check_threads(zs_view *v, const uint8_t *exp, size_t n)
{
	pthread_t t[THREADS];
	struct reader r[THREADS];
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct reader){ v, exp, n, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].bad, 0);
	}
}

/*
 * Open `name`, expect `copies` times the plain data and at least min_points
 * points; read it at random, with several threads when `threads`; save its
 * points, reopen from them without a scan and read again.
 */
static void check_file(const char *name, const struct zs_ops *ops, int copies, size_t min_points,
		       int threads)
{
	size_t n, points = 0;
	uint64_t state_bytes = 0;
	uint8_t *exp = expected(copies, &n), *saved = NULL;
	size_t saved_len = 0;
	struct opened o;
	if (open_view(&o, name, ops, NULL, 0) != IMG_OK)
		fail_msg("%s: %s", name, o.err.msg);
	assert_int_equal(o.rebuilt, 1);
	assert_int_equal(zs_view_size(o.v), n);
	zs_view_stats(o.v, &points, &state_bytes);
	if (points < min_points)
		fail_msg("%s: %zu points, expected at least %zu", name, points, min_points);
	check_reads(o.v, exp, n, 0x1234567ull + n, 120);
	if (threads)
		check_threads(o.v, exp, n);
	assert_int_equal(zs_view_save(o.v, &saved, &saved_len), IMG_OK);
	close_view(&o);

	if (open_view(&o, name, ops, saved, saved_len) != IMG_OK)
		fail_msg("%s (saved): %s", name, o.err.msg);
	assert_int_equal(o.rebuilt, 0);
	assert_int_equal(zs_view_size(o.v), n);
	check_reads(o.v, exp, n, 0x7654321ull + n, 60);
	close_view(&o);
	free(saved);
	free(exp);
}

/* Linked lz4 blocks: some points carry the 64 KiB before them. */
static void check_stateful(const char *name, const struct zs_ops *ops)
{
	struct opened o;
	size_t points = 0;
	uint64_t state_bytes = 0;
	assert_int_equal(open_view(&o, name, ops, NULL, 0), IMG_OK);
	zs_view_stats(o.v, &points, &state_bytes);
	assert_true(state_bytes > 0);
	close_view(&o);
}

/* The message names the file and, when it has one, the offset as "byte N". */
static void check_message(const img_err *err, const char *path)
{
	assert_non_null(strstr(err->msg, path));
	assert_null(strchr(err->msg, '\n'));
	if (err->has_offset) {
		char at[40];
		snprintf(at, sizeof at, "byte %llu", (unsigned long long)err->offset);
		if (!strstr(err->msg, at))
			fail_msg("no \"%s\" in: %s", at, err->msg);
	}
}

/* A copy of `name` with one byte flipped in the middle: the scan fails, or
 * (open_may_work) reading all of it fails; never a clean read of wrong data. */
static void check_damaged(const char *name, const struct zs_ops *ops, int copies, int open_may_work)
{
	size_t n, en;
	uint8_t *p = read_file(name, &n), *exp = expected(copies, &en);
	char dname[300];
	snprintf(dname, sizeof dname, "damaged-%s", name);
	p[n / 2] ^= 0x5A;
	write_file(dname, p, n);
	struct opened o;
	int rc = open_view(&o, dname, ops, NULL, 0);
	if (rc != IMG_OK) {
		assert_int_equal(rc, IMG_E_CORRUPT);
		check_message(&o.err, o.path);
	} else {
		if (!open_may_work)
			fail_msg("%s: damaged copy opened", name);
		uint8_t *buf = malloc((size_t)1 << 20);
		assert_non_null(buf);
		uint64_t off = 0;
		size_t got = 1;
		while (rc == IMG_OK && got > 0) {
			rc = zs_view_pread(o.v, buf, (size_t)1 << 20, off, &got, &o.err);
			off += got;
		}
		assert_int_equal(rc, IMG_E_CORRUPT);
		check_message(&o.err, o.path);
		free(buf);
		close_view(&o);
	}
	free(p);
	free(exp);
}

/* The first two thirds of `name`: the scan fails naming the offset. */
static void check_truncated(const char *name, const struct zs_ops *ops)
{
	size_t n;
	uint8_t *p = read_file(name, &n);
	char tname[300];
	snprintf(tname, sizeof tname, "cut-%s", name);
	write_file(tname, p, n * 2 / 3);
	struct opened o;
	int rc = open_view(&o, tname, ops, NULL, 0);
	if (rc == IMG_OK)
		fail_msg("%s: truncated copy opened", name);
	assert_int_equal(rc, IMG_E_TRUNCATED);
	assert_true(o.err.has_offset);
	check_message(&o.err, o.path);
	free(p);
}

/* `name` followed by garbage: IMG_E_TRAILING (xz: the footer is not at the end). */
static void check_garbage(const char *name, const struct zs_ops *ops, int want)
{
	char gname[300];
	snprintf(gname, sizeof gname, "garbage-%s", name);
	run("cat '%s' > '%s' && printf 'not compressed data' >> '%s'", name, gname, gname);
	struct opened o;
	int rc = open_view(&o, gname, ops, NULL, 0);
	assert_int_equal(rc, want);
	check_message(&o.err, o.path);
}

/* A single frame/block too large: IMG_E_FORMAT with the remedy. */
static void check_too_large(const char *name, const struct zs_ops *ops, const char *what, const char *remedy)
{
	struct opened o;
	int rc = open_view(&o, name, ops, NULL, 0);
	if (rc != IMG_E_FORMAT)
		fail_msg("%s: got %d (%s), want IMG_E_FORMAT", name, rc, o.err.msg);
	check_message(&o.err, o.path);
	if (!strstr(o.err.msg, what) || !strstr(o.err.msg, remedy))
		fail_msg("%s: message lacks \"%s\" / \"%s\": %s", name, what, remedy, o.err.msg);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_bzip2(void **state)
{
	(void)state;
	run("bzip2 -1 -c plain > a.bz2 && bzip2 -9 -c plain > b.bz2");
	run("pbzip2 -p2 -1 -b1 -c plain > p.bz2");
	run("cat a.bz2 p.bz2 b.bz2 > cat.bz2 && head -c 1000 /dev/zero >> cat.bz2");
	check_file("a.bz2", &zs_bzip2_ops, 1, 40, 1);
	check_file("b.bz2", &zs_bzip2_ops, 1, 5, 0);
	check_file("p.bz2", &zs_bzip2_ops, 1, 40, 0);
	check_file("cat.bz2", &zs_bzip2_ops, 3, 90, 0);
	check_damaged("a.bz2", &zs_bzip2_ops, 1, 0);
	check_damaged("b.bz2", &zs_bzip2_ops, 1, 0);
	check_truncated("a.bz2", &zs_bzip2_ops);
	check_truncated("p.bz2", &zs_bzip2_ops);
	check_garbage("p.bz2", &zs_bzip2_ops, IMG_E_TRAILING);
}

static void test_xz(void **state)
{
	(void)state;
	run("xz -q -T2 --block-size=262144 -c plain > a.xz && xz -q -T1 -c plain > one.xz");
	run("xz -q -T2 -0 --block-size=100000 --check=sha256 -c plain > s.xz");
	run("cat a.xz one.xz s.xz > cat.xz && head -c 8 /dev/zero >> cat.xz");
	check_file("a.xz", &zs_xz_ops, 1, 30, 1);
	check_file("one.xz", &zs_xz_ops, 1, 1, 0);
	check_file("s.xz", &zs_xz_ops, 1, 80, 0);
	check_file("cat.xz", &zs_xz_ops, 3, 110, 0);
	check_damaged("a.xz", &zs_xz_ops, 1, 1);
	check_damaged("one.xz", &zs_xz_ops, 1, 1);
	check_truncated("a.xz", &zs_xz_ops);
	check_truncated("cat.xz", &zs_xz_ops);
	check_garbage("a.xz", &zs_xz_ops, IMG_E_TRUNCATED);
}

/* zstd's decoder started at the data frame at compressed offset cin of
 * `name` (decoded offset copy * PLAIN_SIZE), from the file as a parallel
 * decoder would: exactly that frame's bytes, then the end. */
static void check_zstd_frame_start(const char *name, uint64_t cin, int copy)
{
	struct opened o;
	memset(&o, 0, sizeof o);
	path_of(o.path, sizeof o.path, name);
	assert_int_equal(rsrc_open(o.path, &o.err, &o.raw), IMG_OK);
	struct zs_point p = { .cin = cin, .uout = (uint64_t)copy * PLAIN_SIZE };
	struct zs_start st = { .raw = o.raw, .name = o.path, .p = &p, .next_uout = p.uout + PLAIN_SIZE };
	void *dec = NULL;
	assert_int_equal(zs_zstd_ops.start(&st, &dec, &o.err), IMG_OK);
	uint8_t *buf = malloc(PLAIN_SIZE + 1);
	assert_non_null(buf);
	size_t total = 0, got = 1;
	while (got > 0) {
		assert_int_equal(zs_zstd_ops.read(dec, buf + total, PLAIN_SIZE + 1 - total, &got, &o.err), IMG_OK);
		total += got;
	}
	assert_int_equal(total, PLAIN_SIZE);
	assert_memory_equal(buf, plain, PLAIN_SIZE);
	zs_zstd_ops.close(dec);
	free(buf);
	rsrc_close(o.raw);
}

/* zstd's decoder started at the frame at compressed offset cin of `name`
 * (decoded offset copy * PLAIN_SIZE) for a segment decoded whole
 * (zs_start.contiguous: the frame decoded block by block straight into the
 * buffer; a skippable frame before it stepped over), each read asking for
 * all the rest; with step_max, reads of at most that (less than a block:
 * the streaming way). The bytes up to that frame's end, which must be the
 * first of plain. @return how many. */
static size_t check_zstd_contiguous(const char *name, uint64_t cin, int copy, size_t step_max)
{
	struct opened o;
	memset(&o, 0, sizeof o);
	path_of(o.path, sizeof o.path, name);
	assert_int_equal(rsrc_open(o.path, &o.err, &o.raw), IMG_OK);
	struct zs_point p = { .cin = cin, .uout = (uint64_t)copy * PLAIN_SIZE };
	struct zs_start st = { .raw = o.raw, .name = o.path, .p = &p, .next_uout = p.uout + PLAIN_SIZE,
			       .contiguous = 1 };
	void *dec = NULL;
	assert_int_equal(zs_zstd_ops.start(&st, &dec, &o.err), IMG_OK);
	uint8_t *buf = malloc(PLAIN_SIZE);
	assert_non_null(buf);
	size_t total = 0, got = 1;
	while (got > 0 && total < PLAIN_SIZE) {
		size_t step = step_max && PLAIN_SIZE - total > step_max ? step_max : PLAIN_SIZE - total;
		if (zs_zstd_ops.read(dec, buf + total, step, &got, &o.err) != IMG_OK)
			fail_msg("%s from %llu: %s", name, (unsigned long long)cin, o.err.msg);
		total += got;
	}
	assert_memory_equal(buf, plain, total);
	zs_zstd_ops.close(dec);
	free(buf);
	rsrc_close(o.raw);
	return total;
}

static uint64_t file_size(const char *name)
{
	size_t n;
	free(read_file(name, &n));
	return n;
}

static void test_zstd(void **state)
{
	(void)state;
	run("zstd -q -c plain > a.zst && cat plain | zstd -q -c > pipe.zst");
	run("pzstd -q -1 -p2 -c plain > p.zst");
	run("cat a.zst p.zst pipe.zst > cat.zst && head -c 100 /dev/zero >> cat.zst");
	check_file("a.zst", &zs_zstd_ops, 1, 1, 0);
	check_file("pipe.zst", &zs_zstd_ops, 1, 1, 0);
	check_file("p.zst", &zs_zstd_ops, 1, 4, 1);
	check_file("cat.zst", &zs_zstd_ops, 3, 6, 0);
	check_damaged("a.zst", &zs_zstd_ops, 1, 0);
	check_damaged("p.zst", &zs_zstd_ops, 1, 0);
	check_truncated("a.zst", &zs_zstd_ops);
	check_truncated("p.zst", &zs_zstd_ops);
	check_garbage("p.zst", &zs_zstd_ops, IMG_E_TRAILING);
	check_zstd_frame_start("cat.zst", 0, 0);
	check_zstd_frame_start("cat.zst", file_size("a.zst") + file_size("p.zst"), 2);
	assert_int_equal(check_zstd_contiguous("cat.zst", 0, 0, 0), PLAIN_SIZE);
	assert_int_equal(check_zstd_contiguous("cat.zst", file_size("a.zst") + file_size("p.zst"), 2, 0),
			 PLAIN_SIZE);
	assert_int_equal(check_zstd_contiguous("cat.zst", 0, 0, 100000), PLAIN_SIZE);
	size_t first = check_zstd_contiguous("p.zst", 0, 0, 0);  /* pzstd: a skippable frame first */
	assert_true(first > 0 && first < PLAIN_SIZE);             /* then its first data frame */
	assert_int_equal(check_zstd_contiguous("cat.zst", file_size("a.zst"), 1, 0), first);

	/* a window over 128 MiB (zstd --long=28, size not known): refused at
	 * its frame, with the command that makes it mountable */
	run("head -c 5000 plain | zstd -q --long=28 -c > long28.zst");
	struct opened o;
	assert_int_equal(open_view(&o, "long28.zst", &zs_zstd_ops, NULL, 0), IMG_E_CORRUPT);
	check_message(&o.err, o.path);
	assert_int_equal(o.err.offset, 0);
	assert_non_null(strstr(o.err.msg, "decompress it first: zstd --long=31 -dc IMAGE > IMAGE.img"));
}

static void test_lz4(void **state)
{
	(void)state;
	run("lz4 -q -B4 -c plain > a.lz4 && lz4 -q -c plain > big-blocks.lz4");
	run("lz4 -q -B4 -BD -c plain > d.lz4 && lz4 -q -BD -c plain > d7.lz4");
	run("lz4 -q -BX --content-size -B5 -c plain > x.lz4 && lz4 -q -l -c plain > l.lz4");
	run("cat a.lz4 l.lz4 d.lz4 > cat.lz4 && head -c 100 /dev/zero >> cat.lz4");
	check_file("a.lz4", &zs_lz4_ops, 1, 100, 1);
	check_file("big-blocks.lz4", &zs_lz4_ops, 1, 3, 0);
	check_file("d.lz4", &zs_lz4_ops, 1, 100, 1);
	check_file("d7.lz4", &zs_lz4_ops, 1, 3, 0);
	check_file("x.lz4", &zs_lz4_ops, 1, 30, 0);
	check_file("l.lz4", &zs_lz4_ops, 1, 2, 0);
	check_file("cat.lz4", &zs_lz4_ops, 3, 200, 0);
	check_stateful("d.lz4", &zs_lz4_ops);
	check_damaged("a.lz4", &zs_lz4_ops, 1, 0);
	check_damaged("d.lz4", &zs_lz4_ops, 1, 0);
	check_damaged("x.lz4", &zs_lz4_ops, 1, 0);
	check_truncated("d.lz4", &zs_lz4_ops);
	check_truncated("l.lz4", &zs_lz4_ops);
	check_garbage("a.lz4", &zs_lz4_ops, IMG_E_TRAILING);
}

/* One zstd frame over 64 MiB (zstd -1, and zstd -T2 from a pipe: no size
 * in the header) reads at random through checkpoints inside the frame, also
 * from the saved points; one xz block over 64 MiB is refused with the
 * remedy; the same data in several frames opens. */
/* The decoder of the codec called name, from the table (a codec of one file). */
static const struct zs_ops *ops_named(const char *name)
{
	const struct img_codec *c = codec_by_name(name, strlen(name));
	assert_non_null(c);
	assert_non_null(c->seek);
	return c->seek;
}

static void test_lzop(void **state)
{
	(void)state;
	const struct zs_ops *ops = ops_named("lzop");
	run("lzop -q -c plain > a.lzo && lzop -q -9 --crc32 -c plain > c.lzo && lzop -q -F -c plain > f.lzo");
	run("cat a.lzo c.lzo f.lzo > cat.lzo && head -c 1000 /dev/zero >> cat.lzo");
	/* a point every SPAN (64 KiB) at the next 256 KiB block start: one per block */
	check_file("a.lzo", ops, 1, PLAIN_SIZE / (256 << 10), 1);
	check_file("c.lzo", ops, 1, PLAIN_SIZE / (256 << 10), 0);
	check_file("f.lzo", ops, 1, PLAIN_SIZE / (256 << 10), 0);
	check_file("cat.lzo", ops, 3, 3 * (PLAIN_SIZE / (256 << 10)), 0);
	check_damaged("a.lzo", ops, 1, 0);
	check_damaged("c.lzo", ops, 1, 0);
	check_truncated("a.lzo", ops);
	check_truncated("cat.lzo", ops);
	check_garbage("a.lzo", ops, IMG_E_TRAILING);
}

static void test_lzip(void **state)
{
	(void)state;
	const struct zs_ops *ops = ops_named("lzip");
	/* lzip -b: many members, as plzip writes them; one member; both concatenated */
	run("lzip -q -3 -b 300KiB -c plain > m.lz && lzip -q -0 -c plain > one.lz");
	run("cat m.lz one.lz > cat.lz");
	check_file("m.lz", ops, 1, 5, 1);  /* -b limits the compressed size of a member */
	check_file("one.lz", ops, 1, 1, 0);
	check_file("cat.lz", ops, 2, 6, 0);
	check_damaged("m.lz", ops, 1, 0);
	check_damaged("one.lz", ops, 1, 0);
	check_truncated("m.lz", ops);
	check_truncated("cat.lz", ops);
	check_garbage("m.lz", ops, IMG_E_TRAILING);
}

static void test_single_unit_limit(void **state)
{
	(void)state;
	uint8_t *big = malloc(BIG_SIZE);
	assert_non_null(big);
	for (size_t i = 0; i < BIG_SIZE; i += PLAIN_SIZE)
		memcpy(big + i, plain, BIG_SIZE - i < PLAIN_SIZE ? BIG_SIZE - i : PLAIN_SIZE);
	write_file("big", big, BIG_SIZE);
	run("zstd -q -1 -c big > big.zst && cat big | zstd -q -1 -T2 -c > bigpipe.zst");
	run("xz -q -0 -T1 -c big > big.xz && pzstd -q -1 -p2 -c big > bigp.zst");
	zs_set_first_span((uint64_t)4 << 20);
	static const char *const one[2] = { "big.zst", "bigpipe.zst" };
	for (int k = 0; k < 2; k++) {
		struct opened o;
		size_t points;
		uint64_t state_bytes;
		uint8_t *saved = NULL;
		size_t saved_len = 0;
		if (open_view(&o, one[k], &zs_zstd_ops, NULL, 0) != IMG_OK)
			fail_msg("%s: %s", one[k], o.err.msg);
		assert_int_equal(zs_view_size(o.v), BIG_SIZE);
		zs_view_stats(o.v, &points, &state_bytes);
		if (points < BIG_SIZE / (5 << 20) || state_bytes == 0)
			fail_msg("%s: %zu points, %llu state bytes: too few checkpoints", one[k], points,
				 (unsigned long long)state_bytes);
		check_reads(o.v, big, BIG_SIZE, 77 + k, 40);
		assert_int_equal(zs_view_save(o.v, &saved, &saved_len), IMG_OK);
		close_view(&o);
		if (open_view(&o, one[k], &zs_zstd_ops, saved, saved_len) != IMG_OK)
			fail_msg("%s (saved): %s", one[k], o.err.msg);
		assert_int_equal(o.rebuilt, 0);
		check_reads(o.v, big, BIG_SIZE, 177 + k, 40);
		close_view(&o);
		free(saved);
	}
	zs_set_first_span(SPAN);
	char what[80];
	snprintf(what, sizeof what, "one xz block of %zu bytes", BIG_SIZE);
	check_too_large("big.xz", &zs_xz_ops, what, "| xz -T0 > NEW.xz");
	/* one lzip member (lzip without -b): the same, with plzip as the fix */
	run("lzip -q -0 -c big > big.lz");
	snprintf(what, sizeof what, "one lzip member of %zu bytes", BIG_SIZE);
	check_too_large("big.lz", ops_named("lzip"), what, "big.lz | plzip -3 > NEW.lz");

	struct opened o;
	if (open_view(&o, "bigp.zst", &zs_zstd_ops, NULL, 0) != IMG_OK)
		fail_msg("bigp.zst: %s", o.err.msg);
	assert_int_equal(zs_view_size(o.v), BIG_SIZE);
	check_reads(o.v, big, BIG_SIZE, 99, 20);
	close_view(&o);
	free(big);
}

/* ---- threads and fork() --------------------------------------------------------- */

/* Threads of this process now. */
static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Read the whole view sequentially in 128 KiB reads; 0 when every byte is right. */
static int read_all(zs_view *v, const uint8_t *exp, size_t n)
{
	static uint8_t buf[(size_t)128 << 10];
	for (uint64_t off = 0; off < n; off += sizeof buf) {
		img_err err;
		memset(&err, 0, sizeof err);
		size_t want = n - off < sizeof buf ? (size_t)(n - off) : sizeof buf, got = 0;
		if (zs_view_pread(v, buf, sizeof buf, off, &got, &err) != IMG_OK || got != want ||
		    memcmp(buf, exp + off, want) != 0)
			return 1;
	}
	return 0;
}

/* A mount daemon forks after its image was opened and read: no thread of
 * the view runs then (the scan's checkpoint verification has ended; the
 * decode-ahead threads are stopped before the fork), and the child starts
 * its own decode-ahead threads with its first sequential reads. A thread
 * started before the fork would not exist in the child: its reads would
 * hang (the alarm) or fail. */
static void test_zstd_threads_after_fork(void **state)
{
	(void)state;
	run("zstd -q -T2 -3 -c plain > fork.zst");
	int base = threads_now();  /* 1; 2 under ThreadSanitizer (its own thread) */
	assert_true(base <= 2);
	struct opened o;
	if (open_view(&o, "fork.zst", &zs_zstd_ops, NULL, 0) != IMG_OK)
		fail_msg("%s", o.err.msg);
	uint64_t stateful = 0, units = 0, blind = 0;
	zs_view_points(o.v, &stateful, &units, &blind);
	assert_true(stateful >= 8);
	assert_int_equal(threads_now(), base);  /* the scan's threads ended with it */
	assert_int_equal(read_all(o.v, plain, PLAIN_SIZE), 0);
	assert_true(threads_now() > base);  /* sequential reads started decode-ahead */
	struct zs_view_counts before;
	zs_view_counts(o.v, &before);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(60);
		int child_base = threads_now();
		int bad = read_all(o.v, plain, PLAIN_SIZE);
		struct zs_view_counts c;
		zs_view_counts(o.v, &c);
		_exit(bad ? 1 : threads_now() <= child_base || c.ahead_decodes == before.ahead_decodes ? 2 : 0);
	}
	assert_int_equal(threads_now(), base);  /* stopped for the fork, not yet restarted */
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the forked child: %s %d (1: wrong bytes, 2: no decode-ahead thread of its own)",
			 WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	assert_int_equal(read_all(o.v, plain, PLAIN_SIZE), 0);
	close_view(&o);
	assert_int_equal(threads_now(), base);
}

static int group_setup(void **state)
{
	(void)state;
	if (test_tmpdir_make(tmp, sizeof tmp, "zseek") != 0)
		return -1;
	plain = malloc(PLAIN_SIZE);
	if (!plain)
		return -1;
	make_data(plain, PLAIN_SIZE, 0xC0FFEE);
	char path[512];
	path_of(path, sizeof path, "plain");
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(plain, 1, PLAIN_SIZE, f) != PLAIN_SIZE || fclose(f) != 0)
		return -1;
	zs_set_first_span(SPAN);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	zs_set_first_span(0);
	free(plain);
	return test_tmpdir_remove(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzip2),
		cmocka_unit_test(test_xz),
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_lz4),
		cmocka_unit_test(test_lzop),
		cmocka_unit_test(test_lzip),
		cmocka_unit_test(test_single_unit_limit),
		cmocka_unit_test(test_zstd_threads_after_fork),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

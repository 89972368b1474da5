/*
 * test/unit/test_zseek_gz.c - unit tests of random reads into gzip data
 * through access points (io/zseek.c, io/zseek_gz.c), by way of rsrc_open +
 * rsrc_decode (io/io.h) and zs_view_open (io/zseek.h) directly.
 *
 * 20 MiB of deterministic data (runs of random bytes, text lines, repeated
 * patterns and zeros) is compressed at test time by the gzip and pigz
 * commands (gzip -1, gzip -9, pigz, two members concatenated) and read back
 * at random offsets and sizes (crossing member boundaries, the last byte,
 * past the end) against the original; then the saved form of the points
 * (reopened: no scan; damaged: a scan, still correct reads), damaged,
 * truncated, padded and trailing-garbage compressed data, and 4 threads
 * reading one view at once. The view's reads (zs_view_counts): threads
 * reading the same segments at once decode each once; sequential reads with
 * decode-ahead are right and decode each segment once; eight readers at
 * once run at most ZS_DECODES decodes at once; a damaged segment
 * fails alone with decode-ahead on; a fork() while the thread runs leaves
 * both processes reading right, each with its own thread.
 *
 * Not here: the streaming gzip layer (test_codecs.c), mounts (zmount.sh).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"
#include "io/zseek.h"
#include "helper_tmpdir.h"

#define DATA_SIZE ((size_t)20 << 20)
#define MEMBER_SPLIT ((size_t)9 * 1048576 + 12345)  /* first member of the two-member file */

static char tmpdir[64];
static uint8_t *data;  /* DATA_SIZE bytes, as written to data.bin */

static const char *tpath(const char *name)
{
	static char buf[4][256];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static uint32_t xs(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Runs of 16 KiB .. 1 MiB: random, text lines, a repeated pattern, zeros. */
static void make_data(void)
{
	uint32_t x = 0x9E3779B9u;
	size_t i = 0, line = 0;
	data = malloc(DATA_SIZE);
	assert_non_null(data);
	while (i < DATA_SIZE) {
		size_t run = 16384 + xs(&x) % (1u << 20), kind = xs(&x) % 4;
		if (run > DATA_SIZE - i)
			run = DATA_SIZE - i;
		size_t end = i + run;
		switch (kind) {
		case 0:
			for (; i < end; i++)
				data[i] = (uint8_t)xs(&x);
			break;
		case 1:
			while (i < end) {
				char l[96];
				int n = snprintf(l, sizeof l, "line %zu: the quick brown fox %u jumps\n", line++,
						 xs(&x) % 10007);
				for (int j = 0; j < n && i < end; j++)
					data[i++] = (uint8_t)l[j];
			}
			break;
		case 2:
			for (size_t j = 0; i < end; i++, j++)
				data[i] = (uint8_t)("imgbk-zseek-"[j % 12] ^ (j / 4096));
			break;
		default:
			memset(data + i, 0, run);
			i = end;
			break;
		}
	}
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct stat st;
	assert_int_equal(fstat(fileno(f), &st), 0);
	uint8_t *p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*n = (size_t)st.st_size;
	return p;
}

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int have(const char *tool)
{
	return sh("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* Compressed files made once, in the group setup. */
static int setup(void **state)
{
	(void)state;
	make_data();
	write_file(tpath("data.bin"), data, DATA_SIZE);
	write_file(tpath("a.bin"), data, MEMBER_SPLIT);
	write_file(tpath("b.bin"), data + MEMBER_SPLIT, DATA_SIZE - MEMBER_SPLIT);
	if (sh("cd %s && gzip -1 -c data.bin >g1.gz && gzip -9 -c data.bin >g9.gz && "
	       "gzip -6 -c a.bin >a.gz && gzip -1 -c b.bin >b.gz && cat a.gz b.gz >two.gz",
	       tmpdir) != 0)
		return -1;
	if (have("pigz") && sh("cd %s && pigz -p 2 -c data.bin >pigz.gz", tmpdir) != 0)
		return -1;
	return 0;
}

static const struct img_codec *gzip_codec(void)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (strcmp(img_codecs[i]->name, "gzip") == 0)
			return img_codecs[i];
	fail_msg("no gzip codec in img_codecs");
	return NULL;
}

/* rsrc_open + rsrc_decode; @return the status, *out set on success. */
static int open_decoded(const char *path, const uint8_t *saved, size_t saved_len, int *rebuilt,
			img_err *err, img_rsrc **out)
{
	memset(err, 0, sizeof *err);
	*out = NULL;
	img_rsrc *r = NULL;
	int rc = rsrc_open(path, err, &r);
	if (rc != IMG_OK)
		return rc;
	rc = rsrc_decode(&r, gzip_codec(), saved, saved_len, NULL, NULL, rebuilt, err);
	if (rc != IMG_OK) {
		rsrc_close(r);
		return rc;
	}
	*out = r;
	return IMG_OK;
}

static img_rsrc *must_open(const char *name, const uint8_t *saved, size_t saved_len, int *rebuilt)
{
	img_err err;
	img_rsrc *r = NULL;
	int rc = open_decoded(tpath(name), saved, saved_len, rebuilt, &err, &r);
	if (rc != IMG_OK)
		fail_msg("%s: rsrc_decode failed (%d): %s", name, rc, err.msg);
	assert_int_equal(rsrc_size(r), DATA_SIZE);
	return r;
}

/* One pread compared with the original; @return 0 when right. */
static int check_one(img_rsrc *r, uint8_t *buf, uint64_t off, size_t len, char *why, size_t whysz)
{
	img_err err;
	memset(&err, 0, sizeof err);
	size_t got = 12345, want = off >= DATA_SIZE ? 0 : len < DATA_SIZE - off ? len : DATA_SIZE - (size_t)off;
	int rc = rsrc_pread(r, buf, len, off, &got, &err);
	if (rc != IMG_OK) {
		snprintf(why, whysz, "pread(%zu at %llu) failed (%d): %.200s", len, (unsigned long long)off,
			 rc, err.msg);
		return 1;
	}
	if (got != want) {
		snprintf(why, whysz, "pread(%zu at %llu) got %zu bytes, want %zu", len,
			 (unsigned long long)off, got, want);
		return 1;
	}
	if (want && memcmp(buf, data + off, want) != 0) {
		snprintf(why, whysz, "pread(%zu at %llu): bytes differ", len, (unsigned long long)off);
		return 1;
	}
	return 0;
}

/* count random preads of random sizes, plus fixed edge cases and reads across
 * each of the `hot` offsets. @return failures (the first described in why). */
static int check_reads(img_rsrc *r, uint32_t seed, int count, const uint64_t *hot, int nhot, char *why,
		       size_t whysz)
{
	static const size_t sizes[] = { 1, 2, 511, 4096, 32768, 32769, 65536, 262144 + 17, 1 << 20,
					(3 << 20) + 5 };
	size_t cap = (size_t)5 << 20;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		snprintf(why, whysz, "out of memory");
		return 1;
	}
	uint32_t x = seed | 1;
	int bad = 0;
	char w[300];
#define CHECK(o, l)                                                              \
	do {                                                                     \
		if (check_one(r, buf, (o), (l), w, sizeof w) && bad++ == 0)      \
			snprintf(why, whysz, "%s", w);                           \
	} while (0)
	CHECK(DATA_SIZE - 1, 1);                  /* the last byte */
	CHECK(DATA_SIZE - 1, 100);                /* the last byte, asking for more */
	CHECK(DATA_SIZE - 70000, 1 << 20);        /* across the end */
	CHECK(DATA_SIZE, 10);                     /* at the end: nothing */
	CHECK((uint64_t)DATA_SIZE + 4096, 10);    /* past the end: nothing */
	CHECK(0, 1);
	CHECK(0, (size_t)5 << 20);
	for (int h = 0; h < nhot; h++) {
		for (int d = -2; d <= 2; d++) {
			uint64_t at = hot[h];
			uint64_t o = d < 0 ? at - (uint64_t)(-d) * 1000 : at + (uint64_t)d * 1000;
			if (o < DATA_SIZE)
				CHECK(o, 4000);
		}
		CHECK(hot[h] - 1, 2);
		CHECK(hot[h], 1);
	}
	for (int i = 0; i < count; i++) {
		size_t len = sizes[xs(&x) % 10];
		if (xs(&x) % 3 == 0)
			len = 1 + xs(&x) % (2u << 20);
		uint64_t off = xs(&x) % DATA_SIZE;
		if (i % 16 == 15)
			off = DATA_SIZE - 1 - xs(&x) % 65536;
		CHECK(off, len);
	}
#undef CHECK
	free(buf);
	return bad;
}

static void assert_reads(img_rsrc *r, const char *name, uint32_t seed, int count, const uint64_t *hot,
			 int nhot)
{
	char why[400] = "";
	int bad = check_reads(r, seed, count, hot, nhot, why, sizeof why);
	if (bad)
		fail_msg("%s: %d bad reads; first: %s", name, bad, why);
}

/* Points found by a fresh scan of NAME (zs_view_open on the raw file). */
static size_t count_points(const char *name, uint64_t *state_bytes)
{
	img_err err;
	memset(&err, 0, sizeof err);
	img_rsrc *raw = NULL;
	assert_int_equal(rsrc_open(tpath(name), &err, &raw), IMG_OK);
	zs_view *v = NULL;
	int rebuilt = 0;
	int rc = zs_view_open(raw, name, &zs_gzip_ops, NULL, 0, NULL, NULL, &rebuilt, &err, &v);
	if (rc != IMG_OK)
		fail_msg("%s: zs_view_open failed: %s", name, err.msg);
	assert_int_equal(rebuilt, 1);
	assert_int_equal(zs_view_size(v), DATA_SIZE);
	size_t n = 0;
	zs_view_stats(v, &n, state_bytes);
	zs_view_close(v);
	rsrc_close(raw);
	return n;
}

/* ---- reads of each kind of gzip file ------------------------------------------ */

static void reads_of(const char *name, uint32_t seed, const uint64_t *hot, int nhot)
{
	uint64_t sb = 0;
	size_t pts = count_points(name, &sb);
	print_message("# %s: %zu access points, %llu state bytes\n", name, pts, (unsigned long long)sb);
	if (pts < 3)
		fail_msg("%s: %zu access points for %zu MiB (span 4 MiB): want several", name, pts,
			 DATA_SIZE >> 20);
	if (sb == 0)
		fail_msg("%s: no point carries a window", name);
	int rebuilt = 0;
	img_rsrc *r = must_open(name, NULL, 0, &rebuilt);
	assert_int_equal(rebuilt, 1);
	assert_reads(r, name, seed, 250, hot, nhot);
	rsrc_close(r);
}

static void test_gzip1(void **state)
{
	(void)state;
	reads_of("g1.gz", 1, NULL, 0);
}

static void test_gzip9(void **state)
{
	(void)state;
	uint64_t hot[] = { (uint64_t)4 << 20, (uint64_t)8 << 20, (uint64_t)12 << 20, (uint64_t)16 << 20 };
	reads_of("g9.gz", 9, hot, 4);
}

static void test_pigz(void **state)
{
	(void)state;
	if (access(tpath("pigz.gz"), F_OK) != 0)
		skip();
	reads_of("pigz.gz", 17, NULL, 0);
}

static void test_two_members(void **state)
{
	(void)state;
	uint64_t hot[] = { MEMBER_SPLIT };
	reads_of("two.gz", 2, hot, 1);
	/* one read that spans the whole boundary, and a sequential pass in odd steps */
	int rebuilt = 0;
	img_rsrc *r = must_open("two.gz", NULL, 0, &rebuilt);
	uint8_t *buf = malloc(DATA_SIZE);
	assert_non_null(buf);
	img_err err;
	memset(&err, 0, sizeof err);
	size_t got = 0;
	assert_int_equal(rsrc_pread(r, buf, DATA_SIZE, 0, &got, &err), IMG_OK);
	assert_int_equal(got, DATA_SIZE);
	assert_memory_equal(buf, data, DATA_SIZE);
	memset(buf, 0, DATA_SIZE);
	for (size_t off = MEMBER_SPLIT - 3 * 100003; off < DATA_SIZE; off += got) {
		assert_int_equal(rsrc_pread(r, buf + off, 100003, off, &got, &err), IMG_OK);
		assert_true(got > 0);
	}
	size_t from = MEMBER_SPLIT - 3 * 100003;
	assert_memory_equal(buf + from, data + from, DATA_SIZE - from);
	free(buf);
	rsrc_close(r);
}

/* ---- the saved form ---------------------------------------------------------------- */

static uint8_t *saved_of(const char *name, size_t *len)
{
	int rebuilt = 0;
	img_rsrc *r = must_open(name, NULL, 0, &rebuilt);
	uint8_t *s = NULL;
	assert_int_equal(rsrc_decoded_save(r, &s, len), IMG_OK);
	assert_non_null(s);
	assert_true(*len > 40);
	rsrc_close(r);
	return s;
}

static void test_saved_reopen(void **state)
{
	(void)state;
	const char *names[] = { "g9.gz", "two.gz" };
	for (int k = 0; k < 2; k++) {
		size_t len = 0;
		uint8_t *s = saved_of(names[k], &len);
		int rebuilt = -1;
		img_rsrc *r = must_open(names[k], s, len, &rebuilt);
		if (rebuilt != 0)
			fail_msg("%s: a valid saved form was not used (rebuilt = %d)", names[k], rebuilt);
		uint64_t hot[] = { MEMBER_SPLIT };
		assert_reads(r, names[k], 100 + k, 300, hot, 1);
		/* saving again gives the same bytes */
		uint8_t *s2 = NULL;
		size_t len2 = 0;
		assert_int_equal(rsrc_decoded_save(r, &s2, &len2), IMG_OK);
		assert_int_equal(len2, len);
		assert_memory_equal(s2, s, len);
		free(s2);
		rsrc_close(r);
		free(s);
	}
}

static void put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A damaged saved form must be refused (rebuilt == 1) and reads stay right. */
static void expect_rejected(const char *name, const uint8_t *s, size_t len, const char *what)
{
	int rebuilt = -1;
	img_rsrc *r = must_open(name, s, len, &rebuilt);
	if (rebuilt != 1)
		fail_msg("%s: saved form %s was used (rebuilt = %d)", name, what, rebuilt);
	assert_reads(r, what, 7, 60, NULL, 0);
	rsrc_close(r);
}

/*
 * Layout (io/zseek.c): "IMGBKZS3", u32 points, u32 0, u64 decoded size, u64
 * span, u64 compressed size (40 bytes); 40 bytes per point: u64 cin, u64 uout,
 * u32 bits, u32 aux, u64 aux2, u32 stored length, u32 raw length | packed <<
 * 31, u32 segment CRC-32, u32 has CRC, u64 state offset, u32 state CRC-32,
 * u32 0 (64 bytes a point); then the states.
 */
static void test_saved_damaged(void **state)
{
	(void)state;
	const char *name = "g9.gz";
	size_t len = 0;
	uint8_t *s = saved_of(name, &len);
	uint8_t *d = malloc(len + 16);
	assert_non_null(d);
	uint32_t n = get32le(s + 8);
	assert_true(n >= 3);

#define DAMAGE(what, stmt, dlen)                 \
	do {                                     \
		memcpy(d, s, len);               \
		memset(d + len, 0, 16);          \
		stmt;                            \
		expect_rejected(name, d, (dlen), what); \
	} while (0)
	DAMAGE("with a bad magic", d[3] ^= 0x20, len);
	DAMAGE("with one point too many", put32le(d + 8, n + 1), len);
	DAMAGE("with one point too few", put32le(d + 8, n - 1), len);
	DAMAGE("with no points", put32le(d + 8, 0), len);
	DAMAGE("with a nonzero reserved field", d[12] = 1, len);
	DAMAGE("for another compressed size", d[32] ^= 1, len);
	DAMAGE("with span 0", memset(d + 24, 0, 8), len);
	DAMAGE("truncated by one byte", (void)0, len - 1);
	DAMAGE("truncated to half", (void)0, len / 2);
	DAMAGE("truncated to its header", (void)0, 40);
	DAMAGE("with a byte appended", (void)0, len + 1);
	DAMAGE("with the first point not at 0", d[40 + 8] = 1, len);
	/* point 2's decoded offset below point 1's */
	DAMAGE("with points out of order", memset(d + 40 + 2 * 64 + 8, 0, 8), len);
	DAMAGE("with a point past the compressed size", d[40 + 64 + 7] = 0x7F, len);
	DAMAGE("with bits >= 65536", d[40 + 64 + 18] = 1, len);
	/* a stored state length that overruns the data */
	DAMAGE("with a state longer than the data", put32le(d + 40 + 64 + 32, get32le(d + 40 + 64 + 32) + 1), len);
	DAMAGE("unpacked with a length that differs", put32le(d + 40 + 64 + 36, get32le(d + 40 + 64 + 32) + 1), len);
	DAMAGE("with a CRC flag that is neither 0 nor 1", put32le(d + 40 + 64 + 44, 2), len);
	/* point 1 has a state (a gzip window) */
	DAMAGE("with a state offset that differs", d[40 + 64 + 48] ^= 1, len);
	DAMAGE("with a state whose CRC-32 differs", d[40 + 64 + 56] ^= 1, len);
	DAMAGE("with a nonzero pad field", d[40 + 64 + 60] = 1, len);
	DAMAGE("empty", (void)0, 0);
#undef DAMAGE
	free(d);
	free(s);
}

/*
 * Damage anywhere in the saved form that the structure checks cannot see
 * (a state's bytes, a point's offsets, a segment CRC) may be used as it is;
 * then reads must fail or be right, never return other bytes: every
 * segment's bytes are checked against its CRC-32 before they are handed out.
 * (The index file that holds the saved form has its own checksum too,
 * formats/blkindex.c.)
 */
static void test_saved_flips_report(void **state)
{
	(void)state;
	size_t len = 0;
	uint8_t *s = saved_of("g9.gz", &len);
	uint8_t *d = malloc(len);
	uint8_t *buf = malloc(DATA_SIZE);
	assert_non_null(d);
	assert_non_null(buf);
	uint32_t x = 77;
	int used = 0, wrong = 0;
	for (int t = 0; t < 64; t++) {
		memcpy(d, s, len);
		size_t at = 40 + xs(&x) % (len - 40);
		d[at] ^= (uint8_t)(1u << (xs(&x) % 8));
		int rebuilt = -1;
		img_err err;
		img_rsrc *r = NULL;
		if (open_decoded(tpath("g9.gz"), d, len, &rebuilt, &err, &r) != IMG_OK)
			continue;
		if (rebuilt == 0) {
			used++;
			for (uint64_t off = 0; off < DATA_SIZE; off += (uint64_t)1 << 20) {
				size_t got = 0;
				memset(&err, 0, sizeof err);
				if (rsrc_pread(r, buf, (size_t)1 << 20, off, &got, &err) == IMG_OK &&
				    (got != (size_t)1 << 20 || memcmp(buf, data + off, got) != 0)) {
					wrong++;
					print_message("# saved form, bit flipped at byte %zu: used, wrong bytes at %llu\n",
						      at, (unsigned long long)off);
					break;
				}
			}
		}
		rsrc_close(r);
	}
	print_message("# 64 random bit flips in the saved form: %d used as is, %d of those gave wrong bytes\n",
		      used, wrong);
	assert_int_equal(wrong, 0);
	free(buf);
	free(d);
	free(s);
}

/* ---- damaged, truncated, padded compressed data -------------------------------------- */

/* Copy src to dst (in tmpdir) with one byte xor'd at `at`; @return the size. */
static size_t copy_flipped(const char *src, const char *dst, size_t at, uint8_t xr)
{
	size_t n = 0;
	uint8_t *p = read_file(tpath(src), &n);
	if (at < n)
		p[at] ^= xr;
	write_file(tpath(dst), p, n);
	free(p);
	return n;
}

static void test_damaged_scan(void **state)
{
	(void)state;
	/* a flip in the middle, and one in the first member's deflate header */
	size_t size = 0;
	uint8_t *p = read_file(tpath("g9.gz"), &size);
	free(p);
	size_t spots[] = { size / 2, size / 3, 40 };
	for (int k = 0; k < 3; k++) {
		copy_flipped("g9.gz", "bad.gz", spots[k], 0x55);
		img_err err;
		img_rsrc *r = NULL;
		int rebuilt = 0;
		int rc = open_decoded(tpath("bad.gz"), NULL, 0, &rebuilt, &err, &r);
		if (rc == IMG_OK) {
			rsrc_close(r);
			fail_msg("damage at compressed byte %zu: the scan did not notice", spots[k]);
		}
		assert_int_equal(rc, IMG_E_CORRUPT);
		assert_int_equal(err.code, IMG_E_CORRUPT);
		assert_non_null(strstr(err.msg, "bad.gz"));
		assert_non_null(strstr(err.msg, "byte "));
		assert_true(err.has_offset);
		print_message("# damage at %zu: %s\n", spots[k], err.msg);
	}
}

/*
 * Saved points of the good file, then the file damaged (same size): a read
 * that decodes the whole member from its start (gzip wrapper: CRC-32 and
 * length checked) must fail, and reads before the damage stay right.
 */
static void test_damaged_after_save(void **state)
{
	(void)state;
	size_t len = 0;
	uint8_t *s = saved_of("g9.gz", &len);
	size_t size = copy_flipped("g9.gz", "late.gz", 0, 0);
	size_t at = size * 3 / 4;
	copy_flipped("g9.gz", "late.gz", at, 0x55);
	int rebuilt = -1;
	img_rsrc *r = must_open("late.gz", s, len, &rebuilt);
	assert_int_equal(rebuilt, 0);
	uint8_t *buf = malloc(DATA_SIZE);
	assert_non_null(buf);
	img_err err;
	memset(&err, 0, sizeof err);
	size_t got = 0;
	int rc = rsrc_pread(r, buf, 1 << 20, 0, &got, &err);
	assert_int_equal(rc, IMG_OK);
	assert_int_equal(got, 1 << 20);
	assert_memory_equal(buf, data, 1 << 20);
	rsrc_close(r);
	r = must_open("late.gz", s, len, &rebuilt);
	memset(&err, 0, sizeof err);
	rc = rsrc_pread(r, buf, DATA_SIZE, 0, &got, &err);
	if (rc == IMG_OK && got == DATA_SIZE && memcmp(buf, data, DATA_SIZE) != 0)
		fail_msg("damage at compressed byte %zu: a read of everything returned wrong bytes, no error", at);
	if (rc == IMG_OK)
		fail_msg("damage at compressed byte %zu: a read of everything did not fail", at);
	print_message("# damaged after save: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "late.gz"));
	free(buf);
	rsrc_close(r);
	free(s);
}

static void test_truncated(void **state)
{
	(void)state;
	const char *names[] = { "g1.gz", "two.gz" };
	for (int k = 0; k < 2; k++) {
		size_t n = 0;
		uint8_t *p = read_file(tpath(names[k]), &n);
		size_t cuts[] = { n / 3, n - 1, n - 8, 5 };
		for (int c = 0; c < 4; c++) {
			write_file(tpath("cut.gz"), p, cuts[c]);
			img_err err;
			img_rsrc *r = NULL;
			int rebuilt = 0;
			int rc = open_decoded(tpath("cut.gz"), NULL, 0, &rebuilt, &err, &r);
			if (rc == IMG_OK) {
				rsrc_close(r);
				fail_msg("%s cut to %zu bytes: the scan did not notice", names[k], cuts[c]);
			}
			if (rc != IMG_E_TRUNCATED)
				fail_msg("%s cut to %zu bytes: status %d, want IMG_E_TRUNCATED: %s", names[k],
					 cuts[c], rc, err.msg);
			char want[64];
			snprintf(want, sizeof want, "byte %zu", cuts[c]);
			if (!strstr(err.msg, want) || !strstr(err.msg, "cut.gz") || !strstr(err.msg, "truncated"))
				fail_msg("%s cut to %zu bytes: the message does not name '%s', the file and "
					 "'truncated': %s", names[k], cuts[c], want, err.msg);
		}
		free(p);
	}
}

static void test_trailing_and_padding(void **state)
{
	(void)state;
	size_t n = 0;
	uint8_t *p = read_file(tpath("two.gz"), &n);
	uint8_t *q = malloc(n + 8192);
	assert_non_null(q);
	memcpy(q, p, n);
	/* zero padding (tape blocks, dd conv=sync): accepted */
	memset(q + n, 0, 8192);
	write_file(tpath("pad.gz"), q, n + 8192);
	int rebuilt = 0;
	img_rsrc *r = must_open("pad.gz", NULL, 0, &rebuilt);
	uint64_t hot[] = { MEMBER_SPLIT };
	assert_reads(r, "pad.gz", 5, 60, hot, 1);
	rsrc_close(r);
	/* garbage after the last member, after zeros, and a lone 0x1f */
	struct {
		size_t zeros;
		const char *tail;
		size_t tlen;
	} cases[] = { { 0, "garbage!", 8 }, { 100, "x", 1 }, { 0, "\x1f", 1 }, { 0, "\x1f\x8b", 2 } };
	for (int k = 0; k < 4; k++) {
		memset(q + n, 0, cases[k].zeros);
		memcpy(q + n + cases[k].zeros, cases[k].tail, cases[k].tlen);
		write_file(tpath("trail.gz"), q, n + cases[k].zeros + cases[k].tlen);
		img_err err;
		r = NULL;
		int rc = open_decoded(tpath("trail.gz"), NULL, 0, &rebuilt, &err, &r);
		if (rc == IMG_OK) {
			rsrc_close(r);
			fail_msg("trailing case %d: accepted", k);
		}
		print_message("# trailing case %d: %d %s\n", k, rc, err.msg);
		if (k < 2) {
			assert_int_equal(rc, IMG_E_TRAILING);
			char want[64];
			snprintf(want, sizeof want, "byte %zu", n + cases[k].zeros);
			if (!strstr(err.msg, want) || !strstr(err.msg, "trail.gz"))
				fail_msg("trailing case %d: message does not name '%s' and the file: %s", k, want,
					 err.msg);
		} else {
			/* the start of a member that ends at once */
			assert_true(rc == IMG_E_TRUNCATED || rc == IMG_E_TRAILING || rc == IMG_E_CORRUPT);
		}
	}
	free(q);
	free(p);
}

/* ---- threads ---------------------------------------------------------------------------- */

struct worker {
	img_rsrc *r;
	uint32_t seed;
	int bad;
	char why[400];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t hot[] = { MEMBER_SPLIT };
	w->bad = check_reads(w->r, w->seed, 150, hot, 1, w->why, sizeof w->why);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	const char *names[] = { "g9.gz", "two.gz" };
	for (int k = 0; k < 2; k++) {
		int rebuilt = 0;
		img_rsrc *r = must_open(names[k], NULL, 0, &rebuilt);
		struct worker w[4];
		pthread_t t[4];
		for (int i = 0; i < 4; i++) {
			memset(&w[i], 0, sizeof w[i]);
			w[i].r = r;
			w[i].seed = 1000 + 17 * (uint32_t)i + (uint32_t)k;
			assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
		}
		for (int i = 0; i < 4; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		for (int i = 0; i < 4; i++)
			if (w[i].bad)
				fail_msg("%s: thread %d: %d bad reads; first: %s", names[k], i, w[i].bad, w[i].why);
		rsrc_close(r);
	}
}

static int reset_span(void **state)
{
	(void)state;
	zs_set_first_span(0);
	return 0;
}

/* Many points in little data (a small first span): still right, saved and
 * reloaded. Points fall only at deflate block ends, and a block of zeros or
 * of a repeated pattern decodes to far more than 128 KiB: fewer than 160. */
static void test_small_span(void **state)
{
	(void)state;
	uint64_t sb = 0;
	size_t pts0 = count_points("two.gz", &sb);
	zs_set_first_span((uint64_t)128 << 10);
	size_t pts = count_points("two.gz", &sb);
	print_message("# two.gz with a 128 KiB span: %zu points (%zu with the default span)\n", pts, pts0);
	if (pts < 4 * pts0)
		fail_msg("%zu points with a 128 KiB span over 20 MiB, %zu with 4 MiB", pts, pts0);
	size_t len = 0;
	uint8_t *s = saved_of("two.gz", &len);
	zs_set_first_span(0);
	int rebuilt = -1;
	img_rsrc *r = must_open("two.gz", s, len, &rebuilt);
	assert_int_equal(rebuilt, 0);
	uint64_t hot[] = { MEMBER_SPLIT, (uint64_t)128 << 10, (uint64_t)256 << 10 };
	assert_reads(r, "two.gz (128 KiB span)", 33, 300, hot, 3);
	rsrc_close(r);
	free(s);
}

/* ---- the view's reads: each segment decoded once, decode-ahead ---------------------- */

#define VIEW_SPAN ((uint64_t)2 << 20)  /* gzip points every span / 2: segments of at least 1 MiB,
					 * so a 2 MiB range touches at most 3 */

static zs_view *view_of(const char *name, const uint8_t *saved, size_t saved_len, img_rsrc **raw,
			size_t *points)
{
	img_err err;
	memset(&err, 0, sizeof err);
	assert_int_equal(rsrc_open(tpath(name), &err, raw), IMG_OK);
	int rebuilt = 0;
	zs_view *v = NULL;
	if (zs_view_open(*raw, name, &zs_gzip_ops, saved, saved_len, NULL, NULL, &rebuilt, &err, &v) != IMG_OK)
		fail_msg("%s: zs_view_open failed: %s", name, err.msg);
	uint64_t sb = 0;
	zs_view_stats(v, points, &sb);
	return v;
}

static void view_done(zs_view *v, img_rsrc *raw)
{
	zs_view_close(v);
	rsrc_close(raw);
}

static uint64_t decodes_of(zs_view *v)
{
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	return c.segment_decodes;
}

struct range_reader {
	zs_view *v;
	pthread_barrier_t *go;
	uint64_t off;
	size_t len, chunk, first;  /* reads `chunk` bytes, starting at chunk number `first`, wrapping */
	int bad;
	char why[700];
};

/* Read [off, off + len) in chunks from chunk `first` on, wrapping; compare. */
static void *read_range(void *arg)
{
	struct range_reader *r = arg;
	uint8_t *buf = malloc(r->chunk);
	size_t nchunks = r->len / r->chunk;
	if (r->go)
		pthread_barrier_wait(r->go);
	for (size_t k = 0; buf && k < nchunks && !r->bad; k++) {
		uint64_t at = r->off + (uint64_t)((r->first + k) % nchunks) * r->chunk;
		size_t got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		int rc = zs_view_pread(r->v, buf, r->chunk, at, &got, &err);
		if (rc != IMG_OK || got != r->chunk || memcmp(buf, data + at, r->chunk) != 0) {
			r->bad = 1;
			snprintf(r->why, sizeof r->why, "read at %llu: rc %d, got %zu, %s",
				 (unsigned long long)at, rc, got, rc != IMG_OK ? err.msg : "wrong bytes");
		}
	}
	free(buf);
	return NULL;
}

/* Run r[0..n) each on a thread of its own, started together; fail with
 * the first one that read wrong. */
static void readers_at_once(struct range_reader *r, int n)
{
	pthread_barrier_t go;
	pthread_t t[16];
	assert_true(n <= 16);
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		r[i].go = &go;
		assert_int_equal(pthread_create(&t[i], NULL, read_range, &r[i]), 0);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < n; i++)
		if (r[i].bad)
			fail_msg("thread %d: %s", i, r[i].why);
}

/* Threads reading the same segments at once, in different orders, get the
 * right bytes and decode each segment once: as many decodes as one reader. */
static void test_concurrent_one_decode(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(0);  /* only the readers decode */
	const struct { uint64_t off; size_t len, chunk; } cases[] = {
		{ (uint64_t)10 << 20, 4096, 4096 },                /* one 4 KiB block, 8 readers */
		{ (uint64_t)3 << 20, (size_t)2 << 20, 65536 },     /* 2-3 segments, orders differ */
		{ DATA_SIZE - ((size_t)2 << 20), (size_t)2 << 20, 131072 },  /* up to the end */
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		img_rsrc *raw = NULL;
		size_t points = 0;
		zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
		struct range_reader one = { .v = v, .off = cases[k].off, .len = cases[k].len, .chunk = cases[k].chunk };
		read_range(&one);
		if (one.bad)
			fail_msg("one reader: %s", one.why);
		uint64_t want = decodes_of(v);
		view_done(v, raw);
		assert_true(want >= 1 && want <= 3);

		v = view_of("g1.gz", NULL, 0, &raw, &points);
		struct range_reader r[8];
		for (int i = 0; i < 8; i++) {
			r[i] = one;
			r[i].v = v;
			r[i].first = (size_t)i * 5;
		}
		print_message("# case %zu\n", k);
		readers_at_once(r, 8);
		uint64_t got = decodes_of(v);
		print_message("# case %zu: %llu segment decodes by 8 readers, %llu by one\n", k,
			      (unsigned long long)got, (unsigned long long)want);
		assert_int_equal(got, want);
		view_done(v, raw);
	}
}

/* Wait until the decode-ahead thread decoded at least one segment (10 s). */
static int ahead_seen(zs_view *v)
{
	struct zs_view_counts c;
	for (int i = 0; i < 1000; i++) {
		zs_view_counts(v, &c);
		if (c.ahead_decodes > 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* g1.gz in a view with VIEW_SPAN (8 segments or more) and decode-ahead on. */
static zs_view *ahead_view(img_rsrc **raw, size_t *points)
{
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(1);
	zs_view *v = view_of("g1.gz", NULL, 0, raw, points);
	assert_true(*points >= 8);
	return v;
}

/* Wait until the view decodes nothing more for 50 ms (the decode-ahead
 * threads did what the last read asked of them). */
static void settle(zs_view *v)
{
	uint64_t last = UINT64_MAX;
	for (int still = 0, i = 0; still < 5 && i < 1000; i++) {
		uint64_t now = decodes_of(v);
		still = now == last ? still + 1 : 0;
		last = now;
		usleep(10000);
	}
}

/* Reads stepping two segments at a time, each into a segment decoded ahead
 * two on: the two segments after it are missing at once, and the two
 * decode-ahead threads decode them side by side. @return 1 when two
 * decodes ran at once (a busy machine may leave a step's wait short, the
 * reads then decode a segment themselves: up to 5 steps). */
static int two_at_once(void)
{
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)3 << 20, .chunk = 131072 };
	read_range(&head);
	if (head.bad)
		fail_msg("%s", head.why);
	size_t b = 0;
	while (b + 1 < points && zs_view_point_at(v, b + 1) < head.len)
		b++;
	struct zs_view_counts c = { 0 };
	for (int step = 0; step < 5 && b + 4 < points && c.ahead_most < 2; step++, b += 2) {
		settle(v);  /* the two segments after the one the reads are in are held */
		struct range_reader jump = { .v = v, .off = zs_view_point_at(v, b + 2), .len = 131072,
					     .chunk = 131072 };
		read_range(&jump);
		if (jump.bad)
			fail_msg("%s", jump.why);
		settle(v);
		zs_view_counts(v, &c);
	}
	view_done(v, raw);
	return c.ahead_most == 2;
}

/* Sequential reads with decode-ahead: the right bytes, every segment
 * decoded once, some of them by the decode-ahead threads; and the two
 * threads decode side by side (one per core) where two segments ahead are
 * missing at once. */
static void test_sequential_ahead(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)3 << 20, .chunk = 131072 };
	read_range(&head);  /* crosses segment boundaries: the thread starts */
	if (head.bad)
		fail_msg("%s", head.why);
	if (!ahead_seen(v))
		fail_msg("sequential reads over 3 MiB: the decode-ahead thread decoded nothing in 10 s");
	struct range_reader rest = { .v = v, .off = head.len, .len = DATA_SIZE - head.len, .chunk = 131072 };
	read_range(&rest);
	if (rest.bad)
		fail_msg("%s", rest.why);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# %zu segments: %llu decodes, %llu of them ahead\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.ahead_decodes);
	assert_int_equal(c.segment_decodes, points);
	assert_true(c.ahead_decodes >= 1);
	view_done(v, raw);
	int ok = 0, tries = 0;
	while (!ok && tries < 4) {
		ok = two_at_once();
		tries++;
	}
	print_message("# two segments decoded ahead at once: %s (tries: %d)\n", ok ? "yes" : "no", tries);
	assert_true(ok);
}

/* Eight threads reading eight places at once, with decode-ahead on: the
 * right bytes, and never more than ZS_DECODES whole-segment decodes at
 * once (each holds a codec decoder and its window: the mount daemon's peak
 * memory), the cap reached. */
static void test_decodes_bounded(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader r[8];
	for (int i = 0; i < 8; i++)
		r[i] = (struct range_reader){ .v = v, .off = (uint64_t)i * (DATA_SIZE / 8), .len = (size_t)2 << 20,
					      .chunk = 65536 };
	readers_at_once(r, 8);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# 8 readers, %zu segments: %llu decodes, at most %llu at once (cap %d)\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.decodes_most, ZS_DECODES);
	assert_int_equal(c.decodes_most, ZS_DECODES);
	view_done(v, raw);
}

/* A byte flipped after indexing, read sequentially with decode-ahead on:
 * the reads in one run of at most 4 MiB fail (IMG_E_CORRUPT), every other
 * read before and after it gives the right bytes. */
static void test_damaged_ahead(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(1);
	img_rsrc *raw = NULL;
	size_t points = 0, slen = 0;
	zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
	uint8_t *saved = NULL;
	assert_int_equal(zs_view_save(v, &saved, &slen), IMG_OK);
	view_done(v, raw);
	size_t size = copy_flipped("g1.gz", "ahead-bad.gz", 0, 0);
	copy_flipped("g1.gz", "ahead-bad.gz", size / 2, 0x55);
	v = view_of("ahead-bad.gz", saved, slen, &raw, &points);
	const size_t chunk = 65536;
	uint8_t *buf = malloc(chunk);
	assert_non_null(buf);
	size_t first_bad = SIZE_MAX, last_bad = 0;
	for (size_t off = 0; off < DATA_SIZE; off += chunk) {
		size_t got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		int rc = zs_view_pread(v, buf, chunk, off, &got, &err);
		if (rc != IMG_OK) {
			assert_int_equal(rc, IMG_E_CORRUPT);
			assert_non_null(strstr(err.msg, "ahead-bad.gz"));
			if (first_bad == SIZE_MAX)
				print_message("# first failing read at %zu: %s\n", off, err.msg);
			if (first_bad != SIZE_MAX && last_bad + chunk != off)
				fail_msg("failing reads at %zu and %zu, good ones between", last_bad, off);
			first_bad = first_bad == SIZE_MAX ? off : first_bad;
			last_bad = off;
			continue;
		}
		if (got != chunk || memcmp(buf, data + off, chunk) != 0)
			fail_msg("read at %zu: %s", off, got != chunk ? "short" : "wrong bytes, no error");
	}
	if (first_bad == SIZE_MAX)
		fail_msg("a byte flipped at compressed %zu: no read failed", size / 2);
	print_message("# failing reads: decoded bytes %zu-%zu\n", first_bad, last_bad + chunk - 1);
	assert_true(last_bad + chunk - first_bad <= ((size_t)4 << 20));
	assert_true(last_bad + chunk < DATA_SIZE);  /* reads after the damaged span work */
	assert_true(ahead_seen(v));
	free(buf);
	free(saved);
	view_done(v, raw);
}

/* The decode-ahead thread and fork() (a mount daemon forks after its
 * image was read): fork while the thread runs; the child reads everything
 * right with a thread of its own (more ahead decodes), and so does the
 * parent after. A child that inherited a segment claimed by a thread it
 * does not have would wait forever: the alarm ends it. */
static void test_fork_ahead(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)4 << 20, .chunk = 131072 };
	read_range(&head);
	if (head.bad || !ahead_seen(v))
		fail_msg("before the fork: %s", head.bad ? head.why : "no decode-ahead");
	struct zs_view_counts before;
	zs_view_counts(v, &before);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(60);
		struct range_reader all = { .v = v, .off = 0, .len = DATA_SIZE, .chunk = 131072 };
		read_range(&all);
		struct zs_view_counts after;
		zs_view_counts(v, &after);
		if (all.bad)
			fprintf(stderr, "child: %s\n", all.why);
		_exit(all.bad ? 1 : after.ahead_decodes > before.ahead_decodes ? 0 : 2);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the forked child: %s %d (1: wrong bytes, 2: no decode-ahead of its own)",
			 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	struct range_reader rest = { .v = v, .off = head.len, .len = DATA_SIZE - head.len, .chunk = 131072 };
	read_range(&rest);
	if (rest.bad)
		fail_msg("parent after the fork: %s", rest.why);
	view_done(v, raw);
}

#define STRAGGLER ((uint64_t)5 << 19)  /* 2.5 MiB: two segments of g1.gz back (1.3 MiB each) */

/* Reads that come out of order, as a mount's do (the kernel's readahead
 * requests served by several threads): sequential reads, each followed by a
 * read STRAGGLER back (two segments behind) once the decode-ahead threads have
 * moved on. The segments just behind are kept while the threads decode
 * ahead, so every segment is decoded once. (Keeping only the segment the
 * reads are in and those ahead decoded the one two behind again.) */
static void test_stragglers_kept(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	const size_t chunk = (size_t)256 << 10;
	uint8_t *buf = malloc(chunk);
	assert_non_null(buf);
	for (uint64_t off = 0; off + chunk <= DATA_SIZE; off += chunk) {
		uint64_t at[2] = { off, off >= STRAGGLER ? off - STRAGGLER : off };
		for (int k = 0; k < 2; k++) {
			size_t got = 0;
			img_err err;
			memset(&err, 0, sizeof err);
			int rc = zs_view_pread(v, buf, chunk, at[k], &got, &err);
			if (rc != IMG_OK || got != chunk || memcmp(buf, data + at[k], chunk) != 0)
				fail_msg("read at %llu: rc %d, got %zu, %s", (unsigned long long)at[k], rc, got,
					 rc != IMG_OK ? err.msg : "wrong bytes");
			settle(v);
		}
	}
	free(buf);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# %zu segments: %llu decodes (%llu ahead)\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.ahead_decodes);
	assert_int_equal(c.segment_decodes, points);
	assert_true(c.ahead_decodes >= points / 2);
	view_done(v, raw);
}

/* zs_view_peek: the bytes of a range inside one held segment, in place (the
 * same as zs_view_pread's), the segment decoded once however often it is
 * looked at, and kept while it is looked at; NULL for a range that crosses
 * a segment's end or the end of the data. */
static void test_peek(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(0);
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
	img_err err;
	memset(&err, 0, sizeof err);
	const uint8_t *p = NULL;
	void *pin = NULL;
	uint64_t off = (uint64_t)5 << 20;
	assert_int_equal(zs_view_peek(v, 4096, off, &p, &pin, &err), IMG_OK);
	assert_non_null(p);
	assert_non_null(pin);
	assert_memory_equal(p, data + off, 4096);
	/* while it is pinned, reads of other places (more segments than the
	 * view has cursors) do not take its buffer */
	uint8_t *buf = malloc(65536);
	assert_non_null(buf);
	for (uint64_t at = 0; at < DATA_SIZE; at += (uint64_t)1 << 20) {
		size_t got = 0;
		assert_int_equal(zs_view_pread(v, buf, 65536, at, &got, &err), IMG_OK);
		assert_memory_equal(buf, data + at, got);
	}
	assert_memory_equal(p, data + off, 4096);
	uint64_t before = decodes_of(v);
	const uint8_t *q = NULL;
	void *pin2 = NULL;
	assert_int_equal(zs_view_peek(v, 8192, off + 4096, &q, &pin2, &err), IMG_OK);
	assert_ptr_equal(q, p + 4096);  /* the same held segment, looked at again */
	assert_int_equal(decodes_of(v), before);
	zs_view_unpeek(v, pin2);
	zs_view_unpeek(v, pin);
	free(buf);
	/* more than a segment, or past the end: not in one piece */
	assert_int_equal(zs_view_peek(v, (size_t)3 << 20, off, &p, &pin, &err), IMG_OK);
	assert_null(p);
	assert_null(pin);
	assert_int_equal(zs_view_peek(v, 8192, DATA_SIZE - 4096, &p, &pin, &err), IMG_OK);
	assert_null(p);
	view_done(v, raw);
}

static int reset_view(void **state)
{
	zs_set_decode_ahead(1);
	return reset_span(state);
}

int main(void)
{
	if (test_tmpdir_make(tmpdir, sizeof tmpdir, "zseek") != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip1),
		cmocka_unit_test(test_gzip9),
		cmocka_unit_test(test_pigz),
		cmocka_unit_test(test_two_members),
		cmocka_unit_test(test_saved_reopen),
		cmocka_unit_test(test_saved_damaged),
		cmocka_unit_test(test_saved_flips_report),
		cmocka_unit_test(test_damaged_scan),
		cmocka_unit_test(test_damaged_after_save),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_and_padding),
		cmocka_unit_test(test_threads),
		cmocka_unit_test_teardown(test_small_span, reset_span),
		cmocka_unit_test_teardown(test_concurrent_one_decode, reset_view),
		cmocka_unit_test_teardown(test_sequential_ahead, reset_view),
		cmocka_unit_test_teardown(test_decodes_bounded, reset_view),
		cmocka_unit_test_teardown(test_damaged_ahead, reset_view),
		cmocka_unit_test_teardown(test_fork_ahead, reset_view),
		cmocka_unit_test_teardown(test_stragglers_kept, reset_view),
		cmocka_unit_test_teardown(test_peek, reset_view),
	};
	int failed = cmocka_run_group_tests(tests, setup, NULL);
	free(data);
	return test_tmpdir_remove(tmpdir) == 0 ? failed : 1;
}

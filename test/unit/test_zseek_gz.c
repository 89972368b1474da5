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
 * reading one view at once.
 *
 * Not here: what the view's reads cost (each segment decoded once,
 * decode-ahead, peeks: test_zseek_view.c), the streaming gzip layer
 * (test_codecs.c), mounts (zmount.sh).
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
#include "helper_zdata.h"

#define DATA_SIZE ((size_t)20 << 20)
#define MEMBER_SPLIT ((size_t)9 * 1048576 + 12345)  /* first member of the two-member file */

static char tmpdir[64];
static uint8_t *data;  /* DATA_SIZE bytes, as written to data.bin */

static const char *tpath(const char *name)
{
	return test_tmpdir_path(tmpdir, name);
}

static uint32_t xs(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
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
	if (!(data = zdata_file(tpath("data.bin"), DATA_SIZE)))
		return -1;
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
	return zdata_copy_flipped(tpath(src), tpath(dst), at, xr);
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
	};
	int failed = cmocka_run_group_tests(tests, setup, NULL);
	free(data);
	return test_tmpdir_remove(tmpdir) == 0 ? failed : 1;
}

/*
 * test/unit/test_partclone_access.c - random reads (img_read_at, the mount)
 * of partclone images whose checksums run on from group to group (-K) and
 * of format 0001 images: a flipped data byte must give IMG_E_CHECKSUM for
 * its group, never its bytes, and the right bytes elsewhere; a damaged or
 * stale hash state in the index must fail a read, never pass a wrong one.
 * Also: an error already on a slot is never replaced (first error wins).
 *
 * Fixtures: the committed samples of test/data (XXH64/XXH128 -K, format
 * 0001; SAMPLES.md) and CRC32 -K images made here by partclone.imager.
 * Not here: the sequential walk (test_formats.c), reseeded groups
 * (test/integration/mount.sh, corrupt.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "formats/blkindex.h"
#include "formats/fmt.h"
#include "helper_tmpdir.h"
#include "io/zseek.h"

static char tmpdir[64];

/* ---- fixtures ------------------------------------------------------------ */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: cannot open", path);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void spill(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A copy of test/data/NAME in the scratch folder as OUT. */
static const char *copy_sample(const char *name, const char *out)
{
	static char path[700];
	const char *d = getenv("IMGBK_TEST_DATA");
	char src[600];
	snprintf(src, sizeof src, "%s/%s", d && *d ? d : "test/data", name);
	size_t len;
	uint8_t *b = slurp(src, &len);
	snprintf(path, sizeof path, "%s/%s", tmpdir, out);
	spill(path, b, len);
	free(b);
	return path;
}

/* A CRC32 image with running checksums (-K), `blocks` of 512 bytes of
 * pseudo-random data, bpc blocks per checksum, made by partclone.imager. */
static const char *make_crc_running(const char *out, unsigned blocks, unsigned bpc)
{
	static char path[700];
	char src[700], cmd[2400];
	snprintf(src, sizeof src, "%s/%s.src", tmpdir, out);
	snprintf(path, sizeof path, "%s/%s", tmpdir, out);
	size_t len = (size_t)blocks * 512;
	uint8_t *b = malloc(len);
	assert_non_null(b);
	uint32_t x = 88172645u ^ blocks;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	spill(src, b, len);
	free(b);
	snprintf(cmd, sizeof cmd, "partclone.imager -c -s '%s' -O '%s' -a1 -k%u -K -L '%s.log' "
		 ">/dev/null 2>&1", src, path, bpc, path);
	if (system(cmd) != 0)
		fail_msg("partclone.imager failed: %s (is partclone installed? test/deps.sh)", cmd);
	return path;
}

/* What a partclone image looks like, from its header fields. */
struct layout {
	uint64_t device_size, data_start, bpc, cs, used;
	uint32_t bs;
	int v1;
	uint64_t *block_of;  /* block number of every rank */
	uint8_t *dev;        /* the partition, from a sequential walk */
};

static uint64_t field(const img_field_list *fl, const char *key)
{
	for (size_t i = 0; i < fl->count; i++)
		if (fl->fields[i].key && strcmp(fl->fields[i].key, key) == 0)
			return fl->fields[i].number;
	fail_msg("no header field %s", key);
	return 0;
}

/* Walk a good image: its layout, the rank -> block map and the partition. */
static void walk(const char *path, struct layout *l)
{
	img_err err;
	img_image *im;
	if (img_open(path, NULL, &im, &err) != IMG_OK)
		fail_msg("%s", err.msg);
	const img_info *in = img_get_info(im);
	const img_field_list *fl = img_get_fields(im);
	memset(l, 0, sizeof *l);
	l->device_size = in->device_size;
	l->bs = in->block_size;
	l->used = in->used_blocks;
	l->v1 = strcmp(in->format_version, "1") == 0;
	l->data_start = field(fl, "blocks_section");
	l->bpc = field(fl, "checksum_blocks");
	l->cs = field(fl, "checksum_size");
	l->dev = calloc(1, l->device_size);
	l->block_of = calloc(l->used + 1, sizeof *l->block_of);
	assert_true(l->dev && l->block_of);
	img_run run;
	uint64_t r = 0;
	int rc;
	while ((rc = img_next_run(im, &run)) == IMG_OK) {
		memcpy(l->dev + run.offset, run.data, run.len);
		for (uint64_t i = 0; i < run.nblocks; i++)
			l->block_of[r++] = run.first_block + i;
	}
	assert_int_equal(rc, IMG_EOF);
	assert_int_equal(r, l->used);
	img_close(im);
}

static void layout_free(struct layout *l)
{
	free(l->dev);
	free(l->block_of);
}

/* Image offset of byte k of the block of rank r. */
static uint64_t data_at(const struct layout *l, uint64_t r, uint64_t k)
{
	if (l->v1)
		return l->data_start + r * (l->bs + l->cs) + k;
	return l->data_start + r * l->bs + r / l->bpc * l->cs + k;
}

/* Flip a byte of the file, keeping its times (so a saved index still fits). */
static void flip(const char *path, uint64_t at)
{
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, (off_t)at), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)at), 1);
	close(fd);
	struct timespec t[2] = { sb.st_atim, sb.st_mtim };
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static img_image *open_random(const char *path, const char *index, int save, int *state)
{
	img_err err;
	img_image *im;
	if (img_open(path, NULL, &im, &err) != IMG_OK)
		fail_msg("%s", err.msg);
	img_random_options o;
	img_random_options_init(&o);
	o.index_path = index;
	o.save = save;
	if (img_random_open(im, &o, state) != IMG_OK)
		fail_msg("%s: img_random_open: %s", path, img_error(im)->msg);
	return im;
}

/* Read the blocks of group g (a one-block group for format 0001).
 * @return the status; on IMG_OK the bytes must be the partition's. */
static int read_group(img_image *im, const struct layout *l, uint64_t g, img_err *e)
{
	uint64_t r0 = g * l->bpc, n = l->used - r0 < l->bpc ? l->used - r0 : l->bpc;
	int rc = IMG_OK;
	uint8_t *buf = malloc(l->bs);
	assert_non_null(buf);
	for (uint64_t r = r0; r < r0 + n && rc == IMG_OK; r++) {
		uint64_t off = l->block_of[r] * l->bs;
		size_t got = 0;
		rc = img_read_at(im, off, buf, l->bs, &got, e);
		if (rc == IMG_OK) {
			assert_int_equal(got, l->bs);
			if (memcmp(buf, l->dev + off, l->bs) != 0)
				fail_msg("group %llu: block %llu read wrong bytes as good",
					 (unsigned long long)g, (unsigned long long)l->block_of[r]);
		} else {
			assert_int_equal(rc, IMG_E_CHECKSUM);
		}
	}
	free(buf);
	return rc;
}

static uint64_t groups_of(const struct layout *l)
{
	return (l->used + l->bpc - 1) / l->bpc;
}

/* Every group reads right, except `bad` (and, when later_fail, those after
 * it: a running XXH checksum cannot be checked past a bad group) which
 * fail with IMG_E_CHECKSUM; groups visited from the last to the first when
 * backwards (no group's state comes from the one before). */
static void expect_groups(img_image *im, const struct layout *l, uint64_t bad, int later_fail,
			  int backwards)
{
	uint64_t n = groups_of(l);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t g = backwards ? n - 1 - i : i;
		img_err e;
		int rc = read_group(im, l, g, &e);
		int want_fail = g == bad || (later_fail && g > bad);
		if (want_fail && rc != IMG_E_CHECKSUM)
			fail_msg("group %llu (bad %llu) read without error", (unsigned long long)g,
				 (unsigned long long)bad);
		if (!want_fail && rc != IMG_OK)
			fail_msg("group %llu (bad %llu): %s", (unsigned long long)g,
				 (unsigned long long)bad, e.msg);
		if (g == bad) {
			char want[64];
			snprintf(want, sizeof want, "(checksum group %llu)", (unsigned long long)g);
			if (!strstr(e.msg, want) || !strstr(e.msg, "at byte"))
				fail_msg("message does not name group %llu: %s", (unsigned long long)g, e.msg);
		}
	}
}

/* ---- running CRC32 (-K) --------------------------------------------------- */

static void crc_running_case(const char *name, unsigned blocks, unsigned bpc, uint64_t bad_rank)
{
	const char *path = make_crc_running(name, blocks, bpc);
	struct layout l;
	walk(path, &l);
	assert_int_equal(l.cs, 4);
	img_image *im = open_random(path, NULL, 0, NULL);
	expect_groups(im, &l, UINT64_MAX, 0, 0);  /* the good image reads whole */
	img_close(im);
	flip(path, data_at(&l, bad_rank, 77));
	uint64_t bad = bad_rank / l.bpc;
	im = open_random(path, NULL, 0, NULL);
	expect_groups(im, &l, bad, 0, 0);
	img_close(im);
	im = open_random(path, NULL, 0, NULL);
	expect_groups(im, &l, bad, 0, 1);
	/* a read across the bad group fails as a whole */
	uint8_t *buf = malloc(3 * l.bpc * l.bs);
	size_t got;
	img_err e;
	assert_non_null(buf);
	assert_int_equal(img_read_at(im, (bad - 1) * l.bpc * l.bs, buf, 3 * l.bpc * l.bs, &got, &e),
			 IMG_E_CHECKSUM);
	free(buf);
	img_close(im);
	layout_free(&l);
}

static void test_crc_running(void **state)
{
	crc_running_case("crc_k7.pc", 600, 7, 100);
	/* groups of 4.5 MiB: checked in pieces, not through the group cache */
	crc_running_case("crc_k9000.pc", 20000, 9000, 9500);
}

/* The same image damaged before zstd compressed it (one frame, checkpoints
 * every 1 MiB): a group inside one decoded segment is checked where the
 * view holds it (no copy), one across two segments through a buffer; both
 * ways the bad group fails with IMG_E_CHECKSUM, every other reads right. */
static void test_crc_running_zstd(void **state)
{
	(void)state;
	const char *path = make_crc_running("crc_zst.pc", 20000, 100);
	struct layout l;
	walk(path, &l);
	uint64_t bad_rank = 12345;
	flip(path, data_at(&l, bad_rank, 9));
	char cmd[1600], zst[720];
	snprintf(zst, sizeof zst, "%s.zst", path);
	snprintf(cmd, sizeof cmd, "zstd -q -f -3 --single-thread '%s' -o '%s'", path, zst);
	assert_int_equal(system(cmd), 0);
	zs_set_first_span((uint64_t)1 << 20);
	img_image *im = open_random(zst, NULL, 0, NULL);
	zs_set_first_span(0);
	expect_groups(im, &l, bad_rank / l.bpc, 0, 0);
	img_close(im);
	im = open_random(zst, NULL, 0, NULL);
	expect_groups(im, &l, bad_rank / l.bpc, 0, 1);
	img_close(im);
	layout_free(&l);
}

/* The stored checksum of the group before is what the CRC goes on from:
 * damage to it fails both groups that depend on it, and no other. */
static void test_crc_running_damaged_checksum(void **state)
{
	const char *path = make_crc_running("crc_k7_sum.pc", 600, 7);
	struct layout l;
	walk(path, &l);
	flip(path, data_at(&l, 10 * l.bpc, 0) - 2);  /* inside checksum 9 */
	img_image *im = open_random(path, NULL, 0, NULL);
	img_err e;
	for (uint64_t g = 0; g < groups_of(&l); g++)
		assert_int_equal(read_group(im, &l, g, &e), g == 9 || g == 10 ? IMG_E_CHECKSUM : IMG_OK);
	img_close(im);
	layout_free(&l);
}

/* ---- running XXH64 / XXH128 (-K) ------------------------------------------- */

static const char *const xxh_samples[] = { "xxh64_ext2_1k_k7_noreseed.pc",
					   "xxh128_ext2_1k_k7_noreseed.pc" };

/* Index built on the damaged image: the groups before the bad one read,
 * the bad one and every later one fail (their checksums cover it). */
static void test_xxh_running_damaged(void **state)
{
	for (size_t i = 0; i < 2; i++) {
		const char *path = copy_sample(xxh_samples[i], "xxh.pc");
		struct layout l;
		walk(path, &l);
		flip(path, data_at(&l, 140, 500));  /* group 20 of 49 */
		img_image *im = open_random(path, NULL, 0, NULL);
		expect_groups(im, &l, 20, 1, 0);
		img_close(im);
		im = open_random(path, NULL, 0, NULL);
		expect_groups(im, &l, 20, 1, 1);
		img_close(im);
		layout_free(&l);
	}
}

/* A copy of sample as OUT, walked into l, its index saved to *idx. */
static const char *sample_with_index(const char *sample, const char *out, const char **idx,
				     struct layout *l)
{
	const char *path = copy_sample(sample, out);
	static char ipath[800];
	snprintf(ipath, sizeof ipath, "%s.ibkx", path);
	*idx = ipath;
	unlink(ipath);
	walk(path, l);
	int st = -1;
	img_close(open_random(path, ipath, 1, &st));
	assert_int_equal(st, 2);  /* built and saved */
	return path;
}

/* Index saved while the image was good, image damaged later (its times
 * kept, so the index still fits): the kept states let the groups after the
 * bad one be checked; only the bad one fails. */
static void test_xxh_running_index_from_before(void **state)
{
	for (size_t i = 0; i < 2; i++) {
		const char *idx;
		struct layout l;
		const char *path = sample_with_index(xxh_samples[i], "xxh_old.pc", &idx, &l);
		int st = -1;
		flip(path, data_at(&l, 140, 500));
		img_image *im = open_random(path, idx, 0, &st);
		assert_int_equal(st, 1);  /* loaded */
		expect_groups(im, &l, 20, 0, 1);
		img_close(im);
		layout_free(&l);
	}
}

/* Rewrite the index file's trailing XXH64, so a damaged payload passes as whole. */
static void reseal(uint8_t *b, size_t len)
{
	uint64_t h = XXH64(b, len - 8, 0);
	for (int i = 0; i < 8; i++)
		b[len - 8 + i] = (uint8_t)(h >> (8 * i));
}

/* A state of the index damaged (lanes, or a field out of range) with the
 * index's own checksum made to fit: reads that start from it fail, none
 * returns wrong bytes, and those that do not need it read right. */
static void test_xxh_running_forged_state(void **state)
{
	for (size_t i = 0; i < 2; i++) {
		for (int how = 0; how < 3; how++) {
			const char *idx;
			struct layout l;
			const char *path = sample_with_index(xxh_samples[i], "xxh_forged.pc", &idx, &l);
			int st = -1;
			size_t len;
			uint8_t *b = slurp(idx, &len);
			/* the states section ends the payload: "PCXS", size, every, count */
			uint8_t *x = NULL;
			for (size_t k = BLKINDEX_HEADER; k + 24 <= len - 8; k++)
				if (memcmp(b + k, "PCXS", 4) == 0)
					x = b + k;
			assert_non_null(x);
			size_t size = get_le32(x + 4);
			uint64_t every = get_le64(x + 8), count = get_le64(x + 16);
			assert_true(count >= 4 && every >= 1);
			uint8_t *s3 = x + 24 + 3 * size;
			if (how == 0)
				s3[30] ^= 1;  /* a lane */
			else if (how == 1)
				s3[size - 1] ^= 0x80;  /* the buffer's end */
			else
				memset(s3 + (size == 76 ? 72 : 16), 0x7f, 4);  /* bytes buffered: out of range */
			reseal(b, len);
			spill(idx, b, len);
			free(b);
			img_image *im = open_random(path, idx, 0, &st);
			assert_int_equal(st, 1);
			uint64_t n = groups_of(&l);
			for (uint64_t k = 0; k < n; k++) {
				uint64_t g = n - 1 - k;  /* backwards: each read starts at a state */
				img_err e;
				int rc = read_group(im, &l, g, &e);
				int uses = g / every == 3;
				if (how == 1 && uses && rc == IMG_OK)
					continue;  /* the buffer's tail may not count for the digest */
				if (rc != (uses ? IMG_E_CHECKSUM : IMG_OK))
					fail_msg("%s, damage %d: group %llu: %s", xxh_samples[i], how,
						 (unsigned long long)g, rc ? e.msg : "read");
				if (uses)
					assert_non_null(strstr(e.msg, "cannot be checked"));
			}
			img_close(im);
			layout_free(&l);
		}
	}
}

/* ---- format 0001 ------------------------------------------------------------ */

/* Its CRC covers the first byte of each block: a flipped first byte fails
 * that block; a flipped byte after it is covered by nothing. */
static void test_v0001(void **state)
{
	const char *samples[] = { "v0001_ext2_1k.pc", "v0001_fat16.pc" };
	for (size_t i = 0; i < 2; i++) {
		const char *path = copy_sample(samples[i], "v1.pc");
		struct layout l;
		walk(path, &l);
		assert_true(l.v1 && l.bpc == 1);
		img_image *im = open_random(path, NULL, 0, NULL);
		expect_groups(im, &l, UINT64_MAX, 0, 0);
		img_close(im);
		flip(path, data_at(&l, 50, 0));
		im = open_random(path, NULL, 0, NULL);
		expect_groups(im, &l, 50, 0, 0);
		img_close(im);
		flip(path, data_at(&l, 60, 9));
		im = open_random(path, NULL, 0, NULL);
		uint8_t *buf = malloc(l.bs);
		size_t got;
		img_err e;
		uint64_t off = l.block_of[60] * l.bs;
		assert_int_equal(img_read_at(im, off, buf, l.bs, &got, &e), IMG_OK);
		assert_int_equal(buf[9], l.dev[off + 9] ^ 0x5a);  /* not covered: handed out */
		free(buf);
		img_close(im);
		layout_free(&l);
	}
}

/* ---- many threads at once ------------------------------------------------------ */

struct reader {
	img_image *im;
	const struct layout *l;
	uint64_t bad;     /* the damaged group */
	int later_fail;   /* groups after it fail too (running XXH) */
	unsigned seed;
	int errors;       /* reads whose outcome was wrong */
};

static void *read_random_groups(void *arg)
{
	struct reader *r = arg;
	uint64_t n = groups_of(r->l);
	for (int i = 0; i < 300; i++) {
		r->seed = r->seed * 1103515245u + 12345u;
		uint64_t g = (r->seed >> 8) % n;
		img_err e;
		int rc = read_group(r->im, r->l, g, &e);
		int want = g == r->bad || (r->later_fail && g > r->bad) ? IMG_E_CHECKSUM : IMG_OK;
		r->errors += rc != want;
	}
	return NULL;
}

/* Four threads read groups at random from one open image (damaged at one
 * group): each read gives the right bytes or the group's error. */
static void threaded_case(const char *path, uint64_t bad_rank, int later_fail)
{
	struct layout l;
	walk(path, &l);
	flip(path, data_at(&l, bad_rank, 0));  /* format 0001 covers the first byte only */
	img_image *im = open_random(path, NULL, 0, NULL);
	struct reader r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){ im, &l, bad_rank / l.bpc, later_fail, 77u * (unsigned)i + 1, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, read_random_groups, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].errors, 0);
	}
	img_close(im);
	layout_free(&l);
}

static void test_threads(void **state)
{
	threaded_case(make_crc_running("crc_threads.pc", 600, 7), 200, 0);
	threaded_case(copy_sample(xxh_samples[0], "xxh_threads.pc"), 250, 1);
	threaded_case(copy_sample("v0001_fat16.pc", "v1_threads.pc"), 300, 0);
}

/* info says what a mounted read checks */
static void expect_read_check(const char *path, const char *needle)
{
	img_err err;
	img_image *im;
	if (img_open(path, NULL, &im, &err) != IMG_OK)
		fail_msg("%s", err.msg);
	const char *t = img_get_info(im)->read_check;
	if (!t || !strstr(t, needle))
		fail_msg("%s: read_check \"%s\" lacks \"%s\"", path, t ? t : "(null)", needle);
	img_close(im);
}

static void test_read_check_said(void **state)
{
	expect_read_check(make_crc_running("crc_said.pc", 100, 7), "continued from the checksum stored");
	expect_read_check(copy_sample("v0001_minix2.pc", "said1.pc"), "first byte of each block");
	expect_read_check(copy_sample(xxh_samples[1], "said2.pc"), "state kept in the index");
	expect_read_check(copy_sample("xxh64_fat16_k64.pc", "said3.pc"), "checksum of its group");
}

/* ---- first error wins -------------------------------------------------------- */

static void preset(img_err *e)
{
	memset(e, 0, sizeof *e);
	img_err_set(e, IMG_E_IO, 5, 0, 0, "the first error");
}

static void test_first_error_wins(void **state)
{
	const char *path = copy_sample("v0001_minix2.pc", "sticky.pc");
	img_image *im = open_random(path, NULL, 0, NULL);
	img_err e;
	preset(&e);
	assert_int_equal(fmt_fail_to(im, &e, IMG_E_CHECKSUM, 7, "a later one"), IMG_E_CHECKSUM);
	assert_int_equal(e.code, IMG_E_IO);
	assert_string_equal(e.msg, "the first error");
	uint8_t b[16];
	preset(&e);
	assert_int_equal(fmt_pread(im, b, sizeof b, 1u << 30, "past the end", &e), IMG_E_TRUNCATED);
	assert_int_equal(e.code, IMG_E_IO);
	assert_string_equal(e.msg, "the first error");
	img_close(im);

	/* partimage: a read of a truncated copy, through the format's read_at */
	size_t len;
	const char *d = getenv("IMGBK_TEST_DATA");
	char src[600];
	snprintf(src, sizeof src, "%s/partimage_ext2_stdout.pimg", d && *d ? d : "test/data");
	uint8_t *img = slurp(src, &len);
	char cut[700];
	snprintf(cut, sizeof cut, "%s/cut.pimg", tmpdir);
	spill(cut, img, len);
	free(img);
	im = open_random(cut, NULL, 0, NULL);
	uint64_t size = img_get_info(im)->device_size;
	assert_int_equal(truncate(cut, 100000), 0);
	uint8_t *buf = malloc(1 << 20);
	assert_non_null(buf);
	int rc = IMG_OK;
	for (uint64_t off = 0; off < size && rc == IMG_OK; off += 1 << 20) {
		preset(&e);
		size_t n = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
		rc = im->fmt->read_at(im, off, buf, n, &e);
	}
	assert_true(rc < 0);  /* the file shrank under the open image */
	assert_int_equal(e.code, IMG_E_IO);
	assert_string_equal(e.msg, "the first error");
	free(buf);
	img_close(im);
}

static int setup(void **state)
{
	return test_tmpdir_make(tmpdir, sizeof tmpdir, "pcacc");
}

static int teardown(void **state)
{
	return test_tmpdir_remove(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_running),
		cmocka_unit_test(test_crc_running_zstd),
		cmocka_unit_test(test_crc_running_damaged_checksum),
		cmocka_unit_test(test_xxh_running_damaged),
		cmocka_unit_test(test_xxh_running_index_from_before),
		cmocka_unit_test(test_xxh_running_forged_state),
		cmocka_unit_test(test_v0001),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_read_check_said),
		cmocka_unit_test(test_first_error_wins),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

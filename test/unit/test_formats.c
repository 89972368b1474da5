/*
 * test/unit/test_formats.c - unit tests of formats/: checksum vectors,
 * bitmap scanning, number formatting, and the partclone reader on the real
 * sample images in test/data (header facts, the block walk, and damaged
 * copies: header, bitmap, data, checksum, truncation, trailing bytes).
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

#include "formats/fmt.h"
#include "helper_tmpdir.h"

static const char *data_dir(void)
{
	const char *d = getenv("IMGBK_TEST_DATA");
	return d ? d : "test/data";
}

static uint8_t *load(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", data_dir(), name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len + 64);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

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

/* Restore `path` into memory (zeros where no block), @return status of the walk. */
static int walk_to_memory(const char *path, uint8_t **out, size_t *outlen, img_err *err,
			  uint64_t *bad_groups)
{
	img_image *im;
	int rc = img_open(path, NULL, &im, err);
	if (rc != IMG_OK)
		return rc;
	const img_info *in = img_get_info(im);
	uint8_t *dev = calloc(1, in->device_size);
	assert_non_null(dev);
	img_run run;
	uint64_t last_end = 0, blocks = 0;
	int saw_bad = 0;
	while ((rc = img_next_run(im, &run)) == IMG_OK || rc == IMG_E_CHECKSUM) {
		if (rc == IMG_E_CHECKSUM) {
			saw_bad = 1;  /* a group checked ahead is skipped, not handed out */
			continue;
		}
		assert_true(run.offset >= last_end);  /* ascending, no overlap */
		assert_int_equal(run.len, run.nblocks * in->block_size);
		assert_true(run.offset + run.len <= in->device_size);
		memcpy(dev + run.offset, run.data, run.len);
		last_end = run.offset + run.len;
		blocks += run.nblocks;
	}
	if (rc == IMG_EOF && !saw_bad)
		assert_int_equal(blocks, in->used_blocks);
	*err = *img_error(im);
	if (bad_groups)
		*bad_groups = img_bad_groups(im);
	*out = dev;
	*outlen = in->device_size;
	img_close(im);
	return rc == IMG_EOF && saw_bad ? IMG_E_CHECKSUM : rc;
}

/* ---- checksums ---------------------------------------------------------- */
static void test_crc_vectors(void **state)
{
	(void)state;
	assert_int_equal(crc32_partclone("123456789", 9), 0x340BC6D9u);
	assert_int_equal(crc32_fast(0, "123456789", 9), 0xCBF43926u);
	/* continuing in pieces equals one pass */
	uint32_t c = crc32_fast(0, "1234", 4);
	c = crc32_fast(c, "56789", 5);
	assert_int_equal(c, 0xCBF43926u);
	/* FORMATS.md 1.3: 2048 x 512 zero bytes -> stored 0x58C715E3 */
	uint8_t *z = calloc(1, 1 << 20);
	assert_int_equal(crc32_partclone(z, 1 << 20), 0x58C715E3u);
	img_hash h;
	assert_int_equal(hash_init(&h, HASH_CRC32), IMG_OK);
	for (int i = 0; i < 16; i++)
		hash_update(&h, z + i * 65536, 65536);
	uint8_t d[16];
	assert_int_equal(hash_digest(&h, d), 4);
	assert_memory_equal(d, "\xE3\x15\xC7\x58", 4);
	hash_free(&h);
	free(z);
}

static void test_xxh_vectors(void **state)
{
	(void)state;
	uint8_t zeros[1024] = { 0 }, d[16];
	img_hash h;
	assert_int_equal(hash_init(&h, HASH_XXH64), IMG_OK);
	hash_update(&h, zeros, sizeof zeros);
	assert_int_equal(hash_digest(&h, d), 8);
	/* samples/README: XXH64(1024 x 0) stored as cdac85f088287427 */
	assert_memory_equal(d, "\xcd\xac\x85\xf0\x88\x28\x74\x27", 8);
	hash_reset(&h);
	hash_update(&h, zeros, 512);
	hash_update(&h, zeros + 512, 512);
	uint8_t d2[16];
	hash_digest(&h, d2);
	assert_memory_equal(d, d2, 8);
	hash_free(&h);
	assert_int_equal(hash_init(&h, HASH_XXH128), IMG_OK);
	assert_int_equal(hash_size(HASH_XXH128), 16);
	hash_free(&h);
}

/* ---- bitmaps ------------------------------------------------------------ */
static uint64_t naive_next(const uint8_t *bm, uint64_t n, uint64_t from)
{
	for (uint64_t i = from; i < n; i++)
		if (bitmap_test(bm, i))
			return i;
	return n;
}

static void test_bitmap_scan(void **state)
{
	(void)state;
	uint8_t bm[300];
	srand(12345);  /* fixed seed: reproducible */
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof bm; i++)
			bm[i] = (uint8_t)(round % 3 == 0 ? rand() : (rand() % 4 ? 0xFF : 0x00));
		uint64_t nbits = 1 + (uint64_t)rand() % (sizeof bm * 8);
		uint64_t count = 0;
		for (uint64_t i = 0; i < nbits; i++)
			count += bitmap_test(bm, i);
		assert_int_equal(bitmap_count(bm, nbits), count);  /* padding bits ignored */
		for (uint64_t from = 0; from <= nbits; from += 1 + from % 13) {
			assert_int_equal(bitmap_next_set(bm, nbits, from), naive_next(bm, nbits, from));
			uint64_t run = 0;
			while (from + run < nbits && bitmap_test(bm, from + run))
				run++;
			assert_int_equal(bitmap_run(bm, nbits, from, UINT64_MAX), run);
			assert_int_equal(bitmap_run(bm, nbits, from, 5), run < 5 ? run : 5);
		}
	}
}

/* ---- formatting --------------------------------------------------------- */
static void test_number_format(void **state)
{
	(void)state;
	char b[64];
	img_fmt_thousands(b, sizeof b, 671088640);
	assert_string_equal(b, "671,088,640");
	img_fmt_thousands(b, sizeof b, 999);
	assert_string_equal(b, "999");
	img_fmt_thousands(b, sizeof b, 1000);
	assert_string_equal(b, "1,000");
	img_fmt_human(b, sizeof b, 671088640);
	assert_string_equal(b, "640.0 MB");
	img_fmt_human(b, sizeof b, (uint64_t)110829 * 4096);
	assert_string_equal(b, "432.9 MB");
	img_fmt_human(b, sizeof b, 20480);
	assert_string_equal(b, "20.0 KB");
	img_fmt_human(b, sizeof b, 512);  /* under 1 KiB: unit B, as imagebackup */
	assert_string_equal(b, "512 B");
	img_fmt_human(b, sizeof b, 1023);
	assert_string_equal(b, "1023 B");
	img_fmt_human(b, sizeof b, 1024);
	assert_string_equal(b, "1.0 KB");
	assert_int_equal(img_exit_code(IMG_E_CHECKSUM), 1);
	assert_int_equal(img_exit_code(IMG_E_IO), 3);
	assert_int_equal(img_exit_code(IMG_EOF), 0);
}

/* ---- partclone samples -------------------------------------------------- */
static void test_sample_headers(void **state)
{
	(void)state;
	static const struct { const char *file, *sum, *fs; uint32_t bs; uint64_t total, used; } s[] = {
		{ "xxh64_ext2_1k_k1.pc", "XXH64", "EXTFS", 1024, 8192, 339 },
		{ "xxh64_fat16_k64.pc", "XXH64", "FAT16", 512, 16384, 578 },
		{ "xxh128_ext2_1k_k100.pc", "XXH128", "EXTFS", 1024, 8192, 339 },
		{ "xxh128_fat16_default.pc", "XXH128", "FAT16", 512, 16384, 578 },
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", data_dir(), s[i].file);
		img_image *im;
		img_err err;
		assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
		const img_info *in = img_get_info(im);
		assert_string_equal(in->format, "partclone");
		assert_string_equal(in->checksum, s[i].sum);
		assert_string_equal(in->fs, s[i].fs);
		assert_int_equal(in->block_size, s[i].bs);
		assert_int_equal(in->total_blocks, s[i].total);
		assert_int_equal(in->used_blocks, s[i].used);
		assert_int_equal(in->device_size, 8388608);
		const img_field_list *fl = img_get_fields(im);
		assert_string_equal(fl->title, "Partclone Header");
		assert_string_equal(fl->fields[0].label, "partclone version");
		assert_string_equal(fl->fields[0].text, "0.3.47");
		img_close(im);
	}
}

/* All ext2 samples hold the same partition, whatever their checksum settings. */
static void test_sample_walks_agree(void **state)
{
	(void)state;
	static const char *const ext2[] = {
		"xxh64_ext2_1k_k1.pc", "xxh64_ext2_1k_k7_noreseed.pc", "xxh128_ext2_1k_k1.pc",
		"xxh128_ext2_1k_k7_noreseed.pc", "xxh128_ext2_1k_k100.pc",
	};
	uint8_t *first = NULL;
	size_t first_len = 0;
	for (size_t i = 0; i < sizeof ext2 / sizeof ext2[0]; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", data_dir(), ext2[i]);
		uint8_t *dev;
		size_t len;
		img_err err;
		assert_int_equal(walk_to_memory(path, &dev, &len, &err, NULL), IMG_EOF);
		if (!first) {
			first = dev;
			first_len = len;
			/* block 1 of an ext2 1 KiB fs holds the superblock magic at 56 */
			assert_int_equal(get_le16(dev + 1024 + 56), 0xEF53);
		} else {
			assert_int_equal(len, first_len);
			assert_memory_equal(dev, first, len);
			free(dev);
		}
	}
	free(first);
}

struct damage {
	const char *name;
	size_t offset;     /* byte to flip, or SIZE_MAX */
	long truncate_to;  /* -1 = keep */
	int append;        /* trailing bytes */
	int code;
	const char *words;
};

static void check_damage(const char *sample, const struct damage *d)
{
	size_t len;
	uint8_t *b = load(sample, &len);
	if (d->offset != SIZE_MAX)
		b[d->offset] ^= 0x10;
	size_t newlen = d->truncate_to >= 0 ? (size_t)d->truncate_to : len;
	if (d->append) {
		memcpy(b + len, "garbage!", 8);
		newlen = len + 8;
	}
	const char *path = save_tmp("damaged.pc", b, newlen);
	uint8_t *dev = NULL;
	size_t devlen;
	img_err err;
	int rc = walk_to_memory(path, &dev, &devlen, &err, NULL);
	if (rc != d->code)
		fail_msg("%s: expected %d, got %d (%s)", d->name, d->code, rc, err.msg);
	if (!strstr(err.msg, d->words))
		fail_msg("%s: message '%s' lacks '%s'", d->name, err.msg, d->words);
	assert_non_null(strstr(err.msg, "damaged.pc"));
	free(dev);
	free(b);
}

static void test_damaged_copies(void **state)
{
	(void)state;
	/* xxh64_ext2_1k_k1.pc: data at 1138, block 0 then its 8-byte checksum */
	static const struct damage cases[] = {
		{ "header byte", 40, -1, 0, IMG_E_CORRUPT, "header CRC" },
		{ "header CRC", 107, -1, 0, IMG_E_CORRUPT, "header CRC" },
		{ "bitmap byte", 300, -1, 0, IMG_E_CORRUPT, "bitmap CRC" },
		{ "bitmap CRC", 1135, -1, 0, IMG_E_CORRUPT, "bitmap CRC" },
		{ "data byte", 1138 + 100, -1, 0, IMG_E_CHECKSUM, "blocks 0-0" },
		{ "stored checksum", 1138 + 1024 + 3, -1, 0, IMG_E_CHECKSUM, "checksum mismatch" },
		{ "truncated in data", SIZE_MAX, 200000, 0, IMG_E_TRUNCATED, "truncated" },
		{ "truncated in bitmap", SIZE_MAX, 500, 0, IMG_E_TRUNCATED, "truncated" },
		{ "truncated header", SIZE_MAX, 60, 0, IMG_E_TRUNCATED, "truncated" },
		{ "trailing bytes", SIZE_MAX, -1, 1, IMG_E_TRAILING, "trailing" },
		{ "bad magic", 3, -1, 0, IMG_E_FORMAT, "not a supported" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_damage("xxh64_ext2_1k_k1.pc", &cases[i]);
}

/* Two bad groups with reseed: the walk goes on and counts both. */
static void test_bad_groups_counted(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = load("xxh64_fat16_k64.pc", &len);
	/* data at 2162; groups of 64 blocks x 512 bytes + 8-byte checksum */
	b[2162 + 10] ^= 1;
	b[2162 + 3 * (64 * 512 + 8) + 10] ^= 1;
	const char *path = save_tmp("twobad.pc", b, len);
	uint8_t *dev;
	size_t devlen;
	img_err err;
	uint64_t bad = 0;
	assert_int_equal(walk_to_memory(path, &dev, &devlen, &err, &bad), IMG_E_CHECKSUM);
	assert_int_equal(bad, 2);
	assert_non_null(strstr(err.msg, "blocks 192-255"));  /* the last bad group */
	free(dev);
	free(b);
}

/* A file that is no image says what it looks like. */
static void test_foreign_bytes(void **state)
{
	(void)state;
	uint8_t *ext = calloc(1, 4096);
	ext[1080] = 0x53;
	ext[1081] = 0xEF;
	const char *path = save_tmp("ext.raw", ext, 4096);
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_E_FORMAT);
	assert_non_null(strstr(err.msg, "ext2/3/4 filesystem"));
	free(ext);
}

int main(void)
{
	if (test_tmpdir_make(tmpdir, sizeof tmpdir, "unit") != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_vectors),
		cmocka_unit_test(test_xxh_vectors),
		cmocka_unit_test(test_bitmap_scan),
		cmocka_unit_test(test_number_format),
		cmocka_unit_test(test_sample_headers),
		cmocka_unit_test(test_sample_walks_agree),
		cmocka_unit_test(test_damaged_copies),
		cmocka_unit_test(test_bad_groups_counted),
		cmocka_unit_test(test_foreign_bytes),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	return test_tmpdir_remove(tmpdir) == 0 ? failed : 1;
}

/*
 * test/unit/test_raw.c - unit tests of raw partition images (formats/raw.c):
 * the file-name rule (fmt_raw_name), the choice between a magic and the
 * name (fmt_choose, --raw), what the bytes are said to look like
 * (fmt_content_of), and the walk over a memory source in odd read sizes,
 * whose runs must give back every byte.
 *
 * Not here: files, compression, split sets, mounts (test/integration/raw.sh
 * runs those with partclone.dd, dd and the real compressors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helper_memsrc.h"
#include "formats/fmt.h"

/* ---- the name rule ---------------------------------------------------------- */

static void t_name_says_raw(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"sda1.dd-img", "sda1.dd-ptcl-img", "sda3.dd-ptcl-img.zst.aa", "sda3.dd-ptcl-img.gz",
		"/srv/img/2024-01-01/nvme0n1p2.dd-ptcl-img.bz2.ab", "sda1.dd-img.aa", "sda1.dd-img.aaa",
		"x.dd-ptcl-img.xz", "x.dd-ptcl-img.lzma", "x.dd-ptcl-img.lz4", "x.dd-ptcl-img.lzo",
		"x.dd-ptcl-img.lz", "x.dd-ptcl-img.uncomp", "x.dd-ptcl-img.lzip.aa", "vg-lv.dd-img.gz.zz",
		"x.dd-img.gz.xz", "dir.with.dots/sdb2.dd-img",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (!fmt_raw_name(yes[i]))
			fail_msg("%s: should be a raw image name", yes[i]);
	}
}

static void t_name_not_raw(void **state)
{
	(void)state;
	static const char *const no[] = {
		"sda1.ext4-ptcl-img.gz.aa", "sda1.img", "sda1.dd", "dd-img", ".dd-img", "sda1.dd-img.gz.aa.ab",
		"sda1.dd-img.A", "sda1.dd-img.7z", "sda1.dd-img.aa.gz", "sda1.DD-IMG", "sda1-dd-img",
		"sda1.dd-imgx", "sda1.xdd-img", "x.dd-img/sda1", "x.dd-img/", "", "sda1.dd-img.000",
		"sda1.ntfs-img", "sda1.dd-img.a",
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (fmt_raw_name(no[i]))
			fail_msg("%s: should not be a raw image name", no[i]);
	}
}

/* ---- format choice and content ---------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A fake ext2/3/4 partition of n bytes (n >= 2048) whose superblock says it
 * holds a filesystem of fs_blocks 1 KiB blocks: random bytes, zeros before
 * and in the superblock, its magic, block count and block size. */
static uint8_t *fake_ext_fs(size_t n, unsigned seed, uint32_t fs_blocks)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	srand(seed);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rand();
	memset(p, 0, 2048);
	put_le32(p + 1024 + 4, fs_blocks);  /* s_blocks_count; s_log_block_size 0: 1 KiB */
	p[1080] = 0x53;
	p[1081] = 0xEF;
	return p;
}

static uint8_t *fake_ext(size_t n, unsigned seed)
{
	return fake_ext_fs(n, seed, (uint32_t)(n / 1024));
}

static void t_choose(void **state)
{
	(void)state;
	uint8_t *ext = fake_ext(4096, 1);
	assert_null(fmt_choose(ext, 4096, 0));
	assert_ptr_equal(fmt_choose(ext, 4096, 1), &fmt_raw);
	uint8_t pc[64] = "partclone-image\0" "0.3.23";
	memcpy(pc + 30, "0002", 4);
	assert_ptr_equal(fmt_choose(pc, sizeof pc, 1), &fmt_partclone);  /* the magic wins */
	assert_null(fmt_detect(ext, 4096));  /* raw is never detected by bytes */
	const struct fmt_content *c = fmt_content_of(ext, 4096);
	assert_string_equal(c->what, "an ext2/3/4 filesystem");
	assert_string_equal(c->fs, "EXTFS");
	assert_int_equal(c->compressed, 0);
	assert_int_equal(c->fs_size(ext, 4096), 4096);
	assert_int_equal(fmt_content_of((const uint8_t *)"\x89LZO\0\r\n\x1a\nxx", 11)->compressed, 1);
	assert_null(fmt_content_of((const uint8_t *)"\x01\x02\x03\xfe", 4)->fs);
	free(ext);
}

/* ---- the walk over a memory source ------------------------------------------- */

static int open_mem(const uint8_t *p, size_t n, size_t chunk, const char *name, int raw,
		    img_image **im, img_err *err)
{
	img_stream *src;
	assert_int_equal(memsrc_open(p, n, chunk, err, &src), IMG_OK);
	img_options o;
	img_options_init(&o);
	o.raw = raw;
	return img_open_source(src, name, &o, im, err);
}

static void walk_equals(size_t n, size_t chunk, const char *name, int raw)
{
	uint8_t *data = fake_ext(n, (unsigned)(n + chunk));
	img_image *im;
	img_err err;
	int rc = open_mem(data, n, chunk, name, raw, &im, &err);
	if (rc != IMG_OK)
		fail_msg("open: %s", err.msg);
	const img_info *in = img_get_info(im);
	assert_string_equal(in->format, "raw");
	assert_string_equal(in->fs, "EXTFS");
	assert_int_equal(in->has_checksums, 0);
	assert_int_equal(in->device_size, 0);  /* a stream: known only at its end */
	uint8_t *back = calloc(1, n);
	assert_non_null(back);
	img_run run;
	uint64_t next = 0;
	while ((rc = img_next_run(im, &run)) == IMG_OK) {
		assert_int_equal(run.offset, next);
		assert_int_equal(run.nblocks, run.len);
		assert_true(run.len > 0 && next + run.len <= n);
		memcpy(back + next, run.data, run.len);
		next += run.len;
		assert_int_equal(in->device_size, next);  /* at least what was handed out */
		assert_int_equal(in->total_blocks, next);
	}
	if (rc != IMG_EOF)
		fail_msg("walk: %s", img_error(im)->msg);
	assert_int_equal(next, n);
	assert_int_equal(img_blocks_done(im), n);
	assert_int_equal(in->device_size, n);  /* learnt at the end */
	assert_memory_equal(back, data, n);
	img_close(im);
	free(back);
	free(data);
}

static void t_walk_by_name(void **state)
{
	(void)state;
	walk_equals(70000, 7, "sdb1.dd-ptcl-img", 0);
	walk_equals((3 << 20) + 123, 4093, "sdb1.dd-img.aa", 0);
	walk_equals(2048, 0, "anything", 1);
}

/* A walk that ends before the end of the filesystem the superblock describes. */
static void t_shorter_than_fs(void **state)
{
	(void)state;
	uint8_t *data = fake_ext_fs(70000, 3, 100);  /* 100 KiB filesystem, 70000 bytes */
	img_image *im;
	img_err err;
	assert_int_equal(open_mem(data, 70000, 4093, "x.dd-img", 0, &im, &err), IMG_OK);
	img_run run;
	int rc;
	while ((rc = img_next_run(im, &run)) == IMG_OK)
		;
	assert_int_equal(rc, IMG_E_TRUNCATED);
	assert_non_null(strstr(img_error(im)->msg, "ends before the end of an ext2/3/4 filesystem"));
	assert_non_null(strstr(img_error(im)->msg, "102400 bytes"));
	assert_non_null(strstr(img_error(im)->msg, "at byte 70000"));
	img_close(im);
	free(data);
}

static void t_refusals(void **state)
{
	(void)state;
	uint8_t *ext = fake_ext(8192, 2);
	img_image *im = NULL;
	img_err err;
	/* no raw name, no --raw: refused, with the hint */
	assert_int_equal(open_mem(ext, 8192, 0, "sdb1.img", 0, &im, &err), IMG_E_FORMAT);
	assert_non_null(strstr(err.msg, "an ext2/3/4 filesystem, not a backup image"));
	assert_non_null(strstr(err.msg, "pass --raw"));
	/* --raw on a partclone image: refused (usage) */
	uint8_t pc[4096] = "partclone-image\0" "0.3.23";
	memcpy(pc + 30, "0002", 4);
	assert_int_equal(open_mem(pc, sizeof pc, 0, "p.img", 1, &im, &err), IMG_E_USAGE);
	assert_non_null(strstr(err.msg, "--raw given, but this is a partclone image"));
	/* a dd name on a damaged lzop header: decoded (io/lzop.c), refused as damaged,
	 * not taken for partition bytes */
	static const uint8_t lzo[64] = "\x89LZO\0\r\n\x1a\n";
	assert_int_equal(open_mem(lzo, sizeof lzo, 0, "sdb1.dd-ptcl-img.lzo", 0, &im, &err),
			 IMG_E_CORRUPT);
	assert_non_null(strstr(err.msg, "lzop: invalid compressed data at byte 0"));
	/* an empty raw image */
	assert_int_equal(open_mem(ext, 0, 0, "sdb1.dd-img", 0, &im, &err), IMG_E_FORMAT);
	assert_non_null(strstr(err.msg, "empty"));
	free(ext);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_name_says_raw),
		cmocka_unit_test(t_name_not_raw),
		cmocka_unit_test(t_choose),
		cmocka_unit_test(t_walk_by_name),
		cmocka_unit_test(t_shorter_than_fs),
		cmocka_unit_test(t_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test/unit/test_partimage.c - unit tests of the sequential partimage reader
 * (formats/partimage.c) on images built by the synthetic writer of
 * helper_partimage.c (FORMATS.md section 3), cut into volumes at chosen
 * logical offsets (mid-structure on purpose), each volume plain or gzip.
 *
 * The real partimage images of test/data (PARTIMAGE.md) are checked against
 * partimage's own restores. The synthetic images are damaged: data, CHK CRC,
 * CHK magic, header sums, bitmap, tail sum, truncation, trailing bytes,
 * wrong/missing/swapped/foreign volumes, hostile sizes, random byte flips.
 *
 * Random access is tested in test_partimage_access.c.
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
#include "formats/partimage_layout.h"
#include "helper_partimage.h"

/* ---- tests ------------------------------------------------------------------ */

static void test_single_volume_shapes(void **state)
{
	(void)state;
	static const struct { uint32_t bs; uint64_t total; int density; int mbrs; } shapes[] = {
		{ 1024, 3000, 60, 0 },   /* final partial chunk */
		{ 512, 4096, 100, 1 },   /* 2 MiB used: the last CHK right before the tail */
		{ 4096, 700, 50, 2 },
		{ 131072, 40, 50, 0 },   /* blocks straddle CHK records: side buffer */
		{ 65536, 30, 70, 0 },    /* one block per chunk */
		{ 1024, 100, 0, 0 },     /* nothing used */
	};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct pih_synth s = { .bs = shapes[i].bs, .total = shapes[i].total,
				   .density = shapes[i].density, .mbrs = shapes[i].mbrs, .fs = "ext2fs" };
		pih_synth_build(&s);
		pih_write_volumes(&s, "single", NULL, 0, 0, 0);
		pih_expect_good(&s, pih_tpath("single.000"));
		pih_write_volumes(&s, "stdout.pimg", NULL, 0, 0, 1);
		pih_expect_good(&s, pih_tpath("stdout.pimg"));
		pih_write_volumes(&s, "singlegz", NULL, 0, 1, 0);
		pih_expect_good(&s, pih_tpath("singlegz.000"));
		pih_synth_free(&s);
	}
}

static void test_info_fields(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 2000, .density = 50, .mbrs = 1, .fs = "ext2fs" };
	pih_synth_build(&s);
	pih_write_volumes(&s, "info", NULL, 0, 0, 0);
	img_image *im;
	img_err err;
	assert_int_equal(img_open(pih_tpath("info.000"), NULL, &im, &err), IMG_OK);
	const img_info *in = img_get_info(im);
	assert_string_equal(in->format, "partimage");
	assert_string_equal(in->fs, "ext2fs");
	assert_string_equal(in->checksum, "CRC32");
	assert_int_equal(in->has_checksums, 1);
	assert_int_equal(in->block_size, 1024);
	assert_int_equal(in->total_blocks, 2000);
	assert_int_equal(in->used_blocks, s.used);
	assert_int_equal(in->device_size, 2000 * 1024);
	const img_field_list *fl = img_get_fields(im);
	assert_string_equal(fl->title, "PartImage");
	int sections = 0, saw_ext2 = 0, saw_mbr = 0, saw_local = 0;
	for (size_t i = 0; i < fl->count; i++) {
		const img_field *f = &fl->fields[i];
		if (f->section) {
			sections++;
			saw_ext2 |= strcmp(f->label, "Ext2/3 Info Header") == 0;
			saw_mbr |= strcmp(f->label, "MBR Record 1") == 0;
			saw_local |= strcmp(f->label, "Local Header") == 0;
			continue;
		}
		if (strcmp(f->key, "ext2_uuid") == 0)
			assert_string_equal(f->text, "A8A9AAAB-ACAD-AEAF-B0B1-B2B3B4B5B6B7");
		if (strcmp(f->key, "used_blocks") == 0)
			assert_int_equal(f->number, s.used);
		/* keys are unique (JSON) */
		for (size_t j = 0; j < i; j++)
			if (!fl->fields[j].section)
				assert_string_not_equal(fl->fields[j].key, f->key);
	}
	assert_true(saw_ext2 && saw_mbr && saw_local);
	assert_int_equal(sections, 5);  /* Volume, Main, MBR Record 1, Local, Ext2/3 Info */
	img_close(im);
	pih_synth_free(&s);
}

/* Text fields longer than any fixed buffer: a description of 4096 bytes and a
 * first path of 4095 (their whole fields, no NUL) print whole, in quotes;
 * UTF-8 stays, a control character and a stray byte show '?'. */
static const img_field *field_by_key(const img_field_list *fl, const char *key)
{
	for (size_t i = 0; i < fl->count; i++)
		if (!fl->fields[i].section && strcmp(fl->fields[i].key, key) == 0)
			return &fl->fields[i];
	fail_msg("no field %s", key);
	return NULL;
}

static void test_info_long_texts(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 200, .density = 50, .fs = "ext2fs" };
	pih_synth_build(&s);
	uint8_t *h = s.img.p;  /* the main header */
	memset(h + 512, 'd', 4096);
	memcpy(h + 512, "caf\xc3\xa9\x01\xff", 7);
	memset(h + 5120, 'p', 4095);
	pih_set_le32(h + HS, pih_ssum(h, HS));
	pih_write_volumes(&s, "long", NULL, 0, 0, 0);
	img_image *im;
	img_err err;
	assert_int_equal(img_open(pih_tpath("long.000"), NULL, &im, &err), IMG_OK);
	const img_field_list *fl = img_get_fields(im);
	const img_field *d = field_by_key(fl, "description");
	const img_field *p = field_by_key(fl, "original_filepath");
	assert_int_equal(strlen(d->text), 4096 + 2);  /* each byte kept or replaced by one '?' */
	assert_memory_equal(d->text, "\"caf\xc3\xa9??ddd", 11);
	assert_int_equal(d->text[strlen(d->text) - 1], '"');
	assert_int_equal(strlen(d->str), 4096);
	assert_int_equal(strlen(p->text), 4095 + 2);
	assert_int_equal(p->text[0], '"');
	assert_int_equal(strlen(p->str), 4095);
	img_close(im);
	pih_synth_free(&s);
}

/* The info header each filesystem name gets, as imagebackup picks it: its
 * title, how many members the tools' layout shows, the first and last label,
 * and the first member's value (the synthetic block has 2 in its first u32). */
static void test_info_headers_per_fs(void **state)
{
	(void)state;
	static const struct {
		const char *fs, *title;
		size_t members;
		const char *first, *last, *first_text;
	} t[] = {
		{ "ext3fs", "Ext2/3 Info Header", 13, "groupsCount", "descPerBlock", "2" },
		{ "fat32", "FAT Info Header", 17, "totalSectorsCount", "fsInfoSector", "2" },
		{ "ntfs", "NTFS Info Header", 7, "totalSectorsCount", "sectorsPerCluster", "2" },
		{ "reiserfs-3.6", "ReiserFS Info Header", 2, "version", "bitmapBlocksCount", "2" },
		{ "hpfs", "HPFS Info Header", 3, "bitmapPointer", "hpfsVersion", "2" },
		{ "jfs", "JFS Info Header", 3, "officialBlocksCount", "allocTreeMaxLevel", "2" },
		{ "xfs", "XFS Info Header", 2, "AgCount", "AgBlocksCount", "2" },
		{ "hfs", "HFS Info Header", 6, "allocCount", "blocksPerAlloc", "2" },
		{ "afs", "AFS Info Header", 8, "byteOrder", "bitmapStart", "2" },
		{ "befs", "BEFS Info Header", 8, "byteOrder", "bitmapStart", "2" },
		{ "ufs", "UFS Info Header", 9, "cylinderGroupsCount", "dataFrags", "2" },
		{ "btrfs", "Info Header", 0, NULL, NULL, NULL },
	};
	for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
		struct pih_synth s = { .bs = 1024, .total = 200, .density = 50, .fs = t[k].fs };
		pih_synth_build(&s);
		pih_write_volumes(&s, "fsinfo", NULL, 0, 0, 0);
		img_image *im;
		img_err err;
		assert_int_equal(img_open(pih_tpath("fsinfo.000"), NULL, &im, &err), IMG_OK);
		const img_field_list *fl = img_get_fields(im);
		size_t i = fl->count;
		while (i > 0 && !fl->fields[i - 1].section)
			i--;
		assert_true(i > 0);
		assert_string_equal(fl->fields[i - 1].label, t[k].title);
		const img_field *first = NULL, *last = NULL;
		size_t shown = 0;
		for (; i < fl->count; i++) {
			if (fl->fields[i].level != IMG_FIELD_TOOL)
				continue;
			shown++;
			last = &fl->fields[i];
			if (!first)
				first = last;
		}
		assert_int_equal(shown, t[k].members);
		if (t[k].members) {
			assert_string_equal(first->label, t[k].first);
			assert_string_equal(first->text, t[k].first_text);
			assert_string_equal(last->label, t[k].last);
		}
		img_close(im);
		pih_synth_free(&s);
	}
}

static void test_multi_volume_cuts(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t d = s.data_start;
	size_t cuts[] = {
		100,                          /* inside the main header */
		HS + 2,                       /* inside the main header's sum */
		s.local_at + 10,              /* local header */
		s.bitmap_at + 7,              /* bitmap */
		s.info_at + HS + 1,           /* info sum */
		d + CHUNK + 5,                /* inside a CHK record */
		d + 2 * (CHUNK + 16),         /* right after a CHK record */
		d + 3 * (CHUNK + 16) + 1000,  /* mid data */
		d + 3 * (CHUNK + 16) + 1000,  /* an empty volume */
		s.tail_magic_at + 7,          /* inside the TAIL magic */
		s.tail_magic_at + 16 + 100,   /* inside the tail */
	};
	size_t n = sizeof cuts / sizeof cuts[0];
	pih_write_volumes(&s, "multi", cuts, n, 0, 0);
	pih_expect_good(&s, pih_tpath("multi.000"));
	pih_write_volumes(&s, "multigz", cuts, n, 0x5A5, 0);  /* some volumes gzip, some plain */
	pih_largest_batch = 0;
	pih_expect_good(&s, pih_tpath("multigz.000"));
	assert_true(pih_largest_batch > 8);  /* batches do span several chunks */
	/* verify off walks the same */
	struct pih_walk w;
	pih_walk(pih_tpath("multigz.000"), 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_memory_equal(w.dev, s.dev, w.devlen);
	pih_walk_free(&w);
	/* big blocks split across volumes */
	struct pih_synth b = { .bs = 262144, .total = 30, .density = 60, .fs = "ntfs" };
	pih_synth_build(&b);
	size_t bcuts[] = { b.data_start + 70000, b.data_start + 300000 };
	pih_write_volumes(&b, "bigmulti", bcuts, 2, 2, 0);
	pih_expect_good(&b, pih_tpath("bigmulti.000"));
	pih_synth_free(&b);
	pih_synth_free(&s);
}

static void test_volume_set_errors(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	char a[256], b[256];
	/* missing .001 */
	pih_write_volumes(&s, "miss", cuts, 3, 0, 0);
	unlink(pih_tpath("miss.001"));
	pih_expect_fail(pih_tpath("miss.000"), IMG_E_MISSING, "miss.001");
	/* missing last volume */
	pih_write_volumes(&s, "misslast", cuts, 3, 0, 0);
	unlink(pih_tpath("misslast.003"));
	pih_expect_fail(pih_tpath("misslast.000"), IMG_E_MISSING, "misslast.003");
	/* swapped .001 / .002 */
	pih_write_volumes(&s, "swap", cuts, 3, 0, 0);
	snprintf(a, sizeof a, "%s", pih_tpath("swap.001"));
	snprintf(b, sizeof b, "%s", pih_tpath("swap.002"));
	assert_int_equal(rename(a, pih_tpath("swap.tmp")), 0);
	assert_int_equal(rename(b, a), 0);
	assert_int_equal(rename(pih_tpath("swap.tmp"), b), 0);
	pih_expect_fail(pih_tpath("swap.000"), IMG_E_CORRUPT, "swap.001");
	/* a volume of another image (other identificator) */
	pih_write_volumes(&s, "foreign", cuts, 3, 0, 0);
	{
		uint8_t *f = malloc(VH + (cuts[2] - cuts[1]));
		pih_volume_header(f, 2, IDENT ^ 1);
		memcpy(f + VH, s.img.p + cuts[1], cuts[2] - cuts[1]);
		pih_write_file(pih_tpath("foreign.002"), f, VH + (cuts[2] - cuts[1]), 0);
		free(f);
	}
	pih_expect_fail(pih_tpath("foreign.000"), IMG_E_CORRUPT, "another image");
	/* a file that is not a volume at all */
	pih_write_volumes(&s, "junk", cuts, 3, 0, 0);
	pih_write_file(pih_tpath("junk.001"), (const uint8_t *)"hello world, not a volume", 25, 0);
	pih_expect_fail(pih_tpath("junk.001"), IMG_E_FORMAT, NULL);  /* opened directly: no format */
	pih_expect_fail(pih_tpath("junk.000"), IMG_E_TRUNCATED, "junk.001");
	/* opening a later volume directly */
	pih_write_volumes(&s, "later", cuts, 3, 0, 0);
	pih_expect_fail(pih_tpath("later.002"), IMG_E_CORRUPT, "volume 2");
	/* truncated last volume: the next one is missing */
	pih_write_volumes(&s, "trunc", cuts, 3, 0, 0);
	assert_int_equal(truncate(pih_tpath("trunc.003"), 5000), 0);
	pih_expect_fail(pih_tpath("trunc.000"), IMG_E_MISSING, "trunc.004");
	/* truncated gzip volume in the middle */
	pih_write_volumes(&s, "truncgz", cuts, 3, 0x2, 0);
	assert_int_equal(truncate(pih_tpath("truncgz.001"), 3000), 0);
	struct pih_walk w;
	pih_walk(pih_tpath("truncgz.000"), 1, &w);
	assert_true(w.rc < 0 && w.rc != IMG_E_CHECKSUM);
	assert_non_null(strstr(w.err.msg, "truncgz.001"));
	pih_walk_free(&w);
	/* the tail names the wrong last volume */
	pih_write_volumes(&s, "lastno", cuts, 3, 0, 0);
	pih_synth_seal(&s, 7);
	{
		size_t len = s.img.len - cuts[2];
		uint8_t *f = malloc(VH + len);
		pih_volume_header(f, 3, IDENT);
		memcpy(f + VH, s.img.p + cuts[2], len);
		pih_write_file(pih_tpath("lastno.003"), f, VH + len, 0);
		free(f);
	}
	pih_expect_fail(pih_tpath("lastno.000"), IMG_E_CORRUPT, "last volume");
	pih_synth_free(&s);
}

static void test_damage(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 3000, .density = 70, .mbrs = 1, .fs = "ext2fs" };
	pih_synth_build(&s);
	size_t d = s.data_start;
	pih_expect_good(&s, pih_damaged(&s, "ok.pimg", 0, 0));
	/* a data byte in the second chunk: that chunk is skipped, the walk goes on */
	struct pih_walk w;
	for (pih_walk_batches = 0; pih_walk_batches < 2; pih_walk_batches++) {
		pih_walk(pih_damaged(&s, "data.pimg", d + CHUNK + 16 + 100, 0x01), 1, &w);
		assert_int_equal(w.checksum_errors, 1);
		assert_int_equal(w.bad_groups, 1);
		assert_int_equal(w.rc, IMG_EOF);  /* the tail sum is not reported again */
		assert_non_null(strstr(w.err.msg, "CHK record 1"));
		assert_non_null(strstr(w.err.msg, "data.pimg"));
		assert_int_equal(w.blocks, s.used - 64);
		/* every other block restored */
		pih_walk_free(&w);
	}
	pih_walk_batches = 0;
	/* the CRC of a CHK record */
	pih_expect_fail(pih_damaged(&s, "chkcrc.pimg", d + CHUNK + 5, 0x80), IMG_E_CHECKSUM, "CHK record 0");
	/* the magic of a CHK record: structure lost */
	pih_expect_fail(pih_damaged(&s, "chkmagic.pimg", d + CHUNK + 1, 0x20), IMG_E_CORRUPT,
			"CHK record 0 expected after 65536 data bytes");
	/* qwPos is advisory (covered by the tail sum) */
	pih_expect_fail(pih_damaged(&s, "qwpos.pimg", d + CHUNK + 9, 0x01), IMG_E_CHECKSUM, "tail checksum");
	/* the final partial chunk (no CHK record): caught ahead through the tail sum */
	size_t last = s.tail_magic_at - 10;
	pih_walk(pih_damaged(&s, "final.pimg", last, 0x04), 1, &w);
	assert_int_equal(w.checksum_errors, 1);
	assert_non_null(strstr(w.err.msg, "tail checksum"));
	pih_walk_free(&w);
	/* the tail's stored sum */
	pih_expect_fail(pih_damaged(&s, "tailsum.pimg", s.tail_magic_at + 16, 0x01), IMG_E_CHECKSUM, "tail");
	/* the TAIL magic */
	pih_expect_fail(pih_damaged(&s, "tailmagic.pimg", s.tail_magic_at + 3, 0x01), IMG_E_CORRUPT,
			"MAGIC-BEGIN-TAIL");
	/* header sums */
	pih_expect_fail(pih_damaged(&s, "main.pimg", 600, 0x01), IMG_E_CORRUPT, "main header byte sum");
	pih_expect_fail(pih_damaged(&s, "mainsum.pimg", HS, 0x01), IMG_E_CORRUPT, "main header byte sum");
	pih_expect_fail(pih_damaged(&s, "mbr.pimg", HS + 4 + 21 + 7, 0x01), IMG_E_CORRUPT, "MBR record");
	pih_expect_fail(pih_damaged(&s, "local.pimg", s.local_at + 200, 0x01), IMG_E_CORRUPT,
			"local header");
	pih_expect_fail(pih_damaged(&s, "info.pimg", s.info_at + 5000, 0x01), IMG_E_CORRUPT,
			"filesystem info block");
	/* magics */
	pih_expect_fail(pih_damaged(&s, "mbrmagic.pimg", HS + 4 + 3, 0x01), IMG_E_CORRUPT, "MBRBACKUP");
	pih_expect_fail(pih_damaged(&s, "ext.pimg", s.local_at - 23 - 5, 0x01), IMG_E_CORRUPT, "EXT009");
	pih_expect_fail(pih_damaged(&s, "datamagic.pimg", d - 2, 0x01), IMG_E_CORRUPT, "DATABLOCKS");
	/* a bitmap bit: the count no longer matches */
	pih_expect_fail(pih_damaged(&s, "bitmap.pimg", s.bitmap_at + 3, 0x01), IMG_E_CORRUPT,
			"bitmap marks");
	/* the volume header */
	{
		pih_synth_seal(&s, 0);
		uint8_t *f = malloc(VH + s.img.len);
		pih_volume_header(f, 0, IDENT);
		memcpy(f + 32, "0.5.9", 5);
		memcpy(f + VH, s.img.p, s.img.len);
		pih_write_file(pih_tpath("vver.pimg"), f, VH + s.img.len, 0);
		pih_expect_fail(pih_tpath("vver.pimg"), IMG_E_FORMAT, "0.5.9");
		/* trailing bytes after the tail */
		FILE *t = fopen(pih_tpath("trail.pimg"), "wb");
		pih_volume_header(f, 0, IDENT);
		fwrite(f, 1, VH + s.img.len, t);
		fwrite("extra", 1, 5, t);
		fclose(t);
		pih_expect_fail(pih_tpath("trail.pimg"), IMG_E_TRAILING, "trailing");
		/* truncated single stream */
		pih_write_file(pih_tpath("short.pimg"), f, VH + s.img.len - 100, 0);
		pih_expect_fail(pih_tpath("short.pimg"), IMG_E_TRUNCATED, "truncated");
		pih_write_file(pih_tpath("short2.pimg"), f, VH + d + 5000, 0);
		pih_expect_fail(pih_tpath("short2.pimg"), IMG_E_TRUNCATED, "short2.pimg");
		pih_write_file(pih_tpath("short3.pimg"), f, 300, 0);
		pih_expect_fail(pih_tpath("short3.pimg"), IMG_E_TRUNCATED, NULL);
		free(f);
	}
	/* verify off: a bad data chunk goes through */
	pih_walk(pih_damaged(&s, "noverify.pimg", d + 100, 0x01), 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.checksum_errors, 0);
	pih_walk_free(&w);
	pih_synth_free(&s);
}

/* Sums stored with the unsigned rule (char unsigned on the creator) are accepted. */
static void test_unsigned_sums(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 500, .density = 50, .fs = "fat32" };
	pih_synth_build(&s);
	uint64_t u = 0;
	for (size_t i = 0; i < HS; i++)
		u += s.img.p[i];
	pih_set_le32(s.img.p + HS, (uint32_t)u);
	pih_write_volumes(&s, "unsig", NULL, 0, 0, 0);
	pih_expect_good(&s, pih_tpath("unsig.000"));
	img_image *im;
	img_err err;
	assert_int_equal(img_open(pih_tpath("unsig.000"), NULL, &im, &err), IMG_OK);
	const img_field_list *fl = img_get_fields(im);
	int seen = 0, fat = 0;
	for (size_t i = 0; i < fl->count; i++) {
		seen |= !fl->fields[i].section && strcmp(fl->fields[i].key, "header_sums") == 0 &&
			fl->fields[i].level == IMG_FIELD_VERBOSE;  /* not in the tools' layout */
		fat |= fl->fields[i].section && strcmp(fl->fields[i].label, "FAT Info Header") == 0;
	}
	assert_true(seen && fat);
	img_close(im);
	pih_synth_free(&s);
}

/* The byte sum of the tail's qwCRC (AVX2, SSE2 and byte paths) equals a
 * plain loop at every length and alignment around their steps, high bytes
 * included (an unsigned sum, no sign extension). */
static void test_byte_sum_paths(void **state)
{
	(void)state;
	enum { N = 4096 + 200 };
	static uint8_t buf[N];
	for (size_t i = 0; i < N; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 11);
	memset(buf + 1000, 0xFF, 300);  /* a long run of the largest byte */
	static const size_t lens[] = { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 1000, 4096, 4096 + 127 };
	for (size_t a = 0; a < 40; a++) {
		for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
			uint64_t want = 0;
			for (size_t i = 0; i < lens[k]; i++)
				want += buf[a + i];
			assert_true(pi_byte_sum(buf + a, lens[k]) == want);
		}
	}
	memset(buf, 0xFF, N);
	assert_true(pi_byte_sum(buf, N) == (uint64_t)N * 255);
}

/* Set a u64 of the local header (and fix its sum) and expect open to fail. */
static void hostile_local(struct pih_synth *s, const char *name, size_t field, uint64_t v)
{
	uint8_t save[HS + 4];
	memcpy(save, s->img.p + s->local_at, sizeof save);
	pih_set_le64(s->img.p + s->local_at + field, v);
	pih_set_le32(s->img.p + s->local_at + HS, pih_ssum(s->img.p + s->local_at, HS));
	pih_write_volumes(s, name, NULL, 0, 0, 0);
	struct pih_walk w;
	char file[64];
	snprintf(file, sizeof file, "%s.000", name);
	pih_walk(pih_tpath(file), 1, &w);
	assert_int_equal(w.open_rc, IMG_E_CORRUPT);
	pih_walk_free(&w);
	memcpy(s->img.p + s->local_at, save, sizeof save);
}

static void test_hostile_sizes(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 1024, .total = 800, .density = 50, .fs = "ext2fs" };
	pih_synth_build(&s);
	hostile_local(&s, "bs0", 0, 0);
	hostile_local(&s, "bs3", 0, 3000);
	hostile_local(&s, "bshuge", 0, (uint64_t)1 << 40);
	hostile_local(&s, "used", 8, 801);
	hostile_local(&s, "total", 16, UINT64_MAX / 2);
	hostile_local(&s, "bm", 24, (uint64_t)1 << 50);
	hostile_local(&s, "bm2", 24, (uint64_t)1 << 29);
	/* bitmap smaller than the block count: blocks past it count as free */
	pih_synth_free(&s);
}

/* Random damage anywhere: no crash, no hang, and never a clean EOF with wrong data. */
static void test_random_flips(void **state)
{
	(void)state;
	struct pih_synth s = { .bs = 512, .total = 600, .density = 60, .mbrs = 1, .fs = "ext2fs" };
	pih_synth_build(&s);
	pih_synth_seal(&s, 0);
	size_t flen = VH + s.img.len;
	uint8_t *f = malloc(flen);
	pih_volume_header(f, 0, IDENT);
	memcpy(f + VH, s.img.p, s.img.len);
	for (int i = 0; i < 150; i++) {
		size_t at = (size_t)(pih_rnd() % flen);
		uint8_t x = (uint8_t)(1u << (pih_rnd() % 8));
		f[at] ^= x;
		pih_write_file(pih_tpath("flip.pimg"), f, flen, 0);
		struct pih_walk w;
		pih_walk_batches = i & 1;
		pih_walk(pih_tpath("flip.pimg"), 1, &w);
		if (w.rc == IMG_EOF && !w.checksum_errors)
			assert_memory_equal(w.dev, s.dev, w.devlen);  /* only harmless bytes */
		pih_walk_free(&w);
		/* truncated at a random length */
		pih_write_file(pih_tpath("cut.pimg"), f, (size_t)(pih_rnd() % flen), 0);
		pih_walk(pih_tpath("cut.pimg"), 1, &w);
		assert_true(w.rc < 0);
		pih_walk_free(&w);
		f[at] ^= x;
	}
	pih_walk_batches = 0;
	free(f);
	pih_synth_free(&s);
}

/* The real partimage 0.6.9 images of test/data (PARTIMAGE.md): facts and the
 * CRC-32 of partimage's own restore. */
static void test_real_samples(void **state)
{
	(void)state;
	static const struct {
		const char *file, *fs;
		uint32_t bs;
		uint64_t total, used, size;
		uint32_t crc;
	} samples[] = {
		{ "partimage_ext2_z1.pimg.000", "ext2fs", 1024, 4096, 466, 4194304, 0x1f7b0708 },
		{ "partimage_ext2_stdout.pimg", "ext2fs", 1024, 2048, 105, 2097152, 0x56ee5639 },
		{ "partimage_fat16_z2.pimg.000", "fat16", 512, 24575, 439, 12582912, 0x406fecf4 },
	};
	const char *dir = getenv("IMGBK_TEST_DATA") ? getenv("IMGBK_TEST_DATA") : "test/data";
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, samples[i].file);
		img_image *im;
		img_err err;
		int rc = img_open(path, NULL, &im, &err);
		if (rc != IMG_OK)
			print_error("%s\n", err.msg);
		assert_int_equal(rc, IMG_OK);
		const img_info *in = img_get_info(im);
		assert_string_equal(in->format, "partimage");
		assert_string_equal(in->fs, samples[i].fs);
		assert_int_equal(in->block_size, samples[i].bs);
		assert_int_equal(in->total_blocks, samples[i].total);
		assert_int_equal(in->used_blocks, samples[i].used);
		assert_int_equal(in->device_size, samples[i].size);
		img_close(im);
		for (pih_walk_batches = 0; pih_walk_batches < 2; pih_walk_batches++) {
			struct pih_walk w;
			pih_walk(path, 1, &w);
			assert_int_equal(w.rc, IMG_EOF);
			assert_int_equal(w.checksum_errors, 0);
			assert_int_equal(w.blocks, samples[i].used);
			assert_int_equal(crc32_fast(0, w.dev, w.devlen), samples[i].crc);
			pih_walk_free(&w);
		}
		pih_walk_batches = 0;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_samples),
		cmocka_unit_test(test_single_volume_shapes),
		cmocka_unit_test(test_info_fields),
		cmocka_unit_test(test_info_headers_per_fs),
		cmocka_unit_test(test_info_long_texts),
		cmocka_unit_test(test_multi_volume_cuts),
		cmocka_unit_test(test_volume_set_errors),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_unsigned_sums),
		cmocka_unit_test(test_byte_sum_paths),
		cmocka_unit_test(test_hostile_sizes),
		cmocka_unit_test(test_random_flips),
	};
	return cmocka_run_group_tests(tests, pih_setup, pih_teardown);
}

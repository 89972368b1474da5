/*
 * test/unit/test_partimage.c - unit tests of the partimage reader
 * (formats/partimage.c) on images built here by a small synthetic writer
 * that follows FORMATS.md section 3: volume headers, main header with its
 * signed byte sum, MBR records, EXT blocks, local header, bitmap, info block,
 * data with a CHK record after every 65536 bytes, TAIL magic and tail with the
 * unsigned byte sum. Images are cut into volumes at chosen logical offsets
 * (mid-structure on purpose) and each volume is written plain or gzip.
 *
 * The real partimage images of test/data (PARTIMAGE.md) are checked against
 * partimage's own restores. The synthetic images are damaged: data, CHK CRC, CHK magic, header sums, bitmap,
 * tail sum, truncation, trailing bytes, wrong/missing/swapped/foreign
 * volumes, hostile sizes, random byte flips.
 *
 * Random access (img_random_open / img_read_at, formats/partimage_access.c):
 * reads at random offsets and lengths (fixed, printed seed), from several
 * threads at once, equal the sequential walk's bytes on synthetic single and
 * multi-volume images and on the real samples (decompressed here first); bad
 * CHK chunks, the saved index (reused, rebuilt when another volume changed),
 * compressed, missing and truncated volumes.
 */
#include <bzlib.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "formats/fmt.h"

#define VH 512
#define HS 16384
#define CHUNK 65536

static char tmpdir[64];

/* ---- the synthetic writer ------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_str(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_le32(struct buf *b, uint32_t v)
{
	uint8_t t[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, t, 4);
}

static void set_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void set_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t ssum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (uint32_t)(int32_t)(int8_t)p[i];
	return s;
}

/* A structure of n bytes followed by its signed byte sum. */
static void put_summed(struct buf *b, const uint8_t *p, size_t n)
{
	put(b, p, n);
	put_le32(b, ssum(p, n));
}

struct synth {
	uint32_t bs;
	uint64_t total;
	int density;          /* percent of used blocks */
	int mbrs;             /* MBR records */
	const char *fs;
	/* results */
	uint8_t *dev;         /* expected restore: total*bs bytes */
	uint64_t used;
	struct buf img;       /* the logical stream */
	size_t data_start, tail_magic_at, bitmap_at, info_at, local_at;
};

static void synth_build(struct synth *s)
{
	size_t devlen = (size_t)s->total * s->bs;
	s->dev = calloc(1, devlen ? devlen : 1);
	assert_non_null(s->dev);
	size_t bmsize = (size_t)(s->total + 7) / 8 + 16;
	uint8_t *bm = calloc(1, bmsize);
	assert_non_null(bm);
	s->used = 0;
	for (uint64_t i = 0; i < s->total; i++) {
		/* runs of used and free blocks of random length */
		int use = (int)(rnd() % 100) < s->density;
		uint64_t run = 1 + rnd() % 40;
		for (uint64_t k = 0; k < run && i < s->total; k++, i++) {
			if (!use)
				continue;
			bm[i / 8] |= (uint8_t)(1u << (i % 8));
			s->used++;
			for (uint32_t j = 0; j < s->bs; j += 8) {
				uint64_t r = rnd();
				memcpy(s->dev + i * s->bs + j, &r, s->bs - j < 8 ? s->bs - j : 8);
			}
		}
		i--;
	}
	struct buf *b = &s->img;
	memset(b, 0, sizeof *b);
	uint8_t *h = calloc(1, HS);
	assert_non_null(h);
	/* main header */
	snprintf((char *)h, 512, "%s", s->fs);
	memcpy(h + 512, "desc \xe0\xff", 7);  /* bytes >= 0x80: the signed rule matters */
	snprintf((char *)h + 4608, 512, "/dev/synth1");
	snprintf((char *)h + 5120, 4095, "synth");
	snprintf((char *)h + 9215, 65, "Linux");
	snprintf((char *)h + 9475, 65, "x86_64");
	set_le32(h + 9548 + 20, 126);
	set_le64(h + 9592, (uint64_t)devlen);
	snprintf((char *)h + 9600, 128, "host");
	snprintf((char *)h + 9728, 64, "0.6.1");
	set_le32(h + 9792, (uint32_t)s->mbrs);
	set_le32(h + 9796, 2048);
	put_summed(b, h, HS);
	put_str(b, "MAGIC-BEGIN-MBRBACKUP");
	for (int m = 0; m < s->mbrs; m++) {
		uint8_t mbr[2048] = { 0 };
		for (int i = 0; i < 512; i++)
			mbr[i] = (uint8_t)rnd();
		set_le32(mbr + 512, ssum(mbr, 512));
		snprintf((char *)mbr + 516, 512, "/dev/synth");
		set_le64(mbr + 1028, 123456);
		put(b, mbr, sizeof mbr);
	}
	for (int i = 0; i < 10; i++) {
		char m[24];
		snprintf(m, sizeof m, "MAGIC-BEGIN-EXT%03d", i);
		put_str(b, m);
		put_le32(b, i == 3 ? 5 : 0);
		if (i == 3)
			put(b, "ext03", 5);
	}
	put_str(b, "MAGIC-BEGIN-LOCALHEADER");
	s->local_at = b->len;
	memset(h, 0, HS);
	set_le64(h, s->bs);
	set_le64(h + 8, s->used);
	set_le64(h + 16, s->total);
	set_le64(h + 24, bmsize);
	h[40 + 63] = 0xF0;
	put_summed(b, h, HS);
	put_str(b, "MAGIC-BEGIN-BITMAP");
	s->bitmap_at = b->len;
	put(b, bm, bmsize);
	put_str(b, "MAGIC-BEGIN-INFO");
	s->info_at = b->len;
	memset(h, 0, HS);
	set_le32(h, 2);
	for (int i = 40; i < 56; i++)
		h[i] = (uint8_t)(0x80 + i);
	put_summed(b, h, HS);
	put_str(b, "MAGIC-BEGIN-DATABLOCKS");
	s->data_start = b->len;
	uint64_t d = 0, chunk_crc = crc32(0, NULL, 0);
	for (uint64_t i = 0; i < s->total; i++) {
		if (!(bm[i / 8] >> (i % 8) & 1))
			continue;
		for (uint32_t off = 0; off < s->bs;) {
			uint32_t n = s->bs - off;
			if (n > CHUNK - d % CHUNK)
				n = (uint32_t)(CHUNK - d % CHUNK);
			put(b, s->dev + i * s->bs + off, n);
			chunk_crc = crc32((uLong)chunk_crc, s->dev + i * s->bs + off, n);
			off += n;
			d += n;
			if (d % CHUNK == 0) {
				uint8_t chk[16] = "CHK";
				set_le32(chk + 4, (uint32_t)chunk_crc);
				set_le64(chk + 8, i);
				put(b, chk, 16);
				chunk_crc = crc32(0, NULL, 0);
			}
		}
	}
	put_str(b, "MAGIC-BEGIN-TAIL");
	s->tail_magic_at = b->len - 16;
	memset(h, 0, HS);
	put(b, h, HS);
	free(h);
	free(bm);
}

/* Store the tail: qwCRC over everything up to the TAIL magic, last volume. */
static void synth_seal(struct synth *s, uint32_t last_volume)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < s->tail_magic_at + 16; i++)
		sum += s->img.p[i];
	set_le64(s->img.p + s->tail_magic_at + 16, sum);
	set_le32(s->img.p + s->tail_magic_at + 24, last_volume);
}

static void synth_free(struct synth *s)
{
	free(s->dev);
	free(s->img.p);
}

static const uint64_t IDENT = 0x8D8D8D8DE68AA8A3ull;

static void volume_header(uint8_t *vh, uint32_t n, uint64_t ident)
{
	memset(vh, 0, VH);
	memcpy(vh, "PaRtImAgE-VoLuMe", 16);
	memcpy(vh + 32, "0.6.1", 5);
	set_le32(vh + 96, n);
	set_le64(vh + 100, ident);
}

static void write_file(const char *path, const uint8_t *p, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		assert_non_null(g);
		assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
		assert_int_equal(gzclose(g), Z_OK);
		return;
	}
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

/*
 * Write the logical stream as volumes cut at cuts[0..ncuts) (ascending logical
 * offsets) into tmpdir/name.000, .001, ... (gzip where gzmask has the bit).
 * With ncuts == 0 and plain_name, one file tmpdir/name (a stdout-made image).
 */
static void write_volumes(struct synth *s, const char *name, const size_t *cuts, size_t ncuts,
			  unsigned gzmask, int plain_name)
{
	synth_seal(s, (uint32_t)ncuts);
	size_t from = 0;
	for (size_t v = 0; v <= ncuts; v++) {
		size_t to = v < ncuts ? cuts[v] : s->img.len;
		uint8_t *f = malloc(VH + (to - from));
		assert_non_null(f);
		volume_header(f, (uint32_t)v, IDENT);
		memcpy(f + VH, s->img.p + from, to - from);
		char path[256];
		if (plain_name)
			snprintf(path, sizeof path, "%s/%s", tmpdir, name);
		else
			snprintf(path, sizeof path, "%s/%s.%03zu", tmpdir, name, v);
		write_file(path, f, VH + (to - from), v < 32 && (gzmask >> v) & 1);
		free(f);
		from = to;
	}
}

static const char *tpath(const char *name)
{
	static char p[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
	return p[k];
}

/* ---- the walk --------------------------------------------------------------- */

struct walk {
	int open_rc, rc;         /* img_open status, status that ended the walk */
	int checksum_errors;
	uint64_t blocks, bad_groups;
	img_err err;             /* the first error */
	uint8_t *dev;
	size_t devlen;
};

/* Walk with img_next_runs (batches of up to 64) instead of img_next_run. */
static int walk_batches;
static size_t largest_batch;

static void walk(const char *path, int verify, struct walk *w)
{
	memset(w, 0, sizeof *w);
	img_options o;
	img_options_init(&o);
	o.verify = verify;
	img_image *im;
	w->open_rc = img_open(path, &o, &im, &w->err);
	if (w->open_rc != IMG_OK) {
		w->rc = w->open_rc;
		return;
	}
	const img_info *in = img_get_info(im);
	w->devlen = in->device_size;
	w->dev = calloc(1, w->devlen ? w->devlen : 1);
	assert_non_null(w->dev);
	img_run runs[64];
	size_t n = 1;
	int rc;
	uint64_t last_end = 0;
	for (;;) {
		if (walk_batches)
			rc = img_next_runs(im, runs, 64, &n);
		else
			rc = img_next_run(im, &runs[0]);
		if (rc == IMG_E_CHECKSUM) {
			if (!w->checksum_errors++)
				w->err = *img_error(im);
			continue;
		}
		if (rc != IMG_OK)
			break;
		if (n > largest_batch)
			largest_batch = n;
		/* copy only after the whole batch is out: every pointer must still be valid */
		for (size_t i = 0; i < n; i++) {
			const img_run *r = &runs[i];
			assert_true(r->offset >= last_end);
			assert_int_equal(r->len, r->nblocks * in->block_size);
			assert_true(r->offset + r->len <= w->devlen);
			assert_int_equal(r->offset, r->first_block * in->block_size);
			memcpy(w->dev + r->offset, r->data, r->len);
			last_end = r->offset + r->len;
			w->blocks += r->nblocks;
		}
	}
	w->rc = rc;
	if (rc != IMG_EOF && !w->checksum_errors)
		w->err = *img_error(im);
	w->bad_groups = img_bad_groups(im);
	img_close(im);
}

static void walk_free(struct walk *w) { free(w->dev); }

/* The walk ends cleanly and restores exactly the synthetic device. */
static void expect_good_once(struct synth *s, const char *path)
{
	struct walk w;
	walk(path, 1, &w);
	if (w.rc != IMG_EOF)
		print_error("unexpected: %s\n", w.err.msg);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.checksum_errors, 0);
	assert_int_equal(w.blocks, s->used);
	assert_int_equal(w.devlen, (size_t)s->total * s->bs);
	assert_memory_equal(w.dev, s->dev, w.devlen);
	walk_free(&w);
}

static void expect_good(struct synth *s, const char *path)
{
	walk_batches = 0;
	expect_good_once(s, path);
	walk_batches = 1;
	expect_good_once(s, path);
	walk_batches = 0;
}

/* The walk (or open) fails with `code` and the message contains `needle`. */
static void expect_fail_once(const char *path, int code, const char *needle)
{
	struct walk w;
	walk(path, 1, &w);
	int got = w.checksum_errors ? IMG_E_CHECKSUM : w.rc;
	if (got != code || (needle && !strstr(w.err.msg, needle)))
		print_error("got %d (%s), want %d with \"%s\"\n", got, w.err.msg, code,
			    needle ? needle : "");
	assert_int_equal(got, code);
	if (needle)
		assert_non_null(strstr(w.err.msg, needle));
	walk_free(&w);
}

/* Same, walked one run at a time and in batches. */
static void expect_fail(const char *path, int code, const char *needle)
{
	walk_batches = 0;
	expect_fail_once(path, code, needle);
	walk_batches = 1;
	expect_fail_once(path, code, needle);
	walk_batches = 0;
}

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
		struct synth s = { .bs = shapes[i].bs, .total = shapes[i].total,
				   .density = shapes[i].density, .mbrs = shapes[i].mbrs, .fs = "ext2fs" };
		synth_build(&s);
		write_volumes(&s, "single", NULL, 0, 0, 0);
		expect_good(&s, tpath("single.000"));
		write_volumes(&s, "stdout.pimg", NULL, 0, 0, 1);
		expect_good(&s, tpath("stdout.pimg"));
		write_volumes(&s, "singlegz", NULL, 0, 1, 0);
		expect_good(&s, tpath("singlegz.000"));
		synth_free(&s);
	}
}

static void test_info_fields(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 2000, .density = 50, .mbrs = 1, .fs = "ext2fs" };
	synth_build(&s);
	write_volumes(&s, "info", NULL, 0, 0, 0);
	img_image *im;
	img_err err;
	assert_int_equal(img_open(tpath("info.000"), NULL, &im, &err), IMG_OK);
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
	assert_string_equal(fl->title, "Volume Header");
	int sections = 0, saw_ext2 = 0, saw_mbr = 0, saw_local = 0;
	for (size_t i = 0; i < fl->count; i++) {
		const img_field *f = &fl->fields[i];
		if (f->section) {
			sections++;
			saw_ext2 |= strcmp(f->label, "Ext2 Info Header") == 0;
			saw_mbr |= strcmp(f->label, "MBR Record 1") == 0;
			saw_local |= strcmp(f->label, "Local Header") == 0;
			continue;
		}
		if (strcmp(f->key, "ext2_uuid") == 0)
			assert_string_equal(f->text, "a8a9aaab-acad-aeaf-b0b1-b2b3b4b5b6b7");
		if (strcmp(f->key, "used_blocks") == 0)
			assert_int_equal(f->number, s.used);
		/* keys are unique (JSON) */
		for (size_t j = 0; j < i; j++)
			if (!fl->fields[j].section)
				assert_string_not_equal(fl->fields[j].key, f->key);
	}
	assert_true(saw_ext2 && saw_mbr && saw_local);
	assert_int_equal(sections, 4);
	img_close(im);
	synth_free(&s);
}

static void test_multi_volume_cuts(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	synth_build(&s);
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
	write_volumes(&s, "multi", cuts, n, 0, 0);
	expect_good(&s, tpath("multi.000"));
	write_volumes(&s, "multigz", cuts, n, 0x5A5, 0);  /* some volumes gzip, some plain */
	largest_batch = 0;
	expect_good(&s, tpath("multigz.000"));
	assert_true(largest_batch > 8);  /* batches do span several chunks */
	/* verify off walks the same */
	struct walk w;
	walk(tpath("multigz.000"), 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_memory_equal(w.dev, s.dev, w.devlen);
	walk_free(&w);
	/* big blocks split across volumes */
	struct synth b = { .bs = 262144, .total = 30, .density = 60, .fs = "ntfs" };
	synth_build(&b);
	size_t bcuts[] = { b.data_start + 70000, b.data_start + 300000 };
	write_volumes(&b, "bigmulti", bcuts, 2, 2, 0);
	expect_good(&b, tpath("bigmulti.000"));
	synth_free(&b);
	synth_free(&s);
}

static void test_volume_set_errors(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	char a[256], b[256];
	/* missing .001 */
	write_volumes(&s, "miss", cuts, 3, 0, 0);
	unlink(tpath("miss.001"));
	expect_fail(tpath("miss.000"), IMG_E_MISSING, "miss.001");
	/* missing last volume */
	write_volumes(&s, "misslast", cuts, 3, 0, 0);
	unlink(tpath("misslast.003"));
	expect_fail(tpath("misslast.000"), IMG_E_MISSING, "misslast.003");
	/* swapped .001 / .002 */
	write_volumes(&s, "swap", cuts, 3, 0, 0);
	snprintf(a, sizeof a, "%s", tpath("swap.001"));
	snprintf(b, sizeof b, "%s", tpath("swap.002"));
	assert_int_equal(rename(a, tpath("swap.tmp")), 0);
	assert_int_equal(rename(b, a), 0);
	assert_int_equal(rename(tpath("swap.tmp"), b), 0);
	expect_fail(tpath("swap.000"), IMG_E_CORRUPT, "swap.001");
	/* a volume of another image (other identificator) */
	write_volumes(&s, "foreign", cuts, 3, 0, 0);
	{
		uint8_t *f = malloc(VH + (cuts[2] - cuts[1]));
		volume_header(f, 2, IDENT ^ 1);
		memcpy(f + VH, s.img.p + cuts[1], cuts[2] - cuts[1]);
		write_file(tpath("foreign.002"), f, VH + (cuts[2] - cuts[1]), 0);
		free(f);
	}
	expect_fail(tpath("foreign.000"), IMG_E_CORRUPT, "another image");
	/* a file that is not a volume at all */
	write_volumes(&s, "junk", cuts, 3, 0, 0);
	write_file(tpath("junk.001"), (const uint8_t *)"hello world, not a volume", 25, 0);
	expect_fail(tpath("junk.001"), IMG_E_FORMAT, NULL);  /* opened directly: no format */
	expect_fail(tpath("junk.000"), IMG_E_TRUNCATED, "junk.001");
	/* opening a later volume directly */
	write_volumes(&s, "later", cuts, 3, 0, 0);
	expect_fail(tpath("later.002"), IMG_E_CORRUPT, "volume 2");
	/* truncated last volume: the next one is missing */
	write_volumes(&s, "trunc", cuts, 3, 0, 0);
	assert_int_equal(truncate(tpath("trunc.003"), 5000), 0);
	expect_fail(tpath("trunc.000"), IMG_E_MISSING, "trunc.004");
	/* truncated gzip volume in the middle */
	write_volumes(&s, "truncgz", cuts, 3, 0x2, 0);
	assert_int_equal(truncate(tpath("truncgz.001"), 3000), 0);
	struct walk w;
	walk(tpath("truncgz.000"), 1, &w);
	assert_true(w.rc < 0 && w.rc != IMG_E_CHECKSUM);
	assert_non_null(strstr(w.err.msg, "truncgz.001"));
	walk_free(&w);
	/* the tail names the wrong last volume */
	write_volumes(&s, "lastno", cuts, 3, 0, 0);
	synth_seal(&s, 7);
	{
		size_t len = s.img.len - cuts[2];
		uint8_t *f = malloc(VH + len);
		volume_header(f, 3, IDENT);
		memcpy(f + VH, s.img.p + cuts[2], len);
		write_file(tpath("lastno.003"), f, VH + len, 0);
		free(f);
	}
	expect_fail(tpath("lastno.000"), IMG_E_CORRUPT, "last volume");
	synth_free(&s);
}

/* Write the single-volume image with byte `at` (logical) XORed by x. */
static const char *damaged(struct synth *s, const char *name, size_t at, uint8_t x)
{
	synth_seal(s, 0);
	s->img.p[at] ^= x;
	uint8_t *f = malloc(VH + s->img.len);
	volume_header(f, 0, IDENT);
	memcpy(f + VH, s->img.p, s->img.len);
	write_file(tpath(name), f, VH + s->img.len, 0);
	free(f);
	s->img.p[at] ^= x;
	return tpath(name);
}

static void test_damage(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .mbrs = 1, .fs = "ext2fs" };
	synth_build(&s);
	size_t d = s.data_start;
	expect_good(&s, damaged(&s, "ok.pimg", 0, 0));
	/* a data byte in the second chunk: that chunk is skipped, the walk goes on */
	struct walk w;
	for (walk_batches = 0; walk_batches < 2; walk_batches++) {
		walk(damaged(&s, "data.pimg", d + CHUNK + 16 + 100, 0x01), 1, &w);
		assert_int_equal(w.checksum_errors, 1);
		assert_int_equal(w.bad_groups, 1);
		assert_int_equal(w.rc, IMG_EOF);  /* the tail sum is not reported again */
		assert_non_null(strstr(w.err.msg, "CHK record 1"));
		assert_non_null(strstr(w.err.msg, "data.pimg"));
		assert_int_equal(w.blocks, s.used - 64);
		/* every other block restored */
		walk_free(&w);
	}
	walk_batches = 0;
	/* the CRC of a CHK record */
	expect_fail(damaged(&s, "chkcrc.pimg", d + CHUNK + 5, 0x80), IMG_E_CHECKSUM, "CHK record 0");
	/* the magic of a CHK record: structure lost */
	expect_fail(damaged(&s, "chkmagic.pimg", d + CHUNK + 1, 0x20), IMG_E_CORRUPT, "CHK record expected");
	/* qwPos is advisory (covered by the tail sum) */
	expect_fail(damaged(&s, "qwpos.pimg", d + CHUNK + 9, 0x01), IMG_E_CHECKSUM, "tail checksum");
	/* the final partial chunk (no CHK record): caught ahead through the tail sum */
	size_t last = s.tail_magic_at - 10;
	walk(damaged(&s, "final.pimg", last, 0x04), 1, &w);
	assert_int_equal(w.checksum_errors, 1);
	assert_non_null(strstr(w.err.msg, "tail checksum"));
	walk_free(&w);
	/* the tail's stored sum */
	expect_fail(damaged(&s, "tailsum.pimg", s.tail_magic_at + 16, 0x01), IMG_E_CHECKSUM, "tail");
	/* the TAIL magic */
	expect_fail(damaged(&s, "tailmagic.pimg", s.tail_magic_at + 3, 0x01), IMG_E_CORRUPT,
		    "MAGIC-BEGIN-TAIL");
	/* header sums */
	expect_fail(damaged(&s, "main.pimg", 600, 0x01), IMG_E_CORRUPT, "main header byte sum");
	expect_fail(damaged(&s, "mainsum.pimg", HS, 0x01), IMG_E_CORRUPT, "main header byte sum");
	expect_fail(damaged(&s, "mbr.pimg", HS + 4 + 21 + 7, 0x01), IMG_E_CORRUPT, "MBR record");
	expect_fail(damaged(&s, "local.pimg", s.local_at + 200, 0x01), IMG_E_CORRUPT, "local header");
	expect_fail(damaged(&s, "info.pimg", s.info_at + 5000, 0x01), IMG_E_CORRUPT,
		    "filesystem info block");
	/* magics */
	expect_fail(damaged(&s, "mbrmagic.pimg", HS + 4 + 3, 0x01), IMG_E_CORRUPT, "MBRBACKUP");
	expect_fail(damaged(&s, "ext.pimg", s.local_at - 23 - 5, 0x01), IMG_E_CORRUPT, "EXT009");
	expect_fail(damaged(&s, "datamagic.pimg", d - 2, 0x01), IMG_E_CORRUPT, "DATABLOCKS");
	/* a bitmap bit: the count no longer matches */
	expect_fail(damaged(&s, "bitmap.pimg", s.bitmap_at + 3, 0x01), IMG_E_CORRUPT, "bitmap marks");
	/* the volume header */
	{
		synth_seal(&s, 0);
		uint8_t *f = malloc(VH + s.img.len);
		volume_header(f, 0, IDENT);
		memcpy(f + 32, "0.5.9", 5);
		memcpy(f + VH, s.img.p, s.img.len);
		write_file(tpath("vver.pimg"), f, VH + s.img.len, 0);
		expect_fail(tpath("vver.pimg"), IMG_E_FORMAT, "0.5.9");
		/* trailing bytes after the tail */
		FILE *t = fopen(tpath("trail.pimg"), "wb");
		volume_header(f, 0, IDENT);
		fwrite(f, 1, VH + s.img.len, t);
		fwrite("extra", 1, 5, t);
		fclose(t);
		expect_fail(tpath("trail.pimg"), IMG_E_TRAILING, "trailing");
		/* truncated single stream */
		write_file(tpath("short.pimg"), f, VH + s.img.len - 100, 0);
		expect_fail(tpath("short.pimg"), IMG_E_TRUNCATED, "truncated");
		write_file(tpath("short2.pimg"), f, VH + d + 5000, 0);
		expect_fail(tpath("short2.pimg"), IMG_E_TRUNCATED, "short2.pimg");
		write_file(tpath("short3.pimg"), f, 300, 0);
		expect_fail(tpath("short3.pimg"), IMG_E_TRUNCATED, NULL);
		free(f);
	}
	/* verify off: a bad data chunk goes through */
	walk(damaged(&s, "noverify.pimg", d + 100, 0x01), 0, &w);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.checksum_errors, 0);
	walk_free(&w);
	synth_free(&s);
}

/* Sums stored with the unsigned rule (char unsigned on the creator) are accepted. */
static void test_unsigned_sums(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 500, .density = 50, .fs = "fat32" };
	synth_build(&s);
	uint64_t u = 0;
	for (size_t i = 0; i < HS; i++)
		u += s.img.p[i];
	set_le32(s.img.p + HS, (uint32_t)u);
	write_volumes(&s, "unsig", NULL, 0, 0, 0);
	expect_good(&s, tpath("unsig.000"));
	img_image *im;
	img_err err;
	assert_int_equal(img_open(tpath("unsig.000"), NULL, &im, &err), IMG_OK);
	const img_field_list *fl = img_get_fields(im);
	int seen = 0, fat = 0;
	for (size_t i = 0; i < fl->count; i++) {
		seen |= !fl->fields[i].section && strcmp(fl->fields[i].key, "header_sums") == 0;
		fat |= fl->fields[i].section && strcmp(fl->fields[i].label, "FAT Info Header") == 0;
	}
	assert_true(seen && fat);
	img_close(im);
	synth_free(&s);
}

/* Set a u64 of the local header (and fix its sum) and expect open to fail. */
static void hostile_local(struct synth *s, const char *name, size_t field, uint64_t v)
{
	uint8_t save[HS + 4];
	memcpy(save, s->img.p + s->local_at, sizeof save);
	set_le64(s->img.p + s->local_at + field, v);
	set_le32(s->img.p + s->local_at + HS, ssum(s->img.p + s->local_at, HS));
	write_volumes(s, name, NULL, 0, 0, 0);
	struct walk w;
	char file[64];
	snprintf(file, sizeof file, "%s.000", name);
	walk(tpath(file), 1, &w);
	assert_int_equal(w.open_rc, IMG_E_CORRUPT);
	walk_free(&w);
	memcpy(s->img.p + s->local_at, save, sizeof save);
}

static void test_hostile_sizes(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 800, .density = 50, .fs = "ext2fs" };
	synth_build(&s);
	hostile_local(&s, "bs0", 0, 0);
	hostile_local(&s, "bs3", 0, 3000);
	hostile_local(&s, "bshuge", 0, (uint64_t)1 << 40);
	hostile_local(&s, "used", 8, 801);
	hostile_local(&s, "total", 16, UINT64_MAX / 2);
	hostile_local(&s, "bm", 24, (uint64_t)1 << 50);
	hostile_local(&s, "bm2", 24, (uint64_t)1 << 29);
	/* bitmap smaller than the block count: blocks past it count as free */
	synth_free(&s);
}

/* Random damage anywhere: no crash, no hang, and never a clean EOF with wrong data. */
static void test_random_flips(void **state)
{
	(void)state;
	struct synth s = { .bs = 512, .total = 600, .density = 60, .mbrs = 1, .fs = "ext2fs" };
	synth_build(&s);
	synth_seal(&s, 0);
	size_t flen = VH + s.img.len;
	uint8_t *f = malloc(flen);
	volume_header(f, 0, IDENT);
	memcpy(f + VH, s.img.p, s.img.len);
	for (int i = 0; i < 150; i++) {
		size_t at = (size_t)(rnd() % flen);
		uint8_t x = (uint8_t)(1u << (rnd() % 8));
		f[at] ^= x;
		write_file(tpath("flip.pimg"), f, flen, 0);
		struct walk w;
		walk_batches = i & 1;
		walk(tpath("flip.pimg"), 1, &w);
		if (w.rc == IMG_EOF && !w.checksum_errors)
			assert_memory_equal(w.dev, s.dev, w.devlen);  /* only harmless bytes */
		walk_free(&w);
		/* truncated at a random length */
		write_file(tpath("cut.pimg"), f, (size_t)(rnd() % flen), 0);
		walk(tpath("cut.pimg"), 1, &w);
		assert_true(w.rc < 0);
		walk_free(&w);
		f[at] ^= x;
	}
	walk_batches = 0;
	free(f);
	synth_free(&s);
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
		for (walk_batches = 0; walk_batches < 2; walk_batches++) {
			struct walk w;
			walk(path, 1, &w);
			assert_int_equal(w.rc, IMG_EOF);
			assert_int_equal(w.checksum_errors, 0);
			assert_int_equal(w.blocks, samples[i].used);
			assert_int_equal(crc32_fast(0, w.dev, w.devlen), samples[i].crc);
			walk_free(&w);
		}
		walk_batches = 0;
	}
}

/* ---- random access ----------------------------------------------------------- */

#define RA_SEED 0x5EED1234ABCDull
static int ra_seed_printed;

static uint64_t ra_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Open for random access (index at tmpdir/index.ibkx unless idx given). */
static img_image *ra_open(const char *path, uint32_t interval, int verify, const char *idx, int save,
			  int *state)
{
	img_image *im;
	img_err err;
	int rc = img_open(path, NULL, &im, &err);
	if (rc != IMG_OK)
		fail_msg("%s: %s", path, err.msg);
	img_random_options o;
	img_random_options_init(&o);
	o.index_interval = interval;
	o.verify = verify;
	o.save = save;
	o.index_path = idx ? idx : tpath("index.ibkx");
	if (!idx)
		unlink(o.index_path);
	rc = img_random_open(im, &o, state);
	if (rc != IMG_OK)
		fail_msg("%s: img_random_open: %s", path, img_error(im)->msg);
	return im;
}

/* n reads at random offsets/lengths; @return how many differ from ref. */
static int ra_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed, int n)
{
	uint8_t *buf = malloc(600000);
	assert_non_null(buf);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		uint64_t r = ra_rand(&seed);
		uint64_t off = (r & 15) == 0 ? size - r % 70000 % (size + 1) : (r & 15) == 1 ? size + r % 100
			       : r % (size + 1);
		uint64_t l = ra_rand(&seed);
		size_t len = (size_t)((l & 3) == 0 ? l % 600000 : (l & 3) == 1 ? l % 70000 : l % 5000);
		size_t got = 12345, want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		img_err err;
		int rc = img_read_at(im, off, buf, len, &got, &err);
		if (rc != IMG_OK || got != want || memcmp(buf, ref + (off < size ? off : 0), got) != 0) {
			if (!bad)
				print_error("read at %llu of %zu: rc %d got %zu want %zu %s\n",
					    (unsigned long long)off, len, rc, got, want,
					    rc != IMG_OK ? err.msg : "");
			bad++;
		}
	}
	free(buf);
	return bad;
}

/* The whole device in steps of `step` bytes equals ref. */
static void ra_sweep(img_image *im, const uint8_t *ref, uint64_t size, size_t step)
{
	uint8_t *buf = malloc(step);
	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += step) {
		size_t got;
		img_err err;
		int rc = img_read_at(im, off, buf, step, &got, &err);
		if (rc != IMG_OK)
			fail_msg("read at %llu: %s", (unsigned long long)off, err.msg);
		assert_int_equal(got, size - off < step ? size - off : step);
		if (memcmp(buf, ref + off, got) != 0)
			fail_msg("bytes differ in [%llu, +%zu)", (unsigned long long)off, got);
	}
	free(buf);
}

struct ra_reader {
	img_image *im;
	const uint8_t *ref;
	uint64_t size, seed;
	int bad;
};

static void *ra_reader_main(void *arg)
{
	struct ra_reader *r = arg;
	r->bad = ra_reads(r->im, r->ref, r->size, r->seed, 150);
	return NULL;
}

static void ra_threads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed)
{
	enum { NT = 6 };
	pthread_t t[NT];
	struct ra_reader r[NT];
	for (int i = 0; i < NT; i++) {
		r[i] = (struct ra_reader){ im, ref, size, seed + 977 * (uint64_t)(i + 1), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, ra_reader_main, &r[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (r[i].bad)
			fail_msg("thread %d: %d of 150 reads differ (seed 0x%llx)", i, r[i].bad,
				 (unsigned long long)r[i].seed);
	}
}

/*
 * The sequential walk of path is the reference: random reads (single thread,
 * then threads, then a sweep) with verify on and off and two index intervals
 * return the same bytes. `expect` (may be NULL) must equal the walk.
 */
static void ra_check(const char *path, const uint8_t *expect)
{
	if (!ra_seed_printed++)
		print_message("random reads: seed 0x%llx\n", (unsigned long long)RA_SEED);
	struct walk w;
	walk(path, 1, &w);
	if (w.rc != IMG_EOF || w.checksum_errors)
		fail_msg("%s: walk: %s", path, w.err.msg);
	if (expect)
		assert_memory_equal(w.dev, expect, w.devlen);
	static const uint32_t intervals[] = { 0, 8 };
	for (int v = 0; v < 2; v++)
		for (size_t k = 0; k < 2; k++) {
			img_image *im = ra_open(path, intervals[k], v, NULL, 0, NULL);
			uint64_t seed = RA_SEED + 31 * k + v;
			int bad = ra_reads(im, w.dev, w.devlen, seed, 300);
			if (bad)
				fail_msg("%s: %d of 300 reads differ (seed 0x%llx)", path, bad,
					 (unsigned long long)seed);
			ra_threads(im, w.dev, w.devlen, seed);
			if (v == 1 && k == 0)
				ra_sweep(im, w.dev, w.devlen, 40000);
			img_close(im);
		}
	walk_free(&w);
}

static void test_random_single(void **state)
{
	(void)state;
	static const struct { uint32_t bs; uint64_t total; int density; } shapes[] = {
		{ 1024, 3000, 60 },    /* final partial chunk */
		{ 512, 4096, 100 },    /* 2 MiB used: ends on a CHK record */
		{ 4096, 700, 50 },
		{ 131072, 40, 50 },    /* blocks straddle CHK records */
		{ 65536, 30, 70 },
		{ 1024, 100, 0 },      /* nothing used */
	};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct synth s = { .bs = shapes[i].bs, .total = shapes[i].total,
				   .density = shapes[i].density, .mbrs = 1, .fs = "ext2fs" };
		synth_build(&s);
		write_volumes(&s, "rsingle", NULL, 0, 0, 0);
		ra_check(tpath("rsingle.000"), s.dev);
		write_volumes(&s, "rstdout.pimg", NULL, 0, 0, 1);
		ra_check(tpath("rstdout.pimg"), s.dev);
		synth_free(&s);
	}
}

static void test_random_multi(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	synth_build(&s);
	size_t d = s.data_start;
	size_t cuts[] = {
		100, HS + 2, s.local_at + 10, s.bitmap_at + 7, s.info_at + HS + 1,
		d + CHUNK + 5,                /* inside a CHK record */
		d + 2 * (CHUNK + 16),         /* right after a CHK record */
		d + 3 * (CHUNK + 16) + 1000,  /* mid data */
		d + 3 * (CHUNK + 16) + 1000,  /* an empty volume */
		d + 3 * (CHUNK + 16) + 1001,  /* a one-byte volume */
		s.tail_magic_at + 7,          /* inside the TAIL magic */
		s.tail_magic_at + 16 + 100,   /* inside the tail */
	};
	write_volumes(&s, "rmulti", cuts, sizeof cuts / sizeof cuts[0], 0, 0);
	ra_check(tpath("rmulti.000"), s.dev);
	/* NAME where only NAME.000 exists: opened as the set */
	expect_good(&s, tpath("rmulti"));
	ra_check(tpath("rmulti"), s.dev);
	/* the tail in a volume of its own, the data ending exactly at a cut */
	size_t cuts2[] = { d + 1, s.tail_magic_at };
	write_volumes(&s, "rmulti2", cuts2, 2, 0, 0);
	ra_check(tpath("rmulti2.000"), s.dev);
	/* many volumes: more than are kept open (the rest opened for each read) */
	size_t many[150];
	for (size_t i = 0; i < 150; i++)
		many[i] = d + (i + 1) * ((s.img.len - d) / 152);
	write_volumes(&s, "rmany", many, 150, 0, 0);
	ra_check(tpath("rmany.000"), s.dev);
	/* big blocks split across volumes */
	struct synth b = { .bs = 262144, .total = 30, .density = 60, .fs = "ntfs" };
	synth_build(&b);
	size_t bcuts[] = { b.data_start + 70000, b.data_start + 300000, b.data_start + 300016 };
	write_volumes(&b, "rbig", bcuts, 3, 0, 0);
	ra_check(tpath("rbig.000"), b.dev);
	synth_free(&b);
	synth_free(&s);
}

/* Reads of [off, off+len) fail with `code` and a message holding `needle`. */
static void ra_expect(img_image *im, uint64_t off, size_t len, int code, const char *needle)
{
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 99;
	img_err err;
	int rc = img_read_at(im, off, buf, len, &got, &err);
	if (rc != code || (needle && !strstr(err.msg, needle)))
		fail_msg("read at %llu of %zu: got %d (%s), want %d with \"%s\"", (unsigned long long)off,
			 len, rc, rc ? err.msg : "", code, needle ? needle : "");
	if (rc != IMG_OK)
		assert_int_equal(got, 0);
	free(buf);
}

static void test_random_damage(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	synth_build(&s);
	size_t d = s.data_start;
	/* the device range of chunk 1: ranks 64..127 */
	uint64_t first = 0, last = 0, rank = 0;
	/* ranks from the bitmap stored in the image */
	const uint8_t *bm = s.img.p + s.bitmap_at;
	for (uint64_t b = 0; b < s.total; b++) {
		if (!(bm[b / 8] >> (b % 8) & 1))
			continue;
		if (rank == 64)
			first = b;
		if (rank == 127)
			last = b;
		rank++;
	}
	const char *path = damaged(&s, "rdata.pimg", d + CHUNK + 16 + 100, 0x01);
	char needle[64];
	snprintf(needle, sizeof needle, "blocks %llu-%llu (CHK record 1)", (unsigned long long)first,
		 (unsigned long long)last);
	img_image *im = ra_open(path, 0, 1, NULL, 0, NULL);
	for (int k = 0; k < 2; k++) {  /* found bad, then known bad */
		ra_expect(im, first * s.bs, 10, IMG_E_CHECKSUM, needle);
		ra_expect(im, last * s.bs + 1000, 30, IMG_E_CHECKSUM, "rdata.pimg");
		ra_expect(im, 0, (size_t)(first * s.bs + 1), IMG_E_CHECKSUM, "CHK record 1");
	}
	/* ranges off chunk 1 still read */
	uint8_t *buf = malloc((size_t)(first * s.bs));
	size_t got;
	img_err err;
	assert_int_equal(img_read_at(im, 0, buf, (size_t)(first * s.bs), &got, &err), IMG_OK);
	assert_memory_equal(buf, s.dev, got);
	uint64_t after = (last + 1) * s.bs, n = (uint64_t)s.total * s.bs - after;
	buf = realloc(buf, (size_t)n);
	assert_int_equal(img_read_at(im, after, buf, (size_t)n, &got, &err), IMG_OK);
	assert_int_equal(got, n);
	assert_memory_equal(buf, s.dev + after, got);
	img_close(im);
	/* verify off: the damaged bytes are served */
	im = ra_open(path, 0, 0, NULL, 0, NULL);
	buf = realloc(buf, (size_t)s.total * s.bs);
	assert_int_equal(img_read_at(im, 0, buf, (size_t)s.total * s.bs, &got, &err), IMG_OK);
	size_t diff = 0;
	for (size_t i = 0; i < got; i++)
		diff += buf[i] != s.dev[i];
	assert_int_equal(diff, 1);
	img_close(im);
	/* a CHK record's magic: structure lost, reads of that chunk fail */
	path = damaged(&s, "rchk.pimg", d + CHUNK + 1, 0x20);
	im = ra_open(path, 0, 1, NULL, 0, NULL);
	ra_expect(im, 0, 100, IMG_E_CORRUPT, "CHK record 0 expected");
	img_close(im);
	/* the final partial chunk is not checked by random reads (the tail sum is sequential) */
	path = damaged(&s, "rfinal.pimg", s.tail_magic_at - 10, 0x04);
	im = ra_open(path, 0, 1, NULL, 0, NULL);
	assert_int_equal(img_read_at(im, 0, buf, (size_t)s.total * s.bs, &got, &err), IMG_OK);
	img_close(im);
	/* a truncated single file opens; reads past its end fail */
	{
		synth_seal(&s, 0);
		uint8_t *f = malloc(VH + s.img.len);
		volume_header(f, 0, IDENT);
		memcpy(f + VH, s.img.p, s.img.len);
		write_file(tpath("rshort.pimg"), f, VH + d + 3 * (CHUNK + 16), 0);
		free(f);
		im = ra_open(tpath("rshort.pimg"), 0, 0, NULL, 0, NULL);
		ra_expect(im, 0, (size_t)s.total * s.bs, IMG_E_TRUNCATED, "truncated");
		ra_expect(im, 0, 1000, IMG_OK, NULL);
		img_close(im);
	}
	free(buf);
	synth_free(&s);
}

/* img_random_open fails with code, message holding needle (and needle2). */
static void ra_open_fails(const char *path, int code, const char *needle, const char *needle2)
{
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	img_random_options o;
	img_random_options_init(&o);
	o.save = 0;
	o.index_path = tpath("none.ibkx");
	int rc = img_random_open(im, &o, NULL);
	const char *msg = img_error(im)->msg;
	if (rc != code || !strstr(msg, needle) || (needle2 && !strstr(msg, needle2)))
		fail_msg("%s: got %d (%s), want %d with \"%s\"", path, rc, msg, code, needle);
	img_close(im);
}

static void test_random_volume_errors(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 3000, .density = 70, .fs = "ext2fs" };
	synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	/* every volume gzip: refused by the generic check, with the command */
	write_volumes(&s, "rgz", cuts, 3, 0xF, 0);
	ra_open_fails(tpath("rgz.000"), IMG_E_FORMAT, "decompress", "gzip -dc");
	/* volume 0 plain, the others compressed: each volume must be decompressed */
	write_volumes(&s, "rgz1", cuts, 3, 0xE, 0);
	ra_open_fails(tpath("rgz1.000"), IMG_E_FORMAT, "volume 1 is compressed (gzip)",
		      "for v in");
	/* bzip2 */
	{
		write_volumes(&s, "rbz", cuts, 3, 0, 0);
		char cmd[600];
		snprintf(cmd, sizeof cmd, "bzip2 -q -f '%s' && mv '%s.bz2' '%s'", tpath("rbz.002"),
			 tpath("rbz.002"), tpath("rbz.002"));
		if (system(cmd) == 0)
			ra_open_fails(tpath("rbz.000"), IMG_E_FORMAT, "volume 2 is compressed (bzip2)",
				      "bzip2 -dc");
	}
	/* a missing volume */
	write_volumes(&s, "rmiss", cuts, 3, 0, 0);
	unlink(tpath("rmiss.002"));
	ra_open_fails(tpath("rmiss.000"), IMG_E_MISSING, "rmiss.002", "missing");
	/* a truncated middle volume: a next one is looked for */
	write_volumes(&s, "rtrunc", cuts, 3, 0, 0);
	assert_int_equal(truncate(tpath("rtrunc.001"), 400000), 0);
	ra_open_fails(tpath("rtrunc.000"), IMG_E_MISSING, "rtrunc.004", "rtrunc.003 is truncated");
	/* a middle volume that grew: the sizes no longer put the tail where it is */
	write_volumes(&s, "rgrew", cuts, 3, 0, 0);
	{
		FILE *f = fopen(tpath("rgrew.001"), "ab");
		assert_non_null(f);
		fputs("more bytes", f);
		fclose(f);
	}
	ra_open_fails(tpath("rgrew.000"), IMG_E_CORRUPT, "MAGIC-BEGIN-TAIL", "rgrew.003");
	/* a foreign volume */
	write_volumes(&s, "rforeign", cuts, 3, 0, 0);
	{
		uint8_t *f = malloc(VH + (cuts[2] - cuts[1]));
		volume_header(f, 2, IDENT ^ 1);
		memcpy(f + VH, s.img.p + cuts[1], cuts[2] - cuts[1]);
		write_file(tpath("rforeign.002"), f, VH + (cuts[2] - cuts[1]), 0);
		free(f);
	}
	ra_open_fails(tpath("rforeign.000"), IMG_E_CORRUPT, "another image", NULL);
	/* the tail names a wrong last volume */
	write_volumes(&s, "rlast", cuts, 3, 0, 0);
	synth_seal(&s, 7);
	{
		size_t len = s.img.len - cuts[2];
		uint8_t *f = malloc(VH + len);
		volume_header(f, 3, IDENT);
		memcpy(f + VH, s.img.p + cuts[2], len);
		write_file(tpath("rlast.003"), f, VH + len, 0);
		free(f);
	}
	ra_open_fails(tpath("rlast.000"), IMG_E_CORRUPT, "last volume is 7", NULL);
	/* a later volume's trailing bytes and stale volumes after the last are not looked at */
	write_volumes(&s, "rextra", cuts, 3, 0, 0);
	write_file(tpath("rextra.004"), (const uint8_t *)"junk", 4, 0);
	ra_check(tpath("rextra.000"), s.dev);
	synth_free(&s);
}

static void test_random_index(void **state)
{
	(void)state;
	struct synth s = { .bs = 1024, .total = 5000, .density = 60, .fs = "ext2fs" };
	synth_build(&s);
	size_t cuts[] = { 20000, 500000, 1000000 };
	write_volumes(&s, "ridx", cuts, 3, 0, 0);
	char idx[256];
	snprintf(idx, sizeof idx, "%s", tpath("ridx.ibkx"));
	unlink(idx);
	int st = -1;
	img_image *im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);  /* built and saved */
	img_close(im);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);  /* loaded */
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED, 300), 0);
	img_close(im);
	/* another interval: not this index */
	im = ra_open(tpath("ridx.000"), 128, 1, idx, 0, &st);
	assert_int_equal(st, 0);
	img_close(im);
	/* a newer .002 (same bytes): the saved volume table no longer matches */
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 2000000000, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, tpath("ridx.002"), ts, 0), 0);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);  /* rebuilt and saved again */
	img_close(im);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 1, 300), 0);
	img_close(im);
	/* .001 and .002 rewritten with other sizes (cut elsewhere), .000 the same bytes
	 * and mtime: only the volume table of the payload tells; rebuilt, reads follow */
	struct timespec t0[2] = { { 0, UTIME_OMIT }, { 1000000000, 0 } };
	unlink(idx);
	assert_int_equal(utimensat(AT_FDCWD, tpath("ridx.000"), t0, 0), 0);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	img_close(im);
	size_t cuts2[] = { 20000, 600000, 1000000 };
	write_volumes(&s, "ridx", cuts2, 3, 0, 0);
	assert_int_equal(utimensat(AT_FDCWD, tpath("ridx.000"), t0, 0), 0);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 2, 300), 0);
	img_close(im);
	/* a payload whose rank entries do not add up (file checksum made valid): rebuilt */
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 1);
	img_close(im);
	FILE *f = fopen(idx, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long flen = ftell(f);
	uint8_t *b = malloc((size_t)flen);
	rewind(f);
	assert_int_equal(fread(b, 1, (size_t)flen, f), (size_t)flen);
	size_t e2 = 72 + 56 + 4 * 24 + 2 * 8;  /* rank entry 2 */
	set_le64(b + e2, get_le64(b + e2 - 8) + 65);
	set_le64(b + flen - 8, XXH64(b, (size_t)flen - 8, 0));
	rewind(f);
	assert_int_equal(fwrite(b, 1, (size_t)flen, f), (size_t)flen);
	fclose(f);
	free(b);
	im = ra_open(tpath("ridx.000"), 64, 1, idx, 1, &st);
	assert_int_equal(st, 2);
	assert_int_equal(ra_reads(im, s.dev, (uint64_t)s.total * s.bs, RA_SEED + 3, 300), 0);
	img_close(im);
	synth_free(&s);
}

/* Decompress src (gzip or bzip2) to dst. */
static void decompress_to(const char *src, const char *dst, int bz)
{
	FILE *out = fopen(dst, "wb");
	assert_non_null(out);
	char buf[65536];
	if (!bz) {
		gzFile g = gzopen(src, "rb");
		assert_non_null(g);
		int n;
		while ((n = gzread(g, buf, sizeof buf)) > 0)
			assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
		assert_int_equal(n, 0);
		gzclose(g);
	} else {
		FILE *in = fopen(src, "rb");
		assert_non_null(in);
		int e;
		BZFILE *b = BZ2_bzReadOpen(&e, in, 0, 0, NULL, 0);
		assert_int_equal(e, BZ_OK);
		while (e == BZ_OK) {
			int n = BZ2_bzRead(&e, b, buf, sizeof buf);
			if (n > 0)
				assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
		}
		assert_int_equal(e, BZ_STREAM_END);
		BZ2_bzReadClose(&e, b);
		fclose(in);
	}
	fclose(out);
}

static void test_random_real_samples(void **state)
{
	(void)state;
	const char *dir = getenv("IMGBK_TEST_DATA") ? getenv("IMGBK_TEST_DATA") : "test/data";
	char path[512];
	snprintf(path, sizeof path, "%s/partimage_ext2_stdout.pimg", dir);
	ra_check(path, NULL);
	/* the compressed samples are refused as they are ... */
	snprintf(path, sizeof path, "%s/partimage_ext2_z1.pimg.000", dir);
	ra_open_fails(path, IMG_E_FORMAT, "decompress", NULL);
	/* ... and read once decompressed */
	decompress_to(path, tpath("real_ext2.000"), 0);
	ra_check(tpath("real_ext2.000"), NULL);
	snprintf(path, sizeof path, "%s/partimage_fat16_z2.pimg.000", dir);
	decompress_to(path, tpath("real_fat.000"), 1);
	ra_check(tpath("real_fat.000"), NULL);
	/* the CRC-32 of partimage's own restore, through random reads */
	img_image *im = ra_open(tpath("real_fat.000"), 0, 1, NULL, 0, NULL);
	uint64_t size = img_get_info(im)->device_size;
	uint8_t *buf = malloc((size_t)size);
	size_t got;
	img_err err;
	assert_int_equal(img_read_at(im, 0, buf, (size_t)size, &got, &err), IMG_OK);
	assert_int_equal(got, size);
	assert_int_equal(crc32_fast(0, buf, got), 0x406fecf4);
	free(buf);
	img_close(im);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/imgbk-pi-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_samples),
		cmocka_unit_test(test_single_volume_shapes),
		cmocka_unit_test(test_info_fields),
		cmocka_unit_test(test_multi_volume_cuts),
		cmocka_unit_test(test_volume_set_errors),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_unsigned_sums),
		cmocka_unit_test(test_hostile_sizes),
		cmocka_unit_test(test_random_flips),
		cmocka_unit_test(test_random_single),
		cmocka_unit_test(test_random_multi),
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_random_volume_errors),
		cmocka_unit_test(test_random_index),
		cmocka_unit_test(test_random_real_samples),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

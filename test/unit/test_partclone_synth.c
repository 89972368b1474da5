/*
 * test/unit/test_partclone_synth.c - partclone images no machine here
 * produces, written by a small writer in this test from FORMATS.md: images
 * from big-endian and 32-bit creators, the NONE bitmap mode, imager-style
 * padding bits, format 0001 with the 8-byte CRC variants. Each is read back
 * through img_open and must give the device it was made from.
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
#include <xxhash.h>
#include <zlib.h>

#include "imgbk.h"
#include "helper_tmpdir.h"

static char tmpdir[64];

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_int(struct buf *b, uint64_t v, int size, int be)
{
	uint8_t t[8];
	for (int i = 0; i < size; i++)
		t[be ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
	put(b, t, (size_t)size);
}

struct synth {
	int be;
	unsigned cpu_bits;
	unsigned mode;     /* 0, 0x20, 0x30, 0x31 */
	uint32_t bpc;
	int reseed;
	int bitmap_none;
	int pad_bits;      /* set the padding bits of the last bitmap byte (imager) */
	uint32_t bs;
	uint64_t total;
};

static int used_block(uint64_t i, const struct synth *s)
{
	return s->bitmap_none || (i % 5 != 1 && i % 7 != 3);
}

static uint8_t *make_device(const struct synth *s, size_t *len)
{
	*len = s->total * s->bs + 100;  /* a tail beyond the blocks, as imager leaves */
	uint8_t *dev = calloc(1, *len);
	uint32_t x = 2463534242u;
	for (uint64_t i = 0; i < s->total; i++) {
		if (!used_block(i, s))
			continue;
		for (uint32_t k = 0; k < s->bs; k++) {
			x ^= x << 13; x ^= x >> 17; x ^= x << 5;
			dev[i * s->bs + k] = (uint8_t)(k < s->bs / 2 ? x : i);
		}
	}
	return dev;
}

/* The digest of everything hashed since the last reset, in stored byte order. */
struct hasher {
	unsigned mode;
	uLong crc;
	XXH64_state_t *x64;
	XXH3_state_t *x3;
};

static void hasher_reset(struct hasher *h)
{
	h->crc = crc32(0, NULL, 0);
	XXH64_reset(h->x64, 0);
	XXH3_128bits_reset(h->x3);
}

static void hasher_put_digest(struct hasher *h, struct buf *out, int be)
{
	if (h->mode == 0x20) {
		put_int(out, (uint32_t)~h->crc, 4, be);
	} else if (h->mode == 0x30) {
		put_int(out, XXH64_digest(h->x64), 8, be);
	} else {
		XXH128_hash_t d = XXH3_128bits_digest(h->x3);
		put_int(out, d.low64, 8, be);
		put_int(out, d.high64, 8, be);
	}
}

static struct buf write_v2(const struct synth *s, const uint8_t *dev)
{
	struct buf b = { 0 };
	uint64_t used = 0;
	for (uint64_t i = 0; i < s->total; i++)
		used += (uint64_t)used_block(i, s);
	unsigned csize = s->mode == 0x20 ? 4 : s->mode == 0x30 ? 8 : s->mode == 0x31 ? 16 : 0;
	put(&b, "partclone-image\0", 16);
	put(&b, "0.3.99\0\0\0\0\0\0\0\0", 14);
	put(&b, "0002", 4);
	put_int(&b, 0xC0DE, 2, s->be);
	put(&b, "EXTFS\0\0\0\0\0\0\0\0\0\0\0", 16);
	put_int(&b, s->total * s->bs + 100, 8, s->be);
	put_int(&b, s->total, 8, s->be);
	put_int(&b, used + 3, 8, s->be);  /* the fs's own count may differ: never an error */
	put_int(&b, used, 8, s->be);
	put_int(&b, s->bs, 4, s->be);
	put_int(&b, 18, 4, s->be);
	put_int(&b, 2, 2, s->be);
	put_int(&b, s->cpu_bits, 2, s->be);
	put_int(&b, s->mode, 2, s->be);
	put_int(&b, csize, 2, s->be);
	put_int(&b, csize ? s->bpc : 0, 4, s->be);
	uint8_t flags[2] = { (uint8_t)s->reseed, (uint8_t)(s->bitmap_none ? 0 : 1) };
	put(&b, flags, 2);
	put_int(&b, (uint32_t)~crc32(0, b.p, 106), 4, s->be);
	if (!s->bitmap_none) {
		size_t nbytes = (s->total + 7) / 8, word = s->cpu_bits / 8;
		size_t words = (nbytes + word - 1) / word;
		uint8_t *bits = calloc(words, word);
		for (uint64_t i = 0; i < s->total; i++)
			if (used_block(i, s))
				bits[i >> 3] |= (uint8_t)(1u << (i & 7));
		if (s->pad_bits)
			for (uint64_t i = s->total; i < nbytes * 8; i++)
				bits[i >> 3] |= (uint8_t)(1u << (i & 7));
		if (s->be)  /* native words of a big-endian machine */
			for (size_t w = 0; w < words; w++)
				for (size_t k = 0; k < word / 2; k++) {
					uint8_t t = bits[w * word + k];
					bits[w * word + k] = bits[w * word + word - 1 - k];
					bits[w * word + word - 1 - k] = t;
				}
		put(&b, bits, nbytes);
		put_int(&b, (uint32_t)~crc32(0, bits, (uInt)nbytes), 4, s->be);
		free(bits);
	}
	struct hasher h = { s->mode, 0, XXH64_createState(), XXH3_createState() };
	hasher_reset(&h);
	uint64_t in_group = 0;
	for (uint64_t i = 0; i < s->total; i++) {
		if (!used_block(i, s))
			continue;
		put(&b, dev + i * s->bs, s->bs);
		h.crc = crc32(h.crc, dev + i * s->bs, s->bs);
		XXH64_update(h.x64, dev + i * s->bs, s->bs);
		XXH3_128bits_update(h.x3, dev + i * s->bs, s->bs);
		if (csize && ++in_group == s->bpc) {
			hasher_put_digest(&h, &b, s->be);
			in_group = 0;
			if (s->reseed)
				hasher_reset(&h);
		}
	}
	if (csize && in_group)
		hasher_put_digest(&h, &b, s->be);
	XXH64_freeState(h.x64);
	XXH3_freeState(h.x3);
	return b;
}

/* Format 0001: byte bitmap, marker, block + cumulative first-byte CRC. */
static struct buf write_v1(const struct synth *s, const uint8_t *dev, int crc_bytes, int junk_first)
{
	struct buf b = { 0 };
	uint8_t h[4160] = { 0 };
	uint64_t used = 0;
	for (uint64_t i = 0; i < s->total; i++)
		used += (uint64_t)used_block(i, s);
	memcpy(h, "partclone-imageEXTFS", 20);
	memcpy(h + 30, "0001", 4);
	for (int i = 0; i < 4; i++)
		h[36 + i] = (uint8_t)(s->bs >> (8 * i));
	for (int i = 0; i < 8; i++) {
		h[40 + i] = (uint8_t)((s->total * s->bs + 100) >> (8 * i));
		h[48 + i] = (uint8_t)(s->total >> (8 * i));
		h[56 + i] = (uint8_t)(used >> (8 * i));
	}
	put(&b, h, sizeof h);
	for (uint64_t i = 0; i < s->total; i++) {
		uint8_t v = used_block(i, s) ? 1 : (i % 2 ? 0 : 2);  /* any value but 1 is unused */
		put(&b, &v, 1);
	}
	put(&b, "BiTmAgIc", 8);
	uLong crc = crc32(0, NULL, 0);
	uint8_t *fill = malloc(s->bs);
	for (uint64_t i = 0; i < s->total; i++) {
		if (!used_block(i, s))
			continue;
		put(&b, dev + i * s->bs, s->bs);
		memset(fill, dev[i * s->bs], s->bs);
		crc = crc32(crc, fill, s->bs);
		if (crc_bytes == 8 && junk_first)
			put(&b, "JUNK", 4);
		put_int(&b, (uint32_t)~crc, 4, 0);
		if (crc_bytes == 8 && !junk_first)
			put(&b, "junk", 4);
	}
	free(fill);
	return b;
}

static void check_reads_back(const char *name, struct buf img, const uint8_t *dev, size_t devlen,
			     const char *checksum)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img.p, 1, img.len, f), img.len);
	fclose(f);
	img_image *im;
	img_err err;
	if (img_open(path, NULL, &im, &err) != IMG_OK)
		fail_msg("%s: %s", name, err.msg);
	const img_info *in = img_get_info(im);
	assert_int_equal(in->device_size, devlen);
	assert_string_equal(in->checksum, checksum);
	uint8_t *out = calloc(1, devlen);
	img_run runs[64];
	size_t n;
	int rc;
	while ((rc = img_next_runs(im, runs, 64, &n)) == IMG_OK)
		for (size_t i = 0; i < n; i++)
			memcpy(out + runs[i].offset, runs[i].data, runs[i].len);
	if (rc != IMG_EOF)
		fail_msg("%s: walk ended with %d: %s", name, rc, img_error(im)->msg);
	assert_memory_equal(out, dev, devlen);
	free(out);
	img_close(im);
	free(img.p);
}

static void test_v2_variants(void **state)
{
	(void)state;
	static const struct synth cases[] = {
		{ 0, 64, 0x20, 7, 1, 0, 0, 512, 301 },
		/* Big-endian creators dump native words; only whole words keep every bit
		 * (a partial last word loses its low bytes), so these use whole words. */
		{ 1, 64, 0x20, 7, 1, 0, 0, 512, 320 },   /* big-endian, 64-bit words */
		{ 1, 32, 0x20, 5, 0, 0, 0, 1024, 160 },  /* big-endian, 32-bit, running CRC */
		{ 1, 32, 0x30, 3, 1, 0, 0, 512, 96 },    /* big-endian XXH64 */
		{ 1, 64, 0x31, 4, 0, 0, 0, 512, 128 },   /* big-endian XXH128, running */
		{ 0, 32, 0x31, 9, 1, 0, 0, 4096, 40 },   /* 32-bit creator */
		{ 0, 64, 0x20, 16, 1, 1, 0, 512, 64 },   /* NONE bitmap: every block stored */
		{ 0, 64, 0x20, 2048, 1, 0, 1, 512, 1953 }, /* imager: padding bits set */
		{ 0, 64, 0x00, 0, 1, 0, 0, 512, 200 },   /* no checksums */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t devlen;
		uint8_t *dev = make_device(&cases[i], &devlen);
		char name[32];
		snprintf(name, sizeof name, "v2_%zu.pc", i);
		const char *sum = cases[i].mode == 0x20 ? "CRC32" : cases[i].mode == 0x30 ? "XXH64"
				: cases[i].mode == 0x31 ? "XXH128" : "NONE";
		check_reads_back(name, write_v2(&cases[i], dev), dev, devlen, sum);
		free(dev);
	}
}

static void test_v1_variants(void **state)
{
	(void)state;
	struct synth s = { 0, 64, 0, 1, 0, 0, 0, 512, 123 };
	size_t devlen;
	uint8_t *dev = make_device(&s, &devlen);
	check_reads_back("v1_4.pc", write_v1(&s, dev, 4, 0), dev, devlen, "CRC32_0001");
	check_reads_back("v1_8a.pc", write_v1(&s, dev, 8, 0), dev, devlen, "CRC32_0001");
	check_reads_back("v1_8b.pc", write_v1(&s, dev, 8, 1), dev, devlen, "CRC32_0001");
	free(dev);
}

/* A big-endian image with one flipped data byte is caught. */
static void test_be_damage(void **state)
{
	(void)state;
	struct synth s = { 1, 64, 0x30, 4, 1, 0, 0, 512, 64 };
	size_t devlen;
	uint8_t *dev = make_device(&s, &devlen);
	struct buf img = write_v2(&s, dev);
	img.p[110 + 8 + 4 + 600] ^= 0x40;  /* inside the second used block */
	char path[600];
	snprintf(path, sizeof path, "%s/be_bad.pc", tmpdir);
	FILE *f = fopen(path, "wb");
	fwrite(img.p, 1, img.len, f);
	fclose(f);
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	img_run run;
	int rc;
	while ((rc = img_next_run(im, &run)) == IMG_OK)
		;
	assert_int_equal(rc, IMG_E_CHECKSUM);
	assert_non_null(strstr(img_error(im)->msg, "XXH64 checksum mismatch"));
	img_close(im);
	free(img.p);
	free(dev);
}

int main(void)
{
	if (test_tmpdir_make(tmpdir, sizeof tmpdir, "synth") != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_variants),
		cmocka_unit_test(test_v1_variants),
		cmocka_unit_test(test_be_damage),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	return test_tmpdir_remove(tmpdir) == 0 ? failed : 1;
}

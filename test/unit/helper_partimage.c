/*
 * test/unit/helper_partimage.c - the shared part of the partimage unit tests
 * (see helper_partimage.h): the synthetic writer, volumes, the temp
 * directory and the checked walk.
 *
 * Not for the library: only unit tests link it.
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
#include <zlib.h>

#include "helper_partimage.h"

/* ---- the synthetic writer ------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
uint64_t pih_rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

void pih_rnd_set_state(uint64_t state)
{
	rng_state = state;
}

static void put(struct pih_buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_str(struct pih_buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_le32(struct pih_buf *b, uint32_t v)
{
	uint8_t t[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, t, 4);
}

void pih_set_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void pih_set_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t pih_ssum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (uint32_t)(int32_t)(int8_t)p[i];
	return s;
}

/* A structure of n bytes followed by its signed byte sum. */
static void put_summed(struct pih_buf *b, const uint8_t *p, size_t n)
{
	put(b, p, n);
	put_le32(b, pih_ssum(p, n));
}

void pih_synth_build(struct pih_synth *s)
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
		int use = (int)(pih_rnd() % 100) < s->density;
		uint64_t run = 1 + pih_rnd() % 40;
		for (uint64_t k = 0; k < run && i < s->total; k++, i++) {
			if (!use)
				continue;
			bm[i / 8] |= (uint8_t)(1u << (i % 8));
			s->used++;
			for (uint32_t j = 0; j < s->bs; j += 8) {
				uint64_t r = pih_rnd();
				memcpy(s->dev + i * s->bs + j, &r, s->bs - j < 8 ? s->bs - j : 8);
			}
		}
		i--;
	}
	struct pih_buf *b = &s->img;
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
	pih_set_le32(h + 9548 + 20, 126);
	pih_set_le64(h + 9592, (uint64_t)devlen);
	snprintf((char *)h + 9600, 128, "host");
	snprintf((char *)h + 9728, 64, "0.6.1");
	pih_set_le32(h + 9792, (uint32_t)s->mbrs);
	pih_set_le32(h + 9796, 2048);
	put_summed(b, h, HS);
	put_str(b, "MAGIC-BEGIN-MBRBACKUP");
	for (int m = 0; m < s->mbrs; m++) {
		uint8_t mbr[2048] = { 0 };
		for (int i = 0; i < 512; i++)
			mbr[i] = (uint8_t)pih_rnd();
		pih_set_le32(mbr + 512, pih_ssum(mbr, 512));
		snprintf((char *)mbr + 516, 512, "/dev/synth");
		pih_set_le64(mbr + 1028, 123456);
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
	pih_set_le64(h, s->bs);
	pih_set_le64(h + 8, s->used);
	pih_set_le64(h + 16, s->total);
	pih_set_le64(h + 24, bmsize);
	h[40 + 63] = 0xF0;
	put_summed(b, h, HS);
	put_str(b, "MAGIC-BEGIN-BITMAP");
	s->bitmap_at = b->len;
	put(b, bm, bmsize);
	put_str(b, "MAGIC-BEGIN-INFO");
	s->info_at = b->len;
	memset(h, 0, HS);
	pih_set_le32(h, 2);
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
				pih_set_le32(chk + 4, (uint32_t)chunk_crc);
				pih_set_le64(chk + 8, i);
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
void pih_synth_seal(struct pih_synth *s, uint32_t last_volume)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < s->tail_magic_at + 16; i++)
		sum += s->img.p[i];
	pih_set_le64(s->img.p + s->tail_magic_at + 16, sum);
	pih_set_le32(s->img.p + s->tail_magic_at + 24, last_volume);
}

void pih_synth_free(struct pih_synth *s)
{
	free(s->dev);
	free(s->img.p);
}

void pih_volume_header(uint8_t *vh, uint32_t n, uint64_t ident)
{
	memset(vh, 0, VH);
	memcpy(vh, "PaRtImAgE-VoLuMe", 16);
	memcpy(vh + 32, "0.6.1", 5);
	pih_set_le32(vh + 96, n);
	pih_set_le64(vh + 100, ident);
}

void pih_write_file(const char *path, const uint8_t *p, size_t n, int gz)
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
 * offsets) into pih_tmpdir/name.000, .001, ... (gzip where gzmask has the bit).
 * With ncuts == 0 and plain_name, one file pih_tmpdir/name (a stdout-made image).
 */
void pih_write_volumes(struct pih_synth *s, const char *name, const size_t *cuts, size_t ncuts,
		       unsigned gzmask, int plain_name)
{
	pih_synth_seal(s, (uint32_t)ncuts);
	size_t from = 0;
	for (size_t v = 0; v <= ncuts; v++) {
		size_t to = v < ncuts ? cuts[v] : s->img.len;
		uint8_t *f = malloc(VH + (to - from));
		assert_non_null(f);
		pih_volume_header(f, (uint32_t)v, IDENT);
		memcpy(f + VH, s->img.p + from, to - from);
		char path[256];
		if (plain_name)
			snprintf(path, sizeof path, "%s/%s", pih_tmpdir, name);
		else
			snprintf(path, sizeof path, "%s/%s.%03zu", pih_tmpdir, name, v);
		pih_write_file(path, f, VH + (to - from), v < 32 && (gzmask >> v) & 1);
		free(f);
		from = to;
	}
}

const char *pih_tpath(const char *name)
{
	static char p[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", pih_tmpdir, name);
	return p[k];
}

/* Write the single-volume image with byte `at` (logical) XORed by x. */
const char *pih_damaged(struct pih_synth *s, const char *name, size_t at, uint8_t x)
{
	pih_synth_seal(s, 0);
	s->img.p[at] ^= x;
	uint8_t *f = malloc(VH + s->img.len);
	pih_volume_header(f, 0, IDENT);
	memcpy(f + VH, s->img.p, s->img.len);
	pih_write_file(pih_tpath(name), f, VH + s->img.len, 0);
	free(f);
	s->img.p[at] ^= x;
	return pih_tpath(name);
}

/* ---- the walk --------------------------------------------------------------- */

int pih_walk_batches;
size_t pih_largest_batch;

void pih_walk(const char *path, int verify, struct pih_walk *w)
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
		if (pih_walk_batches)
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
		if (n > pih_largest_batch)
			pih_largest_batch = n;
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

void pih_walk_free(struct pih_walk *w) { free(w->dev); }

/* The walk ends cleanly and restores exactly the synthetic device. */
static void expect_good_once(struct pih_synth *s, const char *path)
{
	struct pih_walk w;
	pih_walk(path, 1, &w);
	if (w.rc != IMG_EOF)
		print_error("unexpected: %s\n", w.err.msg);
	assert_int_equal(w.rc, IMG_EOF);
	assert_int_equal(w.checksum_errors, 0);
	assert_int_equal(w.blocks, s->used);
	assert_int_equal(w.devlen, (size_t)s->total * s->bs);
	assert_memory_equal(w.dev, s->dev, w.devlen);
	pih_walk_free(&w);
}

void pih_expect_good(struct pih_synth *s, const char *path)
{
	pih_walk_batches = 0;
	expect_good_once(s, path);
	pih_walk_batches = 1;
	expect_good_once(s, path);
	pih_walk_batches = 0;
}

/* The walk (or open) fails with `code` and the message contains `needle`. */
static void expect_fail_once(const char *path, int code, const char *needle)
{
	struct pih_walk w;
	pih_walk(path, 1, &w);
	int got = w.checksum_errors ? IMG_E_CHECKSUM : w.rc;
	if (got != code || (needle && !strstr(w.err.msg, needle)))
		print_error("got %d (%s), want %d with \"%s\"\n", got, w.err.msg, code,
			    needle ? needle : "");
	assert_int_equal(got, code);
	if (needle)
		assert_non_null(strstr(w.err.msg, needle));
	pih_walk_free(&w);
}

/* Same, walked one run at a time and in batches. */
void pih_expect_fail(const char *path, int code, const char *needle)
{
	pih_walk_batches = 0;
	expect_fail_once(path, code, needle);
	pih_walk_batches = 1;
	expect_fail_once(path, code, needle);
	pih_walk_batches = 0;
}

/* ---- the group fixture ----------------------------------------------------- */
char pih_tmpdir[64];

int pih_setup(void **state)
{
	(void)state;
	snprintf(pih_tmpdir, sizeof pih_tmpdir, "/tmp/imgbk-pi-XXXXXX");
	return mkdtemp(pih_tmpdir) ? 0 : -1;
}

int pih_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pih_tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}


/*
 * test/unit/test_ntfsclone_access.c - unit tests of ntfsclone random access
 * (img_random_open / img_read_at, formats/ntfsclone_access.c) against the
 * sequential walk: synthetic images from the writer of helper_ntfsclone.c,
 * metadata images that go back and forth, the real fixtures in test/data
 * (decompressed here first; the .gz itself is refused), saved / loaded /
 * tampered index files, reads from several threads, damaged images and
 * hostile index payloads. Reads are drawn from a fixed, printed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io/zseek.h"
#include "formats/fmt.h"
#include "helper_ntfsclone.h"

/* ---- random access (ntfsclone_access.c) ----------------------------------- */
static uint64_t xr(uint64_t *s)  /* splitmix64 */
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#define RA_SEED 20240611u

/* The device a sequential walk (img_next_runs into memory) restores. */
static uint8_t *seq_device(const char *path, uint64_t *size)
{
	struct nch_walk w;
	img_err err;
	assert_int_equal(nch_walk_file(path, 256, &w, &err), IMG_OK);
	assert_int_equal(w.rc, IMG_EOF);
	assert_non_null(w.dev);
	*size = w.dev_size;
	return w.dev;
}

/* One random read as the checks draw it: small, cluster-sized, up to 1 MiB
 * or up to 4 MiB, at any offset (sometimes aligned, sometimes past the end). */
static void draw_read(uint64_t *s, uint64_t size, uint32_t cs, uint64_t *off, size_t *len)
{
	switch (xr(s) % 4) {
	case 0: *len = 1 + (size_t)(xr(s) % 16); break;
	case 1: *len = 1 + (size_t)(xr(s) % (3 * (uint64_t)cs)); break;
	case 2: *len = 1 + (size_t)(xr(s) % ((uint64_t)1 << 20)); break;
	default: *len = 1 + (size_t)(xr(s) % ((uint64_t)4 << 20)); break;
	}
	*off = xr(s) % (size + 2 * (uint64_t)cs);
	if (xr(s) % 3 == 0)
		*off -= *off % cs;
}

/* @return the number of reads that failed or differed from ref. */
static int random_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed, int n)
{
	uint32_t cs = img_get_info(im)->block_size;
	uint8_t *buf = malloc(((size_t)4 << 20) + 16);
	if (!buf)
		return n;
	int bad = 0;
	for (int i = 0; i < n; i++) {
		uint64_t off;
		size_t len, got;
		draw_read(&seed, size, cs, &off, &len);
		img_err err;
		int rc = img_read_at(im, off, buf, len, &got, &err);
		size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		if (rc != IMG_OK || got != want || memcmp(buf, ref + (off < size ? off : 0), got) != 0)
			bad++;
	}
	free(buf);
	return bad;
}

/* The whole device read in steps of `step` bytes equals ref. */
static void sweep_reads(img_image *im, const uint8_t *ref, uint64_t size, size_t step)
{
	uint8_t *buf = malloc(step);
	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += step) {
		size_t got;
		img_err err;
		assert_int_equal(img_read_at(im, off, buf, step, &got, &err), IMG_OK);
		assert_int_equal(got, size - off < step ? size - off : step);
		if (memcmp(buf, ref + off, got) != 0)
			fail_msg("bytes differ in [%llu, +%zu)", (unsigned long long)off, got);
	}
	free(buf);
}

struct reader {
	img_image *im;
	const uint8_t *ref;
	uint64_t size, seed;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->bad = random_reads(r->im, r->ref, r->size, r->seed, 300);
	return NULL;
}

static void threaded_reads(img_image *im, const uint8_t *ref, uint64_t size, uint64_t seed)
{
	enum { NT = 6 };
	pthread_t t[NT];
	struct reader r[NT];
	for (int i = 0; i < NT; i++) {
		r[i] = (struct reader){ im, ref, size, seed + 1000 * (uint64_t)(i + 1), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (r[i].bad)
			fail_msg("thread %d: %d of 300 reads differ (seed %llu)", i, r[i].bad,
				 (unsigned long long)r[i].seed);
	}
}

struct progress_log {
	uint64_t calls, last_done, total;
	int backwards;
};

static void progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct progress_log *p = ctx;
	if (p->calls && done < p->last_done)
		p->backwards = 1;
	p->calls++;
	p->last_done = done;
	p->total = total;
}

static img_image *random_open_path(const char *path, int save, int want_state)
{
	img_image *im;
	img_err err;
	assert_int_equal(img_open(path, NULL, &im, &err), IMG_OK);
	img_random_options o;
	img_random_options_init(&o);
	o.save = save;
	struct progress_log pl = { 0 };
	o.progress = progress_cb;
	o.progress_ctx = &pl;
	int state = -1;
	int rc = img_random_open(im, &o, &state);
	if (rc != IMG_OK)
		fail_msg("%s: img_random_open: %s", path, img_error(im)->msg);
	if (want_state >= 0 && state != want_state)
		fail_msg("%s: index state %d, expected %d", path, state, want_state);
	if (state != 1) {  /* built: progress reached the image size, never went back */
		assert_true(pl.calls >= 2);
		assert_false(pl.backwards);
		assert_int_equal(pl.last_done, pl.total);
	}
	return im;
}

/* Everything random access promises, on the image at `path`. */
static void random_suite(const char *path)
{
	uint64_t size;
	uint8_t *ref = seq_device(path, &size);
	char idx[700];
	snprintf(idx, sizeof idx, "%s.ibkx", path);
	unlink(idx);
	print_message("    %s: random reads, seed %u\n", path, RA_SEED);

	/* built and saved next to the image */
	img_image *im = random_open_path(path, 1, 2);
	assert_string_equal(img_index_path(im), idx);
	assert_int_equal(access(idx, R_OK), 0);
	sweep_reads(im, ref, size, (size_t)1 << 20);
	sweep_reads(im, ref, size, 4097);
	assert_int_equal(random_reads(im, ref, size, RA_SEED, 400), 0);
	threaded_reads(im, ref, size, RA_SEED);
	img_close(im);

	/* loaded: the same bytes */
	im = random_open_path(path, 1, 1);
	sweep_reads(im, ref, size, 65536 + 3);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 1, 400), 0);
	threaded_reads(im, ref, size, RA_SEED + 7);
	img_close(im);

	/* a byte of the index flipped: ignored, rebuilt */
	FILE *f = fopen(idx, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long isz = ftell(f);
	assert_true(isz > 80);
	assert_int_equal(fseek(f, isz / 2, SEEK_SET), 0);
	int c = fgetc(f);
	assert_int_equal(fseek(f, isz / 2, SEEK_SET), 0);
	fputc(c ^ 0x20, f);
	fclose(f);
	im = random_open_path(path, 1, -1);
	sweep_reads(im, ref, size, (size_t)1 << 20);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 2, 200), 0);
	img_close(im);
	im = random_open_path(path, 1, 1);  /* the rebuilt index was saved again */
	img_close(im);

	/* save = 0: built, nothing written */
	unlink(idx);
	im = random_open_path(path, 0, 0);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 3, 100), 0);
	assert_int_equal(access(idx, F_OK), -1);
	img_close(im);
	free(ref);
}

/* A metadata-style image: segments at random places, going back and forth,
 * overwriting each other; each segment writes its own generation. */
static void build_random_meta(struct nch_wbuf *b, uint64_t seed)
{
	const uint64_t nr = 3000;
	struct nch_hdr h = { 10, 1, 512, (nr + 1) * 512, nr, 0, 56 };
	memset(b, 0, sizeof *b);
	nch_w_header(b, &h);
	uint64_t pos = 0;
	for (unsigned seg = 0; seg < 400; seg++) {
		uint64_t p = xr(&seed) % nr;
		if (xr(&seed) % 4 == 0)
			p = pos < nr ? pos : p;  /* continue where the last one ended */
		uint64_t len = 1 + xr(&seed) % 40;
		if (len > nr - p)
			len = nr - p;
		if (p != pos)
			nch_w_gap(b, (int64_t)p - (int64_t)pos);
		for (uint64_t c = p; c < p + len; c++)
			nch_w_next(b, c, 512, seg % 200);
		pos = p + len;
	}
	if (pos != nr)
		nch_w_gap(b, (int64_t)nr - (int64_t)pos);
	nch_w_next(b, nr, 512, 0);
}

static void test_random_synthetic(void **state)
{
	(void)state;
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_v101(&b, &e, 512);
	random_suite(nch_save_tmp("ra_full.nc", b.p, b.len));
	free(b.p);
	free(e.dev);
	nch_build_v101(&b, &e, 100);
	random_suite(nch_save_tmp("ra_partial.nc", b.p, b.len));
	free(b.p);
	free(e.dev);
	nch_build_large(&b, &e);
	random_suite(nch_save_tmp("ra_large.nc", b.p, b.len));
	free(b.p);
	free(e.dev);

	/* 10.0 ending with a GAP; a device longer than the volume */
	memset(&b, 0, sizeof b);
	struct nch_hdr h0 = { 10, 0, 1024, 8 * 1024 + 512, 8, 2, 56 };
	nch_w_header(&b, &h0);
	nch_w_next(&b, 0, 1024, 0);
	nch_w_gap(&b, 2);
	nch_w_next(&b, 3, 1024, 0);
	nch_w_next(&b, 4, 1024, 0);
	nch_w_gap(&b, 3);
	random_suite(nch_save_tmp("ra_v100.nc", b.p, b.len));
	free(b.p);

	/* the empty backup boot sector record */
	memset(&b, 0, sizeof b);
	struct nch_hdr h1 = { 10, 1, 512, 4 * 512, 4, 1, 56 };
	nch_w_header(&b, &h1);
	nch_w_next(&b, 0, 512, 0);
	nch_w_gap(&b, 3);
	nch_put(&b, "\x01", 1);
	random_suite(nch_save_tmp("ra_empty_last.nc", b.p, b.len));
	free(b.p);
}

static void test_random_metadata(void **state)
{
	(void)state;
	/* the small metadata stream of test_negative_gap */
	struct nch_wbuf b = { 0 };
	struct nch_hdr h = { 10, 1, 512, 9 * 512, 8, 6, 56 };
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 512, 0);
	nch_w_next(&b, 1, 512, 0);
	nch_w_gap(&b, 4);
	nch_w_next(&b, 6, 512, 0);
	nch_w_gap(&b, -5);
	nch_w_next(&b, 2, 512, 0);
	nch_w_gap(&b, -2);
	nch_w_next(&b, 1, 512, 1);
	nch_w_gap(&b, 6);
	nch_w_next(&b, 8, 512, 0);
	random_suite(nch_save_tmp("ra_meta.nc", b.p, b.len));
	free(b.p);
	for (uint64_t seed = 1; seed <= 3; seed++) {
		build_random_meta(&b, RA_SEED + seed);
		char name[64];
		snprintf(name, sizeof name, "ra_meta_%llu.nc", (unsigned long long)seed);
		random_suite(nch_save_tmp(name, b.p, b.len));
		free(b.p);
	}
}

/* gunzip src to a temp file (the reference: the same image uncompressed). */
static const char *gunzip_tmp(const char *src, const char *name)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/%s", nch_tmpdir, name);
	gzFile in = gzopen(src, "rb");
	assert_non_null(in);
	FILE *out = fopen(path, "wb");
	assert_non_null(out);
	char buf[65536];
	int n;
	while ((n = gzread(in, buf, sizeof buf)) > 0)
		assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
	assert_int_equal(n, 0);
	gzclose(in);
	assert_int_equal(fclose(out), 0);
	return path;
}

static void test_random_fixtures(void **state)
{
	(void)state;
	static const char *const names[] = { "ntfsclone_2m", "ntfsclone_partial",
					     "ntfsclone_partial_meta" };
	const char *dir = getenv("IMGBK_TEST_DATA");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char src[600], name[64];
		snprintf(src, sizeof src, "%s/%s.nc.gz", dir ? dir : "test/data", names[i]);
		snprintf(name, sizeof name, "%s.nc", names[i]);
		const char *path = gunzip_tmp(src, name);
		random_suite(path);
		/* the .gz itself, read through its access points (every 64 KiB) */
		char gz[700], cmd[1500];
		snprintf(gz, sizeof gz, "%s/%s.nc.gz", nch_tmpdir, names[i]);
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, gz);
		assert_int_equal(system(cmd), 0);
		zs_set_first_span(65536);
		random_suite(gz);
		zs_set_first_span(0);
	}
}

/* The payload of a saved index is checked in full: bad ones are rebuilt. */
static void test_random_payload_checks(void **state)
{
	(void)state;
	struct nch_wbuf b;
	build_random_meta(&b, RA_SEED + 9);
	const char *path = nch_save_tmp("ra_payload.nc", b.p, b.len);
	uint64_t size;
	uint8_t *ref = seq_device(path, &size);
	img_image *im = random_open_path(path, 0, 0);
	img_random_options o;
	img_random_options_init(&o);
	uint8_t *good = NULL, *p = NULL;
	size_t glen = 0, plen = 0;
	/* a build returns the payload */
	assert_int_equal(im->fmt->random_open(im, &o, NULL, 0, &good, &glen), IMG_OK);
	assert_non_null(good);
	assert_true(glen >= 64 && (glen - 64) % 24 == 0);
	assert_memory_equal(good, "NCIX", 4);
	/* a good payload is taken as it is: nothing to save */
	assert_int_equal(im->fmt->random_open(im, &o, good, glen, &p, &plen), IMG_OK);
	assert_null(p);
	assert_int_equal(random_reads(im, ref, size, RA_SEED, 100), 0);
	uint8_t *m = malloc(glen + 24);
	assert_non_null(m);
	/* field edits that must be refused (the result is a rebuild: the good payload) */
	static const struct { size_t at; uint64_t v; int width; } edits[] = {
		{ 0, 'X', 1 },            /* magic */
		{ 4, 2, 4 },              /* version */
		{ 8, 1024, 4 },           /* cluster size */
		{ 12, 60, 4 },            /* offset to data */
		{ 16, 2999, 8 },          /* nr_clusters */
		{ 24, 12345, 8 },         /* device size */
		{ 32, (uint32_t)-4, 4 },  /* stop code TRUNCATED without stop offset = size */
		{ 32, 7, 4 },             /* unknown stop code */
		{ 36, 1, 4 },             /* flags without a stop */
		{ 56, 0, 8 },             /* run count */
		{ 56, UINT64_MAX / 8, 8 },
		{ 64 + 8, 0, 8 },         /* count 0 */
		{ 64 + 16, 1, 8 },        /* offset inside the header */
		{ 64 + 16, UINT64_MAX - 5, 8 },
		{ 64 + 8, UINT64_MAX, 8 },
		{ 64 + 24, 0, 8 },        /* second run starts inside the first / not ascending */
		{ 64 + 24 + 16, 1ull << 40, 8 },  /* data past the end of the image */
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		memcpy(m, good, glen);
		for (int k = 0; k < edits[i].width; k++)
			m[edits[i].at + k] = (uint8_t)(edits[i].v >> (8 * k));
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, m, glen, &p, &plen), IMG_OK);
		if (!p)
			fail_msg("edit %zu (byte %zu) was accepted", i, edits[i].at);
		assert_int_equal(plen, glen);
		assert_memory_equal(p, good, glen);
		free(p);
	}
	/* wrong lengths */
	for (size_t len = 0; len < 70; len += 7) {
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, good, len, &p, &plen), IMG_OK);
		assert_non_null(p);
		free(p);
	}
	memcpy(m, good, glen);
	p = NULL;
	assert_int_equal(im->fmt->random_open(im, &o, m, glen + 24, &p, &plen), IMG_OK);
	assert_non_null(p);
	free(p);
	/* random byte flips: refused (rebuilt), or taken when still consistent;
	 * never a crash, never a read outside the image */
	uint64_t s = RA_SEED;
	for (int i = 0; i < 2000; i++) {
		memcpy(m, good, glen);
		m[xr(&s) % glen] ^= (uint8_t)(1u << (xr(&s) % 8));
		p = NULL;
		assert_int_equal(im->fmt->random_open(im, &o, m, glen, &p, &plen), IMG_OK);
		if (p) {
			assert_memory_equal(p, good, glen);
			free(p);
		} else {
			uint8_t buf[3000];
			size_t got;
			img_err err;
			for (int k = 0; k < 4; k++) {
				uint64_t off = xr(&s) % size;
				int rc = img_read_at(im, off, buf, sizeof buf, &got, &err);
				assert_true(rc == IMG_OK || rc == IMG_E_TRUNCATED || rc == IMG_E_CORRUPT);
			}
		}
	}
	/* back to the good one */
	assert_int_equal(im->fmt->random_open(im, &o, good, glen, &p, &plen), IMG_OK);
	assert_int_equal(random_reads(im, ref, size, RA_SEED + 5, 100), 0);
	img_close(im);
	free(m);
	free(good);
	free(ref);
	free(b.p);
}

/* Read cluster c (cs bytes); @return the status, err filled. */
static int read_cluster(img_image *im, uint64_t c, uint8_t *buf, img_err *err)
{
	size_t got;
	uint32_t cs = img_get_info(im)->block_size;
	return img_read_at(im, c * cs, buf, cs, &got, err);
}

static void test_random_damaged(void **state)
{
	(void)state;
	struct nch_wbuf b;
	struct nch_expect e;
	nch_build_large(&b, &e);
	const uint64_t nr = 3000;
	uint8_t buf[4096];
	img_err err;
	/* cut in the middle, inside a record's data and right after a command byte */
	for (int variant = 0; variant < 3; variant++) {
		size_t cut = variant == 0 ? b.len / 2 : variant == 1 ? 56 + 1 + 4096 / 2 : b.len - 3585;
		const char *path = nch_save_tmp("ra_cut.nc", b.p, cut);
		char idx[700];
		snprintf(idx, sizeof idx, "%s.ibkx", path);
		unlink(idx);
		for (int pass = 0; pass < 2; pass++) {  /* built, then loaded */
			img_image *im = random_open_path(path, 1, pass ? 1 : 2);
			uint64_t first_bad = UINT64_MAX;
			for (uint64_t c = 0; c <= nr; c++) {
				int rc = read_cluster(im, c, buf, &err);
				if (rc == IMG_OK) {
					if (first_bad != UINT64_MAX)
						fail_msg("cluster %llu reads after the cut at %llu",
							 (unsigned long long)c, (unsigned long long)first_bad);
					size_t n = c == nr ? 3584 : 4096;
					assert_memory_equal(buf, e.dev + c * 4096, n);
				} else {
					assert_int_equal(rc, IMG_E_TRUNCATED);
					assert_true(err.has_offset);
					assert_int_equal(err.offset, cut);
					assert_non_null(strstr(err.msg, "truncated"));
					if (first_bad == UINT64_MAX)
						first_bad = c;
				}
			}
			assert_true(first_bad < nr + 1);
			if (variant == 1)
				assert_int_equal(first_bad, 0);
			if (variant == 2)
				assert_int_equal(first_bad, nr);
			/* a read across the cut fails too; one before it works */
			size_t got;
			if (first_bad > 0) {
				assert_int_equal(img_read_at(im, (first_bad - 1) * 4096, buf, 4096, &got,
							     &err), IMG_OK);
				uint8_t two[8192];
				assert_int_equal(img_read_at(im, (first_bad - 1) * 4096, two, 8192, &got,
							     &err), IMG_E_TRUNCATED);
			}
			img_close(im);
		}
	}
	free(e.dev);
	free(b.p);

	/* a bad command byte after two clusters: 0 and 1 read, the rest does not */
	memset(&b, 0, sizeof b);
	struct nch_hdr h = { 10, 1, 512, 9 * 512, 8, 3, 56 };
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 512, 0);
	nch_w_next(&b, 1, 512, 0);
	nch_put(&b, "\x07", 1);  /* at 56 + 2 * 513 = 1082 */
	nch_w_next(&b, 2, 512, 0);
	img_image *im = random_open_path(nch_save_tmp("ra_bad.nc", b.p, b.len), 0, 0);
	for (uint64_t c = 0; c < 9; c++) {
		int rc = read_cluster(im, c, buf, &err);
		if (c < 2) {
			assert_int_equal(rc, IMG_OK);
			for (size_t i = 0; i < 512; i++)
				assert_int_equal(buf[i], nch_pattern(c, i, 0));
		} else {
			assert_int_equal(rc, IMG_E_CORRUPT);
			assert_int_equal(err.offset, 1082);
			assert_non_null(strstr(err.msg, "damaged"));
		}
	}
	img_close(im);
	free(b.p);

	/* a metadata image cut after going backwards: nothing reads */
	memset(&b, 0, sizeof b);
	nch_w_header(&b, &h);
	nch_w_next(&b, 0, 512, 0);
	nch_w_gap(&b, 5);
	nch_w_next(&b, 6, 512, 0);
	nch_w_gap(&b, -5);
	nch_w_next(&b, 2, 512, 0);
	b.len -= 10;
	im = random_open_path(nch_save_tmp("ra_meta_cut.nc", b.p, b.len), 0, 0);
	for (uint64_t c = 0; c < 9; c++) {
		assert_int_equal(read_cluster(im, c, buf, &err), IMG_E_TRUNCATED);
		assert_int_equal(err.offset, b.len);
	}
	img_close(im);
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_synthetic),
		cmocka_unit_test(test_random_metadata),
		cmocka_unit_test(test_random_fixtures),
		cmocka_unit_test(test_random_payload_checks),
		cmocka_unit_test(test_random_damaged),
	};
	return cmocka_run_group_tests(tests, nch_setup, nch_teardown);
}

/*
 * test/fuzz/fuzz_index.c - libFuzzer target for the saved index file
 * (formats/blkindex.c) and the payload a format takes from it.
 *
 * Input: byte 0 = flags, the rest = bytes of the index file or its payload.
 *   bit 0 = 0  raw: the bytes are the whole index file, loaded with
 *              blkindex_load against a made-up identity. With bit 1 the
 *              header's identity fields, length and checksum are patched to
 *              match, so the loader must accept and return the payload;
 *              without it the loader must reject (garbage is ignored).
 *   bit 0 = 1  payload: a real index header of a fixture image with the
 *              bytes as payload (checksum recomputed unless bit 2), then
 *              img_random_open(index_path = that file) and reads at offsets
 *              derived from the input, compared with the bytes of a
 *              sequential walk. Bits 1 and 3 pick the fixture:
 *                0  test/data/xxh64_fat16_k64.pc (reseeded XXH64)
 *                1  v0001_minix2.pc (format 0001)
 *                2  xxh64_ext2_1k_k7_noreseed.pc (running XXH64: the
 *                   payload holds hash states)
 *                3  xxh64_fat16_k64.pc under gzip (the payload holds the
 *                   access points and their CRCs)
 *              Every fixture carries data checksums, and random reads check
 *              every byte they hand out against them (format 0001: the
 *              bytes its CRC covers, and its map is compared with the
 *              bitmap), so even an index forged with a valid checksum may
 *              make a read fail but never return wrong bytes: asserted.
 *              (Where only the index checks the bytes, e.g. a compressed
 *              ntfsclone image, a forged index is not detected: the man
 *              page says so.)
 *
 * Fixtures come from $IMGBK_TEST_DATA (default test/data).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zlib.h>

#include "formats/blkindex.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

struct index_fixture {
	const char *name;
	char path[600];       /* the copy in the scratch folder */
	char idx_path[700];   /* where each input's index file goes */
	uint8_t head[BLKINDEX_HEADER];  /* the real index header */
	uint8_t *device;      /* the partition bytes, from a sequential walk */
	uint64_t device_size;
	int gzip;             /* the copy is gzip-compressed */
	int ready;            /* 1 ok, -1 cannot be used */
};

static struct index_fixture index_fix[4] = { { .name = "xxh64_fat16_k64.pc" },
					     { .name = "v0001_minix2.pc" },
					     { .name = "xxh64_ext2_1k_k7_noreseed.pc" },
					     { .name = "xxh64_fat16_k64.pc", .gzip = 1 } };

static void index_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *index_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *b = NULL;
	size_t cap = 0, n = 0, got;
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			uint8_t *nb = realloc(b, cap);
			if (!nb) {
				free(b);
				fclose(f);
				return NULL;
			}
			b = nb;
		}
		got = fread(b + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*len = n;
	return b;
}

/* Write data gzip-compressed (one member, as gzip writes it). @return 0 or -1. */
static int index_write_gzip(const char *path, const uint8_t *data, size_t len)
{
	gzFile z = gzopen(path, "wb6");
	if (!z)
		return -1;
	int ok = gzwrite(z, data, (unsigned)len) == (int)len;
	return gzclose(z) == Z_OK && ok ? 0 : -1;
}

/* The flag byte of a payload input for fixture fx. */
static uint8_t index_flags_of(const struct index_fixture *fx)
{
	int i = (int)(fx - index_fix);
	return (uint8_t)(1 | (i & 1) << 1 | (i & 2) << 2);
}

/* Copy the fixture, walk it, save its real index. */
static int index_fixture_setup(struct index_fixture *fx)
{
	const char *dir = getenv("IMGBK_TEST_DATA");
	char src[600], good[640];
	snprintf(src, sizeof src, "%s/%s", dir && *dir ? dir : "test/data", fx->name);
	size_t len;
	uint8_t *img = index_slurp(src, &len);
	if (!img)
		return -1;
	snprintf(fx->path, sizeof fx->path, "%s/fix-%s%s", fuzz_dir(), fx->name, fx->gzip ? ".gz" : "");
	snprintf(fx->idx_path, sizeof fx->idx_path, "%s.fuzz.ibkx", fx->path);
	snprintf(good, sizeof good, "%s.good.ibkx", fx->path);
	int wr = fx->gzip ? index_write_gzip(fx->path, img, len) : fuzz_write(fx->path, img, len);
	free(img);
	if (wr != 0)
		return -1;
	img_err err;
	img_image *im;
	if (img_open(fx->path, NULL, &im, &err) != IMG_OK)
		return -1;
	fx->device_size = img_get_info(im)->device_size;
	fx->device = fx->device_size <= ((uint64_t)64 << 20) ? calloc(1, fx->device_size + 1) : NULL;
	img_run run;
	int rc;
	while (fx->device && (rc = img_next_run(im, &run)) == IMG_OK)
		if (run.offset + run.len <= fx->device_size)
			memcpy(fx->device + run.offset, run.data, run.len);
	img_close(im);
	if (!fx->device || rc != IMG_EOF)
		return -1;
	img_random_options o;
	img_random_options_init(&o);
	o.index_path = good;
	int state = -1;
	if (img_open(fx->path, NULL, &im, &err) != IMG_OK)
		return -1;
	rc = img_random_open(im, &o, &state);
	img_close(im);
	uint8_t *idx = rc == IMG_OK && state == 2 ? index_slurp(good, &len) : NULL;
	if (!idx || len < BLKINDEX_HEADER + 8) {
		free(idx);
		return -1;
	}
	memcpy(fx->head, idx, BLKINDEX_HEADER);
	const char *seeds = getenv("IMGBK_FUZZ_INDEX_SEEDS");  /* make fuzz: seed corpus */
	if (seeds && *seeds) {
		char out[700];
		snprintf(out, sizeof out, "%s/payload-%s%s", seeds, fx->name, fx->gzip ? ".gz" : "");
		idx[BLKINDEX_HEADER - 1] = index_flags_of(fx);  /* flag byte before the payload */
		fuzz_write(out, idx + BLKINDEX_HEADER - 1, len - BLKINDEX_HEADER - 8 + 1);
		idx[BLKINDEX_HEADER - 1] = fx->head[BLKINDEX_HEADER - 1];
		snprintf(out, sizeof out, "%s/raw-%s%s", seeds, fx->name, fx->gzip ? ".gz" : "");
		uint8_t *raw = malloc(len + 1);
		if (raw) {
			raw[0] = 0;
			memcpy(raw + 1, idx, len);
			fuzz_write(out, raw, len + 1);
			free(raw);
		}
	}
	free(idx);
	return 0;
}

static void index_raw(const uint8_t *data, size_t size, int patch)
{
	struct blkindex_id id = { .size = 123456789, .mtime_ns = 1700000000123456789LL,
				  .header_hash = 0x1122334455667788ull };
	snprintf(id.format, sizeof id.format, "partclone");
	uint32_t interval = 1024;
	uint8_t *file = malloc(size + 1);
	memcpy(file, data, size);
	int expect_ok = 0;
	if (patch && size >= BLKINDEX_HEADER + 8) {
		memcpy(file, BLKINDEX_MAGIC, 8);
		index_put64(file + 8, (uint64_t)BLKINDEX_VERSION | (uint64_t)interval << 32);
		memset(file + 16, 0, 16);
		memcpy(file + 16, id.format, strlen(id.format));
		memset(file + 32, 0, 8);  /* no states after the checked part */
		index_put64(file + 40, id.size);
		index_put64(file + 48, (uint64_t)id.mtime_ns);
		index_put64(file + 56, id.header_hash);
		index_put64(file + 64, size - BLKINDEX_HEADER - 8);
		index_put64(file + size - 8, XXH64(file, size - 8, 0));
		expect_ok = 1;
	}
	char path[600];
	fuzz_path(path, sizeof path, "raw.ibkx");
	if (fuzz_write(path, file, size) != 0) {
		free(file);
		return;
	}
	uint8_t *payload = NULL;
	size_t plen = 0;
	blkindex_load(path, &id, interval, &payload, &plen);
	if (expect_ok) {
		FUZZ_CHECK(payload != NULL, "a matching index was rejected");
		FUZZ_CHECK(plen == size - BLKINDEX_HEADER - 8, "payload length %zu", plen);
		FUZZ_CHECK(memcmp(payload, file + BLKINDEX_HEADER, plen) == 0, "payload differs");
	} else {
		FUZZ_CHECK(payload == NULL, "garbage accepted as an index (%zu bytes)", size);
	}
	free(payload);
	free(file);
}

static void index_payload(const uint8_t *data, size_t size, struct index_fixture *fx, int bad_sum)
{
	if (!fx->ready)
		fx->ready = index_fixture_setup(fx) == 0 ? 1 : -1;
	if (fx->ready < 0)
		return;
	size_t total = BLKINDEX_HEADER + size + 8;
	uint8_t *file = malloc(total);
	memcpy(file, fx->head, BLKINDEX_HEADER);
	memcpy(file + BLKINDEX_HEADER, data, size);
	index_put64(file + 64, size);
	index_put64(file + total - 8, XXH64(file, total - 8, 0) ^ (bad_sum ? 1 : 0));
	int wr = fuzz_write(fx->idx_path, file, total);
	free(file);
	if (wr != 0)
		return;
	img_err err;
	img_image *im;
	FUZZ_CHECK(img_open(fx->path, NULL, &im, &err) == IMG_OK, "fixture: %s", err.msg);
	img_random_options o;
	img_random_options_init(&o);
	o.index_path = fx->idx_path;
	o.save = 0;
	int state = -1;
	int rc = img_random_open(im, &o, &state);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, img_error(im), "fix-");
		img_close(im);
		return;
	}
	FUZZ_CHECK(!bad_sum || state != 1, "an index with a bad checksum was loaded");
	uint64_t seed = fuzz_hash(data, size);
	uint8_t buf[8192];
	for (int k = 0; k < 24; k++) {
		uint64_t off = fuzz_rand(&seed) % (fx->device_size + 1024);
		size_t len = (size_t)(fuzz_rand(&seed) % sizeof buf), got = 0;
		img_err e;
		rc = img_read_at(im, off, buf, len, &got, &e);
		if (rc != IMG_OK) {
			fuzz_check_err(rc, &e, "fix-");
			/* a compressed image takes its access points from the index
			 * even when the format's part of it was rebuilt */
			FUZZ_CHECK(state == 1 || fx->gzip, "read_at with a rebuilt index failed: %s",
				   e.msg);
			continue;
		}
		size_t exp = off >= fx->device_size ? 0
			     : (fx->device_size - off < len ? (size_t)(fx->device_size - off) : len);
		FUZZ_CHECK(got == exp, "read_at at %llu: %zu bytes, want %zu", (unsigned long long)off, got,
			   exp);
		FUZZ_CHECK(!got || memcmp(buf, fx->device + off, got) == 0,
			   "%s: wrong bytes at %llu handed out as good (index %s, %zu-byte payload)",
			   fx->path, (unsigned long long)off, state == 1 ? "loaded" : "rebuilt", size);
	}
	img_close(im);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	if (flags & 1)
		index_payload(data + 1, size - 1, &index_fix[(flags >> 1 & 1) | (flags >> 2 & 2)],
			      flags & 4);
	else
		index_raw(data + 1, size - 1, flags & 2);
	return 0;
}

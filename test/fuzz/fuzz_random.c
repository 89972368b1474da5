/*
 * test/fuzz/fuzz_random.c - libFuzzer target for the random-access read
 * path: the input is written to a file, opened with img_open, walked once
 * sequentially (the reference bytes), then opened again for img_random_open
 * and read at many offsets derived from the input with img_read_at.
 *
 * Input: byte 0 = flags, the rest = the image file.
 *   bit 0      verify on reads (and the walk)
 *   bits 1-2   index interval: default (1024), 8, 64, 4096
 *   bit 3      reads of up to 64 KiB (else up to 4 KiB)
 *
 * Invariants: no crash; a read that returns IMG_OK returns exactly the bytes
 * the sequential walk handed out (zeros for unused blocks) whenever that walk
 * ended cleanly with IMG_EOF and no checksum error; *got is len clipped at
 * device_size; an error has a one-line message naming the file.
 *
 * Not here: the index file (fuzz_index.c), compressed images (refused).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

/* Largest partition kept as reference bytes (bigger: reads are checked for crashes only). */
#define RANDOM_MAX_REF ((uint64_t)32 << 20)
#define RANDOM_MAX_RUNS 100000

/* Walk the image; @return the reference bytes (NULL when the walk did not end cleanly). */
static uint8_t *random_reference(const char *path, int verify, uint64_t *size)
{
	img_options opt;
	img_options_init(&opt);
	opt.verify = verify;
	img_err err;
	img_image *im;
	if (img_open(path, &opt, &im, &err) != IMG_OK)
		return NULL;
	*size = img_get_info(im)->device_size;
	uint8_t *ref = *size <= RANDOM_MAX_REF ? calloc(1, *size + 1) : NULL;
	img_run run;
	int rc = IMG_E_IO;
	unsigned long runs = 0;
	while (ref && ++runs < RANDOM_MAX_RUNS && (rc = img_next_run(im, &run)) == IMG_OK) {
		if (run.offset > *size || run.len > *size - run.offset) {
			rc = IMG_E_CORRUPT;  /* a run past device_size: no reference */
			break;
		}
		memcpy(ref + run.offset, run.data, run.len);
	}
	img_close(im);
	if (rc != IMG_EOF) {
		free(ref);
		return NULL;
	}
	return ref;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const uint32_t intervals[4] = { 0, 8, 64, 4096 };
	uint8_t flags = data[0];
	char path[600], idx[640];
	fuzz_path(path, sizeof path, "image.img");
	snprintf(idx, sizeof idx, "%s.ibkx", path);
	unlink(idx);
	if (fuzz_write(path, data + 1, size - 1) != 0)
		return 0;
	int verify = flags & 1;
	uint64_t ref_size = 0;
	uint8_t *ref = random_reference(path, verify, &ref_size);

	img_options opt;
	img_options_init(&opt);
	opt.verify = verify;
	img_err err;
	img_image *im;
	int rc = img_open(path, &opt, &im, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "image.img");
		free(ref);
		return 0;
	}
	uint64_t dev = img_get_info(im)->device_size;
	img_random_options ro;
	img_random_options_init(&ro);
	ro.verify = verify;
	ro.save = 0;
	ro.index_path = idx;
	ro.index_interval = intervals[(flags >> 1) & 3];
	rc = img_random_open(im, &ro, NULL);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, img_error(im), "image.img");
		img_close(im);
		free(ref);
		return 0;
	}
	size_t maxlen = flags & 8 ? 65536 : 4096;
	uint8_t *buf = malloc(maxlen);
	uint64_t seed = fuzz_hash(data, size);
	for (int k = 0; k < 32; k++) {
		uint64_t r = fuzz_rand(&seed);
		/* mostly inside the partition, sometimes around its end or far out */
		uint64_t off = (r & 7) == 0 ? dev - (r >> 3) % 8192 : (r & 7) == 1 ? r : dev ? r % dev : 0;
		size_t len = (size_t)(fuzz_rand(&seed) % (maxlen + 1)), got = 77;
		img_err e;
		rc = img_read_at(im, off, buf, len, &got, &e);
		size_t want = off >= dev ? 0 : (dev - off < len ? (size_t)(dev - off) : len);
		if (rc != IMG_OK) {
			fuzz_check_err(rc, &e, "image.img");
			FUZZ_CHECK(got == 0, "error %d with got %zu", rc, got);
			continue;
		}
		FUZZ_CHECK(got == want, "read at %llu of %zu: got %zu, want %zu", (unsigned long long)off, len,
			   got, want);
		if (ref && got)
			FUZZ_CHECK(memcmp(buf, ref + off, got) == 0,
				   "read at %llu of %zu bytes differs from the sequential walk",
				   (unsigned long long)off, got);
	}
	free(buf);
	img_close(im);
	free(ref);
	return 0;
}

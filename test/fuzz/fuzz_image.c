/*
 * test/fuzz/fuzz_image.c - libFuzzer target for the whole read path of an
 * image held in memory: img_open_source over a memory source (codecs are
 * sniffed and stacked as for a file), the header facts and field list, and
 * the walk with img_next_runs touching every byte handed out.
 *
 * Input: byte 0 = flags, the rest = the image bytes.
 *   bit 0     verify checksums (on/off)
 *   bits 1-2  memory source chunk: 0 none, 1 one byte, 2 7 bytes, 3 4093 bytes
 *   bit 3     stop the walk early (close a handle in mid-walk)
 *   bits 4-5  runs per img_next_runs call: 1, 2, 8, 64
 *   bit 6     --raw: bytes without an image magic are a raw partition image
 *
 * Invariants: an error has a one-line message naming "fuzz"; runs come in
 * ascending, non-overlapping block order (except ntfsclone, whose metadata
 * images go backwards by design) inside total_blocks with
 * len = nblocks * block_size and offset = first_block * block_size; a walk
 * ends with IMG_EOF or a negative status, and stays ended.
 *
 * Not here: random access (fuzz_random.c), split sets (fuzz_split.c).
 */
#include <stdint.h>
#include <string.h>

#include "formats/fmt.h"
#include "helper_memsrc.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

/* Most runs looked at per input (keeps a hostile bitmap from timing out). */
#define IMAGE_MAX_RUNS 200000

static void image_touch_info(const img_image *im)
{
	const img_info *info = img_get_info(im);
	volatile size_t sink = 0;
	const char *strs[] = { info->format, info->format_version, info->fs, info->layers, info->path,
			       info->checksum };
	for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
		if (strs[i])
			sink += strlen(strs[i]);
	const img_field_list *fl = img_get_fields(im);
	FUZZ_CHECK(fl->count <= IMG_MAX_FIELDS, "%zu fields", fl->count);
	if (fl->title)
		sink += strlen(fl->title);
	if (fl->separator)
		sink += strlen(fl->separator);
	for (size_t i = 0; i < fl->count; i++) {
		const img_field *f = &fl->fields[i];
		FUZZ_CHECK(f->text && strlen(f->text) < IMG_FIELD_TEXT_BYTES, "field %zu text", i);
		sink += f->label ? strlen(f->label) : 0;
		sink += f->key ? strlen(f->key) : 0;
		sink += strlen(f->text);
		sink += f->comment ? strlen(f->comment) : 0;
		sink += f->str ? strlen(f->str) : 0;
	}
	(void)sink;
}

static void image_walk(img_image *im, size_t max_runs, int stop_early)
{
	const img_info *info = img_get_info(im);
	img_run runs[64];
	uint64_t next_free = 0, seen = 0;
	volatile uint64_t sink = 0;
	int rc;
	size_t n;
	int checksum_errors = 0;
	/* ntfsclone metadata images go backwards and repeat clusters (ntfsclone.c) */
	int unordered = info->format && strcmp(info->format, "ntfsclone") == 0;
	for (;;) {
		rc = img_next_runs(im, runs, max_runs, &n);
		if (rc == IMG_E_CHECKSUM) {
			fuzz_check_err(rc, img_error(im), "fuzz");
			FUZZ_CHECK(n == 0, "IMG_E_CHECKSUM with %zu runs", n);
			if (++checksum_errors > 64)
				break;
			continue;
		}
		if (rc != IMG_OK)
			break;
		FUZZ_CHECK(n >= 1 && n <= max_runs, "%zu runs of at most %zu", n, max_runs);
		for (size_t i = 0; i < n; i++) {
			const img_run *r = &runs[i];
			FUZZ_CHECK(r->nblocks >= 1, "empty run");
			FUZZ_CHECK(r->first_block >= next_free || unordered, "run at block %llu before block %llu",
				   (unsigned long long)r->first_block, (unsigned long long)next_free);
			FUZZ_CHECK(r->first_block + r->nblocks <= info->total_blocks &&
					   r->first_block + r->nblocks > r->first_block,
				   "run %llu+%llu beyond %llu blocks", (unsigned long long)r->first_block,
				   (unsigned long long)r->nblocks, (unsigned long long)info->total_blocks);
			/* a partial last block ends exactly at device_size (ntfsclone's partial record) */
			uint64_t full = r->nblocks * info->block_size;
			FUZZ_CHECK((uint64_t)r->len == full ||
					   ((uint64_t)r->len < full && (uint64_t)r->len > full - info->block_size &&
					    r->offset + r->len == info->device_size),
				   "run len %zu for %llu blocks of %u", r->len, (unsigned long long)r->nblocks,
				   info->block_size);
			FUZZ_CHECK(r->offset == r->first_block * info->block_size, "run offset");
			sink += fuzz_touch(r->data, r->len);
			next_free = r->first_block + r->nblocks;
		}
		if (++seen > IMAGE_MAX_RUNS || (stop_early && seen > 3))
			return;
	}
	if (rc == IMG_E_CHECKSUM) {
		/* gave up after many bad groups: the walk could go on */
	} else if (rc < 0) {
		fuzz_check_err(rc, img_error(im), "fuzz");
		size_t n2;
		int rc2 = img_next_runs(im, runs, max_runs, &n2);
		FUZZ_CHECK(rc2 < 0 && n2 == 0, "walk goes on after error %d: %d (%s)", rc, rc2, img_error(im)->msg);
	} else if (rc == IMG_EOF) {
		FUZZ_CHECK(n == 0, "IMG_EOF with runs");
		FUZZ_CHECK(img_blocks_done(im) <= info->total_blocks, "more blocks done than exist");
	}
	(void)sink;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t chunks[4] = { 0, 1, 7, 4093 };
	static const size_t batch[4] = { 1, 2, 8, 64 };
	uint8_t flags = data[0];
	data++;
	size--;
	size_t chunk = chunks[(flags >> 1) & 3];
	if (chunk == 1 && size > 65536)
		chunk = 7;  /* one byte per call over big inputs only burns time */
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *src;
	if (memsrc_open(data, size, chunk, &err, &src) != IMG_OK)
		return 0;
	img_options opt;
	img_options_init(&opt);
	opt.verify = flags & 1;
	opt.raw = (flags >> 6) & 1;
	img_image *im = NULL;
	int rc = img_open_source(src, "fuzz", &opt, &im, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, "fuzz");
		return 0;
	}
	image_touch_info(im);
	image_walk(im, batch[(flags >> 4) & 3], flags & 8);
	img_close(im);
	return 0;
}

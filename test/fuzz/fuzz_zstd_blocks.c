/*
 * test/fuzz/fuzz_zstd_blocks.c - libFuzzer target for the zstd block and
 * sequence parser (io/zstd_blocks.c): the input is one zstd frame (the seeds
 * are real frames from libzstd at several levels). The parser walks its
 * header and blocks with every match reported, and writes the checkpoint
 * dictionary header after each block.
 *
 * Invariants: no crash, no out-of-bounds access, no undefined behaviour;
 * every call returns ZB_OK, ZB_E_SHORT or ZB_E_CORRUPT (with a reason);
 * every match copies bytes that exist (src + len <= dst <= decoded bytes);
 * a block never decodes to more than 128 KiB; when the parser accepts the
 * whole frame and libzstd decodes it too, both agree on its decoded size.
 *
 * Not here: resuming from the dictionary (test/unit/test_zstd_blocks.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io/zstd_blocks.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

struct check {
	uint64_t block_start, block_end_max;
};

static void on_match(void *ctx, uint64_t dst, uint64_t src, uint32_t len)
{
	struct check *c = ctx;
	if (len == 0 || src + len > dst || dst < c->block_start || dst > c->block_end_max)
		abort();
}

/* libzstd's decoded size of the frame, or UINT64_MAX when it fails. */
static uint64_t libzstd_size(const uint8_t *data, size_t size)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	static uint8_t out[1 << 16];
	uint64_t total = 0;
	ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 24);
	ZSTD_inBuffer ib = { data, size, 0 };
	size_t r = 1;
	while (r != 0) {
		ZSTD_outBuffer ob = { out, sizeof out, 0 };
		size_t ipos = ib.pos;
		r = ZSTD_decompressStream(dc, &ob, &ib);
		if (ZSTD_isError(r) || (ob.pos == 0 && ib.pos == ipos && r != 0) || total > ((uint64_t)64 << 20)) {
			total = UINT64_MAX;
			break;
		}
		total += ob.pos;
	}
	ZSTD_freeDCtx(dc);
	return total;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	struct zb_frame f;
	int rc = zb_frame_header(data, size, &f);
	if (rc != ZB_OK) {
		if (rc != ZB_E_SHORT && rc != ZB_E_CORRUPT)
			abort();
		return 0;
	}
	static struct zb_state s;
	zb_state_init(&s, &f);
	uint8_t dict[ZB_DICT_HEAD_MAX];
	while (!s.ended) {
		struct zb_block_info info;
		struct check c = { s.pos, s.pos + ZB_BLOCK_MAX };
		size_t need, len;
		uint64_t pos = s.pos;
		rc = zb_block(&s, data + s.cpos, size - s.cpos, &need, &info, on_match, &c);
		if (rc == ZB_E_CORRUPT && !s.why)
			abort();
		if (rc != ZB_OK) {
			if (rc != ZB_E_SHORT && rc != ZB_E_CORRUPT)
				abort();
			return 0;
		}
		if (info.usize > ZB_BLOCK_MAX || s.pos != pos + info.usize || s.cpos > size)
			abort();
		if (zb_dict_header(&s, 1, dict, sizeof dict, &len) != ZB_OK || len > sizeof dict)
			abort();
	}
	if (f.window_size <= ((uint64_t)1 << 24)) {
		uint64_t n = libzstd_size(data, s.cpos + (f.checksum ? 4 : 0) <= size ? s.cpos + (f.checksum ? 4 : 0)
										      : size);
		if (n != UINT64_MAX && n != s.pos)
			abort();
	}
	return 0;
}

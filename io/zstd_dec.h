/*
 * io/zstd_dec.h - what the zstd scan (io/zstd_scan.c) uses of the codec's
 * one decoder (io/zstd.c): its error wording, its libzstd contexts, and the
 * decoder itself, which the scan's second thread resumes at each checkpoint
 * to verify it. Private to these two files.
 */
#ifndef IMGBK_IO_ZSTD_DEC_H
#define IMGBK_IO_ZSTD_DEC_H

#include <zstd.h>

#include "zseek.h"

#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define ZSTD_SKIPPABLE_MASK 0xFFFFFFF0u
#define ZSTD_SKIPPABLE_MAGIC 0x184D2A50u
/* 128 MiB, the zstd tool's own decoding limit (every level, --ultra -22 included). */
#define ZSTD_WINDOW_LOG_LIMIT 27

/* How a refused window is to be decoded instead: through a pipe (the
 * sequential stream) or into a file first (random reads, the scan). */
enum zst_fix { ZST_FIX_PIPE, ZST_FIX_FILE };

/* A libzstd error code from a decoding call at compressed offset at. @return the IMG_E_* code. */
int zst_lib_error(img_err *err, const char *name, uint64_t at, size_t ret, enum zst_fix fix);

static inline int zst_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "zstd", at, detail);
}

static inline int zst_truncated(img_err *err, const char *name, uint64_t at)
{
	return zs_truncated(err, name, "zstd", "zstd frame", at);
}

/* A decoding context with imgbk's window limit, NULL when out of memory. */
ZSTD_DStream *zst_new_dstream(void);

struct zst_dec;
/* A decoder of the frame whose compressed bytes (its blocks, after a
 * checkpoint's state, or its header at a frame start) begin at cin of raw,
 * making at most limit bytes, with the caller's context borrow (reset here). */
int zst_dec_borrowing(img_rsrc *raw, const char *name, uint64_t cin, const uint8_t *state, size_t state_len,
		      uint64_t limit, ZSTD_DStream *borrow, struct zst_dec **out, img_err *err);
int zst_read(void *dec, uint8_t *dst, size_t cap, size_t *got, img_err *err);
void zst_close(void *dec);

#endif

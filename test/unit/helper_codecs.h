/*
 * test/unit/helper_codecs.h - what the decoding tests share (test_codecs.c,
 * test_codecs_split.c): a growing byte buffer, compressible test data, a
 * gzip encoder (zlib), files written whole, a stream read to its end.
 * Every helper fails the running cmocka test on error (they assert).
 *
 * Not for the library: only unit tests link it.
 */
#ifndef IMGBK_TEST_HELPER_CODECS_H
#define IMGBK_TEST_HELPER_CODECS_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

/* A byte buffer: p[0..n) used, cap allocated; { 0 } is an empty one. */
struct buf {
	uint8_t *p;
	size_t n, cap;
};

/* Room for `more` bytes after the used ones. */
void buf_reserve(struct buf *b, size_t more);
/* Append p[0..n). */
void buf_add(struct buf *b, const void *p, size_t n);
/* Append v as 4 little-endian bytes. */
void buf_le32(struct buf *b, uint32_t v);
/* Free b's bytes; b is empty again. */
void buf_free(struct buf *b);
/* b = n bytes of compressible data with some random 4 KiB blocks in it,
 * the same for the same seed. */
void make_plain(struct buf *b, size_t n, uint32_t seed);
/* Append in[0..n) gzip-compressed (zlib, level 6, one member). */
void enc_gzip(struct buf *o, const uint8_t *in, size_t n);
/* The layer of the codec called name over up, the way open.c stacks it
 * (codec_open). */
int open_by_table(const char *name, img_stream *up, img_stream **out);
/* Write p[0..n) to a new file at path. */
void write_file(const char *path, const uint8_t *p, size_t n);
/* out = s's bytes to its end (or to its error). @return IMG_EOF at the
 * end, else the error code. */
int read_all(img_stream *s, struct buf *out);
/* Read s to its end: exactly want's bytes. Closes s. */
void expect_all_then_close(img_stream *s, const struct buf *want);

#endif

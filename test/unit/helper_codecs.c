/*
 * test/unit/helper_codecs.c - the byte buffers, test data and stream
 * readers the decoding tests share (helper_codecs.h).
 *
 * Not for the library: only unit tests link it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <zlib.h>

#include "helper_codecs.h"

void buf_reserve(struct buf *b, size_t more)
{
	if (b->n + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->n + more)
		cap *= 2;
	b->p = realloc(b->p, cap);
	assert_non_null(b->p);
	b->cap = cap;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

void buf_le32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	buf_add(b, x, 4);
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

void make_plain(struct buf *b, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 7;
	buf_reserve(b, n);
	for (size_t i = 0; i < n; i++) {
		size_t blk = i / 4096;
		if (blk % 23 == 5) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			b->p[i] = (uint8_t)x;
		} else {
			b->p[i] = (uint8_t)("partition backup line "[i % 22] + (blk % 3));
		}
	}
	b->n = n;
}

int open_by_table(const char *name, img_stream *up, img_stream **out)
{
	const struct img_codec *c = codec_by_name(name, strlen(name));
	assert_non_null(c);
	return codec_open(c, up, out);
}

void enc_gzip(struct buf *o, const uint8_t *in, size_t n)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t bound = deflateBound(&z, n) + 64;
	buf_reserve(o, bound);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = o->p + o->n;
	z.avail_out = (uInt)bound;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	o->n += bound - z.avail_out;
	deflateEnd(&z);
}

void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

int read_all(img_stream *s, struct buf *out)
{
	out->n = 0;
	for (;;) {
		const uint8_t *p;
		size_t avail;
		int rc = stream_peek(s, 3000, &p, &avail);
		if (rc < 0)
			return rc;
		buf_add(out, p, avail);
		stream_consume(s, avail);
		if (rc == IMG_EOF && avail == 0)
			return rc;
	}
}

void expect_all_then_close(img_stream *s, const struct buf *want)
{
	struct buf out = { 0 };
	assert_int_equal(read_all(s, &out), IMG_EOF);
	assert_int_equal(out.n, want->n);
	assert_memory_equal(out.p, want->p, want->n);
	stream_close(s);
	buf_free(&out);
}

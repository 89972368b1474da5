/*
 * test/fuzz/fuzz_zpar.c - libFuzzer target for the layer that decodes
 * independent units on worker threads (io/zpar.c) and the unit finders
 * (io/zunits.c): the same bytes decoded by one decoder (zs_stream_open)
 * and by the unit layer (zpar_stream_open with the codec's finder), read
 * out with stream_read_direct, must agree.
 *
 * Input: byte 0 = selector, the rest = the compressed bytes.
 *   bit 0     0 bzip2, 1 zstd
 *   bits 1-2  memory source chunk: 0 none, 1 one byte, 2 13 bytes, 3 65521 bytes
 *
 * Invariants: no crash, leak or hang; both end the same way (the end of the
 * data, or an error with the same code); the bytes out are the same up to
 * the shorter of the two, and the same in all when neither failed; bzip2
 * (whose errors name the exact byte) gives the same message and offset; an
 * error names the source ("mem"). A finder's length is never more than the
 * bytes it was shown.
 * Seeds (test/fuzz/seeds/fuzz_zpar/): small pbzip2 and pzstd outputs of
 * text, made by the tools (see mkcorpus.sh for the generated corpus).
 *
 * Not here: the codecs' layers alone (fuzz_codecs.c).
 */
#include <stdint.h>
#include <string.h>

#include "io/io.h"
#include "io/zseek.h"
#include "helper_memsrc.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define ZPAR_MAX_OUT ((size_t)32 << 20)  /* a decompression bomb is no bug: stop there */

struct zpar_outcome {
	uint8_t *out;
	size_t n;
	int rc;
	img_err err;
};

static void zpar_drain(img_stream *s, struct zpar_outcome *o)
{
	static uint8_t chunk[1 << 16];
	for (;;) {
		size_t got = 0;
		o->rc = stream_read_direct(s, chunk, sizeof chunk, &got);
		if (o->rc < 0 || got == 0 || o->n + got > ZPAR_MAX_OUT)
			break;
		uint8_t *b = realloc(o->out, o->n + got);
		FUZZ_CHECK(b != NULL, "out of memory");
		memcpy(b + o->n, chunk, got);
		o->out = b;
		o->n += got;
	}
}

static void zpar_run(const uint8_t *data, size_t size, size_t chunk, const char *codec, const struct zs_ops *ops,
		zs_unit_len_fn finder, struct zpar_outcome *o)
{
	memset(o, 0, sizeof *o);
	img_stream *src, *top = NULL;
	if (memsrc_open(data, size, chunk, &o->err, &src) != IMG_OK) {
		o->rc = IMG_E_IO;
		return;
	}
	o->rc = finder ? zpar_stream_open(src, codec, ops, finder, &top) : zs_stream_open(src, codec, ops, &top);
	if (o->rc != IMG_OK) {
		stream_close(src);
		return;
	}
	zpar_drain(top, o);
	stream_close(top);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t chunks[4] = { 0, 1, 13, 65521 };
	uint8_t sel = data[0];
	data++;
	size--;
	size_t chunk = chunks[(sel >> 1) & 3];
	if (chunk == 1 && size > 65536)
		chunk = 13;
	int zstd = sel & 1;
	const char *codec = zstd ? "zstd" : "bzip2";
	const struct zs_ops *ops = zstd ? &zs_zstd_ops : &zs_bzip2_ops;
	zs_unit_len_fn finder = zstd ? zs_zstd_unit_len : zs_bzip2_unit_len;
	size_t len = finder(data, size, 1);
	FUZZ_CHECK(len == ZS_UNIT_NONE || len <= size, "unit of %zu bytes in %zu", len, size);
	struct zpar_outcome one, par;
	zpar_run(data, size, chunk, codec, ops, NULL, &one);
	zpar_run(data, size, chunk, codec, ops, finder, &par);
	int capped = one.n + (1 << 16) > ZPAR_MAX_OUT || par.n + (1 << 16) > ZPAR_MAX_OUT;
	size_t common = one.n < par.n ? one.n : par.n;
	FUZZ_CHECK(common == 0 || memcmp(one.out, par.out, common) == 0, "bytes differ within %zu", common);
	if (!capped) {
		FUZZ_CHECK((one.rc < 0) == (par.rc < 0) && (one.rc >= 0 || one.rc == par.rc),
			   "one decoder %d (%s), units %d (%s)", one.rc, one.err.msg, par.rc, par.err.msg);
		FUZZ_CHECK(one.rc < 0 || one.n == par.n, "one decoder %zu bytes, units %zu", one.n, par.n);
		if (!zstd && one.rc < 0) {
			FUZZ_CHECK(strcmp(one.err.msg, par.err.msg) == 0, "one decoder \"%s\", units \"%s\"", one.err.msg,
				   par.err.msg);
			FUZZ_CHECK(one.n == par.n, "bzip2: %zu bytes before the error, units %zu", one.n, par.n);
		}
		if (par.rc < 0)
			fuzz_check_err(par.rc, &par.err, "mem");
	}
	free(one.out);
	free(par.out);
	return 0;
}

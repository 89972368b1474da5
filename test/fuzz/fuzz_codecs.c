/*
 * test/fuzz/fuzz_codecs.c - libFuzzer target for the decoding layers: one
 * codec's layer (codec_open of its table entry) on a memory source, then every byte read out through
 * stream_peek/stream_consume; or the sniffing stack (stream_stack_on) on the
 * raw bytes, as img_open does it.
 *
 * Input: byte 0 = selector, the rest = the compressed bytes.
 *   bits 0-2  0 gzip, 1 bzip2, 2 zstd, 3 xz, 4 lzma, 5 lz4, 6-7 sniffing stack
 *   bits 3-4  memory source chunk: 0 none, 1 one byte, 2 13 bytes, 3 65521 bytes
 *   bits 5-6  peek size: 1, 4096, 1 MiB, 5 MiB (more than a layer's buffer)
 *
 * Invariants: no crash or leak; an error has a one-line message naming the
 * source ("mem"); after an error every later peek fails too; the stream
 * offset equals the bytes consumed.
 *
 * Not here: image formats (fuzz_image.c).
 */
#include <stdint.h>
#include <string.h>

#include "io/io.h"
#include "helper_memsrc.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

/* Stop reading after this much output (a decompression bomb is no bug). */
#define CODECS_MAX_OUT ((uint64_t)64 << 20)

/* The codecs by selector, as the table names them (codec_open stacks them as open.c does). */
static const char *const codecs_named[6] = { "gzip", "bzip2", "zstd", "xz", "lzma", "lz4" };

static void codecs_drain(img_stream *top, img_err *err, size_t want)
{
	uint64_t total = 0;
	volatile uint64_t sink = 0;
	int rc;
	for (;;) {
		const uint8_t *p;
		size_t avail;
		rc = stream_peek(top, want, &p, &avail);
		if (rc < 0)
			break;
		FUZZ_CHECK(rc == IMG_EOF || avail >= want, "IMG_OK with %zu of %zu bytes", avail, want);
		sink += fuzz_touch(p, avail);
		stream_consume(top, avail);
		total += avail;
		FUZZ_CHECK(top->offset == total, "offset %llu after %llu bytes",
			   (unsigned long long)top->offset, (unsigned long long)total);
		if (rc == IMG_EOF || total > CODECS_MAX_OUT)
			return;
	}
	fuzz_check_err(rc, err, "mem");
	const uint8_t *p;
	size_t avail;
	FUZZ_CHECK(stream_peek(top, 1, &p, &avail) < 0, "a failed stream reads again");
	(void)sink;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t chunks[4] = { 0, 1, 13, 65521 };
	static const size_t peeks[4] = { 1, 4096, (size_t)1 << 20, (size_t)5 << 20 };
	uint8_t sel = data[0];
	data++;
	size--;
	size_t chunk = chunks[(sel >> 3) & 3];
	if (chunk == 1 && size > 65536)
		chunk = 13;
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *src, *top = NULL;
	if (memsrc_open(data, size, chunk, &err, &src) != IMG_OK)
		return 0;
	int which = sel & 7;
	int rc;
	if (which < 6) {
		rc = codec_open(codec_by_name(codecs_named[which], strlen(codecs_named[which])), src, &top);
		if (rc != IMG_OK) {
			fuzz_check_err(rc, &err, NULL);
			stream_close(src);
			return 0;
		}
	} else {
		char layers[96] = "mem";
		rc = stream_stack_on(src, NULL, layers, sizeof layers, &top);
		if (rc != IMG_OK) {
			fuzz_check_err(rc, &err, "mem");
			return 0;
		}
		FUZZ_CHECK(memchr(layers, 0, sizeof layers) != NULL, "layers unterminated");
	}
	codecs_drain(top, &err, peeks[(sel >> 5) & 3]);
	stream_close(top);
	return 0;
}

/*
 * test/fuzz/fuzz_zseek.c - libFuzzer target for random reads into
 * compressed data (io/zseek.h), checked against the streaming decoder: the
 * input is written to a file, decoded front to back by the sniffing stack
 * (stream_open_stack, the reference), then opened as a random-read view
 * (rsrc_open + rsrc_decode with the codec the stack found) and read at
 * offsets derived from the input; the view's saved form is reloaded and read
 * the same way.
 *
 * Input: byte 0 = flags, the rest = the compressed file.
 *   bits 0-1  span between access points: 1 KiB, 4 KiB, 64 KiB, default
 *   bit 2     reads of up to 64 KiB (else up to 4 KiB)
 *
 * Invariants: no crash or leak; when the reference decode ended cleanly and
 * the scan succeeded, the view's size equals the reference's and every read
 * returns exactly the reference bytes, or fails with a one-line message
 * naming the file; the saved form reloads without a scan.
 *
 * Not here: image formats over the view (fuzz_random.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "io/zseek.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define ZSEEK_MAX_REF ((size_t)16 << 20)

/* Decode path front to back; @return the bytes (NULL unless it ended cleanly
 * with one codec layer), its name in *codec. */
static uint8_t *zseek_reference(const char *path, size_t *size, const struct img_codec **codec)
{
	img_err err;
	memset(&err, 0, sizeof err);
	char layers[96];
	img_stream *s;
	if (stream_open_stack(path, &err, NULL, layers, sizeof layers, &s) != IMG_OK)
		return NULL;
	*codec = NULL;
	const char *name = strncmp(layers, "file+", 5) == 0 ? layers + 5 : "";
	for (size_t i = 0; img_codecs[i]; i++)
		if (strcmp(img_codecs[i]->name, name) == 0 && img_codecs[i]->seek)
			*codec = img_codecs[i];
	uint8_t *ref = *codec ? malloc(ZSEEK_MAX_REF) : NULL;
	size_t got = 0;
	int rc = ref ? stream_read(s, ref, ZSEEK_MAX_REF, &got) : IMG_E_IO;
	stream_close(s);
	if (rc != IMG_EOF) {  /* damaged, or more than ZSEEK_MAX_REF */
		free(ref);
		return NULL;
	}
	*size = got;
	return ref;
}

static void zseek_reads(img_rsrc *rs, const uint8_t *ref, size_t size, const char *path,
			uint64_t *seed, size_t maxlen)
{
	uint8_t *buf = malloc(maxlen);
	for (int i = 0; i < 24 && buf; i++) {
		uint64_t off = size ? fuzz_rand(seed) % (size + 16) : 0;
		size_t len = 1 + (size_t)(fuzz_rand(seed) % maxlen);
		size_t got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		int rc = rsrc_pread(rs, buf, len, off, &got, &err);
		if (rc != IMG_OK) {
			fuzz_check_err(rc, &err, path);
			continue;
		}
		size_t want = off >= size ? 0 : (size - off < len ? size - (size_t)off : len);
		FUZZ_CHECK(got == want, "read at %llu: got %zu, want %zu", (unsigned long long)off, got, want);
		FUZZ_CHECK(got == 0 || memcmp(buf, ref + off, got) == 0, "read at %llu differs from the stream",
			   (unsigned long long)off);
	}
	free(buf);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	static const uint64_t spans[4] = { 1024, 4096, 65536, 0 };
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	char path[600];
	fuzz_path(path, sizeof path, "z.bin");
	if (fuzz_write(path, data + 1, size - 1) != 0)
		return 0;
	size_t refsize = 0;
	const struct img_codec *codec = NULL;
	uint8_t *ref = zseek_reference(path, &refsize, &codec);
	if (!codec) {
		free(ref);
		return 0;
	}
	zs_set_first_span(spans[flags & 3]);
	uint64_t seed = fuzz_hash(data, size);
	size_t maxlen = (flags & 4) ? 65536 : 4096;
	img_err err;
	memset(&err, 0, sizeof err);
	img_rsrc *rs = NULL;
	int rebuilt = 0;
	int rc = rsrc_open(path, &err, &rs);
	if (rc == IMG_OK)
		rc = rsrc_decode(&rs, codec, NULL, 0, NULL, NULL, &rebuilt, &err);
	if (rc != IMG_OK) {
		fuzz_check_err(rc, &err, path);
		rsrc_close(rs);
		free(ref);
		return 0;
	}
	FUZZ_CHECK(rebuilt == 1, "no scan without saved points");
	if (ref) {
		FUZZ_CHECK(rsrc_size(rs) == refsize, "view size %llu, stream decoded %zu",
			   (unsigned long long)rsrc_size(rs), refsize);
		zseek_reads(rs, ref, refsize, path, &seed, maxlen);
	}
	uint8_t *saved = NULL;
	size_t saved_len = 0;
	FUZZ_CHECK(rsrc_decoded_save(rs, &saved, &saved_len) == IMG_OK && saved, "no saved form");
	rsrc_close(rs);
	rs = NULL;
	if (rsrc_open(path, &err, &rs) == IMG_OK &&
	    rsrc_decode(&rs, codec, saved, saved_len, NULL, NULL, &rebuilt, &err) == IMG_OK) {
		FUZZ_CHECK(rebuilt == 0, "the saved form was not taken");
		if (ref)
			zseek_reads(rs, ref, refsize, path, &seed, maxlen);
	}
	rsrc_close(rs);
	free(saved);
	free(ref);
	zs_set_first_span(0);
	return 0;
}

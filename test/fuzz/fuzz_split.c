/*
 * test/fuzz/fuzz_split.c - libFuzzer target for split sets: the input is cut
 * into pieces img.aa, img.ab, ... in a scratch folder, then read back as one
 * stream (source_open_split) and at random (rsrc_open + rsrc_pread) and
 * compared with the original bytes; a piece may be left out, or a stray
 * piece put after a gap.
 *
 * Input: byte 0 = pieces - 1 (mod 40: more than RSRC_MAX_OPEN, so rsrc
 * reopens pieces), byte 1 = mode, byte 2 = which piece the mode affects,
 * then 2 bytes per cut point (u16 LE, mod the data length), then the data.
 *   mode & 3: 0 whole set, 1 a piece missing, 2 a stray piece after a gap,
 *             3 whole set opened by its prefix ("img" -> img.aa)
 *   mode & 4: read the stream in 1-byte peeks (else in one stream_read)
 *
 * Invariants: a whole set reads back byte-identical; a set with a gap reads
 * exactly the bytes before the gap and then fails with IMG_E_MISSING (or ends
 * there when nothing follows the gap); never other bytes.
 *
 * Not here: naming beyond 40 pieces (unit tests cover widening).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "fuzz_util.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define SPLIT_MAX_PIECES 40

static char split_names[SPLIT_MAX_PIECES + 2][600];

static void split_clean(size_t n)
{
	for (size_t i = 0; i < n; i++)
		unlink(split_names[i]);
}

static int split_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Read the whole stream; @return the final status, bytes in *got. */
static int split_read_all(img_stream *s, uint8_t *buf, size_t cap, size_t *got, int bytewise)
{
	*got = 0;
	if (!bytewise) {
		int rc = stream_read(s, buf, cap, got);
		if (rc < 0)  /* *got is not set on an error: the offset says what was copied */
			*got = (size_t)s->offset;
		if (rc == IMG_OK) {  /* more than cap: cannot be */
			uint8_t extra;
			size_t g2;
			rc = stream_read(s, &extra, 1, &g2);
			FUZZ_CHECK(rc != IMG_OK, "the set is longer than its pieces");
		}
		return rc;
	}
	for (;;) {
		const uint8_t *p;
		size_t avail;
		int rc = stream_peek(s, 1, &p, &avail);
		if (rc != IMG_OK)
			return rc;
		FUZZ_CHECK(*got < cap, "the set is longer than its pieces");
		buf[(*got)++] = p[0];
		stream_consume(s, 1);
	}
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	size_t n = 1 + data[0] % SPLIT_MAX_PIECES;
	int mode = data[1] & 3, bytewise = data[1] & 4;
	size_t victim = data[2] % n;
	data += 3;
	size -= 3;
	uint64_t cuts[SPLIT_MAX_PIECES + 1];
	size_t ncut = n - 1;
	if (size < 2 * ncut)
		return 0;
	const uint8_t *body = data + 2 * ncut;
	size_t len = size - 2 * ncut;
	for (size_t i = 0; i < ncut; i++)
		cuts[i] = (uint64_t)(data[2 * i] | data[2 * i + 1] << 8) % (len + 1);
	qsort(cuts, ncut, sizeof *cuts, split_cmp_u64);
	uint64_t start[SPLIT_MAX_PIECES + 2];
	start[0] = 0;
	for (size_t i = 0; i < ncut; i++)
		start[i + 1] = cuts[i];
	start[n] = len;

	/* names: img.aa, img.ab, ... (one more for a stray piece) */
	fuzz_path(split_names[0], sizeof split_names[0], "img.aa");
	for (size_t i = 1; i < SPLIT_MAX_PIECES + 2; i++)
		FUZZ_CHECK(split_next_name(split_names[i - 1], 2, 1, split_names[i], sizeof split_names[i]) == 0,
			   "split_next_name");
	split_clean(SPLIT_MAX_PIECES + 2);
	for (size_t i = 0; i < n; i++) {
		if (mode == 1 && i == victim)
			continue;
		if (fuzz_write(split_names[i], body + start[i], start[i + 1] - start[i]) != 0)
			return 0;
	}
	if (mode == 2 && fuzz_write(split_names[n + 1], "stray", 5) != 0)
		return 0;

	/* what must come out */
	size_t want = len;
	int want_rc = IMG_EOF;  /* the last status of a whole read */
	int is_set = n >= 2 || mode >= 2;  /* "img" with img.aa present is a set of one */
	if (mode == 1) {
		want = start[victim];
		if (victim == 0) {
			is_set = 0;  /* no img.aa: not a set */
		} else if (victim == n - 1) {
			is_set = n - 1 >= 2;  /* the set just ends earlier */
		} else {
			want_rc = IMG_E_MISSING;
		}
	} else if (mode == 2) {
		want_rc = IMG_E_MISSING;
		is_set = 1;
	}
	char open_path[600];
	if (mode == 3)
		fuzz_path(open_path, sizeof open_path, "img");
	else
		snprintf(open_path, sizeof open_path, "%s", split_names[0]);

	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *s = NULL;
	int rc = source_open_split(open_path, &err, &s);
	if (!is_set) {
		FUZZ_CHECK(rc == IMG_EOF, "not a set, but source_open_split says %d (%s)", rc, err.msg);
	} else {
		FUZZ_CHECK(rc == IMG_OK, "source_open_split: %d (%s)", rc, err.msg);
		uint8_t *buf = malloc(len + 1);
		size_t got = 0;
		rc = split_read_all(s, buf, len + 1, &got, bytewise);
		FUZZ_CHECK(got == want, "read %zu bytes, want %zu (status %d, %s)", got, want, rc, err.msg);
		FUZZ_CHECK(memcmp(buf, body, got) == 0, "bytes differ");
		FUZZ_CHECK(rc == want_rc, "status %d, want %d (%s)", rc, want_rc, err.msg);
		if (rc < 0)
			fuzz_check_err(rc, &err, "img");
		stream_close(s);

		/* random reads */
		memset(&err, 0, sizeof err);
		img_rsrc *r = NULL;
		rc = rsrc_open(open_path, &err, &r);
		if (want_rc == IMG_E_MISSING) {
			FUZZ_CHECK(rc == IMG_E_MISSING, "rsrc_open of a set with a gap: %d", rc);
			fuzz_check_err(rc, &err, "img");
		} else {
			FUZZ_CHECK(rc == IMG_OK, "rsrc_open: %d (%s)", rc, err.msg);
			FUZZ_CHECK(rsrc_size(r) == want, "rsrc size %llu, want %zu",
				   (unsigned long long)rsrc_size(r), want);
			uint64_t seed = fuzz_hash(body, len);
			for (int k = 0; k < 32; k++) {
				uint64_t off = fuzz_rand(&seed) % (want + 2);
				size_t l = (size_t)(fuzz_rand(&seed) % (want + 2 - off + 1));
				size_t g = 0;
				uint8_t *rb = malloc(l + 1);
				rc = rsrc_pread(r, rb, l, off, &g, &err);
				FUZZ_CHECK(rc == IMG_OK, "rsrc_pread: %d (%s)", rc, err.msg);
				size_t exp = off >= want ? 0 : (want - off < l ? want - off : l);
				FUZZ_CHECK(g == exp, "rsrc_pread at %llu got %zu, want %zu",
					   (unsigned long long)off, g, exp);
				FUZZ_CHECK(g == 0 || memcmp(rb, body + off, g) == 0, "rsrc bytes differ at %llu",
					   (unsigned long long)off);
				free(rb);
			}
			rsrc_close(r);
		}
		free(buf);
	}
	split_clean(n + 2);
	return 0;
}

/*
 * test/unit/helper_partimage.h - what the partimage unit tests share
 * (test_partimage.c, test_partimage_access.c): a small synthetic writer that
 * follows FORMATS.md section 3 (volume headers, main header with its signed
 * byte sum, MBR records, EXT blocks, local header, bitmap, info block, data
 * with a CHK record after every 65536 bytes, TAIL magic and tail with the
 * unsigned byte sum), cutting the logical stream into volumes (plain or
 * gzip) at chosen offsets; the temp directory; and the checked sequential
 * walk with its expectations.
 *
 * Not for the library: only unit tests link it. Every linked name is
 * pih_-prefixed (helper_*.c are linked into every unit-test binary).
 */
#ifndef IMGBK_TEST_HELPER_PARTIMAGE_H
#define IMGBK_TEST_HELPER_PARTIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/fmt.h"

#define VH 512        /* volume header */
#define HS 16384      /* main / local header, info block (without their sums) */
#define CHUNK 65536   /* data bytes between two CHK records */

/* The identificator every synthetic volume carries. */
static const uint64_t IDENT = 0x8D8D8D8DE68AA8A3ull;

/* ---- the synthetic writer ------------------------------------------------ */

/* xorshift64: the random content of the synthetic images (one sequence,
 * shared by every image a test binary builds). */
uint64_t pih_rnd(void);
/* Continue the sequence from `state` (not 0). */
void pih_rnd_set_state(uint64_t state);

void pih_set_le32(uint8_t *p, uint32_t v);
void pih_set_le64(uint8_t *p, uint64_t v);
/* The signed byte sum of p[0..n) (partimage's header sums). */
uint32_t pih_ssum(const uint8_t *p, size_t n);

struct pih_buf {
	uint8_t *p;
	size_t len, cap;
};

struct pih_synth {
	uint32_t bs;
	uint64_t total;
	int density;          /* percent of used blocks */
	int mbrs;             /* MBR records */
	const char *fs;
	/* results */
	uint8_t *dev;         /* expected restore: total*bs bytes */
	uint64_t used;
	struct pih_buf img;   /* the logical stream */
	size_t data_start, tail_magic_at, bitmap_at, info_at, local_at;
};

/* Fill the results from bs, total, density, mbrs and fs. */
void pih_synth_build(struct pih_synth *s);
/* Store the tail: qwCRC over everything up to the TAIL magic, last volume. */
void pih_synth_seal(struct pih_synth *s, uint32_t last_volume);
void pih_synth_free(struct pih_synth *s);

void pih_volume_header(uint8_t *vh, uint32_t n, uint64_t ident);
/* Write p[0..n) to path, gzip when gz. */
void pih_write_file(const char *path, const uint8_t *p, size_t n, int gz);
/*
 * Write the logical stream as volumes cut at cuts[0..ncuts) (ascending logical
 * offsets) into pih_tmpdir/name.000, .001, ... (gzip where gzmask has the bit).
 * With ncuts == 0 and plain_name, one file pih_tmpdir/name (a stdout-made image).
 */
void pih_write_volumes(struct pih_synth *s, const char *name, const size_t *cuts, size_t ncuts,
		       unsigned gzmask, int plain_name);
/* Write the single-volume image with byte `at` (logical) XORed by x; @return its path. */
const char *pih_damaged(struct pih_synth *s, const char *name, size_t at, uint8_t x);

/* ---- the temp directory -------------------------------------------------- */
extern char pih_tmpdir[64];
int pih_setup(void **state);     /* the group fixture: makes pih_tmpdir */
int pih_teardown(void **state);  /* removes it */
/* pih_tmpdir/name (one of 4 static buffers, used in turn). */
const char *pih_tpath(const char *name);

/* ---- the walk ------------------------------------------------------------ */
struct pih_walk {
	int open_rc, rc;         /* img_open status, status that ended the walk */
	int checksum_errors;
	uint64_t blocks, bad_groups;
	img_err err;             /* the first error */
	uint8_t *dev;
	size_t devlen;
};

/* Walk with img_next_runs (batches of up to 64) instead of img_next_run. */
extern int pih_walk_batches;
/* The largest batch any walk got (tests reset it). */
extern size_t pih_largest_batch;

/* img_open path (verify on or off) and walk it, checking every run. */
void pih_walk(const char *path, int verify, struct pih_walk *w);
void pih_walk_free(struct pih_walk *w);
/* The walk ends cleanly and restores exactly the synthetic device (one run
 * at a time and in batches). */
void pih_expect_good(struct pih_synth *s, const char *path);
/* The walk (or open) fails with `code` and the message contains `needle`
 * (one run at a time and in batches). */
void pih_expect_fail(const char *path, int code, const char *needle);

#endif

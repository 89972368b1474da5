/*
 * test/unit/helper_ntfsclone.h - what the ntfsclone unit tests share
 * (test_ntfsclone.c, test_ntfsclone_access.c): a tiny ntfsclone writer that
 * builds synthetic images in memory, the temp directory they are saved in,
 * opening an image over a memory source, walking it run by run (or in
 * batches) into a restored device, and the device the writer meant.
 *
 * Not for the library: only unit tests link it. Every name is nch_-prefixed
 * (helper_*.c are linked into every unit-test binary).
 */
#ifndef IMGBK_TEST_HELPER_NTFSCLONE_H
#define IMGBK_TEST_HELPER_NTFSCLONE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/fmt.h"

/* ---- the writer ---------------------------------------------------------- */
struct nch_wbuf {
	uint8_t *p;
	size_t len, cap;
};

/* Append n bytes / the n low bytes of v, little-endian. */
void nch_put(struct nch_wbuf *b, const void *d, size_t n);
void nch_put_le(struct nch_wbuf *b, uint64_t v, int n);

struct nch_hdr {
	unsigned major, minor;
	uint32_t cs;
	uint64_t dev, nr, inuse;
	uint32_t off;
};

/* The 50-byte header, then padding (0xEE) up to h->off. */
void nch_w_header(struct nch_wbuf *b, const struct nch_hdr *h);
/* Byte i of cluster `pos` as written by generation `gen`. */
uint8_t nch_pattern(uint64_t pos, size_t i, unsigned gen);
/* A NEXT record: cluster `pos`, len bytes of generation gen. */
void nch_w_next(struct nch_wbuf *b, uint64_t pos, size_t len, unsigned gen);
/* A GAP record of count clusters (negative: metadata images). */
void nch_w_gap(struct nch_wbuf *b, int64_t count);

/* ---- opening and walking ------------------------------------------------- */
/* The group's temp directory (nch_setup makes it, nch_teardown removes it). */
extern char nch_tmpdir[64];
int nch_setup(void **state);
int nch_teardown(void **state);

/* Write data to nch_tmpdir/name; @return the path (a static buffer). */
const char *nch_save_tmp(const char *name, const uint8_t *data, size_t len);

/* Open an image over a memory source that gives at most `chunk` bytes per read. */
int nch_open_mem(const struct nch_wbuf *b, size_t chunk, img_image **out);

struct nch_walk {
	int rc;            /* status that ended the walk */
	uint8_t *dev;      /* restored device, records applied in stream order */
	uint64_t dev_size;
	size_t nruns;
	uint64_t first[64];  /* first_block of the first 64 runs */
	uint64_t blocks_done;
	int ascending;
	size_t max_batch;  /* most runs one call gave */
	char msg[512];
	uint64_t err_offset;
};

/* Walk with img_next_runs(max) (max 0: img_next_run). Checks every run's shape. */
void nch_walk_image(img_image *im, size_t max, struct nch_walk *w);
/* img_open path and walk it; @return the img_open status (err filled). */
int nch_walk_file(const char *path, size_t max, struct nch_walk *w, img_err *err);

/* Expected device: apply records the way the writer emitted them. */
struct nch_expect {
	uint8_t *dev;
	uint64_t size;
};

void nch_expect_init(struct nch_expect *e, uint64_t size);
void nch_expect_cluster(struct nch_expect *e, uint32_t cs, uint64_t pos, size_t len, unsigned gen);

/* ---- images both test files use ------------------------------------------ */
/* 10.1, 512-byte clusters, 8 clusters + backup boot sector of `last` bytes. */
void nch_build_v101(struct nch_wbuf *b, struct nch_expect *e, size_t last);
/* 4 KiB clusters over more than the stream buffer: runs of used clusters
 * with gaps, a partial backup boot sector. */
void nch_build_large(struct nch_wbuf *b, struct nch_expect *e);

#endif

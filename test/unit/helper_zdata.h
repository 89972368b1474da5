/*
 * test/unit/helper_zdata.h - the data the random-read tests compress
 * (helper_zdata.c): deterministic runs of random bytes, text lines, a
 * repeated pattern and zeros, and copies of files with a byte flipped.
 */
#ifndef IMGBK_HELPER_ZDATA_H
#define IMGBK_HELPER_ZDATA_H

#include <stddef.h>
#include <stdint.h>

/* n bytes (malloc'd; NULL out of memory): runs of 16 KiB .. 1 MiB of
 * random bytes, text lines, a repeated pattern and zeros, the same every
 * time. */
uint8_t *zdata_make(size_t n);
/* zdata_make(size), also written to the file at path (NULL when either fails). */
uint8_t *zdata_file(const char *path, size_t size);
/* Copy the file src to dst with byte `at` xor'd with xr (none when at is
 * past the end). @return the size. */
size_t zdata_copy_flipped(const char *src, const char *dst, size_t at, uint8_t xr);

#endif

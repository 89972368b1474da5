/*
 * io/crc.c - the one CRC-32 of the program (zlib's polynomial and chaining,
 * crc32(crc, p, n)), through ISA-L when the build has it: several times
 * zlib's speed. Used for the checksums of images (formats/checksum.c,
 * partimage CHK records) and the segment checks of compressed data
 * (io/zseek.c).
 */
#include <zlib.h>
#ifdef HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "io.h"

uint32_t crc32_fast(uint32_t crc, const void *p, size_t n)
{
#ifdef HAVE_ISAL
	/* ISA-L's gzip CRC takes and returns the same value as zlib's crc32(). */
	return crc32_gzip_refl(crc, p, n);
#else
	const uint8_t *b = p;
	while (n > 0) {  /* zlib takes a uInt length */
		uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = (uint32_t)crc32(crc, b, step);
		b += step;
		n -= step;
	}
	return crc;
#endif
}

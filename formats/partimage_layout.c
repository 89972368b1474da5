/*
 * formats/partimage_layout.c - the pure functions of a partimage image's
 * layout (partimage_layout.h): the byte sum of the tail's qwCRC, the check of
 * a CHK record, and the texts of their errors. Shared by the walk
 * (partimage.c) and random access (partimage_access.c), so each rule and
 * each message exists once. No I/O, no state.
 */
#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PI_SUM_AVX2 1
#endif

#include "fmt.h"
#include "partimage_layout.h"

#ifdef PI_SUM_AVX2
/* The sum of the first n bytes (n a multiple of 64) with AVX2: two
 * independent 32-byte sums, 3-4 times SSE2's speed on a 4 MiB buffer (the
 * sum of every byte read is a tenth of a partimage restore's CPU time). */
__attribute__((target("avx2"))) static uint64_t byte_sum_avx2(const uint8_t *p, size_t n)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, zero = a0;
	for (size_t i = 0; i < n; i += 64) {
		a0 = _mm256_add_epi64(a0, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(p + i)), zero));
		a1 = _mm256_add_epi64(a1, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(p + i + 32)), zero));
	}
	uint64_t lanes[4];
	_mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(a0, a1));
	return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

/* 64 bytes at a time where the CPU has AVX2, then 16 where SSE2 is there. */
uint64_t pi_byte_sum(const uint8_t *p, size_t n)
{
	uint64_t s = 0;
	size_t i = 0;
#ifdef PI_SUM_AVX2
	if (n >= 64 && __builtin_cpu_supports("avx2")) {
		i = n & ~(size_t)63;
		s = byte_sum_avx2(p, i);
	}
#endif
#ifdef __SSE2__
	__m128i acc = _mm_setzero_si128(), zero = _mm_setzero_si128();
	for (; n - i >= 16; i += 16)
		acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128((const __m128i *)(p + i)), zero));
	uint64_t lanes[2];
	_mm_storeu_si128((__m128i *)lanes, acc);
	s += lanes[0] + lanes[1];
#else
	const uint64_t m8 = UINT64_C(0x00FF00FF00FF00FF), m16 = UINT64_C(0x0000FFFF0000FFFF);
	while (n - i >= 8) {
		uint64_t acc = 0;  /* four 16-bit lanes, at most 128 * 510 each */
		for (int k = 0; k < 128 && n - i >= 8; k++, i += 8) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			acc += (w & m8) + ((w >> 8) & m8);
		}
		acc = (acc & m16) + ((acc >> 16) & m16);
		s += (acc & 0xFFFFFFFFu) + (acc >> 32);
	}
#endif
	for (; i < n; i++)
		s += p[i];
	return s;
}

int pi_chk_is_record(const uint8_t *chk)
{
	return memcmp(chk, "CHK\0", 4) == 0;
}

/* dwCRC is zlib's CRC-32, restarted for every chunk. */
int pi_chk_crc_matches(const uint8_t *data, const uint8_t *chk)
{
	return crc32_fast(0, data, PI_CHUNK) == get_le32(chk + 4);
}

const char *pi_bad_chunk_text(char *out, size_t outsz, uint64_t first, uint64_t last, uint64_t c)
{
	snprintf(out, outsz, "CRC32 checksum mismatch in the data of blocks %llu-%llu (CHK record %llu)",
		 (unsigned long long)first, (unsigned long long)last, (unsigned long long)c);
	return out;
}

const char *pi_missing_chk_text(char *out, size_t outsz, uint64_t c)
{
	snprintf(out, outsz, "CHK record %llu expected after %llu data bytes, found other bytes",
		 (unsigned long long)c, (unsigned long long)((c + 1) * PI_CHUNK));
	return out;
}

const char *pi_missing_tail_text(char *out, size_t outsz)
{
	snprintf(out, outsz, "%s expected after the data, found other bytes", PI_TAIL_MAGIC);
	return out;
}

const char *pi_tail_sum_text(char *out, size_t outsz, uint64_t stored, uint64_t computed,
			     const char *what)
{
	snprintf(out, outsz, "tail checksum (byte sum of the whole image) mismatch: stored 0x%016llx, "
		 "computed 0x%016llx: %s", (unsigned long long)stored, (unsigned long long)computed, what);
	return out;
}

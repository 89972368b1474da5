/*
 * test/unit/helper_zdata.c - the data the random-read tests compress, and
 * flipped copies of files (helper_zdata.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_zdata.h"

static uint32_t xs(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

uint8_t *zdata_make(size_t size)
{
	uint32_t x = 0x9E3779B9u;
	size_t i = 0, line = 0;
	uint8_t *data = malloc(size);
	if (!data)
		return NULL;
	while (i < size) {
		size_t run = 16384 + xs(&x) % (1u << 20), kind = xs(&x) % 4;
		if (run > size - i)
			run = size - i;
		size_t end = i + run;
		switch (kind) {
		case 0:
			for (; i < end; i++)
				data[i] = (uint8_t)xs(&x);
			break;
		case 1:
			while (i < end) {
				char l[96];
				int n = snprintf(l, sizeof l, "line %zu: the quick brown fox %u jumps\n", line++,
						 xs(&x) % 10007);
				for (int j = 0; j < n && i < end; j++)
					data[i++] = (uint8_t)l[j];
			}
			break;
		case 2:
			for (size_t j = 0; i < end; i++, j++)
				data[i] = (uint8_t)("imgbk-zseek-"[j % 12] ^ (j / 4096));
			break;
		default:
			memset(data + i, 0, run);
			i = end;
			break;
		}
	}
	return data;
}

uint8_t *zdata_file(const char *path, size_t size)
{
	uint8_t *data = zdata_make(size);
	FILE *f = data ? fopen(path, "wb") : NULL;
	int ok = f && fwrite(data, 1, size, f) == size;
	if (f && fclose(f) != 0)
		ok = 0;
	if (!ok) {
		free(data);
		return NULL;
	}
	return data;
}

size_t zdata_copy_flipped(const char *src, const char *dst, size_t at, uint8_t xr)
{
	FILE *f = fopen(src, "rb");
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	size_t n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc(n ? n : 1);
	size_t got = p ? fread(p, 1, n, f) : 0;
	fclose(f);
	if (got != n) {
		free(p);
		return 0;
	}
	if (at < n)
		p[at] ^= xr;
	FILE *o = fopen(dst, "wb");
	if (o) {
		fwrite(p, 1, n, o);
		fclose(o);
	}
	free(p);
	return n;
}

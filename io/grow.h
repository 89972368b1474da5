/*
 * io/grow.h - the one way io/ and formats/ grow an array they append to:
 * its capacity doubles (from a first size) when the next element would not
 * fit. Header only; needs nothing but libc.
 */
#ifndef IMGBK_IO_GROW_H
#define IMGBK_IO_GROW_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Make room for element `n` (0-based) of the array *arrp of `elem`-byte
 * elements with room for *cap: when n == *cap, realloc it to twice *cap
 * (or `first` elements when it is empty). arrp is the address of the
 * array's pointer, of any object pointer type.
 * @return 0, or -1 when out of memory (the array and *cap stay as they were). */
static inline int grow_for(void *arrp, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : first;
	if (ncap <= n || ncap > (size_t)-1 / elem)
		return -1;
	void *old;
	memcpy(&old, arrp, sizeof old);
	void *p = realloc(old, ncap * elem);
	if (!p)
		return -1;
	memcpy(arrp, &p, sizeof p);
	*cap = ncap;
	return 0;
}

#endif

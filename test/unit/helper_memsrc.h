/*
 * test/unit/helper_memsrc.h - a test source layer over a memory buffer: it
 * hands out at most `chunk` bytes per produce() call (to exercise every
 * refill boundary) and can be told to fail its Nth produce() call.
 *
 * Not for the library: only unit tests link it.
 */
#ifndef IMGBK_TEST_HELPER_MEMSRC_H
#define IMGBK_TEST_HELPER_MEMSRC_H

#include <stddef.h>
#include "io/io.h"

/*
 * Open a source over data[0..len) (not copied: it must outlive the stream),
 * at most `chunk` bytes per produce() (0 = no limit). The stream's path is
 * "mem". @return IMG_OK and *out, or IMG_E_IO with err set.
 */
int memsrc_open(const void *data, size_t len, size_t chunk, img_err *err, img_stream **out);

/* Make the nth_call-th produce() call (1 = the first) fail with IMG_E_IO. */
void memsrc_fail_at(img_stream *s, int nth_call);

/* Number of produce() calls made so far. */
int memsrc_calls(const img_stream *s);

#endif

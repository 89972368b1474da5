/*
 * test/unit/helper_tmpdir.h - a scratch folder for a unit test, made before
 * its tests run and removed after them (helper_tmpdir.c).
 */
#ifndef IMGBK_HELPER_TMPDIR_H
#define IMGBK_HELPER_TMPDIR_H

#include <stddef.h>

/* Make /tmp/imgbk-TAG-?????? into buf. @return 0, or -1 when it cannot. */
int test_tmpdir_make(char *buf, size_t size, const char *tag);
/* dir/name, in one of 4 static buffers used in turn (valid until the
 * fourth call after). */
const char *test_tmpdir_path(const char *dir, const char *name);
/* Remove it and everything in it. @return 0, or -1 when that failed. */
int test_tmpdir_remove(const char *dir);

#endif

/*
 * test/fuzz/fuzz_util.h - what the libFuzzer harnesses share: a scratch
 * folder per process, writing a buffer to a file, a deterministic PRNG fed
 * from the input, and the check that an error slot holds one line naming
 * the input.
 *
 * Not for the library, nor for unit tests (test_regress.c replays the
 * harnesses' inputs by including the harness sources with FUZZ_NO_MAIN).
 */
#ifndef IMGBK_FUZZ_UTIL_H
#define IMGBK_FUZZ_UTIL_H

#include <ftw.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imgbk.h"

/* Abort with a message: libFuzzer (and the replay test) report it as a crash. */
#define FUZZ_CHECK(cond, ...)                                                     \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond,  \
				__FILE__, __LINE__);                              \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
			abort();                                                  \
		}                                                                 \
	} while (0)

static char fuzz_dir_name[512];

static inline int fuzz_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static inline void fuzz_dir_remove(void)
{
	if (fuzz_dir_name[0])
		nftw(fuzz_dir_name, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A scratch folder of this process (made once, under $TMPDIR, /dev/shm or
 * /tmp; removed at exit unless IMGBK_FUZZ_KEEP is set). */
static inline const char *fuzz_dir(void)
{
	char *dir = fuzz_dir_name;
	if (dir[0])
		return dir;
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof fuzz_dir_name, "%s/imgbk-fuzz.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	if (!getenv("IMGBK_FUZZ_KEEP"))
		atexit(fuzz_dir_remove);
	return dir;
}

/* dir/name into out. */
static inline void fuzz_path(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s", fuzz_dir(), name);
}

/* Write data to path (replacing it). @return 0, or -1. */
static inline int fuzz_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = (len == 0 || fwrite(data, 1, len, f) == len);
	ok = fclose(f) == 0 && ok;
	return ok ? 0 : -1;
}

/* splitmix64: offsets and lengths derived from the input, reproducibly. */
static inline uint64_t fuzz_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* FNV-1a of the input: the PRNG seed. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* An error status must come with a one-line message in the slot. */
static inline void fuzz_check_err(int rc, const img_err *err, const char *name)
{
	FUZZ_CHECK(rc < 0, "status %d is not an error", rc);
	FUZZ_CHECK(rc >= IMG_E_USAGE, "status %d is not a documented IMG_E_* code", rc);
	FUZZ_CHECK(err->msg[0] != 0, "status %d without a message", rc);
	FUZZ_CHECK(memchr(err->msg, '\n', strnlen(err->msg, sizeof err->msg)) == NULL, "message has a newline: %s", err->msg);
	FUZZ_CHECK(name == NULL || strstr(err->msg, name) != NULL, "message does not name %s: %s", name,
		   err->msg);
}

/* Sum every byte (so ASan sees each one read). */
static inline uint64_t fuzz_touch(const uint8_t *p, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

#endif

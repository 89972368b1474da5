/*
 * test/unit/test_regress.c - replays every input the fuzzers ever failed on
 * (the files of test/fuzz/regress/HARNESS/) and the committed seeds
 * (test/fuzz/seeds/HARNESS/) through the same entry points as the
 * libFuzzer harnesses, which are compiled in here under other names. A
 * harness aborts on a broken invariant and ASan/UBSan (make unit
 * SANITIZE=1) on memory errors, so a clean run means: every input ends in a
 * clean negative status or success, never a crash. Each harness must replay
 * at least the inputs committed for it, so a run that finds none fails.
 *
 * Environment: IMGBK_FUZZ_DIR (default test/fuzz), IMGBK_TEST_DATA (the
 * fixtures fuzz_index uses; default test/data).
 * Not here: finding new inputs (make fuzz).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FUZZ_ENTRY regress_image
#include "../fuzz/fuzz_image.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_codecs
#include "../fuzz/fuzz_codecs.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_split
#include "../fuzz/fuzz_split.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_index
#include "../fuzz/fuzz_index.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_random
#include "../fuzz/fuzz_random.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_zseek
#include "../fuzz/fuzz_zseek.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY regress_zpar
#include "../fuzz/fuzz_zpar.c"
#undef FUZZ_ENTRY

struct harness {
	const char *name;
	int (*entry)(const uint8_t *data, size_t size);
	size_t committed;  /* inputs in regress/ + seeds/ in git: a run replays at least these */
};

static const struct harness harnesses[] = {
	{ "fuzz_image", regress_image, 5 },   { "fuzz_codecs", regress_codecs, 19 },
	{ "fuzz_split", regress_split, 5 },   { "fuzz_index", regress_index, 14 },
	{ "fuzz_random", regress_random, 1 }, { "fuzz_zseek", regress_zseek, 4 },
	{ "fuzz_zpar", regress_zpar, 3 },
};

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feed every file of DIR/<kind>/<harness>/ to the harness. @return files run. */
static size_t replay_dir(const struct harness *h, const char *kind)
{
	const char *base = getenv("IMGBK_FUZZ_DIR");
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/%s/%s", base && *base ? base : "test/fuzz", kind, h->name);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			names = realloc(names, cap * sizeof *names);
			assert_non_null(names);
		}
		names[n] = strdup(e->d_name);
		assert_non_null(names[n]);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n; i++) {
		char path[1400];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		size_t len = 0;
		uint8_t *data = index_slurp(path, &len);
		assert_non_null(data);
		printf("# %s < %s (%zu bytes)\n", h->name, path, len);
		fflush(stdout);
		assert_int_equal(h->entry(data, len), 0);
		free(data);
		free(names[i]);
	}
	free(names);
	return n;
}

static void test_replay(void **state)
{
	const struct harness *h = *state;
	size_t n = replay_dir(h, "regress") + replay_dir(h, "seeds");
	printf("# %s: %zu inputs replayed\n", h->name, n);
	/* no inputs found (a wrong IMGBK_FUZZ_DIR, a folder gone) is a failure */
	if (n < h->committed)
		fail_msg("%s: %zu inputs replayed, but %zu are committed (IMGBK_FUZZ_DIR?)", h->name, n,
			 h->committed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[0]),
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[1]),
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[2]),
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[3]),
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[4]),
		cmocka_unit_test_prestate(test_replay, (void *)&harnesses[5]),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

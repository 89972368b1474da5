/*
 * test/unit/test_codecs_split.c - unit tests of the split-set source
 * (io/split.c): pieces named NAME.aa, NAME.ab, ... (split's suffixes, also
 * widened past .zz and of other lengths) found from the first piece or the
 * bare name, read back whole through gzip as one stream, and a missing
 * piece reported with its name and the offset where it would start.
 *
 * Not here: the decoding layers (test_codecs.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper_codecs.h"

/* ---- split sets -------------------------------------------------------------------- */

static void free_list(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* split_list_pieces() names `count` pieces, the last one `last`. */
static void expect_list(const char *dir, const char *given, size_t count, const char *last)
{
	char path[256], want[256];
	char **names = NULL;
	size_t n = 0;
	img_err err;
	memset(&err, 0, sizeof err);
	snprintf(path, sizeof path, "%s/%s", dir, given);
	assert_int_equal(split_list_pieces(path, &names, &n, &err), IMG_OK);
	assert_int_equal(n, count);
	snprintf(want, sizeof want, "%s/%s", dir, last);
	assert_string_equal(names[n - 1], want);
	free_list(names, n);
}

static void test_split(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-split-XXXXXX";
	char path[256], name[256];
	assert_non_null(mkdtemp(dir));
	struct buf plain = { 0 }, gz = { 0 }, out = { 0 };
	make_plain(&plain, 300000, 17);
	enc_gzip(&gz, plain.p, plain.n);
	const char *sfx[] = { "aa", "ab", "ac" };
	size_t cut[] = { 0, gz.n / 3, gz.n / 3 + 1000, gz.n };
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/NAME.%s", dir, sfx[i]);
		write_file(path, gz.p + cut[i], cut[i + 1] - cut[i]);
	}
	img_err err;
	img_stream *s = NULL, *z = NULL;

	/* the first piece, or the name without suffix */
	const char *given[] = { "NAME.aa", "NAME" };
	for (int g = 0; g < 2; g++) {
		snprintf(path, sizeof path, "%s/%s", dir, given[g]);
		memset(&err, 0, sizeof err);
		assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
		assert_string_equal(s->path, path);
		assert_int_equal(read_all(s, &out), IMG_EOF);
		assert_int_equal(out.n, gz.n);
		assert_memory_equal(out.p, gz.p, gz.n);
		stream_close(s);
	}
	/* gzip over the split set */
	snprintf(path, sizeof path, "%s/NAME.aa", dir);
	assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
	assert_int_equal(open_by_table("gzip", s, &z), IMG_OK);
	assert_int_equal(read_all(z, &out), IMG_EOF);
	assert_int_equal(out.n, plain.n);
	assert_memory_equal(out.p, plain.p, plain.n);
	stream_close(z);

	expect_list(dir, "NAME", 3, "NAME.ac");
	expect_list(dir, "NAME.aa", 3, "NAME.ac");

	/* not split sets */
	char **names = NULL;
	size_t count = 0;
	snprintf(path, sizeof path, "%s/NAME.ab", dir);
	assert_int_equal(split_list_pieces(path, &names, &count, &err), IMG_EOF);
	assert_int_equal(source_open_split(path, &err, &s), IMG_EOF);
	snprintf(path, sizeof path, "%s/OTHER", dir);
	assert_int_equal(source_open_split(path, &err, &s), IMG_EOF);
	assert_int_equal(source_open_split("-", &err, &s), IMG_EOF);

	/* a missing middle piece */
	snprintf(name, sizeof name, "%s/NAME.ab", dir);
	assert_int_equal(unlink(name), 0);
	const char *given2[] = { "NAME.aa", "NAME" };
	for (int g = 0; g < 2; g++) {
		snprintf(path, sizeof path, "%s/%s", dir, given2[g]);
		memset(&err, 0, sizeof err);
		assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
		int rc = read_all(s, &out);
		assert_int_equal(rc, IMG_E_MISSING);
		assert_int_equal(err.code, IMG_E_MISSING);
		assert_non_null(strstr(err.msg, "NAME.ab"));
		assert_non_null(strstr(err.msg, path));
		char at[64];
		snprintf(at, sizeof at, "byte %zu", cut[1]);
		assert_non_null(strstr(err.msg, at));
		assert_int_equal(err.offset, cut[1]);
		assert_int_equal(out.n, cut[1]);
		stream_close(s);
		memset(&err, 0, sizeof err);
		assert_int_equal(split_list_pieces(path, &names, &count, &err), IMG_E_MISSING);
		assert_null(names);
		assert_non_null(strstr(err.msg, "NAME.ab"));
		assert_int_equal(err.offset, cut[1]);
	}
	/* the last piece missing is simply the end (a set has no end marker) */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "%s/NAME.%s", dir, sfx[i]);
		unlink(name);
	}
	assert_int_equal(rmdir(dir), 0);
	buf_free(&plain);
	buf_free(&gz);
	buf_free(&out);
}

/* Write `count` 3-byte pieces named from `first` on; @return the name after the last. */
static void write_pieces(const char *dir, const char *first, size_t len, int widen, int count,
			 struct buf *all, char *name)
{
	char path[256], next[64];
	strcpy(name, first);
	all->n = 0;
	for (int i = 0; i < count; i++) {
		uint8_t piece[3] = { (uint8_t)i, (uint8_t)(i >> 8), 0xAB };
		snprintf(path, sizeof path, "%s/%s", dir, name);
		write_file(path, piece, 3);
		buf_add(all, piece, 3);
		assert_int_equal(split_next_name(name, len, widen, next, sizeof next), 0);
		if (strlen(next) > strlen(name))
			len += 2;
		strcpy(name, next);
	}
}

static void expect_set(const char *dir, const char *given, const struct buf *all)
{
	char path[256];
	struct buf out = { 0 };
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *s;
	snprintf(path, sizeof path, "%s/%s", dir, given);
	assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
	int rc = read_all(s, &out);
	if (rc != IMG_EOF)
		fail_msg("%s: %d %s", given, rc, err.msg);
	assert_int_equal(out.n, all->n);
	assert_memory_equal(out.p, all->p, all->n);
	stream_close(s);
	buf_free(&out);
}

/* split -a 3 (no widening); a default split whose prefix ends in 'a' (sdaaa..sdayz, sdazaaa). */
static void test_split_suffix_lengths(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-split-XXXXXX";
	char name[64], cmd[300];
	struct buf all = { 0 };
	assert_non_null(mkdtemp(dir));
	write_pieces(dir, "N.aaa", 3, 0, 30, &all, name);
	expect_set(dir, "N.aaa", &all);
	expect_set(dir, "N", &all);
	write_pieces(dir, "sdaaa", 2, 1, 655, &all, name);
	assert_string_equal(name, "sdazaaf");
	expect_set(dir, "sdaaa", &all);  /* a run of 3 'a's: taken as -a 3 first */
	expect_set(dir, "sda", &all);
	expect_list(dir, "sdaaa", 655, "sdazaae");
	expect_list(dir, "N", 30, "N.abd");
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	buf_free(&all);
}

/* A set of 652 pieces crosses the first widening: ...yz, zaaa, zaab. */
static void test_split_widening(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-split-XXXXXX";
	char path[256], name[64], next[64];
	assert_non_null(mkdtemp(dir));
	strcpy(name, "x.aa");
	size_t len = 2;
	struct buf all = { 0 }, out = { 0 };
	for (int i = 0; i < 653; i++) {
		uint8_t piece[3] = { (uint8_t)i, (uint8_t)(i >> 8), 0xAB };
		snprintf(path, sizeof path, "%s/%s", dir, name);
		write_file(path, piece, 3);
		buf_add(&all, piece, 3);
		assert_int_equal(split_next_name(name, len, 1, next, sizeof next), 0);
		if (strlen(next) > strlen(name))
			len += 2;
		strcpy(name, next);
	}
	assert_string_equal(name, "x.zaad");
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *s;
	snprintf(path, sizeof path, "%s/x", dir);
	assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
	expect_all_then_close(s, &all);

	/* remove x.zaaa: a gap across the widening */
	snprintf(path, sizeof path, "%s/x.zaaa", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof path, "%s/x.aa", dir);
	memset(&err, 0, sizeof err);
	assert_int_equal(source_open_split(path, &err, &s), IMG_OK);
	assert_int_equal(read_all(s, &out), IMG_E_MISSING);
	assert_non_null(strstr(err.msg, "x.zaaa"));
	assert_int_equal(err.offset, 650 * 3);
	stream_close(s);

	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	buf_free(&all);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_widening),
		cmocka_unit_test(test_split_suffix_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test/unit/test_zseek_view.c - what a decoded view's reads cost
 * (io/zseek.c, zs_view_counts), over gzip data with access points every
 * VIEW_SPAN / 2: threads reading the same segments at once decode each
 * once; sequential reads with decode-ahead are right and decode each
 * segment once, two side by side; eight readers at once run at most
 * ZS_DECODES decodes at once; a damaged segment fails alone with
 * decode-ahead on; a fork() while the threads run leaves both processes
 * reading right, each with its own threads; reads that come out of order
 * (a mount's) still decode each segment once; zs_view_peek lends a held
 * segment in place.
 *
 * Not here: reads of each kind of gzip file, saved points, damage
 * (test_zseek_gz.c), mounts (zmount.sh).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper_tmpdir.h"
#include "helper_zdata.h"
#include "io/zseek.h"

#define DATA_SIZE ((size_t)20 << 20)

static char tmpdir[64];
static uint8_t *data;  /* DATA_SIZE bytes, as written to data.bin and gzip -1'd to g1.gz */

static const char *tpath(const char *name)
{
	return test_tmpdir_path(tmpdir, name);
}

static size_t copy_flipped(const char *src, const char *dst, size_t at, uint8_t xr)
{
	char from[256];
	snprintf(from, sizeof from, "%s", tpath(src));
	return zdata_copy_flipped(from, tpath(dst), at, xr);
}

static int setup(void **state)
{
	(void)state;
	if (!(data = zdata_file(tpath("data.bin"), DATA_SIZE)))
		return -1;
	char cmd[400];
	snprintf(cmd, sizeof cmd, "cd %s && gzip -1 -c data.bin >g1.gz", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the view's reads: each segment decoded once, decode-ahead ---------------------- */

#define VIEW_SPAN ((uint64_t)2 << 20)  /* gzip points every span / 2: segments of at least 1 MiB,
					 * so a 2 MiB range touches at most 3 */

static zs_view *view_of(const char *name, const uint8_t *saved, size_t saved_len, img_rsrc **raw,
			size_t *points)
{
	img_err err;
	memset(&err, 0, sizeof err);
	assert_int_equal(rsrc_open(tpath(name), &err, raw), IMG_OK);
	int rebuilt = 0;
	zs_view *v = NULL;
	if (zs_view_open(*raw, name, &zs_gzip_ops, saved, saved_len, NULL, NULL, &rebuilt, &err, &v) != IMG_OK)
		fail_msg("%s: zs_view_open failed: %s", name, err.msg);
	uint64_t sb = 0;
	zs_view_stats(v, points, &sb);
	return v;
}

static void view_done(zs_view *v, img_rsrc *raw)
{
	zs_view_close(v);
	rsrc_close(raw);
}

static uint64_t decodes_of(zs_view *v)
{
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	return c.segment_decodes;
}

struct range_reader {
	zs_view *v;
	pthread_barrier_t *go;
	uint64_t off;
	size_t len, chunk, first;  /* reads `chunk` bytes, starting at chunk number `first`, wrapping */
	int bad;
	char why[700];
};

/* Read [off, off + len) in chunks from chunk `first` on, wrapping; compare. */
static void *read_range(void *arg)
{
	struct range_reader *r = arg;
	uint8_t *buf = malloc(r->chunk);
	size_t nchunks = r->len / r->chunk;
	if (r->go)
		pthread_barrier_wait(r->go);
	for (size_t k = 0; buf && k < nchunks && !r->bad; k++) {
		uint64_t at = r->off + (uint64_t)((r->first + k) % nchunks) * r->chunk;
		size_t got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		int rc = zs_view_pread(r->v, buf, r->chunk, at, &got, &err);
		if (rc != IMG_OK || got != r->chunk || memcmp(buf, data + at, r->chunk) != 0) {
			r->bad = 1;
			snprintf(r->why, sizeof r->why, "read at %llu: rc %d, got %zu, %s",
				 (unsigned long long)at, rc, got, rc != IMG_OK ? err.msg : "wrong bytes");
		}
	}
	free(buf);
	return NULL;
}

/* Run r[0..n) each on a thread of its own, started together; fail with
 * the first one that read wrong. */
static void readers_at_once(struct range_reader *r, int n)
{
	pthread_barrier_t go;
	pthread_t t[16];
	assert_true(n <= 16);
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		r[i].go = &go;
		assert_int_equal(pthread_create(&t[i], NULL, read_range, &r[i]), 0);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < n; i++)
		if (r[i].bad)
			fail_msg("thread %d: %s", i, r[i].why);
}

/* Threads reading the same segments at once, in different orders, get the
 * right bytes and decode each segment once: as many decodes as one reader. */
static void test_concurrent_one_decode(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(0);  /* only the readers decode */
	const struct { uint64_t off; size_t len, chunk; } cases[] = {
		{ (uint64_t)10 << 20, 4096, 4096 },                /* one 4 KiB block, 8 readers */
		{ (uint64_t)3 << 20, (size_t)2 << 20, 65536 },     /* 2-3 segments, orders differ */
		{ DATA_SIZE - ((size_t)2 << 20), (size_t)2 << 20, 131072 },  /* up to the end */
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		img_rsrc *raw = NULL;
		size_t points = 0;
		zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
		struct range_reader one = { .v = v, .off = cases[k].off, .len = cases[k].len, .chunk = cases[k].chunk };
		read_range(&one);
		if (one.bad)
			fail_msg("one reader: %s", one.why);
		uint64_t want = decodes_of(v);
		view_done(v, raw);
		assert_true(want >= 1 && want <= 3);

		v = view_of("g1.gz", NULL, 0, &raw, &points);
		struct range_reader r[8];
		for (int i = 0; i < 8; i++) {
			r[i] = one;
			r[i].v = v;
			r[i].first = (size_t)i * 5;
		}
		print_message("# case %zu\n", k);
		readers_at_once(r, 8);
		uint64_t got = decodes_of(v);
		print_message("# case %zu: %llu segment decodes by 8 readers, %llu by one\n", k,
			      (unsigned long long)got, (unsigned long long)want);
		assert_int_equal(got, want);
		view_done(v, raw);
	}
}

/* Wait until the decode-ahead thread decoded at least one segment (10 s). */
static int ahead_seen(zs_view *v)
{
	struct zs_view_counts c;
	for (int i = 0; i < 1000; i++) {
		zs_view_counts(v, &c);
		if (c.ahead_decodes > 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* g1.gz in a view with VIEW_SPAN (8 segments or more) and decode-ahead on. */
static zs_view *ahead_view(img_rsrc **raw, size_t *points)
{
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(1);
	zs_view *v = view_of("g1.gz", NULL, 0, raw, points);
	assert_true(*points >= 8);
	return v;
}

/* Wait until the view decodes nothing more for 50 ms (the decode-ahead
 * threads did what the last read asked of them). */
static void settle(zs_view *v)
{
	uint64_t last = UINT64_MAX;
	for (int still = 0, i = 0; still < 5 && i < 1000; i++) {
		uint64_t now = decodes_of(v);
		still = now == last ? still + 1 : 0;
		last = now;
		usleep(10000);
	}
}

/* Reads stepping two segments at a time, each into a segment decoded ahead
 * two on: the two segments after it are missing at once, and the two
 * decode-ahead threads decode them side by side. @return 1 when two
 * decodes ran at once (a busy machine may leave a step's wait short, the
 * reads then decode a segment themselves: up to 5 steps). The threads
 * linger 200 ms after each decode: on a loaded machine (make check's
 * sanitizer build beside three other jobs) they ran one after the other
 * in every step of 4 tries. */
static int two_at_once(void)
{
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_set_ahead_linger(200);
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)3 << 20, .chunk = 131072 };
	read_range(&head);
	if (head.bad)
		fail_msg("%s", head.why);
	size_t b = 0;
	while (b + 1 < points && zs_view_point_at(v, b + 1) < head.len)
		b++;
	struct zs_view_counts c = { 0 };
	for (int step = 0; step < 5 && b + 4 < points && c.ahead_most < 2; step++, b += 2) {
		settle(v);  /* the two segments after the one the reads are in are held */
		struct range_reader jump = { .v = v, .off = zs_view_point_at(v, b + 2), .len = 131072,
					     .chunk = 131072 };
		read_range(&jump);
		if (jump.bad)
			fail_msg("%s", jump.why);
		settle(v);
		zs_view_counts(v, &c);
	}
	view_done(v, raw);
	zs_set_ahead_linger(0);
	return c.ahead_most == 2;
}

/* Sequential reads with decode-ahead: the right bytes, every segment
 * decoded once, some of them by the decode-ahead threads; and the two
 * threads decode side by side (one per core) where two segments ahead are
 * missing at once. */
static void test_sequential_ahead(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)3 << 20, .chunk = 131072 };
	read_range(&head);  /* crosses segment boundaries: the thread starts */
	if (head.bad)
		fail_msg("%s", head.why);
	if (!ahead_seen(v))
		fail_msg("sequential reads over 3 MiB: the decode-ahead thread decoded nothing in 10 s");
	struct range_reader rest = { .v = v, .off = head.len, .len = DATA_SIZE - head.len, .chunk = 131072 };
	read_range(&rest);
	if (rest.bad)
		fail_msg("%s", rest.why);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# %zu segments: %llu decodes, %llu of them ahead\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.ahead_decodes);
	assert_int_equal(c.segment_decodes, points);
	assert_true(c.ahead_decodes >= 1);
	view_done(v, raw);
	int ok = 0, tries = 0;
	while (!ok && tries < 4) {
		ok = two_at_once();
		tries++;
	}
	print_message("# two segments decoded ahead at once: %s (tries: %d)\n", ok ? "yes" : "no", tries);
	assert_true(ok);
}

/* Eight threads reading eight places at once, with decode-ahead on: the
 * right bytes, and never more than ZS_DECODES whole-segment decodes at
 * once (each holds a codec decoder and its window: the mount daemon's peak
 * memory), the cap reached. */
static void test_decodes_bounded(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader r[8];
	for (int i = 0; i < 8; i++)
		r[i] = (struct range_reader){ .v = v, .off = (uint64_t)i * (DATA_SIZE / 8), .len = (size_t)2 << 20,
					      .chunk = 65536 };
	readers_at_once(r, 8);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# 8 readers, %zu segments: %llu decodes, at most %llu at once (cap %d)\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.decodes_most, ZS_DECODES);
	assert_int_equal(c.decodes_most, ZS_DECODES);
	view_done(v, raw);
}

/* A byte flipped after indexing, read sequentially with decode-ahead on:
 * the reads in one run of at most 4 MiB fail (IMG_E_CORRUPT), every other
 * read before and after it gives the right bytes. */
static void test_damaged_ahead(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(1);
	img_rsrc *raw = NULL;
	size_t points = 0, slen = 0;
	zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
	uint8_t *saved = NULL;
	assert_int_equal(zs_view_save(v, &saved, &slen), IMG_OK);
	view_done(v, raw);
	size_t size = copy_flipped("g1.gz", "ahead-bad.gz", 0, 0);
	copy_flipped("g1.gz", "ahead-bad.gz", size / 2, 0x55);
	v = view_of("ahead-bad.gz", saved, slen, &raw, &points);
	const size_t chunk = 65536;
	uint8_t *buf = malloc(chunk);
	assert_non_null(buf);
	size_t first_bad = SIZE_MAX, last_bad = 0;
	for (size_t off = 0; off < DATA_SIZE; off += chunk) {
		size_t got = 0;
		img_err err;
		memset(&err, 0, sizeof err);
		int rc = zs_view_pread(v, buf, chunk, off, &got, &err);
		if (rc != IMG_OK) {
			assert_int_equal(rc, IMG_E_CORRUPT);
			assert_non_null(strstr(err.msg, "ahead-bad.gz"));
			if (first_bad == SIZE_MAX)
				print_message("# first failing read at %zu: %s\n", off, err.msg);
			if (first_bad != SIZE_MAX && last_bad + chunk != off)
				fail_msg("failing reads at %zu and %zu, good ones between", last_bad, off);
			first_bad = first_bad == SIZE_MAX ? off : first_bad;
			last_bad = off;
			continue;
		}
		if (got != chunk || memcmp(buf, data + off, chunk) != 0)
			fail_msg("read at %zu: %s", off, got != chunk ? "short" : "wrong bytes, no error");
	}
	if (first_bad == SIZE_MAX)
		fail_msg("a byte flipped at compressed %zu: no read failed", size / 2);
	print_message("# failing reads: decoded bytes %zu-%zu\n", first_bad, last_bad + chunk - 1);
	assert_true(last_bad + chunk - first_bad <= ((size_t)4 << 20));
	assert_true(last_bad + chunk < DATA_SIZE);  /* reads after the damaged span work */
	assert_true(ahead_seen(v));
	free(buf);
	free(saved);
	view_done(v, raw);
}

/* The decode-ahead thread and fork() (a mount daemon forks after its
 * image was read): fork while the thread runs; the child reads everything
 * right with a thread of its own (more ahead decodes), and so does the
 * parent after. A child that inherited a segment claimed by a thread it
 * does not have would wait forever: the alarm ends it. */
static void test_fork_ahead(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	struct range_reader head = { .v = v, .off = 0, .len = (size_t)4 << 20, .chunk = 131072 };
	read_range(&head);
	if (head.bad || !ahead_seen(v))
		fail_msg("before the fork: %s", head.bad ? head.why : "no decode-ahead");
	struct zs_view_counts before;
	zs_view_counts(v, &before);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(60);
		struct range_reader all = { .v = v, .off = 0, .len = DATA_SIZE, .chunk = 131072 };
		read_range(&all);
		struct zs_view_counts after;
		zs_view_counts(v, &after);
		if (all.bad)
			fprintf(stderr, "child: %s\n", all.why);
		_exit(all.bad ? 1 : after.ahead_decodes > before.ahead_decodes ? 0 : 2);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the forked child: %s %d (1: wrong bytes, 2: no decode-ahead of its own)",
			 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	struct range_reader rest = { .v = v, .off = head.len, .len = DATA_SIZE - head.len, .chunk = 131072 };
	read_range(&rest);
	if (rest.bad)
		fail_msg("parent after the fork: %s", rest.why);
	view_done(v, raw);
}

#define STRAGGLER ((uint64_t)5 << 19)  /* 2.5 MiB: two segments of g1.gz back (1.3 MiB each) */

/* Reads that come out of order, as a mount's do (the kernel's readahead
 * requests served by several threads): sequential reads, each followed by a
 * read STRAGGLER back (two segments behind) once the decode-ahead threads have
 * moved on. The segments just behind are kept while the threads decode
 * ahead, so every segment is decoded once. (Keeping only the segment the
 * reads are in and those ahead decoded the one two behind again.) */
static void test_stragglers_kept(void **state)
{
	(void)state;
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = ahead_view(&raw, &points);
	const size_t chunk = (size_t)256 << 10;
	uint8_t *buf = malloc(chunk);
	assert_non_null(buf);
	for (uint64_t off = 0; off + chunk <= DATA_SIZE; off += chunk) {
		uint64_t at[2] = { off, off >= STRAGGLER ? off - STRAGGLER : off };
		for (int k = 0; k < 2; k++) {
			size_t got = 0;
			img_err err;
			memset(&err, 0, sizeof err);
			int rc = zs_view_pread(v, buf, chunk, at[k], &got, &err);
			if (rc != IMG_OK || got != chunk || memcmp(buf, data + at[k], chunk) != 0)
				fail_msg("read at %llu: rc %d, got %zu, %s", (unsigned long long)at[k], rc, got,
					 rc != IMG_OK ? err.msg : "wrong bytes");
			settle(v);
		}
	}
	free(buf);
	struct zs_view_counts c;
	zs_view_counts(v, &c);
	print_message("# %zu segments: %llu decodes (%llu ahead)\n", points,
		      (unsigned long long)c.segment_decodes, (unsigned long long)c.ahead_decodes);
	assert_int_equal(c.segment_decodes, points);
	assert_true(c.ahead_decodes >= points / 2);
	view_done(v, raw);
}

/* zs_view_peek: the bytes of a range inside one held segment, in place (the
 * same as zs_view_pread's), the segment decoded once however often it is
 * looked at, and kept while it is looked at; NULL for a range that crosses
 * a segment's end or the end of the data. */
static void test_peek(void **state)
{
	(void)state;
	zs_set_first_span(VIEW_SPAN);
	zs_set_decode_ahead(0);
	img_rsrc *raw = NULL;
	size_t points = 0;
	zs_view *v = view_of("g1.gz", NULL, 0, &raw, &points);
	img_err err;
	memset(&err, 0, sizeof err);
	const uint8_t *p = NULL;
	void *pin = NULL;
	uint64_t off = (uint64_t)5 << 20;
	assert_int_equal(zs_view_peek(v, 4096, off, &p, &pin, &err), IMG_OK);
	assert_non_null(p);
	assert_non_null(pin);
	assert_memory_equal(p, data + off, 4096);
	/* while it is pinned, reads of other places (more segments than the
	 * view has cursors) do not take its buffer */
	uint8_t *buf = malloc(65536);
	assert_non_null(buf);
	for (uint64_t at = 0; at < DATA_SIZE; at += (uint64_t)1 << 20) {
		size_t got = 0;
		assert_int_equal(zs_view_pread(v, buf, 65536, at, &got, &err), IMG_OK);
		assert_memory_equal(buf, data + at, got);
	}
	assert_memory_equal(p, data + off, 4096);
	uint64_t before = decodes_of(v);
	const uint8_t *q = NULL;
	void *pin2 = NULL;
	assert_int_equal(zs_view_peek(v, 8192, off + 4096, &q, &pin2, &err), IMG_OK);
	assert_ptr_equal(q, p + 4096);  /* the same held segment, looked at again */
	assert_int_equal(decodes_of(v), before);
	zs_view_unpeek(v, pin2);
	zs_view_unpeek(v, pin);
	free(buf);
	/* more than a segment, or past the end: not in one piece */
	assert_int_equal(zs_view_peek(v, (size_t)3 << 20, off, &p, &pin, &err), IMG_OK);
	assert_null(p);
	assert_null(pin);
	assert_int_equal(zs_view_peek(v, 8192, DATA_SIZE - 4096, &p, &pin, &err), IMG_OK);
	assert_null(p);
	view_done(v, raw);
}

static int reset_view(void **state)
{
	(void)state;
	zs_set_decode_ahead(1);
	zs_set_first_span(0);
	zs_set_ahead_linger(0);
	return 0;
}

int main(void)
{
	if (test_tmpdir_make(tmpdir, sizeof tmpdir, "zview") != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_concurrent_one_decode, reset_view),
		cmocka_unit_test_teardown(test_sequential_ahead, reset_view),
		cmocka_unit_test_teardown(test_decodes_bounded, reset_view),
		cmocka_unit_test_teardown(test_damaged_ahead, reset_view),
		cmocka_unit_test_teardown(test_fork_ahead, reset_view),
		cmocka_unit_test_teardown(test_stragglers_kept, reset_view),
		cmocka_unit_test_teardown(test_peek, reset_view),
	};
	int failed = cmocka_run_group_tests(tests, setup, NULL);
	free(data);
	return test_tmpdir_remove(tmpdir) == 0 ? failed : 1;
}

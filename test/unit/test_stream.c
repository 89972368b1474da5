/*
 * test/unit/test_stream.c - unit tests of the stream core (io/stream.c):
 * peek/consume/read/skip over the memory source with chunk sizes 1..4096,
 * sticky errors, pointer stability, buffer growth, giving a buffer's memory
 * back (stream_buffer_trim); and the GNU split naming
 * order of split_next_name() (io/split.c).
 *
 * Not here: codecs and the split reader on files (test_codecs.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "helper_memsrc.h"
#include "helper_tmpdir.h"

static const size_t chunks[] = { 1, 2, 3, 7, 4096 };
#define NCHUNKS (sizeof chunks / sizeof chunks[0])

static uint8_t *pattern(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static img_stream *open_mem(const uint8_t *data, size_t len, size_t chunk, img_err *err)
{
	img_stream *s = NULL;
	memset(err, 0, sizeof *err);
	assert_int_equal(memsrc_open(data, len, chunk, err, &s), IMG_OK);
	return s;
}

/* Peek growing amounts, consume part of them, compare every byte. */
static void test_peek_consume_exact(void **state)
{
	(void)state;
	const size_t n = 50000;
	uint8_t *data = pattern(n, 1);
	for (size_t c = 0; c < NCHUNKS; c++) {
		img_err err;
		img_stream *s = open_mem(data, n, chunks[c], &err);
		size_t off = 0, step = 1;
		while (off < n) {
			const uint8_t *p;
			size_t avail;
			size_t want = step % 997 + 1;
			int rc = stream_peek(s, want, &p, &avail);
			assert_true(rc == IMG_OK || rc == IMG_EOF);
			if (rc == IMG_OK)
				assert_true(avail >= want);
			else
				assert_int_equal(avail, n - off);
			assert_memory_equal(p, data + off, want < avail ? want : avail);
			size_t take = (want < avail ? want : avail) / 2 + 1;
			if (take > avail)
				take = avail;
			stream_consume(s, take);
			off += take;
			assert_int_equal(s->offset, off);
			step += 31;
		}
		const uint8_t *p;
		size_t avail = 99;
		assert_int_equal(stream_peek(s, 10, &p, &avail), IMG_EOF);
		assert_int_equal(avail, 0);
		assert_int_equal(stream_peek(s, 1, &p, &avail), IMG_EOF);
		assert_int_equal(err.code, IMG_OK);
		stream_close(s);
	}
	free(data);
}

/* At the end a peek for more than is left gives IMG_EOF with what is left. */
static void test_eof_short(void **state)
{
	(void)state;
	uint8_t *data = pattern(100, 2);
	for (size_t c = 0; c < NCHUNKS; c++) {
		img_err err;
		img_stream *s = open_mem(data, 100, chunks[c], &err);
		const uint8_t *p;
		size_t avail;
		assert_int_equal(stream_peek(s, 90, &p, &avail), IMG_OK);
		stream_consume(s, 90);
		assert_int_equal(stream_peek(s, 16, &p, &avail), IMG_EOF);
		assert_int_equal(avail, 10);
		assert_memory_equal(p, data + 90, 10);
		stream_close(s);
	}
	free(data);
}

static void test_read_skip(void **state)
{
	(void)state;
	const size_t n = 20000;
	uint8_t *data = pattern(n, 3);
	uint8_t *out = malloc(n);
	for (size_t c = 0; c < NCHUNKS; c++) {
		img_err err;
		img_stream *s = open_mem(data, n, chunks[c], &err);
		size_t got = 0;
		uint64_t skipped = 0;
		assert_int_equal(stream_read(s, out, 1000, &got), IMG_OK);
		assert_int_equal(got, 1000);
		assert_memory_equal(out, data, 1000);
		assert_int_equal(stream_skip(s, 5000, &skipped), IMG_OK);
		assert_int_equal(skipped, 5000);
		assert_int_equal(stream_read(s, out, 4000, &got), IMG_OK);
		assert_memory_equal(out, data + 6000, 4000);
		assert_int_equal(stream_read(s, out, n, &got), IMG_EOF);
		assert_int_equal(got, n - 10000);
		assert_memory_equal(out, data + 10000, got);
		assert_int_equal(stream_skip(s, 5, &skipped), IMG_EOF);
		assert_int_equal(skipped, 0);
		stream_close(s);

		s = open_mem(data, n, chunks[c], &err);
		assert_int_equal(stream_skip(s, n + 7, &skipped), IMG_EOF);
		assert_int_equal(skipped, n);
		stream_close(s);
	}
	free(out);
	free(data);
}

/* A failing produce() becomes the stream's sticky error. */
static void test_fault_sticky(void **state)
{
	(void)state;
	const size_t n = 10000;
	uint8_t *data = pattern(n, 4);
	for (size_t c = 0; c < NCHUNKS; c++) {
		img_err err;
		img_stream *s = open_mem(data, n, chunks[c], &err);
		memsrc_fail_at(s, 3);
		const uint8_t *p;
		size_t avail;
		int rc = IMG_OK;
		size_t off = 0;
		while (rc == IMG_OK && off < n) {
			rc = stream_peek(s, 1, &p, &avail);
			if (rc == IMG_OK) {
				assert_memory_equal(p, data + off, avail);
				stream_consume(s, avail);
				off += avail;
			}
		}
		assert_int_equal(rc, IMG_E_IO);
		assert_int_equal(err.code, IMG_E_IO);
		assert_non_null(strstr(err.msg, "injected"));
		assert_int_equal(memsrc_calls(s), 3);
		/* sticky: no more produce() calls, same status */
		assert_int_equal(stream_peek(s, 1, &p, &avail), IMG_E_IO);
		size_t got;
		uint8_t b[4];
		assert_int_equal(stream_read(s, b, 4, &got), IMG_E_IO);
		assert_int_equal(stream_skip(s, 4, NULL), IMG_E_IO);
		assert_int_equal(memsrc_calls(s), 3);
		stream_close(s);
	}
	free(data);
}

/* A peek for no more than is visible keeps the buffer where it is. */
static void test_peek_pointer_stable(void **state)
{
	(void)state;
	const size_t n = 100000;
	uint8_t *data = pattern(n, 5);
	for (size_t c = 0; c < NCHUNKS; c++) {
		img_err err;
		img_stream *s = open_mem(data, n, chunks[c], &err);
		const uint8_t *p1, *p2;
		size_t a1, a2;
		assert_int_equal(stream_peek(s, 64, &p1, &a1), IMG_OK);
		assert_int_equal(stream_peek(s, 10, &p2, &a2), IMG_OK);
		assert_ptr_equal(p1, p2);
		assert_int_equal(a1, a2);
		stream_consume(s, 5);
		assert_int_equal(stream_peek(s, a1 - 5, &p2, &a2), IMG_OK);
		assert_ptr_equal(p2, p1 + 5);
		assert_int_equal(a2, a1 - 5);
		assert_memory_equal(p2, data + 5, a2);
		stream_close(s);
	}
	free(data);
}

/* A peek larger than the default buffer grows it and keeps the bytes. */
static void test_peek_grows(void **state)
{
	(void)state;
	const size_t n = STREAM_DEFAULT_BUFFER + (STREAM_DEFAULT_BUFFER / 2) + 123;
	uint8_t *data = pattern(n, 6);
	img_err err;
	img_stream *s = open_mem(data, n, 4096, &err);
	const uint8_t *p;
	size_t avail;
	assert_int_equal(stream_peek(s, 100, &p, &avail), IMG_OK);
	stream_consume(s, 17);
	size_t big = STREAM_DEFAULT_BUFFER + 1000;
	assert_int_equal(stream_peek(s, big, &p, &avail), IMG_OK);
	assert_true(avail >= big);
	assert_true(s->cap >= big);
	assert_memory_equal(p, data + 17, big);
	stream_consume(s, big);
	assert_int_equal(stream_peek(s, n, &p, &avail), IMG_EOF);
	assert_int_equal(avail, n - 17 - big);
	assert_memory_equal(p, data + 17 + big, avail);
	/* too large a peek is refused, not attempted */
	stream_close(s);
	s = open_mem(data, n, 0, &err);
	assert_int_equal(stream_peek(s, STREAM_MAX_PEEK + 1, &p, &avail), IMG_E_FORMAT);
	stream_close(s);
	free(data);
}

static void next_is(const char *name, size_t len, int widen, const char *want)
{
	char out[64];
	int rc = split_next_name(name, len, widen, out, sizeof out);
	if (!want) {
		assert_int_equal(rc, -1);
		return;
	}
	assert_int_equal(rc, 0);
	assert_string_equal(out, want);
}

/* Run fn(arg) in a child; fail when it does not exit 0 within 20 s. */
static void in_child_with_deadline(void (*fn)(const char *), const char *arg, const char *what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		fn(arg);
		_exit(0);
	}
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int status = 0;
	for (int i = 0; i < 400 && waitpid(pid, &status, WNOHANG) == 0; i++)
		nanosleep(&ts, NULL);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("%s: hung", what);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The stream a forked child reads and closes (test_thread_fork). */
static img_stream *forked_stream;

static void close_forked(const char *unused)
{
	(void)unused;
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(forked_stream, 64 << 20, &p, &avail);  /* more than read ahead: must fail */
	stream_close(forked_stream);
	if (rc >= 0)
		_exit(3);
}

/*
 * The mount daemon forks after the image was opened: the child has no
 * read-ahead thread. Closing the stack there must return at once (it once
 * waited forever on the thread's condition variable), reading must fail.
 * The worker is left waiting with its ring full, the state of a mount.
 */
static void test_thread_fork(void **state)
{
	(void)state;
	char dir[512], path[600];
	assert_int_equal(test_tmpdir_make(dir, sizeof dir, "fork"), 0);
	snprintf(path, sizeof path, "%s/fork.gz", dir);
	gzFile g = gzopen(path, "wb1");
	assert_non_null(g);
	static uint8_t chunk[1 << 16];
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (uint8_t)(i * 7 + i / 251);
	for (int i = 0; i < 640; i++)  /* 40 MiB decoded: more than the ring holds */
		assert_int_equal(gzwrite(g, chunk, sizeof chunk), (int)sizeof chunk);
	assert_int_equal(gzclose(g), Z_OK);
	for (int round = 0; round < 8; round++) {
		img_err err;
		memset(&err, 0, sizeof err);
		img_stream *s = NULL;
		assert_int_equal(stream_open_stack(path, &err, NULL, NULL, 0, &s), IMG_OK);
		const uint8_t *p;
		size_t avail;
		assert_int_equal(stream_peek(s, 4096, &p, &avail), IMG_OK);
		struct timespec ts = { 0, 100 * 1000 * 1000 };  /* the worker fills its ring */
		nanosleep(&ts, NULL);
		forked_stream = s;
		in_child_with_deadline(close_forked, NULL, "closing the read-ahead stream in a forked child");
		stream_close(s);
	}
	assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* Open, read a little, let the decoders run ahead, close before the end. */
static void open_peek_close(const char *path)
{
	img_err err;
	memset(&err, 0, sizeof err);
	img_stream *s = NULL;
	if (stream_open_stack(path, &err, NULL, NULL, 0, &s) != IMG_OK)
		_exit(2);
	const uint8_t *p;
	size_t avail;
	if (stream_peek(s, 4096, &p, &avail) != IMG_OK)
		_exit(3);
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	stream_close(s);
}

/*
 * Closing a stack early, while the read-ahead thread is inside a decoder:
 * with xz's threaded decoder the worker was once cancelled inside
 * liblzma's condition wait and kept its mutex, and lzma_end() then waited
 * for ever. Cancellation now only happens in read(2).
 */
static void test_thread_early_close(void **state)
{
	(void)state;
	char dir[512], raw[600], cmd[1400];
	assert_int_equal(test_tmpdir_make(dir, sizeof dir, "early"), 0);
	snprintf(raw, sizeof raw, "%s/data", dir);
	FILE *f = fopen(raw, "wb");
	assert_non_null(f);
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < (48 << 20) / 8; i++) {  /* 48 MiB, half random, half text-like */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t v = (i / 4096) % 2 ? x : (uint64_t)i * 0x0101010101010101ull;
		assert_int_equal(fwrite(&v, 8, 1, f), 1);
	}
	assert_int_equal(fclose(f), 0);
	static const char *const makers[][2] = {
		{ "xz -T2 -1 --block-size=1MiB -c", "xz" },
		{ "gzip -1 -c", "gz" },
		{ "zstd -q -1 -c", "zst" },
		{ "bzip2 -1 -c", "bz2" },
	};
	for (size_t m = 0; m < sizeof makers / sizeof makers[0]; m++) {
		char out[700];
		snprintf(out, sizeof out, "%s/data.%s", dir, makers[m][1]);
		snprintf(cmd, sizeof cmd, "%s '%s' > '%s' 2>/dev/null", makers[m][0], raw, out);
		if (system(cmd) != 0) {
			print_message("# %s: not available, skipped\n", makers[m][0]);
			continue;
		}
		for (int round = 0; round < 10; round++)
			in_child_with_deadline(open_peek_close, out, makers[m][0]);
	}
	assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* stream_buffer_trim gives back the pages of a big buffer from the huge page
 * after `keep` on (they read as zeros), keeps every byte before that, and
 * leaves a small buffer alone. */
static void test_buffer_trim(void **state)
{
	(void)state;
	const size_t mib = (size_t)1 << 20, size = 8 * mib;
	uint8_t *b = stream_buffer_alloc(size);
	assert_non_null(b);
	memset(b, 0x5A, size);
	stream_buffer_trim(b, size, 3 * mib);  /* up to the 2 MiB boundary after it: 4 MiB kept */
	for (size_t i = 0; i < size; i += 4096) {
		uint8_t want = i < 4 * mib ? 0x5A : 0;
		if (b[i] != want || b[i + 4095] != want)
			fail_msg("byte %zu: %#x, want %#x", i, b[i], want);
	}
	stream_buffer_trim(b, size, 0);  /* everything */
	for (size_t i = 0; i < size; i += 4096)
		assert_int_equal(b[i], 0);
	free(b);
	uint8_t *small = stream_buffer_alloc(mib);
	assert_non_null(small);
	memset(small, 0x33, mib);
	stream_buffer_trim(small, mib, 0);
	assert_int_equal(small[0], 0x33);
	assert_int_equal(small[mib - 1], 0x33);
	free(small);
}

static void test_split_names(void **state)
{
	(void)state;
	next_is("x.aa", 2, 1, "x.ab");
	next_is("x.az", 2, 1, "x.ba");
	next_is("x.yy", 2, 1, "x.yz");
	next_is("x.yz", 2, 1, "x.zaaa");
	next_is("xyz", 2, 1, "xzaaa");
	next_is("x.zaaa", 4, 1, "x.zaab");
	next_is("x.zayz", 4, 1, "x.zaza");
	next_is("x.zyzz", 4, 1, "x.zzaaaa");
	next_is("x.zzaaaa", 6, 1, "x.zzaaab");
	next_is("x.zzyzzz", 6, 1, "x.zzzaaaaa");
	next_is("aa", 2, 1, "ab");
	/* fixed length (split -a 3): no widening, zzz is the last */
	next_is("x.aaa", 3, 0, "x.aab");
	next_is("x.ayz", 3, 0, "x.aza");
	next_is("x.azz", 3, 0, "x.baa");
	next_is("x.yzz", 3, 0, "x.zaa");
	next_is("x.zzz", 3, 0, NULL);
	next_is("x.zz", 2, 0, NULL);
	/* invalid suffixes */
	next_is("x.a1", 2, 1, NULL);
	next_is("x.zaaa", 3, 1, NULL);
	next_is("a", 2, 1, NULL);
	char small[4];
	assert_int_equal(split_next_name("x.aa", 2, 1, small, sizeof small), -1);
}

/* Walk the whole default sequence: 650 two-letter names, then zaaa. */
static void test_split_sequence(void **state)
{
	(void)state;
	char a[32] = "p.aa", b[32];
	size_t len = 2;
	int count = 1;
	while (strlen(a) == 4) {
		assert_int_equal(split_next_name(a, len, 1, b, sizeof b), 0);
		if (strlen(b) > strlen(a))
			len += 2;
		strcpy(a, b);
		count++;
	}
	assert_int_equal(count, 651);
	assert_string_equal(a, "p.zaaa");
	while (strlen(a) == 6) {
		assert_int_equal(split_next_name(a, len, 1, b, sizeof b), 0);
		if (strlen(b) > strlen(a))
			len += 2;
		strcpy(a, b);
		count++;
	}
	assert_int_equal(count, 651 + 16900);
	assert_string_equal(a, "p.zzaaaa");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_consume_exact),
		cmocka_unit_test(test_eof_short),
		cmocka_unit_test(test_read_skip),
		cmocka_unit_test(test_fault_sticky),
		cmocka_unit_test(test_peek_pointer_stable),
		cmocka_unit_test(test_peek_grows),
		cmocka_unit_test(test_buffer_trim),
		cmocka_unit_test(test_split_names),
		cmocka_unit_test(test_split_sequence),
		cmocka_unit_test(test_thread_fork),
		cmocka_unit_test(test_thread_early_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test/unit/test_blkindex.c - the index file's byte I/O (formats/blkindex.c):
 * reads and writes that the kernel cuts short (pipes hand out at most what
 * they hold; a signal interrupts a write part-way or before any byte) must
 * still move every byte, as a single read()/write() does not above ~2 GiB.
 *
 * Not here: what an index payload means (test_formats.c, the access tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "formats/blkindex.h"

#define BIG ((size_t)6 << 20)

static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

struct feeder {
	int fd;
	const uint8_t *data;
	size_t len, piece;
	size_t moved;
	int slow;
};

/* Writes data into the pipe in small pieces, so every read sees a part. */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	while (f->moved < f->len) {
		size_t n = f->len - f->moved < f->piece ? f->len - f->moved : f->piece;
		ssize_t w = write(f->fd, f->data + f->moved, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		f->moved += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

/* Reads the pipe slowly, in small pieces, so a big write blocks for long. */
static void *drain(void *arg)
{
	struct feeder *f = arg;
	uint8_t *out = (uint8_t *)f->data;
	for (;;) {
		ssize_t r = read(f->fd, out + f->moved, f->len - f->moved < f->piece ? f->len - f->moved : f->piece);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		f->moved += (size_t)r;
		if (f->slow && f->moved % (256 * 1024) < f->piece)
			usleep(2000);
	}
	close(f->fd);
	return NULL;
}

static void test_read_full_over_short_reads(void **state)
{
	uint8_t *data = pattern(BIG), *got = calloc(1, BIG);
	assert_non_null(got);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct feeder f = { .fd = p[1], .data = data, .len = BIG, .piece = 3000 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	/* one read() of a pipe returns at most what it holds (64 KiB) */
	assert_int_equal(blkindex_read_full(p[0], got, BIG), 0);
	assert_memory_equal(got, data, BIG);
	/* the writer closed: one byte more is the end of the file */
	uint8_t extra;
	assert_int_equal(blkindex_read_full(p[0], &extra, 1), -1);
	pthread_join(t, NULL);
	close(p[0]);
	free(data);
	free(got);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void test_write_full_over_interrupted_writes(void **state)
{
	uint8_t *data = pattern(BIG), *got = calloc(1, BIG);
	assert_non_null(got);
	int p[2];
	assert_int_equal(pipe(p), 0);
	/* a signal without SA_RESTART: a blocked write() returns a short count,
	 * or -1 with EINTR when no byte went yet */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	struct feeder f = { .fd = p[0], .data = got, .len = BIG, .piece = 4096, .slow = 1 };
	pthread_t t;
	sigset_t block, prev;
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, &prev);  /* the reader never takes the signal */
	assert_int_equal(pthread_create(&t, NULL, drain, &f), 0);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } }, off = { { 0, 0 }, { 0, 0 } };
	alarms = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	int rc = blkindex_write_full(p[1], data, BIG);
	setitimer(ITIMER_REAL, &off, NULL);
	close(p[1]);
	pthread_join(t, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(rc, 0);
	assert_true(alarms > 0);  /* the writes were really interrupted */
	assert_int_equal(f.moved, BIG);
	assert_memory_equal(got, data, BIG);
	free(data);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_full_over_short_reads),
		cmocka_unit_test(test_write_full_over_interrupted_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

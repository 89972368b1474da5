/* randread.c - random 4 KiB O_DIRECT reads, for the mount section of
 * test/bench/bench.sh (imgbk mount against the fusepass ceiling).
 *
 *   randread FILE READS THREADS SEED
 *
 * Opens FILE with O_DIRECT and does READS pread()s of 4096 bytes at 4 KiB
 * aligned offsets drawn uniformly from [0, size of FILE) by a fixed
 * generator (xorshift64*): the same arguments read the same offsets on any
 * file of the same size. THREADS threads (1..64) each do their share with
 * their own stream, derived from SEED and the thread number. Prints one line
 *   "reads N threads T seconds S iops I median_ms M p99_ms P sum HEX"
 * where M and P are the median and 99th percentile of the time of one
 * pread (all threads' reads together), and sum is the (order-independent)
 * sum of a hash of every block read, so two files with the same bytes give
 * the same sum. Exit 1 on any error or
 * short read. Build: cc -O2 -pthread -o randread randread.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096

struct job {
	int fd;
	uint64_t blocks;  /* offsets are < blocks * BLK */
	uint64_t reads;
	uint64_t seed;
	uint64_t sum;
	double *ms;       /* time of each read, in milliseconds */
	int failed;
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* FNV-1a over the block, 64-bit words at a time (enough to tell blocks apart) */
static uint64_t hash_block(const unsigned char *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < BLK; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
	}
	return h;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	void *buf;
	if (posix_memalign(&buf, BLK, BLK)) {
		j->failed = 1;
		return NULL;
	}
	uint64_t s = j->seed;
	for (int i = 0; i < 16; i++)
		next(&s);
	for (uint64_t i = 0; i < j->reads; i++) {
		off_t off = (off_t)((next(&s) % j->blocks) * BLK);
		ssize_t n;
		double t = now_ms();
		do
			n = pread(j->fd, buf, BLK, off);
		while (n < 0 && errno == EINTR);
		j->ms[i] = now_ms() - t;
		if (n != BLK) {
			fprintf(stderr, "randread: pread at %lld: %s\n", (long long)off,
				n < 0 ? strerror(errno) : "short read");
			j->failed = 1;
			break;
		}
		j->sum += hash_block(buf);
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: randread FILE READS THREADS SEED\n");
		return 2;
	}
	uint64_t reads = strtoull(argv[2], NULL, 0);
	int threads = atoi(argv[3]);
	uint64_t seed = strtoull(argv[4], NULL, 0);
	if (reads == 0 || threads < 1 || threads > 64) {
		fprintf(stderr, "randread: READS must be > 0, THREADS 1..64\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < BLK) {
		fprintf(stderr, "randread: %s: no size or smaller than %d bytes\n", argv[1], BLK);
		return 1;
	}
	struct job jobs[64];
	pthread_t tid[64];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < threads; t++) {
		jobs[t] = (struct job){ .fd = fd, .blocks = (uint64_t)st.st_size / BLK,
					.reads = reads / (uint64_t)threads + ((uint64_t)t < reads % (uint64_t)threads),
					.seed = (seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)t * 0xBF58476D1CE4E5B9ULL + 1 };
		jobs[t].ms = calloc(jobs[t].reads + 1, sizeof(double));
		if (!jobs[t].ms || pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) {
			fprintf(stderr, "randread: pthread_create failed\n");
			return 1;
		}
	}
	uint64_t sum = 0, k = 0;
	int failed = 0;
	double *all = malloc(reads * sizeof(double));
	for (int t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		sum += jobs[t].sum;
		failed |= jobs[t].failed;
		for (uint64_t i = 0; all && i < jobs[t].reads; i++)
			all[k++] = jobs[t].ms[i];
		free(jobs[t].ms);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!all) {
		fprintf(stderr, "randread: out of memory\n");
		return 1;
	}
	qsort(all, k, sizeof *all, by_value);
	double median = all[(k - 1) / 2], p99 = all[(k * 99 + 99) / 100 - 1];
	free(all);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("reads %" PRIu64 " threads %d seconds %.3f iops %.0f median_ms %.3f p99_ms %.3f sum %016" PRIx64 "\n",
	       reads, threads, s, s > 0 ? (double)reads / s : 0.0, median, p99, sum);
	close(fd);
	return failed;
}

/* nbdrand.c - random 4 KiB reads over NBD from several connections at once,
 * with libnbd, for test/integration/nbd.sh and the nbd section of
 * test/bench/bench.sh (the imgbk plugin against `nbdkit file`).
 *
 *   nbdrand URI READS CONNS SEED [REFERENCE]
 *   nbdrand --write URI
 *   nbdrand --read URI OFFSET LENGTH
 *
 * The first form opens CONNS connections (1..64) to URI, one thread each,
 * and does READS nbd_pread()s of 4096 bytes at 4 KiB aligned offsets drawn
 * uniformly from the export by a fixed generator (xorshift64*, one stream
 * per connection from SEED): the same arguments read the same offsets from
 * any export of the same size. With REFERENCE (a file of the export's size)
 * every block is compared with the file's bytes at the same offset. Prints
 *   "reads N conns C seconds S iops I median_us M p99_us P sum HEX"
 * (latency of one request; sum: an order-independent hash of every block).
 * Exit 1 on any error, short export or difference (the first one printed).
 *
 * --write sends one 4 KiB write with libnbd's client-side checks off (a
 * client that ignores the read-only flag) and prints the server's answer:
 * "write refused: <strerror>" (exit 0) or "write accepted" (exit 1).
 *
 * --read copies LENGTH bytes at OFFSET of the export to standard output;
 * on a failed read it prints "read failed: <strerror>" on stderr (exit 1).
 *
 * Build: cc -O2 -pthread -o nbdrand nbdrand.c $(pkg-config --cflags --libs libnbd)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096
#define MAX_CONNS 64

struct job {
	struct nbd_handle *nbd;
	int ref;            /* reference file, -1 when none */
	uint64_t blocks;    /* offsets are < blocks * BLK */
	uint64_t reads;
	uint64_t seed;
	uint64_t sum;
	double *lat;        /* seconds per read, `reads` entries */
	int failed;
};

static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t hash_block(const unsigned char *p, uint64_t off)
{
	uint64_t h = 1469598103934665603ULL ^ off;
	for (size_t i = 0; i < BLK; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211ULL;
	}
	return h;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int compare_ref(struct job *j, const unsigned char *buf, uint64_t off)
{
	unsigned char want[BLK];
	if (pread(j->ref, want, BLK, (off_t)off) != BLK) {
		fprintf(stderr, "nbdrand: reference: short read at byte %" PRIu64 "\n", off);
		return -1;
	}
	if (memcmp(buf, want, BLK) != 0) {
		fprintf(stderr, "nbdrand: the export differs from the reference in the 4 KiB at byte %" PRIu64 "\n", off);
		return -1;
	}
	return 0;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	unsigned char buf[BLK];
	for (uint64_t i = 0; i < j->reads; i++) {
		uint64_t off = (next(&j->seed) % j->blocks) * BLK;
		double t0 = now();
		if (nbd_pread(j->nbd, buf, BLK, off, 0) != 0) {
			fprintf(stderr, "nbdrand: read at byte %" PRIu64 ": %s\n", off, nbd_get_error());
			j->failed = 1;
			return NULL;
		}
		j->lat[i] = now() - t0;
		j->sum += hash_block(buf, off);
		if (j->ref >= 0 && compare_ref(j, buf, off) != 0) {
			j->failed = 1;
			return NULL;
		}
	}
	return NULL;
}

static struct nbd_handle *connect_to(const char *uri)
{
	struct nbd_handle *nbd = nbd_create();
	if (!nbd || nbd_connect_uri(nbd, uri) != 0) {
		fprintf(stderr, "nbdrand: %s: %s\n", uri, nbd_get_error());
		if (nbd)
			nbd_close(nbd);
		return NULL;
	}
	return nbd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int write_test(const char *uri)
{
	struct nbd_handle *nbd = nbd_create();
	if (!nbd)
		return 1;
	nbd_set_strict_mode(nbd, 0);  /* send the write although the export is read-only */
	if (nbd_connect_uri(nbd, uri) != 0) {
		fprintf(stderr, "nbdrand: %s: %s\n", uri, nbd_get_error());
		return 1;
	}
	char buf[BLK];
	memset(buf, 0x5a, sizeof buf);
	int rc = nbd_pwrite(nbd, buf, BLK, 0, 0);
	int err = nbd_get_errno();
	nbd_close(nbd);
	if (rc == 0) {
		printf("write accepted\n");
		return 1;
	}
	printf("write refused: %s\n", strerror(err));
	return 0;
}

static int read_range(const char *uri, uint64_t off, size_t len)
{
	struct nbd_handle *nbd = connect_to(uri);
	char *buf = malloc(len ? len : 1);
	if (!nbd || !buf)
		return 1;
	int rc = nbd_pread(nbd, buf, len, off, 0);
	if (rc != 0)
		fprintf(stderr, "read failed: %s (%s)\n", strerror(nbd_get_errno()), nbd_get_error());
	else if (fwrite(buf, 1, len, stdout) != len)
		rc = -1;
	nbd_close(nbd);
	free(buf);
	return rc != 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write") == 0)
		return write_test(argv[2]);
	if (argc == 5 && strcmp(argv[1], "--read") == 0)
		return read_range(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: nbdrand URI READS CONNS SEED [REFERENCE] | nbdrand --write URI | "
				"nbdrand --read URI OFFSET LENGTH\n");
		return 2;
	}
	uint64_t reads = strtoull(argv[2], NULL, 10);
	int conns = atoi(argv[3]);
	uint64_t seed = strtoull(argv[4], NULL, 10);
	if (reads == 0 || conns < 1 || conns > MAX_CONNS) {
		fprintf(stderr, "nbdrand: READS must be > 0 and CONNS 1..%d\n", MAX_CONNS);
		return 2;
	}
	int ref = -1;
	if (argc == 6 && (ref = open(argv[5], O_RDONLY)) < 0) {
		fprintf(stderr, "nbdrand: %s: %s\n", argv[5], strerror(errno));
		return 1;
	}
	struct job jobs[MAX_CONNS];
	double *lat = calloc(reads, sizeof *lat);
	if (!lat)
		return 1;
	uint64_t done = 0;
	for (int c = 0; c < conns; c++) {
		struct nbd_handle *nbd = connect_to(argv[1]);
		if (!nbd)
			return 1;
		int64_t size = nbd_get_size(nbd);
		if (size < BLK) {
			fprintf(stderr, "nbdrand: the export is smaller than 4 KiB (%" PRId64 ")\n", size);
			return 1;
		}
		uint64_t share = reads / conns + ((uint64_t)c < reads % conns);
		jobs[c] = (struct job){ .nbd = nbd, .ref = ref, .blocks = (uint64_t)size / BLK, .reads = share,
					.seed = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)c + 1, .lat = lat + done };
		done += share;
	}
	pthread_t tid[MAX_CONNS];
	double t0 = now();
	for (int c = 0; c < conns; c++)
		if (pthread_create(&tid[c], NULL, worker, &jobs[c]) != 0)
			return 1;
	uint64_t sum = 0;
	int failed = 0;
	for (int c = 0; c < conns; c++) {
		pthread_join(tid[c], NULL);
		sum += jobs[c].sum;
		failed |= jobs[c].failed;
		nbd_shutdown(jobs[c].nbd, 0);
		nbd_close(jobs[c].nbd);
	}
	double secs = now() - t0;
	if (failed)
		return 1;
	qsort(lat, reads, sizeof *lat, cmp_double);
	printf("reads %" PRIu64 " conns %d seconds %.3f iops %.0f median_us %.0f p99_us %.0f sum %016" PRIx64 "\n",
	       reads, conns, secs, reads / secs, lat[reads / 2] * 1e6, lat[(reads * 99) / 100] * 1e6, sum);
	free(lat);
	return 0;
}

/* gen.c - deterministic test data for test/bench/bench.sh and test/demo.sh.
 *
 *   gen rand BYTES SEED   incompressible bytes (xorshift64*)
 *   gen text BYTES SEED   compressible log-like text lines
 *
 * Same arguments, same output, on any machine. Writes to stdout.
 * Build: cc -O2 -o gen gen.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF (1u << 20)

static uint64_t st;

static uint64_t next(void)
{
	st ^= st >> 12;
	st ^= st << 25;
	st ^= st >> 27;
	return st * 0x2545F4914F6CDD1DULL;
}

static void out(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(1, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("gen: write");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static const char *hosts[] = { "web01", "web02", "db01", "cache03", "build7", "mail" };
static const char *procs[] = { "sshd", "nginx", "kernel", "systemd", "cron", "postfix/smtpd" };
static const char *msgs[] = {
	"Accepted publickey for user%u from 10.0.%u.%u port %u ssh2",
	"GET /api/v1/items/%u?page=%u HTTP/1.1 200 %u \"-\" \"curl/7.%u\"",
	"EXT4-fs (vda%u): mounted filesystem with ordered data mode. Quota mode: none. (%u/%u/%u)",
	"Started Session %u of user u%u (slot %u, seat %u).",
	"(root) CMD (run-parts /etc/cron.hourly) job=%u pid=%u rc=%u t=%u",
	"connect from unknown[192.168.%u.%u]: queue %u size=%u",
};

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "rand") && strcmp(argv[1], "text"))) {
		fprintf(stderr, "usage: gen rand|text BYTES SEED\n");
		return 2;
	}
	unsigned long long left = strtoull(argv[2], NULL, 0);
	st = strtoull(argv[3], NULL, 0) * 0x9E3779B97F4A7C15ULL + 0x1234567;
	if (!st)
		st = 1;
	for (int i = 0; i < 16; i++)
		next();
	static char buf[BUF + 512];
	int text = argv[1][0] == 't';
	unsigned long long t = 1700000000ULL;

	while (left) {
		size_t n = 0;
		if (!text) {
			for (; n < BUF; n += 8) {
				uint64_t v = next();
				memcpy(buf + n, &v, 8);
			}
		} else {
			while (n < BUF) {
				uint64_t r = next();
				t += r & 3;
				unsigned k = (unsigned)(r >> 8) % 6, h = (unsigned)(r >> 16) % 6;
				unsigned a = (unsigned)(r >> 24) & 255, b = (unsigned)(r >> 32) & 255;
				unsigned c = (unsigned)(r >> 40) & 0xffff, d = (unsigned)(r >> 56);
				n += (size_t)sprintf(buf + n, "%llu.%03u %s %s[%u]: ", t, (unsigned)(r % 1000),
						     hosts[h], procs[k], 100 + (c & 4095));
				n += (size_t)sprintf(buf + n, msgs[k], a, b, c, d);
				buf[n++] = '\n';
			}
		}
		if (n > left)
			n = (size_t)left;
		out(buf, n);
		left -= n;
	}
	return 0;
}

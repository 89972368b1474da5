/*
 * test/drivers/corrupt_run.c - the corruption matrix's cases run inside one
 * process: the sanitizer pass of test/integration/corrupt.sh (CORRUPT_RUN).
 * Each case calls the applets info, verify and restore the way `imgbk
 * APPLET ...` calls them (same argv, stdout and stderr to files, stdin
 * /dev/null) and checks what corrupt.sh's run_case checks (the rules are
 * in the header of corrupt.sh). One process start per few hundred cases instead of
 * three ASan process starts per case; LeakSanitizer runs after every command.
 *
 *   corrupt_run LIST RESULTS K N
 *
 * LIST: corrupt.sh's case list, "ID\tSTRICT\tREF\tDESC\tIMG" a line; this
 * process runs the lines whose number is K modulo N. For case ID it writes
 * RESULTS/ID/: status ("ok" / "not ok"), case.log (why not), undetected (a
 * restore with exit 0 and wrong bytes where the format cannot tell), and
 * NAME.out / NAME.err of each command. RESULTS/running.K holds the ID and
 * the command in progress: when a sanitizer report, a leak or the 20 s alarm
 * ends the process, corrupt.sh fails that case and starts again after it.
 * Exit 0 when every line was run (a case that failed its checks included).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "applets/applet.h"

/* LeakSanitizer's check that can run more than once (sanitizer builds only) */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

#define CMD_SECONDS 20
#define LOG_LINES 40

static const char *const sanitizer_words[] = {
	"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
	"MemorySanitizer",
};

struct kase {
	char *id, *strict, *ref, *desc, *img;
	char dir[4096];   /* RESULTS/ID */
	FILE *log;
	int bad;
};

static void on_alarm(int sig)
{
	static const char msg[] = "corrupt_run: TIMEOUT: a command ran longer than 20 s\n";
	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0) { /* nothing more to do */ }
	_exit(124);
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "corrupt_run: %s %s: %s\n", what, path, strerror(errno));
	exit(3);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("cannot write", p);
}

/* read_small PATH: the whole file, NUL-terminated (NUL bytes kept as is) */
static char *read_small(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open", path);
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap + 1);
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, (cap *= 2) + 1);
	}
	fclose(f);
	if (!buf)
		die("out of memory reading", path);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* has_text BUF LEN WORD: WORD occurs in BUF (which may hold NUL bytes) */
static int has_text(const char *buf, size_t len, const char *word)
{
	return memmem(buf, len, word, strlen(word)) != NULL;
}

/* same_bytes A B: the two files hold the same bytes */
static int same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int same = fa && fb;
	static char ba[1 << 16], bb[1 << 16];
	while (same) {
		size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
		if (na != nb || memcmp(ba, bb, na) != 0)
			same = 0;
		else if (na == 0)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* note_stderr K NAME: the first lines of NAME.err into the case log */
static void note_stderr(struct kase *k, const char *err, size_t len)
{
	int lines = 0;
	const char *p = err, *end = err + len;
	while (p < end && lines < LOG_LINES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		fprintf(k->log, "    stderr: %.*s\n", (int)n, p);
		p += n + 1;
		lines++;
	}
}

/* call APPLET with ARGV (argv[0] "imgbk"), its stdout and stderr to
 * DIR/NAME.out and DIR/NAME.err, the way imgbk.c calls it; @return its exit */
static int call_applet(const struct applet *a, int argc, char **argv, struct kase *k,
		       const char *name, const char *running)
{
	char out[4200], err[4200];
	snprintf(out, sizeof out, "%s/%s.out", k->dir, name);
	snprintf(err, sizeof err, "%s/%s.err", k->dir, name);
	FILE *r = fopen(running, "w");
	if (!r)
		die("cannot write", running);
	fprintf(r, "%s %s\n", k->id, name);
	fclose(r);

	int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fo < 0 || fe < 0)
		die("cannot create", out);
	fflush(stdout);
	fflush(stderr);
	int keep_out = dup(1), keep_err = dup(2);
	dup2(fo, 1);
	dup2(fe, 2);
	close(fo);
	close(fe);

	int first_free = keep_err > keep_out ? keep_err + 1 : keep_out + 1;
	prog_name = "imgbk";
	optind = 0;  /* glibc: a fresh getopt state */
	alarm(CMD_SECONDS);
	int rc = a->main(argc, argv);
	alarm(0);
	fflush(stdout);
	fflush(stderr);
	clearerr(stdout);
	clearerr(stderr);
	/* a leak ends the process (the report is in NAME.err): LeakSanitizer
	 * would report it again after every later command */
	if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
		fprintf(stderr, "corrupt_run: LeakSanitizer found leaks after imgbk %s\n", name);
		_exit(23);
	}
	/* an applet that leaves a file open must not use up the driver's fds */
	for (int fd = first_free; fd < 1024; fd++)
		close(fd);

	dup2(keep_out, 1);
	dup2(keep_err, 2);
	close(keep_out);
	close(keep_err);
	return rc;
}

/* run_cmd: one command of a case and the checks corrupt.sh's run_case makes */
static int run_cmd(struct kase *k, const char *name, const char *running, int argc, char **argv)
{
	const struct applet *a = !strcmp(name, "info") ? &applet_info
			       : !strcmp(name, "verify") ? &applet_verify : &applet_restore;
	char errp[4200];
	int rc = call_applet(a, argc, argv, k, name, running);
	int bad = 0;
	size_t len;
	snprintf(errp, sizeof errp, "%s/%s.err", k->dir, name);
	char *err = read_small(errp, &len);
	const char *base = strrchr(k->img, '/') ? strrchr(k->img, '/') + 1 : k->img;

	if (rc >= 4 || rc < 0) {
		fprintf(k->log, "%s: exit %d (crash or undocumented code): imgbk %s %s\n", name, rc, name, k->img);
		bad = 1;
	}
	for (size_t i = 0; i < sizeof sanitizer_words / sizeof sanitizer_words[0]; i++)
		if (has_text(err, len, sanitizer_words[i])) {
			fprintf(k->log, "%s: sanitizer report: imgbk %s %s\n", name, name, k->img);
			bad = 1;
			break;
		}
	if (rc >= 1 && rc <= 3 && !has_text(err, len, base)) {
		fprintf(k->log, "%s: exit %d without an error line naming %s: imgbk %s %s\n", name, rc, base,
			name, k->img);
		bad = 1;
	}
	if (bad) {
		note_stderr(k, err, len);
		k->bad = 1;
	}
	free(err);
	return rc;
}

static void run_case(struct kase *k, const char *running)
{
	char outraw[4200], logp[4200];
	snprintf(logp, sizeof logp, "%s/case.log", k->dir);
	k->log = fopen(logp, "w");
	if (!k->log)
		die("cannot write", logp);
	k->bad = 0;
	snprintf(outraw, sizeof outraw, "%s/out.raw", k->dir);
	unlink(outraw);

	char *info_argv[] = { "imgbk", k->img, NULL };
	char *verify_argv[] = { "imgbk", k->img, NULL };
	char *restore_argv[] = { "imgbk", "-q", k->img, outraw, NULL };
	char *dir = strdup(k->img);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (chdir(dir) != 0)  /* the shell runner runs each command in the image's folder */
		die("cannot enter", dir);
	free(dir);

	run_cmd(k, "info", running, 2, info_argv);
	int vrc = run_cmd(k, "verify", running, 2, verify_argv);
	int rrc = run_cmd(k, "restore", running, 4, restore_argv);
	int same = rrc == 0 && same_bytes(outraw, k->ref);
	if (!strcmp(k->strict, "1")) {
		if (rrc == 0 && !same) {
			fprintf(k->log, "restore: exit 0 but the restored bytes differ from the good restore\n");
			k->bad = 1;
		}
		if (vrc == 0 && (rrc != 0 || !same)) {
			fprintf(k->log, "verify: exit 0 but restore exits %d (bytes identical: %d)\n", rrc, same);
			k->bad = 1;
		}
	} else if (rrc == 0 && !same) {
		write_file(k->dir, "undetected", "undetected\n");
	}
	unlink(outraw);
	fclose(k->log);
	char result[64];
	snprintf(result, sizeof result, "%d verify=%d restore=%d\n", k->bad, vrc, rrc);
	write_file(k->dir, "result", result);
	write_file(k->dir, "status", k->bad ? "not ok\n" : "ok\n");
}

/* split_line LINE: the five tab-separated fields, or 0 */
static int split_line(char *line, struct kase *k)
{
	char *f[5];
	line[strcspn(line, "\n")] = 0;
	for (int i = 0; i < 5; i++) {
		f[i] = strsep(&line, "\t");
		if (!f[i])
			return 0;
	}
	k->id = f[0], k->strict = f[1], k->ref = f[2], k->desc = f[3], k->img = f[4];
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: corrupt_run LIST RESULTS K N\n");
		return 2;
	}
	/* absolute: every case runs in its image's folder */
	char *results = realpath(argv[2], NULL);
	if (!results)
		die("cannot find", argv[2]);
	long want = atol(argv[3]), every = atol(argv[4]);
	if (every < 1)
		every = 1;
	FILE *list = fopen(argv[1], "r");
	if (!list)
		die("cannot open", argv[1]);
	char running[4200];
	snprintf(running, sizeof running, "%s/running.%ld", results, want);
	signal(SIGALRM, on_alarm);

	char *line = NULL;
	size_t cap = 0;
	long n = -1;
	while (getline(&line, &cap, list) > 0) {
		struct kase k;
		if (++n % every != want || !split_line(line, &k))
			continue;
		snprintf(k.dir, sizeof k.dir, "%s/%s", results, k.id);
		char st[4200];
		snprintf(st, sizeof st, "%s/status", k.dir);
		if (access(st, F_OK) == 0)  /* done before a crash of an earlier run */
			continue;
		if (mkdir(k.dir, 0755) != 0 && errno != EEXIST)
			die("cannot create", k.dir);
		run_case(&k, running);
	}
	free(line);
	fclose(list);
	unlink(running);
	fflush(stdout);
	/* _exit: LeakSanitizer has checked after every command; its check at
	 * exit would report the driver's own buffers again */
	_exit(0);
}

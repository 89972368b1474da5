/* runrss.c - run a command, report its wall time and peak RSS.
 *
 *   runrss RESULTFILE CMD [ARG...]
 *
 * Runs CMD (fork + execvp), waits with wait4() and writes one line
 *   "<wall_seconds> <maxrss_kib> <exit_status> <cpu_seconds>"
 * to RESULTFILE. exit_status is the exit code, or 128+signal; cpu_seconds is
 * user + system time of the child and its waited-for children. The peak RSS is
 * the kernel's ru_maxrss for the child, which covers the child and the
 * children it waited for (the largest single process, not a sum: for
 * `sh -c 'a | b'` it is max(a, b)). Exits with the command's status.
 * Build: cc -O2 -o runrss runrss.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: runrss RESULTFILE CMD [ARG...]\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("runrss: fork");
		return 126;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror("runrss: exec");
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("runrss: wait4");
		return 126;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 126;
	}
	double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	fprintf(f, "%.3f %ld %d %.3f\n", s, ru.ru_maxrss, rc, cpu);
	fclose(f);
	return rc;
}

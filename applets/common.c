/*
 * applets/common.c - helpers shared by the applets: messages, opening an
 * image with its error reported, the progress bar and JSON strings.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "applet.h"
#include "czdir.h"

const char *prog_name = "imgbk";

void warnx_(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int usage_exit(const struct applet *a, int ok)
{
	if (ok) {
		fputs(a->usage, stdout);
		return IMG_EXIT_OK;
	}
	if (strcmp(prog_name, "imgbk") == 0)
		fprintf(stderr, "Try 'imgbk %s --help' for more information.\n", a->name);
	else
		fprintf(stderr, "Try '%s --help' for more information.\n", prog_name);
	return IMG_EXIT_USAGE;
}

int open_image(const char *path, const img_options *opt, img_image **out)
{
	img_err err;
	char part[PATH_MAX];
	int code = cz_resolve_part(path, part, sizeof part, &path);  /* DIR/sda2 */
	if (code)
		return code;
	int rc = img_open(path, opt, out, &err);
	if (rc == IMG_OK)
		return 0;
	warnx_("%s", err.msg);
	return img_exit_code(rc);
}

int report_image_error(const img_image *im, int code)
{
	const img_err *e = img_error(im);
	warnx_("%s", e->code != IMG_OK ? e->msg : "unknown error");
	return img_exit_code(code);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress_start(progress *pg, const char *what, uint64_t total, int quiet)
{
	memset(pg, 0, sizeof *pg);
	pg->enabled = !quiet && isatty(STDERR_FILENO);
	pg->total = total;
	pg->what = what;
	pg->start = pg->last = now();
}

void progress_update(progress *pg, uint64_t done)
{
	if (!pg->enabled)
		return;
	double t = now();
	if (t - pg->last < 0.2 && done < pg->total)
		return;
	pg->last = t;
	pg->shown = done;
	double el = t - pg->start;
	double pct = pg->total ? 100.0 * (double)done / (double)pg->total : 0;
	double rate = el > 0 ? (double)done / el / 1e6 : 0;
	double eta = done > 0 && pg->total > done ? el * (double)(pg->total - done) / (double)done : 0;
	int width = 30, fill = (int)(pct * width / 100);
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\r%s [%s] %5.1f%% %8.1f MB/s  ETA %02d:%02d ", pg->what, bar, pct, rate,
		(int)eta / 60, (int)eta % 60);
	fflush(stderr);
}

void progress_end(progress *pg)
{
	if (!pg->enabled)
		return;
	if (pg->shown != pg->total)
		progress_update(pg, pg->total);
	fputc('\n', stderr);
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

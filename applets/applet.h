/*
 * applets/applet.h - what the applets share: the registration entry, the
 * program name for messages, opening an image with its error reported, and
 * the progress bar. The only floor that prints and exits.
 */
#ifndef IMGBK_APPLET_H
#define IMGBK_APPLET_H

#include <stdint.h>
#include <stdio.h>

#include "../imgbk.h"

struct applet {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;  /* one line for `imgbk --help` */
	const char *usage;    /* the whole --help text */
};

/* Name used in messages: "imgbk" or the symlink's name. Set by imgbk.c. */
extern const char *prog_name;

/* Print "PROG: message" on stderr. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the usage text to stdout (exit 0) or a hint to stderr (exit 2). */
int usage_exit(const struct applet *a, int ok);

/* getopt_long value of --raw, taken by every applet that opens an image
 * (long only: -r is restore's --rescue). It sets img_options.raw. */
enum { OPT_RAW = 0x100, OPT_DRY_RUN, OPT_DIRECT_IO };

/* Open an image; on failure print its one-line error.
 * @return 0 and *out, or the exit code to return. */
int open_image(const char *path, const img_options *opt, img_image **out);

/* Print an image error and @return its exit code. */
int report_image_error(const img_image *im, int code);

/* A progress bar on stderr, drawn only when stderr is a terminal and not quiet. */
typedef struct progress {
	int enabled;
	uint64_t total;     /* units of work (bytes) */
	uint64_t shown;     /* the amount drawn last */
	double start, last;
	const char *what;
} progress;

void progress_start(progress *pg, const char *what, uint64_t total, int quiet);
void progress_update(progress *pg, uint64_t done);
void progress_end(progress *pg);

/* Write a JSON string literal with escapes. */
void json_string(FILE *f, const char *s);

extern const struct applet applet_info, applet_verify, applet_restore;
extern const struct applet applet_index, applet_mount, applet_serve;
extern const struct applet applet_vntfsclone, applet_vpartclone, applet_vpartimage;

#endif

/*
 * applets/compat.c - vpartclone, vntfsclone and vpartimage: the command lines
 * of the imagebackup tools (Python) on top of imgbk. All three read any
 * image format imgbk detects, so `vntfsclone` on a partclone image works too.
 * -v is `imgbk info`, -c is `imgbk verify` (and, unlike imagebackup, may be
 * combined with -m: verify first, then mount), -m is `imgbk mount`.
 */
#define COMPAT_USAGE(NAME, KIND)                                                            \
"Usage: " NAME " [OPTIONS] IMAGE\n"                                                         \
"\n"                                                                                        \
"Mount a " KIND " image backup as a virtual partition: the partition appears as\n"         \
"one read-only file in MOUNTPOINT (FUSE), which can be checked with fsck and\n"            \
"mounted with mount -o loop,ro; the commands are printed. The name and options\n"         \
"of the imagebackup tool, on `imgbk mount`: it reads any image imgbk knows\n"             \
"(partclone, ntfsclone, partimage), whatever the name it is called by.\n"               \
"Without -m, -v prints the header and -c checks the whole image; with\n"                  \
"neither, the image is only opened.\n"                                                     \
"\n"                                                                                        \
"Options:\n"                                                                                \
"  -m, --mountpoint DIR   mount the virtual partition here (an empty directory);\n"         \
"                         a daemon serves it: unmount with fusermount3 -u DIR\n"            \
"  -v, --verbose          print the header first (as imgbk info)\n"                        \
"  -c, --crc_check        verify every checksum (as imgbk verify); with -m\n"              \
"                         the image is verified before it is mounted\n"                    \
"  -i, --index_size N     blocks per index entry: at least 1000 and a multiple\n"          \
"                         of 8 (default 1024); larger needs less memory\n"                 \
"  -d, --debug_fuse       print FUSE debug messages; stays in the foreground\n"            \
"  -q, --quiet            no progress bars\n"                                               \
"      --raw              IMAGE is a raw partition image (partclone.dd, dd: no\n"          \
"                         header) whatever its name (an imgbk extension;\n"              \
"                         NAME.dd-img and NAME.dd-ptcl-img are raw anyway)\n"            \
"  -h, --help             show this help\n"                                                 \
"\n"                                                                                        \
"Exit codes: 0 ok, 1 image damaged, not an image or not readable at random,\n"           \
"2 usage (also a MOUNTPOINT that is not an empty directory, or an IMAGE that\n"           \
"cannot be opened), 3 I/O or system error.\n"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "applet.h"
#include "mount.h"

/* imagebackup's lower limit for -i/--index_size. */
#define IB_MIN_INDEX_SIZE 1000

struct compat_opts {
	const char *image, *mountpoint;
	int verbose, crc, debug, quiet, raw;
	uint32_t index_size;
};

/* Usage errors in imagebackup's words (argparse). @return the exit code. */
static int arg_error(const struct applet *a, const char *fmt, const char *arg)
{
	char msg[600];
	snprintf(msg, sizeof msg, fmt, arg);
	warnx_("%s", msg);
	return usage_exit(a, 0);
}

static int check_index_size(const struct applet *a, const char *s, uint32_t *out)
{
	if (parse_interval(s, out) != 0)
		return arg_error(a, "argument -i/--index_size: '%s' is not an integer", s);
	if (*out < IB_MIN_INDEX_SIZE)
		return arg_error(a, "argument -i/--index_size: '%s' is too small, should be >= 1000", s);
	if (*out % 8)
		return arg_error(a, "argument -i/--index_size: '%s' is not a multiple of 8", s);
	return 0;
}

/* imagebackup opened IMAGE while parsing: a file it cannot open is a usage error. */
static int check_readable(const struct applet *a, const char *path)
{
	if (strcmp(path, "-") == 0)
		return 0;
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	char msg[PATH_MAX + 200];
	snprintf(msg, sizeof msg, "argument image: can't open '%s': %s", path, strerror(errno));
	warnx_("%s", msg);
	return usage_exit(a, 0);
}

/* @return 0 and *o filled, or the exit code for a usage error or --help. */
static int parse(const struct applet *a, int argc, char **argv, struct compat_opts *o, int *done)
{
	static const struct option opts[] = {
		{ "mountpoint", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "crc_check", no_argument, NULL, 'c' },
		{ "index_size", required_argument, NULL, 'i' },
		{ "debug_fuse", no_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;
	*done = 0;
	while ((c = getopt_long(argc, argv, "m:vci:dqh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (mount_dir_state(optarg) != MOUNTDIR_EMPTY)
				return arg_error(a, "argument -m/--mountpoint: '%s' is not an empty directory",
						 optarg);
			o->mountpoint = optarg;
			break;
		case 'v': o->verbose = 1; break;
		case 'c': o->crc = 1; break;
		case 'i':
			if ((rc = check_index_size(a, optarg, &o->index_size)) != 0)
				return rc;
			break;
		case 'd': o->debug = 1; break;
		case 'q': o->quiet = 1; break;
		case OPT_RAW: o->raw = 1; break;
		case 'h': *done = 1; return usage_exit(a, 1);
		default: return usage_exit(a, 0);
		}
	}
	if (optind != argc - 1) {
		warnx_(optind < argc ? "unrecognized arguments after the image"
				     : "the following arguments are required: image");
		return usage_exit(a, 0);
	}
	o->image = argv[optind];
	return check_readable(a, o->image);
}

/* Run another applet's main with a fresh getopt state. */
static int run_applet(const struct applet *a, int argc, char **argv)
{
	optind = 0;  /* glibc: 0 re-initialises getopt completely */
	return a->main(argc, argv);
}

static int open_only(const char *image, int raw)
{
	img_image *im = NULL;
	img_options opt;
	img_options_init(&opt);
	opt.raw = raw;
	int rc = open_image(image, &opt, &im);
	if (rc == 0)
		img_close(im);
	return rc;
}

static int compat_run(const struct compat_opts *o)
{
	int rc;
	if (o->verbose) {
		char *argv[] = { "info", o->raw ? "--raw" : (char *)o->image, (char *)o->image, NULL };
		if ((rc = run_applet(&applet_info, o->raw ? 3 : 2, argv)) != 0)
			return rc;  /* info ends with the blank line the tools print */
	}
	if (o->crc) {
		char *argv[5] = { "verify" };
		int argc = 1;
		if (o->quiet)
			argv[argc++] = "-q";
		if (o->raw)
			argv[argc++] = "--raw";
		argv[argc++] = (char *)o->image;
		if ((rc = run_applet(&applet_verify, argc, argv)) != 0)
			return rc;
	}
	if (o->mountpoint) {
		struct mount_request rq = {
			.image = o->image, .mountpoint = o->mountpoint, .index_interval = o->index_size,
			.verify = 1, .debug = o->debug, .foreground = o->debug,
			.quiet_progress = o->quiet, .raw = o->raw,
		};
		return mount_image(&rq);
	}
	return o->verbose || o->crc ? 0 : open_only(o->image, o->raw);
}

static int compat_main(const struct applet *a, int argc, char **argv)
{
	struct compat_opts o = { 0 };
	int done, rc = parse(a, argc, argv, &o, &done);
	if (rc || done)
		return rc;
	return compat_run(&o);
}

static int vpartclone_main(int argc, char **argv)
{
	return compat_main(&applet_vpartclone, argc, argv);
}

static int vntfsclone_main(int argc, char **argv)
{
	return compat_main(&applet_vntfsclone, argc, argv);
}

static int vpartimage_main(int argc, char **argv)
{
	return compat_main(&applet_vpartimage, argc, argv);
}

const struct applet applet_vntfsclone = {
	"vntfsclone", vntfsclone_main, "imagebackup-compatible vntfsclone (mount, -v header, -c verify)",
	COMPAT_USAGE("vntfsclone", "ntfsclone"),
};

const struct applet applet_vpartclone = {
	"vpartclone", vpartclone_main, "imagebackup-compatible vpartclone (mount, -v header, -c verify)",
	COMPAT_USAGE("vpartclone", "partclone"),
};

const struct applet applet_vpartimage = {
	"vpartimage", vpartimage_main, "imagebackup-compatible vpartimage (mount, -v header, -c verify)",
	COMPAT_USAGE("vpartimage", "partimage"),
};

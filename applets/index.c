/*
 * applets/index.c - `imgbk index`: build the block index that `imgbk mount`
 * needs for random reads and save it, so that later mounts start at once.
 * An index that no longer matches its image is rebuilt. Not here: the index
 * file's layout (formats/blkindex.c).
 */
static const char index_usage[] =
"Usage: imgbk index [OPTIONS] IMAGE\n"
"\n"
"Build the block index of IMAGE (block -> place in the image) and save it\n"
"next to the image as IMAGE.ibkx or, where that folder is read-only, in\n"
"$XDG_CACHE_HOME/imgbk/ (default ~/.cache/imgbk/); print where. A saved index\n"
"that still matches the image (size, time, first bytes, interval) is kept; one\n"
"that does not is rebuilt. imgbk mount does the same on its first mount.\n"
"IMAGE is a plain file or the first piece of a split set (NAME.aa), plain or\n"
"compressed (see imgbk mount --help): for a compressed image the index also\n"
"holds its access points, found by decoding it once (with a progress bar).\n"
"\n"
"Options:\n"
"  -i, --index-interval N  blocks per index entry: at least 8, a multiple of 8\n"
"                          (default 1024); the mount must use the same N\n"
"  -j, --json              print the result as one JSON object\n"
"  -q, --quiet             no progress bar and no output on success\n"
"      --raw               IMAGE is a raw partition image (partclone.dd, dd: no\n"
"                          header) whatever its name (NAME.dd-img and\n"
"                          NAME.dd-ptcl-img are raw anyway); a plain one needs\n"
"                          no index, a compressed one gets its access points\n"
"  -h, --help              show this help\n"
"\n"
"Exit codes: 0 index saved or up to date, 1 image damaged, not an image or not\n"
"readable at random, 2 usage, 3 I/O error (e.g. the index could not be\n"
"written).\n";

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "applet.h"
#include "mount.h"

/* index_state of img_random_open -> a word for the output */
static const char *state_word(int state)
{
	switch (state) {
	case 1: return "up-to-date";
	case 2: return "saved";
	case 3: return "not-saved";
	default: return "not-needed";
	}
}

/* img_index_origin -> a word for the output */
static const char *origin_word(int origin)
{
	switch (origin) {
	case IMG_INDEX_LOADED: return "loaded";
	case IMG_INDEX_BUILT: return "built";
	case IMG_INDEX_REBUILT: return "rebuilt";
	default: return "none";
	}
}

static void print_result(const img_image *im, int state, int json)
{
	const char *path = img_get_info(im)->path, *where = img_index_path(im);
	int origin = img_index_origin(im);
	if (json) {
		printf("{\"image\":");
		json_string(stdout, path);
		printf(",\"index\":");
		json_string(stdout, where);
		printf(",\"state\":");
		json_string(stdout, state_word(state));
		printf(",\"origin\":");
		json_string(stdout, origin_word(origin));
		printf("}\n");
		return;
	}
	switch (state) {
	case 1: printf("%s: index up to date: %s\n", path, where); break;
	case 2:
		printf("%s: index saved to %s (%s)\n", path, where,
		       origin == IMG_INDEX_REBUILT ? "rebuilt: the saved one was stale, damaged or for "
						     "another interval" : "built");
		break;
	case 3: break;
	default: printf("%s: this image needs no index\n", path); break;
	}
}

static int build(const char *image, const img_options *opt, uint32_t interval, int json, int quiet)
{
	img_image *im;
	img_open_for_random();  /* the scan reads at random: the stream reads the header only */
	int rc = open_image(image, opt, &im);
	if (rc)
		return rc;
	int state = 0;
	rc = random_open_progress(im, interval, 1, quiet || json, &state);
	if (rc != IMG_OK) {
		int code = report_image_error(im, rc);
		img_close(im);
		return code;
	}
	int code = IMG_EXIT_OK;
	if (state == 3) {
		warnx_("%s: the index could not be written (%s)", img_get_info(im)->path,
		       img_index_path(im)[0] ? img_index_path(im) : "no writable place");
		code = IMG_EXIT_SYSTEM;
	}
	if (json || !quiet)
		print_result(im, state, json);
	if (!json && !quiet && state == 2)
		print_index_points(im);
	img_close(im);
	if (fflush(stdout) != 0) {
		warnx_("index: cannot write the output");
		return IMG_EXIT_SYSTEM;
	}
	return code;
}

static int index_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "index-interval", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t interval = 0;
	int json = 0, quiet = 0, c;
	img_options opt;
	img_options_init(&opt);
	while ((c = getopt_long(argc, argv, "i:jqh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (parse_interval(optarg, &interval) != 0 || interval < 8 || interval % 8) {
				warnx_("index: --index-interval %s: must be a number, at least 8 and a multiple of 8",
				       optarg);
				return IMG_EXIT_USAGE;
			}
			break;
		case 'j': json = 1; break;
		case 'q': quiet = 1; break;
		case OPT_RAW: opt.raw = 1; break;
		case 'h': return usage_exit(&applet_index, 1);
		default: return usage_exit(&applet_index, 0);
		}
	}
	if (optind != argc - 1) {
		warnx_("index: expected one IMAGE");
		return usage_exit(&applet_index, 0);
	}
	return build(argv[optind], &opt, interval, json, quiet);
}

const struct applet applet_index = {
	"index", index_main, "build and save the block index used by mount", index_usage,
};

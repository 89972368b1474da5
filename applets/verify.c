/*
 * applets/verify.c - `imgbk verify`: check every checksum and structural
 * invariant of a backup image without writing anything.
 */
static const char verify_usage[] =
"Usage: imgbk verify [OPTIONS] IMAGE\n"
"       imgbk verify [OPTIONS] DIR        (a Clonezilla image directory)\n"
"       imgbk verify [OPTIONS] DIR/sda2   (one partition of it)\n"
"\n"
"DIR: every partition image, one line each and a total, then MD5SUMS,\n"
"SHA1SUMS and B2SUMS when the directory has them (B3SUMS through the b3sum\n"
"tool when installed, else the output says it was not checked).\n"
"\n"
"Check a backup image: header CRC, bitmap CRC and count, every data checksum,\n"
"and that the data ends exactly where it should. On the first bad checksum\n"
"group it prints one line naming the file, the block range and the byte\n"
"offset in the (uncompressed) image, and exits 1. IMAGE may be compressed or\n"
"the first piece of a split set (NAME.aa); - reads standard input.\n"
"\n"
"Options:\n"
"  -a, --all      go on after a bad group and count the bad groups\n"
"  -j, --json     print the result as one JSON object on stdout\n"
"      --raw      IMAGE is a raw partition image (partclone.dd, dd: no header)\n"
"                 whatever its name (NAME.dd-img and NAME.dd-ptcl-img are raw\n"
"                 anyway): it carries no checksums, so verify checks that it\n"
"                 reads to its end and, when compressed, the compressor's own\n"
"                 checks\n"
"  -q, --quiet    no progress bar and no OK line\n"
"  -h, --help     show this help\n"
"\n"
"Exit codes: 0 good, 1 damaged or not an image, 2 usage, 3 I/O error.\n";

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "applet.h"
#include "czdir.h"

struct verify_result {
	uint64_t blocks;
	uint64_t bad_groups;
	int code;
	char error[512];
};

static void print_json(const char *path, const img_info *in, const struct verify_result *r)
{
	printf("{\"image\":");
	json_string(stdout, path);
	printf(",\"ok\":%s,\"format\":", r->code == IMG_OK ? "true" : "false");
	json_string(stdout, in ? in->format : "");
	printf(",\"checksum\":");
	json_string(stdout, in ? in->checksum : "");
	printf(",\"blocks_checked\":%llu,\"bad_groups\":%llu,\"exit_code\":%d,\"error\":",
	       (unsigned long long)r->blocks, (unsigned long long)r->bad_groups,
	       img_exit_code(r->code));
	if (r->code == IMG_OK)
		printf("null");
	else
		json_string(stdout, r->error);
	printf("}\n");
}

/* A header field's number, 0 when the image has no such field. */
static uint64_t field_number(const img_image *im, const char *key)
{
	const img_field_list *fl = img_get_fields(im);
	for (size_t i = 0; i < fl->count; i++)
		if (fl->fields[i].key && strcmp(fl->fields[i].key, key) == 0 && fl->fields[i].is_number)
			return fl->fields[i].number;
	return 0;
}

/* A raw image has no checksums: say what was checked instead. */
static void print_raw_ok(const img_image *im, uint64_t bytes)
{
	const img_info *in = img_get_info(im);
	char a[40], b[32];
	img_fmt_thousands(a, sizeof a, bytes);
	img_fmt_human(b, sizeof b, bytes);
	const char *codec = strchr(in->layers, '+');
	printf("%s: OK: raw partition image, %s bytes (%s) read to the end", in->path, a, b);
	if (codec && strcmp(codec + 1, "lzma") == 0)
		printf(", its lzma data decoded without error (lzma keeps no checksum)");
	else if (codec)
		printf(", its compressed data (%s) passed the compressor's own checks", codec + 1);
	if (field_number(im, "fs_size"))
		printf(", it holds the whole filesystem its header describes");
	printf("; a raw image carries no checksums, so its bytes themselves cannot be checked\n");
}

/* Walk the whole image. @return IMG_OK or the status that ended the walk. */
static int walk(img_image *im, int all, int quiet, struct verify_result *r)
{
	const img_info *in = img_get_info(im);
	progress pg;
	progress_start(&pg, "verify", in->used_blocks * in->block_size, quiet);
	img_run run;
	int rc, result = IMG_OK;
	while ((rc = img_next_run(im, &run)) != IMG_EOF) {
		if (rc == IMG_OK) {
			progress_update(&pg, img_blocks_done(im) * in->block_size);
			continue;
		}
		if (rc == IMG_E_CHECKSUM && all) {
			if (pg.enabled)
				fputc('\n', stderr);
			warnx_("%s", img_error(im)->msg);
			result = rc;
			continue;
		}
		result = rc;
		break;
	}
	progress_end(&pg);
	r->blocks = img_blocks_done(im);
	r->bad_groups = img_bad_groups(im);
	return result;
}

static int verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int all = 0, json = 0, quiet = 0, c;
	img_options opt;
	img_options_init(&opt);
	while ((c = getopt_long(argc, argv, "ajqh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': all = 1; break;
		case 'j': json = 1; break;
		case OPT_RAW: opt.raw = 1; break;
		case 'q': quiet = 1; break;
		case 'h': return usage_exit(&applet_verify, 1);
		default: return usage_exit(&applet_verify, 0);
		}
	}
	if (optind != argc - 1) {
		warnx_("verify: expected one IMAGE");
		return usage_exit(&applet_verify, 0);
	}
	const char *path = argv[optind];
	char part[PATH_MAX];
	if (cz_arg_is_dir(path))
		return cz_verify(path, quiet);
	int code = cz_resolve_part(path, part, sizeof part, &path);  /* DIR/sda2 */
	if (code)
		return code;
	struct verify_result r = { 0 };
	img_image *im = NULL;
	img_err err;
	r.code = img_open(path, &opt, &im, &err);
	if (r.code != IMG_OK) {
		snprintf(r.error, sizeof r.error, "%s", err.msg);
		warnx_("%s", err.msg);
		if (json)
			print_json(path, NULL, &r);
		return img_exit_code(r.code);
	}
	const img_info *in = img_get_info(im);
	r.code = walk(im, all, quiet || json, &r);
	if (r.code != IMG_OK) {
		snprintf(r.error, sizeof r.error, "%s", img_error(im)->msg);
		if (!(r.code == IMG_E_CHECKSUM && all))
			warnx_("%s", r.error);
		if (r.bad_groups > 0 && all)
			warnx_("%s: %llu bad checksum group%s%s", in->path, (unsigned long long)r.bad_groups,
			       r.bad_groups == 1 ? "" : "s",
			       in->checksums_chained ? "; the groups after the first bad one could not be "
						       "checked (each checksum covers all data before it)" : "");
	} else if (!quiet && !json && strcmp(in->format, "raw") == 0) {
		print_raw_ok(im, r.blocks);
	} else if (!quiet && !json) {
		char size[32];
		img_fmt_human(size, sizeof size, r.blocks * in->block_size);
		if (in->has_checksums)
			printf("%s: OK: %llu used blocks (%s), every %s checksum matches\n", in->path,
			       (unsigned long long)r.blocks, size, in->checksum);
		else
			printf("%s: OK: %llu used blocks (%s) read; the image has no checksums, so only "
			       "its structure was checked\n",
			       in->path, (unsigned long long)r.blocks, size);
	}
	if (json)
		print_json(in->path, in, &r);
	code = img_exit_code(r.code);
	img_close(im);
	return code;
}

const struct applet applet_verify = {
	"verify", verify_main, "check every checksum and the structure of an image", verify_usage,
};

/*
 * applets/info.c - `imgbk info`: print the header of a backup image in the
 * imagebackup tools' layout (with -v, imgbk's own facts too), or as JSON for
 * scripts. Which field shows where is the format's choice (img_field.level).
 */
static const char info_usage[] =
"Usage: imgbk info [OPTIONS] IMAGE\n"
"       imgbk info [OPTIONS] DIR        (a Clonezilla image directory)\n"
"       imgbk info [OPTIONS] DIR/sda2   (one partition of it)\n"
"\n"
"DIR: one table of the saved disks (size, MBR or GPT) and partitions (start,\n"
"size, filesystem, tool, compressor, pieces, image size, checksum mode, used\n"
"bytes; swap and extended partitions shown as such); --json gives the same.\n"
"A directory that is not a Clonezilla one, or an encrypted one, is refused.\n"
"\n"
"Print the header of a backup image: format, filesystem, sizes, block and\n"
"checksum settings. IMAGE may be compressed or the first piece of a split\n"
"set (NAME.aa); - reads standard input.\n"
"\n"
"The text is the imagebackup tools' layout (vpartclone -v and friends),\n"
"ending with a blank line.\n"
"\n"
"Options:\n"
"  -v, --verbose  add imgbk's own facts to the text: header sums, the\n"
"                 compression's name, partimage's MBR records, ...\n"
"  -j, --json     print one JSON object instead of the text layout; it\n"
"                 holds every field, those of -v too\n"
"      --raw      IMAGE is a raw partition image (partclone.dd, dd: no header)\n"
"                 whatever its name; without it, only NAME.dd-img and\n"
"                 NAME.dd-ptcl-img (then compressor and split suffixes) are\n"
"                 read as raw. A compressed raw image is decoded to its end\n"
"                 to learn its size.\n"
"  -h, --help     show this help\n"
"\n"
"Exit codes: 0 ok, 1 not an image or damaged header, 2 usage, 3 I/O error.\n";

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "applet.h"
#include "czdir.h"

static void print_title(const char *title, char underline)
{
	printf("%s\n", title);
	for (size_t i = 0; title[i]; i++)
		putchar(underline);
	putchar('\n');
}

static int field_shown(const img_field *f, int verbose)
{
	return f->level == IMG_FIELD_TOOL || (verbose && f->level == IMG_FIELD_VERBOSE);
}

/* Width of the longest label shown from fields[i] up to the next section. */
static int section_label_width(const img_field_list *fl, size_t i, int verbose)
{
	int w = 0;
	for (; i < fl->count && !fl->fields[i].section; i++) {
		int n = (int)strlen(fl->fields[i].label);
		if (field_shown(&fl->fields[i], verbose) && n > w)
			w = n;
	}
	return w;
}

static void print_text(const img_field_list *fl, int verbose)
{
	print_title(fl->title, '=');
	int width = fl->label_width ? fl->label_width : section_label_width(fl, 0, verbose);
	int hidden = 0;  /* inside a section that is not shown */
	for (size_t i = 0; i < fl->count; i++) {
		const img_field *f = &fl->fields[i];
		if (f->section) {
			hidden = !field_shown(f, verbose);
			if (!hidden)
				print_title(f->label, '-');
			if (!fl->label_width)
				width = section_label_width(fl, i + 1, verbose);
			continue;
		}
		if (hidden || !field_shown(f, verbose))
			continue;
		printf("%-*s%s%s", width, f->label, fl->separator, f->text);
		if (f->comment)
			printf("\t%s", f->comment);
		putchar('\n');
	}
	putchar('\n');
}

static void print_json(const img_info *in, const img_field_list *fl)
{
	printf("{\"image\":");
	json_string(stdout, in->path);
	printf(",\"format\":");
	json_string(stdout, in->format);
	printf(",\"format_version\":");
	json_string(stdout, in->format_version);
	printf(",\"layers\":");
	json_string(stdout, in->layers);
	printf(",\"fs\":");
	json_string(stdout, in->fs);
	printf(",\"device_size\":%llu,\"block_size\":%u,\"total_blocks\":%llu,\"used_blocks\":%llu",
	       (unsigned long long)in->device_size, in->block_size,
	       (unsigned long long)in->total_blocks, (unsigned long long)in->used_blocks);
	printf(",\"checksum\":");
	json_string(stdout, in->checksum);
	printf(",\"image_data_size\":%llu", (unsigned long long)in->image_data_size);
	if (in->read_check) {
		printf(",\"read_check\":");
		json_string(stdout, in->read_check);
	}
	printf(",\"header\":{");
	int first = 1;
	for (size_t i = 0; i < fl->count; i++) {
		const img_field *f = &fl->fields[i];
		if (f->section)
			continue;
		printf("%s", first ? "" : ",");
		first = 0;
		json_string(stdout, f->key);
		putchar(':');
		if (f->is_number)
			printf("%llu", (unsigned long long)f->number);
		else
			json_string(stdout, f->str);
	}
	printf("}}\n");
}

static int info_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int json = 0, verbose = 0, c;
	img_options opt;
	img_options_init(&opt);
	opt.raw_size = 1;  /* a demanding user wants a raw image's true size */
	while ((c = getopt_long(argc, argv, "vjh", opts, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = 1; break;
		case 'j': json = 1; break;
		case OPT_RAW: opt.raw = 1; break;
		case 'h': return usage_exit(&applet_info, 1);
		default: return usage_exit(&applet_info, 0);
		}
	}
	if (optind != argc - 1) {
		warnx_("info: expected one IMAGE");
		return usage_exit(&applet_info, 0);
	}
	if (cz_arg_is_dir(argv[optind]))
		return cz_info(argv[optind], json);
	img_image *im;
	int rc = open_image(argv[optind], &opt, &im);
	if (rc)
		return rc;
	if (json)
		print_json(img_get_info(im), img_get_fields(im));
	else
		print_text(img_get_fields(im), verbose);
	img_close(im);
	if (fflush(stdout) != 0) {
		warnx_("info: cannot write the output");
		return IMG_EXIT_SYSTEM;
	}
	return 0;
}

const struct applet applet_info = {
	"info", info_main, "print the header of a backup image", info_usage,
};

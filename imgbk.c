/*
 * imgbk.c - the multi-call entry point: one sorted table of applets, chosen
 * by the name the program was called by (a symlink such as `vpartclone`) or
 * by the first argument (`imgbk info IMAGE`).
 *
 * To add an applet: write applets/NAME.c with its `struct applet` and add one
 * line to the table below (kept sorted by name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applets/applet.h"

static const struct applet *const applets[] = {
	&applet_index,
	&applet_info,
	&applet_mount,
	&applet_restore,
	&applet_serve,
	&applet_verify,
	&applet_vntfsclone,
	&applet_vpartclone,
	&applet_vpartimage,
};
#define N_APPLETS (sizeof applets / sizeof applets[0])

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct applet *const *)elem)->name);
}

static const struct applet *find_applet(const char *name)
{
	const struct applet *const *a = bsearch(name, applets, N_APPLETS, sizeof applets[0], cmp_name);
	return a ? *a : NULL;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void list_applets(FILE *f)
{
	for (size_t i = 0; i < N_APPLETS; i++)
		fprintf(f, "  %-11s %s\n", applets[i]->name, applets[i]->summary);
}

static int top_help(FILE *f)
{
	fprintf(f,
		"Usage: imgbk APPLET [OPTIONS] IMAGE ...\n"
		"       APPLET [OPTIONS] IMAGE ...      (through a symlink named after the applet)\n"
		"\n"
		"Inspect, verify, restore and mount partition backup images (partclone,\n"
		"ntfsclone, partimage; the files of a Clonezilla backup), plain, compressed\n"
		"(gzip, bzip2, zstd, xz, lzma, lz4, lzip) or split (NAME.aa, NAME.ab, ...).\n"
		"\n"
		"Applets:\n");
	list_applets(f);
	fprintf(f,
		"\n"
		"  imgbk APPLET --help   shows the applet's options.\n"
		"  imgbk --version       shows the version.\n"
		"\n"
		"Exit codes: 0 ok, 1 image damaged or not an image, 2 usage error or refused,\n"
		"3 I/O or system error.\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *self = base_name(argc > 0 ? argv[0] : "imgbk");
	const struct applet *a = find_applet(self);
	if (a) {
		prog_name = a->name;
		return a->main(argc, argv);
	}
	if (argc < 2) {
		top_help(stderr);
		return IMG_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return top_help(stdout);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("imgbk %s\n", IMGBK_VERSION);
		return 0;
	}
	a = find_applet(argv[1]);
	if (!a) {
		fprintf(stderr, "imgbk: unknown applet '%s'; the applets are:", argv[1]);
		for (size_t i = 0; i < N_APPLETS; i++)
			fprintf(stderr, " %s", applets[i]->name);
		fprintf(stderr, "\nTry 'imgbk --help' for more information.\n");
		return IMG_EXIT_USAGE;
	}
	argv[1] = "imgbk";  /* getopt's own messages then start with "imgbk:" */
	return a->main(argc - 1, argv + 1);
}

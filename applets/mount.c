/*
 * applets/mount.c - `imgbk mount`: show the partition inside a backup image
 * as one read-only file in a FUSE mount, print how to check and loop-mount
 * it, and leave a daemon serving it. Also the mount steps the imagebackup-compatible
 * applets (compat.c) and `imgbk index` share (applets/mount.h).
 */
static const char mount_usage[] =
"Usage: imgbk mount [OPTIONS] IMAGE MOUNTPOINT\n"
"       imgbk mount [OPTIONS] DIR MOUNTPOINT   (a Clonezilla image directory)\n"
"\n"
"DIR: MOUNTPOINT/sda1, MOUNTPOINT/sda2, ... (every partition image) and\n"
"MOUNTPOINT/sda (each disk saved whole: the disk as Clonezilla restores it,\n"
"partition table and boot code included; swap partitions read as zeros; a\n"
"partition whose image is missing or damaged reads as EIO, and is named).\n"
"DIR/sda2 names one partition of it.\n"
"\n"
"Show the partition inside IMAGE as one read-only file, MOUNTPOINT/NAME,\n"
"through FUSE; NAME is the image's file name without split, compression and\n"
".img suffixes. The commands that check the filesystem in it and mount it\n"
"read-only (mount -o loop,ro) are printed. MOUNTPOINT must be an existing\n"
"empty directory. IMAGE is a plain file or the first piece of a split set\n"
"(NAME.aa), plain or compressed with gzip, bzip2, xz (several blocks), zstd\n"
"(one frame as zstd -T0 and Clonezilla write, or several as pzstd writes:\n"
"a faster first index), lz4, lzop or lzip (several members, as plzip\n"
"writes); one xz block or one big lzip member cannot be read at random (the\n"
"message says what to do), nor can lzma.\n"
"The block index (and for a compressed image its access points, found by\n"
"decoding it once) is built on the first mount and saved (IMAGE.ibkx, see\n"
"imgbk index).\n"
"Reads of a block whose checksum group is bad fail with EIO (logged).\n"
"Unmount with: fusermount3 -u MOUNTPOINT  (or umount MOUNTPOINT as root).\n"
"\n"
"Options:\n"
"  -f, --foreground        stay in the foreground; Ctrl-C unmounts\n"
"  -d, --debug             print every FUSE request (implies --foreground)\n"
"  -n, --no-verify         do not check data checksums on reads\n"
"  -i, --index-interval N  blocks per index entry: at least 8, a multiple of 8\n"
"                          (default 1024); larger needs less memory\n"
"  -q, --quiet             no progress bar and no hints\n"
"      --raw               IMAGE is a raw partition image (partclone.dd, dd: no\n"
"                          header) whatever its name; NAME.dd-img and\n"
"                          NAME.dd-ptcl-img are raw anyway. A plain one is\n"
"                          served straight from its file\n"
"      --direct-io         reads bypass the kernel's page cache: each read is\n"
"                          served by imgbk, nothing is cached twice under a\n"
"                          loop device, and big sequential reads (dd bs=1M,\n"
"                          cp, cat) use less CPU; small ones (sha256sum's)\n"
"                          are slower, and a shared mmap of the file fails\n"
"  -h, --help              show this help\n"
"\n"
"Exit codes: 0 mounted (or, in the foreground, served until unmounted),\n"
"1 image damaged, not an image or not readable at random, 2 usage or\n"
"MOUNTPOINT missing or not empty, 3 I/O or system error (e.g. the FUSE mount\n"
"failed).\n";

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "applet.h"
#include "czdir.h"
#include "fsnames.h"
#include "mount.h"
#include "../fuse/mount.h"

/* ---- shared steps ------------------------------------------------------- */

int mount_dir_state(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR ? MOUNTDIR_MISSING : MOUNTDIR_ERROR;
	if (!S_ISDIR(st.st_mode))
		return MOUNTDIR_NOT_DIR;
	DIR *d = opendir(dir);
	if (!d)
		return MOUNTDIR_ERROR;
	struct dirent *e;
	int empty = 1;
	while (empty && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	return empty ? MOUNTDIR_EMPTY : MOUNTDIR_NOT_EMPTY;
}

/* Remove ".SUFFIX" from s when pred accepts SUFFIX. @return 1 if removed. */
static int strip_suffix_if(char *s, int (*pred)(const char *))
{
	char *dot = strrchr(s, '.');
	if (!dot || dot == s || !pred(dot + 1))
		return 0;
	*dot = 0;
	return 1;
}

/* split(1) piece names: .aa .ab ... .zaaa (letters) or .00 .000 (-d, partimage) */
static int is_split_suffix(const char *sfx)
{
	size_t n = strlen(sfx);
	if (n < 2)
		return 0;
	int letters = 1, digits = 1;
	for (size_t i = 0; i < n; i++) {
		letters &= sfx[i] >= 'a' && sfx[i] <= 'z';
		digits &= sfx[i] >= '0' && sfx[i] <= '9';
	}
	return letters || digits;
}

static int is_compression_suffix(const char *sfx)
{
	return img_codec_suffix(sfx, strlen(sfx));
}

static int is_img_suffix(const char *sfx)
{
	return strcasecmp(sfx, "img") == 0 || strcmp(sfx, "dd-img") == 0 ||
	       strcmp(sfx, "dd-ptcl-img") == 0;
}

static int is_000(const char *sfx)
{
	return strcmp(sfx, "000") == 0;
}

void mount_file_name(const char *path, const char *layers, char *out, size_t outsz)
{
	const char *slash = strrchr(path, '/');
	char name[NAME_MAX + 1];
	snprintf(name, sizeof name, "%s", slash ? slash + 1 : path);
	if (layers && strncmp(layers, "split", 5) == 0)
		strip_suffix_if(name, is_split_suffix);
	else
		strip_suffix_if(name, is_000);
	strip_suffix_if(name, is_compression_suffix);
	strip_suffix_if(name, is_img_suffix);
	if (!name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		snprintf(name, sizeof name, "partition");
	snprintf(out, outsz, "%s", name);
}

int parse_interval(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static void index_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress *pg = ctx;
	pg->total = total;
	progress_update(pg, done);
}

int random_open_progress(img_image *im, uint32_t interval, int verify, int quiet, int *state)
{
	progress pg;
	progress_start(&pg, "index", 0, quiet);
	img_random_options ro;
	img_random_options_init(&ro);
	ro.index_interval = interval;
	ro.verify = verify;
	ro.progress = index_progress;
	ro.progress_ctx = &pg;
	int rc = img_random_open(im, &ro, state);
	if (pg.total && pg.last > pg.start)
		progress_end(&pg);
	return rc;
}

/* ---- hints -------------------------------------------------------------- */

static void print_hints(const img_info *in, const char *dir, const char *file)
{
	const struct fs_tools *t = fs_tools_lookup(in->fs);
	const char *sudo = geteuid() == 0 ? "" : "sudo ";
	char size[32];
	img_fmt_human(size, sizeof size, in->device_size);
	printf("Virtual partition provided as '%s' (%s, %s, %s image).\n\n", file, size, in->fs,
	       in->format);
	if (t->fsck)
		printf("The file system of this virtual partition can be checked with this command:\n"
		       "   %s %s\n\n", t->fsck, file);
	else
		printf("No read-only check command is known for the file system %s.\n\n", in->fs);
	printf("This virtual partition can be mounted as a read-only filesystem at '%s'\n"
	       "with this command:\n   %smount %s%s%s-o loop,ro %s %s\n", dir, sudo,
	       t->mount_type ? "-t " : "", t->mount_type ? t->mount_type : "",
	       t->mount_type ? " " : "", file, dir);
	if (t->note)
		printf("   (%s)\n", t->note);
	printf("\nWhen done, unmount it (first the loop mount if there is one):\n"
	       "   %sumount %s; fusermount3 -u %s\n", sudo, dir, dir);
	fflush(stdout);
}

/* ---- the mount ---------------------------------------------------------- */

void print_index_points(const img_image *im)
{
	uint64_t ck, units, blind;
	const char *codec;
	img_index_points(im, &ck, &units, &blind, &codec);
	if (units == 0)
		return;
	struct stat st;
	double mb = stat(img_index_path(im), &st) == 0 ? (double)st.st_size / 1e6 : 0;
	const char *path = img_get_info(im)->path;
	printf("%s: %llu checkpoint%s in %llu %s frame%s (index %.1f MB)\n", path, (unsigned long long)ck,
	       ck == 1 ? "" : "s", (unsigned long long)units, codec, units == 1 ? "" : "s", mb);
	if (blind)
		printf("%s: %llu %s frame%s could not get checkpoints (imgbk cannot follow %s blocks): %s, "
		       "but a read there decodes from the frame's start (slower)\n",
		       path, (unsigned long long)blind, codec, blind == 1 ? "" : "s", blind == 1 ? "its" : "their",
		       blind == 1 ? "it mounts" : "they mount");
	fflush(stdout);
}

static void warn_index_state(const img_image *im, int state, int quiet)
{
	if (state == 3 && !quiet)
		warnx_("%s: the index could not be saved (%s); it is built again on the next mount",
		       img_get_info(im)->path, img_index_path(im)[0] ? img_index_path(im) : "no place");
}

static void hints_when_ready(void *ctx, const char *dir, const char *file)
{
	const img_info *in = ctx;
	print_hints(in, dir, file);
}

/* Mount, hint, serve (or leave a daemon serving). @return the exit code. */
static int mount_and_serve(img_image *im, const struct mount_request *rq)
{
	const img_info *in = img_get_info(im);
	char name[NAME_MAX + 1], msg[700];
	mount_file_name(rq->image, in->layers, name, sizeof name);
	struct fuse_image_config cfg = {
		.mountpoint = rq->mountpoint, .name = name, .debug = rq->debug, .direct_io = rq->direct_io,
		.ready = rq->quiet_hints ? NULL : hints_when_ready, .ctx = (void *)in,
	};
	if (fuse_image_run(im, &cfg, rq->foreground || rq->debug, msg, sizeof msg) != 0) {
		if (msg[0])
			warnx_("%s", msg);
		return IMG_EXIT_SYSTEM;
	}
	return IMG_EXIT_OK;
}

int mount_image(const struct mount_request *rq)
{
	img_image *im;
	img_options opt;
	img_options_init(&opt);
	opt.raw = rq->raw;
	img_open_for_random();  /* read at random: the stream reads the header only */
	int rc = open_image(rq->image, &opt, &im);
	if (rc)
		return rc;
	int state = 0;
	rc = random_open_progress(im, rq->index_interval, rq->verify, rq->quiet_progress, &state);
	if (rc != IMG_OK) {
		int code = report_image_error(im, rc);
		img_close(im);
		return code;
	}
	warn_index_state(im, state, rq->quiet_progress);
	if (!rq->quiet_progress && img_index_origin(im) >= IMG_INDEX_BUILT)
		print_index_points(im);
	int code = mount_and_serve(im, rq);
	img_close(im);
	return code;
}

/* ---- the applet --------------------------------------------------------- */

static int check_mountpoint(const char *dir)
{
	switch (mount_dir_state(dir)) {
	case MOUNTDIR_EMPTY:
		return 0;
	case MOUNTDIR_ERROR:
		warnx_("mount: %s: %s%s", dir, strerror(errno),
		       errno == ENOTCONN ? " (a mount whose daemon ended: fusermount3 -u it)" : "");
		break;
	case MOUNTDIR_MISSING:
		warnx_("mount: %s: no such directory", dir);
		break;
	case MOUNTDIR_NOT_DIR:
		warnx_("mount: %s: not a directory", dir);
		break;
	default:
		warnx_("mount: %s: not an empty directory", dir);
		break;
	}
	return IMG_EXIT_USAGE;
}

static int mount_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "index-interval", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "direct-io", no_argument, NULL, OPT_DIRECT_IO },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount_request rq = { .verify = 1 };
	int c;
	while ((c = getopt_long(argc, argv, "fdni:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': rq.foreground = 1; break;
		case 'd': rq.debug = 1; break;
		case 'n': rq.verify = 0; break;
		case 'i':
			if (parse_interval(optarg, &rq.index_interval) != 0 || rq.index_interval < 8 ||
			    rq.index_interval % 8) {
				warnx_("mount: --index-interval %s: must be a number, at least 8 and a multiple of 8",
				       optarg);
				return IMG_EXIT_USAGE;
			}
			break;
		case 'q': rq.quiet_progress = rq.quiet_hints = 1; break;
		case OPT_RAW: rq.raw = 1; break;
		case OPT_DIRECT_IO: rq.direct_io = 1; break;
		case 'h': return usage_exit(&applet_mount, 1);
		default: return usage_exit(&applet_mount, 0);
		}
	}
	if (optind != argc - 2) {
		warnx_("mount: expected IMAGE and MOUNTPOINT");
		return usage_exit(&applet_mount, 0);
	}
	rq.image = argv[optind];
	rq.mountpoint = argv[optind + 1];
	int rc = check_mountpoint(rq.mountpoint);
	if (rc)
		return rc;
	return cz_arg_is_dir(rq.image) ? cz_mount(&rq) : mount_image(&rq);
}

const struct applet applet_mount = {
	"mount", mount_main, "show the partition in an image as a file (FUSE)", mount_usage,
};

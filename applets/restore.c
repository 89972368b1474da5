/*
 * applets/restore.c - `imgbk restore`: write the partition held in a backup
 * image to a file, a block device or standard output, checking checksums on
 * the way. Target safety rules live in target.c.
 */
static const char restore_usage[] =
"Usage: imgbk restore [OPTIONS] IMAGE TARGET\n"
"       imgbk restore [OPTIONS] DIR TARGET       (a whole disk, Clonezilla directory)\n"
"       imgbk restore [OPTIONS] DIR/sda TARGET   (one disk of several)\n"
"       imgbk restore --lvm [OPTIONS] DIR [FOLDER]   (its LVM volumes)\n"
"\n"
"DIR: the saved disk is written to TARGET (a block device, or a file of the\n"
"disk's size) as Clonezilla restores it: the partition table (MBR and the\n"
"EBRs of logical partitions, or GPT with its backup at TARGET's own end), the\n"
"hidden data after the MBR, then the used blocks of every partition; fsync.\n"
"Refused before writing: TARGET smaller than the end of the last partition,\n"
"mounted or busy (or any partition of it mounted), a device whose sector size\n"
"is not the saved disk's, a missing or unreadable partition image. Swap\n"
"partitions are not recreated (the mkswap command is printed). An LVM\n"
"physical volume is not written: the pvcreate and vgcfgrestore commands that\n"
"rebuild it are printed, then --lvm restores the saved logical volumes.\n"
"DIR/sda2 restores one partition, DIR/vg-lv one logical volume.\n"
"\n"
"--lvm DIR [FOLDER]: every logical volume saved in DIR (lvm_logv.list) to\n"
"its existing /dev/VG/LV, or to FOLDER/VG-LV files.\n"
"\n"
"Restore the partition in IMAGE to TARGET:\n"
"  a new file       is created with the partition's size; unused blocks stay\n"
"                   holes (a sparse file)\n"
"  an existing file is refused unless --force is given\n"
"  a block device   gets only the used blocks written; it must not be mounted\n"
"                   or in use, and must be at least as large as the partition\n"
"  -                writes the whole partition to standard output, unused\n"
"                   blocks as zeros\n"
"Checksums are checked while restoring: a bad one stops the restore with exit\n"
"code 1, after saying how far it got (--rescue goes on instead). The target is\n"
"flushed (fsync) before success is reported. IMAGE may be compressed or the\n"
"first piece of a split set (NAME.aa); - reads standard input.\n"
"\n"
"Options:\n"
"  -f, --force      overwrite an existing regular file\n"
"  -n, --no-verify  do not check data checksums (faster, no protection)\n"
"  -r, --rescue     go on after a bad checksum group: write its blocks as\n"
"                   zeros, list the bad groups at the end, exit 1\n"
"      --dry-run    DIR: print what would be written, write nothing\n"
"      --lvm        DIR [FOLDER]: restore the saved LVM logical volumes\n"
"  -q, --quiet      no progress bar and no summary line\n"
"      --raw        IMAGE is a raw partition image (partclone.dd, dd: no\n"
"                   header) whatever its name; NAME.dd-img and NAME.dd-ptcl-img\n"
"                   are raw anyway. There is no used-block map: every byte is\n"
"                   written, to a device zeros too, to a file all-zero 4 KiB\n"
"                   blocks as holes (they read as zeros); for a block device\n"
"                   a compressed raw image is decoded once first to learn its\n"
"                   size\n"
"  -h, --help       show this help\n"
"\n"
"Exit codes: 0 restored, 1 image damaged, 2 usage or target refused,\n"
"3 I/O or system error.\n";

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "applet.h"
#include "czdir.h"
#include "target.h"

/* restore's own long option past applet.h's shared ones */
enum { OPT_LVM = OPT_DRY_RUN + 1 };

/* Runs asked for at once (and the most buffers in one pwritev). */
#define RESTORE_BATCH 256

static const uint8_t zeros[1 << 16];

/* stdout gets every byte: zeros for the gap [from, to). */
static int write_zeros(struct target *t, uint64_t from, uint64_t to, char *msg, size_t msz)
{
	while (from < to) {
		size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
		if (target_write_at(t, zeros, n, from, msg, msz) != TARGET_OK)
			return TARGET_SYSERR;
		from += n;
	}
	return TARGET_OK;
}

/* Bad groups listed at the end of a --rescue restore (more are counted). */
#define RESCUE_LIST_MAX 1000

struct restore_state {
	struct target t;
	uint64_t written_to;  /* partition offset written up to (stdout; raw to a file) */
	int raw_holes;        /* a raw image to a file: all-zero blocks stay holes */
	uint64_t raw_end;     /* raw: partition offset handed out up to */
	char msg[600];
	int rescue;
	size_t bad_listed;
	char *bad[RESCUE_LIST_MAX];
};

/* --rescue: remember a bad group for the list at the end. */
static void note_bad_group(struct restore_state *rs, const char *msg)
{
	if (rs->bad_listed < RESCUE_LIST_MAX)
		rs->bad[rs->bad_listed++] = strdup(msg);
}

static void list_bad_groups(struct restore_state *rs, uint64_t count)
{
	if (count == 0)
		return;
	warnx_("restore --rescue: %llu bad checksum group%s written as zeros:", (unsigned long long)count,
	       count == 1 ? " was" : "s were");
	for (size_t i = 0; i < rs->bad_listed; i++) {
		fprintf(stderr, "  %s\n", rs->bad[i] ? rs->bad[i] : "(out of memory)");
		free(rs->bad[i]);
	}
	if (count > rs->bad_listed)
		fprintf(stderr, "  ... and %llu more\n", (unsigned long long)(count - rs->bad_listed));
}

/* Bytes a hole must span in a raw restore to a file. */
#define HOLE_BLOCK 4096

static int all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Bytes of the block at i of a run: HOLE_BLOCK, or fewer at its end. */
static size_t block_at(const img_run *run, size_t i)
{
	return run->len - i < HOLE_BLOCK ? run->len - i : HOLE_BLOCK;
}

/* A raw run to a file that was made empty to its size (or grows): every
 * byte, as data where it is not zero, as a hole (reads as zeros) where a
 * whole block is. */
static int put_raw_run(struct restore_state *rs, const img_run *run)
{
	size_t i = 0;
	while (i < run->len) {
		size_t start = i;
		while (i < run->len && !all_zero(run->data + i, block_at(run, i)))
			i += block_at(run, i);
		if (i > start) {
			if (target_write_at(&rs->t, run->data + start, i - start, run->offset + start,
					    rs->msg, sizeof rs->msg) != TARGET_OK)
				return TARGET_SYSERR;
			rs->written_to = run->offset + i;
		}
		while (i < run->len && all_zero(run->data + i, block_at(run, i)))
			i += block_at(run, i);
	}
	rs->raw_end = run->offset + run->len;
	return TARGET_OK;
}

/* Write a batch of runs: adjacent ones with one pwritev (no copy). */
static int put_runs(struct restore_state *rs, const img_run *runs, size_t n)
{
	if (rs->raw_holes) {
		for (size_t i = 0; i < n; i++)
			if (put_raw_run(rs, &runs[i]) != TARGET_OK)
				return TARGET_SYSERR;
		return TARGET_OK;
	}
	struct iovec iov[RESTORE_BATCH];
	size_t i = 0;
	while (i < n) {
		int cnt = 0;
		if (runs[i].bad) {  /* --rescue: zeros; files and streams have them already */
			if (rs->t.kind == TARGET_DEVICE &&
			    write_zeros(&rs->t, runs[i].offset, runs[i].offset + runs[i].len, rs->msg,
					sizeof rs->msg) != TARGET_OK)
				return TARGET_SYSERR;
			i++;
			continue;
		}
		uint64_t start = runs[i].offset, end = start;
		while (i < n && runs[i].offset == end && !runs[i].bad) {
			iov[cnt].iov_base = (void *)runs[i].data;
			iov[cnt++].iov_len = runs[i].len;
			end += runs[i].len;
			i++;
		}
		if (rs->t.kind == TARGET_STDOUT) {
			if (start < rs->written_to) {
				snprintf(rs->msg, sizeof rs->msg,
					 "%s: the image goes back to byte %llu (an ntfsclone metadata image?), "
					 "which cannot be written to a stream: restore it to a file or device",
					 rs->t.path, (unsigned long long)start);
				return TARGET_REFUSED;
			}
			if (write_zeros(&rs->t, rs->written_to, start, rs->msg, sizeof rs->msg) != TARGET_OK)
				return TARGET_SYSERR;
		}
		if (target_writev_at(&rs->t, iov, cnt, start, rs->msg, sizeof rs->msg) != TARGET_OK)
			return TARGET_SYSERR;
		if (end > rs->written_to)
			rs->written_to = end;
	}
	return TARGET_OK;
}

/* Copy every run; @return an exit code. */
static int copy_runs(img_image *im, struct restore_state *rs, int quiet)
{
	const img_info *in = img_get_info(im);
	progress pg;
	progress_start(&pg, "restore", in->used_blocks * in->block_size, quiet);
	img_run runs[RESTORE_BATCH];
	size_t n;
	int rc, damaged = 0;
	while ((rc = img_next_runs(im, runs, RESTORE_BATCH, &n)) == IMG_OK ||
	       (rc == IMG_E_CHECKSUM && rs->rescue)) {
		if (rc == IMG_E_CHECKSUM) {
			note_bad_group(rs, img_error(im)->msg);
			damaged = 1;
			continue;
		}
		int wrc = put_runs(rs, runs, n);
		if (wrc != TARGET_OK) {
			progress_end(&pg);
			warnx_("%s", rs->msg);
			return wrc == TARGET_REFUSED ? IMG_EXIT_DAMAGED : IMG_EXIT_SYSTEM;
		}
		progress_update(&pg, img_blocks_done(im) * in->block_size);
	}
	progress_end(&pg);
	if (rc == IMG_E_TRAILING) {
		warnx_("warning: %s; the partition was restored completely", img_error(im)->msg);
		rc = IMG_EOF;
	}
	if (rc != IMG_EOF) {
		report_image_error(im, rc);
		char a[32], b[32];
		if (strcmp(in->format, "raw") == 0) {
			img_fmt_thousands(a, sizeof a, img_blocks_done(im));
			warnx_("restore stopped: %s bytes were written to %s", a, rs->t.path);
			return img_exit_code(rc);
		}
		img_fmt_thousands(a, sizeof a, img_blocks_done(im));
		img_fmt_thousands(b, sizeof b, in->used_blocks);
		warnx_("restore stopped: %s of %s used blocks were written to %s", a, b, rs->t.path);
		return img_exit_code(rc);
	}
	/* a raw image that ends in holes: its last byte makes the file whole */
	if (rs->raw_holes && rs->raw_end > rs->written_to &&
	    write_zeros(&rs->t, rs->raw_end - 1, rs->raw_end, rs->msg, sizeof rs->msg) != TARGET_OK) {
		warnx_("%s", rs->msg);
		return IMG_EXIT_SYSTEM;
	}
	if (rs->t.kind == TARGET_STDOUT &&
	    write_zeros(&rs->t, rs->written_to, in->device_size, rs->msg, sizeof rs->msg) != TARGET_OK) {
		warnx_("%s", rs->msg);
		return IMG_EXIT_SYSTEM;
	}
	list_bad_groups(rs, img_bad_groups(im));
	return damaged ? IMG_EXIT_DAMAGED : IMG_EXIT_OK;
}

static int is_block_device(const char *path)
{
	struct stat st;
	return strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

static void print_summary(const img_image *im, const struct restore_state *rs, int verify)
{
	const img_info *in = img_get_info(im);
	char a[32], b[32];
	img_fmt_thousands(a, sizeof a, img_blocks_done(im));
	img_fmt_human(b, sizeof b, in->device_size);
	if (strcmp(in->format, "raw") == 0)
		fprintf(stderr, "%s: restored every byte of the raw image %s to %s (%s bytes, %s)\n",
			prog_name, in->path, rs->t.path, a, b);
	else
		fprintf(stderr, "%s: restored %s used blocks of %s to %s (%s)%s\n", prog_name, a,
			in->path, rs->t.path, b, verify && in->has_checksums ? ", checksums OK" : "");
}

/* Restore the partition in one image file to TARGET. @return the exit code. */
static int restore_one(const char *image, const char *target, const img_options *optp, int force, int quiet)
{
	img_options opt = *optp;
	/* a device's size is checked before writing: a compressed raw image is
	 * decoded once to learn its size (not from stdin, which it would use up) */
	int to_device = is_block_device(target);
	opt.raw_size = to_device && strcmp(image, "-") != 0;
	img_image *im;
	int rc = open_image(image, &opt, &im);
	if (rc)
		return rc;
	const img_info *in = img_get_info(im);
	if (to_device && strcmp(in->format, "raw") == 0 && in->device_size == 0) {
		warnx_("%s: the size of a raw image read from standard input is not known before "
		       "it is written, so %s cannot be checked to be large enough; restore from "
		       "the image file instead", in->path, target);
		img_close(im);
		return IMG_EXIT_USAGE;
	}
	static struct restore_state rs;  /* large: not on the stack */
	memset(&rs, 0, sizeof rs);       /* restore --lvm restores several */
	rs.rescue = opt.rescue;
	int trc = target_open(&rs.t, target, in->device_size, im, force, rs.msg, sizeof rs.msg);
	if (trc != TARGET_OK) {
		warnx_("%s", rs.msg);
		target_abort(&rs.t);
		img_close(im);
		return trc == TARGET_REFUSED ? IMG_EXIT_USAGE : IMG_EXIT_SYSTEM;
	}
	rs.raw_holes = rs.t.kind == TARGET_FILE && strcmp(in->format, "raw") == 0;
	int code = copy_runs(im, &rs, quiet);
	/* flushed also after a failure: what was written should reach the disk */
	if (target_finish(&rs.t, rs.msg, sizeof rs.msg) != TARGET_OK) {
		warnx_("%s", rs.msg);
		if (code == IMG_EXIT_OK)
			code = IMG_EXIT_SYSTEM;
	}
	target_abort(&rs.t);
	if (code == IMG_EXIT_OK && !quiet && rs.t.kind != TARGET_STDOUT)
		print_summary(im, &rs, opt.verify);
	img_close(im);
	return code;
}

static int restore_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "rescue", no_argument, NULL, 'r' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "lvm", no_argument, NULL, OPT_LVM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int force = 0, quiet = 0, dry_run = 0, lvm = 0, c;
	img_options opt;
	img_options_init(&opt);
	while ((c = getopt_long(argc, argv, "fnrqh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': force = 1; break;
		case 'n': opt.verify = 0; break;
		case 'r': opt.rescue = 1; break;
		case 'q': quiet = 1; break;
		case OPT_RAW: opt.raw = 1; break;
		case OPT_DRY_RUN: dry_run = 1; break;
		case OPT_LVM: lvm = 1; break;
		case 'h': return usage_exit(&applet_restore, 1);
		default: return usage_exit(&applet_restore, 0);
		}
	}
	if (lvm && !dry_run && (optind == argc - 1 || optind == argc - 2))
		return cz_restore_lvs(argv[optind], optind == argc - 2 ? argv[optind + 1] : NULL, &opt, force, quiet,
				      restore_one);
	if (lvm || optind != argc - 2) {
		warnx_(lvm ? "restore --lvm: expected DIR [FOLDER] (and no --dry-run)" : "restore: expected IMAGE and TARGET");
		return usage_exit(&applet_restore, 0);
	}
	const char *image = argv[optind], *target = argv[optind + 1];
	int handled, whole = cz_restore(image, target, &opt, force, dry_run, quiet, &handled);
	if (handled)  /* a Clonezilla directory (or DIR/sda): the whole disk */
		return whole;
	if (dry_run) {
		warnx_("restore: --dry-run is for a whole disk (a Clonezilla image directory)");
		return IMG_EXIT_USAGE;
	}
	return restore_one(image, target, &opt, force, quiet);
}

const struct applet applet_restore = {
	"restore", restore_main, "write the partition in an image to a file or device", restore_usage,
};

/*
 * applets/mount.h - what `imgbk mount`, `imgbk index` and the imagebackup-compatible
 * vpartclone/vntfsclone/vpartimage share: checking the mount point, naming
 * the virtual file, preparing random reads with a progress bar, and the
 * whole mount (hints, daemon). Implemented in applets/mount.c.
 */
#ifndef IMGBK_APPLET_MOUNT_H
#define IMGBK_APPLET_MOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "../imgbk.h"

/* mount_dir_state results */
enum { MOUNTDIR_EMPTY = 0, MOUNTDIR_MISSING, MOUNTDIR_NOT_DIR, MOUNTDIR_NOT_EMPTY, MOUNTDIR_ERROR };

/* @return MOUNTDIR_EMPTY when `dir` is an existing empty directory;
 * MOUNTDIR_ERROR when it cannot be looked at (errno says why, e.g.
 * ENOTCONN for a mount whose daemon died). */
int mount_dir_state(const char *dir);

/* The virtual file's name: the image's file name without its split suffix
 * (only for a split set), compression suffix and .img, .dd-img or
 * .dd-ptcl-img: "sda1.ext4-ptcl-img.gz.aa" -> "sda1.ext4-ptcl-img",
 * "sda3.dd-ptcl-img.zst.aa" -> "sda3". */
void mount_file_name(const char *path, const char *layers, char *out, size_t outsz);

/* Parse an index interval ("1024"). @return 0 and *out, -1 when not a number. */
int parse_interval(const char *s, uint32_t *out);

/*
 * img_random_open with a progress bar while an index is built.
 * @return IMG_OK or the status (img_error(im) says why); *state as there.
 */
int random_open_progress(img_image *im, uint32_t interval, int verify, int quiet, int *state);

/* After an index was built for an image in zstd frames: "IMAGE: N
 * checkpoints in M zstd frame(s) (index X MB)", and one more line when
 * frames got no checkpoints (they mount, slower). Nothing otherwise. */
void print_index_points(const img_image *im);

struct mount_request {
	const char *image;
	const char *mountpoint;   /* checked by the caller: an empty directory */
	uint32_t index_interval;  /* 0 = default */
	int verify;               /* check checksum groups on reads */
	int foreground;
	int debug;                /* libfuse debug output; implies foreground */
	int quiet_progress;       /* no progress bar */
	int quiet_hints;          /* no hints on stdout */
	int raw;                  /* --raw: a raw partition image whatever its name */
	int direct_io;            /* --direct-io: reads bypass the page cache */
};

/* Open, index, mount, print hints, daemonise. @return the exit code. */
int mount_image(const struct mount_request *rq);

#endif

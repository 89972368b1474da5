/*
 * applets/czdir.h - what the applets do with a Clonezilla image directory
 * (applets/czdir.c): name one partition as DIR/sda2, and the directory
 * forms of info, verify and mount. Each applet calls these with a few lines.
 */
#ifndef IMGBK_APPLET_CZDIR_H
#define IMGBK_APPLET_CZDIR_H

#include <stddef.h>

#include "mount.h"

/* @return nonzero when `arg` is a directory (a Clonezilla one or not: the
 * directory forms say plainly when it is not one). */
int cz_arg_is_dir(const char *arg);

/*
 * "DIR/sda2" (no such file, DIR a Clonezilla image directory, sda2 one of
 * its partitions) -> the path of that partition's image, in buf; any other
 * argument is handed back as is. @return 0 and *out, or the exit code after
 * printing why (the partition has no image).
 */
int cz_resolve_part(const char *arg, char *buf, size_t bufsz, const char **out);

/* `imgbk info DIR`: one table of disks and partitions, or JSON. @return the exit code. */
int cz_info(const char *dir, int json);

/* `imgbk verify DIR`: every partition image, one line each and a total, and
 * MD5SUMS/SHA1SUMS/B2SUMS/B3SUMS when present. @return the exit code. */
int cz_verify(const char *dir, int quiet);

/* `imgbk mount DIR MNT`: MNT/sda1, ... and MNT/sda (the whole disk). @return the exit code. */
int cz_mount(const struct mount_request *rq);

/*
 * `imgbk restore DIR TARGET` / `DIR/sda TARGET`: the whole disk
 * (applets/czrestore.c). *handled = 0 when `arg` names no saved disk of a
 * Clonezilla directory (then nothing was done). @return the exit code.
 */
int cz_restore(const char *arg, const char *target, const img_options *opt, int force, int dry_run,
	       int quiet, int *handled);

/* Restore one image file to a target (restore.c's single-image restore). @return the exit code. */
typedef int (*cz_restore_one_fn)(const char *image, const char *target, const img_options *opt, int force,
				 int quiet);

/*
 * `imgbk restore --lvm DIR [FOLDER]`: every saved LVM logical volume image
 * (lvm_logv.list, VG-LV.*) to FOLDER/VG-LV (new files), or to the existing
 * block device /dev/VG/LV when no FOLDER is given. Refused before writing
 * when a volume has no image or its /dev/VG/LV is not there (the message
 * names the vgcfgrestore to run). @return the exit code.
 */
int cz_restore_lvs(const char *dir, const char *folder, const img_options *opt, int force, int quiet,
		   cz_restore_one_fn restore_one);

#endif

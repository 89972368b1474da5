/*
 * fuse/mount.h - the FUSE front end: serve the partition inside an opened
 * backup image as one read-only regular file in a FUSE3 mount, or several
 * files (the partitions and disks of a Clonezilla directory) in one mount.
 *
 * HowTo:
 *
 *     img_random_open(im, ...);                 (the caller prepares reads)
 *     struct fuse_image_config cfg = { .mountpoint = "mnt", .name = "sda1",
 *                                      .ready = print_hints, .ctx = &x };
 *     if (fuse_image_run(im, &cfg, foreground, msg, sizeof msg) != 0) { print msg; }
 *
 * In the foreground the mount is made, ready() is called, requests are served
 * until the mount goes away, and 0 is returned. Otherwise the process forks:
 * the child mounts, detaches and serves (and returns 0 after the unmount);
 * the parent calls ready() and returns 0 once it has seen the mount answer.
 *
 * Reads go to img_read_at (thread-safe) from libfuse's worker threads; a bad
 * checksum group or an unreadable image gives EIO for that request, one log
 * line (stderr in the foreground, syslog in the daemon), and the mount keeps
 * serving. Not here: option parsing, hints, index building (applets/).
 */
#ifndef IMGBK_FUSE_MOUNT_H
#define IMGBK_FUSE_MOUNT_H

#include <stddef.h>

#include "../imgbk.h"

struct fuse_image_config {
	const char *mountpoint;  /* an existing empty directory */
	const char *name;        /* the file's name inside the mount */
	int debug;               /* libfuse debug output on stderr (stays in the foreground) */
	int single_thread;       /* serve requests from one thread (default: many) */
	int direct_io;           /* reads bypass the kernel's page cache (FOPEN_DIRECT_IO): each
				  * read(2) is one request, nothing is cached twice under a loop
				  * device, and a shared mmap() of the file fails (ENODEV) */
	/* called once the mount answers, before serving (foreground) or in the
	 * parent (daemon); may print. `file` is the virtual file's full path. */
	void (*ready)(void *ctx, const char *dir, const char *file);
	void *ctx;
};

/*
 * Mount `im` and serve it; see the HowTo above. The image must stay open
 * until this returns. Without `foreground` the child detaches: new session,
 * cwd /, stdio on /dev/null, messages to syslog; SIGINT, SIGTERM and SIGHUP
 * end the serving with an unmount.
 * @return 0, or -1 with a one-line message in err (nothing stays mounted).
 */
int fuse_image_run(img_image *im, const struct fuse_image_config *cfg, int foreground, char *err,
		   size_t errsz);

/* One file of a mount with several (a Clonezilla directory: sda1, sda2, ..., sda). */
struct fuse_file {
	const char *name;        /* the file's name inside the mount (copied) */
	uint64_t size;
	uint32_t block_size;     /* the statfs block size hint; 0 = 4096 */
	/* thread-safe read of [off, off+len): IMG_OK with *got (< len only at
	 * the end), or a status with err filled (the request fails with EIO
	 * and err->msg is logged) */
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err);
	void *ctx;
	const char *source;      /* a file whose mtime the file shows, NULL = now */
};

/*
 * Serve n files in one mount, as fuse_image_run serves one. cfg->name is
 * not used; ready() gets the path of files[0]. The readers must stay valid
 * until this returns. @return 0, or -1 with a one-line message in err.
 */
int fuse_files_run(const struct fuse_file *files, size_t n, const struct fuse_image_config *cfg,
		   int foreground, char *err, size_t errsz);

#endif

/*
 * applets/target.c - choosing and opening the target of a restore safely:
 * a new or (with --force) existing regular file, an unmounted block device
 * large enough for the partition, or standard output. Every refusal happens
 * before a byte is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>
#include <unistd.h>

#include "target.h"

/* Is device `dev` (or a partition of it) mounted? Reads /proc/self/mountinfo. */
static int dev_is_mounted(dev_t dev, char *where, size_t wsz)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return 0;
	char line[4096];
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		unsigned maj, min;
		char mnt[2048];
		if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &maj, &min, mnt) != 3)
			continue;
		dev_t d = makedev(maj, min);
		if (d == dev) {
			found = 1;
		} else {
			/* a partition of the target disk? /sys/dev/block/M:m/../dev names its parent */
			char path[128], parent[32];
			snprintf(path, sizeof path, "/sys/dev/block/%u:%u/../dev", maj, min);
			FILE *pf = fopen(path, "r");
			if (pf) {
				unsigned pmaj, pmin;
				if (fgets(parent, sizeof parent, pf) &&
				    sscanf(parent, "%u:%u", &pmaj, &pmin) == 2 &&
				    makedev(pmaj, pmin) == dev)
					found = 1;
				fclose(pf);
			}
		}
		if (found)
			snprintf(where, wsz, "%s", mnt);
	}
	fclose(f);
	return found;
}

/* Is `path` an active swap area? */
static int is_swap(const char *real)
{
	FILE *f = fopen("/proc/swaps", "r");
	if (!f)
		return 0;
	char line[4096], name[2048];
	int found = 0;
	while (!found && fgets(line, sizeof line, f))
		if (sscanf(line, "%2047s", name) == 1 && strcmp(name, real) == 0)
			found = 1;
	fclose(f);
	return found;
}

/* Is the regular file `real` the backing file of a loop device? */
static int file_backs_loop(const char *real, char *loopname, size_t lsz)
{
	for (int i = 0; i < 256; i++) {
		char path[96], back[PATH_MAX];
		snprintf(path, sizeof path, "/sys/block/loop%d/loop/backing_file", i);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		int match = fgets(back, sizeof back, f) && (back[strcspn(back, "\n")] = 0, 1) &&
			    strcmp(back, real) == 0;
		fclose(f);
		if (match) {
			snprintf(loopname, lsz, "/dev/loop%d", i);
			return 1;
		}
	}
	return 0;
}

/* Leave a message and @return `code` (TARGET_REFUSED or TARGET_SYSERR). */
static int say(int code, char *msg, size_t msz, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(int code, char *msg, size_t msz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msz, fmt, ap);
	va_end(ap);
	return code;
}

/* A loop device backed by one of the image's own files? */
static int loop_backs_image(const struct stat *dev_st, const img_image *im)
{
	char path[96], back[PATH_MAX];
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/backing_file", major(dev_st->st_rdev),
		 minor(dev_st->st_rdev));
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	struct stat st;
	int hit = fgets(back, sizeof back, f) && (back[strcspn(back, "\n")] = 0, 1) &&
		  stat(back, &st) == 0 && img_reads_file(im, st.st_dev, st.st_ino);
	fclose(f);
	return hit;
}

static int open_block_device(struct target *t, uint64_t need, const img_image *im, char *msg,
			     size_t msz)
{
	char where[2048];
	struct stat st;
	if (stat(t->path, &st) != 0)
		return say(TARGET_SYSERR, msg, msz, "%s: cannot stat: %s", t->path, strerror(errno));
	if (im && (img_reads_file(im, st.st_rdev, 0) || loop_backs_image(&st, im)))
		return say(TARGET_REFUSED, msg, msz,
			   "%s holds the image being restored; refusing to overwrite it", t->path);
	if (dev_is_mounted(st.st_rdev, where, sizeof where))
		return say(TARGET_REFUSED, msg, msz, "%s is mounted on %s; refusing to overwrite a mounted device",
			      t->path, where);
	char real[PATH_MAX];
	if (realpath(t->path, real) && is_swap(real))
		return say(TARGET_REFUSED, msg, msz, "%s is an active swap area; refusing to overwrite it", t->path);
	/* O_EXCL on a block device asks the kernel: it fails with EBUSY while the
	 * device is mounted, a swap area, or held by device-mapper/md. */
	t->fd = open(t->path, O_WRONLY | O_EXCL | O_CLOEXEC);
	if (t->fd < 0) {
		if (errno == EBUSY)
			return say(TARGET_REFUSED, msg, msz, "%s is in use (mounted or held by the kernel); "
				   "refusing to overwrite it", t->path);
		snprintf(msg, msz, "%s: cannot open for writing: %s", t->path, strerror(errno));
		return TARGET_SYSERR;
	}
	uint64_t size = 0;
	if (ioctl(t->fd, BLKGETSIZE64, &size) != 0) {
		snprintf(msg, msz, "%s: cannot read the device size: %s", t->path, strerror(errno));
		return TARGET_SYSERR;
	}
	if (size < need)
		return say(TARGET_REFUSED, msg, msz, "%s is too small (%llu bytes, the partition needs %llu)",
			   t->path, (unsigned long long)size, (unsigned long long)need);
	t->kind = TARGET_DEVICE;
	return TARGET_OK;
}

static int open_regular(struct target *t, uint64_t need, const img_image *im, int force,
			const struct stat *st, char *msg, size_t msz)
{
	char real[PATH_MAX], loop[64];
	const char *image = im ? img_get_info(im)->path : "the saved table";
	int exists = st != NULL;
	if (exists && im && img_reads_file(im, st->st_dev, st->st_ino))
		return say(TARGET_REFUSED, msg, msz,
			   "%s is the image being restored (or a piece of it); refusing to overwrite it",
			   t->path);
	if (exists) {
		if (!force)
			return say(TARGET_REFUSED, msg, msz, "%s already exists; use --force to overwrite it", t->path);
		if (realpath(t->path, real) && file_backs_loop(real, loop, sizeof loop))
			return say(TARGET_REFUSED, msg, msz, "%s is attached to %s; refusing to overwrite it", t->path,
				      loop);
		if (realpath(t->path, real) && is_swap(real))
			return say(TARGET_REFUSED, msg, msz, "%s is an active swap file; refusing to overwrite it",
				   t->path);
	}
	t->fd = open(t->path, O_WRONLY | O_CLOEXEC | (exists ? O_TRUNC : O_CREAT | O_EXCL), 0644);
	if (t->fd < 0) {
		snprintf(msg, msz, "%s: cannot create: %s", t->path, strerror(errno));
		return TARGET_SYSERR;
	}
	t->created = !exists;
	if (need > INT64_MAX || ftruncate(t->fd, (off_t)need) != 0) {
		int e = need > INT64_MAX ? EFBIG : errno;
		snprintf(msg, msz, "%s: cannot make a file of %llu bytes, the partition size %s gives: %s",
			 t->path, (unsigned long long)need, image, strerror(e));
		if (t->created) {  /* leave nothing behind */
			close(t->fd);
			t->fd = -1;
			unlink(t->path);
		}
		return TARGET_SYSERR;
	}
	t->kind = TARGET_FILE;
	return TARGET_OK;
}

int target_open(struct target *t, const char *path, uint64_t need, const img_image *im, int force,
		char *msg, size_t msz)
{
	memset(t, 0, sizeof *t);
	t->fd = -1;
	t->path = path;
	if (strcmp(path, "-") == 0) {
		if (isatty(STDOUT_FILENO))
			return say(TARGET_REFUSED, msg, msz, "refusing to write a partition to a terminal");
		t->fd = STDOUT_FILENO;
		t->kind = TARGET_STDOUT;
		t->path = "(stdout)";
		return TARGET_OK;
	}
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT) {
			snprintf(msg, msz, "%s: cannot stat: %s", path, strerror(errno));
			return TARGET_SYSERR;
		}
		return open_regular(t, need, im, force, NULL, msg, msz);
	}
	if (S_ISBLK(st.st_mode))
		return open_block_device(t, need, im, msg, msz);
	if (S_ISREG(st.st_mode))
		return open_regular(t, need, im, force, &st, msg, msz);
	return say(TARGET_REFUSED, msg, msz, "%s is neither a regular file nor a block device", path);
}

int target_write_at(struct target *t, const void *buf, size_t len, uint64_t off, char *msg,
		    size_t msz)
{
	struct iovec one = { (void *)buf, len };
	return len ? target_writev_at(t, &one, 1, off, msg, msz) : TARGET_OK;
}

/* Start the kernel's writeback every so many bytes, so the data goes to the
 * disk while the restore goes on and the final fsync finds little left. */
#define WRITEBACK_EVERY ((uint64_t)32 << 20)

static void start_writeback(struct target *t, size_t written)
{
	if (t->kind == TARGET_STDOUT)
		return;
	t->unflushed += written;
	if (t->unflushed < WRITEBACK_EVERY)
		return;
	t->unflushed = 0;
	sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);  /* a hint: errors show at fsync */
}

/* Bytes given to one write call at most. The kernel sizes the page-cache
 * folios of a write by the write call (an aligned 1 MiB write: one 1 MiB
 * folio), and on the bench machine (a VM whose free memory is handed back to
 * the hypervisor: free page reporting) large folios come from reported memory
 * that must be faulted back in: a 1 GiB page-cache write took 1.5-1.9 s with
 * 1 MiB writes a few seconds after memory was freed, against 0.15-0.45 s
 * with 64-512 KiB writes in either state (dd); 2-4 MiB writes were slower
 * still. imgbk restore of the partimage bench image with 1 MiB writes used
 * 0.53 s CPU in that state, 0.36 s with 256 KiB (cp writes 64 KiB pieces and
 * never pays it). test/bench/partimage.sh's header has the measurements. */
#define WRITE_CALL_MAX ((size_t)256 << 10)

/* Write the first buffers of @iov, at most WRITE_CALL_MAX bytes. */
static ssize_t write_some(struct target *t, struct iovec *iov, int cnt, uint64_t off)
{
	int k = 0;
	size_t sum = 0, whole = iov[0].iov_len;
	while (k < cnt && iov[k].iov_len <= WRITE_CALL_MAX - sum)
		sum += iov[k++].iov_len;
	if (k == 0) {  /* one big buffer: its first WRITE_CALL_MAX bytes */
		iov[0].iov_len = WRITE_CALL_MAX;
		k = 1;
	}
	ssize_t n = t->kind == TARGET_STDOUT ? writev(t->fd, iov, k) : pwritev(t->fd, iov, k, (off_t)off);
	iov[0].iov_len = whole;
	return n;
}

int target_writev_at(struct target *t, struct iovec *iov, int cnt, uint64_t off, char *msg,
		     size_t msz)
{
	while (cnt > 0) {
		ssize_t n = write_some(t, iov, cnt, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(msg, msz, "%s: write error at byte %llu: %s", t->path,
				 (unsigned long long)off, n < 0 ? strerror(errno) : "no progress");
			return TARGET_SYSERR;
		}
		off += (uint64_t)n;
		start_writeback(t, (size_t)n);
		while (cnt > 0 && (size_t)n >= iov->iov_len) {  /* drop what was written */
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return TARGET_OK;
}

int target_finish(struct target *t, char *msg, size_t msz)
{
	int rc = TARGET_OK;
	if (t->kind != TARGET_STDOUT && fsync(t->fd) != 0) {
		snprintf(msg, msz, "%s: fsync failed: %s", t->path, strerror(errno));
		rc = TARGET_SYSERR;
	}
	if (t->kind != TARGET_STDOUT && close(t->fd) != 0 && rc == TARGET_OK) {
		snprintf(msg, msz, "%s: close failed: %s", t->path, strerror(errno));
		rc = TARGET_SYSERR;
	}
	t->fd = -1;
	return rc;
}

void target_abort(struct target *t)
{
	if (t->fd >= 0 && t->kind != TARGET_STDOUT)
		close(t->fd);
	t->fd = -1;
}

/*
 * applets/czrestore.c - `imgbk restore DIR TARGET`: restore a whole disk
 * saved in a Clonezilla image directory to a block device or a file, the
 * way Clonezilla's restoredisk leaves it: the partition table (MBR and its
 * EBR chain, or GPT with its backup at the target's own end), the hidden
 * data after the MBR, then every partition's used blocks; fsync. Swap
 * partitions are not recreated (the summary gives the mkswap command). With
 * --dry-run it prints the plan and writes nothing.
 *
 * Refuses, before writing anything: a target smaller than the end of the
 * last partition (and a GPT's backup), a device whose logical sector size
 * is not the saved disk's, a mounted or busy device or one with a mounted
 * partition (target.c), one of the directory's own files, a partition whose
 * image is missing or cannot be opened.
 *
 * LVM: a physical volume's range is not written; the commands that rebuild
 * it (pvcreate --restorefile, vgcfgrestore) are printed, and
 * `imgbk restore --lvm DIR [FOLDER]` then writes every saved logical volume
 * to /dev/VG/LV, or to FOLDER/VG-LV files.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "applet.h"
#include "czdir.h"
#include "target.h"

#define BATCH 256

struct disk_restore {
	img_czdir *cz;
	size_t disk;
	const img_cz_disk *d;
	img_image **ims;          /* per partition index; the disk's data partitions */
	uint64_t sectors;         /* of the target */
	uint64_t used;            /* bytes of used blocks to write */
	struct target t;
	char msg[700];
};

/* DIR (one saved disk) or DIR/sda. @return 0 with r->cz and r->disk, 1 when
 * `arg` names no disk of a Clonezilla directory, or an exit code + 1. */
static int pick_disk(const char *arg, struct disk_restore *r)
{
	char dir[4096];
	const char *name = NULL;
	snprintf(dir, sizeof dir, "%s", arg);
	if (!cz_arg_is_dir(arg)) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return 1;
		*slash = 0;
		name = slash + 1;
		if (!img_czdir_probe(dir))
			return 1;
	}
	img_err err;
	int rc = img_czdir_open(dir, &r->cz, &err);
	if (rc != IMG_OK) {
		warnx_("%s", err.msg);
		return img_exit_code(rc) + 1;
	}
	size_t whole = 0;
	for (size_t i = 0; i < img_czdir_disk_count(r->cz); i++) {
		const img_cz_disk *d = img_czdir_disk(r->cz, i);
		if (name ? !strcmp(d->name, name) : d->whole_disk) {
			r->disk = i;
			whole++;
		}
	}
	if (name && whole == 0) {
		img_czdir_close(r->cz);
		return 1;  /* DIR/sda2: a partition, restored the single-image way */
	}
	if (whole != 1) {
		warnx_("restore: %s: %s", dir, whole ? "several disks were saved: name one as DIR/sda"
						   : "no disk was saved whole (no 'disk' file): restore partitions as DIR/sda1");
		img_czdir_close(r->cz);
		return IMG_EXIT_USAGE + 1;
	}
	r->d = img_czdir_disk(r->cz, r->disk);
	return 0;
}

/* Bytes a restore writes: the used blocks, or every byte of a raw image
 * (whose size a compressed one learns only at its end). */
static uint64_t used_bytes(const img_cz_part *p, uint32_t ss, const img_image *im)
{
	const img_info *in = img_get_info(im);
	if (p->raw && in->device_size == 0)
		return p->size * ss;
	return in->used_blocks * in->block_size;
}

/* Open every image of the disk's data partitions; refuse what cannot be restored. */
static int open_images(struct disk_restore *r, const img_options *opt)
{
	size_t n = img_czdir_part_count(r->cz);
	r->ims = calloc(n ? n : 1, sizeof *r->ims);
	if (!r->ims)
		return IMG_EXIT_SYSTEM;
	for (size_t i = 0; i < n; i++) {
		const img_cz_part *p = img_czdir_part(r->cz, i);
		if (p->disk != (int)r->disk || p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED)
			continue;
		if (p->kind == IMG_CZ_LVM_PV)
			continue;  /* its volumes are saved apart: see lvm_steps */
		img_err err;
		int rc = img_czdir_open_image(r->cz, i, opt, NULL, &r->ims[i], &err);
		if (rc != IMG_OK) {
			warnx_("%s; nothing written", err.msg);
			return img_exit_code(rc);
		}
		r->used += used_bytes(p, r->d->sector_size, r->ims[i]);
	}
	return 0;
}

static uint64_t needed_sectors(const struct disk_restore *r)
{
	uint64_t end = 0;
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++) {
		const img_cz_part *p = img_czdir_part(r->cz, i);
		if (p->disk == (int)r->disk && p->start + p->size > end)
			end = p->start + p->size;
	}
	/* a GPT's backup: its entries and header */
	uint64_t ss = r->d->sector_size, entries = ((uint64_t)r->d->table_length * 128 + ss - 1) / ss;
	return end + (r->d->label == IMG_CZ_LABEL_GPT ? 1 + entries : 0);
}

/* The target's size in sectors: a device's own, else the saved disk's. A
 * device whose logical sector size is not the saved disk's is refused. */
static int target_sectors(const char *path, const struct disk_restore *r, uint64_t *sectors)
{
	struct stat st;
	*sectors = r->d->sectors;
	if (stat(path, &st) != 0 || !S_ISBLK(st.st_mode))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t bytes = 0;
	int ss = 0;
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &bytes) != 0 || ioctl(fd, BLKSSZGET, &ss) != 0) {
		warnx_("restore: %s: cannot read the device size: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return IMG_EXIT_SYSTEM;
	}
	close(fd);
	if ((uint32_t)ss != r->d->sector_size) {
		warnx_("restore: %s has %d-byte sectors, the saved disk %s had %u-byte sectors: its partition "
		       "table would not fit; nothing written", path, ss, r->d->name, r->d->sector_size);
		return IMG_EXIT_USAGE;
	}
	*sectors = bytes / (uint32_t)ss;
	return 0;
}

static void print_plan(const struct disk_restore *r, const img_cz_vdisk *vd, const char *target)
{
	char a[32], b[32];
	uint32_t ss = r->d->sector_size;
	img_fmt_human(a, sizeof a, r->sectors * ss);
	img_fmt_human(b, sizeof b, r->used);
	char unit[32] = "";
	if (ss != 512)
		snprintf(unit, sizeof unit, " of %u bytes", ss);
	printf("restore disk %s of %s to %s (%s, %llu sectors%s): %s of used blocks\n", r->d->name,
	       img_czdir_path(r->cz), target, a, (unsigned long long)r->sectors, unit, b);
	uint64_t off;
	const uint8_t *data;
	size_t len;
	for (size_t i = 0; img_cz_vdisk_table(vd, i, &off, &data, &len); i++)
		printf("  table     sectors %llu-%llu (%zu bytes)\n", (unsigned long long)(off / ss),
		       (unsigned long long)((off + len - 1) / ss), len);
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++) {
		const img_cz_part *p = img_czdir_part(r->cz, i);
		if (p->disk != (int)r->disk)
			continue;
		if (r->ims[i]) {
			img_fmt_human(b, sizeof b, used_bytes(p, ss, r->ims[i]));
			printf("  %-9s sectors %llu-%llu from %s (%s used)\n", p->name, (unsigned long long)p->start,
			       (unsigned long long)(p->start + p->size - 1), p->image, b);
		} else if (p->kind == IMG_CZ_SWAP) {
			printf("  %-9s swap, not recreated (mkswap -U %s -L '%s')\n", p->name,
			       p->swap_uuid[0] ? p->swap_uuid : "UUID", p->swap_label);
		} else if (p->kind == IMG_CZ_LVM_PV) {
			printf("  %-9s sectors %llu-%llu: LVM physical volume%s%s, not written (its volumes: "
			       "pvcreate, vgcfgrestore, then imgbk restore --lvm)\n", p->name,
			       (unsigned long long)p->start, (unsigned long long)(p->start + p->size - 1),
			       p->vg[0] ? " of volume group " : "", p->vg);
		}
	}
	fflush(stdout);
}

static int write_tables(struct disk_restore *r, const img_cz_vdisk *vd)
{
	uint64_t off;
	const uint8_t *data;
	size_t len;
	for (size_t i = 0; img_cz_vdisk_table(vd, i, &off, &data, &len); i++)
		if (target_write_at(&r->t, data, len, off, r->msg, sizeof r->msg) != TARGET_OK)
			return IMG_EXIT_SYSTEM;
	return 0;
}

/* Partitions written at once: one per core, at most this many. */
#define RESTORE_MAX_THREADS 4

/* The partitions of a disk restore, shared by the threads that write them. */
struct part_pool {
	struct disk_restore *r;
	size_t next;              /* next partition index to take */
	int code;                 /* the first failure's exit code (its message in r->msg) */
	uint64_t done;            /* bytes written, for the progress bar */
	progress pg;
	pthread_mutex_t lock;     /* next, code, done, pg, r->msg */
};

static void pool_fail(struct part_pool *pp, int code, const char *msg)
{
	pthread_mutex_lock(&pp->lock);
	if (!pp->code) {
		pp->code = code;
		snprintf(pp->r->msg, sizeof pp->r->msg, "%s", msg);
	}
	pthread_mutex_unlock(&pp->lock);
}

/* @return 1 while no partition has failed. */
static int pool_add(struct part_pool *pp, uint64_t bytes)
{
	pthread_mutex_lock(&pp->lock);
	pp->done += bytes;
	progress_update(&pp->pg, pp->done);
	int ok = !pp->code;
	pthread_mutex_unlock(&pp->lock);
	return ok;
}

/* Every used block of one partition at its place, through `t` (a copy of
 * the restore's target: the same fd, its own writeback count). */
static void write_partition(struct part_pool *pp, struct target *t, const img_cz_part *p, img_image *im)
{
	img_run runs[BATCH];
	struct iovec iov[BATCH];
	char msg[700];
	size_t n;
	int rc;
	uint64_t ss = pp->r->d->sector_size, base = p->start * ss;
	while ((rc = img_next_runs(im, runs, BATCH, &n)) == IMG_OK) {
		uint64_t bytes = 0;
		for (size_t i = 0; i < n;) {
			int cnt = 0;
			uint64_t start = runs[i].offset, end = start;
			while (i < n && runs[i].offset == end && cnt < BATCH) {
				iov[cnt].iov_base = (void *)runs[i].data;
				iov[cnt++].iov_len = runs[i].len;
				end += runs[i++].len;
			}
			if (end > p->size * ss) {
				snprintf(msg, sizeof msg, "%.400s: the image holds more than its partition (%llu bytes)",
					 p->image, (unsigned long long)(p->size * ss));
				pool_fail(pp, IMG_EXIT_DAMAGED, msg);
				return;
			}
			if (target_writev_at(t, iov, cnt, base + start, msg, sizeof msg) != TARGET_OK) {
				pool_fail(pp, IMG_EXIT_SYSTEM, msg);
				return;
			}
			bytes += end - start;
		}
		if (!pool_add(pp, bytes))
			return;  /* another partition failed: stop */
	}
	if (rc != IMG_EOF)
		pool_fail(pp, img_exit_code(rc), img_error(im)->msg);
}

static void *partition_worker(void *arg)
{
	struct part_pool *pp = arg;
	struct disk_restore *r = pp->r;
	struct target t = r->t;
	t.unflushed = 0;
	for (;;) {
		pthread_mutex_lock(&pp->lock);
		while (pp->next < img_czdir_part_count(r->cz) && !r->ims[pp->next])
			pp->next++;
		size_t i = pp->next++;
		int stop = pp->code || i >= img_czdir_part_count(r->cz);
		pthread_mutex_unlock(&pp->lock);
		if (stop)
			return NULL;
		write_partition(pp, &t, img_czdir_part(r->cz, i), r->ims[i]);
	}
}

/* The table, then the partitions, several at once when the machine has the
 * cores (each partition's image decoded and written by its own thread). */
static int write_disk(struct disk_restore *r, const img_cz_vdisk *vd, int quiet)
{
	int code = write_tables(r, vd);
	if (code)
		return code;
	struct part_pool pp = { .r = r };
	pthread_mutex_init(&pp.lock, NULL);
	progress_start(&pp.pg, "restore", r->used, quiet);
	size_t parts = 0;
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++)
		parts += r->ims[i] != NULL;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t threads = cores > 1 ? (size_t)cores : 1;
	if (threads > RESTORE_MAX_THREADS)
		threads = RESTORE_MAX_THREADS;
	if (threads > parts)
		threads = parts ? parts : 1;
	pthread_t tid[RESTORE_MAX_THREADS];
	size_t started = 0;
	for (size_t k = 1; k < threads; k++)
		if (pthread_create(&tid[started], NULL, partition_worker, &pp) == 0)
			started++;
	partition_worker(&pp);
	for (size_t k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
	progress_end(&pp.pg);
	pthread_mutex_destroy(&pp.lock);
	return pp.code;
}

/* None of the images may be read from the target itself. */
static int target_is_source(const struct disk_restore *r)
{
	struct stat st;
	if (fstat(r->t.fd, &st) != 0)
		return 0;
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++)
		if (r->ims[i] && (S_ISBLK(st.st_mode) ? img_reads_file(r->ims[i], st.st_rdev, 0)
						      : img_reads_file(r->ims[i], st.st_dev, st.st_ino)))
			return 1;
	return 0;
}

static img_image *any_image(const struct disk_restore *r)
{
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++)
		if (r->ims[i])
			return r->ims[i];
	return NULL;
}

static int open_target(struct disk_restore *r, const char *target, int force)
{
	img_image *im = any_image(r);
	struct stat st;
	int dev = stat(target, &st) == 0 && S_ISBLK(st.st_mode);
	int rc = target_open(&r->t, target, dev ? 0 : r->sectors * r->d->sector_size, im, force, r->msg,
			     sizeof r->msg);
	if (rc == TARGET_OK && target_is_source(r)) {
		snprintf(r->msg, sizeof r->msg, "%s holds an image being restored; refusing to overwrite it", target);
		rc = TARGET_REFUSED;
	}
	if (rc != TARGET_OK) {
		warnx_("%s", r->msg);
		return rc == TARGET_REFUSED ? IMG_EXIT_USAGE : IMG_EXIT_SYSTEM;
	}
	return 0;
}

/* The name of partition `number` of a device (/dev/sdb -> /dev/sdb2, /dev/nvme0n1 -> /dev/nvme0n1p2). */
static void part_device(char *buf, size_t n, const char *dev, unsigned number)
{
	size_t len = strlen(dev);
	int digit = len > 0 && dev[len - 1] >= '0' && dev[len - 1] <= '9';
	snprintf(buf, n, "%s%s%u", dev, digit ? "p" : "", number);
}

/* What the user runs for each LVM physical volume the restore left out. */
static void lvm_steps(const struct disk_restore *r, const char *target)
{
	struct stat st;
	int dev = stat(target, &st) == 0 && S_ISBLK(st.st_mode);
	const char *dir = img_czdir_path(r->cz);
	uint64_t ss = r->d->sector_size;
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++) {
		const img_cz_part *p = img_czdir_part(r->cz, i);
		if (p->disk != (int)r->disk || p->kind != IMG_CZ_LVM_PV)
			continue;
		char pv[IMG_CZ_PATH_MAX + 96];
		if (dev)
			part_device(pv, sizeof pv, target, p->number);
		else
			snprintf(pv, sizeof pv, "$(losetup -f --show -o %llu --sizelimit %llu %s)",
				 (unsigned long long)(p->start * ss), (unsigned long long)(p->size * ss), target);
		const char *vg = p->vg[0] ? p->vg : "VG";
		fprintf(stderr, "%s: %s is an LVM physical volume (volume group %s): not written. Its logical volumes "
			"were saved as images; to restore them run:\n"
			"  pvcreate -ff --yes --uuid %s --restorefile %s/lvm_%s.conf %s\n"
			"  vgcfgrestore -f %s/lvm_%s.conf %s\n"
			"  vgchange -ay %s\n"
			"  imgbk restore --lvm %s\n",
			prog_name, p->name, vg, p->pv_uuid[0] ? p->pv_uuid : "PV-UUID", dir, vg, pv, dir, vg, vg, vg,
			dir);
	}
}

static void summary(const struct disk_restore *r, const char *target)
{
	char b[32];
	img_fmt_human(b, sizeof b, r->used);
	fprintf(stderr, "%s: restored disk %s (%s table, %s of used blocks) to %s\n", prog_name, r->d->name,
		r->d->label == IMG_CZ_LABEL_GPT ? "GPT" : "MBR", b, target);
	for (size_t i = 0; i < img_czdir_part_count(r->cz); i++) {
		const img_cz_part *p = img_czdir_part(r->cz, i);
		if (p->disk == (int)r->disk && p->kind == IMG_CZ_SWAP)
			fprintf(stderr, "%s: swap partition %s not recreated: mkswap -U %s -L '%s' on its partition\n",
				prog_name, p->name, p->swap_uuid[0] ? p->swap_uuid : "UUID", p->swap_label);
	}
}

static int run(struct disk_restore *r, const char *target, const img_options *opt, int force,
	       int dry_run, int quiet)
{
	int code = open_images(r, opt);
	if (!code)
		code = target_sectors(target, r, &r->sectors);
	if (code)
		return code;
	uint64_t need = needed_sectors(r);
	if (r->sectors < need) {
		warnx_("restore: %s is too small: %llu sectors, the partitions of %s need %llu; nothing written",
		       target, (unsigned long long)r->sectors, r->d->name, (unsigned long long)need);
		return IMG_EXIT_USAGE;
	}
	img_cz_vdisk *vd;
	img_err err;
	int rc = img_cz_vdisk_open_sized(r->cz, r->disk, r->sectors, r->ims, NULL, &vd, &err);
	if (rc != IMG_OK) {
		warnx_("%s; nothing written", err.msg);
		return img_exit_code(rc);
	}
	if (dry_run || !quiet)
		print_plan(r, vd, target);
	if (!dry_run && !(code = open_target(r, target, force))) {
		code = write_disk(r, vd, quiet);
		if (code)
			warnx_("%s", r->msg);
		if (target_finish(&r->t, r->msg, sizeof r->msg) != TARGET_OK) {
			warnx_("%s", r->msg);
			code = code ? code : IMG_EXIT_SYSTEM;
		}
		target_abort(&r->t);
		if (!code && !quiet)
			summary(r, target);
		if (!code)
			lvm_steps(r, target);
	}
	img_cz_vdisk_close(vd);
	return code;
}

int cz_restore(const char *arg, const char *target, const img_options *opt, int force, int dry_run,
	       int quiet, int *handled)
{
	struct disk_restore r;
	memset(&r, 0, sizeof r);
	r.t.fd = -1;
	int pick = pick_disk(arg, &r);
	*handled = pick != 1;
	if (pick)
		return pick > 1 ? pick - 1 : 0;
	int code = run(&r, target, opt, force, dry_run, quiet);
	for (size_t i = 0; r.ims && i < img_czdir_part_count(r.cz); i++)
		img_close(r.ims[i]);
	free(r.ims);
	img_czdir_close(r.cz);
	return code;
}

/* ---- restore --lvm ---------------------------------------------------------------- */

/* Where logical volume p goes: FOLDER/VG-LV, or /dev/VG/LV. */
static void lv_target(const img_cz_part *p, const char *folder, char *buf, size_t n)
{
	if (folder)
		snprintf(buf, n, "%s/%s", folder, p->name);
	else
		snprintf(buf, n, "/dev/%s/%s", p->vg, p->lv);
}

/* Every volume has an image and, without a folder, an existing block device
 * to go to. @return 0, or the exit code after saying what is wrong. */
static int check_lv_targets(const img_czdir *cz, const char *folder, size_t *count)
{
	*count = 0;
	for (size_t i = 0; i < img_czdir_part_count(cz); i++) {
		const img_cz_part *p = img_czdir_part(cz, i);
		if (p->kind != IMG_CZ_LV)
			continue;
		(*count)++;
		if (!p->image[0]) {
			warnx_("restore --lvm: %s: no image file for the logical volume %s; nothing written",
			       img_czdir_path(cz), p->name);
			return IMG_EXIT_DAMAGED;
		}
		char t[IMG_CZ_PATH_MAX + 160];
		struct stat st;
		lv_target(p, folder, t, sizeof t);
		if (!folder && (!p->vg[0] || stat(t, &st) != 0 || !S_ISBLK(st.st_mode))) {
			warnx_("restore --lvm: %s is not there (no such block device): create the volume group first "
			       "(pvcreate --restorefile, vgcfgrestore -f %s/lvm_%s.conf %s, vgchange -ay %s), "
			       "or name a FOLDER to restore the volumes into files; nothing written", t,
			       img_czdir_path(cz), p->vg, p->vg, p->vg);
			return IMG_EXIT_USAGE;
		}
	}
	if (*count == 0) {
		warnx_("restore --lvm: %s: no LVM logical volume was saved (no lvm_logv.list)", img_czdir_path(cz));
		return IMG_EXIT_USAGE;
	}
	return 0;
}

int cz_restore_lvs(const char *dir, const char *folder, const img_options *opt, int force, int quiet,
		   cz_restore_one_fn restore_one)
{
	img_czdir *cz;
	img_err err;
	if (!img_czdir_probe(dir)) {
		warnx_("restore --lvm: %s: not a Clonezilla image directory", dir);
		return IMG_EXIT_USAGE;
	}
	int rc = img_czdir_open(dir, &cz, &err);
	if (rc != IMG_OK) {
		warnx_("%s", err.msg);
		return img_exit_code(rc);
	}
	size_t count;
	int code = check_lv_targets(cz, folder, &count);
	for (size_t i = 0; i < img_czdir_part_count(cz) && !code; i++) {
		const img_cz_part *p = img_czdir_part(cz, i);
		if (p->kind != IMG_CZ_LV)
			continue;
		char t[IMG_CZ_PATH_MAX + 160];
		lv_target(p, folder, t, sizeof t);
		code = restore_one(p->image, t, opt, force, quiet);
	}
	if (!code && !quiet)
		fprintf(stderr, "%s: restored %zu logical volume%s of %s\n", prog_name, count, count == 1 ? "" : "s",
			img_czdir_path(cz));
	img_czdir_close(cz);
	return code;
}

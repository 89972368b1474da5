/*
 * nbd/plugin.c - the nbdkit plugin `imgbk` (nbdkit-imgbk-plugin.so): a
 * read-only NBD export of the partition inside a backup image, or of a
 * saved disk or partition of a Clonezilla image directory, read at random
 * through libimgbk (img_read_at, img_cz_vdisk_read_at). The second front
 * end next to fuse/; the only file that includes nbdkit's header.
 *
 *   nbdkit imgbk [file=]IMAGE [raw=true] [verify=false] [parallel=true]
 *   nbdkit imgbk dir=DIR [disk=sda | part=sda2] [verify=false] [parallel=true]
 *
 * Everything is opened (and the index loaded, or built and saved) in
 * .get_ready, before nbdkit forks, so a missing or damaged image stops the
 * server at start with the library's one-line message. Requests then only
 * call the thread-safe read functions, which start no threads: there is
 * nothing for .after_fork to start (the read-ahead thread img_open may
 * start belongs to the sequential walk, which is never used here; io/thread.c
 * makes it harmless across the fork). Thread model: parallel at most (the
 * reads are thread-safe), serialize_requests unless parallel=true (below).
 *
 * Threads: by default the plugin asks for the thread model
 * serialize_requests: nbdkit answers each connection on one thread, one
 * request at a time, and connections in parallel (nbdcopy opens one per
 * CPU, up to 4, except into a pipe or /dev/null: one; qemu-img several).
 * Measured (test/bench/nbd.sh; 2 cores, image in the page cache):
 * nbdkit's 16 worker threads per connection made a sequential nbdcopy use
 * twice the server CPU of one thread per connection (1.9 vs 0.9-1.0 s for
 * 1.1 GB: the workers hand each request over, and the requests of one 1 MiB
 * checksum group, answered by several workers at once, wait for the one that
 * checks it), and the plugin reached 0.71x of nbdkit file; one thread per
 * connection: >= 0.95x. parallel=true gives nbdkit's workers back (-t N),
 * for images on a slow disk that gains from many reads in flight; then
 * nbdkit 1.32 (Debian 12) may abort (assertion in raw_send_socket, sock >=
 * 0) when a client sends NBD_CMD_DISC while workers of that connection still
 * answer: the disconnect closes the socket under them, as nbdcopy does after
 * an EIO. That is nbdkit's server, not the plugin (reproduced with nbdkit
 * file and its error filter); serialized requests never meet it.
 * A checksum group is read and checked once for all threads: the library
 * keeps checked groups in shared slots, so the pieces of one group answered
 * by several connections or workers are copied from there, not read again.
 * Where a sequential read's time goes (test/bench/nbd.sh; nbdcopy to
 * /dev/null copies synchronously, one 256 KiB request at a time on one
 * connection, so each request's round trip adds up): the image is read once
 * (the server's rchar = the image's size: 1,095 preads of a 1 MiB group and
 * its checksum for 1.15 GB); the request that first touches a group takes
 * ~70 us (pread, CRC, copy of its quarter), the three after it ~8 us (a copy
 * from the slot) against ~12-20 us for nbdkit file's pread: the plugin's own
 * time is ~0.15 s of the run, about what verify=false spends; the rest is
 * nbdkit's send and the client. Per 1 MiB group: pread ~140 us, CRC ~50 us
 * (ISA-L), copy ~45 us (measured under load). System calls of one run
 * (strace -c -f): the plugin 18,439 sendto, 6,149 read, 1,095 pread64;
 * nbdkit file 18,437 sendto, 6,150 read, 6,144 pread64 and 12,498 futex
 * (its 16 workers per connection hand the requests over).
 * Tried and dropped: a helper thread (started in .after_fork) checking the
 * next 2-4 MiB past a sequential reader while its requests were answered.
 * The request opening a group fell from ~70 to ~12-25 us, but the others
 * rose from ~8 to ~15-20 us (their bytes were read or copied by the other
 * CPU: not in this one's cache), so the plugin's total time stayed the same
 * (0.15-0.16 s), and the server used 0.1-0.2 s more CPU (a wakeup per group
 * or two; context switches cost much in this VM).
 * Tried and dropped: checking and copying the image's bytes through an mmap
 * of it (no pread copy). On the bench machine (a VM) the CRC and copy of the
 * 1.1 GB image took 1.0-1.1 s through the mapping against 0.3-0.4 s for
 * pread + CRC + copy, and nbdcopy took 1.3-1.7x as long: a page fault per
 * 16 pages, and most of the time in the CRC's loads from the mapping
 * (likely a page walk per 4 KiB page under the hypervisor).
 *
 * With dir= every opened partition and whole disk is an export named after
 * it ("sda", "sda2"; nbdinfo --list shows them); the default export (the
 * empty name) is disk=/part= when given, else the first saved disk.
 * A bad checksum group or an unreadable image fails that request with EIO,
 * logged with nbdkit_error (the first MAX_LOGGED_ERRORS), and the server
 * goes on. Writes are refused by nbdkit itself (can_write is false: EROFS).
 * Not here: how blocks are found (formats/), starting nbdkit (applets/serve.c).
 */
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#include <errno.h>
#include <nbdkit-plugin.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../imgbk.h"

/* Read errors logged before the log goes quiet (a client may retry a bad
 * range many times). */
#define MAX_LOGGED_ERRORS 100
/* Exports of one directory: every partition and disk it can hold. */
#define MAX_TARGETS 272
#define MAX_DISKS 16

typedef int (*read_fn)(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err);

/* One export: a partition or a whole disk. */
struct target {
	char name[IMG_CZ_NAME_MAX];
	char description[IMG_CZ_PATH_MAX + 128];
	uint64_t size;
	uint32_t block_size;
	read_fn read;
	void *ctx;
};

/* The plugin's state: nbdkit gives a plugin no handle before .open, so this
 * one static struct holds the parameters and what .get_ready opened. */
static struct {
	/* parameters */
	char *file, *dir;
	const char *disk, *part;
	int raw, verify, parallel;
	/* file= */
	img_image *im;
	/* dir= */
	img_czdir *cz;
	img_image **ims;
	img_err *why;
	size_t nparts;
	img_cz_vdisk *vd[MAX_DISKS];
	size_t nvd;
	/* the exports; targets[0] is the default one */
	struct target targets[MAX_TARGETS];
	size_t ntargets;
	atomic_uint errors;
} srv = { .verify = 1 };

/* ---- parameters ----------------------------------------------------------- */

static int is_directory(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int set_path(char **slot, const char *key, const char *value)
{
	if (*slot) {
		nbdkit_error("%s= given twice", key);
		return -1;
	}
	/* nbdkit changes to / when it forks: keep an absolute path */
	*slot = nbdkit_absolute_path(value);
	return *slot ? 0 : -1;
}

static int set_bool(int *slot, const char *key, const char *value)
{
	int v = nbdkit_parse_bool(value);
	if (v < 0)
		return -1;  /* nbdkit_parse_bool said why */
	*slot = v;
	return 0;
}

static int imgbk_config(const char *key, const char *value)
{
	if (strcmp(key, "file") == 0)
		/* `nbdkit imgbk DIR` (the magic key) names a directory too */
		return set_path(is_directory(value) ? &srv.dir : &srv.file,
				is_directory(value) ? "dir" : "file", value);
	if (strcmp(key, "dir") == 0)
		return set_path(&srv.dir, key, value);
	if (strcmp(key, "disk") == 0) {
		srv.disk = value;
		return 0;
	}
	if (strcmp(key, "part") == 0) {
		srv.part = value;
		return 0;
	}
	if (strcmp(key, "raw") == 0)
		return set_bool(&srv.raw, key, value);
	if (strcmp(key, "verify") == 0)
		return set_bool(&srv.verify, key, value);
	if (strcmp(key, "parallel") == 0)
		return set_bool(&srv.parallel, key, value);
	nbdkit_error("unknown parameter '%s' (the parameters are file, dir, disk, part, raw, verify, "
		     "parallel)", key);
	return -1;
}

static int imgbk_config_complete(void)
{
	if (!srv.file == !srv.dir) {
		nbdkit_error(srv.file ? "give file= or dir=, not both"
				      : "no image: give file=IMAGE or dir=DIR (a Clonezilla image directory)");
		return -1;
	}
	if ((srv.disk || srv.part) && !srv.dir) {
		nbdkit_error("disk= and part= choose from a Clonezilla image directory: they need dir=DIR");
		return -1;
	}
	if (srv.disk && srv.part) {
		nbdkit_error("give disk= or part=, not both");
		return -1;
	}
	if (srv.raw && srv.dir) {
		nbdkit_error("raw= applies to file= only (a directory names its raw images itself)");
		return -1;
	}
	return 0;
}

#define imgbk_config_help \
	"[file=]IMAGE      partition backup image (partclone, ntfsclone, partimage, raw;\n" \
	"                  plain, compressed or split: the first piece)\n" \
	"dir=DIR           Clonezilla image directory: its disks and partitions\n" \
	"disk=NAME         with dir=: the default export is this saved disk (sda)\n" \
	"part=NAME         with dir=: export this partition only (sda2)\n" \
	"raw=BOOL          with file=: the image is a raw partition (dd)\n" \
	"verify=BOOL       check data checksums on reads (default true)\n" \
	"parallel=BOOL     answer the requests of one connection on nbdkit's worker\n" \
	"                  threads (-t N) (default false: one at a time per connection,\n" \
	"                  connections in parallel; faster for an image in memory)"

/* ---- exports ----------------------------------------------------------------- */

static int read_part(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err)
{
	return img_read_at(ctx, off, buf, len, got, err);
}

static int read_disk(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err)
{
	return img_cz_vdisk_read_at(ctx, off, buf, len, got, err);
}

static struct target *add_target(const char *name, uint64_t size, uint32_t block_size, read_fn rd,
				 void *ctx)
{
	if (srv.ntargets >= MAX_TARGETS)
		return NULL;
	struct target *t = &srv.targets[srv.ntargets++];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->size = size;
	t->block_size = block_size;
	t->read = rd;
	t->ctx = ctx;
	return t;
}

static void describe_image(struct target *t, const char *what, const img_image *im)
{
	const img_info *in = img_get_info(im);
	snprintf(t->description, sizeof t->description, "%s%s%s (%s, %s image, %s)", what,
		 what[0] ? " " : "", in->path, in->fs, in->format, in->layers);
}

/* img_random_options from the parameters. */
static void random_options(img_random_options *ro)
{
	img_random_options_init(ro);
	ro->verify = srv.verify;
}

/* ---- file= -------------------------------------------------------------------- */

static int open_file(void)
{
	img_options opt;
	img_options_init(&opt);
	opt.raw = srv.raw;
	img_err err;
	if (img_open(srv.file, &opt, &srv.im, &err) != IMG_OK) {
		/* the library names the applets' option */
		nbdkit_error("%s%s", err.msg, strstr(err.msg, "--raw") ? " (here: raw=true)" : "");
		return -1;
	}
	img_random_options ro;
	random_options(&ro);
	int state = 0;
	if (img_random_open(srv.im, &ro, &state) != IMG_OK) {
		nbdkit_error("%s", img_error(srv.im)->msg);
		return -1;
	}
	if (state == 3)
		nbdkit_debug("%s: the index could not be saved (%s)", srv.file,
			     img_index_path(srv.im)[0] ? img_index_path(srv.im) : "no place");
	const img_info *in = img_get_info(srv.im);
	const char *slash = strrchr(srv.file, '/');
	struct target *t = add_target(slash ? slash + 1 : srv.file, in->device_size, in->block_size,
				      read_part, srv.im);
	describe_image(t, "", srv.im);
	return 0;
}

/* ---- dir= ---------------------------------------------------------------------- */

static int wanted_disk_index(size_t *out)
{
	for (size_t d = 0; d < img_czdir_disk_count(srv.cz); d++)
		if (strcmp(img_czdir_disk(srv.cz, d)->name, srv.disk) == 0) {
			*out = d;
			return 0;
		}
	nbdkit_error("%s: no saved disk '%s' in this Clonezilla image directory", srv.dir, srv.disk);
	return -1;
}

/* Does partition i belong to what is served? With disk= only that disk's
 * partitions (its whole-disk view needs them); with part= only that one. */
static int part_wanted(size_t i, long only_disk, long only_part)
{
	const img_cz_part *p = img_czdir_part(srv.cz, i);
	if (only_part >= 0)
		return (long)i == only_part;
	return only_disk < 0 || p->disk == only_disk;
}

/* Open partition i for random reads and add it as an export. A missing or
 * damaged image is logged and left out (its range of the disk reads as EIO).
 * @return 0, or -1 when it fails (why[i] says why). */
static int open_part(size_t i)
{
	const img_cz_part *p = img_czdir_part(srv.cz, i);
	if (p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED || p->kind == IMG_CZ_LVM_PV)
		return 0;
	img_options opt;
	img_options_init(&opt);
	img_random_options ro;
	random_options(&ro);
	img_image *im = NULL;
	if (img_czdir_open_image(srv.cz, i, &opt, &ro, &im, &srv.why[i]) != IMG_OK) {
		nbdkit_error("%s", srv.why[i].msg);
		return -1;
	}
	srv.ims[i] = im;
	const img_info *in = img_get_info(im);
	struct target *t = add_target(p->name, in->device_size, in->block_size, read_part, im);
	if (t)
		describe_image(t, "partition", im);
	return 0;
}

static int open_disk_view(size_t d)
{
	const img_cz_disk *disk = img_czdir_disk(srv.cz, d);
	img_cz_vdisk *vd;
	img_err err;
	if (srv.nvd >= MAX_DISKS) {
		nbdkit_error("%s: %s: more than %d disks: not served", srv.dir, disk->name, MAX_DISKS);
		return -1;
	}
	if (img_cz_vdisk_open(srv.cz, d, srv.ims, srv.why, &vd, &err) != IMG_OK) {
		nbdkit_error("%s", err.msg);
		return -1;
	}
	srv.vd[srv.nvd++] = vd;
	for (size_t k = 0; img_cz_vdisk_problem(vd, k); k++)
		nbdkit_error("%s", img_cz_vdisk_problem(vd, k));
	struct target *t = add_target(disk->name, img_cz_vdisk_size(vd), 512, read_disk, vd);
	if (t)
		snprintf(t->description, sizeof t->description, "disk %s of %s", disk->name, srv.dir);
	return 0;
}

/* Move the export called `name` to targets[0] (the default export). */
static int make_default(const char *name)
{
	for (size_t i = 0; i < srv.ntargets; i++)
		if (strcmp(srv.targets[i].name, name) == 0) {
			struct target t = srv.targets[i];
			memmove(&srv.targets[1], &srv.targets[0], i * sizeof t);
			srv.targets[0] = t;
			return 0;
		}
	return -1;
}

static int open_dir(void)
{
	img_err err;
	if (img_czdir_open(srv.dir, &srv.cz, &err) != IMG_OK) {
		nbdkit_error("%s", err.msg);
		return -1;
	}
	size_t disk = 0;
	long only_disk = -1, only_part = -1;
	if (srv.disk) {
		if (wanted_disk_index(&disk))
			return -1;
		only_disk = (long)disk;
	}
	if (srv.part && (only_part = img_czdir_find(srv.cz, srv.part)) < 0) {
		nbdkit_error("%s: no partition '%s' in this Clonezilla image directory", srv.dir, srv.part);
		return -1;
	}
	srv.nparts = img_czdir_part_count(srv.cz);
	srv.ims = calloc(srv.nparts ? srv.nparts : 1, sizeof *srv.ims);
	srv.why = calloc(srv.nparts ? srv.nparts : 1, sizeof *srv.why);
	if (!srv.ims || !srv.why) {
		nbdkit_error("out of memory");
		return -1;
	}
	for (size_t i = 0; i < srv.nparts; i++)
		if (part_wanted(i, only_disk, only_part) && open_part(i) != 0 && only_part >= 0)
			return -1;
	size_t nparts_served = srv.ntargets;
	for (size_t d = 0; d < img_czdir_disk_count(srv.cz) && only_part < 0; d++)
		if ((only_disk < 0 || (long)d == only_disk) && img_czdir_disk(srv.cz, d)->whole_disk &&
		    open_disk_view(d) != 0 && only_disk >= 0)
			return -1;
	if (srv.disk && make_default(srv.disk) != 0) {
		nbdkit_error("%s: disk %s was not saved whole (no whole-disk view)", srv.dir, srv.disk);
		return -1;
	}
	if (!srv.disk && !srv.part && srv.ntargets > nparts_served)
		make_default(srv.targets[nparts_served].name);  /* the first disk */
	if (srv.ntargets == 0) {
		nbdkit_error("%s: nothing can be served (no partition image could be opened)", srv.dir);
		return -1;
	}
	return 0;
}

/* The thread model after the parameters (see the top of the file). */
static int imgbk_thread_model(void)
{
	return srv.parallel ? NBDKIT_THREAD_MODEL_PARALLEL : NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

/* ---- server life ----------------------------------------------------------------- */

static int imgbk_get_ready(void)
{
	atomic_init(&srv.errors, 0);
	img_open_for_random();  /* served at random: the streams read the headers only */
	return srv.file ? open_file() : open_dir();
}

static void imgbk_unload(void)
{
	for (size_t i = 0; i < srv.nvd; i++)
		img_cz_vdisk_close(srv.vd[i]);
	for (size_t i = 0; srv.ims && i < srv.nparts; i++)
		img_close(srv.ims[i]);
	free(srv.ims);
	free(srv.why);
	img_czdir_close(srv.cz);
	img_close(srv.im);
	free(srv.file);
	free(srv.dir);
}

static int imgbk_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
	for (size_t i = 0; i < srv.ntargets; i++)
		if (nbdkit_add_export(exports, srv.targets[i].name, srv.targets[i].description) != 0)
			return -1;
	return 0;
}

static const char *imgbk_default_export(int readonly, int is_tls)
{
	return "";
}

/* The export for a client's name: "" is the default; with file= any name
 * reads the one image (nbd-client -N and qemu's nbd:// want some name). */
static void *imgbk_open(int readonly)
{
	const char *name = nbdkit_export_name();
	if (srv.file || !name || !name[0])
		return &srv.targets[0];
	for (size_t i = 0; i < srv.ntargets; i++)
		if (strcmp(srv.targets[i].name, name) == 0)
			return &srv.targets[i];
	nbdkit_error("%s: no export '%s' (nbdinfo -L lists the exports)", srv.dir, name);
	return NULL;
}

/* ---- requests ------------------------------------------------------------------------ */

static int64_t imgbk_get_size(void *handle)
{
	return (int64_t)((struct target *)handle)->size;
}

static const char *imgbk_export_description(void *handle)
{
	return ((struct target *)handle)->description;
}

/* Read-only: nbdkit refuses writes, trims and zeroing with EROFS. */
static int imgbk_can_write(void *handle)
{
	return 0;
}

/* NBD_CMD_CACHE would make the library decode and check a range only to
 * throw it away (it keeps no decoded blocks): not offered. */
static int imgbk_can_cache(void *handle)
{
	return NBDKIT_CACHE_NONE;
}

/* FUA is about writes reaching the disk: there are no writes. */
static int imgbk_can_fua(void *handle)
{
	return NBDKIT_FUA_NONE;
}

/* The bytes never change: every connection sees the same, so a client may
 * spread its requests over several (nbdcopy --connections, qemu). */
static int imgbk_can_multi_conn(void *handle)
{
	return 1;
}

static int imgbk_is_rotational(void *handle)
{
	return 0;
}

/* Any size and alignment reads; the filesystem's block is the natural unit. */
static int imgbk_block_size(void *handle, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
	uint32_t bs = ((struct target *)handle)->block_size;
	*minimum = 1;
	*preferred = bs >= 512 && bs <= (32u << 20) && !(bs & (bs - 1)) ? bs : 4096;
	*maximum = 0xffffffff;
	return 0;
}

static void log_read_error(const struct target *t, uint64_t off, uint32_t count, const img_err *e)
{
	unsigned n = atomic_fetch_add(&srv.errors, 1) + 1;
	if (n > MAX_LOGGED_ERRORS)
		return;
	nbdkit_error("%s: read of %u bytes at byte %llu failed (EIO): %s", t->name, count,
		     (unsigned long long)off, e->code != IMG_OK ? e->msg : "unknown error");
	if (n == MAX_LOGGED_ERRORS)
		nbdkit_error("further read errors are not logged");
}

static int imgbk_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	const struct target *t = handle;
	size_t got = 0;
	img_err e;
	memset(&e, 0, sizeof e);
	int rc = t->read(t->ctx, offset, buf, count, &got, &e);
	if (rc == IMG_OK && got == count)
		return 0;
	if (rc == IMG_OK) {  /* nbdkit keeps requests inside the size: not expected */
		e.code = IMG_E_IO;
		snprintf(e.msg, sizeof e.msg, "short read: %zu of %u bytes", got, count);
	}
	log_read_error(t, offset, count, &e);
	nbdkit_set_error(EIO);
	return -1;
}

static struct nbdkit_plugin plugin = {
	.name = "imgbk",
	.longname = "imgbk: partition backup images (partclone, ntfsclone, partimage, Clonezilla)",
	.version = IMGBK_VERSION,
	.description = "Read-only export of the partition in a backup image or of a Clonezilla disk",
	.magic_config_key = "file",
	.config = imgbk_config,
	.config_complete = imgbk_config_complete,
	.config_help = imgbk_config_help,
	.thread_model = imgbk_thread_model,
	.get_ready = imgbk_get_ready,
	.unload = imgbk_unload,
	.list_exports = imgbk_list_exports,
	.default_export = imgbk_default_export,
	.open = imgbk_open,
	.get_size = imgbk_get_size,
	.export_description = imgbk_export_description,
	.can_write = imgbk_can_write,
	.can_cache = imgbk_can_cache,
	.can_fua = imgbk_can_fua,
	.can_multi_conn = imgbk_can_multi_conn,
	.is_rotational = imgbk_is_rotational,
	.block_size = imgbk_block_size,
	.pread = imgbk_pread,
	.errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)

/*
 * fuse/mount.c - the FUSE3 high-level file system behind `imgbk mount`: a
 * read-only directory holding one regular file, the partition, whose bytes
 * come from img_read_at. Also the daemon start: fork, setsid, stdio to
 * /dev/null, and a pipe plus a stat() through the mount so the parent only
 * reports success once the daemon really answers.
 *
 * The only file that includes the fuse headers. Not here: option parsing,
 * hints, the index (applets/mount.c), how blocks are found (formats/).
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"

/* Read errors logged before the log goes quiet (a bad group is retried by
 * the kernel's readahead, page by page). */
#define MAX_LOGGED_ERRORS 100
/* The I/O size stat reports: reads come in at most max_pages, 1 MiB with
 * libfuse 3. */
#define MAX_READ_BYTES (1u << 20)
/* The readahead window asked for (KiB). The kernel gives a FUSE mount
 * 128 KiB, which keeps one request in flight: 4 MiB keeps every worker
 * busy and halved the time of a sequential read of the bench image (0.7 s
 * -> 0.35 s plain, 1.16 s -> 0.8 s one-frame zstd; 8 MiB was slower). Set
 * through sysfs, so only a mount by root gets it. */
#define READAHEAD_KB 4096u
/* Threads serving requests at most (libfuse's default is 10). Each holds a
 * 1 MiB request buffer and the reply it reads into; reads are served from
 * decoded segments and the page cache, and a compressed image decodes
 * ahead in a thread of its own: 4 keep 2 cores busy. */
#define MAX_WORKERS 4
/* Attributes never change: the kernel may cache them this long (seconds). */
#define ATTR_TIMEOUT 86400.0

#define ROOT_INO 1
#define FIRST_FILE_INO 2

struct served_file {
	char name[256];             /* without '/' */
	uint64_t size;
	uint32_t block_size;
	struct timespec mtime;
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err);
	void *ctx;
};

struct fuse_image {
	struct fuse *fuse;
	struct served_file *files;
	size_t nfiles;
	char mountpoint[PATH_MAX];
	uid_t uid;
	gid_t gid;
	int single_thread;
	int direct_io;              /* FOPEN_DIRECT_IO on every open */
	int use_syslog;             /* the daemon logs to syslog: its stderr is /dev/null */
	atomic_uint errors;         /* read errors so far */
};

static struct fuse_image *self(void)
{
	return fuse_get_context()->private_data;
}

/* The served file named by `path` ("/NAME"), or NULL. */
static const struct served_file *file_at(const struct fuse_image *fi, const char *path, size_t *index)
{
	if (!path || path[0] != '/')
		return NULL;
	for (size_t i = 0; i < fi->nfiles; i++)
		if (strcmp(path + 1, fi->files[i].name) == 0) {
			if (index)
				*index = i;
			return &fi->files[i];
		}
	return NULL;
}

/* ---- logging ------------------------------------------------------------ */

static void log_line(struct fuse_image *fi, const char *line)
{
	if (fi->use_syslog)
		syslog(LOG_ERR, "%s", line);
	else
		fprintf(stderr, "imgbk: %s\n", line);
}

static void log_read_error(struct fuse_image *fi, const struct served_file *f, uint64_t off, size_t len,
			   const img_err *e)
{
	unsigned n = atomic_fetch_add(&fi->errors, 1) + 1;
	if (n > MAX_LOGGED_ERRORS)
		return;
	char line[PATH_MAX + 1024];
	snprintf(line, sizeof line, "%s/%s: read of %zu bytes at byte %llu failed (EIO): %s",
		 fi->mountpoint, f->name, len, (unsigned long long)off,
		 e->code != IMG_OK ? e->msg : "unknown error");
	log_line(fi, line);
	if (n == MAX_LOGGED_ERRORS)
		log_line(fi, "further read errors are not logged");
}

/* ---- operations ----------------------------------------------------------- */

static void fill_owner(const struct fuse_image *fi, struct stat *st, const struct timespec *t)
{
	st->st_atim = st->st_mtim = st->st_ctim = *t;
	st->st_uid = fi->uid;
	st->st_gid = fi->gid;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *ffi)
{
	struct fuse_image *fi = self();
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) {
		fill_owner(fi, st, &fi->files[0].mtime);
		st->st_ino = ROOT_INO;
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	size_t i;
	const struct served_file *f = file_at(fi, path, &i);
	if (!f)
		return -ENOENT;
	fill_owner(fi, st, &f->mtime);
	st->st_ino = (ino_t)(FIRST_FILE_INO + i);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)f->size;
	st->st_blksize = MAX_READ_BYTES;
	st->st_blocks = (blkcnt_t)((f->size + 511) / 512);
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *ffi, enum fuse_readdir_flags flags)
{
	struct fuse_image *fi = self();
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (size_t i = 0; i < fi->nfiles; i++)
		fill(buf, fi->files[i].name, NULL, 0, 0);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *ffi)
{
	struct fuse_image *fi = self();
	if (!file_at(fi, path, NULL))
		return strcmp(path, "/") == 0 ? -EISDIR : -ENOENT;
	if ((ffi->flags & O_ACCMODE) != O_RDONLY || (ffi->flags & O_TRUNC))
		return -EROFS;
	if (fi->direct_io)
		ffi->direct_io = 1;
	else
		ffi->keep_cache = 1;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *ffi)
{
	struct fuse_image *fi = self();
	const struct served_file *f = file_at(fi, path, NULL);
	if (!f)
		return -ENOENT;
	if (off < 0)
		return -EINVAL;
	if (size > INT_MAX)
		size = INT_MAX;
	size_t got = 0;
	img_err e;
	memset(&e, 0, sizeof e);
	int rc = f->read(f->ctx, (uint64_t)off, buf, size, &got, &e);
	if (rc != IMG_OK) {
		log_read_error(fi, f, (uint64_t)off, size, &e);
		return -EIO;
	}
	return (int)got;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *ffi)
{
	return -EROFS;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	struct fuse_image *fi = self();
	memset(sv, 0, sizeof *sv);
	sv->f_bsize = sv->f_frsize = fi->files[0].block_size ? fi->files[0].block_size : 4096;
	for (size_t i = 0; i < fi->nfiles; i++)
		sv->f_blocks += (fsblkcnt_t)((fi->files[i].size + sv->f_frsize - 1) / sv->f_frsize);
	sv->f_files = 1 + fi->nfiles;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY;
	return 0;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->kernel_cache = 1;  /* the image never changes under the mount */
	cfg->use_ino = 1;
	cfg->attr_timeout = ATTR_TIMEOUT;
	cfg->entry_timeout = ATTR_TIMEOUT;
	cfg->negative_timeout = ATTR_TIMEOUT;
	conn->max_read = 0;  /* no limit of our own: the kernel's (max_pages) */
	conn->max_readahead = READAHEAD_KB * 1024u;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations image_ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.statfs = op_statfs,
};

/* ---- mount ---------------------------------------------------------------- */

/* allow_other lets root loop-mount a file that a user's daemon serves; a
 * user may only ask for it when /etc/fuse.conf says user_allow_other. */
static int may_allow_other(void)
{
	if (geteuid() == 0)
		return 1;
	FILE *f = fopen("/etc/fuse.conf", "r");
	if (!f)
		return 0;
	char line[256];
	int yes = 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "user_allow_other", 16) == 0)
			yes = 1;
	fclose(f);
	return yes;
}

/* fsname=imgbk:NAME with the characters the option parser splits on removed. */
static void mount_options(const struct fuse_image *fi, char *out, size_t outsz)
{
	char fsname[200];
	size_t j = 0;
	const char *name = fi->files[0].name;
	for (size_t i = 0; name[i] && j + 1 < sizeof fsname; i++) {
		char c = name[i];
		fsname[j++] = (c == ',' || c == '\\' || c == ' ' || c == '\t') ? '_' : c;
	}
	fsname[j] = 0;
	snprintf(out, outsz, "ro,default_permissions,fsname=imgbk:%s,subtype=imgbk%s", fsname,
		 may_allow_other() ? ",allow_other" : "");
}

static void source_mtime(const char *path, struct timespec *ts)
{
	struct stat st;
	if (path && stat(path, &st) == 0)
		*ts = st.st_mtim;
	else
		clock_gettime(CLOCK_REALTIME, ts);
}

static struct fuse_image *image_new(const struct fuse_file *files, size_t n,
				    const struct fuse_image_config *cfg)
{
	struct fuse_image *fi = calloc(1, sizeof *fi);
	if (!fi || !(fi->files = calloc(n, sizeof *fi->files))) {
		free(fi);
		return NULL;
	}
	fi->nfiles = n;
	for (size_t i = 0; i < n; i++) {
		struct served_file *f = &fi->files[i];
		snprintf(f->name, sizeof f->name, "%s", files[i].name);
		f->size = files[i].size;
		f->block_size = files[i].block_size;
		f->read = files[i].read;
		f->ctx = files[i].ctx;
		source_mtime(files[i].source, &f->mtime);
	}
	if (!realpath(cfg->mountpoint, fi->mountpoint))
		snprintf(fi->mountpoint, sizeof fi->mountpoint, "%s", cfg->mountpoint);
	fi->uid = getuid();
	fi->gid = getgid();
	fi->single_thread = cfg->single_thread;
	fi->direct_io = cfg->direct_io;
	atomic_init(&fi->errors, 0);
	return fi;
}

static void image_free(struct fuse_image *fi)
{
	free(fi->files);
	free(fi);
}

/* The device number of the newest FUSE mount at @dir, from mountinfo
 * (whose mount point field escapes ' ', '\t', '\n' and '\\' as octal). */
static int mount_device(const char *dir, unsigned *major, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[PATH_MAX * 2 + 512], point[PATH_MAX + 1];
	int found = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned ma, mi;
		char raw[PATH_MAX * 2 + 1];
		const char *sep = strstr(line, " - ");  /* before the fs type */
		if (!sep || strncmp(sep + 3, "fuse", 4) ||
		    sscanf(line, "%*s %*s %u:%u %*s %4096s", &ma, &mi, raw) != 3)
			continue;
		size_t o = 0;
		for (const char *r = raw; *r && o < PATH_MAX; o++)
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
				point[o] = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
				r += 4;
			} else {
				point[o] = *r++;
			}
		point[o] = 0;
		if (!strcmp(point, dir)) {
			*major = ma;
			*minor = mi;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* Widen the mount's readahead window (see READAHEAD_KB). Best effort: a
 * mount by a user, or a kernel without the file, keeps the default. */
static void widen_readahead(const char *dir)
{
	unsigned major, minor;
	if (mount_device(dir, &major, &minor) != 0)
		return;
	char file[80];
	snprintf(file, sizeof file, "/sys/class/bdi/%u:%u/read_ahead_kb", major, minor);
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char kb[16];
	int len = snprintf(kb, sizeof kb, "%u", READAHEAD_KB);
	(void)!write(fd, kb, (size_t)len);
	close(fd);
}

/* fuse_new + fuse_mount. @return the handle, or NULL with err set. */
static struct fuse_image *mount_here(const struct fuse_file *files, size_t n,
				     const struct fuse_image_config *cfg, char *err, size_t errsz)
{
	struct fuse_image *fi = image_new(files, n, cfg);
	if (!fi) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	char opts[400];
	mount_options(fi, opts, sizeof opts);
	char *argv[] = { "imgbk", "-o", opts, cfg->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(cfg->debug ? 4 : 3, argv);
	fi->fuse = fuse_new(&args, &image_ops, sizeof image_ops, fi);
	fuse_opt_free_args(&args);
	if (!fi->fuse) {
		snprintf(err, errsz, "%s: cannot set up the FUSE file system", fi->mountpoint);
		image_free(fi);
		return NULL;
	}
	if (fuse_mount(fi->fuse, fi->mountpoint) != 0) {
		snprintf(err, errsz, "%s: the FUSE mount failed (is /dev/fuse there and fusermount3 installed?)",
			 fi->mountpoint);
		fuse_destroy(fi->fuse);
		image_free(fi);
		return NULL;
	}
	widen_readahead(fi->mountpoint);
	return fi;
}

static void unmount_free(struct fuse_image *fi)
{
	fuse_unmount(fi->fuse);
	fuse_destroy(fi->fuse);
	image_free(fi);
}

static void call_ready(const struct fuse_image_config *cfg, const char *dir, const char *name)
{
	if (!cfg->ready)
		return;
	char file[PATH_MAX + 260];
	snprintf(file, sizeof file, "%s/%s", dir, name);
	cfg->ready(cfg->ctx, dir, file);
	fflush(stdout);
}

/* ---- serve ---------------------------------------------------------------- */

static int run_loop(struct fuse_image *fi)
{
	if (fi->single_thread)
		return fuse_loop(fi->fuse);
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(lc, MAX_WORKERS);
	int rc = fuse_loop_mt(fi->fuse, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

/* Serve until unmounted or signalled (the handlers are installed); then
 * unmount and free. A signal is a normal end. @return 0 or -1 with err. */
static int serve(struct fuse_image *fi, char *err, size_t errsz)
{
	struct fuse_session *se = fuse_get_session(fi->fuse);
	int rc = run_loop(fi);
	fuse_remove_signal_handlers(se);
	if (rc < 0)
		snprintf(err, errsz, "%s: the FUSE loop failed: %s", fi->mountpoint, strerror(-rc));
	unmount_free(fi);
	return rc < 0 ? -1 : 0;
}

static int run_foreground(const struct fuse_file *files, size_t n, const struct fuse_image_config *cfg,
			  char *err, size_t errsz)
{
	struct fuse_image *fi = mount_here(files, n, cfg, err, errsz);
	if (!fi)
		return -1;
	if (fuse_set_signal_handlers(fuse_get_session(fi->fuse)) != 0) {
		snprintf(err, errsz, "cannot install the signal handlers");
		unmount_free(fi);
		return -1;
	}
	call_ready(cfg, fi->mountpoint, fi->files[0].name);
	return serve(fi, err, errsz);
}

/* ---- the daemon ------------------------------------------------------------- */
/* Child -> parent over a pipe: one status byte (0 = serving), then on
 * failure the message. */

static void stdio_to_null(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void report_failure(int wfd, const char *msg)
{
	char bad = 1;
	(void)!write(wfd, &bad, 1);
	(void)!write(wfd, msg, strlen(msg));
	close(wfd);
}

/* The child: mount, detach, report, serve. Failures before serving end the
 * child here (the parent prints the message). */
static int daemon_child(const struct fuse_file *files, size_t n, const struct fuse_image_config *cfg,
			int wfd)
{
	char msg[600];
	struct fuse_image *fi = mount_here(files, n, cfg, msg, sizeof msg);
	if (!fi) {
		report_failure(wfd, msg);
		_exit(IMG_EXIT_SYSTEM);
	}
	if (setsid() < 0 || chdir("/") != 0 || fuse_set_signal_handlers(fuse_get_session(fi->fuse))) {
		snprintf(msg, sizeof msg, "%.400s: cannot start the daemon: %s", fi->mountpoint, strerror(errno));
		unmount_free(fi);
		report_failure(wfd, msg);
		_exit(IMG_EXIT_SYSTEM);
	}
	fi->use_syslog = 1;
	openlog("imgbk", LOG_PID, LOG_DAEMON);
	stdio_to_null();
	char ok = 0;
	(void)!write(wfd, &ok, 1);
	close(wfd);
	if (serve(fi, msg, sizeof msg) != 0) {
		syslog(LOG_ERR, "%s", msg);
		return -1;
	}
	return 0;
}

/* The parent: wait for the child's status, then stat the file through the mount. */
static int daemon_parent(const struct fuse_image_config *cfg, const char *first, pid_t pid, int rfd,
			 char *err, size_t errsz)
{
	char buf[601];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof buf - 1 && ((n = read(rfd, buf + got, sizeof buf - 1 - got)) > 0 ||
					(n < 0 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	close(rfd);
	buf[got] = 0;
	if (got == 0 || buf[0] != 0) {
		if (got > 1)
			snprintf(err, errsz, "%s", buf + 1);
		else
			snprintf(err, errsz, "%s: the FUSE daemon ended before the mount was up", cfg->mountpoint);
		waitpid(pid, NULL, 0);
		return -1;
	}
	char dir[PATH_MAX], file[PATH_MAX + 260];
	if (!realpath(cfg->mountpoint, dir))
		snprintf(dir, sizeof dir, "%s", cfg->mountpoint);
	snprintf(file, sizeof file, "%s/%s", dir, first);
	struct stat st;
	if (stat(file, &st) != 0) {
		snprintf(err, errsz, "%s: the mount does not answer: %s", file, strerror(errno));
		kill(pid, SIGTERM);
		return -1;
	}
	call_ready(cfg, dir, first);
	return 0;
}

static int run_daemon(const struct fuse_file *files, size_t n, const struct fuse_image_config *cfg,
		      char *err, size_t errsz)
{
	int p[2];
	if (pipe(p) != 0) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errsz, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		return daemon_child(files, n, cfg, p[1]);
	}
	close(p[1]);
	return daemon_parent(cfg, files[0].name, pid, p[0], err, errsz);
}

static int check_name(const char *name, char *err, size_t errsz)
{
	if (!name || !*name || strchr(name, '/') || strlen(name) >= 256 || !strcmp(name, ".") ||
	    !strcmp(name, "..")) {
		snprintf(err, errsz, "'%s' cannot be a file name in the mount", name ? name : "");
		return -1;
	}
	return 0;
}

int fuse_files_run(const struct fuse_file *files, size_t n, const struct fuse_image_config *cfg,
		   int foreground, char *err, size_t errsz)
{
	err[0] = 0;
	if (n == 0) {
		snprintf(err, errsz, "%s: nothing to serve", cfg->mountpoint);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (check_name(files[i].name, err, errsz))
			return -1;
	if (foreground || cfg->debug)
		return run_foreground(files, n, cfg, err, errsz);
	return run_daemon(files, n, cfg, err, errsz);
}

static int read_image(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err)
{
	return img_read_at(ctx, off, buf, len, got, err);
}

int fuse_image_run(img_image *im, const struct fuse_image_config *cfg, int foreground, char *err,
		   size_t errsz)
{
	const img_info *in = img_get_info(im);
	struct fuse_file f = {
		.name = cfg->name, .size = in->device_size, .block_size = in->block_size,
		.read = read_image, .ctx = im, .source = in->path,
	};
	return fuse_files_run(&f, 1, cfg, foreground, err, errsz);
}

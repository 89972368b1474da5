/*
 * Copied from shared/bench/fusepass.c (the project's reference FUSE ceiling),
 * unchanged but for this note, so that the bench builds without ../shared.
 * test/bench/bench.sh compiles it into $BENCH_DIR/bin at bench time.
 */
/*
 * fusepass.c - the cheapest possible read-only FUSE file: the ceiling that any
 * FUSE mount of a backup image (imgbk mount) can reach on this machine.
 *
 * Build: gcc -O2 -o fusepass fusepass.c $(pkg-config --cflags --libs fuse3)
 * Use:   ./fusepass BACKING_FILE MOUNTPOINT [-s] [-o ro,...]
 *        dd if=MOUNTPOINT/image of=/dev/null bs=1M ; umount MOUNTPOINT
 *
 * MOUNTPOINT/image is BACKING_FILE served with one pread() per FUSE read
 * request (no parsing, no checksum, no decompression), so the measured
 * throughput is FUSE's own cost: the request round trip and two copies.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int backing_fd = -1;
static off_t backing_size;

static int fp_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) { st->st_mode = S_IFDIR | 0555; st->st_nlink = 2; return 0; }
	if (strcmp(path, "/image") == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = backing_size;
		st->st_blksize = 1 << 20;
		return 0;
	}
	return -ENOENT;
}

static int fp_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off; (void)fi; (void)flags;
	if (strcmp(path, "/") != 0) return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "image", NULL, 0, 0);
	return 0;
}

static int fp_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/image") != 0) return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
	return 0;
}

static int fp_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path; (void)fi;
	ssize_t n = pread(backing_fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static void *fp_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->kernel_cache = 0; /* every open goes through this process again */
	return NULL;
}

static const struct fuse_operations ops = {
	.init = fp_init, .getattr = fp_getattr, .readdir = fp_readdir, .open = fp_open, .read = fp_read,
};

int main(int argc, char **argv)
{
	if (argc < 3) { fprintf(stderr, "usage: %s BACKING MOUNTPOINT [fuse options]\n", argv[0]); return 2; }
	backing_fd = open(argv[1], O_RDONLY);
	if (backing_fd < 0) { perror(argv[1]); return 1; }
	struct stat st;
	fstat(backing_fd, &st);
	backing_size = st.st_size;
	argv[1] = argv[0]; /* drop BACKING from the argument list handed to libfuse */
	return fuse_main(argc - 1, argv + 1, &ops, NULL);
}

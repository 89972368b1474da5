/*
 * io/file.c - the plain source layer: a regular file, a block device, a pipe
 * or standard input ("-"), read sequentially with large read(2) calls.
 *
 * Not here: split sets (split.c) and anything about what the bytes mean.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

struct file_src {
	int fd;
	int owned;  /* close fd at the end (not for stdin) */
};

ssize_t source_read(int fd, void *dst, size_t cap)
{
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	ssize_t n = read(fd, dst, cap);
	pthread_setcancelstate(old, NULL);
	return n;
}

static int file_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct file_src *f = s->priv;
	for (;;) {
		ssize_t n = source_read(f->fd, dst, cap);
		if (n >= 0) {
			*got = (size_t)n;
			return IMG_OK;
		}
		if (errno != EINTR)
			return stream_fail(s, IMG_E_IO, errno, 1, s->offset + (s->end - s->pos),
					   "read error at byte %llu: %s",
					   (unsigned long long)(s->offset + (s->end - s->pos)),
					   strerror(errno));
	}
}

static void file_close(img_stream *s)
{
	struct file_src *f = s->priv;
	if (f->owned)
		close(f->fd);
	free(f);
}

static const struct img_stream_ops file_ops = { "file", file_produce, file_close, NULL, NULL };
static const struct img_stream_ops stdin_ops = { "stdin", file_produce, file_close, NULL, NULL };

int source_open_file(const char *path, img_err *err, img_stream **out)
{
	int is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return img_err_set(err, IMG_E_IO, errno, 0, 0, "%s: cannot open: %s", path,
				   strerror(errno));
	struct stat st;
	if (!is_stdin && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return img_err_set(err, IMG_E_IO, EISDIR, 0, 0, "%s: is a directory, not an image file",
				   path);
	}
	if (!is_stdin)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	struct file_src *f = malloc(sizeof *f);
	if (!f) {
		if (!is_stdin)
			close(fd);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	}
	f->fd = fd;
	f->owned = !is_stdin;
	img_stream *s = stream_new(is_stdin ? &stdin_ops : &file_ops, f, NULL, err,
				   is_stdin ? "(stdin)" : path, 0);
	if (!s) {
		file_close(&(img_stream){ .priv = f });
		return IMG_E_IO;
	}
	*out = s;
	return IMG_OK;
}

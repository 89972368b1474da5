/*
 * io/stream.c - the core of the stream layer: the read buffer behind
 * peek/consume, refilling it from a layer's produce(), and the error setter.
 *
 * Not here: any particular source or codec (file.c, split.c, gz.c, ...) and
 * the sniffing that stacks them (open.c).
 *
 * Build with -DSTREAM_POISON (the unit tests do) and every refill that keeps
 * bytes moves them to a freshly allocated buffer and poisons and frees the old
 * one, so a parser holding a stale pointer reads garbage or trips ASan.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io.h"

/* Buffers from this size on are transparent huge pages. */
#define HUGE_PAGE ((size_t)2 << 20)

/*
 * A read buffer; free() frees it. One of HUGE_PAGE bytes or more starts on a
 * HUGE_PAGE boundary and asks for huge pages: touching fresh memory costs a
 * page fault per 4 KiB page otherwise, and on the bench machine (a VM) a
 * fault costs 6-25 us: 8 MiB touched took 50-63 ms in 4 KiB pages and under
 * 1 ms in huge pages, and the two 4 MiB buffers of a partimage image were
 * 2000 of the 2370 page faults of `imgbk info` (0.13-0.15 s; a copy does
 * with 130 faults). test/bench/partimage.sh's header has the measurements.
 */
uint8_t *stream_buffer_alloc(size_t size)
{
	if (size < HUGE_PAGE)
		return malloc(size);
	void *p = NULL;
	if (posix_memalign(&p, HUGE_PAGE, size) != 0)
		return NULL;
	madvise(p, size & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);  /* a hint: 4 KiB pages work too */
	return p;
}

void stream_buffer_trim(uint8_t *b, size_t size, size_t keep)
{
	if (size < HUGE_PAGE)
		return;
	size_t from = (keep + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	size_t to = size & ~(HUGE_PAGE - 1);
	if (from < to)
		madvise(b + from, to - from, MADV_DONTNEED);  /* a hint: failing costs memory only */
}

static int err_vset(img_err *err, int code, int sys_errno, int has_offset, uint64_t offset,
		    const char *prefix, const char *fmt, va_list ap)
{
	/* the first error sticks; a data checksum error does not (the walk goes
	 * on after one), so a later failure replaces it */
	if (!err || (err->code != IMG_OK && err->code != IMG_E_CHECKSUM))
		return code;
	err->code = code;
	err->sys_errno = sys_errno;
	err->has_offset = has_offset;
	err->offset = offset;
	size_t n = 0;
	if (prefix)
		n = (size_t)snprintf(err->msg, sizeof err->msg, "%s", prefix);
	if (n < sizeof err->msg)
		vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
	return code;
}

int img_err_set(img_err *err, int code, int sys_errno, int has_offset, uint64_t offset,
		const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(err, code, sys_errno, has_offset, offset, NULL, fmt, ap);
	va_end(ap);
	return code;
}

int stream_fail(img_stream *s, int code, int sys_errno, int has_offset, uint64_t offset,
		const char *fmt, ...)
{
	char prefix[300];
	snprintf(prefix, sizeof prefix, "%s: %s: ", s->path ? s->path : "?", s->ops->name);
	va_list ap;
	va_start(ap, fmt);
	err_vset(s->err, code, sys_errno, has_offset, offset, prefix, fmt, ap);
	va_end(ap);
	s->failed = code;
	return code;
}

img_stream *stream_new(const struct img_stream_ops *ops, void *priv, img_stream *up,
		       img_err *err, const char *path, size_t buffer_size)
{
	img_stream *s = calloc(1, sizeof *s);
	if (buffer_size == 0)
		buffer_size = STREAM_DEFAULT_BUFFER;
	uint8_t *buf = s ? stream_buffer_alloc(buffer_size) : NULL;
	if (!buf) {
		free(s);
		img_err_set(up ? up->err : err, IMG_E_IO, ENOMEM, 0, 0,
			    "%s: out of memory for a %zu-byte buffer", up ? up->path : path, buffer_size);
		return NULL;
	}
	s->ops = ops;
	s->priv = priv;
	s->up = up;
	s->err = up ? up->err : err;
	s->path = up ? up->path : path;
	s->buf = buf;
	s->cap = buffer_size;
	return s;
}

void stream_close(img_stream *s)
{
	while (s) {
		img_stream *up = s->up;
		if (s->ops->close)
			s->ops->close(s);
		free(s->buf);
		free(s);
		s = up;
	}
}

/* A buffer this large or larger is given back once stream_read_direct has
 * taken all its bytes. */
#define STREAM_TRIM_FROM ((size_t)1 << 20)

/* Make room for at least `min` visible bytes: move the visible tail to the
 * front, growing the buffer when min exceeds it. */
static int make_room(img_stream *s, size_t min)
{
	size_t visible = s->end - s->pos;
	size_t cap = s->cap ? s->cap : STREAM_DEFAULT_BUFFER;  /* 0: given back (stream_read_direct) */
	while (cap < min)
		cap *= 2;
#ifdef STREAM_POISON
	uint8_t *nb = stream_buffer_alloc(cap);
	if (!nb)
		return stream_fail(s, IMG_E_IO, ENOMEM, 0, 0, "out of memory");
	if (visible)
		memcpy(nb, s->buf + s->pos, visible);
	/* the bytes ever handed out: past end nothing was (touching those
	 * pages only costs page faults, under ASan a lot of them) */
	if (s->buf)
		memset(s->buf, 0xA5, s->end);
	free(s->buf);
	s->buf = nb;
#else
	if (cap != s->cap) {
		uint8_t *nb = stream_buffer_alloc(cap);
		if (!nb)
			return stream_fail(s, IMG_E_IO, ENOMEM, 0, 0,
					   "out of memory for a %zu-byte read buffer", cap);
		if (visible)
			memcpy(nb, s->buf + s->pos, visible);
		free(s->buf);
		s->buf = nb;
	} else if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, visible);
	}
#endif
	s->cap = cap;
	s->pos = 0;
	s->end = visible;
	return IMG_OK;
}

int stream_peek(img_stream *s, size_t min, const uint8_t **p, size_t *avail)
{
	if (s->failed)
		return s->failed;
	if (min > STREAM_MAX_PEEK)
		return stream_fail(s, IMG_E_FORMAT, 0, 1, s->offset,
				   "a structure of %zu bytes is larger than the %zu bytes imgbk reads at once",
				   min, STREAM_MAX_PEEK);
	if (s->end - s->pos < min && !s->at_end) {
		/* Compact when the request does not fit after pos, or when little
		 * room is left at the end (tiny reads would follow); not when the
		 * layer hands over whole buffers: it moves the visible bytes itself
		 * (the loop below compacts when it did not and the buffer is full). */
		if (!s->hands_over && (s->cap - s->pos < min || s->cap - s->end < s->cap / 4)) {
			int rc = make_room(s, min);
			if (rc != IMG_OK)
				return rc;
		}
		while (s->end - s->pos < min && !s->at_end) {
			if (s->end == s->cap) {  /* a layer handed over a full buffer (thread.c) */
				int rc = make_room(s, min);
				if (rc != IMG_OK)
					return rc;
			}
			size_t got = 0;
			int rc = s->ops->produce(s, s->buf + s->end, s->cap - s->end, &got);
			if (rc != IMG_OK) {
				s->failed = rc;
				return rc;
			}
			if (got == 0)
				s->at_end = 1;
			s->end += got;
		}
	}
	*p = s->buf ? s->buf + s->pos : (const uint8_t *)"";  /* given back, nothing visible */
	*avail = s->end - s->pos;
	return *avail >= min ? IMG_OK : IMG_EOF;
}

void stream_consume(img_stream *s, size_t n)
{
	if (n > s->end - s->pos)
		n = s->end - s->pos;
	s->pos += n;
	s->offset += n;
}

/* Consume up to n bytes, copying them to out unless it is NULL.
 * @return IMG_OK (n taken), IMG_EOF (the data ended first) or an error. */
static int stream_take(img_stream *s, uint8_t *out, uint64_t n, uint64_t *taken)
{
	uint64_t done = 0;
	int rc = IMG_OK;
	while (done < n) {
		const uint8_t *p;
		size_t avail;
		rc = stream_peek(s, 1, &p, &avail);
		if (rc < 0)
			break;
		if (avail == 0)
			break;
		size_t take = n - done < avail ? (size_t)(n - done) : avail;
		if (out)
			memcpy(out + done, p, take);
		stream_consume(s, take);
		done += take;
	}
	*taken = done;
	if (rc < 0)
		return rc;
	return done == n ? IMG_OK : IMG_EOF;
}

int stream_read(img_stream *s, void *dst, size_t n, size_t *got)
{
	uint64_t done;
	int rc = stream_take(s, dst, n, &done);
	if (rc >= 0 && got)
		*got = (size_t)done;
	return rc;
}

int stream_skip(img_stream *s, uint64_t n, uint64_t *skipped)
{
	uint64_t done;
	int rc = stream_take(s, NULL, n, &done);
	if (rc >= 0 && skipped)
		*skipped = done;
	return rc;
}

int stream_exchange(img_stream *s, uint8_t **buf, size_t *cap, size_t *len)
{
	*len = 0;
	if (s->failed || s->at_end || !s->ops->exchange || s->end > s->pos)
		return IMG_OK;
	int rc = s->ops->exchange(s, buf, cap, len);
	if (rc != IMG_OK) {
		s->failed = rc;
		*len = 0;
		return rc;
	}
	s->offset += *len;
	return IMG_OK;
}

int stream_read_direct(img_stream *s, void *dst, size_t cap, size_t *got)
{
	*got = 0;
	if (s->failed)
		return s->failed;
	size_t visible = s->end - s->pos;
	if (visible > 0) {  /* bytes a peek already made visible: copy them */
		size_t n = visible < cap ? visible : cap;
		memcpy(dst, s->buf + s->pos, n);
		stream_consume(s, n);
		*got = n;
		if (n == visible && s->cap >= STREAM_TRIM_FROM) {
			/* read straight past the buffer from now on (a read-ahead or a
			 * unit layer above; sniffing filled it): its memory goes back,
			 * and a later peek makes a new one. Forgotten before freed: a
			 * fork()ed child closing this stream frees it at most once. */
			uint8_t *b = s->buf;
			s->buf = NULL;
			s->cap = s->pos = s->end = 0;
			free(b);
		}
		return IMG_OK;
	}
	if (s->at_end || cap == 0)
		return IMG_OK;
	int rc = s->ops->produce(s, dst, cap, got);  /* straight from the layer */
	if (rc != IMG_OK) {
		s->failed = rc;
		*got = 0;
		return rc;
	}
	if (*got == 0)
		s->at_end = 1;
	s->offset += *got;
	return IMG_OK;
}

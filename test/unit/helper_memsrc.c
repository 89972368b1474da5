/*
 * test/unit/helper_memsrc.c - the memory source layer of the unit tests (see
 * helper_memsrc.h): small produce() steps and an injectable failure.
 *
 * Not for the library: only unit tests link it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helper_memsrc.h"

struct memsrc {
	const uint8_t *data;
	size_t len, pos, chunk;
	int calls;
	int fail_at;  /* 0 = never */
};

static int memsrc_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct memsrc *m = s->priv;
	m->calls++;
	if (m->fail_at && m->calls == m->fail_at)
		return stream_fail(s, IMG_E_IO, EIO, 1, m->pos, "injected failure at produce call %d (byte %zu)",
				   m->calls, m->pos);
	size_t n = m->len - m->pos;
	if (n > cap)
		n = cap;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(dst, m->data + m->pos, n);
	m->pos += n;
	*got = n;
	return IMG_OK;
}

static void memsrc_close(img_stream *s)
{
	free(s->priv);
}

static const struct img_stream_ops memsrc_ops = { "mem", memsrc_produce, memsrc_close, NULL, NULL };

int memsrc_open(const void *data, size_t len, size_t chunk, img_err *err, img_stream **out)
{
	struct memsrc *m = calloc(1, sizeof *m);
	if (!m)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "mem: out of memory");
	m->data = data;
	m->len = len;
	m->chunk = chunk;
	img_stream *s = stream_new(&memsrc_ops, m, NULL, err, "mem", 0);
	if (!s) {
		free(m);
		return IMG_E_IO;
	}
	*out = s;
	return IMG_OK;
}

void memsrc_fail_at(img_stream *s, int nth_call)
{
	((struct memsrc *)s->priv)->fail_at = nth_call;
}

int memsrc_calls(const img_stream *s)
{
	return ((const struct memsrc *)s->priv)->calls;
}

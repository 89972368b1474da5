/*
 * io/zview.c - the decoded source: the byte-source interface (io.h) over
 * io/zseek.c's view of the bytes a codec decodes from another source. Reads,
 * sizes and offsets are decoded ones; the identity and the first file are
 * those of the compressed source under it, which it owns.
 *
 * Not here: access points, cursors and their saved form (zseek.c), any
 * codec library call (zseek_*.c), which codec an image needs (rsrc_stack.c).
 */
#include <errno.h>
#include <stdlib.h>

#include "zseek.h"

struct decoded {
	struct img_rsrc base;
	zs_view *view;
	img_rsrc *under;  /* the compressed bytes (owned) */
};

static int decoded_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	return zs_view_pread(((struct decoded *)r)->view, buf, len, off, got, err);
}

static int decoded_peek(img_rsrc *r, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err)
{
	return zs_view_peek(((struct decoded *)r)->view, len, off, p, pin, err);
}

static void decoded_unpeek(img_rsrc *r, void *pin)
{
	zs_view_unpeek(((struct decoded *)r)->view, pin);
}

static uint64_t decoded_size(const img_rsrc *r)
{
	return zs_view_size(((const struct decoded *)r)->view);
}

static void decoded_identity(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns)
{
	rsrc_identity(((const struct decoded *)r)->under, size, mtime_ns);
}

static const char *decoded_first_path(const img_rsrc *r)
{
	return rsrc_first_path(((const struct decoded *)r)->under);
}

static int decoded_save(const img_rsrc *r, uint8_t **out, size_t *len)
{
	return zs_view_save(((const struct decoded *)r)->view, out, len);
}

static void decoded_points(const img_rsrc *r, uint64_t *stateful, uint64_t *units, uint64_t *blind)
{
	zs_view_points(((const struct decoded *)r)->view, stateful, units, blind);
}

static void decoded_close(img_rsrc *r)
{
	struct decoded *d = (struct decoded *)r;
	zs_view_close(d->view);
	rsrc_close(d->under);
	free(d);
}

static const struct img_rsrc_methods decoded_methods = {
	.name = "decoded",
	.caps = RSRC_CAP_RANDOM | RSRC_CAP_FILES | RSRC_CAP_DECODED,
	.pread = decoded_pread,
	.size = decoded_size,
	.identity = decoded_identity,
	.first_path = decoded_first_path,
	.save = decoded_save,
	.points = decoded_points,
	.peek = decoded_peek,
	.unpeek = decoded_unpeek,
	.close = decoded_close,
};

int rsrc_decode(img_rsrc **r, const struct img_codec *c, const uint8_t *saved, size_t saved_len,
		void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx, int *rebuilt,
		img_err *err)
{
	return rsrc_decode_states(r, c, saved, saved_len, NULL, 0, 0, progress, progress_ctx, rebuilt, err);
}

size_t rsrc_saved_front(const uint8_t *saved, size_t len)
{
	return zs_saved_front(saved, len);
}

int rsrc_decode_states(img_rsrc **r, const struct img_codec *c, const uint8_t *saved, size_t saved_len,
		       img_rsrc *states, uint64_t states_at, uint64_t states_len,
		       void (*progress)(void *, uint64_t, uint64_t),
		       void *progress_ctx, int *rebuilt, img_err *err)
{
	img_rsrc *raw = *r;
	*rebuilt = 0;
	struct decoded *d = c->seek ? calloc(1, sizeof *d) : NULL;
	if (!d) {
		if (states)
			rsrc_close(states);
		if (!c->seek)
			return img_err_set(err, IMG_E_FORMAT, 0, 0, 0, "%s: %s data cannot be read at random",
					   rsrc_first_path(raw), c->name);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", rsrc_first_path(raw));
	}
	int rc = zs_view_open_states(raw, rsrc_first_path(raw), c->seek, saved, saved_len, states, states_at,
				     states_len, progress, progress_ctx, rebuilt, err, &d->view);
	if (rc != IMG_OK) {
		free(d);
		return rc;
	}
	d->base.m = &decoded_methods;
	d->under = raw;
	*r = &d->base;
	return IMG_OK;
}

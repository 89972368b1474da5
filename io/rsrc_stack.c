/*
 * io/rsrc_stack.c - the one place where random-read sources are composed:
 * from the layers the sniffing stacked (the source layer at the bottom, the
 * codec entries of its decoding layers), the source whose bytes are those at
 * the top of the stack: the file or split set, then a decoded source for the
 * decoding layer (one at most: the saved access points describe one).
 *
 * Not here: the sources themselves (rsrc.c, zview.c), the index file that
 * holds saved access points (formats/access.c asks for them through
 * rsrc_build.saved_points), what the bytes mean.
 */
#include <stdio.h>
#include <string.h>

#include "io.h"

void rsrc_layers_of(const img_stream *top, struct rsrc_layers *out)
{
	const struct img_codec *down[STREAM_MAX_LAYERS];  /* top first */
	size_t n = 0;
	memset(out, 0, sizeof *out);
	for (const img_stream *s = top; s; s = s->up) {
		if (s->codec && n < STREAM_MAX_LAYERS)
			down[n++] = s->codec;
		if (!s->up)
			snprintf(out->source, sizeof out->source, "%s", s->ops->name);
	}
	for (size_t i = 0; i < n; i++)
		out->codecs[i] = down[n - 1 - i];
	out->ncodecs = n;
}

/* The source layer is one rsrc_open can open again by its name. */
static int source_reopenable(const struct rsrc_layers *l)
{
	return strcmp(l->source, "file") == 0 || strcmp(l->source, "split") == 0;
}

int rsrc_layers_random(const struct rsrc_layers *l)
{
	return source_reopenable(l) && (l->ncodecs == 0 || (l->ncodecs == 1 && l->codecs[0]->seek));
}

int rsrc_open_layers(const char *path, const struct rsrc_layers *l, struct rsrc_build *b,
		     img_err *err, img_rsrc **out)
{
	b->rebuilt = 0;
	if (!rsrc_layers_random(l))
		return img_err_set(err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: these bytes (%s under %zu decoding layers) cannot be read at random",
				   path, l->source, l->ncodecs);
	img_rsrc *r = NULL;
	int rc = rsrc_open(path, err, &r);
	if (rc == IMG_OK && !(rsrc_caps(r) & RSRC_CAP_RANDOM))
		rc = img_err_set(err, IMG_E_FORMAT, 0, 0, 0,
				 "%s: a pipe cannot be read at random; save its bytes to a file first", path);
	const uint8_t *points = NULL;
	size_t len = 0;
	if (rc == IMG_OK && b->saved_points)
		rc = b->saved_points(b->ctx, r, &points, &len);
	img_rsrc *states = b->states;  /* taken over by the decoded source */
	b->states = NULL;
	if (rc == IMG_OK && l->ncodecs == 1) {
		rc = rsrc_decode_states(&r, l->codecs[0], points, len, states, b->states_at, b->states_len, b->progress,
					b->progress_ctx, &b->rebuilt, err);
		states = NULL;
	}
	if (states)
		rsrc_close(states);
	if (rc != IMG_OK) {
		rsrc_close(r);
		return rc;
	}
	*out = r;
	return IMG_OK;
}

/*
 * formats/access.c - random access to the partition inside an image: checks
 * that the layers sniffed under the image can be read at random (refusals
 * name the command that fixes them), has io/ compose the random-read source
 * of its bytes (rsrc_open_layers), loads a saved index that matches the
 * image or has the format build one and saves it, and dispatches reads.
 *
 * Not here: how a format maps partition bytes to image bytes (its read_at),
 * or the index file's bytes (blkindex.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "blkindex.h"

void img_random_options_init(img_random_options *o)
{
	memset(o, 0, sizeof *o);
	o->verify = 1;
	o->save = 1;
}

int fmt_fail_to(img_image *im, img_err *err, int code, uint64_t offset, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return img_err_set(err, code, 0, 1, offset, "%s: %s: %s at byte %llu", im->path,
			   im->fmt->name, what, (unsigned long long)offset);
}

int fmt_pread(img_image *im, void *buf, size_t len, uint64_t off, const char *what, img_err *err)
{
	size_t got = 0;
	int rc = rsrc_pread(im->rs, buf, len, off, &got, err);
	if (rc != IMG_OK)
		return rc;
	if (got < len)
		return fmt_fail_to(im, err, IMG_E_TRUNCATED, off + got,
				   "image truncated in %s (%zu of %zu bytes present)", what, got, len);
	return IMG_OK;
}

int fmt_peek(img_image *im, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err)
{
	return rsrc_peek(im->rs, len, off, p, pin, err);
}

void fmt_unpeek(img_image *im, void *pin)
{
	rsrc_unpeek(im->rs, pin);
}

/* The tool that decodes a codec's data to stdout, or NULL. */
static const char *decoder_tool(const char *codec, size_t len)
{
	const struct img_codec *c = codec_by_name(codec, len);
	return c ? c->tool : NULL;
}

/* The shell command that writes the image's decoded bytes to IMAGE.img:
 * the pieces of a split set joined, then every decoding layer in turn. */
static void decompress_command(const img_image *im, char *cmd, size_t size)
{
	const struct rsrc_layers *l = &im->stack;
	size_t n = 0;
	int split = strcmp(l->source, "split") == 0;
	size_t plen = strlen(im->path);
	if (split && plen > 2 && strcmp(im->path + plen - 2, "aa") == 0)
		n = (size_t)snprintf(cmd, size, "cat %.*s?? | ", (int)(plen - 2), im->path);
	else if (split)
		n = (size_t)snprintf(cmd, size, "cat %s* | ", im->path);
	for (size_t i = 0; i < l->ncodecs && n < size; i++) {
		const char *tool = decoder_tool(l->codecs[i]->name, strlen(l->codecs[i]->name));
		if (!tool) {
			snprintf(cmd, size, "imgbk restore %s IMAGE.img", im->path);
			return;
		}
		int first = i == 0 && !split;
		n += (size_t)snprintf(cmd + n, size - n, first ? "%s %s" : "%s%s", tool,
				      first ? im->path : "");
		if (i + 1 < l->ncodecs && n < size)
			n += (size_t)snprintf(cmd + n, size - n, " | ");
	}
	if (n < size)
		snprintf(cmd + n, size - n, " > IMAGE.img");
}

/* Why an image cannot be read at random (!rsrc_layers_random), with the
 * command that fixes it. */
static int reject_stream(img_image *im)
{
	const struct rsrc_layers *l = &im->stack;
	if (strcmp(l->source, "stdin") == 0 || strcmp(im->path, "(stdin)") == 0)
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
				   "(stdin): an image read from standard input cannot be mounted; save it to a file first");
	if (l->ncodecs == 0)
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: the image bytes come from a %s source, which cannot be read at "
				   "random", im->path, l->source);
	const char *codec = l->codecs[l->ncodecs - 1]->name;
	if (im->fmt->reject_compressed)
		return im->fmt->reject_compressed(im, codec, 0);
	char cmd[1400];
	decompress_command(im, cmd, sizeof cmd);
	return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
			   "%s: this compressed image (%s) cannot be read at random (no access points "
			   "for it); decompress it first: %s, then mount IMAGE.img", im->path, im->layers,
			   cmd);
}

/*
 * The index payload of a compressed image: "IMGBKZS+", u64 length of the
 * access points (the front of rsrc_decoded_save's form: rsrc_saved_front),
 * the points, then the format's payload. The points' states go after the
 * index file's checked part (blkindex_save_states), read on demand.
 */
#define ZS_WRAP_MAGIC "IMGBKZS+"

static void split_saved(const uint8_t *saved, size_t len, const uint8_t **z, size_t *zlen,
			const uint8_t **f, size_t *flen)
{
	*z = *f = NULL;
	*zlen = *flen = 0;
	if (!saved || len < 16 || memcmp(saved, ZS_WRAP_MAGIC, 8) != 0)
		return;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | saved[8 + i];
	if (n > len - 16)
		return;
	*z = saved + 16;
	*zlen = (size_t)n;
	*f = saved + 16 + n;
	*flen = len - 16 - (size_t)n;
}

/* *out: the payload; *z: the saved form whose states (*states, *slen) go apart. */
static int wrap_payload(const img_rsrc *rs, const uint8_t *f, size_t flen, uint8_t **out,
			size_t *outlen, uint8_t **zform, const uint8_t **states, size_t *slen)
{
	uint8_t *z = NULL;
	size_t zlen = 0;
	if (rsrc_decoded_save(rs, &z, &zlen) != IMG_OK)
		return IMG_E_IO;
	size_t front = z ? rsrc_saved_front(z, zlen) : 0;
	*zform = z;
	*states = z ? z + front : NULL;
	*slen = zlen - front;
	zlen = front;
	uint8_t *b = malloc(16 + zlen + flen);
	if (!b)
		return IMG_E_IO;
	memcpy(b, ZS_WRAP_MAGIC, 8);
	for (int i = 0; i < 8; i++)
		b[8 + i] = (uint8_t)((uint64_t)zlen >> (8 * i));
	if (zlen)
		memcpy(b + 16, z, zlen);
	if (flen)
		memcpy(b + 16 + zlen, f, flen);
	*out = b;
	*outlen = 16 + zlen + flen;
	return IMG_OK;
}

/* What rsrc_open_layers asks of the index: the saved access points. */
struct index_load {
	img_image *im;
	const img_random_options *o;
	struct blkindex_id id;
	uint8_t *saved;            /* the index's payload (malloc'd), NULL when none fits */
	size_t saved_len;
	const uint8_t *fsaved;     /* the format's part of it */
	size_t fsaved_len;
	int file_there;            /* an index file was there (taken or not) */
	struct rsrc_build *b;      /* gets the index file's states */
};

/* rsrc_build.saved_points: bind the index to the stored bytes, load it,
 * and hand out its access points (decoded images) or none. */
static int load_index(void *ctx, img_rsrc *stored, const uint8_t **points, size_t *len)
{
	struct index_load *x = ctx;
	img_image *im = x->im;
	int rc = blkindex_identify(im, stored, &x->id);
	if (rc != IMG_OK)
		return rc;
	blkindex_default_path(im, x->o->index_path, im->index_path, sizeof im->index_path);
	uint64_t states_at = 0, states_len = 0;
	x->file_there = blkindex_load_states(im->index_path, &x->id, x->o->index_interval, &x->saved,
					     &x->saved_len, &states_at, &states_len);
	x->fsaved = x->saved;
	x->fsaved_len = x->saved_len;
	if (im->stack.ncodecs)
		split_saved(x->saved, x->saved_len, points, len, &x->fsaved, &x->fsaved_len);
	img_rsrc *states = NULL;
	img_err err;
	memset(&err, 0, sizeof err);
	/* the states are read from the file on demand (a file that is not the
	 * one just checked any more fails their CRCs: EIO, or a rebuild) */
	if (*points && states_len && rsrc_open(im->index_path, &err, &states) == IMG_OK) {
		if (rsrc_size(states) == states_at + states_len + 8) {  /* the states, their XXH64 */
			x->b->states = states;
			x->b->states_at = states_at;
			x->b->states_len = states_len;
		} else {
			rsrc_close(states);
		}
	}
	return IMG_OK;
}

/* The index payload to save: the format's, with the access points in front
 * when the bytes are decoded ones. NULL when nothing needs saving. */
static int payload_to_save(img_image *im, const struct index_load *x, int rebuilt, uint8_t **payload,
			   size_t *payload_len, uint8_t **zform, const uint8_t **states, size_t *slen)
{
	if (!(rsrc_caps(im->rs) & RSRC_CAP_DECODED) || !(*payload || rebuilt))
		return IMG_OK;
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	int rc = wrap_payload(im->rs, *payload ? *payload : x->fsaved,
			      *payload ? *payload_len : x->fsaved_len, &wrapped, &wlen, zform, states, slen);
	free(*payload);
	*payload = wrapped;
	*payload_len = wlen;
	return rc == IMG_OK ? IMG_OK
			    : img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
}

int img_random_open(img_image *im, const img_random_options *o, int *index_state)
{
	img_random_options def;
	if (!o) {
		img_random_options_init(&def);
		o = &def;
	}
	if (index_state)
		*index_state = 0;
	if (im->random_ready)
		return IMG_OK;
	if (!im->fmt->read_at)
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: random access to %s images is not available", im->path,
				   im->fmt->name);
	if (!rsrc_layers_random(&im->stack))
		return reject_stream(im);
	if (im->stack.ncodecs && im->fmt->reject_compressed) {
		int rc = im->fmt->reject_compressed(im, im->stack.codecs[0]->name, 1);
		if (rc != IMG_OK)
			return rc;
	}
	if (o->index_interval && (o->index_interval < 8 || o->index_interval % 8))
		return img_err_set(&im->err, IMG_E_USAGE, 0, 0, 0,
				   "index interval %u: must be at least 8 and a multiple of 8",
				   o->index_interval);
	rsrc_close(im->rs);  /* a second try after a failed one starts afresh */
	im->rs = NULL;
	struct index_load x = { .im = im, .o = o };
	struct rsrc_build b = { .saved_points = load_index, .ctx = &x, .progress = o->progress,
				.progress_ctx = o->progress_ctx };
	x.b = &b;
	int rc = rsrc_open_layers(im->path, &im->stack, &b, &im->err, &im->rs);
	if (rc != IMG_OK) {
		free(x.saved);
		return rc;
	}
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	im->read_verify = o->verify;
	uint8_t *zform = NULL;  /* the saved access points; their states go after the checked part */
	const uint8_t *states = NULL;
	size_t slen = 0;
	rc = im->fmt->random_open(im, o, x.fsaved, x.fsaved_len, &payload, &payload_len);
	if (rc == IMG_OK)
		rc = payload_to_save(im, &x, b.rebuilt, &payload, &payload_len, &zform, &states, &slen);
	int had_saved = x.saved != NULL;
	free(x.saved);
	if (rc != IMG_OK) {
		free(payload);
		free(zform);
		return rc;
	}
	/* A format returns a payload only when it built the index (a saved one
	 * that did not fit this image is rebuilt too). */
	int state = payload ? 0 : had_saved ? 1 : 0;
	im->index_origin = payload ? (x.file_there ? IMG_INDEX_REBUILT : IMG_INDEX_BUILT)
				   : had_saved ? IMG_INDEX_LOADED : IMG_INDEX_NONE;
	if (payload && o->save) {
		int srv = blkindex_save_states(im, o->index_path, &x.id, o->index_interval, payload, payload_len,
					       states, slen, im->index_path, sizeof im->index_path);
		state = srv == IMG_OK ? 2 : 3;
	}
	free(payload);
	free(zform);
	if (index_state)
		*index_state = state;
	im->random_ready = 1;
	return IMG_OK;
}

int img_read_at(img_image *im, uint64_t offset, void *buf, size_t len, size_t *got, img_err *err)
{
	*got = 0;
	err->code = IMG_OK;  /* `err` is this call's slot: cleared once, here; then the first error sticks */
	if (!im->random_ready)
		return img_err_set(err, IMG_E_USAGE, 0, 0, 0, "%s: img_random_open was not called",
				   im->path);
	uint64_t size = im->info.device_size;
	if (offset >= size)
		return IMG_OK;
	if (len > size - offset)
		len = (size_t)(size - offset);
	int rc = im->fmt->read_at(im, offset, buf, len, err);
	if (rc == IMG_OK)
		*got = len;
	return rc;
}

const char *img_index_path(const img_image *im)
{
	return im->index_path;
}

int img_index_origin(const img_image *im)
{
	return im->index_origin;
}

void img_index_points(const img_image *im, uint64_t *checkpoints, uint64_t *units, uint64_t *blind,
		      const char **codec)
{
	*checkpoints = *units = *blind = 0;
	*codec = im->stack.ncodecs ? im->stack.codecs[0]->name : "";
	if (im->rs)
		rsrc_decoded_points(im->rs, checkpoints, units, blind);
}

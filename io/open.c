/*
 * io/open.c - opens a name as a stack of layers: the source (file, stdin or
 * split set), then one decoding layer per compressor whose magic the top of
 * the stack shows, asked again on every new top (gzip inside a split set,
 * xz inside gzip, ...), at most STREAM_MAX_LAYERS deep.
 *
 * Not here: what a codec is (codecs.c has the table) or what an image format
 * is: the caller passes a `stop` test that recognises the bytes it wants.
 */
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io.h"

/* Bytes the sniffers look at: enough for every codec magic and image magic. */
#define SNIFF_BYTES 64

static void layers_append(char *out, size_t size, const char *name)
{
	if (!out || size == 0)
		return;
	size_t n = strlen(out);
	if (n + 1 < size)
		snprintf(out + n, size - n, "%s%s", n ? "+" : "", name);
}

static const struct img_codec *codec_for(const uint8_t *p, size_t n)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (n >= img_codecs[i]->magic_len && img_codecs[i]->bid(p, n))
			return img_codecs[i];
	return NULL;
}

const char *stream_resolve_name(const char *path, char *buf, size_t size)
{
	struct stat st;
	if (strcmp(path, "-") == 0 || stat(path, &st) == 0)
		return path;
	snprintf(buf, size, "%s.000", path);
	if (stat(buf, &st) == 0)
		return buf;
	return path;
}

/* Add a copy of name to the list. @return 0, or -1 when out of memory. */
static int names_add(char ***names, size_t *count, const char *name)
{
	char **grown = realloc(*names, (*count + 1) * sizeof **names);
	if (!grown)
		return -1;
	*names = grown;
	if (!(grown[*count] = strdup(name)))
		return -1;
	(*count)++;
	return 0;
}

/* The ".NNN" numbered siblings of a volume set, from the one after path on. */
static int add_numbered(const char *path, char ***names, size_t *count)
{
	size_t len = strlen(path);
	if (len < 4 || path[len - 4] != '.' || !isdigit((unsigned char)path[len - 3]) ||
	    !isdigit((unsigned char)path[len - 2]) || !isdigit((unsigned char)path[len - 1]))
		return 0;
	char *name = strdup(path);
	if (!name)
		return -1;
	struct stat st;
	for (int n = atoi(path + len - 3) + 1; n < 1000; n++) {
		name[len - 3] = (char)('0' + n / 100);
		name[len - 2] = (char)('0' + n / 10 % 10);
		name[len - 1] = (char)('0' + n % 10);
		if (stat(name, &st) != 0)
			break;
		if (names_add(names, count, name) != 0) {
			free(name);
			return -1;
		}
	}
	free(name);
	return 0;
}

int stream_source_names(const char *path, char ***names, size_t *count)
{
	img_err err = { 0 };
	*names = NULL;
	*count = 0;
	int rc = split_list_pieces(path, names, count, &err);
	if (rc == IMG_OK)
		return IMG_OK;
	if (names_add(names, count, path) != 0 || add_numbered(path, names, count) != 0)
		return IMG_E_IO;
	return IMG_OK;
}

int stream_stack_on(img_stream *top, int (*stop)(const uint8_t *p, size_t n), char *layers_out,
		    size_t layers_size, img_stream **out)
{
	int rc = IMG_OK;
	int decoders = 0;
	for (int depth = 0;; depth++) {
		const uint8_t *p;
		size_t avail;
		rc = stream_peek(top, SNIFF_BYTES, &p, &avail);
		if (rc < 0)
			break;
		rc = IMG_OK;
		if (stop && stop(p, avail))
			break;
		const struct img_codec *c = codec_for(p, avail);
		if (!c)
			break;
		if (depth >= STREAM_MAX_LAYERS) {
			rc = stream_fail(top, IMG_E_FORMAT, 0, 0, 0,
					 "more than %d compression layers; not going deeper",
					 STREAM_MAX_LAYERS);
			break;
		}
		img_stream *next = NULL;
		rc = codec_open(c, top, &next);
		if (rc < 0)
			break;
		next->codec = c;
		top = next;
		decoders++;
		layers_append(layers_out, layers_size, c->name);
	}
	if (rc >= 0 && decoders > 0) {
		img_stream *ahead;
		rc = stream_push_thread(top, &ahead);
		if (rc >= 0)
			top = ahead;
	}
	if (rc < 0) {
		stream_close(top);
		return rc;
	}
	*out = top;
	return IMG_OK;
}

int stream_open_stack(const char *path, img_err *err, int (*stop)(const uint8_t *p, size_t n),
		      char *layers_out, size_t layers_size, img_stream **out)
{
	img_stream *top = NULL;
	if (layers_out && layers_size)
		layers_out[0] = 0;
	int rc = strcmp(path, "-") == 0 ? IMG_EOF : source_open_split(path, err, &top);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF) {
		rc = source_open_file(path, err, &top);
		if (rc < 0)
			return rc;
	}
	layers_append(layers_out, layers_size, top->ops->name);
	return stream_stack_on(top, stop, layers_out, layers_size, out);
}

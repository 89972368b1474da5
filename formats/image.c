/*
 * formats/image.c - the image handle behind imgbk.h: opening (stream stack,
 * format detection), the header facts, the block walk, errors, and the
 * number formatting shared by every header print.
 *
 * Not here: any one format's bytes (partclone.c, ...), codecs (io/).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fmt.h"

int img_exit_code(int code)
{
	switch (code) {
	case IMG_OK:
	case IMG_EOF: return IMG_EXIT_OK;
	case IMG_E_IO: return IMG_EXIT_SYSTEM;
	case IMG_E_USAGE: return IMG_EXIT_USAGE;
	default: return IMG_EXIT_DAMAGED;
	}
}

void img_options_init(img_options *o)
{
	memset(o, 0, sizeof *o);
	o->verify = 1;
}

int fmt_fail(img_image *im, int code, uint64_t offset, const char *fmt, ...)
{
	if (im->err.code == IMG_E_CHECKSUM)
		im->err.code = IMG_OK;  /* a walk that goes on reports each bad group */
	if (im->err.code != IMG_OK)
		return code;
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	char at[64];
	img_fmt_thousands(at, sizeof at, offset);
	img_err_set(&im->err, code, 0, 1, offset, "%s: %s: %s at byte %llu%s%s%s", im->path,
		    im->fmt ? im->fmt->name : "image", what, (unsigned long long)offset,
		    offset >= 10000 ? " (" : "", offset >= 10000 ? at : "", offset >= 10000 ? ")" : "");
	return code;
}

static img_field *field_add(img_image *im, const char *label, const char *key)
{
	if (im->field_list.count >= IMG_MAX_FIELDS)
		return NULL;
	img_field *f = &im->fields[im->field_list.count++];
	memset(f, 0, sizeof *f);
	f->label = label;
	f->key = key;
	f->text = "";
	return f;
}

/* Format the text of f into the image's text store (cut when it is full). */
static void field_vtext(img_image *im, img_field *f, const char *fmt, va_list ap)
{
	size_t room = sizeof im->field_text - im->field_text_used;
	if (room == 0)
		return;
	char *dst = im->field_text + im->field_text_used;
	int n = vsnprintf(dst, room, fmt, ap);
	if (n < 0)
		n = 0;
	size_t len = (size_t)n < room ? (size_t)n : room - 1;
	im->field_text_used += len + 1;
	f->text = dst;
}

img_field *fmt_section(img_image *im, const char *title)
{
	img_field *f = field_add(im, title, "");
	if (f)
		f->section = 1;
	return f;
}

img_field *fmt_level(img_field *f, int level)
{
	if (f)
		f->level = level;
	return f;
}

void fmt_copy_text(char *out, size_t outsz, const uint8_t *p, size_t n)
{
	size_t len = 0;
	while (len < n && p[len])
		len++;
	if (len >= outsz)
		len = outsz - 1;
	for (size_t i = 0; i < len; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[len] = 0;
}

img_field *fmt_field(img_image *im, const char *label, const char *key, const char *fmt, ...)
{
	img_field *f = field_add(im, label, key);
	if (!f)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	field_vtext(im, f, fmt, ap);
	va_end(ap);
	f->str = f->text;
	return f;
}

img_field *fmt_field_num(img_image *im, const char *label, const char *key, uint64_t number,
			 const char *fmt, ...)
{
	img_field *f = field_add(im, label, key);
	if (!f)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	field_vtext(im, f, fmt, ap);
	va_end(ap);
	f->is_number = 1;
	f->number = number;
	return f;
}

img_field *fmt_field_quoted(img_image *im, const char *label, const char *key, const char *s)
{
	img_field *f = fmt_field(im, label, key, "\"%s\"", s);
	if (!f)
		return NULL;
	f->str = "";
	size_t room = sizeof im->field_text - im->field_text_used;
	if (room > 0) {
		char *dst = im->field_text + im->field_text_used;
		size_t len = strlen(s) < room ? strlen(s) : room - 1;
		memcpy(dst, s, len);
		dst[len] = 0;
		im->field_text_used += len + 1;
		f->str = dst;
	}
	return f;
}

img_field *fmt_field_amount(img_image *im, const char *label, const char *key, uint64_t n,
			     uint64_t bytes)
{
	char a[40], b[40];
	img_fmt_thousands(a, sizeof a, n);
	img_fmt_human(b, sizeof b, bytes);
	return fmt_field_num(im, label, key, n, "%s (%s)", a, b);
}

int fmt_expect_end(img_image *im, const char *what)
{
	const uint8_t *p;
	size_t avail;
	uint64_t at = im->s->offset;
	int rc = stream_peek(im->s, 1, &p, &avail);
	if (rc < 0)
		return rc;
	if (avail > 0)
		return fmt_fail(im, IMG_E_TRAILING, at, "trailing data after %s (the image should end here)",
				what);
	return IMG_EOF;
}

void img_fmt_thousands(char *out, size_t outsz, uint64_t v)
{
	char digits[32];
	int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
	char tmp[48];
	int j = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			tmp[j++] = ',';
		tmp[j++] = digits[i];
	}
	tmp[j] = 0;
	snprintf(out, outsz, "%s", tmp);
}

void img_fmt_human(char *out, size_t outsz, uint64_t bytes)
{
	static const char *const units[] = { "KB", "MB", "GB", "TB", "PB", "EB" };
	if (bytes < 1024) {
		snprintf(out, outsz, "%llu B", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes / 1024;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(out, outsz, "%.1f %s", v, units[u]);
}

static int describe_not_image(img_image *im)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, FMT_SNIFF_FOREIGN, &p, &avail);
	if (rc < 0)
		return rc;
	const char *what = fmt_describe_foreign(p, avail);
	if (avail == 0)
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 1, 0, "%s: %s%s%s", im->path, what,
				   strcmp(im->layers, "file") ? " after " : "",
				   strcmp(im->layers, "file") ? im->layers : "");
	/* a filesystem: perhaps a raw image (partclone.dd, dd) with another name */
	const char *raw_hint = fmt_content_of(p, avail)->fs
				       ? "; a raw partition image (partclone.dd, dd)? pass --raw" : "";
	return img_err_set(&im->err, IMG_E_FORMAT, 0, 1, 0, "%s: %s (first bytes %02x %02x %02x %02x%s%s)%s",
			   im->path, what, avail > 0 ? p[0] : 0, avail > 1 ? p[1] : 0,
			   avail > 2 ? p[2] : 0, avail > 3 ? p[3] : 0,
			   strcmp(im->layers, "file") ? ", after " : "",
			   strcmp(im->layers, "file") ? im->layers : "", raw_hint);
}

/* --raw on bytes that carry an image magic: the magic is the truth, and
 * writing the image file's own bytes to a partition would destroy it. */
static int refuse_raw_option(img_image *im)
{
	const char *name = im->fmt->name;
	im->fmt = NULL;  /* nothing of it was opened */
	return img_err_set(&im->err, IMG_E_USAGE, 0, 1, 0,
			   "%s: --raw given, but this is a %s image (its magic at byte 0 of the %s "
			   "data); leave out --raw",
			   im->path, name, strchr(im->layers, '+') ? "decoded" : "image");
}

static img_image *image_new(const char *name, const img_options *opt, img_err *err)
{
	img_image *im = calloc(1, sizeof *im);
	if (!im) {
		img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", name);
		return NULL;
	}
	if (opt)
		im->opt = *opt;
	else
		img_options_init(&im->opt);
	snprintf(im->path, sizeof im->path, "%s", strcmp(name, "-") ? name : "(stdin)");
	return im;
}

/* Detect the format on the open stack and read its header. */
static int image_finish_open(img_image *im, int rc, img_image **out, img_err *err)
{
	if (rc == IMG_OK) {
		const uint8_t *p;
		size_t avail;
		rsrc_layers_of(im->s, &im->stack);  /* before a format stacks its own layers */
		rc = stream_peek(im->s, 64, &p, &avail);
		if (rc >= 0) {
			im->fmt = fmt_choose(p, avail, im->opt.raw || fmt_raw_name(im->path));
			if (im->fmt && im->fmt != &fmt_raw && im->opt.raw)
				rc = refuse_raw_option(im);
			else
				rc = im->fmt ? im->fmt->open(im) : describe_not_image(im);
		}
	}
	if (rc < 0) {
		*err = im->err;
		if (err->code == IMG_OK)
			img_err_set(err, rc, 0, 0, 0, "%s: cannot open the image", im->path);
		img_close(im);
		return rc;
	}
	im->info.format = im->fmt->name;
	im->info.layers = im->layers;
	im->info.path = im->path;
	im->field_list.fields = im->fields;
	*out = im;
	return IMG_OK;
}

void img_open_for_random(void)
{
	codec_units_parallel(0);
}

int img_open(const char *path, const img_options *opt, img_image **out, img_err *err)
{
	char resolved[1100];
	path = stream_resolve_name(path, resolved, sizeof resolved);
	img_image *im = image_new(path, opt, err);
	if (!im)
		return IMG_E_IO;
	int rc = stream_open_stack(path, &im->err, fmt_is_image, im->layers, sizeof im->layers, &im->s);
	return image_finish_open(im, rc, out, err);
}

int img_open_source(img_stream *src, const char *name, const img_options *opt, img_image **out,
		    img_err *err)
{
	img_image *im = image_new(name, opt, err);
	if (!im) {
		stream_close(src);
		return IMG_E_IO;
	}
	for (img_stream *l = src; l; l = l->up) {
		l->err = &im->err;
		l->path = im->path;
	}
	snprintf(im->layers, sizeof im->layers, "%s", src->ops->name);
	int rc = stream_stack_on(src, fmt_is_image, im->layers, sizeof im->layers, &im->s);
	return image_finish_open(im, rc, out, err);
}

void img_close(img_image *im)
{
	if (!im)
		return;
	if (im->fmt && im->fmt->close)
		im->fmt->close(im);
	stream_close(im->s);
	rsrc_close(im->rs);
	free(im);
}

const img_err *img_error(const img_image *im) { return &im->err; }
const img_info *img_get_info(const img_image *im) { return &im->info; }
const img_field_list *img_get_fields(const img_image *im) { return &im->field_list; }
uint64_t img_blocks_done(const img_image *im) { return im->blocks_done; }
uint64_t img_bad_groups(const img_image *im) { return im->bad_groups; }

int img_next_run(img_image *im, img_run *run)
{
	if (im->err.code != IMG_OK && im->err.code != IMG_E_CHECKSUM)
		return im->err.code;
	memset(run, 0, sizeof *run);
	return im->fmt->next_run(im, run);
}

int img_next_runs(img_image *im, img_run *runs, size_t max, size_t *n)
{
	*n = 0;
	if (max == 0)
		return IMG_E_USAGE;
	if (im->err.code != IMG_OK && im->err.code != IMG_E_CHECKSUM)
		return im->err.code;
	memset(runs, 0, max * sizeof *runs);  /* fields a format does not set are 0 */
	if (im->fmt->next_batch)
		return im->fmt->next_batch(im, runs, max, n);
	int rc = im->fmt->next_run(im, &runs[0]);
	if (rc == IMG_OK)
		*n = 1;
	return rc;
}

int img_reads_file(const img_image *im, uint64_t dev, uint64_t ino)
{
	if (strcmp(im->path, "(stdin)") == 0)
		return 0;
	char **names;
	size_t count;
	if (stream_source_names(im->path, &names, &count) != IMG_OK)
		return 1;  /* cannot tell: the caller must not overwrite */
	int hit = 0;
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		if (!hit && stat(names[i], &st) == 0) {
			if (S_ISBLK(st.st_mode) && ino == 0)
				hit = (uint64_t)st.st_rdev == dev;
			else
				hit = (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
		}
		free(names[i]);
	}
	free(names);
	return hit;
}

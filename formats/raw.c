/*
 * formats/raw.c - raw partition images: the bytes of a partition with no
 * header at all, as partclone.dd and dd write them (Clonezilla's
 * NAME.dd-ptcl-img.* and NAME.dd-img.* files). With no magic to find, this
 * is the one format chosen by the file name (fmt_raw_name) or by --raw;
 * compression and split pieces below it are still found by their bytes.
 *
 * There is no used-block map and no checksum: the walk hands out every
 * byte, in runs of up to RAW_RUN bytes, and random reads are reads of the
 * (decoded) bytes at the same offset. The size is the size of the file(s),
 * or for a compressed image the decoded size: known only after a decode to
 * the end (img_options.raw_size, the walk, or img_random_open).
 *
 * Not here: how bytes are read (io/), what they look like (detect.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"

/* Largest run handed out at once. */
#define RAW_RUN ((size_t)1 << 20)

struct raw_state {
	uint64_t size;       /* bytes of the partition, when size_known */
	int size_known;
	uint64_t done;       /* bytes handed out */
	uint64_t fs_size;    /* the filesystem's own size by its superblock, 0 if unknown */
	const char *what;    /* what the bytes look like */
	size_t pending;      /* bytes of the last run, consumed at the next call */
	int finished;
	int drained;         /* raw_size used the only stream up (stdin) */
	char fs[24];
};

/* ---- the name --------------------------------------------------------------- */

static int is_compressor_suffix(const char *s, size_t n)
{
	static const char *const names[] = { "gz", "bz2", "zst", "xz", "lzma", "lz4", "lzo",
					     "lz", "lzip", "lrz", "uncomp" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
			return 1;
	return 0;
}

/* split(1)'s piece suffixes: two or more lowercase letters (aa, ab, ..., aaa). */
static int is_split_suffix(const char *s, size_t n)
{
	if (n < 2)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return 0;
	return 1;
}

static int is_dd_suffix(const char *s, size_t n)
{
	return (n == 6 && memcmp(s, "dd-img", 6) == 0) || (n == 11 && memcmp(s, "dd-ptcl-img", 11) == 0);
}

int fmt_raw_name(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t end = strlen(base);
	int last = 1;  /* only the last suffix may be a split suffix */
	for (;;) {
		const char *dot = base + end - (end > 0);
		while (dot > base && *dot != '.')
			dot--;
		if (dot == base)
			return 0;
		const char *sfx = dot + 1;
		size_t n = (size_t)(base + end - sfx);
		if (is_dd_suffix(sfx, n))
			return 1;
		if (!is_compressor_suffix(sfx, n) && !(last && is_split_suffix(sfx, n)))
			return 0;
		end = (size_t)(dot - base);
		last = 0;
	}
}

/* ---- open ------------------------------------------------------------------- */

static int is_compressed(const img_image *im)
{
	return strchr(im->layers, '+') != NULL;
}

/* Can the bytes be read again from the start by name (a file or split set,
 * not standard input or a caller's stream)? */
static int from_files(const img_image *im)
{
	return strncmp(im->layers, "file", 4) == 0 || strncmp(im->layers, "split", 5) == 0;
}

/* The size of the file(s) of an uncompressed image (0 when they have none,
 * e.g. a pipe given by name). */
static int file_size(img_image *im, uint64_t *size)
{
	img_rsrc *rs = NULL;
	int rc = rsrc_open(im->path, &im->err, &rs);
	if (rc != IMG_OK)
		return rc;
	*size = rsrc_size(rs);
	rsrc_close(rs);
	return IMG_OK;
}

/* Decode the image to its end to learn its size: a second stack over the
 * file(s), or, from standard input, the one stream itself (used up). */
static int decoded_size(img_image *im, struct raw_state *st, uint64_t *size)
{
	uint64_t skipped = 0;
	if (!from_files(im)) {
		st->drained = 1;
		int rc = stream_skip(im->s, UINT64_MAX, &skipped);
		*size = skipped;
		return rc < 0 ? rc : IMG_OK;
	}
	img_stream *s = NULL;
	char layers[96];
	int rc = stream_open_stack(im->path, &im->err, fmt_is_image, layers, sizeof layers, &s);
	if (rc == IMG_OK)
		rc = stream_skip(s, UINT64_MAX, &skipped);
	stream_close(s);
	*size = skipped;
	return rc < 0 ? rc : IMG_OK;
}

static int raw_learn_size(img_image *im, struct raw_state *st)
{
	int rc = IMG_OK;
	if (!is_compressed(im) && from_files(im)) {
		rc = file_size(im, &st->size);
		st->size_known = rc == IMG_OK && st->size > 0;
	} else if (im->opt.raw_size) {
		rc = decoded_size(im, st, &st->size);
		st->size_known = rc == IMG_OK;
	}
	return rc;
}

/* A byte count as "33,554,432 bytes (32.0 MB)", with a comment (may be NULL). */
static void bytes_field(img_image *im, const char *label, const char *key, uint64_t n,
			const char *comment)
{
	char a[40], b[40];
	img_fmt_thousands(a, sizeof a, n);
	img_fmt_human(b, sizeof b, n);
	img_field *f = fmt_field_num(im, label, key, n, "%s bytes (%s)", a, b);
	if (f)
		f->comment = comment;
}

static void raw_fields(img_image *im, const struct raw_state *st, const struct fmt_content *c)
{
	im->field_list.title = "Raw Partition Image";
	im->field_list.label_width = 11;
	im->field_list.separator = "";
	fmt_field(im, "image type", "image_type", "raw partition bytes, no header (partclone.dd, dd)");
	if (st->size_known)
		bytes_field(im, "size", "size", st->size,
			    is_compressed(im) ? "counted by decoding the whole image"
			    : !from_files(im) ? "counted by reading the whole stream" : NULL);
	else
		fmt_field(im, "size", "size", "unknown (%s)",
			  is_compressed(im) ? "known only after decoding the whole image"
					    : "read from a stream");
	fmt_field(im, "layers", "layers", "%s", im->layers);
	fmt_field(im, "content", "content", "%s", c->what);
	if (st->fs_size)
		bytes_field(im, "fs size", "fs_size", st->fs_size,
			    st->size_known && st->size < st->fs_size
				    ? "MORE than the image holds: truncated, or a split piece missing"
				    : "by the filesystem's own header");
	fmt_field(im, "checksums", "checksums", "none (a raw image carries no checksums)");
}

static int raw_open(img_image *im)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, FMT_SNIFF_FOREIGN, &p, &avail);
	if (rc < 0)
		return rc;
	const struct fmt_content *c = fmt_content_of(p, avail);
	if (avail == 0)
		return fmt_fail(im, IMG_E_FORMAT, 0, "an empty %s: no partition bytes",
				is_compressed(im) ? "stream after decoding" : "file");
	if (c->compressed)
		return fmt_fail(im, IMG_E_FORMAT, 0, "%s", fmt_describe_foreign(p, avail));
	struct raw_state *st = calloc(1, sizeof *st);
	if (!st)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	im->priv = st;
	snprintf(st->fs, sizeof st->fs, "%s", c->fs ? c->fs : "unknown");
	st->fs_size = c->fs_size ? c->fs_size(p, avail) : 0;
	st->what = c->what;
	rc = raw_learn_size(im, st);  /* p is not used after this: decoding may move it */
	if (rc < 0)
		return rc;
	raw_fields(im, st, c);
	im->info.format_version = "";
	im->info.fs = st->fs;
	im->info.device_size = st->size_known ? st->size : 0;
	im->info.block_size = 1;  /* a raw image counts bytes */
	im->info.total_blocks = im->info.used_blocks = im->info.device_size;
	im->info.image_data_size = im->info.device_size;
	im->info.checksum = "NONE";
	return IMG_OK;
}

/* ---- the walk --------------------------------------------------------------- */

/* The data ended after st->done bytes: was that its size? */
static int raw_end(img_image *im, struct raw_state *st)
{
	st->finished = 1;
	if (st->done < st->fs_size)
		return fmt_fail(im, IMG_E_TRUNCATED, st->done,
				"the data ends before the end of %s in it (%llu bytes by its own "
				"header; truncated, or the last piece of a split set missing?)",
				st->what, (unsigned long long)st->fs_size);
	if (!st->size_known) {
		st->size = st->done;
		st->size_known = 1;
		im->info.image_data_size = st->done;
		return IMG_EOF;
	}
	if (st->done < st->size)
		return fmt_fail(im, IMG_E_TRUNCATED, st->done,
				"the image ends before its %llu bytes (it changed while being read?)",
				(unsigned long long)st->size);
	return IMG_EOF;
}

static int raw_next_run(img_image *im, img_run *run)
{
	struct raw_state *st = im->priv;
	if (st->pending) {
		stream_consume(im->s, st->pending);
		st->pending = 0;
	}
	if (st->finished)
		return IMG_EOF;
	if (st->drained)
		return img_err_set(&im->err, IMG_E_USAGE, 0, 0, 0,
				   "%s: the stream was read to its end to learn the raw image's size",
				   im->path);
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, RAW_RUN, &p, &avail);
	if (rc < 0)
		return rc;
	if (avail == 0)
		return raw_end(im, st);
	size_t len = avail < RAW_RUN ? avail : RAW_RUN;
	if (st->size_known && st->done + len > st->size)
		return fmt_fail(im, IMG_E_TRAILING, st->size,
				"more bytes than the image's %llu (it changed while being read?)",
				(unsigned long long)st->size);
	run->first_block = run->offset = st->done;
	run->nblocks = len;
	run->len = len;
	run->data = p;
	st->pending = len;
	st->done += len;
	im->blocks_done += len;
	if (!st->size_known)  /* the partition is at least this large */
		im->info.device_size = im->info.total_blocks = im->info.used_blocks = st->done;
	return IMG_OK;
}

/* ---- random access ---------------------------------------------------------- */

/* Nothing to index: byte N of the partition is byte N of the (decoded) data. */
static int raw_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
			   size_t saved_len, uint8_t **payload, size_t *payload_len)
{
	(void)o, (void)saved, (void)saved_len, (void)payload, (void)payload_len;
	struct raw_state *st = im->priv;
	uint64_t size = rsrc_size(im->rs);
	if (size == 0)
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0, "%s: no bytes to read at random",
				   im->path);
	st->size = size;
	st->size_known = 1;
	im->info.device_size = im->info.total_blocks = im->info.used_blocks = size;
	im->info.image_data_size = size;
	return IMG_OK;
}

static int raw_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err)
{
	return fmt_pread(im, buf, len, off, "the data", err);
}

static int raw_bid(const uint8_t *p, size_t n)
{
	(void)p, (void)n;
	return 0;  /* no magic: chosen by name or --raw only (fmt_choose) */
}

static void raw_close(img_image *im)
{
	free(im->priv);
	im->priv = NULL;
}

const struct img_format fmt_raw = {
	.name = "raw",
	.magic_len = 0,
	.bid = raw_bid,
	.open = raw_open,
	.next_run = raw_next_run,
	.close = raw_close,
	.random_open = raw_random_open,
	.read_at = raw_read_at,
};

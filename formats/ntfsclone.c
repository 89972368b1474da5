/*
 * formats/ntfsclone.c - ntfsclone special images (`ntfsclone --save-image`),
 * format 10.0 and 10.1: the 50-byte little-endian header, the padding up to
 * offset_to_image_data, and the command stream (0x00 GAP + s64 count,
 * 0x01 NEXT + one cluster) walked as one run per NEXT record. Layout:
 * ../shared/FORMATS.md section 2.
 *
 * Runs point into the stream buffer (never copied). Records are one cluster
 * each and are not contiguous in the stream (a command byte sits between
 * two clusters), so next_batch hands out every whole record visible in a
 * window of about NC_WINDOW bytes at once; all those pointers stay valid
 * until the next call, which consumes them first.
 *
 * End of the stream: format 10.1 ends right after the NEXT record of the
 * backup boot sector (cluster nr_clusters); 10.0 ends at EOF once pos has
 * reached nr_clusters. Metadata images (`--metadata --save-image`) seek
 * backwards with negative GAPs and may repeat clusters: their runs come in
 * stream order, NOT ascending; writing them at their offsets in that order
 * (later records win) gives ntfsclone's restore. st->walk.unordered records that
 * this happened. The format has no checksums: verify checks structure only.
 *
 * Random access (the run index, img_read_at): ntfsclone_access.c; the
 * decoding of one record, which both use: ntfsclone_layout.c.
 *
 * Not here: legacy images older than 10.0 (host byte order, 46-byte header),
 * which are rejected; decompression (io/); printing (the command layer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntfsclone.h"

#define NC_MAGIC "\0ntfsclone-image"
#define NC_MAGIC_LEN 16
#define NC_HEADER_SIZE 50           /* magic .. offset_to_image_data */
#define NC_LEGACY_HEADER_SIZE 46    /* up to inuse: what every version shares */
#define NC_MIN_CLUSTER 512
#define NC_MAX_CLUSTER ((uint32_t)2 << 20)  /* NTFS allows up to 2 MiB clusters */
/* Largest offset_to_image_data accepted: current writers use 56. */
#define NC_MAX_DATA_OFFSET 4096
/* Bytes looked at per batch (at least one whole record more than this). */
#define NC_WINDOW ((size_t)1 << 20)

static int nc_bid(const uint8_t *p, size_t n)
{
	return n >= NC_MAGIC_LEN && memcmp(p, NC_MAGIC, NC_MAGIC_LEN) == 0;
}

static void add_fields(img_image *im, const struct nc_state *st, unsigned major)
{
	char a[40], b[40];
	im->field_list.title = "NtfsClone Header";
	im->field_list.label_width = 20;
	im->field_list.separator = ": ";
	fmt_field_num(im, "major_ver", "major_ver", major, "%u", major);
	fmt_field_num(im, "minor_ver", "minor_ver", st->lay.minor, "%u", st->lay.minor);
	img_fmt_thousands(a, sizeof a, st->lay.cs);
	fmt_field_num(im, "cluster_size", "cluster_size", st->lay.cs, "%s", a);
	img_fmt_thousands(a, sizeof a, st->lay.device_size);
	img_fmt_human(b, sizeof b, st->lay.device_size);
	fmt_field_num(im, "device_size", "device_size", st->lay.device_size, "%s (%s)", a, b);
	img_fmt_thousands(a, sizeof a, st->lay.nr_clusters);
	fmt_field_num(im, "nr_clusters", "nr_clusters", st->lay.nr_clusters, "%s", a);
	img_fmt_thousands(a, sizeof a, st->lay.inuse);
	img_fmt_human(b, sizeof b, st->lay.inuse * st->lay.cs);  /* inuse <= nr+1: no overflow */
	fmt_field_num(im, "inuse", "inuse", st->lay.inuse, "%s (%s)", a, b);
	fmt_field_num(im, "offset_to_image_data", "offset_to_image_data", st->lay.data_offset, "%u",
		      st->lay.data_offset);
}

/* Check every header field; h holds NC_HEADER_SIZE bytes. */
static int check_header(img_image *im, struct nc_state *st, const uint8_t *h)
{
	unsigned major = h[16];
	st->lay.minor = h[17];
	if (major < 10)
		return fmt_fail(im, IMG_E_FORMAT, 16,
				"legacy ntfsclone image (version byte %u.%u: written before ntfsclone "
				"image format 10.0 of 2006, in the creator's byte order) is not supported; "
				"restore it with ntfsclone",
				major, st->lay.minor);
	if (major > 10 || st->lay.minor > 1)
		return fmt_fail(im, IMG_E_FORMAT, 16,
				"ntfsclone image format %u.%u is not supported (imgbk reads 10.0 and 10.1)",
				major, st->lay.minor);
	st->lay.cs = get_le32(h + 18);
	st->lay.device_size = get_le64(h + 22);
	st->lay.nr_clusters = get_le64(h + 30);
	st->lay.inuse = get_le64(h + 38);
	st->lay.data_offset = get_le32(h + 46);
	if (st->lay.cs < NC_MIN_CLUSTER || st->lay.cs > NC_MAX_CLUSTER || (st->lay.cs & (st->lay.cs - 1)))
		return fmt_fail(im, IMG_E_CORRUPT, 18,
				"cluster size %u is not a power of two from 512 to 2 MiB", st->lay.cs);
	if (st->lay.device_size == 0 || st->lay.device_size > (uint64_t)INT64_MAX)
		return fmt_fail(im, IMG_E_CORRUPT, 22, "device size %llu is out of range",
				(unsigned long long)st->lay.device_size);
	uint64_t volume;
	if (st->lay.nr_clusters == 0 || st->lay.nr_clusters > (uint64_t)INT64_MAX ||
	    __builtin_mul_overflow(st->lay.nr_clusters, (uint64_t)st->lay.cs, &volume) ||
	    volume > st->lay.device_size)
		return fmt_fail(im, IMG_E_CORRUPT, 30,
				"%llu clusters of %u bytes do not fit the device size %llu",
				(unsigned long long)st->lay.nr_clusters, st->lay.cs,
				(unsigned long long)st->lay.device_size);
	if (st->lay.inuse > st->lay.nr_clusters + 1)
		return fmt_fail(im, IMG_E_CORRUPT, 38, "%llu clusters in use exceed the %llu clusters",
				(unsigned long long)st->lay.inuse, (unsigned long long)st->lay.nr_clusters);
	if (st->lay.data_offset < NC_HEADER_SIZE || st->lay.data_offset > NC_MAX_DATA_OFFSET)
		return fmt_fail(im, IMG_E_CORRUPT, 46,
				"offset to image data %u is out of range (%d to %d)", st->lay.data_offset,
				NC_HEADER_SIZE, NC_MAX_DATA_OFFSET);
	st->lay.end_pos = st->lay.nr_clusters + (st->lay.minor >= 1);
	snprintf(st->lay.version, sizeof st->lay.version, "%u.%u", major, st->lay.minor);

	img_info *info = &im->info;
	info->format_version = st->lay.version;
	info->fs = "NTFS";
	info->device_size = st->lay.device_size;
	info->block_size = st->lay.cs;
	info->total_blocks = st->lay.end_pos;  /* 10.1: the backup boot sector cluster too */
	info->used_blocks = st->lay.inuse;
	info->checksum = "NONE";
	info->read_check = "nothing: ntfsclone images carry no data checksums";
	info->has_checksums = 0;
	info->checksums_chained = 0;
	info->image_data_size = 0;  /* depends on the number of GAP records */
	add_fields(im, st, major);
	return IMG_OK;
}

static int nc_open(img_image *im)
{
	struct nc_state *st = calloc(1, sizeof *st);
	if (!st)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	im->priv = st;
	const uint8_t *h;
	size_t avail;
	int rc = stream_peek(im->s, NC_HEADER_SIZE, &h, &avail);
	if (rc < 0)
		return rc;
	if (avail >= 18 && h[16] < 10)
		return check_header(im, st, h);  /* rejects the legacy format by its version */
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, avail, "image truncated inside the %d-byte header",
				NC_HEADER_SIZE);
	rc = check_header(im, st, h);
	if (rc < 0)
		return rc;
	stream_consume(im->s, NC_HEADER_SIZE);
	uint64_t skipped = 0;
	rc = stream_skip(im->s, st->lay.data_offset - NC_HEADER_SIZE, &skipped);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, NC_HEADER_SIZE + skipped,
				"image truncated in the header padding (the image data starts at %u)",
				st->lay.data_offset);
	return IMG_OK;
}

static int check_end(img_image *im, struct nc_state *st)
{
	const uint8_t *p;
	size_t avail;
	st->walk.finished = 1;
	int rc = stream_peek(im->s, 1, &p, &avail);
	if (rc < 0)
		return rc;
	if (avail > 0)
		return fmt_fail(im, IMG_E_TRAILING, im->s->offset,
				"trailing data after the last record (cluster position %llu of %llu: the "
				"image should end here)",
				(unsigned long long)st->walk.pos, (unsigned long long)st->lay.end_pos);
	return IMG_EOF;
}

/* The data ends at a record boundary before end_pos. */
static int truncated_at_boundary(img_image *im, const struct nc_state *st, uint64_t at)
{
	if (st->lay.minor >= 1 && st->walk.pos == st->lay.nr_clusters)
		return fmt_fail(im, IMG_E_TRUNCATED, at,
				"image truncated: the record of the backup boot sector (cluster %llu) "
				"is missing",
				(unsigned long long)st->walk.pos);
	return fmt_fail(im, IMG_E_TRUNCATED, at,
			"image truncated: the records stop at cluster position %llu of %llu",
			(unsigned long long)st->walk.pos, (unsigned long long)st->lay.end_pos);
}

static void put_run(img_image *im, const struct nc_state *st, img_run *r, const uint8_t *data,
		    uint64_t len)
{
	r->first_block = st->walk.pos;
	r->nblocks = 1;
	r->offset = st->walk.pos * st->lay.cs;
	r->len = (size_t)len;
	r->data = data;
	r->verified = 0;
	im->blocks_done++;
}

/*
 * Parse whole records in p[0..avail) into runs[*n..max). Stops at the end
 * of the stream, at a record that is not fully visible, or before a bad
 * record. A bad record is reported only when no run was collected: the runs
 * before it are handed out first and the next call, starting at it, reports
 * it. @return IMG_OK with *used = bytes parsed, or a negative status.
 */
static int parse_window(img_image *im, struct nc_state *st, const uint8_t *p, size_t avail,
			int at_eof, img_run *runs, size_t max, size_t *n, size_t *used)
{
	size_t off = 0;
	uint64_t base = im->s->offset;
	int rc = IMG_OK;
	char text[200];
	while (*n < max) {
		if (st->walk.pos == st->lay.end_pos) {
			st->walk.ended = 1;
			break;
		}
		size_t left = avail - off;
		uint64_t at = base + off;
		if (left == 0) {
			if (at_eof && *n == 0)
				rc = truncated_at_boundary(im, st, at);
			break;
		}
		struct nc_record r;
		nc_decode_record(&st->lay, st->walk.pos, p + off, left, &r);
		if (r.kind == NC_REC_SHORT) {
			if (at_eof && *n == 0)
				rc = fmt_fail(im, IMG_E_TRUNCATED, at + left,
					      "image truncated inside a GAP record at cluster position %llu",
					      (unsigned long long)st->walk.pos);
			break;
		}
		if (r.kind == NC_REC_GAP) {
			if (r.to < st->walk.pos)
				st->walk.unordered = 1;
			st->walk.pos = r.to;
		} else if (r.kind == NC_REC_NEXT) {
			if (left < r.size) {
				if (at_eof && *n == 0)
					rc = fmt_fail(im, IMG_E_TRUNCATED, at + left,
						      "image truncated in the data of cluster %llu "
						      "(%zu of %llu bytes present)",
						      (unsigned long long)st->walk.pos, left - 1,
						      (unsigned long long)r.len);
				break;
			}
			if (r.len > 0)
				put_run(im, st, &runs[(*n)++], p + off + 1, r.len);
			st->walk.pos++;
		} else {
			if (*n == 0)
				rc = fmt_fail(im, IMG_E_CORRUPT, at, "%s",
					      nc_bad_record_text(text, sizeof text, &st->lay, st->walk.pos,
								 p[off], &r));
			break;
		}
		off += r.size;
	}
	*used = off;
	return rc;
}

static int nc_next_batch(img_image *im, img_run *runs, size_t max, size_t *n)
{
	struct nc_state *st = im->priv;
	*n = 0;
	if (st->walk.pending) {
		stream_consume(im->s, st->walk.pending);
		st->walk.pending = 0;
	}
	if (st->walk.finished)
		return IMG_EOF;
	size_t window = NC_WINDOW > (size_t)st->lay.cs + 1 ? NC_WINDOW : (size_t)st->lay.cs + 1;
	for (;;) {
		if (st->walk.ended)
			return check_end(im, st);
		const uint8_t *p;
		size_t avail, used = 0;
		int rc = stream_peek(im->s, window, &p, &avail);
		if (rc < 0)
			return rc;
		rc = parse_window(im, st, p, avail, rc == IMG_EOF, runs, max, n, &used);
		if (rc < 0)
			return rc;
		if (*n > 0) {
			st->walk.pending = used;  /* the runs point into these bytes */
			return IMG_OK;
		}
		if (used == 0 && !st->walk.ended)  /* cannot happen: a window holds a whole record */
			return fmt_fail(im, IMG_E_CORRUPT, im->s->offset, "no record could be read");
		stream_consume(im->s, used);  /* GAP records only: nothing handed out */
	}
}

static int nc_next_run(img_image *im, img_run *run)
{
	size_t n;
	return nc_next_batch(im, run, 1, &n);
}

static void nc_close(img_image *im)
{
	struct nc_state *st = im->priv;
	if (st)
		nc_random_free(&st->acc);
	free(st);
	im->priv = NULL;
}

const struct img_format fmt_ntfsclone = {
	.name = "ntfsclone",
	.magic_len = NC_MAGIC_LEN,
	.bid = nc_bid,
	.open = nc_open,
	.next_run = nc_next_run,
	.next_batch = nc_next_batch,
	.close = nc_close,
	.random_open = nc_random_open,
	.read_at = nc_read_at,
};

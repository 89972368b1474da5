/*
 * io/zseek_xz.c - random access into xz data (zseek.h). Every xz block is
 * an access point without state: its compressed offset and decoded offset
 * come from the streams' indexes, read with liblzma's file-info decoder
 * (footer, index and header of each concatenated stream, stream padding),
 * which checks the indexes against the file size. Nothing is decompressed
 * by the scan; it reads each block header once to check it against the
 * index and the memory limit. A decoder runs lzma_block_decoder over one
 * block, which checks the block's sizes and its integrity check (CRC32,
 * CRC64, SHA-256) as xz does, and stops at the block's end.
 *
 * A file that is one block (xz without -T) of more than XZ_ONE_BLOCK_MAX
 * decoded bytes cannot be read at random: the scan says how to recompress
 * it (IMG_E_FORMAT).
 *
 * Point fields: aux = the stream's check type, aux2 = the block's decoded
 * size. Empty blocks get no point.
 *
 * Not here: the streaming xz layer (xz.c), lzma-alone (.lzma has no blocks),
 * the list of points (zseek.c).
 */
#include <errno.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_util.h"
#include "zseek.h"

/* The most decoded bytes of the only block of a file that still counts as
 * readable at random (a read decodes up to this much). */
#define XZ_ONE_BLOCK_MAX ((uint64_t)64 << 20)
/* Dictionaries as in xz.c: the xz tool writes at most 1.5 GiB. */
#define XZ_MEMLIMIT ((uint64_t)1600 << 20)
/* Memory for the indexes of all streams (about 16 bytes per block). */
#define XZ_INDEX_MEMLIMIT ((uint64_t)1 << 30)
#define XZ_READ_STEP ((size_t)64 << 10)
#define XZ_HEADER_MAX 1024
#define XZ_TAIL_LOOK 4096

static int xz_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "xz", at, detail);
}

static int xz_lib_error(img_err *err, const char *name, uint64_t at, lzma_ret ret)
{
	if (ret == LZMA_MEM_ERROR)
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at,
				   "%s: xz: out of memory in liblzma at byte %llu of the compressed stream",
				   name, (unsigned long long)at);
	return xz_corrupt(err, name, at, codec_lzma_error_name(ret));
}

static int xz_truncated(img_err *err, const char *name, uint64_t at)
{
	return zs_truncated(err, name, "xz", "xz stream", at);
}

/* ---- scan: the indexes ----------------------------------------------------------- */

/* Does the file end (before zero padding) with a stream footer's "YZ"?
 * @return 1 yes, 0 no, -1 cannot tell (only zeros in the last bytes). */
static int xz_ends_with_footer(img_rsrc *raw, uint64_t size)
{
	uint8_t tail[XZ_TAIL_LOOK];
	uint64_t from = size > sizeof tail ? size - sizeof tail : 0;
	size_t got = 0;
	img_err scratch = { 0 };
	if (rsrc_pread(raw, tail, (size_t)(size - from), from, &got, &scratch) != IMG_OK)
		return -1;
	while (got > 0 && tail[got - 1] == 0)
		got--;
	if (got == 0)
		return -1;
	return got >= 2 && tail[got - 2] == 'Y' && tail[got - 1] == 'Z';
}

/* The file-info decoder failed at `at` with ret: say so, as truncation when
 * the file does not end with a stream footer (liblzma reads the footers
 * from the end, so it cannot tell a cut file from bytes after the data). */
static int xz_index_error(struct zs_scan *sc, uint64_t size, uint64_t at, lzma_ret ret)
{
	if (ret == LZMA_FORMAT_ERROR && at <= 12)
		return img_err_set(sc->err, IMG_E_FORMAT, 0, 1, 0, "%s: xz: not an xz stream at byte 0",
				   sc->name);
	if (ret != LZMA_MEM_ERROR && xz_ends_with_footer(sc->raw, size) == 0)
		return img_err_set(sc->err, IMG_E_TRUNCATED, 0, 1, size,
				   "%s: xz: no xz stream footer at the end, byte %llu (truncated, or other "
				   "bytes follow the last stream)",
				   sc->name, (unsigned long long)size);
	if (ret == LZMA_MEMLIMIT_ERROR)
		return xz_corrupt(sc->err, sc->name, at, "the index needs more than 1 GiB of memory");
	return xz_lib_error(sc->err, sc->name, at, ret);
}

/* Read the indexes of every stream (footers first, seeking as liblzma asks). */
static int xz_read_index(struct zs_scan *sc, lzma_index **idx)
{
	uint64_t size = rsrc_size(sc->raw), pos = 0;
	uint8_t *buf = malloc(XZ_READ_STEP);
	lzma_stream z = LZMA_STREAM_INIT;
	if (!buf || lzma_file_info_decoder(&z, idx, XZ_INDEX_MEMLIMIT, size) != LZMA_OK) {
		free(buf);
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: xz: cannot set up liblzma", sc->name);
	}
	int rc = IMG_OK;
	for (;;) {
		if (z.avail_in == 0 && pos < size) {
			size_t want = size - pos < XZ_READ_STEP ? (size_t)(size - pos) : XZ_READ_STEP, got = 0;
			if ((rc = rsrc_pread(sc->raw, buf, want, pos, &got, sc->err)) != IMG_OK)
				break;
			z.next_in = buf;
			z.avail_in = got;
			pos += got;
			zs_scan_progress(sc, pos);
		}
		lzma_ret ret = lzma_code(&z, pos >= size ? LZMA_FINISH : LZMA_RUN);
		if (ret == LZMA_SEEK_NEEDED) {
			pos = z.seek_pos;
			z.avail_in = 0;
		} else if (ret == LZMA_STREAM_END) {
			break;
		} else if (ret != LZMA_OK || (z.avail_in == 0 && pos >= size)) {
			rc = xz_index_error(sc, size, pos - z.avail_in, ret == LZMA_OK ? LZMA_BUF_ERROR : ret);
			break;
		}
	}
	lzma_end(&z);
	free(buf);
	if (rc != IMG_OK && *idx) {
		lzma_index_end(*idx, NULL);
		*idx = NULL;
	}
	return rc;
}

/* ---- block headers (scan and decoder) -------------------------------------------- */

static void xz_free_filters(lzma_filter *filters)
{
	for (size_t i = 0; filters[i].id != LZMA_VLI_UNKNOWN; i++) {
		free(filters[i].options);
		filters[i].options = NULL;
	}
}

/*
 * Decode the block header at hdr (n bytes visible, at compressed offset at)
 * into block/filters. usize: the block's decoded size from the index (checked
 * against the header when it has one, else set). On success the caller frees
 * the filters' options (xz_free_filters).
 */
static int xz_block_header(const char *name, const uint8_t *hdr, size_t n, uint64_t at, lzma_check check,
			   uint64_t usize, lzma_block *block, lzma_filter *filters, img_err *err)
{
	memset(block, 0, sizeof *block);
	block->version = 1;
	block->check = check;
	block->filters = filters;
	filters[0].id = LZMA_VLI_UNKNOWN;
	if (n == 0)
		return xz_truncated(err, name, at);
	if (hdr[0] == 0)
		return xz_corrupt(err, name, at, "an index where the index says a block starts");
	block->header_size = lzma_block_header_size_decode(hdr[0]);
	if (n < block->header_size)
		return xz_truncated(err, name, at + n);
	lzma_ret ret = lzma_block_header_decode(block, NULL, hdr);
	if (ret != LZMA_OK)
		return xz_lib_error(err, name, at, ret);
	const char *bad = NULL;
	if (block->uncompressed_size != LZMA_VLI_UNKNOWN && block->uncompressed_size != usize)
		bad = "the block header's decoded size differs from the index";
	else if (lzma_raw_decoder_memusage(filters) > XZ_MEMLIMIT)
		bad = "the block needs more than 1600 MiB of memory";
	if (bad) {
		xz_free_filters(filters);
		return xz_corrupt(err, name, at, bad);
	}
	block->uncompressed_size = usize;
	return IMG_OK;
}

/* Read and check the header of the block the iterator is at. */
static int xz_check_block(struct zs_scan *sc, const lzma_index_iter *it, uint8_t *hdr)
{
	uint64_t at = it->block.compressed_file_offset;
	size_t got = 0;
	int rc = rsrc_pread(sc->raw, hdr, XZ_HEADER_MAX, at, &got, sc->err);
	if (rc != IMG_OK)
		return rc;
	lzma_block block;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	rc = xz_block_header(sc->name, hdr, got, at, it->stream.flags->check, it->block.uncompressed_size,
			     &block, filters, sc->err);
	if (rc != IMG_OK)
		return rc;
	xz_free_filters(filters);
	if (lzma_block_compressed_size(&block, it->block.unpadded_size) != LZMA_OK)
		return xz_corrupt(sc->err, sc->name, at, "the block header's sizes differ from the index");
	return IMG_OK;
}

/* One block holding more than XZ_ONE_BLOCK_MAX bytes: no way to read it at random. */
static int xz_one_block(struct zs_scan *sc, lzma_index *idx)
{
	uint64_t usize = lzma_index_uncompressed_size(idx);
	lzma_index_iter it;
	size_t nonempty = 0;
	lzma_index_iter_init(&it, idx);
	while (!lzma_index_iter_next(&it, LZMA_INDEX_ITER_NONEMPTY_BLOCK))
		nonempty++;
	if (nonempty != 1 || usize <= XZ_ONE_BLOCK_MAX)
		return IMG_OK;
	char what[80];
	snprintf(what, sizeof what, "one xz block of %llu bytes", (unsigned long long)usize);
	return zs_not_mountable(sc, what);
}

static int xz_add_points(struct zs_scan *sc, lzma_index *idx)
{
	uint8_t *hdr = malloc(XZ_HEADER_MAX);
	if (!hdr)
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: xz: out of memory", sc->name);
	lzma_index_iter it;
	lzma_index_iter_init(&it, idx);
	int rc = IMG_OK;
	while (rc == IMG_OK && !lzma_index_iter_next(&it, LZMA_INDEX_ITER_NONEMPTY_BLOCK)) {
		rc = xz_check_block(sc, &it, hdr);
		struct zs_point p = { .cin = it.block.compressed_file_offset,
				      .uout = it.block.uncompressed_file_offset,
				      .aux = (uint32_t)it.stream.flags->check,
				      .aux2 = it.block.uncompressed_size };
		if (rc == IMG_OK)
			rc = zs_add_point(sc, &p);
		zs_scan_progress(sc, it.block.compressed_file_offset);
	}
	free(hdr);
	return rc;
}

static int xz_scan(struct zs_scan *sc)
{
	lzma_index *idx = NULL;
	int rc = xz_read_index(sc, &idx);
	if (rc != IMG_OK)
		return rc;
	rc = xz_one_block(sc, idx);
	if (rc == IMG_OK)
		rc = xz_add_points(sc, idx);
	sc->usize = lzma_index_uncompressed_size(idx);
	lzma_index_end(idx, NULL);
	return rc;
}

/* ---- decoder --------------------------------------------------------------------- */

struct xz_dec {
	const char *name;
	struct zs_input in;
	lzma_stream z;
	int live;          /* z is set up */
	int ended;         /* the block ended */
	/* liblzma keeps a pointer to the block (it writes the check found) */
	lzma_block block;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
};

static void xz_close(void *dp)
{
	struct xz_dec *d = dp;
	if (d->live)
		lzma_end(&d->z);
	xz_free_filters(d->filters);
	zs_input_free(&d->in);
	free(d);
}

/* Set up lzma_block_decoder for the block whose header is at the input's start. */
static int xz_start_block(struct xz_dec *d, const struct zs_point *p, img_err *err)
{
	int rc = zs_input_fill(&d->in, XZ_HEADER_MAX, err);
	if (rc != IMG_OK)
		return rc;
	rc = xz_block_header(d->name, d->in.buf + d->in.pos, d->in.end - d->in.pos, p->cin,
			     (lzma_check)p->aux, p->aux2, &d->block, d->filters, err);
	if (rc != IMG_OK)
		return rc;
	d->in.pos += d->block.header_size;
	lzma_ret ret = lzma_block_decoder(&d->z, &d->block);
	if (ret != LZMA_OK)
		return xz_lib_error(err, d->name, p->cin, ret);
	d->live = 1;
	return IMG_OK;
}

static int xz_open(img_rsrc *raw, const char *name, const struct zs_point *p, uint64_t next_uout,
		   void **out, img_err *err)
{
	struct xz_dec *d = calloc(1, sizeof *d);
	if (!d)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: xz: out of memory", name);
	d->name = name;
	d->z = (lzma_stream)LZMA_STREAM_INIT;
	d->filters[0].id = LZMA_VLI_UNKNOWN;
	if (p->aux > LZMA_CHECK_ID_MAX) {
		free(d);
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: xz: the access point at decoded byte %llu is damaged", name,
				   (unsigned long long)p->uout);
	}
	int rc = zs_input_init(&d->in, raw, p->cin, (size_t)256 << 10, err);
	if (rc != IMG_OK) {
		free(d);
		return rc;
	}
	rc = xz_start_block(d, p, err);
	if (rc != IMG_OK) {
		xz_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int xz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct xz_dec *d = dp;
	*got = 0;
	while (!d->ended && *got < cap) {
		int rc = zs_input_fill(&d->in, 64 << 10, err);
		if (rc != IMG_OK)
			return rc;
		size_t avail = d->in.end - d->in.pos;
		uint64_t at = d->in.offset + d->in.pos;
		d->z.next_in = d->in.buf + d->in.pos;
		d->z.avail_in = avail;
		d->z.next_out = dst + *got;
		d->z.avail_out = cap - *got;
		lzma_ret ret = lzma_code(&d->z, avail == 0 ? LZMA_FINISH : LZMA_RUN);
		size_t used = avail - d->z.avail_in, made = cap - *got - d->z.avail_out;
		d->in.pos += used;
		*got += made;
		if (ret == LZMA_STREAM_END)
			d->ended = 1;
		else if (ret == LZMA_BUF_ERROR && avail == 0)
			return xz_truncated(err, d->name, at);
		else if (ret != LZMA_OK)
			return xz_lib_error(err, d->name, at + used, ret);
		else if (used == 0 && made == 0 && avail == 0)
			return xz_truncated(err, d->name, at);
	}
	return IMG_OK;
}

const struct zs_ops zs_xz_ops = { xz_scan, xz_open, xz_read, xz_close, 1, NULL };

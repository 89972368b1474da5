/*
 * io/xz.c - xz and lzma-alone (.lzma), with liblzma: the codec's one
 * decoder (zseek.h, zs_ops.start), used for the sequential stream and random
 * reads alike, and the xz scan, which reads the streams' indexes.
 *
 * Started at the start of the data (the sequential stream):
 *  - xz: lzma_stream_decoder_mt with LZMA_CONCATENATED: many streams, many
 *    blocks, stream padding (zeros in multiples of 4, as the xz format
 *    allows). Blocks that carry their sizes (xz -T output) are decoded on up
 *    to XZ_MAX_THREADS threads, within XZ_THREADS_MEMORY (the budget of a
 *    verify or restore), beyond which liblzma waits or falls back to one
 *    thread; the read-ahead layer above keeps one buffer only
 *    (decodes_ahead). Anything after the last stream that is not a stream
 *    or padding is reported by liblzma as corrupt data (IMG_E_CORRUPT, with
 *    the offset), as xz does.
 *  - lzma-alone: lzma_alone_decoder, one stream (the format cannot be
 *    concatenated). After its end, zero bytes up to the end of the input are
 *    padding and any other byte is IMG_E_TRAILING with its offset. It has no
 *    access points: its table entry stacks this decoder as a stream only.
 * Both: an input that ends inside a stream is IMG_E_TRUNCATED.
 *
 * Access points: every xz block, without state: its compressed offset and
 * decoded offset come from the streams' indexes, read with liblzma's
 * file-info decoder (footer, index and header of each concatenated stream,
 * stream padding), which checks the indexes against the file size. Nothing
 * is decompressed by the scan; it reads each block header once to check it
 * against the index and the memory limit. Started at a point, the decoder
 * runs lzma_block_decoder over that block, which checks the block's sizes
 * and its integrity check (CRC32, CRC64, SHA-256) as xz does, and stops at
 * the block's end (self_checked).
 *
 * A file that is one block (xz without -T) of more than XZ_ONE_BLOCK_MAX
 * decoded bytes cannot be read at random: the scan says how to recompress
 * it (IMG_E_FORMAT, the fix from the table entry).
 *
 * Point fields: aux = the stream's check type, aux2 = the block's decoded
 * size; all zeros is the start of the data. Empty blocks get no point.
 *
 * Not here: detecting xz or the lzma-alone heuristic (codecs.c), .lz (lzip),
 * the list of points (zseek.c).
 */
#include <errno.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zseek.h"

#define XZ_MAX_THREADS 8
/* Memory liblzma's threaded decoder may take for its threads: the blocks
 * being decoded (dictionary, compressed input, decoded output) and the
 * decoded ones waiting; beyond it, a thread waits, and a block that needs
 * more on its own is decoded with no thread (xz -6's 24 MiB blocks). The
 * bench's xz -T2 -3 image (12 MiB blocks, 4 MiB dictionary: about 19 MiB a
 * block) needs 38 MiB for two at once: at 36 MiB verify took 5.0-6.2 s
 * against 2.8-3.5 s. The xz tool's own default, a quarter of the RAM, let
 * the output queue grow with the machine's timing: verify peaked at 59 MiB
 * on one bench machine and 106-118 MiB on another. */
#define XZ_THREADS_MEMORY ((uint64_t)40 << 20)
/* Hostile-input limit: a 20-byte .lzma header may ask for a 4 GiB dictionary.
 * The xz tool writes dictionaries of at most 1.5 GiB; more is rejected as
 * "memory usage limit reached" (IMG_E_CORRUPT) instead of allocated. */
#define XZ_MEMLIMIT ((uint64_t)1600 << 20)
/* The most decoded bytes of the only block of a file that still counts as
 * readable at random (a read decodes up to this much). */
#define XZ_ONE_BLOCK_MAX ((uint64_t)64 << 20)
/* Memory for the indexes of all streams (about 16 bytes per block). */
#define XZ_INDEX_MEMLIMIT ((uint64_t)1 << 30)
#define XZ_READ_STEP ((size_t)64 << 10)
#define XZ_HEADER_MAX 1024
#define XZ_TAIL_LOOK 4096

static const char *lzma_error_name(lzma_ret ret)
{
	switch (ret) {
	case LZMA_FORMAT_ERROR: return "file format not recognized";
	case LZMA_OPTIONS_ERROR: return "unsupported compression options";
	case LZMA_DATA_ERROR: return "compressed data is corrupt";
	case LZMA_BUF_ERROR: return "the decoder made no progress";
	case LZMA_MEMLIMIT_ERROR: return "memory usage limit reached";
	case LZMA_MEM_ERROR: return "out of memory";
	case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
	default: return "internal error";
	}
}

static int xz_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "xz", at, detail);
}

/* A failed liblzma call at compressed offset at, for codec "xz" or "lzma". */
static int lib_error(img_err *err, const char *name, const char *codec, uint64_t at, lzma_ret ret)
{
	if (ret == LZMA_MEM_ERROR)
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at,
				   "%s: %s: out of memory in liblzma at byte %llu of the compressed stream",
				   name, codec, (unsigned long long)at);
	return zs_corrupt(err, name, codec, at, lzma_error_name(ret));
}

static int xz_lib_error(img_err *err, const char *name, uint64_t at, lzma_ret ret)
{
	return lib_error(err, name, "xz", at, ret);
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

/* ---- the decoder ------------------------------------------------------------------- */

struct xz_dec {
	const char *name;
	const char *codec;  /* "xz" or "lzma", for messages */
	struct zs_input in;
	lzma_stream z;
	int live;           /* z is set up */
	int alone;          /* lzma-alone, not xz */
	int stream_ended;   /* lzma-alone: the stream ended, only padding may follow */
	int finished;       /* nothing more to decode */
	int idle;           /* calls in a row without progress */
	/* a block (random reads): liblzma keeps a pointer to it (it writes the check found) */
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

static const char *xz_unit(const struct xz_dec *d)
{
	return d->alone ? "lzma stream" : "xz stream";
}

/* The outcome of an lzma_code() call that returned ret, `at` the compressed
 * offset reached, at_eof when the input had ended. */
static int xz_outcome(struct xz_dec *d, lzma_ret ret, uint64_t at, int at_eof, int progress, img_err *err)
{
	if (ret == LZMA_STREAM_END) {
		if (d->alone)
			d->stream_ended = 1;
		else
			d->finished = 1;
		return IMG_OK;
	}
	if (ret == LZMA_OK) {
		d->idle = progress ? 0 : d->idle + 1;
		if (d->idle < 3)  /* liblzma says LZMA_BUF_ERROR on the 2nd idle call */
			return IMG_OK;
		ret = LZMA_BUF_ERROR;
	}
	if (ret == LZMA_BUF_ERROR && at_eof)
		return zs_truncated(err, d->name, d->codec, xz_unit(d), at);
	return lib_error(err, d->name, d->codec, at, ret);
}

/* Run the decoder once over the visible input into dst. */
static int xz_step(struct xz_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	int rc = zs_input_fill(&d->in, 1, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	d->z.next_in = d->in.buf + d->in.pos;
	d->z.avail_in = avail;
	d->z.next_out = dst;
	d->z.avail_out = room;
	lzma_ret ret = lzma_code(&d->z, avail == 0 ? LZMA_FINISH : LZMA_RUN);
	size_t used = avail - d->z.avail_in;
	*made = room - d->z.avail_out;
	d->in.pos += used;
	return xz_outcome(d, ret, zs_input_at(&d->in), avail == 0, used > 0 || *made > 0, err);
}

static int xz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct xz_dec *d = dp;
	*got = 0;
	while (*got < cap && !d->finished) {
		size_t made = 0;
		int rc;
		if (d->stream_ended) {
			rc = zs_input_finish(&d->in, d->name, d->codec, xz_unit(d), err);
			d->finished = rc == IMG_OK;
		} else {
			rc = xz_step(d, dst + *got, cap - *got, &made, err);
		}
		*got += made;
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

/* The xz decoder of a whole file: concatenated streams, threaded. */
static lzma_ret xz_init_decoder(lzma_stream *z)
{
	uint32_t threads = lzma_cputhreads();
	lzma_mt mt = {
		.flags = LZMA_CONCATENATED,
		.threads = threads == 0 ? 1 : threads > XZ_MAX_THREADS ? XZ_MAX_THREADS : threads,
		.timeout = 0,
		.memlimit_threading = XZ_THREADS_MEMORY,
		.memlimit_stop = XZ_MEMLIMIT,
	};
	lzma_ret ret = lzma_stream_decoder_mt(z, &mt);
	if (ret != LZMA_OK)
		ret = lzma_stream_decoder(z, XZ_MEMLIMIT, LZMA_CONCATENATED);
	return ret;
}

/* Set up lzma_block_decoder for the block point p, whose header is at the input. */
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

/* The decoder of the whole data: xz's threaded stream decoder, or lzma-alone's. */
static int xz_start_whole(struct xz_dec *d, img_err *err)
{
	lzma_ret ret = d->alone ? lzma_alone_decoder(&d->z, XZ_MEMLIMIT) : xz_init_decoder(&d->z);
	if (ret != LZMA_OK)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: cannot set up liblzma (error %d)", d->name,
				   d->codec, (int)ret);
	d->live = 1;
	return IMG_OK;
}

static int start_common(const struct zs_start *st, int alone, void **out, img_err *err)
{
	const struct zs_point *p = st->p;
	int at_block = p->cin != 0;
	if ((!at_block && p->uout != 0) || (at_block && (alone || p->aux > LZMA_CHECK_ID_MAX)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: %s: the access point at decoded byte %llu is damaged", st->name,
				   alone ? "lzma" : "xz", (unsigned long long)p->uout);
	struct xz_dec *d = calloc(1, sizeof *d);
	if (!d)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", st->name,
				   alone ? "lzma" : "xz");
	d->name = st->name;
	d->codec = alone ? "lzma" : "xz";
	d->alone = alone;
	d->z = (lzma_stream)LZMA_STREAM_INIT;
	d->filters[0].id = LZMA_VLI_UNKNOWN;
	int rc = zs_input_start(&d->in, st, p->cin, (size_t)256 << 10, err);
	if (rc == IMG_OK)
		rc = at_block ? xz_start_block(d, p, err) : xz_start_whole(d, err);
	if (rc != IMG_OK) {
		xz_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int xz_start(const struct zs_start *st, void **out, img_err *err)
{
	return start_common(st, 0, out, err);
}

static int lzma_start(const struct zs_start *st, void **out, img_err *err)
{
	return start_common(st, 1, out, err);
}

const struct zs_ops zs_xz_ops = { .scan = xz_scan, .read = xz_read, .close = xz_close, .self_checked = 1,
				  .start = xz_start, .decodes_ahead = 1 };
/* lzma-alone: no access points, so a stream only (its table entry's open). */
static const struct zs_ops lzma_ops = { .read = xz_read, .close = xz_close, .start = lzma_start };

int codec_lzma_open(img_stream *up, img_stream **out)
{
	return zs_stream_open(up, "lzma", &lzma_ops, out);
}

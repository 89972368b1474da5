/*
 * io/zseek_zstd.c - random access into zstd data (zseek.h). Every zstd
 * frame is an access point without state; skippable frames (pzstd writes
 * one before each frame) are stepped over. The scan first walks the frames
 * by their headers and block headers (frame ends, truncation, garbage, and
 * a lone frame too large to read at random when it states its size, all
 * found without decoding),
 * then decodes every frame once: that checks each frame's content checksum
 * and content size when it has them (a damaged image fails when it is
 * opened, not with wrong bytes later), and gives the size of frames that
 * do not carry it (pzstd, zstd reading a pipe). A decoder runs
 * ZSTD_decompressStream from a frame's start and stops at its end.
 *
 * As in zstd.c: windows up to 128 MiB (windowLog 27), no dictionaries, zero
 * padding after the last frame, anything else there is IMG_E_TRAILING.
 *
 * A file that is one frame (zstd -T0, Clonezilla's default) of more than
 * ZSTD_ONE_FRAME_MAX decoded bytes cannot be read at random: the scan says
 * how to recompress it (IMG_E_FORMAT).
 *
 * Point fields: aux2 = the frame's compressed size. Empty frames get no point.
 *
 * Not here: the streaming zstd layer (zstd.c), the list of points (zseek.c).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader, ZSTD_frameHeader */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec_util.h"
#include "zseek.h"

#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define ZSTD_SKIPPABLE_MASK 0xFFFFFFF0u
#define ZSTD_SKIPPABLE_MAGIC 0x184D2A50u
#define ZSTD_WINDOW_LOG_LIMIT 27
#define ZSTD_BLOCK_MAX ((uint32_t)128 << 10)
/* The most decoded bytes of the only frame of a file that still counts as
 * readable at random (a read decodes up to this much). */
#define ZSTD_ONE_FRAME_MAX ((uint64_t)64 << 20)
/* Input per ZSTD_decompressStream call: libzstd does not say where in its
 * input an error is, so errors are placed at the start of the step. */
#define ZSTD_STEP ((size_t)128 << 10)
#define ZSTD_UNKNOWN UINT64_MAX
#define ZSTD_OUT_STEP ((size_t)1 << 20)

struct zst_frame {
	uint64_t cin, csize;   /* compressed offset and size */
	uint64_t usize;        /* decoded size, ZSTD_UNKNOWN until learned */
};

struct zst_scan {
	struct zs_scan *sc;
	uint64_t size;         /* compressed bytes */
	struct zst_frame *fr;  /* data frames, in order */
	size_t n, cap;
};

static int zst_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "zstd", at, detail);
}

static int zst_truncated(img_err *err, const char *name, uint64_t at)
{
	return zs_truncated(err, name, "zstd", "zstd frame", at);
}

/* A libzstd error code from a decoding call. */
static int zst_lib_error(img_err *err, const char *name, uint64_t at, size_t ret)
{
	ZSTD_ErrorCode code = ZSTD_getErrorCode(ret);
	if (code == ZSTD_error_memory_allocation)
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at,
				   "%s: zstd: out of memory in libzstd at byte %llu of the compressed stream",
				   name, (unsigned long long)at);
	if (code == ZSTD_error_frameParameter_windowTooLarge)
		return zst_corrupt(err, name, at,
				   "the frame needs a window over 128 MiB (made with zstd --long=28 or more); "
				   "decompress it first: zstd --long=31 -dc IMAGE > IMAGE.img, then mount IMAGE.img");
	return zst_corrupt(err, name, at, ZSTD_getErrorName(ret));
}

static ZSTD_DStream *zst_new_dstream(void)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	if (ds)
		ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_LIMIT);
	return ds;
}

/* ---- scan: the walk over frame and block headers -------------------------------- */

static int zst_pread(struct zst_scan *z, void *buf, size_t len, uint64_t off, size_t *got)
{
	*got = 0;
	if (off >= z->size)
		return IMG_OK;
	if (len > z->size - off)
		len = (size_t)(z->size - off);
	return rsrc_pread(z->sc->raw, buf, len, off, got, z->sc->err);
}

static int zst_push(struct zst_scan *z, const struct zst_frame *f)
{
	if (z->n == z->cap) {
		size_t ncap = z->cap ? z->cap * 2 : 64;
		struct zst_frame *nf = realloc(z->fr, ncap * sizeof *nf);
		if (!nf)
			return img_err_set(z->sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory",
					   z->sc->name);
		z->fr = nf;
		z->cap = ncap;
	}
	z->fr[z->n++] = *f;
	return IMG_OK;
}

/* Walk the blocks of the frame whose first block header is at *off, to the
 * frame's end (its checksum included when it has one). */
static int zst_walk_blocks(struct zst_scan *z, uint64_t *off, const ZSTD_frameHeader *fh)
{
	uint64_t block_max = fh->blockSizeMax ? fh->blockSizeMax : ZSTD_BLOCK_MAX;
	for (;;) {
		uint8_t h[3];
		size_t got;
		int rc = zst_pread(z, h, 3, *off, &got);
		if (rc != IMG_OK)
			return rc;
		if (got < 3)
			return zst_truncated(z->sc->err, z->sc->name, z->size);
		uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16;
		uint32_t type = (v >> 1) & 3, size = v >> 3;
		if (type == 3)
			return zst_corrupt(z->sc->err, z->sc->name, *off, "reserved block type");
		if (size > block_max)
			return zst_corrupt(z->sc->err, z->sc->name, *off, "block larger than the frame allows");
		*off += 3 + (type == 1 ? 1 : (uint64_t)size);
		if (v & 1)
			break;
	}
	if (fh->checksumFlag)
		*off += 4;
	if (*off > z->size)
		return zst_truncated(z->sc->err, z->sc->name, z->size);
	return IMG_OK;
}

/* The data frame at *off: check its header, walk it, list it. */
static int zst_walk_frame(struct zst_scan *z, uint64_t *off)
{
	uint8_t h[ZSTD_FRAMEHEADERSIZE_MAX];
	size_t got;
	int rc = zst_pread(z, h, sizeof h, *off, &got);
	if (rc != IMG_OK)
		return rc;
	ZSTD_frameHeader fh;
	size_t r = ZSTD_getFrameHeader(&fh, h, got);
	if (ZSTD_isError(r))
		return zst_lib_error(z->sc->err, z->sc->name, *off, r);
	if (r > 0)
		return zst_truncated(z->sc->err, z->sc->name, z->size);
	if (fh.windowSize > ((uint64_t)1 << ZSTD_WINDOW_LOG_LIMIT))
		return zst_lib_error(z->sc->err, z->sc->name, *off,
				     (size_t)-ZSTD_error_frameParameter_windowTooLarge);
	if (fh.dictID != 0)
		return img_err_set(z->sc->err, IMG_E_FORMAT, 0, 1, *off,
				   "%s: zstd: the frame at byte %llu needs dictionary %u, which imgbk does not have",
				   z->sc->name, (unsigned long long)*off, fh.dictID);
	struct zst_frame f = { .cin = *off, .usize = fh.frameContentSize };
	if (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN)
		f.usize = ZSTD_UNKNOWN;
	*off += fh.headerSize;
	rc = zst_walk_blocks(z, off, &fh);
	f.csize = *off - f.cin;
	return rc == IMG_OK ? zst_push(z, &f) : rc;
}

/* After the last frame: zero bytes up to the end, nothing else. */
static int zst_check_padding(struct zst_scan *z, uint64_t off)
{
	uint8_t buf[4096];
	while (off < z->size) {
		size_t got;
		int rc = zst_pread(z, buf, sizeof buf, off, &got);
		if (rc != IMG_OK)
			return rc;
		for (size_t i = 0; i < got; i++)
			if (buf[i] != 0)
				return img_err_set(z->sc->err, IMG_E_TRAILING, 0, 1, off + i,
						   "%s: zstd: trailing garbage at byte %llu of the compressed stream, "
						   "after the last zstd frame (0x%02x is not the start of another one)",
						   z->sc->name, (unsigned long long)(off + i), buf[i]);
		if (got == 0)
			break;
		off += got;
	}
	return IMG_OK;
}

/* Walk every frame of the file. */
static int zst_walk(struct zst_scan *z)
{
	uint64_t off = 0;
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	while (off < z->size) {
		uint8_t h[8];
		size_t got;
		int rc = zst_pread(z, h, sizeof h, off, &got);
		if (rc != IMG_OK)
			return rc;
		uint32_t m = got >= 4 ? codec_le32(h) : 0;
		if (got >= 4 && m == ZSTD_FRAME_MAGIC) {
			rc = zst_walk_frame(z, &off);
		} else if (got >= 4 && (m & ZSTD_SKIPPABLE_MASK) == ZSTD_SKIPPABLE_MAGIC) {
			if (got < 8)
				return zst_truncated(z->sc->err, z->sc->name, z->size);
			off += 8 + (uint64_t)codec_le32(h + 4);
			if (off > z->size)
				return zst_truncated(z->sc->err, z->sc->name, z->size);
		} else if (got < 4 && memcmp(h, magic, got) == 0) {
			return zst_truncated(z->sc->err, z->sc->name, z->size);
		} else if (off == 0) {
			return img_err_set(z->sc->err, IMG_E_FORMAT, 0, 1, 0, "%s: zstd: not a zstd frame at byte 0",
					   z->sc->name);
		} else {
			return zst_check_padding(z, off);
		}
		if (rc != IMG_OK)
			return rc;
		zs_scan_progress(z->sc, off);
	}
	return IMG_OK;
}

/* ---- scan: decoding every frame ------------------------------------------------ */

/*
 * Decode the frame f (libzstd checks its content size and checksum) and
 * learn its size; stop with IMG_E_FORMAT (nothing recorded) when `limit`
 * decoded bytes are passed (0: no limit).
 */
static int zst_decode_frame(struct zst_scan *z, struct zst_frame *f, ZSTD_DStream *ds, uint8_t *in,
			    uint8_t *out, size_t out_cap, uint64_t limit)
{
	uint64_t pos = f->cin, end = f->cin + f->csize, made = 0;
	ZSTD_DCtx_reset(ds, ZSTD_reset_session_only);
	size_t ret = 1;
	while (ret != 0) {
		size_t want = end - pos < ZSTD_STEP ? (size_t)(end - pos) : ZSTD_STEP, got;
		int rc = zst_pread(z, in, want, pos, &got);
		if (rc != IMG_OK)
			return rc;
		ZSTD_inBuffer ib = { in, got, 0 };
		do {  /* until the input is used up with room left, or the frame ends */
			ZSTD_outBuffer ob = { out, out_cap, 0 };
			ret = ZSTD_decompressStream(ds, &ob, &ib);
			if (ZSTD_isError(ret))
				return zst_lib_error(z->sc->err, z->sc->name, pos, ret);
			made += ob.pos;
			if (limit && made > limit)
				return IMG_E_FORMAT;
			if (ib.pos == ib.size && ob.pos < ob.size)
				break;
		} while (ret != 0);
		if (ret != 0 && got == 0)
			return zst_truncated(z->sc->err, z->sc->name, pos);
		pos += ib.pos;
	}
	f->usize = made;
	return IMG_OK;
}

static int zst_one_frame_error(struct zs_scan *sc, uint64_t usize, int known)
{
	return img_err_set(sc->err, IMG_E_FORMAT, 0, 0, 0,
			   "%s: zstd: one zstd frame of %s%llu bytes cannot be read at random; make it "
			   "mountable with: zstd -dc %s | pzstd -p2 -o NEW.zst (independent frames), or "
			   "decompress it: zstd -dc %s > IMAGE.img",
			   sc->name, known ? "" : "more than ", (unsigned long long)usize, sc->name, sc->name);
}

/* Decode every frame once: its integrity, and the size of those that do not
 * carry it. A lone frame over ZSTD_ONE_FRAME_MAX is refused first. */
static int zst_decode_all(struct zst_scan *z)
{
	size_t data = 0, last = 0;  /* frames that may hold data */
	for (size_t i = 0; i < z->n; i++) {
		if (z->fr[i].usize != 0) {
			data++;
			last = i;
		}
	}
	uint64_t limit = data == 1 ? ZSTD_ONE_FRAME_MAX : 0;
	if (limit && z->fr[last].usize != ZSTD_UNKNOWN && z->fr[last].usize > limit)
		return zst_one_frame_error(z->sc, z->fr[last].usize, 1);
	ZSTD_DStream *ds = zst_new_dstream();
	uint8_t *in = malloc(ZSTD_STEP), *out = malloc(ZSTD_OUT_STEP);
	int rc = IMG_OK;
	if (!ds || !in || !out)
		rc = img_err_set(z->sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", z->sc->name);
	for (size_t i = 0; i < z->n && rc == IMG_OK; i++) {
		rc = zst_decode_frame(z, &z->fr[i], ds, in, out, ZSTD_OUT_STEP, limit);
		if (rc == IMG_E_FORMAT)
			rc = zst_one_frame_error(z->sc, limit, 0);
		zs_scan_progress(z->sc, z->fr[i].cin + z->fr[i].csize);
	}
	ZSTD_freeDStream(ds);
	free(in);
	free(out);
	return rc;
}

static int zst_scan(struct zs_scan *sc)
{
	struct zst_scan z = { .sc = sc, .size = rsrc_size(sc->raw) };
	int rc = zst_walk(&z);
	if (rc == IMG_OK)
		rc = zst_decode_all(&z);
	uint64_t uout = 0;
	for (size_t i = 0; i < z.n && rc == IMG_OK; i++) {
		if (z.fr[i].usize == 0)
			continue;
		struct zs_point p = { .cin = z.fr[i].cin, .uout = uout, .aux2 = z.fr[i].csize };
		rc = zs_add_point(sc, &p);
		uout += z.fr[i].usize;
	}
	sc->usize = uout;
	free(z.fr);
	return rc;
}

/* ---- decoder --------------------------------------------------------------------- */

struct zst_dec {
	const char *name;
	struct zs_input in;
	ZSTD_DStream *ds;
	int ended;         /* the frame ended */
};

static void zst_close(void *dp)
{
	struct zst_dec *d = dp;
	ZSTD_freeDStream(d->ds);
	zs_input_free(&d->in);
	free(d);
}

static int zst_open(img_rsrc *raw, const char *name, const struct zs_point *p, uint64_t next_uout,
		    void **out, img_err *err)
{
	struct zst_dec *d = calloc(1, sizeof *d);
	if (!d || !(d->ds = zst_new_dstream())) {
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", name);
	}
	d->name = name;
	int rc = zs_input_init(&d->in, raw, p->cin, (size_t)256 << 10, err);
	if (rc != IMG_OK) {
		ZSTD_freeDStream(d->ds);
		free(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int zst_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct zst_dec *d = dp;
	*got = 0;
	while (!d->ended && *got < cap) {
		int rc = zs_input_fill(&d->in, ZSTD_STEP, err);
		if (rc != IMG_OK)
			return rc;
		size_t avail = d->in.end - d->in.pos;
		uint64_t at = d->in.offset + d->in.pos;
		ZSTD_inBuffer ib = { d->in.buf + d->in.pos, avail < ZSTD_STEP ? avail : ZSTD_STEP, 0 };
		ZSTD_outBuffer ob = { dst + *got, cap - *got, 0 };
		size_t ret = ZSTD_decompressStream(d->ds, &ob, &ib);
		if (ZSTD_isError(ret))
			return zst_lib_error(err, d->name, at, ret);
		d->in.pos += ib.pos;
		*got += ob.pos;
		if (ret == 0)
			d->ended = 1;
		else if (ib.pos == 0 && ob.pos == 0 && avail == 0)
			return zst_truncated(err, d->name, at);
	}
	return IMG_OK;
}

const struct zs_ops zs_zstd_ops = { zst_scan, zst_open, zst_read, zst_close, 1 };

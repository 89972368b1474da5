/*
 * io/lz4.c - lz4: the codec's one decoder (zseek.h, zs_ops.start), used for
 * the sequential stream, the scan and random reads alike. It reads the
 * frame format (magic 04 22 4D 18) and the legacy format of `lz4 -l`
 * (02 21 4C 18, then blocks of u32 LE size + data, each decoding to at most
 * 8 MiB), with liblz4's block functions.
 *
 * Started whole (stream, scan) it goes on, like the lz4 tool, through
 * several frames, skippable frames (0x184D2A50..5F) and legacy streams in any
 * order; in a legacy stream a repeated legacy magic between blocks
 * (concatenated files) is skipped. After the last unit, zero bytes up to the
 * end are padding (a tape block, a device larger than the file); any other
 * byte is IMG_E_TRAILING naming its offset. An input that ends inside a
 * frame or a legacy block is IMG_E_TRUNCATED. It checks what LZ4F checks:
 * the header checksum, block checksums, and, decoding a frame from its
 * start, the content checksum and the content size.
 *
 * Access points sit at block headers (the u32 size field): the first block
 * of each frame or legacy stream, without state, then
 *  - independent blocks (the lz4 default) and legacy blocks: a block at
 *    least span decoded bytes after the last point, without state;
 *  - linked blocks (lz4 -BD): a block whenever a stateful point is due
 *    (zs_last_state_point + span), with the up to 64 KiB of the frame's
 *    output before it as its state.
 * Started at one, the decoder goes on through the blocks after it and stops
 * at the frame's end mark or the legacy stream's end (the core goes on from
 * the next point). A frame's content checksum covers the whole frame, so a
 * decoder started mid-way cannot check it: the scan hands its output to the
 * core, whose segment CRCs stand in for it.
 *
 * A block decodes straight into the buffer read() is given when the largest
 * block of its frame fits there (as LZ4F does); else into a staging buffer
 * that is handed out next.
 *
 * Point fields: aux = FLG | BD << 8 | kind << 16 (kind 0 frame, 1 legacy);
 * all zeros is the start of the data.
 *
 * Not here: detecting lz4 (codecs.c), frames with a dictionary ID (refused:
 * imgbk has no dictionaries), the list of points (zseek.c).
 */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codec_util.h"
#include "zseek.h"

#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_SKIPPABLE_MASK 0xFFFFFFF0u
#define LZ4_SKIPPABLE_MAGIC 0x184D2A50u
#define LZ4_DICT ((size_t)64 << 10)
#define LEGACY_BLOCK_MAX ((size_t)8 << 20)
/* Input room of a scan: a whole legacy block (the largest unit) with its size field. */
#define LZ4_SCAN_IN ((size_t)LZ4_COMPRESSBOUND(LEGACY_BLOCK_MAX) + 64)
#define LZ4_READ_IN ((size_t)256 << 10)

/* FLG bits */
#define FLG_INDEPENDENT 0x20
#define FLG_BLOCK_SUM 0x10
#define FLG_CONTENT_SIZE 0x08
#define FLG_CONTENT_SUM 0x04
#define FLG_DICT_ID 0x01

enum { KIND_FRAME = 0, KIND_LEGACY = 1 };
enum lz4_mode { AT_BOUNDARY, IN_FRAME, IN_LEGACY };

struct lz4_dec {
	const char *name;
	struct zs_input in;
	struct zs_scan *sc;     /* scan mode, or NULL */
	int whole;              /* go on after a unit's end */
	int finished;
	enum lz4_mode mode;
	uint64_t uout;          /* decoded offset of the next byte */
	uint64_t units;         /* frames and legacy streams started */
	int last_legacy;        /* the last unit was a legacy stream (for messages) */
	/* the current frame or legacy stream */
	uint8_t flg, bd;
	size_t bmax;            /* decoded bytes of its largest block */
	int from_start;         /* decoded from its start: content checksum and size are checked */
	uint64_t csize;         /* content size, or UINT64_MAX */
	uint64_t unit_out;      /* decoded bytes of it so far */
	uint64_t block_cin;     /* compressed offset of the current block's size field */
	uint64_t last_point;    /* scan: decoded offset of the last point */
	XXH32_state_t *xs;      /* content checksum, when checked */
	uint8_t *dict;          /* linked blocks: the last LZ4_DICT bytes of output */
	size_t dict_len;
	struct codec_stage stage;  /* a block decoded, not yet handed out */
};

static int lz4_corrupt(const struct lz4_dec *d, img_err *err, uint64_t at, const char *detail)
{
	return zs_corrupt(err, d->name, "lz4", at, detail);
}

static int lz4_truncated(const struct lz4_dec *d, img_err *err, uint64_t at)
{
	return zs_truncated(err, d->name, "lz4", d->mode == IN_LEGACY ? "lz4 legacy block" : "lz4 frame", at);
}

static int lz4_nomem(const char *name, img_err *err)
{
	return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: lz4: out of memory", name);
}

/* Bytes of the largest block for BD's block size ID; 0 when invalid. */
static size_t lz4_block_max(uint8_t bd)
{
	unsigned id = (bd >> 4) & 7;
	if ((bd & 0x8F) != 0 || id < 4)
		return 0;
	return (size_t)1 << (8 + 2 * id);
}

static int linked(const struct lz4_dec *d)
{
	return d->mode == IN_FRAME && !(d->flg & FLG_INDEPENDENT);
}

/* Make `need` unread bytes visible. @return IMG_OK, or truncation/IO errors. */
static int need(struct lz4_dec *d, size_t n, img_err *err)
{
	int rc = zs_input_need(&d->in, n, err);
	if (rc != IMG_OK)
		return rc;
	if (d->in.end - d->in.pos < n)
		return lz4_truncated(d, err, d->in.offset + d->in.end);
	return IMG_OK;
}

/* ---- starting a unit ------------------------------------------------------------ */

/* Set d up for a frame (flg, bd) or a legacy stream. */
static int begin_unit(struct lz4_dec *d, enum lz4_mode mode, uint8_t flg, uint8_t bd, img_err *err)
{
	d->mode = mode;
	d->flg = flg;
	d->bd = bd;
	d->bmax = mode == IN_LEGACY ? LEGACY_BLOCK_MAX : lz4_block_max(bd);
	d->unit_out = 0;
	d->from_start = 0;
	d->dict_len = 0;
	d->csize = UINT64_MAX;
	d->units++;
	d->last_legacy = mode == IN_LEGACY;
	if (linked(d) && !d->dict && !(d->dict = malloc(LZ4_DICT)))
		return lz4_nomem(d->name, err);
	return IMG_OK;
}

/* Parse the frame descriptor at the input (its magic seen). */
static int frame_header(struct lz4_dec *d, img_err *err)
{
	uint64_t at = zs_input_at(&d->in);
	int rc = zs_input_fill(&d->in, 19, err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos;
	size_t avail = d->in.end - d->in.pos;
	uint8_t flg = avail >= 7 ? p[4] : 0, bd = avail >= 7 ? p[5] : 0;
	size_t hlen = 3 + (flg & FLG_CONTENT_SIZE ? 8 : 0) + (flg & FLG_DICT_ID ? 4 : 0);
	if (avail < 7 || avail < 4 + hlen)
		return zs_truncated(err, d->name, "lz4", "lz4 frame", d->in.offset + d->in.end);
	if ((flg >> 6) != 1 || (flg & 0x02) || lz4_block_max(bd) == 0)
		return lz4_corrupt(d, err, at, "unsupported frame descriptor");
	if (((XXH32(p + 4, hlen - 1, 0) >> 8) & 0xFF) != p[4 + hlen - 1])
		return lz4_corrupt(d, err, at, "header checksum mismatch");
	if (flg & FLG_DICT_ID)
		return img_err_set(err, IMG_E_FORMAT, 0, 1, at,
				   "%s: lz4: the frame at byte %llu needs a dictionary, which imgbk does not have",
				   d->name, (unsigned long long)at);
	if ((rc = begin_unit(d, IN_FRAME, flg, bd, err)) != IMG_OK)
		return rc;
	d->from_start = 1;
	if (flg & FLG_CONTENT_SIZE)
		d->csize = (uint64_t)codec_le32(p + 6) | (uint64_t)codec_le32(p + 10) << 32;
	if (flg & FLG_CONTENT_SUM) {
		if (!d->xs && !(d->xs = XXH32_createState()))
			return lz4_nomem(d->name, err);
		XXH32_reset(d->xs, 0);
	}
	d->in.pos += 4 + hlen;
	return IMG_OK;
}

/* Step over a skippable frame (its magic visible). */
static int skip_frame(struct lz4_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, 8, err);
	if (rc != IMG_OK)
		return rc;
	if (d->in.end - d->in.pos < 8)
		return zs_truncated(err, d->name, "lz4", "lz4 frame", d->in.offset + d->in.end);
	uint64_t left = codec_le32(d->in.buf + d->in.pos + 4);
	d->in.pos += 8;
	while (left > 0) {
		if ((rc = zs_input_fill(&d->in, 1, err)) != IMG_OK)
			return rc;
		size_t avail = d->in.end - d->in.pos;
		if (avail == 0)
			return zs_truncated(err, d->name, "lz4", "lz4 frame", zs_input_at(&d->in));
		size_t k = left < avail ? (size_t)left : avail;
		d->in.pos += k;
		left -= k;
	}
	return IMG_OK;
}

/* At a boundary (whole mode): the next frame, legacy stream or skippable
 * frame; or the end (zero padding), or trailing garbage. */
static int next_unit(struct lz4_dec *d, img_err *err)
{
	static const uint8_t magic[4] = { 0x04, 0x22, 0x4D, 0x18 };
	int rc = zs_input_fill(&d->in, 8, err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos;
	size_t avail = d->in.end - d->in.pos;
	uint32_t m = avail >= 4 ? codec_le32(p) : 0;
	if (avail >= 4 && m == LZ4_FRAME_MAGIC)
		return frame_header(d, err);
	if (avail >= 4 && m == LZ4_LEGACY_MAGIC) {
		d->in.pos += 4;
		return begin_unit(d, IN_LEGACY, 0, 0, err);
	}
	if (avail >= 4 && (m & LZ4_SKIPPABLE_MASK) == LZ4_SKIPPABLE_MAGIC)
		return skip_frame(d, err);
	/* less than a magic at the start, or a cut frame magic at the very end */
	if ((d->units == 0 && avail < 4) || (avail > 0 && avail < 4 && memcmp(p, magic, avail) == 0))
		return zs_truncated(err, d->name, "lz4", "lz4 frame", d->in.offset + d->in.end);
	if (d->units == 0)
		return img_err_set(err, IMG_E_FORMAT, 0, 1, zs_input_at(&d->in),
				   "%s: lz4: not an lz4 frame at byte %llu", d->name,
				   (unsigned long long)zs_input_at(&d->in));
	rc = zs_input_finish(&d->in, d->name, "lz4", d->last_legacy ? "lz4 legacy block" : "lz4 frame", err);
	d->finished = rc == IMG_OK;
	return rc;
}

/* A unit ended: back at a boundary, or finished when not whole. */
static void end_unit(struct lz4_dec *d)
{
	d->mode = AT_BOUNDARY;
	d->finished = !d->whole;
}

/* After a frame's end mark: its content checksum and content size. */
static int frame_end(struct lz4_dec *d, img_err *err)
{
	uint64_t at = zs_input_at(&d->in);
	if (d->flg & FLG_CONTENT_SUM) {
		int rc = need(d, 4, err);
		if (rc != IMG_OK)
			return rc;
		if (d->from_start && XXH32_digest(d->xs) != codec_le32(d->in.buf + d->in.pos))
			return lz4_corrupt(d, err, at, "content checksum mismatch");
		d->in.pos += 4;
	}
	if (d->from_start && d->csize != UINT64_MAX && d->csize != d->unit_out)
		return lz4_corrupt(d, err, at, "the frame's content size differs from its data");
	end_unit(d);
	return IMG_OK;
}

/* ---- blocks --------------------------------------------------------------------- */

/* Scan mode: a point at the block just decoded, when one is due (see the top). */
static int scan_point(struct lz4_dec *d)
{
	int link = linked(d);
	uint64_t last = link ? zs_last_state_point(d->sc) : d->last_point;
	if (d->unit_out > 0 && d->uout < last + d->sc->span)
		return IMG_OK;
	uint32_t kind = d->mode == IN_LEGACY ? KIND_LEGACY : KIND_FRAME;
	struct zs_point p = { .cin = d->block_cin, .uout = d->uout,
			      .aux = d->flg | (uint32_t)d->bd << 8 | kind << 16 };
	if (link && d->dict_len) {
		p.state = d->dict;
		p.state_len = (uint32_t)d->dict_len;
	}
	d->last_point = d->uout;
	return zs_add_point(d->sc, &p);
}

/* Linked blocks: keep the last LZ4_DICT bytes of output as the next one's dictionary. */
static void keep_dict(struct lz4_dec *d, const uint8_t *out, size_t n)
{
	if (n >= LZ4_DICT) {
		memcpy(d->dict, out + n - LZ4_DICT, LZ4_DICT);
		d->dict_len = LZ4_DICT;
		return;
	}
	size_t keep = d->dict_len + n > LZ4_DICT ? LZ4_DICT - n : d->dict_len;
	memmove(d->dict, d->dict + d->dict_len - keep, keep);
	memcpy(d->dict + keep, out, n);
	d->dict_len = keep + n;
}

/* Where a block of up to `most` decoded bytes goes: dst when it fits, else the stage. */
static uint8_t *block_target(struct lz4_dec *d, uint8_t *dst, size_t room, size_t most, img_err *err)
{
	uint8_t *out = codec_stage_target(&d->stage, dst, room, most);
	if (!out)
		lz4_nomem(d->name, err);
	return out;
}

/* The block decoded to n bytes at out: points, checks, dictionary, counts. */
static int block_done(struct lz4_dec *d, uint8_t *dst, uint8_t *out, size_t n, size_t *made)
{
	if (n > 0 && d->sc) {
		int rc = scan_point(d);
		if (rc != IMG_OK)
			return rc;
		zs_scan_output(d->sc, out, n);
	}
	if (d->from_start && d->xs && (d->flg & FLG_CONTENT_SUM) && d->mode == IN_FRAME)
		XXH32_update(d->xs, out, n);
	if (linked(d))
		keep_dict(d, out, n);
	d->uout += n;
	d->unit_out += n;
	codec_stage_done(&d->stage, dst, out, n, made);
	return IMG_OK;
}

/* The next block of a frame, or its end mark. */
static int frame_block(struct lz4_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	d->block_cin = zs_input_at(&d->in);
	int rc = need(d, 4, err);
	if (rc != IMG_OK)
		return rc;
	uint32_t size = codec_le32(d->in.buf + d->in.pos), len = size & 0x7FFFFFFFu;
	if (size == 0) {
		d->in.pos += 4;
		return frame_end(d, err);
	}
	if (len > d->bmax)
		return lz4_corrupt(d, err, d->block_cin, "block larger than the frame allows");
	size_t sum = d->flg & FLG_BLOCK_SUM ? 4 : 0;
	if ((rc = need(d, 4 + (size_t)len + sum, err)) != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos + 4;
	if (sum && XXH32(p, len, 0) != codec_le32(p + len))
		return lz4_corrupt(d, err, d->block_cin, "block checksum mismatch");
	int stored = (int)(size >> 31);
	uint8_t *out = block_target(d, dst, room, stored ? len : d->bmax, err);
	if (!out)
		return IMG_E_IO;
	int n;
	if (stored) {
		memcpy(out, p, len);
		n = (int)len;
	} else if (linked(d) && d->dict_len) {
		n = LZ4_decompress_safe_usingDict((const char *)p, (char *)out, (int)len, (int)d->bmax,
						  (const char *)d->dict, (int)d->dict_len);
	} else {
		n = LZ4_decompress_safe((const char *)p, (char *)out, (int)len, (int)d->bmax);
	}
	if (n < 0)
		return lz4_corrupt(d, err, d->block_cin, "the block does not decode");
	d->in.pos += 4 + (size_t)len + sum;
	return block_done(d, dst, out, (size_t)n, made);
}

/* The next block of a legacy stream (repeated magics skipped), or its end:
 * the end of the input, a size of 0 or too large (a frame, padding or garbage). */
static int legacy_block(struct lz4_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	uint32_t size;
	for (;;) {
		int rc = zs_input_fill(&d->in, 4, err);
		if (rc != IMG_OK)
			return rc;
		d->block_cin = zs_input_at(&d->in);
		size = d->in.end - d->in.pos >= 4 ? codec_le32(d->in.buf + d->in.pos) : 0;
		if (size != LZ4_LEGACY_MAGIC)
			break;
		d->in.pos += 4;
	}
	if (size == 0 || size > (uint32_t)LZ4_compressBound((int)LEGACY_BLOCK_MAX)) {
		end_unit(d);
		return IMG_OK;
	}
	int rc = need(d, 4 + (size_t)size, err);
	if (rc != IMG_OK)
		return rc;
	uint8_t *out = block_target(d, dst, room, LEGACY_BLOCK_MAX, err);
	if (!out)
		return IMG_E_IO;
	int n = LZ4_decompress_safe((const char *)d->in.buf + d->in.pos + 4, (char *)out, (int)size,
				    (int)LEGACY_BLOCK_MAX);
	if (n < 0)
		return lz4_corrupt(d, err, d->block_cin + 4, "legacy block does not decode");
	d->in.pos += 4 + (size_t)size;
	return block_done(d, dst, out, (size_t)n, made);
}

/* One step: a block of the current unit, or what comes at a boundary. */
static int lz4_step(void *dp, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	struct lz4_dec *d = dp;
	if (d->mode == IN_FRAME)
		return frame_block(d, dst, room, made, err);
	if (d->mode == IN_LEGACY)
		return legacy_block(d, dst, room, made, err);
	return next_unit(d, err);
}

static int lz4_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct lz4_dec *d = dp;
	return codec_stage_read(&d->stage, d, lz4_step, &d->finished, dst, cap, got, err);
}

/* ---- start and end ---------------------------------------------------------------- */

static void lz4_close(void *dp)
{
	struct lz4_dec *d = dp;
	zs_input_free(&d->in);
	XXH32_freeState(d->xs);
	free(d->dict);
	free(d->stage.buf);
	free(d);
}

/* Position d at the block point p (its unit's FLG and BD and the dictionary come with it). */
static int resume_at_block(struct lz4_dec *d, const struct zs_point *p, img_err *err)
{
	uint32_t kind = p->aux >> 16;
	int rc = begin_unit(d, kind == KIND_LEGACY ? IN_LEGACY : IN_FRAME, (uint8_t)p->aux,
			    (uint8_t)(p->aux >> 8), err);
	if (rc != IMG_OK)
		return rc;
	if (p->state_len && linked(d)) {
		memcpy(d->dict, p->state, p->state_len);
		d->dict_len = p->state_len;
	}
	return IMG_OK;
}

static int lz4_start(const struct zs_start *st, void **out, img_err *err)
{
	const struct zs_point *p = st->p;
	uint32_t kind = p->aux >> 16;
	int at_block = p->aux != 0;
	if ((!at_block && (p->cin != 0 || p->uout != 0)) || kind > KIND_LEGACY ||
	    (at_block && kind == KIND_FRAME && lz4_block_max((uint8_t)(p->aux >> 8)) == 0) ||
	    p->state_len > LZ4_DICT)
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: lz4: the access point at decoded byte %llu is damaged", st->name,
				   (unsigned long long)p->uout);
	struct lz4_dec *d = calloc(1, sizeof *d);
	if (!d)
		return lz4_nomem(st->name, err);
	d->name = st->name;
	d->sc = st->sc;
	d->whole = st->whole && !at_block;
	d->uout = p->uout;
	int rc = zs_input_start(&d->in, st, p->cin, st->sc ? LZ4_SCAN_IN : LZ4_READ_IN, err);
	if (rc == IMG_OK && at_block)
		rc = resume_at_block(d, p, err);
	if (rc != IMG_OK) {
		lz4_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

const struct zs_ops zs_lz4_ops = { .read = lz4_read, .close = lz4_close, .start = lz4_start };

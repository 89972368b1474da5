/*
 * io/zseek_lz4.c - random access into lz4 data (zseek.h): the frame format
 * (magic 04 22 4D 18) and the legacy format of `lz4 -l` (02 21 4C 18, then
 * blocks of u32 LE size + data, each decoding to at most 8 MiB), in any order
 * with skippable frames between them, as lz4.c reads them.
 *
 * Access points sit at block headers (the u32 size field): the first block
 * of each frame or legacy stream, without state, then
 *  - independent blocks (the lz4 default) and legacy blocks: a block at
 *    least span decoded bytes after the last point, without state;
 *  - linked blocks (lz4 -BD): a block whenever a stateful point is due
 *    (zs_last_state_point + span), with the up to 64 KiB of the frame's
 *    output before it as its state.
 * A decoder decodes block after block (LZ4_decompress_safe, or
 * LZ4_decompress_safe_usingDict with the previous 64 KiB for linked blocks)
 * and stops at the frame's end mark or the legacy stream's end.
 *
 * The scan decodes everything once, checking what lz4.c (LZ4F) checks: the
 * header checksum, block checksums, the content checksum and content size,
 * zero padding only after the last unit, no garbage. Decoders check block
 * checksums; the content checksum covers a whole frame, so only the scan can.
 *
 * Point fields: aux = FLG | BD << 8 | kind << 16 (kind 0 frame, 1 legacy).
 *
 * Not here: the streaming lz4 layer (lz4.c), frames with a dictionary ID
 * (refused: imgbk has no dictionaries), the list of points (zseek.c).
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
/* Input room: a whole legacy block (the largest unit) with its size field. */
#define LZ4_IN_CAP ((size_t)LZ4_COMPRESSBOUND(LEGACY_BLOCK_MAX) + 64)
#define LZ4_PROGRESS_EVERY ((uint64_t)64 << 20)

/* FLG bits */
#define FLG_INDEPENDENT 0x20
#define FLG_BLOCK_SUM 0x10
#define FLG_CONTENT_SIZE 0x08
#define FLG_CONTENT_SUM 0x04
#define FLG_DICT_ID 0x01

enum { KIND_FRAME = 0, KIND_LEGACY = 1 };

static int lz4_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "lz4", at, detail);
}

static int lz4_truncated(img_err *err, const char *name, uint64_t at, int legacy)
{
	return zs_truncated(err, name, "lz4", legacy ? "lz4 legacy block" : "lz4 frame", at);
}

static int lz4_nomem(img_err *err, const char *name)
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

/* ---- consecutive blocks of one frame or legacy stream (scan and decoder) ----- */

struct lz4_run {
	const char *name;
	img_err *err;
	struct zs_input *in;
	int legacy;
	uint8_t flg;
	size_t bmax;         /* decoded bytes of the largest block */
	uint8_t *buf;        /* LZ4_DICT bytes of dictionary room, then one block of output */
	size_t dict_len;     /* dictionary bytes just before out() */
	size_t out_len;      /* decoded bytes of the last block, at out() */
	uint64_t block_cin;  /* compressed offset of the last block's size field */
	int ended;           /* the end mark, or the end of the legacy stream, was reached */
};

static uint8_t *run_out(struct lz4_run *r)
{
	return r->buf + LZ4_DICT;
}

static int run_linked(const struct lz4_run *r)
{
	return !r->legacy && !(r->flg & FLG_INDEPENDENT);
}

static uint64_t run_at(const struct lz4_run *r)
{
	return r->in->offset + r->in->pos;
}

/* Linked blocks: the last 64 KiB of output become the next block's dictionary. */
static void run_slide(struct lz4_run *r)
{
	if (!run_linked(r)) {
		r->dict_len = 0;
		return;
	}
	size_t keep = r->dict_len + r->out_len;
	if (keep > LZ4_DICT)
		keep = LZ4_DICT;
	memmove(run_out(r) - keep, run_out(r) + r->out_len - keep, keep);
	r->dict_len = keep;
}

/* Make `need` bytes visible. @return IMG_OK, or truncation/IO errors. */
static int run_need(struct lz4_run *r, size_t need)
{
	int rc = zs_input_fill(r->in, need, r->err);
	if (rc != IMG_OK)
		return rc;
	if (r->in->end - r->in->pos < need)
		return lz4_truncated(r->err, r->name, r->in->offset + r->in->end, r->legacy);
	return IMG_OK;
}

/* Decode the frame block of `len` stored bytes at p. */
static int run_decode(struct lz4_run *r, const uint8_t *p, uint32_t len, int stored)
{
	int n;
	if (stored) {
		memcpy(run_out(r), p, len);
		n = (int)len;
	} else if (run_linked(r) && r->dict_len) {
		n = LZ4_decompress_safe_usingDict((const char *)p, (char *)run_out(r), (int)len, (int)r->bmax,
						  (const char *)run_out(r) - r->dict_len, (int)r->dict_len);
	} else {
		n = LZ4_decompress_safe((const char *)p, (char *)run_out(r), (int)len, (int)r->bmax);
	}
	if (n < 0)
		return lz4_corrupt(r->err, r->name, r->block_cin, "the block does not decode");
	r->out_len = (size_t)n;
	return IMG_OK;
}

/* The next block of a frame: decode it, or reach the end mark. */
static int run_frame_block(struct lz4_run *r)
{
	int rc = run_need(r, 4);
	if (rc != IMG_OK)
		return rc;
	uint32_t size = codec_le32(r->in->buf + r->in->pos), len = size & 0x7FFFFFFFu;
	if (size == 0) {
		r->in->pos += 4;
		r->ended = 1;
		return IMG_OK;
	}
	if (len > r->bmax)
		return lz4_corrupt(r->err, r->name, r->block_cin, "block larger than the frame allows");
	size_t sum = r->flg & FLG_BLOCK_SUM ? 4 : 0;
	if ((rc = run_need(r, 4 + (size_t)len + sum)) != IMG_OK)
		return rc;
	const uint8_t *p = r->in->buf + r->in->pos + 4;
	if (sum && XXH32(p, len, 0) != codec_le32(p + len))
		return lz4_corrupt(r->err, r->name, r->block_cin, "block checksum mismatch");
	if ((rc = run_decode(r, p, len, (int)(size >> 31))) != IMG_OK)
		return rc;
	r->in->pos += 4 + (size_t)len + sum;
	return IMG_OK;
}

/* The next block of a legacy stream (repeated magics skipped), or its end:
 * end of input, a size of 0 or too large (a frame, padding or garbage). */
static int run_legacy_block(struct lz4_run *r)
{
	uint32_t size;
	for (;;) {
		int rc = zs_input_fill(r->in, 4, r->err);
		if (rc != IMG_OK)
			return rc;
		r->block_cin = run_at(r);
		size = r->in->end - r->in->pos >= 4 ? codec_le32(r->in->buf + r->in->pos) : 0;
		if (size != LZ4_LEGACY_MAGIC)
			break;
		r->in->pos += 4;
	}
	if (size == 0 || size > (uint32_t)LZ4_compressBound((int)LEGACY_BLOCK_MAX)) {
		r->ended = 1;
		return IMG_OK;
	}
	int rc = run_need(r, 4 + (size_t)size);
	if (rc != IMG_OK)
		return rc;
	int n = LZ4_decompress_safe((const char *)r->in->buf + r->in->pos + 4, (char *)run_out(r), (int)size,
				    (int)LEGACY_BLOCK_MAX);
	if (n < 0)
		return lz4_corrupt(r->err, r->name, r->block_cin, "legacy block does not decode");
	r->out_len = (size_t)n;
	r->in->pos += 4 + (size_t)size;
	return IMG_OK;
}

/* Decode the next block into out() (out_len), or set ended. */
static int run_block(struct lz4_run *r)
{
	run_slide(r);
	r->out_len = 0;
	r->block_cin = run_at(r);
	return r->legacy ? run_legacy_block(r) : run_frame_block(r);
}

/* Set r up for a frame (flg, bd) or a legacy stream; buf is allocated. */
static int run_init(struct lz4_run *r, const char *name, img_err *err, struct zs_input *in, int legacy,
		    uint8_t flg, uint8_t bd)
{
	memset(r, 0, sizeof *r);
	r->name = name;
	r->err = err;
	r->in = in;
	r->legacy = legacy;
	r->flg = flg;
	r->bmax = legacy ? LEGACY_BLOCK_MAX : lz4_block_max(bd);
	r->buf = malloc(LZ4_DICT + r->bmax);
	return r->buf ? IMG_OK : lz4_nomem(err, name);
}

/* ---- scan -------------------------------------------------------------------------- */

struct lz4_scan {
	struct zs_scan *sc;
	struct zs_input in;
	uint64_t uout;
	uint64_t last_point;     /* decoded offset of the last point */
	uint64_t units;          /* frames and legacy streams seen */
	uint64_t next_progress;
};

static uint64_t scan_at(const struct lz4_scan *s)
{
	return s->in.offset + s->in.pos;
}

static void scan_progress(struct lz4_scan *s)
{
	if (scan_at(s) >= s->next_progress) {
		zs_scan_progress(s->sc, scan_at(s));
		s->next_progress = scan_at(s) + LZ4_PROGRESS_EVERY;
	}
}

/*
 * The block just decoded by r (unit_out bytes of its frame or legacy stream
 * before it): hand the core a point there when one is due. The first block
 * of a unit always gets one; later ones when span bytes have passed since the
 * last stateful point (linked blocks) or the last point (independent and
 * legacy blocks: a decoder goes on through the blocks after its point, so a
 * point per block would only cost memory).
 */
static int scan_point(struct lz4_scan *s, struct lz4_run *r, uint8_t bd, uint64_t unit_out)
{
	int linked = run_linked(r);
	uint64_t last = linked ? zs_last_state_point(s->sc) : s->last_point;
	if (unit_out > 0 && s->uout < last + s->sc->span)
		return IMG_OK;
	struct zs_point p = { .cin = r->block_cin, .uout = s->uout,
			      .aux = r->flg | (uint32_t)bd << 8 | (uint32_t)(r->legacy ? KIND_LEGACY : KIND_FRAME) << 16 };
	if (linked && r->dict_len) {
		p.state = run_out(r) - r->dict_len;
		p.state_len = (uint32_t)r->dict_len;
	}
	s->last_point = s->uout;
	return zs_add_point(s->sc, &p);
}

/* Decode every block of r, adding points. *frame_out: decoded bytes; xs: content checksum or NULL. */
static int scan_blocks(struct lz4_scan *s, struct lz4_run *r, uint8_t bd, XXH32_state_t *xs,
		       uint64_t *frame_out)
{
	*frame_out = 0;
	for (;;) {
		int rc = run_block(r);
		if (rc != IMG_OK || r->ended)
			return rc;
		if (r->out_len == 0)
			continue;
		if ((rc = scan_point(s, r, bd, *frame_out)) != IMG_OK)
			return rc;
		/* segment CRCs: a decoder started mid-frame cannot check the content checksum */
		zs_scan_output(s->sc, run_out(r), r->out_len);
		if (xs)
			XXH32_update(xs, run_out(r), r->out_len);
		s->uout += r->out_len;
		*frame_out += r->out_len;
		scan_progress(s);
	}
}

/* Parse the frame descriptor at the input: *flg, *bd, *csize (UINT64_MAX when absent). */
static int scan_frame_header(struct lz4_scan *s, uint8_t *flg, uint8_t *bd, uint64_t *csize)
{
	const char *name = s->sc->name;
	uint64_t at = scan_at(s);
	int rc = zs_input_fill(&s->in, 19, s->sc->err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = s->in.buf + s->in.pos;
	size_t avail = s->in.end - s->in.pos;
	if (avail < 7)
		return lz4_truncated(s->sc->err, name, s->in.offset + s->in.end, 0);
	*flg = p[4];
	*bd = p[5];
	size_t hlen = 3 + (*flg & FLG_CONTENT_SIZE ? 8 : 0) + (*flg & FLG_DICT_ID ? 4 : 0);
	if (avail < 4 + hlen)
		return lz4_truncated(s->sc->err, name, s->in.offset + s->in.end, 0);
	if ((*flg >> 6) != 1 || (*flg & 0x02) || lz4_block_max(*bd) == 0)
		return lz4_corrupt(s->sc->err, name, at, "unsupported frame descriptor");
	if (((XXH32(p + 4, hlen - 1, 0) >> 8) & 0xFF) != p[4 + hlen - 1])
		return lz4_corrupt(s->sc->err, name, at, "header checksum mismatch");
	if (*flg & FLG_DICT_ID)
		return img_err_set(s->sc->err, IMG_E_FORMAT, 0, 1, at,
				   "%s: lz4: the frame at byte %llu needs a dictionary, which imgbk does not have",
				   name, (unsigned long long)at);
	*csize = UINT64_MAX;
	if (*flg & FLG_CONTENT_SIZE)
		*csize = (uint64_t)codec_le32(p + 6) | (uint64_t)codec_le32(p + 10) << 32;
	s->in.pos += 4 + hlen;
	return IMG_OK;
}

/* After a frame's end mark: its content checksum and content size. */
static int scan_frame_end(struct lz4_scan *s, uint8_t flg, XXH32_state_t *xs, uint64_t csize,
			  uint64_t frame_out)
{
	uint64_t at = scan_at(s);
	if (flg & FLG_CONTENT_SUM) {
		int rc = zs_input_fill(&s->in, 4, s->sc->err);
		if (rc != IMG_OK)
			return rc;
		if (s->in.end - s->in.pos < 4)
			return lz4_truncated(s->sc->err, s->sc->name, s->in.offset + s->in.end, 0);
		if (XXH32_digest(xs) != codec_le32(s->in.buf + s->in.pos))
			return lz4_corrupt(s->sc->err, s->sc->name, at, "content checksum mismatch");
		s->in.pos += 4;
	}
	if (csize != UINT64_MAX && csize != frame_out)
		return lz4_corrupt(s->sc->err, s->sc->name, at, "the frame's content size differs from its data");
	return IMG_OK;
}

static int scan_frame(struct lz4_scan *s)
{
	uint8_t flg = 0, bd = 0;
	uint64_t csize = UINT64_MAX, frame_out = 0;
	int rc = scan_frame_header(s, &flg, &bd, &csize);
	if (rc != IMG_OK)
		return rc;
	struct lz4_run r;
	XXH32_state_t *xs = flg & FLG_CONTENT_SUM ? XXH32_createState() : NULL;
	if ((flg & FLG_CONTENT_SUM) && !xs)
		return lz4_nomem(s->sc->err, s->sc->name);
	if (xs)
		XXH32_reset(xs, 0);
	rc = run_init(&r, s->sc->name, s->sc->err, &s->in, 0, flg, bd);
	if (rc == IMG_OK)
		rc = scan_blocks(s, &r, bd, xs, &frame_out);
	if (rc == IMG_OK)
		rc = scan_frame_end(s, flg, xs, csize, frame_out);
	free(r.buf);
	XXH32_freeState(xs);
	return rc;
}

static int scan_legacy(struct lz4_scan *s)
{
	struct lz4_run r;
	uint64_t out = 0;
	s->in.pos += 4;
	int rc = run_init(&r, s->sc->name, s->sc->err, &s->in, 1, 0, 0);
	if (rc == IMG_OK)
		rc = scan_blocks(s, &r, 0, NULL, &out);
	free(r.buf);
	return rc;
}

/* Step over a skippable frame (its header is visible). */
static int scan_skippable(struct lz4_scan *s)
{
	uint64_t left = codec_le32(s->in.buf + s->in.pos + 4);
	s->in.pos += 8;
	while (left > 0) {
		int rc = zs_input_fill(&s->in, 1, s->sc->err);
		if (rc != IMG_OK)
			return rc;
		size_t avail = s->in.end - s->in.pos;
		if (avail == 0)
			return lz4_truncated(s->sc->err, s->sc->name, scan_at(s), 0);
		size_t k = left < avail ? (size_t)left : avail;
		s->in.pos += k;
		left -= k;
	}
	return IMG_OK;
}

/* After the last unit: zero bytes up to the end, nothing else. */
static int scan_padding(struct lz4_scan *s)
{
	for (;;) {
		int rc = zs_input_fill(&s->in, 1, s->sc->err);
		if (rc != IMG_OK)
			return rc;
		if (s->in.pos == s->in.end)
			return IMG_OK;
		for (size_t i = s->in.pos; i < s->in.end; i++)
			if (s->in.buf[i] != 0) {
				uint64_t at = s->in.offset + i;
				return img_err_set(s->sc->err, IMG_E_TRAILING, 0, 1, at,
						   "%s: lz4: trailing garbage at byte %llu of the compressed stream, "
						   "after the last lz4 frame (0x%02x is not the start of another one)",
						   s->sc->name, (unsigned long long)at, s->in.buf[i]);
			}
		s->in.pos = s->in.end;
	}
}

/* At a boundary: the next frame, legacy stream or skippable frame, or the end. *done at the end. */
static int scan_unit(struct lz4_scan *s, int *done)
{
	static const uint8_t magic[4] = { 0x04, 0x22, 0x4D, 0x18 };
	int rc = zs_input_fill(&s->in, 8, s->sc->err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = s->in.buf + s->in.pos;
	size_t avail = s->in.end - s->in.pos;
	uint32_t m = avail >= 4 ? codec_le32(p) : 0;
	*done = 0;
	if (avail >= 4 && (m == LZ4_FRAME_MAGIC || m == LZ4_LEGACY_MAGIC)) {
		s->units++;
		return m == LZ4_FRAME_MAGIC ? scan_frame(s) : scan_legacy(s);
	}
	if (avail >= 4 && (m & LZ4_SKIPPABLE_MASK) == LZ4_SKIPPABLE_MAGIC) {
		if (avail < 8)
			return lz4_truncated(s->sc->err, s->sc->name, s->in.offset + s->in.end, 0);
		return scan_skippable(s);
	}
	if (avail > 0 && avail < 4 && memcmp(p, magic, avail) == 0)
		return lz4_truncated(s->sc->err, s->sc->name, s->in.offset + s->in.end, 0);
	if (s->units == 0)
		return img_err_set(s->sc->err, IMG_E_FORMAT, 0, 1, scan_at(s),
				   "%s: lz4: not an lz4 frame at byte %llu", s->sc->name,
				   (unsigned long long)scan_at(s));
	*done = 1;
	return scan_padding(s);
}

static int lz4_scan(struct zs_scan *sc)
{
	struct lz4_scan s = { .sc = sc, .next_progress = LZ4_PROGRESS_EVERY };
	int rc = zs_input_init(&s.in, sc->raw, 0, LZ4_IN_CAP, sc->err);
	if (rc != IMG_OK)
		return rc;
	int done = 0;
	while (rc == IMG_OK && !done)
		rc = scan_unit(&s, &done);
	sc->usize = s.uout;
	zs_input_free(&s.in);
	return rc;
}

/* ---- decoder ----------------------------------------------------------------------- */

struct lz4_dec {
	struct zs_input in;
	struct lz4_run run;
	size_t out_pos;      /* bytes of the decoded block handed out */
};

static void lz4_close(void *dp)
{
	struct lz4_dec *d = dp;
	free(d->run.buf);
	zs_input_free(&d->in);
	free(d);
}

static int lz4_open(img_rsrc *raw, const char *name, const struct zs_point *p, uint64_t next_uout,
		    void **out, img_err *err)
{
	uint32_t kind = p->aux >> 16;
	uint8_t flg = (uint8_t)p->aux, bd = (uint8_t)(p->aux >> 8);
	if (kind > KIND_LEGACY || (kind == KIND_FRAME && lz4_block_max(bd) == 0) || p->state_len > LZ4_DICT)
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: lz4: the access point at decoded byte %llu is damaged", name,
				   (unsigned long long)p->uout);
	struct lz4_dec *d = calloc(1, sizeof *d);
	if (!d)
		return lz4_nomem(err, name);
	size_t cap = kind == KIND_LEGACY ? LZ4_IN_CAP : lz4_block_max(bd) + 64;
	int rc = zs_input_init(&d->in, raw, p->cin, cap < ((size_t)256 << 10) ? (size_t)256 << 10 : cap, err);
	if (rc == IMG_OK)
		rc = run_init(&d->run, name, err, &d->in, kind == KIND_LEGACY, flg, bd);
	if (rc != IMG_OK) {
		lz4_close(d);
		return rc;
	}
	if (p->state_len && run_linked(&d->run)) {
		memcpy(run_out(&d->run) - p->state_len, p->state, p->state_len);
		d->run.dict_len = p->state_len;
	}
	*out = d;
	return IMG_OK;
}

static int lz4_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct lz4_dec *d = dp;
	*got = 0;
	d->run.err = err;
	while (*got < cap) {
		if (d->out_pos < d->run.out_len) {
			size_t n = d->run.out_len - d->out_pos;
			if (n > cap - *got)
				n = cap - *got;
			memcpy(dst + *got, run_out(&d->run) + d->out_pos, n);
			d->out_pos += n;
			*got += n;
			continue;
		}
		if (d->run.ended)
			break;
		int rc = run_block(&d->run);
		d->out_pos = 0;
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

const struct zs_ops zs_lz4_ops = { lz4_scan, lz4_open, lz4_read, lz4_close, 0, NULL };

/*
 * io/lzop.c - lzop (Clonezilla -z3): its table entry and its one decoder
 * (zseek.h), which serves the sequential stream, the scan and random reads.
 *
 * An lzop file is a header (magic 89 'LZO' 00 0D 0A 1A 0A, versions, the
 * method, flags saying which checksums the blocks carry, mode, mtime, name,
 * and a header checksum), then blocks: u32 BE decoded length (0 ends the
 * stream), u32 BE stored length, the checksums of the decoded bytes
 * (Adler-32 and/or CRC-32, as the flags say), those of the stored bytes when
 * the block is compressed (stored < decoded), then the stored bytes: LZO1X
 * data, or the bytes themselves when stored == decoded. Every block is
 * independent, so every block start can be an access point; the scan puts
 * one at the first block of each stream and then one every span decoded
 * bytes (a decoder goes on through the blocks after its point). Each block's
 * checksums are checked wherever it is decoded; the scan also hands its
 * output to the core, whose segment CRCs cover files written without block
 * checksums (lzop -F).
 *
 * Started whole (stream, scan) the decoder goes on through concatenated
 * lzop files (`cat a.lzo b.lzo`); after the last, zero bytes up to the end
 * are padding, any other byte is IMG_E_TRAILING naming its offset.
 *
 * Point fields: bits 1 (a block start; all zeros is the start of the data),
 * aux = the stream's flags.
 *
 * Not here: the table (codecs.c lists this entry), the core (zseek.c).
 */
#include <errno.h>
#include <lzo/lzo1x.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec_util.h"
#include "zseek.h"

#define LZOP_MAGIC "\x89LZO\0\r\n\x1a\n"
#define LZOP_MAGIC_LEN 9
#define LZOP_BLOCK_MAX ((uint32_t)64 << 20)  /* lzop's MAX_BLOCK_SIZE */
#define LZOP_HEADER_MAX 512                    /* 9 + 34 fixed + 255 name + extra-field head */

/* header flags */
#define F_ADLER32_D 0x00000001u
#define F_ADLER32_C 0x00000002u
#define F_H_EXTRA_FIELD 0x00000040u
#define F_CRC32_D 0x00000100u
#define F_CRC32_C 0x00000200u
#define F_H_FILTER 0x00000800u
#define F_H_CRC32 0x00001000u
#define F_RESERVED 0x000FC000u  /* neither flag, OS nor character set bits */

struct lzop_dec {
	const char *name;
	struct zs_input in;
	struct zs_scan *sc;    /* scan mode, or NULL */
	int whole;             /* go on after a stream's end */
	int in_stream;         /* a header was read and its end mark not yet */
	int finished;
	uint32_t flags;        /* the current stream's */
	uint64_t uout;         /* decoded offset of the next byte */
	uint64_t stream_out;   /* decoded bytes of the current stream */
	uint64_t last_point;   /* decoded offset of the last point (scan) */
	struct codec_stage stage;  /* a block decoded, not yet handed out */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int lzop_bid(const uint8_t *p, size_t n)
{
	return n >= LZOP_MAGIC_LEN && memcmp(p, LZOP_MAGIC, LZOP_MAGIC_LEN) == 0;
}

/* ---- the header ---------------------------------------------------------------- */

/* Reads header fields in order, each within the visible bytes. */
struct hdr_reader {
	const uint8_t *p;
	size_t n, at;
	int short_read;
};

static const uint8_t *hdr_take(struct hdr_reader *h, size_t k)
{
	if (h->at > h->n || h->n - h->at < k) {
		h->short_read = 1;
		return NULL;
	}
	h->at += k;
	return h->p + h->at - k;
}

static uint32_t hdr_u32(struct hdr_reader *h)
{
	const uint8_t *q = hdr_take(h, 4);
	return q ? be32(q) : 0;
}

static uint32_t hdr_u16(struct hdr_reader *h)
{
	const uint8_t *q = hdr_take(h, 2);
	return q ? be16(q) : 0;
}

static uint32_t hdr_u8(struct hdr_reader *h)
{
	const uint8_t *q = hdr_take(h, 1);
	return q ? q[0] : 0;
}

static uint32_t checksum(uint32_t flags_crc, const uint8_t *p, size_t n)
{
	return flags_crc ? (uint32_t)crc32(0, p, (uInt)n) : (uint32_t)adler32(1, p, (uInt)n);
}

/* Parse the header at the input (its magic checked by the caller). */
static int read_header(struct lzop_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, LZOP_HEADER_MAX, err);
	if (rc != IMG_OK)
		return rc;
	uint64_t at = zs_input_at(&d->in);
	struct hdr_reader h = { d->in.buf + d->in.pos, d->in.end - d->in.pos, LZOP_MAGIC_LEN, 0 };
	uint32_t version = hdr_u16(&h);
	hdr_u16(&h);  /* the LZO library's version */
	uint32_t needed = version >= 0x0940 ? hdr_u16(&h) : 0;
	uint32_t method = hdr_u8(&h);
	if (version >= 0x0940)
		hdr_u8(&h);  /* level */
	uint32_t flags = hdr_u32(&h);
	uint32_t filter = flags & F_H_FILTER ? hdr_u32(&h) : 0;
	hdr_u32(&h);  /* mode */
	hdr_u32(&h);  /* mtime */
	if (version >= 0x0940)
		hdr_u32(&h);
	hdr_take(&h, hdr_u8(&h));  /* the file name */
	size_t covered = h.at - LZOP_MAGIC_LEN;
	uint32_t sum = hdr_u32(&h);
	if (!h.short_read && (flags & F_H_EXTRA_FIELD)) {
		hdr_take(&h, hdr_u32(&h));
		hdr_u32(&h);
	}
	if (h.short_read)
		return zs_truncated(err, d->name, "lzop", "lzop header", d->in.offset + d->in.end);
	if (checksum(flags & F_H_CRC32, h.p + LZOP_MAGIC_LEN, covered) != sum)
		return zs_corrupt(err, d->name, "lzop", at, "header checksum mismatch");
	if (version < 0x0900 || (flags & F_RESERVED) || needed > 0x1040)
		return zs_corrupt(err, d->name, "lzop", at, "unsupported header (version or flags)");
	if (method < 1 || method > 3 || filter != 0)
		return img_err_set(err, IMG_E_FORMAT, 0, 1, at,
				   "%s: lzop: the stream at byte %llu uses %s %u, which imgbk does not decode "
				   "(use lzop -dc %s | imgbk ... -)", d->name, (unsigned long long)at,
				   filter ? "filter" : "method", filter ? filter : method, d->name);
	d->in.pos += h.at;
	d->flags = flags;
	d->in_stream = 1;
	d->stream_out = 0;
	return IMG_OK;
}

/* A stream ended (whole mode): another header, or the end, or trailing garbage. */
static int next_stream(struct lzop_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, LZOP_MAGIC_LEN, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	const uint8_t *p = d->in.buf + d->in.pos;
	if (avail > 0 && memcmp(p, LZOP_MAGIC, avail < LZOP_MAGIC_LEN ? avail : LZOP_MAGIC_LEN) == 0) {
		if (avail < LZOP_MAGIC_LEN)
			return zs_truncated(err, d->name, "lzop", "lzop header", d->in.offset + d->in.end);
		return read_header(d, err);
	}
	rc = zs_input_finish(&d->in, d->name, "lzop", "lzop stream", err);
	d->finished = rc == IMG_OK;
	return rc;
}

/* ---- blocks ------------------------------------------------------------------------- */

/* Scan mode: a point at this block when one is due. */
static int scan_point(struct lzop_dec *d, uint64_t cin)
{
	if (d->stream_out > 0 && d->uout < d->last_point + d->sc->span)
		return IMG_OK;
	struct zs_point p = { .cin = cin, .uout = d->uout, .bits = 1, .aux = d->flags };
	d->last_point = d->uout;
	return zs_add_point(d->sc, &p);
}

/* Decode the block of `dlen` bytes whose `slen` stored bytes are at s, checking its sums (at q). */
static int decode_block(struct lzop_dec *d, uint64_t cin, const uint8_t *q, const uint8_t *s, uint32_t slen,
			uint8_t *out, uint32_t dlen, img_err *err)
{
	uint32_t f = d->flags;
	const uint8_t *dsum = q, *csum = q + 4 * (!!(f & F_ADLER32_D) + !!(f & F_CRC32_D));
	if (slen < dlen) {
		if (((f & F_ADLER32_C) && adler32(1, s, slen) != be32(csum)) ||
		    ((f & F_CRC32_C) && crc32(0, s, slen) != be32(csum + 4 * !!(f & F_ADLER32_C))))
			return zs_corrupt(err, d->name, "lzop", cin, "compressed block checksum mismatch");
		lzo_uint n = dlen;
		int r = lzo1x_decompress_safe(s, slen, out, &n, NULL);
		if (r != LZO_E_OK || n != dlen)
			return zs_corrupt(err, d->name, "lzop", cin, "the block does not decode");
	} else {
		memcpy(out, s, dlen);
	}
	if (((f & F_ADLER32_D) && adler32(1, out, dlen) != be32(dsum)) ||
	    ((f & F_CRC32_D) && crc32(0, out, dlen) != be32(dsum + 4 * !!(f & F_ADLER32_D))))
		return zs_corrupt(err, d->name, "lzop", cin, "block checksum mismatch");
	return IMG_OK;
}

/* The next block: decoded straight into dst when it fits, else staged. */
static int next_block(struct lzop_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	uint64_t cin = zs_input_at(&d->in);
	int rc = zs_input_fill(&d->in, 8, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	if (avail < 4 || (avail < 8 && be32(d->in.buf + d->in.pos) != 0))
		return zs_truncated(err, d->name, "lzop", "lzop block", d->in.offset + d->in.end);
	const uint8_t *p = d->in.buf + d->in.pos;
	uint32_t dlen = be32(p), slen = be32(p + 4);
	if (dlen == 0) {
		d->in.pos += 4;
		d->in_stream = 0;
		d->finished = !d->whole;
		return IMG_OK;
	}
	if (dlen > LZOP_BLOCK_MAX || slen == 0 || slen > dlen)
		return zs_corrupt(err, d->name, "lzop", cin, "impossible block sizes");
	uint32_t f = d->flags;
	size_t sums = 4 * (size_t)(!!(f & F_ADLER32_D) + !!(f & F_CRC32_D));
	if (slen < dlen)
		sums += 4 * (size_t)(!!(f & F_ADLER32_C) + !!(f & F_CRC32_C));
	size_t whole = 8 + sums + slen;
	if ((rc = zs_input_need(&d->in, whole, err)) != IMG_OK)
		return rc;
	if (d->in.end - d->in.pos < whole)
		return zs_truncated(err, d->name, "lzop", "lzop block", d->in.offset + d->in.end);
	if (d->sc && (rc = scan_point(d, cin)) != IMG_OK)
		return rc;
	p = d->in.buf + d->in.pos;
	uint8_t *out = codec_stage_target(&d->stage, dst, room, dlen);
	if (!out)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: lzop: out of memory", d->name);
	if ((rc = decode_block(d, cin, p + 8, p + 8 + sums, slen, out, dlen, err)) != IMG_OK)
		return rc;
	d->in.pos += whole;
	if (d->sc)
		zs_scan_output(d->sc, out, dlen);
	d->uout += dlen;
	d->stream_out += dlen;
	codec_stage_done(&d->stage, dst, out, dlen, made);
	return IMG_OK;
}

/* One step: a block, or what comes after a stream's end. */
static int lzop_step(void *dp, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	struct lzop_dec *d = dp;
	return d->in_stream ? next_block(d, dst, room, made, err) : next_stream(d, err);
}

static int lzop_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct lzop_dec *d = dp;
	return codec_stage_read(&d->stage, d, lzop_step, &d->finished, dst, cap, got, err);
}

/* ---- start and end ------------------------------------------------------------------ */

static void lzop_close(void *dp)
{
	struct lzop_dec *d = dp;
	zs_input_free(&d->in);
	free(d->stage.buf);
	free(d);
}

static int lzop_start(const struct zs_start *st, void **out, img_err *err)
{
	const struct zs_point *p = st->p;
	if (p->bits > 1 || (p->bits == 0 && (p->cin != 0 || p->uout != 0)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: lzop: the access point at decoded byte %llu is damaged", st->name,
				   (unsigned long long)p->uout);
	struct lzop_dec *d = calloc(1, sizeof *d);
	if (!d || lzo_init() != LZO_E_OK) {
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: lzop: cannot set up the LZO library", st->name);
	}
	d->name = st->name;
	d->sc = st->sc;
	d->whole = st->whole;
	d->uout = p->uout;
	int rc = zs_input_start(&d->in, st, p->cin, (size_t)512 << 10, err);
	if (rc == IMG_OK && p->bits == 1) {  /* a block start: the stream's flags come with the point */
		d->flags = p->aux;
		d->in_stream = 1;
	} else if (rc == IMG_OK) {
		rc = read_header(d, err);
	}
	if (rc != IMG_OK) {
		lzop_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static const struct zs_ops lzop_ops = { .read = lzop_read, .close = lzop_close, .start = lzop_start };

const struct img_codec codec_lzop = {
	.name = "lzop", .magic_len = LZOP_MAGIC_LEN, .bid = lzop_bid, .seek = &lzop_ops,
	.tool = "lzop -dc", .suffixes = "lzo",
};

/*
 * io/codecs.c - the one table of decompressors (img_codecs[]), their bids
 * (magic bytes, FORMATS.md section 4), and the helpers of codec_util.h
 * (block staging).
 *
 * Not here: the decoders themselves (gz.c, bz2.c, zstd.c, xz.c, lz4.c, lzip.c, lzop.c) and
 * the sniffing loop that asks the bids and stacks layers (open.c).
 *
 * Bid rules:
 *  - Each bid checks the full magic, never a prefix of it.
 *  - A skippable frame (u32 LE 0x184D2A50..5F + u32 size + payload) is used
 *    by both zstd and lz4 frame files (pzstd starts every file with one).
 *    The bids walk the skippable frames visible in the bytes given and look
 *    at the magic that follows: an lz4 frame/legacy magic -> lz4, a zstd
 *    frame magic -> zstd, anything else -> neither. When the following magic
 *    is beyond the visible bytes (a large skippable frame, or a file that is
 *    only skippable frames), zstd takes it.
 *  - lzma-alone has no magic; its heuristic bid comes last in the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "codec_util.h"
#include "zseek.h"

/* ---- shared helpers (codec_util.h) -------------------------------------- */

uint8_t *codec_stage_target(struct codec_stage *st, uint8_t *dst, size_t room, size_t most)
{
	if (room >= most)
		return dst;
	if (st->cap < most) {
		uint8_t *b = realloc(st->buf, most);
		if (!b)
			return NULL;
		st->buf = b;
		st->cap = most;
	}
	return st->buf;
}

void codec_stage_done(struct codec_stage *st, const uint8_t *dst, const uint8_t *out, size_t n,
		      size_t *made)
{
	*made = out == dst ? n : 0;
	st->pos = 0;
	st->len = out == dst ? 0 : n;
}

int codec_stage_read(struct codec_stage *st, void *dec, codec_block_step step, const int *finished,
		     uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	*got = 0;
	while (*got < cap) {
		if (st->pos < st->len) {
			size_t n = st->len - st->pos < cap - *got ? st->len - st->pos : cap - *got;
			memcpy(dst + *got, st->buf + st->pos, n);
			st->pos += n;
			*got += n;
			continue;
		}
		if (*finished)
			break;
		size_t made = 0;
		int rc = step(dec, dst + *got, cap - *got, &made, err);
		*got += made;
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

/* ---- bids ---------------------------------------------------------------- */

#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define SKIPPABLE_MAGIC 0x184D2A50u /* low 4 bits free */
#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_LEGACY_MAGIC 0x184C2102u

static int is_skippable(uint32_t magic)
{
	return (magic & 0xFFFFFFF0u) == SKIPPABLE_MAGIC;
}

/*
 * Walk the skippable frames at p. @return 0 when p does not start with one,
 * 1 with *next = the magic after them, -1 when that magic is not visible.
 */
static int after_skippable(const uint8_t *p, size_t n, uint32_t *next)
{
	uint64_t off = 0;
	if (n < 4 || !is_skippable(codec_le32(p)))
		return 0;
	while (off + 8 <= n && is_skippable(codec_le32(p + off)))
		off += 8 + (uint64_t)codec_le32(p + off + 4);
	if (off + 4 > n)
		return -1;
	*next = codec_le32(p + off);
	return 1;
}

static int gzip_bid(const uint8_t *p, size_t n)
{
	/* ID1 ID2 CM=deflate; FLG's reserved bits 5..7 must be zero. */
	return n >= 4 && p[0] == 0x1F && p[1] == 0x8B && p[2] == 0x08 && (p[3] & 0xE0) == 0;
}

static int bzip2_bid(const uint8_t *p, size_t n)
{
	static const uint8_t block[6] = { 0x31, 0x41, 0x59, 0x26, 0x53, 0x59 };
	static const uint8_t eos[6] = { 0x17, 0x72, 0x45, 0x38, 0x50, 0x90 };
	return n >= 10 && memcmp(p, "BZh", 3) == 0 && p[3] >= '1' && p[3] <= '9' &&
	       (memcmp(p + 4, block, 6) == 0 || memcmp(p + 4, eos, 6) == 0);
}

static int zstd_bid(const uint8_t *p, size_t n)
{
	uint32_t next = 0;
	if (n >= 4 && codec_le32(p) == ZSTD_FRAME_MAGIC)
		return 1;
	int k = after_skippable(p, n, &next);
	return k < 0 || (k > 0 && next == ZSTD_FRAME_MAGIC);
}

static int xz_bid(const uint8_t *p, size_t n)
{
	static const uint8_t magic[6] = { 0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00 };
	return n >= 6 && memcmp(p, magic, 6) == 0;
}

static int lz4_bid(const uint8_t *p, size_t n)
{
	uint32_t next = 0;
	if (n < 4)
		return 0;
	uint32_t m = codec_le32(p);
	if (m == LZ4_FRAME_MAGIC || m == LZ4_LEGACY_MAGIC)
		return 1;
	return after_skippable(p, n, &next) > 0 && (next == LZ4_FRAME_MAGIC || next == LZ4_LEGACY_MAGIC);
}

/* lzip member header: "LZIP", version 1, a dictionary size code of 4 KiB .. 512 MiB. */
static int lzip_bid(const uint8_t *p, size_t n)
{
	return n >= 6 && memcmp(p, "LZIP", 4) == 0 && p[4] == 1 && (p[5] & 0x1F) >= 12 && (p[5] & 0x1F) <= 29;
}

/* lrzip file header: "LRZI", major version 0, minor version 1..255. */
static int lrzip_bid(const uint8_t *p, size_t n)
{
	return n >= 6 && memcmp(p, "LRZI", 4) == 0 && p[4] == 0 && p[5] != 0;
}

static int is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/*
 * lzma-alone: props byte (lc/lp/pb) < 225, a dictionary of 2^n or
 * 2^n + 2^(n-1) bytes (at least 4 KiB, as xz and the LZMA SDK write), an
 * uncompressed size that is unknown (all FF) or below 2^50, and the range
 * coder's first byte, which is always 0.
 */
static int lzma_bid(const uint8_t *p, size_t n)
{
	if (n < 14 || p[0] >= 225 || p[13] != 0)
		return 0;
	uint32_t dict = codec_le32(p + 1);
	if (dict < 4096 || !(is_pow2(dict) || (dict % 3 == 0 && is_pow2(dict / 3))))
		return 0;
	uint64_t size = (uint64_t)codec_le32(p + 5) | (uint64_t)codec_le32(p + 9) << 32;
	return size == UINT64_MAX || size < ((uint64_t)1 << 50);
}

/* ---- the table ------------------------------------------------------------ */

/*
 * magic_len is the least a bid needs (a 9-byte empty zstd frame must still be
 * recognised); given more bytes, the zstd and lz4 bids look past skippable
 * frames (open.c shows them 64).
 */

static const struct img_codec gzip_codec = {
	.name = "gzip", .magic_len = 4, .bid = gzip_bid, .seek = &zs_gzip_ops,
	.tool = "gzip -dc", .suffixes = "gz tgz",
};
static const struct img_codec bzip2_codec = {
	.name = "bzip2", .magic_len = 10, .bid = bzip2_bid, .seek = &zs_bzip2_ops,
	.tool = "bzip2 -dc", .suffixes = "bz2", .unit_len = zs_bzip2_unit_len,
};
static const struct img_codec zstd_codec = {
	.name = "zstd", .magic_len = 4, .bid = zstd_bid, .seek = &zs_zstd_ops,
	.tool = "zstd -dc", .suffixes = "zst", .unit_len = zs_zstd_unit_len,
};
static const struct img_codec xz_codec = {
	.name = "xz", .magic_len = 6, .bid = xz_bid, .seek = &zs_xz_ops,
	.tool = "xz -dc", .suffixes = "xz", .mount_fix = "xz -dc %s | xz -T0 > NEW.xz (multi-block)",
};
static const struct img_codec lz4_codec = {
	.name = "lz4", .magic_len = 4, .bid = lz4_bid, .seek = &zs_lz4_ops,
	.tool = "lz4 -dc", .suffixes = "lz4",
};
static const struct img_codec lzip_codec = {
	.name = "lzip", .magic_len = 6, .bid = lzip_bid, .seek = &zs_lzip_ops,
	.tool = "lzip -dc", .suffixes = "lz", .mount_fix = "lzip -dc %s | plzip -3 > NEW.lz (many members)",
};
static const struct img_codec lzma_codec = {
	.name = "lzma", .magic_len = 14, .bid = lzma_bid, .open = codec_lzma_open,
	.tool = "xz -dc", .suffixes = "lzma",
};

/* Clonezilla -z7: refused, with the command that converts it (%1$s: the file). */
static const struct img_codec lrzip_codec = {
	.name = "lrzip", .magic_len = 6, .bid = lrzip_bid, .tool = "lrzip -q -d -o -", .suffixes = "lrz",
	.convert = "lrzip -q -d -o - %1$s | zstd -T0 > %1$s.zst",
};

extern const struct img_codec codec_lzop;  /* codecs in a file of their own (io/NAME.c) */

const struct img_codec *const img_codecs[] = {
	&gzip_codec, &bzip2_codec, &zstd_codec, &xz_codec, &lz4_codec, &lzip_codec, &lrzip_codec, &codec_lzop,
	&lzma_codec, /* heuristic: last */
	NULL,
};

/* ---- looking the table up ------------------------------------------------------- */

const struct img_codec *codec_by_name(const char *name, size_t len)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (strlen(img_codecs[i]->name) == len && strncmp(img_codecs[i]->name, name, len) == 0)
			return img_codecs[i];
	return NULL;
}

/* 1 when the space separated `list` holds word (len bytes, any case). */
static int word_in(const char *list, const char *word, size_t len)
{
	while (list && *list) {
		size_t n = strcspn(list, " ");
		if (n == len && strncasecmp(list, word, len) == 0)
			return 1;
		list += n + (list[n] == ' ');
	}
	return 0;
}

int img_codec_suffix(const char *sfx, size_t len)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (word_in(img_codecs[i]->suffixes, sfx, len))
			return 1;
	return 0;
}

static int units_parallel = 1;

void codec_units_parallel(int on)
{
	units_parallel = on;
}

int codec_open(const struct img_codec *c, img_stream *up, img_stream **out)
{
	if (c->open)
		return c->open(up, out);
	if (units_parallel && c->seek && c->seek->start && c->unit_len && sysconf(_SC_NPROCESSORS_ONLN) > 1)
		return zpar_stream_open(up, c->name, c->seek, c->unit_len, out);
	if (c->seek && c->seek->start)
		return zs_stream_open(up, c->name, c->seek, out);
	const char *path = up->path ? up->path : "FILE";
	char cmd[600] = "";
	if (c->convert)
		snprintf(cmd, sizeof cmd, c->convert, path);
	return img_err_set(up->err, IMG_E_FORMAT, 0, 0, 0,
			   "%s: %s: %s data, which imgbk does not decode; convert it with: %s", path, c->name,
			   c->name, cmd[0] ? cmd : c->tool ? c->tool : "its own tool");
}

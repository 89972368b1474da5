/*
 * io/zstd_blocks.h - a parser of zstd frames below libzstd's public API
 * (RFC 8878 sections 3.1.1 and 5), written from the RFC: it walks a frame's
 * blocks, keeps the entropy state a decoder carries from block to block
 * (the literals Huffman tree description, the literal length / offset /
 * match length FSE table descriptions or their predefined / RLE modes, the
 * three repeat offsets), FSE-decodes every sequence and reports, per match,
 * which earlier decoded bytes it copies. It does not decode literals.
 *
 * What it is for: a checkpoint at a block boundary B of one big frame. The
 * state at B written as a zstd dictionary (zb_dict_header) followed by the
 * window before B (only the bytes that matches after B copy need to be
 * right) lets plain libzstd resume at B: a 6-byte frame header (magic,
 * descriptor 0x00, zb_frame.window_byte) then the original blocks from B,
 * decoded with that dictionary.
 *
 * Robust to any input: every read is bounds-checked; bad data gives
 * ZB_E_CORRUPT with a reason in zb_state.why, never a crash. No printing,
 * no allocation (the state is one flat struct), no I/O.
 */
#ifndef IMGBK_IO_ZSTD_BLOCKS_H
#define IMGBK_IO_ZSTD_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define ZB_OK 0
#define ZB_E_SHORT (-1)    /* more bytes are needed (zb_block: *need says how many) */
#define ZB_E_CORRUPT (-2)  /* the data breaks the format; zb_state.why says how */
#define ZB_E_SPACE (-3)    /* the output buffer is too small */

#define ZB_BLOCK_MAX ((uint32_t)128 << 10)      /* largest block content (RFC 3.1.1.2.4) */
#define ZB_HUF_DESC_MAX 129                      /* header byte + up to 128 bytes */
#define ZB_FSE_DESC_MAX 128                      /* an FSE table description */
#define ZB_DICT_HEAD_MAX (8 + ZB_HUF_DESC_MAX + 3 * ZB_FSE_DESC_MAX + 12)
#define ZB_DICT_MAGIC 0xEC30A437u

/* The frame header, parsed. */
struct zb_frame {
	size_t header_size;      /* magic included */
	uint64_t window_size;    /* single segment: the content size */
	uint64_t content_size;   /* UINT64_MAX when not stated */
	uint32_t dict_id;
	int single_segment, checksum;
	uint8_t window_byte;     /* a Window_Descriptor >= window_size for a resumed frame */
};

/* Parse the frame header at p (n bytes available, magic first).
 * @return ZB_OK, ZB_E_SHORT, or ZB_E_CORRUPT (not a frame, reserved bit, or
 * a window no descriptor can state). */
int zb_frame_header(const uint8_t *p, size_t n, struct zb_frame *f);

enum { ZB_LL, ZB_OF, ZB_ML };                    /* the three sequence tables */
enum { ZB_PREDEFINED, ZB_RLE, ZB_FSE };          /* how a table in force was defined */

struct zb_fse_cell {
	uint8_t symbol, bits;
	uint16_t base;
};

struct zb_table {
	int defined;             /* a table is in force (Repeat_Mode may use it) */
	int mode;                /* ZB_PREDEFINED, ZB_RLE or ZB_FSE */
	uint8_t rle_symbol;
	uint8_t log;             /* accuracy log (0 for RLE) */
	uint16_t desc_len;       /* ZB_FSE: the description, verbatim */
	uint8_t desc[ZB_FSE_DESC_MAX];
	uint64_t rle_from;       /* ZB_RLE: compressed offset (in the frame) of the block defining it */
	struct zb_fse_cell cell[512];
};

/* A decoder's state between blocks. Initialise with zb_state_init. */
struct zb_state {
	uint64_t pos;            /* decoded bytes of the frame before the next block */
	uint64_t cpos;           /* frame-relative compressed offset of the next block header */
	uint64_t window_size;
	uint32_t rep[3];
	int huf_defined;
	uint16_t huf_len;
	uint8_t huf[ZB_HUF_DESC_MAX];
	struct zb_table t[3];
	int ended;               /* the last block was parsed */
	uint64_t report_below;   /* zb_block reports only matches whose source starts
				  * before this (set by the caller; UINT64_MAX from zb_state_init) */
	const char *why;         /* ZB_E_CORRUPT: the reason */
};

/* What zb_block learned of one block. */
struct zb_block_info {
	int type;                /* 0 raw, 1 RLE, 2 compressed */
	int last;                /* Last_Block flag */
	size_t csize;            /* compressed bytes, block header included */
	uint32_t usize;          /* decoded bytes */
	uint32_t sequences;
	/* Boundaries whose compressed offset (frame-relative) is in
	 * (unusable_after, this block's offset] cannot be resumed at: a table
	 * in RLE mode there is used again in Repeat_Mode here, which a
	 * dictionary cannot express. UINT64_MAX: none. */
	uint64_t unusable_after;
};

/* Per match: decoded bytes [src, src + len) of the frame (src + len <=
 * dst) are copied to dst. Only the bytes that existed before dst are
 * reported (an overlapping match reports len = its offset). A block found
 * damaged may have reported some of its matches before the damage. */
typedef void (*zb_match_fn)(void *ctx, uint64_t dst, uint64_t src, uint32_t len);

void zb_state_init(struct zb_state *s, const struct zb_frame *f);

/*
 * Parse the block whose header is at p (n bytes available), update s, and
 * report every match to fn (may be NULL). @return ZB_OK; ZB_E_SHORT with
 * *need = the bytes the whole block takes (when n is less); ZB_E_CORRUPT.
 * On an error s is unchanged except s->why.
 */
int zb_block(struct zb_state *s, const uint8_t *p, size_t n, size_t *need, struct zb_block_info *info,
	     zb_match_fn fn, void *ctx);

/*
 * Write the dictionary header that puts a decoder in state s: magic, id,
 * Huffman description (a valid two-symbol one when none is defined yet),
 * OF, ML and LL table descriptions (predefined as the default distribution,
 * RLE as a one-symbol distribution), the three repeat offsets. The caller
 * appends at least zb_dict_min_content(s) bytes of content (the window).
 * @return ZB_OK, or ZB_E_SPACE when cap is too small (ZB_DICT_HEAD_MAX is enough).
 */
int zb_dict_header(const struct zb_state *s, uint32_t id, uint8_t *out, size_t cap, size_t *len);
/* The least content a dictionary for s needs (its largest repeat offset). */
uint32_t zb_dict_min_content(const struct zb_state *s);

/* Build an FSE decoding table from a normalized distribution (norm[i] in
 * -1..; sum of |norm| == 1 << log). For tests. @return ZB_OK or ZB_E_CORRUPT. */
int zb_fse_build(struct zb_fse_cell *cell, const int16_t *norm, unsigned nsym, unsigned log);
/* Read an FSE table description: *used bytes, norm[0..*nsym), *log.
 * @return ZB_OK, ZB_E_CORRUPT (also beyond max_sym or max_log). */
int zb_ncount_read(const uint8_t *p, size_t n, unsigned max_sym, unsigned max_log, int16_t *norm,
		   unsigned *nsym, unsigned *log, size_t *used);
/* Write a normalized distribution as an FSE table description. @return ZB_OK or ZB_E_SPACE. */
int zb_ncount_write(const int16_t *norm, unsigned nsym, unsigned log, uint8_t *out, size_t cap, size_t *len);

#endif

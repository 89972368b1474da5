/*
 * io/zstd_blocks.c - zstd block and sequence parser (zstd_blocks.h), from
 * RFC 8878: frame header, block headers, literals section headers (the
 * Huffman tree description kept verbatim, literals not decoded), sequences
 * section headers (FSE table descriptions kept verbatim), FSE decoding of
 * the sequences with the repeat offset rules, and the checkpoint
 * dictionary header. Every read is bounds-checked.
 *
 * Not here: any libzstd call, I/O, the window bytes (the caller's).
 */
#include <string.h>

#include "zstd_blocks.h"

#define ZB_MAGIC 0xFD2FB528u
#define LL_MAX_SYM 35
#define ML_MAX_SYM 52
#define OF_MAX_SYM 31
#define LL_MAX_LOG 9
#define ML_MAX_LOG 9
#define OF_MAX_LOG 8

static const int16_t ll_default[36] = { 4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2,
					2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1 };
static const int16_t ml_default[53] = { 1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1,
					1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
					1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1 };
static const int16_t of_default[29] = { 1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1,
					1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1 };

static const uint32_t ll_base[36] = { 0,  1,  2,   3,   4,   5,   6,    7,    8,    9,     10,    11,
				      12, 13, 14,  15,  16,  18,  20,   22,   24,   28,    32,    40,
				      48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536 };
static const uint8_t ll_bits[36] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  0,  0,  0,  0,  1,  1,
				     1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint32_t ml_base[53] = { 3,   4,   5,   6,    7,    8,    9,    10,    11,    12,    13,
				      14,  15,  16,  17,   18,   19,   20,   21,    22,    23,    24,
				      25,  26,  27,  28,   29,   30,   31,   32,    33,    34,    35,
				      37,  39,  41,  43,   47,   51,   59,   67,    83,    99,    131,
				      259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539 };
static const uint8_t ml_bits[53] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
				     2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static const unsigned max_sym[3] = { LL_MAX_SYM, OF_MAX_SYM, ML_MAX_SYM };
static const unsigned max_log[3] = { LL_MAX_LOG, OF_MAX_LOG, ML_MAX_LOG };

static uint32_t le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static uint32_t le32(const uint8_t *p)
{
	return le24(p) | (uint32_t)p[3] << 24;
}

static unsigned highbit(uint32_t v)  /* v > 0 */
{
	return 31u - (unsigned)__builtin_clz(v);
}

static int corrupt(struct zb_state *s, const char *why)
{
	s->why = why;
	return ZB_E_CORRUPT;
}

/* ---- frame header ------------------------------------------------------------ */

/* The smallest Window_Descriptor whose window is at least w. */
static int window_byte_for(uint64_t w, uint8_t *out)
{
	for (unsigned e = 0; e < 32; e++) {
		uint64_t base = (uint64_t)1 << (10 + e);
		for (unsigned m = 0; m < 8; m++) {
			if (base + base / 8 * m >= w) {
				*out = (uint8_t)(e << 3 | m);
				return ZB_OK;
			}
		}
	}
	return ZB_E_CORRUPT;
}

int zb_frame_header(const uint8_t *p, size_t n, struct zb_frame *f)
{
	memset(f, 0, sizeof *f);
	if (n < 5)
		return ZB_E_SHORT;
	if (le32(p) != ZB_MAGIC)
		return ZB_E_CORRUPT;
	uint8_t fhd = p[4];
	unsigned fcs_flag = fhd >> 6, did_flag = fhd & 3;
	f->single_segment = fhd >> 5 & 1;
	f->checksum = fhd >> 2 & 1;
	if (fhd & 8)
		return ZB_E_CORRUPT;
	static const unsigned did_size[4] = { 0, 1, 2, 4 };
	unsigned fcs_size = fcs_flag == 0 ? (unsigned)f->single_segment : 1u << fcs_flag;
	size_t need = 5 + (f->single_segment ? 0 : 1) + did_size[did_flag] + fcs_size;
	if (n < need)
		return ZB_E_SHORT;
	const uint8_t *q = p + 5;
	if (!f->single_segment) {
		unsigned e = *q >> 3, m = *q & 7;
		uint64_t base = (uint64_t)1 << (10 + e);
		f->window_size = base + base / 8 * m;
		f->window_byte = *q++;
	}
	for (unsigned i = 0; i < did_size[did_flag]; i++)
		f->dict_id |= (uint32_t)*q++ << (8 * i);
	f->content_size = UINT64_MAX;
	if (fcs_size) {
		uint64_t v = 0;
		for (unsigned i = 0; i < fcs_size; i++)
			v |= (uint64_t)*q++ << (8 * i);
		f->content_size = fcs_size == 2 ? v + 256 : v;
	}
	if (f->single_segment) {
		f->window_size = f->content_size;
		if (window_byte_for(f->window_size, &f->window_byte) != ZB_OK)
			return ZB_E_CORRUPT;
	}
	f->header_size = need;
	return ZB_OK;
}

void zb_state_init(struct zb_state *s, const struct zb_frame *f)
{
	memset(s, 0, sizeof *s);
	s->window_size = f->window_size;
	s->cpos = f->header_size;
	s->rep[0] = 1;
	s->rep[1] = 4;
	s->rep[2] = 8;
	s->report_below = UINT64_MAX;
}

/* ---- FSE table descriptions ---------------------------------------------------- */

/* Forward little-endian bit reader over a bounded buffer. */
struct fwd_bits {
	const uint8_t *p;
	size_t n;
	uint64_t pos;  /* bits consumed */
};

static int fwd_peek(const struct fwd_bits *b, unsigned nb, uint32_t *v)
{
	uint64_t x = 0;
	size_t byte = (size_t)(b->pos >> 3);
	if (b->pos + nb > (uint64_t)b->n * 8)
		return ZB_E_CORRUPT;
	for (unsigned i = 0; i < 4 && byte + i < b->n; i++)
		x |= (uint64_t)b->p[byte + i] << (8 * i);
	*v = (uint32_t)((x >> (b->pos & 7)) & (((uint64_t)1 << nb) - 1));
	return ZB_OK;
}

/* Peek up to nb bits, those past the end reading as 0 (the last value may
 * use fewer bits than its field when it is small). */
static uint32_t fwd_peek_lenient(const struct fwd_bits *b, unsigned nb)
{
	uint64_t x = 0;
	size_t byte = (size_t)(b->pos >> 3);
	for (unsigned i = 0; i < 4 && byte + i < b->n; i++)
		x |= (uint64_t)b->p[byte + i] << (8 * i);
	return (uint32_t)((x >> (b->pos & 7)) & (((uint64_t)1 << nb) - 1));
}

int zb_ncount_read(const uint8_t *p, size_t n, unsigned maxs, unsigned maxl, int16_t *norm, unsigned *nsym,
		   unsigned *log, size_t *used)
{
	struct fwd_bits b = { p, n, 0 };
	uint32_t v;
	if (fwd_peek(&b, 4, &v) != ZB_OK)
		return ZB_E_CORRUPT;
	b.pos = 4;
	unsigned al = v + 5;
	if (al > maxl)
		return ZB_E_CORRUPT;
	int32_t remaining = (1 << al) + 1;  /* points left + 1 */
	uint32_t threshold = 1u << al;
	unsigned nb = al + 1, sym = 0;
	while (remaining > 1) {
		if (sym > maxs)
			return ZB_E_CORRUPT;
		uint32_t max = 2 * threshold - 1 - (uint32_t)remaining;
		uint32_t low = fwd_peek_lenient(&b, nb - 1), count;
		if (low < max) {
			count = low;
			b.pos += nb - 1;
		} else {
			count = fwd_peek_lenient(&b, nb);
			if (count >= threshold)
				count -= max;
			b.pos += nb;
		}
		if (b.pos > (uint64_t)n * 8)
			return ZB_E_CORRUPT;
		int prob = (int)count - 1;
		remaining -= prob < 0 ? -prob : prob;
		if (remaining < 1)
			return ZB_E_CORRUPT;
		norm[sym++] = (int16_t)prob;
		if (prob == 0) {
			for (;;) {
				uint32_t rep;
				if (fwd_peek(&b, 2, &rep) != ZB_OK)
					return ZB_E_CORRUPT;
				b.pos += 2;
				for (uint32_t i = 0; i < rep; i++) {
					if (sym > maxs)
						return ZB_E_CORRUPT;
					norm[sym++] = 0;
				}
				if (rep != 3)
					break;
			}
		}
		while (remaining < (int32_t)threshold && nb > 1) {
			nb--;
			threshold >>= 1;
		}
	}
	if (remaining != 1)
		return ZB_E_CORRUPT;
	*nsym = sym;
	*log = al;
	*used = (size_t)((b.pos + 7) >> 3);
	return ZB_OK;
}

/* Forward bit writer. */
struct fwd_out {
	uint8_t *p;
	size_t cap;
	uint64_t pos;
	int full;
};

static void put_bits(struct fwd_out *o, uint32_t v, unsigned nb)
{
	for (unsigned i = 0; i < nb; i++, o->pos++) {
		size_t byte = (size_t)(o->pos >> 3);
		if (byte >= o->cap) {
			o->full = 1;
			return;
		}
		if ((o->pos & 7) == 0)
			o->p[byte] = 0;
		o->p[byte] |= (uint8_t)((v >> i & 1) << (o->pos & 7));
	}
}

int zb_ncount_write(const int16_t *norm, unsigned nsym, unsigned al, uint8_t *out, size_t cap, size_t *len)
{
	struct fwd_out o = { out, cap, 0, 0 };
	put_bits(&o, al - 5, 4);
	int32_t remaining = (1 << al) + 1;
	uint32_t threshold = 1u << al;
	unsigned nb = al + 1;
	for (unsigned sym = 0; sym < nsym && remaining > 1;) {
		uint32_t count = (uint32_t)(norm[sym] + 1);
		uint32_t max = 2 * threshold - 1 - (uint32_t)remaining;
		if (count < max)
			put_bits(&o, count, nb - 1);
		else if (count < threshold)
			put_bits(&o, count, nb);
		else
			put_bits(&o, count + max, nb);
		remaining -= norm[sym] < 0 ? -norm[sym] : norm[sym];
		sym++;
		if (count == 1) {  /* probability 0: how many more zeros follow */
			unsigned run = 0;
			while (sym + run < nsym && norm[sym + run] == 0)
				run++;
			sym += run;
			while (run >= 3) {
				put_bits(&o, 3, 2);
				run -= 3;
			}
			put_bits(&o, run, 2);
		}
		while (remaining < (int32_t)threshold && nb > 1) {
			nb--;
			threshold >>= 1;
		}
	}
	if (o.full)
		return ZB_E_SPACE;
	*len = (size_t)((o.pos + 7) >> 3);
	return ZB_OK;
}

int zb_fse_build(struct zb_fse_cell *cell, const int16_t *norm, unsigned nsym, unsigned al)
{
	uint32_t size = 1u << al, high = size - 1, mask = size - 1;
	uint16_t next[64];
	uint32_t sum = 0;
	if (nsym > 64 || al > 9)
		return ZB_E_CORRUPT;
	for (unsigned s = 0; s < nsym; s++)
		sum += (uint32_t)(norm[s] < 0 ? 1 : norm[s]);
	if (sum != size)
		return ZB_E_CORRUPT;
	for (unsigned s = 0; s < nsym; s++) {
		if (norm[s] == -1) {
			cell[high--].symbol = (uint8_t)s;
			next[s] = 1;
		} else {
			next[s] = (uint16_t)(norm[s] > 0 ? norm[s] : 0);
		}
	}
	uint32_t step = (size >> 1) + (size >> 3) + 3, pos = 0;
	for (unsigned s = 0; s < nsym; s++) {
		for (int i = 0; i < norm[s]; i++) {
			cell[pos].symbol = (uint8_t)s;
			do
				pos = (pos + step) & mask;
			while (pos > high);
		}
	}
	if (pos != 0)
		return ZB_E_CORRUPT;
	for (uint32_t st = 0; st < size; st++) {
		uint8_t s = cell[st].symbol;
		uint32_t x = next[s]++;
		if (x == 0)
			return ZB_E_CORRUPT;
		unsigned bits = al - highbit(x);
		cell[st].bits = (uint8_t)bits;
		cell[st].base = (uint16_t)((x << bits) - size);
	}
	return ZB_OK;
}

/* ---- backward bit stream (sequences) -------------------------------------------- */

struct back_bits {
	const uint8_t *p;
	size_t n;
	int64_t pos;   /* bits not yet read */
	int over;      /* more bits were read than there are */
};

static int back_init(struct back_bits *b, const uint8_t *p, size_t n)
{
	b->p = p;
	b->n = n;
	b->over = 0;
	if (n == 0 || p[n - 1] == 0)
		return ZB_E_CORRUPT;
	b->pos = (int64_t)n * 8 - 8 + highbit(p[n - 1]);
	return ZB_OK;
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t x;
	memcpy(&x, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

/* Inlined (6 reads per sequence); nb == 0 reads nothing (the mask is 0). */
static inline __attribute__((always_inline)) uint32_t back_read(struct back_bits *b, unsigned nb)
{
	b->pos -= nb;
	if (b->pos < 0) {
		b->over = 1;
		b->pos = 0;
		return 0;
	}
	size_t byte = (size_t)(b->pos >> 3);
	uint64_t x = 0;
	if (byte + 8 <= b->n) {
		x = load_le64(b->p + byte);
	} else {
		for (unsigned i = 0; byte + i < b->n; i++)
			x |= (uint64_t)b->p[byte + i] << (8 * i);
	}
	return (uint32_t)((x >> (b->pos & 7)) & (((uint64_t)1 << nb) - 1));
}

/* ---- blocks ---------------------------------------------------------------------- */

static void table_predefined(struct zb_table *t, int which)
{
	const int16_t *norm = which == ZB_LL ? ll_default : which == ZB_OF ? of_default : ml_default;
	unsigned n = which == ZB_LL ? 36 : which == ZB_OF ? 29 : 53, log = which == ZB_OF ? 5 : 6;
	t->defined = 1;
	t->mode = ZB_PREDEFINED;
	t->log = (uint8_t)log;
	t->desc_len = 0;
	zb_fse_build(t->cell, norm, n, log);
}

static void table_rle(struct zb_table *t, uint8_t sym, uint64_t at)
{
	t->defined = 1;
	t->mode = ZB_RLE;
	t->rle_symbol = sym;
	t->rle_from = at;
	t->log = 0;
	t->desc_len = 0;
	t->cell[0].symbol = sym;
	t->cell[0].bits = 0;
	t->cell[0].base = 0;
}

/* The literals section at p (n bytes of block content): its size and
 * regenerated size; a Huffman tree description is kept in s. */
static int parse_literals(struct zb_state *s, const uint8_t *p, size_t n, size_t *used, uint32_t *regen,
			  const uint8_t **huf, size_t *huf_len)
{
	*huf = NULL;
	*huf_len = 0;
	if (n < 1)
		return corrupt(s, "empty compressed block");
	unsigned type = p[0] & 3, sf = p[0] >> 2 & 3;
	if (type < 2) {
		size_t hs;
		if (sf == 0 || sf == 2) {
			hs = 1;
			*regen = p[0] >> 3;
		} else if (sf == 1) {
			hs = 2;
			if (n < 2)
				return corrupt(s, "literals header beyond the block");
			*regen = (p[0] >> 4) + ((uint32_t)p[1] << 4);
		} else {
			hs = 3;
			if (n < 3)
				return corrupt(s, "literals header beyond the block");
			*regen = (p[0] >> 4) + ((uint32_t)p[1] << 4) + ((uint32_t)p[2] << 12);
		}
		size_t body = type == 0 ? *regen : 1;
		if (n - hs < body)
			return corrupt(s, "literals beyond the block");
		*used = hs + body;
		return ZB_OK;
	}
	size_t hs = sf < 2 ? 3 : sf == 2 ? 4 : 5;
	if (n < hs)
		return corrupt(s, "literals header beyond the block");
	uint64_t v = 0;
	for (size_t i = 0; i < hs; i++)
		v |= (uint64_t)p[i] << (8 * i);
	unsigned w = sf < 2 ? 10 : sf == 2 ? 14 : 18;
	*regen = (uint32_t)(v >> 4 & ((1u << w) - 1));
	uint32_t csize = (uint32_t)(v >> (4 + w) & ((1u << w) - 1));
	if (csize == 0 || n - hs < csize)
		return corrupt(s, "compressed literals beyond the block");
	if (*regen > ZB_BLOCK_MAX)
		return corrupt(s, "too many literals");
	if (type == 2) {
		uint8_t hb = p[hs];
		size_t dlen = hb < 128 ? 1 + (size_t)hb : 1 + ((size_t)hb - 127 + 1) / 2;
		if (dlen > csize || dlen > ZB_HUF_DESC_MAX || (hb < 128 && hb == 0))
			return corrupt(s, "Huffman tree description beyond the literals");
		*huf = p + hs;
		*huf_len = dlen;
	} else if (!s->huf_defined) {
		return corrupt(s, "treeless literals before any Huffman tree");
	}
	*used = hs + csize;
	return ZB_OK;
}

/* One table description of the sequences section header (mode m). */
static int parse_table(struct zb_state *s, struct zb_table *next, int which, unsigned m, const uint8_t *p,
		       size_t n, size_t *used, uint64_t block_at, uint64_t *unusable_after)
{
	*used = 0;
	if (m == 0) {
		table_predefined(next, which);
		return ZB_OK;
	}
	if (m == 1) {
		if (n < 1)
			return corrupt(s, "RLE table beyond the block");
		if (p[0] > max_sym[which])
			return corrupt(s, "RLE symbol out of range");
		table_rle(next, p[0], block_at);
		*used = 1;
		return ZB_OK;
	}
	if (m == 3) {
		if (!s->t[which].defined)
			return corrupt(s, "Repeat_Mode before any table");
		*next = s->t[which];
		if (next->mode == ZB_RLE && next->rle_from < *unusable_after)
			*unusable_after = next->rle_from;
		return ZB_OK;
	}
	int16_t norm[64];
	unsigned nsym, log;
	size_t len;
	if (zb_ncount_read(p, n, max_sym[which], max_log[which], norm, &nsym, &log, &len) != ZB_OK ||
	    len > ZB_FSE_DESC_MAX || len > n)
		return corrupt(s, "bad FSE table description");
	if (zb_fse_build(next->cell, norm, nsym, log) != ZB_OK)
		return corrupt(s, "bad FSE distribution");
	next->defined = 1;
	next->mode = ZB_FSE;
	next->log = (uint8_t)log;
	next->desc_len = (uint16_t)len;
	memcpy(next->desc, p, len);
	*used = len;
	return ZB_OK;
}

/* The offset a sequence uses, with the repeat offsets updated (RFC 3.1.2.5). */
static int apply_offset(struct zb_state *s, uint32_t *rep, uint64_t ov, uint32_t ll, uint64_t *offset)
{
	if (ov > 3) {
		if (ov - 3 > UINT32_MAX)
			return corrupt(s, "offset too large");
		rep[2] = rep[1];
		rep[1] = rep[0];
		rep[0] = (uint32_t)(ov - 3);
	} else {
		unsigned idx = (unsigned)ov - (ll == 0 ? 0 : 1);  /* 0..3: index into reps, 3 = rep0 - 1 */
		uint32_t o;
		if (idx == 0) {
			o = rep[0];
		} else if (idx == 3) {
			o = rep[0] - 1;
			if (o == 0)
				return corrupt(s, "repeat offset 1 - 1");
			rep[2] = rep[1];
			rep[1] = rep[0];
			rep[0] = o;
		} else {
			o = rep[idx];
			if (idx == 2)
				rep[2] = rep[1];
			rep[1] = rep[0];
			rep[0] = o;
		}
	}
	*offset = rep[0];
	return ZB_OK;
}

struct seq_run {
	struct zb_state *s;
	const struct zb_table *t;  /* LL, OF, ML in force for this block */
	uint32_t rep[3];
	uint64_t out;              /* frame position */
	uint64_t lits_left;
	zb_match_fn fn;
	void *ctx;
	uint64_t below;            /* report matches whose source starts before this */
};

/* FSE-decode nseq sequences from the bitstream p[0..n). */
static int decode_sequences(struct seq_run *r, uint32_t nseq, const uint8_t *p, size_t n)
{
	struct zb_state *s = r->s;
	struct back_bits b;
	if (back_init(&b, p, n) != ZB_OK)
		return corrupt(s, "sequences bitstream without its end mark");
	const struct zb_table *tl = &r->t[ZB_LL], *to = &r->t[ZB_OF], *tm = &r->t[ZB_ML];
	uint32_t sl = back_read(&b, tl->log), so = back_read(&b, to->log), sm = back_read(&b, tm->log);
	for (uint32_t i = 0; i < nseq; i++) {
		const struct zb_fse_cell *cl = &tl->cell[sl], *co = &to->cell[so], *cm = &tm->cell[sm];
		unsigned ofc = co->symbol, llc = cl->symbol, mlc = cm->symbol;
		if (ofc > OF_MAX_SYM || llc > LL_MAX_SYM || mlc > ML_MAX_SYM)
			return corrupt(s, "sequence code out of range");
		uint64_t ov = ((uint64_t)1 << ofc) + back_read(&b, ofc);
		uint32_t ml = ml_base[mlc] + back_read(&b, ml_bits[mlc]);
		uint32_t ll = ll_base[llc] + back_read(&b, ll_bits[llc]);
		if (b.over)
			return corrupt(s, "sequences bitstream overread");
		uint64_t off;
		if (apply_offset(s, r->rep, ov, ll, &off) != ZB_OK)
			return ZB_E_CORRUPT;
		if (ll > r->lits_left)
			return corrupt(s, "sequences use more literals than there are");
		r->lits_left -= ll;
		r->out += ll;
		if (off > r->out || off > s->window_size)
			return corrupt(s, "match offset beyond the decoded data or the window");
		if (r->out + ml + r->lits_left - s->pos > ZB_BLOCK_MAX)
			return corrupt(s, "block decodes to more than 128 KiB");
		if (r->out - off < r->below)
			r->fn(r->ctx, r->out, r->out - off, off < ml ? (uint32_t)off : ml);
		r->out += ml;
		if (i + 1 < nseq) {
			sl = cl->base + back_read(&b, cl->bits);
			sm = cm->base + back_read(&b, cm->bits);
			so = co->base + back_read(&b, co->bits);
		}
	}
	if (b.over || b.pos != 0)
		return corrupt(s, "sequences bitstream not used up exactly");
	return ZB_OK;
}

static void keep_tree(struct zb_state *s, const uint8_t *huf, size_t len)
{
	if (!huf)
		return;
	memcpy(s->huf, huf, len);
	s->huf_len = (uint16_t)len;
	s->huf_defined = 1;
}

/* Parse the content of a compressed block (n bytes at p) at s->pos. */
static int parse_compressed(struct zb_state *s, const uint8_t *p, size_t n, uint32_t block_max,
			    struct zb_block_info *info, zb_match_fn fn, void *ctx)
{
	size_t used, huf_len;
	uint32_t regen;
	const uint8_t *huf;
	int rc = parse_literals(s, p, n, &used, &regen, &huf, &huf_len);
	if (rc != ZB_OK)
		return rc;
	p += used;
	n -= used;
	if (n < 1)
		return corrupt(s, "no sequences section");
	uint32_t nseq;
	if (p[0] < 128) {
		nseq = p[0];
		used = 1;
	} else if (p[0] < 255) {
		if (n < 2)
			return corrupt(s, "sequences header beyond the block");
		nseq = ((uint32_t)(p[0] - 0x80) << 8) + p[1];
		used = 2;
	} else {
		if (n < 3)
			return corrupt(s, "sequences header beyond the block");
		nseq = p[1] + ((uint32_t)p[2] << 8) + 0x7F00;
		used = 3;
	}
	p += used;
	n -= used;
	info->sequences = nseq;
	if (nseq == 0) {  /* the section stops here (RFC 3.1.1.3.2.1) */
		if (regen > block_max)
			return corrupt(s, "block decodes to more than the frame allows");
		info->usize = regen;
		keep_tree(s, huf, huf_len);
		return ZB_OK;
	}
	if (n < 1)
		return corrupt(s, "sequences header beyond the block");
	uint8_t modes = p[0];
	if (modes & 3)
		return corrupt(s, "reserved bits of the sequence modes set");
	p++;
	n--;
	/* new tables go to a copy: s stays as it was when anything fails */
	struct zb_table next[3];
	unsigned mode[3] = { modes >> 6 & 3, modes >> 4 & 3, modes >> 2 & 3 };
	uint64_t block_at = s->cpos;
	for (int which = 0; which < 3; which++) {
		rc = parse_table(s, &next[which], which, mode[which], p, n, &used, block_at, &info->unusable_after);
		if (rc != ZB_OK)
			return rc;
		p += used;
		n -= used;
	}
	struct seq_run r = { .s = s, .t = next, .out = s->pos, .lits_left = regen, .fn = fn, .ctx = ctx,
			     .below = fn ? s->report_below : 0 };
	memcpy(r.rep, s->rep, sizeof r.rep);
	rc = decode_sequences(&r, nseq, p, n);
	if (rc != ZB_OK)
		return rc;
	uint64_t total = r.out - s->pos + r.lits_left;
	if (total > block_max)
		return corrupt(s, "block decodes to more than the frame allows");
	info->usize = (uint32_t)total;
	keep_tree(s, huf, huf_len);
	memcpy(s->rep, r.rep, sizeof r.rep);
	for (int which = 0; which < 3; which++)
		if (mode[which] != 3)
			s->t[which] = next[which];
	return ZB_OK;
}

int zb_block(struct zb_state *s, const uint8_t *p, size_t n, size_t *need, struct zb_block_info *info,
	     zb_match_fn fn, void *ctx)
{
	memset(info, 0, sizeof *info);
	info->unusable_after = UINT64_MAX;
	*need = 3;
	if (s->ended)
		return corrupt(s, "block after the last block");
	if (n < 3)
		return ZB_E_SHORT;
	uint32_t h = le24(p), size = h >> 3;
	info->last = (int)(h & 1);
	info->type = (int)(h >> 1 & 3);
	if (info->type == 3)
		return corrupt(s, "reserved block type");
	uint64_t block_max = s->window_size < ZB_BLOCK_MAX ? s->window_size : ZB_BLOCK_MAX;
	if (size > block_max)
		return corrupt(s, "block larger than the frame allows");
	info->csize = 3 + (info->type == 1 ? 1 : (size_t)size);
	*need = info->csize;
	if (n < info->csize)
		return ZB_E_SHORT;
	if (info->type == 2) {
		int rc = parse_compressed(s, p + 3, size, (uint32_t)block_max, info, fn, ctx);
		if (rc != ZB_OK)
			return rc;
	} else {
		info->usize = size;
	}
	s->pos += info->usize;
	s->cpos += info->csize;
	s->ended = info->last;
	return ZB_OK;
}

/* ---- the dictionary header --------------------------------------------------------- */

static int put_table(const struct zb_table *t, int which, uint8_t *out, size_t cap, size_t *len)
{
	if (t->defined && t->mode == ZB_FSE) {
		if (t->desc_len > cap)
			return ZB_E_SPACE;
		memcpy(out, t->desc, t->desc_len);
		*len = t->desc_len;
		return ZB_OK;
	}
	if (t->defined && t->mode == ZB_RLE) {
		int16_t norm[64] = { 0 };
		norm[t->rle_symbol] = 32;
		return zb_ncount_write(norm, t->rle_symbol + 1u, 5, out, cap, len);
	}
	const int16_t *norm = which == ZB_LL ? ll_default : which == ZB_OF ? of_default : ml_default;
	unsigned n = which == ZB_LL ? 36 : which == ZB_OF ? 29 : 53, log = which == ZB_OF ? 5 : 6;
	return zb_ncount_write(norm, n, log, out, cap, len);
}

int zb_dict_header(const struct zb_state *s, uint32_t id, uint8_t *out, size_t cap, size_t *len)
{
	static const uint8_t any_tree[2] = { 0x80, 0x10 };  /* two symbols of one bit */
	const uint8_t *huf = s->huf_defined ? s->huf : any_tree;
	size_t hl = s->huf_defined ? s->huf_len : sizeof any_tree, at = 0, l;
	if (cap < 8 + hl + 12)
		return ZB_E_SPACE;
	uint32_t magic = ZB_DICT_MAGIC;
	for (int i = 0; i < 4; i++) {
		out[i] = (uint8_t)(magic >> (8 * i));
		out[4 + i] = (uint8_t)(id >> (8 * i));
	}
	memcpy(out + 8, huf, hl);
	at = 8 + hl;
	static const int order[3] = { ZB_OF, ZB_ML, ZB_LL };
	for (int i = 0; i < 3; i++) {
		int rc = put_table(&s->t[order[i]], order[i], out + at, cap - at, &l);
		if (rc != ZB_OK)
			return rc;
		at += l;
	}
	if (cap - at < 12)
		return ZB_E_SPACE;
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < 4; i++)
			out[at++] = (uint8_t)(s->rep[r] >> (8 * i));
	*len = at;
	return ZB_OK;
}

uint32_t zb_dict_min_content(const struct zb_state *s)
{
	uint32_t m = 8;
	for (int i = 0; i < 3; i++)
		if (s->rep[i] > m)
			m = s->rep[i];
	return m;
}

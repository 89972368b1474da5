/*
 * io/zseek_points.c - the access points of the random-read core (zseek.h,
 * io/zseek_points.h): the list a scan builds (zs_add_point; thinned to a
 * memory budget, each state zlib-packed when that is smaller, a CRC-32 per
 * segment when the scan feeds its output), a point's state unpacked for a
 * decoder (read from the index file when the view was loaded from one), and
 * the points' saved form and its checked loading.
 *
 * Not here: the view that reads through the points (io/zseek.c), where the
 * saved form is stored (formats/access.c puts it in the index).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec_util.h"
#include "zseek_points.h"
#include "grow.h"

/* Stateful points and the bytes their (packed) states take, at most; past
 * either the span doubles and every other point goes. */
#define ZS_MAX_STATEFUL ((size_t)1 << 20)
#define ZS_STATE_BUDGET ((uint64_t)4 << 30)
#define ZS_SAVED_MAGIC "IMGBKZS3"
#define ZS_SAVED_HEAD 40
#define ZS_SAVED_POINT 64

/* ---- points ------------------------------------------------------------------- */

static void kept_free(struct kept_point *k)
{
	free(k->p.state);
	k->p.state = NULL;
}

static int core_push(struct zs_core *c, const struct kept_point *k)
{
	if (grow_for(&c->pts, &c->cap, c->n, sizeof *c->pts, 256))
		return IMG_E_IO;
	c->pts[c->n++] = *k;
	c->state_bytes += k->p.state_len;
	if (k->raw_len) {
		c->stateful++;
		c->last_state = k->p.uout;
	}
	return IMG_OK;
}

/* Drop every second stateful point (the first and the last point stay) and
 * double the span; a dropped point's segment joins the one before it. */
static void core_thin(struct zs_core *c, uint64_t *span)
{
	size_t w = 0, seen = 0, kept = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct kept_point *k = &c->pts[i];
		if (k->raw_len && (seen++ & 1) && i + 1 < c->n && w > 0) {
			struct kept_point *prev = &c->pts[w - 1];
			uint64_t len = c->pts[i + 1].p.uout - k->p.uout;
			prev->has_crc = prev->has_crc && k->has_crc;
			prev->crc = (uint32_t)crc32_combine(prev->crc, k->crc, (z_off_t)len);
			c->state_bytes -= k->p.state_len;
			kept_free(k);
			continue;
		}
		kept += k->raw_len != 0;
		c->pts[w++] = *k;
	}
	c->n = w;
	c->stateful = kept;
	c->last_state = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->pts[i].raw_len)
			c->last_state = c->pts[i].p.uout;
	*span *= 2;
}

static int pack_state(const uint8_t *state, uint32_t len, int packed_already, struct kept_point *k)
{
	if (packed_already) {
		k->p.state = malloc(len);
		if (!k->p.state)
			return IMG_E_IO;
		memcpy(k->p.state, state, len);
		k->p.state_len = len;
		k->raw_len = len;
		k->packed = 0;
		return IMG_OK;
	}
	uLongf room = compressBound(len);
	uint8_t *buf = malloc(room);
	if (!buf)
		return IMG_E_IO;
	if (compress2(buf, &room, state, len, 1) == Z_OK && room < len) {
		k->packed = 1;
	} else {
		memcpy(buf, state, len);
		room = len;
		k->packed = 0;
	}
	uint8_t *fit = realloc(buf, room ? room : 1);
	k->p.state = fit ? fit : buf;
	k->p.state_len = (uint32_t)room;
	k->raw_len = len;
	return IMG_OK;
}

void zs_core_close_segment(struct zs_core *c)
{
	if (c->n > 0 && !c->preset) {
		c->pts[c->n - 1].has_crc = c->fed;
		c->pts[c->n - 1].crc = c->run_crc;
	}
	c->run_crc = 0;
}

void zs_scan_output(struct zs_scan *sc, const uint8_t *p, size_t n)
{
	struct zs_core *c = sc->core;
	c->fed = 1;
	c->run_crc = crc32_fast(c->run_crc, p, n);
}

int zs_add_point(struct zs_scan *sc, const struct zs_point *p)
{
	struct zs_core *c = sc->core;
	if (c->n == 0 ? p->uout != 0 : p->uout < c->pts[c->n - 1].p.uout)
		return img_err_set(sc->err, IMG_E_CORRUPT, 0, 1, p->cin,
				   "%s: access point at decoded byte %llu out of order (compressed byte %llu)",
				   sc->name, (unsigned long long)p->uout, (unsigned long long)p->cin);
	struct kept_point k = { .p = *p };
	k.p.state = NULL;
	k.p.state_len = 0;
	if (p->state_len > ZS_MAX_STATE)
		return img_err_set(sc->err, IMG_E_IO, 0, 0, 0, "%s: access point state too large", sc->name);
	if (p->state_len && pack_state(p->state, p->state_len, sc->states_packed, &k) != IMG_OK)
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory (access points)",
				   sc->name);
	zs_core_close_segment(c);
	if (core_push(c, &k) != IMG_OK) {
		kept_free(&k);
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory (access points)",
				   sc->name);
	}
	c->preset = 0;
	if (c->stateful > ZS_MAX_STATEFUL || c->state_bytes > ZS_STATE_BUDGET)
		core_thin(c, &sc->span);
	return IMG_OK;
}

int zs_add_point_crc(struct zs_scan *sc, const struct zs_point *p, uint32_t crc)
{
	struct zs_core *c = sc->core;
	int rc = zs_add_point(sc, p);
	if (rc == IMG_OK) {
		/* thinning may have merged the point away: its CRC then joins the last one's */
		struct kept_point *last = &c->pts[c->n - 1];
		if (last->p.uout == p->uout) {
			last->has_crc = 1;
			last->crc = crc;
			c->preset = 1;
		}
	}
	return rc;
}

uint64_t zs_last_state_point(const struct zs_scan *sc)
{
	return sc->core->last_state;
}

void zs_scan_progress(struct zs_scan *sc, uint64_t compressed_done)
{
	if (sc->progress)
		sc->progress(sc->progress_ctx, compressed_done, sc->core->raw_size);
}

/* The stored bytes of k's state, read from the saved states into buf
 * (k->p.state_len bytes) and checked against their CRC-32.
 * @return IMG_OK, IMG_E_CORRUPT (damaged or short), IMG_E_IO. */
static int read_saved_state(const struct zs_core *c, const struct kept_point *k, uint8_t *buf)
{
	img_err err;
	memset(&err, 0, sizeof err);
	size_t got = 0;
	int rc = rsrc_pread(c->states, buf, k->p.state_len, c->states_at + k->soff, &got, &err);
	if (rc != IMG_OK)
		return IMG_E_IO;
	return got == k->p.state_len && crc32_fast(0, buf, got) == k->scrc ? IMG_OK : IMG_E_CORRUPT;
}

int zs_core_unpack_state(const struct zs_core *c, const struct kept_point *k, uint8_t *dst)
{
	const uint8_t *stored = k->p.state;
	uint8_t *tmp = NULL;
	if (!stored) {
		if (!c->states)
			return IMG_E_CORRUPT;
		if (!k->packed)  /* stored == raw: straight into dst */
			return read_saved_state(c, k, dst);
		if (!(tmp = malloc(k->p.state_len)))
			return IMG_E_IO;
		int rc = read_saved_state(c, k, tmp);
		if (rc != IMG_OK) {
			free(tmp);
			return rc;
		}
		stored = tmp;
	}
	int rc = IMG_OK;
	if (!k->packed) {
		memcpy(dst, stored, k->raw_len);
	} else {
		uLongf len = k->raw_len;
		if (uncompress(dst, &len, stored, k->p.state_len) != Z_OK || len != k->raw_len)
			rc = IMG_E_CORRUPT;
	}
	free(tmp);
	return rc;
}

/* ---- the saved form -------------------------------------------------------------
 * "IMGBKZS3", u32 points, u32 0, u64 decoded size, u64 span, u64 compressed
 * size (40 bytes); per point (64 bytes) u64 cin, u64 uout, u32 bits, u32 aux,
 * u64 aux2, u32 stored length, u32 raw length | packed << 31, u32 segment
 * CRC-32, u32 has CRC, u64 offset of the stored state among the states, u32
 * its CRC-32, u32 0; then the stored states in order (the "front" is what
 * comes before them: an index file keeps the states apart, zs_saved_front). */


static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int zs_core_save(const struct zs_core *c, uint64_t usize, uint64_t span, uint8_t **out, size_t *len)
{
	uint64_t states = 0;
	for (size_t i = 0; i < c->n; i++)
		states += c->pts[i].p.state_len;
	size_t total = ZS_SAVED_HEAD + c->n * ZS_SAVED_POINT + (size_t)states;
	uint8_t *b = malloc(total);
	if (!b)
		return IMG_E_IO;
	memcpy(b, ZS_SAVED_MAGIC, 8);
	codec_put_le32(b + 8, (uint32_t)c->n);
	codec_put_le32(b + 12, 0);
	codec_put_le64(b + 16, usize);
	codec_put_le64(b + 24, span);
	codec_put_le64(b + 32, c->raw_size);
	uint8_t *q = b + ZS_SAVED_HEAD, *s = q + c->n * ZS_SAVED_POINT;
	uint64_t soff = 0;
	for (size_t i = 0; i < c->n; i++, q += ZS_SAVED_POINT) {
		const struct kept_point *k = &c->pts[i];
		codec_put_le64(q, k->p.cin);
		codec_put_le64(q + 8, k->p.uout);
		codec_put_le32(q + 16, k->p.bits);
		codec_put_le32(q + 20, k->p.aux);
		codec_put_le64(q + 24, k->p.aux2);
		codec_put_le32(q + 32, k->p.state_len);
		codec_put_le32(q + 36, k->raw_len | (uint32_t)k->packed << 31);
		codec_put_le32(q + 40, k->crc);
		codec_put_le32(q + 44, (uint32_t)k->has_crc);
		codec_put_le64(q + 48, soff);
		codec_put_le32(q + 60, 0);
		if (k->p.state_len && k->p.state) {
			memcpy(s, k->p.state, k->p.state_len);
		} else if (k->p.state_len && read_saved_state(c, k, s) != IMG_OK) {
			free(b);  /* the index file the states were in is damaged or gone */
			return IMG_E_IO;
		}
		codec_put_le32(q + 56, k->p.state_len ? crc32_fast(0, s, k->p.state_len) : 0);
		s += k->p.state_len;
		soff += k->p.state_len;
	}
	*out = b;
	*len = total;
	return IMG_OK;
}

size_t zs_saved_front(const uint8_t *b, size_t len)
{
	if (len < ZS_SAVED_HEAD || memcmp(b, ZS_SAVED_MAGIC, 8) != 0)
		return len;
	uint32_t n = get32(b + 8);
	if ((len - ZS_SAVED_HEAD) / ZS_SAVED_POINT < n)
		return len;
	return ZS_SAVED_HEAD + (size_t)n * ZS_SAVED_POINT;
}

/* One point of the saved form at q; 0 when its fields are out of range
 * (prev: the point before it, or NULL; usize, raw: the data's sizes). */
static int saved_point(const uint8_t *q, const struct kept_point *prev, uint64_t usize, uint64_t raw,
		       struct kept_point *k)
{
	memset(k, 0, sizeof *k);
	k->p.cin = get64(q);
	k->p.uout = get64(q + 8);
	k->p.bits = get32(q + 16);
	k->p.aux = get32(q + 20);
	k->p.aux2 = get64(q + 24);
	k->p.state_len = get32(q + 32);
	uint32_t rl = get32(q + 36);
	k->raw_len = rl & 0x7FFFFFFFu;
	k->packed = (int)(rl >> 31);
	k->crc = get32(q + 40);
	k->has_crc = (int)get32(q + 44);
	k->soff = get64(q + 48);
	k->scrc = get32(q + 56);
	return !(k->p.cin > raw || k->p.uout > usize || (!prev && k->p.uout != 0) ||
		 (prev && (k->p.uout < prev->p.uout || k->p.cin < prev->p.cin)) || k->p.bits >= 65536 ||
		 k->has_crc > 1 || k->raw_len > ZS_MAX_STATE || k->p.state_len > ZS_MAX_STATE ||
		 (k->raw_len == 0) != (k->p.state_len == 0) || (!k->packed && k->p.state_len != k->raw_len) ||
		 get32(q + 60) != 0);
}

int zs_core_load(struct zs_core *core, const uint8_t *b, size_t len, uint64_t *usize_out, uint64_t *span_out)
{
	if (len < ZS_SAVED_HEAD || memcmp(b, ZS_SAVED_MAGIC, 8) != 0)
		return 0;
	uint32_t n = get32(b + 8);
	uint64_t usize = get64(b + 16), span = get64(b + 24), raw = get64(b + 32);
	if (n == 0 || get32(b + 12) != 0 || raw != core->raw_size || span == 0 ||
	    (len - ZS_SAVED_HEAD) / ZS_SAVED_POINT < n)
		return 0;
	const uint8_t *q = b + ZS_SAVED_HEAD, *s = q + (size_t)n * ZS_SAVED_POINT, *end = b + len;
	int apart = s == end && core->states;  /* the states are in the index file */
	if (apart && rsrc_size(core->states) - core->states_len < core->states_at)
		return 0;
	uint64_t room = apart ? core->states_len : (uint64_t)(end - s);
	struct zs_core c = { .raw_size = raw, .states = core->states, .states_at = core->states_at,
			     .states_len = core->states_len };
	uint64_t soff = 0;
	int bad = 0;
	for (uint32_t i = 0; i < n && !bad; i++, q += ZS_SAVED_POINT) {
		struct kept_point k;
		bad = !saved_point(q, i ? &c.pts[i - 1] : NULL, usize, raw, &k) || k.soff != soff ||
		      room - soff < k.p.state_len;
		if (!bad && k.p.state_len && !apart) {
			bad = crc32_fast(0, s + soff, k.p.state_len) != k.scrc || !(k.p.state = malloc(k.p.state_len));
			if (!bad)
				memcpy(k.p.state, s + soff, k.p.state_len);
		}
		soff += bad ? 0 : k.p.state_len;
		if (!bad && core_push(&c, &k) != IMG_OK) {
			kept_free(&k);
			bad = 1;
		}
	}
	if (bad || soff != room) {
		for (size_t j = 0; j < c.n; j++)
			kept_free(&c.pts[j]);
		free(c.pts);
		return 0;
	}
	*core = c;
	*usize_out = usize;
	*span_out = span;
	return 1;
}

void zs_core_free(struct zs_core *c)
{
	for (size_t i = 0; i < c->n; i++)
		kept_free(&c->pts[i]);
	free(c->pts);
	if (c->states)
		rsrc_close(c->states);
	memset(c, 0, sizeof *c);
}

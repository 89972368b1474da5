/*
 * io/zseek_gz.c - random access into gzip data (zseek.h), the zran.c idea:
 * the scan inflates everything once, stopping at deflate block ends
 * (Z_BLOCK); where a point is due it records the compressed offset, the
 * bits of the last byte not yet used, and the 32 KiB of output before it.
 * A decoder resumes there with raw inflate, inflatePrime and
 * inflateSetDictionary. Every member start (cat a.gz b.gz) is a point
 * without state (aux 0) decoded with the gzip wrapper, so its CRC-32 and
 * length are checked; a decoder stops at the end of its member and the core
 * goes on from the next member's point.
 *
 * The scan checks what the streaming layer (gz.c) checks: every member's
 * CRC-32 and length, zero padding only after the last member, no garbage;
 * and it feeds the decoded bytes to the core, whose segment CRCs stand in
 * for the member CRC a decoder started mid-member cannot check.
 *
 * Not here: the list of points, cursors and saved form (zseek.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zseek.h"

#define GZ_WINDOW 32768u
#define GZ_PROGRESS_EVERY ((uint64_t)64 << 20)

enum { POINT_MEMBER = 0, POINT_INSIDE = 1 };

static int gz_error(img_err *err, const char *name, int code, uint64_t at, const char *what,
		    const char *detail)
{
	return img_err_set(err, code, 0, 1, at, "%s: gzip: %s at byte %llu of the compressed stream%s%s%s",
			   name, what, (unsigned long long)at, detail ? " (zlib: " : "",
			   detail ? detail : "", detail ? ")" : "");
}

/* ---- scan ------------------------------------------------------------------------ */

struct gz_scan {
	struct zs_scan *sc;
	struct zs_input in;
	z_stream z;
	uint8_t *window;     /* circular: the last GZ_WINDOW bytes of output */
	size_t wpos;         /* next write position in window */
	int wfull;           /* the window has wrapped */
	uint64_t uout;       /* decoded bytes so far */
	uint64_t member_out; /* decoded bytes of the current member */
	uint64_t next_progress;
};

static uint64_t scan_cin(const struct gz_scan *g)
{
	return g->in.offset + g->in.pos;
}

/* Record a point inside a member, at a deflate block end. */
static int add_inside(struct gz_scan *g)
{
	uint8_t lin[GZ_WINDOW];
	size_t n;
	if (g->wfull) {
		memcpy(lin, g->window + g->wpos, GZ_WINDOW - g->wpos);
		memcpy(lin + GZ_WINDOW - g->wpos, g->window, g->wpos);
		n = GZ_WINDOW;
	} else {
		memcpy(lin, g->window, g->wpos);
		n = g->wpos;
	}
	if (n > g->member_out)  /* the window never reaches into the previous member */
		memmove(lin, lin + n - g->member_out, (size_t)g->member_out), n = (size_t)g->member_out;
	struct zs_point p = { .cin = scan_cin(g), .uout = g->uout, .bits = (uint32_t)(g->z.data_type & 7),
			      .aux = POINT_INSIDE, .state_len = (uint32_t)n, .state = lin };
	return zs_add_point(g->sc, &p);
}

/* At a member boundary (cin at the next byte): start the next member, or end. */
static int next_member(struct gz_scan *g, int first, int *done)
{
	int rc = zs_input_fill(&g->in, 2, g->sc->err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = g->in.buf + g->in.pos;
	size_t avail = g->in.end - g->in.pos;
	if (first || (avail >= 2 && p[0] == 0x1F && p[1] == 0x8B) || (avail == 1 && p[0] == 0x1F)) {
		if (!first && inflateReset(&g->z) != Z_OK)
			return gz_error(g->sc->err, g->sc->name, IMG_E_CORRUPT, scan_cin(g), "inflateReset failed", NULL);
		struct zs_point pt = { .cin = scan_cin(g), .uout = g->uout, .aux = POINT_MEMBER };
		g->member_out = 0;
		g->wpos = 0;
		g->wfull = 0;
		*done = 0;
		return zs_add_point(g->sc, &pt);
	}
	for (;;) {  /* zero padding up to the end, nothing else */
		for (size_t i = 0; i < avail; i++)
			if (p[i] != 0)
				return img_err_set(g->sc->err, IMG_E_TRAILING, 0, 1, scan_cin(g) + i,
						   "%s: gzip: trailing garbage at byte %llu of the compressed stream, "
						   "after the last gzip member (0x%02x is not the start of another one)",
						   g->sc->name, (unsigned long long)(scan_cin(g) + i), p[i]);
		g->in.pos = g->in.end;
		if (g->in.eof)
			break;
		if ((rc = zs_input_fill(&g->in, 1, g->sc->err)) != IMG_OK)
			return rc;
		p = g->in.buf + g->in.pos;
		avail = g->in.end - g->in.pos;
	}
	*done = 1;
	return IMG_OK;
}

/* Inflate one step into the window. @return IMG_OK, or an error; *zret the zlib code. */
static int scan_step(struct gz_scan *g, int *zret)
{
	int rc = zs_input_fill(&g->in, 64 << 10, g->sc->err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = g->in.end - g->in.pos;
	if (avail == 0)
		return gz_error(g->sc->err, g->sc->name, IMG_E_TRUNCATED, scan_cin(g),
				"the compressed stream ends inside a gzip member (truncated)", NULL);
	if (g->wpos == GZ_WINDOW) {
		g->wpos = 0;
		g->wfull = 1;
	}
	g->z.next_in = g->in.buf + g->in.pos;
	g->z.avail_in = (uInt)avail;
	g->z.next_out = g->window + g->wpos;
	g->z.avail_out = (uInt)(GZ_WINDOW - g->wpos);
	int zr = inflate(&g->z, Z_BLOCK);
	size_t used = avail - g->z.avail_in, made = GZ_WINDOW - g->wpos - g->z.avail_out;
	if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_MEM_ERROR)
		return gz_error(g->sc->err, g->sc->name, zr == Z_MEM_ERROR ? IMG_E_IO : IMG_E_CORRUPT,
				scan_cin(g) + used, "invalid compressed data", g->z.msg ? g->z.msg : "bad data");
	g->in.pos += used;
	zs_scan_output(g->sc, g->window + g->wpos, made);  /* segment CRCs: raw inflate has none */
	g->wpos += made;
	g->uout += made;
	g->member_out += made;
	*zret = zr;
	if (zr == Z_BUF_ERROR && used == 0 && made == 0 && g->in.eof && g->in.pos == g->in.end)
		return gz_error(g->sc->err, g->sc->name, IMG_E_TRUNCATED, scan_cin(g),
				"the compressed stream ends inside a gzip member (truncated)", NULL);
	return IMG_OK;
}

static int gz_scan(struct zs_scan *sc)
{
	struct gz_scan g = { .sc = sc, .next_progress = GZ_PROGRESS_EVERY };
	int rc = zs_input_init(&g.in, sc->raw, 0, 0, sc->err);
	if (rc != IMG_OK)
		return rc;
	g.window = malloc(GZ_WINDOW);
	if (!g.window || inflateInit2(&g.z, 15 + 16) != Z_OK) {
		free(g.window);
		zs_input_free(&g.in);
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: out of memory", sc->name);
	}
	int done = 0;
	rc = next_member(&g, 1, &done);
	while (rc == IMG_OK && !done) {
		int zr = Z_OK;
		rc = scan_step(&g, &zr);
		if (rc != IMG_OK)
			break;
		if (zr == Z_STREAM_END) {
			rc = next_member(&g, 0, &done);
			continue;
		}
		/* A deflate block just ended (not the last one): a place to restart. */
		if ((g.z.data_type & 128) && !(g.z.data_type & 64) && g.member_out > 0 &&
		    g.uout >= zs_last_state_point(sc) + sc->span)
			rc = add_inside(&g);
		if (scan_cin(&g) >= g.next_progress) {
			zs_scan_progress(sc, scan_cin(&g));
			g.next_progress = scan_cin(&g) + GZ_PROGRESS_EVERY;
		}
	}
	sc->usize = g.uout;
	inflateEnd(&g.z);
	free(g.window);
	zs_input_free(&g.in);
	return rc;
}

/* ---- decoder ------------------------------------------------------------------------ */

struct gz_dec {
	const char *name;
	struct zs_input in;
	z_stream z;
	int ended;         /* the member's deflate data ended */
	img_err *err;
};

static void gz_close(void *dp);

/* Position a raw inflate at a point inside a member: the unused bits of the
 * byte before cin, then the window as the dictionary. */
static int gz_resume(struct gz_dec *d, const struct zs_point *p, uint64_t start, img_err *err)
{
	if (p->bits) {
		int rc = zs_input_fill(&d->in, 1, err);
		if (rc != IMG_OK)
			return rc;
		if (d->in.end == d->in.pos)
			return gz_error(err, d->name, IMG_E_TRUNCATED, start, "the compressed stream ends early", NULL);
		int byte = d->in.buf[d->in.pos++];
		inflatePrime(&d->z, (int)p->bits, byte >> (8 - p->bits));
	}
	if (p->state_len && inflateSetDictionary(&d->z, p->state, p->state_len) != Z_OK)
		return gz_error(err, d->name, IMG_E_CORRUPT, p->cin, "cannot restart decoding", d->z.msg);
	return IMG_OK;
}

static int gz_open(img_rsrc *raw, const char *name, const struct zs_point *p, uint64_t next_uout,
		   void **out, img_err *err)
{
	struct gz_dec *d = calloc(1, sizeof *d);
	if (!d)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: out of memory", name);
	d->name = name;
	int inside = p->aux == POINT_INSIDE;
	uint64_t start = inside && p->bits ? p->cin - 1 : p->cin;
	if (inside && (p->bits > 7 || p->cin == 0 || p->state_len > GZ_WINDOW)) {
		free(d);
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: gzip: the access point at decoded byte %llu is damaged", name,
				   (unsigned long long)p->uout);
	}
	int rc = zs_input_init(&d->in, raw, start, (size_t)256 << 10, err);
	if (rc != IMG_OK) {
		free(d);
		return rc;
	}
	if (inflateInit2(&d->z, inside ? -15 : 15 + 16) != Z_OK) {
		zs_input_free(&d->in);
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: gzip: out of memory", name);
	}
	if (inside)
		rc = gz_resume(d, p, start, err);
	if (rc != IMG_OK) {
		gz_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int gz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct gz_dec *d = dp;
	*got = 0;
	if (cap > ((size_t)1 << 30))
		cap = (size_t)1 << 30;
	while (!d->ended && *got < cap) {
		int rc = zs_input_fill(&d->in, 64 << 10, err);
		if (rc != IMG_OK)
			return rc;
		size_t avail = d->in.end - d->in.pos;
		uint64_t at = d->in.offset + d->in.pos;
		d->z.next_in = d->in.buf + d->in.pos;
		d->z.avail_in = (uInt)avail;
		d->z.next_out = dst + *got;
		d->z.avail_out = (uInt)(cap - *got);
		int zr = inflate(&d->z, Z_NO_FLUSH);
		size_t used = avail - d->z.avail_in, made = cap - *got - d->z.avail_out;
		d->in.pos += used;
		*got += made;
		if (zr == Z_STREAM_END) {
			d->ended = 1;
		} else if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_MEM_ERROR) {
			return gz_error(err, d->name, zr == Z_MEM_ERROR ? IMG_E_IO : IMG_E_CORRUPT, at + used,
					"invalid compressed data", d->z.msg ? d->z.msg : "bad data");
		} else if (used == 0 && made == 0) {
			if (avail == 0)
				return gz_error(err, d->name, IMG_E_TRUNCATED, at,
						"the compressed stream ends inside a gzip member (truncated)", NULL);
			break;  /* no progress with room left: cannot happen with zlib; stop safely */
		}
	}
	return IMG_OK;
}

static void gz_close(void *dp)
{
	struct gz_dec *d = dp;
	inflateEnd(&d->z);
	zs_input_free(&d->in);
	free(d);
}

const struct zs_ops zs_gzip_ops = { gz_scan, gz_open, gz_read, gz_close, 0 };

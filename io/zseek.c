/*
 * io/zseek.c - the codec-independent half of random reads into compressed
 * data (zseek.h): the list of access points
 * built by a scan (thinned to a memory budget, states kept zlib-packed),
 * their saved form, and the decoded view that serves reads from a few
 * cursors (decoders left where the last reads ended).
 *
 * Reading at decoded offset X, in a segment (the bytes from one point to the
 * next) of at most ZS_HOLD_MAX bytes: a cursor that holds that segment, decoded
 * whole and checked, copies from it; else the least recently used free cursor
 * decodes the segment whole first, and a reader that wants a segment another
 * thread is decoding waits for it. So each segment is decoded once for any
 * read pattern while it stays held (ZS_CURSORS segments at a time). When a
 * read starts near where the last one ended, ZS_AHEAD_THREADS decode-ahead
 * threads (started then, so after a mount daemon's fork) decode the next
 * ZS_AHEAD segments into free cursors, side by side, within ZS_AHEAD_BUDGET
 * bytes of segment buffers. At most ZS_DECODES (zseek.h) whole-segment
 * decodes run at once, readers' and decode-ahead's together: each decoder
 * may hold a window as big as its segment (the memory bound of a mount).
 * In a bigger segment: a cursor whose position is at or before X and past
 * the last point before X goes on decoding from where it is (sequential and
 * nearby reads); otherwise the least recently used idle cursor restarts at
 * that point. Skipped bytes are decoded into the cursor's scratch buffer.
 * A decoder that stops (*got == 0) before the end hands over to the point at
 * its position (segment codecs like bzip2 stop at each block's end).
 *
 * Segment checksums: when the scan fed the decoded bytes (zs_scan_output),
 * each point holds the CRC-32 of its segment. A cursor keeps the CRC of what
 * it decoded since its segment's start; at the segment's end it compares
 * (mismatch: IMG_E_CORRUPT, the image changed since it was indexed) and
 * marks the segment checked. A read that leaves its cursor inside an
 * unchecked segment decodes on to that segment's end before it returns, so
 * no byte is handed out from a segment that was never checked.
 *
 * Not here: any codec library call (io/gz.c, io/bz2.c, ...), the codecs'
 * input (zs_input.c), where the saved points are stored (formats/access.c
 * puts them in the index).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "zseek.h"

#define ZS_FIRST_SPAN ((uint64_t)4 << 20)   /* decoded bytes between stateful points, at first */
/* Stateful points and the bytes their (packed) states take, at most; past
 * either the span doubles and every other point goes. */
#define ZS_MAX_STATEFUL ((size_t)1 << 20)
#define ZS_STATE_BUDGET ((uint64_t)4 << 30)
#define ZS_CURSORS 5
/* Decode-ahead: segments decoded past the one sequential reads reached,
 * and the bytes all held segment buffers may take for it; the threads that
 * decode them, side by side (segments are independent: one per core). */
#define ZS_AHEAD 3
#define ZS_AHEAD_BUDGET ((uint64_t)40 << 20)
#define ZS_AHEAD_THREADS 2
/* A read that starts this close to where the last one ended is sequential. */
#define ZS_SEQ_SLACK ((uint64_t)4 << 20)
#define ZS_SEGBUF_UNIT ((size_t)1 << 20)
#define ZS_SCRATCH ((size_t)256 << 10)
/* Segments up to this size are decoded whole into a cursor's buffer, checked,
 * and read from there (so each is decoded once however it is read). */
#define ZS_HOLD_MAX ((uint64_t)16 << 20)
#define ZS_SAVED_MAGIC "IMGBKZS3"
#define ZS_SAVED_HEAD 40
#define ZS_SAVED_POINT 64

static uint64_t first_span = ZS_FIRST_SPAN;
static int ahead_enabled = 1;

void zs_set_decode_ahead(int on)
{
	ahead_enabled = on;
}

void zs_set_first_span(uint64_t span)
{
	first_span = span ? span : ZS_FIRST_SPAN;
}

/* ---- points ------------------------------------------------------------------- */

/* A point as kept: its state zlib-packed when that is smaller. A view
 * loaded from an index file keeps no state in memory (p.state NULL): it is
 * read from the file when a decoder starts there (unpack_state). */
struct kept_point {
	struct zs_point p;     /* p.state = stored bytes (or NULL: in core.states), p.state_len = their length */
	uint32_t raw_len;      /* state bytes once unpacked */
	int packed;            /* stored bytes are a zlib stream */
	int has_crc;           /* crc holds the CRC-32 of the segment from here to the next point */
	uint32_t crc;
	uint64_t soff;         /* saved form: the stored bytes' offset among the states */
	uint32_t scrc;         /* saved form: their CRC-32 */
};

struct zs_core {
	struct kept_point *pts;
	size_t n, cap;
	size_t stateful;
	uint64_t state_bytes;  /* stored bytes of all states */
	uint64_t last_state;
	uint64_t raw_size;
	uint32_t run_crc;      /* scan: CRC-32 of the open segment so far */
	int preset;            /* scan: the last point's segment CRC came from the codec */
	int fed;               /* scan: zs_scan_output was called */
	img_rsrc *states;      /* the saved states (an index file), read on demand; owned, or NULL */
	uint64_t states_at;    /* where in it the states start */
	uint64_t states_len;   /* and their bytes */
};

static void kept_free(struct kept_point *k)
{
	free(k->p.state);
	k->p.state = NULL;
}

static int core_push(struct zs_core *c, const struct kept_point *k)
{
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 256;
		struct kept_point *np = realloc(c->pts, ncap * sizeof *np);
		if (!np)
			return IMG_E_IO;
		c->pts = np;
		c->cap = ncap;
	}
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

/* Close the open segment (the last point's) with the CRC fed so far
 * (unless the codec gave it with zs_add_point_crc). */
static void close_segment(struct zs_core *c)
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
	close_segment(c);
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

/* ---- the view ------------------------------------------------------------------ */

struct cursor {
	void *dec;         /* NULL when closed */
	uint64_t pos;      /* decoded offset of the decoder's next byte */
	size_t seg;        /* the point whose segment pos is in */
	uint32_t crc;      /* CRC-32 of the segment's bytes before pos */
	int busy;          /* a thread decodes with it (exclusive) */
	int pins;          /* readers copying out of segbuf (shared; not reused meanwhile) */
	uint64_t last_use;
	uint8_t *scratch;
	size_t held;       /* the segment whose bytes are in segbuf, checked (being decoded while
			    * busy); NO_SEG when none. Read and written under the view lock */
	uint8_t *segbuf;
	size_t segcap;
};

#define NO_SEG ((size_t)-1)

/* Decode-ahead: threads that, while reads go from one segment to the
 * next, decode the following ZS_AHEAD segments into idle cursors, each
 * taking the next one nobody holds. Started by the first such read (so in
 * the process that serves: a fork()ed mount daemon), stopped before any
 * fork() and restarted by the next read. */
struct ahead {
	pthread_t thread[ZS_AHEAD_THREADS];
	int running;       /* threads that exist */
	int stop;          /* asked to end */
	int waiting;       /* threads waiting for work */
	int busy;          /* threads decoding (for zs_view_counts) */
	size_t base;       /* the segment sequential reads reached (NO_SEG: none yet) */
	size_t bad;        /* a segment a thread failed to decode: left to the readers */
	uint64_t last_end; /* where the last read ended (UINT64_MAX: none yet) */
	size_t last_seg;   /* the segment the last read started in (NO_SEG: none yet) */
	zs_view *next_live;
};

struct zs_view {
	img_rsrc *raw;
	char *name;
	const struct zs_ops *ops;
	struct zs_core core;
	uint64_t usize, span;
	uint64_t units, blind;  /* from the scan (zs_view_points) */
	struct cursor cur[ZS_CURSORS];
	uint8_t *checked;  /* a bit per point: its segment's bytes matched its CRC */
	uint64_t clock;
	pthread_mutex_t lock;
	pthread_cond_t idle;  /* readers: a cursor went idle (or unpinned, with free_waiters) */
	pthread_cond_t work;  /* decode-ahead threads: the base moved, a cursor went idle or unpinned */
	int free_waiters;     /* threads waiting for a free cursor (not for a decode) */
	int decoding;         /* whole-segment decodes running (at most ZS_DECODES) */
	struct ahead ahead;
	struct zs_view_counts counts;  /* under lock */
};

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

/* Unpack a kept point's state into dst (raw_len bytes), reading it from the
 * saved states when it is not in memory. @return IMG_OK, IMG_E_CORRUPT
 * (damaged), IMG_E_IO (out of memory, or the index file cannot be read). */
static int unpack_state(const zs_view *v, const struct kept_point *k, uint8_t *dst)
{
	const uint8_t *stored = k->p.state;
	uint8_t *tmp = NULL;
	if (!stored) {
		if (!v->core.states)
			return IMG_E_CORRUPT;
		if (!k->packed)  /* stored == raw: straight into dst */
			return read_saved_state(&v->core, k, dst);
		if (!(tmp = malloc(k->p.state_len)))
			return IMG_E_IO;
		int rc = read_saved_state(&v->core, k, tmp);
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

uint64_t zs_view_size(const zs_view *v)
{
	return v->usize;
}

void zs_view_points(const zs_view *v, uint64_t *stateful, uint64_t *units, uint64_t *blind)
{
	uint64_t n = 0;
	for (size_t i = 0; i < v->core.n; i++)
		n += v->core.pts[i].raw_len != 0;
	*stateful = n;
	*units = v->units;
	*blind = v->blind;
}

void zs_view_stats(const zs_view *v, size_t *points, uint64_t *state_bytes)
{
	uint64_t b = 0;
	for (size_t i = 0; i < v->core.n; i++)
		b += v->core.pts[i].p.state_len;
	*points = v->core.n;
	*state_bytes = b;
}

/* Index of the last point with uout <= off. */
static size_t point_before(const zs_view *v, uint64_t off)
{
	size_t lo = 0, hi = v->core.n;  /* pts[0].uout == 0 <= off */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->core.pts[mid].p.uout <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void cursor_reset(zs_view *v, struct cursor *c)
{
	if (c->dec)
		v->ops->close(c->dec);
	c->dec = NULL;
}

/* Start c's decoder at point i. */
static int cursor_open(zs_view *v, struct cursor *c, size_t i, img_err *err)
{
	cursor_reset(v, c);
	const struct kept_point *k = &v->core.pts[i];
	struct zs_point p = k->p;
	uint8_t *state = NULL;
	if (k->raw_len) {
		state = malloc(k->raw_len);
		if (!state)
			return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", v->name);
		if (unpack_state(v, k, state) != IMG_OK) {
			free(state);
			return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
					   "%s: the saved access point at decoded byte %llu is damaged",
					   v->name, (unsigned long long)p.uout);
		}
	}
	p.state = state;
	p.state_len = k->raw_len;
	uint64_t next = i + 1 < v->core.n ? v->core.pts[i + 1].p.uout : v->usize;
	int rc;
	if (v->ops->start) {
		struct zs_start st = { .raw = v->raw, .name = v->name, .p = &p, .next_uout = next };
		rc = v->ops->start(&st, &c->dec, err);
	} else {
		rc = v->ops->open(v->raw, v->name, &p, next, &c->dec, err);
	}
	free(state);
	if (rc != IMG_OK) {
		c->dec = NULL;
		return rc;
	}
	c->pos = p.uout;
	c->seg = i;
	c->crc = 0;
	return IMG_OK;
}

static int seg_checked(const zs_view *v, size_t i)
{
	return __atomic_load_n(&v->checked[i >> 3], __ATOMIC_ACQUIRE) >> (i & 7) & 1;
}

static void mark_checked(zs_view *v, size_t i)
{
	__atomic_fetch_or(&v->checked[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELEASE);
}

/* End of the segment point i starts: the next point's uout, or the end. */
static uint64_t seg_end(const zs_view *v, size_t i)
{
	return i + 1 < v->core.n ? v->core.pts[i + 1].p.uout : v->usize;
}

/* Account n bytes just decoded at c->pos - n into the segment CRCs, checking
 * every segment they complete. */
static int cursor_account(zs_view *v, struct cursor *c, const uint8_t *p, size_t n, img_err *err)
{
	uint64_t at = c->pos - n;
	while (n > 0) {
		uint64_t end = seg_end(v, c->seg);
		size_t k = end - at < n ? (size_t)(end - at) : n;
		c->crc = crc32_fast(c->crc, p, k);
		at += k;
		p += k;
		n -= k;
		if (at < end)
			break;
		const struct kept_point *kp = &v->core.pts[c->seg];
		if (kp->has_crc && !seg_checked(v, c->seg)) {
			if (c->crc != kp->crc)
				return img_err_set(err, IMG_E_CORRUPT, 0, 1, kp->p.cin,
						   "%s: the decoded bytes %llu-%llu differ from those indexed "
						   "(CRC-32 %08x, index %08x): the image changed since it was "
						   "indexed, or its compressed data is damaged near byte %llu",
						   v->name, (unsigned long long)kp->p.uout,
						   (unsigned long long)end - 1, c->crc, kp->crc,
						   (unsigned long long)kp->p.cin);
			mark_checked(v, c->seg);
		}
		if (at >= v->usize)
			break;
		c->seg = point_before(v, at);  /* past empty segments */
		c->crc = 0;
	}
	return IMG_OK;
}

/* Whether the bytes of point i's segment are checked before they go out. */
static int needs_check(const zs_view *v, size_t i)
{
	return v->core.pts[i].has_crc || v->ops->self_checked;
}

/* c's decoder stopped cleanly: with a codec whose decoders check their
 * segment at its end, the segment that ends here is checked. */
static void mark_self_checked(zs_view *v, struct cursor *c)
{
	if (!v->ops->self_checked || c->pos == 0)
		return;
	size_t i = point_before(v, c->pos - 1);
	if (seg_end(v, i) == c->pos)
		mark_checked(v, i);
}

/* At the end of the data: let a self-checking decoder see its end (and so
 * its check), once. */
static int cursor_confirm_end(zs_view *v, struct cursor *c, img_err *err)
{
	if (!c->dec || !v->ops->self_checked || c->pos == 0 || seg_checked(v, point_before(v, c->pos - 1)))
		return IMG_OK;
	uint8_t extra;
	size_t n = 0;
	int rc = v->ops->read(c->dec, &extra, 1, &n, err);
	if (rc == IMG_OK && n > 0)
		rc = img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				 "%s: the compressed data holds more than the %llu bytes its index says "
				 "(the image changed, or the index is damaged)", v->name,
				 (unsigned long long)v->usize);
	if (rc != IMG_OK) {
		cursor_reset(v, c);
		return rc;
	}
	mark_self_checked(v, c);
	return IMG_OK;
}

/* Decode up to cap bytes at c's position into dst (NULL: into scratch).
 * At a decoder's stop, go on from the point at the position. */
static int cursor_read(zs_view *v, struct cursor *c, uint8_t *dst, size_t cap, size_t *got,
		       img_err *err)
{
	*got = 0;
	if (c->pos >= v->usize)
		return cursor_confirm_end(v, c, err);
	if (cap > v->usize - c->pos)
		cap = (size_t)(v->usize - c->pos);
	int rc = IMG_OK;
	for (int tries = 0; tries < 3; tries++) {
		size_t n = 0;
		rc = v->ops->read(c->dec, dst, cap, &n, err);
		if (rc != IMG_OK) {
			cursor_reset(v, c);
			return rc;
		}
		if (n == 0)
			mark_self_checked(v, c);
		if (n > 0) {
			c->pos += n;
			*got = n;
			rc = cursor_account(v, c, dst, n, err);
			if (rc != IMG_OK) {
				*got = 0;
				cursor_reset(v, c);
			}
			return rc;
		}
		size_t i = point_before(v, c->pos);
		if (v->core.pts[i].p.uout != c->pos || (rc = cursor_open(v, c, i, err)) != IMG_OK)
			break;
	}
	/* this call's own outcome, never an older error left on the slot */
	cursor_reset(v, c);
	if (rc != IMG_OK)
		return rc;
	return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
			   "%s: the compressed data ends at decoded byte %llu, before the %llu bytes "
			   "its index promises (the image changed, or the index is damaged)",
			   v->name, (unsigned long long)c->pos, (unsigned long long)v->usize);
}

/* Wake the decode-ahead threads that wait for work (lock held). */
static void ahead_wake(zs_view *v)
{
	if (v->ahead.waiting)
		pthread_cond_broadcast(&v->work);
}

/* Wait for a cursor to go idle (lock held); for_free: for any free cursor,
 * so unpinning one wakes this thread too. */
static void wait_idle(zs_view *v, int for_free)
{
	v->free_waiters += for_free;
	pthread_cond_wait(&v->idle, &v->lock);
	v->free_waiters -= for_free;
}

/* A cursor's last reader copied out (lock held): it is free again for
 * whoever waits for one. */
static void cursor_unpinned(zs_view *v)
{
	if (v->free_waiters)
		pthread_cond_broadcast(&v->idle);
	ahead_wake(v);
}

/* Whether c may be given a new decode (lock held). */
static int cursor_free(const struct cursor *c)
{
	return !c->busy && c->pins == 0;
}

/* Pick a cursor for a read at off (lock held): one that can go on decoding
 * to off, else the least recently used free one. NULL when none is free. */
static struct cursor *cursor_pick(zs_view *v, uint64_t off, int *reuse)
{
	uint64_t restart = v->core.pts[point_before(v, off)].p.uout;
	struct cursor *best = NULL, *lru = NULL;
	for (int i = 0; i < ZS_CURSORS; i++) {
		struct cursor *c = &v->cur[i];
		if (!cursor_free(c))
			continue;
		if (c->dec && c->pos <= off && c->pos >= restart && (!best || c->pos > best->pos))
			best = c;
		if (!lru || c->last_use < lru->last_use)
			lru = c;
	}
	*reuse = best != NULL;
	return best ? best : lru;
}

/* Give free cursor c segment `held` to decode (lock held): another reader
 * of that segment then waits for c instead of decoding it again. */
static void cursor_claim(zs_view *v, struct cursor *c, size_t held)
{
	c->busy = 1;
	c->held = held;
	c->last_use = ++v->clock;
}

/* Make c idle again, holding segment `held` (NO_SEG: none); lock held. */
static void cursor_done(zs_view *v, struct cursor *c, size_t held)
{
	c->held = held;
	c->busy = 0;
	c->last_use = ++v->clock;
	pthread_cond_broadcast(&v->idle);  /* waiters wait for different things */
	ahead_wake(v);
}

static void cursor_release(zs_view *v, struct cursor *c, size_t held)
{
	pthread_mutex_lock(&v->lock);
	cursor_done(v, c, held);
	pthread_mutex_unlock(&v->lock);
}

/* Decode segment i whole into c->segbuf (big enough, else it could not be
 * had) and have it checked; the decoder is closed after (its window is memory the held bytes do not need). */
static int hold_segment(zs_view *v, struct cursor *c, size_t i, img_err *err)
{
	uint64_t s0 = v->core.pts[i].p.uout;
	size_t n = (size_t)(seg_end(v, i) - s0), k = 0;
	if (c->segcap < n)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", v->name);
	int rc = cursor_open(v, c, i, err);
	while (rc == IMG_OK && k < n) {
		size_t got = 0;
		rc = cursor_read(v, c, c->segbuf + k, n - k, &got, err);
		if (rc == IMG_OK && got == 0)
			rc = img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: the compressed data ends at decoded "
					 "byte %llu, inside what its index promises", v->name,
					 (unsigned long long)(s0 + k));
		k += got;
	}
	while (rc == IMG_OK && needs_check(v, i) && !seg_checked(v, i) && c->dec) {
		size_t got = 0;  /* a self-checking decoder reports its end: one more byte */
		rc = cursor_read(v, c, c->scratch, 1, &got, err);
		if (got == 0)
			break;
	}
	if (rc == IMG_OK && needs_check(v, i) && !seg_checked(v, i))
		rc = img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: decoded bytes %llu-%llu could not be "
				 "checked", v->name, (unsigned long long)s0, (unsigned long long)(s0 + n - 1));
	cursor_reset(v, c);
	return rc;
}

/* Segment buffers are mapped whole, in ZS_SEGBUF_UNIT steps: unmapped when
 * they grow or the view closes, they never leave holes in malloc's heaps
 * (which the threads that decode would each fill otherwise). */
static void segbuf_free(struct cursor *c)
{
	if (c->segbuf)
		munmap(c->segbuf, c->segcap);
	c->segbuf = NULL;
	c->segcap = 0;
}

/* Give c a buffer of at least n bytes (nothing in the old one is wanted);
 * on failure it has none. */
static void segbuf_grow(struct cursor *c, size_t n)
{
	segbuf_free(c);
	size_t cap = (n + ZS_SEGBUF_UNIT - 1) / ZS_SEGBUF_UNIT * ZS_SEGBUF_UNIT;
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		c->segbuf = p;
		c->segcap = cap;
	}
}

/* Decode segment i into free cursor c, claimed for it (lock held; dropped
 * while decoding). @return hold_segment's outcome. */
static int decode_held(zs_view *v, struct cursor *c, size_t i, int ahead, img_err *err)
{
	cursor_claim(v, c, i);
	size_t n = (size_t)(seg_end(v, i) - v->core.pts[i].p.uout);
	if (c->segcap < n)  /* segcap is read under the lock (the memory budget) */
		segbuf_grow(c, n);
	if ((uint64_t)++v->decoding > v->counts.decodes_most)
		v->counts.decodes_most = (uint64_t)v->decoding;
	pthread_mutex_unlock(&v->lock);
	int rc = hold_segment(v, c, i, err);
	pthread_mutex_lock(&v->lock);
	v->decoding--;
	v->counts.segment_decodes++;
	v->counts.ahead_decodes += ahead && rc == IMG_OK;
	cursor_done(v, c, rc == IMG_OK ? i : NO_SEG);
	return rc;
}

/* ---- decode-ahead --------------------------------------------------------------- */

static void ahead_start(zs_view *v);

/* Whether segment i can be held whole (and so decoded ahead). */
static int holdable(const zs_view *v, size_t i)
{
	return seg_end(v, i) - v->core.pts[i].p.uout <= ZS_HOLD_MAX;
}

/* Bytes of held segment buffers if cursor `spare` gave its buffer up for
 * one of `need` bytes (lock held). */
static uint64_t held_bytes_with(const zs_view *v, const struct cursor *spare, uint64_t need)
{
	uint64_t b = 0;
	for (int k = 0; k < ZS_CURSORS; k++)
		b += &v->cur[k] == spare ? (spare->segcap > need ? spare->segcap : need) : v->cur[k].segcap;
	return b;
}

/* The next segment to decode ahead and a free cursor for it (lock held):
 * one of base+1 .. base+ZS_AHEAD held by no cursor, into a cursor that
 * holds none of base .. base+ZS_AHEAD, within the memory budget. */
static struct cursor *ahead_next(zs_view *v, size_t *seg)
{
	size_t base = v->ahead.base;
	if (base == NO_SEG || v->decoding >= ZS_DECODES)
		return NULL;
	for (size_t j = base + 1; j <= base + ZS_AHEAD && j < v->core.n; j++) {
		if (j == v->ahead.bad || !holdable(v, j))
			return NULL;
		int held = 0;
		for (int k = 0; k < ZS_CURSORS; k++)
			held |= v->cur[k].held == j;
		if (held)
			continue;
		struct cursor *lru = NULL;
		for (int k = 0; k < ZS_CURSORS; k++) {
			struct cursor *x = &v->cur[k];
			int wanted = x->held != NO_SEG && x->held >= base && x->held <= base + ZS_AHEAD;
			if (cursor_free(x) && !wanted && (!lru || x->last_use < lru->last_use))
				lru = x;
		}
		uint64_t need = seg_end(v, j) - v->core.pts[j].p.uout;
		if (!lru || held_bytes_with(v, lru, need) > ZS_AHEAD_BUDGET)
			return NULL;
		*seg = j;
		return lru;
	}
	return NULL;
}

static void *ahead_main(void *arg)
{
	zs_view *v = arg;
	img_err err;  /* the thread's own error slot (readers report their own) */
	memset(&err, 0, sizeof err);
	pthread_mutex_lock(&v->lock);
	while (!v->ahead.stop) {
		size_t j = NO_SEG;
		struct cursor *c = ahead_next(v, &j);
		if (!c) {
			v->ahead.waiting++;
			pthread_cond_wait(&v->work, &v->lock);
			v->ahead.waiting--;
			continue;
		}
		if ((uint64_t)++v->ahead.busy > v->counts.ahead_most)
			v->counts.ahead_most = (uint64_t)v->ahead.busy;
		int rc = decode_held(v, c, j, 1, &err);
		v->ahead.busy--;
		if (rc != IMG_OK)
			v->ahead.bad = j;  /* its readers decode it and get the error themselves */
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* A read of [off, off + len) (lock held): one that starts within
 * ZS_SEQ_SLACK of where the last one ended (sequential reads, a little out
 * of order when several threads serve them) in a later segment than the
 * last one started in moves the decode-ahead to its segment, starting the
 * thread. Not reads inside one segment (an image's header and bitmap, read
 * before a mount daemon forks), nor a random read spanning two segments:
 * only the start of a read counts. */
static void ahead_note_read(zs_view *v, uint64_t off, size_t len)
{
	uint64_t last = v->ahead.last_end;
	size_t i = point_before(v, off), prev = v->ahead.last_seg, base = v->ahead.base;
	v->ahead.last_end = off + len;
	v->ahead.last_seg = i;
	if (!ahead_enabled || last == UINT64_MAX || off + ZS_SEQ_SLACK < last || off > last + ZS_SEQ_SLACK)
		return;
	if (prev == NO_SEG || i <= prev || i == base || (base != NO_SEG && i < base && i + ZS_AHEAD >= base))
		return;  /* not into a later segment, or a step back among those decoded ahead */
	v->ahead.base = i;
	if (v->ahead.bad != NO_SEG && v->ahead.bad <= i)
		v->ahead.bad = NO_SEG;
	ahead_start(v);
	ahead_wake(v);
}

/* ---- the threads and fork() ---- */

/* Views whose decode-ahead threads run: stopped before a fork() (the
 * child would have the view but not the threads), restarted by the next
 * sequential read, in the parent and in the child. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static zs_view *live;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Stop v's threads (lock not held); @return with them joined. */
static void ahead_stop(zs_view *v)
{
	pthread_mutex_lock(&v->lock);
	int running = v->ahead.running;
	v->ahead.stop = 1;
	pthread_cond_broadcast(&v->work);
	pthread_mutex_unlock(&v->lock);
	for (int t = 0; t < running; t++)
		pthread_join(v->ahead.thread[t], NULL);
	pthread_mutex_lock(&v->lock);
	v->ahead.running = 0;
	v->ahead.stop = 0;
	pthread_mutex_unlock(&v->lock);
}

static void live_remove(zs_view *v)
{
	for (zs_view **p = &live; *p; p = &(*p)->ahead.next_live)
		if (*p == v) {
			*p = v->ahead.next_live;
			break;
		}
	v->ahead.next_live = NULL;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&live_lock);
	while (live) {
		zs_view *v = live;
		live_remove(v);
		ahead_stop(v);
	}
}

static void fork_after(void)
{
	pthread_mutex_unlock(&live_lock);
}

static void atfork_install(void)
{
	pthread_atfork(fork_prepare, fork_after, fork_after);
}

/* Start v's threads unless they run (lock held). Without them reads go
 * on as before: each decodes what it needs. */
static void ahead_start(zs_view *v)
{
	if (v->ahead.running || v->ahead.stop)
		return;
	pthread_once(&atfork_once, atfork_install);
	if (pthread_mutex_trylock(&live_lock) != 0)
		return;  /* a fork() or a close is under way: next time */
	while (v->ahead.running < ZS_AHEAD_THREADS &&
	       pthread_create(&v->ahead.thread[v->ahead.running], NULL, ahead_main, v) == 0)
		v->ahead.running++;
	if (v->ahead.running) {
		v->ahead.next_live = live;
		live = v;
	}
	pthread_mutex_unlock(&live_lock);
}

/* Read from segment i (small enough to hold): from a cursor that holds it,
 * else decoded whole into the least recently used free one. A reader of a
 * segment another thread is decoding waits for it: each segment is decoded
 * once, whatever the read order. Readers copy out of a held segment side by
 * side (pinned, it is not reused meanwhile). */
static int read_held(zs_view *v, size_t i, uint8_t *out, size_t len, uint64_t off, size_t *got,
		     img_err *err)
{
	pthread_mutex_lock(&v->lock);
	struct cursor *c = NULL;
	for (;;) {
		struct cursor *lru = NULL, *holder = NULL;
		for (int k = 0; k < ZS_CURSORS; k++) {
			struct cursor *x = &v->cur[k];
			if (x->held == i)
				holder = x;
			if (cursor_free(x) && (!lru || x->last_use < lru->last_use))
				lru = x;
		}
		if (holder && !holder->busy) {
			c = holder;
			break;
		}
		if (!holder && lru && v->decoding < ZS_DECODES) {
			int rc = decode_held(v, lru, i, 0, err);
			if (rc != IMG_OK) {
				pthread_mutex_unlock(&v->lock);
				return rc;
			}
			continue;  /* now held (unless taken again meanwhile) */
		}
		wait_idle(v, holder == NULL);  /* the holder decodes, or none is free, or ZS_DECODES run */
	}
	c->pins++;
	c->last_use = ++v->clock;
	pthread_mutex_unlock(&v->lock);
	uint64_t s0 = v->core.pts[i].p.uout, end = seg_end(v, i);
	size_t n = end - off < len ? (size_t)(end - off) : len;
	memcpy(out, c->segbuf + (off - s0), n);
	*got = n;
	pthread_mutex_lock(&v->lock);
	if (--c->pins == 0)
		cursor_unpinned(v);
	pthread_mutex_unlock(&v->lock);
	return IMG_OK;
}

/* Read [off, off + len) by decoding with a cursor (segments too big to hold). */
static int read_streamed(zs_view *v, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	*got = 0;
	pthread_mutex_lock(&v->lock);
	struct cursor *c;
	int reuse;
	while (!(c = cursor_pick(v, off, &reuse)))
		wait_idle(v, 1);
	cursor_claim(v, c, NO_SEG);
	v->counts.streamed_reads++;
	pthread_mutex_unlock(&v->lock);

	int rc = IMG_OK;
	if (!reuse)
		rc = cursor_open(v, c, point_before(v, off), err);
	while (rc == IMG_OK && c->pos < off) {  /* skip to off */
		size_t n = 0;
		uint64_t want = off - c->pos;
		rc = cursor_read(v, c, c->scratch, want < ZS_SCRATCH ? (size_t)want : ZS_SCRATCH, &n, err);
		if (rc == IMG_OK && n == 0)
			break;
	}
	uint8_t *out = buf;
	while (rc == IMG_OK && *got < len && c->pos == off + *got) {
		size_t n = 0;
		rc = cursor_read(v, c, out + *got, len - *got, &n, err);
		if (n == 0)
			break;
		*got += n;
	}
	/* bytes handed out from a segment never checked: check it to its end
	 * (earlier segments of this read were checked on the way) */
	size_t last = *got ? point_before(v, off + *got - 1) : 0;
	while (rc == IMG_OK && *got && c->dec && needs_check(v, last) && !seg_checked(v, last) &&
	       c->pos <= seg_end(v, last)) {
		size_t n = 0;
		uint64_t left = seg_end(v, last) - c->pos;
		rc = cursor_read(v, c, c->scratch, left == 0 ? 1 : left < ZS_SCRATCH ? (size_t)left : ZS_SCRATCH,
				 &n, err);
		if (rc == IMG_OK && n == 0)
			break;  /* the end of the data, confirmed */
	}
	if (rc != IMG_OK)
		*got = 0;
	cursor_release(v, c, NO_SEG);
	return rc;
}

int zs_view_pread(zs_view *v, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	*got = 0;
	if (off >= v->usize || len == 0)
		return IMG_OK;
	if (len > v->usize - off)
		len = (size_t)(v->usize - off);
	pthread_mutex_lock(&v->lock);
	ahead_note_read(v, off, len);
	pthread_mutex_unlock(&v->lock);
	uint8_t *out = buf;
	while (*got < len) {
		uint64_t at = off + *got;
		size_t i = point_before(v, at), n = 0;
		uint64_t size = seg_end(v, i) - v->core.pts[i].p.uout;
		int rc = size <= ZS_HOLD_MAX ? read_held(v, i, out + *got, len - *got, at, &n, err)
					     : read_streamed(v, out + *got, len - *got, at, &n, err);
		if (rc != IMG_OK) {
			*got = 0;
			return rc;
		}
		if (n == 0)
			break;
		*got += n;
	}
	return IMG_OK;
}

/* ---- the saved form -------------------------------------------------------------
 * "IMGBKZS3", u32 points, u32 0, u64 decoded size, u64 span, u64 compressed
 * size (40 bytes); per point (64 bytes) u64 cin, u64 uout, u32 bits, u32 aux,
 * u64 aux2, u32 stored length, u32 raw length | packed << 31, u32 segment
 * CRC-32, u32 has CRC, u64 offset of the stored state among the states, u32
 * its CRC-32, u32 0; then the stored states in order (the "front" is what
 * comes before them: an index file keeps the states apart, zs_saved_front). */

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

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

int zs_view_save(const zs_view *v, uint8_t **out, size_t *len)
{
	uint64_t states = 0;
	for (size_t i = 0; i < v->core.n; i++)
		states += v->core.pts[i].p.state_len;
	size_t total = ZS_SAVED_HEAD + v->core.n * ZS_SAVED_POINT + (size_t)states;
	uint8_t *b = malloc(total);
	if (!b)
		return IMG_E_IO;
	memcpy(b, ZS_SAVED_MAGIC, 8);
	put32(b + 8, (uint32_t)v->core.n);
	put32(b + 12, 0);
	put64(b + 16, v->usize);
	put64(b + 24, v->span);
	put64(b + 32, v->core.raw_size);
	uint8_t *q = b + ZS_SAVED_HEAD, *s = q + v->core.n * ZS_SAVED_POINT;
	uint64_t soff = 0;
	for (size_t i = 0; i < v->core.n; i++, q += ZS_SAVED_POINT) {
		const struct kept_point *k = &v->core.pts[i];
		put64(q, k->p.cin);
		put64(q + 8, k->p.uout);
		put32(q + 16, k->p.bits);
		put32(q + 20, k->p.aux);
		put64(q + 24, k->p.aux2);
		put32(q + 32, k->p.state_len);
		put32(q + 36, k->raw_len | (uint32_t)k->packed << 31);
		put32(q + 40, k->crc);
		put32(q + 44, (uint32_t)k->has_crc);
		put64(q + 48, soff);
		put32(q + 60, 0);
		if (k->p.state_len && k->p.state) {
			memcpy(s, k->p.state, k->p.state_len);
		} else if (k->p.state_len && read_saved_state(&v->core, k, s) != IMG_OK) {
			free(b);  /* the index file the states were in is damaged or gone */
			return IMG_E_IO;
		}
		put32(q + 56, k->p.state_len ? crc32_fast(0, s, k->p.state_len) : 0);
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

/* Load saved points when they fit this data; @return 1 when loaded. The
 * states follow the points in b, or (b is the front only) are read from
 * v->core.states when a decoder needs them. */
static int load_saved(zs_view *v, const uint8_t *b, size_t len)
{
	if (len < ZS_SAVED_HEAD || memcmp(b, ZS_SAVED_MAGIC, 8) != 0)
		return 0;
	uint32_t n = get32(b + 8);
	uint64_t usize = get64(b + 16), span = get64(b + 24), raw = get64(b + 32);
	if (n == 0 || get32(b + 12) != 0 || raw != v->core.raw_size || span == 0 ||
	    (len - ZS_SAVED_HEAD) / ZS_SAVED_POINT < n)
		return 0;
	const uint8_t *q = b + ZS_SAVED_HEAD, *s = q + (size_t)n * ZS_SAVED_POINT, *end = b + len;
	int apart = s == end && v->core.states;  /* the states are in the index file */
	if (apart && rsrc_size(v->core.states) - v->core.states_len < v->core.states_at)
		return 0;
	uint64_t room = apart ? v->core.states_len : (uint64_t)(end - s);
	struct zs_core c = { .raw_size = raw, .states = v->core.states, .states_at = v->core.states_at,
			     .states_len = v->core.states_len };
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
	v->core = c;
	v->usize = usize;
	v->span = span;
	return 1;
}

static void core_free(struct zs_core *c)
{
	for (size_t i = 0; i < c->n; i++)
		kept_free(&c->pts[i]);
	free(c->pts);
	if (c->states)
		rsrc_close(c->states);
	memset(c, 0, sizeof *c);
}

int zs_not_mountable(struct zs_scan *sc, const char *what)
{
	const struct img_codec *c = sc->codec;
	char fix[400] = "", tool[400] = "";
	if (c && c->mount_fix) {
		snprintf(fix, sizeof fix, "make it mountable with: ");
		snprintf(fix + strlen(fix), sizeof fix - strlen(fix), c->mount_fix, sc->name);
		strcat(fix, ", or ");
	}
	if (c && c->tool)
		snprintf(tool, sizeof tool, "decompress it: %s %s > IMAGE.img", c->tool, sc->name);
	return img_err_set(sc->err, IMG_E_FORMAT, 0, 0, 0, "%s: %s: %s cannot be read at random; %s%s",
			   sc->name, c ? c->name : "codec", what, fix, tool[0] ? tool : "decompress it first");
}

/* The entry of the codec whose decoder is ops, or NULL. */
static const struct img_codec *codec_of(const struct zs_ops *ops)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (img_codecs[i]->seek == ops)
			return img_codecs[i];
	return NULL;
}

/* The scan of a codec with one decoder: that decoder run from the start to
 * the end in scan mode, adding points as it passes them. */
static int scan_by_decoding(struct zs_scan *sc, const struct zs_ops *ops)
{
	struct zs_point first = { 0 };
	struct zs_start st = { .raw = sc->raw, .name = sc->name, .p = &first, .sc = sc, .whole = 1 };
	void *dec = NULL;
	uint8_t *buf = zs_buf_take(ZS_SCRATCH);
	if (!buf)
		return img_err_set(sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", sc->name);
	int rc = ops->start(&st, &dec, sc->err);
	uint64_t total = 0;
	size_t got = 1;
	while (rc == IMG_OK && got > 0) {
		rc = ops->read(dec, buf, ZS_SCRATCH, &got, sc->err);
		total += got;
	}
	if (dec)
		ops->close(dec);
	zs_buf_give(buf, ZS_SCRATCH);
	sc->usize = total;
	return rc;
}

int zs_view_open(img_rsrc *raw, const char *name, const struct zs_ops *ops, const uint8_t *saved,
		 size_t saved_len, void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx,
		 int *rebuilt, img_err *err, zs_view **out)
{
	return zs_view_open_states(raw, name, ops, saved, saved_len, NULL, 0, 0, progress, progress_ctx,
				   rebuilt, err, out);
}

int zs_view_open_states(img_rsrc *raw, const char *name, const struct zs_ops *ops, const uint8_t *saved,
			size_t saved_len, img_rsrc *states, uint64_t states_at, uint64_t states_len,
			void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx, int *rebuilt, img_err *err,
			zs_view **out)
{
	*out = NULL;
	*rebuilt = 0;
	zs_view *v = calloc(1, sizeof *v);
	if (!v || !(v->name = strdup(name))) {
		free(v);
		if (states)
			rsrc_close(states);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", name);
	}
	v->core.states = states;
	v->core.states_at = states_at;
	v->core.states_len = states_len;
	v->raw = raw;
	v->ops = ops;
	v->core.raw_size = rsrc_size(raw);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->idle, NULL);
	pthread_cond_init(&v->work, NULL);
	int rc = IMG_OK;
	for (int i = 0; i < ZS_CURSORS; i++)
		v->cur[i].held = NO_SEG;
	v->ahead.base = v->ahead.bad = v->ahead.last_seg = NO_SEG;
	v->ahead.last_end = UINT64_MAX;
	for (int i = 0; i < ZS_CURSORS && rc == IMG_OK; i++)
		if (!(v->cur[i].scratch = zs_buf_take(ZS_SCRATCH)))
			rc = img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", name);
	if (rc == IMG_OK && !(saved && load_saved(v, saved, saved_len))) {
		*rebuilt = 1;
		if (v->core.states)  /* the scan keeps its states in memory */
			rsrc_close(v->core.states);
		v->core.states = NULL;
		struct zs_scan sc = { .raw = raw, .name = v->name, .span = first_span, .err = err,
				      .progress = progress, .progress_ctx = progress_ctx, .core = &v->core,
				      .codec = codec_of(ops) };
		rc = ops->scan ? ops->scan(&sc) : scan_by_decoding(&sc, ops);
		if (rc == IMG_OK)
			close_segment(&v->core);
		if (rc == IMG_OK && v->core.n == 0)
			rc = img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: no data to read", name);
		v->usize = sc.usize;
		v->span = sc.span;
		v->units = sc.units;
		v->blind = sc.blind;
	}
	if (rc == IMG_OK && !(v->checked = calloc(v->core.n / 8 + 1, 1)))
		rc = img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", name);
	if (rc != IMG_OK) {
		zs_view_close(v);
		return rc;
	}
	*out = v;
	return IMG_OK;
}

void zs_view_counts(zs_view *v, struct zs_view_counts *out)
{
	pthread_mutex_lock(&v->lock);
	*out = v->counts;
	pthread_mutex_unlock(&v->lock);
}

void zs_view_close(zs_view *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&live_lock);
	live_remove(v);
	pthread_mutex_unlock(&live_lock);
	ahead_stop(v);
	for (int i = 0; i < ZS_CURSORS; i++) {
		cursor_reset(v, &v->cur[i]);
		zs_buf_give(v->cur[i].scratch, ZS_SCRATCH);
		segbuf_free(&v->cur[i]);
	}
	core_free(&v->core);
	free(v->checked);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->idle);
	pthread_cond_destroy(&v->work);
	free(v->name);
	free(v);
}

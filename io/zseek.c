/*
 * io/zseek.c - the codec-independent half of random reads into compressed
 * data (zseek.h): the decoded view, which opens on the access points (a
 * scan's, or their saved form: io/zseek_points.c) and serves reads from a
 * few cursors (decoders left where the last reads ended).
 *
 * Reading at decoded offset X, in a segment (the bytes from one point to the
 * next) of at most ZS_HOLD_MAX bytes: a cursor that holds that segment, decoded
 * whole and checked, copies from it; else the least recently used free cursor
 * decodes the segment whole first, and a reader that wants a segment another
 * thread is decoding waits for it. So each segment is decoded once for any
 * read pattern while it stays held (up to ZS_CURSORS segments, within
 * ZS_HELD_BUDGET bytes of segment buffers). When a read starts near where
 * the last one ended, ZS_AHEAD_THREADS decode-ahead threads (started then,
 * so after a mount daemon's fork) decode the next ZS_AHEAD segments into
 * free cursors, side by side, keeping the segments just behind (the
 * readers' requests come a little out of order) as the budget allows. At
 * most ZS_DECODES (zseek.h) whole-segment decodes run at once, readers' and
 * decode-ahead's together: a codec's decoder may hold a window as big as its
 * segment (zstd decodes a held segment straight into its buffer, with none).
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
 * Not here: the points' list, thinning and saved form (io/zseek_points.c),
 * any codec library call (io/gz.c, io/bz2.c, ...), the codecs'
 * input (zs_input.c), where the saved points are stored (formats/access.c
 * puts them in the index).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "zseek_points.h"

#define ZS_FIRST_SPAN ((uint64_t)4 << 20)   /* decoded bytes between stateful points, at first */
/* Cursors: the segment sequential reads are in, up to ZS_BEHIND_MAX before
 * it (a mount's reads come a little out of order), and ZS_AHEAD decoded
 * ahead, within ZS_HELD_BUDGET; segments too big to hold are read with the
 * first ZS_STREAMING (each keeps a decoder and its window). */
#define ZS_CURSORS 6
#define ZS_BEHIND_MAX 2
#define ZS_STREAMING 4
/* Decode-ahead: segments decoded past the one sequential reads reached,
 * and the bytes all held segment buffers may take for it; the threads that
 * decode them, side by side (segments are independent: one per core). */
#define ZS_AHEAD 2
#define ZS_HELD_BUDGET ((uint64_t)36 << 20)
#define ZS_AHEAD_THREADS 2
/* A read that starts this close to where the last one ended is sequential. */
#define ZS_SEQ_SLACK ((uint64_t)4 << 20)
#define ZS_SEGBUF_UNIT ((size_t)2 << 20)  /* a huge page */
#define ZS_SCRATCH ((size_t)256 << 10)
/* Segments up to this size are decoded whole into a cursor's buffer, checked,
 * and read from there (so each is decoded once however it is read). */
#define ZS_HOLD_MAX ((uint64_t)16 << 20)

static uint64_t first_span = ZS_FIRST_SPAN;
static int ahead_enabled = 1;
static unsigned ahead_linger_ms;

void zs_set_decode_ahead(int on)
{
	ahead_enabled = on;
}

void zs_set_ahead_linger(unsigned ms)
{
	ahead_linger_ms = ms;
}

void zs_set_first_span(uint64_t span)
{
	first_span = span ? span : ZS_FIRST_SPAN;
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

uint64_t zs_view_point_at(const zs_view *v, size_t i)
{
	return v->core.pts[i].p.uout;
}

int zs_view_save(const zs_view *v, uint8_t **out, size_t *len)
{
	return zs_core_save(&v->core, v->usize, v->span, out, len);
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

/* Start c's decoder at point i; contiguous: zs_start.contiguous (a segment
 * decoded whole into segbuf). */
static int cursor_open(zs_view *v, struct cursor *c, size_t i, int contiguous, img_err *err)
{
	cursor_reset(v, c);
	const struct kept_point *k = &v->core.pts[i];
	struct zs_point p = k->p;
	uint8_t *state = NULL;
	if (k->raw_len) {
		state = malloc(k->raw_len);
		if (!state)
			return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", v->name);
		if (zs_core_unpack_state(&v->core, k, state) != IMG_OK) {
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
		struct zs_start st = { .raw = v->raw, .name = v->name, .p = &p, .next_uout = next,
				       .contiguous = contiguous };
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
		if (v->core.pts[i].p.uout != c->pos || (rc = cursor_open(v, c, i, 0, err)) != IMG_OK)
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
	for (int i = 0; i < ZS_STREAMING; i++) {
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
	int rc = cursor_open(v, c, i, 1, err);
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
 * (which the threads that decode would each fill otherwise). They start on
 * a huge page and ask for huge pages: on the bench machine (a VM) a 4 KiB
 * page fault costs 6-25 us, so the first decodes into 6 cursors' buffers of
 * 4 KiB pages took 50-190 ms of a mount's first sequential read. */
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
	size_t cap = (n + ZS_SEGBUF_UNIT - 1) / ZS_SEGBUF_UNIT * ZS_SEGBUF_UNIT, map = cap + ZS_SEGBUF_UNIT;
	uint8_t *p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + ZS_SEGBUF_UNIT - 1) & ~(uintptr_t)(ZS_SEGBUF_UNIT - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (p + map > a + cap)
		munmap(a + cap, (size_t)(p + map - (a + cap)));
	madvise(a, cap, MADV_HUGEPAGE);  /* a hint: 4 KiB pages work too */
	c->segbuf = a;
	c->segcap = cap;
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

/* The free cursor to decode a segment of `need` bytes into (lock held):
 * the least recently used one not holding a segment of [keep_lo, keep_hi],
 * among those whose buffer may grow to need within ZS_HELD_BUDGET; NULL
 * when none. */
static struct cursor *cursor_for(zs_view *v, uint64_t need, size_t keep_lo, size_t keep_hi)
{
	struct cursor *lru = NULL;
	for (int k = 0; k < ZS_CURSORS; k++) {
		struct cursor *x = &v->cur[k];
		int kept = x->held != NO_SEG && x->held >= keep_lo && x->held <= keep_hi;
		if (cursor_free(x) && !kept && (!lru || x->last_use < lru->last_use) &&
		    held_bytes_with(v, x, need) <= ZS_HELD_BUDGET)
			lru = x;
	}
	return lru;
}

/* Segments kept behind the base for a segment of `need` bytes: as many of
 * ZS_BEHIND_MAX as the budget holds beside the base and ZS_AHEAD ahead. */
static size_t behind_for(uint64_t need)
{
	uint64_t fit = need ? ZS_HELD_BUDGET / need : ZS_CURSORS;
	return fit <= ZS_AHEAD + 1 ? 0 : fit - (ZS_AHEAD + 1) < ZS_BEHIND_MAX ? (size_t)(fit - (ZS_AHEAD + 1))
									      : ZS_BEHIND_MAX;
}

/* The next segment to decode ahead and a free cursor for it (lock held):
 * one of base+1 .. base+ZS_AHEAD held by no cursor, into a cursor that
 * holds none of the segments kept (behind_for before the base, up to
 * base+ZS_AHEAD), within the memory budget. */
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
		uint64_t need = seg_end(v, j) - v->core.pts[j].p.uout;
		size_t behind = behind_for(need);
		struct cursor *c = cursor_for(v, need, base > behind ? base - behind : 0, base + ZS_AHEAD);
		if (!c)
			return NULL;
		*seg = j;
		return c;
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
		if (ahead_linger_ms) {
			pthread_mutex_unlock(&v->lock);
			usleep(ahead_linger_ms * 1000u);
			pthread_mutex_lock(&v->lock);
		}
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
/* Pin the cursor that holds segment i (decoding it first when none does);
 * its segbuf stays as it is until segment_unpin. */
static int segment_pin(zs_view *v, size_t i, struct cursor **out, img_err *err)
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
		struct cursor *fit = holder ? NULL : cursor_for(v, seg_end(v, i) - v->core.pts[i].p.uout, NO_SEG, NO_SEG);
		if (fit)
			lru = fit;  /* else one over the budget rather than none */
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
	*out = c;
	return IMG_OK;
}

static void segment_unpin(zs_view *v, struct cursor *c)
{
	pthread_mutex_lock(&v->lock);
	if (--c->pins == 0)
		cursor_unpinned(v);
	pthread_mutex_unlock(&v->lock);
}

/* Copy [off, off + len) up to segment i's end out of the cursor holding it. */
static int read_held(zs_view *v, size_t i, uint8_t *out, size_t len, uint64_t off, size_t *got,
		     img_err *err)
{
	struct cursor *c;
	int rc = segment_pin(v, i, &c, err);
	if (rc != IMG_OK)
		return rc;
	uint64_t s0 = v->core.pts[i].p.uout, end = seg_end(v, i);
	size_t n = end - off < len ? (size_t)(end - off) : len;
	memcpy(out, c->segbuf + (off - s0), n);
	*got = n;
	segment_unpin(v, c);
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
		rc = cursor_open(v, c, point_before(v, off), 0, err);
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

int zs_view_peek(zs_view *v, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err)
{
	*p = NULL;
	*pin = NULL;
	if (len == 0 || off >= v->usize || len > v->usize - off)
		return IMG_OK;
	size_t i = point_before(v, off);
	uint64_t s0 = v->core.pts[i].p.uout, end = seg_end(v, i);
	if (end - s0 > ZS_HOLD_MAX || off + len > end)
		return IMG_OK;
	pthread_mutex_lock(&v->lock);
	ahead_note_read(v, off, len);
	pthread_mutex_unlock(&v->lock);
	struct cursor *c;
	int rc = segment_pin(v, i, &c, err);
	if (rc != IMG_OK)
		return rc;
	*p = c->segbuf + (off - s0);
	*pin = c;
	return IMG_OK;
}

void zs_view_unpeek(zs_view *v, void *pin)
{
	if (pin)
		segment_unpin(v, pin);
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
	if (rc == IMG_OK && !(saved && zs_core_load(&v->core, saved, saved_len, &v->usize, &v->span))) {
		*rebuilt = 1;
		if (v->core.states)  /* the scan keeps its states in memory */
			rsrc_close(v->core.states);
		v->core.states = NULL;
		struct zs_scan sc = { .raw = raw, .name = v->name, .span = first_span, .err = err,
				      .progress = progress, .progress_ctx = progress_ctx, .core = &v->core,
				      .codec = codec_of(ops) };
		rc = ops->scan ? ops->scan(&sc) : scan_by_decoding(&sc, ops);
		if (rc == IMG_OK)
			zs_core_close_segment(&v->core);
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
	zs_core_free(&v->core);
	free(v->checked);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->idle);
	pthread_cond_destroy(&v->work);
	free(v->name);
	free(v);
}

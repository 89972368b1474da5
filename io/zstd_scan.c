/*
 * io/zstd_scan.c - the scan of zstd data (zs_ops.scan of io/zstd.c's
 * decoder): the access points for random reads. Every zstd frame is one
 * without state; skippable frames (pzstd writes one before each frame) are
 * stepped over. A big frame (zstd -T0 writes one per file, Clonezilla's
 * default) gets checkpoints inside it too.
 *
 * The scan first walks the frames by their headers and block headers
 * (frame ends, truncation, garbage, found without decoding), then decodes
 * every frame once: libzstd checks each frame's content checksum and size
 * (a damaged image fails when it is indexed, naming the compressed offset),
 * and the CRC-32 of every span (the decoded bytes from one point to the
 * next) is taken for the core, which checks every byte a read hands out.
 *
 * Checkpoints (frames over 2 spans, every 3/4 span): the frame is decoded
 * block by block with libzstd's buffer-less API into a ring (no copy out of
 * a stream buffer), the parser of io/zstd_blocks.h following its entropy
 * tables, repeat offsets and matches. At the first block boundary B 3/4 of
 * a span after the last point, the parser's state becomes a dictionary
 * header; once the scan has passed B + window, the window bytes before B
 * that matches in [B, B + window) copy (a sparse window; the rest is zeros)
 * are known, taken from the ring, and the state (its layout: io/zstd.c,
 * which loads it) is packed with zstd. A second thread then resumes the
 * codec's decoder from it and decodes its span against the CRC the main
 * pass took: a checkpoint that does not give the same bytes is dropped (its
 * span joins the one before). A frame the parser cannot follow still
 * decodes from its start (fewer checkpoints).
 *
 * As the decoder: windows up to 128 MiB (windowLog 27), no dictionaries,
 * zero padding after the last frame, anything else there is
 * IMG_E_TRAILING. Point fields: aux2 = the frame's compressed size (frame
 * starts).
 *
 * Not here: decoding from a point (zstd.c), the list of points (zseek.c),
 * the block format (zstd_blocks.c).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader, ZSTD_frameHeader */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec_util.h"
#include "zstd_blocks.h"
#include "zstd_dec.h"
#include "grow.h"

#define ZSTD_BLOCK_MAX ((uint32_t)128 << 10)
/* Input per ZSTD_decompressStream call of a small frame's decoding: libzstd
 * does not say where in its input an error is, so errors are placed at the
 * start of the step. */
#define ZSTD_STEP ((size_t)128 << 10)
#define ZSTD_UNKNOWN UINT64_MAX
#define ZSTD_OUT_STEP ((size_t)1 << 20)

struct zst_frame {
	uint64_t cin, csize;   /* compressed offset and size */
	uint64_t usize;        /* decoded size, ZSTD_UNKNOWN until learned */
};

/* A place the scan may make an access point: a frame start (no state) or a
 * checkpoint inside a frame. Its span: the decoded bytes [uout, end). */
struct zst_cand {
	uint64_t cin, uout, end;
	uint32_t crc;          /* CRC-32 of the span, taken by the main pass */
	uint8_t *raw;          /* checkpoint: its state before packing (zst_build_state) */
	size_t raw_len;
	uint8_t *state;        /* checkpoint: the packed state (the worker packs raw) */
	size_t state_len;
	int verified;          /* 1 resumed exactly, -1 did not (dropped); worker-written under the lock */
	int unusable;          /* the parser found a table the dictionary cannot express */
	/* while the scan makes it */
	uint64_t frame_cpos;   /* compressed offset in its frame */
	uint8_t head[ZB_DICT_HEAD_MAX];
	size_t head_len;
	uint32_t min_content;
	uint8_t window_byte;
	uint64_t *marks;       /* the window before uout in granules: a bit per granule
				* that a match after uout copies (zst_on_match) */
	uint64_t marks_lo;     /* frame-relative decoded offset of granule 0 */
	size_t nmarks;         /* granules */
	uint32_t granule;      /* bytes per granule: 1, more for windows over 8 MiB (zst_granule) */
	int finalized, closed, dropped_early;
};

struct zst_run {
	uint64_t start, end;   /* frame-relative decoded offsets */
};

struct zst_scan {
	struct zs_scan *sc;
	uint64_t size;         /* compressed bytes */
	struct zst_frame *fr;  /* data frames, in order */
	size_t n, cap;
	struct zst_cand **cand;  /* in order */
	size_t ncand, ccap;
	size_t frames_without;   /* big frames where checkpoints had to stop */
	/* the verifying thread */
	pthread_t worker;
	int worker_on, done;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct zst_cand **queue;
	size_t qhead, qn, qcap;
};

/* ---- scan: the walk over frame and block headers -------------------------------- */

static int zst_pread(struct zst_scan *z, void *buf, size_t len, uint64_t off, size_t *got)
{
	*got = 0;
	if (off >= z->size)
		return IMG_OK;
	if (len > z->size - off)
		len = (size_t)(z->size - off);
	return rsrc_pread(z->sc->raw, buf, len, off, got, z->sc->err);
}

static int zst_push(struct zst_scan *z, const struct zst_frame *f)
{
	if (grow_for(&z->fr, &z->cap, z->n, sizeof *z->fr, 64))
		return img_err_set(z->sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory",
				   z->sc->name);
	z->fr[z->n++] = *f;
	return IMG_OK;
}

/* Walk the blocks of the frame whose first block header is at *off, to the
 * frame's end (its checksum included when it has one). */
static int zst_walk_blocks(struct zst_scan *z, uint64_t *off, const ZSTD_frameHeader *fh)
{
	uint64_t block_max = fh->blockSizeMax ? fh->blockSizeMax : ZSTD_BLOCK_MAX;
	for (;;) {
		uint8_t h[3];
		size_t got;
		int rc = zst_pread(z, h, 3, *off, &got);
		if (rc != IMG_OK)
			return rc;
		if (got < 3)
			return zst_truncated(z->sc->err, z->sc->name, z->size);
		uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16;
		uint32_t type = (v >> 1) & 3, size = v >> 3;
		if (type == 3)
			return zst_corrupt(z->sc->err, z->sc->name, *off, "reserved block type");
		if (size > block_max)
			return zst_corrupt(z->sc->err, z->sc->name, *off, "block larger than the frame allows");
		*off += 3 + (type == 1 ? 1 : (uint64_t)size);
		if (v & 1)
			break;
	}
	if (fh->checksumFlag)
		*off += 4;
	if (*off > z->size)
		return zst_truncated(z->sc->err, z->sc->name, z->size);
	return IMG_OK;
}

/* The data frame at *off: check its header, walk it, list it. */
static int zst_walk_frame(struct zst_scan *z, uint64_t *off)
{
	uint8_t h[ZSTD_FRAMEHEADERSIZE_MAX];
	size_t got;
	int rc = zst_pread(z, h, sizeof h, *off, &got);
	if (rc != IMG_OK)
		return rc;
	ZSTD_frameHeader fh;
	size_t r = ZSTD_getFrameHeader(&fh, h, got);
	if (ZSTD_isError(r))
		return zst_lib_error(z->sc->err, z->sc->name, *off, r, ZST_FIX_FILE);
	if (r > 0)
		return zst_truncated(z->sc->err, z->sc->name, z->size);
	if (fh.windowSize > ((uint64_t)1 << ZSTD_WINDOW_LOG_LIMIT))
		return zst_lib_error(z->sc->err, z->sc->name, *off,
				     (size_t)-ZSTD_error_frameParameter_windowTooLarge, ZST_FIX_FILE);
	if (fh.dictID != 0)
		return img_err_set(z->sc->err, IMG_E_FORMAT, 0, 1, *off,
				   "%s: zstd: the frame at byte %llu needs dictionary %u, which imgbk does not have",
				   z->sc->name, (unsigned long long)*off, fh.dictID);
	struct zst_frame f = { .cin = *off, .usize = fh.frameContentSize };
	if (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN)
		f.usize = ZSTD_UNKNOWN;
	*off += fh.headerSize;
	rc = zst_walk_blocks(z, off, &fh);
	f.csize = *off - f.cin;
	return rc == IMG_OK ? zst_push(z, &f) : rc;
}

/* After the last frame: zero bytes up to the end, nothing else. */
static int zst_check_padding(struct zst_scan *z, uint64_t off)
{
	uint8_t buf[4096];
	while (off < z->size) {
		size_t got;
		int rc = zst_pread(z, buf, sizeof buf, off, &got);
		if (rc != IMG_OK)
			return rc;
		for (size_t i = 0; i < got; i++)
			if (buf[i] != 0)
				return img_err_set(z->sc->err, IMG_E_TRAILING, 0, 1, off + i,
						   "%s: zstd: trailing garbage at byte %llu of the compressed stream, "
						   "after the last zstd frame (0x%02x is not the start of another one)",
						   z->sc->name, (unsigned long long)(off + i), buf[i]);
		if (got == 0)
			break;
		off += got;
	}
	return IMG_OK;
}

/* Walk every frame of the file. */
static int zst_walk(struct zst_scan *z)
{
	uint64_t off = 0;
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	while (off < z->size) {
		uint8_t h[8];
		size_t got;
		int rc = zst_pread(z, h, sizeof h, off, &got);
		if (rc != IMG_OK)
			return rc;
		uint32_t m = got >= 4 ? codec_le32(h) : 0;
		if (got >= 4 && m == ZSTD_FRAME_MAGIC) {
			rc = zst_walk_frame(z, &off);
		} else if (got >= 4 && (m & ZSTD_SKIPPABLE_MASK) == ZSTD_SKIPPABLE_MAGIC) {
			if (got < 8)
				return zst_truncated(z->sc->err, z->sc->name, z->size);
			off += 8 + (uint64_t)codec_le32(h + 4);
			if (off > z->size)
				return zst_truncated(z->sc->err, z->sc->name, z->size);
		} else if (got < 4 && memcmp(h, magic, got) == 0) {
			return zst_truncated(z->sc->err, z->sc->name, z->size);
		} else if (off == 0) {
			return img_err_set(z->sc->err, IMG_E_FORMAT, 0, 1, 0, "%s: zstd: not a zstd frame at byte 0",
					   z->sc->name);
		} else {
			return zst_check_padding(z, off);
		}
		if (rc != IMG_OK)
			return rc;
		zs_scan_progress(z->sc, off);
	}
	return IMG_OK;
}

/* ---- candidates and the verifying thread ---------------------------------------- */

#define ZSTD_PEND_MAX 64      /* checkpoints waiting for their window's matches */
#define ZSTD_RUN_GAP 16       /* window runs closer than this are stored as one */
#define ZSTD_STATE_LEVEL 3    /* zstd level packing checkpoint states */
#define ZSTD_DICT_ID 0x7A53u  /* the ID of checkpoint dictionaries */

static int zst_nomem(struct zst_scan *z)
{
	return img_err_set(z->sc->err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", z->sc->name);
}

static struct zst_cand *zst_new_cand(struct zst_scan *z, uint64_t cin, uint64_t uout)
{
	if (grow_for(&z->cand, &z->ccap, z->ncand, sizeof *z->cand, 256))
		return NULL;
	struct zst_cand *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->cin = cin;
	c->uout = c->end = uout;
	z->cand[z->ncand++] = c;
	return c;
}

static void zst_free_cand(struct zst_cand *c)
{
	free(c->state);
	free(c->raw);
	free(c->marks);
	free(c);
}

/* Resume at checkpoint c and decode its span: 1 when it gives the bytes the
 * main pass saw (same length, same CRC-32), else -1. */
static int zst_verify(struct zst_scan *z, const struct zst_cand *c, ZSTD_DStream *ds, uint8_t *buf, size_t cap)
{
	img_err err;
	memset(&err, 0, sizeof err);
	struct zst_dec *d;
	uint64_t want = c->end - c->uout, made = 0;
	if (zst_dec_borrowing(z->sc->raw, z->sc->name, c->cin, c->state, c->state_len, want, ds, &d, &err) != IMG_OK)
		return -1;
	uint32_t crc = 0;
	int ok = 1;
	while (ok && made < want) {
		size_t got = 0;
		if (zst_read(d, buf, cap, &got, &err) != IMG_OK || got == 0)
			ok = 0;
		crc = crc32_fast(crc, buf, got);
		made += got;
	}
	zst_close(d);
	return ok && made == want && crc == c->crc ? 1 : -1;
}

/* Pack c's state with zstd (c->raw goes). @return 1, or -1 (the state cannot be kept). */
static int zst_pack_state(struct zst_cand *c, ZSTD_CCtx *cc)
{
	size_t room = ZSTD_compressBound(c->raw_len);
	c->state = malloc(room);
	size_t n = c->state ? ZSTD_compressCCtx(cc, c->state, room, c->raw, c->raw_len, ZSTD_STATE_LEVEL) : 0;
	free(c->raw);
	c->raw = NULL;
	if (!c->state || ZSTD_isError(n) || n > ZS_MAX_STATE) {
		free(c->state);
		c->state = NULL;
		return -1;
	}
	c->state_len = n;
	return 1;
}

/* The second thread: packs each checkpoint's state and verifies it, while
 * the main pass goes on. */
static void *zst_worker(void *arg)
{
	struct zst_scan *z = arg;
	size_t cap = (size_t)1 << 20;
	uint8_t *buf = malloc(cap);
	ZSTD_DStream *ds = zst_new_dstream();  /* one for all: its window is allocated once */
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	pthread_mutex_lock(&z->lock);
	for (;;) {
		while (z->qn == 0 && !z->done)
			pthread_cond_wait(&z->wake, &z->lock);
		if (z->qn == 0)
			break;
		struct zst_cand *c = z->queue[z->qhead++];
		z->qn--;
		pthread_mutex_unlock(&z->lock);
		int v = buf && ds && cc ? zst_pack_state(c, cc) : -1;
		if (v == 1)
			v = zst_verify(z, c, ds, buf, cap);
		pthread_mutex_lock(&z->lock);
		c->verified = v;
	}
	pthread_mutex_unlock(&z->lock);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDStream(ds);
	free(buf);
	return NULL;
}

/* Hand a checkpoint whose state and span are complete to the worker. */
static int zst_queue(struct zst_scan *z, struct zst_cand *c)
{
	if (!c->raw || !c->finalized || !c->closed || c->unusable)
		return IMG_OK;
	pthread_mutex_lock(&z->lock);
	if (grow_for(&z->queue, &z->qcap, z->qhead + z->qn, sizeof *z->queue, 256)) {
		pthread_mutex_unlock(&z->lock);
		return zst_nomem(z);
	}
	z->queue[z->qhead + z->qn++] = c;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
	return IMG_OK;
}

static int zst_worker_start(struct zst_scan *z)
{
	if (z->worker_on)
		return IMG_OK;
	if (pthread_create(&z->worker, NULL, zst_worker, z) != 0)
		return img_err_set(z->sc->err, IMG_E_IO, errno, 0, 0, "%s: zstd: cannot start a thread", z->sc->name);
	z->worker_on = 1;
	return IMG_OK;
}

static void zst_worker_stop(struct zst_scan *z)
{
	if (!z->worker_on)
		return;
	pthread_mutex_lock(&z->lock);
	z->done = 1;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
	pthread_join(z->worker, NULL);
	z->worker_on = 0;
}

/* ---- checkpoint states ------------------------------------------------------------- */

static void put_leb(uint8_t **p, uint64_t v)
{
	while (v >= 0x80) {
		*(*p)++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*(*p)++ = (uint8_t)v;
}

/* The decoded bytes of a frame as the scan makes them, in libzstd's round
 * buffer: blocks are decoded one after the other into buf, back to its
 * start when a whole block no longer fits; bytes stay valid for
 * size - ZSTD_BLOCK_MAX - ZSTD_RING_SLACK behind the newest. */
#define ZSTD_RING_SLACK 64
struct zst_ring {
	uint8_t *buf;
	size_t size;
	size_t w;               /* where the next block goes */
	uint64_t cur, prev;     /* frame offsets of buf[0] in this round and the last */
};

/* Copy decoded bytes [from, to) of the frame out of the ring. */
static void ring_copy(const struct zst_ring *r, uint64_t from, uint64_t to, uint8_t *dst)
{
	if (from < r->cur) {
		uint64_t mid = to < r->cur ? to : r->cur;
		memcpy(dst, r->buf + (from - r->prev), (size_t)(mid - from));
		dst += mid - from;
		from = mid;
	}
	if (from < to)
		memcpy(dst, r->buf + (from - r->cur), (size_t)(to - from));
}

/* The first bit at or after i that is `want` (0 or 1), or n. */
static size_t marks_next(const uint64_t *m, size_t i, size_t n, int want)
{
	while (i < n) {
		uint64_t word = (want ? m[i / 64] : ~m[i / 64]) >> (i % 64);
		if (word) {
			i += (size_t)__builtin_ctzll(word);
			return i < n ? i : n;
		}
		i = (i / 64 + 1) * 64;
	}
	return n;
}

/* The runs of marked granules of c (gaps up to ZSTD_RUN_GAP bytes joined), clipped to [lo, b). */
static int marks_runs(const struct zst_cand *c, uint64_t b, struct zst_run **out, size_t *n)
{
	size_t cap = 64, k = 0, g = c->nmarks, join = ZSTD_RUN_GAP / c->granule;
	struct zst_run *runs = malloc(cap * sizeof *runs);
	if (!runs)
		return -1;
	size_t i = marks_next(c->marks, 0, g, 1);
	while (i < g) {
		size_t j = marks_next(c->marks, i, g, 0), next = marks_next(c->marks, j, g, 1);
		while (next < g && next - j <= join) {
			j = marks_next(c->marks, next, g, 0);
			next = marks_next(c->marks, j, g, 1);
		}
		if (k == cap) {
			struct zst_run *nr = realloc(runs, 2 * cap * sizeof *nr);
			if (!nr) {
				free(runs);
				return -1;
			}
			runs = nr;
			cap *= 2;
		}
		uint64_t rs = c->marks_lo + (uint64_t)i * c->granule, re = c->marks_lo + (uint64_t)j * c->granule;
		runs[k++] = (struct zst_run){ rs, re < b ? re : b };
		i = next;
	}
	*out = runs;
	*n = k;
	return 0;
}

/* Build c's state (unpacked) from its marked window and the ring
 * (frame-relative position of c: b). */
static int zst_build_state(struct zst_scan *z, struct zst_cand *c, uint64_t b, const struct zst_ring *ring)
{
	struct zst_run *runs;
	size_t nruns;
	if (marks_runs(c, b, &runs, &nruns) != 0)
		return zst_nomem(z);
	uint64_t content = c->min_content, bytes = 0;
	if (nruns && b - runs[0].start > content)
		content = b - runs[0].start;
	for (size_t i = 0; i < nruns; i++)
		bytes += runs[i].end - runs[i].start;
	size_t raw_len = 12 + c->head_len + nruns * 20 + (size_t)bytes;
	uint8_t *raw = malloc(raw_len);
	if (!raw) {
		free(runs);
		return zst_nomem(z);
	}
	uint8_t *p = raw;
	*p++ = 1;
	*p++ = c->window_byte;
	*p++ = (uint8_t)c->head_len;
	*p++ = (uint8_t)(c->head_len >> 8);
	for (int i = 0; i < 4; i++)
		*p++ = (uint8_t)(content >> (8 * i));
	for (int i = 0; i < 4; i++)
		*p++ = (uint8_t)(nruns >> (8 * i));
	memcpy(p, c->head, c->head_len);
	p += c->head_len;
	uint64_t prev = b - content;
	for (size_t i = 0; i < nruns; i++) {
		put_leb(&p, runs[i].start - prev);
		put_leb(&p, runs[i].end - runs[i].start);
		prev = runs[i].end;
	}
	for (size_t i = 0; i < nruns; i++) {
		ring_copy(ring, runs[i].start, runs[i].end, p);
		p += runs[i].end - runs[i].start;
	}
	free(runs);
	free(c->marks);
	c->marks = NULL;
	c->raw = raw;
	c->raw_len = (size_t)(p - raw);
	c->finalized = 1;
	return IMG_OK;
}

/* ---- scan: one frame, decoded block by block, with checkpoints --------------------- */

struct zst_fscan {
	struct zst_scan *z;
	uint64_t base;             /* decoded offset of the frame's start */
	uint64_t window;
	struct zb_state st;
	struct zst_cand *pend[ZSTD_PEND_MAX];  /* checkpoints whose state is not final */
	size_t npend;
};

/* Mark the granules of [start, end) (frame offsets before c's point) in c's bitmap. */
static void zst_mark(struct zst_cand *c, uint64_t start, uint64_t end)
{
	if (start < c->marks_lo)
		start = c->marks_lo;
	if (end <= start)
		return;
	size_t i = (size_t)((start - c->marks_lo) / c->granule);
	size_t e = (size_t)((end - c->marks_lo + c->granule - 1) / c->granule);
	if (e > c->nmarks)
		e = c->nmarks;
	while (i < e && i % 64) {
		c->marks[i / 64] |= (uint64_t)1 << (i % 64);
		i++;
	}
	while (i + 64 <= e) {
		c->marks[i / 64] = UINT64_MAX;
		i += 64;
	}
	while (i < e) {
		c->marks[i / 64] |= (uint64_t)1 << (i % 64);
		i++;
	}
}

/* The parser's report of one match: a run for every checkpoint before it
 * within a window whose bytes before the checkpoint it copies. */
static void zst_on_match(void *ctx, uint64_t dst, uint64_t src, uint32_t len)
{
	struct zst_fscan *fs = ctx;
	for (size_t i = 0; i < fs->npend; i++) {
		struct zst_cand *c = fs->pend[i];
		uint64_t b = c->uout - fs->base;
		if (src < b && dst >= b && dst - b < fs->window)
			zst_mark(c, src, src + len < b ? src + len : b);
	}
}

/* Decode exactly one block (or the frame header, or the checksum: n bytes
 * at p, compressed offset at) with libzstd's buffer-less API straight into
 * the ring at frame position pos (no copy out of a stream buffer); its bytes
 * go into *crc. *next: the bytes libzstd wants next, 0 when the frame ended. */
static int zst_decode_block(struct zst_scan *z, ZSTD_DCtx *dc, const uint8_t *p, size_t n, uint64_t at,
			    struct zst_ring *ring, uint64_t pos, uint32_t *crc, uint64_t *made, size_t *next)
{
	*made = 0;
	if (ring->size - ring->w < ZSTD_BLOCK_MAX + ZSTD_RING_SLACK) {
		ring->prev = ring->cur;
		ring->cur = pos;
		ring->w = 0;
	}
	while (n > 0) {
		size_t need = ZSTD_nextSrcSizeToDecompress(dc);
		if (need == 0 || need > n)
			return zst_corrupt(z->sc->err, z->sc->name, at, "the frame does not end where its blocks do");
		uint8_t *dst = ring->buf + ring->w;
		size_t r = ZSTD_decompressContinue(dc, dst, ring->size - ring->w, p, need);
		if (ZSTD_isError(r))
			return zst_lib_error(z->sc->err, z->sc->name, at, r, ZST_FIX_FILE);
		*crc = crc32_fast(*crc, dst, r);
		ring->w += r;
		*made += r;
		p += need;
		n -= need;
	}
	*next = ZSTD_nextSrcSizeToDecompress(dc);
	return IMG_OK;
}

/* Finalise the pending checkpoints whose window of matches is behind pos
 * (all when pos is the frame's end). */
static int zst_finalize(struct zst_fscan *fs, uint64_t pos, int all, const struct zst_ring *ring)
{
	size_t w = 0;
	for (size_t i = 0; i < fs->npend; i++) {
		struct zst_cand *c = fs->pend[i];
		uint64_t b = c->uout - fs->base;
		if (!all && pos < b + fs->window) {
			fs->pend[w++] = c;
			continue;
		}
		int rc = zst_build_state(fs->z, c, b, ring);
		if (rc == IMG_OK)
			rc = zst_queue(fs->z, c);
		if (rc != IMG_OK)
			return rc;
	}
	fs->npend = w;
	return IMG_OK;
}

/* The parser cannot follow this frame: its pending checkpoints go, no more are made. */
static void zst_stop_checkpoints(struct zst_fscan *fs, int *parsing)
{
	for (size_t i = 0; i < fs->npend; i++) {
		fs->pend[i]->unusable = 1;
		free(fs->pend[i]->marks);
		fs->pend[i]->marks = NULL;
	}
	fs->npend = 0;
	if (*parsing)
		fs->z->frames_without++;
	*parsing = 0;
}

/* Mark the checkpoints of this frame at compressed offsets (in the frame)
 * after `after` unusable (RLE table then Repeat_Mode). */
static void zst_mark_unusable(struct zst_scan *z, uint64_t frame_cin, uint64_t after)
{
	for (size_t i = z->ncand; i-- > 0;) {
		struct zst_cand *c = z->cand[i];
		if (c->cin - c->frame_cpos != frame_cin || c->head_len == 0)
			break;
		if (c->frame_cpos > after)
			c->unusable = 1;
	}
}

static int follow_blocks = 1;

void zs_zstd_set_follow(int on)
{
	follow_blocks = on;
}

/* Decoded bytes between checkpoints: 3/4 of the core's span (3 MiB). A
 * read decodes and checks its whole span (about 1 ms per MiB on the 2-core
 * machine measured), and a checkpoint's state hardly shrinks with its span
 * (it is the bytes matches in the next window copy): on the bench image at
 * -3, 4 MiB gave an index of 0.86% of the compressed size, 2 MiB 2.14%. */
static uint64_t zst_ckpt_span(const struct zs_scan *sc)
{
	return sc->span - sc->span / 4;  /* >= 1 */
}

/* Bytes per bit of a checkpoint's window bitmap: 1 up to 8 MiB windows (a
 * bitmap of at most 1 MiB; at most 3 checkpoints wait for their window
 * then), so that the stored window is the bytes matches copy; larger
 * windows (--long) get coarser bitmaps of 1 MiB, as up to 43 wait at once. */
static uint32_t zst_granule(uint64_t window)
{
	uint64_t g = window >> 23;
	return g > 1 ? (uint32_t)g : 1;
}

/* Decode frame f (at decoded offset base) block by block, making checkpoints. */
static int zst_scan_frame(struct zst_scan *z, struct zst_frame *f, uint64_t base, ZSTD_DStream *ds)
{
	uint8_t h[ZSTD_FRAMEHEADERSIZE_MAX];
	size_t got;
	int rc = zst_pread(z, h, sizeof h, f->cin, &got);
	if (rc != IMG_OK)
		return rc;
	struct zst_fscan *fs = calloc(1, sizeof *fs);  /* large (the parser's tables) */
	if (!fs)
		return zst_nomem(z);
	fs->z = z;
	fs->base = base;
	struct zb_frame fh;
	if (zb_frame_header(h, got, &fh) != ZB_OK) {
		free(fs);
		return zst_corrupt(z->sc->err, z->sc->name, f->cin, "bad frame header");
	}
	zb_state_init(&fs->st, &fh);
	fs->window = fh.window_size;
	/* libzstd's round buffer needs a window and a block (and slack); the
	 * checkpoints' windows are read from it up to a window and a block
	 * behind the newest byte */
	struct zst_ring ring = { .size = (size_t)(2 * fs->window + 4 * (uint64_t)ZB_BLOCK_MAX) };
	uint64_t pos = 0, last_point = base;
	ring.buf = malloc(ring.size);
	struct zs_input in;
	rc = ring.buf ? zs_input_init(&in, z->sc->raw, f->cin, (size_t)1 << 20, z->sc->err) : zst_nomem(z);
	struct zst_cand *open = rc == IMG_OK ? zst_new_cand(z, f->cin, base) : NULL;
	if (!open) {
		if (rc == IMG_OK)
			zs_input_free(&in);
		free(ring.buf);
		free(fs);
		return rc == IMG_OK ? zst_nomem(z) : rc;
	}
	open->verified = 1;
	uint32_t crc = 0;
	int parsing = 1, last = 0;
	if (!follow_blocks)
		zst_stop_checkpoints(fs, &parsing);
	uint64_t made;
	size_t ret = 1;
	ZSTD_DCtx_reset(ds, ZSTD_reset_session_only);
	if (ZSTD_isError(ZSTD_decompressBegin(ds)))
		rc = zst_nomem(z);
	if (rc == IMG_OK)
		rc = zs_input_fill(&in, fh.header_size, z->sc->err);
	if (rc == IMG_OK)
		rc = zst_decode_block(z, ds, in.buf, fh.header_size, f->cin, &ring, 0, &crc, &made, &ret);
	in.pos = fh.header_size;
	while (rc == IMG_OK && !last) {
		rc = zs_input_fill(&in, ZB_BLOCK_MAX + 3, z->sc->err);
		if (rc != IMG_OK)
			break;
		const uint8_t *p = in.buf + in.pos;
		size_t avail = in.end - in.pos, need;
		uint64_t at = in.offset + in.pos;
		if (avail < 3) {
			rc = zst_truncated(z->sc->err, z->sc->name, at + avail);
			break;
		}
		uint32_t bh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
		size_t csize = 3 + (((bh >> 1) & 3) == 1 ? 1 : (size_t)(bh >> 3));
		last = (int)(bh & 1);
		if (avail < csize) {
			rc = zst_truncated(z->sc->err, z->sc->name, at + avail);
			break;
		}
		if (parsing && pos > 0 && base + pos >= last_point + zst_ckpt_span(z->sc) && fs->npend < ZSTD_PEND_MAX) {
			struct zst_cand *c = zst_new_cand(z, at, base + pos);
			if (!c) {
				rc = zst_nomem(z);
				break;
			}
			c->frame_cpos = fs->st.cpos;
			c->window_byte = fh.window_byte;
			c->marks_lo = pos > fs->window ? pos - fs->window : 0;
			c->granule = zst_granule(fs->window);
			c->nmarks = (size_t)((pos - c->marks_lo + c->granule - 1) / c->granule);
			c->marks = calloc((c->nmarks + 63) / 64, sizeof *c->marks);
			if (!c->marks) {
				rc = zst_nomem(z);
				break;
			}
			c->min_content = zb_dict_min_content(&fs->st);
			zb_dict_header(&fs->st, ZSTD_DICT_ID, c->head, sizeof c->head, &c->head_len);
			open->end = base + pos;
			open->crc = crc;
			open->closed = 1;
			if ((rc = zst_queue(z, open)) != IMG_OK)
				break;
			crc = 0;
			open = c;
			fs->pend[fs->npend++] = c;
			last_point = c->uout;
		}
		struct zb_block_info info = { 0 };
		/* matches matter only when they copy bytes before the last pending checkpoint */
		fs->st.report_below = fs->npend ? fs->pend[fs->npend - 1]->uout - fs->base : 0;
		if (parsing && zb_block(&fs->st, p, csize, &need, &info, zst_on_match, fs) != ZB_OK)
			zst_stop_checkpoints(fs, &parsing);
		rc = zst_decode_block(z, ds, p, csize, at, &ring, pos, &crc, &made, &ret);
		if (rc != IMG_OK)
			break;
		if (parsing && made != info.usize)
			zst_stop_checkpoints(fs, &parsing);
		if (parsing && info.unusable_after != UINT64_MAX)
			zst_mark_unusable(z, f->cin, info.unusable_after);
		pos += made;
		in.pos += csize;
		rc = zst_finalize(fs, pos, 0, &ring);
		zs_scan_progress(z->sc, at + csize);
	}
	if (rc == IMG_OK && fh.checksum) {  /* libzstd checks the frame's checksum */
		rc = zs_input_fill(&in, 4, z->sc->err);
		if (rc == IMG_OK && in.end - in.pos < 4)
			rc = zst_truncated(z->sc->err, z->sc->name, in.offset + in.end);
		if (rc == IMG_OK)
			rc = zst_decode_block(z, ds, in.buf + in.pos, 4, in.offset + in.pos, &ring, pos, &crc, &made,
					      &ret);
		in.pos += 4;
	}
	if (rc == IMG_OK && ret != 0)
		rc = zst_corrupt(z->sc->err, z->sc->name, in.offset + in.pos, "the frame does not end where its blocks do");
	if (rc == IMG_OK)
		rc = zst_finalize(fs, pos, 1, &ring);
	open->end = base + pos;
	open->crc = crc;
	open->closed = 1;
	if (rc == IMG_OK)
		rc = zst_queue(z, open);
	f->usize = pos;
	free(ring.buf);
	zs_input_free(&in);
	free(fs);
	return rc;
}

/* ---- scan: small frames decoded whole -------------------------------------------- */

/* Decode frame f (libzstd checks its content size and checksum), learn its
 * size, and make it one candidate with its CRC. */
static int zst_decode_frame(struct zst_scan *z, struct zst_frame *f, uint64_t base, ZSTD_DStream *ds, uint8_t *in,
			    uint8_t *out, size_t out_cap)
{
	uint64_t pos = f->cin, end = f->cin + f->csize, made = 0;
	uint32_t crc = 0;
	ZSTD_DCtx_reset(ds, ZSTD_reset_session_only);
	size_t ret = 1;
	while (ret != 0) {
		size_t want = end - pos < ZSTD_STEP ? (size_t)(end - pos) : ZSTD_STEP, got;
		int rc = zst_pread(z, in, want, pos, &got);
		if (rc != IMG_OK)
			return rc;
		ZSTD_inBuffer ib = { in, got, 0 };
		do {  /* until the input is used up with room left, or the frame ends */
			ZSTD_outBuffer ob = { out, out_cap, 0 };
			ret = ZSTD_decompressStream(ds, &ob, &ib);
			if (ZSTD_isError(ret))
				return zst_lib_error(z->sc->err, z->sc->name, pos, ret, ZST_FIX_FILE);
			crc = crc32_fast(crc, out, ob.pos);
			made += ob.pos;
			if (ib.pos == ib.size && ob.pos < ob.size)
				break;
		} while (ret != 0);
		if (ret != 0 && got == 0)
			return zst_truncated(z->sc->err, z->sc->name, pos);
		pos += ib.pos;
	}
	f->usize = made;
	struct zst_cand *c = zst_new_cand(z, f->cin, base);
	if (!c)
		return zst_nomem(z);
	c->end = base + made;
	c->crc = crc;
	c->closed = c->verified = 1;
	return IMG_OK;
}

/* Decode every frame once: small ones whole, big ones with checkpoints. */
static int zst_decode_all(struct zst_scan *z)
{
	ZSTD_DStream *ds = zst_new_dstream();
	uint8_t *in = malloc(ZSTD_STEP), *out = malloc(ZSTD_OUT_STEP);
	int rc = IMG_OK;
	if (!ds || !in || !out)
		rc = zst_nomem(z);
	uint64_t base = 0;
	for (size_t i = 0; i < z->n && rc == IMG_OK; i++) {
		struct zst_frame *f = &z->fr[i];
		if (f->usize != ZSTD_UNKNOWN && f->usize <= 2 * z->sc->span) {
			rc = zst_decode_frame(z, f, base, ds, in, out, ZSTD_OUT_STEP);
		} else {
			rc = zst_worker_start(z);
			if (rc == IMG_OK)
				rc = zst_scan_frame(z, f, base, ds);
		}
		base += f->usize;
		zs_scan_progress(z->sc, f->cin + f->csize);
	}
	zst_worker_stop(z);
	ZSTD_freeDStream(ds);
	free(in);
	free(out);
	return rc;
}

/* Hand the candidates that hold to the core, each with the CRC of its span
 * and of the spans of the dropped ones after it. */
static int zst_emit_points(struct zst_scan *z)
{
	size_t frame = 0;
	uint64_t frame_end = z->n ? z->fr[0].cin + z->fr[0].csize : 0;
	for (size_t i = 0; i < z->ncand;) {
		struct zst_cand *c = z->cand[i];
		while (frame + 1 < z->n && c->cin >= frame_end) {
			frame++;
			frame_end = z->fr[frame].cin + z->fr[frame].csize;
		}
		uint32_t crc = c->crc;
		uint64_t end = c->end;
		size_t j = i + 1;
		for (; j < z->ncand; j++) {
			struct zst_cand *d = z->cand[j];
			if (d->head_len == 0 || (d->verified == 1 && !d->unusable))
				break;
			crc = (uint32_t)crc32_combine(crc, d->crc, (z_off_t)(d->end - d->uout));
			end = d->end;
		}
		if (end > c->uout) {
			struct zs_point p = { .cin = c->cin, .uout = c->uout, .state = c->state,
					      .state_len = (uint32_t)c->state_len };
			if (c->head_len == 0)
				p.aux2 = z->fr[frame].csize;
			int rc = zs_add_point_crc(z->sc, &p, crc);
			if (rc != IMG_OK)
				return rc;
		}
		i = j;
	}
	return IMG_OK;
}

int zs_zstd_scan(struct zs_scan *sc)
{
	struct zst_scan z = { .sc = sc, .size = rsrc_size(sc->raw) };
	pthread_mutex_init(&z.lock, NULL);
	pthread_cond_init(&z.wake, NULL);
	sc->states_packed = 1;
	int rc = zst_walk(&z);
	if (rc == IMG_OK)
		rc = zst_decode_all(&z);
	if (rc == IMG_OK)
		rc = zst_emit_points(&z);
	uint64_t total = 0;
	for (size_t i = 0; i < z.n; i++)
		total += z.fr[i].usize;
	sc->usize = total;
	sc->units = z.n;
	sc->blind = z.frames_without;
	for (size_t i = 0; i < z.ncand; i++)
		zst_free_cand(z.cand[i]);
	free(z.cand);
	free(z.queue);
	free(z.fr);
	pthread_mutex_destroy(&z.lock);
	pthread_cond_destroy(&z.wake);
	return rc;
}

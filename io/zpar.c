/*
 * io/zpar.c - the sequential decoding layer, two units at once: for codecs
 * whose data is made of independent units (pbzip2's streams, pzstd's
 * frames) and whose table entry has a unit finder (unit_len: boundaries
 * from headers and magics, nothing decoded), the compressed bytes are cut into
 * units as they are read, and worker threads decode the units ahead while
 * this layer hands out the one at the head, in order.
 *
 * Every unit is decoded by the codec's one decoder (zs_ops.start, whole
 * mode) reading the unit's bytes in memory, at their real compressed
 * offsets, so messages name the same byte as a single decoder would; or,
 * when the codec has one (zstd), by its single-call unit_decode straight
 * into the unit's buffer, with no window buffer and no copy out of one (a
 * unit it cannot decode so is decoded again the first way, which finds and
 * words the error). The units' compressed bytes are read straight from
 * the layer below into a buffer per unit, in steps, asking the finder
 * after each where the unit ends (the few bytes read past it start the
 * next unit).
 *
 * Decoded units are handed over whole (img_stream_ops.exchange): the
 * read-ahead layer above (io/thread.c) takes a unit's buffer, which has
 * room in front for its reader's leftover bytes, and gives back the one its
 * reader emptied (img_stream_ops.give_back, from the reader's thread the
 * moment it is emptied), so decoded bytes are never copied. The read-ahead
 * thread decodes the head itself when no worker took it. produce() copies
 * out of units instead, or, for a head that fits no buffer, decodes it
 * straight into the caller's buffer.

 * Speculation is checked, never trusted: a unit that fails (damage, a
 * truncated input, a false boundary such as a bzip2 magic that occurs by
 * chance inside compressed data, out of memory) is thrown away with every
 * unit after it, and one decoder takes over from that unit's first
 * compressed byte to the end of the data (the "tail": the units' buffered
 * bytes replayed, then the layer below), skipping the bytes of that unit
 * already handed out. What comes out, and the first error with its offset,
 * is then exactly what one decoder makes. Data where the finder sees no
 * boundary (one big stream, another layout) goes to the tail at once.
 *
 * Bounded memory: at most ZPAR_AHEAD units (ZPAR_AHEAD_BYTES compressed
 * bytes, or two units) are read ahead, each at most ZPAR_UNIT_MAX
 * compressed bytes, and the decoded buffers (held here, spare ones, or
 * handed over and not given back) hold at most ZPAR_OUT_BUDGET bytes. A
 * unit is taken into a buffer only when the budget has room for the
 * largest unit seen so far (pzstd's are 8 MiB); one that still outgrows it
 * is left to the reader, which decodes it straight into produce()'s buffer
 * when it reaches it (no buffer at all). Buffers go round (spares, one
 * size for all) rather than being freed and made again.
 *
 * fork(): a child of a process with this layer has no workers; closing the
 * layer there frees nothing that a worker may hold and joins no thread.
 *
 * Not here: the codecs' finders (io/zunits.c), the one-decoder layer
 * (io/zstream.c), the choice between the two (codec_open, io/codecs.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zseek.h"

#define ZPAR_MAX_WORKERS 3
/* Units read ahead, the head included: the head and the next one decoded
 * at once and one read for whichever decoder is done first. More cost
 * memory and no speed: with 6, verify of the pbzip2 bench image (units of
 * 900 kB, a buffer each) peaked at 62-75 MiB, with 3 at 31 MiB. */
#define ZPAR_AHEAD 3
/* Compressed bytes of one unit, at most: pzstd's frames of 8 MiB of data that
 * does not compress are 8 MiB + 205 bytes (block headers), so the limit
 * leaves room for zstd's worst case over 8 MiB (ZSTD_compressBound: 8 MiB +
 * 32 KiB + a header). */
#define ZPAR_UNIT_MAX (((size_t)8 << 20) + ((size_t)64 << 10))
/* A unit's bytes are read in steps, the finder asked after each: what is
 * read past the unit's end (less than a step) is copied to the next unit's
 * buffer. */
#define ZPAR_PEEK_FIRST ((size_t)256 << 10)
#define ZPAR_PEEK_STEP ((size_t)256 << 10)
#define ZPAR_OUT_FIRST ((size_t)2 << 20)        /* a worker's first decoded buffer */
/* Room in front of a decoded buffer's bytes, so that a read-ahead layer
 * above can hand the buffer over to its reader (io.h, exchange). */
#define ZPAR_FRONT STREAM_KEEP
/* A decoded buffer's size, at least, for a unit of 4 MiB or more: a pzstd
 * unit (8 MiB) with its front room, so that such buffers fit every unit
 * and go round instead of being made again. */
#define ZPAR_OUT_CLASS (ZPAR_FRONT + ((size_t)8 << 20))
#define ZPAR_OUT_CLASS_FROM ((size_t)4 << 20)
/* The decoded buffers' room for data (their front room, never written but
 * for a few bytes, not counted) together: held here (spares included) or
 * handed over to the layer above and not given back yet. Four of pzstd's
 * units: the one the reader reads, one waiting in the read-ahead layer,
 * and two decoded at once. With three, a decoder waited for room whenever
 * a unit waited in the read-ahead layer: verify of the pzstd bench image,
 * 7 alternating rounds, 1.65x zstd -dc with three and 1.82x with four
 * (median), peak RSS 50.6 and 59.5 MiB. */
#define ZPAR_OUT_BUDGET ((size_t)32 << 20)

#define ZPAR_REPLAY_BUFFER ((size_t)1 << 20)
#define ZPAR_OWN_BUFFER ((size_t)256 << 10)
#define ZPAR_AHEAD_BYTES ((size_t)4 << 20)      /* compressed bytes read ahead, at most (2 units at least) */
/* Buffers kept for reuse (their pages are there already): decoded ones,
 * and one compressed one. Fresh memory is dear on the bench VM: reading
 * the 733 MB pzstd bench image in 5 MiB steps costs 0.07 s of CPU into
 * one buffer used again and 0.6-1.7 s into a fresh huge-page buffer each
 * time (3 s in 4 KiB pages); verify of that image spent 0.15-0.24 s in
 * the kernel with a new compressed buffer per unit, 0.08-0.16 s with one
 * kept. The kept one gives back its pages past the bytes it last held
 * (stream_buffer_trim), so a small unit after a big one does not keep the
 * big one's memory. */
#define ZPAR_SPARES 2
#define ZPAR_IN_SPARES 1

enum unit_state {
	U_QUEUED,  /* read, waiting for a decoder */
	U_BUSY,    /* a worker (or the reader, for a later unit) decodes it into out */
	U_DONE,    /* out holds its bytes (rc IMG_OK), or it failed (rc) */
	U_BIG,     /* its bytes would not fit the budget: the reader decodes it when it is the head */
	U_DIRECT,  /* the head, decoded by the reader straight into produce()'s buffer */
	U_TAIL,    /* no boundary found from here: one decoder to the end of the data */
};

struct unit {
	uint64_t cin;       /* compressed offset of its first byte */
	uint8_t *c;         /* its compressed bytes */
	size_t clen, ccap;
	enum unit_state state;
	uint8_t *out;       /* decoded bytes (workers), from out + ZPAR_FRONT on */
	size_t olen, ocap;  /* olen: the decoded bytes; ocap: out's size, front room included */
	size_t handed;      /* decoded bytes already handed out */
	int rc;             /* U_DONE: IMG_OK or the failure (which makes the tail start here) */
};

struct zpar {
	const struct zs_ops *ops;
	zs_unit_len_fn unit_len;
	const char *codec, *name;
	img_stream *up;
	struct zs_point first;      /* all zeros: the start of (a unit's) data */
	pthread_mutex_t lock;
	pthread_cond_t work, done;  /* a unit was queued / a unit was decoded */
	pthread_t tid[ZPAR_MAX_WORKERS];
	int nworkers, stop;
	pid_t pid;                  /* the process whose threads the workers are */
	struct unit *q[ZPAR_AHEAD]; /* q[0] is the head */
	int count;
	int in_end;                 /* every compressed byte was read into a unit */
	uint64_t next_cin;          /* compressed offset of the next unit to read */
	uint8_t *carry;             /* bytes read past the last unit's end: the next one's start */
	size_t carry_len, carry_cap;
	int up_rc;                  /* the layer below failed (its message is in the stack's slot) */
	size_t out_used;            /* room for data of the decoded buffers, the spare ones included */
	size_t out_lent;            /* of decoded buffers handed over (exchange) and not given back */
	size_t out_most;            /* the largest decoded size of a unit so far (a buffer's first size) */
	size_t queued;              /* compressed bytes of the queued units */
	struct spare { uint8_t *p; size_t cap; } out_spare[ZPAR_SPARES], in_spare[ZPAR_SPARES];
	pthread_mutex_t spare_lock; /* out_spare and in_spare (any thread) */
	void *reader_ctx;           /* the reader's context for unit_decode */
	/* the head unit decoded by the reader (U_DIRECT), over its bytes */
	void *direct;
	img_stream direct_src;
	img_err direct_err;
	/* the tail: one decoder from a unit's start to the end, after a replay of buffered units */
	void *tail;
	img_stream *replay;         /* the tail's input when units were replayed, else NULL */
	struct unit *prev;          /* the last unit handed out (its compressed bytes) */
	struct unit *rq[ZPAR_AHEAD + 2];  /* units to replay, in order (the previous one and the carried bytes included) */
	int rcount, rnext;
	size_t rpos;
	uint64_t skip;              /* decoded bytes the tail makes that were handed out already */
	struct zs_defer d;          /* the tail's errors, and one deferred (zstream.c) */
	struct zpar_counts counts;  /* at_once, given_back, early_free: atomic (other threads) */
	struct img_stream_ops sops;  /* this layer's, named after the codec */
	struct img_stream_ops mops;  /* the units' streams' (same name, nothing to produce) */
};

static void drop_out(struct zpar *zp, struct unit *u);

/* Keep b (cap bytes) in one of the slots, or @return 0 when they are full. */
static int spare_put(struct spare *slots, int n, uint8_t *b, size_t cap)
{
	for (int i = 0; i < n; i++)
		if (!slots[i].p) {
			slots[i] = (struct spare){ b, cap };
			return 1;
		}
	return 0;
}

/* The largest kept buffer (*cap its size), or NULL. */
static uint8_t *spare_take(struct spare *slots, int n, size_t *cap)
{
	int best = -1;
	for (int i = 0; i < n; i++)
		if (slots[i].p && (best < 0 || slots[i].cap > slots[best].cap))
			best = i;
	if (best < 0)
		return NULL;
	uint8_t *b = slots[best].p;
	*cap = slots[best].cap;
	slots[best].p = NULL;
	return b;
}

/* A buffer for n compressed bytes (the reader's thread). */
static uint8_t *in_take(struct zpar *zp, size_t n, size_t *cap)
{
	pthread_mutex_lock(&zp->spare_lock);
	uint8_t *b = spare_take(zp->in_spare, ZPAR_IN_SPARES, cap);
	pthread_mutex_unlock(&zp->spare_lock);
	if (b && *cap >= n)
		return b;
	free(b);
	/* room for the largest unit: every buffer fits every unit, so buffers
	 * go round instead of being freed and made again (pages not written
	 * to cost no memory) */
	*cap = n > ZPAR_UNIT_MAX ? n : ZPAR_UNIT_MAX;
	return stream_buffer_alloc(*cap);
}

/* Let u's compressed bytes go (kept for a later unit, or freed); u->clen
 * stays, for the count of queued bytes. */
static void unit_release_in(struct zpar *zp, struct unit *u)
{
	if (!u->c)
		return;
	pthread_mutex_lock(&zp->spare_lock);
	int kept = spare_put(zp->in_spare, ZPAR_IN_SPARES, u->c, u->ccap);
	pthread_mutex_unlock(&zp->spare_lock);
	if (kept)
		stream_buffer_trim(u->c, u->ccap, u->clen);
	else
		free(u->c);
	u->c = NULL;
	u->ccap = 0;
}

static void unit_free(struct zpar *zp, struct unit *u)
{
	if (!u)
		return;
	drop_out(zp, u);
	unit_release_in(zp, u);
	free(u);
}

/*
 * The compressed bytes of decoded units that no tail can need, let go at
 * once rather than when the unit is handed out: a tail replays from the
 * first unit that failed (so a unit with every unit before it decoded
 * needs none), or from the unit before bytes that start none (so only
 * while the next unit is not read yet, or is such bytes). Verify of the
 * pzstd bench image held two or three compressed units of up to 8 MiB
 * besides the decoded ones. Under the lock.
 */
static void release_decoded_in(struct zpar *zp)
{
	for (int i = 0; i + 1 < zp->count; i++) {
		struct unit *u = zp->q[i];
		if (u->state != U_DONE || u->rc != IMG_OK)
			return;
		if (zp->q[i + 1]->state != U_TAIL && u->c) {
			unit_release_in(zp, u);
			__atomic_add_fetch(&zp->counts.early_free, 1, __ATOMIC_RELAXED);
		}
	}
}

/* The previous unit's compressed bytes are kept only for a tail that
 * would start right after it (start_tail): once the unit after it is read
 * and is not the tail, they go. Under the lock (the reader's thread). */
static void prev_release(struct zpar *zp)
{
	if (zp->prev && zp->count > 0 && zp->q[0]->state != U_TAIL) {
		unit_free(zp, zp->prev);
		zp->prev = NULL;
	}
}

/* ---- a unit's bytes as the stream a decoder reads ---------------------------------- */

static int memory_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	(void)s, (void)dst, (void)cap;
	*got = 0;
	return IMG_OK;
}

/* A stream whose bytes are all visible already: u's compressed bytes, at
 * their compressed offset; errors of the layer itself go to err. */
static void memory_stream(img_stream *ms, const struct img_stream_ops *ops, const struct unit *u,
			  const char *name, img_err *err)
{
	memset(ms, 0, sizeof *ms);
	ms->ops = ops;
	ms->err = err;
	ms->path = name;
	ms->buf = u->c;
	ms->cap = ms->end = u->clen;
	ms->offset = u->cin;
	ms->at_end = 1;
}

/* Start the codec's decoder over a stream. */
static int start_over(struct zpar *zp, img_stream *src, void **dec, img_err *err)
{
	struct zs_start st = { .up = src, .name = zp->name, .p = &zp->first, .whole = 1 };
	return zp->ops->start(&st, dec, err);
}

/* ---- decoding a unit into a buffer (workers; the reader for later units) ---------- */

/* What a decoded buffer of cap bytes counts in the budget: its room for data. */
static size_t data_room(size_t cap)
{
	return cap > ZPAR_FRONT ? cap - ZPAR_FRONT : 0;
}

/* The room for data of decoded buffers that counts in the budget: held here
 * (the spare ones included) or handed over and not given back yet. */
static size_t out_held(struct zpar *zp)
{
	return __atomic_load_n(&zp->out_used, __ATOMIC_RELAXED) + __atomic_load_n(&zp->out_lent, __ATOMIC_RELAXED);
}

/* Free the spare decoded buffers (their bytes count in the budget). */
static void out_spares_free(struct zpar *zp)
{
	size_t cap;
	uint8_t *b;
	pthread_mutex_lock(&zp->spare_lock);
	while ((b = spare_take(zp->out_spare, ZPAR_SPARES, &cap))) {
		free(b);
		__atomic_sub_fetch(&zp->out_used, data_room(cap), __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&zp->spare_lock);
}

/* Make u->out at least want bytes (its front room included), within the
 * budget. @return 0, or -1 when over it or out of memory. */
static int out_reserve(struct zpar *zp, struct unit *u, size_t want)
{
	if (u->ocap == 0) {
		pthread_mutex_lock(&zp->spare_lock);
		u->out = spare_take(zp->out_spare, ZPAR_SPARES, &u->ocap);
		pthread_mutex_unlock(&zp->spare_lock);
	}
	if (u->ocap >= want)
		return 0;
	if (want < ZPAR_OUT_CLASS && data_room(want) >= ZPAR_OUT_CLASS_FROM)
		want = ZPAR_OUT_CLASS;
	size_t more = data_room(want) - data_room(u->ocap);
	if (out_held(zp) + more > ZPAR_OUT_BUDGET)
		out_spares_free(zp);
	size_t used = __atomic_add_fetch(&zp->out_used, more, __ATOMIC_RELAXED);
	used += __atomic_load_n(&zp->out_lent, __ATOMIC_RELAXED);
	uint8_t *b = used > ZPAR_OUT_BUDGET ? NULL : u->out ? realloc(u->out, want) : stream_buffer_alloc(want);
	if (!b) {
		__atomic_sub_fetch(&zp->out_used, more, __ATOMIC_RELAXED);
		return -1;
	}
	u->out = b;
	u->ocap = want;
	return 0;
}

/* The decoded size of the largest unit so far (a buffer's first size). */
static size_t out_first(struct zpar *zp)
{
	size_t most = __atomic_load_n(&zp->out_most, __ATOMIC_RELAXED);
	return most > ZPAR_OUT_FIRST ? most : ZPAR_OUT_FIRST;
}

/* More room in u->out for a decoder that does not say how much it makes:
 * first as much as the largest unit so far, then twice as much. */
static int grow_out(struct zpar *zp, struct unit *u)
{
	return out_reserve(zp, u, u->ocap > ZPAR_FRONT ? u->ocap * 2 : ZPAR_FRONT + out_first(zp));
}

/* Give u's decoded buffer back: kept for the next unit, or freed. */
static void drop_out(struct zpar *zp, struct unit *u)
{
	pthread_mutex_lock(&zp->spare_lock);
	int kept = u->out && spare_put(zp->out_spare, ZPAR_SPARES, u->out, u->ocap);
	pthread_mutex_unlock(&zp->spare_lock);
	if (!kept) {
		__atomic_sub_fetch(&zp->out_used, data_room(u->ocap), __ATOMIC_RELAXED);
		free(u->out);
	}
	u->out = NULL;
	u->ocap = u->olen = 0;
}

/* Decode u whole into u->out in one call of the codec's unit_decode, when
 * it has one and says how much the unit makes. @return 1 when done. */
static int decode_unit_at_once(struct zpar *zp, struct unit *u, void **ctx)
{
	if (!zp->ops->unit_decode)
		return 0;
	uint64_t bound = zp->ops->unit_bound(u->c, u->clen);
	if (bound == 0 || bound > ZPAR_OUT_BUDGET ||
	    out_reserve(zp, u, ZPAR_FRONT + (size_t)bound) != 0)
		return 0;
	size_t got = 0;
	if (zp->ops->unit_decode(ctx, u->c, u->clen, u->out + ZPAR_FRONT, u->ocap - ZPAR_FRONT, &got) != IMG_OK)
		return 0;
	u->olen = got;
	u->rc = IMG_OK;
	__atomic_add_fetch(&zp->counts.at_once, 1, __ATOMIC_RELAXED);
	return 1;
}

/* Decode u whole into u->out (ctx: the calling thread's context for
 * unit_decode). @return U_DONE (u->rc says how it went) or U_BIG. */
static enum unit_state decode_unit(struct zpar *zp, struct unit *u, void **ctx)
{
	if (decode_unit_at_once(zp, u, ctx)) {
		if (u->olen > __atomic_load_n(&zp->out_most, __ATOMIC_RELAXED))
			__atomic_store_n(&zp->out_most, u->olen, __ATOMIC_RELAXED);
		return U_DONE;
	}
	/* the codec's one decoder: it finds and words any error */
	u->olen = 0;
	img_err err = { 0 };
	img_stream ms;
	memory_stream(&ms, &zp->mops, u, zp->name, &err);
	void *dec = NULL;
	int rc = start_over(zp, &ms, &dec, &err);
	enum unit_state st = U_DONE;
	while (rc == IMG_OK) {
		if (ZPAR_FRONT + u->olen >= u->ocap && grow_out(zp, u) != 0) {
			st = U_BIG;
			break;
		}
		size_t got = 0;
		rc = zp->ops->read(dec, u->out + ZPAR_FRONT + u->olen, u->ocap - ZPAR_FRONT - u->olen, &got, &err);
		u->olen += got;
		if (rc == IMG_OK && got == 0)
			break;
	}
	if (dec)
		zp->ops->close(dec);
	if (st == U_BIG || rc != IMG_OK)
		drop_out(zp, u);
	else if (u->olen > __atomic_load_n(&zp->out_most, __ATOMIC_RELAXED))
		__atomic_store_n(&zp->out_most, u->olen, __ATOMIC_RELAXED);
	u->rc = rc;
	return st;
}

/* Whether a unit as large as the largest so far fits the budget now (a
 * spare buffer is reused, so it counts as room): decoding one that does not
 * would be thrown away half done. */
static int budget_room(struct zpar *zp)
{
	size_t spare = 0, cap = 0;
	pthread_mutex_lock(&zp->spare_lock);
	for (int i = 0; i < ZPAR_SPARES; i++)
		if (zp->out_spare[i].p && (cap = zp->out_spare[i].cap) > spare)
			spare = cap;
	pthread_mutex_unlock(&zp->spare_lock);
	return out_held(zp) - data_room(spare) + out_first(zp) <= ZPAR_OUT_BUDGET;
}

/* The first queued unit that the budget has room for, or NULL: the head
 * included for a codec that decodes a unit in one call, else only the
 * units behind it (the reader decodes the head straight into produce()'s
 * buffer). Under the lock.
 *
 * A worker that is free before the reader comes for the head takes it
 * (the reader reads the next units meanwhile and decodes one of them):
 * the reader, which also reads every compressed byte, was the one that
 * kept the other waiting (its share of the CPU time of verify of the
 * pzstd bench image, perf: 54-57% against 34-38% for the worker; with
 * the head taken too, 48-52% against 39-41%). The other codecs keep
 * the head for the reader: decoded straight into its buffer, with no
 * buffer of its own and no copy. */
static struct unit *next_queued(struct zpar *zp)
{
	if (!budget_room(zp))
		return NULL;
	for (int i = zp->ops->unit_decode ? 0 : 1; i < zp->count; i++)
		if (zp->q[i]->state == U_QUEUED)
			return zp->q[i];
	return NULL;
}

/* Decode u (claimed: U_BUSY) with the lock released; under the lock again after. */
static void decode_claimed(struct zpar *zp, struct unit *u, void **ctx)
{
	pthread_mutex_unlock(&zp->lock);
	enum unit_state st = decode_unit(zp, u, ctx);
	pthread_mutex_lock(&zp->lock);
	u->state = st;
	release_decoded_in(zp);
	pthread_cond_broadcast(&zp->done);
}

static void *worker_main(void *arg)
{
	struct zpar *zp = arg;
	void *ctx = NULL;  /* this thread's context for unit_decode */
	pthread_mutex_lock(&zp->lock);
	while (!zp->stop) {
		struct unit *u = next_queued(zp);
		if (!u) {
			pthread_cond_wait(&zp->work, &zp->lock);
			continue;
		}
		u->state = U_BUSY;
		decode_claimed(zp, u, &ctx);
	}
	pthread_mutex_unlock(&zp->lock);
	if (ctx)
		zp->ops->unit_ctx_free(ctx);
	return NULL;
}

static void stop_workers(struct zpar *zp)
{
	pthread_mutex_lock(&zp->lock);
	zp->stop = 1;
	pthread_cond_broadcast(&zp->work);
	pthread_mutex_unlock(&zp->lock);
	for (int i = 0; i < zp->nworkers; i++)
		pthread_join(zp->tid[i], NULL);
	zp->nworkers = 0;
}

/* ---- reading units from the layer below (the reader's thread) -------------------- */

/* Queue a unit. Under the lock. */
static void enqueue(struct zpar *zp, struct unit *u)
{
	zp->q[zp->count++] = u;
	if (u->state == U_QUEUED)
		pthread_cond_signal(&zp->work);
}

/* Make u->c hold at least n bytes (the reader's thread). @return 0 or -1. */
static int in_reserve(struct zpar *zp, struct unit *u, size_t n)
{
	if (u->ccap >= n)
		return 0;
	if (!u->c) {
		u->c = in_take(zp, n, &u->ccap);
		return u->c ? 0 : -1;
	}
	size_t cap = (n | (((size_t)256 << 10) - 1)) + 1;
	uint8_t *b = realloc(u->c, cap);
	if (!b)
		return -1;
	u->c = b;
	u->ccap = cap;
	return 0;
}

/* Read into u->c, straight from the layer below (no copy through its
 * buffer), until it holds want bytes or the data ends (*at_end). */
static int fill_unit(struct zpar *zp, struct unit *u, size_t want, int *at_end)
{
	if (in_reserve(zp, u, want) != 0)
		return img_err_set(zp->up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", zp->name,
				   zp->codec);
	while (u->clen < want) {
		size_t got = 0;
		int rc = stream_read_direct(zp->up, u->c + u->clen, want - u->clen, &got);
		if (rc < 0)
			return rc;
		if (got == 0) {
			*at_end = 1;
			break;
		}
		u->clen += got;
	}
	return IMG_OK;
}

/* The bytes of u from len on, read past its end (less than a step or
 * two): the start of the next unit, kept in zp->carry. @return 0 or -1. */
static int carry_over(struct zpar *zp, struct unit *u, size_t len)
{
	size_t n = u->clen - len;
	if (n > zp->carry_cap) {
		uint8_t *b = realloc(zp->carry, n);
		if (!b)
			return -1;
		zp->carry = b;
		zp->carry_cap = n;
	}
	memcpy(zp->carry, u->c + len, n);
	zp->carry_len = n;
	u->clen = len;
	return 0;
}

/* A unit at the next compressed offset, with the bytes carried over. NULL: out of memory. */
static struct unit *unit_new(struct zpar *zp)
{
	struct unit *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->cin = zp->next_cin;
	if (zp->carry_len) {
		if (in_reserve(zp, u, zp->carry_len) != 0) {
			free(u);
			return NULL;
		}
		memcpy(u->c, zp->carry, zp->carry_len);
		u->clen = zp->carry_len;
		zp->carry_len = 0;
	}
	return u;
}

/* Read the next unit: its compressed bytes into a buffer of its own, as
 * many as the finder needs to see its end (ZPAR_PEEK_STEP more each
 * time); or mark the tail (no boundary within
 * ZPAR_UNIT_MAX, or bytes the finder does not know: the bytes read so far
 * are replayed to the tail's decoder). Runs without the lock. */
static int read_unit(struct zpar *zp)
{
	struct unit *u = unit_new(zp);
	if (!u)
		return img_err_set(zp->up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", zp->name,
				   zp->codec);
	size_t want = ZPAR_PEEK_FIRST;
	size_t len = 0;
	int at_end = 0;
	for (;;) {
		if (want > ZPAR_UNIT_MAX)
			want = ZPAR_UNIT_MAX;
		int rc = fill_unit(zp, u, want > u->clen ? want : u->clen, &at_end);
		if (rc < 0) {
			unit_free(zp, u);
			return rc;
		}
		if (u->clen == 0) {  /* the data ended at a unit boundary */
			unit_free(zp, u);
			zp->in_end = 1;
			return IMG_OK;
		}
		size_t n = zp->unit_len(u->c, u->clen, at_end);
		if (n == ZS_UNIT_NONE || (n == 0 && (at_end || u->clen >= ZPAR_UNIT_MAX)))
			break;  /* the tail */
		if (n > 0) {
			len = n;
			break;
		}
		want = u->clen + ZPAR_PEEK_STEP;
	}
	if (len && len < u->clen && carry_over(zp, u, len) != 0) {
		unit_free(zp, u);
		return img_err_set(zp->up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", zp->name,
				   zp->codec);
	}
	u->state = len ? U_QUEUED : U_TAIL;
	zp->counts.units += len ? 1 : 0;
	zp->next_cin = u->cin + u->clen;
	zp->in_end = !len || (at_end && !zp->carry_len);
	pthread_mutex_lock(&zp->lock);
	zp->queued += len;
	enqueue(zp, u);
	prev_release(zp);
	release_decoded_in(zp);
	pthread_mutex_unlock(&zp->lock);
	return IMG_OK;
}

/* Read units until ZPAR_AHEAD are queued. A failure below ends the
 * reading: it is reported (it is in the stack's slot) once the units read
 * before it are out. */
static void read_ahead(struct zpar *zp)
{
	while (!zp->in_end && zp->count < ZPAR_AHEAD && (zp->count < 2 || zp->queued < ZPAR_AHEAD_BYTES)) {
		int rc = read_unit(zp);
		if (rc < 0) {
			zp->up_rc = rc;
			zp->in_end = 1;
		}
	}
}

/* ---- the tail: one decoder from a unit to the end ------------------------------------ */

/* The replayed units' bytes, then the layer below's. */
static int replay_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct zpar *zp = s->priv;
	*got = 0;
	while (zp->rnext < zp->rcount) {
		struct unit *u = zp->rq[zp->rnext];
		if (zp->rpos < u->clen) {
			size_t n = u->clen - zp->rpos < cap ? u->clen - zp->rpos : cap;
			memcpy(dst, u->c + zp->rpos, n);
			zp->rpos += n;
			*got = n;
			return IMG_OK;
		}
		unit_free(zp, u);
		zp->rq[zp->rnext++] = NULL;
		zp->rpos = 0;
	}
	return stream_read_direct(zp->up, dst, cap, got);
}

/*
 * Give up on units from the head on: stop the workers, close the head's
 * decoder, and start one decoder at the head's first compressed byte that
 * reads the queued units' bytes and then the layer below, skipping what of
 * the head was handed out.
 */
static int start_tail(struct zpar *zp)
{
	zp->counts.tails++;
	stop_workers(zp);
	struct unit *h = zp->q[0];
	if (zp->direct) {
		zp->ops->close(zp->direct);
		zp->direct = NULL;
	}
	zp->skip = h->handed;
	uint64_t cin = h->cin;
	struct unit *p = zp->prev;
	if (h->state == U_TAIL && p && p->cin + p->clen == h->cin) {
		/* bytes that start no unit: the decoder judges them as bytes after a
		 * unit (padding, trailing garbage, a cut unit), so it starts at the
		 * unit before them and drops that unit's bytes */
		zp->rq[zp->rcount++] = p;
		zp->prev = NULL;
		zp->skip = p->handed;
		cin = p->cin;
	}
	for (int i = 0; i < zp->count; i++) {
		struct unit *u = zp->q[i];
		drop_out(zp, u);
		if (u->clen == 0)
			unit_free(zp, u);
		else
			zp->rq[zp->rcount++] = u;
		zp->q[i] = NULL;
	}
	if (zp->carry_len) {  /* read past the last unit's end */
		struct unit *u = unit_new(zp);
		if (!u)
			return img_err_set(&zp->d.err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", zp->name,
					   zp->codec);
		zp->rq[zp->rcount++] = u;
	}
	zp->count = 0;
	zp->queued = 0;
	zp->in_end = 1;
	img_stream *src = zp->up;
	if (zp->rcount > 0) {
		static const struct img_stream_ops replay_ops = { "replay", replay_produce, NULL, NULL, NULL };
		zp->replay = stream_new(&replay_ops, zp, NULL, zp->up->err, zp->name, ZPAR_REPLAY_BUFFER);
		if (!zp->replay)
			return IMG_E_IO;
		zp->replay->offset = cin;
		src = zp->replay;
	}
	return start_over(zp, src, &zp->tail, &zp->d.err);
}

/* Read from a decoder into dst, dropping the first zp->skip bytes. */
static int read_skipping(struct zpar *zp, void *dec, uint8_t *dst, size_t cap, size_t *got)
{
	for (;;) {
		int rc = zp->ops->read(dec, dst, cap, got, &zp->d.err);
		if (zp->skip == 0 || *got == 0)
			return rc;
		size_t drop = *got < zp->skip ? *got : (size_t)zp->skip;
		zp->skip -= drop;
		*got -= drop;
		memmove(dst, dst + drop, *got);
		if (*got > 0 || rc != IMG_OK)
			return rc;
	}
}

static int tail_produce(img_stream *s, struct zpar *zp, uint8_t *dst, size_t cap, size_t *got)
{
	int rc = zs_defer_due(s, &zp->d);
	if (rc != IMG_OK)
		return rc;
	rc = read_skipping(zp, zp->tail, dst, cap, got);
	return zs_defer_outcome(s, &zp->d, rc, *got);
}

/* ---- handing the head out ------------------------------------------------------------ */

/* The head is all out: it becomes the previous unit (its compressed bytes
 * kept for a tail that starts right after it). Under the lock. */
static void pop_head(struct zpar *zp)
{
	unit_free(zp, zp->prev);
	zp->prev = zp->q[0];
	zp->queued -= zp->prev->state == U_TAIL ? 0 : zp->prev->clen;
	drop_out(zp, zp->prev);
	pthread_cond_signal(&zp->work);  /* budget came free */
	memmove(zp->q, zp->q + 1, (size_t)(zp->count - 1) * sizeof zp->q[0]);
	zp->q[--zp->count] = NULL;
	prev_release(zp);
}

/* Open the reader's decoder over the head. */
static int direct_open(struct zpar *zp, struct unit *h)
{
	memset(&zp->direct_err, 0, sizeof zp->direct_err);
	memory_stream(&zp->direct_src, &zp->mops, h, zp->name, &zp->direct_err);
	return start_over(zp, &zp->direct_src, &zp->direct, &zp->direct_err);
}

/* The head, decoded by the reader into dst. *got == 0: it ended and was
 * popped. A failure (the tail redoes this unit and finds it again) leaves
 * the head U_DONE with its code; bytes made before it go out. */
static void direct_read(struct zpar *zp, struct unit *h, uint8_t *dst, size_t cap, size_t *got)
{
	int rc = zp->direct ? IMG_OK : direct_open(zp, h);
	if (rc == IMG_OK)
		rc = zp->ops->read(zp->direct, dst, cap, got, &zp->direct_err);
	h->handed += *got;
	pthread_mutex_lock(&zp->lock);
	if (rc != IMG_OK) {
		h->state = U_DONE;
		h->rc = rc;
	} else if (*got == 0) {
		zp->ops->close(zp->direct);
		zp->direct = NULL;
		pop_head(zp);
	}
	pthread_mutex_unlock(&zp->lock);
}

/* Copy out of a head a worker decoded; pop it when it is all out. */
static void buffered_read(struct zpar *zp, struct unit *h, uint8_t *dst, size_t cap, size_t *got)
{
	size_t n = h->olen - h->handed < cap ? h->olen - h->handed : cap;
	memcpy(dst, h->out + ZPAR_FRONT + h->handed, n);
	h->handed += n;
	*got = n;
	if (h->handed == h->olen) {
		pthread_mutex_lock(&zp->lock);
		pop_head(zp);
		pthread_mutex_unlock(&zp->lock);
	}
}

/* The head is a worker's: decode a later unit meanwhile, or wait. Under the lock. */
static void help_or_wait(struct zpar *zp)
{
	struct unit *u = next_queued(zp);
	if (u) {
		u->state = U_BUSY;
		decode_claimed(zp, u, &zp->reader_ctx);
	} else {
		pthread_cond_wait(&zp->done, &zp->lock);
	}
}

/* A head no worker took, decoded here into a buffer when the codec decodes
 * a unit in one call (no window buffer: cheaper than decoding it straight
 * into the caller's buffer) and the budget has room. Under the lock. */
static void decode_head_at_once(struct zpar *zp, struct unit *h)
{
	if (zp->ops->unit_decode && budget_room(zp)) {
		h->state = U_BUSY;
		decode_claimed(zp, h, &zp->reader_ctx);
	}
}

/* A buffer the layer above gives back: kept for a later unit when it fits
 * the largest unit so far and the budget has room, else freed. */
static void take_back(struct zpar *zp, uint8_t *b, size_t cap)
{
	if (!b)
		return;
	int kept = 0;
	pthread_mutex_lock(&zp->spare_lock);
	size_t room = data_room(cap), lent = __atomic_load_n(&zp->out_lent, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&zp->out_lent, room < lent ? room : lent, __ATOMIC_RELAXED);
	if (room >= out_first(zp) && out_held(zp) + room <= ZPAR_OUT_BUDGET &&
	    spare_put(zp->out_spare, ZPAR_SPARES, b, cap)) {
		__atomic_add_fetch(&zp->out_used, room, __ATOMIC_RELAXED);
		kept = 1;
	}
	pthread_mutex_unlock(&zp->spare_lock);
	if (!kept)
		free(b);
	pthread_mutex_lock(&zp->lock);  /* a worker waiting for room */
	pthread_cond_broadcast(&zp->work);
	pthread_mutex_unlock(&zp->lock);
}

/* img_stream_ops.give_back: an emptied buffer of the layer above, from its
 * reader's thread, the moment it is emptied. */
static void zpar_give_back(img_stream *s, uint8_t *buf, size_t cap)
{
	struct zpar *zp = s->priv;
	__atomic_add_fetch(&zp->counts.given_back, 1, __ATOMIC_RELAXED);
	take_back(zp, buf, cap);
}

/*
 * img_stream_ops.exchange: the head's decoded buffer, whole, in place of
 * the caller's emptied one. The head is decoded here first when no worker
 * took it and the codec decodes a unit in one call; a head that is not
 * in a buffer of its own (decoded straight into the caller's buffer, a
 * failure, the tail) goes through produce().
 */

static int zpar_exchange(img_stream *s, uint8_t **buf, size_t *cap, size_t *len)
{
	struct zpar *zp = s->priv;
	*len = 0;
	if (zp->tail)
		return IMG_OK;
	if (*buf && *cap >= ZPAR_FRONT + out_first(zp)) {  /* room for a unit: ours from now on */
		take_back(zp, *buf, *cap);
		*buf = NULL;
		*cap = 0;
	}
	read_ahead(zp);
	pthread_mutex_lock(&zp->lock);
	struct unit *h = zp->count > 0 ? zp->q[0] : NULL;
	if (h && h->state == U_QUEUED)
		decode_head_at_once(zp, h);
	while (h && h->state == U_BUSY)
		help_or_wait(zp);
	uint8_t *whole = NULL;
	size_t whole_cap = 0;
	if (h && h->state == U_DONE && h->rc == IMG_OK && h->handed < h->olen) {
		/* a head partly read through produce() (format sniffing reads
		 * the first unit so) goes over too, its rest moved to the front:
		 * no read-ahead buffers of the layer above made for it */
		if (h->handed > 0)
			memmove(h->out + ZPAR_FRONT, h->out + ZPAR_FRONT + h->handed, h->olen - h->handed);
		whole = h->out;
		whole_cap = h->ocap;
		*len = h->olen - h->handed;
		h->handed = h->olen;
		h->out = NULL;
		h->ocap = 0;
		__atomic_sub_fetch(&zp->out_used, data_room(whole_cap), __ATOMIC_RELAXED);
		__atomic_add_fetch(&zp->out_lent, data_room(whole_cap), __ATOMIC_RELAXED);
		zp->counts.whole++;
		pop_head(zp);
	}
	pthread_mutex_unlock(&zp->lock);
	if (whole) {
		take_back(zp, *buf, *cap);  /* one too small for a unit */
		*buf = whole;
		*cap = whole_cap;
	}
	return IMG_OK;
}

static int zpar_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct zpar *zp = s->priv;
	*got = 0;
	for (;;) {
		if (zp->tail)
			return tail_produce(s, zp, dst, cap, got);
		read_ahead(zp);
		pthread_mutex_lock(&zp->lock);
		if (zp->count == 0) {
			pthread_mutex_unlock(&zp->lock);
			return zp->up_rc;
		}
		struct unit *h = zp->q[0];
		if (h->state == U_QUEUED)
			decode_head_at_once(zp, h);
		enum unit_state st = h->state;
		if (st == U_QUEUED || st == U_BIG)
			h->state = st = U_DIRECT;
		if (st == U_BUSY)
			help_or_wait(zp);
		pthread_mutex_unlock(&zp->lock);
		if (st == U_TAIL || (st == U_DONE && h->rc != IMG_OK)) {
			int rc = start_tail(zp);
			if (rc != IMG_OK)
				return zs_defer_outcome(s, &zp->d, rc, 0);
			continue;
		}
		if (st == U_DONE)
			buffered_read(zp, h, dst, cap, got);
		else if (st == U_DIRECT)
			direct_read(zp, h, dst, cap, got);
		if (*got > 0)
			return IMG_OK;
	}
}

static void zpar_close(img_stream *s)
{
	struct zpar *zp = s->priv;
	if (zp->pid != getpid())  /* a fork()ed child: no workers, their lock may be held */
		return;
	stop_workers(zp);
	if (zp->direct)
		zp->ops->close(zp->direct);
	if (zp->tail)
		zp->ops->close(zp->tail);
	if (zp->replay)
		stream_close(zp->replay);
	for (int i = 0; i < zp->count; i++)
		unit_free(zp, zp->q[i]);
	for (int i = zp->rnext; i < zp->rcount; i++)
		unit_free(zp, zp->rq[i]);
	unit_free(zp, zp->prev);
	free(zp->carry);
	out_spares_free(zp);
	if (zp->reader_ctx)
		zp->ops->unit_ctx_free(zp->reader_ctx);
	size_t cap;
	uint8_t *b;
	while ((b = spare_take(zp->in_spare, ZPAR_IN_SPARES, &cap)))
		free(b);
	pthread_mutex_destroy(&zp->spare_lock);
	pthread_mutex_destroy(&zp->lock);
	pthread_cond_destroy(&zp->work);
	pthread_cond_destroy(&zp->done);
	free(zp);
}

static int worker_count(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus - 1 < 1 ? 1 : cpus - 1 > ZPAR_MAX_WORKERS ? ZPAR_MAX_WORKERS : (int)(cpus - 1);
}

int zpar_stream_open(img_stream *up, const char *codec, const struct zs_ops *ops, zs_unit_len_fn unit_len,
		     img_stream **out)
{
	struct zpar *zp = calloc(1, sizeof *zp);
	if (!zp)
		return img_err_set(up->err, IMG_E_IO, ENOMEM, 0, 0, "%s: %s: out of memory", up->path, codec);
	zp->ops = ops;
	zp->unit_len = unit_len;
	zp->codec = codec;
	zp->name = up->path ? up->path : "?";
	zp->up = up;
	zp->next_cin = up->offset;
	zp->pid = getpid();
	zp->sops = (struct img_stream_ops){ codec, zpar_produce, zpar_close, zpar_exchange, zpar_give_back };
	zp->mops = (struct img_stream_ops){ codec, memory_produce, NULL, NULL, NULL };
	pthread_mutex_init(&zp->lock, NULL);
	pthread_mutex_init(&zp->spare_lock, NULL);
	pthread_cond_init(&zp->work, NULL);
	pthread_cond_init(&zp->done, NULL);
	int want = worker_count();
	for (int i = 0; i < want; i++)
		if (pthread_create(&zp->tid[zp->nworkers], NULL, worker_main, zp) == 0)
			zp->nworkers++;
	/* its own buffer serves peeks only (format sniffing); the read-ahead
	 * layer above takes whole units (exchange) or reads straight in */
	img_stream *s = stream_new(&zp->sops, zp, up, NULL, NULL, ZPAR_OWN_BUFFER);
	if (!s) {
		zp->up = NULL;
		zpar_close(&(img_stream){ .priv = zp });
		return IMG_E_IO;
	}
	*out = s;
	return IMG_OK;
}

int zpar_stream_counts(img_stream *s, struct zpar_counts *out)
{
	if (s && s->ops->produce != zpar_produce)
		s = s->up;
	if (!s || s->ops->produce != zpar_produce)
		return -1;
	struct zpar *zp = s->priv;
	*out = zp->counts;
	out->at_once = __atomic_load_n(&zp->counts.at_once, __ATOMIC_RELAXED);
	out->given_back = __atomic_load_n(&zp->counts.given_back, __ATOMIC_RELAXED);
	out->early_free = __atomic_load_n(&zp->counts.early_free, __ATOMIC_RELAXED);
	return 0;
}

/*
 * io/bz2.c - bzip2 (libbz2): the codec's one decoder (zseek.h,
 * zs_ops.start), used for the sequential stream and random reads alike, and
 * the scan that finds its access points.
 *
 * Started at the start of the data (the sequential stream) it decodes the
 * streams in turn, straight into the buffer read() is given: pbzip2, lbzip2
 * and `cat a.bz2 b.bz2` put complete streams one after the other; when one
 * ends and the next bytes are "BZh", the next is decoded too. After the last
 * stream, zero bytes up to the end are padding (a tape block, a device
 * larger than the file); any other byte is IMG_E_TRAILING with its offset.
 * An input that ends inside a stream is IMG_E_TRUNCATED.
 *
 * Access points: bzip2 blocks are independent, so every block is one,
 * without state. Blocks start at any bit (magic 0x314159265359); a stream
 * ends with the magic 0x177245385090, its combined CRC and zero bits up to a
 * byte. libbz2 cannot start inside a stream, so a decoder started at a block
 * decodes it as a stream of its own: "BZh" + level, the block's bits shifted
 * to a byte boundary, and an end-of-stream marker whose combined CRC is that
 * block's CRC (the combined CRC of one block is the block's CRC). libbz2
 * then checks the block's CRC as it would in the real stream, and the
 * decoder stops at the block's end (self_checked).
 *
 * The scan finds block ends by searching the bits for the two magics; a
 * candidate is taken only when the block up to it decodes as above (a magic
 * can occur by chance inside compressed data; then the block is tried up to
 * the next candidate). Blocks are decoded in batches on up to
 * BZ_MAX_THREADS threads, each once, which also gives its decoded size. The
 * scan checks each stream's combined CRC, accepts zero padding after the
 * last stream (as the stream does) and refuses anything else there.
 *
 * Point fields: bits = the bit of byte cin the block's magic starts at
 * (0 = most significant) | level << 3; aux = the block's CRC; aux2 = the
 * block's length in bits, from its magic to the next magic. All zeros is the
 * start of the data.
 *
 * Not here: detecting bzip2 (codecs.c), the list of points (zseek.c).
 */
#include <bzlib.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec_util.h"
#include "zseek.h"

#define BZ_BLOCK_MAGIC 0x314159265359ULL
#define BZ_EOS_MAGIC 0x177245385090ULL
#define BZ_MAX_THREADS 8
#define BZ_MAX_JOBS 64
/* The compressed window the scan searches: at least BZ_WINDOW_MIN visible. */
#define BZ_WINDOW ((size_t)24 << 20)
#define BZ_WINDOW_MIN ((size_t)12 << 20)
#define BZ_SCRATCH ((size_t)1 << 20)

/* Bytes a block of `level` can take at most: up to 20 bits per symbol for
 * level * 100000 symbols, plus the tables. */
static uint64_t bz_block_max_bytes(int level)
{
	return (uint64_t)level * 250000 + 65536;
}

static uint64_t bz_block_max_bits(int level)
{
	return bz_block_max_bytes(level) * 8;
}

static const char *bz_error_name(int rc)
{
	switch (rc) {
	case BZ_DATA_ERROR: return "data integrity error";
	case BZ_DATA_ERROR_MAGIC: return "not a bzip2 stream header";
	case BZ_MEM_ERROR: return "out of memory";
	case BZ_UNEXPECTED_EOF: return "the block ends early";
	case BZ_PARAM_ERROR: return "parameter error";
	case BZ_CONFIG_ERROR: return "library misconfigured";
	default: return "decoder error";
	}
}

static int bz_corrupt(img_err *err, const char *name, uint64_t at, const char *detail)
{
	return zs_corrupt(err, name, "bzip2", at, detail);
}

static int bz_truncated(img_err *err, const char *name, uint64_t at)
{
	return zs_truncated(err, name, "bzip2", "bzip2 stream", at);
}

static int bz_nomem(img_err *err, const char *name)
{
	return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: bzip2: out of memory", name);
}

/* ---- bits ------------------------------------------------------------------------- */

/* n <= 57 bits of p starting at bit `bit` (most significant bit first). */
static uint64_t get_bits(const uint8_t *p, uint64_t bit, int n)
{
	const uint8_t *q = p + (bit >> 3);
	int skip = (int)(bit & 7), bytes = (skip + n + 7) / 8;
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | q[i];
	return (v >> (bytes * 8 - skip - n)) & (((uint64_t)1 << n) - 1);
}

/* Write the n low bits of v at bit `bit` of p (whose bits there are zero). */
static void put_bits(uint8_t *p, uint64_t bit, uint64_t v, int n)
{
	for (int k = n - 1; k >= 0; k--, bit++)
		if ((v >> k) & 1)
			p[bit >> 3] |= (uint8_t)(0x80 >> (bit & 7));
}

static size_t bz_synth_cap(int level)
{
	return (size_t)bz_block_max_bytes(level) + 32;
}

/*
 * The one-block stream for the nbits bits of p from bit `start` (the block's
 * magic first): "BZh" + level, the bits, the end-of-stream magic, crc, zero
 * bits to a byte. p must have one readable byte after the block's last bit.
 * dst holds bz_synth_cap(level). @return its length.
 */
static size_t bz_synth(uint8_t *dst, const uint8_t *p, uint64_t start, uint64_t nbits, int level,
		       uint32_t crc)
{
	const uint8_t *q = p + (start >> 3);
	int sh = (int)(start & 7);
	size_t nbytes = (size_t)((nbits + 7) / 8), len = 4 + (size_t)((nbits + 80 + 7) / 8);
	memcpy(dst, "BZh", 3);
	dst[3] = (uint8_t)('0' + level);
	if (sh == 0)
		memcpy(dst + 4, q, nbytes);
	else
		for (size_t i = 0; i < nbytes; i++)
			dst[4 + i] = (uint8_t)(q[i] << sh | q[i + 1] >> (8 - sh));
	if (nbits & 7)
		dst[4 + nbytes - 1] &= (uint8_t)(0xFF << (8 - (nbits & 7)));
	memset(dst + 4 + nbytes, 0, len - 4 - nbytes);
	put_bits(dst, 32 + nbits, BZ_EOS_MAGIC, 48);
	put_bits(dst, 32 + nbits + 48, crc, 32);
	return len;
}

/* ---- decoding one synthesized stream ------------------------------------------------ */

struct bz_result {
	int ok;            /* BZ_STREAM_END exactly at the end of the input */
	int brc;           /* libbz2's code when not ok */
	uint64_t out;      /* decoded bytes */
	size_t used;       /* input bytes libbz2 took */
};

/* Decode syn[0..len) into scratch (discarded), counting the output. */
static void bz_decode_count(const uint8_t *syn, size_t len, uint8_t *scratch, struct bz_result *r)
{
	bz_stream z;
	memset(&z, 0, sizeof z);
	memset(r, 0, sizeof *r);
	r->brc = BZ2_bzDecompressInit(&z, 0, 0);
	if (r->brc != BZ_OK)
		return;
	z.next_in = (char *)syn;
	z.avail_in = (unsigned)len;
	for (;;) {
		z.next_out = (char *)scratch;
		z.avail_out = (unsigned)BZ_SCRATCH;
		r->brc = BZ2_bzDecompress(&z);
		if (r->brc == BZ_STREAM_END) {
			r->ok = z.avail_in == 0;
			break;
		}
		if (r->brc != BZ_OK)
			break;
		if (z.avail_in == 0 && z.avail_out > 0) {
			r->brc = BZ_UNEXPECTED_EOF;
			break;
		}
	}
	if (r->brc == BZ_STREAM_END && !r->ok)
		r->brc = BZ_DATA_ERROR;
	r->out = (uint64_t)z.total_out_hi32 << 32 | z.total_out_lo32;
	r->used = len - z.avail_in;
	BZ2_bzDecompressEnd(&z);
}

/* The compressed byte a failure at synthesized byte `used` stands for. */
static uint64_t bz_fail_byte(uint64_t start_bit, uint64_t nbits, size_t used)
{
	uint64_t rel = used > 4 ? (uint64_t)(used - 4) * 8 : 0;
	if (rel > nbits)
		rel = nbits;
	return (start_bit + rel) >> 3;
}

/* ---- scan ----------------------------------------------------------------------------- */

/* A block to check: bits [start, end) (absolute), end at a block or end-of-stream magic. */
struct bz_job {
	uint64_t start, end;
	int eos;               /* end is an end-of-stream magic */
	int level;
	uint32_t crc;          /* the block's CRC */
	struct bz_result res;
};

struct bz_worker {
	uint8_t *syn, *scratch;
};

struct bz_scan {
	struct zs_scan *sc;
	struct zs_input in;
	uint16_t tab[256];     /* byte after a magic's first byte -> shifts (bits 0-7 block, 8-15 eos) */
	int level;             /* the current stream's */
	uint32_t combined;     /* combined CRC of the current stream's blocks so far */
	uint64_t bit;          /* absolute bit of the next block's magic */
	uint64_t uout;
	int done;              /* the data ended cleanly */
	int nthreads;
	struct bz_worker w[BZ_MAX_THREADS];
	/* the batch */
	struct bz_job jobs[BZ_MAX_JOBS];
	size_t njobs;
	size_t next_job;       /* claimed by workers (atomic) */
};

/* The window: visible compressed bytes and the absolute bit of their first. */
static const uint8_t *win(const struct bz_scan *s)
{
	return s->in.buf + s->in.pos;
}

static uint64_t win_bit(const struct bz_scan *s)
{
	return (s->in.offset + s->in.pos) * 8;
}

static size_t win_len(const struct bz_scan *s)
{
	return s->in.end - s->in.pos;
}

/* Does the window reach the end of the data? */
static int win_eof(const struct bz_scan *s)
{
	return s->in.eof;
}

/* Make the window start at compressed byte `at`, with at least BZ_WINDOW_MIN
 * bytes visible when the data has them. */
static int bz_window(struct bz_scan *s, uint64_t at)
{
	if (at < s->in.offset || at > s->in.offset + s->in.end) {
		zs_input_free(&s->in);
		int rc = zs_input_init(&s->in, s->sc->raw, at, BZ_WINDOW, s->sc->err);
		if (rc != IMG_OK)
			return rc;
	} else {
		s->in.pos = (size_t)(at - s->in.offset);
	}
	return zs_input_fill(&s->in, BZ_WINDOW_MIN, s->sc->err);
}

static void bz_make_table(struct bz_scan *s)
{
	memset(s->tab, 0, sizeof s->tab);
	for (int sh = 0; sh < 8; sh++) {
		s->tab[(BZ_BLOCK_MAGIC >> (32 + sh)) & 0xFF] |= (uint16_t)(1u << sh);
		s->tab[(BZ_EOS_MAGIC >> (32 + sh)) & 0xFF] |= (uint16_t)(0x100u << sh);
	}
}

/*
 * The first bit >= from (absolute) where a block or end-of-stream magic
 * starts and the 80 bits from there (a magic and a CRC) are in the window.
 * @return 1 with *at and *eos, 0 when none.
 */
static int bz_find_magic(const struct bz_scan *s, uint64_t from, uint64_t *at, int *eos)
{
	const uint8_t *p = win(s);
	uint64_t base = win_bit(s), len_bits = (uint64_t)win_len(s) * 8;
	if (from < base)
		from = base;
	uint64_t rel = from - base;
	for (size_t j = (size_t)(rel >> 3) + 1; (uint64_t)(j - 1) * 8 + 80 <= len_bits; j++) {
		uint16_t m = s->tab[p[j]];
		if (!m)
			continue;
		for (int sh = 0; sh < 8; sh++) {
			uint64_t b = (uint64_t)(j - 1) * 8 + (uint64_t)sh;
			if (!(m & (0x101u << sh)) || b < rel || b + 80 > len_bits)
				continue;
			uint64_t v = get_bits(p, b, 48);
			if (v == BZ_BLOCK_MAGIC || v == BZ_EOS_MAGIC) {
				*at = base + b;
				*eos = v == BZ_EOS_MAGIC;
				return 1;
			}
		}
	}
	return 0;
}

/* Decode job j's block from the window with worker w's buffers. */
static void bz_check_job(const struct bz_scan *s, struct bz_job *j, struct bz_worker *w)
{
	uint64_t nbits = j->end - j->start, rel = j->start - win_bit(s);
	memset(&j->res, 0, sizeof j->res);
	if (nbits > bz_block_max_bits(j->level)) {
		j->res.brc = BZ_DATA_ERROR;
		return;
	}
	j->crc = (uint32_t)get_bits(win(s), rel + 48, 32);
	size_t len = bz_synth(w->syn, win(s), rel, nbits, j->level, j->crc);
	bz_decode_count(w->syn, len, w->scratch, &j->res);
}

struct bz_thread_arg {
	struct bz_scan *s;
	struct bz_worker *w;
};

static void *bz_worker_main(void *arg)
{
	struct bz_thread_arg *a = arg;
	for (;;) {
		size_t i = __atomic_fetch_add(&a->s->next_job, 1, __ATOMIC_RELAXED);
		if (i >= a->s->njobs)
			break;
		bz_check_job(a->s, &a->s->jobs[i], a->w);
	}
	return NULL;
}

/* Check every job of the batch, on the scan's threads. */
static void bz_run_jobs(struct bz_scan *s)
{
	pthread_t tid[BZ_MAX_THREADS];
	struct bz_thread_arg args[BZ_MAX_THREADS];
	int started[BZ_MAX_THREADS] = { 0 };
	int n = s->nthreads < (int)s->njobs ? s->nthreads : (int)s->njobs;
	s->next_job = 0;
	for (int t = 0; t < n; t++)
		args[t] = (struct bz_thread_arg){ s, &s->w[t] };
	for (int t = 1; t < n; t++)
		started[t] = pthread_create(&tid[t], NULL, bz_worker_main, &args[t]) == 0;
	bz_worker_main(&args[0]);
	for (int t = 1; t < n; t++)
		if (started[t])
			pthread_join(tid[t], NULL);
}

/* After the last stream: zero bytes up to the end, nothing else. */
static int bz_check_padding(struct bz_scan *s, uint64_t at)
{
	int rc = bz_window(s, at);
	if (rc != IMG_OK)
		return rc;
	return zs_input_finish(&s->in, s->sc->name, "bzip2", "bzip2 stream", s->sc->err);
}

/* At compressed byte `at`, where a stream may start: take its header (empty
 * streams are stepped over), or end. Sets s->bit and s->level, or s->done. */
static int bz_stream_start(struct bz_scan *s, uint64_t at)
{
	for (;;) {
		int rc = bz_window(s, at);
		if (rc != IMG_OK)
			return rc;
		const uint8_t *p = win(s);
		size_t n = win_len(s);
		int header = n >= 4 && memcmp(p, "BZh", 3) == 0 && p[3] >= '1' && p[3] <= '9';
		if (!header && n < 4 && memcmp(p, "BZh", n) == 0 && n > 0)
			return bz_truncated(s->sc->err, s->sc->name, at + n);
		if (!header && at == 0)
			return img_err_set(s->sc->err, IMG_E_FORMAT, 0, 1, 0, "%s: bzip2: not a bzip2 stream at byte 0",
					   s->sc->name);
		if (!header) {
			s->done = 1;
			return bz_check_padding(s, at);
		}
		if (n < 14)
			return bz_truncated(s->sc->err, s->sc->name, at + n);
		uint64_t m = get_bits(p + 4, 0, 48);
		s->level = p[3] - '0';
		s->combined = 0;
		if (m == BZ_BLOCK_MAGIC) {
			s->bit = (at + 4) * 8;
			return IMG_OK;
		}
		if (m != BZ_EOS_MAGIC || get_bits(p + 10, 0, 32) != 0)
			return bz_corrupt(s->sc->err, s->sc->name, at + 4, "no block after the stream header");
		at += 14;
	}
}

/* The stream ended at the end-of-stream magic at bit e: check its CRC, go to the next one. */
static int bz_stream_end(struct bz_scan *s, uint64_t e)
{
	uint32_t stored = (uint32_t)get_bits(win(s), e + 48 - win_bit(s), 32);
	if (stored != s->combined)
		return bz_corrupt(s->sc->err, s->sc->name, e >> 3, "stream CRC mismatch");
	return bz_stream_start(s, (e + 80 + 7) >> 3);
}

/* A checked block: its point, then on to the next block or stream. */
static int bz_accept(struct bz_scan *s, const struct bz_job *j)
{
	if (j->res.out > 0) {
		struct zs_point p = { .cin = j->start >> 3, .uout = s->uout,
				      .bits = (uint32_t)(j->start & 7) | (uint32_t)j->level << 3, .aux = j->crc,
				      .aux2 = j->end - j->start };
		int rc = zs_add_point(s->sc, &p);
		if (rc != IMG_OK)
			return rc;
	}
	s->uout += j->res.out;
	s->combined = (s->combined << 1 | s->combined >> 31) ^ j->crc;
	s->bit = j->end;
	return j->eos ? bz_stream_end(s, j->end) : IMG_OK;
}

/*
 * Job j failed: its end was a magic by chance inside the block, or the block
 * is damaged. Try the block up to each later candidate, within the most a
 * block can take. None works: truncation when the data ends within that
 * reach with no stream end seen, else damage where libbz2 first stopped.
 */
static int bz_extend(struct bz_scan *s, const struct bz_job *failed)
{
	struct bz_job j = *failed;
	int rc = bz_window(s, j.start >> 3);
	if (rc != IMG_OK)
		return rc;
	uint64_t reach = j.start + bz_block_max_bits(j.level);
	int saw_eos = j.eos, more;
	while ((more = bz_find_magic(s, j.end + 1, &j.end, &j.eos)) && j.end <= reach) {
		saw_eos |= j.eos;
		bz_check_job(s, &j, &s->w[0]);
		if (j.res.ok)
			return bz_accept(s, &j);
	}
	uint64_t data_end = (s->in.offset + s->in.end) * 8;
	if (!more && !saw_eos && win_eof(s) && reach > data_end)
		return bz_truncated(s->sc->err, s->sc->name, data_end >> 3);
	uint64_t at = bz_fail_byte(failed->start, failed->end - failed->start, failed->res.used);
	return bz_corrupt(s->sc->err, s->sc->name, at, bz_error_name(failed->res.brc));
}

/* Fill the batch with the blocks from s->bit up to the candidates in the
 * window, across stream ends whose next header is visible. */
static void bz_collect(struct bz_scan *s)
{
	uint64_t start = s->bit;
	int level = s->level;
	s->njobs = 0;
	while (s->njobs < BZ_MAX_JOBS) {
		struct bz_job *j = &s->jobs[s->njobs];
		if (!bz_find_magic(s, start + 80, &j->end, &j->eos))
			break;
		j->start = start;
		j->level = level;
		s->njobs++;
		start = j->end;
		if (!j->eos)
			continue;
		uint64_t next = ((j->end + 80 + 7) >> 3) - (win_bit(s) >> 3);
		const uint8_t *p = win(s) + next;
		if (next + 10 > win_len(s) || memcmp(p, "BZh", 3) != 0 || p[3] < '1' || p[3] > '9' ||
		    get_bits(p + 4, 0, 48) != BZ_BLOCK_MAGIC)
			break;
		level = p[3] - '0';
		start = win_bit(s) + (next + 4) * 8;
	}
}

/* One batch: collect, check in parallel, accept in order. */
static int bz_batch(struct bz_scan *s)
{
	int rc = bz_window(s, s->bit >> 3);
	if (rc != IMG_OK)
		return rc;
	bz_collect(s);
	if (s->njobs == 0 && win_eof(s))
		return bz_truncated(s->sc->err, s->sc->name, s->in.offset + s->in.end);
	if (s->njobs == 0)
		return bz_corrupt(s->sc->err, s->sc->name, s->bit >> 3,
				  "no block or stream end within the largest size of a block");
	bz_run_jobs(s);
	for (size_t i = 0; i < s->njobs && !s->done; i++) {
		const struct bz_job *j = &s->jobs[i];
		if (j->start != s->bit)
			break;
		rc = j->res.ok ? bz_accept(s, j) : bz_extend(s, j);
		if (rc != IMG_OK || !j->res.ok)
			break;
	}
	zs_scan_progress(s->sc, s->bit >> 3);
	return rc;
}

static int bz_scan_setup(struct bz_scan *s)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	s->nthreads = cpus < 1 ? 1 : cpus > BZ_MAX_THREADS ? BZ_MAX_THREADS : (int)cpus;
	bz_make_table(s);
	for (int t = 0; t < s->nthreads; t++) {
		s->w[t].syn = malloc(bz_synth_cap(9));
		s->w[t].scratch = malloc(BZ_SCRATCH);
		if (!s->w[t].syn || !s->w[t].scratch)
			return bz_nomem(s->sc->err, s->sc->name);
	}
	return zs_input_init(&s->in, s->sc->raw, 0, BZ_WINDOW, s->sc->err);
}

static int bz_scan(struct zs_scan *sc)
{
	struct bz_scan *s = calloc(1, sizeof *s);
	if (!s)
		return bz_nomem(sc->err, sc->name);
	s->sc = sc;
	int rc = bz_scan_setup(s);
	if (rc == IMG_OK)
		rc = bz_stream_start(s, 0);
	while (rc == IMG_OK && !s->done)
		rc = bz_batch(s);
	sc->usize = s->uout;
	for (int t = 0; t < BZ_MAX_THREADS; t++) {
		free(s->w[t].syn);
		free(s->w[t].scratch);
	}
	zs_input_free(&s->in);
	free(s);
	return rc;
}

/* ---- the decoder ------------------------------------------------------------------- */

struct bz_dec {
	const char *name;
	struct zs_input in;  /* whole: the compressed data */
	bz_stream z;
	int live;            /* z is set up */
	int whole;           /* decoding the real streams from the start, not one block */
	int in_stream;       /* whole: a stream started and its end was not seen */
	uint64_t streams;    /* whole: streams started */
	int finished;        /* nothing more to decode */
	uint8_t *syn;        /* a block: its one-block stream */
	size_t syn_len;
	uint64_t start;      /* a block: absolute bit of its magic */
	uint64_t nbits;
};

static void bz_close(void *dp)
{
	struct bz_dec *d = dp;
	if (d->live)
		BZ2_bzDecompressEnd(&d->z);
	zs_input_free(&d->in);
	free(d->syn);
	free(d);
}

/* (Re)start libbz2 for a stream at compressed byte at. */
static int bz_init(struct bz_dec *d, uint64_t at, img_err *err)
{
	if (d->live)
		BZ2_bzDecompressEnd(&d->z);
	memset(&d->z, 0, sizeof d->z);
	d->live = 0;
	int brc = BZ2_bzDecompressInit(&d->z, 0, 0);
	if (brc == BZ_MEM_ERROR)
		return bz_nomem(err, d->name);
	if (brc != BZ_OK)
		return bz_corrupt(err, d->name, at, bz_error_name(brc));
	d->live = 1;
	return IMG_OK;
}

/* Whole: at a stream boundary, start the next stream, or end, or refuse trailing garbage. */
static int bz_next_stream(struct bz_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, 3, err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos;
	size_t avail = d->in.end - d->in.pos;
	/* "B" or "BZ" at the very end is a cut stream: libbz2 reports it truncated. */
	if (d->streams == 0 || (avail > 0 && memcmp(p, "BZh", avail < 3 ? avail : 3) == 0)) {
		d->in_stream = 1;
		d->streams++;
		return bz_init(d, zs_input_at(&d->in), err);
	}
	rc = zs_input_finish(&d->in, d->name, "bzip2", "bzip2 stream", err);
	d->finished = rc == IMG_OK;
	return rc;
}

/* Whole: run libbz2 once over the visible input into dst. */
static int bz_step(struct bz_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	int rc = zs_input_fill(&d->in, 1, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	unsigned in_len = (unsigned)(avail < CODEC_MAX_STEP ? avail : CODEC_MAX_STEP);
	unsigned out_len = (unsigned)(room < CODEC_MAX_STEP ? room : CODEC_MAX_STEP);
	d->z.next_in = (char *)d->in.buf + d->in.pos;
	d->z.avail_in = in_len;
	d->z.next_out = (char *)dst;
	d->z.avail_out = out_len;
	int brc = BZ2_bzDecompress(&d->z);
	size_t used = in_len - d->z.avail_in;
	*made = out_len - d->z.avail_out;
	d->in.pos += used;
	uint64_t at = zs_input_at(&d->in);
	if (brc == BZ_STREAM_END) {
		d->in_stream = 0;
		return IMG_OK;
	}
	if (brc == BZ_MEM_ERROR)
		return bz_nomem(err, d->name);
	if (brc != BZ_OK)
		return bz_corrupt(err, d->name, at, bz_error_name(brc));
	if (used > 0 || *made > 0)
		return IMG_OK;
	if (avail == 0)
		return bz_truncated(err, d->name, at);
	return bz_corrupt(err, d->name, at, "the decoder made no progress");
}

/* A block: decode its one-block stream into dst. */
static int bz_block_step(struct bz_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	unsigned out_len = (unsigned)(room < CODEC_MAX_STEP ? room : CODEC_MAX_STEP);
	d->z.next_out = (char *)dst;
	d->z.avail_out = out_len;
	int brc = BZ2_bzDecompress(&d->z);
	*made = out_len - d->z.avail_out;
	uint64_t at = bz_fail_byte(d->start, d->nbits, d->syn_len - d->z.avail_in);
	if (brc == BZ_STREAM_END)
		d->finished = 1;
	else if (brc == BZ_MEM_ERROR)
		return bz_nomem(err, d->name);
	else if (brc != BZ_OK)
		return bz_corrupt(err, d->name, at, bz_error_name(brc));
	else if (d->z.avail_in == 0 && d->z.avail_out > 0)
		return bz_corrupt(err, d->name, at, bz_error_name(BZ_UNEXPECTED_EOF));
	return IMG_OK;
}

static int bz_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct bz_dec *d = dp;
	*got = 0;
	while (*got < cap && !d->finished) {
		size_t made = 0;
		int rc = !d->whole    ? bz_block_step(d, dst + *got, cap - *got, &made, err)
			 : d->in_stream ? bz_step(d, dst + *got, cap - *got, &made, err)
					: bz_next_stream(d, err);
		*got += made;
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

/* Read the block's bytes and build its one-block stream. */
static int bz_load_block(struct bz_dec *d, img_rsrc *raw, const struct zs_point *p, int level,
			 img_err *err)
{
	size_t want = (size_t)(((p->bits & 7) + d->nbits + 7) / 8) + 1, got = 0;
	uint8_t *src = calloc(1, want);
	d->syn = malloc(bz_synth_cap(level));
	if (!src || !d->syn) {
		free(src);
		return bz_nomem(err, d->name);
	}
	int rc = rsrc_pread(raw, src, want, p->cin, &got, err);
	if (rc == IMG_OK && got + 1 < want)
		rc = bz_truncated(err, d->name, p->cin + got);
	if (rc == IMG_OK)
		d->syn_len = bz_synth(d->syn, src, p->bits & 7, d->nbits, level, p->aux);
	free(src);
	return rc;
}

/* Position d at the block point p: its one-block stream, ready to decode. */
static int bz_start_block(struct bz_dec *d, img_rsrc *raw, const struct zs_point *p, img_err *err)
{
	d->start = p->cin * 8 + (p->bits & 7);
	d->nbits = p->aux2;
	int rc = bz_load_block(d, raw, p, (int)(p->bits >> 3), err);
	if (rc == IMG_OK)
		rc = bz_init(d, p->cin, err);
	if (rc != IMG_OK)
		return rc;
	d->z.next_in = (char *)d->syn;
	d->z.avail_in = (unsigned)d->syn_len;
	return IMG_OK;
}

static int bz_start(const struct zs_start *st, void **out, img_err *err)
{
	const struct zs_point *p = st->p;
	int level = (int)(p->bits >> 3);
	int at_block = p->bits != 0 || p->cin != 0;
	if ((!at_block && p->uout != 0) ||
	    (at_block && (!st->raw || level < 1 || level > 9 || p->aux2 < 80 || p->aux2 > bz_block_max_bits(level))))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: bzip2: the access point at decoded byte %llu is damaged", st->name,
				   (unsigned long long)p->uout);
	struct bz_dec *d = calloc(1, sizeof *d);
	if (!d)
		return bz_nomem(err, st->name);
	d->name = st->name;
	d->whole = !at_block;
	int rc = at_block ? bz_start_block(d, st->raw, p, err) : zs_input_start(&d->in, st, 0, 0, err);
	if (rc != IMG_OK) {
		bz_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

const struct zs_ops zs_bzip2_ops = { .scan = bz_scan, .read = bz_read, .close = bz_close, .self_checked = 1,
				     .start = bz_start };

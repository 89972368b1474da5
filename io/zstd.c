/*
 * io/zstd.c - zstd: the codec's one decoder (zseek.h, zs_ops.start), used
 * for the sequential stream and random reads alike (libzstd
 * ZSTD_decompressStream, decoding straight into the caller's buffer and
 * reading its input in place: from the layer below through peek/consume, or
 * from an img_rsrc). The scan that finds the access points, which decodes
 * block by block with libzstd's buffer-less API to make checkpoints inside
 * big frames, is io/zstd_scan.c; it resumes this decoder to verify them.
 *
 * Started whole (the stream) it goes on through every frame: frames follow
 * each other (zstd -T, pzstd, `cat a.zst b.zst`); skippable frames (magic
 * 0x184D2A50..5F, pzstd writes one first) are skipped by libzstd itself. At
 * each frame boundary the next 4 bytes must be a zstd or skippable magic;
 * otherwise zero bytes up to the end of the input are padding and any other
 * byte is IMG_E_TRAILING with its offset. An input that ends inside a frame
 * is IMG_E_TRUNCATED.
 *
 * Started at an access point (a random read, or one frame of data decoded
 * in parallel) it decodes to the end of that frame or to the next point: a
 * frame start (no state; aux2 = the frame's compressed size), or a
 * checkpoint inside a frame, whose state is the dictionary that stands for
 * the window there. A checkpoint's state, before packing with zstd: u8 1,
 * u8 window descriptor, u16 header length, u32 content length, u32 runs;
 * the dictionary header; per run two LEB128 numbers (the gap since the
 * previous run's end, or the content's start, and the run's length); the
 * runs' bytes. The decoder loads header + content (zeros but the runs) as a
 * dictionary by reference and is fed a 6-byte frame header (magic,
 * descriptor 0x00, the window descriptor) then the original blocks.
 * Decoders started mid-frame check nothing of the frame: the view checks
 * every span against the CRC-32 the scan took (self_checked 0).
 *
 * A whole unit in memory (a frame and the skippable frames before it:
 * pzstd's units, io/zpar.c) is also decoded in one call straight into the
 * caller's buffer (zs_ops.unit_decode), with no window buffer.
 *
 * Windows up to 128 MiB are accepted, the limit of the zstd tool itself
 * (windowLog 27): imgbk stays within its memory bound on a rescue stick. A
 * frame made with --long=28..31 is refused with the command that decodes it.
 *
 * Not here: detecting zstd (codecs.c), the legacy v0.x formats,
 * dictionaries other than checkpoints'.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_DCtx_loadDictionary_byReference */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec_util.h"
#include "zstd_blocks.h"
#include "zstd_dec.h"

/* Input per ZSTD_decompressStream call: libzstd does not say where in its
 * input an error is, so errors are placed at the start of the step. */
#define ZSTD_STEP ((size_t)128 << 10)
#define ZSTD_INPUT_CAP ((size_t)256 << 10)  /* compressed-input buffer of a decoder over an img_rsrc */

int zst_lib_error(img_err *err, const char *name, uint64_t at, size_t ret, enum zst_fix fix)
{
	ZSTD_ErrorCode code = ZSTD_getErrorCode(ret);
	if (code == ZSTD_error_memory_allocation)
		return img_err_set(err, IMG_E_IO, ENOMEM, 1, at,
				   "%s: zstd: out of memory in libzstd at byte %llu of the compressed stream",
				   name, (unsigned long long)at);
	if (code == ZSTD_error_frameParameter_windowTooLarge)
		return zst_corrupt(err, name, at,
				   fix == ZST_FIX_PIPE
					   ? "the frame needs a window over 128 MiB (made with zstd --long=28 or more); "
					     "decode it with: zstd --long=31 -dc IMAGE | imgbk APPLET -"
					   : "the frame needs a window over 128 MiB (made with zstd --long=28 or more); "
					     "decompress it first: zstd --long=31 -dc IMAGE > IMAGE.img, then mount IMAGE.img");
	return zst_corrupt(err, name, at, ZSTD_getErrorName(ret));
}

ZSTD_DStream *zst_new_dstream(void)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	if (ds)
		ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_LIMIT);
	return ds;
}

/* ---- checkpoint dictionaries' buffers ----------------------------------------------- */

#define ZSTD_DICT_MAPPED ((size_t)8 << 20)
#define ZSTD_DICT_PAGE ((size_t)4096)

/* Free a dictionary buffer of cap bytes (dict_room made it). */
static void dict_free(uint8_t *dict, size_t cap)
{
	if (dict && cap > ZSTD_DICT_MAPPED)
		munmap(dict, cap);
	else
		free(dict);
}

/* ---- contexts kept for the next decoder ------------------------------------------ */

/* Decoder contexts and dictionary buffers of closed decoders, kept for the
 * next ones: a new context allocates and faults in its window, and a read
 * at random opens a decoder each time. A process-wide cache (any view may
 * use any entry); the contexts hold no state of their last frame. */
#define ZSTD_POOL 4
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zst_pooled {
	ZSTD_DStream *ds;
	uint8_t *dict;
	size_t cap;
} pool[ZSTD_POOL];
static size_t pool_n;

static void pool_take(ZSTD_DStream **ds, uint8_t **dict, size_t *cap)
{
	*ds = NULL;
	*dict = NULL;
	*cap = 0;
	pthread_mutex_lock(&pool_lock);
	if (pool_n > 0) {
		struct zst_pooled *e = &pool[--pool_n];
		*ds = e->ds;
		*dict = e->dict;
		*cap = e->cap;
	}
	pthread_mutex_unlock(&pool_lock);
}

static void pool_give(ZSTD_DStream *ds, uint8_t *dict, size_t cap)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_n < ZSTD_POOL && ds) {
		pool[pool_n++] = (struct zst_pooled){ ds, dict, cap };
		ds = NULL;
		dict = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	ZSTD_freeDStream(ds);
	dict_free(dict, cap);
}

/* ---- checkpoint states ----------------------------------------------------------- */

static int get_leb(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned sh = 0; sh < 64; sh += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7F) << sh;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* Make *dict (*cap bytes) hold at least n. @return 1, or 0 out of memory.
 * A dictionary over ZSTD_DICT_MAPPED bytes (a --long window) is a mapping
 * of its own (dict_clear). */
static int dict_room(uint8_t **dict, size_t *cap, size_t n)
{
	if (*cap >= n)
		return 1;
	if (n > ZSTD_DICT_MAPPED) {
		n = (n + ZSTD_DICT_PAGE - 1) & ~(ZSTD_DICT_PAGE - 1);
		uint8_t *nd = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (nd == MAP_FAILED)
			return 0;
		madvise(nd, n, MADV_HUGEPAGE);  /* fewer faults where runs are put again */
		dict_free(*dict, *cap);
		*dict = nd;
		*cap = n;
		return 1;
	}
	uint8_t *nd = realloc(*dict, n);
	if (!nd)
		return 0;
	*dict = nd;
	*cap = n;
	return 1;
}

/* Zero n bytes at p inside a dictionary of cap bytes: a mapped one gives its
 * whole pages back instead (they read as zeros; only the pages the runs
 * then fill are touched again: a --long=27 window is 128 MiB, of which the
 * matches after a checkpoint copy a few MiB at most). */
static void dict_clear(uint8_t *dict, size_t cap, uint8_t *p, size_t n)
{
	uint8_t *a = (uint8_t *)(((uintptr_t)p + ZSTD_DICT_PAGE - 1) & ~(uintptr_t)(ZSTD_DICT_PAGE - 1));
	if (cap <= ZSTD_DICT_MAPPED || a >= p + n) {
		memset(p, 0, n);
		return;
	}
	memset(p, 0, (size_t)(a - p));
	size_t whole = (size_t)(p + n - a) & ~(ZSTD_DICT_PAGE - 1);
	if (madvise(a, whole, MADV_DONTNEED) != 0)
		memset(a, 0, whole);
	memset(a + whole, 0, (size_t)(p + n - (a + whole)));
}

/* Check the runs' table at p (runs entries, within content bytes) and that
 * their bytes are the rest up to end. @return 1 when it holds. */
static int runs_valid(const uint8_t *p, const uint8_t *end, uint32_t runs, uint64_t content)
{
	uint64_t total = 0, at = 0, gap, rl;
	for (uint32_t i = 0; i < runs; i++) {
		if (get_leb(&p, end, &gap) || get_leb(&p, end, &rl) || gap > content - at || rl > content - at - gap)
			return 0;
		at += gap + rl;
		total += rl;
	}
	return (uint64_t)(end - p) == total;
}

/* Lay the runs (table at p, checked by runs_valid) over the zeroed content at d. */
static void runs_place(const uint8_t *p, const uint8_t *end, uint32_t runs, uint8_t *d)
{
	const uint8_t *bytes = p;
	uint64_t gap, rl, at = 0;
	for (uint32_t i = 0; i < runs; i++) {
		get_leb(&bytes, end, &gap);
		get_leb(&bytes, end, &rl);
	}
	for (uint32_t i = 0; i < runs; i++) {
		get_leb(&p, end, &gap);
		get_leb(&p, end, &rl);
		memcpy(d + at + gap, bytes, (size_t)rl);
		bytes += rl;
		at += gap + rl;
	}
}

/* The unpacked state raw (n bytes) as the dictionary it stands for, in *dict (grown as needed). */
static int state_to_dict(const uint8_t *raw, size_t n, uint8_t **dict, size_t *dict_cap, size_t *dict_len,
			 uint8_t *window_byte)
{
	const uint8_t *p = raw + 12, *end = raw + n;
	size_t head = raw[2] | (size_t)raw[3] << 8;
	uint32_t content = codec_le32(raw + 4), runs = codec_le32(raw + 8);
	*window_byte = raw[1];
	if (raw[0] != 1 || head > ZB_DICT_HEAD_MAX || (size_t)(end - p) < head || content > ZS_MAX_STATE ||
	    !runs_valid(p + head, end, runs, content))
		return IMG_E_CORRUPT;
	if (!dict_room(dict, dict_cap, head + (size_t)content))
		return IMG_E_IO;
	memcpy(*dict, p, head);
	dict_clear(*dict, *dict_cap, *dict + head, content);
	runs_place(p + head, end, runs, *dict + head);
	*dict_len = head + content;
	return IMG_OK;
}

/* Unpack a state into the dictionary it stands for. @return IMG_OK, IMG_E_CORRUPT or IMG_E_IO (memory). */
static int unpack_state(const uint8_t *state, size_t len, uint8_t **dict, size_t *dict_cap, size_t *dict_len,
			uint8_t *window_byte)
{
	unsigned long long raw_len = ZSTD_getFrameContentSize(state, len);
	if (raw_len == ZSTD_CONTENTSIZE_UNKNOWN || raw_len == ZSTD_CONTENTSIZE_ERROR || raw_len < 12 ||
	    raw_len > ZS_MAX_STATE)
		return IMG_E_CORRUPT;
	uint8_t *raw = malloc((size_t)raw_len);
	if (!raw)
		return IMG_E_IO;
	size_t n = ZSTD_decompress(raw, (size_t)raw_len, state, len);
	int rc = IMG_E_CORRUPT;
	if (!ZSTD_isError(n) && n == raw_len)
		rc = state_to_dict(raw, n, dict, dict_cap, dict_len, window_byte);
	else if (ZSTD_isError(n) && ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation)
		rc = IMG_E_IO;
	free(raw);
	return rc;
}

/* ---- the decoder ------------------------------------------------------------------ */

struct zst_dec {
	const char *name;
	struct zs_input in;
	ZSTD_DStream *ds;
	uint8_t *dict;         /* checkpoint: the dictionary, loaded by reference */
	size_t dict_cap, dict_len;
	uint8_t head[6];       /* checkpoint: the frame header fed before the blocks */
	size_t head_left;
	uint64_t left;         /* bytes until the next point (UINT64_MAX: no limit) */
	int whole;             /* go on through every frame, then the end-of-data rule */
	int in_frame;          /* a frame started and its end was not seen */
	int finished;          /* nothing more to decode */
	int direct;            /* the first frame is decoded block by block into the caller's
				* buffer (zs_start.contiguous), not through a window buffer */
	int started;           /* a read was made */
	int frame_fresh;       /* direct: at a frame start, skippable frames not looked for yet */
	enum zst_fix fix;
	int borrowed;          /* ds is the caller's */
};

void zst_close(void *dp)
{
	struct zst_dec *d = dp;
	zs_input_free(&d->in);
	if (d->borrowed)
		dict_free(d->dict, d->dict_cap);
	else
		pool_give(d->ds, d->dict, d->dict_cap);
	free(d);
}

/* Load a checkpoint's state as the decoder's dictionary and queue the frame header to feed. */
static int load_checkpoint(struct zst_dec *d, uint64_t cin, const uint8_t *state, size_t state_len,
			   img_err *err)
{
	size_t dict_len = 0;
	uint8_t wb = 0;
	int rc = unpack_state(state, state_len, &d->dict, &d->dict_cap, &dict_len, &wb);
	if (rc == IMG_E_IO)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", d->name);
	d->dict_len = dict_len;
	if (rc != IMG_OK || ZSTD_isError(d->direct ? ZSTD_decompressBegin_usingDict(d->ds, d->dict, dict_len)
						   : ZSTD_DCtx_loadDictionary_byReference(d->ds, d->dict, dict_len)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, cin,
				   "%s: zstd: the saved checkpoint at compressed byte %llu is damaged (index)",
				   d->name, (unsigned long long)cin);
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	memcpy(d->head, magic, 4);
	d->head[4] = 0;
	d->head[5] = wb;
	d->head_left = 6;
	return IMG_OK;
}

/* A decoder with a context (borrowed, else from the pool or new) and, at a checkpoint, its dictionary. */
static int dec_new(const char *name, const struct zs_point *p, ZSTD_DStream *borrow, int direct,
		   struct zst_dec **out, img_err *err)
{
	struct zst_dec *d = calloc(1, sizeof *d);
	if (d && borrow) {
		d->ds = borrow;
		d->borrowed = 1;
	} else if (d) {
		pool_take(&d->ds, &d->dict, &d->dict_cap);
	}
	if (d && d->ds) {
		ZSTD_DCtx_reset(d->ds, ZSTD_reset_session_only);
		ZSTD_DCtx_refDDict(d->ds, NULL);  /* the last dictionary goes */
	}
	if (!d || !(d->ds || (d->ds = zst_new_dstream()))) {
		free(d);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", name);
	}
	d->name = name;
	d->in_frame = 1;
	d->direct = direct;
	int rc = p->state ? load_checkpoint(d, p->cin, p->state, p->state_len, err) : IMG_OK;
	if (rc == IMG_OK && direct && !p->state && ZSTD_isError(ZSTD_decompressBegin(d->ds)))
		rc = img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", name);
	d->frame_fresh = direct && !p->state;
	if (rc != IMG_OK) {
		zst_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

int zst_dec_borrowing(img_rsrc *raw, const char *name, uint64_t cin, const uint8_t *state, size_t state_len,
		      uint64_t limit, ZSTD_DStream *borrow, struct zst_dec **out, img_err *err)
{
	struct zs_point p = { .cin = cin, .state = (uint8_t *)state, .state_len = (uint32_t)state_len };
	struct zst_dec *d;
	int rc = dec_new(name, &p, borrow, 0, &d, err);
	if (rc != IMG_OK)
		return rc;
	d->left = limit;
	d->fix = ZST_FIX_FILE;
	rc = zs_input_init(&d->in, raw, cin, ZSTD_INPUT_CAP, err);
	if (rc != IMG_OK) {
		zst_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int zst_start(const struct zs_start *st, void **out, img_err *err)
{
	if (st->sc)  /* the scan is zs_ops.scan (zstd_scan.c), which decodes block by block */
		return img_err_set(err, IMG_E_IO, 0, 0, 0, "%s: zstd: no scan mode in the stream decoder", st->name);
	struct zst_dec *d;
	int rc = dec_new(st->name, st->p, NULL, st->contiguous && !st->whole, &d, err);
	if (rc != IMG_OK)
		return rc;
	d->whole = st->whole;
	d->fix = st->up ? ZST_FIX_PIPE : ZST_FIX_FILE;
	d->left = !st->whole && st->next_uout > st->p->uout ? st->next_uout - st->p->uout : UINT64_MAX;
	rc = zs_input_start(&d->in, st, st->p->cin, ZSTD_INPUT_CAP, err);
	if (rc != IMG_OK) {
		zst_close(d);
		return rc;
	}
	*out = d;
	return IMG_OK;
}

static int is_frame_magic(uint32_t m)
{
	return m == ZSTD_FRAME_MAGIC || (m & ZSTD_SKIPPABLE_MASK) == ZSTD_SKIPPABLE_MAGIC;
}

/* A frame ended (whole mode): let the next one start, or end, or refuse trailing garbage. */
static int next_frame(struct zst_dec *d, img_err *err)
{
	int rc = zs_input_fill(&d->in, 4, err);
	if (rc != IMG_OK)
		return rc;
	const uint8_t *p = d->in.buf + d->in.pos;
	size_t avail = d->in.end - d->in.pos;
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	/* a cut frame magic at the very end: libzstd reports the frame truncated */
	int cut = avail > 0 && avail < 4 && memcmp(p, magic, avail) == 0;
	if (cut || (avail >= 4 && is_frame_magic(codec_le32(p)))) {
		d->in_frame = 1;
		return IMG_OK;
	}
	rc = zs_input_finish(&d->in, d->name, "zstd", "zstd frame", err);
	d->finished = rc == IMG_OK;
	return rc;
}

/* Feed a checkpoint's frame header (it makes no bytes); direct decoding
 * feeds it itself. */
static int feed_head(struct zst_dec *d, img_err *err)
{
	while (d->head_left && !d->direct) {
		ZSTD_inBuffer ib = { d->head + 6 - d->head_left, d->head_left, 0 };
		ZSTD_outBuffer ob = { NULL, 0, 0 };
		size_t ret = ZSTD_decompressStream(d->ds, &ob, &ib);
		if (ZSTD_isError(ret))
			return zst_lib_error(err, d->name, zs_input_at(&d->in), ret, d->fix);
		if (ib.pos == 0)
			return zst_corrupt(err, d->name, zs_input_at(&d->in), "checkpoint frame header refused");
		d->head_left -= ib.pos;
	}
	return IMG_OK;
}

/* One ZSTD_decompressStream call over the visible input into dst. */
static int decode_step(struct zst_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	*made = 0;
	int rc = zs_input_fill(&d->in, 1, err);
	if (rc != IMG_OK)
		return rc;
	size_t avail = d->in.end - d->in.pos;
	uint64_t at = zs_input_at(&d->in);
	ZSTD_inBuffer ib = { d->in.buf + d->in.pos, avail < ZSTD_STEP ? avail : ZSTD_STEP, 0 };
	ZSTD_outBuffer ob = { dst, room, 0 };
	size_t ret = ZSTD_decompressStream(d->ds, &ob, &ib);
	if (ZSTD_isError(ret))
		return zst_lib_error(err, d->name, at, ret, d->fix);
	d->in.pos += ib.pos;
	*made = ob.pos;
	if (ret == 0) {
		d->in_frame = 0;
		d->finished = !d->whole;
		return IMG_OK;
	}
	if (ib.pos > 0 || ob.pos > 0)
		return IMG_OK;
	if (avail == 0)
		return zst_truncated(err, d->name, at);
	return zst_corrupt(err, d->name, at, "the decoder made no progress");
}

/* Direct decoding's end, at the end of its frame: what follows (the next
 * frames of a multi-frame segment) goes through the streaming decoder,
 * without the checkpoint's dictionary. */
static void direct_end(struct zst_dec *d)
{
	d->direct = 0;
	d->in_frame = 0;
	d->finished = !d->whole;
	ZSTD_DCtx_reset(d->ds, ZSTD_reset_session_only);
	ZSTD_DCtx_refDDict(d->ds, NULL);
}

/* Direct decoding at a frame's start (nothing fed since
 * ZSTD_decompressBegin): step over skippable frames (pzstd writes one
 * before each frame; libzstd would want the content in one piece, and it
 * may be as big as 4 GiB). */
static int direct_skip(struct zst_dec *d, img_err *err)
{
	for (;;) {
		int rc = zs_input_fill(&d->in, 8, err);
		if (rc != IMG_OK)
			return rc;
		const uint8_t *p = d->in.buf + d->in.pos;
		if (d->in.end - d->in.pos < 8 || (codec_le32(p) & ZSTD_SKIPPABLE_MASK) != ZSTD_SKIPPABLE_MAGIC)
			return IMG_OK;  /* a frame, or damage libzstd reports */
		uint64_t skip = 8 + (uint64_t)codec_le32(p + 4);
		while (skip > 0) {
			rc = zs_input_fill(&d->in, 1, err);
			if (rc != IMG_OK)
				return rc;
			size_t avail = d->in.end - d->in.pos;
			if (avail == 0)
				return zst_truncated(err, d->name, zs_input_at(&d->in));
			size_t k = avail < skip ? avail : (size_t)skip;
			d->in.pos += k;
			skip -= k;
		}
	}
}

/* One piece of the first frame (direct decoding): the frame header, a block
 * header, a block or the checksum, as libzstd's buffer-less API asks for
 * it, a block decoded straight into dst. The caller's buffers follow each
 * other and stay as they are (zs_start.contiguous), so the bytes before dst
 * are the window; a block bigger than room is damage (a segment ends at a
 * block's end). */
static int direct_step(struct zst_dec *d, uint8_t *dst, size_t room, size_t *made, img_err *err)
{
	*made = 0;
	size_t need = ZSTD_nextSrcSizeToDecompress(d->ds);
	if (need == 0) {
		direct_end(d);
		return IMG_OK;
	}
	if (d->frame_fresh) {
		d->frame_fresh = 0;
		int rc = direct_skip(d, err);
		if (rc != IMG_OK)
			return rc;
	}
	uint64_t at = zs_input_at(&d->in);
	const uint8_t *src;
	if (d->head_left) {  /* a checkpoint's frame header, fed in libzstd's two steps */
		if (need > d->head_left)
			return zst_corrupt(err, d->name, at, "checkpoint frame header refused");
		src = d->head + 6 - d->head_left;
	} else {
		int rc = zs_input_fill(&d->in, need, err);
		if (rc != IMG_OK)
			return rc;
		if (d->in.end - d->in.pos < need)
			return zst_truncated(err, d->name, at + (d->in.end - d->in.pos));
		src = d->in.buf + d->in.pos;
	}
	size_t r = ZSTD_decompressContinue(d->ds, dst, room, src, need);
	if (ZSTD_isError(r))
		return zst_lib_error(err, d->name, at, r, d->fix);
	if (d->head_left)
		d->head_left -= need;
	else
		d->in.pos += need;
	*made = r;
	return IMG_OK;
}

/* A first read that does not ask for the whole segment: a block may not
 * fit, so the decoder goes the streaming way, through its window. */
static int direct_abandon(struct zst_dec *d, img_err *err)
{
	d->direct = 0;
	ZSTD_DCtx_reset(d->ds, ZSTD_reset_session_only);
	ZSTD_DCtx_refDDict(d->ds, NULL);
	if (d->head_left && ZSTD_isError(ZSTD_DCtx_loadDictionary_byReference(d->ds, d->dict, d->dict_len)))
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: zstd: out of memory", d->name);
	return IMG_OK;
}

int zst_read(void *dp, uint8_t *dst, size_t cap, size_t *got, img_err *err)
{
	struct zst_dec *d = dp;
	*got = 0;
	if (cap > d->left)
		cap = (size_t)d->left;
	if (d->direct && !d->started && cap < d->left) {
		int rc = direct_abandon(d, err);
		if (rc != IMG_OK)
			return rc;
	}
	d->started = 1;
	int rc = feed_head(d, err);
	while (rc == IMG_OK && *got < cap && !d->finished) {
		size_t made = 0;
		if (d->direct)
			rc = direct_step(d, dst + *got, cap - *got, &made, err);
		else
			rc = d->in_frame ? decode_step(d, dst + *got, cap - *got, &made, err) : next_frame(d, err);
		*got += made;
	}
	d->left -= d->left == UINT64_MAX ? 0 : *got;
	return rc;
}

/* ---- a whole unit in one call (zs_ops.unit_decode) ----------------------------- */

/* One frame and the skippable frames before it, in memory: libzstd's
 * single-pass decoding writes straight into dst (the streaming decoder
 * decodes into its window buffer and copies out). */
static uint64_t zst_unit_bound(const uint8_t *src, size_t n)
{
	/* single-pass decoding needs no window, so libzstd does not hold it to
	 * imgbk's limit: a frame over it goes to the streaming decoder, which
	 * refuses it with the command that decodes it */
	for (size_t at = 0; at < n;) {
		ZSTD_frameHeader fh;
		size_t len = ZSTD_findFrameCompressedSize(src + at, n - at);
		if (ZSTD_isError(len) || ZSTD_getFrameHeader(&fh, src + at, n - at) != 0 ||
		    (fh.frameType == ZSTD_frame && fh.windowSize > (1ULL << ZSTD_WINDOW_LOG_LIMIT)))
			return 0;
		at += len;
	}
	unsigned long long bound = ZSTD_decompressBound(src, n);
	return bound == ZSTD_CONTENTSIZE_ERROR ? 0 : (uint64_t)bound;
}

static int zst_unit_decode(void **ctx, const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *got)
{
	*got = 0;
	if (!*ctx && !(*ctx = zst_new_dstream()))
		return IMG_E_IO;
	size_t ret = ZSTD_decompressDCtx(*ctx, dst, cap, src, n);
	if (ZSTD_isError(ret))
		return ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ? IMG_E_IO : IMG_E_CORRUPT;
	*got = ret;
	return IMG_OK;
}

static void zst_unit_ctx_free(void *ctx)
{
	ZSTD_freeDCtx(ctx);
}

const struct zs_ops zs_zstd_ops = {
	.scan = zs_zstd_scan, .read = zst_read, .close = zst_close, .start = zst_start,
	.unit_bound = zst_unit_bound, .unit_decode = zst_unit_decode, .unit_ctx_free = zst_unit_ctx_free,
};

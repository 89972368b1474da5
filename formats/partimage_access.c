/*
 * formats/partimage_access.c - random reads of a partimage image (uncompressed
 * volumes only). The logical stream is the volume payloads one after the
 * other (each volume file minus its 512-byte header); byte x of the used-block
 * data D sits at logical data_start + x + 16 * floor(x / 65536) (a CHK record
 * follows every 65536 data bytes), and x = rank * block_size + offset in the
 * block, the rank coming from a rank index over the bitmap (used blocks before
 * every K-th block). A logical offset maps to volume i and file offset
 * 512 + (logical - start_i), so one read may be split across volumes: io/
 * reads the volumes as one range (rsrc_concat, each piece less its header).
 *
 * With verification on, every CHK chunk (65536 data bytes + its CHK record,
 * zlib CRC-32) is checked the first time a read touches it; the result is kept
 * in a bit per chunk (good or bad, set atomically: reads come from many
 * threads). The final partial chunk has no CHK record: the tail's qwCRC, a
 * byte sum of the whole logical stream, is its only check, so the first read
 * that touches it sums the whole image once (check_final_chunk); a mismatch
 * fails the reads of that chunk only (the other chunks have their CRCs).
 *
 * The payload saved in the index file (blkindex.c), little-endian:
 *   0  8  "PIMGRA01"               32  8  used blocks
 *   8  4  K (blocks per entry)      40  8  bits of the bitmap (nbits)
 *  12  4  volumes (n)               48  8  block size
 *  16  8  identificator             56  .. n x { file size, mtime (ns), logical start } (u64 each)
 *  24  8  data start (logical)          .. nbits / K + 1 rank entries (u64)
 * The generic identity of the index covers volume 0 only; the sizes and
 * mtimes of the other volumes are here, compared at load: any difference
 * (or an entry that does not add up) and the rank index is built again.
 *
 * Not here: the layout's rules (partimage_layout.c, shared with the walk), the
 * sequential walk (partimage.c), the index file (blkindex.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "partimage.h"

#define PI_RA_MAGIC "PIMGRA01"
#define PI_RA_HEAD 56
#define PI_RA_VOL 24
/* Bytes read at once while summing the image for the tail's qwCRC. */
#define SUM_PIECE ((size_t)1 << 20)

/* Record an error on `err` naming volume file `path` and the byte in it. */
static int ra_fail(img_err *err, int code, const char *path, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int ra_fail(img_err *err, int code, const char *path, uint64_t at, const char *fmt, ...)
{
	char what[400], b[40];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	img_fmt_thousands(b, sizeof b, at);
	return img_err_set(err, code, 0, 1, at, "%s: partimage: %s at byte %s of this volume file",
			   path, what, b);
}

/* ---- the volume table ------------------------------------------------------ */

/* The volume holding logical byte L: the last one starting at or before it
 * (so an empty volume is passed over). */
static uint32_t rvol_of(const struct pi_state *st, uint64_t L)
{
	uint32_t lo = 0, hi = st->nrvols;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (st->rvols[mid].start <= L)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Read len logical bytes at L, crossing volume boundaries (st->set, the
 * volume payloads one after the other). Thread-safe. A short read names the
 * volume file where the bytes end. */
static int lpread(img_image *im, struct pi_state *st, void *buf, size_t len, uint64_t L,
		  const char *what, img_err *err)
{
	(void)im;
	size_t got = 0;
	int rc = rsrc_pread(st->set, buf, len, L, &got, err);
	if (rc != IMG_OK || got == len)
		return rc;
	const struct pi_rvol *r = &st->rvols[rvol_of(st, L + got)];
	uint64_t from = L > r->start ? L : r->start;  /* this read's first byte in that volume */
	return ra_fail(err, IMG_E_TRUNCATED, r->path, PI_VOLUME_HEADER + L + got - r->start,
		       "image truncated in %s (%zu of %zu bytes present)", what, (size_t)(L + got - from),
		       (size_t)(L + len - from));
}

/* The volume payloads as one range: volume 0 through im->rs (decoded when
 * it is compressed), the others from their files, each less its header. */
static int open_set(img_image *im, struct pi_state *st)
{
	struct rsrc_piece *pcs = calloc(st->nrvols, sizeof *pcs);
	if (!pcs)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	for (uint32_t i = 0; i < st->nrvols; i++) {
		pcs[i].path = st->rvols[i].path;
		pcs[i].src = i == 0 ? im->rs : NULL;
		pcs[i].skip = PI_VOLUME_HEADER;
	}
	int rc = rsrc_concat(pcs, st->nrvols, &im->err, &st->set);
	free(pcs);
	const struct pi_rvol *last = &st->rvols[st->nrvols - 1];
	if (rc == IMG_OK && rsrc_size(st->set) != last->start + last->size)
		rc = img_err_set(&im->err, IMG_E_CORRUPT, 0, 0, 0,
				 "%s: partimage: the volume files changed while the image was open",
				 im->path);
	return rc;
}

static int add_rvol(img_image *im, struct pi_state *st, const char *path, uint64_t file_size,
		    int64_t mtime_ns)
{
	struct pi_rvol *n = realloc(st->rvols, (st->nrvols + 1) * sizeof *n);
	char *p = strdup(path);
	if (!n || !p) {
		if (n)
			st->rvols = n;
		free(p);
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	}
	st->rvols = n;
	struct pi_rvol *r = &n[st->nrvols];
	r->path = p;
	r->start = st->nrvols ? n[st->nrvols - 1].start + n[st->nrvols - 1].size : 0;
	r->size = file_size - PI_VOLUME_HEADER;
	r->mtime_ns = mtime_ns;
	st->nrvols++;
	return IMG_OK;
}

static const char *codec_tool(const char *codec)
{
	if (!strcmp(codec, "lzma"))
		return "xz";
	return codec;  /* gzip, bzip2, zstd, xz, lz4: the tool has the codec's name */
}

/*
 * Volume 0 is compressed with `codec` (asked by the generic check of
 * formats/access.c before random_open): a codec with access points is read
 * through them (the other volumes, if any, must then be plain: open_rvol);
 * another is refused with the command that makes the image readable.
 */
int pi_reject_volume0(img_image *im, const char *codec, int seekable)
{
	return seekable ? IMG_OK : pi_reject_compressed(im, im->path, 0, codec);
}

int pi_reject_compressed(img_image *im, const char *name, uint32_t n, const char *codec)
{
	const struct pi_state *st = im->priv;
	const struct pi_vol *v = st->vol;
	const char *tool = codec_tool(codec);
	const char *slash = strrchr(v->base, '/');
	const char *file0 = slash ? slash + 1 : v->base;
	if (!v->suffix_at)  /* one file, no volume set */
		return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: partimage: a compressed image (%s) cannot be mounted; decompress "
				   "it first: %s -dc %s > IMAGE.pimg, then mount IMAGE.pimg", name, codec,
				   tool, name);
	return img_err_set(&im->err, IMG_E_FORMAT, 0, 0, 0,
			   "%s: partimage: volume %u is compressed (%s): an image whose volumes are "
			   "compressed cannot be mounted; decompress every volume first, e.g. "
			   "mkdir -p DIR && for v in %.*s[0-9][0-9][0-9]; do %s -dc \"$v\" > DIR/\"${v##*/}\"; "
			   "done (partimage reads uncompressed volumes too), then mount DIR/%s",
			   name, n, codec, (int)v->suffix_at, v->base, tool, file0);
}

/* Open volume n (n >= 1), check its header, add it to the table. */
static int open_rvol(img_image *im, struct pi_state *st, uint32_t n)
{
	struct pi_vol *v = st->vol;
	char name[1100], prev[1100];
	pi_vol_name(v, n, name, sizeof name);
	pi_vol_name(v, n - 1, prev, sizeof prev);
	struct rsrc_piece whole = { .path = name };
	img_rsrc *f = NULL;
	img_err open_err = { 0 };
	int rc = rsrc_concat(&whole, 1, &open_err, &f);
	if (rc == IMG_E_MISSING)
		return img_err_set(&im->err, IMG_E_MISSING, 0, 0, 0,
				   "%s: partimage: volume %u is missing: the image goes on after the end "
				   "of %s (or %s is truncated)", name, n, prev, prev);
	if (rc != IMG_OK)
		return img_err_set(&im->err, rc, open_err.sys_errno, 0, 0, "%s", open_err.msg);
	uint8_t h[PI_VOLUME_HEADER];
	size_t got = 0;
	rc = rsrc_pread(f, h, sizeof h, 0, &got, &im->err);
	for (size_t c = 0; img_codecs[c] && rc == IMG_OK; c++)
		if (got >= img_codecs[c]->magic_len && img_codecs[c]->bid(h, got))
			rc = pi_reject_compressed(im, name, n, img_codecs[c]->name);
	if (rc == IMG_OK && got < sizeof h)
		rc = img_err_set(&im->err, IMG_E_TRUNCATED, 0, 1, got,
				 "%s: partimage: volume truncated inside its 512-byte header (%zu bytes)",
				 name, got);
	if (rc == IMG_OK)
		rc = pi_check_volume_header(&im->err, name, h, n, &v->ident, 1);
	if (rc == IMG_OK) {
		uint64_t size;
		int64_t m;
		rsrc_identity(f, &size, &m);
		rc = add_rvol(im, st, name, size, m);
	}
	rsrc_close(f);
	return rc;
}

/*
 * The volume table: volume 0 (im->rs), then .001, .002, ... until their
 * payloads reach the end of the tail. For a set, the TAIL magic must then be
 * where the sizes put it, and name the last volume as the sequential reader
 * accepts it.
 */
static int open_rvols(img_image *im, struct pi_state *st)
{
	struct pi_vol *v = st->vol;
	uint64_t size0, raw0;
	int64_t m0;
	rsrc_identity(im->rs, &raw0, &m0);
	size0 = rsrc_size(im->rs);  /* decoded, when volume 0 is compressed */
	if (size0 < PI_VOLUME_HEADER)
		return img_err_set(&im->err, IMG_E_TRUNCATED, 0, 1, size0,
				   "%s: partimage: image truncated inside the 512-byte volume header",
				   im->path);
	int rc = add_rvol(im, st, im->path, size0, m0);
	uint64_t end = pi_logical_end(&st->lay);
	for (uint32_t n = 1; rc == IMG_OK && v->suffix_at && n != 0; n++) {
		const struct pi_rvol *last = &st->rvols[st->nrvols - 1];
		if (last->start + last->size >= end)
			break;
		rc = open_rvol(im, st, n);
	}
	if (rc == IMG_OK)
		rc = open_set(im, st);
	if (rc != IMG_OK)
		return rc;
	/* volumes the sequential open went through must start where the sizes say */
	for (size_t i = 0; i < v->nstarts && i < st->nrvols; i++)
		if (v->starts[i] != st->rvols[i].start)
			return img_err_set(&im->err, IMG_E_CORRUPT, 0, 0, 0,
					   "%s: partimage: the volume files changed while the image was open",
					   st->rvols[i].path);
	if (!v->suffix_at)
		return IMG_OK;  /* one file: a short one reads as truncated where it ends */
	uint8_t t[PI_TAIL_MAGIC_LEN + 12];
	uint64_t at = end - PI_STRUCT - PI_TAIL_MAGIC_LEN;
	uint32_t vt = rvol_of(st, at);
	rc = lpread(im, st, t, sizeof t, at, "the tail", &im->err);
	if (rc != IMG_OK)
		return rc;
	const struct pi_rvol *r = &st->rvols[vt];
	if (memcmp(t, PI_TAIL_MAGIC, PI_TAIL_MAGIC_LEN) != 0)
		return ra_fail(&im->err, IMG_E_CORRUPT, r->path, PI_VOLUME_HEADER + at - r->start,
			       "%s expected where the volume sizes put it, found other bytes (a volume "
			       "truncated, or replaced by another one?)", PI_TAIL_MAGIC);
	uint32_t lastno = get_le32(t + PI_TAIL_MAGIC_LEN + 8);
	if (lastno != vt && lastno != st->nrvols - 1)
		return ra_fail(&im->err, IMG_E_CORRUPT, r->path, PI_VOLUME_HEADER + at - r->start + 24,
			       "the tail says the last volume is %u, but it is in volume %u", lastno,
			       st->nrvols - 1);
	return IMG_OK;
}

/* ---- the rank index ------------------------------------------------------- */

static uint64_t rank_of(const struct pi_state *st, uint64_t b)
{
	return rank_index_rank(&st->ranks, b);
}

/* The block whose rank is r (the inverse of rank_of). */
static uint64_t block_of_rank(const struct pi_state *st, uint64_t r)
{
	return rank_index_select(&st->ranks, r);
}

int pi_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len)
{
	struct pi_state *st = im->priv;
	pi_random_free(st);  /* a second try after a failed one starts afresh */
	uint32_t k = o->index_interval ? o->index_interval : 1024;
	int rc = open_rvols(im, st);
	if (rc != IMG_OK)
		return rc;
	uint64_t entries = st->lay.nbits / k + 1;
	size_t head = PI_RA_HEAD + (size_t)st->nrvols * PI_RA_VOL;
	size_t len = head + (size_t)entries * 8;
	uint8_t *p = *payload = malloc(len);
	int built = rank_index_build(&st->ranks, st->lay.bitmap, st->lay.nbits, k) == IMG_OK;
	st->nchunks = pi_full_chunks(&st->lay);
	st->chunk_ok = calloc(st->nchunks / 8 + 1, 1);
	st->chunk_bad = calloc(st->nchunks / 8 + 1, 1);
	if (!p || !built || !st->chunk_ok || !st->chunk_bad)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for the rank index", im->path);
	memcpy(p, PI_RA_MAGIC, 8);
	store_le32(p + 8, k);
	store_le32(p + 12, st->nrvols);
	store_le64(p + 16, st->vol->ident);
	store_le64(p + 24, st->lay.data_start);
	store_le64(p + 32, st->lay.used);
	store_le64(p + 40, st->lay.nbits);
	store_le64(p + 48, st->lay.bs);
	for (uint32_t i = 0; i < st->nrvols; i++) {
		uint8_t *q = p + PI_RA_HEAD + (size_t)i * PI_RA_VOL;
		store_le64(q, st->rvols[i].size + PI_VOLUME_HEADER);
		store_le64(q + 8, (uint64_t)st->rvols[i].mtime_ns);
		store_le64(q + 16, st->rvols[i].start);
	}
	st->read_verify = o->verify;
	im->read_verify = o->verify;
	if (saved && saved_len == len && memcmp(saved, p, head) == 0 &&
	    rank_index_matches(&st->ranks, saved + head, entries * 8)) {
		free(p);  /* the saved index matches: nothing to save again */
		*payload = NULL;
		return IMG_OK;
	}
	rank_index_store(&st->ranks, p + head);
	*payload_len = len;
	return IMG_OK;
}

void pi_random_free(struct pi_state *st)
{
	rsrc_close(st->set);
	st->set = NULL;
	for (uint32_t i = 0; i < st->nrvols; i++)
		free(st->rvols[i].path);
	free(st->rvols);
	rank_index_free(&st->ranks);
	free(st->chunk_ok);
	free(st->chunk_bad);
	st->rvols = NULL;
	st->nrvols = 0;
	st->chunk_ok = st->chunk_bad = NULL;
	st->final_verdict = 0;
}

/* ---- reads ------------------------------------------------------------------- */

static int bit_get(const uint8_t *bm, uint64_t i)
{
	return __atomic_load_n(&bm[i >> 3], __ATOMIC_ACQUIRE) >> (i & 7) & 1;
}

static void bit_set(uint8_t *bm, uint64_t i)
{
	__atomic_fetch_or(&bm[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELEASE);
}

/* Record err at logical byte L, naming the volume file that holds it. */
static int fail_at_logical(img_err *err, const struct pi_state *st, int code, uint64_t L,
			   const char *what)
{
	const struct pi_rvol *r = &st->rvols[rvol_of(st, L)];
	return ra_fail(err, code, r->path, PI_VOLUME_HEADER + L - r->start, "%s", what);
}

/* The blocks holding data bytes [x, x + len). */
static void blocks_of_data(const struct pi_state *st, uint64_t x, uint64_t len, uint64_t *first,
			   uint64_t *last)
{
	*first = block_of_rank(st, x / st->lay.bs);
	*last = block_of_rank(st, (x + len - 1) / st->lay.bs);
}

static int chunk_error(const struct pi_state *st, uint64_t c, img_err *err)
{
	uint64_t first, last;
	char text[200];
	blocks_of_data(st, c * PI_CHUNK, PI_CHUNK, &first, &last);
	return fail_at_logical(err, st, IMG_E_CHECKSUM, pi_chunk_at(&st->lay, c),
			       pi_bad_chunk_text(text, sizeof text, first, last, c));
}

/* Check chunk c (65536 data bytes and its CHK record) once. */
static int check_chunk(img_image *im, struct pi_state *st, uint64_t c, img_err *err)
{
	if (bit_get(st->chunk_ok, c))
		return IMG_OK;
	if (bit_get(st->chunk_bad, c))
		return chunk_error(st, c, err);
	uint8_t *buf = malloc(PI_CHUNK + PI_CHK);
	if (!buf)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	uint64_t L = pi_chunk_at(&st->lay, c);
	char text[200];
	int rc = lpread(im, st, buf, PI_CHUNK + PI_CHK, L, "a CHK chunk", err);
	if (rc == IMG_OK && !pi_chk_is_record(buf + PI_CHUNK)) {
		rc = fail_at_logical(err, st, IMG_E_CORRUPT, L + PI_CHUNK,
				     pi_missing_chk_text(text, sizeof text, c));
	} else if (rc == IMG_OK && pi_chk_crc_matches(buf, buf + PI_CHUNK)) {
		bit_set(st->chunk_ok, c);
	} else if (rc == IMG_OK) {
		bit_set(st->chunk_bad, c);
		rc = chunk_error(st, c, err);
	}
	free(buf);
	return rc;
}

/* Sum of the logical bytes [from, to), read in pieces of buf (SUM_PIECE bytes). */
static int sum_logical(img_image *im, struct pi_state *st, uint64_t from, uint64_t to,
		       uint8_t *buf, uint64_t *sum, img_err *err)
{
	int rc = IMG_OK;
	for (uint64_t L = from; L < to && rc == IMG_OK;) {
		size_t n = to - L < SUM_PIECE ? (size_t)(to - L) : SUM_PIECE;
		rc = lpread(im, st, buf, n, L, "the image (for the tail's byte sum)", err);
		if (rc == IMG_OK)
			*sum += pi_byte_sum(buf, n);
		L += n;
	}
	return rc;
}

/*
 * One pass over the image for the final partial chunk: the byte sum of every
 * logical byte up to the end of the TAIL magic (the tail's qwCRC rule), each
 * full chunk checked against its CHK record on the way. @return IMG_OK with
 * *sum and *first_bad (the first bad chunk, UINT64_MAX: none), or an error.
 */
static int sum_image(img_image *im, struct pi_state *st, uint64_t *sum, uint64_t *first_bad,
		     img_err *err)
{
	uint8_t *buf = malloc(SUM_PIECE);
	if (!buf)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	*sum = 0;
	*first_bad = UINT64_MAX;
	int rc = sum_logical(im, st, 0, st->lay.data_start, buf, sum, err);
	char text[200];
	for (uint64_t c = 0; c < st->nchunks && rc == IMG_OK; c++) {
		uint64_t L = pi_chunk_at(&st->lay, c);
		rc = lpread(im, st, buf, PI_CHUNK + PI_CHK, L, "a CHK chunk", err);
		if (rc == IMG_OK && !pi_chk_is_record(buf + PI_CHUNK))
			rc = fail_at_logical(err, st, IMG_E_CORRUPT, L + PI_CHUNK,
					     pi_missing_chk_text(text, sizeof text, c));
		if (rc != IMG_OK)
			break;
		*sum += pi_byte_sum(buf, PI_CHUNK + PI_CHK);
		if (pi_chk_crc_matches(buf, buf + PI_CHUNK)) {
			bit_set(st->chunk_ok, c);
		} else {
			bit_set(st->chunk_bad, c);
			if (*first_bad == UINT64_MAX)
				*first_bad = c;
		}
	}
	if (rc == IMG_OK)
		rc = sum_logical(im, st, pi_chunk_at(&st->lay, st->nchunks),
				 pi_tail_at(&st->lay) + PI_TAIL_MAGIC_LEN, buf, sum, err);
	free(buf);
	return rc;
}

/* The verdict on the final partial chunk, as kept in st->final_verdict. */
enum { FINAL_UNKNOWN, FINAL_GOOD, FINAL_BAD, FINAL_UNCHECKABLE };

static int final_chunk_error(const struct pi_state *st, int verdict, img_err *err)
{
	const uint64_t x = st->nchunks * PI_CHUNK;
	uint64_t first, last, stored = __atomic_load_n(&st->final_stored, __ATOMIC_RELAXED);
	uint64_t sum = __atomic_load_n(&st->final_sum, __ATOMIC_RELAXED);
	uint64_t first_bad = __atomic_load_n(&st->final_first_bad, __ATOMIC_RELAXED);
	char what[300], text[500];
	blocks_of_data(st, x, pi_final_len(&st->lay), &first, &last);
	if (verdict == FINAL_UNCHECKABLE) {
		snprintf(text, sizeof text, "the data of blocks %llu-%llu after the last CHK record cannot "
			 "be checked: the tail's byte sum, its only check, covers CHK record %llu too, "
			 "which is bad", (unsigned long long)first, (unsigned long long)last,
			 (unsigned long long)first_bad);
		return fail_at_logical(err, st, IMG_E_CHECKSUM, pi_data_at(&st->lay, x), text);
	}
	snprintf(what, sizeof what, "the data of blocks %llu-%llu after the last CHK record, or the "
		 "headers, are damaged", (unsigned long long)first, (unsigned long long)last);
	return fail_at_logical(err, st, IMG_E_CHECKSUM, pi_data_at(&st->lay, x),
			       pi_tail_sum_text(text, sizeof text, stored, sum, what));
}

/*
 * The final partial chunk has no CHK record: the tail's qwCRC covers it, a
 * byte sum of the whole logical stream. The first read that touches the
 * chunk sums the image once (checking every full chunk on the way); the
 * verdict is kept. When a full chunk is bad the sum cannot tell whether the
 * final chunk is damaged too: its reads fail as uncheckable.
 */
static int check_final_chunk(img_image *im, struct pi_state *st, img_err *err)
{
	int verdict = __atomic_load_n(&st->final_verdict, __ATOMIC_ACQUIRE);
	if (verdict == FINAL_GOOD)
		return IMG_OK;
	if (verdict != FINAL_UNKNOWN)
		return final_chunk_error(st, verdict, err);
	uint8_t t[PI_TAIL_MAGIC_LEN + 8];
	uint64_t tail = pi_tail_at(&st->lay), sum = 0, first_bad = UINT64_MAX;
	int rc = lpread(im, st, t, sizeof t, tail, "the tail", err);
	char text[100];
	if (rc == IMG_OK && !pi_is_tail(t))
		rc = fail_at_logical(err, st, IMG_E_CORRUPT, tail, pi_missing_tail_text(text, sizeof text));
	if (rc == IMG_OK)
		rc = sum_image(im, st, &sum, &first_bad, err);
	if (rc != IMG_OK)
		return rc;
	uint64_t stored = pi_tail_stored_sum(t);
	verdict = sum == stored ? FINAL_GOOD : first_bad != UINT64_MAX ? FINAL_UNCHECKABLE : FINAL_BAD;
	/* every thread that sums finds the same values */
	__atomic_store_n(&st->final_stored, stored, __ATOMIC_RELAXED);
	__atomic_store_n(&st->final_sum, sum, __ATOMIC_RELAXED);
	__atomic_store_n(&st->final_first_bad, first_bad, __ATOMIC_RELAXED);
	__atomic_store_n(&st->final_verdict, verdict, __ATOMIC_RELEASE);
	return verdict == FINAL_GOOD ? IMG_OK : final_chunk_error(st, verdict, err);
}

int pi_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err)
{
	struct pi_state *st = im->priv;
	uint8_t *out = buf;
	while (len > 0) {
		uint64_t b = off / st->lay.bs, in_block = off % st->lay.bs;
		if (b >= st->lay.nbits) {  /* past the bitmap or the last block: zeros */
			memset(out, 0, len);
			return IMG_OK;
		}
		size_t n;
		if (!bitmap_test(st->lay.bitmap, b)) {
			uint64_t next = bitmap_next_set(st->lay.bitmap, st->lay.nbits, b);
			uint64_t bytes = (next - b) * st->lay.bs - in_block;
			n = bytes < len ? (size_t)bytes : len;
			memset(out, 0, n);
		} else {
			uint64_t want = (in_block + len + st->lay.bs - 1) / st->lay.bs;
			uint64_t run = bitmap_run(st->lay.bitmap, st->lay.nbits, b, want);
			uint64_t x = rank_of(st, b) * st->lay.bs + in_block;  /* byte of D */
			uint64_t c = x / PI_CHUNK, bytes = run * st->lay.bs - in_block;
			uint64_t room = PI_CHUNK - x % PI_CHUNK;  /* a CHK record closes the chunk */
			if (bytes > room)
				bytes = room;
			n = bytes < len ? (size_t)bytes : len;
			if (st->read_verify) {  /* c == nchunks: the final partial chunk */
				int rc = c < st->nchunks ? check_chunk(im, st, c, err)
							 : check_final_chunk(im, st, err);
				if (rc != IMG_OK)
					return rc;
			}
			int rc = lpread(im, st, out, n, pi_data_at(&st->lay, x), "the block data", err);
			if (rc != IMG_OK)
				return rc;
		}
		out += n;
		off += n;
		len -= n;
	}
	return IMG_OK;
}

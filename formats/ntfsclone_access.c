/*
 * formats/ntfsclone_access.c - random reads of an ntfsclone image. The
 * image has no table of its clusters: one pass over the command stream
 * (pread in SCAN_CHUNK pieces, records parsed across chunk boundaries; the
 * sequential stream im->s is left alone) collects runs of clusters stored
 * back to back, {first cluster, count, image offset of the first record's
 * data}; the data of cluster first+i is at off + i * (cluster size + 1).
 * Memory is one entry per run, not per cluster.
 *
 * Metadata images go backwards (negative GAPs) and may store a cluster
 * twice: the runs are then resolved in one sweep so that a read gives what
 * a restore in stream order leaves (the later record wins). The index is
 * always ascending and disjoint, read_at binary-searches it; clusters not
 * in it read as zeros. Consecutive records of a run are read with one pread
 * of up to READ_SPAN bytes (command bytes included) into a buffer and their
 * data copied out: on a 1 GiB volume this took 0.11 s of CPU per pass
 * against 0.17 s for one pread per cluster straight into the caller's buffer.
 *
 * A damaged stream (truncated, bad command byte, bad GAP) is indexed up to
 * the damage: reads of clusters the stream no longer says anything about
 * (from the stop position on, or everything when the stream had already
 * gone backwards) fail with the error and its image offset. Clusters whose
 * data a later truncation cut off fail through fmt_pread.
 *
 * The payload saved in the index file (blkindex.c), little-endian:
 *    0  4  "NCIX"              24  8  device size
 *    4  4  version (1)         32  4  stop code (0, IMG_E_TRUNCATED, IMG_E_CORRUPT)
 *    8  4  cluster size        36  4  flags (1: the stream had gone backwards)
 *   12  4  offset to data      40  8  stop position (cluster)
 *   16  8  nr_clusters         48  8  stop offset (image byte)
 *                              56  8  number of runs
 *   64  .. runs: first, count, offset (3 x 8 bytes each)
 * It is checked in full before use and rebuilt when anything is off.
 *
 * Not here: the record decoding (ntfsclone_layout.c, shared with the walk),
 * the header and the sequential walk (ntfsclone.c), the index
 * file (blkindex.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ntfsclone.h"
#include "../io/grow.h"

/* Image bytes read at once while building the index (only records' heads
 * are looked at, so any size works). 4 MiB cost a fresh buffer's page
 * faults per open: test_ntfsclone_access under ASan spent 35-38 s in the
 * kernel, most of it there. */
#define SCAN_CHUNK ((size_t)256 << 10)
/* Record bytes read at once by read_at (at least one record). */
#define READ_SPAN ((size_t)1 << 20)

#define IDX_MAGIC "NCIX"
#define IDX_VERSION 1
#define IDX_HEADER 64
#define IDX_RUN 24

static int no_memory(img_image *im)
{
	return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory for the run index",
			   im->path);
}

/* ---- collecting runs ---------------------------------------------------- */
struct runvec {
	struct nc_run *v;
	size_t n, cap;
};

static int runvec_push(struct runvec *rv, uint64_t first, uint64_t count, uint64_t off)
{
	if (grow_for(&rv->v, &rv->cap, rv->n, sizeof *rv->v, 256))
		return -1;
	rv->v[rv->n++] = (struct nc_run){ first, count, off };
	return 0;
}

/* Add cluster `pos` whose data starts at image byte `off`: extends the last
 * run when it follows it both on the volume and in the image. */
static int add_cluster(struct runvec *rv, uint64_t stride, uint64_t pos, uint64_t off)
{
	if (rv->n) {
		struct nc_run *r = &rv->v[rv->n - 1];
		if (r->first + r->count == pos && r->off + r->count * stride == off) {
			r->count++;
			return 0;
		}
	}
	return runvec_push(rv, pos, 1, off);
}

/* ---- the later record wins: resolve overlapping runs -------------------- */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int by_first(const void *a, const void *b, void *ctx)
{
	const struct nc_run *runs = ctx;
	uint64_t x = runs[*(const uint64_t *)a].first, y = runs[*(const uint64_t *)b].first;
	return x < y ? -1 : x > y;
}

/* Max-heap of run numbers: a higher number is a later run in the stream. */
static void heap_push(uint64_t *h, uint64_t *n, uint64_t v)
{
	uint64_t i = (*n)++;
	while (i > 0 && h[(i - 1) / 2] < v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static void heap_pop(uint64_t *h, uint64_t *n)
{
	uint64_t v = h[--(*n)], i = 0;
	for (;;) {
		uint64_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1] > h[c])
			c++;
		if (h[c] <= v)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = v;
}

static int is_sorted_disjoint(const struct nc_run *r, uint64_t n)
{
	for (uint64_t i = 1; i < n; i++)
		if (r[i].first < r[i - 1].first + r[i - 1].count)
			return 0;
	return 1;
}

/*
 * Runs in stream order -> ascending, disjoint runs where every cluster maps
 * to its last record. A sweep over the run boundaries keeps the runs that
 * cover the current point in a heap by stream order; the top one wins.
 */
static int resolve(struct runvec *rv, uint64_t stride)
{
	uint64_t n = rv->n;
	if (is_sorted_disjoint(rv->v, n))
		return 0;
	uint64_t *ord = malloc(n * sizeof *ord), *bounds = malloc(2 * n * sizeof *bounds);
	uint64_t *heap = malloc(n * sizeof *heap);
	struct runvec out = { 0 };
	int rc = -1;
	if (!ord || !bounds || !heap)
		goto done;
	for (uint64_t i = 0; i < n; i++) {
		ord[i] = i;
		bounds[2 * i] = rv->v[i].first;
		bounds[2 * i + 1] = rv->v[i].first + rv->v[i].count;
	}
	qsort_r(ord, n, sizeof *ord, by_first, rv->v);
	qsort(bounds, 2 * n, sizeof *bounds, cmp_u64);
	uint64_t nb = 0;
	for (uint64_t i = 0; i < 2 * n; i++)
		if (nb == 0 || bounds[nb - 1] != bounds[i])
			bounds[nb++] = bounds[i];
	uint64_t hn = 0, j = 0;
	for (uint64_t k = 0; k + 1 < nb; k++) {
		uint64_t p = bounds[k], q = bounds[k + 1];
		while (j < n && rv->v[ord[j]].first <= p)
			heap_push(heap, &hn, ord[j++]);
		while (hn && rv->v[heap[0]].first + rv->v[heap[0]].count <= p)
			heap_pop(heap, &hn);
		if (!hn)
			continue;
		/* every run in the heap started at or before p; the top one ends
		 * after p, so at or after q (q is the next boundary) */
		const struct nc_run *w = &rv->v[heap[0]];
		uint64_t off = w->off + (p - w->first) * stride;
		struct nc_run *last = out.n ? &out.v[out.n - 1] : NULL;
		if (last && last->first + last->count == p && last->off + last->count * stride == off)
			last->count += q - p;
		else if (runvec_push(&out, p, q - p, off))
			goto done;
	}
	free(rv->v);
	*rv = out;
	out.v = NULL;
	rc = 0;
done:
	free(out.v);
	free(ord);
	free(bounds);
	free(heap);
	return rc;
}

/* ---- one pass over the command stream ------------------------------------ */
struct scan {
	img_image *im;
	const img_random_options *o;
	uint8_t *buf;
	uint64_t bstart, bend;  /* image bytes in buf */
	uint64_t size;          /* of the image */
};

/* Point *p at image bytes [at, at + need) and more (*vis bytes in all).
 * @return IMG_OK, IMG_EOF when the image ends before, or a read error (on im->err). */
static int scan_view(struct scan *sc, uint64_t at, size_t need, const uint8_t **p, size_t *vis)
{
	if (at >= sc->bstart && at + need <= sc->bend) {
		*p = sc->buf + (at - sc->bstart);
		*vis = (size_t)(sc->bend - at);
		return IMG_OK;
	}
	if (at > sc->size || sc->size - at < need)
		return IMG_EOF;
	size_t n = sc->size - at < SCAN_CHUNK ? (size_t)(sc->size - at) : SCAN_CHUNK;
	int rc = fmt_pread(sc->im, sc->buf, n, at, "the command stream", &sc->im->err);
	if (rc != IMG_OK)
		return rc;
	sc->bstart = at;
	sc->bend = at + n;
	if (sc->o->progress)
		sc->o->progress(sc->o->progress_ctx, at, sc->size);
	*p = sc->buf;
	*vis = n;
	return IMG_OK;
}

/* Build st->acc.runs from the image; a damaged stream sets st->stop_*. */
static int build_index(img_image *im, struct nc_state *st, const img_random_options *o)
{
	uint64_t size = rsrc_size(im->rs);
	struct scan sc = { im, o, malloc(size && size < SCAN_CHUNK ? (size_t)size : SCAN_CHUNK), 0, 0, size };
	struct runvec rv = { 0 };
	if (!sc.buf)
		return no_memory(im);
	const uint64_t stride = (uint64_t)st->lay.cs + 1;
	uint64_t pos = 0, at = st->lay.data_offset;
	int unordered = 0, rc = IMG_OK;
	st->acc.stop_code = IMG_OK;
	while (pos != st->lay.end_pos) {
		const uint8_t *p;
		size_t vis;
		struct nc_record r;
		rc = scan_view(&sc, at, 1, &p, &vis);
		if (rc == IMG_OK) {
			nc_decode_record(&st->lay, pos, p, vis, &r);
			if (r.kind == NC_REC_SHORT && (rc = scan_view(&sc, at, r.need, &p, &vis)) == IMG_OK)
				nc_decode_record(&st->lay, pos, p, vis, &r);
		}
		if (rc < 0)
			goto out;
		if (rc == IMG_EOF || (r.kind == NC_REC_NEXT && sc.size - at < r.size)) {
			st->acc.stop_code = IMG_E_TRUNCATED;
			st->acc.stop_at = sc.size;
			break;
		}
		if (r.kind == NC_REC_GAP) {
			unordered |= r.to < pos;
			pos = r.to;
		} else if (r.kind == NC_REC_NEXT) {
			if (r.len > 0 && add_cluster(&rv, stride, pos, at + 1)) {
				rc = no_memory(im);
				goto out;
			}
			pos++;
		} else {
			st->acc.stop_code = IMG_E_CORRUPT;
			st->acc.stop_at = at;
			break;
		}
		at += r.size;
	}
	rc = IMG_OK;
	st->acc.stop_pos = st->acc.stop_code ? pos : 0;
	st->acc.stop_unordered = st->acc.stop_code ? unordered : 0;
	if (!st->acc.stop_code)
		st->acc.stop_at = 0;
	if (resolve(&rv, stride)) {
		rc = no_memory(im);
		goto out;
	}
	st->acc.runs = rv.v;
	st->acc.nruns = rv.n;
	rv.v = NULL;
	if (o->progress)
		o->progress(o->progress_ctx, sc.size, sc.size);
out:
	free(rv.v);
	free(sc.buf);
	return rc;
}

/* ---- the payload ---------------------------------------------------------- */
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int encode(const struct nc_state *st, uint8_t **payload, size_t *len)
{
	size_t n = IDX_HEADER + (size_t)st->acc.nruns * IDX_RUN;
	uint8_t *p = malloc(n);
	if (!p)
		return -1;
	memcpy(p, IDX_MAGIC, 4);
	put32(p + 4, IDX_VERSION);
	put32(p + 8, st->lay.cs);
	put32(p + 12, st->lay.data_offset);
	put64(p + 16, st->lay.nr_clusters);
	put64(p + 24, st->lay.device_size);
	put32(p + 32, (uint32_t)st->acc.stop_code);
	put32(p + 36, (uint32_t)st->acc.stop_unordered);
	put64(p + 40, st->acc.stop_pos);
	put64(p + 48, st->acc.stop_at);
	put64(p + 56, st->acc.nruns);
	for (uint64_t i = 0; i < st->acc.nruns; i++) {
		uint8_t *r = p + IDX_HEADER + i * IDX_RUN;
		put64(r, st->acc.runs[i].first);
		put64(r + 8, st->acc.runs[i].count);
		put64(r + 16, st->acc.runs[i].off);
	}
	*payload = p;
	*len = n;
	return 0;
}

/* Take a saved payload when every field is consistent with this image.
 * @return 1 taken, 0 not (st unchanged), -1 out of memory. */
static int decode(struct nc_state *st, uint64_t size, const uint8_t *p, size_t len)
{
	const struct nc_state *st0 = st;
	if (len < IDX_HEADER || memcmp(p, IDX_MAGIC, 4) != 0 || get_le32(p + 4) != IDX_VERSION ||
	    get_le32(p + 8) != st0->lay.cs || get_le32(p + 12) != st0->lay.data_offset ||
	    get_le64(p + 16) != st0->lay.nr_clusters || get_le64(p + 24) != st0->lay.device_size)
		return 0;
	uint64_t n = get_le64(p + 56);
	if (n > (len - IDX_HEADER) / IDX_RUN || len != IDX_HEADER + n * IDX_RUN)
		return 0;
	int32_t code = (int32_t)get_le32(p + 32);
	uint32_t flags = get_le32(p + 36);
	uint64_t stop_pos = get_le64(p + 40), stop_at = get_le64(p + 48);
	if (code == IMG_OK) {
		if (flags || stop_pos || stop_at)
			return 0;
	} else if ((code != IMG_E_TRUNCATED && code != IMG_E_CORRUPT) || flags > 1 ||
		   stop_pos > st0->lay.end_pos || stop_at > size || stop_at < st0->lay.data_offset ||
		   (code == IMG_E_TRUNCATED && stop_at != size)) {
		return 0;
	}
	const uint64_t cs = st0->lay.cs, stride = cs + 1;
	uint64_t prev_end = 0;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *r = p + IDX_HEADER + i * IDX_RUN;
		uint64_t first = get_le64(r), count = get_le64(r + 8), off = get_le64(r + 16);
		if (count == 0 || first < prev_end || first >= st0->lay.end_pos ||
		    count > st0->lay.end_pos - first)
			return 0;
		uint64_t last = first + count - 1;
		uint64_t last_len = nc_record_len(&st0->lay, last);
		/* only a run's last record may be short (the backup boot sector's) */
		if (last_len == 0 || (count > 1 && nc_record_len(&st0->lay, last - 1) != cs))
			return 0;
		/* its data lies in the image, after the header and a command byte */
		if (off < (uint64_t)st0->lay.data_offset + 1 || off >= size ||
		    count - 1 > (size - off) / stride ||
		    size - off - (count - 1) * stride < last_len)
			return 0;
		prev_end = first + count;
	}
	struct nc_run *runs = malloc((n ? n : 1) * sizeof *runs);
	if (!runs)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *r = p + IDX_HEADER + i * IDX_RUN;
		runs[i] = (struct nc_run){ get_le64(r), get_le64(r + 8), get_le64(r + 16) };
	}
	st->acc.runs = runs;
	st->acc.nruns = n;
	st->acc.stop_code = code;
	st->acc.stop_unordered = (int)flags;
	st->acc.stop_pos = stop_pos;
	st->acc.stop_at = stop_at;
	return 1;
}

void nc_random_free(struct nc_access *acc)
{
	free(acc->runs);
	acc->runs = NULL;
	acc->nruns = 0;
}

int nc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len)
{
	struct nc_state *st = im->priv;
	nc_random_free(&st->acc);
	im->read_verify = 0;  /* no checksums in the format */
	if (saved) {
		int rc = decode(st, rsrc_size(im->rs), saved, saved_len);
		if (rc < 0)
			return no_memory(im);
		if (rc == 1)
			return IMG_OK;
	}
	int rc = build_index(im, st, o);
	if (rc != IMG_OK)
		return rc;
	if (encode(st, payload, payload_len))
		return no_memory(im);
	return IMG_OK;
}

/* ---- reads ---------------------------------------------------------------- */
/* Cluster c cannot be read: the command stream stopped before telling. */
static int stop_error(img_image *im, const struct nc_state *st, uint64_t c, img_err *err)
{
	const char *why = st->acc.stop_code == IMG_E_TRUNCATED ? "image truncated"
							    : "command stream damaged";
	if (st->acc.stop_unordered)
		return fmt_fail_to(im, err, st->acc.stop_code, st->acc.stop_at,
				   "%s at cluster position %llu of a metadata image that went "
				   "backwards before: no cluster can be read reliably (cluster %llu asked)",
				   why, (unsigned long long)st->acc.stop_pos, (unsigned long long)c);
	return fmt_fail_to(im, err, st->acc.stop_code, st->acc.stop_at,
			   "%s: the records stop at cluster position %llu of %llu; cluster %llu is "
			   "beyond them",
			   why, (unsigned long long)st->acc.stop_pos, (unsigned long long)st->lay.end_pos,
			   (unsigned long long)c);
}

/*
 * The calling thread's buffer for the records of one read, at least n bytes
 * (NULL: out of memory). Kept for the thread's next reads and freed when it
 * ends: a buffer made and freed per read costs fresh pages every time where
 * the allocator does not reuse large blocks (under ASan, 56 s of kernel
 * time in test_ntfsclone_access's page faults).
 */
struct span_buf {
	uint8_t *p;
	size_t cap;
};
static pthread_key_t span_key;
static pthread_once_t span_once = PTHREAD_ONCE_INIT;
static int span_key_ok;

static void span_buf_free(void *v)
{
	struct span_buf *b = v;
	free(b->p);
	free(b);
}

static void span_key_make(void)
{
	span_key_ok = pthread_key_create(&span_key, span_buf_free) == 0;
}

static uint8_t *span_buffer(size_t n)
{
	pthread_once(&span_once, span_key_make);
	if (!span_key_ok)
		return NULL;
	struct span_buf *b = pthread_getspecific(span_key);
	if (!b) {
		if (!(b = calloc(1, sizeof *b)))
			return NULL;
		if (pthread_setspecific(span_key, b) != 0) {
			free(b);
			return NULL;
		}
	}
	if (b->cap < n) {
		free(b->p);
		b->cap = 0;
		if (!(b->p = malloc(n)))
			return NULL;
		b->cap = n;
	}
	return b->p;
}

/* Read `n` records of run r from its record k on: the bytes [in, ...) of the
 * first cluster and on, `want` bytes in all, with one pread of the records
 * (command bytes included) into the thread's buffer and a copy of their data. */
static int read_records(img_image *im, const struct nc_state *st, const struct nc_run *r,
			uint64_t k, uint64_t n, size_t in, size_t want, uint8_t *out, img_err *err)
{
	const uint64_t cs = st->lay.cs, stride = cs + 1;
	uint64_t start = r->off + k * stride + in;
	if (n == 1)
		return fmt_pread(im, out, want, start, "the cluster data", err);
	/* the last record contributes in + want - (n-1)*cs bytes (1 .. cs) */
	uint64_t end = r->off + (k + n - 1) * stride + (in + want - (n - 1) * cs);
	size_t span = (size_t)(end - start);
	uint8_t *b = span_buffer(span);
	if (!b)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	int rc = fmt_pread(im, b, span, start, "the cluster data", err);
	if (rc == IMG_OK) {
		size_t src = 0, left = want, take = cs - in;
		for (uint64_t j = 0; j < n; j++) {
			if (take > left)
				take = left;
			memcpy(out, b + src, take);
			out += take;
			left -= take;
			src += take + 1;  /* the next record's command byte */
			take = cs;
		}
	}
	return rc;
}

int nc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err)
{
	const struct nc_state *st = im->priv;
	const uint64_t cs = st->lay.cs, stride = cs + 1;
	const uint64_t max_records = READ_SPAN / stride ? READ_SPAN / stride : 1;
	uint8_t *out = buf;
	if (st->acc.stop_code && st->acc.stop_unordered)
		return stop_error(im, st, off / cs, err);
	while (len > 0) {
		uint64_t c = off / cs;
		size_t in = (size_t)(off % cs);
		/* i = number of runs starting at or before c */
		uint64_t lo = 0, hi = st->acc.nruns;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			if (st->acc.runs[mid].first <= c)
				lo = mid + 1;
			else
				hi = mid;
		}
		const struct nc_run *r = lo ? &st->acc.runs[lo - 1] : NULL;
		size_t n;
		if (r && c < r->first + r->count) {
			uint64_t k = c - r->first;
			uint64_t records = ((uint64_t)in + len + cs - 1) / cs;
			if (records > r->count - k)
				records = r->count - k;
			if (records > max_records)
				records = max_records;
			uint64_t bytes = records * cs - in;
			n = bytes < len ? (size_t)bytes : len;
			int rc = read_records(im, st, r, k, records, in, n, out, err);
			if (rc != IMG_OK)
				return rc;
		} else {
			uint64_t next = lo < st->acc.nruns ? st->acc.runs[lo].first : UINT64_MAX;
			if (st->acc.stop_code && c < st->lay.end_pos) {
				if (c >= st->acc.stop_pos)
					return stop_error(im, st, c, err);
				if (next > st->acc.stop_pos)
					next = st->acc.stop_pos;
			}
			/* zeros up to the next run (or the end of the read) */
			uint64_t bytes = next - c > (len + in) / cs + 1 ? (uint64_t)len
								     : (next - c) * cs - in;
			n = bytes < len ? (size_t)bytes : len;
			memset(out, 0, n);
		}
		out += n;
		off += n;
		len -= n;
	}
	return IMG_OK;
}

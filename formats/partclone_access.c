/*
 * formats/partclone_access.c - random reads of a partclone image: a rank
 * index over the bitmap (used blocks before every K-th block) maps block b
 * to its place in the data section, data_start + rank*bs + (rank/bpc)*cs
 * (format 0001: data_start + rank*(bs+crc)); runs of used blocks inside one
 * checksum group are read with one pread. With reseeded checksums every
 * group is checked the first time a read touches it; the result is kept in
 * a bit per group (set atomically: reads come from many threads).
 *
 * The saved index (its payload) is the rank table and the bitmap: together
 * they map every block; on load both are compared with what open() read.
 *
 * Not here: the sequential walk (partclone.c), the index file (blkindex.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "partclone.h"

/* Bytes read at once while checking a group. */
#define GROUP_CHUNK ((size_t)1 << 20)
/* Groups up to this size are checked in one read and kept, per thread, so
 * the reads that follow in the same group copy from memory: every byte of a
 * sequential read through the mount is read from the image once. */
#define GROUP_CACHE_MAX ((uint64_t)4 << 20)

/* The last group this thread checked: data and checksum of group g of the
 * open image named id. */
struct group_cache {
	uint64_t id, g;
	size_t len, cap;
	uint8_t *data;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static uint64_t next_access_id = 1;

static void cache_free(void *p)
{
	struct group_cache *c = p;
	free(c->data);
	free(c);
}

static void cache_key_make(void)
{
	pthread_key_create(&cache_key, cache_free);
}

static struct group_cache *thread_cache(void)
{
	pthread_once(&cache_once, cache_key_make);
	struct group_cache *c = pthread_getspecific(cache_key);
	if (!c && (c = calloc(1, sizeof *c)) != NULL && pthread_setspecific(cache_key, c) != 0) {
		free(c);
		c = NULL;
	}
	return c;
}

static uint32_t interval_of(const img_random_options *o)
{
	return o->index_interval ? o->index_interval : 1024;
}

int pc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len)
{
	struct pc_state *st = im->priv;
	if (st->bitmap) {
		if (rank_index_build(&st->ranks, st->bitmap, st->total, interval_of(o)) != IMG_OK)
			return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
					   "%s: out of memory for the rank index", im->path);
		/* The payload: the rank table, then the bitmap it counts (together
		 * they map every block to its place in the image). */
		uint64_t table = st->ranks.entries * 8, bm_bytes = (st->total + 7) / 8;
		int same = saved && saved_len == table + bm_bytes &&
			   rank_index_matches(&st->ranks, saved, table) &&
			   memcmp(saved + table, st->bitmap, bm_bytes) == 0;
		if (!same) {
			*payload = malloc(table + bm_bytes);
			if (!*payload)
				return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
						   "%s: out of memory for the rank index", im->path);
			rank_index_store(&st->ranks, *payload);
			memcpy(*payload + table, st->bitmap, bm_bytes);
			*payload_len = table + bm_bytes;
		}
	}
	st->access_id = __atomic_fetch_add(&next_access_id, 1, __ATOMIC_RELAXED);
	st->read_verify = o->verify && st->cs && st->reseed && !st->v1;
	im->read_verify = st->read_verify;
	if (st->cs && !st->v1) {
		st->ngroups = (st->used + st->bpc - 1) / st->bpc;
		st->group_ok = calloc(st->ngroups / 8 + 1, 1);
		st->group_bad = calloc(st->ngroups / 8 + 1, 1);
		if (!st->group_ok || !st->group_bad)
			return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
					   "%s: out of memory for the group table", im->path);
	}
	return IMG_OK;
}

void pc_random_free(struct pc_state *st)
{
	rank_index_free(&st->ranks);
	free(st->group_ok);
	free(st->group_bad);
}

static int is_used(const struct pc_state *st, uint64_t b)
{
	return !st->bitmap || bitmap_test(st->bitmap, b);
}

static uint64_t rank_of(const struct pc_state *st, uint64_t b)
{
	return st->bitmap ? rank_index_rank(&st->ranks, b) : b;
}

/* The block whose rank is r (the inverse of rank_of). */
static uint64_t block_of_rank(const struct pc_state *st, uint64_t r)
{
	return st->bitmap ? rank_index_select(&st->ranks, r) : r;
}

static uint64_t image_offset(const struct pc_state *st, uint64_t rank)
{
	if (st->v1)
		return st->data_start + rank * st->v1_stride;
	return st->data_start + rank * st->bs + (st->cs ? rank / st->bpc * st->cs : 0);
}

static int bit_get(const uint8_t *bm, uint64_t i)
{
	return __atomic_load_n(&bm[i >> 3], __ATOMIC_ACQUIRE) >> (i & 7) & 1;
}

static void bit_set(uint8_t *bm, uint64_t i)
{
	__atomic_fetch_or(&bm[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELEASE);
}

static int group_error(img_image *im, struct pc_state *st, uint64_t g, img_err *err)
{
	uint64_t first = block_of_rank(st, g * st->bpc);
	uint64_t n = st->used - g * st->bpc < st->bpc ? st->used - g * st->bpc : st->bpc;
	uint64_t last = block_of_rank(st, g * st->bpc + n - 1);
	return fmt_fail_to(im, err, IMG_E_CHECKSUM, image_offset(st, g * st->bpc),
			   "%s checksum mismatch in blocks %llu-%llu (checksum group %llu)",
			   im->info.checksum, (unsigned long long)first, (unsigned long long)last,
			   (unsigned long long)g);
}

/* Read small group g whole into this thread's cache and check it there. */
static int check_group_cached(img_image *im, struct pc_state *st, uint64_t g, uint64_t n,
			      struct group_cache *c, img_err *err)
{
	size_t len = (size_t)(n * st->bs + st->cs);
	if (c->cap < len) {
		uint8_t *grown = realloc(c->data, len);
		if (!grown)
			return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
		c->data = grown;
		c->cap = len;
	}
	c->id = 0;  /* invalid until checked */
	int rc = fmt_pread(im, c->data, len, image_offset(st, g * st->bpc), "a checksum group", err);
	if (rc != IMG_OK)
		return rc;
	img_hash h;
	if (hash_init(&h, st->hash.kind) != IMG_OK)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	hash_update(&h, c->data, len - st->cs);
	uint8_t d[16];
	hash_digest(&h, d);
	hash_free(&h);
	pc_digest_as_stored(st, d);
	if (memcmp(d, c->data + len - st->cs, st->cs) != 0) {
		bit_set(st->group_bad, g);
		return group_error(im, st, g, err);
	}
	bit_set(st->group_ok, g);
	c->id = st->access_id;
	c->g = g;
	c->len = len - st->cs;
	return IMG_OK;
}

/* Check group g once: read it in chunks, hash, compare with its checksum. */
static int check_group(img_image *im, struct pc_state *st, uint64_t g, img_err *err)
{
	if (bit_get(st->group_ok, g))
		return IMG_OK;
	if (bit_get(st->group_bad, g))
		return group_error(im, st, g, err);
	uint64_t n = st->used - g * st->bpc < st->bpc ? st->used - g * st->bpc : st->bpc;
	struct group_cache *c = n * st->bs + st->cs <= GROUP_CACHE_MAX ? thread_cache() : NULL;
	if (c)
		return check_group_cached(im, st, g, n, c, err);
	uint64_t at = image_offset(st, g * st->bpc), left = n * st->bs;
	uint8_t *chunk = malloc(GROUP_CHUNK);
	img_hash h;
	if (!chunk || hash_init(&h, st->hash.kind) != IMG_OK) {
		free(chunk);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	}
	int rc = IMG_OK;
	while (left > 0 && rc == IMG_OK) {
		size_t step = left < GROUP_CHUNK ? (size_t)left : GROUP_CHUNK;
		rc = fmt_pread(im, chunk, step, at, "a checksum group", err);
		hash_update(&h, chunk, step);
		at += step;
		left -= step;
	}
	uint8_t stored[16], d[16];
	if (rc == IMG_OK)
		rc = fmt_pread(im, stored, st->cs, at, "a checksum", err);
	if (rc == IMG_OK) {
		hash_digest(&h, d);
		pc_digest_as_stored(st, d);
		if (memcmp(d, stored, st->cs) == 0) {
			bit_set(st->group_ok, g);
		} else {
			bit_set(st->group_bad, g);
			rc = group_error(im, st, g, err);
		}
	}
	hash_free(&h);
	free(chunk);
	return rc;
}

int pc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err)
{
	struct pc_state *st = im->priv;
	uint8_t *out = buf;
	while (len > 0) {
		uint64_t b = off / st->bs, in_block = off % st->bs;
		if (b >= st->total) {  /* past the last block, inside device_size */
			memset(out, 0, len);
			return IMG_OK;
		}
		uint64_t want_blocks = (in_block + len + st->bs - 1) / st->bs;
		size_t n;
		if (!is_used(st, b)) {
			uint64_t next = st->bitmap ? bitmap_next_set(st->bitmap, st->total, b) : b;
			uint64_t bytes = (next - b) * st->bs - in_block;
			n = bytes < len ? (size_t)bytes : len;
			memset(out, 0, n);
		} else {
			uint64_t r = rank_of(st, b);
			uint64_t run = st->bitmap ? bitmap_run(st->bitmap, st->total, b, want_blocks)
						  : (st->total - b < want_blocks ? st->total - b : want_blocks);
			if (st->v1)
				run = 1;  /* a CRC follows every block */
			else if (st->cs && run > st->bpc - r % st->bpc)
				run = st->bpc - r % st->bpc;  /* a checksum follows the group */
			if (st->read_verify) {
				int rc = check_group(im, st, r / st->bpc, err);
				if (rc != IMG_OK)
					return rc;
			}
			uint64_t bytes = run * st->bs - in_block;
			n = bytes < len ? (size_t)bytes : len;
			const struct group_cache *c = st->read_verify ? thread_cache() : NULL;
			if (c && c->id == st->access_id && c->g == r / st->bpc) {
				memcpy(out, c->data + (r % st->bpc) * st->bs + in_block, n);
			} else {
				int rc = fmt_pread(im, out, n, image_offset(st, r) + in_block, "the data", err);
				if (rc != IMG_OK)
					return rc;
			}
		}
		out += n;
		off += n;
		len -= n;
	}
	return IMG_OK;
}

/*
 * formats/partclone_access.c - random reads of a partclone image: a rank
 * index over the bitmap (used blocks before every K-th block) maps block b
 * to its place in the data section, data_start + rank*bs + (rank/bpc)*cs
 * (format 0001: data_start + rank*(bs+crc)); runs of used blocks inside one
 * checksum group are read with one pread.
 *
 * With verify on, every byte a read hands out was checked against the
 * image's checksums, the first time a read touches its group (the result
 * is kept in a bit per group, set atomically: reads come from many threads).
 * A group a read checks is kept, for every thread, in one of a few shared
 * slots: the reads that follow in it (an NBD server answers the pieces of
 * one group from several threads at once) copy from there, and a read that
 * finds its group being checked waits for it instead of reading it again.
 * The checks:
 *  - reseeded checksums (the default): the group's bytes alone;
 *  - a running CRC32 (-K) and format 0001: the stored checksum of the group
 *    before is the CRC register the group's CRC goes on from (it is stored
 *    without the final inversion, FORMATS.md 1.3), so group g is checked from
 *    those 4 bytes and its own. Format 0001's CRC covers only the first byte
 *    of each block (repeated block-size times, FORMATS.md 1.9): only that
 *    byte of a block is checked, the others are covered by nothing;
 *  - a running XXH64/XXH128 (-K): the hash state before every ckpt_every-th
 *    group is kept (one pass over the data when the index is built, then
 *    saved in it); a read starts from the nearest state, or from this
 *    thread's last group, and hashes forward, checking every group on the
 *    way. A kept state is trusted only when its digest equals the stored
 *    checksum of the group before it: a damaged or stale state fails the
 *    read, it never passes one. A bad group leaves the groups after it
 *    uncheckable (their checksums cover it too): reads there fail.
 *
 * The saved index (its payload) is the rank table and the bitmap (together
 * they map every block; on load both are compared with what open() read),
 * then, for a running XXH checksum, the kept states: "PCXS", u32 bytes per
 * state, u64 groups per state, u64 states, the states (hash_state_save).
 *
 * Not here: the layout's rules (partclone_layout.c, shared with the walk), the
 * sequential walk (partclone.c), the index file (blkindex.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "partclone.h"

/* Bytes read at once while checking a group. */
#define GROUP_CHUNK ((size_t)1 << 20)
/* Groups up to this size are checked in one read and kept in a shared slot,
 * so the reads that follow in the same group copy from memory: every byte
 * of a sequential read is read from the image once. */
#define GROUP_CACHE_MAX ((uint64_t)4 << 20)
/* Shared slots: enough for the groups a client's requests in flight touch
 * at once (a sequential reader: one or two per connection). */
#define GROUP_SLOTS 8
/* Data between two kept states of a running XXH checksum: a read hashes at
 * most this much before its own group; a smaller image keeps STATES_MIN
 * states at least. */
#define STATE_SPAN ((uint64_t)8 << 20)
#define STATES_MIN 16
#define STATES_MAGIC "PCXS"
#define STATES_HEAD 24

/* Per thread: the shared slot this thread filled last (index + 1; 0:
 * none), filled again first when free, so a thread that reads a group after
 * another reuses one buffer, warm in its CPU's cache, as a thread of its own
 * would; and, for a running XXH checksum, the hash state after group end_g
 * of the open image named end_id (its next group goes on from there). */
struct group_cache {
	size_t slot;
	uint64_t end_id, end_g;
	img_hash end;
};

/* A checked group's data (cap bytes allocated) of the open image
 * named id; id 0: free. While `loading`, one thread reads and checks it and
 * the others wait on group_slots.loaded; `users` threads copy from it (it
 * is not reused until they are done). A group the image holds in memory
 * (a decoded source's segment) is checked where it is, `looked`: the slot
 * then holds no data, and readers read the image (from that memory). */
struct group_slot {
	uint64_t id, g, last_use;
	int loading, looked;
	unsigned users;
	size_t cap;
	uint8_t *data;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	uint64_t clock;
	struct group_slot slot[GROUP_SLOTS];
} group_slots = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { { 0 } } };

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static uint64_t next_access_id = 1;

static void cache_free(void *p)
{
	struct group_cache *c = p;
	hash_free(&c->end);
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

static int no_memory(img_image *im, img_err *err)
{
	return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
}

static int running_xxh(const struct pc_state *st)
{
	return !st->lay.reseed && (st->lay.kind == HASH_XXH64 || st->lay.kind == HASH_XXH128);
}

static uint32_t interval_of(const img_random_options *o)
{
	return o->index_interval ? o->index_interval : 1024;
}

static int is_used(const struct pc_state *st, uint64_t b)
{
	return !st->lay.bitmap || bitmap_test(st->lay.bitmap, b);
}

static uint64_t rank_of(const struct pc_state *st, uint64_t b)
{
	return st->lay.bitmap ? rank_index_rank(&st->acc.ranks, b) : b;
}

/* The block whose rank is r (the inverse of rank_of). */
static uint64_t block_of_rank(const struct pc_state *st, uint64_t r)
{
	return st->lay.bitmap ? rank_index_select(&st->acc.ranks, r) : r;
}

static int bit_get(const uint8_t *bm, uint64_t i)
{
	return __atomic_load_n(&bm[i >> 3], __ATOMIC_ACQUIRE) >> (i & 7) & 1;
}

static void bit_set(uint8_t *bm, uint64_t i)
{
	__atomic_fetch_or(&bm[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELEASE);
}

/* ---- one checksum group -------------------------------------------------- */

static int group_error(img_image *im, struct pc_state *st, uint64_t g, img_err *err)
{
	uint64_t n = pc_group_blocks(&st->lay, g);
	uint64_t first = block_of_rank(st, g * st->lay.bpc), last = block_of_rank(st, g * st->lay.bpc + n - 1);
	if (running_xxh(st) && st->acc.first_bad < g)
		return fmt_fail_to(im, err, IMG_E_CHECKSUM, pc_data_offset(&st->lay, g * st->lay.bpc),
				   "%s running checksum of blocks %llu-%llu (checksum group %llu) cannot be "
				   "checked: checksum group %llu before it is bad", im->info.checksum,
				   (unsigned long long)first, (unsigned long long)last, (unsigned long long)g,
				   (unsigned long long)st->acc.first_bad);
	char text[200];
	return fmt_fail_to(im, err, IMG_E_CHECKSUM, pc_data_offset(&st->lay, g * st->lay.bpc), "%s",
			   pc_bad_group_text(text, sizeof text, im->info.checksum, first, last, g));
}

/* The stored checksum of group g, as the image holds it. */
static int read_stored(img_image *im, const struct pc_state *st, uint64_t g, uint8_t *d,
		       img_err *err)
{
	return fmt_pread(im, d, st->lay.cs, pc_checksum_offset(&st->lay, g), "a checksum", err);
}

/* Hash group g's data (len bytes at at) and copy its stored checksum out of
 * the buffer when it holds the whole group, else read the data through buf
 * (cap bytes) in pieces and the checksum apart. */
static int hash_group_read(img_image *im, struct pc_state *st, uint64_t g, img_hash *h, uint8_t *buf,
			   size_t cap, uint8_t *stored, img_err *err)
{
	uint64_t at = pc_data_offset(&st->lay, g * st->lay.bpc), len = pc_group_blocks(&st->lay, g) * st->lay.bs;
	size_t whole = (size_t)len + pc_group_tail(&st->lay);
	int rc = IMG_OK;
	if (whole <= cap) {
		rc = fmt_pread(im, buf, whole, at, "a checksum group", err);
		if (rc != IMG_OK)
			return rc;
		pc_group_update(&st->lay, h, buf, 0, (size_t)len);
		memcpy(stored, buf + len + pc_checksum_in_tail(&st->lay), st->lay.cs);
		return IMG_OK;
	}
	for (uint64_t pos = 0; pos < len && rc == IMG_OK;) {
		size_t step = len - pos < cap ? (size_t)(len - pos) : cap;
		rc = fmt_pread(im, buf, step, at + pos, "a checksum group", err);
		if (rc == IMG_OK)
			pc_group_update(&st->lay, h, buf, pos, step);
		pos += step;
	}
	return rc == IMG_OK ? read_stored(im, st, g, stored, err) : rc;
}

/* Hash group g's data onto h and compare with its stored checksum; mark the
 * group good or bad. With looked NULL the data goes through buf (cap
 * bytes), which takes the whole group with what follows it when it fits,
 * else the data goes through it in pieces. With looked, the caller does
 * not need the bytes: where the image holds the group in memory (a segment
 * a decoded source holds) it is hashed there, in place, and *looked is 1;
 * else as above, through a buffer of its own when buf is NULL. */
static int hash_group(img_image *im, struct pc_state *st, uint64_t g, img_hash *h, uint8_t *buf,
		      size_t cap, int *looked, img_err *err)
{
	uint64_t at = pc_data_offset(&st->lay, g * st->lay.bpc), len = pc_group_blocks(&st->lay, g) * st->lay.bs;
	uint8_t stored[16];
	const uint8_t *p = NULL;
	void *pin = NULL;
	int rc = looked ? fmt_peek(im, (size_t)len + pc_group_tail(&st->lay), at, &p, &pin, err) : IMG_OK;
	if (rc != IMG_OK)
		return rc;
	if (p) {
		pc_group_update(&st->lay, h, p, 0, (size_t)len);
		memcpy(stored, p + len + pc_checksum_in_tail(&st->lay), st->lay.cs);
		fmt_unpeek(im, pin);
		*looked = 1;
	} else if (buf) {
		rc = hash_group_read(im, st, g, h, buf, cap, stored, err);
	} else {
		uint8_t *own = malloc(GROUP_CHUNK);
		rc = own ? hash_group_read(im, st, g, h, own, GROUP_CHUNK, stored, err) : no_memory(im, err);
		free(own);
	}
	if (rc != IMG_OK)
		return rc;
	if (!pc_checksum_matches(&st->lay, h, stored)) {
		bit_set(st->acc.group_bad, g);
		return group_error(im, st, g, err);
	}
	bit_set(st->acc.group_ok, g);
	return IMG_OK;
}

/* ---- where a group's checksum starts ------------------------------------- */

/* Kept state k (before group k * ckpt_every) into h, when its fields are in
 * range and its digest is the checksum stored before that group. */
static int kept_state(img_image *im, struct pc_state *st, uint64_t k, img_hash *h, img_err *err)
{
	hash_reset(h);
	if (k == 0)
		return IMG_OK;
	uint64_t g = k * st->acc.ckpt_every;
	if (!bit_get(st->acc.ckpt_bad, k) &&
	    hash_state_load(h, st->acc.ckpt + k * st->acc.ckpt_size, g * st->lay.bpc * st->lay.bs) == IMG_OK) {
		uint8_t stored[16];
		int rc = read_stored(im, st, g - 1, stored, err);
		if (rc != IMG_OK)
			return rc;
		if (pc_checksum_matches(&st->lay, h, stored))
			return IMG_OK;
	}
	bit_set(st->acc.ckpt_bad, k);
	return fmt_fail_to(im, err, IMG_E_CHECKSUM, pc_data_offset(&st->lay, g * st->lay.bpc),
			   "%s running checksum from block %llu on cannot be checked: the index's "
			   "hash state before checksum group %llu does not give the checksum stored "
			   "before it (a bad group before it, or a damaged or stale index: imgbk "
			   "index rebuilds it)", im->info.checksum,
			   (unsigned long long)block_of_rank(st, g * st->lay.bpc), (unsigned long long)g);
}

/* Running XXH: h = the state after group g - 1, from this thread's last
 * group or the nearest kept state, hashing forward (each group checked). */
static int xxh_state_before(img_image *im, struct pc_state *st, uint64_t g, img_hash *h,
			    const struct group_cache *c, img_err *err)
{
	uint64_t from = g / st->acc.ckpt_every * st->acc.ckpt_every;
	int rc;
	if (c && c->end_id == st->acc.access_id && c->end_g < g && c->end_g + 1 >= from) {
		rc = hash_copy(h, &c->end);
		from = c->end_g + 1;
	} else {
		rc = kept_state(im, st, g / st->acc.ckpt_every, h, err);
	}
	if (rc != IMG_OK || from == g)
		return rc;
	int looked = 0;
	for (uint64_t x = from; x < g && rc == IMG_OK; x++)
		rc = hash_group(im, st, x, h, NULL, 0, &looked, err);
	return rc;
}

/* h = the state group g's checksum starts from. */
static int group_start(img_image *im, struct pc_state *st, uint64_t g, img_hash *h,
		       const struct group_cache *c, img_err *err)
{
	hash_reset(h);
	if (st->lay.reseed || g == 0)
		return IMG_OK;
	if (running_xxh(st))
		return xxh_state_before(im, st, g, h, c, err);
	/* running CRC32: the register is the checksum stored before, uninverted */
	uint8_t prev[16];
	int rc = read_stored(im, st, g - 1, prev, err);
	if (rc == IMG_OK) {
		pc_digest_as_stored(&st->lay, prev);  /* to our (little-endian) form */
		h->crc = ~get_le32(prev);
	}
	return rc;
}

/* Keep h, the state after group g, as this thread's last one. */
static void remember_end(const struct pc_state *st, struct group_cache *c, uint64_t g,
			 const img_hash *h)
{
	if (c->end.kind != h->kind) {
		hash_free(&c->end);
		c->end_id = 0;
		if (hash_init(&c->end, h->kind) != IMG_OK)
			return;
	}
	hash_copy(&c->end, h);
	c->end_id = st->acc.access_id;
	c->end_g = g;
}

/* Check group g (not checked yet) through buf: in one read when the group
 * with its checksum fits in cap bytes, else in pieces; with looked, in
 * place when the image holds it in memory (hash_group). */
static int check_group_into(img_image *im, struct pc_state *st, uint64_t g, uint8_t *buf,
			    size_t cap, int *looked, img_err *err)
{
	struct group_cache *c = thread_cache();
	img_hash h;
	if (hash_init(&h, st->lay.kind) != IMG_OK)
		return no_memory(im, err);
	int rc = group_start(im, st, g, &h, c, err);
	if (rc == IMG_OK)
		rc = hash_group(im, st, g, &h, buf, cap, looked, err);
	if (rc == IMG_OK && c && running_xxh(st))
		remember_end(st, c, g, &h);
	hash_free(&h);
	return rc;
}

/* Check group g in place or with a buffer of its own (too big for a slot,
 * or every slot busy): its data is not kept. */
static int check_group_alone(img_image *im, struct pc_state *st, uint64_t g, img_err *err)
{
	int looked = 0;
	return check_group_into(im, st, g, NULL, 0, &looked, err);
}

/* ---- shared slots of checked groups ------------------------------------------ */

/* Bytes of group g with the checksum after it. */
static size_t group_whole(const struct pc_state *st, uint64_t g)
{
	return (size_t)(pc_group_blocks(&st->lay, g) * st->lay.bs) + pc_group_tail(&st->lay);
}

/* The slot of group g of the open image id, or NULL. Under the lock. */
static struct group_slot *slot_find(uint64_t id, uint64_t g)
{
	for (size_t i = 0; i < GROUP_SLOTS; i++)
		if (group_slots.slot[i].id == id && group_slots.slot[i].g == g)
			return &group_slots.slot[i];
	return NULL;
}

/* The slot this thread filled last when nobody uses it, else the least
 * recently used slot nobody uses, or NULL. Under the lock. */
static struct group_slot *slot_victim(const struct group_cache *c)
{
	struct group_slot *v = c && c->slot ? &group_slots.slot[c->slot - 1] : NULL;
	if (v && !v->users && !v->loading)
		return v;
	v = NULL;
	for (size_t i = 0; i < GROUP_SLOTS; i++) {
		struct group_slot *s = &group_slots.slot[i];
		if (!s->users && !s->loading && (!v || s->last_use < v->last_use))
			v = s;
	}
	return v;
}

/* Read and check group g into slot s, which this thread is loading. */
static int slot_load(img_image *im, struct pc_state *st, uint64_t g, struct group_slot *s,
		     img_err *err)
{
	size_t whole = group_whole(st, g);
	if (s->cap < whole) {
		uint8_t *grown = realloc(s->data, whole);
		if (!grown)
			return no_memory(im, err);
		s->data = grown;
		s->cap = whole;
	}
	int looked = 0;
	int rc = check_group_into(im, st, g, s->data, whole, &looked, err);
	s->looked = looked;
	return rc;
}

/* Take slot v for group g, load it, and hand it out (or free it again when
 * the check failed); the threads waiting for it are woken either way. */
static int slot_fill(img_image *im, struct pc_state *st, uint64_t g, struct group_slot *v,
		     struct group_slot **out, img_err *err)
{
	v->id = st->acc.access_id;
	v->g = g;
	v->loading = 1;
	v->users = 1;
	v->last_use = ++group_slots.clock;
	pthread_mutex_unlock(&group_slots.lock);
	struct group_cache *c = thread_cache();
	if (c)
		c->slot = (size_t)(v - group_slots.slot) + 1;
	int rc = slot_load(im, st, g, v, err);
	pthread_mutex_lock(&group_slots.lock);
	v->loading = 0;
	if (rc == IMG_OK) {
		*out = v;
	} else {
		v->id = 0;
		v->users = 0;
	}
	pthread_cond_broadcast(&group_slots.loaded);
	pthread_mutex_unlock(&group_slots.lock);
	return rc;
}

/* Make sure group g was checked. *out is then the slot holding its data,
 * with a use taken (slot_release), or NULL: read it from the image (it was
 * checked before and its slot reused, or it did not get one). A group some
 * other thread is checking is waited for, not read twice. `whole`, when
 * not NULL, is where the caller wants the group's data (all of it, in one
 * piece): a group checked here is checked there, with no slot, *filled = 1. */
static int group_acquire(img_image *im, struct pc_state *st, uint64_t g, uint8_t *whole,
			 struct group_slot **out, int *filled, img_err *err)
{
	*out = NULL;
	*filled = 0;
	pthread_mutex_lock(&group_slots.lock);
	struct group_slot *s;
	while ((s = slot_find(st->acc.access_id, g)) != NULL && s->loading)
		pthread_cond_wait(&group_slots.loaded, &group_slots.lock);
	if (s) {
		s->users++;
		s->last_use = ++group_slots.clock;
		*out = s;
	}
	int checked = s || bit_get(st->acc.group_ok, g), bad = !s && bit_get(st->acc.group_bad, g);
	struct group_slot *v = checked || bad || whole || group_whole(st, g) > GROUP_CACHE_MAX
				       ? NULL : slot_victim(thread_cache());
	if (v)
		return slot_fill(im, st, g, v, out, err);  /* unlocks */
	pthread_mutex_unlock(&group_slots.lock);
	if (checked)
		return IMG_OK;
	if (bad)
		return group_error(im, st, g, err);
	if (!whole)
		return check_group_alone(im, st, g, err);
	*filled = 1;  /* the data is read once, to where it goes; its checksum after it */
	return check_group_into(im, st, g, whole, (size_t)(pc_group_blocks(&st->lay, g) * st->lay.bs), NULL, err);
}

static void slot_release(struct group_slot *s)
{
	pthread_mutex_lock(&group_slots.lock);
	s->users--;
	pthread_mutex_unlock(&group_slots.lock);
}

/* ---- kept states of a running XXH checksum --------------------------------- */

static size_t states_len(const struct pc_state *st)
{
	return st->acc.ckpt_every ? STATES_HEAD + st->acc.nckpt * st->acc.ckpt_size : 0;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void states_store(const struct pc_state *st, uint8_t *out)
{
	memcpy(out, STATES_MAGIC, 4);
	put_le(out + 4, st->acc.ckpt_size, 4);
	put_le(out + 8, st->acc.ckpt_every, 8);
	put_le(out + 16, st->acc.nckpt, 8);
	memcpy(out + STATES_HEAD, st->acc.ckpt, st->acc.nckpt * st->acc.ckpt_size);
}

/* Take saved states whose layout fits this image. @return 1 taken, 0 not. */
static int states_take(struct pc_state *st, const uint8_t *p, size_t len)
{
	if (len != states_len(st) || memcmp(p, STATES_MAGIC, 4) != 0 ||
	    get_le32(p + 4) != st->acc.ckpt_size || get_le64(p + 8) != st->acc.ckpt_every ||
	    get_le64(p + 16) != st->acc.nckpt)
		return 0;
	memcpy(st->acc.ckpt, p + STATES_HEAD, st->acc.nckpt * st->acc.ckpt_size);
	return 1;
}

/* One pass over the data: every group hashed and checked in turn, the state
 * kept before every ckpt_every-th group. A read error ends the pass: the
 * states after it stay empty (reads there fail) and *whole is 0. */
static int states_build(img_image *im, struct pc_state *st, const img_random_options *o,
			int *whole)
{
	img_hash h;
	uint8_t *buf = malloc(GROUP_CHUNK);
	if (!buf || hash_init(&h, st->lay.kind) != IMG_OK) {
		free(buf);
		return no_memory(im, &im->err);
	}
	int rc = IMG_OK;
	for (uint64_t g = 0; g < st->acc.ngroups && rc == IMG_OK; g++) {
		if (g % st->acc.ckpt_every == 0)
			hash_state_save(&h, st->acc.ckpt + g / st->acc.ckpt_every * st->acc.ckpt_size);
		img_err e = { .code = IMG_OK };
		int looked = 0;
		rc = hash_group(im, st, g, &h, buf, GROUP_CHUNK, &looked, &e);
		if (rc == IMG_E_CHECKSUM && st->acc.first_bad > g)
			st->acc.first_bad = g;
		if (o->progress && (g % 256 == 0 || g + 1 == st->acc.ngroups))  /* in data bytes */
			o->progress(o->progress_ctx, (g * st->lay.bpc + pc_group_blocks(&st->lay, g)) * st->lay.bs,
				    st->lay.used * st->lay.bs);
		if (rc == IMG_E_CHECKSUM)
			rc = IMG_OK;
	}
	hash_free(&h);
	free(buf);
	*whole = rc == IMG_OK;
	return IMG_OK;
}

/* The group tables and, for a running XXH checksum, room for its states. */
static int groups_open(img_image *im, struct pc_state *st, const img_random_options *o)
{
	st->acc.access_id = __atomic_fetch_add(&next_access_id, 1, __ATOMIC_RELAXED);
	st->acc.read_verify = o->verify && st->lay.cs;
	im->read_verify = st->acc.read_verify;
	st->acc.first_bad = UINT64_MAX;
	if (!st->lay.cs)
		return IMG_OK;
	st->acc.ngroups = pc_groups(&st->lay);
	st->acc.group_ok = calloc(st->acc.ngroups / 8 + 1, 1);
	st->acc.group_bad = calloc(st->acc.ngroups / 8 + 1, 1);
	if (!st->acc.group_ok || !st->acc.group_bad)
		return no_memory(im, &im->err);
	if (!st->acc.read_verify || !running_xxh(st))
		return IMG_OK;
	uint64_t group_bytes = st->lay.bpc * st->lay.bs;
	st->acc.ckpt_every = group_bytes >= STATE_SPAN ? 1 : STATE_SPAN / group_bytes;
	if (st->acc.ckpt_every > st->acc.ngroups / STATES_MIN)
		st->acc.ckpt_every = st->acc.ngroups / STATES_MIN ? st->acc.ngroups / STATES_MIN : 1;
	st->acc.nckpt = st->acc.ngroups / st->acc.ckpt_every + 1;
	st->acc.ckpt_size = hash_state_size(st->lay.kind);
	st->acc.ckpt = calloc(st->acc.nckpt, st->acc.ckpt_size);
	st->acc.ckpt_bad = calloc(st->acc.nckpt / 8 + 1, 1);
	return st->acc.ckpt && st->acc.ckpt_bad ? IMG_OK : no_memory(im, &im->err);
}

int pc_random_open(img_image *im, const img_random_options *o, const uint8_t *saved,
		   size_t saved_len, uint8_t **payload, size_t *payload_len)
{
	struct pc_state *st = im->priv;
	pc_random_free(&st->acc);  /* a second try after a failed one starts afresh */
	uint64_t table = 0, bm_bytes = 0;
	if (st->lay.bitmap) {
		if (rank_index_build(&st->acc.ranks, st->lay.bitmap, st->lay.total, interval_of(o)) != IMG_OK)
			return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
					   "%s: out of memory for the rank index", im->path);
		table = st->acc.ranks.entries * 8;
		bm_bytes = (st->lay.total + 7) / 8;
	}
	int rc = groups_open(im, st, o);
	if (rc != IMG_OK)
		return rc;
	/* The payload: the rank table, then the bitmap it counts (together they
	 * map every block to its place in the image), then the kept states. */
	size_t map = (size_t)(table + bm_bytes), states = states_len(st);
	int map_same = !st->lay.bitmap || (saved && saved_len >= map &&
				       rank_index_matches(&st->acc.ranks, saved, table) &&
				       memcmp(saved + table, st->lay.bitmap, bm_bytes) == 0);
	int from_saved = saved && map_same &&
			 (states ? states_take(st, saved + map, saved_len - map) : saved_len >= map);
	int whole = 1;
	if (states && !from_saved && (rc = states_build(im, st, o, &whole)) != IMG_OK)
		return rc;
	if (from_saved || map + states == 0 || !whole)
		return IMG_OK;  /* nothing new, or states not worth saving */
	*payload = malloc(map + states);
	if (!*payload)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for the rank index", im->path);
	if (st->lay.bitmap) {
		rank_index_store(&st->acc.ranks, *payload);
		memcpy(*payload + table, st->lay.bitmap, bm_bytes);
	}
	if (states)
		states_store(st, *payload + map);
	*payload_len = map + states;
	return IMG_OK;
}

void pc_random_free(struct pc_access *acc)
{
	rank_index_free(&acc->ranks);
	free(acc->group_ok);
	free(acc->group_bad);
	free(acc->ckpt);
	free(acc->ckpt_bad);
	acc->group_ok = acc->group_bad = acc->ckpt = acc->ckpt_bad = NULL;
	acc->ckpt_every = acc->nckpt = 0;
}

/* n bytes of used blocks from block rank r on (byte in_block of it), all
 * in one checksum group: from the group's slot when it has one, else from
 * the image; with verify on, the group is checked first. A run that is a
 * whole group (its blocks contiguous in the partition) is checked where it
 * is read to: one pread into out, no copy. */
static int read_run(img_image *im, struct pc_state *st, uint64_t r, uint64_t in_block,
		    uint8_t *out, size_t n, img_err *err)
{
	struct group_slot *s = NULL;
	if (st->acc.read_verify) {
		uint64_t g = r / st->lay.bpc;
		int whole = r % st->lay.bpc == 0 && in_block == 0 && n == pc_group_blocks(&st->lay, g) * st->lay.bs;
		int filled;
		int rc = group_acquire(im, st, g, whole ? out : NULL, &s, &filled, err);
		if (rc != IMG_OK || filled)
			return rc;
	}
	if (s && !s->looked) {
		memcpy(out, s->data + (r % st->lay.bpc) * st->lay.bs + in_block, n);
		slot_release(s);
		return IMG_OK;
	}
	if (s)
		slot_release(s);
	return fmt_pread(im, out, n, pc_data_offset(&st->lay, r) + in_block, "the data", err);
}

int pc_read_at(img_image *im, uint64_t off, void *buf, size_t len, img_err *err)
{
	struct pc_state *st = im->priv;
	uint8_t *out = buf;
	while (len > 0) {
		uint64_t b = off / st->lay.bs, in_block = off % st->lay.bs;
		if (b >= st->lay.total) {  /* past the last block, inside device_size */
			memset(out, 0, len);
			return IMG_OK;
		}
		uint64_t want_blocks = (in_block + len + st->lay.bs - 1) / st->lay.bs;
		size_t n;
		if (!is_used(st, b)) {
			uint64_t next = st->lay.bitmap ? bitmap_next_set(st->lay.bitmap, st->lay.total, b) : b;
			uint64_t bytes = (next - b) * st->lay.bs - in_block;
			n = bytes < len ? (size_t)bytes : len;
			memset(out, 0, n);
		} else {
			uint64_t r = rank_of(st, b);
			uint64_t run = st->lay.bitmap ? bitmap_run(st->lay.bitmap, st->lay.total, b, want_blocks)
						  : (st->lay.total - b < want_blocks ? st->lay.total - b : want_blocks);
			if (st->lay.v1)
				run = 1;  /* a CRC follows every block */
			else if (st->lay.cs && run > st->lay.bpc - r % st->lay.bpc)
				run = st->lay.bpc - r % st->lay.bpc;  /* a checksum follows the group */
			uint64_t bytes = run * st->lay.bs - in_block;
			n = bytes < len ? (size_t)bytes : len;
			int rc = read_run(im, st, r, in_block, out, n, err);
			if (rc != IMG_OK)
				return rc;
		}
		out += n;
		off += n;
		len -= n;
	}
	return IMG_OK;
}

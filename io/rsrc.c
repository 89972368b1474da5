/*
 * io/rsrc.c - the byte-source interface for random reads (io.h): the
 * rsrc_* calls that dispatch through a source's method table, the
 * concatenation source (files and other sources addressed as one range,
 * each piece less its leading `skip` bytes; piece i covers [start_i,
 * start_i + size_i)), rsrc_open (one file or a split set: a concatenation
 * with no skips), and the sequential face (a stream source over a source).
 *
 * pread(2) only, so any number of threads may read at once; file pieces are
 * opened on demand, at most RSRC_MAX_OPEN at a time, each with a use count
 * so a piece is never closed under a reader.
 *
 * Not here: the decoded source (zview.c), which sources an image needs
 * (rsrc_stack.c), sequential file and split streams (file.c, split.c), or
 * anything about formats.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#include "io.h"

/* ---- the interface ------------------------------------------------------- */

int rsrc_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	return r->m->pread(r, buf, len, off, got, err);
}

int rsrc_peek(img_rsrc *r, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err)
{
	*p = NULL;
	*pin = NULL;
	return r->m->peek ? r->m->peek(r, len, off, p, pin, err) : IMG_OK;
}

void rsrc_unpeek(img_rsrc *r, void *pin)
{
	if (pin)
		r->m->unpeek(r, pin);
}

uint64_t rsrc_size(const img_rsrc *r)
{
	return r->m->size(r);
}

unsigned rsrc_caps(const img_rsrc *r)
{
	return r->m->caps;
}

void rsrc_identity(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns)
{
	if (r->m->identity) {
		r->m->identity(r, size, mtime_ns);
		return;
	}
	*size = rsrc_size(r);
	*mtime_ns = 0;
}

const char *rsrc_first_path(const img_rsrc *r)
{
	return r->m->first_path(r);
}

int rsrc_decoded_save(const img_rsrc *r, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	return r->m->save ? r->m->save(r, out, len) : IMG_OK;
}

void rsrc_decoded_points(const img_rsrc *r, uint64_t *stateful, uint64_t *units, uint64_t *blind)
{
	*stateful = *units = *blind = 0;
	if (r->m->points)
		r->m->points(r, stateful, units, blind);
}

void rsrc_close(img_rsrc *r)
{
	if (r)
		r->m->close(r);
}

/* ---- the concatenation ------------------------------------------------------ */

struct piece {
	char *path;        /* the file, or the source's first file (messages) */
	img_rsrc *src;     /* the source of a source piece (borrowed), NULL for a file */
	uint64_t skip;     /* leading bytes left out */
	uint64_t start;    /* offset of its first data byte in the concatenation */
	uint64_t size;     /* its data bytes */
	uint64_t stored;   /* its bytes: the file's size, or the source's size */
	uint64_t id_size;  /* its part of the identity: the file's size, or the source's identity */
	int fd;            /* file pieces: -1 when closed */
	int users;         /* readers using fd now */
	uint64_t last_use;
};

struct concat {
	struct img_rsrc base;
	struct piece *pieces;
	size_t count;
	size_t files;       /* file pieces; more than RSRC_MAX_OPEN: opened on demand */
	uint64_t size;
	int64_t mtime_ns;
	int in_order;       /* a piece is a pipe: no RSRC_CAP_RANDOM */
	int open_count;
	uint64_t clock;
	pthread_mutex_t lock;
};

static int open_error(img_err *err, const char *path, int e)
{
	return img_err_set(err, e == ENOENT ? IMG_E_MISSING : IMG_E_IO, e, 0, 0, "%s: cannot open: %s",
			   path, strerror(e));
}

/* Open and stat a file piece: its stored size (a block device's too), the
 * newest mtime. A pipe or socket sets *in_order (its size counts as 0). */
static int stat_file_piece(struct piece *pc, int64_t *mtime_ns, int *in_order, img_err *err)
{
	struct stat st;
	int fd = open(pc->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);  /* a FIFO's open does not wait */
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return open_error(err, pc->path, e);
	}
	int is_pipe = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
	*in_order |= is_pipe;
	uint64_t size = is_pipe ? 0 : (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) != 0)
		size = 0;
	int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (m > *mtime_ns)
		*mtime_ns = m;
	pc->stored = pc->id_size = size;
	pc->fd = fd;
	return IMG_OK;
}

/* The stored size, mtime and path of a source piece. */
static int stat_source_piece(struct piece *pc, int64_t *mtime_ns)
{
	int64_t m;
	rsrc_identity(pc->src, &pc->id_size, &m);
	if (m > *mtime_ns)
		*mtime_ns = m;
	pc->stored = rsrc_size(pc->src);
	pc->path = strdup(rsrc_first_path(pc->src));
	return pc->path ? IMG_OK : IMG_E_IO;
}

/* Size up piece i and place it after the ones before it. */
static int place_piece(struct concat *c, size_t i, img_err *err)
{
	struct piece *pc = &c->pieces[i];
	int rc = pc->src ? stat_source_piece(pc, &c->mtime_ns)
			 : stat_file_piece(pc, &c->mtime_ns, &c->in_order, err);
	if (rc == IMG_E_IO && pc->src)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "out of memory");
	if (rc != IMG_OK)
		return rc;
	if (!pc->src && c->files > RSRC_MAX_OPEN) {  /* reopened on demand */
		close(pc->fd);
		pc->fd = -1;
	} else if (!pc->src) {
		c->open_count++;
	}
	if (pc->stored < pc->skip)
		return img_err_set(err, IMG_E_TRUNCATED, 0, 1, pc->stored,
				   "%s: ends at byte %llu, inside its %llu-byte header", pc->path,
				   (unsigned long long)pc->stored, (unsigned long long)pc->skip);
	pc->size = pc->stored - pc->skip;
	pc->start = c->size;
	c->size += pc->size;
	return IMG_OK;
}

/* Find the piece holding byte off: the last one starting at or before it
 * (so empty pieces are passed over). */
static size_t piece_at(const struct concat *c, uint64_t off)
{
	size_t lo = 0, hi = c->count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->pieces[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Close the least recently used idle file piece. Call with the lock held. */
static void evict_one(struct concat *c)
{
	struct piece *victim = NULL;
	for (size_t i = 0; i < c->count; i++) {
		struct piece *pc = &c->pieces[i];
		if (pc->fd >= 0 && pc->users == 0 && (!victim || pc->last_use < victim->last_use))
			victim = pc;
	}
	if (victim) {
		close(victim->fd);
		victim->fd = -1;
		c->open_count--;
	}
}

static int piece_acquire(struct concat *c, struct piece *pc, img_err *err)
{
	int rc = IMG_OK;
	pthread_mutex_lock(&c->lock);
	if (pc->fd < 0) {
		if (c->open_count >= RSRC_MAX_OPEN)
			evict_one(c);
		pc->fd = open(pc->path, O_RDONLY | O_CLOEXEC);
		if (pc->fd < 0)
			rc = open_error(err, pc->path, errno);
		else
			c->open_count++;
	}
	if (rc == IMG_OK) {
		pc->users++;
		pc->last_use = ++c->clock;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static void piece_release(struct concat *c, struct piece *pc)
{
	pthread_mutex_lock(&c->lock);
	pc->users--;
	pthread_mutex_unlock(&c->lock);
}

/* pread of a file piece's data bytes [at, at + len); *got short only at its end. */
static int pread_file_piece(struct concat *c, struct piece *pc, uint8_t *buf, size_t len,
			    uint64_t at, size_t *got, img_err *err)
{
	int on_demand = c->files > RSRC_MAX_OPEN;
	if (on_demand) {
		int rc = piece_acquire(c, pc, err);
		if (rc != IMG_OK)
			return rc;
	}
	size_t done = 0;
	int rc = IMG_OK;
	while (done < len) {
		uint64_t in_file = pc->skip + at + done;
		ssize_t n = pread(pc->fd, buf + done, len - done, (off_t)in_file);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = img_err_set(err, IMG_E_IO, errno, 1, pc->start + at + done,
					 "%s: read error at byte %llu: %s", pc->path,
					 (unsigned long long)in_file, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	if (on_demand)
		piece_release(c, pc);
	*got = done;
	return rc;
}

static int concat_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	struct concat *c = (struct concat *)r;
	uint8_t *out = buf;
	size_t done = 0;
	*got = 0;
	while (done < len && off + done < c->size) {
		struct piece *pc = &c->pieces[piece_at(c, off + done)];
		uint64_t at = off + done - pc->start;
		size_t want = len - done;
		if (want > pc->size - at)
			want = (size_t)(pc->size - at);
		size_t n = 0;
		int rc = pc->src ? rsrc_pread(pc->src, out + done, want, pc->skip + at, &n, err)
				 : pread_file_piece(c, pc, out + done, want, at, &n, err);
		done += n;
		*got = done;
		if (rc != IMG_OK)
			return rc;
		if (n < want)  /* the piece shrank since it was opened */
			return img_err_set(err, IMG_E_IO, EIO, 1, off + done,
					   "%s: ends at byte %llu, %llu bytes earlier than when it was opened",
					   pc->path, (unsigned long long)(pc->skip + at + n),
					   (unsigned long long)(pc->size - at - n));
	}
	return IMG_OK;
}

static uint64_t concat_size(const img_rsrc *r)
{
	return ((const struct concat *)r)->size;
}

static void concat_identity(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns)
{
	const struct concat *c = (const struct concat *)r;
	uint64_t stored = 0;
	for (size_t i = 0; i < c->count; i++)
		stored += c->pieces[i].id_size;
	*size = stored;
	*mtime_ns = c->mtime_ns;
}

static const char *concat_first_path(const img_rsrc *r)
{
	return ((const struct concat *)r)->pieces[0].path;
}

static void concat_close(img_rsrc *r)
{
	struct concat *c = (struct concat *)r;
	for (size_t i = 0; i < c->count; i++) {
		if (c->pieces[i].fd >= 0)
			close(c->pieces[i].fd);
		free(c->pieces[i].path);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->pieces);
	free(c);
}

static const struct img_rsrc_methods concat_methods = {
	.name = "pieces",
	.caps = RSRC_CAP_RANDOM | RSRC_CAP_FILES,
	.pread = concat_pread,
	.size = concat_size,
	.identity = concat_identity,
	.first_path = concat_first_path,
	.close = concat_close,
};

/* The same with a pipe among the pieces: not for random reads. */
static const struct img_rsrc_methods concat_in_order_methods = {
	.name = "pieces",
	.caps = RSRC_CAP_FILES,
	.pread = concat_pread,
	.size = concat_size,
	.identity = concat_identity,
	.first_path = concat_first_path,
	.close = concat_close,
};

int rsrc_concat(const struct rsrc_piece *pieces, size_t count, img_err *err, img_rsrc **out)
{
	struct concat *c = calloc(1, sizeof *c);
	struct piece *pcs = calloc(count ? count : 1, sizeof *pcs);
	if (!c || !pcs || count == 0) {
		free(c);
		free(pcs);
		return img_err_set(err, count ? IMG_E_IO : IMG_E_USAGE, count ? ENOMEM : 0, 0, 0,
				   count ? "out of memory" : "no pieces to read");
	}
	c->base.m = &concat_methods;
	c->pieces = pcs;
	c->count = count;
	pthread_mutex_init(&c->lock, NULL);
	int rc = IMG_OK;
	for (size_t i = 0; i < count; i++) {
		pcs[i].fd = -1;
		pcs[i].src = pieces[i].src;
		pcs[i].skip = pieces[i].skip;
		c->files += pieces[i].src == NULL;
		if (!pieces[i].src && !(pcs[i].path = strdup(pieces[i].path)))
			rc = img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", pieces[i].path);
	}
	for (size_t i = 0; i < count && rc == IMG_OK; i++)
		rc = place_piece(c, i, err);
	if (c->in_order)
		c->base.m = &concat_in_order_methods;
	if (rc != IMG_OK) {
		concat_close(&c->base);
		return rc;
	}
	*out = &c->base;
	return IMG_OK;
}

int rsrc_open(const char *path, img_err *err, img_rsrc **out)
{
	char **names = NULL;
	size_t count = 0;
	int rc = split_list_pieces(path, &names, &count, err);
	if (rc < 0)
		return rc;
	struct rsrc_piece one = { .path = path };
	struct rsrc_piece *pcs = rc == IMG_EOF ? &one : calloc(count, sizeof *pcs);
	if (!pcs)
		rc = img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	else if (rc == IMG_EOF)
		count = 1;
	for (size_t i = 0; pcs && pcs != &one && i < count; i++)
		pcs[i].path = names[i];
	if (pcs)
		rc = rsrc_concat(pcs, count, err, out);
	if (pcs != &one)
		free(pcs);
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* ---- the sequential face ---------------------------------------------------- */

struct rsrc_reader {
	img_rsrc *r;
	uint64_t next;  /* offset in r of the next byte to produce */
};

static int reader_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct rsrc_reader *rd = s->priv;
	int rc = rsrc_pread(rd->r, dst, cap, rd->next, got, s->err);
	rd->next += *got;
	return rc;
}

static void reader_close(img_stream *s)
{
	free(s->priv);
}

static const struct img_stream_ops reader_ops = { "random-read source", reader_produce, reader_close, NULL, NULL };

int rsrc_stream_open(img_rsrc *r, uint64_t at, size_t buffer_size, img_err *err, img_stream **out)
{
	struct rsrc_reader *rd = malloc(sizeof *rd);
	if (!rd)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", rsrc_first_path(r));
	rd->r = r;
	rd->next = at;
	img_stream *s = stream_new(&reader_ops, rd, NULL, err, rsrc_first_path(r), buffer_size);
	if (!s) {
		free(rd);
		return IMG_E_IO;
	}
	*out = s;
	return IMG_OK;
}

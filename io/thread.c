/*
 * io/thread.c - a read-ahead layer that runs the layers below it (the
 * decompressors and the file) in a thread of their own, so decoding overlaps
 * with whatever the reader does with the bytes (checksums, writing a disk).
 * The worker fills a ring of THREAD_BUFS buffers; produce() hands them over.
 * Above a layer that decodes ahead in threads of its own and buffers what
 * it made (img_stream.decodes_ahead: liblzma's threaded xz decoder), the
 * ring has THREAD_BUFS_BEHIND_AHEAD: that layer's buffers are the read-ahead
 * already, and more ring buffers would only be more memory.
 *
 * The reader's own buffer is handed over, not copied into: when a refill of
 * its buffer finds a whole ring buffer ready, the two buffers change places
 * (only the few bytes the reader still had visible are copied, into the
 * room kept in front of each ring buffer's data). Read directly (no peek),
 * bytes are copied as before. A layer below that decodes into whole
 * buffers of its own (zpar.c, stream_exchange) hands those over instead of
 * filling the ring's: the ring then holds one at a time, and the buffer
 * the reader gives up goes back to that layer.
 *
 * The layers below report errors to a slot of this layer's own (never the
 * shared one, which the reader's thread writes); produce() copies such an
 * error up when the reader reaches it. Not here: any decoding.
 *
 * fork(): the child of a process with a read-ahead layer (the mount daemon
 * forks after the image was opened) has no worker thread. A pthread_atfork
 * handler marks every live layer orphaned in the child: closing one there
 * frees it without waiting for the thread (which would wait forever), and
 * reading from one fails.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define THREAD_BUFS 4
/* Verify of the bench's xz -T2 -3 image (blocks of 12 MiB), liblzma's
 * memory for threads capped at 40 MiB (io/xz.c): peak RSS 60-67 MiB with 2
 * ring buffers, 55 MiB with 1, in the same time (2.8-3.6 s either way, 3
 * alternating rounds). */
#define THREAD_BUFS_BEHIND_AHEAD 1
#define THREAD_BUF_SIZE ((size_t)2 << 20)
/* Each ring buffer, and the reader's buffer they change places with (room
 * in front of the data: STREAM_KEEP). */
#define THREAD_ALLOC (STREAM_KEEP + THREAD_BUF_SIZE)
/* Decoded bytes ready in the ring, at most (one buffer at least): a layer
 * below that hands over its own buffers (8 MiB units) fills fewer. */
#define THREAD_RING_BYTES ((size_t)8 << 20)

struct ring_buf {
	uint8_t *data;         /* cap bytes (NULL until first filled); the bytes from STREAM_KEEP on */
	size_t cap, len, pos;
	int status;  /* IMG_OK, IMG_EOF (end of data), or the error that ended the data */
	int lent;    /* data is a whole buffer of the layer below's (stream_exchange) */
};

struct thread_src {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t filled, emptied;
	struct ring_buf ring[THREAD_BUFS];
	int nbufs;             /* ring buffers in use: THREAD_BUFS or THREAD_BUFS_BEHIND_AHEAD */
	int head, count;       /* the reader takes ring[head]; count buffers are ready */
	size_t ready;          /* their bytes */
	int whole;             /* the layer below hands over whole buffers: one at a time in the ring */
	int stop;
	/* the buffer the reader gave up last, when the layer below hands over
	 * its own (stream_exchange): that layer gets it back at the next fill */
	uint8_t *spare;
	size_t spare_cap;
	img_err below_err;     /* errors of the layers below */
	img_stream *below;
	int orphan;            /* in a fork()ed child: the worker does not exist here */
	struct thread_src *next_live;
};

/* ---- fork safety ------------------------------------------------------------ */

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thread_src *live;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&live_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&live_lock);
}

static void fork_child(void)
{
	for (struct thread_src *t = live; t; t = t->next_live)
		t->orphan = 1;
	pthread_mutex_unlock(&live_lock);
}

static void atfork_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void live_add(struct thread_src *t)
{
	pthread_once(&atfork_once, atfork_init);
	pthread_mutex_lock(&live_lock);
	t->next_live = live;
	live = t;
	pthread_mutex_unlock(&live_lock);
}

static void live_remove(struct thread_src *t)
{
	pthread_mutex_lock(&live_lock);
	for (struct thread_src **pp = &live; *pp; pp = &(*pp)->next_live)
		if (*pp == t) {
			*pp = t->next_live;
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

/* The buffer the reader gave up last (exchange mode), or rb's own. */
static void take_spare(struct thread_src *t, struct ring_buf *rb)
{
	pthread_mutex_lock(&t->lock);
	uint8_t *b = t->spare;
	size_t cap = t->spare_cap;
	t->spare = NULL;
	pthread_mutex_unlock(&t->lock);
	if (b) {
		free(rb->data);
		rb->data = b;
		rb->cap = cap;
	}
}

/* Fill one buffer from the layers below: a whole buffer of theirs in place
 * of rb's (a layer that hands over its own), else what they already
 * buffered (sniffing peeked at it), then straight from their produce(). */
static void fill_one(struct thread_src *t, struct ring_buf *rb)
{
	rb->len = rb->pos = 0;
	rb->lent = 0;
	int rc = IMG_OK;
	if (t->below->ops->exchange) {
		take_spare(t, rb);
		rc = stream_exchange(t->below, &rb->data, &rb->cap, &rb->len);
		if (rc != IMG_OK || rb->len > 0) {
			rb->lent = rb->len > 0;
			rb->status = rc;
			return;
		}
	}
	if (!rb->data || rb->cap < THREAD_ALLOC) {
		free(rb->data);
		rb->cap = THREAD_ALLOC;
		if (!(rb->data = stream_buffer_alloc(rb->cap))) {
			rb->cap = 0;
			rb->status = img_err_set(&t->below_err, IMG_E_IO, ENOMEM, 0, 0,
						 "%s: out of memory for the read-ahead buffers", t->below->path);
			return;
		}
	}
	/* cancellable only inside a source's read(2): source_read() */
	rc = stream_read_direct(t->below, rb->data + STREAM_KEEP, rb->cap - STREAM_KEEP, &rb->len);
	rb->status = rc != IMG_OK ? rc : rb->len == 0 ? IMG_EOF : IMG_OK;
}

static void *worker(void *arg)
{
	struct thread_src *t = arg;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	int tail = 0, done = 0;
	while (!done) {
		pthread_mutex_lock(&t->lock);
		while ((t->count == t->nbufs || (t->count > 0 && (t->ready >= THREAD_RING_BYTES || t->whole))) &&
		       !t->stop)
			pthread_cond_wait(&t->emptied, &t->lock);
		int stop = t->stop;
		pthread_mutex_unlock(&t->lock);
		if (stop)
			break;
		struct ring_buf *rb = &t->ring[tail];
		fill_one(t, rb);
		done = rb->status != IMG_OK;
		pthread_mutex_lock(&t->lock);
		t->count++;
		t->ready += rb->len;
		pthread_cond_signal(&t->filled);
		pthread_mutex_unlock(&t->lock);
		tail = (tail + 1) % t->nbufs;
	}
	return NULL;
}

/* The reader is done with ring[head]: the worker may fill it again. */
static void ring_release(struct thread_src *t)
{
	pthread_mutex_lock(&t->lock);
	t->ready -= t->ring[t->head].len;
	t->head = (t->head + 1) % t->nbufs;
	t->count--;
	pthread_cond_signal(&t->emptied);
	pthread_mutex_unlock(&t->lock);
}

/*
 * A refill of the reader's own buffer (dst is its free end) that finds a
 * whole ring buffer: the reader's visible bytes go into the room in front of
 * the ring buffer's data, and the two buffers change places.
 * @return 1 when done (*got = the bytes added), 0 when the bytes are to be copied.
 */
static int hand_over(struct thread_src *t, img_stream *s, struct ring_buf *rb, uint8_t *dst, size_t *got)
{
	size_t visible = s->end - s->pos;
	if (!s->buf || dst != s->buf + s->end || rb->pos != 0 || rb->len == 0 || visible > STREAM_KEEP ||
	    s->cap < THREAD_ALLOC)  /* no buffer: given back by stream_read_direct */
		return 0;
	uint8_t *mine = s->buf;
	size_t mine_cap = s->cap;
#ifdef STREAM_POISON  /* the reader's old buffer is poisoned and freed, as in stream.c */
	mine = malloc(mine_cap);
	if (!mine)
		return 0;
#endif
	memcpy(rb->data + STREAM_KEEP - visible, s->buf + s->pos, visible);
#ifdef STREAM_POISON
	memset(s->buf, 0xA5, s->end);
	free(s->buf);
#endif
	s->buf = rb->data;
	s->cap = rb->cap;
	s->pos = STREAM_KEEP - visible;
	s->end = STREAM_KEEP;  /* the caller adds *got */
	*got = rb->len;
	rb->pos = rb->len;
	if (rb->lent) {
		/* a whole buffer of the layer below's came in: the emptied one
		 * goes back to that layer now, from the reader's thread, for
		 * its decoders may be waiting for the room (given back at this
		 * layer's next fill instead, the room stayed taken while this
		 * layer's thread decoded a unit of its own) */
		rb->data = NULL;
		rb->cap = 0;
		t->below->ops->give_back(t->below, mine, mine_cap);
	} else if (t->below->ops->exchange) {  /* the layer below gets it back at the next fill */
		rb->data = NULL;
		rb->cap = 0;
		pthread_mutex_lock(&t->lock);
		uint8_t *older = t->spare;
		t->spare = mine;
		t->spare_cap = mine_cap;
		pthread_mutex_unlock(&t->lock);
		free(older);
	} else {
		rb->data = mine;
		rb->cap = mine_cap;
	}
	return 1;
}

static int thread_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct thread_src *t = s->priv;
	if (t->orphan)  /* its lock may be held by a thread this process does not have */
		return stream_fail(s, IMG_E_IO, 0, 0, 0,
				   "the read-ahead thread does not exist in this process (fork)");
	pthread_mutex_lock(&t->lock);
	while (t->count == 0)
		pthread_cond_wait(&t->filled, &t->lock);
	pthread_mutex_unlock(&t->lock);
	struct ring_buf *rb = &t->ring[t->head];
	*got = 0;
	if (rb->pos == rb->len && rb->status != IMG_OK) {
		if (rb->status == IMG_EOF)
			return IMG_OK;  /* stays at the end: every later call sees it again */
		const img_err *e = &t->below_err;
		img_err_set(s->err, rb->status, e->sys_errno, e->has_offset, e->offset, "%s", e->msg);
		return rb->status;
	}
	if (rb->status == IMG_OK && hand_over(t, s, rb, dst, got)) {
		ring_release(t);
		return IMG_OK;
	}
	size_t n = rb->len - rb->pos < cap ? rb->len - rb->pos : cap;
	memcpy(dst, rb->data + STREAM_KEEP + rb->pos, n);
	rb->pos += n;
	*got = n;
	if (rb->pos == rb->len && rb->status == IMG_OK)
		ring_release(t);
	return IMG_OK;
}

static void free_ring(struct thread_src *t)
{
	for (int i = 0; i < THREAD_BUFS; i++)
		free(t->ring[i].data);
	free(t->spare);
}

/* Free t, its ring, lock and conditions (its worker has ended). */
static void free_thread_src(struct thread_src *t)
{
	free_ring(t);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->filled);
	pthread_cond_destroy(&t->emptied);
	free(t);
}

static void thread_close(img_stream *s)
{
	struct thread_src *t = s->priv;
	live_remove(t);
	if (t->orphan) {  /* no worker to stop; its lock may be held: leave it */
		free_ring(t);
		free(t);
		return;
	}
	pthread_mutex_lock(&t->lock);
	t->stop = 1;
	pthread_cond_broadcast(&t->emptied);
	pthread_mutex_unlock(&t->lock);
	pthread_cancel(t->thread);  /* only takes effect while it waits in read(2): source_read */
	pthread_join(t->thread, NULL);
	free_thread_src(t);
}

static const struct img_stream_ops thread_ops = { "read-ahead", thread_produce, thread_close, NULL, NULL };

int stream_push_thread(img_stream *up, img_stream **out)
{
	struct thread_src *t = calloc(1, sizeof *t);  /* the ring's buffers come with the first fills */
	if (!t)
		return stream_fail(up, IMG_E_IO, ENOMEM, 0, 0, "out of memory");
	img_stream *s = stream_new(&thread_ops, t, up, NULL, NULL, THREAD_ALLOC);
	if (!s) {
		free(t);
		return IMG_E_IO;
	}
	s->hands_over = 1;
	t->below = up;
	t->whole = up->ops->exchange != NULL;
	t->nbufs = up->decodes_ahead ? THREAD_BUFS_BEHIND_AHEAD : THREAD_BUFS;
	for (img_stream *l = up; l; l = l->up)  /* the layers below report to our slot */
		l->err = &t->below_err;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->filled, NULL);
	pthread_cond_init(&t->emptied, NULL);
	live_add(t);  /* before the thread exists: a fork() from now on marks it */
	if (pthread_create(&t->thread, NULL, worker, t) != 0) {
		live_remove(t);
		for (img_stream *l = up; l; l = l->up)
			l->err = s->err;
		free_thread_src(t);
		free(s->buf);
		free(s);  /* the caller keeps `up` */
		return stream_fail(up, IMG_E_IO, EAGAIN, 0, 0, "cannot start the read-ahead thread");
	}
	*out = s;
	return IMG_OK;
}

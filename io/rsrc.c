/*
 * io/rsrc.c - random reads of uncompressed image bytes: one file or block
 * device, or a split set of files addressed as one range (piece i covers
 * [start_i, start_i + size_i)). pread(2) only, so any number of threads may
 * read at once; split pieces are opened on demand, at most RSRC_MAX_OPEN at
 * a time, each with a use count so a piece is never closed under a reader.
 *
 * Not here: sequential streams (file.c, split.c) or anything about formats.
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
#include "zseek.h"

struct piece {
	char *path;
	uint64_t start, size;
	int fd;          /* -1 when closed */
	int users;       /* readers using fd now */
	uint64_t last_use;
};

struct img_rsrc {
	zs_view *view;      /* a decoded view (rsrc_decode): reads go there */
	img_rsrc *under;    /* ... over these compressed bytes (owned) */
	struct piece *pieces;
	size_t count;
	uint64_t size;
	int64_t mtime_ns;
	int open_count;
	uint64_t clock;
	pthread_mutex_t lock;
};

static int stat_piece(struct piece *pc, int64_t *mtime_ns, img_err *err)
{
	struct stat st;
	int fd = open(pc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return img_err_set(err, e == ENOENT ? IMG_E_MISSING : IMG_E_IO, e, 0, 0,
				   "%s: cannot open: %s", pc->path, strerror(e));
	}
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) != 0)
		size = 0;
	int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (m > *mtime_ns)
		*mtime_ns = m;
	pc->size = size;
	pc->fd = fd;
	return IMG_OK;
}

int rsrc_open(const char *path, img_err *err, img_rsrc **out)
{
	char **names = NULL;
	size_t count = 0;
	int rc = split_list_pieces(path, &names, &count, err);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF) {
		names = malloc(sizeof *names);
		if (names && (names[0] = strdup(path)) != NULL)
			count = 1;
	}
	img_rsrc *r = calloc(1, sizeof *r);
	struct piece *pcs = calloc(count ? count : 1, sizeof *pcs);
	if (!r || !pcs || count == 0) {
		for (size_t i = 0; i < count; i++)
			free(names[i]);
		free(names);
		free(r);
		free(pcs);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	}
	r->pieces = pcs;
	r->count = count;
	pthread_mutex_init(&r->lock, NULL);
	for (size_t i = 0; i < count; i++) {
		pcs[i].path = names[i];
		pcs[i].fd = -1;
	}
	free(names);
	rc = IMG_OK;
	for (size_t i = 0; i < count && rc == IMG_OK; i++) {
		rc = stat_piece(&pcs[i], &r->mtime_ns, err);
		pcs[i].start = r->size;
		r->size += pcs[i].size;
		if (rc == IMG_OK && count > RSRC_MAX_OPEN) {  /* reopened on demand */
			close(pcs[i].fd);
			pcs[i].fd = -1;
		} else if (rc == IMG_OK) {
			r->open_count++;
		}
	}
	if (rc != IMG_OK) {
		rsrc_close(r);
		return rc;
	}
	*out = r;
	return IMG_OK;
}

/* Find the piece holding byte off (binary search). */
static size_t piece_at(const img_rsrc *r, uint64_t off)
{
	size_t lo = 0, hi = r->count;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (r->pieces[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Close the least recently used idle piece. Call with the lock held. */
static void evict_one(img_rsrc *r)
{
	struct piece *victim = NULL;
	for (size_t i = 0; i < r->count; i++) {
		struct piece *pc = &r->pieces[i];
		if (pc->fd >= 0 && pc->users == 0 && (!victim || pc->last_use < victim->last_use))
			victim = pc;
	}
	if (victim) {
		close(victim->fd);
		victim->fd = -1;
		r->open_count--;
	}
}

static int piece_acquire(img_rsrc *r, struct piece *pc, img_err *err)
{
	int rc = IMG_OK;
	pthread_mutex_lock(&r->lock);
	if (pc->fd < 0) {
		if (r->open_count >= RSRC_MAX_OPEN)
			evict_one(r);
		pc->fd = open(pc->path, O_RDONLY | O_CLOEXEC);
		if (pc->fd < 0)
			rc = img_err_set(err, errno == ENOENT ? IMG_E_MISSING : IMG_E_IO, errno, 0, 0,
					 "%s: cannot open: %s", pc->path, strerror(errno));
		else
			r->open_count++;
	}
	if (rc == IMG_OK) {
		pc->users++;
		pc->last_use = ++r->clock;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static void piece_release(img_rsrc *r, struct piece *pc)
{
	if (r->count <= RSRC_MAX_OPEN)
		return;  /* every piece stays open: no bookkeeping needed */
	pthread_mutex_lock(&r->lock);
	pc->users--;
	pthread_mutex_unlock(&r->lock);
}

static int pread_piece(img_rsrc *r, struct piece *pc, uint8_t *buf, size_t len, uint64_t at,
		       size_t *got, img_err *err)
{
	if (r->count > RSRC_MAX_OPEN) {
		int rc = piece_acquire(r, pc, err);
		if (rc != IMG_OK)
			return rc;
	}
	size_t done = 0;
	int rc = IMG_OK;
	while (done < len) {
		ssize_t n = pread(pc->fd, buf + done, len - done, (off_t)(at + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = img_err_set(err, IMG_E_IO, errno, 1, pc->start + at + done,
					 "%s: read error at byte %llu: %s", pc->path,
					 (unsigned long long)(at + done), strerror(errno));
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	piece_release(r, pc);
	*got = done;
	return rc;
}

int rsrc_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	if (r->view)
		return zs_view_pread(r->view, buf, len, off, got, err);
	uint8_t *out = buf;
	size_t done = 0;
	*got = 0;
	while (done < len && off + done < r->size) {
		size_t i = piece_at(r, off + done);
		struct piece *pc = &r->pieces[i];
		uint64_t at = off + done - pc->start;
		size_t want = len - done;
		if (want > pc->size - at)
			want = (size_t)(pc->size - at);
		size_t n = 0;
		int rc = pread_piece(r, pc, out + done, want, at, &n, err);
		done += n;
		*got = done;
		if (rc != IMG_OK)
			return rc;
		if (n < want)  /* the file shrank since it was opened */
			return img_err_set(err, IMG_E_IO, EIO, 1, off + done,
					   "%s: ends at byte %llu, %llu bytes earlier than when it was opened",
					   pc->path, (unsigned long long)(at + n),
					   (unsigned long long)(pc->size - at - n));
	}
	return IMG_OK;
}

uint64_t rsrc_size(const img_rsrc *r)
{
	return r->view ? zs_view_size(r->view) : r->size;
}

const char *rsrc_first_path(const img_rsrc *r)
{
	return r->view ? rsrc_first_path(r->under) : r->pieces[0].path;
}

void rsrc_identity(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns)
{
	if (r->view) {
		rsrc_identity(r->under, size, mtime_ns);
		return;
	}
	*size = r->size;
	*mtime_ns = r->mtime_ns;
}

int rsrc_decode(img_rsrc **r, const struct img_codec *c, const uint8_t *saved, size_t saved_len,
		void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx, int *rebuilt,
		img_err *err)
{
	img_rsrc *raw = *r;
	if (!c->seek)
		return img_err_set(err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: %s data cannot be read at random", rsrc_first_path(raw), c->name);
	img_rsrc *v = calloc(1, sizeof *v);
	if (!v)
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", rsrc_first_path(raw));
	int rc = zs_view_open(raw, rsrc_first_path(raw), c->seek, saved, saved_len, progress,
			      progress_ctx, rebuilt, err, &v->view);
	if (rc != IMG_OK) {
		free(v);
		return rc;
	}
	v->under = raw;
	*r = v;
	return IMG_OK;
}

int rsrc_decoded_save(const img_rsrc *r, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	return r->view ? zs_view_save(r->view, out, len) : IMG_OK;
}

void rsrc_close(img_rsrc *r)
{
	if (!r)
		return;
	if (r->view) {
		zs_view_close(r->view);
		rsrc_close(r->under);
		free(r);
		return;
	}
	for (size_t i = 0; i < r->count; i++) {
		if (r->pieces[i].fd >= 0)
			close(r->pieces[i].fd);
		free(r->pieces[i].path);
	}
	pthread_mutex_destroy(&r->lock);
	free(r->pieces);
	free(r);
}

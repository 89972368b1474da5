/*
 * io/split.c - the split-set source layer: pieces NAME.aa, NAME.ab, ... made
 * by GNU split (coreutils 9.1 naming, FORMATS.md section 0) read as one
 * stream, one piece open at a time, with large read(2) calls straight into
 * the buffer produce() is given.
 *
 * Naming: with the default suffix length, split names pieces aa..yz (650),
 * then zaaa..zyzz, then zzaaaa..., i.e. when the first suffix letter would
 * become 'z' the 'z' joins the prefix and the suffix grows by one letter
 * ("auto-widening"). With an explicit `split -a N` the suffix has N letters
 * and never widens (aaa..zzz). split_next_name() follows both.
 *
 * Detection (source_open_split): `path` exists and its name ends in a run of
 * at least two 'a's, and one of the next SPLIT_LOOKAHEAD names exists; or
 * `path` does not exist and path.aa, pathaa, path.aaa or pathaaa does. A run
 * of exactly two 'a's is the default naming; a longer run is taken as
 * `split -a N` (N = the run), except that when the fixed-length successor of
 * a "...yz" piece is missing and the auto-widened one exists (a prefix that
 * itself ends in 'a', e.g. `split img sda`), the set switches to widening.
 *
 * Gaps: when a piece ends and the next name does not exist, the following
 * SPLIT_LOOKAHEAD names are checked; if one exists the set is IMG_E_MISSING,
 * naming the missing piece and the byte of the set where it would start.
 * Otherwise the set ends there (a set has no end marker).
 *
 * split_list_pieces() names the pieces of a set with the same rules, for
 * random reads (io/rsrc.c).
 *
 * Not here: partimage's .000/.001 volumes (each is its own compressed
 * stream; formats/ handles them), numeric suffixes (split -d).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "grow.h"

/* Names checked past a missing piece, and past the first one when detecting. */
#define SPLIT_LOOKAHEAD 4
/* Pieces named with the 2-letter suffix before the first widening. */
#define SPLIT_FIRST_RUN 650

struct split_src {
	char *user_path;    /* the name given: s->path, for messages */
	char *cur;          /* name of the current piece */
	size_t cur_size;    /* bytes allocated for cur and next names */
	size_t suffix_len;  /* letters of cur's suffix (grows by 2 at each widening) */
	int widen;          /* GNU default auto-widening naming */
	int ambiguous;      /* a run of >= 3 'a's: might still be widening naming */
	int fd;             /* the open piece, -1 when none */
	uint64_t piece_read;  /* bytes read from the open piece */
	uint64_t pieces;    /* pieces opened */
	int ended;
};

/* ---- naming ------------------------------------------------------------- */

int split_next_name(const char *name, size_t suffix_len, int widen, char *out, size_t outsz)
{
	size_t len = strlen(name);
	size_t zs = 0;  /* 'z's the widenings moved into the prefix */
	if (suffix_len == 0 || suffix_len > len)
		return -1;
	if (widen) {
		if (suffix_len < 2 || suffix_len % 2 != 0)
			return -1;
		zs = (suffix_len - 2) / 2;
	}
	const char *suffix = name + len - suffix_len;
	size_t count_len = suffix_len - zs;
	for (size_t i = 0; i < suffix_len; i++)
		if (suffix[i] < 'a' || suffix[i] > 'z' || (i < zs && suffix[i] != 'z'))
			return -1;
	if (widen && suffix[zs] == 'z')
		return -1;  /* never produced by the widening naming */
	if (len + 3 > outsz)
		return -1;
	memcpy(out, name, len + 1);
	char *c = out + len - count_len;
	size_t i = count_len;
	while (i-- > 0) {
		if (c[i] < 'z') {
			c[i]++;
			break;
		}
		c[i] = 'a';
		if (i == 0)
			return -1;  /* zz..z: exhausted (fixed length only) */
	}
	if (widen && c[0] == 'z') {
		/* "yz" -> "zaaa": the 'z' joins the prefix, one more letter. */
		memset(c + 1, 'a', count_len + 1);
		c[count_len + 2] = '\0';
	}
	return 0;
}

static int path_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/*
 * Look for an existing name among the `n` names after `name`.
 * @return 1 with found[] set, else 0.
 */
static int any_after(const char *name, size_t suffix_len, int widen, int n, char *found,
		     size_t size)
{
	char *a = malloc(size), *b = malloc(size);
	int hit = 0;
	if (!a || !b) {
		free(a);
		free(b);
		return 0;
	}
	strcpy(a, name);
	for (int i = 0; i < n && !hit; i++) {
		size_t before = strlen(a);
		if (split_next_name(a, suffix_len, widen, b, size) != 0)
			break;
		if (strlen(b) > before)
			suffix_len += 2;
		hit = path_exists(b);
		strcpy(a, b);
	}
	if (hit)
		strcpy(found, a);
	free(a);
	free(b);
	return hit;
}

/* ---- reading -------------------------------------------------------------- */

static int split_open_piece(img_stream *s, struct split_src *f, uint64_t at)
{
	int fd = open(f->cur, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return stream_fail(s, errno == ENOENT ? IMG_E_MISSING : IMG_E_IO, errno, 1, at,
				   "cannot open piece %s (byte %llu of the split set): %s", f->cur,
				   (unsigned long long)at, strerror(errno));
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	f->fd = fd;
	f->piece_read = 0;
	f->pieces++;
	return IMG_OK;
}

/*
 * Name the piece after cur into next (in the set's naming) and its suffix
 * length into *next_len, switching an ambiguous set to widening when only
 * the widened name exists.
 * @return 1 when next exists, 0 when it does not, -1 when names ran out.
 */
static int split_successor(struct split_src *f, char *next, size_t *next_len)
{
	if (split_next_name(f->cur, f->suffix_len, f->widen, next, f->cur_size) != 0)
		return -1;
	*next_len = f->suffix_len + (strlen(next) > strlen(f->cur) ? 2 : 0);
	if (path_exists(next))
		return 1;
	if (f->ambiguous && f->pieces == SPLIT_FIRST_RUN &&
	    split_next_name(f->cur, 2, 1, next, f->cur_size) == 0 && path_exists(next)) {
		f->widen = 1;
		f->ambiguous = 0;
		*next_len = 4;
		return 1;
	}
	split_next_name(f->cur, f->suffix_len, f->widen, next, f->cur_size);
	return 0;
}

/* The open piece ended: open the next one, or end the set, or report a gap. */
static int split_advance(img_stream *s, struct split_src *f, uint64_t at)
{
	close(f->fd);
	f->fd = -1;
	if (f->pieces > SPLIT_FIRST_RUN)
		f->ambiguous = 0;
	char *next = malloc(f->cur_size), *later = malloc(f->cur_size);
	if (!next || !later) {
		free(next);
		free(later);
		return stream_fail(s, IMG_E_IO, ENOMEM, 1, at, "out of memory");
	}
	size_t next_len = 0;
	int k = split_successor(f, next, &next_len);
	int rc = IMG_OK;
	if (k == 1) {
		strcpy(f->cur, next);
		f->suffix_len = next_len;
		rc = split_open_piece(s, f, at);
	} else if (k == 0 && any_after(next, next_len, f->widen, SPLIT_LOOKAHEAD, later, f->cur_size)) {
		rc = stream_fail(s, IMG_E_MISSING, ENOENT, 1, at,
				 "piece %s is missing (%s exists): the split set has a gap at byte %llu",
				 next, later, (unsigned long long)at);
	} else {
		f->ended = 1;
	}
	free(next);
	free(later);
	return rc;
}

static int split_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct split_src *f = s->priv;
	uint64_t at = s->offset + (s->end - s->pos);  /* byte of the set at dst */
	*got = 0;
	while (!f->ended) {
		ssize_t n = source_read(f->fd, dst, cap);
		if (n > 0) {
			f->piece_read += (uint64_t)n;
			*got = (size_t)n;
			return IMG_OK;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return stream_fail(s, IMG_E_IO, errno, 1, at,
					   "read error in piece %s at byte %llu of the piece (byte %llu of the split set): %s",
					   f->cur, (unsigned long long)f->piece_read, (unsigned long long)at,
					   strerror(errno));
		int rc = split_advance(s, f, at);
		if (rc != IMG_OK)
			return rc;
	}
	return IMG_OK;
}

static void split_close(img_stream *s)
{
	struct split_src *f = s->priv;
	if (f->fd >= 0)
		close(f->fd);
	free(f->user_path);
	free(f->cur);
	free(f);
}

static const struct img_stream_ops split_ops = { "split", split_produce, split_close, NULL, NULL };

/* ---- detection ------------------------------------------------------------ */

/* Trailing 'a's of the file name part of p. */
static size_t trailing_a_run(const char *p)
{
	const char *base = strrchr(p, '/');
	base = base ? base + 1 : p;
	size_t len = strlen(base), n = 0;
	while (n < len && base[len - 1 - n] == 'a')
		n++;
	return n;
}

/*
 * Find the first piece for `path`. @return 1 with *first (malloc'ed),
 * *suffix_len, *widen, *ambiguous set; 0 when path is not a split set; -1 out of memory.
 */
static int split_find_first(const char *path, char **first, size_t *suffix_len, int *widen,
			    int *ambiguous)
{
	static const char *const tails[] = { ".aa", "aa", ".aaa", "aaa" };
	size_t plen = strlen(path), size = plen + 8;
	char *name = malloc(size), *probe = malloc(size);
	int found = 0;
	if (!name || !probe) {
		free(name);
		free(probe);
		return -1;
	}
	if (path_exists(path)) {
		size_t run = trailing_a_run(path);
		strcpy(name, path);
		*suffix_len = run > 2 ? run : 2;
		*widen = run == 2;
		*ambiguous = run > 2;
		found = run >= 2 &&
			any_after(name, *suffix_len, *widen, SPLIT_LOOKAHEAD, probe, size);
	} else {
		for (size_t i = 0; i < sizeof tails / sizeof tails[0] && !found; i++) {
			snprintf(name, size, "%s%s", path, tails[i]);
			found = path_exists(name);
			*suffix_len = i < 2 ? 2 : 3;
			*widen = i < 2;
			*ambiguous = 0;
		}
	}
	free(probe);
	if (!found) {
		free(name);
		return 0;
	}
	*first = name;
	return 1;
}

int source_open_split(const char *path, img_err *err, img_stream **out)
{
	char *first = NULL;
	size_t suffix_len = 2;
	int widen = 1, ambiguous = 0;
	if (strcmp(path, "-") == 0)
		return IMG_EOF;
	int k = split_find_first(path, &first, &suffix_len, &widen, &ambiguous);
	if (k <= 0)
		return k == 0 ? IMG_EOF
			      : img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	struct split_src *f = calloc(1, sizeof *f);
	char *user = strdup(path);
	/* Room for the longest name the set can reach: 64 widenings is beyond any disk. */
	size_t cur_size = strlen(first) + 130;
	char *cur = malloc(cur_size);
	img_stream *s = NULL;
	if (f && user && cur) {
		strcpy(cur, first);
		*f = (struct split_src){ .user_path = user, .cur = cur, .cur_size = cur_size,
					 .suffix_len = suffix_len, .widen = widen,
					 .ambiguous = ambiguous, .fd = -1 };
		s = stream_new(&split_ops, f, NULL, err, user, 0);
	}
	free(first);
	if (!s) {
		free(f);
		free(user);
		free(cur);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	}
	int rc = split_open_piece(s, f, 0);
	if (rc != IMG_OK) {
		stream_close(s);
		return rc;
	}
	*out = s;
	return IMG_OK;
}

/* ---- listing (for random reads, io/rsrc.c) -------------------------------- */

static int list_push(char ***names, size_t *count, size_t *cap, const char *name)
{
	if (grow_for(names, cap, *count, sizeof **names, 16))
		return -1;
	if (!((*names)[*count] = strdup(name)))
		return -1;
	(*count)++;
	return 0;
}

static void list_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

static uint64_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/*
 * Follow the set from f->cur, pushing every piece; same naming, switch and
 * gap rules as the reader. @return IMG_OK, or IMG_E_MISSING / IMG_E_IO (err set).
 */
static int list_follow(struct split_src *f, const char *path, char ***names, size_t *count,
		       img_err *err)
{
	size_t cap = 0;
	uint64_t at = 0;
	char *next = malloc(f->cur_size), *later = malloc(f->cur_size);
	int rc = next && later && list_push(names, count, &cap, f->cur) == 0 ? IMG_OK : IMG_E_IO;
	f->pieces = 1;
	while (rc == IMG_OK) {
		size_t next_len = 0;
		at += file_size(f->cur);
		if (f->pieces > SPLIT_FIRST_RUN)
			f->ambiguous = 0;
		int k = split_successor(f, next, &next_len);
		if (k == 1) {
			strcpy(f->cur, next);
			f->suffix_len = next_len;
			f->pieces++;
			rc = list_push(names, count, &cap, f->cur) == 0 ? IMG_OK : IMG_E_IO;
			continue;
		}
		if (k == 0 && any_after(next, next_len, f->widen, SPLIT_LOOKAHEAD, later, f->cur_size))
			rc = img_err_set(err, IMG_E_MISSING, ENOENT, 1, at,
					 "%s: split: piece %s is missing (%s exists): the split set has a gap at byte %llu",
					 path, next, later, (unsigned long long)at);
		break;
	}
	if (rc == IMG_E_IO)
		img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: split: out of memory", path);
	free(next);
	free(later);
	return rc;
}

int split_list_pieces(const char *path, char ***names, size_t *count, img_err *err)
{
	char *first = NULL;
	struct split_src f = { .fd = -1 };
	*names = NULL;
	*count = 0;
	if (strcmp(path, "-") == 0)
		return IMG_EOF;
	int k = split_find_first(path, &first, &f.suffix_len, &f.widen, &f.ambiguous);
	if (k <= 0)
		return k == 0 ? IMG_EOF
			      : img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	f.cur_size = strlen(first) + 130;
	f.cur = malloc(f.cur_size);
	int rc = IMG_E_IO;
	if (f.cur) {
		strcpy(f.cur, first);
		rc = list_follow(&f, path, names, count, err);
	} else {
		img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", path);
	}
	free(first);
	free(f.cur);
	if (rc != IMG_OK) {
		list_free(*names, *count);
		*names = NULL;
		*count = 0;
	}
	return rc;
}

/*
 * formats/blkindex.c - the persistent index file. Layout (little-endian):
 *
 *   0  8  magic "IMGBKIDX"          40  8  image size (bytes, all pieces)
 *   8  4  version (1)               48  8  image mtime (ns, newest piece)
 *  12  4  index interval (blocks)   56  8  XXH64 of the image's first 64 KiB
 *  16 16  format name               64  8  payload length
 *  32  8  reserved (0)              72  .. payload (the format's own)
 *  end-8  XXH64 of every byte before it
 *
 * An index that does not match the image in every field, or whose checksum
 * fails, is ignored and rebuilt: it is a cache, never trusted blindly.
 *
 * Not here: what the payload means (each format's random_open).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "blkindex.h"

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int blkindex_identify(img_image *im, img_rsrc *stored, struct blkindex_id *id)
{
	memset(id, 0, sizeof *id);
	rsrc_identity(stored, &id->size, &id->mtime_ns);
	snprintf(id->format, sizeof id->format, "%s", im->fmt->name);
	size_t n = id->size < 65536 ? (size_t)id->size : 65536;
	uint8_t *head = malloc(n ? n : 1);
	if (!head)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	size_t got;
	int rc = rsrc_pread(stored, head, n, 0, &got, &im->err);
	if (rc == IMG_OK)
		id->header_hash = XXH64(head, got, 0);
	free(head);
	return rc;
}

static int dir_writable(const char *file)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", file);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		snprintf(dir, sizeof dir, ".");
	return access(dir, W_OK) == 0;
}

/* read() or write() until all len bytes moved: a call may move fewer (at
 * most about 2 GiB on Linux, less on a pipe) or be interrupted. */
static int move_full(int fd, uint8_t *p, size_t len, int writing)
{
	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int blkindex_read_full(int fd, void *buf, size_t len)
{
	return move_full(fd, buf, len, 0);
}

int blkindex_write_full(int fd, const void *buf, size_t len)
{
	return move_full(fd, (uint8_t *)buf, len, 1);
}

static void cache_path(const char *image, char *out, size_t outsz)
{
	const char *base = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char dir[900];
	if (base && *base)
		snprintf(dir, sizeof dir, "%s/imgbk", base);
	else
		snprintf(dir, sizeof dir, "%s/.cache/imgbk", home && *home ? home : "/tmp");
	char real[4096];
	if (!realpath(image, real))
		snprintf(real, sizeof real, "%s", image);
	const char *name = strrchr(real, '/');
	name = name ? name + 1 : real;
	snprintf(out, outsz, "%s/%.100s-%016llx.ibkx", dir, name,
		 (unsigned long long)XXH64(real, strlen(real), 0));
}

void blkindex_default_path(img_image *im, const char *given, char *out, size_t outsz)
{
	if (given && *given) {
		snprintf(out, outsz, "%s", given);
		return;
	}
	snprintf(out, outsz, "%s.ibkx", im->path);
	if (access(out, F_OK) == 0 || dir_writable(out))
		return;
	cache_path(im->path, out, outsz);
}

/* The slen bytes at `at` in fd, then their XXH64: whether they match (read
 * through a small buffer). */
static int states_good(int fd, uint64_t at, uint64_t slen)
{
	uint8_t *buf = malloc((size_t)1 << 20), want[8];
	XXH64_state_t *x = XXH64_createState();
	int good = buf && x && lseek(fd, (off_t)at, SEEK_SET) == (off_t)at;
	if (good)
		XXH64_reset(x, 0);
	for (uint64_t left = slen; good && left > 0;) {
		size_t n = left < ((uint64_t)1 << 20) ? (size_t)left : (size_t)1 << 20;
		good = blkindex_read_full(fd, buf, n) == 0;
		if (good)
			XXH64_update(x, buf, n);
		left -= n;
	}
	good = good && blkindex_read_full(fd, want, 8) == 0 && XXH64_digest(x) == get_le64(want);
	if (x)
		XXH64_freeState(x);
	free(buf);
	return good;
}

int blkindex_load(const char *path, const struct blkindex_id *id, uint32_t interval,
		  uint8_t **payload, size_t *len)
{
	uint64_t at, slen;
	return blkindex_load_states(path, id, interval, payload, len, &at, &slen);
}

int blkindex_load_states(const char *path, const struct blkindex_id *id, uint32_t interval,
			 uint8_t **payload, size_t *len, uint64_t *states_at, uint64_t *states_len)
{
	*payload = NULL;
	*len = 0;
	*states_at = *states_len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	struct stat st;
	uint8_t *b = NULL, head[BLKINDEX_HEADER];
	if (fstat(fd, &st) != 0 || st.st_size < BLKINDEX_HEADER + 8 || blkindex_read_full(fd, head, sizeof head) != 0)
		goto out;
	/* the checked part: header, payload, XXH64; then the states */
	uint64_t plen = get_le64(head + 64), slen = get_le64(head + 32);
	if (plen > BLKINDEX_MAX_PAYLOAD || slen > BLKINDEX_MAX_PAYLOAD ||
	    (uint64_t)st.st_size != BLKINDEX_HEADER + plen + 8 + slen + (slen ? 8 : 0))
		goto out;
	size_t total = (size_t)(BLKINDEX_HEADER + plen + 8);
	b = malloc(total);
	if (!b)
		goto out;
	memcpy(b, head, sizeof head);
	if (blkindex_read_full(fd, b + BLKINDEX_HEADER, total - BLKINDEX_HEADER) != 0)
		goto out;
	if (memcmp(b, BLKINDEX_MAGIC, 8) != 0 || get_le32(b + 8) != BLKINDEX_VERSION ||
	    get_le32(b + 12) != (interval ? interval : 1024) ||
	    strncmp((const char *)b + 16, id->format, 16) != 0 || get_le64(b + 40) != id->size ||
	    (int64_t)get_le64(b + 48) != id->mtime_ns || get_le64(b + 56) != id->header_hash ||
	    plen != total - BLKINDEX_HEADER - 8 || XXH64(b, total - 8, 0) != get_le64(b + total - 8))
		goto out;
	if (slen && !states_good(fd, total, slen))
		goto out;
	*payload = malloc(plen ? plen : 1);
	if (*payload) {
		memcpy(*payload, b + BLKINDEX_HEADER, plen);
		*len = plen;
		*states_at = total;
		*states_len = slen;
	}
out:
	free(b);
	close(fd);
	return 1;
}

static int write_file(const char *path, const uint8_t *hdr, const uint8_t *payload, size_t len,
		      const uint8_t *tail, const uint8_t *states, size_t slen)
{
	uint8_t stail[8];
	if (slen)
		put64(stail, XXH64(states, slen, 0));
	char tmp[1300];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int ok = blkindex_write_full(fd, hdr, BLKINDEX_HEADER) == 0 &&
		 blkindex_write_full(fd, payload, len) == 0 && blkindex_write_full(fd, tail, 8) == 0 &&
		 (slen == 0 || (blkindex_write_full(fd, states, slen) == 0 &&
				blkindex_write_full(fd, stail, 8) == 0)) &&
		 fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void make_dirs(const char *file)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", file);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		mkdir(dir, 0755);
		*p = '/';
	}
}

int blkindex_save(img_image *im, const char *given, const struct blkindex_id *id,
		  uint32_t interval, const uint8_t *payload, size_t len, char *used, size_t usedsz)
{
	return blkindex_save_states(im, given, id, interval, payload, len, NULL, 0, used, usedsz);
}

int blkindex_save_states(img_image *im, const char *given, const struct blkindex_id *id, uint32_t interval,
			 const uint8_t *payload, size_t len, const uint8_t *states, size_t slen, char *used,
			 size_t usedsz)
{
	uint8_t hdr[BLKINDEX_HEADER] = { 0 }, tail[8];
	memcpy(hdr, BLKINDEX_MAGIC, 8);
	uint32_t v = BLKINDEX_VERSION, k = interval ? interval : 1024;
	for (int i = 0; i < 4; i++) {
		hdr[8 + i] = (uint8_t)(v >> (8 * i));
		hdr[12 + i] = (uint8_t)(k >> (8 * i));
	}
	memcpy(hdr + 16, id->format, strnlen(id->format, 16));
	put64(hdr + 40, id->size);
	put64(hdr + 48, (uint64_t)id->mtime_ns);
	put64(hdr + 32, slen);
	put64(hdr + 56, id->header_hash);
	put64(hdr + 64, len);
	XXH64_state_t *x = XXH64_createState();
	if (!x)
		return IMG_E_IO;
	XXH64_reset(x, 0);
	XXH64_update(x, hdr, sizeof hdr);
	XXH64_update(x, payload, len);
	put64(tail, XXH64_digest(x));
	XXH64_freeState(x);
	if (write_file(used, hdr, payload, len, tail, states, slen) == 0)
		return IMG_OK;
	if (given && *given)
		return IMG_E_IO;
	cache_path(im->path, used, usedsz);
	make_dirs(used);
	return write_file(used, hdr, payload, len, tail, states, slen) == 0 ? IMG_OK : IMG_E_IO;
}

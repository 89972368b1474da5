/*
 * formats/blkindex.h - the persistent index file (IMAGE.ibkx): what binds it
 * to an image, where it lives, and loading and saving its payload.
 */
#ifndef IMGBK_BLKINDEX_H
#define IMGBK_BLKINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

/* What an index is bound to: the image's size, newest mtime and header hash. */
struct blkindex_id {
	uint64_t size;
	int64_t mtime_ns;
	uint64_t header_hash;  /* XXH64 of the first 64 KiB of the image bytes */
	char format[16];
};

#define BLKINDEX_MAGIC "IMGBKIDX"
#define BLKINDEX_VERSION 2  /* 2: states after the checked part (an index of version 1 is rebuilt) */
#define BLKINDEX_HEADER 72
#define BLKINDEX_MAX_PAYLOAD ((uint64_t)1 << 34)

/* The identity of `stored` (the image's files as stored, before decoding). */
int blkindex_identify(img_image *im, img_rsrc *stored, struct blkindex_id *id);
/* The file to use: `given`, else IMAGE.ibkx next to the image when its folder
 * is writable (or the file exists), else $XDG_CACHE_HOME/imgbk/NAME-HASH.ibkx. */
void blkindex_default_path(img_image *im, const char *given, char *out, size_t outsz);
/* Load a payload when the file at path is whole and matches id and interval.
 * Leaves *payload NULL otherwise (a stale, damaged or foreign index is ignored).
 * @return 1 when there is a file at path (taken or not), 0 when there is none. */
int blkindex_load(const char *path, const struct blkindex_id *id, uint32_t interval,
		   uint8_t **payload, size_t *len);
/* blkindex_load that also says where the states stored after the payload
 * are (*states_len bytes from file offset *states_at; 0 when none). They are
 * checked here against their own XXH64 (streamed, not kept: a reader reads
 * them from the file when it needs one, checked by its CRC-32 then). */
int blkindex_load_states(const char *path, const struct blkindex_id *id, uint32_t interval,
			 uint8_t **payload, size_t *len, uint64_t *states_at, uint64_t *states_len);
/* Write the index atomically (temporary file + rename); falls back to the
 * cache folder when `path` cannot be written. The path used goes to used. */
int blkindex_save(img_image *im, const char *given, const struct blkindex_id *id,
		  uint32_t interval, const uint8_t *payload, size_t len, char *used, size_t usedsz);
/* blkindex_save with states (slen bytes) stored after the checked part:
 * header (72 bytes; bytes 32-39 hold slen), payload, XXH64 of header and
 * payload, then (slen > 0) the states and their XXH64. */
int blkindex_save_states(img_image *im, const char *given, const struct blkindex_id *id, uint32_t interval,
			 const uint8_t *payload, size_t len, const uint8_t *states, size_t slen, char *used,
			 size_t usedsz);

/* Read or write all len bytes, going on after short counts (a single call
 * moves at most about 2 GiB on Linux) and EINTR. @return 0, or -1 (errno
 * set; a read that meets the end of the file first sets nothing). */
int blkindex_read_full(int fd, void *buf, size_t len);
int blkindex_write_full(int fd, const void *buf, size_t len);

#endif

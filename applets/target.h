/*
 * applets/target.h - the target of a restore: what it is and how it is
 * opened, written and closed (applets/target.c).
 */
#ifndef IMGBK_TARGET_H
#define IMGBK_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "../imgbk.h"

enum { TARGET_OK = 0, TARGET_REFUSED = 1, TARGET_SYSERR = 2 };
enum target_kind { TARGET_FILE = 1, TARGET_DEVICE, TARGET_STDOUT };

struct target {
	const char *path;
	enum target_kind kind;
	int fd;
	int created;  /* a new file was made */
	uint64_t unflushed;  /* bytes written since writeback was last started */
};

/* Open `path` for a partition of `need` bytes from image `im` (never one of
 * its own files; `im` may be NULL: nothing to compare); a refusal or failure
 * leaves a message in msg and writes nothing.
 * @return TARGET_OK/REFUSED/SYSERR. */
int target_open(struct target *t, const char *path, uint64_t need, const img_image *im, int force,
		char *msg, size_t msz);
/* Write len bytes at partition offset off (stdout: sequentially). */
int target_write_at(struct target *t, const void *buf, size_t len, uint64_t off, char *msg, size_t msz);
/* Write the buffers of iov, one after the other, at partition offset off. */
struct iovec;
int target_writev_at(struct target *t, struct iovec *iov, int cnt, uint64_t off, char *msg,
		     size_t msz);
/* fsync and close. */
int target_finish(struct target *t, char *msg, size_t msz);
void target_abort(struct target *t);

#endif

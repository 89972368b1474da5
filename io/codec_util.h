/*
 * io/codec_util.h - helpers shared by the codecs, private to io/ and
 * implemented in codecs.c: the staging of whole decoded blocks (lz4.c,
 * lzop.c), and, for the one codec that still has a streaming layer of its
 * own (zstd.c), one wording for its errors, one policy for the bytes after
 * the last frame, and the deferral of an error found after good bytes were
 * already decoded in the same produce() call. (The codecs with one decoder
 * word their errors with zseek.h's zs_corrupt, zs_truncated and
 * zs_input_finish; io/zstream.c defers for them.)
 *
 * Not here: the codec table (io.h, codecs.c) or anything a caller outside
 * io/ needs.
 *
 * The deferral: produce() must not lose the bytes it decoded before it hit
 * damage (or the end of a truncated input), so a layer records the error in
 * its struct codec_defer, stops, and codec_done() hands out the bytes made so
 * far; the error is reported (stream_fail) by the next produce() call, which
 * then makes no bytes.
 */
#ifndef IMGBK_IO_CODEC_UTIL_H
#define IMGBK_IO_CODEC_UTIL_H

#include "io.h"

/* Most bytes handed to one library call (zlib/libbz2 count in unsigned int). */
#define CODEC_MAX_STEP ((size_t)1 << 30)
/*
 * Input handed to one call of a library that does not say where in its input
 * an error is (libzstd, LZ4F leave the input position at the start of the
 * call): the error's offset is then the start of this step.
 */
#define CODEC_LOCATE_STEP ((size_t)128 << 10)

struct codec_defer {
	int code;       /* IMG_E_* waiting to be reported; IMG_OK when none */
	int sys_errno;
	int upstream;   /* the layer below failed: its message is in the slot already */
	uint64_t at;    /* offset in the compressed input (s->up) */
	char msg[320];
};

/* Record an error (the first one sticks). */
void codec_raise(struct codec_defer *d, int code, int sys_errno, uint64_t at, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));

/* Record that the layer below returned `code` (< 0). */
void codec_raise_up(struct codec_defer *d, int code);

/* "invalid compressed data at byte AT of the compressed stream (LIB: DETAIL)" */
void codec_corrupt(struct codec_defer *d, uint64_t at, const char *lib, const char *detail);

/* "the compressed stream ends inside a UNIT at byte AT (truncated)" */
void codec_truncated(struct codec_defer *d, uint64_t at, const char *unit);

/* Out of memory in the library named `lib`. */
void codec_nomem(struct codec_defer *d, uint64_t at, const char *lib);

/*
 * End of a produce() call: *got = done. With a recorded error and no bytes
 * made, fail s with it (stream_fail) and @return its code; else IMG_OK.
 */
int codec_done(img_stream *s, struct codec_defer *d, size_t done, size_t *got);

/*
 * Called at a boundary (a member/stream/frame ended) when the next bytes of
 * s->up do not start another one. Zero bytes up to the end of the input are
 * padding (tape blocks, a device larger than the file) and are consumed:
 * @return IMG_OK, the data ended. A non-zero byte records IMG_E_TRAILING
 * with its offset (nothing after a complete member is silently dropped or
 * decoded): @return IMG_E_TRAILING. An error below: @return it (recorded).
 */
int codec_finish_input(img_stream *s, struct codec_defer *d, const char *unit);

/*
 * Stack a codec layer with `ops` and `priv` over up (default buffer).
 * @return IMG_OK and *out, or IMG_E_IO (error set; the caller frees priv).
 */
int codec_layer_new(img_stream *up, const struct img_stream_ops *ops, void *priv,
		    img_stream **out);

/*
 * Decoders that decode whole blocks (lz4.c, lzop.c): a block goes
 * straight into the caller's buffer when its largest size fits there, else
 * into a staging buffer that the next reads hand out first.
 */
struct codec_stage {
	uint8_t *buf;
	size_t cap, pos, len;  /* buf[pos..len) waits to be handed out */
};

/* Where a block of up to `most` bytes goes: dst when room >= most, else the
 * stage (grown to most). NULL when out of memory. */
uint8_t *codec_stage_target(struct codec_stage *st, uint8_t *dst, size_t room, size_t most);

/* A block of n bytes was decoded at out (from codec_stage_target): *made =
 * n when it went to dst, else 0 and the stage holds it. */
void codec_stage_done(struct codec_stage *st, const uint8_t *dst, const uint8_t *out, size_t n,
		      size_t *made);

/* One step of a block decoder: a block into dst (room bytes), *made bytes
 * there; or a boundary handled (*made 0). */
typedef int (*codec_block_step)(void *dec, uint8_t *dst, size_t room, size_t *made, img_err *err);

/* zs_ops.read for such a decoder: staged bytes first, then steps until cap
 * bytes are out or *finished. */
int codec_stage_read(struct codec_stage *st, void *dec, codec_block_step step, const int *finished,
		     uint8_t *dst, size_t cap, size_t *got, img_err *err);

/* Little-endian u32 at p. */
static inline uint32_t codec_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif

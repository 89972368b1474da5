/*
 * io/io.h - the stream layer: byte sources (file, pipe, split set) with
 * decompression layers stacked on top, all read through peek/consume.
 *
 * io/ knows nothing of image formats, never prints and never exits. Errors go
 * to the img_err slot shared by the whole stack (first error sticks) with the
 * layer name, the file name and the byte offset.
 *
 * Peek/consume contract:
 *   stream_peek(s, min, &p, &avail) makes at least `min` bytes visible at p
 *   (IMG_OK), or all that is left when fewer remain (IMG_EOF, avail < min).
 *   p points into the stream's own buffer. A peek whose min is no more than
 *   the bytes already visible never moves or refills the buffer, so earlier
 *   pointers into the visible bytes stay valid; consume only advances the
 *   read position. A peek for more than is visible may move the buffer and
 *   invalidates every earlier pointer.
 */
#ifndef IMGBK_IO_H
#define IMGBK_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "../imgbk.h"

typedef struct img_stream img_stream;

/*
 * A layer's methods. produce() writes up to `cap` new bytes at dst and sets
 * *got; *got == 0 with IMG_OK means the end of the data. On failure it calls
 * stream_fail() and returns its negative status. A decoding layer pulls its
 * input from s->up with stream_peek/stream_consume (no copy of the input).
 */
struct img_stream_ops {
	const char *name;  /* "file", "stdin", "split", "gzip", ... used in messages */
	int (*produce)(img_stream *s, uint8_t *dst, size_t cap, size_t *got);
	void (*close)(img_stream *s);  /* frees s->priv only; NULL if nothing to free */
	/*
	 * Optional, for a layer that decodes into whole buffers of its own
	 * (io/zpar.c): hand over the next decoded bytes as a buffer instead of
	 * copying them. On entry *buf (*cap bytes; NULL: none) is an emptied
	 * buffer the caller gives away; on IMG_OK with *len > 0, *buf is the
	 * layer's buffer (*cap bytes), its *len bytes at *buf + STREAM_KEEP.
	 * *len == 0: no whole buffer now (*buf and *cap untouched): call
	 * produce(). Use it through stream_exchange.
	 */
	int (*exchange)(img_stream *s, uint8_t **buf, size_t *cap, size_t *len);
	/*
	 * With exchange (and only with it): take back an emptied buffer that
	 * exchange handed over, from any thread, at once: the layer's decoders
	 * may be waiting for its room.
	 */
	void (*give_back)(img_stream *s, uint8_t *buf, size_t cap);
};

/* A buffer of size bytes for bytes read or decoded in bulk; free() frees
 * it. From 2 MiB on it is 2 MiB-aligned transparent huge pages (a hint):
 * on a VM a fault per 4 KiB page of fresh memory costs 6-25 us
 * (io/stream.c). NULL when out of memory. */
uint8_t *stream_buffer_alloc(size_t size);

/* Give the memory of a stream_buffer_alloc(size) buffer back from byte keep
 * on (from the next huge page boundary, for a buffer of 2 MiB or more;
 * nothing for a smaller one): a buffer kept for reuse then holds as much
 * memory as the bytes it holds now, not the most it ever held. The bytes
 * there read as zeros afterwards. */
void stream_buffer_trim(uint8_t *b, size_t size, size_t keep);

/* Room in front of the data of a buffer that is handed over (thread.c,
 * zpar.c) for the bytes the reader still had visible in the buffer it gives
 * up (a partclone checksum group is 1 MiB plus its checksum; a larger rest
 * is copied the old way). */
#define STREAM_KEEP (((size_t)1 << 20) + 4096)

struct img_stream {
	const struct img_stream_ops *ops;
	void *priv;            /* the layer's state */
	img_stream *up;        /* the layer below (owned: closed with this one), NULL for a source */
	img_err *err;          /* shared by the whole stack */
	const char *path;      /* file name for messages (owned by the stack's creator) */
	uint8_t *buf;          /* owned read buffer */
	size_t cap, pos, end;  /* visible bytes are buf[pos..end) */
	uint64_t offset;       /* stream offset of buf[pos] = bytes consumed so far */
	const struct img_codec *codec;  /* the codec entry of a decoding layer stacked by sniffing, else NULL */
	int at_end;            /* produce() reported the end */
	int failed;            /* a produce() failed: every later call fails too */
	int hands_over;        /* produce() may replace buf by a full one (thread.c) */
	int decodes_ahead;     /* the layer buffers decoded bytes made ahead in threads of its own */
};

/* Largest peek allowed (covers partclone's 64 MiB blocks plus a checksum). */
#define STREAM_MAX_PEEK ((size_t)160 << 20)
/* Default buffer of a layer. */
#define STREAM_DEFAULT_BUFFER ((size_t)4 << 20)
/* Most layers stacked by sniffing (split + codecs). */
#define STREAM_MAX_LAYERS 8

/*
 * Create a layer over `up` (NULL for a source). The new stream shares up's
 * error slot and path, or takes `err`/`path` for a source.
 * @return the stream, or NULL (error set to IMG_E_IO) when out of memory.
 */
img_stream *stream_new(const struct img_stream_ops *ops, void *priv, img_stream *up,
		       img_err *err, const char *path, size_t buffer_size);

/* Close s and every layer below it. NULL is fine. */
void stream_close(img_stream *s);

/* See the contract above. @return IMG_OK, IMG_EOF or a negative status. */
int stream_peek(img_stream *s, size_t min, const uint8_t **p, size_t *avail);

/* Advance by n visible bytes (n <= what the last peek made visible). */
void stream_consume(img_stream *s, size_t n);

/* Copy n bytes out (crossing refills). @return IMG_OK, IMG_EOF (*got < n), or an error. */
int stream_read(img_stream *s, void *dst, size_t n, size_t *got);

/* Read up to cap bytes into dst: the visible bytes (copied), or when there
 * are none, straight from the layer's produce() into dst, skipping this
 * stream's buffer. *got == 0 with IMG_OK: the end. For a layer that feeds
 * another buffer (read-ahead, volume sets). */
int stream_read_direct(img_stream *s, void *dst, size_t cap, size_t *got);

/* The layer's next whole buffer (img_stream_ops.exchange), when it hands
 * over buffers and no bytes of it are visible; else *len = 0 (use
 * stream_read_direct). @return IMG_OK or the layer's failure. */
int stream_exchange(img_stream *s, uint8_t **buf, size_t *cap, size_t *len);

/* Skip n bytes. @return IMG_OK, IMG_EOF if the data ends first, or an error. */
int stream_skip(img_stream *s, uint64_t n, uint64_t *skipped);

/*
 * Record an error on the stack (the first one sticks) and mark s failed.
 * The message is prefixed with "PATH: LAYER: " by this function.
 * @return code, so a layer can `return stream_fail(...)`.
 */
int stream_fail(img_stream *s, int code, int sys_errno, int has_offset, uint64_t offset,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Set an error on a bare slot (first one sticks). @return code. */
int img_err_set(img_err *err, int code, int sys_errno, int has_offset, uint64_t offset,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* zlib-compatible CRC-32 (crc32(crc, p, n)), the fastest available here
 * (ISA-L when the build has it): io/crc.c. */
uint32_t crc32_fast(uint32_t crc, const void *p, size_t n);

/* read(2) that a read-ahead thread may be cancelled in (io/thread.c stops
 * its worker so when it waits on a pipe): cancellation is enabled only
 * around the system call, never inside a decoder's library, whose locks a
 * cancelled thread would keep for ever (io/file.c). */
ssize_t source_read(int fd, void *dst, size_t cap);

/* ---- sources ----------------------------------------------------------- */
/* Open a regular file, a device, a pipe, or "-" (stdin). */
int source_open_file(const char *path, img_err *err, img_stream **out);

/*
 * If `path` is the first piece of a split set (name ending in "aa", a second
 * piece "...ab" exists) or `path` is missing but "path.aa"/"pathaa" exists,
 * open the whole set as one stream.
 * @return IMG_OK with *out set, IMG_EOF when path is not a split set (nothing
 *         opened), or a negative status.
 */
int source_open_split(const char *path, img_err *err, img_stream **out);

/* Name of the piece after `name` in GNU split order ("xaz" -> "xba", "xyz" -> "xzaaa"
 * with auto-widening when `widen`). Writes into out; @return 0, or -1 if no successor. */
int split_next_name(const char *name, size_t suffix_len, int widen, char *out, size_t outsz);

/* ---- byte sources for random reads (io/rsrc.c, io/zview.c, io/rsrc_stack.c) --
 * One interface for every way of reading image bytes at random. A source is
 * a struct whose first member is a struct img_rsrc pointing at a const
 * method table (SQLite's VFS habit); callers use the rsrc_* functions below,
 * which dispatch. The implementations:
 *   rsrc_open      one file or block device, or a split set (io/rsrc.c)
 *   rsrc_concat    pieces one after the other, each a file or another
 *                  source, each with a number of leading bytes that are not
 *                  data (a volume header: the caller says how many; io/
 *                  knows no format) (io/rsrc.c)
 *   rsrc_decode    the bytes a codec decodes from another source, through
 *                  access points (io/zview.c over io/zseek.c's view)
 * Which of these an image needs is decided in one place, rsrc_open_layers
 * (io/rsrc_stack.c), from the layers the sniffing stacked.
 * Every source's pread may be called from any number of threads at once.
 * Sequential reading of a source: rsrc_stream_open (an img_stream over it).
 */
typedef struct img_rsrc img_rsrc;

/* Capability bits (img_rsrc_methods.caps). */
#define RSRC_CAP_RANDOM  1u  /* pread reads any offset. Without it (a pipe given by
			      * name) the size is 0 and pread reads nothing: the bytes
			      * can only be read in order, by the stream layer */
#define RSRC_CAP_FILES   2u  /* identity() is the size and newest mtime of files, so an
			      * index can be bound to them */
#define RSRC_CAP_DECODED 4u  /* the bytes are decoded from another source; save() gives
			      * the access points that spare the next open a scan */

struct img_rsrc_methods {
	const char *name;  /* "file", "pieces", "decoded": for tests and messages */
	unsigned caps;     /* RSRC_CAP_* */
	/* Read len bytes at off; *got < len only at the end of the data. */
	int (*pread)(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err);
	uint64_t (*size)(const img_rsrc *r);
	/* NULL: the identity is the size and mtime 0. */
	void (*identity)(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns);
	const char *(*first_path)(const img_rsrc *r);
	/* NULL: nothing to save. */
	int (*save)(const img_rsrc *r, uint8_t **out, size_t *len);
	/* NULL: no access points (rsrc_decoded_points). */
	void (*points)(const img_rsrc *r, uint64_t *stateful, uint64_t *units, uint64_t *blind);
	/* NULL: never in memory. rsrc_peek / rsrc_unpeek. */
	int (*peek)(img_rsrc *r, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err);
	void (*unpeek)(img_rsrc *r, void *pin);
	void (*close)(img_rsrc *r);
};

/* The base every source starts with. */
struct img_rsrc {
	const struct img_rsrc_methods *m;
};

/* Split sets and volume sets keep at most this many files open at once. */
#define RSRC_MAX_OPEN 32

/* Open `path`: one file or device, or the split set source_open_split would
 * take it as (a pipe or socket opens too, without RSRC_CAP_RANDOM, and
 * without waiting for a writer). @return IMG_OK, or IMG_E_IO / IMG_E_MISSING. */
int rsrc_open(const char *path, img_err *err, img_rsrc **out);

/* One piece of a concatenation: a file (path, opened on demand) or a source
 * (src, borrowed: it must outlive the concatenation), whose first `skip`
 * bytes are left out. */
struct rsrc_piece {
	const char *path;  /* NULL when src is given */
	img_rsrc *src;
	uint64_t skip;
};

/* The data of `count` pieces one after the other (a split set: files, skip
 * 0; a volume set: each volume file minus its header). The sizes are taken
 * now; a piece shorter than its skip is IMG_E_TRUNCATED naming it. */
int rsrc_concat(const struct rsrc_piece *pieces, size_t count, img_err *err, img_rsrc **out);

/* Read len bytes at off; *got < len only at the end of the data.
 * @return IMG_OK, or IMG_E_IO / IMG_E_MISSING / IMG_E_CORRUPT... with err set. */
int rsrc_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err);
/* Look at the len bytes at off in place, without a copy: *p points at them
 * (valid until rsrc_unpeek(r, *pin)) when the source holds them in one piece
 * in memory (a decoded source: a segment it decoded whole); otherwise *p is
 * NULL and the caller reads them with rsrc_pread. The bytes are as checked
 * as pread's. @return IMG_OK, or what pread would return for those bytes. */
int rsrc_peek(img_rsrc *r, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err);
/* Let go of what rsrc_peek gave (pin NULL: nothing). */
void rsrc_unpeek(img_rsrc *r, void *pin);
uint64_t rsrc_size(const img_rsrc *r);
unsigned rsrc_caps(const img_rsrc *r);
/* Identity of the data: total size and the newest mtime (ns) of its files
 * (of the compressed files, for a decoded source). */
void rsrc_identity(const img_rsrc *r, uint64_t *size, int64_t *mtime_ns);
/* The first file (where an index is saved next to). */
const char *rsrc_first_path(const img_rsrc *r);
/* Close r and whatever it owns. NULL is fine. */
void rsrc_close(img_rsrc *r);

/*
 * The sequential face of a source: a stream source (peek/consume) whose byte
 * 0 is byte `at` of r, filled by pread into the stream's buffer, up to the
 * end of r. r is borrowed; messages name r's first file. buffer_size 0 =
 * the default.
 */
int rsrc_stream_open(img_rsrc *r, uint64_t at, size_t buffer_size, img_err *err,
		     img_stream **out);

struct img_codec;
/*
 * Turn *r into a random-read view of the bytes codec c decodes from it
 * (c->seek, io/zseek.h): reads, sizes and offsets are then decoded ones,
 * while rsrc_identity and rsrc_first_path still describe the compressed
 * files. `saved` (from rsrc_decoded_save, may be NULL) spares the scan when
 * it fits; *rebuilt = 1 when the data was scanned. progress may be NULL.
 * On failure *r is unchanged. (io/zview.c)
 */
int rsrc_decode(img_rsrc **r, const struct img_codec *c, const uint8_t *saved, size_t saved_len,
		void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx, int *rebuilt,
		img_err *err);
/* rsrc_decode with the saved states apart from `saved` (its front only): in
 * `states` (states_len bytes from byte states_at on), taken over (closed on failure too), read
 * on demand (zs_view_open_states). NULL states: rsrc_decode. */
int rsrc_decode_states(img_rsrc **r, const struct img_codec *c, const uint8_t *saved, size_t saved_len,
		       img_rsrc *states, uint64_t states_at, uint64_t states_len,
		       void (*progress)(void *, uint64_t, uint64_t),
		       void *progress_ctx, int *rebuilt, img_err *err);
/* How many leading bytes of a saved form (rsrc_decoded_save) are its points
 * table: the rest are their states, which an index file keeps apart. */
size_t rsrc_saved_front(const uint8_t *saved, size_t len);
/* A decoded source's access points in their saved form (malloc'd); nothing
 * (*out NULL) for another source. @return IMG_OK or IMG_E_IO. */
int rsrc_decoded_save(const img_rsrc *r, uint8_t **out, size_t *len);
/* A decoded source's access points with a state (checkpoints), the codec's
 * data units (zstd frames) and those where none could be made, when its
 * points were found now (all 0 for a loaded index or another source). */
void rsrc_decoded_points(const img_rsrc *r, uint64_t *stateful, uint64_t *units, uint64_t *blind);

/* ---- composing the source of an image's bytes (io/rsrc_stack.c) ---------- */
/* What the sniffing stacked under an image's bytes. */
struct rsrc_layers {
	char source[24];  /* the bottom layer: "file", "split", "stdin", ... */
	const struct img_codec *codecs[STREAM_MAX_LAYERS];  /* decoding layers, bottom first */
	size_t ncodecs;
};

/* The layers of the stack topped by `top` (read-ahead layers are left out). */
void rsrc_layers_of(const img_stream *top, struct rsrc_layers *out);

/* Whether rsrc_open_layers can build a random-read source for l: the source
 * is a file or a split set, under at most one decoding layer that has access
 * points (c->seek). */
int rsrc_layers_random(const struct rsrc_layers *l);

/* How rsrc_open_layers decodes. */
struct rsrc_build {
	/* Asked once, with the source of the stored bytes (the files), before
	 * any decoding: access points saved earlier for them (*points NULL when
	 * none). May be NULL. A negative return stops the build. */
	int (*saved_points)(void *ctx, img_rsrc *stored, const uint8_t **points, size_t *len);
	void *ctx;
	/* May be set by saved_points: the states of *points kept apart from them
	 * (*points is then the front only, rsrc_saved_front), in this source (an
	 * index file) from byte states_at on. The decoded source takes it over
	 * and reads a state from it when a read needs it. */
	img_rsrc *states;
	uint64_t states_at, states_len;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);  /* scan progress, may be NULL */
	void *progress_ctx;
	int rebuilt;  /* set: the access points were found by a scan */
};

/*
 * The random-read source of the bytes at the top of the stack described by
 * l, whose bottom layer opened `path`: the file or split set, then a decoded
 * source for its decoding layer. IMG_E_FORMAT when !rsrc_layers_random(l)
 * or `path` is a pipe (no RSRC_CAP_RANDOM).
 */
int rsrc_open_layers(const char *path, const struct rsrc_layers *l, struct rsrc_build *b,
		     img_err *err, img_rsrc **out);

/* The pieces of the split set starting with `path` (source_open_split's
 * detection), as a malloc'd array of malloc'd names. @return IMG_OK,
 * IMG_EOF when path is no split set, or an error. */
int split_list_pieces(const char *path, char ***names, size_t *count, img_err *err);

struct zs_ops;

/* ---- decoding layers --------------------------------------------------- */
/*
 * One entry per compressor, all a codec is to the rest of imgbk (io/codecs.c
 * holds the table; README "Adding a codec"): bid() looks at the first bytes
 * and returns nonzero when they are its magic; seek is its one decoder
 * (zseek.h), which serves the sequential layer, the scan and random reads.
 */
struct img_codec {
	const char *name;
	size_t magic_len;  /* bytes bid() wants to see */
	int (*bid)(const uint8_t *p, size_t n);
	/* Stacks a decoding layer of its own on `up`; NULL: the layer is the one
	 * decoder (seek->start) through zs_stream_open. */
	int (*open)(img_stream *up, img_stream **out);
	const struct zs_ops *seek;  /* its decoder (zseek.h); NULL when imgbk does not decode it */
	const char *tool;           /* the command that writes its decoded bytes to stdout: "gzip -dc" */
	const char *suffixes;       /* its file name suffixes without the dot, space separated: "gz" */
	/* When its data has no access points: the command (one %s: the file)
	 * that makes it mountable; NULL when the data always has them. */
	const char *mount_fix;
	/* A codec imgbk does not decode (seek NULL): the command (%s: the file)
	 * that converts the file to one it does. */
	const char *convert;
	/* Its data's unit finder (zseek.h zs_unit_len_fn), or NULL: with one,
	 * the sequential layer decodes two units at once (io/zpar.c). */
	size_t (*unit_len)(const uint8_t *p, size_t n, int at_end);
};

extern const struct img_codec *const img_codecs[];  /* NULL-terminated */

/* The entry called `name` (its first len bytes), or NULL. */
const struct img_codec *codec_by_name(const char *name, size_t len);
/* Stack c's decoding layer on up (for a codec imgbk does not decode: fail
 * with one line saying how to convert the file). */
int codec_open(const struct img_codec *c, img_stream *up, img_stream **out);
/* Process-wide, before images are opened: whether codec_open decodes the
 * independent units of a codec that has a unit finder on several cores
 * (io/zpar.c; 1, the default) or with one decoder. A process that reads
 * its images at random (mount, index, the NBD plugin) says 0: its
 * sequential stream only reads the header and bitmap, and units decoded
 * ahead of that would be work and memory for nothing (a mount daemon would
 * carry their memory over its fork). */
void codec_units_parallel(int on);

/* The layer of the one entry with an open of its own (io/xz.c: lzma-alone,
 * a stream without access points). Others: codec_open. */
int codec_lzma_open(img_stream *up, img_stream **out);

/* Every file the bytes of `path` may come from: the pieces of a split set,
 * or path and its numbered siblings (NAME.001, ... of a volume set), as a
 * malloc'd array of malloc'd names. @return IMG_OK or IMG_E_IO. */
int stream_source_names(const char *path, char ***names, size_t *count);

/* The name to open for `path`: path itself when it exists (or is "-"),
 * else path.000 when that exists (the first volume of a set), else path. */
const char *stream_resolve_name(const char *path, char *buf, size_t size);

/* The sniffing loop of stream_open_stack on an open source (which it owns,
 * and closes on failure). layers_out is appended to. */
int stream_stack_on(img_stream *src, int (*stop)(const uint8_t *p, size_t n), char *layers_out,
		    size_t layers_size, img_stream **out);

/* Run `up` and everything below it in a thread of its own (io/thread.c). */
int stream_push_thread(img_stream *up, img_stream **out);

/*
 * Open `path` and stack decoding layers while the top stream starts with a
 * compressor's magic (at most STREAM_MAX_LAYERS). `stop` (may be NULL) is
 * asked first on each top: when it returns nonzero the bytes are what the
 * caller wants (an image format), and no codec is tried.
 * layers_out receives a description like "split+gzip" (may be NULL).
 * When any decoding layer was stacked, a read-ahead thread layer goes on top.
 */
int stream_open_stack(const char *path, img_err *err, int (*stop)(const uint8_t *p, size_t n),
		      char *layers_out, size_t layers_size, img_stream **out);

#endif

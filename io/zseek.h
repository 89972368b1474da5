/*
 * io/zseek.h - random reads into compressed data (the access-point idea of
 * zlib's examples/zran.c), for mounting compressed images.
 *
 * One full pass over the compressed bytes (a codec's scan) finds access
 * points: places where decoding can start again, each with the decoded
 * offset it starts at and whatever state the decoder needs there (gzip: the
 * 32 KiB of output before it and the bit position; bzip2: a block start;
 * zstd, xz, lz4: a frame or block start). A read at decoded offset X then
 * decodes from the last point at or before X. The points are saved with the
 * image's index, so the pass runs once.
 *
 * A codec offers random access through one struct zs_ops in its img_codec
 * entry (io/codecs.c); a codec whose data has no restart points (one xz
 * block) reports that from its scan with IMG_E_FORMAT and a message saying
 * how to make the image mountable. (One zstd frame gets checkpoints inside
 * it: zstd_scan.c.)
 *
 * The core owns the points, their thinning, their saved form
 * (io/zseek_points.c), a few decoders ("cursors") positioned at the places
 * last read so that sequential reads cost one decode pass, and thread
 * safety (io/zseek.c). A codec file owns only its library calls.
 */
#ifndef IMGBK_IO_ZSEEK_H
#define IMGBK_IO_ZSEEK_H

#include <stddef.h>
#include <stdint.h>

#include "io.h"

/* A place where decoding can start. */
struct zs_point {
	uint64_t cin;        /* compressed offset of the first byte the decoder reads */
	uint64_t uout;       /* decoded offset of the first byte it produces */
	uint32_t bits;       /* codec-defined, < 2^16 (gzip: unread bits of byte cin - 1) */
	uint32_t aux;        /* codec-defined */
	uint64_t aux2;       /* codec-defined */
	uint32_t state_len;  /* bytes at state, at most ZS_MAX_STATE */
	uint8_t *state;      /* codec state needed here (a window); NULL when none */
};

#define ZS_MAX_STATE ((uint32_t)1 << 28)  /* 256 MiB: a sparse window of up to 128 MiB and its runs */

/*
 * Sequential reading of the compressed bytes, for decoders: from an img_rsrc
 * at an offset (random access: a read into the input's own buffer), or from
 * the img_stream below a decoding layer (zero copy: buf points into that
 * stream's buffer, and what the decoder used is consumed at the next fill).
 */
struct zs_input {
	img_rsrc *raw;       /* random access source, or NULL */
	img_stream *up;      /* sequential source, or NULL */
	struct zs_scan *sc;  /* a scan's progress is reported from here, or NULL */
	uint64_t next_progress;
	uint64_t offset;     /* compressed offset of buf[0] (buf[pos] is at offset + pos) */
	uint8_t *buf;
	size_t pos, end, cap;
	int eof;             /* the compressed data ended at buf[end] */
};

/* Start reading raw at offset (cap 0 = 1 MiB buffer). @return IMG_OK or IMG_E_IO. */
int zs_input_init(struct zs_input *in, img_rsrc *raw, uint64_t offset, size_t cap, img_err *err);
/* Make at least `min` unread bytes visible at in->buf + in->pos when the
 * data has them (moves the unread bytes to the buffer's start first).
 * @return IMG_OK (check in->end - in->pos; fewer than min only at the end),
 * or an error (a stream's error is in its slot already). min <= cap. */
int zs_input_fill(struct zs_input *in, size_t min, img_err *err);
/* zs_input_fill for a unit of `min` bytes that may be larger than the
 * buffer (which then grows; a stream source peeks up to STREAM_MAX_PEEK). */
int zs_input_need(struct zs_input *in, size_t min, img_err *err);
/* Compressed offset of the next unread byte. */
static inline uint64_t zs_input_at(const struct zs_input *in)
{
	return in->offset + in->pos;
}
/* At a boundary after the last member/stream/frame: zero bytes up to the end
 * of the data are padding (a tape block, a device larger than the file) and
 * are read over; any other byte is IMG_E_TRAILING: "NAME: CODEC: trailing
 * garbage at byte AT of the compressed stream, after the last UNIT (0xNN is
 * not the start of another one)". */
int zs_input_finish(struct zs_input *in, const char *name, const char *codec, const char *unit,
		    img_err *err);
void zs_input_free(struct zs_input *in);
/* A buffer of cap bytes from the few kept for reuse (256 KiB, 512 KiB and
 * 1 MiB ones), else malloc(cap); give it back with zs_buf_give (kept, or
 * freed when the sizes' slots are full). Thread-safe. NULL when out of memory. */
uint8_t *zs_buf_take(size_t cap);
void zs_buf_give(uint8_t *b, size_t cap);

/* What a scan is given and reports. */
struct zs_scan {
	img_rsrc *raw;        /* the compressed bytes */
	const char *name;     /* file name for messages */
	uint64_t span;        /* wanted decoded bytes between points that carry state */
	img_err *err;
	uint64_t usize;       /* set by the scan: total decoded bytes */
	/* Progress, may be NULL: compressed bytes read so far of total. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	int states_packed;     /* set by the codec: its states are compressed already (stored as given) */
	uint64_t units, blind; /* set by the codec: its data units (zstd frames), and how many of
				* those big enough for points inside could get none (their blocks
				* could not be followed): reads there decode from the unit's start */
	const struct img_codec *codec;  /* its table entry (mount_fix, tool), NULL when not in the table */
	struct zs_core *core;  /* the core's private side */
};

/* Hand a point to the core (it copies p->state). Points must come in
 * increasing uout order, the first at uout 0. @return IMG_OK or IMG_E_IO. */
int zs_add_point(struct zs_scan *sc, const struct zs_point *p);
/* Like zs_add_point, with the CRC-32 of p's segment (the decoded bytes
 * from p to the next point added, or to the end) given by the codec, for
 * codecs that add points after their bytes went by. */
int zs_add_point_crc(struct zs_scan *sc, const struct zs_point *p, uint32_t crc);
/* Optional: every decoded byte, in order, as the scan makes it. The core
 * then keeps a CRC-32 of each segment (the bytes from one point to the
 * next), and the view checks a segment's bytes against it the first time
 * they are read: for codecs whose decoders check nothing themselves when
 * they start mid-way (gzip's raw inflate has no CRC). */
void zs_scan_output(struct zs_scan *sc, const uint8_t *p, size_t n);
/* Decoded offset of the last point that carries state (0 before any), so a
 * codec knows when the next stateful point is due: uout >= last + span. */
uint64_t zs_last_state_point(const struct zs_scan *sc);
/* Call now and then with the compressed offset reached. */
void zs_scan_progress(struct zs_scan *sc, uint64_t compressed_done);

/* One wording for the codecs' errors, naming the file and the compressed
 * offset: "NAME: CODEC: invalid compressed data at byte AT of the
 * compressed stream (CODEC: DETAIL)", "NAME: CODEC: the compressed stream
 * ends inside a UNIT at byte AT (truncated)". @return the IMG_E_* code. */
int zs_corrupt(img_err *err, const char *name, const char *codec, uint64_t at, const char *detail);
int zs_truncated(img_err *err, const char *name, const char *codec, const char *unit, uint64_t at);

/*
 * Where a codec's one decoder starts and what it does (zs_ops.start). Every
 * use of a codec is this decoder: the sequential stream (io/zstream.c) is
 * it started at the start of the data, reading from the layer below; the
 * scan is it started there in scan mode, adding points as it passes them;
 * a random read starts it at a point found by the scan.
 */
struct zs_start {
	img_rsrc *raw;             /* random access to the compressed bytes, or NULL */
	img_stream *up;            /* sequential: the layer below, or NULL */
	const char *name;          /* file name for messages */
	const struct zs_point *p;  /* where to start; the first point is all zeros */
	uint64_t next_uout;        /* random reads: the decoder may stop here */
	struct zs_scan *sc;        /* scan mode: hand points to sc as they pass, or NULL */
	int whole;                 /* decode on through every member to the end of the data,
				    * with the trailing-bytes policy (stream and scan) */
	int contiguous;            /* random reads of a segment decoded whole: each read asks for
				    * every byte up to next_uout, at the end of the last one's, in
				    * one buffer left as it is while the decoder lives, so a codec
				    * may decode straight into it, with no window of its own (a
				    * first read that asks for less: the codec's usual way) */
};

/* Open in->raw at offset or in->up, as st says. @return IMG_OK or IMG_E_IO. */
int zs_input_start(struct zs_input *in, const struct zs_start *st, uint64_t offset, size_t cap,
		   img_err *err);

/* Refuse data without access points: "NAME: CODEC: WHAT cannot be read at
 * random; make it mountable with: FIX, or decompress it: TOOL NAME >
 * IMAGE.img" (FIX and TOOL from the codec's table entry). @return IMG_E_FORMAT. */
int zs_not_mountable(struct zs_scan *sc, const char *what);

struct zs_ops {
	/*
	 * Decode all of sc->raw once, adding points: its natural restart
	 * points (frame/block/member starts) and, for codecs that need a
	 * window, a stateful point whenever uout >= zs_last_state_point() +
	 * span at a place the library allows. Set sc->usize. Errors (damage,
	 * truncation, no restart points) go to sc->err naming sc->name and the
	 * compressed offset.
	 */
	int (*scan)(struct zs_scan *sc);  /* NULL: run start() in scan mode (below) */
	/* A decoder that starts producing at point p (the last point of the
	 * list is at index count - 1; next_uout is the uout of the following
	 * point, or the total size: a decoder may stop there). */
	int (*open)(img_rsrc *raw, const char *name, const struct zs_point *p, uint64_t next_uout,
		    void **dec, img_err *err);
	/* The next decoded bytes; *got == 0 with IMG_OK when this decoder can
	 * go no further (its segment or the data ended). */
	int (*read)(void *dec, uint8_t *dst, size_t cap, size_t *got, img_err *err);
	void (*close)(void *dec);
	/* 1 when every decoder decodes exactly one segment and checks it (a
	 * block or frame check) before it reports its end (*got == 0): the core
	 * then has a read that hands out bytes of a segment decode on to that
	 * end first. 0: the core checks segments with the CRCs fed by
	 * zs_scan_output, if any. */
	int self_checked;
	/* The codec's one decoder (struct zs_start says where and how); with
	 * it, read/close serve it, open is NULL and scan may be NULL. */
	int (*start)(const struct zs_start *st, void **dec, img_err *err);
	/* 1 when start()'s decoder of the whole data decodes ahead in threads of
	 * its own and buffers what it made (liblzma's threaded xz decoder): the
	 * read-ahead layer above it then keeps a smaller ring (io/thread.c). */
	int decodes_ahead;
	/*
	 * Optional, for data made of units (io/zpar.c): decode one whole unit
	 * of the unit finder's making, all of it in memory at src[0..n), into
	 * dst in one call: no window buffer, no copy out of one. unit_bound:
	 * the most bytes the unit can make (from its headers), 0 when unknown.
	 * unit_decode: *ctx is the caller's context, NULL at first and reused
	 * (free it with unit_ctx_free). @return IMG_OK with *got, or a negative
	 * status with no message: the caller then decodes the unit with
	 * start(), which finds and words the error.
	 */
	uint64_t (*unit_bound)(const uint8_t *src, size_t n);
	int (*unit_decode)(void **ctx, const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *got);
	void (*unit_ctx_free)(void *ctx);
};

/*
 * A unit finder (struct img_codec's unit_len), for data made of independent
 * units: whole streams or frames that the codec's start() decodes alone
 * exactly as it decodes them in sequence. From headers and magics only,
 * nothing decoded: p[0..n) are the compressed bytes from a unit's start;
 * at_end: the data ends at p + n. @return the unit's length (<= n), 0 when
 * more bytes are needed to tell, or ZS_UNIT_NONE when p does not start a
 * unit it knows (the rest is then decoded in one piece). A boundary may be
 * false (a magic by chance): io/zpar.c checks every unit by decoding it.
 */
typedef size_t (*zs_unit_len_fn)(const uint8_t *p, size_t n, int at_end);
#define ZS_UNIT_NONE ((size_t)-1)

/* The finders (io/zunits.c): bzip2 streams (pbzip2), zstd frames with the
 * skippable frames before them (pzstd, zstd -T0 --rsyncable...). */
size_t zs_bzip2_unit_len(const uint8_t *p, size_t n, int at_end);
size_t zs_zstd_unit_len(const uint8_t *p, size_t n, int at_end);

/*
 * The sequential decoding layer of a codec with a start() decoder: the
 * decoder started at the start of up's data, produce() = read() (with the
 * deferral of an error found after good bytes: those go out first).
 */
int zs_stream_open(img_stream *up, const char *codec, const struct zs_ops *ops, img_stream **out);
/* That deferral, for the layers that run decoders (zstream.c, zpar.c): the
 * decoders report into err; IMG_OK there means the layer below failed and
 * its message is in the stack's slot already. */
struct zs_defer {
	int pending;  /* an error waits to be reported */
	img_err err;
};
/* Before a read(): @return the error deferred by the last call (handed to
 * s's slot), or IMG_OK when none. */
int zs_defer_due(img_stream *s, struct zs_defer *d);
/* After a read() that returned rc with got bytes: @return what produce()
 * returns (IMG_OK when bytes came with the error: it is deferred). */
int zs_defer_outcome(img_stream *s, struct zs_defer *d, int rc, size_t got);
/* The same layer for data with units that unit_len finds, decoding them
 * ahead on worker threads (io/zpar.c); codec_open opens it for a codec with
 * a finder when the machine has more than one core. */
int zpar_stream_open(img_stream *up, const char *codec, const struct zs_ops *ops, zs_unit_len_fn unit_len,
		     img_stream **out);

/* What a unit layer did so far, for tests and the bench. */
struct zpar_counts {
	uint64_t units;    /* units read (the tail not counted) */
	uint64_t tails;    /* times one decoder took over to the end */
	uint64_t at_once;  /* units decoded by the codec's unit_decode */
	uint64_t whole;    /* units handed over whole (exchange) */
	uint64_t given_back;  /* emptied buffers given back at once (give_back) */
	uint64_t early_free;  /* units whose compressed bytes went before the unit was handed out */
};
/* s: a unit layer, or the read-ahead layer right above one. @return 0, or
 * -1 when s is neither. */
int zpar_stream_counts(img_stream *s, struct zpar_counts *out);

extern const struct zs_ops zs_gzip_ops, zs_bzip2_ops, zs_zstd_ops, zs_xz_ops, zs_lz4_ops, zs_lzip_ops;

/* ---- the decoded view (io/zseek.c) ----------------------------------------- */
typedef struct zs_view zs_view;

/*
 * Open a random-read view of the data decoded from raw (which it borrows)
 * with ops. When saved (from zs_view_save of the same data) is valid, its
 * points are used; else the data is scanned (progress may be NULL).
 * *rebuilt says which happened.
 */
int zs_view_open(img_rsrc *raw, const char *name, const struct zs_ops *ops, const uint8_t *saved,
		 size_t saved_len, void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx,
		 int *rebuilt, img_err *err, zs_view **out);
/* zs_view_open with the saved states kept apart from saved (which is then
 * the front of a saved form only, zs_saved_front): in states (an index
 * file), states_len bytes from byte states_at on. The view owns states (closes it, also on
 * failure) and reads a point's state from it when a decoder starts there,
 * checked against the CRC-32 the front holds (damage: IMG_E_CORRUPT for
 * that segment's reads). NULL states: zs_view_open. */
int zs_view_open_states(img_rsrc *raw, const char *name, const struct zs_ops *ops, const uint8_t *saved,
			size_t saved_len, img_rsrc *states, uint64_t states_at, uint64_t states_len,
			void (*progress)(void *, uint64_t, uint64_t), void *progress_ctx, int *rebuilt, img_err *err,
			zs_view **out);
/* The bytes of a saved form (zs_view_save) before its states: the points
 * table. An index file stores the states after its checked part, and a
 * view loaded from it reads them on demand. len when saved is not one. */
size_t zs_saved_front(const uint8_t *saved, size_t len);
/* Thread-safe. *got < len only at the end of the data. */
int zs_view_pread(zs_view *v, void *buf, size_t len, uint64_t off, size_t *got, img_err *err);
/* rsrc_peek of a view (thread-safe): the bytes in place when they lie in one
 * segment the view holds whole (decoding and checking it first, as
 * zs_view_pread would); the segment stays held until zs_view_unpeek. *p is
 * NULL when they do not (a segment too big to hold, or the range crosses a
 * segment's end, or is past the data). */
int zs_view_peek(zs_view *v, size_t len, uint64_t off, const uint8_t **p, void **pin, img_err *err);
void zs_view_unpeek(zs_view *v, void *pin);
uint64_t zs_view_size(const zs_view *v);
/* The points in their saved form (malloc'd). @return IMG_OK or IMG_E_IO. */
int zs_view_save(const zs_view *v, uint8_t **out, size_t *len);
/* Points and the bytes their states take, for messages and tests. */
void zs_view_stats(const zs_view *v, size_t *points, uint64_t *state_bytes);
/* Where point i's segment starts (a decoded offset; i < points), for tests. */
uint64_t zs_view_point_at(const zs_view *v, size_t i);
/* For messages: points with a state (checkpoints), the codec's data units
 * and those that got no points inside (zs_scan.units, .blind; 0 when the
 * points were loaded). */
void zs_view_points(const zs_view *v, uint64_t *stateful, uint64_t *units, uint64_t *blind);
void zs_view_close(zs_view *v);
/* What the view's reads cost so far, for tests and the bench. */
struct zs_view_counts {
	uint64_t segment_decodes;  /* segments decoded whole (each once while it stays held) */
	uint64_t ahead_decodes;    /* of those, by the decode-ahead threads */
	uint64_t ahead_most;       /* the most decode-ahead decodes that ran at once */
	uint64_t streamed_reads;   /* reads of segments too big to hold */
	uint64_t decodes_most;     /* the most whole-segment decodes that ran at once (<= ZS_DECODES) */
};
void zs_view_counts(zs_view *v, struct zs_view_counts *out);
/* Whole-segment decodes of a view that run at once, the readers' and the
 * decode-ahead threads' together (zs_view_counts.decodes_most): each has a
 * codec decoder whose window (libzstd's: as big as its frame) is as much
 * memory again as the segment, and whose context the codec may keep for the
 * next decoder; more decodes than cores are no faster. */
#define ZS_DECODES 2
/* Process-wide: decode ahead of sequential reads (1, the default) or not. */
void zs_set_decode_ahead(int on);
/* Process-wide, for tests (0, the default: off): a decode-ahead thread
 * counts as busy for ms more after each decode, so that two threads busy
 * at once (zs_view_counts.ahead_most) show even where a loaded machine runs
 * them one after the other. Set it before a view is opened. */
void zs_set_ahead_linger(unsigned ms);
/* Process-wide: decoded bytes between stateful points of later scans (0 =
 * the default, 4 MiB; it doubles as the points outgrow their budget). For
 * tests and fuzzing, which want many points in little data. */
void zs_set_first_span(uint64_t span);
/* Process-wide, for tests: 0 makes later zstd scans put no checkpoints in
 * big frames, as for a frame whose blocks cannot be followed (zs_scan.blind);
 * 1 (the default) follows them. */
void zs_zstd_set_follow(int on);

#endif

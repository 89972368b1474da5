/*
 * formats/partimage.c - partimage 0.6.x images (image format "0.6.1"),
 * single files and multi-volume sets NAME.000, NAME.001, ...; layout in
 * ../shared/FORMATS.md section 3.
 *
 * Two parts:
 *  - a private stream layer ("partimage volumes") that turns the volume files
 *    into one logical byte stream: it reads the current volume's own stream
 *    stack (each volume is a complete plain, gzip or bzip2 file), and at its
 *    end opens the next volume, checks its 512-byte header (magic, version,
 *    sequence number, identificator) and goes on. It also keeps the unsigned
 *    byte sum of every logical byte it produces, for the tail's qwCRC.
 *  - the parser over that logical stream: main header, MBR records, EXT
 *    blocks, local header, bitmap, info block (each header with its byte
 *    sum), the used-block data with a CHK record (zlib CRC-32) after every
 *    65536 data bytes, and the tail.
 *
 * Runs never cross a CHK record: each 65536-byte chunk is peeked whole with
 * its CHK record and checked before any of its blocks is handed out, so a bad
 * chunk is skipped, never served. The final partial chunk has no CHK record;
 * it is checked ahead through the tail's byte sum instead (peeked together
 * with the tail). Blocks larger than 65536 bytes straddle CHK records: they
 * are copied chunk by chunk into a side buffer (the one copy of the reader;
 * only NTFS clusters > 64 KiB and the like).
 *
 * The header print for `info` (every section, and the per-filesystem info
 * block decoding) is in partimage_info.c, random access in
 * partimage_access.c; the state they share is in partimage.h.
 * Not here: the layout's rules (chunk geometry, the CHK and TAIL checks, the
 * byte sum, the messages: partimage_layout.c, shared with random access),
 * decompression (io/), printing (the command layer).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "partimage.h"
#include "../io/grow.h"

#define PI_MAX_BLOCK_SIZE ((uint64_t)64 << 20)
#define PI_MAX_BITMAP_BYTES ((uint64_t)1 << 30)
#define PI_MAX_MBR_BYTES ((uint64_t)16 << 20)
#define PI_MAX_EXT_BYTES ((uint64_t)16 << 20)
#define PI_MBR_DATA 512            /* cData of a CMbr record, followed by its sum */
#define PI_BATCH_AHEAD ((size_t)2 << 20)  /* bytes made visible before a batch of runs */

/* ---- byte sums ----------------------------------------------------------- */

/* The header "CRC" of partimage: the sum of the bytes taken as signed char. */
static uint32_t sum_signed(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (uint32_t)(int32_t)(int8_t)p[i];
	return s;
}

/* ---- the volume layer ---------------------------------------------------- */

void pi_vol_name(const struct pi_vol *v, uint32_t n, char *out, size_t outsz)
{
	if (!v->suffix_at)
		snprintf(out, outsz, "%s", v->base);
	else
		snprintf(out, outsz, "%.*s%03u", (int)v->suffix_at, v->base, n);
}

/* Index of the digits of a ".000" suffix (zeros only, at least 3) of name, or 0. */
static size_t volume_suffix_at(const char *name)
{
	size_t len = strlen(name), d = len;
	while (d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9')
		d--;
	if (len - d < 3 || d < 2 || name[d - 1] != '.')
		return 0;
	for (size_t i = d; i < len; i++)
		if (name[i] != '0')
			return 0;  /* volume 0 named .001: a lone file, not the start of a set */
	return d;
}

/* The volume that holds logical byte `off` (the last one starting at or before it). */
static uint32_t vol_of(const struct pi_vol *v, uint64_t off)
{
	size_t k = v->nstarts;
	while (k > 1 && v->starts[k - 1] > off)
		k--;
	return (uint32_t)(k ? k - 1 : 0);
}

static int vol_add_start(struct pi_vol *v, img_err *err)
{
	if (grow_for(&v->starts, &v->starts_cap, v->nstarts, sizeof *v->starts, 16))
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", v->base);
	v->starts[v->nstarts++] = v->produced;
	return IMG_OK;
}

int pi_check_volume_header(img_err *err, const char *name, const uint8_t *h, uint32_t want,
			   uint64_t *ident, int ident_known)
{
	if (memcmp(h, PI_VOLUME_MAGIC, 16) != 0 || h[16] != 0)
		return img_err_set(err, IMG_E_CORRUPT, 0, 1, 0,
				   "%s: partimage: no PaRtImAgE-VoLuMe magic at byte 0: not a volume of "
				   "a partimage image", name);
	const char *ver = (const char *)h + 32;
	if (memchr(ver, 0, 64) == NULL || (strcmp(ver, "0.6.1") != 0 && strcmp(ver, "0.6.0") != 0)) {
		char shown[24];
		fmt_copy_text(shown, sizeof shown, h + 32, 64);
		return img_err_set(err, IMG_E_FORMAT, 0, 1, 32,
				   "%s: partimage: volume format version \"%s\" is not supported "
				   "(0.6.0 and 0.6.1 are)", name, shown);
	}
	uint32_t n = get_le32(h + 96);
	if (n != want)
		return img_err_set(err, IMG_E_CORRUPT, 0, 1, 96,
				   "%s: partimage: this file is volume %u of its image, expected volume %u%s",
				   name, n, want, want == 0 ? " (open the first volume, NAME.000)"
				   : " (volumes swapped or renamed?)");
	uint64_t id = get_le64(h + 100);
	if (ident_known && id != *ident)
		return img_err_set(err, IMG_E_CORRUPT, 0, 1, 100,
				   "%s: partimage: volume %u belongs to another image (identificator "
				   "0x%016llX, the first volume has 0x%016llX)", name, n,
				   (unsigned long long)id, (unsigned long long)*ident);
	*ident = id;
	return IMG_OK;
}

static int volume_magic(const uint8_t *p, size_t n)
{
	return n >= 16 && memcmp(p, PI_VOLUME_MAGIC, 16) == 0;
}

/* The current volume ended: open the next one. @return IMG_OK, IMG_EOF (no more), or an error. */
static int vol_next(img_stream *s, struct pi_vol *v)
{
	if (!v->suffix_at || (v->tail_seen && v->volno >= v->last_volume))
		return IMG_EOF;
	uint32_t n = v->volno + 1;
	size_t sz = strlen(v->base) + 16;
	char *name = malloc(sz);
	char cur[1100];
	if (!name)
		return img_err_set(s->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", v->base);
	pi_vol_name(v, n, name, sz);
	pi_vol_name(v, v->volno, cur, sizeof cur);
	struct stat sb;
	if (stat(name, &sb) != 0 && errno == ENOENT) {
		char at[40];
		img_fmt_thousands(at, sizeof at, v->produced);
		img_err_set(s->err, IMG_E_MISSING, 0, 1, v->produced,
			    "%s: partimage: volume %u is missing: the image goes on after the end of "
			    "%s (byte %s of the image data; or %s is truncated)", name, n, cur, at, cur);
		free(name);
		return IMG_E_MISSING;
	}
	img_stream *next = NULL;
	int rc = stream_open_stack(name, s->err, volume_magic, NULL, 0, &next);
	if (rc < 0) {
		free(name);
		return rc;
	}
	const uint8_t *p;
	size_t avail;
	rc = stream_peek(next, PI_VOLUME_HEADER, &p, &avail);
	if (rc == IMG_EOF)
		rc = img_err_set(s->err, IMG_E_TRUNCATED, 0, 1, avail,
				 "%s: partimage: volume truncated inside its 512-byte header (%zu bytes)",
				 name, avail);
	if (rc == IMG_OK)
		rc = pi_check_volume_header(s->err, name, p, n, &v->ident, 1);
	if (rc == IMG_OK)
		rc = vol_add_start(v, s->err);
	if (rc < 0) {
		stream_close(next);
		free(name);
		return rc;
	}
	stream_consume(next, PI_VOLUME_HEADER);
	stream_close(v->cur);
	free(v->cur_path);
	v->cur = next;
	v->cur_path = name;
	v->volno = n;
	return IMG_OK;
}

static int vol_produce(img_stream *s, uint8_t *dst, size_t cap, size_t *got)
{
	struct pi_vol *v = s->priv;
	*got = 0;
	for (;;) {
		size_t n = 0;
		int rc = stream_read_direct(v->cur, dst, cap, &n);
		if (rc < 0)
			return rc;
		if (n > 0) {
			v->sum += pi_byte_sum(dst, n);
			v->produced += n;
			*got = n;
			return IMG_OK;
		}
		rc = vol_next(s, v);
		if (rc == IMG_EOF)
			return IMG_OK;
		if (rc < 0)
			return rc;
	}
}

static void vol_close(img_stream *s)
{
	struct pi_vol *v = s->priv;
	stream_close(v->cur);
	free(v->cur_path);
	free(v->base);
	free(v->starts);
	free(v);
}

static const struct img_stream_ops vol_ops = { "partimage volumes", vol_produce, vol_close, NULL, NULL };

/* ---- the parser ---------------------------------------------------------- */

/* Record a parser error at logical byte `off`, naming the volume that holds it. */
static int pi_fail(img_image *im, int code, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int pi_fail(img_image *im, int code, uint64_t off, const char *fmt, ...)
{
	struct pi_state *st = im->priv;
	if (im->err.code == IMG_E_CHECKSUM)
		im->err.code = IMG_OK;  /* a walk that goes on reports each bad chunk */
	if (im->err.code != IMG_OK)
		return code;
	char what[400], name[1100], vbyte[40], lbyte[40];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	uint32_t n = vol_of(st->vol, off);
	pi_vol_name(st->vol, n, name, sizeof name);
	uint64_t in_vol = off - (st->vol->nstarts ? st->vol->starts[n] : 0) + PI_VOLUME_HEADER;
	img_fmt_thousands(vbyte, sizeof vbyte, in_vol);
	img_fmt_thousands(lbyte, sizeof lbyte, off);
	int piped = code == IMG_E_TRUNCATED && strcmp(im->path, "(stdin)") == 0;
	img_err_set(&im->err, code, 0, 1, off,
		    "%s: partimage: %s at byte %s of this volume file (uncompressed), byte %s of "
		    "the image data%s", name, what, vbyte, lbyte,
		    piped ? " (if this is the first volume of a multi-volume set, give its "
			    "NAME.000 file name instead of piping it)" : "");
	return code;
}

/* Make n bytes visible at *p, or fail as truncated in `what`. */
static int need(img_image *im, size_t n, const char *what, const uint8_t **p)
{
	size_t avail;
	int rc = stream_peek(im->s, n, p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return pi_fail(im, IMG_E_TRUNCATED, im->s->offset + avail,
			       "image truncated in %s (%zu of %zu bytes)", what, avail, n);
	return IMG_OK;
}

/* Read and check a magic string (written without NUL). */
static int expect_magic(img_image *im, const char *magic)
{
	const uint8_t *p;
	size_t len = strlen(magic);
	int rc = need(im, len, magic, &p);
	if (rc < 0)
		return rc;
	if (memcmp(p, magic, len) != 0)
		return pi_fail(im, IMG_E_CORRUPT, im->s->offset, "%s expected, found other bytes", magic);
	stream_consume(im->s, len);
	return IMG_OK;
}

/* Check the byte sum stored after n bytes at p (signed rule; unsigned accepted, noted). */
static int check_sum(img_image *im, const uint8_t *p, size_t n, const char *what)
{
	struct pi_state *st = im->priv;
	uint32_t stored = get_le32(p + n), sig = sum_signed(p, n);
	if (stored == sig)
		return IMG_OK;
	if (stored == (uint32_t)pi_byte_sum(p, n)) {
		st->unsigned_sums = 1;
		return IMG_OK;
	}
	return pi_fail(im, IMG_E_CORRUPT, im->s->offset + n,
		       "%s byte sum mismatch (stored 0x%08x, computed 0x%08x): the %s is damaged", what,
		       stored, sig, what);
}

static int read_main_header(img_image *im, uint32_t *mbr_count, uint32_t *mbr_size)
{
	struct pi_state *st = im->priv;
	const uint8_t *h;
	int rc = need(im, PI_STRUCT + 4, "the main header", &h);
	if (rc < 0)
		return rc;
	rc = check_sum(im, h, PI_STRUCT, "main header");
	if (rc < 0)
		return rc;
	if (memcmp(h + 9728, "0.6.", 4) != 0) {
		char ver[16];
		fmt_copy_text(ver, sizeof ver, h + 9728, 64);
		return pi_fail(im, IMG_E_FORMAT, im->s->offset + 9728,
			       "main header version \"%s\" is not 0.6.x (images from 64-bit builds "
			       "older than 0.6.7 are not supported)", ver);
	}
	if (get_le32(h + 9800) != 0)
		return pi_fail(im, IMG_E_FORMAT, im->s->offset + 9800,
			       "encryption algorithm %u is not supported", get_le32(h + 9800));
	fmt_copy_text(st->fs, sizeof st->fs, h, 512);
	st->lay.part_size = get_le64(h + 9592);
	*mbr_count = get_le32(h + 9792);
	*mbr_size = get_le32(h + 9796);
	uint64_t mbr_bytes = (uint64_t)*mbr_count * *mbr_size;
	if (*mbr_count && (*mbr_size < PI_MBR_DATA + 4 || mbr_bytes > PI_MAX_MBR_BYTES))
		return pi_fail(im, IMG_E_CORRUPT, im->s->offset + 9792,
			       "%u MBR records of %u bytes are out of range", *mbr_count, *mbr_size);
	pi_add_main_fields(im, h, st->lay.part_size);
	stream_consume(im->s, PI_STRUCT + 4);
	return IMG_OK;
}

static int read_mbrs(img_image *im, uint32_t count, uint32_t size)
{
	int rc = expect_magic(im, "MAGIC-BEGIN-MBRBACKUP");
	for (uint32_t i = 0; rc == IMG_OK && i < count; i++) {
		const uint8_t *p;
		rc = need(im, size, "an MBR record", &p);
		if (rc < 0)
			break;
		rc = check_sum(im, p, PI_MBR_DATA, "MBR record");
		if (rc < 0)
			break;
		pi_add_mbr_fields(im, i, p, size);
		stream_consume(im->s, size);
	}
	return rc;
}

static int read_ext_blocks(img_image *im)
{
	for (int i = 0; i < 10; i++) {
		char magic[24];
		const uint8_t *p;
		snprintf(magic, sizeof magic, "MAGIC-BEGIN-EXT%03d", i);
		int rc = expect_magic(im, magic);
		if (rc == IMG_OK)
			rc = need(im, 4, magic, &p);
		if (rc < 0)
			return rc;
		uint32_t len = get_le32(p);
		if (len > PI_MAX_EXT_BYTES)
			return pi_fail(im, IMG_E_CORRUPT, im->s->offset, "%s block of %u bytes is too large",
				       magic, len);
		stream_consume(im->s, 4);
		uint64_t skipped;
		rc = stream_skip(im->s, len, &skipped);
		if (rc < 0)
			return rc;
		if (rc == IMG_EOF)
			return pi_fail(im, IMG_E_TRUNCATED, im->s->offset, "image truncated in %s", magic);
	}
	return IMG_OK;
}

static int read_local_header(img_image *im)
{
	struct pi_state *st = im->priv;
	const uint8_t *h;
	int rc = expect_magic(im, "MAGIC-BEGIN-LOCALHEADER");
	if (rc == IMG_OK)
		rc = need(im, PI_STRUCT + 4, "the local header", &h);
	if (rc == IMG_OK)
		rc = check_sum(im, h, PI_STRUCT, "local header");
	if (rc < 0)
		return rc;
	uint64_t at = im->s->offset, bs = get_le64(h);
	st->lay.used = get_le64(h + 8);
	st->lay.total = get_le64(h + 16);
	st->lay.bitmap_size = get_le64(h + 24);
	if (bs == 0 || bs > PI_MAX_BLOCK_SIZE || (bs & (bs - 1)) != 0)
		return pi_fail(im, IMG_E_CORRUPT, at, "block size %llu is not a power of two up to 64 MiB",
			       (unsigned long long)bs);
	st->lay.bs = (uint32_t)bs;
	uint64_t span;
	if (__builtin_mul_overflow(st->lay.total, bs, &span) || span > st->lay.part_size)
		return pi_fail(im, IMG_E_CORRUPT, at + 16,
			       "%llu blocks of %llu bytes do not fit the partition size %llu",
			       (unsigned long long)st->lay.total, (unsigned long long)bs,
			       (unsigned long long)st->lay.part_size);
	if (st->lay.used > st->lay.total)
		return pi_fail(im, IMG_E_CORRUPT, at + 8, "used blocks %llu exceed the %llu blocks in total",
			       (unsigned long long)st->lay.used, (unsigned long long)st->lay.total);
	uint64_t need_bytes = (st->lay.total + 7) / 8;
	if (st->lay.bitmap_size > PI_MAX_BITMAP_BYTES || st->lay.bitmap_size > 2 * need_bytes + (1 << 20))
		return pi_fail(im, IMG_E_CORRUPT, at + 24,
			       "bitmap size %llu is out of range for %llu blocks",
			       (unsigned long long)st->lay.bitmap_size, (unsigned long long)st->lay.total);
	st->lay.nbits = st->lay.bitmap_size * 8 < st->lay.total ? st->lay.bitmap_size * 8 : st->lay.total;
	pi_add_local_fields(im, h);
	stream_consume(im->s, PI_STRUCT + 4);
	return IMG_OK;
}

/* Read the bitmap, keeping the bytes of blocks < nbits; the buffer grows as data arrives. */
static int read_bitmap(img_image *im)
{
	struct pi_state *st = im->priv;
	int rc = expect_magic(im, "MAGIC-BEGIN-BITMAP");
	if (rc < 0)
		return rc;
	uint64_t keep = (st->lay.nbits + 7) / 8, have = 0, cap = 0;
	while (have < keep) {
		if (have == cap) {
			cap = cap ? cap * 2 : ((uint64_t)1 << 20);
			if (cap > keep)
				cap = keep;
			uint8_t *n = realloc(st->lay.bitmap, cap);
			if (!n)
				return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
						   "%s: out of memory for a bitmap of %llu bytes", im->path,
						   (unsigned long long)keep);
			st->lay.bitmap = n;
		}
		size_t got;
		rc = stream_read(im->s, st->lay.bitmap + have, cap - have, &got);
		have += got;
		if (rc < 0)
			return rc;
		if (rc == IMG_EOF)
			return pi_fail(im, IMG_E_TRUNCATED, im->s->offset, "image truncated in the bitmap");
	}
	uint64_t skipped;
	rc = stream_skip(im->s, st->lay.bitmap_size - keep, &skipped);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return pi_fail(im, IMG_E_TRUNCATED, im->s->offset, "image truncated in the bitmap");
	uint64_t count = st->lay.bitmap ? bitmap_count(st->lay.bitmap, st->lay.nbits) : 0;
	if (count != st->lay.used)
		return pi_fail(im, IMG_E_CORRUPT, im->s->offset - st->lay.bitmap_size,
			       "the bitmap marks %llu blocks used but the local header says %llu",
			       (unsigned long long)count, (unsigned long long)st->lay.used);
	return IMG_OK;
}

static int read_info_block(img_image *im)
{
	struct pi_state *st = im->priv;
	const uint8_t *p;
	int rc = expect_magic(im, "MAGIC-BEGIN-INFO");
	if (rc == IMG_OK)
		rc = need(im, PI_STRUCT + 4, "the filesystem info block", &p);
	if (rc == IMG_OK)
		rc = check_sum(im, p, PI_STRUCT, "filesystem info block");
	if (rc < 0)
		return rc;
	pi_add_info_fields(im, st->fs, p, get_le32(p + PI_STRUCT));
	stream_consume(im->s, PI_STRUCT + 4);
	return expect_magic(im, "MAGIC-BEGIN-DATABLOCKS");
}

static void set_info(img_image *im)
{
	struct pi_state *st = im->priv;
	img_info *info = &im->info;
	info->format_version = st->version;
	info->fs = st->fs;
	info->device_size = st->lay.part_size;
	info->block_size = st->lay.bs;
	info->total_blocks = st->lay.total;
	info->used_blocks = st->lay.used;
	info->checksum = "CRC32";
	info->read_check = "every byte, against the CRC32 of its 64 KiB chunk's CHK record; the last "
			   "partial chunk, which has none, against the tail's byte sum of the whole image "
			   "(the first read there sums the whole image once)";
	info->has_checksums = 1;
	info->checksums_chained = 0;
	info->image_data_size = st->vol->suffix_at ? 0 : pi_logical_end(&st->lay) + PI_VOLUME_HEADER;
}

/* Stack the volume layer on top of volume 0 (im->s, positioned after its header). */
static int open_volumes(img_image *im, uint32_t volno, uint64_t ident)
{
	struct pi_state *st = im->priv;
	struct pi_vol *v = calloc(1, sizeof *v);
	if (!v || !(v->base = strdup(im->path))) {
		free(v);
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	}
	v->suffix_at = volume_suffix_at(im->path);
	v->volno = volno;
	v->ident = ident;
	if (vol_add_start(v, &im->err) < 0) {
		free(v->base);
		free(v);
		return IMG_E_IO;
	}
	img_stream *s = stream_new(&vol_ops, v, NULL, &im->err, im->path, im->opt.buffer_size);
	if (!s) {
		free(v->starts);
		free(v->base);
		free(v);
		return IMG_E_IO;
	}
	v->cur = im->s;  /* volume 0 now belongs to the layer */
	im->s = s;
	st->vol = v;
	return IMG_OK;
}

static int pi_bid(const uint8_t *p, size_t n)
{
	return volume_magic(p, n);
}

static int pi_open(img_image *im)
{
	const uint8_t *vh;
	size_t avail;
	int rc = stream_peek(im->s, PI_VOLUME_HEADER, &vh, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, avail, "image truncated inside the 512-byte volume header");
	uint64_t ident = 0;
	rc = pi_check_volume_header(&im->err, im->path, vh, 0, &ident, 0);
	if (rc < 0)
		return rc;
	struct pi_state *st = calloc(1, sizeof *st);
	if (!st)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	im->priv = st;
	fmt_copy_text(st->version, sizeof st->version, vh + 32, 64);
	pi_add_volume_fields(im, vh);
	stream_consume(im->s, PI_VOLUME_HEADER);
	rc = open_volumes(im, 0, ident);
	if (rc < 0)
		return rc;
	uint32_t mbr_count = 0, mbr_size = 0;
	rc = read_main_header(im, &mbr_count, &mbr_size);
	if (rc == IMG_OK)
		rc = read_mbrs(im, mbr_count, mbr_size);
	if (rc == IMG_OK)
		rc = read_ext_blocks(im);
	if (rc == IMG_OK)
		rc = read_local_header(im);
	if (rc == IMG_OK)
		rc = read_bitmap(im);
	if (rc == IMG_OK)
		rc = read_info_block(im);
	if (rc < 0)
		return rc;
	if (st->unsigned_sums)
		fmt_level(fmt_field(im, "header sums", "header_sums",
				    "unsigned (image made where char is unsigned)"),
			  IMG_FIELD_VERBOSE);
	st->lay.data_start = im->s->offset;
	st->lay.data_len = st->lay.used * st->lay.bs;
	st->hashing = im->opt.verify;
	set_info(im);
	return IMG_OK;
}

/* ---- the data walk -------------------------------------------------------- */

static uint64_t next_used(const struct pi_state *st, uint64_t from)
{
	return bitmap_next_set(st->lay.bitmap, st->lay.nbits, from);
}

/* The last block of the n used blocks starting at the first used block >= from. */
static uint64_t nth_used_block(const struct pi_state *st, uint64_t from, uint64_t n)
{
	uint64_t b = next_used(st, from), seen = 0;
	while (b < st->lay.nbits) {
		uint64_t r = bitmap_run(st->lay.bitmap, st->lay.nbits, b, n - seen);
		seen += r;
		if (seen >= n)
			return b + r - 1;
		b = next_used(st, b + r);
	}
	return st->lay.nbits;
}

/*
 * qwPos the writer stored for a CHK record whose last data byte lies in block
 * `blk`: the start of the writer's copy run holding it (FORMATS.md 3.7).
 * @return 1 and *pos, or 0 when the rule does not apply (huge blocks).
 */
static int expected_qwpos(struct pi_state *st, uint64_t blk, uint64_t *pos)
{
	uint64_t ucap = 262144 / st->lay.bs;
	if (ucap == 0)
		return 0;
	while (st->wrun_end <= blk) {
		uint64_t i = st->wrun_end, len;
		if (i >= st->lay.nbits)
			return 0;
		if (bitmap_test(st->lay.bitmap, i)) {
			len = bitmap_run(st->lay.bitmap, st->lay.nbits, i, ucap);
		} else {
			uint64_t lim = st->lay.nbits - i < 2048 ? st->lay.nbits : i + 2048;
			len = bitmap_next_set(st->lay.bitmap, lim, i) - i;
		}
		if (len == 0)
			return 0;
		st->wrun_start = i;
		st->wrun_end = i + len;
	}
	*pos = st->wrun_start;
	return 1;
}

/* Check a CHK record at c that closes data chunk p[0..PI_CHUNK) ending in block `blk`.
 * @return IMG_OK, 1 for a CRC mismatch, or a structural error. */
static int check_chk(img_image *im, const uint8_t *p, const uint8_t *c, uint64_t c_off, uint64_t blk)
{
	struct pi_state *st = im->priv;
	char text[200];
	if (!pi_chk_is_record(c))
		return pi_fail(im, IMG_E_CORRUPT, c_off, "%s",
			       pi_missing_chk_text(text, sizeof text, st->dpos / PI_CHUNK));
	if (!st->hashing)
		return IMG_OK;
	uint64_t want;
	if (expected_qwpos(st, blk, &want) && want != get_le64(c + 8) && st->qwpos_bad++ == 0)
		st->qwpos_first_bad = c_off;
	return !pi_chk_crc_matches(p, c);
}

static int report_bad_chunk(img_image *im, uint64_t off, uint64_t first, uint64_t last)
{
	struct pi_state *st = im->priv;
	char text[200];
	im->bad_groups++;
	return pi_fail(im, IMG_E_CHECKSUM, off, "%s",
		       pi_bad_chunk_text(text, sizeof text, first, last, st->dpos / PI_CHUNK));
}

/*
 * The tail sum, computed with the layer's running sum: `magic` points at the
 * visible TAIL magic, `vis` bytes are visible from there. @return the sum of
 * every logical byte up to the end of the magic.
 */
static uint64_t tail_sum(const struct pi_state *st, const uint8_t *magic, size_t vis)
{
	return st->vol->sum - pi_byte_sum(magic + PI_TAIL_MAGIC_LEN, vis - PI_TAIL_MAGIC_LEN);
}

/* The tail's qwCRC check failed: the message, with the first odd qwPos as a hint. */
static int report_tail_sum(img_image *im, uint64_t off, uint64_t stored, uint64_t computed,
			   const char *what)
{
	struct pi_state *st = im->priv;
	char hint[120] = "", text[400];
	if (st->qwpos_bad)
		snprintf(hint, sizeof hint, "; the first CHK record with an unexpected qwPos is at "
			 "byte %llu of the image data", (unsigned long long)st->qwpos_first_bad);
	im->bad_groups++;
	return pi_fail(im, IMG_E_CHECKSUM, off, "%s%s",
		       pi_tail_sum_text(text, sizeof text, stored, computed, what), hint);
}

/*
 * The chunk that starts at data byte st->dpos: its length, whether a CHK
 * record closes it, whether it is the final partial chunk checked ahead
 * through the tail sum. @return the bytes start_chunk peeks for it.
 */
static size_t chunk_shape(const img_image *im, const struct pi_state *st, uint64_t *len,
			  int *has_chk, int *tail_ahead)
{
	*len = st->lay.data_len - st->dpos < PI_CHUNK ? st->lay.data_len - st->dpos : PI_CHUNK;
	*has_chk = *len == PI_CHUNK;
	*tail_ahead = !*has_chk && st->hashing && im->bad_groups == 0;
	return (size_t)*len + (*has_chk ? PI_CHK : 0) + (*tail_ahead ? PI_TAIL_MAGIC_LEN + PI_STRUCT : 0);
}

/* At a chunk start: peek the chunk (and its CHK record, or the tail) and check it. */
static int start_chunk(img_image *im, struct pi_state *st)
{
	uint64_t len;
	int has_chk, tail_ahead;
	size_t want = chunk_shape(im, st, &len, &has_chk, &tail_ahead);
	const uint8_t *p;
	uint64_t at = im->s->offset;
	int rc = need(im, want, "the block data", &p);
	if (rc < 0)
		return rc;
	uint64_t first = next_used(st, st->cur);
	uint64_t last = nth_used_block(st, st->cur, len / st->lay.bs);
	int bad = 0;
	if (has_chk) {
		rc = check_chk(im, p, p + len, at + len, last);
		if (rc < 0)
			return rc;
		bad = rc;
	} else if (tail_ahead) {
		char text[100];
		if (!pi_is_tail(p + len))
			return pi_fail(im, IMG_E_CORRUPT, at + len, "%s",
				       pi_missing_tail_text(text, sizeof text));
		size_t avail = im->s->end - im->s->pos;
		uint64_t sum = tail_sum(st, p + len, avail - (size_t)len);
		if (sum != pi_tail_stored_sum(p + len)) {
			/* The final chunk (no CHK of its own) is the likeliest culprit: skip it. */
			rc = report_tail_sum(im, at, pi_tail_stored_sum(p + len), sum,
					     "the data after the last CHK record or the headers are damaged");
			stream_consume(im->s, (size_t)len);
			st->dpos += len;
			st->rank += len / st->lay.bs;
			st->cur = last + 1;
			return rc;
		}
	}
	if (bad) {
		rc = report_bad_chunk(im, at, first, last);
		stream_consume(im->s, (size_t)len + PI_CHK);
		st->dpos += len;
		st->rank += len / st->lay.bs;
		st->cur = last + 1;
		return rc;
	}
	st->chunk_left = len;
	st->chunk_has_chk = has_chk;
	st->chunk_verified = st->hashing && (has_chk || tail_ahead);
	return IMG_OK;
}

/* Blocks larger than a chunk: gather one block from its chunks into the side buffer. */
static int next_big_block(img_image *im, struct pi_state *st, img_run *run)
{
	if (!st->side && !(st->side = malloc(st->lay.bs)))
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for a block of %u bytes", im->path, st->lay.bs);
	uint64_t b = next_used(st, st->cur), bad_at = 0;
	int bad = 0;
	for (uint32_t done = 0; done < st->lay.bs; done += PI_CHUNK) {
		const uint8_t *p;
		uint64_t at = im->s->offset;
		int rc = need(im, PI_CHUNK + PI_CHK, "the block data", &p);
		if (rc == IMG_OK)
			rc = check_chk(im, p, p + PI_CHUNK, at + PI_CHUNK, b);
		if (rc < 0)
			return rc;
		if (rc && !bad) {
			bad = 1;
			bad_at = at;
		}
		memcpy(st->side + done, p, PI_CHUNK);
		stream_consume(im->s, PI_CHUNK + PI_CHK);
		st->dpos += PI_CHUNK;
	}
	st->cur = b + 1;
	st->rank++;
	if (bad) {
		st->dpos -= PI_CHUNK;  /* name the bad record's number in the message */
		int rc = report_bad_chunk(im, bad_at, b, b);
		st->dpos += PI_CHUNK;
		return rc;
	}
	run->first_block = b;
	run->nblocks = 1;
	run->offset = b * (uint64_t)st->lay.bs;
	run->len = st->lay.bs;
	run->data = st->side;
	run->verified = st->hashing;
	run->bad = 0;  /* a bad chunk is reported and skipped, never handed out */
	im->blocks_done++;
	return IMG_OK;
}

/* After the data: the TAIL magic, the tail (qwCRC, last volume number), then the end. */
static int read_tail(img_image *im, struct pi_state *st)
{
	const uint8_t *p;
	uint64_t at = im->s->offset;
	int rc = need(im, PI_TAIL_MAGIC_LEN + PI_STRUCT, "the tail", &p);
	if (rc < 0)
		return rc;
	char text[100];
	if (!pi_is_tail(p))
		return pi_fail(im, IMG_E_CORRUPT, at, "%s", pi_missing_tail_text(text, sizeof text));
	uint64_t stored = pi_tail_stored_sum(p);
	uint32_t last = get_le32(p + PI_TAIL_MAGIC_LEN + 8);
	uint64_t sum = tail_sum(st, p, im->s->end - im->s->pos);
	uint32_t vfirst = vol_of(st->vol, at), vlast = st->vol->volno;
	stream_consume(im->s, PI_TAIL_MAGIC_LEN + PI_STRUCT);
	st->vol->tail_seen = 1;
	st->vol->last_volume = last;
	if (last != vlast && last != vfirst)
		return pi_fail(im, IMG_E_CORRUPT, at + PI_TAIL_MAGIC_LEN + 8,
			       "the tail says the last volume is %u, but it is in volume %u", last, vlast);
	if (st->hashing && im->bad_groups == 0 && sum != stored)
		return report_tail_sum(im, at, stored, sum, "the headers, bitmap or CHK records are damaged");
	size_t avail;
	rc = stream_peek(im->s, 1, &p, &avail);
	if (rc < 0)
		return rc;
	if (avail > 0)
		return pi_fail(im, IMG_E_TRAILING, im->s->offset,
			       "trailing data after the tail (the image should end here)");
	return IMG_EOF;
}

static int pi_next_run(img_image *im, img_run *run)
{
	struct pi_state *st = im->priv;
	if (st->pending) {
		stream_consume(im->s, st->pending);
		st->pending = 0;
	}
	if (st->finished)
		return IMG_EOF;
	if (st->rank >= st->lay.used) {
		st->finished = 1;
		return read_tail(im, st);
	}
	if (st->lay.bs > PI_CHUNK)
		return next_big_block(im, st, run);
	if (st->chunk_left == 0) {
		int rc = start_chunk(im, st);
		if (rc < 0)
			return rc;
	}
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, (size_t)st->chunk_left, &p, &avail);  /* visible already */
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return pi_fail(im, IMG_E_TRUNCATED, im->s->offset + avail, "image truncated in the block data");
	uint64_t b = next_used(st, st->cur);
	if (b >= st->lay.nbits)
		return pi_fail(im, IMG_E_CORRUPT, im->s->offset, "bitmap ends before all used blocks");
	uint64_t n = bitmap_run(st->lay.bitmap, st->lay.nbits, b, st->chunk_left / st->lay.bs);
	size_t len = (size_t)n * st->lay.bs;
	run->first_block = b;
	run->nblocks = n;
	run->offset = b * (uint64_t)st->lay.bs;
	run->len = len;
	run->data = p;
	run->verified = st->chunk_verified;
	run->bad = 0;
	st->pending = len;
	st->chunk_left -= len;
	if (st->chunk_left == 0 && st->chunk_has_chk)
		st->pending += PI_CHK;  /* visible: peeked with the chunk */
	st->dpos += len;
	st->cur = b + n;
	st->rank += n;
	im->blocks_done += n;
	return IMG_OK;
}

/* Logical bytes from the read position (after the pending bytes) to the end of the tail. */
static uint64_t logical_left(const img_image *im, const struct pi_state *st)
{
	uint64_t end = pi_logical_end(&st->lay);
	uint64_t at = im->s->offset + st->pending;
	return end > at ? end - at : 0;
}

/* Can the next run be handed out without moving the read buffer (keeping
 * the runs handed out in this batch valid)? */
static int next_is_visible(const img_image *im, const struct pi_state *st)
{
	if (st->finished || st->rank >= st->lay.used || st->lay.bs > PI_CHUNK)
		return 0;
	if (st->chunk_left > 0)
		return 1;
	uint64_t len;
	int has_chk, tail_ahead;
	size_t want = chunk_shape(im, st, &len, &has_chk, &tail_ahead);
	return (size_t)(im->s->end - im->s->pos) - st->pending >= want;
}

/*
 * Several runs at once: peek up to PI_BATCH_AHEAD bytes first (never past the
 * end of the tail, so no volume after the last is looked for), then hand out
 * runs while their chunks are visible. A status met after the first run
 * (a bad chunk, truncation) is kept and returned by the next call.
 */
static int pi_next_batch(img_image *im, img_run *runs, size_t max, size_t *n)
{
	struct pi_state *st = im->priv;
	*n = 0;
	if (st->deferred) {
		int rc = st->deferred;
		st->deferred = 0;
		return rc;
	}
	if (st->pending) {
		stream_consume(im->s, st->pending);
		st->pending = 0;
	}
	if (!st->finished && st->rank < st->lay.used && st->lay.bs <= PI_CHUNK) {
		uint64_t left = logical_left(im, st);
		const uint8_t *p;
		size_t avail;
		int rc = stream_peek(im->s, left < PI_BATCH_AHEAD ? (size_t)left : PI_BATCH_AHEAD, &p, &avail);
		if (rc < 0)
			return rc;  /* a short image is reported where the run code meets its end */
	}
	int rc = pi_next_run(im, &runs[0]);
	if (rc != IMG_OK)
		return rc;
	*n = 1;
	while (*n < max && next_is_visible(im, st)) {
		rc = pi_next_run(im, &runs[*n]);
		if (rc != IMG_OK) {
			st->deferred = rc;
			break;
		}
		(*n)++;
	}
	return IMG_OK;
}

static void pi_close(img_image *im)
{
	struct pi_state *st = im->priv;
	if (!st)
		return;
	pi_random_free(st);
	free(st->lay.bitmap);
	free(st->side);
	free(st);
	im->priv = NULL;
}

const struct img_format fmt_partimage = {
	.name = "partimage",
	.magic_len = 16,
	.bid = pi_bid,
	.open = pi_open,
	.next_run = pi_next_run,
	.next_batch = pi_next_batch,
	.close = pi_close,
	.random_open = pi_random_open,
	.read_at = pi_read_at,
	.reject_compressed = pi_reject_volume0,
};

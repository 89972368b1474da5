/*
 * formats/partclone.c - partclone images, format 0002: the 110-byte header
 * and its CRC, the bitmap (BIT, or NONE = every block stored) and its CRC,
 * and the data section walked as runs of used blocks with the checksums
 * (none, CRC32, XXH64, XXH128; any blocks-per-checksum; reseed or running)
 * checked group by group. Layout: ../shared/FORMATS.md section 1.
 *
 * A checksum group that fits in VERIFY_AHEAD_MAX bytes is checked before
 * any of its blocks are handed out, so a bad group is never served; larger
 * groups are checked when their last block has gone by.
 *
 * Not here: decompression and split sets (io/), printing (applets/).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"

#define PC_MAGIC "partclone-image"
#define PC_HEADER_SIZE 110
#define PC_MAX_BLOCK_SIZE ((uint64_t)64 << 20)
#define PC_MAX_BITMAP_BYTES ((uint64_t)4 << 30)
/* Largest checksum group (data + checksum) checked before hand-out. */
#define VERIFY_AHEAD_MAX ((uint64_t)16 << 20)

enum { BM_NONE = 0x00, BM_BIT = 0x01, BM_BYTE = 0x08 };
enum { CSM_NONE = 0x00, CSM_CRC32 = 0x20, CSM_XXH64 = 0x30, CSM_XXH128 = 0x31 };

struct pc_state {
	uint8_t *bitmap;        /* NULL in NONE mode: every block is used */
	uint64_t total, used, device_size, data_start;
	uint32_t bs;
	uint64_t bpc;           /* blocks per checksum, 0 without checksums */
	size_t cs;              /* checksum size, 0 without checksums */
	int reseed;
	img_hash hash;
	int hashing;            /* checksums are checked (they exist and verify is on) */

	uint64_t cur;           /* next block number to look at */
	uint64_t rank;          /* used blocks passed so far */
	uint64_t group_left;    /* blocks still to come in the current group */
	uint64_t group_blocks;  /* blocks of the current group passed so far */
	uint64_t group_first;   /* first block of the current group */
	uint64_t group_offset;  /* image offset of the current group */
	uint64_t group_index;
	int group_checked;      /* the current group was checked ahead */
	int chain_broken;       /* a running checksum failed: later ones cannot be checked */
	size_t pending;         /* bytes handed out, consumed at the next call */
	int finished;
	char version[16];
	char fs[17];
};

static int pc_bid(const uint8_t *p, size_t n)
{
	return n >= 34 && memcmp(p, PC_MAGIC, 15) == 0 &&
	       (memcmp(p + 30, "0002", 4) == 0 || memcmp(p + 30, "0001", 4) == 0);
}

static const char *checksum_name(unsigned mode)
{
	switch (mode) {
	case CSM_NONE: return "NONE";
	case CSM_CRC32: return "CRC32";
	case CSM_XXH64: return "XXH64";
	case CSM_XXH128: return "XXH128";
	default: return "unknown";
	}
}

static void copy_name(char *out, size_t outsz, const uint8_t *p, size_t n)
{
	size_t len = 0;
	while (len < n && p[len])
		len++;
	if (len >= outsz)
		len = outsz - 1;
	for (size_t i = 0; i < len; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[len] = 0;
}

static int check_checksum_fields(img_image *im, unsigned mode, unsigned size, uint32_t bpc,
				 enum img_hash_kind *kind)
{
	static const struct { unsigned mode, size; enum img_hash_kind kind; } modes[] = {
		{ CSM_NONE, 0, HASH_NONE }, { CSM_CRC32, 4, HASH_CRC32 },
		{ CSM_XXH64, 8, HASH_XXH64 }, { CSM_XXH128, 16, HASH_XXH128 },
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		if (modes[i].mode != mode)
			continue;
		if (modes[i].size != size)
			return fmt_fail(im, IMG_E_CORRUPT, 98,
					"checksum size %u does not fit checksum mode %s (expected %u)", size,
					checksum_name(mode), modes[i].size);
		if (mode != CSM_NONE && bpc == 0)
			return fmt_fail(im, IMG_E_CORRUPT, 100,
					"blocks per checksum is 0 with checksum mode %s", checksum_name(mode));
		*kind = modes[i].kind;
		return IMG_OK;
	}
	return fmt_fail(im, IMG_E_FORMAT, 96, "unknown checksum mode 0x%02x", mode);
}

static void add_fields(img_image *im, struct pc_state *st, const uint8_t *h, uint64_t used_fs,
		       uint64_t used_hdr, uint64_t bitmap_bytes, uint32_t bitmap_crc)
{
	char a[40], b[40];
	unsigned mode = get_le16(h + 96);
	im->field_list.title = "Partclone Header";
	im->field_list.label_width = 18;
	im->field_list.separator = "";
	fmt_field(im, "partclone version", "partclone_version", "%s", st->version);
	fmt_field(im, "fs type", "fs_type", "%s", st->fs);
	img_fmt_thousands(a, sizeof a, st->device_size);
	img_fmt_human(b, sizeof b, st->device_size);
	fmt_field_num(im, "fs total size", "fs_total_size", st->device_size, "%s (%s)", a, b);
	img_fmt_thousands(a, sizeof a, st->total);
	fmt_field_num(im, "fs total blocks", "fs_total_blocks", st->total, "%s", a);
	img_fmt_thousands(a, sizeof a, used_fs);
	img_fmt_human(b, sizeof b, used_fs * st->bs);
	img_field *f = fmt_field_num(im, "fs used blocks", "fs_used_blocks", used_fs, "%s (%s)", a, b);
	if (f)
		f->comment = "used block count based on super-block";
	img_fmt_thousands(a, sizeof a, used_hdr);
	img_fmt_human(b, sizeof b, used_hdr * st->bs);
	f = fmt_field_num(im, "fs_used_bitmap", "fs_used_bitmap", used_hdr, "%s (%s)", a, b);
	if (f)
		f->comment = "used block count based on bitmap";
	fmt_field_num(im, "fs block size", "fs_block_size", st->bs, "%u", st->bs);
	fmt_field_num(im, "image version", "image_version", get_le16(h + 92), "%u", get_le16(h + 92));
	fmt_field_num(im, "cpu bits", "cpu_bits", get_le16(h + 94), "%u", get_le16(h + 94));
	fmt_field(im, "checksum mode", "checksum_mode", "%s", checksum_name(mode));
	fmt_field_num(im, "checksum size", "checksum_size", get_le16(h + 98), "%u", get_le16(h + 98));
	fmt_field_num(im, "checksum blocks", "checksum_blocks", get_le32(h + 100), "%u",
		      get_le32(h + 100));
	fmt_field(im, "checksum reseed", "checksum_reseed", "%s", h[104] ? "True" : "False");
	fmt_field(im, "bitmap mode", "bitmap_mode", "%s", h[105] == BM_BIT ? "BIT" : "NONE");
	fmt_field_num(im, "header_crc32", "header_crc32", get_le32(h + 106), "0x%08x", get_le32(h + 106));
	img_fmt_thousands(a, sizeof a, bitmap_bytes);
	img_fmt_human(b, sizeof b, bitmap_bytes);
	fmt_field_num(im, "bitmap", "bitmap_size", bitmap_bytes, "%s bytes (%s)", a, b);
	if (h[105] == BM_BIT)
		fmt_field_num(im, "bitmap_crc32", "bitmap_crc32", bitmap_crc, "0x%08x", bitmap_crc);
	img_fmt_thousands(a, sizeof a, st->data_start);
	fmt_field_num(im, "blocks_section", "blocks_section", st->data_start, "at %s in img file", a);
	fmt_field_num(im, "block_offset_size", "block_offset_size", 1024, "1024");
	fmt_field_num(im, "block_offsets", "block_offsets", 0, "0 instances");
}

/* Read and check the bitmap that follows the header; sets st->used. */
static int read_bitmap(img_image *im, struct pc_state *st, uint64_t nbytes, uint32_t *crc_out)
{
	uint64_t at = im->s->offset;
	st->bitmap = malloc(nbytes ? nbytes : 1);
	if (!st->bitmap)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for a bitmap of %llu bytes", im->path,
				   (unsigned long long)nbytes);
	size_t got;
	int rc = stream_read(im->s, st->bitmap, nbytes, &got);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, at + got,
				"image truncated inside the bitmap (%llu of %llu bytes)",
				(unsigned long long)got, (unsigned long long)nbytes);
	uint8_t stored[4];
	rc = stream_read(im->s, stored, 4, &got);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, at + nbytes + got, "image truncated at the bitmap CRC");
	uint32_t crc = crc32_partclone(st->bitmap, nbytes);
	*crc_out = get_le32(stored);
	if (crc != get_le32(stored))
		return fmt_fail(im, IMG_E_CORRUPT, at + nbytes,
				"bitmap CRC mismatch (stored 0x%08x, computed 0x%08x): the bitmap is damaged",
				get_le32(stored), crc);
	st->used = bitmap_count(st->bitmap, st->total);
	return IMG_OK;
}

static int parse_v2(img_image *im, struct pc_state *st)
{
	uint8_t h[PC_HEADER_SIZE];
	size_t got;
	int rc = stream_read(im->s, h, sizeof h, &got);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, got, "image truncated inside the 110-byte header");
	if (h[34] == 0xC0 && h[35] == 0xDE)
		return fmt_fail(im, IMG_E_FORMAT, 34,
				"image written on a big-endian machine (marker C0 DE), which imgbk does not read");
	uint32_t hcrc = crc32_partclone(h, 106);
	if (hcrc != get_le32(h + 106))
		return fmt_fail(im, IMG_E_CORRUPT, 106,
				"header CRC mismatch (stored 0x%08x, computed 0x%08x): the header is damaged",
				get_le32(h + 106), hcrc);
	if (get_le16(h + 34) != 0xC0DE)
		return fmt_fail(im, IMG_E_CORRUPT, 34, "bad endianness marker %02x %02x", h[34], h[35]);
	copy_name(st->version, sizeof st->version, h + 16, 14);
	copy_name(st->fs, sizeof st->fs, h + 36, 16);
	st->device_size = get_le64(h + 52);
	st->total = get_le64(h + 60);
	uint64_t used_fs = get_le64(h + 68), used_hdr = get_le64(h + 76);
	st->bs = get_le32(h + 84);
	unsigned mode = get_le16(h + 96);
	enum img_hash_kind kind = HASH_NONE;
	if (st->bs == 0 || st->bs > PC_MAX_BLOCK_SIZE)
		return fmt_fail(im, IMG_E_CORRUPT, 84, "block size %u is out of range", st->bs);
	rc = check_checksum_fields(im, mode, get_le16(h + 98), get_le32(h + 100), &kind);
	if (rc < 0)
		return rc;
	if (used_hdr > st->total)
		return fmt_fail(im, IMG_E_CORRUPT, 76, "used blocks %llu exceed the %llu blocks in total",
				(unsigned long long)used_hdr, (unsigned long long)st->total);
	uint64_t span;
	if (__builtin_mul_overflow(st->total, (uint64_t)st->bs, &span) || span > st->device_size)
		return fmt_fail(im, IMG_E_CORRUPT, 60,
				"%llu blocks of %u bytes do not fit the device size %llu",
				(unsigned long long)st->total, st->bs, (unsigned long long)st->device_size);
	unsigned bm_mode = h[105];
	uint64_t bitmap_bytes = 0;
	uint32_t bitmap_crc = 0;
	if (bm_mode == BM_BIT) {
		bitmap_bytes = (st->total + 7) / 8;
		if (bitmap_bytes > PC_MAX_BITMAP_BYTES)
			return fmt_fail(im, IMG_E_FORMAT, 60, "a bitmap of %llu bytes is too large",
					(unsigned long long)bitmap_bytes);
		rc = read_bitmap(im, st, bitmap_bytes, &bitmap_crc);
		if (rc < 0)
			return rc;
		st->data_start = PC_HEADER_SIZE + bitmap_bytes + 4;
		if (st->used != used_hdr)
			return fmt_fail(im, IMG_E_CORRUPT, 76,
					"the bitmap marks %llu blocks used but the header says %llu",
					(unsigned long long)st->used, (unsigned long long)used_hdr);
	} else if (bm_mode == BM_NONE) {
		if (used_hdr != st->total)
			return fmt_fail(im, IMG_E_CORRUPT, 76,
					"image without bitmap must store all %llu blocks, header says %llu",
					(unsigned long long)st->total, (unsigned long long)used_hdr);
		st->used = st->total;
		st->data_start = PC_HEADER_SIZE;
	} else {
		return fmt_fail(im, IMG_E_FORMAT, 105, "bitmap mode 0x%02x is not used by format 0002",
				bm_mode);
	}
	st->cs = hash_size(kind);
	st->bpc = st->cs ? get_le32(h + 100) : 0;
	st->reseed = h[104] != 0;
	if (hash_init(&st->hash, kind) != IMG_OK)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	st->hashing = st->cs && im->opt.verify;

	img_info *info = &im->info;
	info->format_version = "2";
	info->fs = st->fs;
	info->device_size = st->device_size;
	info->block_size = st->bs;
	info->total_blocks = st->total;
	info->used_blocks = st->used;
	info->checksum = checksum_name(mode);
	info->has_checksums = st->cs != 0;
	info->checksums_chained = st->cs != 0 && !st->reseed;
	info->image_data_size = st->data_start + st->used * st->bs +
				(st->cs ? st->cs * ((st->used + st->bpc - 1) / st->bpc) : 0);
	add_fields(im, st, h, used_fs, used_hdr, bitmap_bytes, bitmap_crc);
	return IMG_OK;
}

static int pc_open(img_image *im)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, 34, &p, &avail);
	if (rc < 0)
		return rc;
	if (memcmp(p + 30, "0002", 4) != 0)
		return fmt_fail(im, IMG_E_FORMAT, 30, "partclone image format %.4s is not supported yet",
				(const char *)p + 30);
	struct pc_state *st = calloc(1, sizeof *st);
	if (!st)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	im->priv = st;
	return parse_v2(im, st);
}

static uint64_t next_used(const struct pc_state *st, uint64_t from)
{
	return st->bitmap ? bitmap_next_set(st->bitmap, st->total, from) : from;
}

static uint64_t used_run(const struct pc_state *st, uint64_t from, uint64_t max)
{
	if (!st->bitmap)
		return st->total - from < max ? st->total - from : max;
	return bitmap_run(st->bitmap, st->total, from, max);
}

/* The last block of a group of n used blocks starting at `first`. */
static uint64_t group_last_block(const struct pc_state *st, uint64_t first, uint64_t n)
{
	uint64_t b = first, seen = 0;
	while (b < st->total) {
		uint64_t r = used_run(st, b, n - seen);
		seen += r;
		if (seen >= n)
			return b + r - 1;
		b = next_used(st, b + r);
	}
	return st->total;
}

static int report_bad_group(img_image *im, struct pc_state *st, uint64_t nblocks)
{
	im->bad_groups++;
	uint64_t last = group_last_block(st, st->group_first, nblocks);
	if (!st->reseed)
		st->chain_broken = 1;
	return fmt_fail(im, IMG_E_CHECKSUM, st->group_offset,
			"%s checksum mismatch in blocks %llu-%llu (checksum group %llu)",
			im->info.checksum, (unsigned long long)st->group_first, (unsigned long long)last,
			(unsigned long long)st->group_index);
}

/* The current group is complete: read its checksum, compare, start anew. */
static int finish_group(img_image *im, struct pc_state *st)
{
	const uint8_t *p;
	size_t avail;
	uint64_t at = im->s->offset;
	int rc = stream_peek(im->s, st->cs, &p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, at + avail, "image truncated at a checksum");
	int bad = 0;
	if (st->hashing && !st->group_checked && !st->chain_broken) {
		uint8_t d[16];
		hash_digest(&st->hash, d);
		bad = memcmp(d, p, st->cs) != 0;
	}
	stream_consume(im->s, st->cs);
	uint64_t nblocks = st->group_blocks;
	st->group_blocks = 0;
	st->group_checked = 0;
	st->group_index++;
	if (st->reseed)
		hash_reset(&st->hash);
	if (bad)
		return report_bad_group(im, st, nblocks);
	return IMG_OK;
}

/* Start a group at block b: when it fits, check it whole before hand-out. */
static int start_group(img_image *im, struct pc_state *st, uint64_t b)
{
	st->group_first = b;
	st->group_offset = im->s->offset;
	st->group_left = st->used - st->rank < st->bpc ? st->used - st->rank : st->bpc;
	uint64_t data = st->group_left * st->bs;
	if (!st->hashing || st->chain_broken || data + st->cs > VERIFY_AHEAD_MAX)
		return IMG_OK;
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, data + st->cs, &p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, im->s->offset + avail,
				"image truncated in the data of blocks from %llu on",
				(unsigned long long)b);
	hash_update(&st->hash, p, data);
	uint8_t d[16];
	hash_digest(&st->hash, d);
	st->group_checked = 1;
	if (memcmp(d, p + data, st->cs) == 0)
		return IMG_OK;
	/* Skip the bad group: it is never handed out. */
	uint64_t n = st->group_left;
	uint64_t last = group_last_block(st, b, n);
	int code = report_bad_group(im, st, n);
	stream_consume(im->s, data + st->cs);
	st->rank += n;
	st->cur = last + 1;
	st->group_left = 0;
	st->group_blocks = 0;
	st->group_checked = 0;
	st->group_index++;
	if (st->reseed)
		hash_reset(&st->hash);
	return code;
}

static int check_end(img_image *im)
{
	const uint8_t *p;
	size_t avail;
	uint64_t at = im->s->offset;
	int rc = stream_peek(im->s, 1, &p, &avail);
	if (rc < 0)
		return rc;
	if (avail > 0)
		return fmt_fail(im, IMG_E_TRAILING, at,
				"trailing data after the last block (the image should end here)");
	return IMG_EOF;
}

static int pc_next_run(img_image *im, img_run *run)
{
	struct pc_state *st = im->priv;
	if (st->pending) {
		stream_consume(im->s, st->pending);
		st->pending = 0;
	}
	if (st->finished)
		return IMG_EOF;
	if (st->cs && st->group_blocks > 0 && (st->group_left == 0 || st->rank == st->used)) {
		int rc = finish_group(im, st);
		if (rc < 0)
			return rc;
	}
	if (st->rank >= st->used) {
		int rc = check_end(im);
		st->finished = 1;
		return rc;
	}
	uint64_t b = next_used(st, st->cur);
	if (b >= st->total)
		return fmt_fail(im, IMG_E_CORRUPT, im->s->offset, "bitmap ends before all used blocks");
	if (st->cs && st->group_blocks == 0) {
		int rc = start_group(im, st, b);
		if (rc < 0)
			return rc;
	}
	uint64_t max = st->cs ? st->group_left : st->used - st->rank;
	uint64_t n = used_run(st, b, max);
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, st->bs, &p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, im->s->offset + avail,
				"image truncated in block %llu (%llu of %llu used blocks present)",
				(unsigned long long)b, (unsigned long long)st->rank,
				(unsigned long long)st->used);
	if (n > avail / st->bs)
		n = avail / st->bs;
	size_t len = (size_t)n * st->bs;
	if (st->hashing && !st->group_checked && !st->chain_broken)
		hash_update(&st->hash, p, len);
	run->first_block = b;
	run->nblocks = n;
	run->offset = b * (uint64_t)st->bs;
	run->len = len;
	run->data = p;
	run->verified = st->group_checked;
	st->pending = len;
	st->cur = b + n;
	st->rank += n;
	im->blocks_done += n;
	if (st->cs) {
		st->group_left -= n;
		st->group_blocks += n;
	}
	return IMG_OK;
}

static void pc_close(img_image *im)
{
	struct pc_state *st = im->priv;
	if (!st)
		return;
	hash_free(&st->hash);
	free(st->bitmap);
	free(st);
	im->priv = NULL;
}

const struct img_format fmt_partclone = {
	.name = "partclone",
	.magic_len = 34,
	.bid = pc_bid,
	.open = pc_open,
	.next_run = pc_next_run,
	.close = pc_close,
};

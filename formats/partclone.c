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
 * Not here: the layout's rules (where data and checksums lie, how a group is
 * checked, the messages: partclone_layout.c, shared with random access),
 * decompression and split sets (io/), printing (the command layer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "partclone.h"

static int parse_v1(img_image *im, struct pc_state *st);
static int v1_next_batch(img_image *im, img_run *runs, size_t max, size_t *n);

static int pc_bid(const uint8_t *p, size_t n)
{
	return n >= 34 && memcmp(p, PC_MAGIC, 15) == 0 &&
	       (memcmp(p + 30, "0002", 4) == 0 || memcmp(p + 30, "0001", 4) == 0);
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
					pc_checksum_name(mode), modes[i].size);
		if (mode != CSM_NONE && bpc == 0)
			return fmt_fail(im, IMG_E_CORRUPT, 100,
					"blocks per checksum is 0 with checksum mode %s", pc_checksum_name(mode));
		*kind = modes[i].kind;
		return IMG_OK;
	}
	return fmt_fail(im, IMG_E_FORMAT, 96, "unknown checksum mode 0x%02x", mode);
}

/* The fields both formats print, in the seed's order, up to the block size. */
static void add_common_fields(img_image *im, const struct pc_state *st, uint64_t used_fs,
			      uint64_t used_bitmap)
{
	char a[40];
	im->field_list.title = "Partclone Header";
	im->field_list.label_width = 18;
	im->field_list.separator = "";
	fmt_field(im, "partclone version", "partclone_version", "%s", st->lay.version);
	fmt_field(im, "fs type", "fs_type", "%s", st->lay.fs);
	fmt_field_amount(im, "fs total size", "fs_total_size", st->lay.device_size, st->lay.device_size);
	img_fmt_thousands(a, sizeof a, st->lay.total);
	fmt_field_num(im, "fs total blocks", "fs_total_blocks", st->lay.total, "%s", a);
	img_field *f = fmt_field_amount(im, "fs used blocks", "fs_used_blocks", used_fs,
					used_fs * st->lay.bs);
	if (f)
		f->comment = "used block count based on super-block";
	f = fmt_field_amount(im, "fs_used_bitmap", "fs_used_bitmap", used_bitmap,
			     used_bitmap * st->lay.bs);
	if (f)
		f->comment = "used block count based on bitmap";
	fmt_field_num(im, "fs block size", "fs_block_size", st->lay.bs, "%u", st->lay.bs);
}

/* The facts of img_info, from the layout. */
static void set_info(img_image *im, const struct pc_layout *l, const char *version,
		     const char *checksum)
{
	img_info *info = &im->info;
	info->format_version = version;
	info->fs = l->fs;
	info->device_size = l->device_size;
	info->block_size = l->bs;
	info->total_blocks = l->total;
	info->used_blocks = l->used;
	info->checksum = checksum;
	info->has_checksums = l->cs != 0;
	info->checksums_chained = l->cs != 0 && !l->reseed;
	info->read_check = pc_read_check_text(l);
	info->image_data_size = pc_image_data_size(l);
}

/* "20,480 bytes (20.0 KB)" */
static void add_bitmap_size(img_image *im, uint64_t bytes)
{
	char a[40], b[40];
	img_fmt_thousands(a, sizeof a, bytes);
	img_fmt_human(b, sizeof b, bytes);
	fmt_field_num(im, "bitmap", "bitmap_size", bytes, "%s bytes (%s)", a, b);
}

/* The fields that end both formats' prints. */
static void add_tail_fields(img_image *im, const struct pc_state *st)
{
	char a[40];
	img_fmt_thousands(a, sizeof a, st->lay.data_start);
	fmt_field_num(im, "blocks_section", "blocks_section", st->lay.data_start, "at %s in img file", a);
	fmt_field_num(im, "block_offset_size", "block_offset_size", 1024, "1024");
	fmt_field_num(im, "block_offsets", "block_offsets", 0, "0 instances");
}

static void add_fields(img_image *im, struct pc_state *st, const uint8_t *h, uint64_t used_fs,
		       uint64_t used_hdr, uint64_t bitmap_bytes, uint32_t bitmap_crc)
{
	unsigned mode = pc_rd16(&st->lay, h + 96);
	add_common_fields(im, st, used_fs, used_hdr);
	fmt_field_num(im, "image version", "image_version", pc_rd16(&st->lay, h + 92), "%u", pc_rd16(&st->lay, h + 92));
	fmt_field_num(im, "cpu bits", "cpu_bits", pc_rd16(&st->lay, h + 94), "%u", pc_rd16(&st->lay, h + 94));
	fmt_field(im, "checksum mode", "checksum_mode", "%s", pc_checksum_name(mode));
	fmt_field_num(im, "checksum size", "checksum_size", pc_rd16(&st->lay, h + 98), "%u", pc_rd16(&st->lay, h + 98));
	fmt_field_num(im, "checksum blocks", "checksum_blocks", pc_rd32(&st->lay, h + 100), "%u",
		      pc_rd32(&st->lay, h + 100));
	fmt_field(im, "checksum reseed", "checksum_reseed", "%s", h[104] ? "True" : "False");
	fmt_field(im, "bitmap mode", "bitmap_mode", "%s", h[105] == BM_BIT ? "BIT" : "NONE");
	fmt_field_num(im, "header_crc32", "header_crc32", pc_rd32(&st->lay, h + 106), "0x%08x", pc_rd32(&st->lay, h + 106));
	add_bitmap_size(im, bitmap_bytes);
	if (h[105] == BM_BIT)
		fmt_field_num(im, "bitmap_crc32", "bitmap_crc32", bitmap_crc, "0x%08x", bitmap_crc);
	add_tail_fields(im, st);
}

/* A big-endian creator's bitmap is an array of native words, bit i at bit
 * i % (8*word) of word i / (8*word): reverse the bytes of every word to get
 * the byte-wise LSB-first layout (a short last word is padded with zeros). */
static void bitmap_from_words(uint8_t *bm, uint64_t nbytes, unsigned word)
{
	for (uint64_t w = 0; w < nbytes; w += word) {
		uint8_t tmp[8] = { 0 };
		unsigned have = nbytes - w < word ? (unsigned)(nbytes - w) : word;
		memcpy(tmp, bm + w, have);
		for (unsigned i = 0; i < have; i++)
			bm[w + i] = tmp[word - 1 - i];
	}
}

/* Read and check the bitmap that follows the header; sets st->lay.used. */
static int read_bitmap(img_image *im, struct pc_state *st, uint64_t nbytes, uint32_t *crc_out)
{
	uint64_t at = im->s->offset;
	st->lay.bitmap = malloc(nbytes ? nbytes : 1);
	if (!st->lay.bitmap)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for a bitmap of %llu bytes", im->path,
				   (unsigned long long)nbytes);
	size_t got;
	int rc = stream_read(im->s, st->lay.bitmap, nbytes, &got);
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
	uint32_t crc = crc32_partclone(st->lay.bitmap, nbytes);
	*crc_out = pc_rd32(&st->lay, stored);
	if (crc != pc_rd32(&st->lay, stored))
		return fmt_fail(im, IMG_E_CORRUPT, at + nbytes,
				"bitmap CRC mismatch (stored 0x%08x, computed 0x%08x): the bitmap is damaged",
				pc_rd32(&st->lay, stored), crc);
	if (st->lay.big_endian)
		bitmap_from_words(st->lay.bitmap, nbytes, st->lay.cpu_bits / 8);
	st->lay.used = bitmap_count(st->lay.bitmap, st->lay.total);
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
	st->lay.big_endian = h[34] == 0xC0 && h[35] == 0xDE;
	uint32_t hcrc = crc32_partclone(h, 106);
	if (hcrc != pc_rd32(&st->lay, h + 106))
		return fmt_fail(im, IMG_E_CORRUPT, 106,
				"header CRC mismatch (stored 0x%08x, computed 0x%08x): the header is damaged",
				pc_rd32(&st->lay, h + 106), hcrc);
	if (pc_rd16(&st->lay, h + 34) != 0xC0DE)
		return fmt_fail(im, IMG_E_CORRUPT, 34, "bad endianness marker %02x %02x", h[34], h[35]);
	st->lay.cpu_bits = pc_rd16(&st->lay, h + 94);
	if (st->lay.big_endian && st->lay.cpu_bits != 32 && st->lay.cpu_bits != 64)
		return fmt_fail(im, IMG_E_CORRUPT, 94, "cpu bits %u is neither 32 nor 64", st->lay.cpu_bits);
	fmt_copy_text(st->lay.version, sizeof st->lay.version, h + 16, 14);
	fmt_copy_text(st->lay.fs, sizeof st->lay.fs, h + 36, 16);
	st->lay.device_size = pc_rd64(&st->lay, h + 52);
	st->lay.total = pc_rd64(&st->lay, h + 60);
	uint64_t used_fs = pc_rd64(&st->lay, h + 68), used_hdr = pc_rd64(&st->lay, h + 76);
	st->lay.bs = pc_rd32(&st->lay, h + 84);
	unsigned mode = pc_rd16(&st->lay, h + 96);
	enum img_hash_kind kind = HASH_NONE;
	if (st->lay.bs == 0 || st->lay.bs > PC_MAX_BLOCK_SIZE)
		return fmt_fail(im, IMG_E_CORRUPT, 84, "block size %u is out of range", st->lay.bs);
	rc = check_checksum_fields(im, mode, pc_rd16(&st->lay, h + 98), pc_rd32(&st->lay, h + 100), &kind);
	if (rc < 0)
		return rc;
	if (used_hdr > st->lay.total)
		return fmt_fail(im, IMG_E_CORRUPT, 76, "used blocks %llu exceed the %llu blocks in total",
				(unsigned long long)used_hdr, (unsigned long long)st->lay.total);
	uint64_t span;
	if (__builtin_mul_overflow(st->lay.total, (uint64_t)st->lay.bs, &span) || span > st->lay.device_size)
		return fmt_fail(im, IMG_E_CORRUPT, 60,
				"%llu blocks of %u bytes do not fit the device size %llu",
				(unsigned long long)st->lay.total, st->lay.bs, (unsigned long long)st->lay.device_size);
	unsigned bm_mode = h[105];
	uint64_t bitmap_bytes = 0;
	uint32_t bitmap_crc = 0;
	if (bm_mode == BM_BIT) {
		bitmap_bytes = (st->lay.total + 7) / 8;
		if (bitmap_bytes > PC_MAX_BITMAP_BYTES)
			return fmt_fail(im, IMG_E_FORMAT, 60, "a bitmap of %llu bytes is too large",
					(unsigned long long)bitmap_bytes);
		rc = read_bitmap(im, st, bitmap_bytes, &bitmap_crc);
		if (rc < 0)
			return rc;
		st->lay.data_start = PC_HEADER_SIZE + bitmap_bytes + 4;
		if (st->lay.used != used_hdr)
			return fmt_fail(im, IMG_E_CORRUPT, 76,
					"the bitmap marks %llu blocks used but the header says %llu",
					(unsigned long long)st->lay.used, (unsigned long long)used_hdr);
	} else if (bm_mode == BM_NONE) {
		if (used_hdr != st->lay.total)
			return fmt_fail(im, IMG_E_CORRUPT, 76,
					"image without bitmap must store all %llu blocks, header says %llu",
					(unsigned long long)st->lay.total, (unsigned long long)used_hdr);
		st->lay.used = st->lay.total;
		st->lay.data_start = PC_HEADER_SIZE;
	} else {
		return fmt_fail(im, IMG_E_FORMAT, 105, "bitmap mode 0x%02x is not used by format 0002",
				bm_mode);
	}
	st->lay.cs = hash_size(kind);
	st->lay.bpc = st->lay.cs ? pc_rd32(&st->lay, h + 100) : 0;
	st->lay.reseed = h[104] != 0;
	st->lay.kind = kind;
	if (hash_init(&st->walk.hash, kind) != IMG_OK)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	st->walk.hashing = st->lay.cs && im->opt.verify;

	set_info(im, &st->lay, "2", pc_checksum_name(mode));
	add_fields(im, st, h, used_fs, used_hdr, bitmap_bytes, bitmap_crc);
	return IMG_OK;
}

/* The last block of a group of n used blocks starting at `first`. */
static uint64_t group_last_block(const struct pc_state *st, uint64_t first, uint64_t n)
{
	uint64_t b = first, seen = 0;
	while (b < st->lay.total) {
		uint64_t r = pc_used_run(&st->lay, b, n - seen);
		seen += r;
		if (seen >= n)
			return b + r - 1;
		b = pc_next_used(&st->lay, b + r);
	}
	return st->lay.total;
}

static int report_bad_group(img_image *im, struct pc_state *st, uint64_t nblocks)
{
	im->bad_groups++;
	uint64_t last = group_last_block(st, st->walk.group_first, nblocks);
	if (!st->lay.reseed)
		st->walk.chain_broken = 1;
	char text[200];
	return fmt_fail(im, IMG_E_CHECKSUM, st->walk.group_offset, "%s",
			pc_bad_group_text(text, sizeof text, im->info.checksum, st->walk.group_first, last,
					  st->walk.group_index));
}

/* The walk leaves the current group: the next one starts afresh. */
static void end_group(struct pc_state *st)
{
	st->walk.group_left = 0;
	st->walk.group_blocks = 0;
	st->walk.group_checked = 0;
	st->walk.group_rescued = 0;
	st->walk.group_index++;
	if (st->lay.reseed)
		hash_reset(&st->walk.hash);
}

/* The current group is complete: read its checksum, compare, start anew. */
static int finish_group(img_image *im, struct pc_state *st)
{
	const uint8_t *p;
	size_t avail;
	uint64_t at = im->s->offset;
	int rc = stream_peek(im->s, st->lay.cs, &p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, at + avail, "image truncated at a checksum");
	int bad = 0;
	if (st->walk.hashing && !st->walk.group_checked && !st->walk.chain_broken)
		bad = !pc_checksum_matches(&st->lay, &st->walk.hash, p);
	stream_consume(im->s, st->lay.cs);
	uint64_t nblocks = st->walk.group_blocks;
	end_group(st);
	if (bad)
		return report_bad_group(im, st, nblocks);
	return IMG_OK;
}

/* Start a group at block b: when it fits, check it whole before hand-out. */
static int start_group(img_image *im, struct pc_state *st, uint64_t b)
{
	st->walk.group_first = b;
	st->walk.group_offset = im->s->offset;
	st->walk.group_left = st->lay.used - st->walk.rank < st->lay.bpc ? st->lay.used - st->walk.rank : st->lay.bpc;
	uint64_t data = st->walk.group_left * st->lay.bs;
	if (!st->walk.hashing || st->walk.chain_broken || data + st->lay.cs > VERIFY_AHEAD_MAX)
		return IMG_OK;
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, data + st->lay.cs, &p, &avail);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, im->s->offset + avail,
				"image truncated in the data of blocks from %llu on",
				(unsigned long long)b);
	hash_update(&st->walk.hash, p, data);
	st->walk.group_checked = 1;
	if (pc_checksum_matches(&st->lay, &st->walk.hash, p + data))
		return IMG_OK;
	uint64_t n = st->walk.group_left;
	if (im->opt.rescue) {  /* hand the group out as bad runs, then go on */
		st->walk.group_rescued = 1;
		return report_bad_group(im, st, n);
	}
	/* Skip the bad group: it is never handed out. */
	uint64_t last = group_last_block(st, b, n);
	int code = report_bad_group(im, st, n);
	stream_consume(im->s, data + st->lay.cs);
	st->walk.rank += n;
	st->walk.cur = last + 1;
	end_group(st);
	return code;
}

/* At the start of a call: consume what the last one handed out.
 * @return IMG_EOF when the walk has ended, else IMG_OK. */
static int walk_resume(img_image *im, struct pc_state *st)
{
	if (st->walk.pending) {
		stream_consume(im->s, st->walk.pending);
		st->walk.pending = 0;
	}
	return st->walk.finished ? IMG_EOF : IMG_OK;
}

/* Make `want` bytes of block b (and on) visible. @return IMG_OK, or an
 * error naming b when the image ends first. */
static int peek_block(img_image *im, const struct pc_state *st, uint64_t b, size_t want,
		      const uint8_t **p, size_t *avail)
{
	int rc = stream_peek(im->s, want, p, avail);
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, im->s->offset + *avail,
				"image truncated in block %llu (%llu of %llu used blocks present)",
				(unsigned long long)b, (unsigned long long)st->walk.rank,
				(unsigned long long)st->lay.used);
	return rc < 0 ? rc : IMG_OK;
}

static int pc_next_run(img_image *im, img_run *run)
{
	struct pc_state *st = im->priv;
	if (walk_resume(im, st) == IMG_EOF)
		return IMG_EOF;
	if (st->lay.cs && st->walk.group_blocks > 0 && (st->walk.group_left == 0 || st->walk.rank == st->lay.used)) {
		int rc = finish_group(im, st);
		if (rc < 0)
			return rc;
	}
	if (st->walk.rank >= st->lay.used) {
		int rc = fmt_expect_end(im, "the last block");
		st->walk.finished = 1;
		return rc;
	}
	uint64_t b = pc_next_used(&st->lay, st->walk.cur);
	if (b >= st->lay.total)
		return fmt_fail(im, IMG_E_CORRUPT, im->s->offset, "bitmap ends before all used blocks");
	if (st->lay.cs && st->walk.group_blocks == 0 && !st->walk.group_checked) {
		int rc = start_group(im, st, b);
		if (rc < 0)
			return rc;
	}
	uint64_t max = st->lay.cs ? st->walk.group_left : st->lay.used - st->walk.rank;
	uint64_t n = pc_used_run(&st->lay, b, max);
	const uint8_t *p;
	size_t avail;
	int rc = peek_block(im, st, b, st->lay.bs, &p, &avail);
	if (rc < 0)
		return rc;
	if (n > avail / st->lay.bs)
		n = avail / st->lay.bs;
	size_t len = (size_t)n * st->lay.bs;
	if (st->walk.hashing && !st->walk.group_checked && !st->walk.chain_broken)
		hash_update(&st->walk.hash, p, len);
	run->first_block = b;
	run->nblocks = n;
	run->offset = b * (uint64_t)st->lay.bs;
	run->len = len;
	run->data = st->walk.group_rescued ? NULL : p;
	run->bad = st->walk.group_rescued;
	run->verified = st->walk.group_checked && !st->walk.group_rescued;
	st->walk.pending = len;
	st->walk.cur = b + n;
	st->walk.rank += n;
	im->blocks_done += n;
	if (st->lay.cs) {
		st->walk.group_left -= n;
		st->walk.group_blocks += n;
	}
	return IMG_OK;
}

/* ---- format 0001 (partclone 0.2.x) --------------------------------------
 * Header of 4160 bytes without CRC, a byte per block bitmap (1 = used) and
 * the marker "BiTmAgIc", then every used block followed by a 4-byte CRC.
 * That CRC is cumulative and, through an old bug, covers the block's first
 * byte repeated block-size times. Very old 64-bit builds wrote 8 bytes per
 * CRC (4 junk bytes after, or before, it): detected from the first blocks. */
#define PC1_MAGIC "BiTmAgIc"

/* Convert the byte bitmap into bits while reading it. */
static int read_byte_bitmap(img_image *im, struct pc_state *st)
{
	st->lay.bitmap = calloc(1, (st->lay.total + 7) / 8 + 1);
	if (!st->lay.bitmap)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0,
				   "%s: out of memory for a bitmap of %llu blocks", im->path,
				   (unsigned long long)st->lay.total);
	uint64_t i = 0;
	while (i < st->lay.total) {
		const uint8_t *p;
		size_t avail;
		int rc = stream_peek(im->s, 1, &p, &avail);
		if (rc < 0)
			return rc;
		if (avail == 0)
			return fmt_fail(im, IMG_E_TRUNCATED, im->s->offset,
					"image truncated inside the bitmap (%llu of %llu bytes)",
					(unsigned long long)i, (unsigned long long)st->lay.total);
		size_t take = st->lay.total - i < avail ? (size_t)(st->lay.total - i) : avail;
		for (size_t k = 0; k < take; k++)
			if (p[k] == 1)
				st->lay.bitmap[(i + k) >> 3] |= (uint8_t)(1u << ((i + k) & 7));
		stream_consume(im->s, take);
		i += take;
	}
	uint8_t magic[8];
	size_t got;
	uint64_t at = im->s->offset;
	int rc = stream_read(im->s, magic, 8, &got);
	if (rc < 0)
		return rc;
	if (rc == IMG_EOF)
		return fmt_fail(im, IMG_E_TRUNCATED, at + got, "image truncated at the bitmap marker");
	if (memcmp(magic, PC1_MAGIC, 8) != 0)
		return fmt_fail(im, IMG_E_CORRUPT, at, "bitmap marker BiTmAgIc missing: the bitmap is damaged");
	st->lay.used = bitmap_count(st->lay.bitmap, st->lay.total);
	return IMG_OK;
}

/* The running 0001 CRC (zlib form) after a block: its first byte repeated. */
/* Do the first `blocks` blocks at p (avail bytes) carry their running 0001
 * CRC where layout l puts it? */
static int v1_layout_fits(const struct pc_layout *l, const uint8_t *p, size_t avail,
			  uint64_t blocks)
{
	img_hash h;
	if (hash_init(&h, HASH_CRC32) != IMG_OK)
		return 0;
	int ok = 1;
	for (uint64_t b = 0; b < blocks && ok; b++) {
		const uint8_t *blk = p + b * l->v1_stride;
		if ((size_t)(b * l->v1_stride) + l->v1_stride > avail)
			ok = 0;
		else {
			pc_group_update(l, &h, blk, 0, l->bs);
			ok = pc_checksum_matches(l, &h, blk + l->bs + l->v1_crc_at);
		}
	}
	hash_free(&h);
	return ok;
}

/* Find the CRC stride from the first two blocks: 4, or 8 with the CRC
 * before or after 4 junk bytes. Defaults to 4 when nothing matches. */
static int v1_detect_stride(img_image *im, struct pc_state *st)
{
	static const struct { size_t stride, crc_at; } layouts[] = { { 4, 0 }, { 8, 0 }, { 8, 4 } };
	st->lay.v1_stride = st->lay.bs + 4;
	st->lay.v1_crc_at = 0;
	if (st->lay.used == 0)
		return IMG_OK;
	uint64_t blocks = st->lay.used < 2 ? st->lay.used : 2;
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, blocks * (st->lay.bs + 8), &p, &avail);
	if (rc < 0)
		return rc;
	for (size_t k = 0; k < sizeof layouts / sizeof layouts[0]; k++) {
		struct pc_layout l = st->lay;
		l.v1_stride = st->lay.bs + layouts[k].stride;
		l.v1_crc_at = layouts[k].crc_at;
		if (v1_layout_fits(&l, p, avail, blocks)) {
			st->lay.v1_stride = l.v1_stride;
			st->lay.v1_crc_at = l.v1_crc_at;
			return IMG_OK;
		}
	}
	return IMG_OK;
}

static void add_v1_fields(img_image *im, struct pc_state *st, uint64_t used_hdr)
{
	add_common_fields(im, st, used_hdr, st->lay.used);
	fmt_field_num(im, "image version", "image_version", 1, "1");
	fmt_field(im, "cpu bits", "cpu_bits", "n/a");
	fmt_field(im, "checksum mode", "checksum_mode", "CRC32_0001");
	fmt_field_num(im, "checksum size", "checksum_size", st->lay.v1_stride - st->lay.bs, "%zu",
		      st->lay.v1_stride - st->lay.bs);
	fmt_field_num(im, "checksum blocks", "checksum_blocks", 1, "1");
	fmt_field(im, "checksum reseed", "checksum_reseed", "False");
	fmt_field(im, "bitmap mode", "bitmap_mode", "BYTE");
	add_bitmap_size(im, st->lay.total);
	add_tail_fields(im, st);
}

static int parse_v1(img_image *im, struct pc_state *st)
{
	uint8_t *h = malloc(PC1_HEADER_SIZE);
	if (!h)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	size_t got;
	int rc = stream_read(im->s, h, PC1_HEADER_SIZE, &got);
	if (rc == IMG_EOF)
		rc = fmt_fail(im, IMG_E_TRUNCATED, got, "image truncated inside the 4160-byte header");
	if (rc < 0) {
		free(h);
		return rc;
	}
	fmt_copy_text(st->lay.fs, sizeof st->lay.fs, h + 15, 15);
	snprintf(st->lay.version, sizeof st->lay.version, "n/a");
	st->lay.bs = get_le32(h + 36);
	st->lay.device_size = get_le64(h + 40);
	st->lay.total = get_le64(h + 48);
	uint64_t used_hdr = get_le64(h + 56);
	free(h);
	uint64_t span;
	if (st->lay.bs == 0 || st->lay.bs > PC_MAX_BLOCK_SIZE)
		return fmt_fail(im, IMG_E_CORRUPT, 36, "block size %u is out of range", st->lay.bs);
	if (__builtin_mul_overflow(st->lay.total, (uint64_t)st->lay.bs, &span) || span > st->lay.device_size)
		return fmt_fail(im, IMG_E_CORRUPT, 48,
				"%llu blocks of %u bytes do not fit the device size %llu",
				(unsigned long long)st->lay.total, st->lay.bs, (unsigned long long)st->lay.device_size);
	if (st->lay.total > PC_MAX_BITMAP_BYTES * 8)
		return fmt_fail(im, IMG_E_FORMAT, 48, "%llu blocks are too many",
				(unsigned long long)st->lay.total);
	if (used_hdr > st->lay.total)
		return fmt_fail(im, IMG_E_CORRUPT, 56, "used blocks %llu exceed the %llu blocks in total",
				(unsigned long long)used_hdr, (unsigned long long)st->lay.total);
	rc = read_byte_bitmap(im, st);
	if (rc < 0)
		return rc;
	if (st->lay.used != used_hdr)
		return fmt_fail(im, IMG_E_CORRUPT, 56,
				"the bitmap marks %llu blocks used but the header says %llu",
				(unsigned long long)st->lay.used, (unsigned long long)used_hdr);
	st->lay.v1 = 1;
	st->lay.data_start = PC1_HEADER_SIZE + st->lay.total + 8;
	st->lay.cs = 4;
	st->lay.bpc = 1;
	st->lay.reseed = 0;
	st->lay.kind = HASH_CRC32;
	if (hash_init(&st->walk.hash, HASH_CRC32) != IMG_OK)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	st->walk.hashing = im->opt.verify;
	rc = v1_detect_stride(im, st);
	if (rc < 0)
		return rc;
	set_info(im, &st->lay, "1", "CRC32_0001");
	add_v1_fields(im, st, used_hdr);
	return IMG_OK;
}

/* Hand out the blocks visible in the buffer, one run each, checking their CRCs. */
static int v1_next_batch(img_image *im, img_run *runs, size_t max, size_t *n)
{
	struct pc_state *st = im->priv;
	*n = 0;
	if (walk_resume(im, st) == IMG_EOF)
		return IMG_EOF;
	if (st->walk.rank >= st->lay.used) {
		st->walk.finished = 1;
		return fmt_expect_end(im, "the last block");
	}
	const uint8_t *p;
	size_t avail;
	int rc = peek_block(im, st, pc_next_used(&st->lay, st->walk.cur), st->lay.v1_stride, &p, &avail);
	if (rc < 0)
		return rc;
	size_t off = 0;
	while (*n < max && st->walk.rank < st->lay.used && avail - off >= st->lay.v1_stride) {
		const uint8_t *blk = p + off;
		uint64_t b = pc_next_used(&st->lay, st->walk.cur);
		if (b >= st->lay.total)
			return fmt_fail(im, IMG_E_CORRUPT, im->s->offset + off, "bitmap ends before all used blocks");
		if (st->walk.hashing && !st->walk.chain_broken) {
			uint32_t before = st->walk.hash.crc;
			pc_group_update(&st->lay, &st->walk.hash, blk, 0, st->lay.bs);
			if (!pc_checksum_matches(&st->lay, &st->walk.hash,
						 blk + st->lay.bs + st->lay.v1_crc_at)) {
				st->walk.hash.crc = before;  /* the next call starts at this block again */
				if (*n > 0)
					break;  /* hand out the good blocks first */
				/* the bad block is never handed out (rescue: as a bad run,
				 * on the next call); later CRCs cannot be checked */
				st->walk.group_first = b;
				st->walk.group_offset = im->s->offset;
				st->walk.group_index = st->walk.rank;
				if (im->opt.rescue) {
					st->walk.v1_bad_next = 1;
					return report_bad_group(im, st, 1);
				}
				st->walk.cur = b + 1;
				st->walk.rank++;
				st->walk.pending = st->lay.v1_stride;
				return report_bad_group(im, st, 1);
			}
		}
		img_run *r = &runs[(*n)++];
		r->first_block = b;
		r->nblocks = 1;
		r->offset = b * (uint64_t)st->lay.bs;
		r->len = st->lay.bs;
		r->data = st->walk.v1_bad_next ? NULL : blk;
		r->bad = st->walk.v1_bad_next;
		r->verified = st->walk.hashing && !st->walk.chain_broken;
		st->walk.v1_bad_next = 0;
		st->walk.cur = b + 1;
		st->walk.rank++;
		im->blocks_done++;
		off += st->lay.v1_stride;
	}
	st->walk.pending = off;
	return IMG_OK;
}

static int v1_next_run(img_image *im, img_run *run)
{
	size_t n;
	return v1_next_batch(im, run, 1, &n);
}

static int pc_open(img_image *im)
{
	const uint8_t *p;
	size_t avail;
	int rc = stream_peek(im->s, 34, &p, &avail);
	if (rc < 0)
		return rc;
	int v1 = memcmp(p + 30, "0001", 4) == 0;
	struct pc_state *st = calloc(1, sizeof *st);
	if (!st)
		return img_err_set(&im->err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", im->path);
	im->priv = st;
	return v1 ? parse_v1(im, st) : parse_v2(im, st);
}

static int pc_dispatch_run(img_image *im, img_run *run)
{
	struct pc_state *st = im->priv;
	return st->lay.v1 ? v1_next_run(im, run) : pc_next_run(im, run);
}

static int pc_dispatch_batch(img_image *im, img_run *runs, size_t max, size_t *n)
{
	struct pc_state *st = im->priv;
	if (st->lay.v1)
		return v1_next_batch(im, runs, max, n);
	int rc = pc_next_run(im, &runs[0]);
	*n = rc == IMG_OK;
	return rc;
}

static void pc_close(img_image *im)
{
	struct pc_state *st = im->priv;
	if (!st)
		return;
	hash_free(&st->walk.hash);
	free(st->lay.bitmap);
	pc_random_free(&st->acc);
	free(st);
	im->priv = NULL;
}

const struct img_format fmt_partclone = {
	.name = "partclone",
	.magic_len = 34,
	.bid = pc_bid,
	.open = pc_open,
	.next_run = pc_dispatch_run,
	.next_batch = pc_dispatch_batch,
	.close = pc_close,
	.random_open = pc_random_open,
	.read_at = pc_read_at,
};

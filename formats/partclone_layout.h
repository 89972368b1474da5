/*
 * formats/partclone_layout.h - the layout of a partclone image, once: the
 * facts its header and bitmap give, and pure functions over them: byte order,
 * where block data and checksums lie, the checksum groups and their bounds,
 * how a group's checksum is compared, format 0001's CRC rule, and the texts
 * of their errors (FORMATS.md section 1).
 *
 * Used by the sequential walk (partclone.c) and random access
 * (partclone_access.c); it depends on neither. No I/O, no moving state.
 */
#ifndef IMGBK_PARTCLONE_LAYOUT_H
#define IMGBK_PARTCLONE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

#define PC_MAGIC "partclone-image"
#define PC_HEADER_SIZE 110
#define PC1_HEADER_SIZE 4160
#define PC_MAX_BLOCK_SIZE ((uint64_t)64 << 20)
#define PC_MAX_BITMAP_BYTES ((uint64_t)4 << 30)

enum { BM_NONE = 0x00, BM_BIT = 0x01, BM_BYTE = 0x08 };
enum { CSM_NONE = 0x00, CSM_CRC32 = 0x20, CSM_XXH64 = 0x30, CSM_XXH128 = 0x31 };

/* Filled by the open (partclone.c), read-only after it. */
struct pc_layout {
	int v1;                 /* format 0001 */
	int big_endian;         /* written on a big-endian machine (marker C0 DE) */
	unsigned cpu_bits;      /* word size of the creator: a big-endian bitmap is made of such words */
	uint8_t *bitmap;        /* bit per block, LSB first; NULL in NONE mode: every block is used */
	uint64_t total, used, device_size;
	uint64_t data_start;    /* image offset of the first block's data */
	uint32_t bs;
	uint64_t bpc;           /* blocks per checksum, 0 without checksums */
	size_t cs;              /* checksum size, 0 without checksums */
	int reseed;             /* each group's checksum starts afresh */
	enum img_hash_kind kind;
	size_t v1_stride;       /* 0001: bytes from one block to the next: bs + 4 (or + 8) */
	size_t v1_crc_at;       /* 0001: where the CRC sits after the block: 0, or 4 with junk first */
	char version[16];
	char fs[17];
};

/* Integers as the creator wrote them. */
uint16_t pc_rd16(const struct pc_layout *l, const uint8_t *p);
uint32_t pc_rd32(const struct pc_layout *l, const uint8_t *p);
uint64_t pc_rd64(const struct pc_layout *l, const uint8_t *p);

/* "CRC32", "XXH64", ... of a checksum mode byte. */
const char *pc_checksum_name(unsigned mode);
/* What a random read checks, for info. */
const char *pc_read_check_text(const struct pc_layout *l);

/* First used block at or after `from` (total when none). */
uint64_t pc_next_used(const struct pc_layout *l, uint64_t from);
/* Used blocks in a row from `from`, at most max. */
uint64_t pc_used_run(const struct pc_layout *l, uint64_t from, uint64_t max);

/* Image offset of the data of the used block of rank r (r used blocks before it). */
uint64_t pc_data_offset(const struct pc_layout *l, uint64_t r);
/* Checksum groups: ceil(used / bpc); 0 without checksums. */
uint64_t pc_groups(const struct pc_layout *l);
/* Blocks in group g (bpc, fewer in the last one). */
uint64_t pc_group_blocks(const struct pc_layout *l, uint64_t g);
/* Bytes after a group's data up to the next group (its checksum; format
 * 0001: 4 or 8 bytes), and where in them the checksum sits. */
size_t pc_group_tail(const struct pc_layout *l);
size_t pc_checksum_in_tail(const struct pc_layout *l);
/* Image offset of group g's stored checksum. */
uint64_t pc_checksum_offset(const struct pc_layout *l, uint64_t g);
/* Bytes from the start of the image to the end of the data. */
uint64_t pc_image_data_size(const struct pc_layout *l);

/* Our digest (little-endian form) as the image stores it, in place: a
 * big-endian creator stores each native integer of it byte-reversed (the
 * swap undoes itself). */
void pc_digest_as_stored(const struct pc_layout *l, uint8_t *d);
/* Is h's digest the checksum stored at `stored` (cs bytes as in the image)?
 * @return 1 yes, 0 no. */
int pc_checksum_matches(const struct pc_layout *l, const img_hash *h, const uint8_t *stored);
/* Feed bytes [pos, pos + len) of a group's data to h. A format 0001 CRC
 * covers only the first byte of its (one-block) group, repeated block-size
 * times (FORMATS.md 1.9): the other bytes are not hashed. */
void pc_group_update(const struct pc_layout *l, img_hash *h, const uint8_t *p, uint64_t pos,
		     size_t len);

/* Error texts (without file and offset). @return out. */
const char *pc_bad_group_text(char *out, size_t outsz, const char *checksum, uint64_t first,
			      uint64_t last, uint64_t g);

#endif

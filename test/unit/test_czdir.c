/*
 * test/unit/test_czdir.c - unit tests of the Clonezilla directory reader
 * (formats/czdir.c, czpt.c): the sfdisk -d parser (dos, gpt, old Id=
 * syntax, quoted names with commas), the parted size, image file names of
 * every naming generation, the EBR chain against the sectors sfdisk 2.38.1
 * wrote on a loop device (aligned and 63-sector layouts, CHS past cylinder
 * 1023), and the backup GPT (fields and CRC-32s; damaged primaries refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "formats/fmt.h"
#include "formats/czdir.h"

/* ---- .sf ---------------------------------------------------------------- */

static void test_sf_dos(void **state)
{
	static const char sf[] =
		"label: dos\nlabel-id: 0x5eed1234\ndevice: /dev/sda\nunit: sectors\nsector-size: 512\n\n"
		"/dev/sda1 : start=        2048, size=       65536, type=83, bootable\n"
		"/dev/sda2 : start=       67584, size=      129024, type=5\n"
		"/dev/sda5 : start=       69632, size=       32768, type=6\n"
		"/dev/sda6 : start=      104448, size=       16384, type=82\n"
		"/dev/sda7 : start=      122880, size=       65536, type=8e\n";
	img_cz_disk d = { 0 };
	img_cz_part p[8];
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_parse_sf(sf, "sda-pt.sf", 0, &d, p, 8, &n, &err), IMG_OK);
	assert_int_equal(n, 5);
	assert_int_equal(d.label, IMG_CZ_LABEL_MBR);
	assert_string_equal(d.label_id, "0x5eed1234");
	assert_int_equal(d.sector_size, 512);
	assert_string_equal(p[0].name, "sda1");
	assert_int_equal(p[0].start, 2048);
	assert_int_equal(p[0].size, 65536);
	assert_true(p[0].bootable);
	assert_int_equal(p[0].kind, IMG_CZ_DATA);
	assert_int_equal(p[1].kind, IMG_CZ_EXTENDED);
	assert_int_equal(p[2].number, 5);
	assert_false(p[2].bootable);
	assert_int_equal(p[3].kind, IMG_CZ_SWAP);
	assert_int_equal(p[4].kind, IMG_CZ_LVM_PV);
}

static void test_sf_gpt_and_names(void **state)
{
	static const char sf[] =
		"label: gpt\nlabel-id: 6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9\ndevice: /dev/nvme0n1\n"
		"unit: sectors\nfirst-lba: 34\nlast-lba: 327646\ntable-length: 64\n\n"
		"/dev/nvme0n1p1 : start=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, "
		"uuid=11111111-2222-4333-8444-555555555501, name=\"EFI, system\", attrs=\"RequiredPartition GUID:63\"\n"
		"/dev/nvme0n1p2 : start=67584, size=8192, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n";
	img_cz_disk d = { 0 };
	img_cz_part p[4];
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_parse_sf(sf, "nvme0n1-pt.sf", 1, &d, p, 4, &n, &err), IMG_OK);
	assert_int_equal(n, 2);
	assert_int_equal(d.label, IMG_CZ_LABEL_GPT);
	assert_int_equal(d.first_lba, 34);
	assert_int_equal(d.last_lba, 327646);
	assert_int_equal(d.table_length, 64);
	assert_string_equal(p[0].name, "nvme0n1p1");
	assert_int_equal(p[0].number, 1);
	assert_int_equal(p[0].disk, 1);
	assert_string_equal(p[0].label, "EFI, system");
	assert_string_equal(p[0].attrs, "RequiredPartition GUID:63");
	assert_string_equal(p[0].uuid, "11111111-2222-4333-8444-555555555501");
	assert_int_equal(p[1].kind, IMG_CZ_SWAP);
}

static void test_sf_old_syntax_and_errors(void **state)
{
	static const char old[] =
		"# partition table of /dev/cciss/c0d0\nunit: sectors\n\n"
		"/dev/cciss/c0d0p1 : start=       63, size= 40950, Id=83, bootable\n"
		"/dev/cciss/c0d0p2 : start=        0, size=     0, Id= 0\n";
	img_cz_disk d = { 0 };
	img_cz_part p[4];
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_parse_sf(old, "x", 0, &d, p, 4, &n, &err), IMG_OK);
	assert_int_equal(n, 1);  /* the empty slot is skipped */
	assert_string_equal(p[0].name, "cciss-c0d0p1");
	assert_string_equal(p[0].type, "83");
	assert_int_equal(d.label, IMG_CZ_LABEL_MBR);

	static const char bad[] = "label: dos\n\n/dev/sda1 : start=abc, size=10, type=83\n";
	memset(&d, 0, sizeof d);
	assert_int_equal(cz_parse_sf(bad, "sda-pt.sf", 0, &d, p, 4, &n, &err), IMG_E_CORRUPT);
	assert_string_equal(err.msg, "sda-pt.sf: line 3: a start= or size= that is not a number");
}

static void test_parted(void **state)
{
	static const char parted[] =
		"Model:  (file)\nDisk /dev/sda: 196608s\nSector size (logical/physical): 512B/512B\n"
		"Partition Table: msdos\nDisk Flags: \n\nNumber  Start   End     Size    Type     File system\n";
	uint64_t sectors;
	int gpt;
	img_err err = { 0 };
	assert_int_equal(cz_parse_parted(parted, "p", &sectors, &gpt, &err), IMG_OK);
	assert_int_equal(sectors, 196608);
	assert_int_equal(gpt, 0);
	assert_int_equal(cz_parse_parted("Model: x\n", "sda-pt.parted", &sectors, &gpt, &err), IMG_E_CORRUPT);
}

/* ---- file names ----------------------------------------------------------- */

static void expect_name(const char *file, const char *part, const char *fs, const char *tool,
			const char *comp, int raw, int split, int first)
{
	struct cz_name cn;
	assert_true(cz_parse_image_name(file, part, &cn));
	assert_string_equal(cn.fs, fs);
	assert_string_equal(cn.tool, tool);
	assert_string_equal(cn.compressor, comp);
	assert_int_equal(cn.raw, raw);
	assert_int_equal(cn.split_len, split);
	assert_int_equal(cn.first_piece, first);
}

static void test_image_names(void **state)
{
	expect_name("sda1.ext4-ptcl-img.zst", "sda1", "ext4", "partclone", "zst", 0, 0, 1);
	expect_name("sda1.ext4-ptcl-img.gz.aa", "sda1", "ext4", "partclone", "gz", 0, 2, 1);
	expect_name("sda1.ext4-ptcl-img.gz.ab", "sda1", "ext4", "partclone", "gz", 0, 2, 0);
	expect_name("sda1.ext4-ptcl-img.uncomp.aaa", "sda1", "ext4", "partclone", "uncomp", 0, 3, 1);
	expect_name("sda3.dd-ptcl-img.zst", "sda3", "dd", "partclone.dd", "zst", 1, 0, 1);
	expect_name("sda5.ntfs-img.aa", "sda5", "ntfs", "ntfsclone", "", 0, 2, 1);
	expect_name("sda5.ntfs-img", "sda5", "ntfs", "ntfsclone", "", 0, 0, 1);
	expect_name("sda6.dd-img.aa", "sda6", "dd", "dd", "", 1, 2, 1);
	expect_name("sda2.ext3-img.aa", "sda2", "ext3", "partclone", "", 0, 2, 1);
	expect_name("hda1", "hda1", "", "partimage", "", 0, 0, 1);
	expect_name("hda1.aa", "hda1", "", "partimage", "", 0, 2, 1);
	expect_name("hda1.000", "hda1", "", "partimage", "", 0, 0, 1);
	expect_name("hda1.001", "hda1", "", "partimage", "", 0, 0, 0);
	expect_name("vg-root.ext4-ptcl-img.xz", "vg-root", "ext4", "partclone", "xz", 0, 0, 1);
	struct cz_name cn;
	assert_false(cz_parse_image_name("sda10.ext4-ptcl-img.zst", "sda1", &cn));
	assert_false(cz_parse_image_name("sda1.ext4-ptcl-img.zst.ibkx", "sda1", &cn));
	assert_false(cz_parse_image_name("sda1-pt.sf", "sda1", &cn));
	assert_false(cz_parse_image_name("sda1.info", "sda1", &cn));  /* "sda1.txt" would be a split piece */
}

/* ---- EBR chain ---------------------------------------------------------------- */

static img_cz_part mk(const char *name, unsigned number, uint64_t start, uint64_t size, const char *type)
{
	img_cz_part p;
	memset(&p, 0, sizeof p);
	snprintf(p.name, sizeof p.name, "%s", name);
	p.number = number;
	p.start = start;
	p.size = size;
	snprintf(p.type, sizeof p.type, "%s", type);
	return p;
}

static void hex16(const uint8_t *p, char *out)
{
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* The EBR at ebr[i] holds these two entries (hex as xxd shows them). */
static void expect_ebr(const struct cz_ebr *e, uint64_t lba, const char *data, const char *link)
{
	char h[33];
	assert_int_equal(e->lba, lba);
	hex16(e->sector + 446, h);
	assert_string_equal(h, data);
	hex16(e->sector + 462, h);
	assert_string_equal(h, link);
	assert_int_equal(e->sector[510], 0x55);
	assert_int_equal(e->sector[511], 0xAA);
	for (int i = 0; i < 446; i++)
		assert_int_equal(e->sector[i], 0);
}

struct want_ebr {
	uint64_t lba;
	const char *data, *link;
};

/* Build the chain of p (extended partition p[ext]) and compare every EBR. */
static void expect_chain(const img_cz_part *p, size_t np, size_t ext, const struct want_ebr *w, size_t nw)
{
	struct cz_ebr *e;
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_build_ebrs(p, np, 0, &p[ext], "t", &e, &n, &err), IMG_OK);
	assert_int_equal(n, nw);
	for (size_t i = 0; i < nw; i++)
		expect_ebr(&e[i], w[i].lba, w[i].data, w[i].link);
	free(e);
}

#define NO_LINK "00000000000000000000000000000000"

/* sectors as sfdisk 2.38.1 wrote them on a loop device */
static void test_ebr_aligned(void **state)
{
	const img_cz_part p[] = {
		mk("sda1", 1, 2048, 40960, "83"), mk("sda2", 2, 43008, 300000, "f"),
		mk("sda5", 5, 47104, 20480, "83"), mk("sda6", 6, 70000, 30000, "83"),
		mk("sda7", 7, 104448, 1000, "7"),
	};
	const struct want_ebr w[] = {
		{ 43008, "00ed2c02833430040010000000500000", "003a27040539130670610000307d0000" },
		{ 67952, "005b0804833913060008000030750000", "005f1a06058f310600e80000e80b0000" },
		{ 102400, "007f3a06078f310600080000e8030000", NO_LINK },
	};
	expect_chain(p, 5, 1, w, 3);
}

static void test_ebr_63_sector_layout(void **state)
{
	const img_cz_part p[] = {
		mk("sda1", 1, 63, 40950, "83"), mk("sda2", 2, 41013, 300000, "5"),
		mk("sda5", 5, 41076, 20412, "83"), mk("sda6", 6, 61551, 30000, "83"),
		mk("sda7", 7, 91614, 1000, "7"),
	};
	const struct want_ebr w[] = {
		{ 41013, "008e010283d23f033f000000bc4f0000", "00d33f0305b20c053950000031750000" },
		{ 61550, "00d4010383b20c050100000030750000", "00b30c0505c30405a8c50000e9030000" },
		{ 91613, "00b30d0507c3040501000000e8030000", NO_LINK },
	};
	expect_chain(p, 5, 1, w, 3);
}

static void test_ebr_chs_cap_and_errors(void **state)
{
	img_cz_part p[] = {
		mk("sda1", 1, 2048, 40960, "83"), mk("sda2", 2, 43008, 20000000, "5"),
		mk("sda5", 5, 45056, 20480, "83"), mk("sda6", 6, 17000000, 30000, "83"),
	};
	/* past cylinder 1023 libfdisk writes 1023/254/63 */
	const struct want_ebr w[] = {
		{ 43008, "00cd0c02831410040008000000500000", "00feffff05feffff40b60201307d0000" },
		{ 17000000 - 2048, "00feffff83feffff0008000030750000", NO_LINK },
	};
	expect_chain(p, 4, 1, w, 2);
	struct cz_ebr *e;
	size_t n;
	img_err err = { 0 };
	p[3].start = 45056 + 20480 + 100;  /* no room for its EBR 2048 sectors before it */
	assert_int_equal(cz_build_ebrs(p, 4, 0, &p[1], "sda-pt.sf", &e, &n, &err), IMG_E_CORRUPT);
	assert_string_equal(err.msg, "sda-pt.sf: logical partition sda6: no room for its EBR where libfdisk puts it");
	uint8_t chs[3];
	cz_chs(0, chs);
	assert_int_equal(chs[0], 0);
	assert_int_equal(chs[1], 1);
	assert_int_equal(chs[2], 0);
}

/* ---- backup GPT ------------------------------------------------------------------ */

static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

/* A primary GPT (LBA 0..33) of a disk of `sectors`, with two entries. */
static void make_gpt1(uint8_t *g, uint64_t sectors)
{
	memset(g, 0, 34 * 512);
	uint8_t *h = g + 512, *e = g + 1024;
	memcpy(h, "EFI PART", 8);
	le32(h + 8, 0x00010000);
	le32(h + 12, 92);
	le64(h + 24, 1);
	le64(h + 32, sectors - 1);
	le64(h + 40, 34);
	le64(h + 48, sectors - 34);
	memset(h + 56, 0xab, 16);
	le64(h + 72, 2);
	le32(h + 80, 128);
	le32(h + 84, 128);
	for (int i = 0; i < 2; i++) {
		memset(e + 128 * i, 0x11 + i, 32);
		le64(e + 128 * i + 32, 2048 + 4096 * (uint64_t)i);
		le64(e + 128 * i + 40, 2048 + 4096 * (uint64_t)i + 4095);
	}
	le32(h + 88, (uint32_t)crc32(0, e, 128 * 128));
	le32(h + 16, (uint32_t)crc32(0, h, 92));
}

static void test_gpt_backup(void **state)
{
	uint8_t g[34 * 512], hdr[512];
	uint64_t lba;
	size_t len;
	img_err err = { 0 };
	make_gpt1(g, 327680);
	assert_int_equal(cz_gpt_backup(g, sizeof g, 327680, "sdb-gpt-1st", hdr, &lba, &len, &err), IMG_OK);
	assert_int_equal(lba, 327680 - 33);
	assert_int_equal(len, 16384);
	assert_memory_equal(hdr, "EFI PART", 8);
	assert_int_equal(get_le64(hdr + 24), 327679);
	assert_int_equal(get_le64(hdr + 32), 1);
	assert_int_equal(get_le64(hdr + 72), 327680 - 33);
	assert_int_equal(get_le32(hdr + 88), get_le32(g + 512 + 88));  /* same entries */
	uint32_t stored = get_le32(hdr + 16);
	memset(hdr + 16, 0, 4);
	assert_int_equal(stored, (uint32_t)crc32(0, hdr, 92));
	for (int i = 92; i < 512; i++)
		assert_int_equal(hdr[i], 0);

	/* for a disk of another size the primary says so, as sfdisk writes a
	 * table without last-lba: alternate and last usable LBA, protective MBR */
	make_gpt1(g, 327680);
	g[446 + 4] = 0xEE;
	assert_int_equal(cz_gpt_backup(g, sizeof g, 400000, "x", hdr, &lba, &len, &err), IMG_OK);
	assert_int_equal(get_le64(g + 512 + 32), 399999);
	assert_int_equal(get_le64(g + 512 + 48), 400000 - 34);
	assert_int_equal(get_le64(hdr + 48), 400000 - 34);
	assert_int_equal(get_le32(g + 446 + 12), 399999);
	assert_int_equal(lba, 400000 - 33);
	stored = get_le32(g + 512 + 16);
	memset(g + 512 + 16, 0, 4);
	assert_int_equal(stored, (uint32_t)crc32(0, g + 512, 92));
}

static void test_gpt_backup_refuses_damage(void **state)
{
	uint8_t g[34 * 512], hdr[512];
	uint64_t lba;
	size_t len;
	img_err err = { 0 };
	make_gpt1(g, 327680);
	g[1024 + 5] ^= 1;  /* an entry byte */
	assert_int_equal(cz_gpt_backup(g, sizeof g, 327680, "sdb-gpt-1st", hdr, &lba, &len, &err), IMG_E_CORRUPT);
	assert_string_equal(err.msg, "sdb-gpt-1st: GPT entries CRC-32 does not match");
	make_gpt1(g, 327680);
	g[512 + 40] ^= 1;  /* a header byte */
	memset(&err, 0, sizeof err);
	assert_int_equal(cz_gpt_backup(g, sizeof g, 327680, "sdb-gpt-1st", hdr, &lba, &len, &err), IMG_E_CORRUPT);
	assert_string_equal(err.msg, "sdb-gpt-1st: GPT header CRC-32 does not match");
	memset(g + 512, 0, 8);
	memset(&err, 0, sizeof err);
	assert_int_equal(cz_gpt_backup(g, sizeof g, 327680, "f", hdr, &lba, &len, &err), IMG_E_CORRUPT);
	/* a disk too small for the partitions and the backup */
	make_gpt1(g, 327680);
	memset(&err, 0, sizeof err);
	assert_int_equal(cz_gpt_backup(g, sizeof g, 6000, "sdb-gpt-1st", hdr, &lba, &len, &err), IMG_E_USAGE);
	assert_string_equal(err.msg, "sdb-gpt-1st: the partitions do not fit a disk of 6000 sectors");
}

/* GPT from the .sf alone: fields, CRCs, and the saved-primary path agrees */
static const char sf_gpt[] =
	"label: gpt\nlabel-id: 6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9\ndevice: /dev/sdb\nunit: sectors\n"
	"first-lba: 34\nlast-lba: 327646\n\n"
	"/dev/sdb1 : start=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, "
	"uuid=11111111-2222-4333-8444-555555555501, name=\"root\"\n"
	"/dev/sdb3 : start=67584, size=8192, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, "
	"uuid=11111111-2222-4333-8444-555555555503, name=\"wïn\", attrs=\"RequiredPartition LegacyBIOSBootable GUID:48,63\"\n";

static void test_gpt_from_sf(void **state)
{
	img_cz_disk d = { 0 };
	img_cz_part p[4];
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_parse_sf(sf_gpt, "sdb-pt.sf", 0, &d, p, 4, &n, &err), IMG_OK);
	struct cz_gpt g;
	assert_int_equal(cz_gpt_from_sf(&d, p, n, 0, 327680, "sdb-pt.sf", &g, &err), IMG_OK);
	assert_int_equal(g.primary_len, 34 * 512);
	assert_int_equal(g.backup_len, 33 * 512);
	assert_int_equal(g.backup_lba, 327647);
	const uint8_t *h = g.primary + 512, *e = g.primary + 1024;
	assert_memory_equal(h, "EFI PART", 8);
	assert_int_equal(get_le64(h + 32), 327679);
	assert_int_equal(get_le64(h + 40), 34);
	assert_int_equal(get_le64(h + 48), 327646);
	assert_int_equal(get_le32(h + 88), (uint32_t)crc32(0, e, 128 * 128));
	/* the disk GUID and type GUID, first three groups little-endian */
	static const uint8_t guid[16] = { 0x3D, 0x2C, 0x1B, 0x6A, 0x5F, 0x4E, 0x71, 0x40,
					  0x82, 0x93, 0xA4, 0xB5, 0xC6, 0xD7, 0xE8, 0xF9 };
	assert_memory_equal(h + 56, guid, 16);
	assert_int_equal(get_le32(e), 0x0FC63DAF);
	assert_int_equal(get_le64(e + 32), 2048);
	assert_int_equal(get_le64(e + 40), 2048 + 65536 - 1);
	assert_memory_equal(e + 56, "r\0o\0o\0t\0\0\0", 10);
	/* partition 3 in entry 2, entry 1 empty; UTF-8 name to UTF-16 */
	static const uint8_t zero[128];
	assert_memory_equal(e + 128, zero, 128);
	assert_int_equal(get_le64(e + 256 + 48), 1 | 4 | (1ull << 48) | (1ull << 63));
	assert_memory_equal(e + 256 + 56, "w\0\xef\0n\0\0\0", 8);
	/* protective MBR as libfdisk writes it */
	assert_int_equal(g.primary[446 + 4], 0xEE);
	assert_int_equal(get_le32(g.primary + 446 + 8), 1);
	assert_int_equal(get_le32(g.primary + 446 + 12), 327679);
	assert_int_equal(g.primary[510], 0x55);
	/* the saved-primary path accepts it and builds the same backup */
	uint8_t hdr[512];
	uint64_t lba;
	size_t len;
	assert_int_equal(cz_gpt_backup(g.primary, g.primary_len, 327680, "x", hdr, &lba, &len, &err), IMG_OK);
	assert_int_equal(lba, g.backup_lba);
	assert_memory_equal(hdr, g.backup + 32 * 512, 512);
	assert_memory_equal(g.backup, e, 32 * 512);
	cz_gpt_free(&g);
}

static void test_gpt_from_sf_4kn_and_errors(void **state)
{
	static const char sf4k[] =
		"label: gpt\nlabel-id: 4B4E0000-1111-4222-8333-444444444444\nunit: sectors\nfirst-lba: 6\n"
		"last-lba: 16378\nsector-size: 4096\n\n"
		"/dev/sdc1 : start=256, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, "
		"uuid=4B4E0000-0000-4000-8000-000000000001\n";
	img_cz_disk d = { 0 };
	img_cz_part p[2];
	size_t n;
	img_err err = { 0 };
	assert_int_equal(cz_parse_sf(sf4k, "sdc-pt.sf", 0, &d, p, 2, &n, &err), IMG_OK);
	assert_int_equal(d.sector_size, 4096);
	struct cz_gpt g;
	assert_int_equal(cz_gpt_from_sf(&d, p, n, 0, 16384, "sdc-pt.sf", &g, &err), IMG_OK);
	/* LBA 0, header at LBA 1 (byte 4096), 128 entries in 4 sectors from LBA 2 */
	assert_int_equal(g.primary_len, 6 * 4096);
	assert_memory_equal(g.primary + 4096, "EFI PART", 8);
	assert_int_equal(get_le64(g.primary + 4096 + 48), 16384 - 6);
	assert_int_equal(get_le64(g.primary + 4096 + 72), 2);
	assert_int_equal(get_le64(g.primary + 2 * 4096 + 32), 256);
	assert_int_equal(g.backup_lba, 16384 - 5);
	assert_memory_equal(g.backup + 4 * 4096, "EFI PART", 8);
	assert_int_equal(get_le64(g.backup + 4 * 4096 + 24), 16383);
	assert_int_equal(get_le64(g.backup + 4 * 4096 + 72), 16379);
	cz_gpt_free(&g);
	/* too small a disk; a partition outside; a bad GUID; attrs not understood */
	assert_int_equal(cz_gpt_from_sf(&d, p, n, 0, 8000, "sdc-pt.sf", &g, &err), IMG_E_USAGE);
	assert_non_null(strstr(err.msg, "sdc1 lies outside"));
	snprintf(p[0].uuid, sizeof p[0].uuid, "not-a-guid");
	memset(&err, 0, sizeof err);
	assert_int_equal(cz_gpt_from_sf(&d, p, n, 0, 16384, "sdc-pt.sf", &g, &err), IMG_E_CORRUPT);
	assert_non_null(strstr(err.msg, "sdc-pt.sf: sdc1: type= or uuid= is not a GUID"));
	snprintf(p[0].uuid, sizeof p[0].uuid, "4B4E0000-0000-4000-8000-000000000001");
	snprintf(p[0].attrs, sizeof p[0].attrs, "Hidden");
	memset(&err, 0, sizeof err);
	assert_int_equal(cz_gpt_from_sf(&d, p, n, 0, 16384, "sdc-pt.sf", &g, &err), IMG_E_CORRUPT);
	assert_non_null(strstr(err.msg, "attrs=\"Hidden\" not understood"));
	uint64_t a;
	assert_int_equal(cz_gpt_attrs("GUID:49,50", &a), 0);
	assert_int_equal(a, (1ull << 49) | (1ull << 50));
	assert_int_equal(cz_gpt_attrs("GUID:64", &a), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sf_dos),
		cmocka_unit_test(test_sf_gpt_and_names),
		cmocka_unit_test(test_sf_old_syntax_and_errors),
		cmocka_unit_test(test_parted),
		cmocka_unit_test(test_image_names),
		cmocka_unit_test(test_ebr_aligned),
		cmocka_unit_test(test_ebr_63_sector_layout),
		cmocka_unit_test(test_ebr_chs_cap_and_errors),
		cmocka_unit_test(test_gpt_backup),
		cmocka_unit_test(test_gpt_backup_refuses_damage),
		cmocka_unit_test(test_gpt_from_sf),
		cmocka_unit_test(test_gpt_from_sf_4kn_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

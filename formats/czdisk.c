/*
 * formats/czdisk.c - the whole-disk view of a Clonezilla image directory
 * (imgbk_czdir.h: img_cz_vdisk_*): a sorted list of extents - saved sectors
 * (MBR, hidden data, primary GPT), rebuilt ones (EBRs, backup GPT), each
 * partition's image, and ranges that cannot be rebuilt - with zeros
 * between them. Reads are lock-free: the list never changes after open and
 * img_read_at is thread-safe.
 *
 * Not here: finding files and parsing tables (czdir.c), building table
 * sectors (czpt.c), serving the view (fuse/, applets/).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fmt.h"
#include "czdir.h"
#include "../io/grow.h"

#define SECTOR 512u
#define GPT_SAVED_SECTORS 34u  /* NAME-gpt-1st: LBA 0..33 */

enum { EXT_MEM, EXT_PART, EXT_FAIL };

struct extent {
	uint64_t off, len;        /* bytes of the disk */
	int kind;
	const uint8_t *mem;       /* EXT_MEM */
	img_image *im;            /* EXT_PART */
	int code;                 /* EXT_FAIL: the status reads return */
	char *msg;                /* EXT_FAIL: why (owned) */
};

struct img_cz_vdisk {
	char name[IMG_CZ_NAME_MAX];
	char dir[IMG_CZ_PATH_MAX];
	uint64_t size;
	uint32_t ss;              /* logical sector size of the saved disk */
	struct extent *ext;
	size_t n, cap;
	uint8_t **blocks;         /* memory of EXT_MEM extents (owned) */
	size_t nblocks, capblocks;
	char **problems;          /* one line per EXT_FAIL extent */
	size_t nproblems;
};

/* ---- building -------------------------------------------------------------- */

static int oom(img_err *err, const char *what)
{
	return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", what);
}

static struct extent *extent_add(img_cz_vdisk *vd, uint64_t off, uint64_t len, int kind)
{
	if (grow_for(&vd->ext, &vd->cap, vd->n, sizeof *vd->ext, 32))
		return NULL;
	struct extent *e = &vd->ext[vd->n++];
	memset(e, 0, sizeof *e);
	e->off = off;
	e->len = len;
	e->kind = kind;
	return e;
}

/* Keep `mem` (malloc'd) until close and serve it at `off`. @return IMG_OK or IMG_E_IO. */
static int add_mem(img_cz_vdisk *vd, uint64_t off, uint8_t *mem, size_t len, img_err *err)
{
	if (grow_for(&vd->blocks, &vd->capblocks, vd->nblocks, sizeof *vd->blocks, 16)) {
		free(mem);
		return oom(err, vd->name);
	}
	vd->blocks[vd->nblocks++] = mem;
	struct extent *e = extent_add(vd, off, len, EXT_MEM);
	if (!e)
		return oom(err, vd->name);
	e->mem = mem;
	return IMG_OK;
}

static int add_fail(img_cz_vdisk *vd, uint64_t off, uint64_t len, const char *part, int code,
		    const char *why, img_err *err)
{
	struct extent *e = extent_add(vd, off, len, EXT_FAIL);
	char **pl = realloc(vd->problems, (vd->nproblems + 2) * sizeof *pl);
	if (!e || !pl)
		return oom(err, vd->name);
	vd->problems = pl;
	e->code = code;
	if (asprintf(&e->msg, "partition %s: %s", part, why) < 0 ||
	    asprintf(&pl[vd->nproblems], "%s: bytes %llu-%llu (partition %s) cannot be read: %s", vd->name,
		     (unsigned long long)off, (unsigned long long)(off + len - 1), part, why) < 0) {
		e->msg = NULL;
		return oom(err, vd->name);
	}
	pl[++vd->nproblems] = NULL;
	return IMG_OK;
}

/* Read DIR/NAME: exactly `want` bytes when want > 0 (else the whole file, at
 * most `max`). @return IMG_OK and *buf (malloc'd), IMG_EOF when missing, or an error. */
static int read_saved(const img_cz_vdisk *vd, const char *name, size_t want, size_t max, uint8_t **buf,
		      size_t *len, img_err *err)
{
	char path[IMG_CZ_PATH_MAX + 96];
	snprintf(path, sizeof path, "%s/%s", vd->dir, name);
	*buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? IMG_EOF
				       : img_err_set(err, IMG_E_IO, errno, 0, 0, "%s: %s", path, strerror(errno));
	size_t cap = want ? want : max;
	uint8_t *b = calloc(1, cap + 1);
	size_t n = b ? fread(b, 1, cap + 1, f) : 0;
	fclose(f);
	if (!b)
		return oom(err, path);
	if (want && n != want) {
		free(b);
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: %s than the %zu bytes expected", path,
				   n > want ? "longer" : "shorter", want);
	}
	*buf = b;
	*len = n > cap ? cap : n;
	return IMG_OK;
}

static int need_saved(const img_cz_vdisk *vd, const char *name, size_t want, uint8_t **buf, img_err *err)
{
	size_t len;
	int rc = read_saved(vd, name, want, 0, buf, &len, err);
	if (rc == IMG_EOF)
		return img_err_set(err, IMG_E_MISSING, 0, 0, 0, "%s/%s: missing, so %s has no whole-disk view",
				   vd->dir, name, vd->name);
	return rc;
}

static uint64_t lowest_start(const img_czdir *cz, int disk)
{
	uint64_t low = UINT64_MAX;
	for (size_t i = 0; i < cz->nparts; i++)
		if (cz->parts[i].disk == disk && cz->parts[i].start < low)
			low = cz->parts[i].start;
	return low;
}

/* NAME-hidden-data-after-mbr at LBA 1, up to the first partition. */
static int add_hidden_data(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_err *err)
{
	char name[IMG_CZ_NAME_MAX + 32];
	snprintf(name, sizeof name, "%s-hidden-data-after-mbr", vd->name);
	uint64_t low = lowest_start(cz, disk);
	if (low == UINT64_MAX || low < 2)
		return IMG_OK;
	size_t max = (size_t)((low - 1) * vd->ss), len;
	if (max > ((size_t)1 << 30))
		max = (size_t)1 << 30;
	uint8_t *b;
	int rc = read_saved(vd, name, 0, max, &b, &len, err);
	if (rc == IMG_EOF)
		return IMG_OK;
	if (rc < 0)
		return rc;
	return len ? add_mem(vd, vd->ss, b, len, err) : (free(b), IMG_OK);
}

static int add_ebrs(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_err *err)
{
	const img_cz_part *ext = NULL;
	for (size_t i = 0; i < cz->nparts; i++)
		if (cz->parts[i].disk == disk && cz->parts[i].kind == IMG_CZ_EXTENDED)
			ext = &cz->parts[i];
	if (!ext)
		return IMG_OK;
	if (vd->ss != SECTOR)
		return img_err_set(err, IMG_E_FORMAT, 0, 0, 0, "%s/%s-pt.sf: logical partitions on a disk of %u-byte "
				   "sectors: no whole-disk view (its EBR places are not known)", vd->dir, vd->name, vd->ss);
	char file[IMG_CZ_PATH_MAX + 96], name[IMG_CZ_NAME_MAX + 8];
	snprintf(file, sizeof file, "%s/%s-pt.sf", vd->dir, vd->name);
	struct cz_ebr *ebr;
	size_t n;
	int rc = cz_build_ebrs(cz->parts, cz->nparts, disk, ext, file, &ebr, &n, err);
	if (rc < 0)
		return rc;
	uint8_t *code = NULL;
	size_t clen;
	snprintf(name, sizeof name, "%s-ebr", ext->name);
	if (n > 0 && read_saved(vd, name, 0, SECTOR, &code, &clen, err) == IMG_OK && clen == SECTOR)
		memcpy(ebr[0].sector, code, 446);  /* Clonezilla writes the saved EBR's boot code back */
	free(code);
	for (size_t i = 0; i < n && rc == IMG_OK; i++) {
		uint8_t *s = malloc(SECTOR);
		if (!s) {
			rc = oom(err, vd->name);
			break;
		}
		memcpy(s, ebr[i].sector, SECTOR);
		rc = add_mem(vd, ebr[i].lba * vd->ss, s, SECTOR, err);
	}
	free(ebr);
	return rc;
}

static int add_mbr_tables(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_err *err)
{
	char name[IMG_CZ_NAME_MAX + 16];
	uint8_t *mbr;
	snprintf(name, sizeof name, "%s-mbr", vd->name);
	int rc = need_saved(vd, name, SECTOR, &mbr, err);
	if (rc == IMG_OK)
		rc = add_mem(vd, 0, mbr, SECTOR, err);
	if (rc == IMG_OK)
		rc = add_hidden_data(vd, cz, disk, err);
	if (rc == IMG_OK)
		rc = add_ebrs(vd, cz, disk, err);
	return rc;
}

/* The saved primary GPT (NAME-gpt-1st, 512-byte sectors) and its backup rebuilt. */
static int add_saved_gpt(img_cz_vdisk *vd, uint8_t *gpt1, img_err *err)
{
	char name[IMG_CZ_NAME_MAX + 16], file[IMG_CZ_PATH_MAX + 96];
	uint8_t *mbr, *header = malloc(SECTOR);
	uint64_t sectors = vd->size / SECTOR, ent_lba;
	size_t ent_len;
	snprintf(file, sizeof file, "%s/%s-gpt-1st", vd->dir, vd->name);
	int rc = header ? cz_gpt_backup(gpt1, GPT_SAVED_SECTORS * SECTOR, sectors, file, header, &ent_lba, &ent_len, err)
			: oom(err, vd->name);
	if (rc != IMG_OK) {
		free(gpt1);
		free(header);
		return rc;
	}
	snprintf(name, sizeof name, "%s-mbr", vd->name);
	size_t mlen;
	if (read_saved(vd, name, SECTOR, 0, &mbr, &mlen, err) == IMG_OK)
		memcpy(gpt1, mbr, 446);  /* Clonezilla writes the saved boot code back */
	free(mbr);
	uint8_t *entries = calloc(1, ent_len);
	if (!entries) {
		free(gpt1);
		free(header);
		return oom(err, vd->name);
	}
	size_t have = GPT_SAVED_SECTORS * SECTOR - 2 * SECTOR;
	memcpy(entries, gpt1 + 2 * SECTOR, ent_len < have ? ent_len : have);
	rc = add_mem(vd, 0, gpt1, GPT_SAVED_SECTORS * SECTOR, err);
	if (rc == IMG_OK)
		rc = add_mem(vd, ent_lba * SECTOR, entries, ent_len, err);
	else
		free(entries);
	if (rc == IMG_OK)
		rc = add_mem(vd, (sectors - 1) * SECTOR, header, SECTOR, err);
	else
		free(header);
	return rc;
}

/* The GPT rebuilt from NAME-pt.sf, as sfdisk writes it, with the boot code of NAME-mbr. */
static int add_sf_gpt(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_err *err)
{
	char name[IMG_CZ_NAME_MAX + 16], file[IMG_CZ_PATH_MAX + 96];
	snprintf(file, sizeof file, "%s/%s-pt.sf", vd->dir, vd->name);
	struct cz_gpt g;
	int rc = cz_gpt_from_sf(&cz->disks[disk], cz->parts, cz->nparts, disk, vd->size / vd->ss, file, &g, err);
	if (rc != IMG_OK)
		return rc;
	uint8_t *mbr;
	size_t mlen;
	snprintf(name, sizeof name, "%s-mbr", vd->name);
	if (read_saved(vd, name, SECTOR, 0, &mbr, &mlen, err) == IMG_OK)
		memcpy(g.primary, mbr, 446);
	free(mbr);
	rc = add_mem(vd, 0, g.primary, g.primary_len, err);
	if (rc == IMG_OK)
		rc = add_mem(vd, g.backup_lba * vd->ss, g.backup, g.backup_len, err);
	else
		free(g.backup);
	return rc;
}

/* GPT: the saved primary where it is whole (512-byte sectors), else the .sf. */
static int add_gpt_tables(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_err *err)
{
	char name[IMG_CZ_NAME_MAX + 16];
	uint8_t *gpt1 = NULL;
	size_t len;
	snprintf(name, sizeof name, "%s-gpt-1st", vd->name);
	int rc = vd->ss == SECTOR ? read_saved(vd, name, GPT_SAVED_SECTORS * SECTOR, 0, &gpt1, &len, err) : IMG_EOF;
	if (rc == IMG_OK)
		return add_saved_gpt(vd, gpt1, err);
	return rc == IMG_EOF ? add_sf_gpt(vd, cz, disk, err) : rc;
}

static int add_partition(img_cz_vdisk *vd, const img_cz_part *p, img_image *im, const img_err *why,
			 img_err *err)
{
	uint64_t off = p->start * vd->ss, len = p->size * vd->ss;
	switch (p->kind) {
	case IMG_CZ_EXTENDED:
	case IMG_CZ_SWAP:
		return IMG_OK;  /* the EBRs are added apart; swap reads as zeros */
	case IMG_CZ_LVM_PV:
		return add_fail(vd, off, len, p->name, IMG_E_FORMAT,
				"an LVM physical volume: its logical volumes are saved as images, the "
				"volume itself cannot be rebuilt", err);
	}
	if (!im) {
		const char *msg = why && why->code != IMG_OK ? why->msg : "no image file for this partition";
		return add_fail(vd, off, len, p->name, why && why->code != IMG_OK ? why->code : IMG_E_MISSING,
				msg, err);
	}
	uint64_t have = img_get_info(im)->device_size;
	struct extent *e = extent_add(vd, off, have < len ? have : len, EXT_PART);
	if (!e)
		return oom(err, vd->name);
	e->im = im;
	return IMG_OK;
}

static int cmp_extents(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int sort_and_check(img_cz_vdisk *vd, img_err *err)
{
	qsort(vd->ext, vd->n, sizeof *vd->ext, cmp_extents);
	for (size_t i = 0; i < vd->n; i++) {
		const struct extent *e = &vd->ext[i];
		if (e->off + e->len > vd->size || (i > 0 && vd->ext[i - 1].off + vd->ext[i - 1].len > e->off))
			return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
					   "%s/%s-pt.sf: the saved areas overlap or pass the disk's end at byte %llu",
					   vd->dir, vd->name, (unsigned long long)e->off);
	}
	return IMG_OK;
}

static int check_disk(const img_czdir *cz, const img_cz_disk *d, img_err *err)
{
	if (!d->whole_disk)
		return img_err_set(err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: %s: not listed in 'disk' (partitions were saved, not the disk): "
				   "no whole-disk view", cz->path, d->name);
	if (d->sector_size < SECTOR || d->sector_size > 65536 || (d->sector_size & (d->sector_size - 1)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s/%s-pt.sf: sector-size %u is not a power of two "
				   "from 512 to 65536", cz->path, d->name, d->sector_size);
	if (d->label == IMG_CZ_LABEL_NONE)
		return img_err_set(err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: %s: no saved partition table (%s-pt.sf): no whole-disk view", cz->path,
				   d->name, d->name);
	return IMG_OK;
}

static int build(img_cz_vdisk *vd, const img_czdir *cz, int disk, img_image *const *images,
		 const img_err *why, img_err *err)
{
	const img_cz_disk *d = &cz->disks[disk];
	int rc = d->label == IMG_CZ_LABEL_GPT ? add_gpt_tables(vd, cz, disk, err) : add_mbr_tables(vd, cz, disk, err);
	for (size_t i = 0; i < cz->nparts && rc == IMG_OK; i++)
		if (cz->parts[i].disk == disk && cz->parts[i].size > 0)
			rc = add_partition(vd, &cz->parts[i], images ? images[i] : NULL, why ? &why[i] : NULL, err);
	return rc == IMG_OK ? sort_and_check(vd, err) : rc;
}

int img_cz_vdisk_open(const img_czdir *cz, size_t disk, img_image *const *images, const img_err *why,
		      img_cz_vdisk **out, img_err *err)
{
	return img_cz_vdisk_open_sized(cz, disk, 0, images, why, out, err);
}

int img_cz_vdisk_open_sized(const img_czdir *cz, size_t disk, uint64_t sectors,
			    img_image *const *images, const img_err *why, img_cz_vdisk **out,
			    img_err *err)
{
	*out = NULL;
	memset(err, 0, sizeof *err);
	const img_cz_disk *d = img_czdir_disk(cz, disk);
	if (!d)
		return img_err_set(err, IMG_E_USAGE, 0, 0, 0, "%s: no disk number %zu", cz->path, disk);
	int rc = check_disk(cz, d, err);
	if (rc != IMG_OK)
		return rc;
	img_cz_vdisk *vd = calloc(1, sizeof *vd);
	if (!vd)
		return oom(err, cz->path);
	snprintf(vd->name, sizeof vd->name, "%s", d->name);
	snprintf(vd->dir, sizeof vd->dir, "%s", cz->path);
	vd->ss = d->sector_size;
	vd->size = (sectors ? sectors : d->sectors) * vd->ss;
	rc = build(vd, cz, (int)disk, images, why, err);
	if (rc != IMG_OK) {
		img_cz_vdisk_close(vd);
		return rc;
	}
	*out = vd;
	return IMG_OK;
}

/* ---- reading ------------------------------------------------------------------ */

/* First extent that ends after `off`. */
static size_t first_extent(const img_cz_vdisk *vd, uint64_t off)
{
	size_t lo = 0, hi = vd->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (vd->ext[mid].off + vd->ext[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int read_extent(const img_cz_vdisk *vd, const struct extent *e, uint64_t from, uint8_t *dst,
		       size_t n, img_err *err)
{
	if (e->kind == EXT_MEM) {
		memcpy(dst, e->mem + (from - e->off), n);
		return IMG_OK;
	}
	if (e->kind == EXT_FAIL)
		return img_err_set(err, e->code, 0, 1, from, "%s/%s: read at byte %llu: %s", vd->dir, vd->name,
				   (unsigned long long)from, e->msg ? e->msg : "cannot be rebuilt");
	size_t got = 0;
	int rc = img_read_at(e->im, from - e->off, dst, n, &got, err);
	if (rc == IMG_OK && got < n)
		memset(dst + got, 0, n - got);
	return rc;
}

int img_cz_vdisk_read_at(img_cz_vdisk *vd, uint64_t offset, void *buf, size_t len, size_t *got,
			 img_err *err)
{
	*got = 0;
	if (offset >= vd->size)
		return IMG_OK;
	if (len > vd->size - offset)
		len = (size_t)(vd->size - offset);
	uint8_t *out = buf;
	memset(out, 0, len);
	uint64_t end = offset + len;
	for (size_t i = first_extent(vd, offset); i < vd->n && vd->ext[i].off < end; i++) {
		const struct extent *e = &vd->ext[i];
		uint64_t from = e->off > offset ? e->off : offset;
		uint64_t to = e->off + e->len < end ? e->off + e->len : end;
		int rc = read_extent(vd, e, from, out + (from - offset), (size_t)(to - from), err);
		if (rc != IMG_OK)
			return rc;
	}
	*got = len;
	return IMG_OK;
}

uint64_t img_cz_vdisk_size(const img_cz_vdisk *vd) { return vd->size; }

int img_cz_vdisk_table(const img_cz_vdisk *vd, size_t i, uint64_t *offset, const uint8_t **data,
		       size_t *len)
{
	for (size_t k = 0; k < vd->n; k++) {
		const struct extent *e = &vd->ext[k];
		if (e->kind != EXT_MEM || i-- > 0)
			continue;
		*offset = e->off;
		*data = e->mem;
		*len = (size_t)e->len;
		return 1;
	}
	return 0;
}

const char *img_cz_vdisk_problem(const img_cz_vdisk *vd, size_t i)
{
	return i < vd->nproblems ? vd->problems[i] : NULL;
}

void img_cz_vdisk_close(img_cz_vdisk *vd)
{
	if (!vd)
		return;
	for (size_t i = 0; i < vd->n; i++)
		free(vd->ext[i].msg);
	for (size_t i = 0; i < vd->nblocks; i++)
		free(vd->blocks[i]);
	for (size_t i = 0; i < vd->nproblems; i++)
		free(vd->problems[i]);
	free(vd->problems);
	free(vd->blocks);
	free(vd->ext);
	free(vd);
}

/*
 * formats/czdir.c - a Clonezilla image directory: detection (and refusal of
 * encrypted ones), the `disk` and `parts` lists, each disk's NAME-pt.sf
 * (sfdisk -d) and NAME-pt.parted, swappt-*.info, lvm_logv.list and
 * lvm_vg_dev.list, and every partition's image files found by name, in
 * every naming generation Clonezilla used.
 *
 * Lists the folder with dirent and reads its small text files with stdio;
 * the images' bytes are read only through img_open. Never prints.
 * Not here: the whole-disk view (czdisk.c), table sectors (czpt.c).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fmt.h"
#include "czdir.h"
#include "../io/grow.h"

/* GPT partition types that are not filesystems. */
#define GPT_TYPE_SWAP "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
#define GPT_TYPE_LVM "E6D6D379-F507-44C2-A23C-238F2A3DF928"

/* ---- small text helpers --------------------------------------------------- */

static void copy_str(char *dst, size_t dsz, const char *src, size_t n)
{
	if (n >= dsz)
		n = dsz - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* "/dev/cciss/c0d0p1" -> "cciss-c0d0p1" (how Clonezilla names files). */
static void device_to_name(const char *dev, size_t n, char *out, size_t outsz)
{
	if (n >= 5 && strncmp(dev, "/dev/", 5) == 0) {
		dev += 5;
		n -= 5;
	}
	copy_str(out, outsz, dev, n);
	for (char *c = out; *c; c++)
		if (*c == '/')
			*c = '-';
}

static unsigned trailing_number(const char *name)
{
	size_t n = strlen(name), i = n;
	while (i > 0 && isdigit((unsigned char)name[i - 1]))
		i--;
	return i < n ? (unsigned)strtoul(name + i, NULL, 10) : 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	char tmp[32];
	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(tmp, &end, 0);
	if (errno || *end || tmp[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/* ---- NAME-pt.sf ----------------------------------------------------------- */

static int sf_fail(img_err *err, const char *file, unsigned line, const char *what)
{
	return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: line %u: %s", file, line, what);
}

/* One "key: value" line of the header. */
static void sf_header_line(const char *line, size_t n, img_cz_disk *d)
{
	const char *colon = memchr(line, ':', n);
	if (!colon)
		return;
	size_t klen = (size_t)(colon - line);
	const char *v = colon + 1;
	size_t vlen = n - klen - 1;
	while (vlen > 0 && isspace((unsigned char)*v))
		v++, vlen--;
	uint64_t num;
	if (klen == 5 && !strncmp(line, "label", 5))
		d->label = vlen == 3 && !strncmp(v, "gpt", 3) ? IMG_CZ_LABEL_GPT
			 : vlen == 3 && !strncmp(v, "dos", 3) ? IMG_CZ_LABEL_MBR : d->label;
	else if (klen == 8 && !strncmp(line, "label-id", 8))
		copy_str(d->label_id, sizeof d->label_id, v, vlen);
	else if (klen == 9 && !strncmp(line, "first-lba", 9) && !parse_u64(v, vlen, &num))
		d->first_lba = num;
	else if (klen == 8 && !strncmp(line, "last-lba", 8) && !parse_u64(v, vlen, &num))
		d->last_lba = num;
	else if (klen == 11 && !strncmp(line, "sector-size", 11) && !parse_u64(v, vlen, &num))
		d->sector_size = (uint32_t)num;
	else if (klen == 12 && !strncmp(line, "table-length", 12) && !parse_u64(v, vlen, &num))
		d->table_length = (uint32_t)num;
}

/* Next "key[=value]" of a partition line; a quoted value may hold commas.
 * @return 1 with key/value set, 0 at the end. */
static int sf_next_field(const char **pp, const char *end, const char **key, size_t *klen,
			 const char **val, size_t *vlen)
{
	const char *p = *pp;
	while (p < end && (isspace((unsigned char)*p) || *p == ','))
		p++;
	if (p >= end)
		return 0;
	*key = p;
	while (p < end && *p != '=' && *p != ',' && !isspace((unsigned char)*p))
		p++;
	*klen = (size_t)(p - *key);
	*val = NULL;
	*vlen = 0;
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p == '=') {
		p++;
		while (p < end && *p == ' ')
			p++;
		if (p < end && *p == '"') {
			*val = ++p;
			while (p < end && *p != '"')
				p++;
			*vlen = (size_t)(p - *val);
			if (p < end)
				p++;
		} else {
			*val = p;
			while (p < end && *p != ',')
				p++;
			*vlen = (size_t)(p - *val);
			while (*vlen > 0 && isspace((unsigned char)(*val)[*vlen - 1]))
				(*vlen)--;
		}
	}
	*pp = p;
	return 1;
}

static int key_is(const char *k, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(k, want, n) == 0;
}

static int sf_part_field(img_cz_part *p, const char *k, size_t kl, const char *v, size_t vl)
{
	if (key_is(k, kl, "start"))
		return v ? parse_u64(v, vl, &p->start) : -1;
	if (key_is(k, kl, "size"))
		return v ? parse_u64(v, vl, &p->size) : -1;
	if (key_is(k, kl, "bootable"))
		p->bootable = 1;
	else if (v && (key_is(k, kl, "type") || key_is(k, kl, "Id")))
		copy_str(p->type, sizeof p->type, v, vl);
	else if (v && key_is(k, kl, "uuid"))
		copy_str(p->uuid, sizeof p->uuid, v, vl);
	else if (v && key_is(k, kl, "name"))
		copy_str(p->label, sizeof p->label, v, vl);
	else if (v && key_is(k, kl, "attrs"))
		copy_str(p->attrs, sizeof p->attrs, v, vl);
	return 0;
}

static int kind_of_type(const char *type, int gpt)
{
	if (gpt || strlen(type) > 4) {
		if (!strcasecmp(type, GPT_TYPE_SWAP))
			return IMG_CZ_SWAP;
		if (!strcasecmp(type, GPT_TYPE_LVM))
			return IMG_CZ_LVM_PV;
		return IMG_CZ_DATA;
	}
	unsigned long t = strtoul(type, NULL, 16);
	if (t == 0x82)
		return IMG_CZ_SWAP;
	if (t == 0x05 || t == 0x0f || t == 0x85)
		return IMG_CZ_EXTENDED;
	if (t == 0x8e)
		return IMG_CZ_LVM_PV;
	return IMG_CZ_DATA;
}

/* "/dev/sda1 : start=..., size=..., ..." @return IMG_OK, 1 for an empty slot, or an error. */
static int sf_part_line(const char *line, size_t n, img_cz_part *p, const char *file,
			unsigned lineno, img_err *err)
{
	const char *colon = memchr(line, ':', n);
	if (!colon)
		return sf_fail(err, file, lineno, "a partition line without ':'");
	size_t nl = (size_t)(colon - line);
	while (nl > 0 && isspace((unsigned char)line[nl - 1]))
		nl--;
	memset(p, 0, sizeof *p);
	device_to_name(line, nl, p->name, sizeof p->name);
	p->number = trailing_number(p->name);
	const char *q = colon + 1, *end = line + n, *k, *v;
	size_t kl, vl;
	while (sf_next_field(&q, end, &k, &kl, &v, &vl))
		if (sf_part_field(p, k, kl, v, vl) != 0)
			return sf_fail(err, file, lineno, "a start= or size= that is not a number");
	if (p->size == 0)
		return 1;  /* old sfdisk lists empty slots as size=0 */
	if (!p->type[0])
		return sf_fail(err, file, lineno, "a partition without type= (or Id=)");
	return IMG_OK;
}

int cz_parse_sf(const char *text, const char *file, int disk_index, img_cz_disk *d,
		img_cz_part *parts, size_t max, size_t *n, img_err *err)
{
	*n = 0;
	d->sector_size = 512;
	d->table_length = 128;
	unsigned lineno = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		lineno++;
		while (len > 0 && (line[len - 1] == '\r' || isspace((unsigned char)line[len - 1])))
			len--;
		if (len > 0 && line[0] == '/') {
			if (*n >= max)
				return sf_fail(err, file, lineno, "too many partitions");
			img_cz_part *p = &parts[*n];
			int rc = sf_part_line(line, len, p, file, lineno, err);
			if (rc < 0)
				return rc;
			if (rc == IMG_OK) {
				p->disk = disk_index;
				(*n)++;
			}
		} else if (len > 0 && line[0] != '#') {
			sf_header_line(line, len, d);
		}
		line = nl ? nl + 1 : line + len;
		if (!nl)
			break;
	}
	if (d->sector_size < 512 || d->sector_size > 65536 || (d->sector_size & (d->sector_size - 1)))
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: sector-size %u is not a power of two from 512 "
				   "to 65536", file, d->sector_size);
	if (d->table_length == 0 || d->table_length > 4096)
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0, "%s: table-length %u is not from 1 to 4096", file,
				   d->table_length);
	if (d->label == IMG_CZ_LABEL_NONE && *n > 0)
		d->label = strlen(parts[0].type) > 4 ? IMG_CZ_LABEL_GPT : IMG_CZ_LABEL_MBR;
	for (size_t i = 0; i < *n; i++)
		parts[i].kind = kind_of_type(parts[i].type, d->label == IMG_CZ_LABEL_GPT);
	return IMG_OK;
}

/* ---- NAME-pt.parted --------------------------------------------------------- */

int cz_parse_parted(const char *text, const char *file, uint64_t *sectors, int *gpt, img_err *err)
{
	*gpt = -1;
	*sectors = 0;
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *c;
		if (!strncmp(line, "Disk /", 6) && (c = strstr(line, ": ")) != NULL) {
			char *end;
			unsigned long long v = strtoull(c + 2, &end, 10);
			if (end > c + 2 && *end == 's')
				*sectors = v;
		} else if (!strncmp(line, "Partition Table: ", 17)) {
			*gpt = !strncmp(line + 17, "gpt", 3) ? 1 : !strncmp(line + 17, "msdos", 5) ? 0 : -1;
		}
	}
	if (*sectors == 0)
		return img_err_set(err, IMG_E_CORRUPT, 0, 0, 0,
				   "%s: no \"Disk ...: Ns\" line (parted unit s print output expected)", file);
	return IMG_OK;
}

/* ---- image file names ----------------------------------------------------------- */

static const char *const compressors[] = {
	"gz", "bz2", "lzo", "lzma", "xz", "lzip", "lrz", "lz4", "zst", "uncomp",
};

static int is_compressor(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof compressors / sizeof compressors[0]; i++)
		if (strlen(compressors[i]) == n && !strncmp(s, compressors[i], n))
			return 1;
	return 0;
}

/* split -a 2 / -a 3 suffixes: "aa".."zz", "aaa".."zzz". */
static int split_suffix_len(const char *s)
{
	size_t n = strlen(s);
	if (n != 2 && n != 3)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return 0;
	return (int)n;
}

static int all_a(const char *s)
{
	for (; *s; s++)
		if (*s != 'a')
			return 0;
	return 1;
}

/* What "<fs>-ptcl-img", "ntfs-img", "dd-img", "<fs>-img" say. @return 0 if none. */
static int parse_kind_token(const char *t, size_t n, struct cz_name *out)
{
	static const char ptcl[] = "-ptcl-img", img[] = "-img";
	if (n > sizeof ptcl - 1 && !strncmp(t + n - (sizeof ptcl - 1), ptcl, sizeof ptcl - 1)) {
		copy_str(out->fs, sizeof out->fs, t, n - (sizeof ptcl - 1));
		out->raw = !strcmp(out->fs, "dd");
		out->tool = out->raw ? "partclone.dd" : "partclone";
		out->rank = 2;
	} else if (n == 8 && !strncmp(t, "ntfs-img", 8)) {
		snprintf(out->fs, sizeof out->fs, "ntfs");
		out->tool = "ntfsclone";
		out->rank = 1;
	} else if (n == 6 && !strncmp(t, "dd-img", 6)) {
		snprintf(out->fs, sizeof out->fs, "dd");
		out->tool = "dd";
		out->raw = 1;
		out->rank = 3;
	} else if (n > sizeof img - 1 && !strncmp(t + n - (sizeof img - 1), img, sizeof img - 1)) {
		copy_str(out->fs, sizeof out->fs, t, n - (sizeof img - 1));
		out->tool = "partclone";
		out->rank = 4;
	} else {
		return 0;
	}
	return 1;
}

/* The tail after the kind token: [.COMP][.SPLIT]. @return 1 when that is all. */
static int parse_tail(const char *file, const char *t, struct cz_name *out)
{
	if (*t == 0) {
		out->base_len = strlen(file);
		return 1;
	}
	if (*t != '.')
		return 0;
	const char *dot = strchr(t + 1, '.');
	size_t n = dot ? (size_t)(dot - t - 1) : strlen(t + 1);
	if (out->rank == 2 && is_compressor(t + 1, n)) {
		copy_str(out->compressor, sizeof out->compressor, t + 1, n);
		t += 1 + n;
		if (*t == 0) {
			out->base_len = strlen(file);
			return 1;
		}
	}
	out->split_len = split_suffix_len(t + 1);
	if (!out->split_len)
		return 0;
	out->first_piece = all_a(t + 1);
	out->base_len = (size_t)(t - file);
	return 1;
}

int cz_parse_image_name(const char *file, const char *part, struct cz_name *out)
{
	memset(out, 0, sizeof *out);
	size_t pl = strlen(part);
	snprintf(out->part, sizeof out->part, "%s", part);
	out->first_piece = 1;
	out->tool = "partimage";
	if (!strcmp(file, part)) {
		out->base_len = pl;
		return 1;
	}
	if (strncmp(file, part, pl) != 0 || file[pl] != '.')
		return 0;
	const char *rest = file + pl + 1;
	if (split_suffix_len(rest) || (strlen(rest) == 3 && isdigit((unsigned char)rest[0]) &&
				       isdigit((unsigned char)rest[1]) && isdigit((unsigned char)rest[2]))) {
		/* partimage: NAME.aa (split by Clonezilla) or NAME.000 (its own volumes) */
		out->split_len = isdigit((unsigned char)rest[0]) ? 0 : (int)strlen(rest);
		out->first_piece = out->split_len ? all_a(rest) : !strcmp(rest, "000");
		out->base_len = pl;
		return 1;
	}
	const char *dot = strchr(rest, '.');
	size_t tl = dot ? (size_t)(dot - rest) : strlen(rest);
	if (!parse_kind_token(rest, tl, out))
		return 0;
	return parse_tail(file, rest + tl, out);
}

/* ---- reading the folder ------------------------------------------------------------ */

struct dir_list {
	char **names;
	size_t n;
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dir_list_free(struct dir_list *dl)
{
	for (size_t i = 0; i < dl->n; i++)
		free(dl->names[i]);
	free(dl->names);
}

static int dir_list_read(const char *dir, struct dir_list *dl, img_err *err)
{
	memset(dl, 0, sizeof *dl);
	DIR *d = opendir(dir);
	if (!d)
		return img_err_set(err, errno == ENOTDIR ? IMG_E_FORMAT : IMG_E_IO, errno, 0, 0, "%s: %s",
				   dir, strerror(errno));
	size_t cap = 0;
	struct dirent *e;
	int rc = IMG_OK;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (grow_for(&dl->names, &cap, dl->n, sizeof *dl->names, 64)) {
			rc = IMG_E_IO;
			break;
		}
		if (!(dl->names[dl->n] = strdup(e->d_name))) {
			rc = IMG_E_IO;
			break;
		}
		dl->n++;
	}
	closedir(d);
	if (rc != IMG_OK) {
		dir_list_free(dl);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", dir);
	}
	qsort(dl->names, dl->n, sizeof *dl->names, cmp_names);
	return IMG_OK;
}

static int dir_has(const struct dir_list *dl, const char *name)
{
	return bsearch(&name, dl->names, dl->n, sizeof *dl->names, cmp_names) != NULL;
}

/* Read DIR/NAME whole. @return IMG_OK and *text (malloc'd, NUL-ended),
 * IMG_EOF when the file is not there, or an error. */
static int read_text(const char *dir, const char *name, char **text, img_err *err)
{
	char path[IMG_CZ_PATH_MAX + 80];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	*text = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return IMG_EOF;
		return img_err_set(err, IMG_E_IO, errno, 0, 0, "%s: %s", path, strerror(errno));
	}
	char *buf = malloc(CZ_MAX_TEXT + 1);
	size_t n = buf ? fread(buf, 1, CZ_MAX_TEXT + 1, f) : 0;
	int bad = !buf || ferror(f) || n > CZ_MAX_TEXT;
	fclose(f);
	if (bad) {
		free(buf);
		return img_err_set(err, IMG_E_IO, 0, 0, 0, "%s: %s", path,
				   buf ? "cannot be read, or larger than 1 MiB" : "out of memory");
	}
	buf[n] = 0;
	*text = buf;
	return IMG_OK;
}

/* Whitespace-separated words of a list file ("disk", "parts"), names with '/' as '-'. */
static size_t split_words(char *text, char words[][IMG_CZ_NAME_MAX], size_t max)
{
	size_t n = 0;
	char *save;
	for (char *tok = strtok_r(text, " \t\r\n", &save); tok && n < max;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		device_to_name(tok, strlen(tok), words[n++], IMG_CZ_NAME_MAX);
	return n;
}

/* ---- building the directory ------------------------------------------------------------ */

struct cz_build {
	img_czdir *cz;
	struct dir_list dl;
	char listed[CZ_MAX_PARTS][IMG_CZ_NAME_MAX];
	size_t nlisted;
	img_err *err;
};

static img_cz_part *add_part(struct cz_build *b)
{
	img_czdir *cz = b->cz;
	if (cz->nparts >= CZ_MAX_PARTS)
		return NULL;
	return &cz->parts[cz->nparts++];
}

static int is_listed(const struct cz_build *b, const char *name)
{
	for (size_t i = 0; i < b->nlisted; i++)
		if (!strcmp(b->listed[i], name))
			return 1;
	return 0;
}

static int refuse_encrypted(const struct cz_build *b)
{
	static const char *const marks[] = { "ecryptfs.info", "gocryptfs.info" };
	for (size_t i = 0; i < 2; i++)
		if (dir_has(&b->dl, marks[i]))
			return img_err_set(b->err, IMG_E_FORMAT, 0, 0, 0,
					   "%s: an encrypted Clonezilla image (%s); imgbk does not read "
					   "encrypted images: decrypt it first", b->cz->path, marks[i]);
	return IMG_OK;
}

/* The disk names: `disk`, else every NAME-pt.sf. */
static int read_disk_names(struct cz_build *b, int *have_disk_file)
{
	img_czdir *cz = b->cz;
	char *text;
	char words[16][IMG_CZ_NAME_MAX];
	int rc = read_text(cz->path, "disk", &text, b->err);
	if (rc < 0)
		return rc;
	*have_disk_file = rc == IMG_OK;
	size_t n = 0;
	if (rc == IMG_OK) {
		n = split_words(text, words, 16);
		free(text);
	} else {
		for (size_t i = 0; i < b->dl.n && n < 16; i++) {
			size_t l = strlen(b->dl.names[i]);
			if (l > 6 && !strcmp(b->dl.names[i] + l - 6, "-pt.sf"))
				copy_str(words[n++], IMG_CZ_NAME_MAX, b->dl.names[i], l - 6);
		}
	}
	for (size_t i = 0; i < n; i++) {
		img_cz_disk *d = &cz->disks[cz->ndisks++];
		memset(d, 0, sizeof *d);
		snprintf(d->name, sizeof d->name, "%s", words[i]);
		d->whole_disk = *have_disk_file;
		d->sector_size = 512;
		d->table_length = 128;
	}
	return IMG_OK;
}

static int read_parts_list(struct cz_build *b, int *have_parts_file)
{
	char *text;
	int rc = read_text(b->cz->path, "parts", &text, b->err);
	if (rc < 0)
		return rc;
	*have_parts_file = rc == IMG_OK;
	if (rc == IMG_OK) {
		b->nlisted = split_words(text, b->listed, CZ_MAX_PARTS);
		free(text);
	}
	return IMG_OK;
}

/* The size when NAME-pt.parted is missing: GPT last-lba + the backup
 * entries and header (34 sectors of 512 bytes, 6 of 4096), MBR the last
 * partition's end. */
static uint64_t fallback_sectors(const img_cz_disk *d, const img_cz_part *parts, size_t n)
{
	uint64_t end = 0;
	for (size_t i = 0; i < n; i++)
		if (parts[i].start + parts[i].size > end)
			end = parts[i].start + parts[i].size;
	uint64_t backup = 1 + ((uint64_t)d->table_length * 128 + d->sector_size - 1) / d->sector_size;
	if (d->label == IMG_CZ_LABEL_GPT && d->last_lba + 1 + backup > end)
		return d->last_lba + 1 + backup;
	return end;
}

static int read_disk_size(struct cz_build *b, img_cz_disk *d, const img_cz_part *parts, size_t n)
{
	char name[IMG_CZ_NAME_MAX + 16], *text;
	snprintf(name, sizeof name, "%s-pt.parted", d->name);
	int rc = read_text(b->cz->path, name, &text, b->err);
	if (rc < 0)
		return rc;
	if (rc == IMG_OK) {
		int gpt;
		char file[IMG_CZ_PATH_MAX + 96];
		snprintf(file, sizeof file, "%s/%s", b->cz->path, name);
		rc = cz_parse_parted(text, file, &d->sectors, &gpt, b->err);
		free(text);
		if (rc < 0)
			return rc;
		d->sectors_from_parted = 1;
		if (d->label == IMG_CZ_LABEL_NONE && gpt >= 0)
			d->label = gpt ? IMG_CZ_LABEL_GPT : IMG_CZ_LABEL_MBR;
	}
	uint64_t need = fallback_sectors(d, parts, n);
	if (d->sectors < need) {
		d->sectors = need;
		d->sectors_from_parted = 0;
	}
	return IMG_OK;
}

static int read_disk_table(struct cz_build *b, size_t di)
{
	img_czdir *cz = b->cz;
	img_cz_disk *d = &cz->disks[di];
	char name[IMG_CZ_NAME_MAX + 16], file[IMG_CZ_PATH_MAX + 96], *text;
	snprintf(name, sizeof name, "%s-pt.sf", d->name);
	snprintf(file, sizeof file, "%s/%s", cz->path, name);
	int rc = read_text(cz->path, name, &text, b->err);
	if (rc < 0)
		return rc;
	size_t n = 0;
	img_cz_part *first = &cz->parts[cz->nparts];
	if (rc == IMG_OK) {
		rc = cz_parse_sf(text, file, (int)di, d, first, CZ_MAX_PARTS - cz->nparts, &n, b->err);
		free(text);
		if (rc < 0)
			return rc;
		cz->nparts += n;
	}
	return read_disk_size(b, d, first, n);
}

/* "UUID=\"...\"" and "LABEL=\"...\"" lines of swappt-NAME.info. */
static void read_swap_info(struct cz_build *b, img_cz_part *p)
{
	char name[IMG_CZ_NAME_MAX + 16], *text;
	img_err ignored;
	snprintf(name, sizeof name, "swappt-%s.info", p->name);
	if (read_text(b->cz->path, name, &text, &ignored) != IMG_OK)
		return;
	p->kind = IMG_CZ_SWAP;
	for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *q = strchr(line, '"'), *e = q ? strchr(q + 1, '"') : NULL;
		if (!e)
			continue;
		if (!strncmp(line, "UUID=", 5))
			copy_str(p->swap_uuid, sizeof p->swap_uuid, q + 1, (size_t)(e - q - 1));
		else if (!strncmp(line, "LABEL=", 6))
			copy_str(p->swap_label, sizeof p->swap_label, q + 1, (size_t)(e - q - 1));
	}
	free(text);
}

/* Fill p's image fields from the files named after it (Clonezilla's restore order wins). */
static void find_image(struct cz_build *b, img_cz_part *p)
{
	struct cz_name best, cn;
	int found = 0;
	for (size_t i = 0; i < b->dl.n; i++)
		if (cz_parse_image_name(b->dl.names[i], p->name, &cn) && cn.first_piece &&
		    (!found || cn.rank < best.rank)) {
			best = cn;
			snprintf(p->image, sizeof p->image, "%s/%s", b->cz->path, b->dl.names[i]);
			found = 1;
		}
	if (!found)
		return;
	snprintf(p->fs, sizeof p->fs, "%s", best.fs);
	snprintf(p->compressor, sizeof p->compressor, "%s", best.compressor);
	p->tool = best.tool;
	p->raw = best.raw;
	const char *first = strrchr(p->image, '/') + 1;
	for (size_t i = 0; i < b->dl.n; i++) {
		const char *f = b->dl.names[i];
		int piece = !strcmp(f, first) ||
			    (best.split_len && !strncmp(f, first, best.base_len) && f[best.base_len] == '.' &&
			     split_suffix_len(f + best.base_len + 1) == best.split_len) ||
			    (!best.split_len && best.rank == 0 && cz_parse_image_name(f, p->name, &cn) &&
			     cn.rank == 0 && !cn.split_len && strcmp(f, p->name));
		if (!piece)
			continue;
		char path[IMG_CZ_PATH_MAX + 300];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", b->cz->path, f);
		p->pieces++;
		if (stat(path, &st) == 0)
			p->image_bytes += (uint64_t)st.st_size;
	}
}

/* LVM: lvm_vg_dev.list marks the PVs, lvm_logv.list names the LVs ("/dev/vg/lv ..."). */
static int read_lvm(struct cz_build *b)
{
	char *text;
	img_err ignored;
	if (read_text(b->cz->path, "lvm_vg_dev.list", &text, &ignored) == IMG_OK) {
		for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char vg[128], pv[256], uuid[128] = "", pvname[IMG_CZ_NAME_MAX];
			if (sscanf(line, "%127s %255s %127s", vg, pv, uuid) < 2)
				continue;
			device_to_name(pv, strlen(pv), pvname, sizeof pvname);
			long i = img_czdir_find(b->cz, pvname);
			if (i >= 0) {
				img_cz_part *p = &b->cz->parts[i];
				p->kind = IMG_CZ_LVM_PV;
				snprintf(p->vg, sizeof p->vg, "%.63s", vg);
				snprintf(p->pv_uuid, sizeof p->pv_uuid, "%.47s", uuid);
			}
		}
		free(text);
	}
	if (read_text(b->cz->path, "lvm_logv.list", &text, &ignored) != IMG_OK)
		return IMG_OK;
	for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char lv[256];
		if (sscanf(line, "%255s", lv) != 1 || strncmp(lv, "/dev/", 5) != 0)
			continue;
		img_cz_part *p = add_part(b);
		if (!p)
			break;
		memset(p, 0, sizeof *p);
		device_to_name(lv, strlen(lv), p->name, sizeof p->name);
		const char *vg = lv + 5, *slash = strchr(vg, '/');
		if (slash && slash > vg && slash - vg < (long)sizeof p->vg && strlen(slash + 1) < sizeof p->lv) {
			memcpy(p->vg, vg, (size_t)(slash - vg));
			snprintf(p->lv, sizeof p->lv, "%s", slash + 1);
		}
		p->disk = -1;
		p->kind = IMG_CZ_LV;
		p->listed = 1;
	}
	free(text);
	return IMG_OK;
}

/* Names in `parts` that no table holds (saveparts of a disk without a saved table). */
static void add_unplaced_listed(struct cz_build *b)
{
	for (size_t i = 0; i < b->nlisted; i++) {
		if (img_czdir_find(b->cz, b->listed[i]) >= 0)
			continue;
		img_cz_part *p = add_part(b);
		if (!p)
			return;
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "%s", b->listed[i]);
		p->disk = -1;
		p->number = trailing_number(p->name);
	}
}

static int build(struct cz_build *b)
{
	img_czdir *cz = b->cz;
	int have_disk = 0, have_parts = 0;
	int rc = refuse_encrypted(b);
	if (rc == IMG_OK)
		rc = read_disk_names(b, &have_disk);
	if (rc == IMG_OK)
		rc = read_parts_list(b, &have_parts);
	if (rc < 0)
		return rc;
	if (!have_disk && !have_parts)
		return img_err_set(b->err, IMG_E_FORMAT, 0, 0, 0,
				   "%s: not a Clonezilla image directory (it has no 'disk' or 'parts' file)",
				   cz->path);
	for (size_t i = 0; i < cz->ndisks; i++)
		if ((rc = read_disk_table(b, i)) < 0)
			return rc;
	add_unplaced_listed(b);
	read_lvm(b);
	for (size_t i = 0; i < cz->nparts; i++) {
		img_cz_part *p = &cz->parts[i];
		p->listed = p->listed || is_listed(b, p->name);
		read_swap_info(b, p);
		if (p->kind == IMG_CZ_DATA || p->kind == IMG_CZ_LV || p->kind == IMG_CZ_LVM_PV)
			find_image(b, p);
	}
	return IMG_OK;
}

int img_czdir_probe(const char *dir)
{
	static const char *const marks[] = { "disk", "parts", "ecryptfs.info", "gocryptfs.info" };
	char path[IMG_CZ_PATH_MAX + 32];
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, marks[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			return 1;
	}
	return 0;
}

int img_czdir_open(const char *dir, img_czdir **out, img_err *err)
{
	memset(err, 0, sizeof *err);
	*out = NULL;
	img_czdir *cz = calloc(1, sizeof *cz);
	img_cz_part *parts = calloc(CZ_MAX_PARTS, sizeof *parts);
	if (!cz || !parts) {
		free(cz);
		free(parts);
		return img_err_set(err, IMG_E_IO, ENOMEM, 0, 0, "%s: out of memory", dir);
	}
	cz->parts = parts;
	snprintf(cz->path, sizeof cz->path, "%s", dir);
	size_t l = strlen(cz->path);
	while (l > 1 && cz->path[l - 1] == '/')
		cz->path[--l] = 0;
	struct cz_build b = { .cz = cz, .err = err };
	int rc = dir_list_read(cz->path, &b.dl, err);
	if (rc == IMG_OK) {
		rc = build(&b);
		dir_list_free(&b.dl);
	}
	if (rc < 0) {
		img_czdir_close(cz);
		return rc;
	}
	*out = cz;
	return IMG_OK;
}

void img_czdir_close(img_czdir *cz)
{
	if (!cz)
		return;
	free(cz->parts);
	free(cz);
}

const char *img_czdir_path(const img_czdir *cz) { return cz->path; }
size_t img_czdir_disk_count(const img_czdir *cz) { return cz->ndisks; }
const img_cz_disk *img_czdir_disk(const img_czdir *cz, size_t i) { return i < cz->ndisks ? &cz->disks[i] : NULL; }
size_t img_czdir_part_count(const img_czdir *cz) { return cz->nparts; }
const img_cz_part *img_czdir_part(const img_czdir *cz, size_t i) { return i < cz->nparts ? &cz->parts[i] : NULL; }

long img_czdir_find(const img_czdir *cz, const char *name)
{
	for (size_t i = 0; i < cz->nparts; i++)
		if (!strcmp(cz->parts[i].name, name))
			return (long)i;
	return -1;
}

int img_czdir_open_image(const img_czdir *cz, size_t i, const img_options *opt,
			 const img_random_options *ro, img_image **out, img_err *err)
{
	*out = NULL;
	const img_cz_part *p = img_czdir_part(cz, i);
	if (!p)
		return img_err_set(err, IMG_E_USAGE, 0, 0, 0, "%s: no partition number %zu", cz->path, i);
	if (!p->image[0])
		return img_err_set(err, IMG_E_MISSING, 0, 0, 0, "%s: %s: no image file for this partition",
				   cz->path, p->name);
	img_image *im;
	int rc = img_open(p->image, opt, &im, err);
	if (rc != IMG_OK)
		return rc;
	if (ro && (rc = img_random_open(im, ro, NULL)) != IMG_OK) {
		*err = *img_error(im);
		img_close(im);
		return rc;
	}
	*out = im;
	return IMG_OK;
}

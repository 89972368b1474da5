/*
 * applets/czdir.c - the applets' side of Clonezilla image directories:
 * DIR/sda2 naming one partition, `imgbk info DIR` (one table, or JSON),
 * `imgbk verify DIR` (every partition image, the *SUMS files) and
 * `imgbk mount DIR MNT` (every partition and every saved disk as files).
 * The directory itself is read by the library (imgbk_czdir.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "applet.h"
#include "czdir.h"
#include "../fuse/mount.h"

int cz_arg_is_dir(const char *arg)
{
	struct stat st;
	return strcmp(arg, "-") != 0 && stat(arg, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Open DIR, printing why not. @return 0 and *cz, or the exit code. */
static int open_dir(const char *dir, img_czdir **cz)
{
	img_err err;
	int rc = img_czdir_open(dir, cz, &err);
	if (rc == IMG_OK)
		return 0;
	warnx_("%s", err.msg);
	return img_exit_code(rc);
}

/* Open DIR and a zeroed array of one `elem`-sized entry per partition.
 * @return 0 with *cz, *arr and *n, or the exit code after saying why. */
static int open_dir_array(const char *dir, size_t elem, img_czdir **cz, void **arr, size_t *n)
{
	int code = open_dir(dir, cz);
	if (code)
		return code;
	*n = img_czdir_part_count(*cz);
	*arr = calloc(*n ? *n : 1, elem);
	if (*arr)
		return 0;
	img_czdir_close(*cz);
	warnx_("%s: out of memory", dir);
	return IMG_EXIT_SYSTEM;
}

int cz_resolve_part(const char *arg, char *buf, size_t bufsz, const char **out)
{
	*out = arg;
	struct stat st;
	const char *slash = strrchr(arg, '/');
	if (!slash || slash == arg || !slash[1] || stat(arg, &st) == 0)
		return 0;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - arg), arg);
	if (!img_czdir_probe(dir))
		return 0;
	img_czdir *cz;
	int code = open_dir(dir, &cz);
	if (code)
		return code;
	long i = img_czdir_find(cz, slash + 1);
	const img_cz_part *p = i >= 0 ? img_czdir_part(cz, (size_t)i) : NULL;
	if (p && p->image[0]) {
		snprintf(buf, bufsz, "%s", p->image);
		*out = buf;
	} else if (p) {
		warnx_("%s: %s: no image file for this partition in the directory", dir, p->name);
		code = IMG_EXIT_DAMAGED;
	}
	img_czdir_close(cz);
	return code;
}

/* ---- words for the table ------------------------------------------------------ */

static const char *label_word(int label)
{
	return label == IMG_CZ_LABEL_GPT ? "GPT" : label == IMG_CZ_LABEL_MBR ? "MBR" : "-";
}

static const char *kind_word(int kind)
{
	switch (kind) {
	case IMG_CZ_SWAP: return "swap";
	case IMG_CZ_EXTENDED: return "extended";
	case IMG_CZ_LVM_PV: return "lvm-pv";
	case IMG_CZ_LV: return "lvm-lv";
	default: return "data";
	}
}

/* The compressor: from the file name, else the last layer imgbk found ("split+gzip" -> "gzip"). */
static const char *compressor_of(const img_cz_part *p, const img_image *im)
{
	if (p->compressor[0])
		return p->compressor;
	if (!im)
		return "-";
	const char *l = img_get_info(im)->layers, *plus = strrchr(l, '+');
	l = plus ? plus + 1 : l;
	return !strcmp(l, "file") || !strcmp(l, "split") ? "none" : l;
}

static const char *disk_name(const img_czdir *cz, const img_cz_part *p)
{
	return p->disk >= 0 ? img_czdir_disk(cz, (size_t)p->disk)->name : "";
}

/* ---- info ----------------------------------------------------------------------- */

struct part_facts {
	img_image *im;       /* header only (no random access) */
	char error[600];     /* why there is no image, "" when fine */
};

static void gather(const img_czdir *cz, size_t i, struct part_facts *f)
{
	const img_cz_part *p = img_czdir_part(cz, i);
	f->im = NULL;
	f->error[0] = 0;
	if (p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED || (p->kind == IMG_CZ_LVM_PV && !p->image[0]))
		return;
	img_err err;
	if (img_czdir_open_image(cz, i, NULL, NULL, &f->im, &err) != IMG_OK)
		snprintf(f->error, sizeof f->error, "%s", err.msg);
}

static void print_disks_text(const img_czdir *cz)
{
	printf("%-10s %12s %14s  %-5s  %s\n", "Disk", "Size", "Sectors", "Table", "Label-id");
	for (size_t i = 0; i < img_czdir_disk_count(cz); i++) {
		const img_cz_disk *d = img_czdir_disk(cz, i);
		char size[32];
		img_fmt_human(size, sizeof size, d->sectors * d->sector_size);
		char ss[40] = "";
		if (d->sector_size != 512)
			snprintf(ss, sizeof ss, "  (%u-byte sectors)", d->sector_size);
		printf("%-10s %12s %14llu  %-5s  %s%s%s\n", d->name, size, (unsigned long long)d->sectors,
		       label_word(d->label), d->label_id[0] ? d->label_id : "-", ss,
		       d->whole_disk ? "" : "  (partitions saved, not the disk)");
	}
}

/* Bytes per sector of the partition's disk (512 for LVs). */
static uint64_t sector_bytes(const img_czdir *cz, const img_cz_part *p)
{
	return p->disk >= 0 ? img_czdir_disk(cz, (size_t)p->disk)->sector_size : 512;
}

static void print_part_text(const img_czdir *cz, const img_cz_part *p, const struct part_facts *f)
{
	char size[32], isize[32], used[32];
	img_fmt_human(size, sizeof size, p->size * sector_bytes(cz, p));
	printf("%-10s %10llu %11s  ", p->name, (unsigned long long)p->start, p->size ? size : "-");
	if (p->kind == IMG_CZ_SWAP) {
		printf("swap (not saved; UUID %s, label \"%s\")\n", p->swap_uuid[0] ? p->swap_uuid : "-",
		       p->swap_label);
		return;
	}
	if (p->kind == IMG_CZ_EXTENDED) {
		printf("extended (holds the logical partitions)\n");
		return;
	}
	if (!f->im) {
		printf("%s: %s\n", p->kind == IMG_CZ_LVM_PV ? "lvm-pv" : "no image",
		       p->kind == IMG_CZ_LVM_PV ? "LVM physical volume (its volumes are listed below)"
		       : p->image[0] ? "cannot be opened (see below)" : "no image file");
		return;
	}
	const img_info *in = img_get_info(f->im);
	img_fmt_human(isize, sizeof isize, p->image_bytes);
	if (p->raw && in->device_size == 0)
		snprintf(used, sizeof used, "all (raw)");
	else
		img_fmt_human(used, sizeof used, in->used_blocks * in->block_size);
	printf("%-10s %-12s %-10s %6u %11s  %-8s %11s\n", p->fs[0] ? p->fs : in->fs, p->tool,
	       compressor_of(p, f->im), p->pieces, isize, in->checksum, used);
}

static void print_text(const img_czdir *cz, const struct part_facts *facts)
{
	printf("Clonezilla image directory %s\n\n", img_czdir_path(cz));
	print_disks_text(cz);
	printf("\n%-10s %10s %11s  %-10s %-12s %-10s %6s %11s  %-8s %11s\n", "Partition", "Start", "Size",
	       "Filesystem", "Tool", "Compressor", "Pieces", "Image size", "Checksum", "Used");
	for (size_t i = 0; i < img_czdir_part_count(cz); i++)
		print_part_text(cz, img_czdir_part(cz, i), &facts[i]);
}

static void json_disks(const img_czdir *cz)
{
	printf("\"disks\":[");
	for (size_t i = 0; i < img_czdir_disk_count(cz); i++) {
		const img_cz_disk *d = img_czdir_disk(cz, i);
		printf("%s{\"name\":", i ? "," : "");
		json_string(stdout, d->name);
		printf(",\"size\":%llu,\"sectors\":%llu,\"sector_size\":%u,\"label\":",
		       (unsigned long long)(d->sectors * d->sector_size), (unsigned long long)d->sectors,
		       d->sector_size);
		json_string(stdout, label_word(d->label));
		printf(",\"label_id\":");
		json_string(stdout, d->label_id);
		printf(",\"size_from_parted\":%s,\"whole_disk\":%s}", d->sectors_from_parted ? "true" : "false",
		       d->whole_disk ? "true" : "false");
	}
	printf("]");
}

static void json_key_str(const char *key, const char *val)
{
	printf(",\"%s\":", key);
	json_string(stdout, val);
}

static void json_part(const img_czdir *cz, const img_cz_part *p, const struct part_facts *f)
{
	printf("{\"name\":");
	json_string(stdout, p->name);
	json_key_str("disk", disk_name(cz, p));
	printf(",\"number\":%u,\"start_sector\":%llu,\"start\":%llu,\"size\":%llu", p->number,
	       (unsigned long long)p->start, (unsigned long long)(p->start * sector_bytes(cz, p)),
	       (unsigned long long)(p->size * sector_bytes(cz, p)));
	json_key_str("kind", kind_word(p->kind));
	json_key_str("type", p->type);
	json_key_str("uuid", p->uuid);
	json_key_str("partition_name", p->label);
	printf(",\"bootable\":%s", p->bootable ? "true" : "false");
	if (p->kind == IMG_CZ_SWAP) {
		json_key_str("swap_uuid", p->swap_uuid);
		json_key_str("swap_label", p->swap_label);
	}
	json_key_str("image", p->image);
	json_key_str("fs", p->fs[0] || !f->im ? p->fs : img_get_info(f->im)->fs);
	json_key_str("tool", p->tool ? p->tool : "");
	json_key_str("compressor", p->image[0] ? compressor_of(p, f->im) : "");
	printf(",\"pieces\":%u,\"image_bytes\":%llu,\"raw\":%s", p->pieces,
	       (unsigned long long)p->image_bytes, p->raw ? "true" : "false");
	if (f->im) {
		const img_info *in = img_get_info(f->im);
		json_key_str("format", in->format);
		json_key_str("checksum", in->checksum);
		printf(",\"used_bytes\":%llu,\"device_size\":%llu",
		       (unsigned long long)(in->used_blocks * in->block_size),
		       (unsigned long long)in->device_size);
	}
	printf(",\"error\":");
	if (f->error[0])
		json_string(stdout, f->error);
	else
		printf("null");
	printf("}");
}

static void print_json(const img_czdir *cz, const struct part_facts *facts)
{
	printf("{\"directory\":");
	json_string(stdout, img_czdir_path(cz));
	printf(",");
	json_disks(cz);
	printf(",\"partitions\":[");
	for (size_t i = 0; i < img_czdir_part_count(cz); i++) {
		printf("%s", i ? "," : "");
		json_part(cz, img_czdir_part(cz, i), &facts[i]);
	}
	printf("]}\n");
}

int cz_info(const char *dir, int json)
{
	img_czdir *cz;
	struct part_facts *facts;
	size_t n;
	int code = open_dir_array(dir, sizeof *facts, &cz, (void **)&facts, &n);
	if (code)
		return code;
	for (size_t i = 0; i < n; i++)
		gather(cz, i, &facts[i]);
	if (json)
		print_json(cz, facts);
	else
		print_text(cz, facts);
	fflush(stdout);
	for (size_t i = 0; i < n; i++) {
		if (facts[i].error[0]) {
			warnx_("%s", facts[i].error);
			code = IMG_EXIT_DAMAGED;
		}
		img_close(facts[i].im);
	}
	free(facts);
	img_czdir_close(cz);
	return code;
}

/* ---- verify ----------------------------------------------------------------------- */

/* Walk one image. @return IMG_OK or the status that ended the walk; msg says why. */
static int check_image(img_image *im, int quiet, const char *name, char *msg, size_t msz)
{
	const img_info *in = img_get_info(im);
	progress pg;
	char what[80];
	snprintf(what, sizeof what, "verify %s", name);
	progress_start(&pg, what, in->used_blocks * in->block_size, quiet);
	img_run run;
	int rc;
	while ((rc = img_next_run(im, &run)) == IMG_OK)
		progress_update(&pg, img_blocks_done(im) * in->block_size);
	progress_end(&pg);
	if (rc == IMG_EOF)
		return IMG_OK;
	snprintf(msg, msz, "%s", img_error(im)->msg);
	return rc;
}

struct verify_totals {
	unsigned ok, bad, missing;
	int worst;  /* exit code */
};

static void note_code(struct verify_totals *t, int code)
{
	if (code > t->worst)
		t->worst = code;
}

enum { VERIFY_SKIPPED = 0, VERIFY_OK, VERIFY_BAD, VERIFY_MISSING };

/* What one partition's check found: its line of output and exit code. */
struct part_result {
	int state;
	int code;
	char line[800];
};

static void verify_one(const img_czdir *cz, size_t i, int quiet, struct part_result *r)
{
	const img_cz_part *p = img_czdir_part(cz, i);
	if (p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED || (p->kind == IMG_CZ_LVM_PV && !p->image[0]))
		return;
	img_image *im;
	img_err err;
	char msg[600];
	int rc = img_czdir_open_image(cz, i, NULL, NULL, &im, &err);
	if (rc != IMG_OK) {
		r->state = rc == IMG_E_MISSING ? VERIFY_MISSING : VERIFY_BAD;
		r->code = img_exit_code(rc);
		snprintf(r->line, sizeof r->line, "%s: %s: %s", p->name, rc == IMG_E_MISSING ? "MISSING" : "BAD",
			 err.msg);
		return;
	}
	rc = check_image(im, quiet, p->name, msg, sizeof msg);
	const img_info *in = img_get_info(im);
	char used[32];
	img_fmt_human(used, sizeof used, img_blocks_done(im) * in->block_size);
	r->state = rc == IMG_OK ? VERIFY_OK : VERIFY_BAD;
	r->code = img_exit_code(rc);
	if (rc == IMG_OK)
		snprintf(r->line, sizeof r->line, "%s: OK: %s %s, %s in use, %s", p->name, in->format, in->fs,
			 used, in->has_checksums ? "every checksum matches" : "no checksums (structure checked)");
	else
		snprintf(r->line, sizeof r->line, "%s: BAD: %s", p->name, msg);
	img_close(im);
}

/* Partitions checked or opened at once: the machine's cores, at most this many. */
#define CZ_MAX_THREADS 4

struct pool {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n;
	atomic_size_t next;
};

static void *pool_worker(void *arg)
{
	struct pool *pl = arg;
	size_t i;
	while ((i = atomic_fetch_add(&pl->next, 1)) < pl->n)
		pl->fn(pl->ctx, i);
	return NULL;
}

/* Threads for n jobs: one per core, at most CZ_MAX_THREADS and n. */
static size_t pool_threads(size_t n)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t threads = cores > 1 ? (size_t)cores : 1;
	if (threads > CZ_MAX_THREADS)
		threads = CZ_MAX_THREADS;
	return threads > n ? (n ? n : 1) : threads;
}

/* fn(ctx, i) for every i below n, on `threads` threads (this one included). */
static void run_parallel(size_t n, size_t threads, void (*fn)(void *, size_t), void *ctx)
{
	struct pool pl = { .fn = fn, .ctx = ctx, .n = n };
	atomic_init(&pl.next, 0);
	pthread_t tid[CZ_MAX_THREADS];
	size_t started = 0;
	for (size_t k = 1; k < threads && k < CZ_MAX_THREADS; k++)
		if (pthread_create(&tid[started], NULL, pool_worker, &pl) == 0)
			started++;
	pool_worker(&pl);
	for (size_t k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
}

struct verify_job {
	const img_czdir *cz;
	struct part_result *res;
	int quiet;
};

static void verify_job_run(void *ctx, size_t i)
{
	struct verify_job *j = ctx;
	verify_one(j->cz, i, j->quiet, &j->res[i]);
}

/* Check every partition, several at once when the machine has the cores
 * (each with its own handle; no progress bars then). */
static void verify_all(const img_czdir *cz, struct part_result *res, size_t n, int quiet)
{
	size_t threads = pool_threads(n);
	struct verify_job j = { .cz = cz, .res = res, .quiet = quiet || threads > 1 };
	run_parallel(n, threads, verify_job_run, &j);
}

/* Hash DIR/FILE with `md` into hex. @return 0, or -1 (errno set). */
static int hash_file(const char *dir, const char *file, const EVP_MD *md, char *hex)
{
	char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	static unsigned char buf[1 << 20];
	size_t n;
	EVP_DigestInit_ex(ctx, md, NULL);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	int bad = ferror(f);
	fclose(f);
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	EVP_DigestFinal_ex(ctx, dig, &dl);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < dl; i++)
		sprintf(hex + 2 * i, "%02x", dig[i]);
	if (bad)
		errno = EIO;
	return bad ? -1 : 0;
}

/* Check every "<hex>  <file>" line of DIR/SUMS. @return the exit code (0 all match). */
static int check_sums(const char *dir, const char *sums, const EVP_MD *md)
{
	char path[PATH_MAX * 2], line[PATH_MAX + 300], hex[2 * EVP_MAX_MD_SIZE + 1];
	snprintf(path, sizeof path, "%s/%s", dir, sums);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	unsigned good = 0, bad = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = 0;
		char *name = sp + 1 + (sp[1] == ' ' || sp[1] == '*');
		if (!strncmp(name, "./", 2))
			name += 2;
		if (hash_file(dir, name, md, hex) != 0) {
			printf("%s: %s: cannot be read: %s\n", sums, name, strerror(errno));
			bad++;
		} else if (strcasecmp(hex, line) != 0) {
			printf("%s: %s: checksum does NOT match\n", sums, name);
			bad++;
		} else {
			good++;
		}
	}
	fclose(f);
	printf("%s: %u file%s match%s, %u do not\n", sums, good, good == 1 ? "" : "s", good == 1 ? "es" : "",
	       bad);
	return bad ? IMG_EXIT_DAMAGED : 0;
}

/* B3SUMS through the b3sum tool, run in DIR. @return the exit code. */
static int check_b3sums(const char *dir)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/B3SUMS", dir);
	if (access(path, F_OK) != 0)
		return 0;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (chdir(dir) == 0) {
			int null = open("/dev/null", O_WRONLY);
			if (null >= 0)
				dup2(null, STDOUT_FILENO);
			execlp("b3sum", "b3sum", "--check", "--quiet", "B3SUMS", (char *)NULL);
		}
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 127) {
		printf("B3SUMS: not checked (the b3sum tool is not installed)\n");
		return 0;
	}
	printf("B3SUMS: %s\n", WEXITSTATUS(st) == 0 ? "every file matches (b3sum --check)"
						   : "b3sum --check reports mismatches");
	return WEXITSTATUS(st) == 0 ? 0 : IMG_EXIT_DAMAGED;
}

static int verify_sums(const char *dir)
{
	int code = check_sums(dir, "MD5SUMS", EVP_md5());
	int c = check_sums(dir, "SHA1SUMS", EVP_sha1());
	code = c > code ? c : code;
	c = check_sums(dir, "B2SUMS", EVP_blake2b512());
	code = c > code ? c : code;
	c = check_b3sums(dir);
	return c > code ? c : code;
}

int cz_verify(const char *dir, int quiet)
{
	img_czdir *cz;
	struct part_result *res;
	size_t n;
	int code = open_dir_array(dir, sizeof *res, &cz, (void **)&res, &n);
	if (code)
		return code;
	verify_all(cz, res, n, quiet);
	struct verify_totals t = { 0 };
	for (size_t i = 0; i < n; i++) {
		if (res[i].state == VERIFY_SKIPPED)
			continue;
		printf("%s\n", res[i].line);
		res[i].state == VERIFY_OK ? t.ok++ : res[i].state == VERIFY_MISSING ? t.missing++ : t.bad++;
		note_code(&t, res[i].code);
	}
	free(res);
	fflush(stdout);
	note_code(&t, verify_sums(img_czdir_path(cz)));
	printf("%s: %u partition image%s: %u OK, %u damaged, %u missing\n", img_czdir_path(cz),
	       t.ok + t.bad + t.missing, t.ok + t.bad + t.missing == 1 ? "" : "s", t.ok, t.bad, t.missing);
	img_czdir_close(cz);
	fflush(stdout);
	return t.worst;
}

/* ---- mount ------------------------------------------------------------------------- */

/* Files of one mount: partitions and disks. */
#define CZ_MOUNT_MAX_FILES 272

struct cz_mount_set {
	img_czdir *cz;
	size_t n;
	img_image **ims;
	img_err *why;
	img_cz_vdisk *vd[16];
	size_t nvd;
	struct fuse_file files[CZ_MOUNT_MAX_FILES];
	size_t nfiles;
};

static int read_part(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err)
{
	return img_read_at(ctx, off, buf, len, got, err);
}

static int read_disk(void *ctx, uint64_t off, void *buf, size_t len, size_t *got, img_err *err)
{
	return img_cz_vdisk_read_at(ctx, off, buf, len, got, err);
}

static void add_file(struct cz_mount_set *s, const char *name, uint64_t size, uint32_t bs,
		     int (*rd)(void *, uint64_t, void *, size_t, size_t *, img_err *), void *ctx,
		     const char *source)
{
	if (s->nfiles >= CZ_MOUNT_MAX_FILES)
		return;
	s->files[s->nfiles++] = (struct fuse_file){
		.name = name, .size = size, .block_size = bs, .read = rd, .ctx = ctx, .source = source,
	};
}

struct open_job {
	struct cz_mount_set *s;
	const struct mount_request *rq;
	int quiet;
};

/* Open partition i's image for random reads (its saved index loaded, or
 * built): s->ims[i], or s->why[i] says why not. Nothing printed. */
static void open_job_run(void *ctx, size_t i)
{
	struct open_job *j = ctx;
	struct cz_mount_set *s = j->s;
	const img_cz_part *p = img_czdir_part(s->cz, i);
	if (p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED || !p->image[0])
		return;
	img_image *im = NULL;
	int rc = img_czdir_open_image(s->cz, i, NULL, NULL, &im, &s->why[i]);
	if (rc == IMG_OK) {
		int state = 0;
		rc = random_open_progress(im, j->rq->index_interval, j->rq->verify, j->quiet, &state);
		if (rc != IMG_OK) {
			s->why[i] = *img_error(im);
			img_close(im);
			im = NULL;
		}
	}
	s->ims[i] = im;
}

/* Open every partition image for random reads, several at once when the
 * machine has the cores (progress bars only when one at a time); a missing
 * or damaged one is reported and left out (its range of the whole disk then
 * reads as EIO). */
static void open_partitions(struct cz_mount_set *s, const struct mount_request *rq)
{
	size_t threads = pool_threads(s->n);
	struct open_job j = { .s = s, .rq = rq, .quiet = rq->quiet_progress || threads > 1 };
	run_parallel(s->n, threads, open_job_run, &j);
	for (size_t i = 0; i < s->n; i++) {
		const img_cz_part *p = img_czdir_part(s->cz, i);
		if (p->kind == IMG_CZ_SWAP || p->kind == IMG_CZ_EXTENDED || !p->image[0]) {
			if (p->kind == IMG_CZ_DATA || p->kind == IMG_CZ_LV)
				warnx_("%s: %s: no image file for this partition", img_czdir_path(s->cz), p->name);
			continue;
		}
		if (!s->ims[i]) {
			warnx_("%s", s->why[i].msg);
			continue;
		}
		const img_info *in = img_get_info(s->ims[i]);
		add_file(s, p->name, in->device_size, in->block_size, read_part, s->ims[i], p->image);
	}
}

static void open_disks(struct cz_mount_set *s, int quiet)
{
	for (size_t d = 0; d < img_czdir_disk_count(s->cz) && s->nvd < 16; d++) {
		const img_cz_disk *disk = img_czdir_disk(s->cz, d);
		if (!disk->whole_disk)
			continue;
		img_cz_vdisk *vd;
		img_err err;
		if (img_cz_vdisk_open(s->cz, d, s->ims, s->why, &vd, &err) != IMG_OK) {
			warnx_("%s", err.msg);
			continue;
		}
		s->vd[s->nvd++] = vd;
		for (size_t k = 0; img_cz_vdisk_problem(vd, k); k++)
			warnx_("%s", img_cz_vdisk_problem(vd, k));
		add_file(s, disk->name, img_cz_vdisk_size(vd), disk->sector_size, read_disk, vd, NULL);
	}
}

static void close_set(struct cz_mount_set *s)
{
	for (size_t i = 0; i < s->nvd; i++)
		img_cz_vdisk_close(s->vd[i]);
	for (size_t i = 0; i < s->n; i++)
		img_close(s->ims[i]);
	free(s->ims);
	free(s->why);
	img_czdir_close(s->cz);
}

static void cz_hints(void *ctx, const char *dir, const char *file)
{
	const struct cz_mount_set *s = ctx;
	printf("Clonezilla image directory %s mounted at '%s':\n", img_czdir_path(s->cz), dir);
	for (size_t i = 0; i < s->nfiles; i++) {
		char size[32];
		img_fmt_human(size, sizeof size, s->files[i].size);
		printf("   %s/%s  (%s, %s)\n", dir, s->files[i].name, size,
		       s->files[i].read == read_disk ? "the whole disk" : "a partition");
	}
	int swap = 0;
	for (size_t i = 0; i < s->n; i++)
		swap |= img_czdir_part(s->cz, i)->kind == IMG_CZ_SWAP;
	if (s->nvd)
		printf("\nThe disk files read like the restored disk (swap partitions%s read as zeros);\n"
		       "their partitions show up with: %slosetup -r -P --show -f %s/%s\n",
		       swap ? "" : ", if any,", geteuid() == 0 ? "" : "sudo ", dir, s->files[s->nfiles - 1].name);
	printf("\nA partition can be mounted read-only with: %smount -o loop,ro %s/%s /mnt\n"
	       "When done: fusermount3 -u %s\n", geteuid() == 0 ? "" : "sudo ", dir, s->files[0].name, dir);
	fflush(stdout);
}

int cz_mount(const struct mount_request *rq)
{
	img_open_for_random();  /* read at random: the streams read the headers only */
	struct cz_mount_set *s = calloc(1, sizeof *s);
	if (!s) {
		warnx_("mount: out of memory");
		return IMG_EXIT_SYSTEM;
	}
	int code = open_dir(rq->image, &s->cz);
	if (code) {
		free(s);
		return code;
	}
	s->n = img_czdir_part_count(s->cz);
	s->ims = calloc(s->n ? s->n : 1, sizeof *s->ims);
	s->why = calloc(s->n ? s->n : 1, sizeof *s->why);
	if (!s->ims || !s->why) {
		warnx_("mount: out of memory");
		close_set(s);
		free(s);
		return IMG_EXIT_SYSTEM;
	}
	open_partitions(s, rq);
	open_disks(s, rq->quiet_progress);
	if (s->nfiles == 0) {
		warnx_("mount: %s: nothing can be served (no partition image could be opened)", rq->image);
		close_set(s);
		free(s);
		return IMG_EXIT_DAMAGED;
	}
	char msg[700];
	struct fuse_image_config cfg = {
		.mountpoint = rq->mountpoint, .debug = rq->debug, .direct_io = rq->direct_io,
		.ready = rq->quiet_hints ? NULL : cz_hints, .ctx = s,
	};
	code = IMG_EXIT_OK;
	if (fuse_files_run(s->files, s->nfiles, &cfg, rq->foreground || rq->debug, msg, sizeof msg) != 0) {
		if (msg[0])
			warnx_("%s", msg);
		code = IMG_EXIT_SYSTEM;
	}
	close_set(s);
	free(s);
	return code;
}

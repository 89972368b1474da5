/*
 * test/unit/test_rsrc.c - unit tests of the byte-source interface (io/io.h):
 * the concatenation (io/rsrc.c) of files with and without leading bytes to
 * skip and of other sources (a memory source defined here, through the
 * method table alone), its errors (a piece shorter than its header, a
 * missing piece, a file that shrank, a pipe), a split set of more pieces
 * than may be open at once read from several threads, the sequential face
 * (rsrc_stream_open), and the composition from sniffed layers
 * (io/rsrc_stack.c: gzip over a file becomes a decoded source; saved access
 * points are asked for with the stored bytes and spare the scan).
 *
 * Not here: the decoded view's reads in depth (test_zseek_gz.c,
 * test_zseek_codecs.c), partimage volume sets (test_partimage_access.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "io/io.h"

/* ---- helpers ------------------------------------------------------------------ */

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(char *dir)
{
	assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Read [off, off + len) of r and compare with want. */
static void expect_bytes(img_rsrc *r, const uint8_t *want, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	img_err err = { 0 };
	size_t got = 12345;
	int rc = rsrc_pread(r, buf, len, off, &got, &err);
	if (rc != IMG_OK)
		fail_msg("pread %zu at %llu: %d %s", len, (unsigned long long)off, rc, err.msg);
	assert_int_equal(got, len);
	assert_memory_equal(buf, want + off, len);
	free(buf);
}

/* Reads at every piece boundary, 1 byte either side and across, and a few
 * random spans; then one past the end (short) and at the end (nothing). */
static void expect_all_reads(img_rsrc *r, const uint8_t *want, uint64_t size, const uint64_t *cuts,
			     size_t ncuts)
{
	assert_int_equal(rsrc_size(r), size);
	expect_bytes(r, want, 0, (size_t)size);
	for (size_t i = 0; i < ncuts; i++) {
		uint64_t c = cuts[i];
		for (uint64_t a = c > 3 ? c - 3 : 0; a <= c + 3 && a < size; a++)
			for (uint64_t len = 1; len <= 7 && a + len <= size; len += 3)
				expect_bytes(r, want, a, (size_t)len);
	}
	uint32_t x = 7;
	for (int k = 0; k < 200; k++) {
		x = x * 1103515245u + 12345u;
		uint64_t a = x % size;
		x = x * 1103515245u + 12345u;
		size_t len = (size_t)(x % (size - a) + 1);
		expect_bytes(r, want, a, len);
	}
	uint8_t tail[16];
	size_t got = 0;
	img_err err = { 0 };
	assert_int_equal(rsrc_pread(r, tail, sizeof tail, size - 5, &got, &err), IMG_OK);
	assert_int_equal(got, 5);
	assert_memory_equal(tail, want + size - 5, 5);
	assert_int_equal(rsrc_pread(r, tail, sizeof tail, size, &got, &err), IMG_OK);
	assert_int_equal(got, 0);
}

/* ---- a memory source: the interface implemented outside io/ ------------------ */

struct memrsrc {
	struct img_rsrc base;
	const uint8_t *p;
	size_t n;
	int preads;
};

static int mem_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	(void)err;
	struct memrsrc *m = (struct memrsrc *)r;
	*got = 0;
	m->preads++;
	if (off >= m->n)
		return IMG_OK;
	*got = len < m->n - off ? len : (size_t)(m->n - off);
	memcpy(buf, m->p + off, *got);
	return IMG_OK;
}

static uint64_t mem_size(const img_rsrc *r)
{
	return ((const struct memrsrc *)r)->n;
}

static const char *mem_first_path(const img_rsrc *r)
{
	(void)r;
	return "mem";
}

static void mem_close(img_rsrc *r)
{
	(void)r;  /* lives on the test's stack */
}

static const struct img_rsrc_methods mem_methods = {
	.name = "mem", .caps = RSRC_CAP_RANDOM, .pread = mem_pread, .size = mem_size, .first_path = mem_first_path,
	.close = mem_close,
};

/* ---- the concatenation ------------------------------------------------------- */

/* Three files, each a 7-byte header then data: read as one range. */
static void test_concat_skips_headers(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	size_t lens[] = { 1000, 1, 70000 };  /* data bytes of each volume */
	uint8_t *data = malloc(71001), hdr[7] = "HEADER";
	fill_pattern(data, 71001, 1);
	char names[3][300];
	struct rsrc_piece pcs[3];
	uint64_t cuts[3], at = 0;
	for (int i = 0; i < 3; i++) {
		snprintf(names[i], sizeof names[i], "%s/vol.%03d", dir, i);
		uint8_t *f = malloc(7 + lens[i]);
		memcpy(f, hdr, 7);
		memcpy(f + 7, data + at, lens[i]);
		write_file(names[i], f, 7 + lens[i]);
		free(f);
		pcs[i] = (struct rsrc_piece){ .path = names[i], .skip = 7 };
		at += lens[i];
		cuts[i] = at;
	}
	img_err err = { 0 };
	img_rsrc *r = NULL;
	assert_int_equal(rsrc_concat(pcs, 3, &err, &r), IMG_OK);
	assert_string_equal(r->m->name, "pieces");
	assert_int_equal(rsrc_caps(r), RSRC_CAP_RANDOM | RSRC_CAP_FILES);
	assert_string_equal(rsrc_first_path(r), names[0]);
	uint64_t id_size;
	int64_t mtime;
	rsrc_identity(r, &id_size, &mtime);
	assert_int_equal(id_size, 71001 + 21);  /* the files as stored */
	assert_true(mtime > 0);
	expect_all_reads(r, data, 71001, cuts, 3);
	uint8_t *none = NULL;
	size_t nlen = 1;
	assert_int_equal(rsrc_decoded_save(r, &none, &nlen), IMG_OK);
	assert_null(none);
	assert_int_equal(nlen, 0);
	rsrc_close(r);
	free(data);
	remove_dir(dir);
}

/* A source as a piece (a decoded volume 0 in a partimage set is one): its
 * first bytes skipped, then a file. */
static void test_concat_of_a_source(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	uint8_t mem[5000], file[3000], want[4995 + 2990];
	fill_pattern(mem, sizeof mem, 2);
	fill_pattern(file, sizeof file, 3);
	memcpy(want, mem + 5, 4995);
	memcpy(want + 4995, file + 10, 2990);
	char name[300];
	snprintf(name, sizeof name, "%s/second", dir);
	write_file(name, file, sizeof file);
	struct memrsrc m = { .base.m = &mem_methods, .p = mem, .n = sizeof mem };
	struct rsrc_piece pcs[2] = { { .src = &m.base, .skip = 5 }, { .path = name, .skip = 10 } };
	img_err err = { 0 };
	img_rsrc *r = NULL;
	assert_int_equal(rsrc_concat(pcs, 2, &err, &r), IMG_OK);
	assert_string_equal(rsrc_first_path(r), "mem");
	uint64_t id_size;
	int64_t mtime;
	rsrc_identity(r, &id_size, &mtime);  /* mem has no identity method: its size */
	assert_int_equal(id_size, sizeof mem + sizeof file);
	uint64_t cuts[] = { 4995 };
	expect_all_reads(r, want, sizeof want, cuts, 1);
	assert_true(m.preads > 0);
	rsrc_close(r);  /* the borrowed source stays */
	expect_bytes(&m.base, mem, 0, sizeof mem);
	remove_dir(dir);
}

static void test_concat_errors(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	char a[300], b[300], fifo[300];
	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	uint8_t bytes[4096];
	fill_pattern(bytes, sizeof bytes, 4);
	write_file(a, bytes, sizeof bytes);
	write_file(b, bytes, 100);
	img_err err = { 0 };
	img_rsrc *r = NULL;

	/* a piece shorter than its header */
	struct rsrc_piece pcs[2] = { { .path = a, .skip = 512 }, { .path = b, .skip = 512 } };
	assert_int_equal(rsrc_concat(pcs, 2, &err, &r), IMG_E_TRUNCATED);
	assert_non_null(strstr(err.msg, b));
	assert_non_null(strstr(err.msg, "ends at byte 100, inside its 512-byte header"));
	assert_int_equal(err.offset, 100);

	/* a missing piece */
	memset(&err, 0, sizeof err);
	pcs[1].path = fifo;
	assert_int_equal(rsrc_concat(pcs, 2, &err, &r), IMG_E_MISSING);
	assert_non_null(strstr(err.msg, fifo));
	assert_non_null(strstr(err.msg, "cannot open"));

	/* a pipe opens (without waiting for a writer) but is no random-read
	 * source: size 0, nothing to read; composing one is refused */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	memset(&err, 0, sizeof err);
	assert_int_equal(rsrc_open(fifo, &err, &r), IMG_OK);
	assert_int_equal(rsrc_caps(r), RSRC_CAP_FILES);
	assert_int_equal(rsrc_size(r), 0);
	rsrc_close(r);
	struct rsrc_layers file_only = { .source = "file" };
	struct rsrc_build build = { 0 };
	assert_int_equal(rsrc_open_layers(fifo, &file_only, &build, &err, &r), IMG_E_FORMAT);
	assert_non_null(strstr(err.msg, fifo));
	assert_non_null(strstr(err.msg, "a pipe cannot be read at random; save its bytes to a file first"));

	/* a file that shrank after the open: an error naming it and the byte */
	memset(&err, 0, sizeof err);
	pcs[1].path = b;
	pcs[0].skip = pcs[1].skip = 10;
	assert_int_equal(rsrc_concat(pcs, 2, &err, &r), IMG_OK);
	assert_int_equal(rsrc_size(r), 4086 + 90);
	assert_int_equal(truncate(a, 3000), 0);
	uint8_t buf[2000];
	size_t got = 0;
	assert_int_equal(rsrc_pread(r, buf, sizeof buf, 2000, &got, &err), IMG_E_IO);
	assert_int_equal(got, 990);
	assert_non_null(strstr(err.msg, a));
	assert_non_null(strstr(err.msg, "ends at byte 3000, 1096 bytes earlier than when it was opened"));
	assert_int_equal(err.offset, 2990);
	rsrc_close(r);

	/* no pieces */
	memset(&err, 0, sizeof err);
	assert_int_equal(rsrc_concat(pcs, 0, &err, &r), IMG_E_USAGE);
	remove_dir(dir);
}

/* ---- a split set of more pieces than stay open, from several threads ------------ */

#define MANY 45
#define PIECE 3001

struct reader_arg {
	img_rsrc *r;
	const uint8_t *want;
	uint32_t seed;
	int bad;
};

static void *random_reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t buf[3 * PIECE];
	uint32_t x = a->seed;
	for (int k = 0; k < 400; k++) {
		x = x * 1103515245u + 12345u;
		uint64_t off = x % (MANY * PIECE);
		size_t len = 1 + (x >> 8) % sizeof buf, got = 0;
		img_err err = { 0 };
		if (rsrc_pread(a->r, buf, len, off, &got, &err) != IMG_OK)
			a->bad++;
		else if (got != (off + len <= MANY * PIECE ? len : MANY * PIECE - off) ||
			 memcmp(buf, a->want + off, got) != 0)
			a->bad++;
	}
	return NULL;
}

static void test_split_set_many_pieces(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	static uint8_t data[MANY * PIECE];
	fill_pattern(data, sizeof data, 5);
	char name[300];
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof name, "%s/IMG.%c%c", dir, 'a' + i / 26, 'a' + i % 26);
		write_file(name, data + (size_t)i * PIECE, PIECE);
	}
	snprintf(name, sizeof name, "%s/IMG.aa", dir);
	img_err err = { 0 };
	img_rsrc *r = NULL;
	assert_int_equal(rsrc_open(name, &err, &r), IMG_OK);
	uint64_t cuts[MANY];
	for (int i = 0; i < MANY; i++)
		cuts[i] = (uint64_t)(i + 1) * PIECE;
	expect_all_reads(r, data, sizeof data, cuts, MANY - 1);
	struct reader_arg args[4];
	pthread_t th[4];
	for (int t = 0; t < 4; t++) {
		args[t] = (struct reader_arg){ r, data, (uint32_t)t + 11, 0 };
		assert_int_equal(pthread_create(&th[t], NULL, random_reader, &args[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].bad, 0);
	}
	rsrc_close(r);
	remove_dir(dir);
}

/* ---- the sequential face ----------------------------------------------------- */

static void test_stream_over_source(void **state)
{
	(void)state;
	uint8_t mem[100000];
	fill_pattern(mem, sizeof mem, 6);
	struct memrsrc m = { .base.m = &mem_methods, .p = mem, .n = sizeof mem };
	img_err err = { 0 };
	img_stream *s = NULL;
	assert_int_equal(rsrc_stream_open(&m.base, 1234, 4096, &err, &s), IMG_OK);
	assert_string_equal(s->path, "mem");
	const uint8_t *p;
	size_t avail;
	assert_int_equal(stream_peek(s, 10, &p, &avail), IMG_OK);
	assert_memory_equal(p, mem + 1234, 10);
	stream_consume(s, 10);
	static uint8_t out[100000];
	size_t got = 0;
	assert_int_equal(stream_read(s, out, sizeof out, &got), IMG_EOF);
	assert_int_equal(got, sizeof mem - 1234 - 10);
	assert_memory_equal(out, mem + 1244, got);
	assert_int_equal(s->offset, sizeof mem - 1234);
	stream_close(s);
}

/* A failing pread fails the stream with the source's message. */
static int failing_pread(img_rsrc *r, void *buf, size_t len, uint64_t off, size_t *got, img_err *err)
{
	(void)r, (void)buf, (void)len;
	*got = 0;
	return img_err_set(err, IMG_E_IO, 5, 1, off, "failing: read error at byte %llu",
			   (unsigned long long)off);
}

static void test_stream_over_failing_source(void **state)
{
	(void)state;
	struct img_rsrc_methods fm = mem_methods;
	fm.pread = failing_pread;
	struct memrsrc m = { .base.m = &fm, .n = 10 };
	img_err err = { 0 };
	img_stream *s = NULL;
	assert_int_equal(rsrc_stream_open(&m.base, 7, 0, &err, &s), IMG_OK);
	const uint8_t *p;
	size_t avail;
	assert_int_equal(stream_peek(s, 1, &p, &avail), IMG_E_IO);
	assert_string_equal(err.msg, "failing: read error at byte 7");
	assert_int_equal(stream_peek(s, 1, &p, &avail), IMG_E_IO);  /* failed for good */
	stream_close(s);
}

/* ---- composition from the sniffed layers ------------------------------------- */

static void write_gzip(const char *path, const uint8_t *p, size_t n)
{
	gzFile g = gzopen(path, "wb6");
	assert_non_null(g);
	assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
	assert_int_equal(gzclose(g), Z_OK);
}

struct saved_ask {
	int calls;
	uint64_t stored_size;
	unsigned stored_caps;
	const uint8_t *give;
	size_t give_len;
};

static int give_saved(void *ctx, img_rsrc *stored, const uint8_t **points, size_t *len)
{
	struct saved_ask *a = ctx;
	a->calls++;
	a->stored_size = rsrc_size(stored);
	a->stored_caps = rsrc_caps(stored);
	*points = a->give;
	*len = a->give_len;
	return IMG_OK;
}

static const struct img_codec *codec_named(const char *name)
{
	for (size_t i = 0; img_codecs[i]; i++)
		if (strcmp(img_codecs[i]->name, name) == 0)
			return img_codecs[i];
	return NULL;
}

static void test_layers_compose_a_decoded_source(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	size_t n = 3 << 20;
	uint8_t *plain = malloc(n);
	for (size_t i = 0; i < n; i++)  /* compressible, not trivially */
		plain[i] = (uint8_t)((i * 7) ^ (i >> 9));
	char path[300];
	snprintf(path, sizeof path, "%s/data.gz", dir);
	write_gzip(path, plain, n);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);

	img_err err = { 0 };
	img_stream *s = NULL;
	assert_int_equal(stream_open_stack(path, &err, NULL, NULL, 0, &s), IMG_OK);
	struct rsrc_layers l;
	rsrc_layers_of(s, &l);
	stream_close(s);
	assert_string_equal(l.source, "file");
	assert_int_equal(l.ncodecs, 1);
	assert_ptr_equal(l.codecs[0], codec_named("gzip"));
	assert_true(rsrc_layers_random(&l));

	struct saved_ask ask = { 0 };
	struct rsrc_build b = { .saved_points = give_saved, .ctx = &ask };
	img_rsrc *r = NULL;
	assert_int_equal(rsrc_open_layers(path, &l, &b, &err, &r), IMG_OK);
	assert_int_equal(ask.calls, 1);
	assert_int_equal(ask.stored_size, (uint64_t)st.st_size);  /* asked with the stored bytes */
	assert_int_equal(ask.stored_caps, RSRC_CAP_RANDOM | RSRC_CAP_FILES);
	assert_int_equal(b.rebuilt, 1);
	assert_string_equal(r->m->name, "decoded");
	assert_int_equal(rsrc_caps(r), RSRC_CAP_RANDOM | RSRC_CAP_FILES | RSRC_CAP_DECODED);
	assert_string_equal(rsrc_first_path(r), path);
	uint64_t id_size;
	int64_t mtime;
	rsrc_identity(r, &id_size, &mtime);
	assert_int_equal(id_size, (uint64_t)st.st_size);
	assert_int_equal(rsrc_size(r), n);
	expect_bytes(r, plain, 0, n);
	expect_bytes(r, plain, (1 << 20) - 3, 7);
	expect_bytes(r, plain, n - 100, 100);
	uint8_t *points = NULL;
	size_t plen = 0;
	assert_int_equal(rsrc_decoded_save(r, &points, &plen), IMG_OK);
	assert_non_null(points);
	rsrc_close(r);

	/* the saved points spare the scan */
	ask = (struct saved_ask){ .give = points, .give_len = plen };
	assert_int_equal(rsrc_open_layers(path, &l, &b, &err, &r), IMG_OK);
	assert_int_equal(b.rebuilt, 0);
	expect_bytes(r, plain, n / 2, 4096);
	rsrc_close(r);
	free(points);

	/* a plain file: the file itself */
	snprintf(path, sizeof path, "%s/plain", dir);
	write_file(path, plain, 5000);
	assert_int_equal(stream_open_stack(path, &err, NULL, NULL, 0, &s), IMG_OK);
	rsrc_layers_of(s, &l);
	stream_close(s);
	assert_int_equal(l.ncodecs, 0);
	ask = (struct saved_ask){ 0 };
	assert_int_equal(rsrc_open_layers(path, &l, &b, &err, &r), IMG_OK);
	assert_int_equal(ask.calls, 1);
	assert_string_equal(r->m->name, "pieces");
	expect_bytes(r, plain, 0, 5000);
	rsrc_close(r);

	free(plain);
	remove_dir(dir);
}

/* Two decoding layers, or a source that cannot be opened again by name:
 * no random-read source, and IMG_E_FORMAT if asked anyway. */
static void test_layers_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/imgbk-rsrc-XXXXXX";
	make_dir(dir);
	uint8_t plain[20000];
	fill_pattern(plain, sizeof plain, 8);
	char inner[300], outer[300];
	snprintf(inner, sizeof inner, "%s/in.gz", dir);
	snprintf(outer, sizeof outer, "%s/in.gz.gz", dir);
	write_gzip(inner, plain, sizeof plain);
	FILE *f = fopen(inner, "rb");
	static uint8_t gz[40000];
	size_t gzn = fread(gz, 1, sizeof gz, f);
	fclose(f);
	write_gzip(outer, gz, gzn);

	img_err err = { 0 };
	img_stream *s = NULL;
	assert_int_equal(stream_open_stack(outer, &err, NULL, NULL, 0, &s), IMG_OK);
	struct rsrc_layers l;
	rsrc_layers_of(s, &l);
	stream_close(s);
	assert_int_equal(l.ncodecs, 2);
	assert_ptr_equal(l.codecs[0], codec_named("gzip"));
	assert_ptr_equal(l.codecs[1], codec_named("gzip"));
	assert_false(rsrc_layers_random(&l));
	struct rsrc_build b = { 0 };
	img_rsrc *r = NULL;
	assert_int_equal(rsrc_open_layers(outer, &l, &b, &err, &r), IMG_E_FORMAT);
	assert_non_null(strstr(err.msg, outer));
	assert_non_null(strstr(err.msg, "cannot be read at random"));

	struct rsrc_layers in = { .source = "stdin" };
	assert_false(rsrc_layers_random(&in));
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concat_skips_headers),
		cmocka_unit_test(test_concat_of_a_source),
		cmocka_unit_test(test_concat_errors),
		cmocka_unit_test(test_split_set_many_pieces),
		cmocka_unit_test(test_stream_over_source),
		cmocka_unit_test(test_stream_over_failing_source),
		cmocka_unit_test(test_layers_compose_a_decoded_source),
		cmocka_unit_test(test_layers_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

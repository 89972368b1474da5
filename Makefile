# Makefile - builds imgbk (one multi-call binary), libimgbk.a, the tests,
# the demo, the benchmark and a static build. Plain GNU make.
#
#   make            build ./imgbk (and libimgbk.a), and build/nbdkit-imgbk-plugin.so
#                   when nbdkit-plugin-dev is installed
#   make check      install missing Debian packages, build, run unit + integration tests
#   make demo       install missing packages, make a sample image with partclone, use imgbk on it
#   make bench      measure imgbk against partclone and the machine's limits
#   make static     one fully static imgbk for rescue media (build/static/imgbk)
#   make install    PREFIX=/usr/local DESTDIR= (the plugin: into nbdkit's plugindir)
#   make deps       install the Debian packages that are missing (needs root)
#   SANITIZE=1      build with ASan + UBSan (make check SANITIZE=1)
#   make tsan       the random-read unit tests and the fuzz replay under ThreadSanitizer

CC        ?= cc
PKG_CONFIG ?= pkg-config
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
O         ?= build

CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Wshadow -Wno-unused-parameter
CPPFLAGS  += -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I.
BASE_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS)

ifeq ($(SANITIZE),1)
O := build-san
BASE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
O := build-tsan
BASE_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

# Libraries: pkg-config for each; bzip2 and lzlib ship no .pc file on Debian 12.
PKGS      := zlib libzstd liblzma liblz4 libxxhash libcrypto
HAVE_ISAL := $(shell $(PKG_CONFIG) --exists libisal 2>/dev/null && echo 1)
ifeq ($(HAVE_ISAL),1)
PKGS      += libisal
CPPFLAGS  += -DHAVE_ISAL
endif
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lbz2 -llz -llzo2
FUSE_CFLAGS := $(shell $(PKG_CONFIG) --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell $(PKG_CONFIG) --libs fuse3 2>/dev/null)

ALL_CFLAGS = $(CPPFLAGS) $(PKG_CFLAGS) $(BASE_CFLAGS)

# One place per kind of thing: any .c dropped in these folders is built.
LIB_SRC    := $(sort $(wildcard io/*.c formats/*.c))
APPLET_SRC := $(sort $(wildcard applets/*.c))
FUSE_SRC   := $(sort $(wildcard fuse/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(O)/%.o)
APPLET_OBJ := $(APPLET_SRC:%.c=$(O)/%.o) $(O)/imgbk.o
FUSE_OBJ   := $(FUSE_SRC:%.c=$(O)/%.o)
HEADERS    := $(wildcard *.h io/*.h formats/*.h applets/*.h fuse/*.h)

LIB        := $(O)/libimgbk.a
# SANITIZE=1 (TSAN=1) builds build-san/imgbk (build-tsan/imgbk), never ./imgbk
BIN        := $(if $(filter 1,$(SANITIZE) $(TSAN)),$(O)/imgbk,imgbk)
LINKS      := vpartclone vntfsclone vpartimage

UNIT_SRC   := $(sort $(wildcard test/unit/test_*.c))
UNIT_BIN   := $(UNIT_SRC:test/unit/%.c=$(O)/test/%)
UNIT_HELP  := $(sort $(wildcard test/unit/helper_*.c))

.PHONY: all check check-one unit integration demo bench static static-link install uninstall deps clean
.PHONY: nbd-plugin

all: $(BIN) nbd-plugin

$(O)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(if $(filter fuse/%,$<),$(FUSE_CFLAGS)) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(APPLET_OBJ) $(FUSE_OBJ) $(LIB)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $(APPLET_OBJ) $(FUSE_OBJ) $(LIB) $(PKG_LIBS) $(FUSE_LIBS)
	@for l in $(LINKS); do ln -sf $(notdir $(BIN)) $(dir $(BIN))$$l; done

# ---- the nbdkit plugin (nbd/) ----------------------------------------------
# nbdkit-imgbk-plugin.so: nbd/plugin.c and a position-independent build of the
# library in $(O)/pic/, its symbols hidden (only plugin_init is exported).
# Needs nbdkit-plugin-dev; without it `make` says so and goes on. Not built
# under SANITIZE=1 (an ASan .so cannot be loaded by a plain nbdkit).
HAVE_NBDKIT   := $(shell $(PKG_CONFIG) --exists nbdkit 2>/dev/null && echo 1)
NBDKIT_CFLAGS := $(shell $(PKG_CONFIG) --cflags nbdkit 2>/dev/null)
NBDKIT_PLUGINDIR := $(shell $(PKG_CONFIG) --variable=plugindir nbdkit 2>/dev/null)
NBD_PLUGIN    := $(O)/nbdkit-imgbk-plugin.so
PIC_OBJ       := $(LIB_SRC:%.c=$(O)/pic/%.o)
PIC_CFLAGS    := -fPIC -fvisibility=hidden

$(O)/pic/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PIC_CFLAGS) -c -o $@ $<

$(NBD_PLUGIN): nbd/plugin.c $(PIC_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $(NBDKIT_CFLAGS) $(PIC_CFLAGS) -shared -Wl,--as-needed -o $@ \
		nbd/plugin.c $(PIC_OBJ) $(PKG_LIBS) -lpthread

ifeq ($(HAVE_NBDKIT)$(SANITIZE),1)
nbd-plugin: $(NBD_PLUGIN)
else ifeq ($(SANITIZE),1)
nbd-plugin:
else
nbd-plugin:
	@echo "make: nbdkit-plugin-dev is not installed: $(NBD_PLUGIN) is not built (make deps installs it)"
endif

# ---- tests ---------------------------------------------------------------
# Unit tests link the library built with STREAM_POISON, so stale pointers
# into a moved read buffer read poison (and trip ASan under SANITIZE=1).
POISON_OBJ := $(LIB_SRC:%.c=$(O)/poison/%.o)
$(O)/poison/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DSTREAM_POISON -c -o $@ $<
$(O)/libimgbk-poison.a: $(POISON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(O)/test/%: test/unit/%.c $(UNIT_HELP) $(O)/libimgbk-poison.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(UNIT_HELP) $(O)/libimgbk-poison.a \
		$(PKG_LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

# the corruption matrix's in-process runner (test/drivers/corrupt_run.c): the
# applets and the library of this build, without imgbk.c's main
DRIVER_OBJ := $(filter-out $(O)/imgbk.o,$(APPLET_OBJ)) $(FUSE_OBJ)
$(O)/test/corrupt_run: test/drivers/corrupt_run.c $(DRIVER_OBJ) $(LIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(DRIVER_OBJ) $(LIB) $(PKG_LIBS) $(FUSE_LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; IMGBK_TEST_DATA=test/data $$t; done

integration: $(BIN)
	@IMGBK=$(CURDIR)/$(BIN) IMGBK_LIB=$(CURDIR)/$(LIB) sh test/integration/all.sh

# One pass of the suite with this build alone, one test at a time: unit
# tests, man pages, every integration script (the corruption matrix included).
check-one:
	$(MAKE) all unit
	sh test/man-check.sh ./$(BIN)
	$(MAKE) integration

# ---- make check ------------------------------------------------------------
# 1. Every binary is built once, the two builds and the fuzz harnesses at the
#    same time (-j): ./imgbk + build/ (what users get), build-san/ (ASan +
#    UBSan), build-fuzz/ (clang, libFuzzer, ASan + UBSan).
# 2. One pool of jobs, CHECK_JOBS at a time (test/jobs.sh prints each job's
#    output whole when it ends, a table of times, and last the one line
#    "N passed, M failed" over every case of every job):
#    - every integration script listed in test/integration/all.sh (a script
#      added there joins by itself) and the man page check, against ./imgbk;
#    - every unit test twice: built with the sanitizers (build-san/test/) and
#      built as users build the library (build/test/);
#    - the corruption matrix and mount.sh again, against build-san/imgbk
#      (the matrix's cases call the applets in one process,
#      build-san/test/corrupt_run: three ASan process starts per case cost
#      more than all the rest of the matrix);
#    - the fuzz smoke: each harness SMOKE_SECONDS with the fixed seed.
# Why not the whole integration suite under the sanitizers too: their job is
# to find memory errors and undefined behaviour, and hostile input is where
# those live. The unit tests and the fuzz harnesses drive io/ and formats/
# (every parser and decoder, random access, the index) with the sanitizers;
# the corruption matrix sends ~1100 damaged images through info, verify and
# restore (the applets and the target code); mount.sh adds the FUSE daemon
# (fuse/), the mount, index and vpartclone front ends and parallel reads.
# The other scripts (run.sh, zmount.sh, safety.sh, ntfsclone.sh,
# partimage.sh, ...) check bytes and messages end to end against real
# partclone/ntfsclone/partimage and compressors: they prove what users get,
# so they run with the binary users get, where a second, sanitized run would
# take longer than the whole budget of 15 minutes and reach the same code.
# make check SANITIZE=1: the sanitizer build's whole suite, one test at a time.
# the scripts mostly wait (fsync, FUSE round trips, sleeps): 2 more than cores
CHECK_JOBS    ?= $(shell echo $$(($$(nproc 2>/dev/null || echo 1) + 2)))
# each harness first replays its whole corpus (seeds, regressions, generated:
# libFuzzer checks -max_total_time only in its mutation loop); the seconds
# are for new inputs on top
SMOKE_SECONDS ?= 15
NPROC         := $(shell nproc 2>/dev/null || echo 1)
SAN_UNIT_BIN  := $(UNIT_SRC:test/unit/%.c=build-san/test/%)
NORM_UNIT_BIN := $(UNIT_SRC:test/unit/%.c=build/test/%)
SAN_SCRIPTS   := corrupt.sh mount.sh

.PHONY: check-build check-build-normal check-build-san check-jobs
ifeq ($(SANITIZE),1)
check: deps
	$(MAKE) check-one
else
check: deps
	$(MAKE) -j$(NPROC) check-build
	@$(MAKE) -s check-jobs | awk -F'\t' -v first='$(CHECK_FIRST)' \
		'BEGIN { n = split(first, f, "|"); for (i = 1; i <= n; i++) gsub(/^ +| +$$/, "", f[i]) } { line[NR] = $$0; name[NR] = $$1 } \
		END { for (i = 1; i <= n; i++) for (j = 1; j <= NR; j++) if (name[j] == f[i] && !done[j]++) print line[j]; \
		      for (j = 1; j <= NR; j++) if (!done[j]) print line[j] }' >build/check.jobs
	@IMGBK=$(CURDIR)/imgbk IMGBK_LIB=$(CURDIR)/build/libimgbk.a IMGBK_JOBS=$(CHECK_JOBS) \
		bash test/jobs.sh build/check.jobs
endif

check-build: check-build-normal check-build-san fuzz-build
	@sh test/fuzz/mkcorpus.sh $(FUZZ_O)
check-build-normal:
	$(MAKE) all build/libimgbk.a $(NORM_UNIT_BIN)
check-build-san:
	$(MAKE) SANITIZE=1 build-san/imgbk build-san/libimgbk.a build-san/test/corrupt_run $(SAN_UNIT_BIN)

# The jobs that take the most CPU start first (test/jobs.sh starts them in the
# order of build/check.jobs), so that no long one starts last: CHECK_FIRST,
# in this order, then the job lines below in theirs.
CHECK_FIRST := zmount.sh 1/3|corrupt.sh|build-san/test/test_partimage_access|zmount.sh 3/3|\
	build-san/test/test_zseek_codecs|run.sh|build-san/test/test_ntfsclone_access|zmount.sh 2/3|\
	corrupt.sh (sanitizers)|build-san/test/test_zstd_blocks|safety.sh|build-san/test/test_stream|\
	build-san/test/test_codecs|build-san/test/test_zseek_gz|build-san/test/test_zseek_view|czdir.sh|ntfsclone.sh|nbd.sh|partimage.sh
# the job lines of make check
check-jobs:
	@for s in $(SAN_SCRIPTS); do printf '%s (sanitizers)\tCORRUPT_RUN=%s IMGBK=%s IMGBK_LIB=%s bash test/integration/%s\n' \
		$$s $(CURDIR)/build-san/test/corrupt_run $(CURDIR)/build-san/imgbk $(CURDIR)/build-san/libimgbk.a $$s; done
	@sh test/integration/all.sh --list
	@for t in $(SAN_UNIT_BIN); do printf '%s\tIMGBK_TEST_DATA=test/data %s\n' $$t $$t; done
	@for b in $(FUZZ_BIN); do printf '%s\tsh test/fuzz/run.sh %s $(SMOKE_SECONDS) $(FUZZ_SEED)\n' $$(basename $$b) $$b; done
	@for t in $(NORM_UNIT_BIN); do printf '%s\tIMGBK_TEST_DATA=test/data %s\n' $$t $$t; done
	@printf 'man pages\tsh test/man-check.sh ./imgbk\n'

# ThreadSanitizer (TSAN=1 builds into build-tsan/): the tests that read at
# random from several threads, and test_regress (the fuzz_random and
# fuzz_zseek inputs among others). Any report fails the run. The partimage
# and ntfsclone access tests take over 10 minutes each under TSan: add them
# with TSAN_TESTS="... test_partimage_access test_ntfsclone_access".
TSAN_TESTS ?= test_zseek_gz test_zseek_view test_zseek_codecs test_partclone_access test_regress test_rsrc test_zpar
.PHONY: tsan
tsan:
	$(MAKE) TSAN=1 $(TSAN_TESTS:%=build-tsan/test/%)
	@bad=; for t in $(TSAN_TESTS); do echo "== $$t (ThreadSanitizer)"; \
	  IMGBK_TEST_DATA=test/data TSAN_OPTIONS="exitcode=66" build-tsan/test/$$t || bad="$$bad $$t"; \
	done; [ -z "$$bad" ] || { echo "tsan: failed:$$bad"; exit 1; }

demo: deps
	$(MAKE) all
	sh test/demo.sh

bench: deps
	$(MAKE) all
	IMGBK=$(CURDIR)/$(BIN) sh test/bench/bench.sh

deps:
	@sh test/deps.sh

# ---- static build for rescue media ----------------------------------------
# Debian ships the .a of every library used except ISA-L, so the static build
# computes CRC-32 with zlib instead.
STATIC_LIBS = $(shell $(PKG_CONFIG) --static --libs $(PKGS) fuse3 2>/dev/null) -lbz2 -llz -llzo2
static:
	$(MAKE) O=build/static HAVE_ISAL= static-link

static-link: $(APPLET_OBJ) $(FUSE_OBJ) $(LIB)
	$(CC) -static $(BASE_CFLAGS) -o $(O)/imgbk $(APPLET_OBJ) $(FUSE_OBJ) $(LIB) $(STATIC_LIBS)
	@echo "static binary: $(O)/imgbk ($$(du -h $(O)/imgbk | cut -f1))"

# ---- install ---------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/$(BIN)
	for l in $(LINKS); do ln -sf $(BIN) $(DESTDIR)$(BINDIR)/$$l; done
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
ifeq ($(HAVE_NBDKIT)$(SANITIZE),1)
	install -d $(DESTDIR)$(NBDKIT_PLUGINDIR)
	install -m 755 $(NBD_PLUGIN) $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-imgbk-plugin.so
else
	@echo "make install: nbdkit-plugin-dev is not installed: no nbdkit plugin installed"
endif

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/$(BIN) $(addprefix $(DESTDIR)$(BINDIR)/,$(LINKS))
	$(if $(NBDKIT_PLUGINDIR),rm -f $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-imgbk-plugin.so)
	for m in man/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$$(basename $$m); done

clean:
	rm -rf build build-san build-tsan $(BIN) $(LINKS)

# ---- fuzzing (libFuzzer, clang) ---------------------------------------------
# make fuzz        build test/fuzz/fuzz_*.c into build-fuzz/ and run each for
#                  FUZZ_SECONDS (default 60) with the fixed seed FUZZ_SEED
# make fuzz-smoke  the same, 30 s each (CI)
# Corpora: build-fuzz/corpus/<harness>/ (generated by test/fuzz/mkcorpus.sh, not
# committed) + test/fuzz/seeds/<harness>/ + test/fuzz/regress/<harness>/.
# A crash leaves its input in build-fuzz/artifacts/<harness>/ and fails the target.
FUZZ_CC      ?= clang
FUZZ_O       := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SEED    ?= 20240601
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -g -O1 $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -DSTREAM_POISON $(FUZZ_SAN)
FUZZ_SRC     := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:test/fuzz/%.c=$(FUZZ_O)/%)
FUZZ_LIBOBJ  := $(LIB_SRC:%.c=$(FUZZ_O)/obj/%.o)

$(FUZZ_O)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_O)/libimgbk-fuzz.a: $(FUZZ_LIBOBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(FUZZ_O)/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz_util.h test/unit/helper_memsrc.c $(FUZZ_O)/libimgbk-fuzz.a $(HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itest/unit -o $@ $< test/unit/helper_memsrc.c \
		$(FUZZ_O)/libimgbk-fuzz.a $(PKG_LIBS) -lpthread

.PHONY: fuzz fuzz-smoke fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@sh test/fuzz/mkcorpus.sh $(FUZZ_O)
	@set -e; for b in $(FUZZ_BIN); do sh test/fuzz/run.sh $$b $(FUZZ_SECONDS) $(FUZZ_SEED); done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=30

.PHONY: clean-fuzz
clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_O)

# ---- the corruption matrix (test/integration/corrupt.sh) --------------------
# Runs against a sanitizer build of imgbk (build-san/imgbk, made here when
# this is not a SANITIZE=1 build), never the ./imgbk a user runs.
.PHONY: corrupt
corrupt: $(BIN)
ifeq ($(SANITIZE),1)
	IMGBK=$(CURDIR)/$(BIN) IMGBK_LIB=$(CURDIR)/$(LIB) sh test/integration/corrupt.sh
else
	$(MAKE) SANITIZE=1 build-san/imgbk build-san/libimgbk.a
	IMGBK=$(CURDIR)/build-san/imgbk IMGBK_LIB=$(CURDIR)/build-san/libimgbk.a sh test/integration/corrupt.sh
endif

#!/bin/sh
# test/integration/corrupt.sh - the corruption matrix: hundreds of damaged
# variants of real images (bit flips in every partclone v2 header byte,
# sampled bitmap/checksum/data bytes, truncations, garbage files, each codec's
# stream flipped and cut, split sets with a missing, swapped or foreign piece,
# stale/truncated/tampered index files, partimage volumes flipped and cut),
# each run through `imgbk info`,
# `imgbk verify` and `imgbk restore IMG out.raw` under `timeout 20`.
#
#   IMGBK=/abs/imgbk sh test/integration/corrupt.sh     (make corrupt)
#
# Every command must: exit 0, 1, 2 or 3 (no crash, no timeout); print no
# sanitizer report; on failure print a line "imgbk: ..." naming the file.
# "Never wrong bytes reported as good": when the damage is detectable (the
# base image has header, bitmap and data checksums, or the case is a
# truncation or a split-set fault) verify and restore may exit 0 only if the
# restored bytes equal the good restore, and verify 0 implies restore 0.
# For formats whose data has no checksum (partclone 0001's first-byte CRC,
# ntfsclone) a data flip cannot be seen: those cases check the first rules
# only, and count how often the damage passed unnoticed.
#
# Output: "ok N - ..." / "not ok N - ..." (with the failing command's
# stderr), then "N passed, M failed". Exit 1 if any case failed.
# Environment: IMGBK; IMGBK_LIB (libimgbk.a for the index driver; the index
# class is skipped without it); CORRUPT_JOBS (default 2); TMPDIR; IMGBK_KEEP=1;
# CORRUPT_RUN: a build of test/drivers/corrupt_run (make check's sanitizer
# pass: build-san/test/corrupt_run): the cases call the applets inside that
# one process (same argv, same rules, LeakSanitizer after every command)
# instead of starting IMGBK three times per case. Without it every case runs
# IMGBK itself, the binary users get (make check's other pass).
. "$(dirname "$0")/lib.sh"   # the cases of the matrix are counted here, not by tc
ROOT=$(cd "$HERE/../.." && pwd)
DATA=${IMGBK_TEST_DATA:-$ROOT/test/data}
JOBS=${CORRUPT_JOBS:-2}
SANRE='AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|MemorySanitizer'
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# ---- setup ------------------------------------------------------------------
C=$T/cases    # one folder per case: the damaged image
RES=$T/res    # one folder per case: what the run left (status, case.log, NAME.err)
B=$T/base
R=$T/ref
mkdir -p "$C" "$RES" "$B" "$R"
LIST=$T/list  # ID STRICT REF DESC IMG, tab-separated, one case a line
PLAN=$T/plan  # the flips and cuts of mut_flip / mut_trunc, made at once by make_planned
: >"$LIST"
: >"$PLAN"
NCASE=0
SKIPS=""

echo "# imgbk: $IMGBK; temp: $T"
if [ ! -x "$IMGBK" ]; then
	echo "not ok 1 - $IMGBK is missing or not executable"
	echo "0 passed, 1 failed"
	exit 1
fi
if nm "$IMGBK" 2>/dev/null | grep -q __asan_init || ldd "$IMGBK" 2>/dev/null | grep -q libasan; then
	echo "# imgbk is built with ASan/UBSan"
else
	echo "# NOTE: imgbk is not built with sanitizers (make corrupt uses build-san/imgbk)"
fi

# newcase STRICT BASE DESC: make a case folder $CASE (no process started:
# the matrix has over a thousand cases)
newcase() {
	NCASE=$((NCASE + 1))
	printf -v CASE '%s/%04d' "$C" "$NCASE"
	CASE_META=$1$'\t'$2$'\t'$3
	[ "${4:-}" = planned ] || mkdir -p "$CASE"
}
# addcase IMGNAME: register the case made in $CASE (image at $CASE/IMGNAME)
addcase() {
	local strict base desc
	IFS=$'\t' read -r strict base desc <<<"$CASE_META"
	printf '%s\t%s\t%s\t%s\t%s\n' "$NCASE" "$strict" "$R/$base.raw" "$desc" "$CASE/$1" >>"$LIST"
}
# flip FILE OFFSET MASK: xor one byte
flip() {
	local f=$1 off=$2 mask=$3 b
	b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	[ -n "$b" ] || return 1
	printf "\\$(printf '%03o' $(((b ^ mask) & 255)))" |
		dd of="$f" bs=1 seek="$off" count=1 conv=notrunc status=none
}
# mut_flip STRICT BASE SRC OFF MASK DESC [NAME]: a copy of SRC with one byte
# xor MASK (planned: make_planned writes it; no case if OFF is past the end)
mut_flip() {
	local name=${7:-img.pc}
	newcase "$1" "$2" "$6" planned
	printf 'flip\t%s\t%s\t%s\t%s\n' "$3" "$4" "$(($5))" "$CASE/$name" >>"$PLAN"
	addcase "$name"
}
# mut_trunc STRICT BASE SRC LEN DESC [NAME]: the first LEN bytes of SRC (planned)
mut_trunc() {
	local name=${6:-img.pc}
	newcase "$1" "$2" "$5" planned
	printf 'trunc\t%s\t%s\t%s\n' "$3" "$4" "$CASE/$name" >>"$PLAN"
	addcase "$name"
}
# make_planned: write every planned image in one process; a flip past the
# end of its source makes no case (its line leaves the list)
make_planned() {
	python3 - "$PLAN" "$LIST" <<'EOF'
import os, sys
plan, lst = sys.argv[1], sys.argv[2]
data, dropped = {}, set()
for line in open(plan, encoding='utf-8', errors='surrogateescape'):
    f = line.rstrip('\n').split('\t')
    src, dest = f[1], f[-1]
    if src not in data:
        with open(src, 'rb') as h:
            data[src] = h.read()
    b = data[src]
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if f[0] == 'flip':
        off, mask = int(f[2]), int(f[3])
        if not 0 <= off < len(b):
            dropped.add(dest)
            continue
        out = [b[:off], bytes([(b[off] ^ mask) & 255]), b[off + 1:]]
    else:
        out = [b[:max(int(f[2]), 0)]]
    with open(dest, 'wb') as h:
        for part in out:
            h.write(part)
lines = open(lst, encoding='utf-8', errors='surrogateescape').readlines()
with open(lst, 'w', encoding='utf-8', errors='surrogateescape') as h:
    h.writelines(x for x in lines if x.rstrip('\n').split('\t')[-1] not in dropped)
EOF
}
size_of() { stat -c %s "$1"; }
# a deterministic list of K offsets in [LO, HI)
offsets() { # LO HI K SEED
	awk -v lo="$1" -v hi="$2" -v k="$3" -v s="$4" 'BEGIN { if (hi <= lo) exit;
		x = s; for (i = 0; i < k; i++) { x = (x * 1103515245 + 12345) % 2147483648;
		print lo + x % (hi - lo) } }'
}

# --- base images -------------------------------------------------------------
# pc2: a small ext4 imaged by Debian's partclone (CRC32, BIT bitmap)
mk_pc2() {
	command -v partclone.extfs >/dev/null && command -v mkfs.ext4 >/dev/null || return 1
	local s=$T/src
	mkdir -p "$s/d"
	seq 1 30000 >"$s/t.txt"
	awk 'BEGIN { x = 7; for (i = 0; i < 60000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%c", 33 + x % 90 } }' >"$s/d/r.bin"
	truncate -s 6M "$T/fs.raw"
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 1024 -U 0b5e7c1a-1111-4222-8333-444455556666 \
		-E hash_seed=0b5e7c1a-9999-4aaa-8bbb-ccccddddeeee -d "$s" "$T/fs.raw" >/dev/null 2>&1 || return 1
	partclone.extfs -c -s "$T/fs.raw" -O "$B/pc2.pc" -L "$T/pc.log" >/dev/null 2>&1 && [ -s "$B/pc2.pc" ]
}
if mk_pc2; then
	echo "# base pc2: ext4 imaged with $(partclone.extfs -v 2>&1 | head -n1 | tr -s ' ' | cut -c1-40)"
else
	SKIPS="$SKIPS pc2"
	echo "# NOTE: cannot make an ext4 partclone image here (partclone/e2fsprogs missing); using fixtures only"
fi
cp "$DATA/xxh64_ext2_1k_k1.pc" "$B/xxh64.pc" 2>/dev/null
cp "$DATA/v0001_minix2.pc" "$B/v1.pc" 2>/dev/null
cp "$DATA/xxh128_fat16_default.pc" "$B/xxh128.pc" 2>/dev/null
[ -f "$DATA/ntfsclone_partial.nc.gz" ] && gzip -dc "$DATA/ntfsclone_partial.nc.gz" >"$B/nc.nc"
cp "$DATA/partimage_ext2_stdout.pimg" "$B/pi.pimg" 2>/dev/null
cp "$DATA/partimage_ext2_z1.pimg.000" "$B/piz.pimg.000" 2>/dev/null
chmod u+w "$B"/* 2>/dev/null
for f in "$B"/*; do
	n=$(basename "$f")
	n=${n%%.*}
	if ! (cd "$T" && timeout 60 "$IMGBK" restore -q "$f" "$R/$n.raw") >/dev/null 2>"$T/ref.err" ||
		! timeout 60 "$IMGBK" verify "$f" >/dev/null 2>&1; then
		echo "not ok 1 - good restore/verify of base $n fails: $(head -n1 "$T/ref.err")"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

# --- partclone v2 (checksummed): every header byte, bitmap, checksums, data ---
gen_pc2() { # BASE: a v2 image with header CRC, bitmap CRC and data checksums
	local base=$1 src=$B/$1.pc sz i off bm_end k
	[ -f "$src" ] || return 0
	sz=$(size_of "$src")
	# bitmap: BIT bitmap of total_blocks bits after the 110-byte header, then 4 bytes CRC
	bm_end=$((110 + ($("$IMGBK" info --json "$src" 2>/dev/null | grep -o '"total_blocks"[^,}]*' | grep -o '[0-9]*$' || echo 0) + 7) / 8))
	[ "$bm_end" -gt 110 ] || bm_end=$((110 + 1024))
	for i in $(seq 0 109); do
		mut_flip 1 "$base" "$src" "$i" $((1 << (i % 8))) "$base: flip header byte $i"
	done
	k=0
	for off in $(offsets 110 "$bm_end" 24 11) $bm_end $((bm_end + 1)) $((bm_end + 2)) $((bm_end + 3)); do
		k=$((k + 1))
		mut_flip 1 "$base" "$src" "$off" $((1 << (k % 8))) "$base: flip bitmap/bitmap-CRC byte $off"
	done
	for off in $(offsets $((bm_end + 4)) "$sz" 40 23) $((sz - 1)) $((sz - 2)) $((sz - 4)); do
		mut_flip 1 "$base" "$src" "$off" 0x10 "$base: flip data/checksum byte $off"
	done
	for off in 0 1 15 16 32 64 109 110 111 $((bm_end - 1)) $bm_end $((bm_end + 3)) $((bm_end + 4)) \
		$((bm_end + 5)) $(offsets $((bm_end + 5)) "$sz" 24 31) $((sz - 4)) $((sz - 1)); do
		mut_trunc 1 "$base" "$src" "$off" "$base: truncated at byte $off of $sz"
	done
	newcase 1 "$base" "$base: 1 garbage byte appended"
	{ cat "$src"; printf 'X'; } >"$CASE/img.pc" && addcase img.pc
	newcase 1 "$base" "$base: 4 KiB of garbage appended"
	{ cat "$src"; head -c 4096 "$src"; } >"$CASE/img.pc" && addcase img.pc
	newcase 1 "$base" "$base: two blocks swapped in the data"
	cp "$src" "$CASE/img.pc" &&
		dd if="$src" of="$CASE/img.pc" bs=1 skip=$((bm_end + 4)) seek=$((bm_end + 4 + 2048)) count=1024 conv=notrunc status=none &&
		addcase img.pc
}
gen_pc2 pc2
gen_pc2 xxh64
# xxh128: sampled header + data flips only
if [ -f "$B/xxh128.pc" ]; then
	s=$B/xxh128.pc
	for i in $(offsets 0 110 20 5); do mut_flip 1 xxh128 "$s" "$i" 4 "xxh128: flip header byte $i"; done
	for off in $(offsets 2000 "$(size_of "$s")" 15 7); do mut_flip 1 xxh128 "$s" "$off" 1 "xxh128: flip data byte $off"; done
fi

# --- partclone 0001 and ntfsclone: no data checksum that covers every byte ---
if [ -f "$B/v1.pc" ]; then
	s=$B/v1.pc
	sz=$(size_of "$s")
	for i in $(seq 0 2 120); do mut_flip 0 v1 "$s" "$i" 1 "v1: flip header byte $i"; done
	for off in $(offsets 5192 "$sz" 20 3); do mut_flip 0 v1 "$s" "$off" 2 "v1: flip data byte $off"; done
	for off in 0 10 36 5000 5192 $(offsets 5193 "$sz" 12 9); do
		mut_trunc 1 v1 "$s" "$off" "v1: truncated at byte $off of $sz"
	done
fi
if [ -f "$B/nc.nc" ]; then
	s=$B/nc.nc
	sz=$(size_of "$s")
	for i in $(seq 0 55); do mut_flip 0 nc "$s" "$i" $((1 << (i % 8))) "ntfsclone: flip header byte $i" img.nc; done
	for off in $(offsets 56 "$sz" 25 13); do mut_flip 0 nc "$s" "$off" 0x40 "ntfsclone: flip byte $off" img.nc; done
	for off in 0 8 16 55 56 57 $(offsets 58 "$sz" 14 17) $((sz - 1)); do
		mut_trunc 1 nc "$s" "$off" "ntfsclone: truncated at byte $off of $sz" img.nc
	done
fi
# partimage: headers carry byte sums and data CRC32 every 16 KiB, but not
# every header byte is checked by partimage itself: flips are not strict.
if [ -f "$B/pi.pimg" ]; then
	s=$B/pi.pimg
	sz=$(size_of "$s")
	for off in $(offsets 0 12288 40 41); do mut_flip 0 pi "$s" "$off" 0x02 "partimage: flip header byte $off" img.pimg; done
	for off in $(offsets 12288 "$sz" 20 43); do mut_flip 0 pi "$s" "$off" 0x20 "partimage: flip byte $off" img.pimg; done
	for off in 0 16 512 4096 $(offsets 4097 "$sz" 10 47) $((sz - 1)); do
		mut_trunc 1 pi "$s" "$off" "partimage: truncated at byte $off of $sz" img.pimg
	done
else
	SKIPS="$SKIPS partimage"
fi
if [ -f "$B/piz.pimg.000" ]; then
	s=$B/piz.pimg.000
	sz=$(size_of "$s")
	for off in 0 3 9 $(offsets 10 "$sz" 10 53) $((sz - 5)); do
		mut_flip 1 piz "$s" "$off" 0x04 "partimage gzip volume: flip compressed byte $off" img.pimg.000
	done
	for off in 10 $(offsets 11 "$sz" 8 59) $((sz - 1)); do
		mut_trunc 1 piz "$s" "$off" "partimage gzip volume: truncated at byte $off of $sz" img.pimg.000
	done
fi

# --- not images at all ---------------------------------------------------------
newcase 1 pc2 "zero-length file"
: >"$CASE/img.pc" && addcase img.pc
for n in 1 15 16 64 110 4096 100000; do
	newcase 1 pc2 "random file of $n bytes"
	awk -v n=$n 'BEGIN { x = n; for (i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%c", x % 256 } }' >"$CASE/img.pc"
	addcase img.pc
done
for n in 16 40 110 200; do
	newcase 1 pc2 "partclone magic then $n random bytes"
	{ printf 'partclone-image\0000.3.23\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'; head -c $n "$B/v1.pc" | tail -c $((n / 2)); } >"$CASE/img.pc"
	addcase img.pc
done

# --- codecs: flips and truncations of each compressed stream --------------------
CB=pc2
[ -f "$B/pc2.pc" ] || CB=xxh64
cs=$B/$CB.pc
for codec in gzip bzip2 zstd xz lzma lz4; do
	case $codec in
	gzip) ext=gz cmd="gzip -nc" ;;
	bzip2) ext=bz2 cmd="bzip2 -c" ;;
	zstd) ext=zst cmd="zstd -q -c" ;;
	xz) ext=xz cmd="xz -c" ;;
	lzma) ext=lzma cmd="xz --format=lzma -c" ;;
	lz4) ext=lz4 cmd="lz4 -q -c" ;;
	esac
	if ! command -v "${cmd%% *}" >/dev/null; then
		SKIPS="$SKIPS $codec"
		continue
	fi
	z=$T/base.$ext
	$cmd <"$cs" >"$z" || continue
	zs=$(size_of "$z")
	newcase 1 "$CB" "$codec: intact" && cp "$z" "$CASE/img.pc.$ext" && addcase "img.pc.$ext"
	for off in 0 1 2 3 4 5 6 7 8 9 10 12 16 $(offsets 20 "$zs" 14 $zs) $((zs - 1)) $((zs - 4)) $((zs - 8)); do
		[ "$off" -lt "$zs" ] || continue
		mut_flip 1 "$CB" "$z" "$off" 0x08 "$codec: flip compressed byte $off of $zs" "img.pc.$ext"
	done
	for off in 1 4 10 $(offsets 11 "$zs" 10 $((zs + 1))) $((zs - 1)) $((zs - 4)); do
		mut_trunc 1 "$CB" "$z" "$off" "$codec: compressed stream truncated at byte $off of $zs" "img.pc.$ext"
	done
	newcase 1 "$CB" "$codec: garbage after the compressed stream"
	{ cat "$z"; printf 'garbage'; } >"$CASE/img.pc.$ext" && addcase "img.pc.$ext"
done

# --- split sets ---------------------------------------------------------------
mk_split() { # SRC PIECEBYTES: pieces img.pc.aa ... in $CASE
	(cd "$CASE" && split -b "$2" "$1" img.pc.)
}
ss=$B/$CB.pc
ps=$(($(size_of "$ss") / 5 + 1))
newcase 1 "$CB" "split: intact set of 5" && mk_split "$ss" $ps && addcase img.pc.aa
newcase 1 "$CB" "split: middle piece missing" && mk_split "$ss" $ps && rm "$CASE/img.pc.ac" && addcase img.pc.aa
newcase 1 "$CB" "split: second piece missing" && mk_split "$ss" $ps && rm "$CASE/img.pc.ab" && addcase img.pc.aa
newcase 1 "$CB" "split: last piece missing" && mk_split "$ss" $ps && rm "$CASE/img.pc.ae" && addcase img.pc.aa
newcase 1 "$CB" "split: pieces ab and ac swapped" && mk_split "$ss" $ps &&
	mv "$CASE/img.pc.ab" "$CASE/x" && mv "$CASE/img.pc.ac" "$CASE/img.pc.ab" && mv "$CASE/x" "$CASE/img.pc.ac" && addcase img.pc.aa
newcase 1 "$CB" "split: piece ac from another image" && mk_split "$ss" $ps &&
	head -c "$(size_of "$CASE/img.pc.ac")" "$B/xxh64.pc" >"$CASE/img.pc.ac" && addcase img.pc.aa
newcase 1 "$CB" "split: stray piece after a gap (ag)" && mk_split "$ss" $ps &&
	printf 'stray' >"$CASE/img.pc.ag" && addcase img.pc.aa
newcase 1 "$CB" "split: a piece emptied" && mk_split "$ss" $ps && : >"$CASE/img.pc.ad" && addcase img.pc.aa
newcase 1 "$CB" "split: a piece cut short" && mk_split "$ss" $ps &&
	truncate -s 100 "$CASE/img.pc.ab" && addcase img.pc.aa
newcase 1 "$CB" "split: set opened by its prefix, middle piece missing" && mk_split "$ss" $ps &&
	rm "$CASE/img.pc.ad" && addcase img.pc
if command -v gzip >/dev/null; then
	gzip -nc "$ss" >"$T/s.gz"
	gps=$(($(size_of "$T/s.gz") / 4 + 1))
	newcase 1 "$CB" "split gzip: intact" && mk_split "$T/s.gz" $gps && addcase img.pc.aa
	newcase 1 "$CB" "split gzip: piece ab missing" && mk_split "$T/s.gz" $gps && rm "$CASE/img.pc.ab" && addcase img.pc.aa
	newcase 1 "$CB" "split gzip: pieces ab, ac swapped" && mk_split "$T/s.gz" $gps &&
		mv "$CASE/img.pc.ab" "$CASE/x" && mv "$CASE/img.pc.ac" "$CASE/img.pc.ab" && mv "$CASE/x" "$CASE/img.pc.ac" && addcase img.pc.aa
	newcase 1 "$CB" "split gzip: last piece missing" && mk_split "$T/s.gz" $gps && rm "$CASE/img.pc.ad" && addcase img.pc.aa
fi

# ---- run the cases ---------------------------------------------------------------
# run_case ID STRICT REF DESC IMG: `imgbk info`, `imgbk verify`, `imgbk restore
# IMG out.raw` (each in IMG's folder, under timeout 20) and the rules of the
# header; leaves status ("ok" / "not ok"), case.log and undetected in
# $RES/ID. Runs in a worker shell: no process but timeout, imgbk, cmp, rm.
run_case() {
	local id=$1 strict=$2 ref=$3 img=$5 r=$RES/$1 vrc rrc same=0
	bad=0
	: >"$r/case.log"
	cd "${img%/*}" || return
	runc info "$r" "${img##*/}" "$IMGBK" info "$img"
	runc verify "$r" "${img##*/}" "$IMGBK" verify "$img"
	vrc=$rc
	runc restore "$r" "${img##*/}" "$IMGBK" restore -q "$img" "$r/out.raw"
	rrc=$rc
	[ $rrc -eq 0 ] && cmp -s "$r/out.raw" "$ref" && same=1
	if [ "$strict" = 1 ]; then
		if [ $rrc -eq 0 ] && [ $same -eq 0 ]; then
			echo "restore: exit 0 but the restored bytes differ from the good restore" >>"$r/case.log"
			bad=1
		fi
		if [ $vrc -eq 0 ] && { [ $rrc -ne 0 ] || [ $same -eq 0 ]; }; then
			echo "verify: exit 0 but restore exits $rrc (bytes identical: $same)" >>"$r/case.log"
			bad=1
		fi
	elif [ $rrc -eq 0 ] && [ $same -eq 0 ]; then
		echo "undetected" >"$r/undetected"
	fi
	[ -e "$r/out.raw" ] && rm -f "$r/out.raw"
	[ $bad -eq 0 ] && echo "ok" >"$r/status" || echo "not ok" >"$r/status"
}
# runc NAME RESULTS BASE CMD...: one command of a case; sets rc, sets bad
# (and notes why in RESULTS/case.log) if a rule is broken
runc() {
	local name=$1 r=$2 base=$3 err="" was=$bad
	shift 3
	timeout -k 5 20 "$@" >"$r/$name.out" 2>"$r/$name.err" </dev/null
	rc=$?
	[ -s "$r/$name.err" ] && IFS= read -r -d '' err <"$r/$name.err"
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "$name: TIMEOUT (exit $rc): $*" >>"$r/case.log"
		bad=1
	elif [ $rc -ge 4 ]; then
		echo "$name: exit $rc (crash or undocumented code): $*" >>"$r/case.log"
		bad=1
	fi
	if [[ $err =~ $SANRE ]]; then
		echo "$name: sanitizer report: $*" >>"$r/case.log"
		bad=1
	fi
	if [ $rc -ne 0 ] && [ $rc -le 3 ] && [[ $err != *"$base"* ]]; then
		echo "$name: exit $rc without an error line naming $base: $*" >>"$r/case.log"
		bad=1
	fi
	if [ $bad -ne $was ]; then
		head -n 40 "$r/$name.err" | sed 's/^/    stderr: /' >>"$r/case.log"
	fi
}
# run_worker K N: the cases on lines K, K+N, K+2N, ... of the list
run_worker() {
	local n=-1 id strict ref desc img
	while IFS=$'\t' read -r id strict ref desc img; do
		n=$((n + 1))
		[ $((n % $2)) -eq "$1" ] && run_case "$id" "$strict" "$ref" "$desc" "$img"
	done <"$LIST"
}
# run_in_process K N: the same cases through test/drivers/corrupt_run (the
# applets called inside one process); when a crash, a sanitizer report or
# the 20 s alarm stops it, that case fails with its stderr and the driver
# goes on after it
run_in_process() {
	local rc id cmd
	while :; do
		"$CORRUPT_RUN" "$LIST" "$RES" "$1" "$2" >>"$T/driver.$1.log" 2>&1 </dev/null
		rc=$?
		if [ ! -s "$RES/running.$1" ]; then
			[ $rc -eq 0 ] || echo "# corrupt_run $1/$2 failed (exit $rc): $(tail -n 3 "$T/driver.$1.log")"
			return
		fi
		read -r id cmd <"$RES/running.$1"
		rm -f "$RES/running.$1"
		{
			echo "$cmd: the process stopped (exit $rc: a crash, a sanitizer report, a leak or the 20 s timeout)"
			head -n 40 "$RES/$id/$cmd.err" | sed 's/^/    stderr: /'
		} >>"$RES/$id/case.log"
		echo "not ok" >"$RES/$id/status"
	done
}

make_planned || { echo "not ok 1 - the damaged images cannot be written"; echo "0 passed, 1 failed"; exit 1; }
(cd "$RES" && cut -f1 "$LIST" | xargs mkdir -p)
if [ -n "${CORRUPT_RUN:-}" ]; then
	echo "# $NCASE cases, $JOBS at a time, the applets called in-process by $CORRUPT_RUN"
	for k in $(seq 0 $((JOBS - 1))); do run_in_process "$k" "$JOBS" & done
else
	echo "# $NCASE cases, $JOBS at a time"
	for k in $(seq 0 $((JOBS - 1))); do run_worker "$k" "$JOBS" & done
fi
wait

PASS=0 FAIL=0 UNDET=0
while IFS=$'\t' read -r id strict ref desc img; do
	st="not ok"
	[ -s "$RES/$id/status" ] && read -r st <"$RES/$id/status"
	[ -f "$RES/$id/undetected" ] && UNDET=$((UNDET + 1))
	if [ "$st" = ok ]; then
		PASS=$((PASS + 1))
		echo "ok $id - $desc"
	else
		FAIL=$((FAIL + 1))
		echo "not ok $id - $desc"
		sed 's/^/    /' "$RES/$id/case.log" 2>/dev/null | head -n 40
	fi
done <"$LIST"

# ---- index files (random access) -------------------------------------------
# `imgbk index` does not exist yet: a tiny driver reads the whole partition
# through img_random_open/img_read_at with a given index file.
N=$NCASE
idx_case() { # DESC: run the driver on $B/$IB.pc with index $IX; compare
	N=$((N + 1))
	local out=$T/idx.out rc
	timeout -k 5 20 "$T/rdidx" "$T/ix/img.pc" "$IX" >"$out" 2>"$T/idx.err"
	rc=$?
	if [ $rc -gt 3 ] || grep -qE "$SANRE" "$T/idx.err" || { [ $rc -eq 0 ] && ! cmp -s "$out" "$R/$IB.raw"; }; then
		FAIL=$((FAIL + 1))
		echo "not ok $N - index: $1 (exit $rc)"
		head -n 20 "$T/idx.err" | sed 's/^/    /'
	else
		PASS=$((PASS + 1))
		echo "ok $N - index: $1"
	fi
}
LIBA=${IMGBK_LIB:-}
if [ -z "$LIBA" ] || [ ! -f "$LIBA" ]; then
	SKIPS="$SKIPS index"
	echo "# SKIP index: no libimgbk.a given (IMGBK_LIB) and no \`imgbk index\` yet"
else
	cat >"$T/rdidx.c" <<'EOF'
/* rdidx IMAGE INDEX: the partition through img_read_at, index file INDEX. */
#include <stdio.h>
#include <stdlib.h>
#include "imgbk.h"
int main(int argc, char **argv)
{
	img_err err;
	img_image *im;
	if (argc != 3)
		return 2;
	int rc = img_open(argv[1], NULL, &im, &err);
	if (rc != IMG_OK) {
		fprintf(stderr, "imgbk: %s\n", err.msg);
		return img_exit_code(rc);
	}
	img_random_options o;
	img_random_options_init(&o);
	o.index_path = argv[2];
	int state;
	rc = img_random_open(im, &o, &state);
	if (rc != IMG_OK) {
		fprintf(stderr, "imgbk: %s\n", img_error(im)->msg);
		return img_exit_code(rc);
	}
	fprintf(stderr, "index state %d\n", state);
	static char buf[1 << 16];
	uint64_t off = 0, size = img_get_info(im)->device_size;
	while (off < size) {
		size_t got;
		rc = img_read_at(im, off, buf, sizeof buf, &got, &err);
		if (rc != IMG_OK) {
			fprintf(stderr, "imgbk: %s\n", err.msg);
			return img_exit_code(rc);
		}
		fwrite(buf, 1, got, stdout);
		off += got;
	}
	img_close(im);
	return 0;
}
EOF
	SANF=""
	nm "$LIBA" 2>/dev/null | grep -q __asan && SANF="-fsanitize=address,undefined"
	if ! ${CC:-cc} -std=gnu11 $SANF -I"$ROOT" -o "$T/rdidx" "$T/rdidx.c" "$LIBA" \
		$(pkg-config --libs zlib libzstd liblzma liblz4 libxxhash 2>/dev/null) \
		$(pkg-config --exists libisal 2>/dev/null && pkg-config --libs libisal) -lbz2 -llz -llzo2 -lpthread 2>"$T/cc.err"; then
		SKIPS="$SKIPS index"
		echo "# SKIP index: the driver does not build: $(head -n1 "$T/cc.err")"
	else
		for IB in pc2 xxh64; do
			[ -f "$B/$IB.pc" ] || continue
			rm -rf "$T/ix" && mkdir -p "$T/ix" && cp "$B/$IB.pc" "$T/ix/img.pc"
			IX=$T/ix/good.ibkx
			idx_case "$IB: build and save"
			[ -s "$IX" ] || { echo "# no index saved for $IB"; continue; }
			cp "$IX" "$T/good.ibkx"
			idx_case "$IB: load the saved index"
			isz=$(size_of "$T/good.ibkx")
			for off in 0 7 8 12 16 40 48 56 64 71 72 $(offsets 73 "$isz" 6 $isz) $((isz - 1)); do
				IX=$T/ix/t.ibkx
				cp "$T/good.ibkx" "$IX" && flip "$IX" "$off" 1
				idx_case "$IB: index byte $off flipped"
			done
			for off in 0 8 71 72 $((isz - 9)) $((isz - 1)); do
				IX=$T/ix/t.ibkx
				head -c "$off" "$T/good.ibkx" >"$IX"
				idx_case "$IB: index truncated at byte $off of $isz"
			done
			IX=$T/ix/t.ibkx
			cp "$T/good.ibkx" "$IX"
			touch -d '2001-01-01' "$T/ix/img.pc"
			idx_case "$IB: stale index (image mtime changed)"
			cp "$T/good.ibkx" "$IX"
			printf 'X' >>"$T/ix/img.pc"
			idx_case "$IB: stale index (image grew; the image is damaged now)"
			cp "$B/$IB.pc" "$T/ix/img.pc"
			cp "$T/good.ibkx" "$IX"
			idx_case "$IB: index of another copy (same bytes, other mtime)"
			head -c 200 /dev/zero >"$IX"
			idx_case "$IB: index file of zeros"
		done
	fi
fi

echo "# $UNDET damaged images restored with exit 0 and different bytes where the format has no checksum to notice it (partclone 0001 data, ntfsclone, partimage headers)"
if [ -n "$SKIPS" ]; then
	# a machine that runs everything (STRICT, lib.sh) must not skip a class
	if [ -n "$STRICT" ]; then
		FAIL=$((FAIL + 1))
		echo "not ok $((N + 1)) - classes skipped:$SKIPS, but this machine (root, /dev/fuse, loop devices) must run them"
	else
		echo "# SKIP classes:$SKIPS"
	fi
fi
echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]

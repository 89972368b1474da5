#!/bin/sh
# test/integration/run.sh - imgbk against real partclone 0.3.23 images.
#
#   IMGBK=/abs/path/imgbk sh test/integration/run.sh      (make integration)
#
# Builds small deterministic filesystems (ext4 1 KiB and 4 KiB blocks, FAT32,
# btrfs), images them with Debian's partclone, restores each image with
# partclone.restore as the reference (its exit code is ignored, bytes are
# compared: FORMATS.md 6) and checks imgbk info/verify/restore against it:
# plain, compressed, split and piped images, damaged images, restore targets.
#
# Output: "ok N - ..." / "not ok N - ..." per case (failures followed by the
# failing command and its stderr, indented), then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
#
# Matrix (partclone 0.3.23): ext4 1 KiB and ext4 4 KiB blocks each with default
# options, -a0, -a1 -k1, -a1 -k7, -a1 -k7 -K; FAT32 and btrfs with the default.
# Every image: info, info --json, verify, restore to a new file and to stdout.
# The default ext4 1 KiB image also goes through every compressor, split -b,
# stdin, the damaged-image cases and the restore-target cases (loop devices).
# ext4 and FAT32 are byte-deterministic; btrfs is not (mkfs.btrfs 6.2 cannot
# pin its device UUID, and a fixed filesystem UUID is refused as "non-unique"
# when any btrfs with it is known to the kernel, so each run takes a fresh
# one), which does not matter: imgbk is compared with
# partclone.restore of the same image, and with the source where partclone
# copies every block (ext4, FAT32; not btrfs, FORMATS.md 6).
#
# Environment: IMGBK (default: ../../imgbk), TMPDIR, IMGBK_KEEP=1 keeps the
# temp dir, IMGBK_TIMEOUT (seconds per imgbk command, default 180).

. "$(dirname "$0")/lib.sh"
PY="python3 $HERE/pcimg.py"
IM="timeout -k 5 ${IMGBK_TIMEOUT:-180} $IMGBK"

SRC=$T/src   # source tree
FS=$T/fs     # source filesystems NAME.raw
IMG=$T/img   # partclone images NAME.pc (+ compressed / split variants)
REF=$T/ref   # reference restores NAME.raw
mkdir -p "$FS" "$IMG" "$REF"

echo "# imgbk: $IMGBK; temp: $T"
# run a private copy, so that a rebuild during the run does not disturb it
if [ -x "$IMGBK" ] && cp "$IMGBK" "$T/imgbk"; then
	IM="timeout -k 5 ${IMGBK_TIMEOUT:-180} $T/imgbk"
else
	echo "# WARNING: $IMGBK is missing or not executable: every imgbk case will fail"
fi

# ---------------------------------------------------------------------------
# 1. source filesystems

UUID=0b5e7c1a-1111-4222-8333-444455556666
HSEED=0b5e7c1a-9999-4aaa-8bbb-ccccddddeeee

setup_src() {
	$PY gen "$SRC" && [ -s "$SRC/random/r1.bin" ]
}

mk_ext4() { # NAME BLOCKSIZE SIZE
	local out=$FS/$1.raw
	need "$SRC/empty" || return 1
	rm -f "$out"
	truncate -s "$3" "$out" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b "$2" -U "$UUID" \
			-E hash_seed=$HSEED -L imgbk-$1 -d "$SRC" "$out" || { rm -f "$out"; return 1; }
	# mkfs -d copies each source inode's ctime and atime (real times): pin them
	(cd "$SRC" && find . -mindepth 1) | sed 's|^\.||' |
		while read -r p; do
			echo "sif \"$p\" ctime @1700000000"
			echo "sif \"$p\" atime @1700000000"
		done >"$W/sif"
	run 0 env E2FSPROGS_FAKE_TIME=1700000000 debugfs -w -f "$W/sif" "$out" &&
		run 0 e2fsck -fn "$out" || { rm -f "$out"; return 1; }
}

mk_fat() {
	local out=$FS/fat.raw
	need "$SRC/empty" || return 1
	command -v mkfs.fat >/dev/null && command -v mcopy >/dev/null || skip "mkfs.fat or mcopy not installed"
	rm -f "$out"
	truncate -s 48M "$out" &&
		run 0 mkfs.fat -F 32 -i 1b5e7c1a --invariant -n IMGBKFAT "$out" &&
		run 0 env MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=1700000000 mcopy -m -s -i "$out" \
			"$SRC"/deep "$SRC"/empty "$SRC"/random "$SRC"/text "$SRC"/zeros ::/ &&
		run 0 fsck.fat -n "$out" || { rm -f "$out"; return 1; }
}

mk_btrfs() {
	local out=$FS/btr.raw
	need "$SRC/empty" || return 1
	command -v mkfs.btrfs >/dev/null || skip "mkfs.btrfs not installed"
	rm -f "$out"
	truncate -s 128M "$out" &&
		run 0 mkfs.btrfs -q -f -U "$(cat /proc/sys/kernel/random/uuid)" -L imgbk-btr --rootdir "$SRC" "$out" ||
		{ rm -f "$out"; return 1; }
}

tc "setup: deterministic source tree (random, text, zero runs, nested dirs)" setup_src
tc "setup: ext4 1 KiB blocks, 48 MiB, mkfs.ext4 -d" mk_ext4 e1k 1024 48M
tc "setup: ext4 4 KiB blocks, 64 MiB, mkfs.ext4 -d" mk_ext4 e4k 4096 64M
tc "setup: FAT32, 48 MiB, mkfs.fat + mcopy" mk_fat
tc "setup: btrfs, 128 MiB, mkfs.btrfs --rootdir" mk_btrfs

# ---------------------------------------------------------------------------
# 2. partclone images and 3. reference restores
#
# NAME  SOURCE-FS  partclone-module  options
IMAGES=(
	"e1k      e1k extfs"
	"e1k_a0   e1k extfs -a0"
	"e1k_k1   e1k extfs -a1 -k1"
	"e1k_k7   e1k extfs -a1 -k7"
	"e1k_k7K  e1k extfs -a1 -k7 -K"
	"e4k      e4k extfs"
	"e4k_a0   e4k extfs -a0"
	"e4k_k1   e4k extfs -a1 -k1"
	"e4k_k7   e4k extfs -a1 -k7"
	"e4k_k7K  e4k extfs -a1 -k7 -K"
	"fat      fat fat32"
	"btr      btr btrfs"
)

pc_tool() {
	local m
	case $1 in
	extfs) set -- partclone.extfs partclone.ext4 ;;
	fat32) set -- partclone.fat32 partclone.vfat partclone.fat ;;
	*) set -- "partclone.$1" ;;
	esac
	for m; do
		command -v "$m" >/dev/null && { echo "$m"; return 0; }
	done
	return 1
}

mk_image() { # NAME SRCFS MODULE OPTS...
	local name=$1 src=$FS/$2.raw mod=$3 tool
	shift 3
	need "$src" || return 1
	tool=$(pc_tool "$mod") || skip "partclone.$mod not installed"
	rm -f "$IMG/$name.pc"
	run 0 "$tool" -c -s "$src" -O "$IMG/$name.pc" -L "$W/log" "$@" ||
		{ cat "$W/log"; rm -f "$IMG/$name.pc"; return 1; }
	$PY hdr "$IMG/$name.pc" >"$IMG/$name.hdr" || { rm -f "$IMG/$name.pc"; return 1; }
}

# partclone.restore into a zero file of device_size; exit code ignored
# (0.3.23 aborts with 134 on 1 KiB -k7 images after a correct restore).
# For ext4/FAT the result must equal the source; btrfs leftover tree blocks
# are not imaged, so there the reference differs from the source by design.
mk_ref() { # NAME SRCFS
	local name=$1 src=$FS/$2.raw out=$REF/$1.raw
	need "$IMG/$name.pc" || return 1
	rm -f "$out"
	truncate -s "$(stat -c %s "$src")" "$out"
	partclone.restore -s "$IMG/$name.pc" -O "$out" -L "$W/log" >"$W/out" 2>&1
	echo "partclone.restore exit $?"
	[ "$(stat -c %s "$out")" = "$(stat -c %s "$src")" ] || { rm -f "$out"; fail "reference has the wrong size"; }
	if [ "$2" != btr ]; then
		same "$out" "$src" || { rm -f "$out"; return 1; }
	fi
}

for spec in "${IMAGES[@]}"; do
	set -- $spec
	name=$1 src=$2
	opts="${*:4}"
	tc "setup: partclone.$3 -c ${opts:-(default options)} -> $name.pc" mk_image "$@"
	if [ -e "$IMG/$name.hdr" ]; then
		. "$IMG/$name.hdr"
		echo "#   $name.pc: $FSNAME bs $BS total $TOTAL used $POP (offset 68: $USED68)" \
			"csum 0x$(printf %x "$CSMODE") bpc $BPC reseed $RESEED groups $NGROUPS size $(stat -c %s "$IMG/$name.pc")"
	fi
	case $src in
	btr) what="reference: partclone.restore $name.pc (btrfs: compared with imgbk only, not with the source: leftover tree blocks are not imaged, FORMATS.md 6)" ;;
	*) what="reference: partclone.restore $name.pc equals the source fs (exit code ignored)" ;;
	esac
	tc "$what" mk_ref "$name" "$src"
done

# ---------------------------------------------------------------------------
# per-image imgbk checks: info, info --json, verify, restore to file and stdout

c_info() { # NAME
	need "$IMG/$1.pc" || return 1
	run 0 $IM info "$IMG/$1.pc" || return 1
	head -n 1 "$W/out" | grep -q '^Partclone Header' ||
		fail "first line of imgbk info is not 'Partclone Header...': $(head -n 1 "$W/out")"
}

c_info_json() { # NAME
	local pinfo
	need "$IMG/$1.pc" || return 1
	. "$IMG/$1.hdr"
	# the reference: partclone.info 0.3.23 prints the fs counter at offset 68
	partclone.info -s "$IMG/$1.pc" >"$W/pinfo" 2>&1
	pinfo=$(sed -n 's/.*Space in use:.*= *\([0-9]*\) Blocks.*/\1/p' "$W/pinfo")
	[ "$pinfo" = "$USED68" ] || {
		cat "$W/pinfo"
		fail "reference check: partclone.info says used=$pinfo, header offset 68 says $USED68"
	} || return 1
	run 0 $IM info --json "$IMG/$1.pc" || return 1
	$PY checkjson "$IMG/$1.pc" <"$W/out"
}

c_verify() { # IMAGEFILE
	need "$1" || return 1
	run 0 $IM verify "$1" && out_has ': OK'
}

c_restore_file() { # NAME SRCFS
	local ref=$REF/$1.raw
	need "$IMG/$1.pc" "$ref" || return 1
	run 0 $IM restore "$IMG/$1.pc" "$W/out.raw" || return 1
	same "$W/out.raw" "$ref" || return 1
	if [ "$2" != btr ]; then
		same "$W/out.raw" "$FS/$2.raw" || return 1
	fi
	sparse "$W/out.raw"
}

c_restore_stdout() { # IMAGEFILE REF
	local rc
	need "$1" "$2" || return 1
	$IM restore "$1" - 2>"$W/err" </dev/null | cmp - "$2"
	rc=("${PIPESTATUS[@]}")
	[ "${rc[0]}" = 0 ] || { echo "imgbk restore $1 - exited ${rc[0]}; stderr:"; show "$W/err"; return 1; }
	[ "${rc[1]}" = 0 ] || fail "stdout restore of $1 differs from the reference $2"
}

for spec in "${IMAGES[@]}"; do
	set -- $spec
	name=$1 src=$2
	case $src in
	btr) note=" (vs reference only, see above)" ;;
	*) note=" and the source" ;;
	esac
	tc "$name: imgbk info starts with 'Partclone Header'" c_info "$name"
	tc "$name: imgbk info --json parses; sizes match the header, used_blocks = bitmap count" c_info_json "$name"
	tc "$name: imgbk verify exits 0 with 'OK'" c_verify "$IMG/$name.pc"
	tc "$name: imgbk restore to a new file equals the reference$note, sparse" c_restore_file "$name" "$src"
	tc "$name: imgbk restore to stdout equals the reference (device_size bytes)" c_restore_stdout "$IMG/$name.pc" "$REF/$name.raw"
done

# ---------------------------------------------------------------------------
# 4. compression matrix, split sets, stdin (on the default ext4 1 KiB image)

BASE=e1k
B=$IMG/$BASE.pc
BREF=$REF/$BASE.raw

# label | file suffix | compressor command (reads stdin, writes stdout)
CODECS=(
	"gzip|gz|gzip -c"
	"pigz|pigz.gz|pigz -c -p 2"
	"gzip multi-member (pigz + gzip)|mm.gz|MULTI"
	"bzip2|bz2|bzip2 -c"
	"pbzip2|pbzip2.bz2|pbzip2 -c -p2"
	"lbzip2|lbzip2.bz2|lbzip2 -c -n 2"
	"zstd|zst|zstd -q -c"
	"zstd -T2|t2.zst|zstd -q -T2 -c"
	"pzstd (skippable frame first)|pz.zst|pzstd -q -c -p 2"
	"xz|xz|xz -c"
	"xz -T2|t2.xz|xz -T2 -c"
	"xz -T2 --block-size=1MiB|mb.xz|xz -T2 --block-size=1MiB -c"
	"lzma|lzma|lzma -c"
	"lz4|lz4|lz4 -q -c"
	"lz4 -l (legacy)|l.lz4|lz4 -q -l -c"
	"lzop|lzo|lzop -q -c"
	"lzop -9 --crc32|c.lzo|lzop -q -9 --crc32 -c"
	"lzip|lz|lzip -q -3 -c"
)

compress() { # SUFFIX COMMAND...
	local suf=$1 out
	shift
	out=$B.$suf
	need "$B" || return 1
	if [ "$1" = MULTI ]; then
		command -v pigz >/dev/null || skip "pigz not installed"
		head -c 5000000 "$B" | pigz -c >"$out.tmp" &&
			tail -c +5000001 "$B" | gzip -c >>"$out.tmp" || { rm -f "$out.tmp"; return 1; }
	else
		command -v "$1" >/dev/null || skip "$1 not installed"
		"$@" <"$B" >"$out.tmp" 2>"$W/err" || { show "$W/err"; rm -f "$out.tmp"; fail "$* failed"; }
	fi
	mv "$out.tmp" "$out"
}

c_comp_verify() { # SUFFIX COMMAND...
	compress "$@" || return $?
	c_verify "$B.$1"
}

c_comp_restore() { # SUFFIX
	[ -e "$B.$1" ] || skip "no $BASE.pc.$1 (compressor missing or failed)"
	run 0 $IM restore "$B.$1" "$W/out.raw" && same "$W/out.raw" "$BREF"
}

for spec in "${CODECS[@]}"; do
	IFS='|' read -r label suf cmd <<<"$spec"
	# shellcheck disable=SC2086
	tc "$label: imgbk verify $BASE.pc.$suf exits 0" c_comp_verify "$suf" $cmd
	tc "$label: imgbk restore $BASE.pc.$suf equals the reference" c_comp_restore "$suf"
done

c_split() { # FILE BYTES: split into $W, verify, restore from the first piece
	local p
	need "$1" || return 1
	mkdir "$W/split" && p=$W/split/$(basename "$1") || return 1
	split -b "$2" "$1" "$p."
	[ -e "$p.ab" ] || fail "split made fewer than 2 pieces" || return 1
	echo "$(ls "$W/split" | wc -l) pieces, last $(ls "$W/split" | tail -n 1)"
	run 0 $IM verify "$p.aa" && out_has ': OK' &&
		run 0 $IM restore "$p.aa" "$W/out.raw" && same "$W/out.raw" "$BREF"
}

tc "split -b 1M of $BASE.pc.gz: verify + restore from .aa" c_split "$B.gz" 1M
tc "split -b 1M of the plain $BASE.pc: verify + restore from .aa" c_split "$B" 1M
tc "split -b 1M of $BASE.pc.zst: verify + restore from .aa" c_split "$B.zst" 1M
tc "split -b 6000 of $BASE.pc.zst: 700+ pieces (suffixes past yz: zaaa...): verify + restore" c_split "$B.zst" 6000

c_stdin_restore() { # FILE
	local rc
	need "$1" || return 1
	cat "$1" | $IM restore - "$W/out.raw" >"$W/out" 2>"$W/err"
	rc=$?
	[ $rc = 0 ] || { echo "cat $1 | imgbk restore - out.raw: exit $rc; stderr:"; show "$W/err"; return 1; }
	same "$W/out.raw" "$BREF"
}

c_stdin_verify() { # FILE
	need "$1" || return 1
	run_in "$1" 0 $IM verify - && out_has ': OK'
}

c_stdin_info() { # FILE
	need "$1" || return 1
	run_in "$1" 0 $IM info - || return 1
	head -n 1 "$W/out" | grep -q '^Partclone Header' || fail "first line is not 'Partclone Header...'"
}

c_stdin_file() { # FILE: stdin redirected from a (seekable) file, not a pipe
	need "$1" || return 1
	run_in "$1" 0 $IM restore - "$W/out.raw" && same "$W/out.raw" "$BREF"
}

tc "stdin: cat $BASE.pc.zst | imgbk restore - FILE equals the reference" c_stdin_restore "$B.zst"
tc "stdin: imgbk verify - < $BASE.pc (plain) OK" c_stdin_verify "$B"
tc "stdin: imgbk verify - < $BASE.pc.xz OK" c_stdin_verify "$B.xz"
tc "stdin: imgbk info - < $BASE.pc.gz starts with 'Partclone Header'" c_stdin_info "$B.gz"
tc "stdin: imgbk restore - FILE < $BASE.pc.lz4 (redirected file) equals the reference" c_stdin_file "$B.lz4"

# xz -T output decoded by liblzma's threads: its memory stays within the
# budget of a verify or restore (64 MiB) whatever the timing. With the xz
# tool's own limit (a quarter of the RAM) the queue of decoded 12 MiB blocks
# grew while the reader lagged: verify of this image peaked at 76-99 MiB.
# The image: 40 MB that does not compress (stored, decoded at copy speed)
# and text, ext4 96 MiB, partclone; xz -0 keeps the compression quick.
peak_rss_kib() { # CMD...: run it; print its peak RSS (KiB) on stdout, its output to $W/out, $W/err
	python3 -c 'import resource, subprocess, sys
with open(sys.argv[1], "wb") as o, open(sys.argv[2], "wb") as e:
	rc = subprocess.run(sys.argv[3:], stdout=o, stderr=e).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$W/out" "$W/err" "$@"
}

c_xz_threads_memory() {
	local src=$W/xzsrc kib
	command -v xz >/dev/null || skip "xz not installed"
	mkdir -p "$src" && head -c 40000000 /dev/urandom >"$src/rand.bin" && seq 1 2000000 >"$src/text.txt" &&
		truncate -s 96M "$W/xz.raw" && run 0 mkfs.ext4 -q -F -b 4096 -d "$src" "$W/xz.raw" &&
		run 0 partclone.ext4 -c -s "$W/xz.raw" -O "$W/xz.pc" || return 1
	run 0 xz -T2 -0 --block-size=12MiB -k "$W/xz.pc" || return 1
	[ "$(xz -l "$W/xz.pc.xz" | awk 'NR == 2 { print $2 }')" -ge 5 ] || fail "xz made fewer than 5 blocks" || return 1
	kib=$(peak_rss_kib $IM verify "$W/xz.pc.xz") || { echo "imgbk verify xz.pc.xz failed:"; show "$W/err"; return 1; }
	echo "verify of xz.pc.xz (12 MiB blocks): peak RSS $kib KiB"
	grep -q ': OK' "$W/out" || fail "verify did not say OK" || return 1
	[ "$kib" -lt 65536 ] || fail "verify peaked at $kib KiB: over 64 MiB" || return 1
	kib=$(peak_rss_kib $IM restore "$W/xz.pc.xz" "$W/xz.out") || { show "$W/err"; return 1; }
	echo "restore: peak RSS $kib KiB"
	[ "$kib" -lt 65536 ] || fail "restore peaked at $kib KiB: over 64 MiB" || return 1
	run 0 $IM restore "$W/xz.pc" "$W/plain.out" && same "$W/xz.out" "$W/plain.out"
}
tc "xz -T2, 12 MiB blocks: verify and restore stay under 64 MiB (liblzma's threads within budget), same bytes as the plain image" c_xz_threads_memory

c_info_layers() {
	need "$B.gz" || return 1
	run 0 $IM info --json "$B.gz" && $PY checkjson "$B" gzip <"$W/out"
}
tc "info --json $BASE.pc.gz: same values as the plain image, layers mention gzip" c_info_layers

# ---------------------------------------------------------------------------
# 6. damaged images (copies in the scratch dir)

# cp_img NAME: copy NAME.pc to $W/bad.pc and load its header variables
cp_img() {
	need "$IMG/$1.pc" || return 1
	cp "$IMG/$1.pc" "$W/bad.pc" && . "$IMG/$1.hdr"
}

# flip_data NAME GROUP [BYTE-IN-BLOCK]: flip one bit in the 6th block of GROUP
# (or its last block if the group is shorter); prints the device block number
flip_data() {
	local g=$2 rank
	rank=$((g * BPC + 5))
	[ "$rank" -lt "$POP" ] || rank=$((POP - 1))
	$PY flip "$W/bad.pc" $(($($PY dataoff "$W/bad.pc" $rank) + ${3:-100})) 0x10 &&
		$PY blockof "$W/bad.pc" $rank
}

# check that the reported "blocks A-B" range contains device block BLK
range_has() { # BLK
	local r a b
	r=$(grep -oE 'blocks [0-9,]+ ?(-|–|\.\.|to) ?[0-9,]+' "$W/err" | head -n 1)
	[ -n "$r" ] || { echo "no 'blocks A-B' in stderr:"; show "$W/err"; return 1; }
	r=${r//,/}
	a=$(echo "$r" | grep -oE '[0-9]+' | sed -n 1p)
	b=$(echo "$r" | grep -oE '[0-9]+' | sed -n 2p)
	[ "$a" -le "$1" ] && [ "$1" -le "$b" ] ||
		fail "reported range '$r' does not contain the damaged block $1"
}

c_bad_data_verify() { # NAME GROUP
	local blk
	cp_img "$1" || return 1
	blk=$(flip_data "$1" "$2") || return 1
	echo "flipped a bit in device block $blk (group $2 of $NGROUPS)"
	run 1 $IM verify "$W/bad.pc" && err_has 'checksum mismatch' 'blocks [0-9]' 'byte [0-9]' &&
		err_names bad.pc && range_has "$blk"
}

c_bad_data_restore() {
	cp_img "$BASE" || return 1
	flip_data "$BASE" 2 >/dev/null || return 1
	run 1 $IM restore "$W/bad.pc" "$W/out.raw" && err_has 'checksum mismatch'
}

c_bad_data_noverify() {
	local n
	cp_img "$BASE" || return 1
	flip_data "$BASE" 2 >/dev/null || return 1
	run 0 $IM restore --no-verify "$W/bad.pc" "$W/out.raw" || return 1
	n=$(cmp -l "$W/out.raw" "$BREF" | wc -l)
	[ "$n" = 1 ] || fail "expected exactly 1 differing byte against the reference, got $n"
}

c_bad_csum() {
	cp_img "$BASE" || return 1
	$PY flip "$W/bad.pc" "$($PY csumoff "$W/bad.pc" 1)" 0xff || return 1
	run 1 $IM verify "$W/bad.pc" && err_has 'checksum mismatch' && err_names bad.pc
}

c_bad_header() {
	cp_img "$BASE" || return 1
	$PY flip "$W/bad.pc" 25 0x20 || return 1 # NUL padding of ptc_version: only the CRC notices
	run 1 $IM verify "$W/bad.pc" && err_has 'header CRC' && err_names bad.pc
}

c_bad_bitmap() {
	cp_img "$BASE" || return 1
	$PY flip "$W/bad.pc" $((110 + 3000)) 0x01 || return 1
	run 1 $IM verify "$W/bad.pc" && err_has 'bitmap CRC' && err_names bad.pc
}

c_truncated() { # APPLET
	cp_img "$BASE" || return 1
	truncate -s $((DATASTART + POP * BS / 2 + 333)) "$W/bad.pc"
	if [ "$1" = verify ]; then
		run 1 $IM verify "$W/bad.pc" && err_has 'truncated' && err_names bad.pc
	else
		run 1 $IM restore "$W/bad.pc" "$W/out.raw" && err_has 'truncated'
	fi
}

c_truncated_last_csum() {
	cp_img "$BASE" || return 1
	truncate -s $(($(stat -c %s "$W/bad.pc") - 2)) "$W/bad.pc"
	run 1 $IM verify "$W/bad.pc" && err_has 'truncated'
}

c_bad_magic() {
	cp_img "$BASE" || return 1
	$PY flip "$W/bad.pc" 0 0x01 || return 1
	run 1 $IM verify "$W/bad.pc" && err_has 'not a' && err_names bad.pc &&
		run 1 $IM info "$W/bad.pc" && err_has 'not a'
}

c_random_file() {
	$PY randfile "$W/random.img" 1048576 7 || return 1
	run 1 $IM verify "$W/random.img" && err_names random.img &&
		run 1 $IM info "$W/random.img" &&
		run 1 $IM restore "$W/random.img" "$W/out.raw"
}

c_empty_file() {
	: >"$W/empty.img"
	run 1 $IM verify "$W/empty.img" && err_names empty.img &&
		run 1 $IM info "$W/empty.img" &&
		run 1 $IM restore "$W/empty.img" "$W/out.raw"
}

c_trailing() {
	cp_img "$BASE" || return 1
	printf 'GARBAGE%.0s' $(seq 100) >>"$W/bad.pc"
	run 1 $IM verify "$W/bad.pc" && err_has 'trailing' && err_names bad.pc
}

c_missing_piece() {
	need "$B" || return 1
	cp "$B" "$W/bad.pc" && split -b 1M "$W/bad.pc" "$W/bad.pc." || return 1
	[ -e "$W/bad.pc.ac" ] || fail "fewer than 3 pieces"
	rm -f "$W/bad.pc.ab"
	run 1 $IM verify "$W/bad.pc.aa" && err_has 'missing' 'bad\.pc\.ab' &&
		run 1 $IM restore "$W/bad.pc.aa" "$W/out.raw" && err_has 'missing' 'bad\.pc\.ab'
}

c_truncated_gz() {
	need "$B.gz" || return 1
	head -c $(($(stat -c %s "$B.gz") / 2)) "$B.gz" >"$W/bad.pc.gz"
	run 1 $IM verify "$W/bad.pc.gz" && err_has 'gzip' 'truncated' && err_names bad.pc.gz
}

c_corrupt_zst() {
	local pos
	need "$B.zst" || return 1
	cp "$B.zst" "$W/bad.pc.zst" && pos=$($PY breakzstd "$W/bad.pc.zst") || return 1
	echo "zstd block header at byte $pos set to the reserved block type"
	zstd -t -q "$W/bad.pc.zst" 2>/dev/null && fail "reference check: zstd -t accepts the corrupted file"
	run 1 $IM verify "$W/bad.pc.zst" && err_has 'zstd' 'byte [0-9]' && err_names bad.pc.zst
}

c_truncated_comp() { # SUFFIX CODEC-NAME
	need "$B.$1" || skip "no $BASE.pc.$1"
	head -c $(($(stat -c %s "$B.$1") / 2)) "$B.$1" >"$W/bad.pc.$1"
	run 1 $IM verify "$W/bad.pc.$1" && err_has "$2" 'truncated' && err_names "bad.pc.$1"
}

c_lrzip_refused() {
	command -v lrzip >/dev/null || skip "lrzip not installed (test/deps.sh)"
	need "$B" || return 1
	lrzip -q -o "$W/img.pc.lrz" "$B" 2>/dev/null || fail "lrzip failed" || return 1
	run 1 $IM verify "$W/img.pc.lrz" && err_names img.pc.lrz &&
		err_has "lrzip: .*convert it with: lrzip -q -d -o - $W/img.pc.lrz \\| zstd -T0 > $W/img.pc.lrz.zst" || return 1
	[ "$(wc -l <"$W/err")" -eq 1 ] || fail "more than one line" || return 1
	lrzip -q -d -o - "$W/img.pc.lrz" 2>/dev/null | zstd -q -T0 >"$W/img.pc.lrz.zst" || return 1
	c_verify "$W/img.pc.lrz.zst"
}

# the image inside is intact; only the compressor's own trailer check is wrong
c_bad_trailer() { # SUFFIX CODEC-NAME BYTES-FROM-END
	need "$B.$1" || skip "no $BASE.pc.$1"
	cp "$B.$1" "$W/bad.pc.$1" || return 1
	$PY flip "$W/bad.pc.$1" $(($(stat -c %s "$W/bad.pc.$1") - $3)) 0x01 || return 1
	run 1 $IM verify "$W/bad.pc.$1" && err_has "$2" && err_names "bad.pc.$1"
}

c_nonexistent() {
	run 3 $IM verify "$W/no-such.pc" && err_names no-such.pc &&
		run 3 $IM info "$W/no-such.pc" &&
		run 3 $IM restore "$W/no-such.pc" "$W/out.raw"
}

c_verify_all() {
	cp_img "$BASE" || return 1
	flip_data "$BASE" 1 >/dev/null && flip_data "$BASE" 9 >/dev/null || return 1
	run 1 $IM verify --all "$W/bad.pc" && err_has 'bad checksum group' &&
		err_has '(^|[^0-9])2 bad checksum group|bad checksum groups?[^0-9]*2([^0-9]|$)'
}

c_a0_undetected() {
	cp_img "${BASE}_a0" || return 1
	flip_data "${BASE}_a0" 2 >/dev/null || return 1
	run 0 $IM verify "$W/bad.pc" && out_has ': OK' || return 1
	cat "$W/out" "$W/err" >"$W/all"
	grep -qiE 'no (data )?checksum|checksums?[^a-z]*(none|off|absent|not (stored|present|checked))|without checksum|not checked|unchecked' "$W/all" ||
		{ echo "output does not say that there are no checksums:"; show "$W/all"; return 1; }
	! grep -qiE '[0-9]+ checksums? (ok|verified|checked|good)' "$W/all" ||
		{ echo "output claims checksums were checked:"; show "$W/all"; return 1; }
}

c_verify_json() {
	local ok
	need "$B" || return 1
	run 0 $IM verify --json "$B" || return 1
	ok=$($PY jsonok <"$W/out") || return 1
	[ "$ok" = true ] || fail "verify --json on a good image: ok=$ok"
	cp_img "$BASE" && flip_data "$BASE" 2 >/dev/null || return 1
	run 1 $IM verify --json "$W/bad.pc" || return 1
	ok=$($PY jsonok <"$W/out") || return 1
	[ "$ok" = false ] || fail "verify --json on a damaged image: ok=$ok"
}

c_verify_quiet() {
	need "$B" || return 1
	run 0 $IM verify -q "$B" || return 1
	[ ! -s "$W/err" ] || { echo "stderr not empty:"; show "$W/err"; return 1; }
	cp_img "$BASE" && flip_data "$BASE" 2 >/dev/null || return 1
	run 1 $IM verify -q "$W/bad.pc"
}

c_stdin_bad() {
	cp_img "$BASE" && flip_data "$BASE" 4 >/dev/null || return 1
	run_in "$W/bad.pc" 1 $IM verify - && err_has 'checksum mismatch'
}

tc "damaged: data bit flipped -> verify exit 1 'checksum mismatch', 'blocks A-B' containing the block, 'byte N'" c_bad_data_verify "$BASE" 2
tc "damaged: data bit flipped in the last (partial) group -> verify exit 1, range contains the block" c_bad_data_verify "$BASE" 999999
tc "damaged: data bit flipped, -k1 image (block number != rank) -> verify exit 1, range contains the block" c_bad_data_verify "${BASE}_k1" 15400
tc "damaged: data bit flipped, -k7 -K (running CRC) ext4 4K image -> verify exit 1" c_bad_data_verify e4k_k7K 100
tc "damaged: data bit flipped, ext4 4K default image -> verify exit 1" c_bad_data_verify e4k 3
tc "damaged: data bit flipped -> restore exit 1 'checksum mismatch'" c_bad_data_restore
tc "damaged: data bit flipped -> restore --no-verify exit 0, exactly 1 byte differs" c_bad_data_noverify
tc "damaged: stored checksum byte flipped -> verify exit 1 'checksum mismatch'" c_bad_csum
tc "damaged: header byte flipped -> verify exit 1 'header CRC'" c_bad_header
tc "damaged: bitmap byte flipped -> verify exit 1 'bitmap CRC'" c_bad_bitmap
tc "damaged: cut in the middle of the data -> verify exit 1 'truncated'" c_truncated verify
tc "damaged: cut in the middle of the data -> restore exit 1 'truncated'" c_truncated restore
tc "damaged: last checksum cut short by 2 bytes -> verify exit 1 'truncated'" c_truncated_last_csum
tc "damaged: first magic byte changed -> verify/info exit 1 'not a'" c_bad_magic
tc "damaged: 1 MiB of random bytes -> verify/info/restore exit 1" c_random_file
tc "damaged: empty file -> verify/info/restore exit 1" c_empty_file
tc "damaged: trailing garbage appended -> verify exit 1 'trailing'" c_trailing
tc "damaged: split piece .ab missing -> verify/restore exit 1 'missing' + piece name" c_missing_piece
tc "damaged: .gz cut in half -> verify exit 1 'gzip' 'truncated'" c_truncated_gz
tc "damaged: .zst block header corrupted -> verify exit 1 'zstd' 'byte N'" c_corrupt_zst
tc "damaged: .xz cut in half -> verify exit 1 'xz' 'truncated'" c_truncated_comp xz xz
tc "damaged: .bz2 cut in half -> verify exit 1 'bzip2' 'truncated'" c_truncated_comp bz2 bzip2
tc "damaged: .lz4 cut in half -> verify exit 1 'lz4' 'truncated'" c_truncated_comp lz4 lz4
tc "damaged: .lzo cut in half -> verify exit 1 'lzop' 'truncated'" c_truncated_comp lzo lzop
tc "damaged: .lz cut in half -> verify exit 1 'lzip' 'truncated'" c_truncated_comp lz lzip
tc "lrzip (Clonezilla -z7): refused in one line naming the file and the command that converts it; that command works" c_lrzip_refused
tc "damaged: .gz trailer CRC32 flipped (image intact) -> verify exit 1 'gzip'" c_bad_trailer gz gzip 8
tc "damaged: .zst content checksum flipped (image intact) -> verify exit 1 'zstd'" c_bad_trailer zst zstd 4
tc "damaged: nonexistent image -> verify/info/restore exit 3" c_nonexistent
tc "damaged: two bad groups -> verify --all exit 1, '2 bad checksum groups'" c_verify_all
tc "damaged: -a0 image with a flipped data bit -> verify exit 0 (undetectable), says no checksums" c_a0_undetected
tc "verify -q: exit 0 and nothing on stderr on a good image, exit 1 on a damaged one" c_verify_quiet
tc "verify --json: ok true on a good image (exit 0), ok false on a damaged one (exit 1)" c_verify_json
tc "damaged: piped on stdin -> verify - exit 1 'checksum mismatch'" c_stdin_bad

# ---------------------------------------------------------------------------
# 7. restore targets

c_exists_noforce() {
	local before
	need "$B" || return 1
	echo "precious data, not a partition" >"$W/target"
	before=$(sha "$W/target")
	run 2 $IM restore "$B" "$W/target" || return 1
	[ "$(sha "$W/target")" = "$before" ] || fail "existing target was modified"
}

c_exists_force() {
	need "$B" "$BREF" || return 1
	echo "precious data, not a partition" >"$W/target"
	run 0 $IM restore --force "$B" "$W/target" && same "$W/target" "$BREF"
}

c_target_nodir() {
	need "$B" || return 1
	run 3 $IM restore "$B" "$W/no/such/dir/out.raw"
}

LOOP_OK=""
if [ "$(id -u)" != 0 ]; then
	LOOP_WHY="not root"
elif ! command -v losetup >/dev/null; then
	LOOP_WHY="losetup not installed"
elif ! losetup -f >/dev/null 2>&1; then
	LOOP_WHY="no free loop device"
else
	LOOP_OK=1
fi

# attach FILE: prints the loop device, recorded for the cleanup trap
attach() {
	local dev
	dev=$(losetup -f --show "$1") || return 1
	echo "$dev" >>"$T/loops"
	echo "$dev"
}

c_loop_restore() {
	local dev rc
	need "$B" "$BREF" || return 1
	truncate -s "$(stat -c %s "$BREF")" "$W/disk"
	dev=$(attach "$W/disk") || skip "losetup failed"
	run 0 $IM restore "$B" "$dev" && cmp "$dev" "$BREF"
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] && same "$W/disk" "$BREF"
}

# a device full of 'Z': imgbk must write the used blocks and leave the rest,
# exactly as partclone.restore does to the same pattern in a regular file
c_loop_pattern() {
	local dev rc size
	need "$B" "$BREF" || return 1
	size=$(stat -c %s "$BREF")
	head -c "$size" /dev/zero | tr '\0' Z >"$W/disk"
	cp "$W/disk" "$W/expect"
	partclone.restore -s "$B" -O "$W/expect" -L "$W/log" >/dev/null 2>&1
	dev=$(attach "$W/disk") || skip "losetup failed"
	run 0 $IM restore "$B" "$dev"
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] && same "$W/disk" "$W/expect"
}

c_loop_small() {
	local dev rc before
	need "$B" "$BREF" || return 1
	truncate -s $(($(stat -c %s "$BREF") - 1048576)) "$W/disk"
	before=$(sha "$W/disk")
	dev=$(attach "$W/disk") || skip "losetup failed"
	run 2 $IM restore "$B" "$dev" && err_has 'too small'
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha "$W/disk")" = "$before" ] || fail "the small device was written to"
}

c_loop_mounted() {
	local dev rc before
	need "$B" "$FS/$BASE.raw" || return 1
	cp "$FS/$BASE.raw" "$W/disk"
	before=$(sha "$W/disk")
	dev=$(attach "$W/disk") || skip "losetup failed"
	mkdir "$W/mnt"
	echo "$W/mnt" >>"$T/mounts"
	mount -o ro "$dev" "$W/mnt" 2>"$W/merr" || {
		losetup -d "$dev"
		skip "cannot mount ext4 here: $(head -n 1 "$W/merr")"
	}
	run 2 $IM restore --force "$B" "$dev" && err_has 'mounted'
	rc=$?
	umount "$W/mnt"
	losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha "$W/disk")" = "$before" ] || fail "the mounted device was written to"
}

tc "target: existing file without --force -> exit 2, file unchanged" c_exists_noforce
tc "target: existing file with --force -> restored, equals the reference" c_exists_force
tc "target: file in a nonexistent directory -> exit 3" c_target_nodir
if [ -n "$LOOP_OK" ]; then
	tc "target: loop device over a zero file -> restored, device equals the reference" c_loop_restore
	tc "target: loop device full of 'Z' -> same bytes as partclone.restore (only used blocks written)" c_loop_pattern
	tc "target: loop device 1 MiB smaller than the partition -> exit 2 'too small', nothing written" c_loop_small
	tc "target: mounted loop device -> exit 2 'mounted' (even with --force), nothing written" c_loop_mounted
else
	for d in "loop device over a zero file" "loop device full of 'Z'" "loop device too small" "mounted loop device"; do
		tc_skip "target: $d" "$LOOP_WHY"
	done
fi

# ---------------------------------------------------------------------------
if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

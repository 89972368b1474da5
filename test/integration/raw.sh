#!/bin/sh
# test/integration/raw.sh - raw partition images (formats/raw.c): the bytes
# of a partition with no header, as partclone.dd, dd and Clonezilla's
# NAME.dd-ptcl-img.* / NAME.dd-img.* files hold them, through every applet.
#
#   IMGBK=/abs/path/imgbk sh test/integration/raw.sh
#
# Builds a 32 MiB ext4 (mkfs.ext4 -d) from a small deterministic tree and
# makes raw images of it with the real tools: partclone.dd (plain), dd
# (NAME.dd-img), partclone.dd | zstd, partclone.dd | gzip | split -b 1M -a 2
# (Clonezilla's sdX1.dd-ptcl-img.gz.aa, .ab, ...), and a copy with a
# neutral name (read only with --raw). Then: info (text and --json) says
# raw, its size, layers, content and the filesystem's own size (ext, NTFS,
# FAT32 headers); verify exits 0 saying a raw image has no checksums;
# truncated compressed raw images, and images shorter than their filesystem
# (cut, or a split set without its last piece), fail verify naming the file
# and the byte; restore to a new file (sparse: all-zero blocks are holes), to
# stdout and to a loop device equals the filesystem byte for byte (cmp), and
# the safety rules hold (existing file without --force, too small device,
# stdin to a device, mounted device); mount equals the filesystem, and a loop
# mount of the virtual file holds the source files; index; vpartclone --raw;
# a partclone image with a dd name is read
# as partclone (the magic wins over the name) and --raw on it is refused.
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
# Environment: IMGBK (default ../../imgbk; vpartclone is the symlink next to
# it), TMPDIR, IMGBK_KEEP=1 keeps the temp dir.

. "$(dirname "$0")/lib.sh"
VPC=$(dirname "$IMGBK")/vpartclone
TO="timeout -k 5 60"
FIX=$T/fix
mkdir -p "$FIX"

# A case that mounts or attaches a loop device writes the command that
# undoes it to $T/undo (one a line); they run newest first when the case
# ends (start_case), and as a last resort when the script exits.
undo_all() {
	[ -s "$T/undo" ] && tac "$T/undo" | sh 2>/dev/null
	: >"$T/undo"
}

release() {
	undo_all
}

echo "# imgbk: $IMGBK; temp: $T"

FUSE_WHY=""
[ -c /dev/fuse ] || FUSE_WHY="/dev/fuse is missing"
command -v fusermount3 >/dev/null || FUSE_WHY="${FUSE_WHY:-fusermount3 is not installed}"
ROOT_WHY=""
[ "$(id -u)" = 0 ] || ROOT_WHY="not root (loop devices need root)"

SIZE=33554432  # the filesystem: 32 MiB

# ---- helpers used inside cases ----------------------------------------------

start_case() {
	trap undo_all EXIT
}

# mounted DIR: a mount made at DIR, to be undone (a FUSE one or a loop one)
mounted() {
	echo "umount -l '$1' || fusermount3 -u '$1'" >>"$T/undo"
}

# loopdev FILE: a loop device over FILE, to be detached; prints its name
loopdev() {
	local l
	l=$(losetup -f --show "$1") || return 1
	echo "losetup -d '$l'" >>"$T/undo"
	echo "$l"
}

# The images: name -> file (first piece)
img() {
	case $1 in
	plain) echo "$FIX/sdX1.dd-ptcl-img" ;;
	dd) echo "$FIX/sdX2.dd-img" ;;
	zstd) echo "$FIX/sdX1.dd-ptcl-img.zst" ;;
	gzsplit) echo "$FIX/gz/sdX1.dd-ptcl-img.gz.aa" ;;
	neutral) echo "$FIX/part.bin" ;;
	esac
}

# --raw for the image with a neutral name
rawopt() {
	[ "$1" = neutral ] && echo --raw
}

VARIANTS="plain dd zstd gzsplit neutral"

# ---- fixtures -------------------------------------------------------------------

setup() {
	command -v partclone.dd >/dev/null || skip "partclone.dd not installed"
	command -v zstd >/dev/null || skip "zstd not installed"
	mkdir -p "$FIX/src/docs" "$FIX/src/data" || return 1
	python3 - "$FIX/src" <<'EOF' || return 1
import os, random, sys
root = sys.argv[1]
r = random.Random(20261204)
with open(os.path.join(root, 'data/rand.bin'), 'wb') as f:
    f.write(r.randbytes(6 << 20))
with open(os.path.join(root, 'docs/words.txt'), 'w') as f:
    for i in range(60000):
        f.write('%06d %s\n' % (i, ' '.join(r.choice(['raw', 'dd', 'image', 'ext4', 'bytes']) for _ in range(8))))
for dp, dns, fns in os.walk(root, topdown=False):
    for x in fns:
        os.utime(os.path.join(dp, x), (1700000000, 1700000000))
    os.utime(dp, (1700000000, 1700000000))
EOF
	truncate -s $SIZE "$FIX/fs.raw" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 \
			-U 7a11c0de-1111-4222-8333-444455556666 -L imgbk-raw -d "$FIX/src" "$FIX/fs.raw" || return 1
	# partclone.dd: the raw bytes, no header
	run 0 partclone.dd -q -s "$FIX/fs.raw" -O "$(img plain)" -L "$W/log" || { cat "$W/log"; return 1; }
	same "$(img plain)" "$FIX/fs.raw" || return 1
	run 0 dd if="$FIX/fs.raw" of="$(img dd)" bs=1M status=none || return 1
	partclone.dd -q -s "$FIX/fs.raw" -o - -L "$W/log2" 2>/dev/null | zstd -q -c >"$(img zstd)" || return 1
	mkdir -p "$FIX/gz" &&
		(cd "$FIX/gz" && partclone.dd -q -s "$FIX/fs.raw" -o - -L "$W/log3" 2>/dev/null | gzip -c |
			split -b 1M -a 2 - sdX1.dd-ptcl-img.gz.) || return 1
	[ -e "$FIX/gz/sdX1.dd-ptcl-img.gz.ab" ] || fail "gzip+split made one piece only" || return 1
	cp "$FIX/fs.raw" "$(img neutral)" || return 1
	ls -l "$FIX" "$FIX/gz" | sed 's/^/# /'
}

# ---- info -------------------------------------------------------------------------

c_info() { # VARIANT LAYERS
	local i layers=${2//+/\\+}
	i=$(img "$1")
	need "$i" || return 1
	run 0 "$IMGBK" info $(rawopt "$1") "$i" || return 1
	out_has '^Raw Partition Image$' '^size +33,554,432 bytes \(32\.0 MB\)' "^layers +$layers\$" \
		'^content +an ext2/3/4 filesystem$' '^fs size +33,554,432 bytes \(32\.0 MB\)' '^checksums +none \(a raw image carries no checksums\)$' || return 1
	case $2 in *+*) out_has 'counted by decoding the whole image' || return 1 ;; esac
	run 0 "$IMGBK" info --json $(rawopt "$1") "$i" || return 1
	out_has '"format":"raw"' '"device_size":33554432' '"fs":"EXTFS"' "\"layers\":\"$layers\"" \
		'"checksum":"NONE"' '"content":"an ext2/3/4 filesystem"' || return 1
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/out" || fail "--json is not JSON"
}

c_info_neutral_refused() {
	need "$(img neutral)" || return 1
	run 1 "$IMGBK" info "$(img neutral)" || return 1
	err_names "$(img neutral)" && err_has 'an ext2/3/4 filesystem, not a backup image' 'pass --raw'
}

c_info_stdin() {
	need "$(img zstd)" || return 1
	run_in "$(img zstd)" 0 "$IMGBK" info --raw - || return 1
	out_has '^size +33,554,432 bytes' '^layers +stdin\+zstd$'
}

# ---- verify -----------------------------------------------------------------------

c_verify() { # VARIANT
	local i
	i=$(img "$1")
	need "$i" || return 1
	run 0 "$IMGBK" verify $(rawopt "$1") "$i" || return 1
	out_has "^$i: OK: raw partition image, 33,554,432 bytes \(32\.0 MB\) read to the end" \
		'a raw image carries no checksums' || return 1
	case $1 in
	zstd | gzsplit) out_has "passed the compressor's own checks" || return 1 ;;
	esac
	run 0 "$IMGBK" verify --json $(rawopt "$1") "$i" || return 1
	out_has '"ok":true' '"format":"raw"' '"blocks_checked":33554432'
}

c_verify_truncated() { # zstd | gzip
	local src=$FIX/fs.raw t
	need "$src" || return 1
	case $1 in
	zstd) t=cut.dd-ptcl-img.zst; zstd -q -c "$src" | head -c 3000000 >"$t" ;;
	gzip) t=cut.dd-img.gz; gzip -c "$src" | head -c 3000000 >"$t" ;;
	esac
	run 1 "$IMGBK" verify "$t" || return 1
	err_names "$t" && err_has 'at byte [0-9]' 'truncated|ends' || return 1
	[ "$(grep -c . "$W/err")" = 1 ] || fail "expected one line on stderr"
}

c_verify_damaged_gz() {
	need "$FIX/fs.raw" || return 1
	gzip -c "$FIX/fs.raw" >bad.dd-img.gz &&
		python3 -c 'import sys
f=open(sys.argv[1],"r+b"); f.seek(1000000); b=f.read(1); f.seek(1000000); f.write(bytes([b[0]^0x55]))' bad.dd-img.gz || return 1
	run 1 "$IMGBK" verify bad.dd-img.gz || return 1
	err_names bad.dd-img.gz && err_has 'gzip' 'byte [0-9]'
}

# ---- restore ----------------------------------------------------------------------

c_restore() { # VARIANT
	local i
	i=$(img "$1")
	need "$i" || return 1
	run 0 "$IMGBK" restore $(rawopt "$1") "$i" out.raw || return 1
	err_has 'restored every byte of the raw image .* \(33,554,432 bytes, 32\.0 MB\)' || return 1
	same out.raw "$FIX/fs.raw" && sparse out.raw || return 1
	"$IMGBK" restore -q $(rawopt "$1") "$i" - >stdout.raw 2>"$W/err" || { show "$W/err"; return 1; }
	same stdout.raw "$FIX/fs.raw" || return 1
	# an existing file: refused without --force, overwritten with it
	run 2 "$IMGBK" restore $(rawopt "$1") "$i" out.raw || return 1
	err_has 'exists|--force' || return 1
	printf 'junk' >out.raw
	run 0 "$IMGBK" restore -f $(rawopt "$1") "$i" out.raw && same out.raw "$FIX/fs.raw"
}

c_restore_stdin() {
	need "$(img zstd)" "$(img plain)" || return 1
	run_in "$(img zstd)" 0 "$IMGBK" restore --raw - out.raw && same out.raw "$FIX/fs.raw" || return 1
	err_has 'restored every byte of the raw image \(stdin\) .*33,554,432 bytes' || return 1
	"$IMGBK" restore -q --raw - - <"$(img plain)" >out2.raw 2>"$W/err" || { show "$W/err"; return 1; }
	same out2.raw "$FIX/fs.raw" || return 1
	run_in "$(img plain)" 1 "$IMGBK" restore - out3.raw && err_has 'pass --raw'
}

c_restore_device() {
	local dev small i
	start_case
	[ -n "$ROOT_WHY" ] && skip "$ROOT_WHY"
	i=$(img zstd)
	need "$i" || return 1
	# the device holds old non-zero bytes: the zeros of the image must be written too
	yes imgbk | head -c 40M >disk.img && dev=$(loopdev disk.img) || return 1
	run 0 "$IMGBK" restore "$i" "$dev" || return 1
	cmp -n $SIZE "$dev" "$FIX/fs.raw" || fail "the device differs from the filesystem" || return 1
	cmp -s -i $SIZE:$SIZE -n 1M "$dev" <(yes imgbk | head -c 40M) || fail "bytes after the image changed" || return 1
	# too small: refused before any write
	truncate -s 16M small.img && small=$(loopdev small.img) || return 1
	run 2 "$IMGBK" restore "$(img gzsplit)" "$small" || return 1
	err_has 'too small' || return 1
	[ "$(tr -d '\0' <small.img | head -c 1 | wc -c)" = 0 ] || fail "the small device was written" || return 1
	# from standard input the size is unknown: a device is refused
	run_in "$i" 2 "$IMGBK" restore --raw - "$dev" || return 1
	err_has 'standard input' 'large enough' || return 1
	# a mounted device is refused
	mkdir m && run 0 mount -o ro "$dev" m && mounted "$PWD/m" || return 1
	run 2 "$IMGBK" restore "$(img plain)" "$dev" || return 1
	err_has 'mounted' || return 1
	umount m
}

# ---- mount and index ----------------------------------------------------------------

c_mount() { # VARIANT
	local i f
	start_case
	i=$(img "$1")
	need "$i" || return 1
	mkdir m || return 1
	run 0 $TO "$IMGBK" mount $(rawopt "$1") "$i" m && mounted "$PWD/m" || return 1
	out_has 'raw image' 'fsck.ext4 -n' || return 1
	f=m/$(ls m)
	case $1 in
	neutral) [ "$f" = m/part.bin ] ;;
	dd) [ "$f" = m/sdX2 ] ;;
	*) [ "$f" = m/sdX1 ] ;;
	esac || fail "virtual file named $f" || return 1
	same "$f" "$FIX/fs.raw" || return 1
	if [ -z "$ROOT_WHY" ]; then
		mkdir m2 && run 0 mount -o loop,ro "$f" m2 && mounted "$PWD/m2" || return 1
		same m2/docs/words.txt "$FIX/src/docs/words.txt" && same m2/data/rand.bin "$FIX/src/data/rand.bin" ||
			return 1
		umount m2 || fail "umount m2 failed" || return 1
	else
		echo "# loop mount not tried: $ROOT_WHY"
	fi
	fusermount3 -u m || fail "fusermount3 -u m failed" || return 1
	! mountpoint -q m || fail "m still mounted"
}

c_index() {
	need "$(img plain)" "$(img zstd)" || return 1
	run 0 "$IMGBK" index "$(img plain)" && out_has 'needs no index' || return 1
	rm -f "$(img zstd)".ibkx
	run 0 "$IMGBK" index "$(img zstd)" && out_has 'index saved to .*\.ibkx' || return 1
	run 0 "$IMGBK" index "$(img zstd)" && out_has 'up to date' || return 1
	run 0 "$IMGBK" index --raw "$(img neutral)" && out_has 'needs no index'
}

c_vpartclone() {
	need "$(img neutral)" "$(img gzsplit)" || return 1
	run 0 "$VPC" --raw -v "$(img neutral)" && out_has '^Raw Partition Image$' '^size +33,554,432 bytes' ||
		return 1
	run 0 "$VPC" -c "$(img gzsplit)" && out_has 'OK: raw partition image' || return 1
	run 1 "$VPC" -v "$(img neutral)" && err_has 'pass --raw'
}

# ---- the magic wins over the name -------------------------------------------------

# fs size: from the filesystem's own header; an image shorter than it fails
c_fs_size() { # ntfs | fat32 | ext-split
	local f=sdX4.dd-img what size
	case $1 in
	ntfs)
		command -v mkntfs >/dev/null || skip "mkntfs not installed"
		truncate -s 64M $f && run 0 mkntfs -q -F -Q -s 512 $f || return 1
		what='an NTFS filesystem' size='67,108,352'  # the backup boot sector is outside it
		;;
	fat32)
		command -v mkfs.fat >/dev/null || skip "mkfs.fat not installed"
		truncate -s 64M $f && run 0 mkfs.fat -F 32 $f || return 1
		what='a FAT32 filesystem' size='67,108,864'
		;;
	esac
	run 0 "$IMGBK" info $f || return 1
	out_has "^content +$what\$" "^fs size +$size bytes" 'by the filesystem.s own header' || return 1
	run 0 "$IMGBK" verify $f && out_has 'holds the whole filesystem its header describes' || return 1
	truncate -s 60M $f || return 1
	run 0 "$IMGBK" info $f && out_has 'MORE than the image holds' || return 1
	run 1 "$IMGBK" verify $f || return 1
	err_names $f && err_has "ends before the end of $what" 'at byte 62914560'
}

c_split_last_piece_missing() {
	need "$FIX/fs.raw" || return 1
	split -b 4M -a 2 "$FIX/fs.raw" sdX3.dd-img. && rm sdX3.dd-img.ah || return 1
	run 1 "$IMGBK" verify sdX3.dd-img.aa || return 1
	err_names sdX3.dd-img.aa && err_has 'an ext2/3/4 filesystem' 'last piece of a split set' 'at byte 29360128' ||
		return 1
	run 1 "$IMGBK" restore sdX3.dd-img.aa out.raw && err_has 'restore stopped'
}

c_partclone_named_dd() {
	command -v partclone.extfs >/dev/null || skip "partclone.extfs not installed"
	need "$FIX/fs.raw" || return 1
	run 0 partclone.extfs -q -c -s "$FIX/fs.raw" -O sdX9.dd-ptcl-img -L log || return 1
	run 0 "$IMGBK" info --json sdX9.dd-ptcl-img && out_has '"format":"partclone"' || return 1
	run 0 "$IMGBK" restore -q sdX9.dd-ptcl-img out.raw && same out.raw "$FIX/fs.raw" || return 1
	run 2 "$IMGBK" info --raw sdX9.dd-ptcl-img || return 1
	err_names sdX9.dd-ptcl-img && err_has '--raw given, but this is a partclone image'
}

c_lzop_named_dd() {
	command -v lzop >/dev/null || skip "lzop not installed"
	need "$FIX/fs.raw" || return 1
	lzop -c "$FIX/fs.raw" >sdX1.dd-ptcl-img.lzo || return 1
	run 0 "$IMGBK" restore -q sdX1.dd-ptcl-img.lzo out.raw && same out.raw "$FIX/fs.raw" || return 1
	head -c $(($(stat -c %s sdX1.dd-ptcl-img.lzo) / 2)) sdX1.dd-ptcl-img.lzo >cut.dd-ptcl-img.lzo || return 1
	run 1 "$IMGBK" verify cut.dd-ptcl-img.lzo && err_names cut.dd-ptcl-img.lzo && err_has 'lzop' 'truncated'
}

# ---- run ----------------------------------------------------------------------------

tc "setup: 32 MiB ext4 (mkfs.ext4 -d); partclone.dd (== fs), dd, partclone.dd|zstd, partclone.dd|gzip|split -b 1M -a 2" setup
tc "info: partclone.dd sdX1.dd-ptcl-img: raw, size, layers file, content ext, --json" c_info plain file
tc "info: dd sdX2.dd-img" c_info dd file
tc "info: sdX1.dd-ptcl-img.zst: size counted by decoding, layers file+zstd" c_info zstd file+zstd
tc "info: sdX1.dd-ptcl-img.gz.aa (split): layers split+gzip" c_info gzsplit split+gzip
tc "info --raw part.bin (neutral name)" c_info neutral file
tc "info part.bin without --raw: exit 1, names the file, says ext and 'pass --raw'" c_info_neutral_refused
tc "info --raw - < zstd image: size counted from the stream" c_info_stdin
for v in $VARIANTS; do
	tc "verify $v: exit 0, bytes read to the end, no checksums; --json" c_verify "$v"
done
tc "verify of a truncated .dd-ptcl-img.zst: exit 1, one line naming the file and the byte" c_verify_truncated zstd
tc "verify of a truncated .dd-img.gz: exit 1, one line naming the file and the byte" c_verify_truncated gzip
tc "verify of a damaged .dd-img.gz: exit 1, names the file, gzip and the byte" c_verify_damaged_gz
for v in $VARIANTS; do
	tc "restore $v: new file, stdout == fs (cmp); existing file refused, --force overwrites" c_restore "$v"
done
tc "restore --raw - (zstd, plain from stdin) to a file and to stdout == fs; without --raw: exit 1" c_restore_stdin
tc "restore zstd to a loop device of old bytes == fs, zeros written, rest untouched; too small / stdin / mounted device refused" c_restore_device
for v in $VARIANTS; do
	if [ -n "$FUSE_WHY" ]; then
		tc_skip "mount $v" "$FUSE_WHY"
	else
		tc "mount $v: virtual file == fs (cmp), loop mount ro and its files == source, unmount" c_mount "$v"
	fi
done
tc "index: plain needs none, zstd saved then up to date, --raw neutral needs none" c_index
tc "vpartclone --raw -v, -c on a dd name, -v without --raw refused" c_vpartclone
tc "NTFS (mkntfs) raw: info fs size from the boot sector; verify 0; cut to 60 MiB: info says so, verify 1 naming the byte" c_fs_size ntfs
tc "FAT32 (mkfs.fat) raw: same" c_fs_size fat32
tc "split set (split -b 4M) without its last piece: verify and restore exit 1, 'last piece of a split set'" c_split_last_piece_missing
tc "a partclone image named sdX9.dd-ptcl-img is read as partclone (magic wins); --raw on it: exit 2" c_partclone_named_dd
tc "lzop data named .dd-ptcl-img.lzo: decoded (restore equals the fs), a cut copy refused 'truncated'" c_lzop_named_dd

if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

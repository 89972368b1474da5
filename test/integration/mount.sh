#!/bin/sh
# test/integration/mount.sh - imgbk mount, imgbk index and the imagebackup-compatible
# vpartclone/vntfsclone against real FUSE mounts of real partclone images.
#
#   IMGBK=/abs/path/imgbk sh test/integration/mount.sh
#
# Builds a small ext4 (mkfs.ext4 -d) and a FAT32 (mkfs.fat + mcopy) from a
# deterministic tree, images them with Debian's partclone, mounts the images
# and checks: bytes equal the source filesystem, loop mount + file compare,
# the printed fsck command, parallel reads, EROFS, EIO on a damaged group
# (other ranges still read), daemon start in $(...), refused mount points,
# compressed images, the saved index and its staleness check, and the
# vpartclone options. Every mount is removed by the case that made it and,
# as a last resort, by the exit trap.
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
# Environment: IMGBK (default ../../imgbk; vpartclone is the symlink next to
# it), TMPDIR, IMGBK_KEEP=1 keeps the temp dir.

. "$(dirname "$0")/lib.sh"
VPC=$(dirname "$IMGBK")/vpartclone
VNC=$(dirname "$IMGBK")/vntfsclone
PY="python3 $HERE/pcimg.py"
TO="timeout -k 5 60"
FIX=$T/fix
mkdir -p "$FIX"

echo "# imgbk: $IMGBK; temp: $T"

# ---- helpers used inside cases ----------------------------------------------

# start_case: every case that mounts calls this first
start_case() {
	trap unmount_recorded EXIT
}

# mnt IMAGE DIR [OPTIONS...]: imgbk mount in the background (daemon), checked
mnt() {
	local img=$1 dir=$2
	shift 2
	mkdir -p "$dir" && track "$(cd "$dir" && pwd)"
	run 0 $TO "$IMGBK" mount "$@" "$img" "$dir" || return 1
	mountpoint -q "$dir" || fail "$dir is not a mount point after imgbk mount returned 0"
}

# range FILE BS SKIP [FLAGS]: one block of FILE to stdout
range() {
	dd if="$1" bs="$2" skip="$3" count=1 status=none ${4:+iflag=$4}
}

# ---- fixtures -------------------------------------------------------------------

FUSE_WHY=""
[ -c /dev/fuse ] || FUSE_WHY="/dev/fuse is missing"
command -v fusermount3 >/dev/null || FUSE_WHY="${FUSE_WHY:-fusermount3 is not installed}"
ROOT_WHY=""
[ "$(id -u)" = 0 ] || ROOT_WHY="not root (loop mounts need root)"

setup_fs() {
	local out=$FIX/fs.raw
	command -v partclone.extfs >/dev/null || skip "partclone.extfs not installed"
	$PY gen "$FIX/src" || return 1
	truncate -s 64M "$out" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 \
			-U 0b5e7c1a-1111-4222-8333-444455556666 -L imgbk-mt -d "$FIX/src" "$out" || return 1
	run 0 partclone.extfs -c -s "$out" -O "$FIX/fs.img" -L "$W/log" || { cat "$W/log"; return 1; }
	$PY hdr "$FIX/fs.img" >"$FIX/fs.hdr"
}

setup_fat() {
	local out=$FIX/fat.raw
	command -v mkfs.fat >/dev/null && command -v mcopy >/dev/null || skip "mkfs.fat or mcopy not installed"
	command -v partclone.fat32 >/dev/null || skip "partclone.fat32 not installed"
	need "$FIX/src/empty" || return 1
	truncate -s 48M "$out" &&
		run 0 mkfs.fat -F 32 -i 1b5e7c1a --invariant -n IMGBKFAT "$out" &&
		run 0 env MTOOLS_SKIP_CHECK=1 mcopy -m -s -i "$out" "$FIX/src/random" "$FIX/src/text" ::/ || return 1
	run 0 partclone.fat32 -c -s "$out" -O "$FIX/fat.img" -L "$W/log" || { cat "$W/log"; return 1; }
}

# bad.img: fs.img with one bit flipped in data group 2; prints the damaged device byte offset
make_bad() {
	local rank blk
	cp "$FIX/fs.img" "$1" || return 1
	. "$FIX/fs.hdr"
	rank=$((2 * BPC + 5))
	$PY flip "$1" $(($($PY dataoff "$1" $rank) + 100)) 0x10 || return 1
	blk=$($PY blockof "$1" $rank) || return 1
	echo $((blk * BS))
}

# ---- cases ----------------------------------------------------------------------

c_bytes() { # IMAGE RAW FILENAME
	start_case
	need "$FIX/$1" "$FIX/$2" || return 1
	mnt "$FIX/$1" m || return 1
	out_has "^   fsck" "mount .*-o loop,ro" || return 1
	[ "$(ls -A m)" = "$3" ] || fail "the mount holds [$(ls -A m)], expected [$3]"
	ls -a m | grep -qx '\.\.' || fail "ls -a does not list .."
	stat -f m >/dev/null || fail "statfs (stat -f) failed"
	[ "$(stat -c %s "m/$3")" = "$(stat -c %s "$FIX/$2")" ] || fail "size differs from the source"
	same "m/$3" "$FIX/$2"
}

c_loop_and_fsck() {
	local cmd
	start_case
	need "$FIX/fs.img" || return 1
	mnt "$FIX/fs.img" m || return 1
	cmd=$(grep -A1 'checked with this command' "$W/out" | tail -n 1 | sed 's/^ *//')
	echo "printed fsck command: $cmd"
	case $cmd in fsck.ext4\ -n\ /*/m/fs) ;; *) fail "unexpected fsck hint: $cmd" ;; esac
	run 0 $TO $cmd || return 1
	mkdir m2 && track "$PWD/m2"
	run 0 mount -o loop,ro m/fs m2 || return 1
	same m2/random/r1.bin "$FIX/src/random/r1.bin" && same m2/text/lorem.txt "$FIX/src/text/lorem.txt" ||
		return 1
	umount m2
}

# the printed check, mount and unmount commands as they are: the loop mount
# is stacked on the FUSE mount point, the unmount line removes both
c_printed_cmds() { # IMAGE FSTYPE FSCK
	local cmd un chk
	start_case
	need "$FIX/$1" || return 1
	mnt "$FIX/$1" m || return 1
	chk=$(grep -A1 'checked with this command' "$W/out" | tail -n 1 | sed 's/^ *//')
	cmd=$(grep -A2 'mounted as a read-only' "$W/out" | sed -n 3p | sed 's/^ *//')
	un=$(grep -A1 'When done' "$W/out" | tail -n 1 | sed 's/^ *//')
	printf 'printed:\n  %s\n  %s\n  %s\n' "$chk" "$cmd" "$un"
	case $chk in "$3 /"*) ;; *) fail "unexpected check hint: $chk" ;; esac || return 1
	case $cmd in "mount -t $2 -o loop,ro /"*) ;; *) fail "unexpected mount hint: $cmd" ;; esac || return 1
	run 0 $TO $chk || return 1
	if grep -qw "$2" /proc/filesystems || modprobe -q "$2" 2>/dev/null; then
		run 0 $cmd || return 1
		same m/random/r1.bin "$FIX/src/random/r1.bin" || return 1
	else
		# a kernel built without this driver (vfat here) cannot run the printed
		# mount command: read the same file with mtools from the virtual file,
		# and stack a tmpfs where the loop mount would be for the unmount line
		[ "$2" = vfat ] || skip "the kernel has no $2 driver"
		local src
		src=$(echo "$cmd" | cut -d' ' -f6)
		echo "# the kernel has no vfat driver: not run: $cmd; $src read with mcopy instead"
		run 0 env MTOOLS_SKIP_CHECK=1 mcopy -n -i "$src" ::/random/r1.bin r1.bin &&
			same r1.bin "$FIX/src/random/r1.bin" || return 1
		mount -t tmpfs -o size=1m imgbk-standin m || return 1
	fi
	eval "$un" || return 1
	! mountpoint -q m || fail "m is still mounted after the printed unmount command"
}

# 4 processes x 40 reads of 64 KiB at random offsets with O_DIRECT (each one a daemon request)
reader() { # ID
	local i blk nblk=$((64 * 1024 * 1024 / 65536))
	RANDOM=$((1000 + $1))
	for i in $(seq 40); do
		blk=$((RANDOM % nblk))
		range m/fs 65536 $blk direct >"r$1.a" || { echo "reader $1: read of block $blk failed"; return 1; }
		range "$FIX/fs.raw" 65536 $blk >"r$1.b"
		cmp -s "r$1.a" "r$1.b" || { echo "reader $1: 64 KiB block $blk differs"; return 1; }
	done
}

c_parallel() {
	local p pids="" bad=0
	start_case
	need "$FIX/fs.img" || return 1
	mnt "$FIX/fs.img" m || return 1
	for p in 1 2 3 4; do
		reader $p &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p" || bad=1; done
	[ $bad = 0 ]
}

c_erofs() {
	start_case
	need "$FIX/fs.img" || return 1
	mnt "$FIX/fs.img" m || return 1
	# the shell's exit code for a failed redirection differs between shells: only "not 0"
	sh -c 'echo x >> m/fs' 2>"$W/err" && fail "appending to m/fs succeeded"
	err_has 'Read-only file system' || return 1
	sh -c 'echo x > m/new' 2>"$W/err" && fail "creating m/new succeeded"
	err_has 'Read-only file system|Permission denied' || return 1
	run 1 python3 -c 'import os; os.open("m/fs", os.O_RDWR)' && err_has 'Read-only file system'
}

c_eio() {
	local off pid ok=0 i
	start_case
	need "$FIX/fs.img" "$FIX/fs.raw" || return 1
	off=$(make_bad bad.img) || return 1
	echo "damaged device byte $off"
	mkdir m && track "$PWD/m"
	# foreground: the log line goes to our stderr
	"$IMGBK" mount -f bad.img m >fg.out 2>fg.err &
	pid=$!
	for i in $(seq 100); do [ -e m/bad ] && break; sleep 0.1; done
	[ -e m/bad ] || { cat fg.err; fail "foreground mount did not come up"; return 1; }
	run 1 dd if=m/bad of=/dev/null bs=4096 skip=$((off / 4096)) count=1 || return 1
	err_has 'Input/output error' || return 1
	range m/bad 4096 0 >a && range "$FIX/fs.raw" 4096 0 >b && same a b || return 1
	range m/bad 4096 $((off / 4096 + 4096)) >a && range "$FIX/fs.raw" 4096 $((off / 4096 + 4096)) >b &&
		same a b || return 1
	grep -q 'checksum' fg.err || { echo "no log line naming the checksum on the daemon's stderr:"; show fg.err; ok=1; }
	kill -TERM $pid
	for i in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	wait $pid
	echo "foreground mount exit: $?"
	! mountpoint -q m || fail "still mounted after SIGTERM to the foreground mount" || return 1
	return $ok
}

c_cmdsubst() {
	local pid i
	start_case
	need "$FIX/fs.img" || return 1
	mkdir m && track "$PWD/m"
	(
		x=$("$IMGBK" mount "$FIX/fs.img" m)
		echo "rc=$? lines=$(echo "$x" | wc -l)" >subst.done
	) &
	pid=$!
	for i in $(seq 100); do [ -e subst.done ] && break; sleep 0.1; done
	if [ ! -e subst.done ]; then
		unmount_dir m
		wait $pid
		fail "\$(imgbk mount ...) did not return within 10 s (the daemon keeps stdout open?)"
		return 1
	fi
	cat subst.done
	grep -q '^rc=0 ' subst.done && [ -e m/fs ]
}

c_split_name() {
	start_case
	need "$FIX/fs.img" || return 1
	split -b 10M "$FIX/fs.img" sda1.ext4-ptcl-img.gz. || return 1
	mnt sda1.ext4-ptcl-img.gz.aa m || return 1
	[ "$(ls m)" = sda1.ext4-ptcl-img ] || fail "file name is '$(ls m)', expected sda1.ext4-ptcl-img" || return 1
	same m/sda1.ext4-ptcl-img "$FIX/fs.raw"
}

# the daemon killed with SIGKILL leaves a dead mount: a new mount there is refused, naming the cause
c_dead_daemon() {
	local pid
	start_case
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" dead.img && mnt "$PWD/dead.img" m || return 1
	pid=$(pgrep -f "mount $PWD/dead.img ") || fail "daemon process not found" || return 1
	echo "daemon pid: $pid"
	kill -KILL $pid
	sleep 0.2
	run 2 $TO "$IMGBK" mount "$FIX/fs.img" m && err_has 'not connected' 'fusermount3 -u'
}

c_refused_dirs() {
	need "$FIX/fs.img" || return 1
	mkdir full && touch full/x
	run 2 $TO "$IMGBK" mount "$FIX/fs.img" full && err_has 'not an empty directory' || return 1
	run 2 $TO "$IMGBK" mount "$FIX/fs.img" missing && err_has 'no such directory' || return 1
	run 2 $TO "$VPC" -m full "$FIX/fs.img" && err_has "argument -m/--mountpoint: 'full' is not an empty directory" ||
		return 1
	run 2 $TO "$VPC" -m missing "$FIX/fs.img" &&
		err_has "argument -m/--mountpoint: 'missing' is not an empty directory" || return 1
	! mountpoint -q full || fail "full got mounted"
}

c_compressed() {
	need "$FIX/fs.img" || return 1
	xz --format=lzma -1 -c "$FIX/fs.img" >fs.img.lzma && mkdir m || return 1
	track "$PWD/m"
	run 1 $TO "$IMGBK" mount fs.img.lzma m || return 1
	[ "$(wc -l <"$W/err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$W/err")" || return 1
	err_has 'compress' 'fs\.img\.lzma' 'xz -dc' || return 1
	! mountpoint -q m || fail "m got mounted"
}

c_index_stale() {
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" i.img || return 1
	run 0 $TO "$IMGBK" index i.img && out_has 'saved to .*i\.img\.ibkx \(built\)' || return 1
	[ -s i.img.ibkx ] || fail "no i.img.ibkx" || return 1
	run 0 $TO "$IMGBK" index i.img && out_has 'up to date' || return 1
	run 0 $TO "$IMGBK" index --json i.img && out_has '"state":"up-to-date","origin":"loaded"' || return 1
	touch -d '2020-01-01' i.img
	run 0 $TO "$IMGBK" index --json i.img && out_has '"state":"saved","origin":"rebuilt"' || return 1
	run 0 $TO "$IMGBK" index -i 2048 i.img && out_has 'saved to .* \(rebuilt' || return 1
	rm i.img.ibkx
	run 0 $TO "$IMGBK" index --json i.img && out_has '"state":"saved","origin":"built"' || return 1
	run 2 $TO "$IMGBK" index -i 12 i.img || return 1
	run 1 $TO "$IMGBK" index "$FIX/src/text/lorem.txt"
}

# a changed image (same size and time, other bytes) with a copied index: rebuilt, reads right
c_index_changed_mount() {
	start_case
	need "$FIX/fs.img" "$FIX/fat.img" || return 1
	cp "$FIX/fs.img" i.img && run 0 $TO "$IMGBK" index -q i.img || return 1
	cp i.img.ibkx keep.ibkx
	cp "$FIX/fat.img" i.img && cp keep.ibkx i.img.ibkx || return 1
	mnt i.img m -q || return 1
	same m/i "$FIX/fat.raw" || return 1
	cmp -s keep.ibkx i.img.ibkx && fail "the stale index was not rewritten"
	return 0
}

c_vpc_verbose() {
	need "$FIX/fs.img" || return 1
	run 0 $TO "$IMGBK" info "$FIX/fs.img" && cp "$W/out" info.out || return 1
	run 0 $TO "$VPC" -v "$FIX/fs.img" || return 1
	head -n "$(wc -l <info.out)" "$W/out" | cmp -s - info.out ||
		{ echo "vpartclone -v does not start with imgbk info's output:"; show "$W/out"; return 1; }
	run 0 $TO "$VNC" -v "$FIX/fs.img" && out_has '^Partclone Header'
}

c_vpc_crc() {
	need "$FIX/fs.img" || return 1
	run 0 $TO "$VPC" -c "$FIX/fs.img" && out_has ': OK' || return 1
	make_bad bad.img >/dev/null || return 1
	run 1 $TO "$VPC" -c bad.img && err_has 'checksum mismatch' || return 1
	mkdir m && track "$PWD/m"
	run 1 $TO "$VPC" -c -m m bad.img || return 1
	! mountpoint -q m || fail "a damaged image was mounted despite -c"
}

c_vpc_mount() {
	start_case
	need "$FIX/fs.img" || return 1
	mkdir m && track "$PWD/m"
	run 0 $TO "$VPC" -c -q -i 2048 -m m "$FIX/fs.img" || return 1
	out_has "Virtual partition provided as '.*/m/fs'" || return 1
	same m/fs "$FIX/fs.raw"
}

c_vpc_usage() {
	need "$FIX/fs.img" || return 1
	run 2 "$VPC" -i 500 "$FIX/fs.img" && err_has "too small" || return 1
	run 2 "$VPC" -i 1004 "$FIX/fs.img" && err_has "multiple of 8" || return 1
	run 2 "$VPC" && run 0 "$VPC" --help && out_has '--crc_check' '--index_size'
}

# ---- run ------------------------------------------------------------------------

tc "setup: ext4 64 MiB (mkfs.ext4 -d), partclone.extfs -c -> fs.img" setup_fs
tc "setup: FAT32 48 MiB (mkfs.fat + mcopy), partclone.fat32 -c -> fat.img" setup_fat
tc "imgbk index: built and saved, up to date (loaded), rebuilt after touch and for another -i, built when gone; -i 12 exit 2; not an image exit 1" c_index_stale
tc "imgbk mount: MOUNTPOINT not empty / missing -> exit 2; vpartclone -m -> exit 2 with the imagebackup message" c_refused_dirs
tc "imgbk mount: lzma-compressed image (no access points) -> exit 1, one line naming the file and the fix, nothing mounted" c_compressed
tc "vpartclone: -i 500 / -i 1004 -> exit 2; no image -> exit 2; --help lists the imagebackup options" c_vpc_usage
tc "vpartclone -v / vntfsclone -v on a partclone image: the header as imgbk info prints it" c_vpc_verbose
tc "vpartclone -c: OK on a good image; exit 1 on a damaged one, also with -m (nothing mounted)" c_vpc_crc

if [ -n "$FUSE_WHY" ]; then
	for d in "mount ext4: bytes" "mount FAT32: bytes" "loop mount + fsck" "printed mount command" \
		"parallel reads" "EROFS" "EIO on a damaged group" "split set name" "dead mount" "\$(imgbk mount)" "stale index + mount" \
		"vpartclone -c -m"; do
		tc_skip "$d" "$FUSE_WHY"
	done
else
	tc "imgbk mount ext4: one file 'fs' of the source fs's size, bytes equal the source fs" c_bytes fs.img fs.raw fs
	tc "imgbk mount FAT32: one file 'fat', bytes equal the source fs" c_bytes fat.img fat.raw fat
	if [ -n "$ROOT_WHY" ]; then
		tc_skip "loop mount + printed fsck command" "$ROOT_WHY"
		tc_skip "printed commands (ext4)" "$ROOT_WHY"
		tc_skip "printed commands (FAT32)" "$ROOT_WHY"
	else
		tc "imgbk mount ext4: printed fsck command passes; mount -o loop,ro m/fs; files equal the source" c_loop_and_fsck
		tc "imgbk mount ext4: the printed fsck, mount and unmount commands work as printed" c_printed_cmds fs.img ext4 "fsck.ext4 -n"
		tc "imgbk mount FAT32: the printed fsck, mount and unmount commands work as printed" c_printed_cmds fat.img vfat "fsck.fat -n"
	fi
	tc "imgbk mount: 4 processes x 40 random O_DIRECT 64 KiB reads equal the source" c_parallel
	tc "imgbk mount: writing fails with 'Read-only file system'" c_erofs
	tc "imgbk mount -f: damaged group -> dd 'Input/output error' + log line, other ranges read; SIGTERM unmounts" c_eio
	tc "imgbk mount of a split set sda1.ext4-ptcl-img.gz.aa: file 'sda1.ext4-ptcl-img', bytes right" c_split_name
	tc "imgbk mount on a dead mount (daemon SIGKILLed) -> exit 2 'not connected', says fusermount3 -u" c_dead_daemon
	tc "imgbk mount in \$(...) returns at once (the daemon does not hold stdout) and the mount is up" c_cmdsubst
	tc "imgbk mount: a copied index of another image is detected as stale and rebuilt; bytes right" c_index_changed_mount
	tc "vpartclone -c -q -i 2048 -m m: verifies, mounts, prints the hint, bytes equal the source" c_vpc_mount
fi

if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

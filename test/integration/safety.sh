#!/bin/sh
# test/integration/safety.sh - what imgbk does when things go wrong: damaged
# images restored with and without --rescue, write errors, refused targets,
# an image changed or removed under a mount, and the exit codes of every
# applet for the same failure.
#
#   IMGBK=/abs/path/imgbk sh test/integration/safety.sh
#
# Fixture: a deterministic ext4 (4 KiB blocks, 48 MiB, mkfs.ext4 -d of the
# pcimg.py tree, -N 1024 without a journal: 7.5 MiB used, nearly all of it
# file data, so that no damaged or compared block is zeros anyway) imaged
# with Debian's partclone.extfs (default: CRC32, 256 blocks per checksum),
# and partclone.restore of it into a zero file as the reference (its exit
# code is ignored; it must equal the source fs).
# Damaged copies get one bit flipped in the 6th block of a checksum group.
# Every case asserts the exit code, the message and the bytes of the target.
#
# Cases (root, loop devices, /dev/fuse, tmpfs, chattr and swapon are needed
# for some; each such case is skipped with the reason where they are not):
#   1. restore --rescue of an image with two bad groups to a new file, to a
#      loop device full of 0xAA and to stdout; restore without --rescue stops
#      at the first bad group and says how many blocks were written
#   2. write errors: full tmpfs, /dev/full, missing directory, immutable
#      file (chattr +i), read-only bind mount
#   3. refused targets write nothing: existing file, directory, the image
#      itself, bad header or bitmap CRC (nothing created, an existing file
#      left alone), mounted loop device, loop device with a mounted partition,
#      too small device, file attached to a loop device, active swap file and
#      swap device
#   4. mount: a group damaged in place, the image cut to half, the image
#      deleted - all while mounted: EIO where the data is bad or gone, right
#      bytes elsewhere, the daemon keeps serving
#   5. exit codes: one damaged image through every applet, a missing image,
#      usage errors of every applet
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
# Environment: IMGBK (default ../../imgbk), TMPDIR, IMGBK_KEEP=1 keeps the
# temp dir.

. "$(dirname "$0")/lib.sh"
PY="python3 $HERE/pcimg.py"
FIX=$T/fix
mkdir -p "$FIX"
# resources a case set up, released by the case's own EXIT trap and, as a
# last resort, by the script's: one path per line
for r in mounts loops swaps immutable; do : >"$T/$r"; done

release() {
	local x
	if [ -s "$T/immutable" ]; then
		while read -r x; do chattr -i "$x" 2>/dev/null; done <"$T/immutable"
	fi
	if [ -s "$T/swaps" ]; then
		while read -r x; do grep -q "^$x " /proc/swaps 2>/dev/null && swapoff "$x" 2>/dev/null; done <"$T/swaps"
	fi
	if [ -s "$T/mounts" ]; then
		tac "$T/mounts" | while read -r x; do unmount_dir "$x"; done
	fi
	if [ -s "$T/loops" ]; then
		tac "$T/loops" | while read -r x; do
			detach_ours "$x"
		done
	fi
	for x in immutable swaps mounts loops; do : >"$T/$x"; done
}

echo "# imgbk: $IMGBK; temp: $T"
# a private copy, so that a rebuild during the run does not disturb it (and
# the mount daemons are found by its unique path)
if [ -x "$IMGBK" ] && cp "$IMGBK" "$T/imgbk"; then
	IMG_BIN=$T/imgbk
else
	echo "# WARNING: $IMGBK is missing or not executable: every imgbk case will fail"
	IMG_BIN=$IMGBK
fi
IM="timeout -k 5 120 $IMG_BIN"

# ---- helpers -------------------------------------------------------------------

# every case that sets up a mount, loop, swap or immutable flag calls this first
start_case() {
	trap release EXIT
}

rec() { # LIST PATH
	echo "$2" >>"$T/$1"
}

attach() { # FILE [OPTIONS]: prints the loop device
	local dev
	dev=$(losetup -f --show "${@:2}" "$1") || return 1
	rec loops "$dev"
	echo "$dev"
}

# block-level helper over the fixture's header and bitmap (pcimg.py's reader)
cat >"$T/blocks.py" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import pcimg

def blocks_of_ranks(bm, lo, hi):
    """device block numbers of the used blocks with ranks lo <= rank < hi"""
    out, k = [], 0
    for i, byte in enumerate(bm):
        if not byte:
            continue
        for bit in range(8):
            if byte >> bit & 1:
                if lo <= k < hi:
                    out.append(i * 8 + bit)
                k += 1
        if k >= hi:
            break
    return out

def main():
    cmd, img = sys.argv[2], sys.argv[3]
    hd, bm = pcimg.header(img)
    bs, bpc, pop = hd['BS'], hd['BPC'], hd['POP']
    if cmd in ('zero', 'iszero', 'nonzero', 'range'):
        # zero|iszero FILE G...: the blocks of checksum groups G in FILE
        f = sys.argv[4] if cmd != 'range' else None
        blks = []
        for g in sys.argv[5 if f else 4:]:
            g = int(g)
            blks += blocks_of_ranks(bm, g * bpc, min(pop, (g + 1) * bpc))
    elif cmd == 'zerofrom':
        # zerofrom FILE RANK: every used block of rank >= RANK
        f = sys.argv[4]
        blks = blocks_of_ranks(bm, int(sys.argv[5]), pop)
    else:
        sys.exit('blocks.py: unknown command ' + cmd)
    if cmd == 'range':
        print(min(blks), max(blks), len(blks))
        return
    with open(f, 'r+b' if cmd not in ('iszero', 'nonzero') else 'rb') as fh:
        for b in blks:
            fh.seek(b * bs)
            if cmd == 'nonzero':
                if fh.read(bs).count(0) == bs:
                    sys.exit('block %d (byte %d) is all zeros' % (b, b * bs))
            elif cmd == 'iszero':
                d = fh.read(bs)
                if d.count(0) != bs:
                    sys.exit('block %d (byte %d) is not all zeros (%d nonzero bytes)'
                             % (b, b * bs, bs - d.count(0)))
            else:
                fh.write(bytes(bs))
    print('%d blocks' % len(blks))

main()
EOF
BLK="python3 $T/blocks.py $HERE"

# flip IMAGE GROUP: one bit in the 6th block of GROUP; prints the device block
flip_group() {
	local rank=$(($2 * BPC + 5))
	$PY flip "$1" $(($($PY dataoff "$1" $rank) + 100)) 0x10 && $PY blockof "$1" $rank
}

# dd_block FILE BLOCK: one fixture block (BS bytes) read with O_DIRECT to stdout
dd_block() {
	dd if="$1" bs="$BS" skip="$2" count=1 iflag=direct status=none
}

ref_block() {
	dd if="$FIX/ref.raw" bs="$BS" skip="$1" count=1 status=none
}

# fresh copy of the fixture image with groups G1 and G2 damaged
G1=1 G2=4
bad2() { # OUT
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" "$1" && flip_group "$1" $G1 >/dev/null && flip_group "$1" $G2 >/dev/null
}

# expected output of a --rescue restore: the reference with both groups zeroed
expect_rescue() { # OUT
	cp "$FIX/ref.raw" "$1" && $BLK zero "$FIX/fs.img" "$1" $G1 $G2 >/dev/null
}

thousands() {
	echo "$1" | sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta'
}

# ---- environment ---------------------------------------------------------------

ROOT_WHY="" LOOP_WHY="" FUSE_WHY=""
[ "$(id -u)" = 0 ] || ROOT_WHY="not root"
if [ -n "$ROOT_WHY" ]; then
	LOOP_WHY=$ROOT_WHY
elif ! command -v losetup >/dev/null; then
	LOOP_WHY="losetup not installed"
elif ! losetup -f >/dev/null 2>&1; then
	LOOP_WHY="no free loop device"
fi
[ -c /dev/fuse ] || FUSE_WHY="/dev/fuse is missing"
command -v fusermount3 >/dev/null || FUSE_WHY="${FUSE_WHY:-fusermount3 is not installed}"

# ---- fixtures ------------------------------------------------------------------

setup() {
	local out=$FIX/fs.raw
	command -v partclone.extfs >/dev/null || skip "partclone.extfs not installed"
	command -v partclone.restore >/dev/null || skip "partclone.restore not installed"
	$PY gen "$FIX/src" || return 1
	# few inodes and no journal: the used blocks are nearly all file data, so
	# a zeroed or misread group shows (inode tables and journal are zeros)
	truncate -s 48M "$out" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 -N 1024 -O ^has_journal \
			-U 0b5e7c1a-1111-4222-8333-444455556666 -L imgbk-sf -d "$FIX/src" "$out" || return 1
	run 0 partclone.extfs -c -s "$out" -O "$FIX/fs.img" -L "$W/log" || { cat "$W/log"; return 1; }
	$PY hdr "$FIX/fs.img" >"$FIX/fs.hdr" || return 1
	. "$FIX/fs.hdr"
	echo "fs.img: bs $BS total $TOTAL used $POP csum $CSMODE bpc $BPC groups $NGROUPS size $(stat -c %s "$FIX/fs.img")"
	[ "$CSMODE" != 0 ] && [ "$NGROUPS" -ge 8 ] || fail "expected a checksummed image with >= 8 groups" || return 1
	# the groups the cases damage or read have no all-zero block
	$BLK nonzero "$FIX/fs.img" "$out" 1 2 3 4 6 || fail "fixture: a block of groups 1-4, 6 is all zeros" || return 1
	[ $((POP * BS)) -ge $((4 << 20)) ] || fail "expected >= 4 MiB used" || return 1
	truncate -s "$DEVSIZE" "$FIX/ref.raw"
	partclone.restore -s "$FIX/fs.img" -O "$FIX/ref.raw" -L "$W/log" >/dev/null 2>&1
	echo "partclone.restore exit $? (ignored)"
	same "$FIX/ref.raw" "$out"
}

tc "setup: ext4 4 KiB blocks 48 MiB (mkfs.ext4 -d), partclone.extfs -c, reference = partclone.restore = source" setup
[ -e "$FIX/fs.hdr" ] && . "$FIX/fs.hdr"

# ---- 1. restore --rescue --------------------------------------------------------

# the stderr of a --rescue restore lists both groups, each with a block range
# holding the damaged block
rescue_msgs() { # BLK1 BLK2
	local b n=0 line a z
	err_has '2 bad checksum groups' || return 1
	for b in "$1" "$2"; do
		while read -r line; do
			a=$(echo "$line" | grep -oE 'blocks [0-9,]+ ?(-|–|\.\.|to) ?[0-9,]+' | head -n 1 | tr -d ,)
			[ -n "$a" ] || continue
			z=$(echo "$a" | grep -oE '[0-9]+' | sed -n 2p)
			a=$(echo "$a" | grep -oE '[0-9]+' | sed -n 1p)
			[ "$a" -le "$b" ] && [ "$b" -le "$z" ] && { n=$((n + 1)); break; }
		done <"$W/err"
	done
	[ $n = 2 ] || { echo "stderr does not list a 'blocks A-B' range for each damaged block ($1, $2):"; show "$W/err"; return 1; }
}

c_rescue_file() {
	local b1 b2
	need "$FIX/fs.img" "$FIX/ref.raw" || return 1
	cp "$FIX/fs.img" bad.img && b1=$(flip_group bad.img $G1) && b2=$(flip_group bad.img $G2) || return 1
	echo "damaged blocks $b1 (group $G1) and $b2 (group $G2)"
	run 1 $IM restore --rescue bad.img out.raw || return 1
	rescue_msgs "$b1" "$b2" && err_names bad.img || return 1
	$BLK iszero "$FIX/fs.img" out.raw $G1 $G2 || fail "the bad groups' blocks are not zeros" || return 1
	expect_rescue expect.raw || return 1
	same out.raw expect.raw || { cmp -l out.raw expect.raw | head -n 5; return 1; }
	# the expected file differs from the reference only there (the test is not vacuous)
	! cmp -s expect.raw "$FIX/ref.raw" || fail "reference check: zeroing the groups changed nothing"
}

c_rescue_loop() {
	local dev rc
	start_case
	need "$FIX/fs.img" "$FIX/ref.raw" || return 1
	bad2 bad.img || return 1
	head -c "$DEVSIZE" /dev/zero | tr '\0' '\252' >disk
	cp disk expect
	# partclone.restore writes the used blocks only, like imgbk on a device
	partclone.restore -s "$FIX/fs.img" -O expect -L log >/dev/null 2>&1
	$BLK zero "$FIX/fs.img" expect $G1 $G2 >/dev/null || return 1
	dev=$(attach disk) || skip "losetup failed"
	run 1 $IM restore --rescue bad.img "$dev"
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] && err_has '2 bad checksum groups' || return 1
	$BLK iszero "$FIX/fs.img" disk $G1 $G2 || fail "the bad groups' blocks on the device are not zeros (left 0xAA?)" ||
		return 1
	same disk expect || { cmp -l disk expect | head -n 5; return 1; }
}

c_rescue_stdout() {
	local rc
	bad2 bad.img && expect_rescue expect.raw || return 1
	$IM restore --rescue bad.img - >out.raw 2>"$W/err"
	rc=$?
	[ $rc = 1 ] || { echo "exit $rc, expected 1"; show "$W/err"; return 1; }
	err_has '2 bad checksum groups' || return 1
	[ "$(stat -c %s out.raw)" = "$DEVSIZE" ] || fail "stdout gave $(stat -c %s out.raw) bytes, expected $DEVSIZE" || return 1
	same out.raw expect.raw
}

c_norescue() {
	local done_ total
	bad2 bad.img || return 1
	run 1 $IM restore bad.img out.raw || return 1
	done_=$(thousands $((G1 * BPC))) total=$(thousands "$POP")
	err_has 'checksum mismatch' 'restore stopped' "$done_ of $total used blocks were written" 'out\.raw' || return 1
	[ "$(grep -ci 'checksum mismatch' "$W/err")" = 1 ] ||
		fail "expected one 'checksum mismatch' line: it did not stop at the first bad group" || return 1
	[ -f out.raw ] || fail "the partial target is gone" || return 1
	# written: exactly the used blocks before the bad group
	cp "$FIX/ref.raw" expect.raw && $BLK zerofrom "$FIX/fs.img" expect.raw $((G1 * BPC)) >/dev/null || return 1
	same out.raw expect.raw || { cmp -l out.raw expect.raw | head -n 5; return 1; }
}

# the stopped restore flushes what it wrote: fsync(fd of out.raw) = 0 after
# the "restore stopped" line is written
c_norescue_fsync() {
	local fd
	command -v strace >/dev/null || skip "strace not installed"
	bad2 bad.img || return 1
	run 1 timeout -k 5 120 strace -f -qq -o trace -s 200 -e trace=open,openat,write,fsync,fdatasync \
		"$IMG_BIN" restore bad.img out.raw && err_has 'restore stopped' || return 1
	fd=$(sed -nE 's/.*open(at)?\(.*"([^"]*\/)?out\.raw", .*\) = ([0-9]+)$/\3/p' trace | tail -n 1)
	[ -n "$fd" ] || { grep -n 'out\.raw' trace; fail "no open of out.raw in the trace"; return 1; }
	awk -v fd="$fd" '/write\(2, .*restore stopped/ { stop = 1 }
		stop && $0 ~ "f(data)?sync\\(" fd "\\) += 0$" { ok = 1 } END { exit !ok }' trace || {
		grep -nE 'restore stopped|sync\(' trace
		fail "no fsync($fd) of out.raw after the 'restore stopped' line"
		return 1
	}
}

tc "rescue: two bad groups -> restore --rescue FILE exit 1, '2 bad checksum groups' with both ranges; bytes = reference with those groups zeroed" c_rescue_file
if [ -n "$LOOP_WHY" ]; then
	tc_skip "rescue: to a loop device full of 0xAA" "$LOOP_WHY"
else
	tc "rescue: to a loop device full of 0xAA -> exit 1; bad groups' blocks zeros (not 0xAA), the rest as partclone.restore" c_rescue_loop
fi
tc "rescue: to stdout -> exit 1, device_size bytes, same as the file restore" c_rescue_stdout
tc "rescue: without --rescue -> exit 1 'restore stopped: N of M used blocks were written', exactly those blocks written" c_norescue
tc "rescue: without --rescue -> the partial target is fsync'ed after 'restore stopped' (strace)" c_norescue_fsync

# ---- 2. write errors ---------------------------------------------------------------

c_enospc_tmpfs() {
	local off
	start_case
	need "$FIX/fs.img" || return 1
	mkdir small && rec mounts "$PWD/small"
	mount -t tmpfs -o size=2m tmpfs small 2>merr || skip "cannot mount tmpfs: $(head -n 1 merr)"
	run 3 $IM restore "$FIX/fs.img" small/out.raw || return 1
	[ "$(grep -c . "$W/err")" = 1 ] || fail "expected one line on stderr, got $(grep -c . "$W/err")" || { show "$W/err"; return 1; }
	err_has 'small/out\.raw' 'No space left on device' 'byte [0-9]+' || return 1
	off=$(grep -oE 'byte [0-9]+' "$W/err" | grep -oE '[0-9]+')
	[ "$off" -gt 0 ] && [ "$off" -lt "$DEVSIZE" ] || fail "byte offset $off is outside the partition (0..$DEVSIZE)"
}

c_enospc_full() {
	local rc
	need "$FIX/fs.img" || return 1
	[ -c /dev/full ] || skip "/dev/full is missing"
	$IM restore "$FIX/fs.img" - >/dev/full 2>"$W/err"
	rc=$?
	[ $rc = 3 ] || { echo "exit $rc, expected 3"; show "$W/err"; return 1; }
	err_has 'No space left'
}

c_nodir() {
	need "$FIX/fs.img" || return 1
	run 3 $IM restore "$FIX/fs.img" no/such/dir/out.raw && err_has 'no/such/dir/out\.raw' 'No such file or directory' || return 1
	[ ! -e no ] || fail "the missing directory was created"
}

c_immutable() {
	local before
	start_case
	need "$FIX/fs.img" || return 1
	echo "precious data, not a partition" >target
	before=$(sha target)
	rec immutable "$PWD/target"
	chattr +i target 2>cerr || skip "chattr +i not supported on $(stat -f -c %T .): $(head -n 1 cerr)"
	run 3 $IM restore --force "$FIX/fs.img" target && err_has 'target' 'Operation not permitted' || return 1
	chattr -i target
	[ "$(sha target)" = "$before" ] || fail "the immutable file was changed"
}

c_robind() {
	start_case
	need "$FIX/fs.img" || return 1
	mkdir rw ro && rec mounts "$PWD/ro"
	mount --bind rw ro 2>merr && mount -o remount,ro,bind ro 2>>merr || skip "no read-only bind mount: $(head -n 1 merr)"
	run 3 $IM restore "$FIX/fs.img" ro/out.raw && err_has 'ro/out\.raw' 'Read-only file system' || return 1
	[ -z "$(ls -A rw)" ] || fail "something was created: $(ls -A rw)"
}

tc "write error: target on a 2 MiB tmpfs -> exit 3, one line: target, 'No space left on device', byte offset" c_enospc_tmpfs
tc "write error: restore IMG - > /dev/full -> exit 3 'No space left'" c_enospc_full
tc "write error: target in a missing directory -> exit 3 naming it, 'No such file or directory'" c_nodir
if [ -n "$ROOT_WHY" ]; then
	tc_skip "write error: immutable target (chattr +i)" "$ROOT_WHY"
	tc_skip "write error: read-only bind mount" "$ROOT_WHY"
else
	tc "write error: immutable existing file (chattr +i) with --force -> exit 3 'Operation not permitted', unchanged" c_immutable
	tc "write error: new file on a read-only bind mount -> exit 3 'Read-only file system', nothing created" c_robind
fi

# ---- 3. refused targets write nothing ------------------------------------------------

c_exists() {
	local before
	need "$FIX/fs.img" || return 1
	echo "precious data, not a partition" >target
	before=$(sha target)
	run 2 $IM restore "$FIX/fs.img" target && err_has 'target' 'already exists' '--force' || return 1
	[ "$(sha target)" = "$before" ] || fail "the existing file was changed"
}

c_mounted_loop() {
	local dev rc before
	start_case
	need "$FIX/fs.img" "$FIX/fs.raw" || return 1
	cp "$FIX/fs.raw" disk && before=$(sha disk)
	dev=$(attach disk) || skip "losetup failed"
	mkdir mnt && rec mounts "$PWD/mnt"
	mount -o ro "$dev" mnt 2>merr || skip "cannot mount ext4 here: $(head -n 1 merr)"
	run 2 $IM restore --force "$FIX/fs.img" "$dev" && err_has "$dev is mounted on .*/mnt"
	rc=$?
	umount mnt && losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha disk)" = "$before" ] || fail "the mounted device was written to"
}

c_mounted_part() {
	local dev rc before i sys part
	start_case
	need "$FIX/fs.img" "$FIX/fs.raw" || return 1
	command -v sfdisk >/dev/null || skip "sfdisk not installed"
	# 1 MiB + the partition + 1 MiB, one partition at 1 MiB holding the fs
	truncate -s $((DEVSIZE + (2 << 20))) disk
	echo "start=2048, size=$((DEVSIZE / 512)), type=83" | sfdisk -q disk >sf.log 2>&1 || { cat sf.log; skip "sfdisk failed"; }
	dd if="$FIX/fs.raw" of=disk bs=1M seek=1 conv=notrunc status=none || return 1
	before=$(sha disk)
	dev=$(attach disk -P) || skip "losetup -P failed"
	# the partition: in sysfs (partx -a if the scan did not add it), then a
	# node (made here with mknod where devtmpfs/udev did not make one)
	sys=/sys/block/${dev#/dev/}/${dev#/dev/}p1
	[ -e "$sys" ] || partx -a "$dev" 2>/dev/null
	for i in $(seq 30); do [ -e "$sys/dev" ] && break; sleep 0.1; done
	[ -e "$sys/dev" ] || skip "no partition ${dev}p1 in sysfs"
	part=${dev}p1
	for i in $(seq 10); do [ -b "$part" ] && break; sleep 0.1; done
	if [ ! -b "$part" ]; then
		part=$PWD/p1
		mknod "$part" b "$(cut -d: -f1 "$sys/dev")" "$(cut -d: -f2 "$sys/dev")" || skip "mknod failed"
	fi
	mkdir mnt && rec mounts "$PWD/mnt"
	mount -o ro "$part" mnt 2>merr || skip "cannot mount $part: $(head -n 1 merr)"
	echo "mounted $part ($(cat "$sys/dev")) of $dev"
	run 2 $IM restore --force "$FIX/fs.img" "$dev" && err_has "$dev" 'mounted|in use'
	rc=$?
	umount mnt && losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha disk)" = "$before" ] || fail "the disk was written to"
}

c_small_loop() {
	local dev rc before
	start_case
	need "$FIX/fs.img" || return 1
	head -c $((DEVSIZE - (1 << 20))) /dev/zero | tr '\0' '\252' >disk
	before=$(sha disk)
	dev=$(attach disk) || skip "losetup failed"
	run 2 $IM restore "$FIX/fs.img" "$dev" && err_has 'too small' "$dev" "$DEVSIZE"
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha disk)" = "$before" ] || fail "the small device was written to"
}

c_dir_target() {
	need "$FIX/fs.img" || return 1
	mkdir d
	run 2 $IM restore --force "$FIX/fs.img" d && err_has 'd is neither a regular file nor a block device' || return 1
	[ -d d ] && [ -z "$(ls -A d)" ] || fail "the directory was changed"
}

# bad header / bitmap: refused before the target is touched
c_bad_meta() { # header|bitmap
	local before
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" bad.img || return 1
	if [ "$1" = header ]; then
		$PY flip bad.img 25 0x20 # the NUL padding of ptc_version: only the CRC notices
	else
		$PY flip bad.img $((110 + 700)) 0x01
	fi || return 1
	run 1 $IM restore bad.img out.raw && err_has "$1 CRC" || return 1
	[ ! -e out.raw ] || fail "the target was created ($(stat -c %s out.raw) bytes)" || return 1
	echo "precious data, not a partition" >target
	before=$(sha target)
	run 1 $IM restore --force bad.img target && err_has "$1 CRC" || return 1
	[ "$(sha target)" = "$before" ] || fail "the existing target was changed (--force)" || return 1
	run 1 $IM restore bad.img - && err_has "$1 CRC" || return 1
	[ ! -s "$W/out" ] || fail "$(stat -c %s "$W/out") bytes were written to stdout"
}

# --force on the image itself (same path, or a hard link to it): restoring
# would overwrite the image while reading it
c_self() {
	local before rc
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" self.img && before=$(sha self.img) || return 1
	run 2 $IM restore --force self.img self.img
	rc=$?
	[ "$(sha self.img)" = "$before" ] || fail "the image was overwritten by its own restore (size now $(stat -c %s self.img))" || return 1
	[ $rc = 0 ] || return 1
	ln self.img link.img || return 1
	run 2 $IM restore --force self.img link.img
	rc=$?
	[ "$(sha self.img)" = "$before" ] || fail "the image was overwritten through a hard link to it" || return 1
	[ $rc = 0 ]
}

c_attached() {
	local dev rc before
	start_case
	need "$FIX/fs.img" || return 1
	truncate -s "$DEVSIZE" target && echo "precious" | dd of=target conv=notrunc status=none
	before=$(sha target)
	dev=$(attach target) || skip "losetup failed"
	run 2 $IM restore --force "$FIX/fs.img" target && err_has 'attached' "$dev"
	rc=$?
	losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha target)" = "$before" ] || fail "the attached file was changed"
}

c_swapfile() {
	local before rc
	start_case
	need "$FIX/fs.img" || return 1
	command -v mkswap >/dev/null && command -v swapon >/dev/null || skip "mkswap/swapon not installed"
	# (the file's name must not contain "swap": the message is matched)
	dd if=/dev/zero of=sw.file bs=1M count=16 status=none && chmod 600 sw.file &&
		mkswap sw.file >/dev/null 2>&1 || skip "mkswap failed"
	before=$(sha sw.file)
	rec swaps "$PWD/sw.file"
	swapon -p 0 sw.file 2>serr || skip "swapon failed: $(head -n 1 serr)"
	run 2 $IM restore --force "$FIX/fs.img" sw.file && err_has 'sw\.file' 'active swap'
	rc=$?
	swapoff sw.file
	[ $rc = 0 ] || return 1
	[ "$(sha sw.file)" = "$before" ] || fail "the swap file was changed"
}

c_swapdev() {
	local dev before rc
	start_case
	need "$FIX/fs.img" || return 1
	command -v mkswap >/dev/null && command -v swapon >/dev/null || skip "mkswap/swapon not installed"
	truncate -s $((DEVSIZE + (1 << 20))) disk
	dev=$(attach disk) || skip "losetup failed"
	mkswap "$dev" >/dev/null 2>&1 || skip "mkswap failed"
	before=$(sha disk)
	rec swaps "$dev"
	swapon -p 0 "$dev" 2>serr || skip "swapon failed: $(head -n 1 serr)"
	run 2 $IM restore "$FIX/fs.img" "$dev" && err_has "$dev" 'active swap|in use'
	rc=$?
	swapoff "$dev"
	losetup -d "$dev"
	[ $rc = 0 ] || return 1
	[ "$(sha disk)" = "$before" ] || fail "the swap device was written to"
}

tc "refused: existing file without --force -> exit 2 'already exists', unchanged" c_exists
tc "refused: directory as target -> exit 2, directory unchanged" c_dir_target
tc "refused: the image itself as target (--force; same path, hard link) -> exit 2, image unchanged" c_self
tc "refused: header CRC bad -> exit 1 'header CRC'; no file created, existing file (--force) unchanged, nothing on stdout" c_bad_meta header
tc "refused: bitmap CRC bad -> exit 1 'bitmap CRC'; no file created, existing file (--force) unchanged, nothing on stdout" c_bad_meta bitmap
if [ -n "$LOOP_WHY" ]; then
	for d in "mounted loop device" "loop device with a mounted partition" "too small loop device" \
		"file attached to a loop device" "active swap device"; do
		tc_skip "refused: $d" "$LOOP_WHY"
	done
else
	tc "refused: mounted loop device (--force) -> exit 2 'mounted', nothing written" c_mounted_loop
	tc "refused: loop device whose partition p1 is mounted (--force) -> exit 2 'mounted', nothing written" c_mounted_part
	tc "refused: loop device 1 MiB smaller than the partition -> exit 2 'too small', nothing written" c_small_loop
	tc "refused: file attached to a loop device (--force) -> exit 2 'attached' naming the loop, unchanged" c_attached
	tc "refused: loop device that is an active swap area -> exit 2 'swap', nothing written" c_swapdev
fi
if [ -n "$ROOT_WHY" ]; then
	tc_skip "refused: active swap file" "$ROOT_WHY"
else
	tc "refused: active swap file (--force) -> exit 2 'swap', unchanged" c_swapfile
fi

# ---- 4. mount: the image changes under the mount ---------------------------------

# mount_copy: copy the fixture to m.img, mount it on mnt; sets PID
mount_copy() {
	need "$FIX/fs.img" "$FIX/ref.raw" || return 1
	cp "$FIX/fs.img" "$PWD/m.img" && mkdir mnt && rec mounts "$PWD/mnt" || return 1
	run 0 $IM mount -q "$PWD/m.img" mnt || return 1
	mountpoint -q mnt || fail "mnt is not a mount point after imgbk mount returned 0" || return 1
	PID=$(pgrep -f -- "$IMG_BIN mount -q $PWD/m.img ") || fail "the mount daemon was not found" || return 1
	echo "daemon pid $PID"
}

# still_serving: the daemon lives, the mount is there, block 0 reads right
still_serving() {
	kill -0 "$PID" 2>/dev/null || fail "the daemon (pid $PID) is gone" || return 1
	pgrep -f -- "$IMG_BIN mount -q $PWD/m.img " >/dev/null || fail "pgrep finds no daemon" || return 1
	mountpoint -q mnt || fail "mnt is no longer a mount point" || return 1
	dd_block mnt/m 0 >a && ref_block 0 >b && same a b
}

# read_ok BLOCK: reads right through the mount (O_DIRECT: no page cache)
read_ok() {
	dd_block mnt/m "$1" >a 2>derr || { cat derr; fail "read of block $1 failed"; return 1; }
	ref_block "$1" >b
	[ "$(tr -d '\0' <b | head -c 1 | wc -c)" = 1 ] || fail "test bug: block $1 is all zeros in the reference" || return 1
	same a b || fail "block $1 differs from the reference"
}

# read_eio BLOCK: the read fails with EIO
read_eio() {
	dd_block mnt/m "$1" >a 2>"$W/err" && fail "read of block $1 succeeded ($(stat -c %s a) bytes)" && return 1
	err_has 'Input/output error'
}

# the device block of the 6th used block of group G
blk_of_group() {
	$PY blockof "$FIX/fs.img" $(($1 * BPC + 5))
}

c_mnt_corrupt() {
	local b0 b3 b6
	start_case
	mount_copy || return 1
	b0=$(blk_of_group 1) b3=$(blk_of_group 3) b6=$(blk_of_group 6)
	read_ok "$b0" || return 1
	flip_group m.img 3 >/dev/null || return 1
	echo "group 3 damaged in place (block $b3)"
	read_eio "$b3" || return 1
	read_ok "$b6" && read_ok "$b0" || return 1
	read_eio "$b3" || return 1 # and again: nothing cached as good
	still_serving
}

c_mnt_truncate() {
	local half lastgood firstbad rc
	start_case
	mount_copy || return 1
	half=$(($(stat -c %s m.img) / 2))
	truncate -s "$half" m.img || return 1
	# groups wholly before the cut read right, groups after it fail
	lastgood=$((((half - DATASTART) / (BPC * BS + CS)) - 1))
	firstbad=$((lastgood + 2))
	echo "cut at byte $half: groups 0..$lastgood intact, group $firstbad onward gone ($NGROUPS groups)"
	read_eio "$(blk_of_group $firstbad)" || return 1
	read_eio "$(blk_of_group $((lastgood + 1)))" || return 1 # the group the cut goes through
	read_eio "$(blk_of_group $((NGROUPS - 1)))" || return 1
	[ "$lastgood" -ge 1 ] || fail "test bug: no group before the cut" || return 1
	read_ok "$(blk_of_group 1)" && read_ok "$(blk_of_group "$lastgood")" || return 1
	# the whole file: EIO, not zeros; what came before the error is right
	dd if=mnt/m of=all bs=1M iflag=direct status=none 2>"$W/err"
	rc=$?
	[ $rc != 0 ] || fail "reading the whole file succeeded ($(stat -c %s all) bytes)" || return 1
	err_has 'Input/output error' || return 1
	echo "whole-file read stopped after $(stat -c %s all) bytes"
	cmp -n "$(stat -c %s all)" all "$FIX/ref.raw" || fail "the bytes before the error differ from the reference" ||
		return 1
	still_serving
}

c_mnt_deleted() {
	start_case
	mount_copy || return 1
	rm -f m.img m.img.ibkx || return 1
	read_ok "$(blk_of_group 2)" && read_ok "$(blk_of_group $((NGROUPS - 1)))" || return 1
	dd if=mnt/m of=all bs=1M iflag=direct status=none || fail "reading the whole file failed" || return 1
	same all "$FIX/ref.raw" || return 1
	still_serving
}

# all three on one mount, in turn: damaged, cut, deleted
c_mnt_all() {
	local half lastgood
	start_case
	mount_copy || return 1
	half=$(($(stat -c %s m.img) / 2))
	lastgood=$((((half - DATASTART) / (BPC * BS + CS)) - 1))
	[ "$lastgood" -ge 2 ] || fail "test bug: fewer than 3 groups before the cut" || return 1
	read_ok "$(blk_of_group 2)" || return 1
	flip_group m.img 1 >/dev/null && read_eio "$(blk_of_group 1)" || return 1
	truncate -s "$half" m.img && read_eio "$(blk_of_group $((NGROUPS - 1)))" || return 1
	rm -f m.img m.img.ibkx || return 1
	read_ok "$(blk_of_group 2)" && read_ok "$(blk_of_group "$lastgood")" || return 1
	read_eio "$(blk_of_group 1)" && read_eio "$(blk_of_group $((lastgood + 2)))" || return 1
	still_serving
}

if [ -n "$FUSE_WHY" ]; then
	for d in "group damaged in place" "image cut to half" "image deleted" "all three in turn"; do
		tc_skip "mount: $d" "$FUSE_WHY"
	done
else
	tc "mount: a group damaged in place while mounted -> its read EIO (twice), other groups read right, daemon alive" c_mnt_corrupt
	tc "mount: image cut to half while mounted -> EIO beyond the cut (not zeros), first half right, daemon alive, still mounted" c_mnt_truncate
	tc "mount: image deleted while mounted -> every byte still reads right, daemon alive" c_mnt_deleted
	tc "mount: damaged, then cut, then deleted on one mount -> EIO exactly where data is bad or gone, the rest right, daemon alive" c_mnt_all
fi

# ---- 5. exit codes --------------------------------------------------------------------

APPLETS="info verify restore mount index"

c_codes_data() {
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" bad.img && flip_group bad.img 2 >/dev/null || return 1
	run 0 $IM info bad.img || return 1
	run 1 $IM verify bad.img && err_has 'checksum mismatch' || return 1
	run 1 $IM verify --all bad.img && err_has 'checksum' || return 1
	run 1 $IM restore bad.img out.raw && err_has 'checksum mismatch' || return 1
	run 1 $IM restore --rescue bad.img out2.raw && err_has 'checksum' || return 1
	run 1 $IM restore bad.img - && err_has 'checksum mismatch'
}

c_codes_header() {
	need "$FIX/fs.img" || return 1
	cp "$FIX/fs.img" bad.img && $PY flip bad.img 25 0x20 || return 1
	mkdir mnt
	for a in info verify index; do
		run 1 $IM $a bad.img && err_has 'header CRC' || return 1
	done
	run 1 $IM restore bad.img out.raw && err_has 'header CRC' || return 1
	run 1 $IM mount bad.img mnt && err_has 'header CRC' || return 1
	! mountpoint -q mnt || { fusermount3 -u mnt; fail "a damaged image was mounted"; }
}

c_codes_missing() {
	local a
	mkdir mnt
	for a in info verify index; do
		run 3 $IM $a no-such.img && err_names no-such.img || { echo "(applet $a)"; return 1; }
	done
	run 3 $IM restore no-such.img out.raw && err_names no-such.img || return 1
	[ ! -e out.raw ] || fail "restore created its target" || return 1
	run 3 $IM mount no-such.img mnt && err_names no-such.img || return 1
	! mountpoint -q mnt || { fusermount3 -u mnt; fail "mounted something"; }
}

usage_rc() { # ARGS...: exit 2, something on stderr, nothing on stdout
	run 2 $IM "$@" || return 1
	[ -s "$W/err" ] || fail "imgbk $*: nothing on stderr" || return 1
	[ ! -s "$W/out" ] || { echo "imgbk $*: usage error printed to stdout:"; show "$W/out"; return 1; }
}

c_codes_usage() {
	local a bad=0
	need "$FIX/fs.img" || return 1
	mkdir mnt
	for a in $APPLETS; do
		usage_rc $a --no-such-option "$FIX/fs.img" || bad=1 # unknown long option
		usage_rc $a -Z "$FIX/fs.img" || bad=1               # unknown short option
		usage_rc $a || bad=1                                # missing IMAGE
	done
	usage_rc info "$FIX/fs.img" extra || bad=1
	usage_rc verify "$FIX/fs.img" extra || bad=1
	usage_rc index "$FIX/fs.img" extra || bad=1
	usage_rc restore "$FIX/fs.img" || bad=1 # missing TARGET
	usage_rc restore "$FIX/fs.img" a b || bad=1
	usage_rc mount "$FIX/fs.img" || bad=1 # missing MOUNTPOINT
	usage_rc mount -i || bad=1            # missing option argument
	usage_rc index -i || bad=1
	usage_rc mount -i 12 "$FIX/fs.img" mnt || bad=1
	mountpoint -q mnt && fusermount3 -u mnt && { echo "mount -i 12 mounted"; bad=1; }
	usage_rc nosuchapplet || bad=1
	usage_rc nosuchapplet "$FIX/fs.img" || bad=1
	usage_rc --no-such-option || bad=1
	run 2 $IM || bad=1 # no applet at all (the help goes to stderr)
	[ $bad = 0 ]
}

tc "exit codes: bad data group -> info 0; verify, verify --all, restore, restore --rescue, restore to stdout 1" c_codes_data
tc "exit codes: bad header CRC -> info, verify, index, restore, mount all 1" c_codes_header
tc "exit codes: missing image -> info, verify, index, restore, mount all 3 naming it (nothing created)" c_codes_missing
tc "exit codes: usage errors (unknown option, missing operand/argument, extra operand) -> 2 for every applet and 'imgbk nosuchapplet'" c_codes_usage

# ---------------------------------------------------------------------------------------
if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

#!/bin/sh
# test/demo.sh - "see it work": `make demo` (after `make deps` and `make all`).
#
# In a temporary directory: build a small ext4 filesystem with deterministic
# files, back it up with Debian's partclone.ext4, then use imgbk on the image:
# info, verify, restore (compared with the original), a zstd-compressed split
# copy (verify + restore from stdin), a damaged copy that verify rejects,
# and a whole Clonezilla backup folder of a GPT disk (info, verify, mount of
# the whole disk and its partitions, restore of one partition).
# Each command is echoed the way a user would type it. Exits non-zero if a
# step that should succeed fails (or if the damaged copy is not rejected).
#
#   IMGBK=/path/to/imgbk sh test/demo.sh     (default: ./imgbk of this repo)
#   KEEP=1 sh test/demo.sh                   keep the temporary directory
set -u

HERE=$(cd "$(dirname "$0")/.." && pwd)
IMGBK=${IMGBK:-$HERE/imgbk}
case $IMGBK in /*) ;; *) IMGBK=$(pwd)/$IMGBK ;; esac
CC=${CC:-cc}

die() { echo "demo: FAILED: $*" >&2; exit 1; }
[ -x "$IMGBK" ] || die "$IMGBK not found or not executable (run make first)"
for t in mkfs.ext4 debugfs partclone.ext4 partclone.vfat mkfs.vfat mcopy sfdisk parted zstd split cmp od "$CC"; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing (run make deps)"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/imgbk-demo.XXXXXX") || die "mktemp"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $T"; else rm -rf "$T"; fi; }
trap cleanup EXIT
trap 'exit 130' HUP INT PIPE TERM
cd "$T" || die "cd $T"

# Show "imgbk" in the commands, run the repo's binary.
mkdir bin && ln -s "$IMGBK" bin/imgbk || die "symlink"
PATH=$T/bin:$PATH
export PATH

# show CMD: echo it as typed, run it, fail the demo if it fails.
show() {
	printf "$ %s\n" "$1"
	eval "$1" || die "exit code $? from: $1"
}

exec 2>&1    # keep imgbk's messages in order with the commands, also in a log
echo "== imgbk demo (in $T)"
echo
echo "-- 1. a 64 MiB ext4 filesystem with some files, backed up by partclone"
"$CC" -O2 -o bin/gen "$HERE/test/bench/gen.c" || die "cannot compile test/bench/gen.c"
mkdir -p src/docs src/data src/logs
bin/gen rand 9000000 1 > src/data/random.bin
bin/gen rand 700000 2 > src/data/photo.jpg
bin/gen text 6000000 3 > src/logs/syslog
bin/gen text 1500000 4 > src/logs/auth.log
i=1
while [ $i -le 40 ]; do
	seq $i 7 $((i * 900)) > src/docs/note$i.txt
	i=$((i + 1))
done
echo "hello from imgbk" > src/README
find src -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +
UUID=5ef1c0de-1234-4321-abcd-0123456789ab
show "du -sh src/*"
show "truncate -s 64M fs.raw"
printf '$ %s\n' "mkfs.ext4 -q -d src fs.raw     # (also a fixed UUID and time: same image every run)"
E2FSPROGS_FAKE_TIME=1704067200 mkfs.ext4 -q -F -U $UUID -E hash_seed=$UUID -d src fs.raw ||
	die "mkfs.ext4"
# mke2fs 1.47.0 copies each file's ctime (the time this script made it)
# and atime: pin them, so the image is byte-identical on every run.
(cd src && find . | sed 's|^\.||; s|^$|/|' | while read -r f; do
	for fld in atime ctime mtime; do echo "sif $f $fld 20240101000000"; done
done) > times.cmd
E2FSPROGS_FAKE_TIME=1704067200 debugfs -w -f times.cmd fs.raw > debugfs.out 2>&1 || { cat debugfs.out >&2; die "debugfs"; }
echo "\$ partclone.ext4 -c -s fs.raw -O fs.pc -L partclone.log"
partclone.ext4 -c -s fs.raw -O fs.pc -L partclone.log > partclone.out 2>&1 ||
	{ cat partclone.out >&2; die "partclone.ext4 -c"; }
show "ls -l fs.raw fs.pc"
echo

echo "-- 2. what is in the image"
show "imgbk info fs.pc"
echo

echo "-- 3. check every checksum"
show "imgbk verify fs.pc"
echo

echo "-- 4. restore it and compare with the original"
show "imgbk restore fs.pc restored.raw"
show "cmp fs.raw restored.raw && echo identical"
echo

echo "-- 5. compressed and split in 4 MiB pieces"
show "zstd -q -T2 fs.pc -o fs.pc.zst"
show "split -b 4M fs.pc.zst fs.pc.zst."
show "ls -l fs.pc.zst.*"
show "imgbk verify fs.pc.zst.aa"
show "cat $(ls fs.pc.zst.?? | tr '\n' ' ')| imgbk restore - out.raw"
show "cmp fs.raw out.raw && echo identical"
echo

echo "-- 6. a damaged copy: one byte flipped in the data area"
# data starts after the 110-byte header, the bitmap and its 4-byte CRC
total=$(od -An -t u8 -j 60 -N 8 fs.pc | tr -d ' ')
size=$(wc -c < fs.pc)
start=$((110 + (total + 7) / 8 + 4))
off=$((start + (size - start) / 2))
show "cp fs.pc bad.pc"
old=$(od -An -t u1 -j $off -N 1 bad.pc | tr -d ' ')
new=$((old ^ 255))
printf '$ %s\n' "printf '\\$(printf %03o $new)' | dd of=bad.pc bs=1 seek=$off conv=notrunc   # byte $off: $old -> $new"
printf "\\$(printf %03o $new)" | dd of=bad.pc bs=1 seek=$off conv=notrunc status=none || die "dd"
echo "\$ imgbk verify bad.pc"
imgbk verify bad.pc
rc=$?
echo "\$ echo \$?"
echo "$rc"
[ "$rc" -eq 1 ] || die "verify of the damaged copy should exit 1, got $rc"
echo

echo "-- 7. a whole Clonezilla backup: a GPT disk with that ext4 and a FAT32 partition"
# The disk: a file partitioned by sfdisk, the partitions copied in. The
# backup folder: what Clonezilla's savedisk writes (disk, parts, the
# partition table three ways, one zstd partclone image per partition).
truncate -s 160M disk.raw || die "truncate"
printf 'label: gpt\nlabel-id: 0D15C0DE-1234-4A5B-8C9D-0123456789AB\n\nstart=2048, size=131072, type=L, uuid=0D15C0DE-0000-4000-8000-000000000001, name="root"\nstart=133120, size=131072, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=0D15C0DE-0000-4000-8000-000000000002, name="data"\n' >table.sf
sfdisk -q disk.raw <table.sf >/dev/null 2>&1 || die "sfdisk"
truncate -s 64M fat.raw && mkfs.vfat -F 32 -i 0d15c0de -n DEMO fat.raw >/dev/null || die "mkfs.vfat"
mcopy -i fat.raw src/README src/logs/auth.log :: || die "mcopy"
dd if=fs.raw of=disk.raw bs=512 seek=2048 conv=notrunc status=none &&
	dd if=fat.raw of=disk.raw bs=512 seek=133120 conv=notrunc status=none || die "dd"
mkdir 2026-12-04-09-img && cd 2026-12-04-09-img || die "mkdir"
echo sda >disk && echo "sda1 sda2" >parts
sfdisk -d ../disk.raw | sed 's#^\.\./disk\.raw#/dev/sda#; s#^device: .*#device: /dev/sda#' >sda-pt.sf
parted -s ../disk.raw unit s print 2>/dev/null | sed 's#^Disk .*disk\.raw:#Disk /dev/sda:#' >sda-pt.parted
dd if=../disk.raw of=sda-mbr bs=512 count=1 status=none && dd if=../disk.raw of=sda-gpt-1st bs=512 count=34 status=none
partclone.extfs -c -s ../fs.raw -o - -L ../l1 2>/dev/null | zstd -q -T0 -3 >sda1.ext4-ptcl-img.zst &&
	partclone.vfat -c -s ../fat.raw -o - -L ../l2 2>/dev/null | zstd -q -T0 -3 >sda2.vfat-ptcl-img.zst || die "partclone"
cd .. || die "cd"
show "ls 2026-12-04-09-img"
show "imgbk info 2026-12-04-09-img"
show "imgbk verify 2026-12-04-09-img"
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
	mkdir mnt
	show "imgbk mount 2026-12-04-09-img mnt"
	show "ls -l mnt"
	show "sfdisk -d mnt/sda | grep start="
	show "cmp mnt/sda disk.raw && echo 'the whole disk: identical'"
	show "cmp mnt/sda1 fs.raw && echo 'partition 1: identical'"
	show "fusermount3 -u mnt"
else
	echo "(no /dev/fuse here: the mount of the whole disk is skipped)"
fi
show "imgbk restore 2026-12-04-09-img/sda2 sda2.raw"
show "cmp sda2.raw fat.raw && echo identical"
echo
echo "== demo OK"

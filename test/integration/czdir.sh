#!/bin/sh
# test/integration/czdir.sh - Clonezilla image directories: imgbk info,
# verify and mount of a directory saved the way Clonezilla's scripts save
# one (../shared/CLONEZILLA.md), checked against the disks restored the way
# Clonezilla restores them.
#
#   IMGBK=/abs/path/imgbk sh test/integration/czdir.sh
#
# The saved disks (plain files, no loop devices):
#   sda  MBR, 96 MiB: sda1 ext4 (partclone | zstd -T0 -3), sda2 extended,
#        sda5 FAT16 (partclone | gzip | split -b 1MB: .aa .ab ...), sda6 swap
#        (mkswap -U -L, swappt-sda6.info), sda7 ext4 (partclone | lz4); a
#        random boot code and hidden data after the MBR (saved with -j2).
#   sdb  GPT, 160 MiB: sdb1 ext4 (zstd), sdb2 FAT32 (gzip), sdb3 NTFS
#        (ntfsclone --save-image | gzip | split, named .ntfs-img.aa), sdb4
#        random bytes saved by partclone.dd as sdb4.dd-ptcl-img.zst.
# The directory: disk, parts, NAME-pt.sf (sfdisk -d), NAME-pt.parted
# (parted -s unit s print), NAME-mbr, sda-hidden-data-after-mbr, sda2-ebr,
# sdb-gpt-1st, sdb-gpt-2nd, swappt-sda6.info, MD5SUMS (device paths as on
# the saving machine: /dev/sda...).
# The references: zeroed disks of the same size, sfdisk < NAME-pt.sf, the
# hidden data, every partition through partclone.restore / ntfsclone -r /
# dd (partclone.restore -O into a file made beforehand: into a new file it
# failed now and then here with "open_target ... error(2)"), then the saved 446 bytes of boot code (MBR and first EBR), as
# Clonezilla's restoredisk does. Swap stays zeros (imgbk does not write a
# swap signature into the whole-disk view).
#
# Also: whole-disk restore (files, a larger loop device, refusals), an lzip
# partition, partclone's XXH128 samples (test/data) in a saveparts directory.
#
# Output: "ok N - ..." per case and one line "N passed, M failed[, K skipped]".

. "$(dirname "$0")/lib.sh"
TO="timeout -k 5 120"
SRC=$T/src     # the disks as they were saved
CZ=$T/2026-12-04-10-img
REF=$T/ref     # the disks as Clonezilla restores them

# loop devices first: they may sit on files of a mount
unmount_recorded() {
	local m
	loop_detach_all
	[ -s "$T/mounts" ] && tac "$T/mounts" | while read -r m; do unmount_dir "$m"; done
	: >"$T/mounts"
	: >"$T/loops"
}

echo "# imgbk: $IMGBK; temp: $T"

# ---- geometry (sectors) ------------------------------------------------------
SDA_SECTORS=196608
SDA1_S=2048 SDA1_N=65536
SDA2_S=67584 SDA2_N=129024
SDA5_S=69632 SDA5_N=32768
SDA6_S=104448 SDA6_N=16384
SDA7_S=122880 SDA7_N=65536
SDB_SECTORS=327680
SDB1_S=2048 SDB1_N=65536
SDB2_S=67584 SDB2_N=81920
SDB3_S=149504 SDB3_N=65536
SDB4_S=215040 SDB4_N=8192

# ---- helpers -------------------------------------------------------------------

start_case() {
	trap unmount_recorded EXIT
}

# put FILE DISK START: write FILE into DISK at sector START
put() {
	dd if="$1" of="$2" bs=512 seek="$3" conv=notrunc status=none
}

# part DISK START COUNT: the sectors of one partition to stdout
part() {
	dd if="$1" bs=512 skip="$2" count="$3" status=none
}

# saved_sf DISKFILE NAME: sfdisk -d with the device paths of the saving machine
saved_sf() {
	sfdisk -d "$1" | sed -e "s#^$1\\([0-9]\\)#/dev/$2\\1#" -e "s#^device: .*#device: /dev/$2#"
}

tree() {
	mkdir -p "$1/docs" &&
		cp /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 "$1/docs/" &&
		head -c 3000000 /dev/urandom >"$1/random.bin" && echo "hello clonezilla" >"$1/hello.txt"
}

mkext4() { # FILE SECTORS LABEL
	truncate -s $(($2 * 512)) "$1" && mkfs.ext4 -q -F -L "$3" -d "$SRC/tree" "$1"
}

mkfat() { # FILE SECTORS BITS
	truncate -s $(($2 * 512)) "$1" && mkfs.fat -F "$3" -n CZFAT "$1" >/dev/null &&
		MTOOLS_SKIP_CHECK=1 mcopy -s -i "$1" "$SRC/tree/docs" "$SRC/tree/hello.txt" "$SRC/tree/random.bin" ::/
}

mkntfs_file() { # FILE SECTORS
	truncate -s $(($2 * 512)) "$1" && mkntfs -q -F -f -L CZNTFS "$1" >/dev/null &&
		ntfscp -f "$1" "$SRC/tree/random.bin" random.bin >/dev/null 2>&1
}

# ---- setup: the disks, saved as Clonezilla saves them ------------------------

make_sda() {
	local d=$SRC/sda.img
	truncate -s $((SDA_SECTORS * 512)) "$d" || return 1
	printf 'label: dos\nlabel-id: 0x5eed1234\nunit: sectors\n\n' >"$W/sf"
	printf 'p1 : start=%d, size=%d, type=83, bootable\n' $SDA1_S $SDA1_N >>"$W/sf"
	printf 'p2 : start=%d, size=%d, type=5\n' $SDA2_S $SDA2_N >>"$W/sf"
	printf 'p5 : start=%d, size=%d, type=6\n' $SDA5_S $SDA5_N >>"$W/sf"
	printf 'p6 : start=%d, size=%d, type=82\n' $SDA6_S $SDA6_N >>"$W/sf"
	printf 'p7 : start=%d, size=%d, type=83\n' $SDA7_S $SDA7_N >>"$W/sf"
	sed "s#^p#$d#" "$W/sf" | sfdisk -q "$d" >/dev/null 2>&1 || { echo "sfdisk failed"; return 1; }
	head -c 440 /dev/urandom >"$W/boot" && put "$W/boot" "$d" 0 &&
		head -c $((2047 * 512)) /dev/urandom >"$W/hidden" && put "$W/hidden" "$d" 1 || return 1
	mkext4 "$SRC/sda1" $SDA1_N czroot && mkfat "$SRC/sda5" $SDA5_N 16 && mkext4 "$SRC/sda7" $SDA7_N czhome ||
		return 1
	truncate -s $((SDA6_N * 512)) "$SRC/sda6" &&
		mkswap -U 1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516 -L czswap "$SRC/sda6" >/dev/null || return 1
	put "$SRC/sda1" "$d" $SDA1_S && put "$SRC/sda5" "$d" $SDA5_S && put "$SRC/sda6" "$d" $SDA6_S &&
		put "$SRC/sda7" "$d" $SDA7_S
}

make_sdb() {
	local d=$SRC/sdb.img
	truncate -s $((SDB_SECTORS * 512)) "$d" || return 1
	{
		printf 'label: gpt\nlabel-id: 6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9\nunit: sectors\n\n'
		printf 'p1 : start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=11111111-2222-4333-8444-555555555501, name="root"\n' $SDB1_S $SDB1_N
		printf 'p2 : start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=11111111-2222-4333-8444-555555555502, name="fat"\n' $SDB2_S $SDB2_N
		printf 'p3 : start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=11111111-2222-4333-8444-555555555503, name="windows", attrs="RequiredPartition"\n' $SDB3_S $SDB3_N
		printf 'p4 : start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=11111111-2222-4333-8444-555555555504, name="raw"\n' $SDB4_S $SDB4_N
	} >"$W/sf"
	sed "s#^p#$d#" "$W/sf" | sfdisk -q "$d" >/dev/null 2>&1 || { echo "sfdisk (gpt) failed"; return 1; }
	head -c 440 /dev/urandom >"$W/boot" && put "$W/boot" "$d" 0 || return 1
	mkext4 "$SRC/sdb1" $SDB1_N czdata && mkfat "$SRC/sdb2" $SDB2_N 32 && mkntfs_file "$SRC/sdb3" $SDB3_N ||
		return 1
	head -c $((SDB4_N * 512)) /dev/urandom >"$SRC/sdb4" || return 1
	put "$SRC/sdb1" "$d" $SDB1_S && put "$SRC/sdb2" "$d" $SDB2_S && put "$SRC/sdb3" "$d" $SDB3_S &&
		put "$SRC/sdb4" "$d" $SDB4_S
}

save_tables() { # NAME
	local d=$SRC/$1.img n=$1
	saved_sf "$d" "$n" >"$CZ/$n-pt.sf" &&
		parted -s "$d" unit s print 2>/dev/null | sed "s#^Disk $d:#Disk /dev/$n:#" >"$CZ/$n-pt.parted" &&
		dd if="$d" of="$CZ/$n-mbr" bs=512 count=1 status=none
}

save_dir() {
	mkdir -p "$CZ" || return 1
	echo "sda sdb" >"$CZ/disk" && echo "sda1 sda5 sda7 sdb1 sdb2 sdb3 sdb4 " >"$CZ/parts" || return 1
	save_tables sda && save_tables sdb || return 1
	dd if="$SRC/sda.img" of="$CZ/sda-hidden-data-after-mbr" skip=1 bs=512 count=2047 status=none &&
		dd if="$SRC/sda.img" of="$CZ/sda2-ebr" skip=$SDA2_S bs=512 count=1 status=none &&
		dd if="$SRC/sdb.img" of="$CZ/sdb-gpt-1st" bs=512 count=34 status=none &&
		dd if="$SRC/sdb.img" of="$CZ/sdb-gpt-2nd" skip=$((SDB_SECTORS - 32)) bs=512 count=33 status=none ||
		return 1
	printf 'UUID="1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"\nLABEL="czswap"\n' >"$CZ/swappt-sda6.info"
	partclone.extfs -c -s "$SRC/sda1" -o - -L "$W/l1" 2>/dev/null | zstd -q -T0 -3 >"$CZ/sda1.ext4-ptcl-img.zst" &&
		partclone.vfat -c -s "$SRC/sda5" -o - -L "$W/l5" 2>/dev/null | gzip -c |
		(cd "$CZ" && split -a 2 -b 1MB - sda5.vfat-ptcl-img.gz.) &&
		partclone.extfs -c -s "$SRC/sda7" -o - -L "$W/l7" 2>/dev/null | lz4 -q >"$CZ/sda7.ext4-ptcl-img.lz4" &&
		partclone.extfs -c -s "$SRC/sdb1" -o - -L "$W/l8" 2>/dev/null | zstd -q -T0 -3 >"$CZ/sdb1.ext4-ptcl-img.zst" &&
		partclone.vfat -c -s "$SRC/sdb2" -o - -L "$W/l9" 2>/dev/null | gzip -c >"$CZ/sdb2.vfat-ptcl-img.gz" &&
		ntfsclone -f --save-image -o - "$SRC/sdb3" 2>/dev/null | gzip -c |
		(cd "$CZ" && split -a 2 -b 2MB - sdb3.ntfs-img.) &&
		partclone.dd -s "$SRC/sdb4" -o - -L "$W/l10" 2>/dev/null | zstd -q -T0 -3 >"$CZ/sdb4.dd-ptcl-img.zst" ||
		{ echo "saving a partition failed"; return 1; }
	(cd "$CZ" && md5sum -- * >MD5SUMS.new && mv MD5SUMS.new MD5SUMS)
}

setup_save() {
	for t in sfdisk parted partclone.extfs partclone.vfat partclone.dd ntfsclone mkntfs ntfscp mkfs.fat mcopy \
		mkswap zstd lz4 gzip split md5sum; do
		command -v $t >/dev/null || { echo "$t is not installed (test/deps.sh)"; return 1; }
	done
	mkdir -p "$SRC" && tree "$SRC/tree" && make_sda && make_sdb && save_dir
}

# ---- setup: the references, restored as Clonezilla restores them -------------

restore_into() { # DISK START: stdin = the partition's bytes as a restore tool writes them to a file
	cat >"$W/restored" && put "$W/restored" "$1" "$2"
}

ref_sda() {
	local d=$REF/sda.img
	truncate -s $((SDA_SECTORS * 512)) "$d" && sfdisk -q --force "$d" <"$CZ/sda-pt.sf" >"$W/sfdisk.log" 2>&1 ||
		{ cat "$W/sfdisk.log"; fail "sfdisk (MBR) of the reference"; return 1; }
	put "$CZ/sda-hidden-data-after-mbr" "$d" 1 || return 1
	zstd -dc "$CZ/sda1.ext4-ptcl-img.zst" >"$W/img" && : >"$W/p" && pc_restore partclone.extfs -r -C -s "$W/img" -O "$W/p" -L "$W/l" >/dev/null 2>&1 &&
		put "$W/p" "$d" $SDA1_S && rm -f "$W/p" || { tail -5 "$W/l"; fail "restore of sda1"; return 1; }
	cat "$CZ"/sda5.vfat-ptcl-img.gz.* | gzip -dc >"$W/img" && : >"$W/p" && pc_restore partclone.vfat -r -C -s "$W/img" -O "$W/p" -L "$W/l" >/dev/null 2>&1 &&
		put "$W/p" "$d" $SDA5_S && rm -f "$W/p" || { tail -5 "$W/l"; fail "restore of sda5"; return 1; }
	lz4 -dc "$CZ/sda7.ext4-ptcl-img.lz4" >"$W/img" && : >"$W/p" && pc_restore partclone.extfs -r -C -s "$W/img" -O "$W/p" -L "$W/l" >/dev/null 2>&1 &&
		put "$W/p" "$d" $SDA7_S && rm -f "$W/p" || { tail -5 "$W/l"; fail "restore of sda7"; return 1; }
	dd if="$CZ/sda-mbr" of="$d" bs=446 count=1 conv=notrunc status=none &&
		dd if="$CZ/sda2-ebr" of="$d" bs=1 count=446 seek=$((SDA2_S * 512)) conv=notrunc status=none
}

ref_sdb() {
	local d=$REF/sdb.img
	truncate -s $((SDB_SECTORS * 512)) "$d" || return 1
	grep -v last-lba "$CZ/sdb-pt.sf" | sfdisk -q --wipe always "$d" >"$W/sfdisk.log" 2>&1 ||
		{ cat "$W/sfdisk.log"; fail "sfdisk (GPT) of the reference"; return 1; }
	zstd -dc "$CZ/sdb1.ext4-ptcl-img.zst" >"$W/img" && : >"$W/p" && pc_restore partclone.extfs -r -C -s "$W/img" -O "$W/p" -L "$W/l" >/dev/null 2>&1 &&
		put "$W/p" "$d" $SDB1_S && rm -f "$W/p" || { tail -5 "$W/l"; fail "restore of sdb1"; return 1; }
	gzip -dc "$CZ/sdb2.vfat-ptcl-img.gz" >"$W/img" && : >"$W/p" && pc_restore partclone.vfat -r -C -s "$W/img" -O "$W/p" -L "$W/l" >/dev/null 2>&1 &&
		put "$W/p" "$d" $SDB2_S && rm -f "$W/p" || { tail -5 "$W/l"; fail "restore of sdb2"; return 1; }
	cat "$CZ"/sdb3.ntfs-img.* | gzip -dc | ntfsclone -r -O "$W/p" - >"$W/n.log" 2>&1 &&
		put "$W/p" "$d" $SDB3_S && rm -f "$W/p" || { tail -5 "$W/n.log"; fail "restore of sdb3"; return 1; }
	zstd -dc "$CZ/sdb4.dd-ptcl-img.zst" >"$W/p" && put "$W/p" "$d" $SDB4_S && rm -f "$W/p" || return 1
	dd if="$CZ/sdb-mbr" of="$d" bs=446 count=1 conv=notrunc status=none
}

setup_ref() {
	need "$CZ/MD5SUMS" || return 1
	mkdir -p "$REF" && ref_sda && ref_sdb
}

# ---- mounts ----------------------------------------------------------------------

FUSE_WHY=""
[ -c /dev/fuse ] || FUSE_WHY="/dev/fuse is missing"
command -v fusermount3 >/dev/null || FUSE_WHY="${FUSE_WHY:-fusermount3 is not installed}"

# mnt DIR MNT [OPTIONS]: imgbk mount (daemon), checked
mnt() {
	local dir=$1 m=$2
	shift 2
	mkdir -p "$m" && echo "$(cd "$m" && pwd)" >>"$T/mounts"
	run 0 $TO "$IMGBK" mount "$@" "$dir" "$m" || return 1
	mountpoint -q "$m" || fail "$m is not a mount point after imgbk mount returned 0"
}

MNT=$T/mnt

# ---- cases -----------------------------------------------------------------------

case_info_text() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" info "$CZ" || return 1
	out_has '^sda +96\.0 MB +196608 +MBR +0x5eed1234' '^sdb +160\.0 MB +327680 +GPT +6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9' \
		'^sda1 +2048 +32\.0 MB +ext4 +partclone +zst +1 ' '^sda2 +67584 +63\.0 MB +extended' \
		'^sda5 +69632 +16\.0 MB +vfat +partclone +gz +[2-9] ' \
		'^sda6 +104448 +8\.0 MB +swap \(not saved; UUID 1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516, label "czswap"\)' \
		'^sda7 +122880 +32\.0 MB +ext4 +partclone +lz4 +1 ' '^sdb3 +149504 +32\.0 MB +ntfs +ntfsclone +gzip +[2-9] ' \
		'^sdb4 +215040 +4\.0 MB +dd +partclone\.dd +zst +1 ' 'CRC32' || return 1
	[ "$(grep -c '^sd[ab][0-9]' "$W/out")" = 9 ] || fail "expected 9 partition lines"
}

case_info_json() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" info --json "$CZ" || return 1
	python3 - "$W/out" <<'EOF' || return 1
import json, sys
j = json.load(open(sys.argv[1]))
d = {x["name"]: x for x in j["disks"]}
assert d["sda"]["label"] == "MBR" and d["sda"]["size"] == 196608 * 512 and d["sda"]["size_from_parted"], d["sda"]
assert d["sdb"]["label"] == "GPT" and d["sdb"]["sectors"] == 327680, d["sdb"]
p = {x["name"]: x for x in j["partitions"]}
assert p["sda1"]["start"] == 2048 * 512 and p["sda1"]["fs"] == "ext4" and p["sda1"]["compressor"] == "zst", p["sda1"]
assert p["sda1"]["checksum"] == "CRC32" and p["sda1"]["used_bytes"] > 3000000 and p["sda1"]["bootable"], p["sda1"]
assert p["sda2"]["kind"] == "extended" and p["sda6"]["kind"] == "swap" and p["sda6"]["swap_label"] == "czswap"
assert p["sda5"]["pieces"] >= 2 and p["sda5"]["compressor"] == "gz" and p["sda5"]["tool"] == "partclone"
assert p["sdb3"]["tool"] == "ntfsclone" and p["sdb3"]["format"] == "ntfsclone" and p["sdb3"]["compressor"] == "gzip"
assert p["sdb4"]["raw"] and p["sdb4"]["tool"] == "partclone.dd", p["sdb4"]
assert p["sdb3"]["partition_name"] == "windows" and p["sdb3"]["uuid"] == "11111111-2222-4333-8444-555555555503"
assert all(x["error"] is None for x in j["partitions"]), [x["error"] for x in j["partitions"]]
EOF
}

case_verify_dir() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" verify -q "$CZ" || return 1
	out_has '^sda1: OK: partclone EXTFS' '^sda5: OK: ' '^sdb3: OK: ntfsclone' '^sdb4: OK: ' \
		"^MD5SUMS: $(ls "$CZ" | grep -vc MD5SUMS) files match, 0 do not" \
		"7 partition images: 7 OK, 0 damaged, 0 missing" || return 1
	! grep -q '^B3SUMS' "$W/out" || fail "B3SUMS mentioned although there is none"
}

case_verify_sums_bad() {
	need "$CZ/MD5SUMS" || return 1
	mkdir d && ln "$CZ"/* d/ && rm d/MD5SUMS && sed '1s/^./0/;1s/^0\(.*\)/f\1/' "$CZ/MD5SUMS" >d/MD5SUMS &&
		echo "0123456789abcdef0123456789abcdef01234567  disk" >d/SHA1SUMS && echo x >d/B3SUMS || return 1
	run 1 "$IMGBK" verify -q d || return 1
	out_has 'MD5SUMS: .*: checksum does NOT match' 'MD5SUMS: [0-9]+ files match, 1 do not' \
		'SHA1SUMS: disk: checksum does NOT match' || return 1
	command -v b3sum >/dev/null || out_has '^B3SUMS: not checked \(the b3sum tool is not installed\)'
}

case_part_naming() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" info "$CZ/sda7" && out_has 'Partclone Header' || return 1
	run 0 "$IMGBK" verify "$CZ/sdb3" && out_has 'OK' || return 1
	run 0 "$IMGBK" restore -q "$CZ/sda1" "$W/sda1.raw" || return 1
	part "$REF/sda.img" $SDA1_S $SDA1_N | cmp - "$W/sda1.raw" || fail "restore DIR/sda1 differs from the reference"
	run 1 "$IMGBK" info "$CZ/sda6" && err_has 'sda6: no image file for this partition'
}

case_mount_parts() {
	start_case
	need "$REF/sdb.img" || return 1
	mnt "$CZ" "$MNT" || return 1
	out_has "$MNT/sda +\(96\.0 MB, the whole disk\)" "$MNT/sda1 +\(32\.0 MB, a partition\)" || return 1
	[ "$(ls "$MNT" | tr '\n' ' ')" = "sda sda1 sda5 sda7 sdb sdb1 sdb2 sdb3 sdb4 " ] ||
		fail "files in the mount: $(ls "$MNT" | tr '\n' ' ')" || return 1
	local p s n
	for p in sda1:$SDA1_S:$SDA1_N sda5:$SDA5_S:$SDA5_N sda7:$SDA7_S:$SDA7_N sdb1:$SDB1_S:$SDB1_N \
		sdb2:$SDB2_S:$SDB2_N sdb4:$SDB4_S:$SDB4_N; do
		IFS=: read -r name s n <<<"$p"
		part "$REF/${name%[0-9]}.img" "$s" "$n" | cmp - "$MNT/$name" || fail "$MNT/$name differs" || return 1
	done
	# ntfsclone's image holds the volume, one sector short of the partition
	part "$REF/sdb.img" $SDB3_S $SDB3_N | cmp -n "$(stat -c %s "$MNT/sdb3")" - "$MNT/sdb3" ||
		fail "$MNT/sdb3 differs"
}

case_mount_disks() {
	start_case
	need "$REF/sdb.img" || return 1
	mnt "$CZ" "$MNT" -q || return 1
	[ "$(stat -c %s "$MNT/sda")" = $((SDA_SECTORS * 512)) ] || fail "size of $MNT/sda" || return 1
	cmp "$REF/sda.img" "$MNT/sda" || fail "$MNT/sda differs from the restored reference disk" || return 1
	cmp "$REF/sdb.img" "$MNT/sdb" || fail "$MNT/sdb differs from the restored reference disk" || return 1
	# QEMU opens the virtual disk as a raw read-only drive and reads what the reference holds
	command -v qemu-img >/dev/null || fail "qemu-img is not installed (qemu-utils, test/deps.sh)" || return 1
	qemu-img compare -q -f raw -F raw "$MNT/sda" "$REF/sda.img" ||
		fail "qemu-img compare: $MNT/sda is not the reference disk to QEMU" || return 1
	sfdisk -d "$MNT/sda" | sed -e "s#^$MNT/sda#/dev/sda#" -e "s#^device: .*#device: /dev/sda#" |
		diff - "$CZ/sda-pt.sf" || fail "sfdisk -d of $MNT/sda is not the saved sda-pt.sf" || return 1
	sfdisk -d "$MNT/sdb" | sed -e "s#^$MNT/sdb#/dev/sdb#" -e "s#^device: .*#device: /dev/sdb#" |
		diff - "$CZ/sdb-pt.sf" || fail "sfdisk -d of $MNT/sdb is not the saved sdb-pt.sf"
}

# losetup -r -P where the kernel scans loop devices for partitions; where it
# does not (containers), one read-only loop device per partition at its offset
case_losetup_partitions() {
	start_case
	need "$REF/sdb.img" || return 1
	mnt "$CZ" "$MNT" -q || return 1
	local l p s n
	l=$(losetup -r -P -f --show "$MNT/sda") || fail "losetup -r -P of $MNT/sda" || return 1
	echo "$l" >>"$T/loops"
	sleep 1
	if [ -b "${l}p1" ]; then
		cmp "${l}p1" "$MNT/sda1" && cmp "${l}p5" "$MNT/sda5" && cmp "${l}p7" "$MNT/sda7" ||
			fail "a partition of the loop device differs"
		return
	fi
	echo "no partition scan of loop devices here: one loop device per partition"
	for p in sda1:$SDA1_S:$SDA1_N sda5:$SDA5_S:$SDA5_N sda7:$SDA7_S:$SDA7_N; do
		IFS=: read -r name s n <<<"$p"
		l=$(losetup -r -f --show -o $((s * 512)) --sizelimit $((n * 512)) "$MNT/sda") ||
			fail "losetup -o of $MNT/sda" || return 1
		echo "$l" >>"$T/loops"
		cmp "$l" "$MNT/$name" || fail "$l (offset of $name in $MNT/sda) differs from $MNT/$name" || return 1
	done
}

case_missing_image() {
	start_case
	need "$REF/sda.img" || return 1
	mkdir d && ln "$CZ"/* d/ && rm d/sda7.ext4-ptcl-img.lz4 || return 1
	mnt d "$MNT" -q || return 1
	[ ! -e "$MNT/sda7" ] || fail "$MNT/sda7 exists without its image" || return 1
	part "$REF/sda.img" $SDA1_S $SDA1_N | cmp - <(part "$MNT/sda" $SDA1_S $SDA1_N) || fail "sda1 range of $MNT/sda" ||
		return 1
	if dd if="$MNT/sda" of=/dev/null bs=512 skip=$((SDA7_S + 8)) count=8 2>"$W/dd.err"; then
		fail "reading the range of sda7 (image missing) did not fail"
		return 1
	fi
	grep -q 'Input/output error' "$W/dd.err" || fail "not EIO: $(cat "$W/dd.err")"
}

# wait_mounted MNT: a foreground mount started in the background answers
wait_mounted() {
	local i
	for i in $(seq 50); do
		[ -e "$1/sda" ] && return 0
		sleep 0.2
	done
	fail "$1/sda never appeared"
}

case_missing_image_log() {
	start_case
	need "$REF/sda.img" || return 1
	mkdir d && ln "$CZ"/* d/ && rm d/sda7.ext4-ptcl-img.lz4 || return 1
	mkdir -p "$MNT" && echo "$MNT" >>"$T/mounts"
	$TO "$IMGBK" mount -f -q d "$MNT" >"$W/fg.out" 2>"$W/fg.err" &
	wait_mounted "$MNT" || return 1
	dd if="$MNT/sda" of=/dev/null bs=512 skip=$((SDA7_S + 8)) count=8 2>/dev/null
	fusermount3 -u "$MNT"
	wait
	grep -q 'sda7: no image file for this partition' "$W/fg.err" &&
		grep -qE 'sda: bytes [0-9]+-[0-9]+ \(partition sda7\) cannot be read' "$W/fg.err" &&
		grep -qE "$MNT/sda: read of [0-9]+ bytes at byte [0-9]+ failed \(EIO\): .*partition sda7" "$W/fg.err" ||
		{ cat "$W/fg.err"; fail "the log does not name sda7"; }
}

case_damaged_image() {
	start_case
	need "$REF/sda.img" || return 1
	mkdir d && ln "$CZ"/* d/ && rm d/sda1.ext4-ptcl-img.zst && cp "$CZ/sda1.ext4-ptcl-img.zst" d/ || return 1
	printf '\377\377\377\377' | dd of=d/sda1.ext4-ptcl-img.zst bs=1 seek=50000 conv=notrunc status=none
	run 1 "$IMGBK" verify -q d || return 1
	out_has '^sda1: BAD: .*sda1\.ext4-ptcl-img\.zst' '7 partition images: 6 OK, 1 damaged, 0 missing' || return 1
	mnt d "$MNT" -q || return 1
	[ ! -e "$MNT/sda1" ] || fail "$MNT/sda1 is served from a damaged image" || return 1
	if dd if="$MNT/sda" of=/dev/null bs=512 skip=$((SDA1_S + 100)) count=8 2>"$W/dd.err"; then
		fail "reading the range of sda1 (image damaged) did not fail"
		return 1
	fi
	cmp "$REF/sdb.img" "$MNT/sdb" || fail "sdb differs although its images are fine"
}

case_not_clonezilla() {
	mkdir plain && echo x >plain/readme.txt || return 1
	run 1 "$IMGBK" info plain && err_has '^imgbk: plain: not a Clonezilla image directory \(it has no .disk. or .parts. file\)$' ||
		return 1
	[ "$(wc -l <"$W/err")" = 1 ] || fail "more than one line" || return 1
	run 1 "$IMGBK" verify plain && err_has 'not a Clonezilla image directory' || return 1
	mkdir -p m && run 1 "$IMGBK" mount plain m && err_has 'not a Clonezilla image directory' || return 1
	mkdir enc && echo "sda1" >enc/parts && : >enc/ecryptfs.info || return 1
	run 1 "$IMGBK" info enc && err_has 'enc: an encrypted Clonezilla image \(ecryptfs.info\)'
}

case_restore_dd_partition() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" restore -q "$CZ/sdb4" - && cmp "$W/out" "$SRC/sdb4" || fail "DIR/sdb4 (partclone.dd) restored differs"
}

case_restore_disks() {
	need "$REF/sdb.img" || return 1
	run 0 "$IMGBK" restore "$CZ/sda" sda.img && err_has 'restored disk sda \(MBR table' \
		'swap partition sda6 not recreated: mkswap -U 1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516 -L .czswap.' || return 1
	cmp sda.img "$REF/sda.img" || fail "restore DIR/sda differs from the disk Clonezilla's way restores" || return 1
	run 0 "$IMGBK" restore -q "$CZ/sdb" sdb.img && cmp sdb.img "$REF/sdb.img" ||
		fail "restore DIR/sdb differs from the reference" || return 1
	run 2 "$IMGBK" restore "$CZ" x.img && err_has 'several disks were saved: name one as DIR/sda' || return 1
	[ ! -e x.img ] || fail "x.img was made" || return 1
	# a damaged image stops the restore (partitions are written several at once)
	mkdir d && ln "$CZ"/* d/ && rm d/sda7.ext4-ptcl-img.lz4 && lz4 -dc "$CZ/sda7.ext4-ptcl-img.lz4" >s7 &&
		printf '\377\377\377\377' | dd of=s7 bs=1 seek=6000000 conv=notrunc status=none && lz4 -q s7 d/sda7.ext4-ptcl-img.lz4 ||
		return 1
	run 1 "$IMGBK" restore -q d/sda bad.img && err_has 'sda7\.ext4-ptcl-img\.lz4.*(checksum|CRC)'
}

case_restore_dry_run() {
	need "$CZ/MD5SUMS" || return 1
	run 0 "$IMGBK" restore --dry-run "$CZ/sda" plan.img || return 1
	out_has '^restore disk sda of .* to plan.img \(96\.0 MB, 196608 sectors\)' '^  table +sectors 0-0 ' \
		'^  table +sectors 1-2047 ' '^  table +sectors 67584-67584 ' '^  sda7 +sectors 122880-188415 from .*sda7\.ext4-ptcl-img\.lz4' \
		'^  sda6 +swap, not recreated' || return 1
	[ ! -e plan.img ] || fail "--dry-run wrote plan.img"
}

# loop DEV FILE SIZE: a loop device over a new zeroed file
loopdev() {
	truncate -s "$2" "$1" && losetup -f --show "$1"
}

case_restore_device() {
	start_case
	need "$REF/sdb.img" || return 1
	local l
	l=$(loopdev big.img 200M) || skip "no loop device"
	echo "$l" >>"$T/loops"
	run 0 "$IMGBK" restore -q "$CZ/sdb" "$l" || return 1
	sfdisk --verify "$l" >v.out 2>&1 || { cat v.out; fail "sfdisk --verify of the restored GPT (200 MiB) fails"; return 1; }
	sfdisk -d "$l" | grep -q '^last-lba: 409566$' || fail "the GPT does not end at the target's end" || return 1
	sfdisk -d "$l" | grep "^/dev" | sed "s#^${l}p#/dev/sdb#" | diff - <(grep '^/dev' "$CZ/sdb-pt.sf") ||
		fail "partitions of the restored GPT differ" || return 1
	cmp -n $((SDB4_S * 512 + SDB4_N * 512 - 34 * 512)) -i $((34 * 512)) "$l" "$REF/sdb.img" ||
		fail "partition data on the device differs from the reference"
}

case_restore_refusals() {
	start_case
	need "$REF/sdb.img" || return 1
	local l m
	l=$(loopdev small.img 100M) || skip "no loop device"
	echo "$l" >>"$T/loops"
	run 2 "$IMGBK" restore "$CZ/sdb" "$l" && err_has "is too small: 204800 sectors, the partitions of sdb need 223265; nothing written" ||
		return 1
	cmp -n 1048576 "$l" /dev/zero || fail "a refused restore wrote to $l" || return 1
	m=$(loopdev fs.img 200M) || skip "no loop device"
	echo "$m" >>"$T/loops"
	mkfs.ext4 -q "$m" && mkdir mp && mount "$m" mp || fail "cannot mount $m" || return 1
	echo "$PWD/mp" >>"$T/mounts"
	run 2 "$IMGBK" restore "$CZ/sdb" "$m" && err_has "is mounted on .*mp; refusing to overwrite a mounted device"
}

# lzip (Clonezilla -z6, lzip -3; -z6p plzip: several members, as lzip -b makes)
case_lzip() {
	need "$REF/sda.img" || return 1
	command -v lzip >/dev/null || { echo "lzip is not installed (test/deps.sh)"; return 1; }
	mkdir d && ln "$CZ"/* d/ && rm d/sda7.ext4-ptcl-img.lz4 || return 1
	lz4 -dc "$CZ/sda7.ext4-ptcl-img.lz4" | lzip -3 -b 1MiB >d/sda7.ext4-ptcl-img.lzip || return 1
	run 0 "$IMGBK" info d && out_has '^sda7 +122880 +32\.0 MB +ext4 +partclone +lzip +1 ' || return 1
	run 0 "$IMGBK" verify d/sda7 && out_has 'every CRC32 checksum matches' || return 1
	run 0 "$IMGBK" restore -q d/sda7 - || return 1
	part "$REF/sda.img" $SDA7_S $SDA7_N | cmp - "$W/out" || fail "lzip sda7 restored differs" || return 1
	head -c 3000000 d/sda7.ext4-ptcl-img.lzip >cut.lzip
	run 1 "$IMGBK" verify cut.lzip && err_has 'cut\.lzip: lzip: the compressed stream ends inside an? lzip member' || return 1
	cp d/sda7.ext4-ptcl-img.lzip bad.lzip && printf '\377\377\377' | dd of=bad.lzip bs=1 seek=400000 conv=notrunc status=none
	run 1 "$IMGBK" verify bad.lzip && err_has 'bad\.lzip: lzip: invalid compressed data at byte [0-9]+ of the compressed stream \(lzlib'
}

# lzop (Clonezilla -z3, lzop -3): info, verify, restore; a cut image named
lzo_dir() {
	mkdir d && ln "$CZ"/* d/ && rm d/sda7.ext4-ptcl-img.lz4 || return 1
	lz4 -dc "$CZ/sda7.ext4-ptcl-img.lz4" | lzop -3 -c >d/sda7.ext4-ptcl-img.lzo
}
case_lzo() {
	need "$REF/sda.img" || return 1
	command -v lzop >/dev/null || { echo "lzop is not installed (test/deps.sh)"; return 1; }
	lzo_dir || return 1
	run 0 "$IMGBK" info d && out_has '^sda7 +122880 +32\.0 MB +ext4 +partclone +lzo +1 ' || return 1
	run 0 "$IMGBK" verify d/sda7 && out_has 'every CRC32 checksum matches' || return 1
	run 0 "$IMGBK" restore -q d/sda7 - || return 1
	part "$REF/sda.img" $SDA7_S $SDA7_N | cmp - "$W/out" || fail "lzo sda7 restored differs" || return 1
	head -c 3000000 d/sda7.ext4-ptcl-img.lzo >cut.lzo
	run 1 "$IMGBK" verify cut.lzo && err_has 'cut\.lzo: lzop: .*truncated'
}

# the lzop image mounts through its blocks: MNT/sda7 and the whole disk MNT/sda
case_mount_lzo() {
	start_case
	need "$REF/sda.img" || return 1
	command -v lzop >/dev/null || { echo "lzop is not installed (test/deps.sh)"; return 1; }
	lzo_dir || return 1
	mnt d "$PWD/m" -q || return 1
	part "$REF/sda.img" $SDA7_S $SDA7_N | cmp - m/sda7 || fail "m/sda7 (lzo) differs" || return 1
	cmp "$REF/sda.img" m/sda || fail "m/sda with an lzo partition differs from the restored disk"
}

# partclone's XXH128 samples (test/data, made by upstream partclone -a3) as the
# partitions of a saveparts directory: a `parts` file and no `disk` file
DATA=${IMGBK_TEST_DATA:-$HERE/../data}
case_xxh128_saveparts() {
	start_case
	[ -f "$DATA/xxh128_ext2_1k_k1.pc" ] || { echo "$DATA/xxh128_ext2_1k_k1.pc missing"; return 1; }
	mkdir sp && echo "sdc1 sdc2" >sp/parts || return 1
	printf 'label: dos\nlabel-id: 0x0c0ffee0\ndevice: /dev/sdc\nunit: sectors\n\n' >sp/sdc-pt.sf
	printf '/dev/sdc1 : start=2048, size=16384, type=83\n/dev/sdc2 : start=18432, size=16384, type=83\n' >>sp/sdc-pt.sf
	zstd -q -3 <"$DATA/xxh128_ext2_1k_k1.pc" >sp/sdc1.ext2-ptcl-img.zst &&
		cp "$DATA/xxh128_ext2_1k_k100.pc" sp/sdc2.ext2-ptcl-img.uncomp || return 1
	run 0 "$IMGBK" info sp && out_has '^sdc +17\.0 MB +34816 +MBR +0x0c0ffee0 +\(partitions saved, not the disk\)' \
		'^sdc1 +2048 +8\.0 MB +ext2 +partclone +zst +1 .* XXH128 ' '^sdc2 +18432 +8\.0 MB +ext2 +partclone +uncomp ' || return 1
	run 0 "$IMGBK" verify -q sp && out_has '^sdc1: OK: ' '^sdc2: OK: ' '2 partition images: 2 OK' || return 1
	mnt sp "$MNT" -q || return 1
	[ "$(ls "$MNT" | tr '\n' ' ')" = "sdc1 sdc2 " ] || fail "files: $(ls "$MNT" | tr '\n' ' ') (no whole disk without a disk file)" || return 1
	local want
	want=$(grep ' xxh128_ext2_1k_k1.pc$' "$DATA/RESTORE.sha256" | cut -d' ' -f1)
	[ "$(sha "$MNT/sdc1")" = "$want" ] && [ "$(sha "$MNT/sdc2")" = "$want" ] ||
		fail "the XXH128 partitions do not read as partclone restores them"
}

# LVM: the PV partition is not saved, its LVs are (vg-lv names, lvm_logv.list)
case_lvm() {
	start_case
	[ -f "$DATA/xxh128_ext2_1k_k1.pc" ] || { echo "$DATA/xxh128_ext2_1k_k1.pc missing"; return 1; }
	mkdir lv && echo "sdd" >lv/disk && echo "sdd1 " >lv/parts || return 1
	printf 'label: dos\nlabel-id: 0x1e1e1e1e\ndevice: /dev/sdd\nunit: sectors\n\n/dev/sdd1 : start=2048, size=40960, type=8e\n' >lv/sdd-pt.sf
	head -c 512 /dev/zero >lv/sdd-mbr
	echo "vg0 /dev/sdd1 aBcDeF-1234" >lv/lvm_vg_dev.list
	echo "/dev/vg0/root Linux rev 1.0 ext2 filesystem data" >lv/lvm_logv.list
	cp "$DATA/xxh128_ext2_1k_k1.pc" lv/vg0-root.ext2-ptcl-img.uncomp || return 1
	run 0 "$IMGBK" info lv && out_has '^sdd1 +2048 +20\.0 MB +lvm-pv: LVM physical volume' \
		'^vg0-root +0 +- +ext2 +partclone +uncomp +1 ' || return 1
	run 0 "$IMGBK" info --json lv && out_has '"name":"vg0-root","disk":"","number":0,.*"kind":"lvm-lv"' || return 1
	mnt lv "$MNT" || return 1
	err_has 'sdd: bytes 1048576-22020095 \(partition sdd1\) cannot be read: an LVM physical volume' || return 1
	[ "$(ls "$MNT" | tr '\n' ' ')" = "sdd vg0-root " ] || fail "files: $(ls "$MNT" | tr '\n' ' ')" || return 1
	local want
	want=$(grep ' xxh128_ext2_1k_k1.pc$' "$DATA/RESTORE.sha256" | cut -d' ' -f1)
	[ "$(sha "$MNT/vg0-root")" = "$want" ] || fail "$MNT/vg0-root does not read as partclone restores it" || return 1
	if dd if="$MNT/sdd" of=/dev/null bs=512 skip=4096 count=1 2>/dev/null; then
		fail "the PV range of $MNT/sdd read without an error"
		return 1
	fi
}

# LVM restore: the disk without its PV (the commands that rebuild it are
# printed), then the LVs into files by name, or refused when /dev/VG/LV is not there
case_lvm_restore() {
	[ -f "$DATA/xxh128_ext2_1k_k1.pc" ] || { echo "$DATA/xxh128_ext2_1k_k1.pc missing"; return 1; }
	mkdir lv && echo "sdd" >lv/disk && echo "sdd1 " >lv/parts || return 1
	printf 'label: dos\nlabel-id: 0x1e1e1e1e\ndevice: /dev/sdd\nunit: sectors\n\n/dev/sdd1 : start=2048, size=40960, type=8e\n' >lv/sdd-pt.sf
	printf 'Disk /dev/sdd: 45056s\nPartition Table: msdos\n' >lv/sdd-pt.parted
	truncate -s $((45056 * 512)) sdd.img && sfdisk -q sdd.img <lv/sdd-pt.sf >/dev/null 2>&1 &&
		head -c 440 /dev/urandom | dd of=sdd.img conv=notrunc status=none &&
		dd if=sdd.img of=lv/sdd-mbr bs=512 count=1 status=none || return 1
	echo "vg0 /dev/sdd1 aBcDeF-1234-5678" >lv/lvm_vg_dev.list
	printf '/dev/vg0/root Linux rev 1.0 ext2 filesystem data\n/dev/vg0/home Linux rev 1.0 ext2 filesystem data\n' >lv/lvm_logv.list
	cp "$DATA/xxh128_ext2_1k_k1.pc" lv/vg0-root.ext2-ptcl-img.uncomp &&
		zstd -q <"$DATA/xxh128_ext2_1k_k100.pc" >lv/vg0-home.ext2-ptcl-img.zst || return 1
	run 0 "$IMGBK" restore --dry-run lv plan.img && out_has '^  sdd1 +sectors 2048-43007: LVM physical volume of volume group vg0, not written' ||
		return 1
	run 0 "$IMGBK" restore lv lv.img && err_has 'sdd1 is an LVM physical volume \(volume group vg0\): not written' \
		'^  pvcreate -ff --yes --uuid aBcDeF-1234-5678 --restorefile lv/lvm_vg0.conf \$\(losetup -f --show -o 1048576 --sizelimit 20971520 lv\.img\)$' \
		'^  vgcfgrestore -f lv/lvm_vg0.conf vg0$' '^  vgchange -ay vg0$' '^  imgbk restore --lvm lv$' || return 1
	[ "$(stat -c %s lv.img)" = $((45056 * 512)) ] && cmp -n 446 lv.img lv/sdd-mbr &&
		sfdisk -d lv.img | grep -q 'lv.img1 : start= *2048, size= *40960, type=8e' ||
		fail "the restored disk lacks its table" || return 1
	cmp -i 1048576 -n 20971520 lv.img /dev/zero || fail "the PV range was written" || return 1
	run 2 "$IMGBK" restore --lvm lv && err_has '/dev/vg0/(root|home) is not there .*vgcfgrestore -f lv/lvm_vg0.conf vg0.*nothing written' ||
		return 1
	mkdir vols && run 0 "$IMGBK" restore --lvm lv vols && err_has 'restored 2 logical volumes of lv' || return 1
	local want
	want=$(grep ' xxh128_ext2_1k_k1.pc$' "$DATA/RESTORE.sha256" | cut -d' ' -f1)
	[ "$(sha vols/vg0-root)" = "$want" ] && [ "$(sha vols/vg0-home)" = "$want" ] ||
		fail "restore --lvm: the volumes do not read as partclone restores them" || return 1
	run 2 "$IMGBK" restore --lvm lv vols && err_has 'vols/vg0-(root|home).*exists' || return 1
	run 0 "$IMGBK" restore -q lv/vg0-home one.img && cmp one.img vols/vg0-home || fail "restore DIR/vg-lv differs"
}

# A GPT disk saved without NAME-gpt-1st: the GPT is rebuilt from sdb-pt.sf
# as sfdisk writes it (the reference disk was made by sfdisk from that file)
case_gpt_from_sf() {
	start_case
	need "$REF/sdb.img" || return 1
	mkdir d && ln "$CZ"/* d/ && rm d/sdb-gpt-1st d/sdb-gpt-2nd || return 1
	run 0 "$IMGBK" restore -q d/sdb sdb.img && cmp sdb.img "$REF/sdb.img" ||
		fail "restore without sdb-gpt-1st differs from sfdisk's table" || return 1
	[ -n "$FUSE_WHY" ] && return 0
	mnt d "$MNT" -q || return 1
	cmp "$REF/sdb.img" "$MNT/sdb" || fail "$MNT/sdb (GPT from sdb-pt.sf) differs from the reference" || return 1
	sfdisk -d "$MNT/sdb" | sed -e "s#^$MNT/sdb#/dev/sdb#" -e "s#^device: .*#device: /dev/sdb#" |
		diff - "$CZ/sdb-pt.sf" || fail "sfdisk -d of $MNT/sdb is not the saved sdb-pt.sf"
}

# 4Kn: a GPT disk of 4096-byte sectors (a loop device with -b 4096): the
# .sf and .parted files count 4096-byte sectors, sdc-gpt-1st (34 x 512 B)
# does not hold the table; the GPT is at LBA 1 of 4096-byte sectors
K_SECTORS=16384 K1_S=256 K1_N=8192 K2_S=8448 K2_N=2048
case_4kn() {
	start_case
	local d=$SRC/sdc.img l r k
	truncate -s $((K_SECTORS * 4096)) "$d" && l=$(losetup -b 4096 -f --show "$d") || skip "no 4096-byte loop device"
	echo "$l" >>"$T/loops"
	{
		printf 'label: gpt\nlabel-id: 4B4E0000-1111-4222-8333-444444444444\nunit: sectors\n\n'
		printf 'start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=4B4E0000-0000-4000-8000-000000000001, name="root4k"\n' $K1_S $K1_N
		printf 'start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=4B4E0000-0000-4000-8000-000000000002, name="raw4k", attrs="RequiredPartition GUID:60"\n' $K2_S $K2_N
	} | sfdisk -q "$l" >/dev/null 2>&1 || fail "sfdisk on a 4096-byte loop device" || return 1
	mkdir -p k4 && echo sdc >k4/disk && echo "sdc1 sdc2 " >k4/parts &&
		sfdisk -d "$l" | sed -e "s#^${l}p*\([0-9]\)#/dev/sdc\1#" -e "s#^device: .*#device: /dev/sdc#" >k4/sdc-pt.sf &&
		parted -s "$l" unit s print 2>/dev/null | sed "s#^Disk $l:#Disk /dev/sdc:#" >k4/sdc-pt.parted &&
		dd if="$l" of=k4/sdc-mbr bs=512 count=1 status=none && dd if="$l" of=k4/sdc-gpt-1st bs=512 count=34 status=none ||
		return 1
	grep -q '^sector-size: 4096$' k4/sdc-pt.sf && grep -q "^Disk /dev/sdc: ${K_SECTORS}s$" k4/sdc-pt.parted ||
		fail "the saved tables do not count 4096-byte sectors" || return 1
	truncate -s $((K1_N * 4096)) "$SRC/sdc1" && mkfs.ext4 -q -F -b 4096 -d "$SRC/tree" "$SRC/sdc1" &&
		head -c $((K2_N * 4096)) /dev/urandom >"$SRC/sdc2" || return 1
	partclone.extfs -c -s "$SRC/sdc1" -o - -L "$W/lk1" 2>/dev/null | zstd -q -T0 -3 >k4/sdc1.ext4-ptcl-img.zst &&
		partclone.dd -s "$SRC/sdc2" -o - -L "$W/lk2" 2>/dev/null | zstd -q >k4/sdc2.dd-ptcl-img.zst || return 1
	# the reference: sfdisk < sdc-pt.sf (no last-lba) on a new 4Kn disk, partitions, boot code
	r=$REF/sdc.img
	truncate -s $((K_SECTORS * 4096)) "$r" && k=$(losetup -b 4096 -f --show "$r") || return 1
	echo "$k" >>"$T/loops"
	grep -v last-lba k4/sdc-pt.sf | sfdisk -q --wipe always "$k" >/dev/null 2>&1 && sync && losetup -d "$k" ||
		fail "sfdisk of the 4Kn reference" || return 1
	dd if="$SRC/sdc1" of="$r" bs=4096 seek=$K1_S conv=notrunc status=none &&
		dd if="$SRC/sdc2" of="$r" bs=4096 seek=$K2_S conv=notrunc status=none &&
		dd if=k4/sdc-mbr of="$r" bs=446 count=1 conv=notrunc status=none || return 1
	run 0 "$IMGBK" info k4 && out_has '^sdc +64\.0 MB +16384 +GPT +4B4E0000-1111-4222-8333-444444444444  \(4096-byte sectors\)$' \
		'^sdc1 +256 +32\.0 MB +ext4 ' '^sdc2 +8448 +8\.0 MB +dd ' || return 1
	run 0 "$IMGBK" restore -q k4 sdc.img && cmp sdc.img "$r" ||
		fail "restore of a 4Kn disk to a file differs from sfdisk + partclone" || return 1
	run 0 "$IMGBK" restore -q k4 "$l" && cmp "$l" "$r" ||
		fail "restore of a 4Kn disk to a 4096-byte device differs" || return 1
	local five
	five=$(loopdev five.img 64M) || return 1
	echo "$five" >>"$T/loops"
	run 2 "$IMGBK" restore k4 "$five" && err_has "has 512-byte sectors, the saved disk sdc had 4096-byte sectors" ||
		return 1
	[ -n "$FUSE_WHY" ] && return 0
	mnt k4 "$MNT" -q || return 1
	cmp "$r" "$MNT/sdc" || fail "$MNT/sdc (4Kn) differs from the reference" || return 1
	k=$(losetup -r -b 4096 -f --show "$MNT/sdc") || return 1
	echo "$k" >>"$T/loops"
	sfdisk -d "$k" | sed -e "s#^${k}p*\([0-9]\)#/dev/sdc\1#" -e "s#^device: .*#device: /dev/sdc#" | diff - k4/sdc-pt.sf ||
		fail "sfdisk -d of $MNT/sdc on a 4096-byte loop device is not the saved sdc-pt.sf"
}

# nvme names (disk nvme0n1, partitions nvme0n1pN), and NTFS saved by
# partclone.ntfs (Clonezilla's default -q2) rather than ntfsclone: the GPT
# disk sdb saved again under those names
case_nvme() {
	start_case
	need "$REF/sdb.img" || return 1
	local n=nvme0n1 f
	mkdir nv && echo "$n" >nv/disk && echo "${n}p1 ${n}p2 ${n}p3 ${n}p4 " >nv/parts || return 1
	sed -e "s#/dev/sdb\([0-9]\)#/dev/${n}p\1#" -e "s#/dev/sdb#/dev/$n#" "$CZ/sdb-pt.sf" >nv/$n-pt.sf &&
		sed "s#/dev/sdb#/dev/$n#" "$CZ/sdb-pt.parted" >nv/$n-pt.parted || return 1
	for f in mbr gpt-1st gpt-2nd; do ln "$CZ/sdb-$f" "nv/$n-$f" || return 1; done
	ln "$CZ/sdb1.ext4-ptcl-img.zst" nv/${n}p1.ext4-ptcl-img.zst && ln "$CZ/sdb2.vfat-ptcl-img.gz" nv/${n}p2.vfat-ptcl-img.gz &&
		ln "$CZ/sdb4.dd-ptcl-img.zst" nv/${n}p4.dd-ptcl-img.zst || return 1
	partclone.ntfs -c -s "$SRC/sdb3" -o - -L "$W/ln" 2>/dev/null | zstd -q -T0 -3 >nv/${n}p3.ntfs-ptcl-img.zst || return 1
	# the reference: sdb's, with p3 as partclone.restore writes the
	# partclone.ntfs image (no backup boot sector: partclone skips the
	# partial cluster at the volume's end, where mkntfs put it)
	cp "$REF/sdb.img" want.img && truncate -s $((SDB3_N * 512)) p3.raw &&
		zstd -dc nv/${n}p3.ntfs-ptcl-img.zst | pc_restore partclone.restore -s - -O p3.raw -L "$W/lr" >/dev/null 2>&1 &&
		put p3.raw want.img $SDB3_S || fail "partclone.restore of ${n}p3" || return 1
	run 0 "$IMGBK" info nv && out_has "^$n +160\\.0 MB +327680 +GPT " "^${n}p1 +2048 +32\\.0 MB +ext4 " \
		"^${n}p3 +149504 +32\\.0 MB +ntfs +partclone +zst " "^${n}p4 +215040 +4\\.0 MB +dd " || return 1
	run 0 "$IMGBK" verify -q nv && out_has '4 partition images: 4 OK' || return 1
	run 0 "$IMGBK" restore -q nv/$n nv.img && cmp nv.img want.img ||
		fail "restore of DIR/$n differs from the reference disk" || return 1
	[ -n "$FUSE_WHY" ] && return 0
	mnt nv "$MNT" -q || return 1
	[ "$(ls "$MNT" | tr '\n' ' ')" = "$n ${n}p1 ${n}p2 ${n}p3 ${n}p4 " ] || fail "files: $(ls "$MNT" | tr '\n' ' ')" || return 1
	cmp want.img "$MNT/$n" || fail "$MNT/$n differs from the reference disk" || return 1
	cmp p3.raw "$MNT/${n}p3" || fail "$MNT/${n}p3 (partclone.ntfs) differs from partclone.restore's"
}

tc "setup: two disks saved the way Clonezilla saves them" setup_save
tc "setup: the reference disks, restored the way Clonezilla restores them" setup_ref
tc "info DIR: one table of disks and partitions" case_info_text
tc "info --json DIR: the same facts" case_info_json
tc "verify DIR: every partition image and MD5SUMS" case_verify_dir
tc "verify DIR: MD5SUMS/SHA1SUMS mismatches, B3SUMS not checked" case_verify_sums_bad
tc "DIR/sdaN names one partition (info, verify, restore)" case_part_naming
tc "DIR/sdb4 (partclone.dd, raw) restores as the raw partition" case_restore_dd_partition
tc "a directory that is not Clonezilla's, and an encrypted one, are refused in one line" case_not_clonezilla
tc "restore DIR/sda, DIR/sdb to files: byte-identical to the disks restored Clonezilla's way" case_restore_disks
tc "restore --dry-run prints the plan and writes nothing" case_restore_dry_run
tc "GPT without sdb-gpt-1st: rebuilt from sdb-pt.sf as sfdisk writes it (restore, mount, sfdisk -d)" case_gpt_from_sf
tc "LVM restore: disk without its PV (pvcreate/vgcfgrestore printed), --lvm into files or refused" case_lvm_restore
tc "nvme names (nvme0n1, nvme0n1pN) and an NTFS partition saved by partclone.ntfs: info, verify, restore, mount" case_nvme
tc "lzip (-z6, several members): info, verify, restore; truncated and damaged data named" case_lzip
tc "lzop (-z3): info, verify, restore; a cut image named" case_lzo
if [ "$(id -u)" = 0 ]; then
	tc "restore DIR/sdb to a larger device: GPT backup at its end, sfdisk --verify passes" case_restore_device
	tc "restore refuses a too small device and a mounted one, writing nothing" case_restore_refusals
	tc "4Kn GPT disk (4096-byte sectors): info, restore to a file and a device, mount, sfdisk -d" case_4kn
else
	tc_skip "restore to loop devices" "not root"
fi
if [ -n "$FUSE_WHY" ]; then
	for c in "mount DIR: every partition equals the restored one" "mount DIR: MNT/sda and MNT/sdb equal the restored disks" \
		"losetup -r -P of MNT/sda" "a missing partition image reads as EIO" "the log names a missing image" \
		"a damaged image: verify says so, its range reads as EIO"; do
		tc_skip "$c" "$FUSE_WHY"
	done
else
	tc "mount DIR: every partition equals the restored one" case_mount_parts
	tc "mount DIR: MNT/sda and MNT/sdb equal the restored disks (cmp, and qemu-img compare as a raw drive); sfdisk -d equals the saved .sf" case_mount_disks
	tc "losetup -r of MNT/sda: its partitions read identical to MNT/sdaN" case_losetup_partitions
	tc "a missing partition image: no MNT/sda7, its range of MNT/sda reads as EIO" case_missing_image
	tc "a missing partition image is named in the log" case_missing_image_log
	tc "a damaged image: verify says so, its range of MNT/sda reads as EIO, other disks read" case_damaged_image
	tc "XXH128 samples as partitions of a saveparts directory: info, verify, mount (no whole disk)" case_xxh128_saveparts
	tc "lzop (-z3) directory mounted: MNT/sda7 and the whole disk MNT/sda equal the restored ones" case_mount_lzo
	tc "LVM: the LV image mounts as MNT/vg-lv, the PV range of MNT/sdd reads as EIO" case_lvm
fi

echo "$PASS passed, $FAIL failed$([ "$SKIP" -gt 0 ] && echo ", $SKIP skipped")"
[ "$FAIL" -eq 0 ]

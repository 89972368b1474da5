# test/bench/czdir.sh - sourced by bench.sh: the czdir section (issue 12).
#
# A Clonezilla image directory of one GPT disk "sda" with three partitions,
# saved the way Clonezilla's default saves them (../shared/CLONEZILLA.md:
# -q2 -z9p, so partclone for every filesystem, NTFS included, piped to
# `zstd -T0 -3`; partclone's buffer option -z 10485760 as Clonezilla passes
# it): sda1 ext4 ($CZ_EXT_MIB MiB), sda2 FAT32 ($CZ_FAT_MIB MiB), sda3 NTFS
# ($CZ_NTFS_MIB MiB), each filled with deterministic files (bin/gen via
# make_src: incompressible "media", log-like text, small files), at least
# 1.5 GiB of data in all. The directory holds disk, parts, sda-pt.sf
# (sfdisk -d), sda-pt.parted (parted unit s print), sda-mbr, sda-gpt-1st,
# sda-gpt-2nd, dev-fs.list and the three images sda1.ext4-ptcl-img.zst,
# sda2.vfat-ptcl-img.zst, sda3.ntfs-ptcl-img.zst. Built once into $CZB
# (default $DIR/cz) and reused while the parameters are the same.
#
# Timed, warm page cache, alternating runs (trounds in lib.sh):
#   ref_cz_restore  the reference pipeline, Clonezilla's restoredisk: on a
#                   loop device over a new zeroed file of the disk's size,
#                   `grep -v last-lba sda-pt.sf | sfdisk --wipe always`, then
#                   per partition `zstd -dc IMAGE | partclone.restore -s - -O`
#                   into a loop device over the partition's range of the same
#                   file (this kernel does not scan loop devices for
#                   partitions), the 446 bytes of boot code from sda-mbr,
#                   `sync`.
#   cz_restore      `imgbk restore DIR/sda` onto a loop device over a new
#                   zeroed file (imgbk fsyncs).
#   cz_wlimit       the write limit: as many bytes of zeros as the partitions
#                   hold in use, dd'd onto a loop device over a new file, with
#                   fsync (no decoding at all: the fastest any restore can be)
#   cz_mount        whole-disk mount readiness with saved indexes: the time
#                   from `imgbk mount -q DIR MNT` to the first 4 KiB of
#                   MNT/sda read (the warm-up run's mount builds and saves the
#                   indexes); unmounted after each run, outside the timing.
# Loop devices are attached and detached outside the timing (PRE/POST hooks).
# imgbk's disk is compared with the reference's once (cmp of the two files)
# and the run fails if they differ.
#
# Environment: BENCH_CZ_DIR=$DIR/cz (the cached directory and work files),
# BENCH_CZ_EXT_MIB=800 BENCH_CZ_FAT_MIB=640 BENCH_CZ_NTFS_MIB=800 partition
# sizes; the data: ext4 330+240 MiB, FAT32 270+170 MiB, NTFS 330+240 MiB
# (incompressible + text), plus small files. Needs root (loop devices),
# sfdisk, parted, mkfs.ext4, mkfs.fat, mcopy, mkntfs, ntfs-3g, partclone.*,
# zstd.

CZB=${BENCH_CZ_DIR:-$DIR/cz}
CZ_EXT_MIB=${BENCH_CZ_EXT_MIB:-800}
CZ_FAT_MIB=${BENCH_CZ_FAT_MIB:-640}
CZ_NTFS_MIB=${BENCH_CZ_NTFS_MIB:-800}
CZD=$CZB/2026-12-04-12-img
CZM=$CZB/mnt
CZ_LOOPS=$CZB/loops

# cz_geometry: start and size (sectors) of sda1..3 and the disk, 1 MiB aligned
cz_geometry() {
	CZ_S1=2048 CZ_N1=$((CZ_EXT_MIB * 2048))
	CZ_S2=$((CZ_S1 + CZ_N1)) CZ_N2=$((CZ_FAT_MIB * 2048))
	CZ_S3=$((CZ_S2 + CZ_N2)) CZ_N3=$((CZ_NTFS_MIB * 2048))
	CZ_SECTORS=$((CZ_S3 + CZ_N3 + 2048))
}

# cz_fill_fat FILE SRC: copy a tree into a FAT image
cz_fill_fat() {
	MTOOLS_SKIP_CHECK=1 mcopy -s -i "$1" "$2"/* ::/
}

# cz_fill_ntfs FILE SRC: copy a tree into an NTFS image through ntfs-3g
cz_fill_ntfs() {
	mkdir -p "$CZB/mnt-build" || return 1
	ntfs-3g "$1" "$CZB/mnt-build" > logs/cz-ntfs3g.out 2>&1 || { cat logs/cz-ntfs3g.out >&2; return 1; }
	cp -r "$2"/. "$CZB/mnt-build/"
	_rc=$?
	umount "$CZB/mnt-build" || fusermount3 -u "$CZB/mnt-build" || _rc=1
	rmdir "$CZB/mnt-build"
	return $_rc
}

# cz_save PART FS TOOL: partclone.TOOL | zstd -T0 -3 > sdaN.FS-ptcl-img.zst,
# as Clonezilla's image_save runs it
cz_save() {
	partclone."$3" -z 10485760 -N -L "logs/cz-$1.log" -c -s "$CZB/build/$1" --output - 2> "logs/cz-$1.err" |
		zstd -q -T0 -3 > "$CZD/$1.$2-ptcl-img.zst" || { tail -3 "logs/cz-$1.err" >&2; return 1; }
}

# cz_tables: the disk file with its GPT, and the directory's table files
cz_tables() {
	_d=$CZB/build/sda.img
	truncate -s $((CZ_SECTORS * 512)) "$_d" || return 1
	{
		printf 'label: gpt\nlabel-id: 3C5A8E12-7B44-4F0E-9D21-6A0B1C2D3E4F\nunit: sectors\n\n'
		printf 'start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=7E57BE4C-0001-4000-8000-000000000001, name="root"\n' $CZ_S1 $CZ_N1
		printf 'start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=7E57BE4C-0002-4000-8000-000000000002, name="data"\n' $CZ_S2 $CZ_N2
		printf 'start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=7E57BE4C-0003-4000-8000-000000000003, name="windows"\n' $CZ_S3 $CZ_N3
	} | sfdisk -q "$_d" > logs/cz-sfdisk.out 2>&1 || { cat logs/cz-sfdisk.out >&2; return 1; }
	bin/gen rand 440 4242 | dd of="$_d" conv=notrunc status=none || return 1
	sfdisk -d "$_d" | sed -e "s#^$_d\\([0-9]\\)#/dev/sda\\1#" -e "s#^device: .*#device: /dev/sda#" > "$CZD/sda-pt.sf" &&
		parted -s "$_d" unit s print 2>/dev/null | sed "s#^Disk $_d:#Disk /dev/sda:#" > "$CZD/sda-pt.parted" &&
		dd if="$_d" of="$CZD/sda-mbr" bs=512 count=1 status=none &&
		dd if="$_d" of="$CZD/sda-gpt-1st" bs=512 count=34 status=none &&
		dd if="$_d" of="$CZD/sda-gpt-2nd" bs=512 skip=$((CZ_SECTORS - 32)) count=33 status=none || return 1
	echo "sda" > "$CZD/disk" && echo "sda1 sda2 sda3 " > "$CZD/parts" &&
		printf '# <Device name>   <File system>   <Size>\n/dev/sda1 ext4 %dM\n/dev/sda2 vfat %dM\n/dev/sda3 ntfs %dM\n' \
			"$CZ_EXT_MIB" "$CZ_FAT_MIB" "$CZ_NTFS_MIB" > "$CZD/dev-fs.list"
}

build_cz() {
	echo "bench: building the Clonezilla directory in $CZB (once)"
	rm -rf "$CZB/build" "$CZD" "$CZB/params"
	_t0=$(date +%s)
	mkdir -p "$CZB/build" "$CZD" || return 1
	cz_tables || return 1
	truncate -s $((CZ_N1 * 512)) "$CZB/build/sda1" &&
		make_src "$CZB/build/src" 330 240 300 5001 &&
		E2FSPROGS_FAKE_TIME=1704067200 mkfs.ext4 -q -F -L czroot -d "$CZB/build/src" "$CZB/build/sda1" \
			> logs/cz-mkfs.out 2>&1 || { cat logs/cz-mkfs.out >&2; return 1; }
	truncate -s $((CZ_N2 * 512)) "$CZB/build/sda2" && mkfs.fat -F 32 -n CZDATA "$CZB/build/sda2" > /dev/null &&
		make_src "$CZB/build/src" 270 170 200 6001 && cz_fill_fat "$CZB/build/sda2" "$CZB/build/src" || return 1
	truncate -s $((CZ_N3 * 512)) "$CZB/build/sda3" &&
		mkntfs -q -F -Q -L CZWIN "$CZB/build/sda3" > logs/cz-mkntfs.out 2>&1 &&
		make_src "$CZB/build/src" 330 240 200 7001 && cz_fill_ntfs "$CZB/build/sda3" "$CZB/build/src" || return 1
	rm -rf "$CZB/build/src"
	echo "bench: saving: partclone.{extfs,vfat,ntfs} -c | zstd -T0 -3"
	cz_save sda1 ext4 extfs && cz_save sda2 vfat vfat && cz_save sda3 ntfs ntfs || return 1
	(cd "$CZD" && md5sum -- * > "$CZB/build/MD5SUMS") && mv "$CZB/build/MD5SUMS" "$CZD/MD5SUMS" || return 1
	rm -rf "$CZB/build"
	printf '%s\n' "$cz_params" > "$CZB/params"
	echo "bench: directory built in $(( $(date +%s) - _t0 )) s"
}

# cz_attach VAR FILE [OFFSET SIZE]: a loop device over FILE (or its range) into VAR
cz_attach() {
	if [ $# -gt 2 ]; then
		_l=$(losetup -f --show -o "$3" --sizelimit "$4" "$2") || return 1
	else
		_l=$(losetup -f --show "$2") || return 1
	fi
	echo "$_l" >> "$CZ_LOOPS"
	eval "$1=\$_l; export $1"
}

# cz_detach_all: detach every loop device this section attached (only if it
# is still over one of our files)
cz_detach_all() {
	[ -s "$CZ_LOOPS" ] || return 0
	while read -r _l; do
		case $(losetup -nO BACK-FILE "$_l" 2>/dev/null) in "$CZB"/*) losetup -d "$_l" 2>/dev/null ;; esac
	done < "$CZ_LOOPS"
	: > "$CZ_LOOPS"
}

# cz_target FILE: a new zeroed (sparse) file of the saved disk's size
cz_target() {
	rm -f "$1" && truncate -s $((CZ_SECTORS * 512)) "$1"
}

cz_cleanup() {
	unmount_wait "$CZM" "$(daemon_pid imgbk "$CZM" 2>/dev/null)"
	cz_detach_all
	rm -f "$CZB/out-ref.img" "$CZB/out-cz.img" "$CZB/out-wlimit.img"
}

bench_czdir() {
	echo
	echo "==== czdir: whole-disk restore and mount of a Clonezilla directory ($(cut -d' ' -f1-3 /proc/loadavg)) ===="
	for t in sfdisk parted losetup mkfs.ext4 mkfs.fat mcopy mkntfs ntfs-3g partclone.extfs partclone.vfat \
		partclone.ntfs partclone.restore zstd md5sum; do
		command -v "$t" >/dev/null 2>&1 || { echo "bench: czdir section skipped: $t is missing"; return 0; }
	done
	[ "$(id -u)" = 0 ] || { echo "bench: czdir section skipped: needs root (loop devices)"; return 0; }
	case $CZB in *"'"*|*'"'*|*'$'*|*'\'*|*'`'*|*' '*) tfail czdir "BENCH_CZ_DIR must not contain quotes, spaces, \$, \\ or \`"; return 1 ;; esac
	mkdir -p "$CZB" || { tfail czdir "cannot create $CZB"; return 1; }
	CZB=$(cd "$CZB" && pwd)
	CZD=$CZB/2026-12-04-12-img CZM=$CZB/mnt CZ_LOOPS=$CZB/loops
	trap 'cz_cleanup; cleanup' EXIT
	cz_geometry
	cz_params="v1 ext4=${CZ_EXT_MIB}M fat32=${CZ_FAT_MIB}M ntfs=${CZ_NTFS_MIB}M data=330+240/270+170/330+240
gen=$(cksum < "$HERE/gen.c") czdir.sh=$(sed -n '/^build_cz()/,/^}/p;/^cz_tables()/,/^}/p;/^cz_save()/,/^}/p' "$HERE/czdir.sh" | cksum)
$(partclone.extfs -v 2>&1 | head -1)
$(zstd -V 2>&1)"
	if [ "${BENCH_REBUILD:-0}" = 1 ] || [ ! -f "$CZB/params" ] || [ "$(cat "$CZB/params")" != "$cz_params" ]; then
		build_cz || { tfail czdir "building the Clonezilla directory failed"; return 1; }
	else
		echo "bench: reusing the Clonezilla directory $CZD"
	fi
	SECTION_BYTES=$("$IMGBK" info --json "$CZD" | python3 -c '
import json, sys
print(sum(p["used_bytes"] or 0 for p in json.load(sys.stdin)["partitions"]))') ||
		{ tfail czdir "imgbk info --json $CZD failed"; return 1; }
	_zb=$(cat "$CZD"/*.zst | wc -c)

	REFT=$CZB/out-ref.img CZT=$CZB/out-cz.img
	_ref="grep -v last-lba '$CZD/sda-pt.sf' | sfdisk -q --wipe always \"\$L0\" > /dev/null &&"
	for _p in 1:ext4 2:vfat 3:ntfs; do
		_ref="$_ref zstd -dc '$CZD/sda${_p%%:*}.${_p#*:}-ptcl-img.zst' | partclone.restore -z 10485760 -N -s - -O \"\$L${_p%%:*}\" -L /dev/null > /dev/null 2>&1;"
	done
	_ref="$_ref dd if='$CZD/sda-mbr' of=\"\$L0\" bs=446 count=1 conv=notrunc status=none; sync"
	tdef ref_cz_restore "sfdisk + zstd -dc | partclone.restore x3 + sync" "$_ref" "$REFT"
	PRE_ref_cz_restore='cz_target "$REFT" && cz_attach L0 "$REFT" &&
		cz_attach L1 "$REFT" $((CZ_S1 * 512)) $((CZ_N1 * 512)) &&
		cz_attach L2 "$REFT" $((CZ_S2 * 512)) $((CZ_N2 * 512)) &&
		cz_attach L3 "$REFT" $((CZ_S3 * 512)) $((CZ_N3 * 512))'
	POST_ref_cz_restore='cz_detach_all'
	tdef cz_restore "imgbk restore DIR/sda (whole disk)" "'$IMGBK' restore -q '$CZD/sda' \"\$M0\"" "$CZT"
	PRE_cz_restore='cz_target "$CZT" && cz_attach M0 "$CZT"'
	POST_cz_restore='cz_detach_all'
	tdef cz_mount "imgbk mount DIR MNT until MNT/sda reads (index saved)" \
		"'$IMGBK' mount -q '$CZD' '$CZM' && dd if='$CZM/sda' of=/dev/null bs=4096 count=1 status=none" "" 0
	PRE_cz_mount='mkdir -p "$CZM"'
	POST_cz_mount='unmount_wait "$CZM" "$(daemon_pid imgbk "$CZM")"'
	CZW=$CZB/out-wlimit.img
	tdef cz_wlimit "write limit: dd the same bytes of zeros to a loop dev + fsync" \
		"dd if=/dev/zero of=\"\$W0\" bs=4M count=$(( (SECTION_BYTES + 4194303) / 4194304 )) conv=fsync status=none" "$CZW"
	PRE_cz_wlimit='cz_target "$CZW" && cz_attach W0 "$CZW"'
	POST_cz_wlimit='cz_detach_all'
	CZNAMES="ref_cz_restore cz_restore cz_wlimit cz_mount"

	echo "bench: output check (imgbk restore DIR/sda vs the reference pipeline, cmp of the disks)"
	trun ref_cz_restore logs/check.res && trun cz_restore logs/check.res
	if [ -f "$CZT" ] && cmp "$CZT" "$REFT" > logs/cz-cmp.out 2>&1; then same_cz=yes; else
		same_cz=no; FAILED="$FAILED czdir-mismatch"; cat logs/cz-cmp.out >&2; fi
	tclean ref_cz_restore
	tclean cz_restore
	echo "bench: first mount (builds and saves the partitions' indexes)"
	trun cz_mount logs/cz-first-mount.res
	echo "  $(cut -d' ' -f1 logs/cz-first-mount.res) s"
	trounds "$CZNAMES"
	cz_cleanup

	echo
	echo "directory: $CZD: GPT disk of $CZ_SECTORS sectors; sda1 ext4 $CZ_EXT_MIB MiB, sda2 FAT32 $CZ_FAT_MIB MiB," \
		"sda3 NTFS $CZ_NTFS_MIB MiB; $SECTION_BYTES bytes used ($(awk "BEGIN{printf \"%.2f\", $SECTION_BYTES/1073741824}") GiB)," \
		"$_zb bytes of .zst images"
	echo "restore output identical: $same_cz   (imgbk restore DIR/sda vs sfdisk + partclone.restore + boot code, cmp of the disks)"
	echo "Warm page cache; median of $RUNS alternating runs; MB/s = used bytes of the partitions / median s."
	echo
	ttable "$CZNAMES"
	case " $REFNOTE " in *" ref_cz"*)
		echo "note: reference exit codes (name:code):$REFNOTE - not counted as failures" ;;
	esac
	echo
	echo "ratios: time of the other / time of imgbk, median over the $RUNS rounds of the ratio within a round"
	ratio "czdir: whole-disk restore speedup vs sfdisk + zstd | partclone.restore" ref_cz_restore cz_restore ">=" 3
	ratio "czdir: whole-disk restore vs the reference, by CPU time" ref_cz_restore cz_restore "" 0 cpu
	tabs "czdir: mount DIR until MNT/sda reads, indexes saved" cz_mount "<" 0.5
	echo "for information:"
	ratio "czdir: restore speed vs the write limit (1 = as fast as the disk)" cz_wlimit cz_restore "" 0
	ratio "czdir: best speedup the disk allows (reference / write limit)" ref_cz_restore cz_wlimit "" 0
	return 0
}

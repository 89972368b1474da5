#!/bin/sh
# test/integration/info.sh - `imgbk info` and `vpartX -v` print the header as
# the imagebackup tools print it, compared line for line with expected files.
#
#   IMGBK=/abs/path/imgbk sh test/integration/info.sh
#
# The committed fixtures (test/data/*.pimg*, *.pc.gz, *.nc.gz) against
# test/data/info/FIXTURE.txt (written from imagebackup's partimage.py,
# partclone.py and ntfsclone.py; see test/data/info/README.md): plain `info`,
# `vpartimage -v` / `vpartclone -v` / `vntfsclone -v` (the same text), `info -v`
# (imgbk's own facts added, the rest unchanged) and --json. As root, with
# partimage, mkntfs and mkfs.ext3: an NTFS volume saved by partimage against
# test/data/info/partimage_ntfs.txt.in (host, device and time filled in from
# the image bytes and uname), and an ext3 volume made with a known UUID whose
# info shows that UUID as it is (not byte-swapped as imagebackup shows it).
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
# Environment: IMGBK (default ../../imgbk), IMGBK_TEST_DATA (default
# ../data), TMPDIR, IMGBK_KEEP=1 keeps the temp dir.

. "$(dirname "$0")/lib.sh"
DATA=${IMGBK_TEST_DATA:-$HERE/../data}
case $DATA in /*) ;; *) DATA=$PWD/$DATA ;; esac
EXP=$DATA/info
IM="timeout -k 5 60 $IMGBK"
PI="timeout -k 5 120 partimage -B x=y"
F=$T/f
mkdir -p "$F"

echo "# imgbk: $IMGBK; data: $DATA; temp: $T"

# expect_out FILE: the last command's stdout equals FILE, line for line
expect_out() {
	diff -u "$1" "$W/out" >"$W/diff" || {
		echo "stdout differs from $1 (- expected, + got):"
		head -n 60 "$W/diff"
		return 1
	}
}

# ---------------------------------------------------------------------------
# 1. committed fixtures

case_info() { # FIXTURE
	need "$DATA/$1" "$EXP/$1.txt" || return 1
	run 0 $IM info "$DATA/$1" && expect_out "$EXP/$1.txt"
}

case_compat_v() { # APPLET FIXTURE
	need "$DATA/$2" "$EXP/$2.txt" || return 1
	run 0 $IM "$1" -v "$DATA/$2" && expect_out "$EXP/$2.txt"
}

# info -v: every line of the plain print is there (labels re-padded), plus FACTS
case_verbose() { # FIXTURE FACT-ERE...
	local fx=$1
	shift
	need "$DATA/$fx" "$EXP/$fx.txt" || return 1
	run 0 $IM info -v "$DATA/$fx" || return 1
	squeeze() { sed -E 's/^([^ :]+) *: /\1: /' "$1"; }
	squeeze "$W/out" >"$W/verbose.sq"
	squeeze "$EXP/$fx.txt" | while IFS= read -r line; do
		grep -qxF -- "$line" "$W/verbose.sq" || { echo "info -v lacks: $line"; exit 1; }
	done || return 1
	[ "$(wc -l <"$W/out")" -gt "$(wc -l <"$EXP/$fx.txt")" ] || fail "info -v added no line" || return 1
	out_has "$@"
}

case_json() { # FIXTURE KEY=VALUE...
	local fx=$1
	shift
	need "$DATA/$fx" || return 1
	run 0 $IM info --json "$DATA/$fx" || return 1
	python3 - "$W/out" "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for kv in sys.argv[2:]:
    k, v = kv.split('=', 1)
    got = d['header'][k]
    assert str(got) == v, (k, got, v)
PY
}

for fx in partimage_ext2_z1.pimg.000 partimage_ext2_stdout.pimg partimage_fat16_z2.pimg.000 \
	partclone_ext2_4m.pc.gz ntfsclone_2m.nc.gz; do
	tc "info $fx = test/data/info/$fx.txt" case_info "$fx"
done
tc "vpartimage -v partimage_ext2_z1.pimg.000 = the same text" case_compat_v vpartimage partimage_ext2_z1.pimg.000
tc "vpartimage -v partimage_fat16_z2.pimg.000 = the same text" case_compat_v vpartimage partimage_fat16_z2.pimg.000
tc "vpartclone -v partclone_ext2_4m.pc.gz = the same text (bitmap 512 bytes (512 B))" \
	case_compat_v vpartclone partclone_ext2_4m.pc.gz
tc "vntfsclone -v ntfsclone_2m.nc.gz = the same text" case_compat_v vntfsclone ntfsclone_2m.nc.gz
tc "info -v partimage ext2 -z1: the plain lines plus header sums, compression name, uname version" \
	case_verbose partimage_ext2_z1.pimg.000 '^header sum +: 0x00002097$' '^compression name: "gzip"$' \
	'^magic +: "PaRtImAgE-VoLuMe"$' '^uname version +: "#'
tc "info -v partimage FAT16 -z2: compression name bzip2" \
	case_verbose partimage_fat16_z2.pimg.000 '^compression name: "bzip2"$' '^header sum *: 0x00000258$'
tc "info --json partimage ext2: keys kept, values raw (identificator, compression, uuid)" \
	case_json partimage_ext2_z1.pimg.000 identificator=6582955727543635540 compression=1 \
	compression_name=gzip original_filepath=partimage_ext2_z1.pimg label=pifixture \
	ext2_uuid=52C1171D-80DE-4568-B99C-9830C6E22C0E ext2_feature_compat=56 main_header_sum=8343 \
	system="x86_64 / Linux / 6.18.44-fc-v669"
tc "info --json partimage FAT16: FAT members (rootEntries at 52, fileSystem)" \
	case_json partimage_fat16_z2.pimg.000 fat_root_entries=512 fat_root_entries_count=0 fat_type=4 \
	fat_sectors_per_cluster=4 label="PIFAT      "
tc "info --json partclone 4 MiB: bitmap_size 512" case_json partclone_ext2_4m.pc.gz bitmap_size=512

# ---------------------------------------------------------------------------
# 2. images made here by partimage (root, loop devices)

# pi_save RAW NAME: partimage -z0 save of RAW (on a loop device) to $F/NAME.000,
# run in $F; prints the loop device used
pi_save() {
	local l rc
	l=$(loop_attach "$1") || return 1
	(cd "$F" && $PI -z0 -d -o -c -f3 save "$l" "$2" </dev/null >"$W/pi.out" 2>"$W/pi.err")
	rc=$?
	losetup -d "$l" 2>/dev/null
	[ -s "$F/$2.000" ] || { echo "partimage save failed ($rc)" >&2; cat "$W/pi.err" >&2; return 1; }
	echo "$l"
}

# header_facts IMAGE: "IDENTIFIER DATETIME" read from the volume and main
# headers as imagebackup reads them
header_facts() {
	python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read(512 + 9600)
ident = struct.unpack_from('<Q', b, 100)[0]
sec, mi, hour, mday, mon, year = struct.unpack_from('<6L', b, 512 + 9548)
print(str(ident) if ident < 10 else '0x%x' % ident,
      '%04d-%02d-%02d %02d:%02d:%02d' % (year + 1900, mon + 1, mday, hour, mi, sec))
PY
}

case_ntfs() {
	local dev ident date time
	truncate -s 8M "$F/ntfs.raw" &&
		run 0 mkntfs -q -F -Q -c 4096 -L pintfs "$F/ntfs.raw" || return 1
	dev=$(pi_save "$F/ntfs.raw" ntfs.pimg) || return 1
	read -r ident date time <<<"$(header_facts "$F/ntfs.pimg.000")" || return 1
	sed -e "s|@IDENTIFIER@|$ident|" -e "s|@DEVICE@|$dev|" -e "s|@SYSNAME@|$(uname -s)|" \
		-e "s|@NODENAME@|$(uname -n)|g" -e "s|@RELEASE@|$(uname -r)|" -e "s|@MACHINE@|$(uname -m)|" \
		-e "s|@DATETIME@|$date $time|" "$EXP/partimage_ntfs.txt.in" >"$W/want" || return 1
	run 0 $IM info "$F/ntfs.pimg.000" && expect_out "$W/want" || return 1
	run 0 $IM vpartimage -v "$F/ntfs.pimg.000" && expect_out "$W/want"
}

# The NTFS info header's members are the boot sector's: compare with ntfsinfo.
case_ntfs_members() {
	need "$F/ntfs.raw" "$F/ntfs.pimg.000" || return 1
	command -v ntfsinfo >/dev/null || skip "ntfsinfo not installed"
	run 0 ntfsinfo -m "$F/ntfs.raw" || return 1
	local lcn rec
	lcn=$(sed -n 's/.*LCN of Data Attribute for FILE_MFT: *//p' "$W/out")
	rec=$(sed -n 's/.*MFT Record Size: *//p' "$W/out")
	grep -q 'Volume Version: 3.1' "$W/out" || fail "not NTFS 3.1" || return 1
	run 0 $IM info --json "$F/ntfs.pimg.000" || return 1
	python3 - "$W/out" "$lcn" "$rec" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))['header']
assert h['ntfs_mft_lcn'] == int(sys.argv[2]), (h['ntfs_mft_lcn'], sys.argv[2])
assert h['ntfs_file_record_size'] == int(sys.argv[3]), h
assert h['ntfs_version'] == 0x0301, h
PY
}

UUID=4f1d2c3b-5a69-4788-9abc-def012345678
case_ext3_uuid() {
	truncate -s 16M "$F/e3.raw" &&
		run 0 mkfs.ext3 -q -F -b 1024 -L ext3-b1024 -U $UUID "$F/e3.raw" || return 1
	pi_save "$F/e3.raw" e3.pimg >/dev/null || return 1
	run 0 $IM info "$F/e3.pimg.000" || return 1
	out_has '^filesystem  : "ext3fs"$' '^Ext2/3 Info Header$' '^------------------$' \
		'^label     : "ext3-b1024"$' "^uuid +: $(echo $UUID | tr a-f A-F)\$" || return 1
	# imagebackup's byte-swapped form must not appear
	! grep -q '3B2C1D4F-695A-8847' "$W/out" || fail "the uuid is byte-swapped"
}

prereq() {
	[ "$(id -u)" = 0 ] || { echo "needs root (loop devices)"; return 1; }
	command -v partimage >/dev/null || { echo "partimage is not installed"; return 1; }
	command -v mkntfs >/dev/null || { echo "mkntfs (ntfs-3g) is not installed"; return 1; }
	command -v mkfs.ext3 >/dev/null && command -v losetup >/dev/null || { echo "e2fsprogs/losetup missing"; return 1; }
	l=$(losetup -f 2>/dev/null) && [ -n "$l" ] || { echo "no free loop device"; return 1; }
}

if why=$(prereq); then
	tc "partimage NTFS (mkntfs 8 MiB): info and vpartimage -v = partimage_ntfs.txt.in" case_ntfs
	tc "partimage NTFS: LCNOfMftDataAttrib, FileRecordSize, ntfsVersion as ntfsinfo reads them" case_ntfs_members
	tc "partimage ext3 made with mkfs -U $UUID: info shows that uuid, not byte-swapped" case_ext3_uuid
else
	tc_skip "partimage images made here (NTFS, ext3)" "$why"
fi

if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" -eq 0 ]

#!/bin/sh
# test/integration/ntfsclone.sh - imgbk against real ntfsclone images.
#
#   IMGBK=/abs/path/imgbk sh test/integration/ntfsclone.sh
#
# Makes NTFS volumes in files with mkntfs (64 MiB populated through ntfs-3g
# with a deterministic tree; 67,110,400 bytes with 4 KiB clusters, whose last
# record is a partial cluster), saves them with ntfsclone (--save-image,
# --metadata --save-image, `-s -o - | gzip` and `| zstd`), restores each
# with ntfsclone as the reference (into a zero file of device_size, and to
# stdout) and checks imgbk info / verify / restore against it, plus damaged
# images (bad command byte, truncation, trailing bytes, GAP 0, legacy). When
# imgbk has the mount applet: the FUSE view of plain and metadata images
# equals ntfsclone's restore, the NTFS in it mounts read-only, compressed
# images are refused and a truncated image fails reads past the cut.
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
#
# Environment: IMGBK (default: ../../imgbk), TMPDIR, IMGBK_KEEP=1 keeps the
# temp dir, IMGBK_TIMEOUT (seconds per imgbk command, default 120).
# Needs root for the ntfs-3g mount (FUSE); without it the 64 MiB volume stays
# empty and that case is skipped. Do not run under faketime (FORMATS.md 6).

. "$(dirname "$0")/lib.sh"
IM="timeout -k 5 ${IMGBK_TIMEOUT:-120} $IMGBK"

SRC=$T/src FS=$T/fs IMG=$T/img REF=$T/ref
mkdir -p "$FS" "$IMG" "$REF"
NC="python3 $T/nc.py"

# An independent reader of the bits the cases need (FORMATS.md section 2).
cat >"$T/nc.py" <<'EOF'
import os, random, struct, sys

def header(path):
    d = open(path, 'rb').read(64)
    major, minor = d[16], d[17]
    cs, dev, nr, inuse, off = struct.unpack_from('<IQqQI', d, 18)
    return major, minor, cs, dev, nr, inuse, off

def records(path):
    """(kind, offset of the command byte, pos) of every record."""
    major, minor, cs, dev, nr, inuse, off = header(path)
    d = open(path, 'rb').read()
    i, pos, out = off, 0, []
    while i < len(d):
        if d[i] == 0:
            out.append(('gap', i, pos))
            pos += struct.unpack_from('<q', d, i + 1)[0]
            i += 9
        elif d[i] == 1:
            out.append(('next', i, pos))
            i += 1 + min(cs, dev - pos * cs)
            pos += 1
        else:
            raise SystemExit('bad command byte at %d' % i)
    return out

def thousands(v):
    return '{:,}'.format(v)

def human(b):
    if b < 1024:
        return '%d B' % b
    v, u = b / 1024, 0
    while v >= 1024 and u < 5:
        v /= 1024
        u += 1
    return '%.1f %s' % (v, ['KB', 'MB', 'GB', 'TB', 'PB', 'EB'][u])

def gen(root):
    r = random.Random(20240601)
    def put(rel, data):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, 'wb').write(data)
    put('random/r1.bin', r.randbytes(3 * 1024 * 1024 + 1234))
    put('random/r2.bin', r.randbytes(300000))
    put('zeros/z1.bin', bytes(1024 * 1024))
    for i in range(40):
        put('text/t%02d.txt' % i, ('line %d of file %d\n' % (i, i) * (50 + i * 13)).encode())
    put('deep/a/b/c/d/e/leaf.txt', b'deep leaf\n')
    put('empty.txt', b'')

cmd = sys.argv[1]
if cmd == 'gen':
    gen(sys.argv[2])
elif cmd == 'dev':
    print(header(sys.argv[2])[3])
elif cmd == 'info':
    major, minor, cs, dev, nr, inuse, off = header(sys.argv[2])
    rows = [('major_ver', str(major)), ('minor_ver', str(minor)),
            ('cluster_size', thousands(cs)),
            ('device_size', '%s (%s)' % (thousands(dev), human(dev))),
            ('nr_clusters', thousands(nr)),
            ('inuse', '%s (%s)' % (thousands(inuse), human(inuse * cs))),
            ('offset_to_image_data', str(off))]
    print('NtfsClone Header\n================')
    for k, v in rows:
        print('%-20s: %s' % (k, v))
    print()  # the blank line the imagebackup tools print after the header
elif cmd == 'stats':
    rs = records(sys.argv[2])
    neg = 0
    d = open(sys.argv[2], 'rb').read()
    for kind, at, pos in rs:
        if kind == 'gap' and struct.unpack_from('<q', d, at + 1)[0] < 0:
            neg += 1
    print('records %d next %d gap %d negative %d' % (len(rs), sum(k == 'next' for k, _, _ in rs),
          sum(k == 'gap' for k, _, _ in rs), neg))
elif cmd == 'cmdoff':   # IMG KIND N: offset of the N-th record of KIND (-1 = last)
    rs = [x for x in records(sys.argv[2]) if x[0] == sys.argv[3]]
    print(rs[int(sys.argv[4])][1])
elif cmd == 'poke':     # FILE OFFSET HEXBYTES
    with open(sys.argv[2], 'r+b') as f:
        f.seek(int(sys.argv[3]))
        f.write(bytes.fromhex(sys.argv[4]))
EOF

echo "# imgbk: $IMGBK; temp: $T; $(ntfsclone --version 2>&1 | head -n 1)"
[ -x "$IMGBK" ] || echo "# WARNING: $IMGBK is missing or not executable: every imgbk case will fail"

# ---------------------------------------------------------------------------
# setup: volumes, images, references

have_tools() {
	local t
	for t in mkntfs ntfsclone; do
		command -v $t >/dev/null || skip "$t not installed (Debian: ntfs-3g)"
	done
}

setup_src() {
	$NC gen "$SRC" && [ -s "$SRC/random/r1.bin" ]
}

mk_vol() { # NAME SIZE MKNTFS-OPTS...
	local name=$1 size=$2 out=$FS/$1.raw
	shift 2
	rm -f "$out"
	truncate -s "$size" "$out" && run 0 mkntfs -q -F -Q "$@" "$out" || { rm -f "$out"; return 1; }
}

populate() { # NAME
	local raw=$FS/$1.raw
	need "$raw" "$SRC/empty.txt" || return 1
	command -v ntfs-3g >/dev/null || skip "ntfs-3g not installed: the volume stays empty"
	[ -e /dev/fuse ] || skip "no /dev/fuse: the volume stays empty"
	mkdir "$W/mnt"
	echo "$W/mnt" >>"$T/mounts"
	timeout 30 ntfs-3g "$raw" "$W/mnt" 2>"$W/merr" || skip "ntfs-3g mount failed: $(head -n 1 "$W/merr")"
	cp -r "$SRC"/. "$W/mnt"/ && sync
	local rc=$?
	umount "$W/mnt" || { sleep 1; umount "$W/mnt"; } || return 1
	[ $rc = 0 ] || return 1
	# the files must be in the volume image now
	grep -c "line 3 of file 3" "$raw" >/dev/null || fail "copied text not found in $raw"
}

mk_image() { # IMAGE SRC-NAME KIND
	local img=$IMG/$1 raw=$FS/$2.raw
	need "$raw" || return 1
	rm -f "$img"
	case $3 in
	save) run 0 ntfsclone --save-image -o "$img" "$raw" ;;
	meta) run 0 ntfsclone --metadata --save-image -o "$img" "$raw" ;;
	gzip) ntfsclone -s -o - "$raw" 2>"$W/err" | gzip -c >"$img" &&
		[ "${PIPESTATUS[0]}" = 0 ] || { show "$W/err"; rm -f "$img"; return 1; } ;;
	zstd) command -v zstd >/dev/null || skip "zstd not installed"
		ntfsclone -s -o - "$raw" 2>"$W/err" | zstd -q -c >"$img" &&
		[ "${PIPESTATUS[0]}" = 0 ] || { show "$W/err"; rm -f "$img"; return 1; } ;;
	esac || { rm -f "$img"; return 1; }
	case $3 in save | meta) echo "# $1: $($NC stats "$img")" ;; esac
}

# ntfsclone's own restores: into a zero file of device_size, and to stdout
mk_ref() { # IMAGE (plain) SRC-NAME|-
	local img=$IMG/$1 dev
	need "$img" || return 1
	dev=$($NC dev "$img") || return 1
	rm -f "$REF/$1.file" "$REF/$1.stdout"
	truncate -s "$dev" "$REF/$1.file"
	run 0 ntfsclone --restore-image --overwrite "$REF/$1.file" "$img" || { rm -f "$REF/$1.file"; return 1; }
	if [ "$2" != - ]; then
		same "$REF/$1.file" "$FS/$2.raw" || { rm -f "$REF/$1.file"; return 1; }
		ntfsclone -r -o - "$img" >"$REF/$1.stdout" 2>"$W/err" || {
			show "$W/err"
			rm -f "$REF/$1.stdout"
			return 1
		}
	fi
}

tc "setup: mkntfs, ntfsclone present" have_tools
tc "setup: deterministic source tree (random, text, zeros, nested dirs)" setup_src
tc "setup: mkntfs -q -F -Q, 64 MiB" mk_vol n64 64M
tc "setup: populate the 64 MiB volume through ntfs-3g (cp -r, umount)" populate n64
tc "setup: mkntfs -q -F -Q -c 4096, 67,110,400 bytes (partial last cluster)" mk_vol np 67110400 -c 4096
tc "setup: ntfsclone --save-image -> n64.nc" mk_image n64.nc n64 save
tc "setup: ntfsclone --metadata --save-image -> n64m.nc" mk_image n64m.nc n64 meta
tc "setup: ntfsclone -s -o - | gzip -> n64.nc.gz" mk_image n64.nc.gz n64 gzip
tc "setup: ntfsclone -s -o - | zstd -> n64.nc.zst" mk_image n64.nc.zst n64 zstd
tc "setup: ntfsclone --save-image -> np.nc (partial last cluster)" mk_image np.nc np save
tc "setup: ntfsclone --metadata --save-image -> npm.nc" mk_image npm.nc np meta
tc "reference: ntfsclone restores of n64.nc (file = source, stdout)" mk_ref n64.nc n64
tc "reference: ntfsclone restores of np.nc (file = source, stdout)" mk_ref np.nc np
tc "reference: ntfsclone restore of n64m.nc into a zero file" mk_ref n64m.nc -
tc "reference: ntfsclone restore of npm.nc into a zero file" mk_ref npm.nc -

# ---------------------------------------------------------------------------
# imgbk on good images

c_same_bytes() { # the gzip/zstd pipes wrote the same image as --save-image
	need "$IMG/n64.nc" "$IMG/n64.nc.gz" || return 1
	gzip -dc "$IMG/n64.nc.gz" >"$W/a" && same "$W/a" "$IMG/n64.nc"
}

c_info() { # IMAGE HEADER-SOURCE
	need "$IMG/$1" "$IMG/$2" || return 1
	$NC info "$IMG/$2" >"$W/want"
	run 0 $IM info "$IMG/$1" || return 1
	diff -u "$W/want" "$W/out" || fail "imgbk info differs from the header"
	run 0 $IM info --json "$IMG/$1" &&
		out_has '"format":"ntfsclone"' '"fs":"NTFS"' '"checksum":"NONE"' '"offset_to_image_data":56'
}

c_verify() { # IMAGE
	need "$IMG/$1" || return 1
	run 0 $IM verify "$IMG/$1" && out_has "OK" "structure"
}

c_restore_file() { # IMAGE REF
	need "$IMG/$1" "$REF/$2.file" || return 1
	run 0 $IM restore -q "$IMG/$1" "$W/r" && same "$W/r" "$REF/$2.file" || return 1
	[ "$(stat -c %s "$W/r")" = "$($NC dev "$IMG/$2")" ] || fail "restored size is not device_size"
}

c_restore_stdout() { # IMAGE REF
	need "$IMG/$1" "$REF/$2.stdout" || return 1
	$IM restore -q "$IMG/$1" - >"$W/r" 2>"$W/err" || { show "$W/err"; fail "imgbk restore - failed"; } || return 1
	same "$W/r" "$REF/$2.stdout"
}

c_restore_stdin() { # IMAGE REF
	need "$IMG/$1" "$REF/$2.file" || return 1
	run_in "$IMG/$1" 0 $IM restore -q - "$W/r" && same "$W/r" "$REF/$2.file"
}

# ntfsclone refuses metadata images on stdout. imgbk must refuse too (a
# nonzero exit naming the stream), or give the bytes of the file restore;
# exit 0 with other bytes is a silently wrong restore.
c_meta_stdout() { # IMAGE
	need "$IMG/$1" "$REF/$1.file" || return 1
	$IM restore -q "$IMG/$1" - >"$W/r" 2>"$W/err"
	local rc=$?
	echo "imgbk restore $1 - exit $rc"
	show "$W/err"
	if [ $rc = 0 ]; then
		cmp -s "$W/r" "$REF/$1.file" ||
			fail "exit 0 but the output differs from the file restore (runs out of order)"
		return
	fi
	[ $rc -le 3 ] || fail "expected exit 0..3, got $rc" || return 1
	err_has "stream|stdout|standard output"
}

tc "n64: ntfsclone -s -o - gives the bytes of --save-image" c_same_bytes
tc "n64.nc: info prints the header (text layout, --json)" c_info n64.nc n64.nc
tc "n64.nc.gz: info through gzip" c_info n64.nc.gz n64.nc
tc "np.nc: info" c_info np.nc np.nc
tc "n64m.nc: info (metadata image)" c_info n64m.nc n64m.nc
for i in n64.nc n64.nc.gz n64.nc.zst np.nc n64m.nc npm.nc; do
	tc "$i: verify -> exit 0, structure checked" c_verify $i
done
tc "n64.nc: restore to a new file == ntfsclone --restore-image" c_restore_file n64.nc n64.nc
tc "n64.nc.gz: restore == ntfsclone --restore-image" c_restore_file n64.nc.gz n64.nc
tc "n64.nc.zst: restore == ntfsclone --restore-image" c_restore_file n64.nc.zst n64.nc
tc "np.nc: restore (partial last cluster) == ntfsclone --restore-image" c_restore_file np.nc np.nc
tc "n64m.nc: restore metadata image (negative GAPs) == ntfsclone --restore-image" c_restore_file n64m.nc n64m.nc
tc "npm.nc: restore metadata image == ntfsclone --restore-image" c_restore_file npm.nc npm.nc
tc "n64.nc: restore IMG - == ntfsclone -r -o - IMG" c_restore_stdout n64.nc n64.nc
tc "n64.nc.zst: restore IMG - == ntfsclone -r -o - IMG" c_restore_stdout n64.nc.zst n64.nc
tc "np.nc: restore IMG - == ntfsclone -r -o - IMG (partial last cluster)" c_restore_stdout np.nc np.nc
tc "n64.nc.gz: restore - TARGET from stdin == ntfsclone --restore-image" c_restore_stdin n64.nc.gz n64.nc
tc "n64m.nc: restore to stdout refuses or equals the file restore" c_meta_stdout n64m.nc

# A volume smaller than its device (mkntfs DEVICE SECTORS, like a shrunk
# partition): ntfsclone's restores stop after the backup boot sector cluster,
# (nr_clusters+1)*cluster_size bytes; imgbk's logical device is device_size
# bytes, the same bytes followed by zeros.
c_small_volume() {
	truncate -s 64M "$W/s.raw" && run 0 mkntfs -q -F -Q "$W/s.raw" 100000 &&
		run 0 ntfsclone --save-image -o "$W/s.nc" "$W/s.raw" || return 1
	ntfsclone -r -o - "$W/s.nc" >"$W/ref" 2>"$W/err" || { show "$W/err"; return 1; }
	run 0 $IM restore -q "$W/s.nc" "$W/r" || return 1
	local n
	n=$(stat -c %s "$W/ref")
	echo "ntfsclone -r -o -: $n bytes; imgbk restore: $(stat -c %s "$W/r") bytes"
	[ "$n" = 51200000 ] || fail "ntfsclone wrote $n bytes, expected (12499+1)*4096" || return 1
	[ "$(stat -c %s "$W/r")" = 67108864 ] || fail "imgbk restore is not device_size long" || return 1
	cmp -n "$n" "$W/r" "$W/ref" || fail "the first $n bytes differ" || return 1
	cmp -s -i "$n:0" -n $((67108864 - n)) "$W/r" /dev/zero || fail "the tail is not zero"
}

tc "volume smaller than the device: imgbk restore = ntfsclone's bytes + zeros up to device_size" c_small_volume

# ---------------------------------------------------------------------------
# damaged images

damaged() { # NAME: copy n64.nc to $W/NAME
	need "$IMG/n64.nc" || return 1
	cp "$IMG/n64.nc" "$W/$1"
}

c_bad_command() {
	damaged bad.nc || return 1
	local at
	at=$($NC cmdoff "$W/bad.nc" next 100) || return 1
	$NC poke "$W/bad.nc" "$at" 07
	run 1 $IM verify "$W/bad.nc" && err_has "invalid command byte 0x07" "at byte $at" && err_names bad.nc &&
		run 1 $IM restore -q "$W/bad.nc" "$W/r" && err_has "command"
}

c_truncated_data() {
	damaged cut.nc || return 1
	truncate -s $(($(stat -c %s "$W/cut.nc") - 1000)) "$W/cut.nc"
	run 1 $IM verify "$W/cut.nc" && err_has "truncated" && err_names cut.nc &&
		run 1 $IM restore -q "$W/cut.nc" "$W/r" && err_has "truncated"
}

c_truncated_boundary() { # cut right before the backup boot sector record
	damaged cut.nc || return 1
	truncate -s "$($NC cmdoff "$W/cut.nc" next -1)" "$W/cut.nc"
	run 1 $IM verify "$W/cut.nc" && err_has "truncated" "backup boot sector"
}

c_truncated_gz() {
	need "$IMG/n64.nc.gz" || return 1
	head -c $(($(stat -c %s "$IMG/n64.nc.gz") / 2)) "$IMG/n64.nc.gz" >"$W/cut.nc.gz"
	run 1 $IM verify "$W/cut.nc.gz" && err_has "truncated|unexpected end"
}

c_trailing() {
	damaged tail.nc || return 1
	printf '\001' >>"$W/tail.nc"
	run 1 $IM verify "$W/tail.nc" && err_has "trailing"
}

c_gap_zero() {
	damaged gap0.nc || return 1
	local at
	at=$($NC cmdoff "$W/gap0.nc" gap 1) || return 1
	$NC poke "$W/gap0.nc" $((at + 1)) 0000000000000000
	run 1 $IM verify "$W/gap0.nc" && err_has "GAP record of 0 clusters"
}

c_legacy() {
	damaged old.nc || return 1
	$NC poke "$W/old.nc" 16 0301
	run 1 $IM info "$W/old.nc" && err_has "legacy"
}

c_bad_header() {
	damaged hdr.nc || return 1
	$NC poke "$W/hdr.nc" 18 00300000   # cluster size 12288
	run 1 $IM info "$W/hdr.nc" && err_has "cluster size 12288"
}

tc "damaged: command byte 0x07 -> exit 1, 'invalid command byte' at its offset" c_bad_command
tc "damaged: truncated in cluster data -> exit 1 'truncated'" c_truncated_data
tc "damaged: truncated before the backup boot sector record -> exit 1" c_truncated_boundary
tc "damaged: gzip stream cut in half -> exit 1" c_truncated_gz
tc "damaged: a byte after the last record -> exit 1 'trailing'" c_trailing
tc "damaged: GAP count 0 -> exit 1" c_gap_zero
tc "damaged: legacy version 3.1 -> exit 1 'legacy'" c_legacy
tc "damaged: cluster size not a power of two -> exit 1" c_bad_header

# ---------------------------------------------------------------------------
# imgbk mount (random access through FUSE), when this imgbk has it

# umount DIR until nothing is mounted there (ntfs-3g may sit on the FUSE mount)
unmount_dir() {
	local i
	for i in 1 2 3; do
		mountpoint -q "$1" 2>/dev/null || return 0
		fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
		sleep 0.2
	done
	! mountpoint -q "$1"
}

# mount_img IMAGE DIR: imgbk mount, DIR recorded for the exit trap; prints
# the virtual file's path
mount_img() {
	mkdir -p "$2" && echo "$2" >>"$T/mounts"
	$IMGBK mount -q "$1" "$2" >"$W/mout" 2>"$W/merr" || {
		echo "imgbk mount $1 $2 failed:"
		show "$W/merr"
		return 1
	}
	local names
	names=$(ls -A "$2")
	[ "$(echo "$names" | wc -l)" = 1 ] && [ -n "$names" ] ||
		fail "expected one file in the mount, found: $names" || return 1
	echo "$2/$names"
}

c_mount_same() { # IMAGE REF: the virtual file == ntfsclone's restore, twice (index built, loaded)
	need "$IMG/$1" "$REF/$2.file" || return 1
	rm -f "$IMG/$1.ibkx"
	local f pass
	for pass in built loaded; do
		f=$(mount_img "$IMG/$1" "$W/mnt") || { echo "$f"; return 1; }
		echo "# $pass: $f"
		[ "$(stat -c %s "$f")" = "$(stat -c %s "$REF/$2.file")" ] ||
			fail "size $(stat -c %s "$f"), ntfsclone's restore has $(stat -c %s "$REF/$2.file")" || return 1
		same "$f" "$REF/$2.file" || return 1
		# random pieces in parallel
		local i pids=""
		for i in 1 2 3 4; do
			cmp -s -i $((i * 7777777)):$((i * 7777777)) -n 3000001 "$f" "$REF/$2.file" &
			pids="$pids $!"
		done
		for i in $pids; do wait "$i" || fail "a parallel read differs" || return 1; done
		unmount_dir "$W/mnt" || fail "cannot unmount $W/mnt" || return 1
		[ -s "$IMG/$1.ibkx" ] || fail "no index saved next to the image" || return 1
	done
}

c_mount_fs() { # the NTFS volume in the mount mounts read-only and its files read back
	need "$IMG/n64.nc" "$SRC/random/r1.bin" || return 1
	local f
	f=$(mount_img "$IMG/n64.nc" "$W/mnt") || { echo "$f"; return 1; }
	mkdir -p "$W/fs" && echo "$W/fs" >>"$T/mounts"
	if command -v ntfs-3g >/dev/null && timeout 30 ntfs-3g -o ro "$f" "$W/fs" 2>"$W/err"; then
		echo "# ntfs-3g -o ro $f"
	elif timeout 30 mount -o loop,ro -t ntfs3 "$f" "$W/fs" 2>>"$W/err" ||
		timeout 30 mount -o loop,ro "$f" "$W/fs" 2>>"$W/err"; then
		echo "# mount -o loop,ro $f"
	else
		show "$W/err"
		unmount_dir "$W/mnt"
		skip "neither ntfs-3g nor a loop mount of the virtual file works here"
	fi
	local rc=0
	same "$W/fs/random/r1.bin" "$SRC/random/r1.bin" && same "$W/fs/text/t17.txt" "$SRC/text/t17.txt" &&
		same "$W/fs/deep/a/b/c/d/e/leaf.txt" "$SRC/deep/a/b/c/d/e/leaf.txt" || rc=1
	unmount_dir "$W/fs" || { fail "cannot unmount $W/fs"; rc=1; }
	unmount_dir "$W/mnt" || { fail "cannot unmount $W/mnt"; rc=1; }
	return $rc
}

c_mount_lzma_refused() { # lzma has no access points: refused, naming the command
	need "$IMG/n64.nc" || return 1
	xz --format=lzma -1 -c "$IMG/n64.nc" >"$W/n64.nc.lzma" || return 1
	mkdir -p "$W/mnt" && echo "$W/mnt" >>"$T/mounts"
	run 1 $IMGBK mount -q "$W/n64.nc.lzma" "$W/mnt" && err_has "decompress" "xz -dc"
	! mountpoint -q "$W/mnt" || fail "mounted anyway"
}

c_mount_truncated() { # the records before the cut read, a read past it fails (EIO), no hang
	damaged cut.nc || return 1
	local size f
	size=$(stat -c %s "$W/cut.nc")
	truncate -s $((size / 2)) "$W/cut.nc"
	f=$(mount_img "$W/cut.nc" "$W/mnt") || { echo "$f"; return 1; }
	local rc=0
	cmp -n 1048576 "$f" "$REF/n64.nc.file" || { fail "the first MiB differs"; rc=1; }
	if timeout 60 cat "$f" >/dev/null 2>"$W/err"; then
		fail "reading the whole file of a truncated image succeeded"
		rc=1
	else
		show "$W/err"
		grep -qi "error" "$W/err" || { fail "no read error reported"; rc=1; }
	fi
	unmount_dir "$W/mnt" || { fail "cannot unmount $W/mnt"; rc=1; }
	return $rc
}

if ! command -v fusermount3 >/dev/null || [ ! -e /dev/fuse ]; then
	tc_skip "imgbk mount cases" "no fusermount3 or /dev/fuse"
elif ! $IMGBK --help 2>&1 | grep -q mount; then
	tc_skip "imgbk mount cases" "this imgbk has no mount applet"
else
	tc "mount n64.nc: the virtual file == ntfsclone --restore-image (index built, then loaded)" c_mount_same n64.nc n64.nc
	tc "mount np.nc: partial last cluster == ntfsclone --restore-image" c_mount_same np.nc np.nc
	tc "mount n64m.nc: metadata image (negative GAPs) == ntfsclone --restore-image" c_mount_same n64m.nc n64m.nc
	tc "mount npm.nc: metadata image == ntfsclone --restore-image" c_mount_same npm.nc npm.nc
	tc "mount n64.nc: ntfs-3g -o ro (or mount -o loop,ro) of the virtual file, files read back" c_mount_fs
	tc "mount n64.nc.gz (access points): the virtual file == ntfsclone --restore-image" c_mount_same n64.nc.gz n64.nc
	tc "mount n64.nc.zst (one small frame): the virtual file == ntfsclone --restore-image" c_mount_same n64.nc.zst n64.nc
	tc "mount n64.nc.lzma: refused, naming xz -dc" c_mount_lzma_refused
	tc "mount a truncated image: bytes before the cut read, reading past it fails" c_mount_truncated
fi

if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

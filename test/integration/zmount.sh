#!/bin/sh
# test/integration/zmount.sh - imgbk index / imgbk mount of COMPRESSED images
# (random access through access points, io/zseek*.c) against real FUSE mounts.
#
#   IMGBK=/abs/path/imgbk sh test/integration/zmount.sh [--part K/N]
#
# Builds a 64 MiB ext4 (mkfs.ext4 -d) from a deterministic tree of ~40 MiB
# (random and text data), images it with Debian's partclone.extfs, checks
# partclone.restore gives back the source fs, then compresses the image in
# many ways: gzip -1, gzip -9, pigz, multi-member gzip (split pieces gzipped
# and concatenated), a Clonezilla-style split set of one gzip stream
# (sda1.ext4-ptcl-img.gz.aa, .ab, ...), and bzip2, pbzip2, xz (multi-block),
# pzstd, lz4 and lz4 -BD, and one zstd frame (read through checkpoints inside
# it) made by zstd -1, -3, -T0 -3 (Clonezilla's command), -19, --long=27 and
# -T0 -3 split into .aa pieces. For each: imgbk index saves, a second run is up to
# date; the mounted file equals the source fs; a loop mount of it (ro) holds
# the source files (diff -r); ~200 random preads of random sizes equal the
# reference; the unmount is clean. A codec this imgbk cannot read at random
# ("cannot be read at random (no access points ...)") makes its cases SKIP.
# Then a 256 MiB ext4 holding ~190 MiB of mixed files (a partclone image of
# 200+ MiB) as one zstd -T0 -3 frame: mount == partclone.restore, 1,000
# random reads, loop mount; a byte flipped after indexing reads EIO in its
# span only; a checkpoint's state damaged in the .ibkx while mounted reads
# EIO in its span only (then imgbk index rebuilds the index); a damaged copy
# fails its index build naming 'byte N'. partclone's XXH128 samples
# (test/data) each in one zstd -T0 -3 frame mount and hash to the restore's
# sha256. Then
# damage: a damaged .gz (index exit 1, 'byte N'), a .gz damaged in place after its
# index was built (EIO there, other reads work, the daemon lives on), a
# truncated .gz (exit 1, 'truncated'); an ntfsclone image piped through
# gzip mounts and equals ntfsclone --restore-image; vpartclone -m mounts a
# .gz. Every mount is removed by the case that made it and, as a last
# resort, by the exit trap.
#
# Output: "ok N - ..." / "not ok N - ..." per case, then one line
# "N passed, M failed[, K skipped]". Exit 1 if any case failed.
# Environment: IMGBK (default ../../imgbk; vpartclone is the symlink next to
# it), TMPDIR, IMGBK_KEEP=1 keeps the temp dir.

. "$(dirname "$0")/lib.sh"
VPC=$(dirname "$IMGBK")/vpartclone
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

# mnt IMAGE DIR [OPTIONS...]: imgbk mount (daemon), checked; prints nothing
mnt() {
	local img=$1 dir=$2
	shift 2
	mkdir -p "$dir" && track "$(cd "$dir" && pwd)"
	run 0 $TO "$IMGBK" mount "$@" "$img" "$dir" || return 1
	mountpoint -q "$dir" || fail "$dir is not a mount point after imgbk mount returned 0"
}

# the one file in a mount
vfile() {
	local names
	names=$(ls -A "$1")
	[ -n "$names" ] && [ "$(echo "$names" | wc -l)" = 1 ] ||
		{ echo "FAIL: expected one file in $1, found [$names]" >&2; return 1; }
	echo "$1/$names"
}

# clean unmount: fusermount3 -u works, nothing left mounted
unmount_clean() {
	fusermount3 -u "$1" 2>"$W/err" || { echo "fusermount3 -u $1 failed:"; show "$W/err"; return 1; }
	! mountpoint -q "$1" || fail "$1 still mounted after fusermount3 -u"
}

# randreads FILE REF SEED [N]: N (default 200) preads of random sizes at random
# offsets (some at the very end, some crossing it) equal REF; the page cache
# of FILE is dropped before each one so every read reaches the daemon.
randreads() {
	python3 - "$1" "$2" "$3" "${4:-200}" <<'EOF'
import os, random, sys
f, ref, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
size = os.path.getsize(ref)
if os.path.getsize(f) != size:
    sys.exit('size %d, reference %d' % (os.path.getsize(f), size))
a, b = os.open(f, os.O_RDONLY), os.open(ref, os.O_RDONLY)
bad = 0
for i in range(n):
    k = i % 10
    ln = r.choice([1, 7, 512, 4096, 65536, 131072 + 3, 1 << 20, r.randrange(1, 3 << 20)])
    if k == 8:
        off = size - r.randrange(1, 4096)          # the last bytes
    elif k == 9:
        off = size - r.randrange(0, ln + 1)          # up to and past the end
    else:
        off = r.randrange(0, size)
    os.posix_fadvise(a, 0, 0, os.POSIX_FADV_DONTNEED)
    x = os.pread(a, ln, off)
    y = os.pread(b, ln, off)
    if x != y:
        bad += 1
        print('read %d: %d bytes at %d: got %d bytes, %s' % (i, ln, off, len(x),
              'short' if len(x) != len(y) else 'different bytes'))
        if bad > 5:
            break
x = os.pread(a, 10, size)
if x != b'':
    print('a read at the end returned %d bytes' % len(x)); bad += 1
sys.exit(1 if bad else 0)
EOF
}

# ---- fixtures -------------------------------------------------------------------

FUSE_WHY=""
[ -c /dev/fuse ] || FUSE_WHY="/dev/fuse is missing"
command -v fusermount3 >/dev/null || FUSE_WHY="${FUSE_WHY:-fusermount3 is not installed}"
ROOT_WHY=""
[ "$(id -u)" = 0 ] || ROOT_WHY="not root (loop mounts need root)"

# the source tree: pcimg.py's (random, text, zeros, deep dirs) plus ~36 MiB more
gen_tree() {
	$PY gen "$1" || return 1
	python3 - "$1" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(20251126)
os.makedirs(os.path.join(root, 'big'), exist_ok=True)
with open(os.path.join(root, 'big/rand14.bin'), 'wb') as f:
    f.write(r.randbytes(14 << 20))
words = [b'alpha', b'bravo', b'charlie', b'delta', b'echo', b'foxtrot', b'golf', b'hotel',
         b'india', b'juliet', b'kilo', b'lima', b'mike', b'november']
with open(os.path.join(root, 'big/words.txt'), 'wb') as f:
    n = i = 0
    while n < (22 << 20):
        line = b'%07d ' % i + b' '.join(r.choice(words) for _ in range(12)) + b'\n'
        f.write(line)
        n += len(line)
        i += 1
for dp, dns, fns in os.walk(root, topdown=False):
    for x in fns:
        os.utime(os.path.join(dp, x), (1700000000, 1700000000))
    os.utime(dp, (1700000000, 1700000000))
EOF
}

setup_fs() {
	local out=$FIX/fs.raw
	command -v partclone.extfs >/dev/null || skip "partclone.extfs not installed"
	gen_tree "$FIX/src" || return 1
	truncate -s 64M "$out" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 \
			-U 0b5e7c1a-1111-4222-8333-444455556666 -L imgbk-zm -d "$FIX/src" "$out" || return 1
	run 0 partclone.extfs -c -s "$out" -O "$FIX/fs.img" -L "$W/log" || { cat "$W/log"; return 1; }
	echo "# fs.img: $(stat -c %s "$FIX/fs.img") bytes"
	# the reference: partclone's own restore gives back the source fs
	truncate -s 64M ref.raw &&
		run 0 partclone.restore -s "$FIX/fs.img" -O ref.raw -L "$W/log2" || { cat "$W/log2"; return 1; }
	same ref.raw "$out"
}

# mkvar NAME TOOL-PROBE: make $FIX/v/NAME/ holding one compressed form of fs.img
mkvar() {
	local name=$1 tool=$2 d=$FIX/v/$1 i
	need "$FIX/fs.img" || return 1
	command -v "$tool" >/dev/null || skip "$tool not installed"
	rm -rf "$d" && mkdir -p "$d" || return 1
	case $name in
	gzip1) gzip -1 -c "$FIX/fs.img" >"$d/fs.img.gz" ;;
	gzip9) gzip -9 -c "$FIX/fs.img" >"$d/fs.img.gz" ;;
	pigz) pigz -p 2 -c "$FIX/fs.img" >"$d/fs.img.gz" ;;
	members)
		(cd "$d" && split -b 5M "$FIX/fs.img" part. && for i in part.*; do gzip -6 "$i" || exit 1; done &&
			cat part.*.gz >fs.img.gz && rm part.*.gz) || return 1
		;;
	clonezilla)
		(cd "$d" && gzip -c "$FIX/fs.img" | split -b 8M - sda1.ext4-ptcl-img.gz.) || return 1
		;;
	bzip2) bzip2 -c "$FIX/fs.img" >"$d/fs.img.bz2" ;;
	pbzip2) pbzip2 -p2 -c "$FIX/fs.img" >"$d/fs.img.bz2" ;;
	# -1: the level does not change the blocks, and keeps the case fast
	xz) xz -T2 -1 --block-size=4MiB -c "$FIX/fs.img" >"$d/fs.img.xz" ;;
	pzstd) pzstd -q -p 2 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	lz4) lz4 -q -c "$FIX/fs.img" >"$d/fs.img.lz4" ;;
	lz4BD) lz4 -q -BD -c "$FIX/fs.img" >"$d/fs.img.lz4" ;;
	zstd1) zstd -q -1 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	zstd3) zstd -q -3 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	zstdT0) zstd -q -T0 -3 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	zstd19) zstd -q -19 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	zstdlong) zstd -q -3 --long=27 -c "$FIX/fs.img" >"$d/fs.img.zst" ;;
	zstdsplit)
		(cd "$d" && zstd -q -T0 -3 -c "$FIX/fs.img" | split -b 7M - sda1.ext4-ptcl-img.zst.) || return 1
		;;
	*) fail "unknown variant $name" ;;
	esac || { rm -rf "$d"; return 1; }
	ls -l "$d" | sed 's/^/# /'
}

# the image file (first piece) of a variant
varimg() {
	local f
	case $1 in
	clonezilla) echo "$FIX/v/$1/sda1.ext4-ptcl-img.gz.aa" ;;
	zstdsplit) echo "$FIX/v/$1/sda1.ext4-ptcl-img.zst.aa" ;;
	*) for f in "$FIX/v/$1"/fs.img.*; do
		case $f in *.ibkx) ;; *) [ -e "$f" ] && echo "$f" && break ;; esac
	done ;;
	esac
}

# The refusal of a codec with no access points in this build (formats/access.c,
# io/rsrc.c). Not a codec's own refusal of one data layout (one zstd frame).
NO_RA='cannot be read at random \(no access points|: [a-z0-9]+ data cannot be read at random'

# has_checkpoints INDEX N: the index holds at least N zstd checkpoint states
# (each packed as a zstd frame of its own, stored as is)
has_checkpoints() {
	local n
	n=$(python3 -c "import sys; print(open(sys.argv[1], 'rb').read().count(bytes.fromhex('28b52ffd')))" "$1")
	echo "# $1: $n checkpoints"
	[ "$n" -ge "$2" ] || fail "$1 holds $n zstd checkpoints, expected at least $2"
}

# chunks_eio FILE REF: read FILE in 1 MiB chunks; print "eio N wrong N ok N first OFF"
# (chunks that fail with EIO, differ from REF, equal REF; the first EIO offset)
chunks_eio() {
	python3 - "$1" "$2" <<'EOF'
import errno, os, sys
a, b = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
size = os.path.getsize(sys.argv[2])
eio = wrong = ok = 0
first = -1
for off in range(0, size, 1 << 20):
    try:
        x = os.pread(a, 1 << 20, off)
    except OSError as e:
        if e.errno != errno.EIO:
            raise
        eio += 1
        first = off if first < 0 else first
        continue
    if x != os.pread(b, 1 << 20, off):
        wrong += 1
    else:
        ok += 1
print('eio %d wrong %d ok %d first %d' % (eio, wrong, ok, first))
EOF
}

# damage_in_place FILE: flip FILE's middle byte, keeping its size and time:
# its saved index still counts as up to date
damage_in_place() {
	local size
	size=$(stat -c %s "$1")
	touch -r "$1" stamp
	flip "$1" $((size / 2)) && touch -r stamp "$1" || return 1
	run 0 $TO "$IMGBK" index "$1" && out_has 'up to date'
}

# flip BYTE of FILE at OFFSET (xor 0x55)
# eio_in_one_span FILE REF WHAT: reading FILE by 1 MiB chunks, some fail with
# EIO, none gives other bytes than REF, and the failing ones are one span (4
# MiB; 8 when a checkpoint next to it was dropped) and the chunks across its ends
eio_in_one_span() {
	local eio wrong ok
	chunks_eio "$1" "$2" >scan.out || return 1
	cat scan.out
	read -r _ eio _ wrong _ ok _ <scan.out
	[ "${wrong:-1}" = 0 ] || fail "$wrong MiB chunks read with wrong bytes (no error)" || return 1
	[ "${eio:-0}" -ge 1 ] || fail "no read failed: $3 went unnoticed" || return 1
	[ "${eio:-99}" -le 10 ] || fail "$eio MiB chunks fail: $3 spoils more than its span"
}

flip() {
	python3 - "$1" "$2" <<'EOF'
import sys
f, off = sys.argv[1], int(sys.argv[2])
with open(f, 'r+b') as h:
    h.seek(off)
    b = h.read(1)[0]
    h.seek(off)
    h.write(bytes([b ^ 0x55]))
EOF
}

# ---- cases: one compressed variant ------------------------------------------------

c_index() { # NAME CODEC
	local img
	need "$FIX/v/$1" || return 1
	img=$(varimg "$1") && [ -n "$img" ] || fail "no image in $FIX/v/$1" || return 1
	rm -f "$FIX/v/$1"/*.ibkx
	$TO "$IMGBK" index "$img" >"$W/out" 2>"$W/err"
	local rc=$?
	if [ $rc = 1 ] && grep -qE "$NO_RA" "$W/err"; then
		show "$W/err"
		: >"$FIX/v/$1.nora"
		skip "no random access for $2 in this build"
	fi
	[ $rc = 0 ] || { echo "imgbk index $img: exit $rc"; show "$W/err"; return 1; }
	out_has "saved to .*\.ibkx \(built\)" || return 1
	case $1 in zstd?*) out_has "[1-9][0-9]* checkpoints in 1 zstd frame \(index [0-9.]+ MB\)" || return 1 ;; esac
	ls "$FIX/v/$1"/*.ibkx >/dev/null 2>&1 || fail "no .ibkx next to $img" || return 1
	run 0 $TO "$IMGBK" index "$img" && out_has 'up to date' || return 1
	run 0 $TO "$IMGBK" index --json "$img" && out_has '"state":"up-to-date","origin":"loaded"' || return 1
	case $1 in zstd?*) has_checkpoints "$(ls "$FIX/v/$1"/*.ibkx | head -n 1)" 5 || return 1 ;; esac
	# a damaged index (one byte in its access points) is rebuilt, not used
	local ix
	ix=$(ls "$FIX/v/$1"/*.ibkx | head -n 1)
	cp "$ix" good.ibkx && flip "$ix" $(($(stat -c %s "$ix") / 2)) || return 1
	run 0 $TO "$IMGBK" index "$img" && out_has 'saved to .* \(rebuilt' || return 1
	cmp -s "$ix" good.ibkx || fail "the rebuilt index differs from the first one" || return 1
	: >"$FIX/v/$1.indexed"
}

c_mount() { # NAME CODEC
	local img f rc=0
	start_case
	[ -e "$FIX/v/$1.nora" ] && skip "no random access for $2 in this build"
	need "$FIX/v/$1.indexed" "$FIX/fs.raw" || return 1
	img=$(varimg "$1")
	mnt "$img" m -q || return 1
	f=$(vfile m) || return 1
	echo "# virtual file: $f"
	same "$f" "$FIX/fs.raw" || return 1
	randreads "$f" "$FIX/fs.raw" "$(cksum <<<"$1" | cut -d' ' -f1)" || fail "random reads differ" || return 1
	if [ -z "$ROOT_WHY" ]; then
		mkdir m2 && track "$PWD/m2"
		run 0 mount -o loop,ro "$f" m2 || return 1
		diff -r m2/deep "$FIX/src/deep" && diff -r m2/text "$FIX/src/text" &&
			diff -r m2/random "$FIX/src/random" && same m2/big/words.txt "$FIX/src/big/words.txt" ||
			fail "files in the loop mount differ from the source tree" || return 1
		umount m2 || fail "umount m2 failed" || return 1
	else
		echo "# loop mount not tried: $ROOT_WHY"
	fi
	unmount_clean m
}

# mount --direct-io: the same bytes, read as a whole (dd bs=1M and 64 KiB, so
# requests of both sizes reach the daemon with no page cache between),
# 200 random preads, a loop mount; a private mmap reads the right bytes and a
# shared one fails with ENODEV (as --help says).
c_mount_direct() { # NAME CODEC
	local img f
	start_case
	[ -e "$FIX/v/$1.nora" ] && skip "no random access for $2 in this build"
	need "$FIX/v/$1.indexed" "$FIX/fs.raw" || return 1
	img=$(varimg "$1")
	mnt "$img" m -q --direct-io || return 1
	f=$(vfile m) || return 1
	dd if="$f" of=big.out bs=1M status=none && same big.out "$FIX/fs.raw" || return 1
	dd if="$f" of=small.out bs=64k status=none && same small.out "$FIX/fs.raw" || return 1
	rm -f big.out small.out
	randreads "$f" "$FIX/fs.raw" 4242 || fail "random reads differ" || return 1
	python3 - "$f" "$FIX/fs.raw" <<'EOF' || return 1
import errno, mmap, sys
f, ref = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb')
at = 1 << 20
p = mmap.mmap(f.fileno(), 1 << 20, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ, offset=at)
ref.seek(at)
if p[:] != ref.read(1 << 20):
    sys.exit('a private mmap of the direct-io file reads other bytes than the source')
try:
    mmap.mmap(f.fileno(), 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    sys.exit('a shared mmap of the direct-io file worked: --help says it fails')
except OSError as e:
    if e.errno != errno.ENODEV:
        sys.exit('a shared mmap failed with %s, not ENODEV' % e)
print('# private mmap reads right; shared mmap: ENODEV')
EOF
	if [ -z "$ROOT_WHY" ]; then
		mkdir m2 && track "$PWD/m2"
		run 0 mount -o loop,ro "$f" m2 || return 1
		diff -r m2/deep "$FIX/src/deep" && same m2/big/words.txt "$FIX/src/big/words.txt" ||
			fail "files in the loop mount differ from the source tree" || return 1
		umount m2 || fail "umount m2 failed" || return 1
	fi
	unmount_clean m
}

# ---- cases: refusals and damage -------------------------------------------------

# the big fixture: a 256 MiB ext4 holding ~190 MiB of mixed files (random,
# text, zeros, repeated records), partclone.extfs (an image of 200+ MiB),
# zstd -T0 -3 (one frame)
setup_big() {
	local d=$FIX/big
	mkdir -p "$d/src" || return 1
	python3 - "$d/src" <<'EOF' || return 1
import os, random, sys
root, r = sys.argv[1], random.Random(20261204)
words = [b'partclone', b'ext4', b'inode', b'journal', b'clonezilla', b'zstd', b'frame', b'block']
for i in range(6):
    with open(os.path.join(root, 'rand%d.bin' % i), 'wb') as f:
        f.write(r.randbytes(10 << 20))
    with open(os.path.join(root, 'text%d.log' % i), 'wb') as f:
        n = k = 0
        while n < (15 << 20):
            line = b'%08d %s\n' % (k, b' '.join(r.choice(words) for _ in range(10)))
            f.write(line)
            n += len(line)
            k += 1
    with open(os.path.join(root, 'rec%d.db' % i), 'wb') as f:
        rec = r.randbytes(4096)
        for k in range(1024):
            f.write(rec[:64] + (b'%016d' % (k * 7 + i)) + rec[80:])
with open(os.path.join(root, 'zeros.bin'), 'wb') as f:
    f.write(bytes(16 << 20))
for x in os.listdir(root):
    os.utime(os.path.join(root, x), (1700000000, 1700000000))
EOF
	truncate -s 256M "$d/big.raw" &&
		run 0 env E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 -d "$d/src" "$d/big.raw" &&
		run 0 partclone.extfs -c -s "$d/big.raw" -O "$d/big.img" -L "$W/log" || return 1
	truncate -s 256M "$d/ref.raw" &&
		run 0 partclone.restore -s "$d/big.img" -O "$d/ref.raw" -L "$W/log2" || { cat "$W/log2"; return 1; }
	same "$d/ref.raw" "$d/big.raw" || return 1
	[ "$(stat -c %s "$d/big.img")" -ge $((200 << 20)) ] || fail "the partclone image is under 200 MiB" || return 1
	zstd -q -T0 -3 -c "$d/big.img" >"$d/big.img.zst" || return 1
	echo "# big.img $(stat -c %s "$d/big.img") bytes -> big.img.zst $(stat -c %s "$d/big.img.zst") bytes"
	rm -f "$d/big.img" "$d/big.raw"
}

# one zstd -T0 -3 frame of 200+ MiB: index with checkpoints, mount == restore,
# 1000 random reads, loop mount and read the files
c_zstd_big() {
	local d=$FIX/big f
	start_case
	need "$d/big.img.zst" "$d/ref.raw" || return 1
	run 0 $TO "$IMGBK" index "$d/big.img.zst" && out_has 'saved' || return 1
	has_checkpoints "$d/big.img.zst.ibkx" 40 || return 1
	echo "# index $(stat -c %s "$d/big.img.zst.ibkx") bytes for $(stat -c %s "$d/big.img.zst") compressed"
	mnt "$d/big.img.zst" m -q || return 1
	f=$(vfile m) || return 1
	same "$f" "$d/ref.raw" || return 1
	randreads "$f" "$d/ref.raw" 4242 1000 || fail "random reads differ" || return 1
	if [ -z "$ROOT_WHY" ]; then
		mkdir m2 && track "$PWD/m2"
		run 0 mount -o loop,ro "$f" m2 || return 1
		diff -r -x lost+found m2/ "$d/src/" || fail "files in the loop mount differ from the source" || return 1
		umount m2 || fail "umount m2 failed" || return 1
	fi
	unmount_clean m
}

# the big frame damaged in place after indexing (same size and time): EIO in
# the damaged span only, the rest reads right; a damaged copy (no index)
# fails its index build naming the compressed offset
c_zstd_big_damaged() {
	local d=$FIX/big f size
	start_case
	need "$d/big.img.zst" "$d/ref.raw" "$d/big.img.zst.ibkx" || return 1
	cp -p "$d/big.img.zst" late.img.zst && cp "$d/big.img.zst.ibkx" late.img.zst.ibkx || return 1
	damage_in_place late.img.zst || return 1
	size=$(stat -c %s late.img.zst)
	mnt late.img.zst m -q || return 1
	f=$(vfile m) || return 1
	eio_in_one_span "$f" "$d/ref.raw" "the damage" || return 1
	unmount_clean m || return 1
	cp "$d/big.img.zst" bad.img.zst && flip bad.img.zst $((size / 3)) || return 1
	run 1 $TO "$IMGBK" index bad.img.zst || return 1
	[ "$(wc -l <"$W/err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$W/err")" || return 1
	err_names bad.img.zst && err_has 'byte [0-9]+' || return 1
	[ ! -e bad.img.zst.ibkx ] || fail "an index was saved for a damaged image"
}

# The index keeps its checkpoints' states after its checked part and the
# mount reads them from the file when a read needs one: a state damaged in
# the file while mounted gives EIO for its span only (never other bytes); a
# state damaged before the index is opened makes it rebuilt. The first
# mount (which builds the index) says how many checkpoints it made.
c_zstd_big_state_damaged() {
	local d=$FIX/big f
	start_case
	need "$d/big.img.zst" "$d/ref.raw" "$d/big.img.zst.ibkx" || return 1
	cp -p "$d/big.img.zst" st.img.zst || return 1
	# the first mount builds the index and says what it made (its states stay
	# in memory); the second loads it (states read from the file)
	mnt st.img.zst m || return 1
	out_has "st.img.zst: [1-9][0-9]* checkpoints in 1 zstd frame \(index [0-9.]+ MB\)" || return 1
	unmount_clean m || return 1
	mnt st.img.zst m -q || return 1
	f=$(vfile m) || return 1
	# the last byte of the last checkpoint's state (the file ends with the states' XXH64)
	flip st.img.zst.ibkx $(($(stat -c %s st.img.zst.ibkx) - 9)) || return 1
	eio_in_one_span "$f" "$d/ref.raw" "the damaged state" || return 1
	unmount_clean m || return 1
	run 0 $TO "$IMGBK" index st.img.zst && out_has 'saved to .* \(rebuilt' || return 1
	cmp -s st.img.zst.ibkx "$d/big.img.zst.ibkx" || fail "the rebuilt index differs from the first one"
}

# partclone's XXH128 samples (test/data, made by upstream partclone -a3; see
# test/data/SAMPLES.md) each wrapped in one zstd frame as Clonezilla writes
# it (zstd -T0 -3): the mounted partition hashes to the restore's sha256.
c_xxh128_zstd() {
	local data=${IMGBK_TEST_DATA:-$HERE/../data} s want got f
	start_case
	for s in xxh128_ext2_1k_k1 xxh128_ext2_1k_k7_noreseed xxh128_ext2_1k_k100 xxh128_fat16_default; do
		case $s in
		*ext2*) want=6317574cc3b5635ca8a129201e741b2ae48d7a7374174bd09e0eb199374f9071 ;;
		*) want=faec84f7363879654e969533d995b48ca89574710ce668801c27c0c2d9740460 ;;
		esac
		need "$data/$s.pc" || return 1
		zstd -q -T0 -3 -c "$data/$s.pc" >"$s.pc.zst" || fail "zstd -T0 -3 $s.pc failed" || return 1
		mnt "$s.pc.zst" m -q || return 1
		f=$(vfile m) || return 1
		got=$(sha256sum <"$f" | cut -d' ' -f1)
		echo "# $s.pc.zst: mounted partition sha256 $got"
		[ "$got" = "$want" ] || fail "$s.pc.zst: sha256 $got, the restore's is $want" || return 1
		unmount_clean m || return 1
	done
}

c_gz_damaged() {
	local size
	need "$FIX/v/gzip9/fs.img.gz" || return 1
	cp "$FIX/v/gzip9/fs.img.gz" bad.img.gz || return 1
	size=$(stat -c %s bad.img.gz)
	flip bad.img.gz $((size / 2)) || return 1
	run 1 $TO "$IMGBK" index bad.img.gz || return 1
	[ "$(wc -l <"$W/err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$W/err")" || return 1
	err_names bad.img.gz && err_has 'byte [0-9]+' || return 1
	[ ! -e bad.img.gz.ibkx ] || fail "an index was saved for a damaged image"
}

c_gz_truncated() {
	need "$FIX/v/gzip1/fs.img.gz" || return 1
	head -c $(($(stat -c %s "$FIX/v/gzip1/fs.img.gz") * 2 / 3)) "$FIX/v/gzip1/fs.img.gz" >cut.img.gz || return 1
	run 1 $TO "$IMGBK" index cut.img.gz || return 1
	[ "$(wc -l <"$W/err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$W/err")" || return 1
	err_names cut.img.gz && err_has 'truncated'
}

# index built on the good file, then the file damaged in place (same size and
# time): the mount comes up from the saved index, the damaged part reads as
# EIO, the rest reads right and the daemon stays up
c_gz_damaged_after_index() {
	local size pid f first
	start_case
	need "$FIX/v/gzip9/fs.img.gz" "$FIX/fs.raw" || return 1
	cp -p "$FIX/v/gzip9/fs.img.gz" late.img.gz || return 1
	run 0 $TO "$IMGBK" index late.img.gz && out_has 'saved' || return 1
	damage_in_place late.img.gz || return 1
	mnt "$PWD/late.img.gz" m -q || return 1
	f=$(vfile m) || return 1
	# by its absolute path: our daemon, never one of another run
	pid=$(pgrep -f "mount -q $PWD/late.img.gz ") || fail "daemon process not found" || return 1
	echo "# daemon pid: $pid"
	# every 1 MiB chunk: EIO or the reference bytes
	chunks_eio "$f" "$FIX/fs.raw" >scan.out || return 1
	cat scan.out
	read -r _ eio _ wrong _ ok _ first <scan.out
	[ "${wrong:-1}" = 0 ] || fail "$wrong MiB chunks read with wrong bytes (no error)" || return 1
	[ "${eio:-0}" -ge 1 ] || fail "no read failed: the damage went unnoticed" || return 1
	[ "${ok:-0}" -ge 32 ] || fail "only $ok of 64 MiB chunks read: damage in one place spoils too much" || return 1
	run 1 dd if="$f" of=/dev/null bs=1M skip=$((first >> 20)) count=1 && err_has 'Input/output error' || return 1
	kill -0 "$pid" 2>/dev/null || fail "the daemon died after the read errors" || return 1
	mountpoint -q m || fail "m is no longer mounted" || return 1
	dd if="$f" bs=4096 count=1 status=none >a && dd if="$FIX/fs.raw" bs=4096 count=1 status=none >b &&
		same a b || return 1
	dd if="$f" bs=1M skip=63 count=1 status=none >a && dd if="$FIX/fs.raw" bs=1M skip=63 count=1 status=none >b &&
		same a b || return 1
	unmount_clean m
}

# ---- ntfsclone | gzip ------------------------------------------------------------

c_ntfs_gz() {
	local raw=$FIX/ntfs.raw
	start_case
	for t in mkntfs ntfsclone; do command -v $t >/dev/null || skip "$t not installed (Debian: ntfs-3g)"; done
	need "$FIX/src/deep" || return 1
	truncate -s 64M "$raw" && run 0 mkntfs -q -F -Q "$raw" || return 1
	if command -v ntfs-3g >/dev/null; then
		mkdir nt && track "$PWD/nt"
		if timeout 30 ntfs-3g "$raw" nt 2>"$W/err"; then
			cp -r "$FIX/src/deep" "$FIX/src/text" "$FIX/src/random" nt/ && sync
			umount nt || { sleep 1; umount nt; } || return 1
		else
			echo "# ntfs-3g failed, the volume stays empty:"
			show "$W/err"
		fi
	fi
	ntfsclone -s -o - "$raw" 2>"$W/err" | gzip -c >n.nc.gz
	[ "${PIPESTATUS[0]}" = 0 ] || { show "$W/err"; return 1; }
	truncate -s 64M ref.file &&
		gzip -dc n.nc.gz | ntfsclone --restore-image --overwrite ref.file - >/dev/null 2>"$W/err" ||
		{ show "$W/err"; return 1; }
	run 0 $TO "$IMGBK" index n.nc.gz && out_has 'saved' || return 1
	mnt n.nc.gz m -q || return 1
	f=$(vfile m) || return 1
	same "$f" ref.file && same "$f" "$raw" || return 1
	randreads "$f" ref.file 11 60 || return 1
	unmount_clean m
}

c_vpc_gz() {
	start_case
	need "$FIX/v/gzip1/fs.img.gz" "$FIX/fs.raw" || return 1
	mkdir m && track "$PWD/m"
	run 0 $TO "$VPC" -q -m m "$FIX/v/gzip1/fs.img.gz" || return 1
	out_has "Virtual partition provided as '.*/m/" || return 1
	same "$(vfile m)" "$FIX/fs.raw" || return 1
	unmount_clean m
}

# ---- run ------------------------------------------------------------------------
# --part K/N (make check: three jobs) runs one share of the cases, each with
# the fixtures it needs: group 1 the 200+ MiB zstd frame, group 2 the gzip,
# bzip2 and xz variants and the damage, ntfsclone and vpartclone cases,
# group 3 the zstd and lz4 variants; part K runs the groups G with
# G mod N == K mod N. Without --part: every case.

VARIANTS="gzip1:gzip:gzip:gzip_-1:2 gzip9:gzip:gzip:gzip_-9:2 pigz:pigz:gzip:pigz:2 members:gzip:gzip:multi-member_gzip:2
clonezilla:gzip:gzip:gzip|split_-b_8M_(sda1.ext4-ptcl-img.gz.aa):2 bzip2:bzip2:bzip2:bzip2:2
pbzip2:pbzip2:bzip2:pbzip2:2 xz:xz:xz:xz_-T2_--block-size=4MiB:2 pzstd:pzstd:zstd:pzstd_-p2:3
lz4:lz4:lz4:lz4:3 lz4BD:lz4:lz4:lz4_-BD:3 zstd1:zstd:zstd:zstd_-1_(one_frame):3 zstd3:zstd:zstd:zstd_-3_(one_frame):3
zstdT0:zstd:zstd:zstd_-T0_-3_(one_frame):3 zstd19:zstd:zstd:zstd_-19_(one_frame):3
zstdlong:zstd:zstd:zstd_--long=27_(one_frame):3 zstdsplit:zstd:zstd:zstd_-T0_-3|split_-b_7M_(.zst.aa):3"

PART_K=1 PART_N=1
if [ "${1:-}" = --part ]; then
	PART_K=${2%/*} PART_N=${2#*/}
fi
# in_part GROUP: the group's cases belong to this run
in_part() {
	[ $(($1 % PART_N)) = $((PART_K % PART_N)) ]
}
PART_VARIANTS=""
for v in $VARIANTS; do
	in_part "${v##*:}" && PART_VARIANTS="$PART_VARIANTS $v"
done

if [ -n "$PART_VARIANTS" ]; then
	tc "setup: ext4 64 MiB (mkfs.ext4 -d, ~40 MiB of files), partclone.extfs -c; partclone.restore == source fs" setup_fs
fi
for v in $PART_VARIANTS; do
	IFS=: read -r name tool codec desc _ <<<"$v"
	desc=${desc//_/ }
	tc "setup: $desc of fs.img" mkvar "$name" "$tool"
done

for v in $PART_VARIANTS; do
	IFS=: read -r name tool codec desc _ <<<"$v"
	desc=${desc//_/ }
	tc "$desc: imgbk index saves, a second run says up to date, a damaged .ibkx is rebuilt (same bytes)" c_index "$name" "$codec"
	if [ -n "$FUSE_WHY" ]; then
		tc_skip "$desc: mount" "$FUSE_WHY"
	else
		tc "$desc: mount == source fs, 200 random preads, loop mount ro + diff -r, clean unmount" c_mount "$name" "$codec"
		case $name in gzip1 | pzstd)
			tc "$desc: mount --direct-io == source fs (dd 1 MiB and 64 KiB), random preads, private mmap right, shared mmap ENODEV, loop mount" \
				c_mount_direct "$name" "$codec" ;;
		esac
	fi
done

if in_part 1; then
	tc "setup: ext4 256 MiB, ~190 MiB of mixed files, partclone.extfs (200+ MiB image), zstd -T0 -3 (one frame)" setup_big
	if [ -n "$FUSE_WHY" ]; then
		tc_skip "zstd -T0 -3, one frame of 200+ MiB: mount" "$FUSE_WHY"
		tc_skip "zstd -T0 -3 frame damaged after indexing" "$FUSE_WHY"
		tc_skip "zstd -T0 -3 checkpoint state damaged in the index" "$FUSE_WHY"
	else
		tc "zstd -T0 -3, one frame of 200+ MiB: index with checkpoints, mount == partclone.restore, 1000 random reads, loop mount + diff -r" \
			c_zstd_big
		tc "zstd -T0 -3 frame damaged in place after indexing: EIO in its span only, the rest right; a damaged copy: index exit 1 naming 'byte N'" \
			c_zstd_big_damaged
		tc "zstd -T0 -3: the first mount says its checkpoints; a state damaged in the .ibkx while mounted: EIO in its span only, the rest right; then imgbk index rebuilds it" \
			c_zstd_big_state_damaged
	fi
fi
if in_part 3; then
	if [ -n "$FUSE_WHY" ]; then
		tc_skip "XXH128 samples in one zstd frame: mount" "$FUSE_WHY"
	else
		tc "partclone XXH128 samples, each in one zstd -T0 -3 frame: the mounted partition's sha256 == the restore's (SAMPLES.md)" \
			c_xxh128_zstd
	fi
fi
if in_part 2; then
	tc "gzip damaged in the middle: imgbk index exit 1, one line naming the file and 'byte N'" c_gz_damaged
	tc "gzip truncated: imgbk index exit 1, one line naming the file and 'truncated'" c_gz_truncated
	if [ -n "$FUSE_WHY" ]; then
		tc_skip "gzip damaged after indexing: EIO there, the rest reads" "$FUSE_WHY"
		tc_skip "ntfsclone | gzip: mount" "$FUSE_WHY"
		tc_skip "vpartclone -m on a .gz" "$FUSE_WHY"
	else
		tc "gzip damaged in place after indexing (same size+mtime): mount works, EIO there (dd), other reads right, daemon alive" \
			c_gz_damaged_after_index
		tc "ntfsclone -s -o - | gzip: imgbk mount == ntfsclone --restore-image, random reads" c_ntfs_gz
		tc "vpartclone -q -m m fs.img.gz: mounts, bytes equal the source fs" c_vpc_gz
	fi
fi

if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]

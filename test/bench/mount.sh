# test/bench/mount.sh - sourced by bench.sh: the mount section.
#
# imgbk mount of the partclone bench image ($IMG) against fusepass.c (the
# cheapest possible FUSE file: one pread per request, the FUSE ceiling)
# serving imgbk's restore of the same image ($DIR/mount-raw.img, a sparse
# file, made at the start of the section and deleted at its end). Both
# backing files are in the page cache (warm-up run), so the rows compare the
# FUSE daemons, not the disk.
#
# "Cold in FUSE's cache": every measured run mounts afresh (PRE hook) and
# unmounts after (POST hook, waiting for the daemon to exit), so the kernel
# holds no page of the mounted file and imgbk no checked-group bit; the
# backing files stay cached. Rows:
#   dd if=MNT/FILE of=/dev/null bs=1M                     sequential
#   randread FILE $RR_READS 1|4 $RR_SEED                  random 4 KiB O_DIRECT
# for imgbk mount (checksums verified, the default), imgbk mount -n and
# fusepass; one more imgbk row reads the same offsets a second time in the
# same mount (every group touched already checked).
#
# Mount ready: a $BIG_GIB GiB ext4 (sparse file, lazy init) imaged with
# partclone.ext4 once ($DIR/big.pc, reused); the time of
# `imgbk mount -q big.pc MNT && test -f MNT/big.pc` (imgbk returns once the
# daemon answers a stat through the mount): with the index saved by
# `imgbk index`, with the image and index also dropped from the page cache
# (dd iflag=nocache count=0), and with no saved index (deleted before each
# run: the mount builds and saves it).
#
# Daemon memory: VmHWM of the imgbk daemon (/proc/PID/status, found by name
# and mountpoint) read just before each unmount: after a whole sequential read
# of the bench image, and after mounting / random reads of the big image;
# goal: <= the index file (.ibkx) + 64 MiB.
#
# Compressed: the bench image under gzip -1 ($DIR/image.pc.gz, made once),
# its access points saved by `imgbk index`: a whole sequential read through
# the mount against `gzip -dc` and `pigz -dc` into /dev/null (the machine's
# decompression limit with the usual tools), $RRZ_READS random 4 KiB reads,
# and the index build itself (one decoding pass), the per-read median and p99
# of the random reads (goal: median <= 1.5 ms) and the index size against the
# compressed size (goal <= 2%). The same sequential read of the image under
# pzstd (independent frames, $DIR/image.pc.pzst, made once) against
# `zstd -dc` (goal >= 0.8x), and the daemon's VmHWM then. Beside it, for
# information, what the two cores give at that moment: two `zstd -dc` of the
# same image at once, as "cores in use" = 2 x one's time / the pair's time
# (2.0: two whole cores; a mount that decodes on one core while the kernel's
# FUSE work fills the other can reach 0.8 of `zstd -dc` only near 2.0; on a
# shared host where the two virtual CPUs share one core it falls towards 1).
# Also for information: the same read through `imgbk mount --direct-io` (no
# page cache: each read(2) is one request, the reply goes straight into
# dd's buffer), and the time to fill as much page cache as the mounted file
# (dd to tmpfs): what a read through the page cache pays on top of the
# decoding. On a VM that reports free memory to its host
# (page_reporting), that cost swings with how long the memory lay free: on
# the bench VM 1.6 GB took 0.41-0.68 s back to back and 1.1-1.8 s after 6 s
# idle. The fill runs before `gzip -dc` and `pigz -dc` (7 s together), so
# that the memory it used has gone back to the host before the next read
# through a mount (a first version ran it just before the one-frame rows,
# which then read through memory it had warmed). The bench's image.pc.zst (zstd -T2 -3: one frame, as
# Clonezilla's zstd -T0 -3 writes) read through checkpoints inside the frame:
# the index build against `zstd -dc`, the index size against the compressed
# size (goal <= 2%), a whole sequential read, $RR_READS random 4 KiB reads
# (per-read median and p99 of the last run), the daemon's VmHWM.
#
# Environment: BENCH_RR_READS=20000 reads per randread run, BENCH_BIG_GIB=1024,
# BENCH_RRZ_READS=400 random reads through the compressed mount.

RR_READS=${BENCH_RR_READS:-20000}
RR_SEED=12345
BIG_GIB=${BENCH_BIG_GIB:-1024}
BIG=$DIR/big.pc
RRZ_READS=${BENCH_RRZ_READS:-400}
GZ=$DIR/image.pc.gz
PZ=$DIR/image.pc.pzst
RAW=$DIR/mount-raw.img
MA=$DIR/mnt-imgbk
MB=$DIR/mnt-fusepass
DPID=

# mnt_up imgbk|imgbk-n|fusepass [IMAGE]: mount, set DPID
mnt_up() {
	case $1 in
	imgbk)   "$IMGBK" mount -q "${2:-$IMG}" "$MA" || return 1; DPID=$(daemon_pid imgbk "$MA") ;;
	imgbk-n) "$IMGBK" mount -q -n "${2:-$IMG}" "$MA" || return 1; DPID=$(daemon_pid imgbk "$MA") ;;
	imgbk-dio) "$IMGBK" mount -q --direct-io "${2:-$IMG}" "$MA" || return 1; DPID=$(daemon_pid imgbk "$MA") ;;
	fusepass) bin/fusepass "$RAW" "$MB" -o ro || return 1; DPID=$(daemon_pid fusepass "$MB")
		ra_like_imgbk "$MB" ;;
	esac
}

# ra_like_imgbk MOUNTPOINT: give fusepass the readahead window imgbk's daemon
# sets on its own mounts (fuse/mount.c READAHEAD_KB), so that the ceiling is
# the same kernel path and not the kernel's 128 KiB default
ra_like_imgbk() {
	_dev=$(awk -v m="$1" '$5 == m { d = $3 } END { print d }' /proc/self/mountinfo)
	[ -n "$_dev" ] && [ -w "/sys/class/bdi/$_dev/read_ahead_kb" ] &&
		echo 4096 > "/sys/class/bdi/$_dev/read_ahead_kb"
	return 0
}

# mnt_down NAME MOUNTPOINT: note the daemon's VmHWM (KiB) in logs/NAME.hwm, unmount
mnt_down() {
	[ -z "$DPID" ] && DPID=$(daemon_pid imgbk "$2")
	if [ -n "$DPID" ] && [ -r "/proc/$DPID/status" ]; then
		awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status" >> "logs/$1.hwm"
	fi
	unmount_wait "$2" "$DPID"
	DPID=
}

build_big() {
	echo "bench: building the ${BIG_GIB} GiB sparse ext4 image big.pc (once)"
	rm -f "$BIG" "$BIG.ibkx" big.raw params.big
	t0=$(date +%s)
	truncate -s "${BIG_GIB}G" big.raw || return 1
	# -i 4 MiB per inode and a 64 MiB journal: with mke2fs's defaults the inode
	# tables (16 GiB for 1 TiB; lazy init does not free them) and the 1 GiB
	# journal are used blocks that partclone copies: a 17 GiB image. The
	# bitmap and the index depend on the block count only.
	mkfs.ext4 -q -F -i 4194304 -J size=64 -E lazy_itable_init=1,lazy_journal_init=1 big.raw \
		> logs/big-mkfs.out 2>&1 || { cat logs/big-mkfs.out >&2; rm -f big.raw; return 1; }
	partclone.ext4 -c -s big.raw -O "$BIG" -L logs/big-partclone.log > logs/big-partclone.out 2>&1
	rc=$?
	rm -f big.raw
	[ "$rc" -eq 0 ] || { tail logs/big-partclone.out >&2; rm -f "$BIG"; return 1; }
	printf '%s\n' "$big_params" > params.big
	echo "bench: big.pc built in $(( $(date +%s) - t0 )) s ($(wc -c < "$BIG") bytes)"
}

bench_mount() {
	echo
	echo "==== mount: imgbk mount vs fusepass (the FUSE ceiling) ($(cut -d' ' -f1-3 /proc/loadavg)) ===="
	for t in fusermount3 pkg-config mountpoint pgrep; do
		command -v "$t" >/dev/null 2>&1 || { echo "bench: mount section skipped: $t is missing"; return 0; }
	done
	pkg-config --exists fuse3 || { echo "bench: mount section skipped: no fuse3 development files"; return 0; }
	[ -c /dev/fuse ] || { echo "bench: mount section skipped: no /dev/fuse"; return 0; }
	"$CC" -O2 -o bin/fusepass "$HERE/fusepass.c" $(pkg-config --cflags --libs fuse3) ||
		{ tfail mount "cannot compile fusepass.c"; return 1; }
	"$CC" -O2 -pthread -o bin/randread "$HERE/randread.c" || { tfail mount "cannot compile randread.c"; return 1; }

	big_params="v1 big=${BIG_GIB}G i=4194304 J=64
$(partclone.ext4 -v 2>&1 | head -1)
$(mke2fs -V 2>&1 | head -1)"
	if [ "${BENCH_REBUILD:-0}" = 1 ] || [ ! -f "$BIG" ] || [ ! -f params.big ] ||
		[ "$(cat params.big)" != "$big_params" ]; then
		build_big || { tfail mount "building big.pc failed"; return 1; }
	fi
	mkdir -p "$MA" "$MB" || return 1

	echo "bench: imgbk restore image.pc mount-raw.img (the file fusepass serves); checking the mount"
	rm -f "$RAW"
	"$IMGBK" restore -q "$IMG" "$RAW" || { tfail mount "imgbk restore for fusepass failed"; return 1; }
	mnt_up imgbk || { tfail mount "imgbk mount failed"; return 1; }
	MNAME=$(ls "$MA")
	if cmp -s "$MA/$MNAME" "$RAW"; then same_mount=yes; else same_mount=no; FAILED="$FAILED mount-mismatch"; fi
	mnt_down check "$MA"
	mnt_up imgbk "$BIG" || { tfail mount "imgbk mount big.pc failed"; return 1; }
	BNAME=$(ls "$MA")
	mnt_down check "$MA"
	"$IMGBK" index -q "$BIG" || { tfail mount "imgbk index big.pc failed"; return 1; }
	if [ ! -f "$GZ" ] || [ "$GZ" -ot "$IMG" ]; then
		echo "bench: gzip -1 image.pc > image.pc.gz (once)"
		gzip -1 -c "$IMG" > "$GZ.tmp" && mv "$GZ.tmp" "$GZ" || { tfail mount "gzip failed"; return 1; }
	fi
	"$IMGBK" index -q "$GZ" || { tfail mount "imgbk index image.pc.gz failed"; return 1; }
	if command -v pzstd >/dev/null 2>&1 && { [ -f "$PZ" ] && [ ! "$PZ" -ot "$IMG" ] ||
		{ echo "bench: pzstd image.pc > image.pc.pzst (once)"; pzstd -q -p2 -c "$IMG" > "$PZ.tmp" &&
			mv "$PZ.tmp" "$PZ"; }; }; then
		"$IMGBK" index -q "$PZ" || { tfail mount "imgbk index image.pc.pzst failed"; return 1; }
		mnt_up imgbk "$PZ" || { tfail mount "imgbk mount image.pc.pzst failed"; return 1; }
		if cmp -s "$MA/image.pc.pzst" "$RAW"; then same_pz=yes; else same_pz=no; FAILED="$FAILED mount-pz-mismatch"; fi
		mnt_down check "$MA"
		PZNAMES="pz_dc pz_dc2 pz_seq pz_seqd"
	else
		PZNAMES=
	fi
	"$IMGBK" index -q "$ZST" || { tfail mount "imgbk index image.pc.zst (one frame) failed"; return 1; }
	mnt_up imgbk "$GZ" || { tfail mount "imgbk mount image.pc.gz failed"; return 1; }
	if cmp -s "$MA/$MNAME" "$RAW"; then same_gz=yes; else same_gz=no; FAILED="$FAILED mount-gz-mismatch"; fi
	mnt_down check "$MA"

	SECTION_BYTES=$(stat -c %s "$RAW")
	RRB=$((RR_READS * 4096))
	tdef seq_fp "fusepass: dd bs=1M" "dd if='$MB/image' of=/dev/null bs=1M"
	tdef seq_im "imgbk mount: dd bs=1M" "dd if='$MA/$MNAME' of=/dev/null bs=1M"
	tdef seq_imn "imgbk mount -n: dd bs=1M" "dd if='$MA/$MNAME' of=/dev/null bs=1M"
	PRE_seq_fp='mnt_up fusepass' POST_seq_fp='mnt_down seq_fp "$MB"'
	PRE_seq_im='mnt_up imgbk' POST_seq_im='mnt_down seq_im "$MA"'
	PRE_seq_imn='mnt_up imgbk-n' POST_seq_imn='mnt_down seq_imn "$MA"'
	for th in 1 4; do
		tdef rr${th}_fp "fusepass: $RR_READS x 4 KiB O_DIRECT, $th thread(s)" \
			"bin/randread '$MB/image' $RR_READS $th $RR_SEED" "" $RRB
		tdef rr${th}_im "imgbk mount: $RR_READS x 4 KiB O_DIRECT, $th thread(s)" \
			"bin/randread '$MA/$MNAME' $RR_READS $th $RR_SEED" "" $RRB
		tdef rr${th}_imn "imgbk mount -n: $RR_READS x 4 KiB O_DIRECT, $th thread(s)" \
			"bin/randread '$MA/$MNAME' $RR_READS $th $RR_SEED" "" $RRB
		eval "PRE_rr${th}_fp='mnt_up fusepass' POST_rr${th}_fp='mnt_down rr${th}_fp \"\$MB\"'"
		eval "PRE_rr${th}_im='mnt_up imgbk' POST_rr${th}_im='mnt_down rr${th}_im \"\$MA\"'"
		eval "PRE_rr${th}_imn='mnt_up imgbk-n' POST_rr${th}_imn='mnt_down rr${th}_imn \"\$MA\"'"
	done
	tdef rr1_im2 "imgbk mount: the same reads again, same mount" \
		"bin/randread '$MA/$MNAME' $RR_READS 1 $RR_SEED" "" $RRB
	PRE_rr1_im2='mnt_up imgbk && bin/randread "$MA/$MNAME" $RR_READS 1 $RR_SEED'
	POST_rr1_im2='mnt_down rr1_im2 "$MA"'
	rdy="'$IMGBK' mount -q '$BIG' '$MA' && test -f '$MA/$BNAME'"
	tdef rdy_idx "imgbk mount ${BIG_GIB} GiB fs, index saved: ready" "$rdy" "" 0
	tdef rdy_cold "... index saved, image + index not in page cache" "$rdy" "" 0
	tdef rdy_noidx "... no saved index (built and saved by the mount)" "$rdy" "" 0
	tdef big_rr "imgbk mount ${BIG_GIB} GiB fs: $RR_READS x 4 KiB O_DIRECT" \
		"bin/randread '$MA/$BNAME' $RR_READS 1 $RR_SEED" "" $RRB
	PRE_rdy_idx='"$IMGBK" index -q "$BIG"'
	PRE_rdy_cold='"$IMGBK" index -q "$BIG" && dd if="$BIG" iflag=nocache count=0 status=none &&
		dd if="$BIG.ibkx" iflag=nocache count=0 status=none'
	PRE_rdy_noidx='rm -f "$BIG.ibkx"'
	PRE_big_rr='"$IMGBK" index -q "$BIG" && mnt_up imgbk "$BIG"'
	for n in rdy_idx rdy_cold rdy_noidx big_rr; do eval "POST_$n='mnt_down $n \"\$MA\"'"; done
	# compressed
	tdef gz_dc "gzip -dc IMAGE.gz > /dev/null" "gzip -dc '$GZ' > /dev/null"
	tdef gz_pigz "pigz -dc IMAGE.gz > /dev/null" "pigz -dc '$GZ' > /dev/null"
	tdef gz_seq "imgbk mount IMAGE.gz: dd bs=1M" "dd if='$MA/$MNAME' of=/dev/null bs=1M"
	PRE_gz_seq='mnt_up imgbk "$GZ"' POST_gz_seq='mnt_down gz_seq "$MA"'
	tdef gz_rr "imgbk mount IMAGE.gz: $RRZ_READS x 4 KiB O_DIRECT" \
		"bin/randread '$MA/$MNAME' $RRZ_READS 1 $RR_SEED" "" $((RRZ_READS * 4096))
	PRE_gz_rr='mnt_up imgbk "$GZ"' POST_gz_rr='mnt_down gz_rr "$MA"'
	tdef gz_index "imgbk index IMAGE.gz (no saved index: one decoding pass)" "'$IMGBK' index -q '$GZ'"
	PRE_gz_index='rm -f "$GZ.ibkx"'
	command -v pigz >/dev/null 2>&1 && GZNAMES="gz_dc gz_pigz" || GZNAMES="gz_dc"
	tdef pz_dc "zstd -dc IMAGE.pzst > /dev/null" "zstd -qdc '$PZ' > /dev/null"
	tdef pz_dc2 "two zstd -dc IMAGE.pzst > /dev/null at once" \
		"zstd -qdc '$PZ' > /dev/null & zstd -qdc '$PZ' > /dev/null; wait" "" $((SECTION_BYTES * 2))
	tdef pz_seq "imgbk mount IMAGE.pzst: dd bs=1M" "dd if='$MA/image.pc.pzst' of=/dev/null bs=1M"
	PRE_pz_seq='mnt_up imgbk "$PZ"' POST_pz_seq='mnt_down pz_seq "$MA"'
	tdef pz_seqd "imgbk mount --direct-io IMAGE.pzst: dd bs=1M" "dd if='$MA/image.pc.pzst' of=/dev/null bs=1M"
	PRE_pz_seqd='mnt_up imgbk-dio "$PZ"' POST_pz_seqd='mnt_down pz_seqd "$MA"'
	tdef pc_fill "page cache as big as the mounted file, filled (tmpfs)" \
		"dd if=/dev/zero of=/dev/shm/imgbk-bench-fill bs=1M count=$((SECTION_BYTES >> 20)) status=none; rm -f /dev/shm/imgbk-bench-fill"
	# one zstd frame
	tdef z1_dc "zstd -dc IMAGE.zst (one frame) > /dev/null" "zstd -qdc '$ZST' > /dev/null"
	tdef z1_seq "imgbk mount IMAGE.zst (one frame): dd bs=1M" "dd if='$MA/$MNAME' of=/dev/null bs=1M"
	PRE_z1_seq='mnt_up imgbk "$ZST"' POST_z1_seq='mnt_down z1_seq "$MA"'
	tdef z1_rr "imgbk mount IMAGE.zst (one frame): $RR_READS x 4 KiB O_DIRECT" \
		"bin/randread '$MA/$MNAME' $RR_READS 1 $RR_SEED" "" $RRB
	PRE_z1_rr='mnt_up imgbk "$ZST"' POST_z1_rr='mnt_down z1_rr "$MA"'
	tdef z1_index "imgbk index IMAGE.zst (one frame, no saved index)" "'$IMGBK' index -q '$ZST'"
	PRE_z1_index='rm -f "$ZST.ibkx"'

	MNAMES="seq_fp seq_im seq_imn rr1_fp rr1_im rr1_imn rr4_fp rr4_im rr4_imn rr1_im2 rdy_idx rdy_cold rdy_noidx big_rr
pc_fill $GZNAMES gz_seq gz_rr gz_index $PZNAMES z1_dc z1_seq z1_rr z1_index"
	trounds "$MNAMES"
	"$IMGBK" index -q "$BIG"

	# the same bytes through both mounts: randread's sums (last run of each)
	s1=$(for n in rr1_fp rr1_im rr1_imn rr1_im2; do sed -n 's/.* sum //p' "logs/$n.out"; done | sort -u | wc -l)
	s4=$(for n in rr4_fp rr4_im rr4_imn; do sed -n 's/.* sum //p' "logs/$n.out"; done | sort -u | wc -l)
	[ "$s1" = 1 ] && [ "$s4" = 1 ] && same_rr=yes || { same_rr=no; FAILED="$FAILED randread-mismatch"; }

	echo
	echo "image: $IMG ($(stat -c %s "$IMG") bytes), mounted: $MNAME, $SECTION_BYTES bytes;" \
		"fusepass serves mount-raw.img (imgbk's restore of it)"
	echo "big: $BIG, ${BIG_GIB} GiB ext4, $(stat -c %s "$BIG") bytes, index $(stat -c %s "$BIG.ibkx") bytes"
	echo "compressed: $GZ ($(stat -c %s "$GZ") bytes, gzip -1), access points + index $(stat -c %s "$GZ.ibkx") bytes;" \
		"mounted file identical to the restore: $same_gz${PZNAMES:+ (pzstd: $same_pz)}"
	echo "mounted file identical to the restore: $same_mount (cmp, once, cold mount);" \
		"randread sums equal across the mounts: $same_rr"
	echo "Every run mounts afresh (cold FUSE cache, backing file in the page cache); median of $RUNS"
	echo "alternating runs; MB/s = bytes read / median s. *: the FUSE daemon's VmHWM (max over the runs)."
	echo
	ttable "$MNAMES"
	echo
	echo "ratios: time of fusepass / time of imgbk (= imgbk's speed / the ceiling), median over the rounds"
	ratio "mount: sequential read (dd bs=1M) vs fusepass" seq_fp seq_im ">=" 0.8
	ratio "mount: random 4 KiB O_DIRECT, 1 thread, vs fusepass" rr1_fp rr1_im ">=" 0.7
	ratio "mount: random 4 KiB O_DIRECT, 4 threads, vs fusepass" rr4_fp rr4_im ">=" 0.7
	tabs "mount ready, ${BIG_GIB} GiB fs, index saved" rdy_idx "<" 0.5
	hwm_goal "imgbk daemon VmHWM after a whole read of image.pc" "seq_im seq_imn" "$IMG.ibkx"
	hwm_goal "imgbk daemon VmHWM, ${BIG_GIB} GiB fs (mounted, random reads)" "rdy_idx rdy_cold big_rr" "$BIG.ibkx"
	hwm_goal "imgbk daemon VmHWM, image.pc.gz (whole read, random reads)" "gz_seq gz_rr" "$GZ.ibkx"
	echo "for information:"
	ratio "mount -n: sequential read vs fusepass" seq_fp seq_imn "" 0
	ratio "mount -n: random 4 KiB, 1 thread, vs fusepass" rr1_fp rr1_imn "" 0
	ratio "mount -n: random 4 KiB, 4 threads, vs fusepass" rr4_fp rr4_imn "" 0
	ratio "mount: random 4 KiB, 1 thread, 2nd pass, vs fusepass" rr1_fp rr1_im2 "" 0
	tabs "mount ready, index saved, image not in the page cache" rdy_cold "" ""
	tabs "mount ready, no saved index" rdy_noidx "" ""
	ratio "mount of .gz: sequential read vs gzip -dc > /dev/null" gz_dc gz_seq ">=" 0.9
	case " $GZNAMES " in *" gz_pigz "*)
		ratio "mount of .gz: sequential read vs pigz -dc > /dev/null" gz_pigz gz_seq ">=" 1.0 ;;
	esac
	ratio "imgbk index of .gz (scan) vs gzip -dc > /dev/null" gz_dc gz_index "" 0
	tabs "mount of .gz: $RRZ_READS random 4 KiB O_DIRECT reads" gz_rr "" ""
	grep '^reads ' logs/gz_rr.out | awk '{ m = $10; p = $12 } END { printf "%-58s median %.3f ms goal <= 1.5 %s, p99 %.3f ms\n",
		".gz: random 4 KiB read (last run)", m, (m <= 1.5 ? "PASS" : "FAIL"), p }'
	awk -v i="$(stat -c %s "$GZ.ibkx")" -v z="$(stat -c %s "$GZ")" 'BEGIN {
		printf "%-58s %6.2f %%  goal <= 2 %% %s\n", "index of .gz vs its compressed size",
			100 * i / z, (i <= 0.02 * z ? "PASS" : "FAIL") }'
	[ -n "$PZNAMES" ] && ratio "mount of pzstd .zst: sequential read vs zstd -dc > /dev/null" pz_dc pz_seq ">=" 0.8
	[ -n "$PZNAMES" ] && hwm_goal "imgbk daemon VmHWM, pzstd .zst (whole read)" "pz_seq" "$PZ.ibkx"
	[ -n "$PZNAMES" ] && cores_in_use "two cores in use (2 x zstd -dc / two at once)" pz_dc pz_dc2
	[ -n "$PZNAMES" ] && ratio "mount --direct-io of pzstd .zst: sequential read vs zstd -dc" pz_dc pz_seqd "" 0
	tabs "page cache as big as the mounted file, filled (tmpfs)" pc_fill "" ""
	ratio "mount of one-frame .zst: sequential read vs zstd -dc" z1_dc z1_seq ">=" 0.8
	ratio "imgbk index of one-frame .zst vs zstd -dc > /dev/null" z1_dc z1_index ">=" 0.5
	awk -v i="$(stat -c %s "$ZST.ibkx")" -v z="$(stat -c %s "$ZST")" 'BEGIN {
		printf "%-58s %6.2f %%  goal <= 2 %% %s\n", "index of one-frame .zst vs its compressed size",
			100 * i / z, (i <= 0.02 * z ? "PASS" : "FAIL") }'
	grep '^reads ' logs/z1_rr.out | awk '{ m = $10; p = $12 } END { printf "%-58s median %.3f ms goal <= 3 %s, p99 %.3f ms goal <= 15 %s\n",
		"one-frame .zst: random 4 KiB read (last run)", m, (m <= 3 ? "PASS" : "FAIL"), p,
		(p <= 15 ? "PASS" : "FAIL") }'
	hwm_goal "imgbk daemon VmHWM, one-frame .zst (whole read, random reads)" "z1_seq z1_rr" "$ZST.ibkx"
	rm -f "$RAW"
	rmdir "$MA" "$MB" 2>/dev/null
	return 0
}

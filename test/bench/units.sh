# test/bench/units.sh - sourced by bench.sh: the units section, imgbk verify
# of compressed data made of independent units (io/zpar.c decodes two at
# once) against the codec's own single-thread decoder writing to /dev/null:
#   pzstd   $DIR/image.pc.pzst (the bench image through pzstd, made once)
#           vs zstd -dc
#   xz      $DIR/image.pc.xz (xz -T2: many blocks, made once) vs xz -dc -T1
#   pbzip2  $DIR/units.pc.pbz2: bzip2 decodes at ~20 MB/s, so not the bench
#           image (a minute a run) but a small image of its own: a
#           $UN_MIB MiB ext4 filesystem with $UN_RAND_MIB MiB incompressible
#           and $UN_TEXT_MIB MiB log-like text (bin/gen), partclone.ext4 -c,
#           pbzip2 -9 (one stream per 900 kB block); vs bzip2 -dc
# Goal: each ratio (time of the single-thread decoder / time of imgbk
# verify, within a round, median over the rounds) >= 1.6 on 2 cores. Also
# reported: the peak RSS of imgbk against 64 MiB + the image's bitmap.
#
# About 3 to 4 minutes with BENCH_RUNS=3 on a busy 2-core machine (a round
# ~45-75 s: xz -dc -T1 and bzip2 -dc take ~10 s each), plus ~100 s once to
# build units.pc.pbz2 (a 150 MiB image; 55 MB of pbzip2 streams of 900 kB each).
#
# Environment: BENCH_UN_MIB=256, BENCH_UN_RAND_MIB=40, BENCH_UN_TEXT_MIB=80.

UN_MIB=${BENCH_UN_MIB:-256}
UN_RAND_MIB=${BENCH_UN_RAND_MIB:-40}
UN_TEXT_MIB=${BENCH_UN_TEXT_MIB:-80}
UN=$DIR/units.pc.pbz2

build_units() {
	echo "bench: building the pbzip2 image of a ${UN_MIB} MiB filesystem (once)"
	rm -rf "$UN" params.units build-units
	t0=$(date +%s)
	mkdir -p build-units || return 1
	make_src build-units/src "$UN_RAND_MIB" "$UN_TEXT_MIB" 100 5001 || return 1
	truncate -s "${UN_MIB}M" build-units/fs.raw || return 1
	E2FSPROGS_FAKE_TIME=1704067200 mkfs.ext4 -q -F -d build-units/src build-units/fs.raw \
		> logs/units-mkfs.out 2>&1 || { cat logs/units-mkfs.out >&2; return 1; }
	rm -rf build-units/src
	partclone.ext4 -c -s build-units/fs.raw -O build-units/units.pc -L /dev/null > logs/units-pc.out 2>&1 ||
		{ tail -3 logs/units-pc.out >&2; return 1; }
	pbzip2 -9 -p2 -c build-units/units.pc > "$UN" || { rm -f "$UN"; return 1; }
	rm -rf build-units
	printf '%s\n' "$un_params" > params.units
	echo "bench: units.pc.pbz2 built in $(( $(date +%s) - t0 )) s"
}

# units_make FILE COMMAND: make FILE from the bench image with COMMAND (once)
units_make() {
	[ -f "$1" ] && return 0
	echo "bench: making $(basename "$1") (once): $2"
	sh -c "$2" || { rm -f "$1"; return 1; }
}

bench_units() {
	echo
	echo "==== units: imgbk verify of multi-unit data vs the single-thread decoder ($(cut -d' ' -f1-3 /proc/loadavg)) ===="
	for t in pzstd xz pbzip2 bzip2 partclone.ext4 mkfs.ext4; do
		command -v "$t" >/dev/null 2>&1 || { echo "bench: units section skipped: $t is missing"; return 0; }
	done
	un_params="v1 fs=${UN_MIB}M rand=${UN_RAND_MIB}M text=${UN_TEXT_MIB}M
gen=$(cksum < "$HERE/gen.c")
$(partclone.ext4 -v 2>&1 | head -1)
$(pbzip2 -V 2>&1 | head -1)"
	if [ "${BENCH_REBUILD:-0}" = 1 ] || [ ! -f "$UN" ] || [ ! -f params.units ] ||
		[ "$(cat params.units)" != "$un_params" ]; then
		build_units || { tfail units "building units.pc.pbz2 failed"; return 1; }
	fi
	units_make "$IMG.pzst" "pzstd -q -p 2 -3 -c '$IMG' > '$IMG.pzst'" || { tfail units "pzstd failed"; return 1; }
	units_make "$IMG.xz" "xz -T2 -3 -c '$IMG' > '$IMG.xz'" || { tfail units "xz failed"; return 1; }
	SECTION_BYTES=$(wc -c < "$IMG")
	tdef pzstd_ref "zstd -dc IMAGE.pzst > /dev/null" "zstd -dc '$IMG.pzst' > /dev/null"
	tdef pzstd "imgbk verify IMAGE.pzst" "'$IMGBK' verify '$IMG.pzst'"
	tdef xz_ref "xz -dc -T1 IMAGE.xz > /dev/null" "xz -dc -T1 '$IMG.xz' > /dev/null"
	tdef xz "imgbk verify IMAGE.xz" "'$IMGBK' verify '$IMG.xz'"
	UN_BYTES=$(bzip2 -dc "$UN" | wc -c)
	tdef bz_ref "bzip2 -dc units.pc.pbz2 > /dev/null" "bzip2 -dc '$UN' > /dev/null" "" "$UN_BYTES"
	tdef bz "imgbk verify units.pc.pbz2" "'$IMGBK' verify '$UN'" "" "$UN_BYTES"
	names="pzstd_ref pzstd xz_ref xz bz_ref bz"
	trounds "$names"
	echo
	echo "image: $IMG ($SECTION_BYTES bytes; MB/s of the bzip2 rows: units.pc, $UN_BYTES bytes)"
	ttable "$names"
	echo
	echo "ratios: time of the single-thread decoder / time of imgbk verify, median over the $RUNS rounds"
	ratio "verify .pzst speedup vs zstd -dc > /dev/null" pzstd_ref pzstd ">=" 1.6
	ratio "verify .xz (xz -T2) speedup vs xz -dc -T1 > /dev/null" xz_ref xz ">=" 1.6
	ratio "verify pbzip2 speedup vs bzip2 -dc > /dev/null" bz_ref bz ">=" 1.6
	echo "for information, by CPU time (single-thread decoder / imgbk):"
	ratio "  .pzst" pzstd_ref pzstd "" 0 cpu
	ratio "  .xz" xz_ref xz "" 0 cpu
	ratio "  pbzip2" bz_ref bz "" 0 cpu
	maxr=0
	for n in pzstd xz bz; do
		set -- $(summ "$n")
		[ "$3" -gt "$maxr" ] && maxr=$3
	done
	total=$(od -An -t u8 -j 60 -N 8 "$IMG" | tr -d ' ')
	awk -v r="$maxr" -v b="$(( (total + 7) / 8 ))" 'BEGIN {
		lim = 64 + b / 1048576
		printf "%-58s %7.1f   goal <  %-5.1f %s (MiB; 64 + bitmap %.2f)\n", "peak RSS of imgbk verify (max over the rows)",
			r / 1024, lim, (r / 1024 < lim ? "PASS" : "FAIL"), b / 1048576 }'
	return 0
}

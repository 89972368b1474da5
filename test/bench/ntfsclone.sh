# test/bench/ntfsclone.sh - sourced by bench.sh: the ntfsclone section.
#
# A $NC_MIB MiB NTFS volume (mkntfs -Q on a sparse file) filled through an
# ntfs-3g mount with deterministic files (bin/gen: $NC_RAND_MIB MiB
# incompressible, $NC_TEXT_MIB MiB log-like text, $NC_SMALL small files),
# saved with `ntfsclone --save-image` as $DIR/ntfs.nc (built once, reused
# while the parameters are the same). Timed, warm page cache, alternating
# runs, like the partclone section: imgbk restore against cp + sync and
# against ntfsclone's own restore (into a zero sparse file of the device size,
# which is how ntfsclone restores to a file), imgbk verify against cat (the
# format has no checksums: verify checks the structure; ntfsclone has no
# verify to compare with). imgbk's output is compared with ntfsclone's once.
#
# Environment: BENCH_NC_MIB=1024, BENCH_NC_RAND_MIB=400, BENCH_NC_TEXT_MIB=270,
# BENCH_NC_SMALL=200.

NC_MIB=${BENCH_NC_MIB:-1024}
NC_RAND_MIB=${BENCH_NC_RAND_MIB:-400}
NC_TEXT_MIB=${BENCH_NC_TEXT_MIB:-270}
NC_SMALL=${BENCH_NC_SMALL:-200}
NC=$DIR/ntfs.nc

build_nc() {
	echo "bench: building the NTFS volume and its ntfsclone image (once)"
	rm -rf "$NC" params.nc build-tmp
	t0=$(date +%s)
	mkdir -p build-tmp "$DIR/mnt-ntfs" || return 1
	make_src build-tmp/src "$NC_RAND_MIB" "$NC_TEXT_MIB" "$NC_SMALL" 3001 || return 1
	truncate -s "${NC_MIB}M" build-tmp/ntfs.raw || return 1
	mkntfs -q -F -Q -L imgbk-bench build-tmp/ntfs.raw > logs/nc-mkntfs.out 2>&1 ||
		{ cat logs/nc-mkntfs.out >&2; return 1; }
	ntfs-3g build-tmp/ntfs.raw "$DIR/mnt-ntfs" > logs/nc-mount.out 2>&1 || { cat logs/nc-mount.out >&2; return 1; }
	cp -r build-tmp/src/. "$DIR/mnt-ntfs/"
	rc=$?
	umount "$DIR/mnt-ntfs" || fusermount3 -u "$DIR/mnt-ntfs" || rc=1
	rmdir "$DIR/mnt-ntfs"
	[ "$rc" -eq 0 ] || return 1
	rm -rf build-tmp/src
	ntfsclone --save-image -o "$NC" build-tmp/ntfs.raw > logs/nc-save.out 2>&1 ||
		{ tail -3 logs/nc-save.out >&2; rm -f "$NC"; return 1; }
	rm -rf build-tmp
	printf '%s\n' "$nc_params" > params.nc
	echo "bench: ntfs.nc built in $(( $(date +%s) - t0 )) s"
}

bench_ntfsclone() {
	echo
	echo "==== ntfsclone: imgbk vs ntfsclone and the machine's limits ($(cut -d' ' -f1-3 /proc/loadavg)) ===="
	for t in mkntfs ntfs-3g ntfsclone; do
		command -v "$t" >/dev/null 2>&1 || { echo "bench: ntfsclone section skipped: $t is missing"; return 0; }
	done
	nc_params="v1 fs=${NC_MIB}M rand=${NC_RAND_MIB}M text=${NC_TEXT_MIB}M small=$NC_SMALL
gen=$(cksum < "$HERE/gen.c")
$(ntfsclone --version 2>&1 | head -1)"
	if [ "${BENCH_REBUILD:-0}" = 1 ] || [ ! -f "$NC" ] || [ ! -f params.nc ] ||
		[ "$(cat params.nc)" != "$nc_params" ]; then
		build_nc || { tfail ntfsclone "building ntfs.nc failed"; return 1; }
	else
		echo "bench: reusing ntfs.nc"
	fi
	SECTION_BYTES=$(stat -c %s "$NC")
	NC_DEV=$(od -An -t u8 -j 22 -N 8 "$NC" | tr -d ' ')

	tdef nc_cat "cat IMAGE > /dev/null" "cat '$NC' > /dev/null"
	tdef nc_cp "cp IMAGE copy; sync copy" "cp '$NC' '$DIR/copy.nc' && sync '$DIR/copy.nc'" "$DIR/copy.nc"
	tdef ref_nc_restore "ntfsclone --restore-image --overwrite out IMAGE" \
		"ntfsclone --restore-image --overwrite '$DIR/ref-nc.raw' '$NC' > /dev/null; rc=\$?; sync '$DIR/ref-nc.raw'; exit \$rc" \
		"$DIR/ref-nc.raw"
	PRE_ref_nc_restore='truncate -s "$NC_DEV" "$DIR/ref-nc.raw"'
	tdef nc_restore "imgbk restore IMAGE out" "'$IMGBK' restore '$NC' '$DIR/out-nc.raw' && sync '$DIR/out-nc.raw'" \
		"$DIR/out-nc.raw"
	tdef nc_verify "imgbk verify IMAGE (structure only)" "'$IMGBK' verify '$NC'"
	NCNAMES="nc_cat nc_cp ref_nc_restore nc_restore nc_verify"

	echo "bench: output check (imgbk restore vs ntfsclone --restore-image, cmp)"
	trun ref_nc_restore logs/check.res
	trun nc_restore logs/check.res
	if [ -f "$DIR/out-nc.raw" ] && cmp -s "$DIR/out-nc.raw" "$DIR/ref-nc.raw"; then same_nc=yes; else
		same_nc=no; FAILED="$FAILED ntfsclone-mismatch"; fi
	tclean ref_nc_restore
	tclean nc_restore
	trounds "$NCNAMES"

	echo
	echo "image: $NC, $SECTION_BYTES bytes, NTFS ${NC_MIB} MiB (device $NC_DEV bytes):" \
		"${NC_RAND_MIB} MiB incompressible, ${NC_TEXT_MIB} MiB text, $NC_SMALL small files"
	echo "restore output identical: $same_nc   (imgbk restore vs ntfsclone --restore-image into a zeroed file, cmp)"
	echo "Warm page cache; median of $RUNS alternating runs; MB/s = image size / median s."
	echo
	ttable "$NCNAMES"
	case " $REFNOTE " in *" ref_nc"*)
		echo "note: reference exit codes (name:code):$REFNOTE - not counted as failures" ;;
	esac
	echo
	echo "ratios: time of the other / time of imgbk, median over the $RUNS rounds of the ratio within a round"
	ratio "ntfsclone: restore speed vs cp + sync (write limit)" nc_cp nc_restore ">=" 0.9
	ratio "ntfsclone: restore speedup vs ntfsclone --restore-image" ref_nc_restore nc_restore ">" 1
	echo "for information:"
	ratio "ntfsclone: verify speed vs cat > /dev/null (read limit)" nc_cat nc_verify "" 0
	ratio "ntfsclone: restore vs ntfsclone, by CPU time" ref_nc_restore nc_restore "" 0 cpu
	return 0
}

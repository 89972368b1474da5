# test/bench/lib.sh - sourced by bench.sh: the timing loop, table and
# helpers of the mount, ntfsclone and partimage sections (mount.sh,
# ntfsclone.sh, partimage.sh). The partclone section in bench.sh keeps its own
# loop; both write logs/NAME.times lines the same way, so summ and ratio (in
# bench.sh) work on either.
#
# A timed command is defined with
#   tdef NAME LABEL COMMAND [OUTPUT [BYTES]]
# COMMAND runs as `sh -c COMMAND` under runrss; OUTPUT is deleted before and
# after each run; BYTES (default: the section's $SECTION_BYTES) is what the
# MB/s column divides. Optional hooks, shell code run in bench.sh's own shell
# outside the timing, are set with
#   PRE_NAME='...'  (mount, attach a loop device, drop a file's cache)
#   POST_NAME='...' (unmount, detach)
# COMMAND may use variables a PRE hook exports (LOOPDEV). A NAME starting with
# ref_ is a reference tool whose exit code is unreliable (shared/FORMATS.md 6):
# it is noted, not a failure.

# tdef NAME LABEL COMMAND [OUTPUT [BYTES]]
tdef() {
	eval "L_$1=\$2 C_$1=\$3 O_$1=\${4:-} B_$1=\${5:-\$SECTION_BYTES} PRE_$1= POST_$1="
}

# tfail NAME MESSAGE: record a failure (bench.sh exits 1 at the end)
tfail() {
	echo "bench: FAILED: $1: $2" >&2
	case " $FAILED " in *" $1 "*) ;; *) FAILED="$FAILED $1" ;; esac
}

# trun NAME RESULTFILE: one run (hooks outside the timing). Leaves OUTPUT in
# place (the caller compares or deletes it). Returns 0 if the command (and
# its PRE hook) succeeded; a ref_ command always counts as a success.
trun() {
	eval "_o=\$O_$1 _c=\$C_$1 _pre=\$PRE_$1 _post=\$POST_$1"
	[ -n "$_o" ] && rm -f "$_o"
	if [ -n "$_pre" ] && ! eval "$_pre" >> "logs/$1.hooks" 2>&1; then
		tfail "$1" "preparation failed: $_pre (logs/$1.hooks)"
		[ -n "$_post" ] && eval "$_post" >> "logs/$1.hooks" 2>&1
		echo "0 0 1 0" > "$2"
		return 1
	fi
	sync
	bin/runrss "$2" sh -c "$_c" > "logs/$1.out" 2>&1
	_rc=$?
	[ -n "$_post" ] && eval "$_post" >> "logs/$1.hooks" 2>&1
	[ "$_rc" -eq 0 ] && return 0
	case $1 in
	ref_*)
		case " $REFNOTE " in *" $1:$_rc "*) ;; *) REFNOTE="$REFNOTE $1:$_rc" ;; esac
		return 0 ;;
	esac
	tfail "$1" "exit $_rc: $_c"
	tail -5 "logs/$1.out" >&2
	return 1
}

# tclean NAME: delete NAME's output
tclean() {
	eval "_o=\$O_$1"
	[ -n "$_o" ] && rm -f "$_o"
	return 0
}

# trounds "NAMES": one untimed warm-up run of each, then $RUNS rounds that
# each run every command once, in turn (A B C ... A B C ...).
trounds() {
	for n in $1; do
		: > "logs/$n.times"
		: > "logs/$n.hwm"
	done
	printf 'bench: warm-up ...'
	t0=$(date +%s)
	for n in $1; do
		trun "$n" logs/warmup.res
		tclean "$n"
	done
	# the warm-up's daemon peaks count too (a daemon's first run)
	echo " $(( $(date +%s) - t0 )) s"
	r=1
	while [ "$r" -le "$RUNS" ]; do
		printf 'bench: round %d/%d ...' "$r" "$RUNS"
		t0=$(date +%s)
		for n in $1; do
			trun "$n" logs/one.res
			cat logs/one.res >> "logs/$n.times"
			tclean "$n"
		done
		echo " $(( $(date +%s) - t0 )) s ($(cut -d' ' -f1-3 /proc/loadavg))"
		r=$((r + 1))
	done
}

# ttable "NAMES": median s, MB/s (BYTES / median), CPU s and peak RSS; for a
# command with daemon peaks in logs/NAME.hwm (a FUSE mount), the largest
# daemon VmHWM instead, marked with *.
ttable() {
	printf '%-54s %8s %9s %8s %9s\n' "command" "median s" "MB/s" "CPU s" "RSS MiB"
	for n in $1; do
		set -- $(summ "$n")
		eval "_l=\$L_$n _b=\$B_$n"
		_h=""
		[ -s "logs/$n.hwm" ] && _h=$(sort -n "logs/$n.hwm" | tail -1)
		awk -v l="$_l" -v t="$1" -v c="$2" -v r="$3" -v h="$_h" -v b="$_b" 'BEGIN {
			rss = (h != "" ? sprintf("%8.1f*", h / 1024) : sprintf("%9.1f", r / 1024))
			mbs = (t > 0 && b > 0 ? sprintf("%9.0f", b / t / 1e6) : sprintf("%9s", "-"))
			printf "%-54s %8.3f %s %8.2f %s\n", l, t, mbs, c, rss }'
	done
}

# tabs LABEL NAME OP GOAL: the median wall time of NAME in seconds, against an
# absolute goal ("" = none)
tabs() {
	set -- "$1" "$(summ "$2" | cut -d' ' -f1)" "$3" "$4"
	awk -v l="$1" -v m="$2" -v op="$3" -v g="$4" 'BEGIN {
		ok = (op == "<" ? m < g : m <= g)
		if (op == "") printf "%-58s %7.3f s\n", l, m
		else printf "%-58s %7.3f s goal %-2s %-5s %s\n", l, m, op, g " s", (ok ? "PASS" : "FAIL") }'
}

# hwm_goal LABEL "NAMES" INDEXFILE: the largest daemon VmHWM seen in NAMES'
# runs against the index file's size + 64 MiB
hwm_goal() {
	_h=$(for n in $2; do cat "logs/$n.hwm"; done | sort -n | tail -1)
	_i=$(wc -c < "$3" 2>/dev/null || echo 0)
	awk -v l="$1" -v h="${_h:-0}" -v i="$_i" 'BEGIN {
		lim = 64 + i / 1048576
		printf "%-58s %7.1f   goal <= %-5.1f %s (MiB; 64 + index %.2f)\n", l, h / 1024, lim,
			(h / 1024 <= lim ? "PASS" : "FAIL"), i / 1048576 }'
}

# cores_in_use LABEL ONE PAIR: what two cores give at once, per round
# 2 x ONE's time / PAIR's time (PAIR runs ONE's command twice at once), the
# median and the range over the rounds; for information (no goal)
cores_in_use() {
	paste -d' ' "logs/$2.times" "logs/$3.times" | awk -v l="$1" '
	{ if ($5 > 0) v[++n] = 2 * $1 / $5 }
	END {
		for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
		m = (n == 0 ? 0 : n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
		printf "%-58s %7.2f   (rounds %.2f .. %.2f; 2.00 = two whole cores)\n", l, m, v[1], v[n] }'
}

# make_src DIR RAND_MIB TEXT_MIB SMALL_FILES SEED: deterministic files
# (bin/gen) for a filesystem: incompressible "media" in pieces of up to
# 100 MiB, log-like text in 30 MiB files, SMALL_FILES text files of 4..64 KiB
make_src() {
	rm -rf "$1"
	mkdir -p "$1/media" "$1/logs" "$1/docs" || return 1
	_left=$2 _i=0
	while [ "$_left" -gt 0 ]; do
		_m=100; [ "$_m" -gt "$_left" ] && _m=$_left
		bin/gen rand $((_m * 1048576)) $(($5 + _i)) > "$1/media/clip$_i.bin" || return 1
		_left=$((_left - _m)) _i=$((_i + 1))
	done
	_left=$3 _i=0
	while [ "$_left" -gt 0 ]; do
		_m=30; [ "$_m" -gt "$_left" ] && _m=$_left
		bin/gen text $((_m * 1048576)) $(($5 + 100 + _i)) > "$1/logs/app$_i.log" || return 1
		_left=$((_left - _m)) _i=$((_i + 1))
	done
	_i=0
	while [ "$_i" -lt "$4" ]; do
		_d=$1/docs/d$((_i % 20))
		mkdir -p "$_d"
		bin/gen text $((4096 * (1 + (_i * 7) % 16))) $(($5 + 200 + _i)) > "$_d/f$_i.txt" || return 1
		_i=$((_i + 1))
	done
}

# attach FILE: a loop device over FILE into LOOPDEV (exported, recorded for
# the cleanup trap)
attach() {
	LOOPDEV=$(losetup -f --show "$1") || return 1
	echo "$LOOPDEV" >> "$DIR/loops"
	export LOOPDEV
}

# detach: detach LOOPDEV (if attached)
detach() {
	[ -n "${LOOPDEV:-}" ] && losetup -d "$LOOPDEV" 2>/dev/null
	LOOPDEV=
	return 0
}

# daemon_pid COMM MOUNTPOINT: the pid of our FUSE daemon named COMM serving
# MOUNTPOINT (its command line holds MOUNTPOINT as an argument)
daemon_pid() {
	for _p in $(pgrep -x "$1"); do
		tr '\0' '\n' < "/proc/$_p/cmdline" 2>/dev/null | grep -qxF "$2" && { echo "$_p"; return 0; }
	done
	return 1
}

# unmount_wait MOUNTPOINT PID: unmount a FUSE mount and wait (<= 10 s) until
# its daemon has exited, so that the next run does not share the CPU with it.
# An exited daemon stays a zombie until init reaps it (seconds, in some
# containers): that counts as exited.
unmount_wait() {
	if mountpoint -q "$1"; then
		fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
	fi
	_i=0
	while [ -n "$2" ] && [ "$_i" -lt 500 ]; do
		_st=$(sed 's/.*) //' "/proc/$2/stat" 2>/dev/null | cut -c1)
		case $_st in ""|Z|X) break ;; esac
		sleep 0.02
		_i=$((_i + 1))
	done
	return 0
}

# want SECTION: whether BENCH_ONLY / BENCH_SKIP select it
want() {
	case ",$ONLY," in *",$1,"*) ;; *) return 1 ;; esac
	case ",$SKIP," in *",$1,"*) return 1 ;; esac
	return 0
}

# cleanup: the EXIT trap: unmount our mounts, detach our loop devices, delete
# outputs (the images stay)
cleanup() {
	for m in "$DIR"/mnt-*; do
		[ -d "$m" ] || continue
		if mountpoint -q "$m"; then
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
		rmdir "$m" 2>/dev/null
	done
	if [ -s "$DIR/loops" ]; then
		while read -r l; do
			# only if it is still over one of our files
			case $(losetup -nO BACK-FILE "$l" 2>/dev/null) in "$DIR"/*) losetup -d "$l" 2>/dev/null ;; esac
		done < "$DIR/loops"
	fi
	rm -f "$DIR/loops"
	rm -rf "$DIR"/out-* "$DIR"/copy.* "$DIR"/ref-* "$DIR"/mount-raw.img "$DIR"/build-tmp
}

# test/integration/lib.sh - the opening every integration script shares, the
# case runner and the assertions (bash).
#
# A script's opening is the one line
#
#   . "$(dirname "$0")/lib.sh"
#
# which (run by sh, `make integration`) starts the script again under bash,
# then sets: `set -u`, LC_ALL=C, /usr/sbin and /sbin on PATH, HERE (the
# script's folder), IMGBK (default ../../imgbk), T (the script's own
# mktemp -d folder, removed at exit unless IMGBK_KEEP=1), W (the scratch dir
# of the case running), empty $T/mounts and $T/loops (one mount point / loop
# device a line, recorded by the cases: `track DIR`, loop_attach FILE). At
# exit, and on INT/TERM/HUP, `release` runs, then the folder is removed:
# release unmounts the recorded mounts newest first, then detaches the
# recorded loop devices still ours. A script with other resources defines its
# own `release` (or unmount_recorded) after the opening line.
#
# Every case is a shell function run by `tc` in a subshell, inside a fresh
# scratch directory $W, with stdin from /dev/null and all its output captured.
# The output is shown (indented) only when the case fails. A case exits 77
# (via `skip REASON`) to be reported as skipped; `tc_skip` reports a case
# that was not even started.
#
# A machine that can run everything must run everything: as root with
# /dev/fuse, fusermount3 and loop devices (CI, the development machine) a
# skip is a failure ("not ok ... skipped, but this machine must run it").
# IMGBK_STRICT=0 turns that off, IMGBK_STRICT=1 forces it.

# bash is needed (arrays, PIPESTATUS, [[ ]]); `make integration` runs us with sh
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
export LC_ALL=C
export PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "$0")" && pwd)
IMGBK=${IMGBK:-$HERE/../../imgbk}
T=$(mktemp -d "${TMPDIR:-/tmp}/imgbk-$(basename "$0" .sh).XXXXXX") || exit 3
W=$T/w
: >"$T/mounts"
: >"$T/loops"

# unmount DIR until nothing is mounted there (a loop mount may sit on the FUSE one)
unmount_dir() {
	local i
	for i in 1 2 3; do
		mountpoint -q "$1" 2>/dev/null || return 0
		umount "$1" 2>/dev/null || fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
	done
	! mountpoint -q "$1" 2>/dev/null
}

# track DIR: record a mount point for unmount_recorded
track() {
	echo "$1" >>"$T/mounts"
}

# unmount_recorded: unmount what the cases recorded (newest first), then
# detach their loop devices; a case that mounts traps it on its EXIT
unmount_recorded() {
	local m
	[ -s "$T/mounts" ] && tac "$T/mounts" | while read -r m; do unmount_dir "$m"; done
	loop_detach_all
	: >"$T/mounts"
	: >"$T/loops"
}

# release: what the exit trap frees before the folder goes (a script with
# more kinds of resources defines its own)
release() {
	unmount_recorded
}

lib_exit() {
	release
	remove_temp
}
trap lib_exit EXIT
trap 'exit 130' INT TERM HUP

N=0 PASS=0 FAIL=0 SKIP=0

# machine_runs_all: root, FUSE and loop devices are all there (or IMGBK_STRICT=1)
machine_runs_all() {
	case ${IMGBK_STRICT:-auto} in
	0) return 1 ;;
	1) return 0 ;;
	esac
	[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ] &&
		PATH="$PATH:/usr/sbin:/sbin" command -v losetup >/dev/null &&
		command -v fusermount3 >/dev/null
}
STRICT=""
machine_runs_all && STRICT=1

# skipped DESCRIPTION REASON: count a case that did not run, as a skip or,
# on a machine that must run it, as a failure
skipped() {
	if [ -n "$STRICT" ]; then
		FAIL=$((FAIL + 1))
		echo "not ok $N - $1: skipped ($2), but this machine (root, /dev/fuse, loop devices) must run it"
	else
		SKIP=$((SKIP + 1))
		echo "ok $N - # SKIP $1: $2"
	fi
}

# remove_temp: at exit, remove the script's temp dir $T, or keep it (and
# say where) when IMGBK_KEEP=1.
remove_temp() {
	if [ "${IMGBK_KEEP:-0}" = 1 ]; then
		echo "# kept $T" >&2
	else
		rm -rf "$T"
	fi
}

# detach_ours DEVICE: detach a loop device recorded by this script if it is
# still attached to a file of ours (under $T). Other scripts and other runs
# take loop devices at the same time: a number we used and freed may be
# theirs by now.
detach_ours() {
	local back
	back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null) || return 0
	case $back in "$T"/* | "$(readlink -f "$T")"/*) losetup -d "$1" 2>/dev/null ;; esac
}

# tc DESCRIPTION FUNCTION [ARGS...]
tc() {
	local desc=$1 rc
	shift
	N=$((N + 1))
	rm -rf "$W"
	mkdir -p "$W"
	(cd "$W" && "$@") >"$T/case.log" 2>&1 </dev/null
	rc=$?
	case $rc in
	0)
		PASS=$((PASS + 1))
		echo "ok $N - $desc"
		;;
	77)
		skipped "$desc" "$(tail -n 1 "$T/case.log")"
		[ -z "$STRICT" ] || head -n 60 "$T/case.log" | sed 's/^/    /'
		;;
	*)
		FAIL=$((FAIL + 1))
		echo "not ok $N - $desc"
		head -n 60 "$T/case.log" | sed 's/^/    /'
		;;
	esac
}

# tc_skip DESCRIPTION REASON: a case that cannot run here.
tc_skip() {
	N=$((N + 1))
	skipped "$1" "$2"
}


# inside a case
skip() {
	echo "$*"
	exit 77
}

# show a captured file: text as is, binary as its size only
show() {
	if [ ! -s "$1" ]; then
		echo "  (empty)"
	elif LC_ALL=C grep -Iq . "$1" 2>/dev/null; then
		head -n 20 "$1" | cut -c1-300 | sed 's/^/  /'
	else
		echo "  ($(stat -c %s "$1") bytes of binary output)"
	fi
}

# run_in INPUT RC CMD...: run CMD with stdin from INPUT, stdout to $W/out,
# stderr to $W/err; fail (showing both) unless it exits with RC.
run_in() {
	local in=$1 want=$2 got
	shift 2
	"$@" <"$in" >"$W/out" 2>"$W/err"
	got=$?
	if [ "$got" != "$want" ]; then
		echo "command: $*${in:+ < $in}"
		echo "expected exit $want, got $got"
		echo "stderr:"
		show "$W/err"
		echo "stdout:"
		show "$W/out"
		return 1
	fi
	return 0
}

# run RC CMD...: run_in /dev/null
run() {
	run_in /dev/null "$@"
}

# err_has ERE...: every ERE (case-insensitive) occurs in the last command's stderr
err_has() {
	local p
	for p; do
		grep -qiE -- "$p" "$W/err" || {
			echo "stderr of the last command does not match /$p/; stderr:"
			show "$W/err"
			return 1
		}
	done
}

# out_has ERE...: same for stdout
out_has() {
	local p
	for p; do
		grep -qiE -- "$p" "$W/out" || {
			echo "stdout of the last command does not match /$p/; stdout:"
			show "$W/out"
			return 1
		}
	done
}

# err_names FILE: the error line starts with "imgbk: " and names FILE (cli-spec "Error messages")
err_names() {
	local base
	base=$(basename -- "$1")
	grep -qF -- "$base" "$W/err" || {
		echo "stderr does not name the file $base; stderr:"
		show "$W/err"
		return 1
	}
	grep -q '^imgbk: ' "$W/err" || {
		echo "stderr has no line starting with 'imgbk: '; stderr:"
		show "$W/err"
		return 1
	}
}

# same A B: byte-identical
same() {
	cmp -- "$1" "$2" || {
		echo "FAIL: $1 and $2 differ (sizes $(stat -c %s "$1" 2>/dev/null) / $(stat -c %s "$2" 2>/dev/null))"
		return 1
	}
}

# sparse FILE: fewer bytes allocated than its apparent size
sparse() {
	local a u
	a=$(stat -c %s "$1")
	u=$(($(stat -c %b "$1") * $(stat -c %B "$1")))
	[ "$u" -lt "$a" ] || {
		echo "FAIL: $1 is not sparse: $u bytes allocated for a size of $a"
		return 1
	}
}

sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# need FILE...: fixture files made by an earlier case must exist
need() {
	local f
	for f; do
		[ -e "$f" ] || {
			echo "fixture missing: $f (an earlier setup case failed)"
			return 1
		}
	done
}

# fail MESSAGE
fail() {
	echo "FAIL: $*"
	return 1
}

# loop_attach FILE: attach FILE to a free loop device, print the device and
# record it in $T/loops; loop_detach_all (in the EXIT trap) detaches them.
loop_attach() {
	local l
	l=$(losetup -f --show "$1") || return 1
	echo "$l" >>"$T/loops"
	echo "$l"
}

loop_detach_all() {
	local l
	[ -s "$T/loops" ] || return 0
	while read -r l; do
		detach_ours "$l"
	done <"$T/loops"
}

# Run a partclone restore and ignore its exit code: 0.3.23 can abort (double
# free, exit 134) after a complete, correct restore (FORMATS.md 6). Callers
# compare the bytes it wrote, with the source or with imgbk's output.
pc_restore() {
	"$@"
	return 0
}

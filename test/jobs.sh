#!/bin/bash
# test/jobs.sh - runs test jobs (unit binaries, integration scripts, fuzz
# harnesses, ...) several at a time and adds up their results (make check,
# test/integration/all.sh).
#
#   bash test/jobs.sh JOBFILE        (JOBFILE "-": standard input)
#
# JOBFILE: one job a line, "NAME<TAB>COMMAND" (COMMAND runs under bash -c,
# stdin /dev/null); empty lines and lines starting with # are ignored. Jobs
# start in the order listed (put the longest first), up to IMGBK_JOBS at once
# (default: the number of cores + 2, since the scripts often wait for disks,
# FUSE and sleeps). Each job's stdout and stderr go to a file, printed whole
# under "=== NAME" when the job ends, so outputs never interleave.
#
# Counting, per job: its last line "N passed, M failed[, K skipped]" (every
# integration script, test/man-check.sh) or else the sum of cmocka's
# "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines (unit binaries),
# or else one case that passed if the job exited 0. A job that exits non-zero
# with no failed case counted adds one failed case (a crash, a timeout, a
# failing fuzz harness). A job running longer than IMGBK_JOB_TIMEOUT seconds
# (default 3600) is stopped (SIGTERM, so its traps unmount and detach) and
# fails.
#
# Output ends with a table of each job's wall and CPU seconds and result, a
# line "K skipped (not counted below): ..." only if something skipped, and
# then the one summary line "N passed, M failed" over all jobs. Exit 1 if
# anything failed.
set -u
export LC_ALL=C

JOBFILE=${1:--}
NJOBS=${IMGBK_JOBS:-$(($(nproc 2>/dev/null || echo 1) + 2))}
JOB_TIMEOUT=${IMGBK_JOB_TIMEOUT:-3600}
# sub-makes started by a job must not talk to our caller's jobserver
unset MAKEFLAGS MFLAGS MAKELEVEL

D=$(mktemp -d "${TMPDIR:-/tmp}/imgbk-jobs.XXXXXX") || exit 3
trap 'rm -rf "$D"' EXIT
trap 'exit 130' INT TERM HUP

names=() cmds=()
while IFS= read -r line || [ -n "$line" ]; do
	case $line in '' | '#'*) continue ;; esac
	names+=("${line%%$'\t'*}")
	cmds+=("${line#*$'\t'}")
done < <(if [ "$JOBFILE" = - ]; then cat; else cat -- "$JOBFILE"; fi)

# calc EXPR: arithmetic on decimals
calc() {
	awk "BEGIN { printf \"%.1f\\n\", $1 }"
}

# run_job I: one job, its output to $D/I.log, "wall user sys" to $D/I.time
run_job() {
	local i=$1 t0 t1
	t0=$EPOCHREALTIME
	{
		TIMEFORMAT='%U %S'
		time timeout -k 30 "$JOB_TIMEOUT" bash -c "${cmds[$i]}" >"$D/$i.log" 2>&1 </dev/null
	} 2>"$D/$i.cpu"
	local rc=$?
	t1=$EPOCHREALTIME
	[ $rc -eq 124 ] && echo "(stopped after $JOB_TIMEOUT s: IMGBK_JOB_TIMEOUT)" >>"$D/$i.log"
	echo "$(calc "$t1 - $t0") $(cat "$D/$i.cpu")" >"$D/$i.time"
	return $rc
}

# counts_of LOG RC: prints "PASSED FAILED SKIPPED" for one finished job
counts_of() {
	local log=$1 rc=$2 line p=0 f=0 s=0
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
		s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
	elif grep -qE '^\[==========\]' "$log"; then
		p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		s=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
	elif [ "$rc" -eq 0 ]; then
		p=1
	fi
	p=${p:-0} f=${f:-0} s=${s:-0}
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	echo "$p $f $s"
}

PASS=0 FAIL=0 SKIP=0 skipped_in="" failed_in="" table=""
# finish I RC: print job I's output whole, add up its counts
finish() {
	local i=$1 rc=$2 p f s wall user sys
	read -r p f s <<<"$(counts_of "$D/$i.log" "$rc")"
	read -r wall user sys <"$D/$i.time"
	echo "=== ${names[$i]} (${wall%.*} s)"
	cat "$D/$i.log"
	if [ "$rc" -ne 0 ]; then
		echo "=== ${names[$i]}: exit $rc"
	fi
	PASS=$((PASS + p)) FAIL=$((FAIL + f)) SKIP=$((SKIP + s))
	[ "$s" -gt 0 ] && skipped_in="$skipped_in ${names[$i]}"
	[ "$f" -gt 0 ] && failed_in="$failed_in ${names[$i]}"
	table+=$(printf '%7.1f %7.1f  %-28s %s passed, %s failed%s' "$wall" "$(calc "$user + $sys")" \
		"${names[$i]}" "$p" "$f" "$([ "$s" -gt 0 ] && echo ", $s skipped")")$'\n'
}

declare -A slot   # pid -> job index
next=0 running=0 T0=$EPOCHREALTIME
echo "# ${#names[@]} jobs, $NJOBS at a time; logs in $D while they run"
while [ $next -lt ${#names[@]} ] || [ $running -gt 0 ]; do
	if [ $next -lt ${#names[@]} ] && [ $running -lt "$NJOBS" ]; then
		run_job $next &
		slot[$!]=$next
		next=$((next + 1)) running=$((running + 1))
		continue
	fi
	wait -n -p done_pid
	rc=$?
	[ -n "${done_pid:-}" ] || continue
	finish "${slot[$done_pid]}" $rc
	unset "slot[$done_pid]"
	running=$((running - 1))
done

echo "=== times (wall s, CPU s of the job and the processes it waited for; $NJOBS at a time, total wall $(calc "$EPOCHREALTIME - $T0" | cut -d. -f1) s)"
printf '%s' "$table" | sort -rn
[ -n "$failed_in" ] && echo "failed in:$failed_in"
[ "$SKIP" -gt 0 ] && echo "$SKIP skipped (not counted below) in:$skipped_in"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]

#!/bin/sh
# test/integration/all.sh - every integration script, listed below one a
# line, run several at a time by test/jobs.sh: each script's output is
# printed whole when it ends, and the last line "N passed, M failed" counts
# the cases of all of them.
#
#   IMGBK=/abs/path/imgbk IMGBK_LIB=/abs/path/libimgbk.a sh test/integration/all.sh
#   sh test/integration/all.sh --list     the job lines only (make check adds them to its own)
#
# A new script is one more line in the list (longest first: jobs start in
# this order); "SCRIPT N" runs a script that takes --part K/N as N jobs. The scripts run at the same time, so each keeps everything in
# its own mktemp -d folder (mount points included), takes loop devices with
# `losetup -f --show` and finds its daemons by their unique paths.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${IMGBK:=$here/../../imgbk}"
export IMGBK

list() {
	grep -vE '^[[:space:]]*(#|$)' <<'EOF'
zmount.sh 3
run.sh
safety.sh
corrupt.sh
ntfsclone.sh
partimage.sh
mount.sh
info.sh
raw.sh
czdir.sh
nbd.sh
EOF
}

# job_lines: "NAME<TAB>COMMAND" for test/jobs.sh, one per listed script, or
# N for a script listed as "SCRIPT N" (it takes --part K/N: K = 1..N)
job_lines() {
	list | while read -r t n; do
		if [ -z "$n" ]; then
			printf '%s\tbash "%s/%s"\n' "$t" "$here" "$t"
			continue
		fi
		k=1
		while [ "$k" -le "$n" ]; do
			printf '%s %s/%s\tbash "%s/%s" --part %s/%s\n' "$t" "$k" "$n" "$here" "$t" "$k" "$n"
			k=$((k + 1))
		done
	done
}

if [ "${1:-}" = --list ]; then
	job_lines
	exit 0
fi
job_lines | bash "$here/../jobs.sh" -

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
# this order). The scripts run at the same time, so each keeps everything in
# its own mktemp -d folder (mount points included), takes loop devices with
# `losetup -f --show` and finds its daemons by their unique paths.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${IMGBK:=$here/../../imgbk}"
export IMGBK

list() {
	grep -vE '^[[:space:]]*(#|$)' <<'EOF'
zmount.sh
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

# job_lines: "NAME<TAB>COMMAND" for test/jobs.sh, one per listed script
job_lines() {
	list | while read -r t; do printf '%s\tbash "%s/%s"\n' "$t" "$here" "$t"; done
}

if [ "${1:-}" = --list ]; then
	job_lines
	exit 0
fi
job_lines | bash "$here/../jobs.sh" -

#!/bin/sh
# test/integration/all.sh - runs every integration script (run.sh: partclone
# and the stream layer; then one script per format or front end) and ends
# with one summary line over all of them: "N passed, M failed[, K skipped]".
# Usage: IMGBK=/abs/path/imgbk sh test/integration/all.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${IMGBK:=$here/../../imgbk}"
export IMGBK
pass=0 fail=0 skip=0 broken=""
for t in run.sh ntfsclone.sh partimage.sh mount.sh zmount.sh safety.sh corrupt.sh raw.sh czdir.sh nbd.sh; do
	[ -f "$here/$t" ] || continue
	echo "=== $t"
	out=$(mktemp)
	bash "$here/$t" 2>&1 | tee "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	rm -f "$out"
	if [ -z "$line" ]; then
		broken="$broken $t"
		fail=$((fail + 1))
		continue
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + ${s:-0}))
done
[ -n "$broken" ] && echo "scripts that ended without a summary line (counted as failed):$broken"
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]

#!/bin/sh
# test/man-check.sh - the man pages say what --help says: every option that
# an applet's --help lists appears in its man page, and the other way round.
# Usage: sh test/man-check.sh ./imgbk
set -u
IMGBK=${1:-./imgbk}
pass=0 fail=0
opts_of() { grep -oE -- '--[a-z][a-z-]*' | sort -u; }
for a in $("$IMGBK" --help | awk '/^Applets:/{f=1;next} f&&/^  [a-z]/{print $1} f&&/^$/{exit}'); do
	page=man/imgbk-$a.1
	# compatibility names (vpartclone ...) have pages of their own name; follow a .so link
	[ -f "$page" ] || page=man/$a.1
	so=$(sed -n '1s/^\.so man1\///p' "$page" 2>/dev/null)
	[ -z "$so" ] || page=man/$so
	if [ ! -f "$page" ]; then echo "not ok - $page missing"; fail=$((fail+1)); continue; fi
	h=$("$IMGBK" "$a" --help | opts_of)
	m=$(sed 's/\\-/-/g' "$page" | opts_of)
	if [ "$h" = "$m" ]; then echo "ok - $a: man page options match --help"; pass=$((pass+1))
	else echo "not ok - $a: --help has [$(echo $h)] but $page has [$(echo $m)]"; fail=$((fail+1)); fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

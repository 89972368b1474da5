#!/bin/sh
# test/fuzz/run.sh - one libFuzzer harness for a fixed time with a fixed seed
# (make fuzz runs each in turn, make check several at once next to the other
# tests). Prints the seed, the INITED/DONE lines and the final stats; on a
# crash, the log's last lines and the saved input, and exits 1.
#
#   sh test/fuzz/run.sh build-fuzz/fuzz_image SECONDS SEED
#
# Corpus: build-fuzz/corpus/<harness>/ (test/fuzz/mkcorpus.sh, run first) +
# test/fuzz/seeds/<harness>/ + test/fuzz/regress/<harness>/; a crash leaves
# its input in build-fuzz/artifacts/<harness>/, the log is build-fuzz/log/<harness>.log.
set -u
b=$1 secs=$2 seed=$3
O=$(dirname "$b")
h=$(basename "$b")
mkdir -p "$O/corpus/$h" "$O/artifacts/$h" "$O/log"
case $h in
fuzz_image | fuzz_random | fuzz_codecs | fuzz_zseek) ml=1048576 ;;
*) ml=65536 ;;
esac
echo "== $h: $secs s, -seed=$seed, -max_len=$ml"
dirs=""
for d in test/fuzz/seeds/$h test/fuzz/regress/$h; do
	[ -d "$d" ] && dirs="$dirs $d"
done
# shellcheck disable=SC2086 # $dirs: a list of folders without spaces
IMGBK_TEST_DATA=${IMGBK_TEST_DATA:-test/data} "$b" -seed="$seed" -max_total_time="$secs" \
	-max_len=$ml -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$O/artifacts/$h/" "$O/corpus/$h" $dirs >"$O/log/$h.log" 2>&1 && st=0 || st=$?
grep -E '^INFO: Seed:|^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' \
	"$O/log/$h.log"
if [ "$st" -ne 0 ]; then
	echo "$h FAILED (exit $st); last lines of $O/log/$h.log:"
	tail -n 60 "$O/log/$h.log"
	ls -l "$O/artifacts/$h/"
	exit 1
fi

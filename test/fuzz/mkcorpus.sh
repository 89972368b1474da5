#!/bin/sh
# test/fuzz/mkcorpus.sh OUT - generate the seed corpora of the fuzz harnesses
# into OUT/corpus/<harness>/ from the fixtures in test/data (and small
# compressed variants made here with the Debian tools that are installed).
# Deterministic; missing tools are skipped. Not committed: `make fuzz` runs it.
set -u
OUT=${1:-build-fuzz}
D=${IMGBK_TEST_DATA:-test/data}
C=$OUT/corpus
mkdir -p "$C/fuzz_image" "$C/fuzz_codecs" "$C/fuzz_split" "$C/fuzz_index" "$C/fuzz_random" "$C/fuzz_zseek"
T=$(mktemp -d "${TMPDIR:-/tmp}/imgbk-corpus.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# prefix FLAGBYTE(octal) FILE OUT: one flag byte, then the file
prefix() { { printf "\\$1"; cat "$2"; } >"$3"; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- images: every fixture, plain; the header+bitmap part alone; ntfsclone
for f in "$D"/*.pc; do
	[ -e "$f" ] || continue
	b=$(basename "$f")
	prefix 001 "$f" "$C/fuzz_image/$b"
	prefix 001 "$f" "$C/fuzz_random/$b"
	head -c 8192 "$f" >"$T/h"
	prefix 000 "$T/h" "$C/fuzz_image/head-$b"
	prefix 001 "$T/h" "$C/fuzz_random/head-$b"
done
for f in "$D"/*.nc.gz "$D"/*.000 "$D"/*.pi "$D"/*partimage*; do
	[ -f "$f" ] || continue
	b=$(basename "$f")
	prefix 001 "$f" "$C/fuzz_image/$b"
	case $f in
	*.gz) gzip -dc "$f" >"$T/raw" 2>/dev/null && [ "$(stat -c %s "$T/raw")" -le 1048000 ] &&
		prefix 001 "$T/raw" "$C/fuzz_image/raw-$b" && prefix 001 "$T/raw" "$C/fuzz_random/raw-$b" ;;
	esac
done

# --- compressed variants of a small image and of some text
SMALL=$D/v0001_minix2.pc
head -c 3000 "$D/SAMPLES.md" >"$T/text" 2>/dev/null || printf 'hello world\n' >"$T/text"
i=0
for src in "$SMALL" "$T/text"; do
	[ -f "$src" ] || continue
	i=$((i + 1))
	have gzip && gzip -9nc "$src" >"$T/$i.gz"
	have pigz && { pigz -nc "$src"; gzip -nc "$T/text"; } >"$T/$i.2m.gz"
	have bzip2 && bzip2 -9c "$src" >"$T/$i.bz2"
	have zstd && zstd -q -19c "$src" >"$T/$i.zst"
	have pzstd && pzstd -q -c "$src" >"$T/$i.p.zst" 2>/dev/null
	have xz && xz -c "$src" >"$T/$i.xz"
	have xz && xz --format=lzma -c "$src" >"$T/$i.lzma"
	have lz4 && lz4 -qc "$src" >"$T/$i.lz4"
	have lz4 && lz4 -lqc "$src" >"$T/$i.l.lz4"
done
# selector: 0 gzip 1 bzip2 2 zstd 3 xz 4 lzma 5 lz4, 6 sniffing stack
for f in "$T"/*.gz "$T"/*.bz2 "$T"/*.zst "$T"/*.xz "$T"/*.lzma "$T"/*.lz4; do
	[ -s "$f" ] || continue
	case $f in *.gz) s=0 ;; *.bz2) s=1 ;; *.zst) s=2 ;; *.xz) s=3 ;; *.lzma) s=4 ;; *) s=5 ;; esac
	b=$(basename "$f")
	prefix "00$s" "$f" "$C/fuzz_codecs/$b"
	prefix 006 "$f" "$C/fuzz_codecs/stack-$b"
	case $b in 1.*) prefix 001 "$f" "$C/fuzz_image/$b" ;; esac
	# random reads into it: span 1 KiB, and 64 KiB with long reads; as an image, mounted
	prefix 000 "$f" "$C/fuzz_zseek/s1k-$b"
	prefix 006 "$f" "$C/fuzz_zseek/s64k-$b"
	case $b in 1.*) prefix 001 "$f" "$C/fuzz_random/$b" ;; esac
done
# multi-block xz, linked lz4 blocks, several bzip2 streams: more access points
if [ -f "$SMALL" ]; then
	have xz && xz --block-size=4KiB -c "$SMALL" | prefix 000 /dev/stdin "$C/fuzz_zseek/xz-blocks"
	have lz4 && lz4 -BD -B4 -qc "$SMALL" | prefix 000 /dev/stdin "$C/fuzz_zseek/lz4-linked"
	have bzip2 && { head -c 8000 "$SMALL" | bzip2 -1c; tail -c +8001 "$SMALL" | bzip2 -1c; } |
		prefix 001 /dev/stdin "$C/fuzz_zseek/bz2-streams"
fi

# --- split: pieces-1, mode, victim, cut points (u16 LE), data
t=$T/text
for spec in '002 000 000 \144\000\310\000' '002 001 001 \144\000\310\000' '003 002 000 \012\000\024\000\036\000' \
	'001 003 000 \000\004' '041 000 000 '; do
	set -- $spec
	n=$1 m=$2 v=$3 cuts=${4:-}
	if [ "$n" = 041 ]; then  # 34 pieces: every rsrc piece reopened on demand
		cuts=""
		k=1
		while [ $k -le 33 ]; do cuts="$cuts\\$(printf '%03o' $((k * 7)))\\000"; k=$((k + 1)); done
	fi
	{ printf "\\$n\\$m\\$v$cuts"; cat "$t"; } >"$C/fuzz_split/set-$n-$m"
done

# --- index: real index files and payloads (the harness writes them)
for b in "$OUT/fuzz_index"; do
	[ -x "$b" ] || continue
	printf '\001' >"$T/i1"
	printf '\003' >"$T/i3"
	IMGBK_TEST_DATA=$D IMGBK_FUZZ_INDEX_SEEDS=$C/fuzz_index "$b" -runs=2 "$T/i1" "$T/i3" >/dev/null 2>&1
done
printf '\000IMGBKIDX' >"$C/fuzz_index/magic-only"
echo "corpus: $(find "$C" -type f | wc -l) seeds in $C"

# test/bench/nbd.sh - sourced by bench.sh: the nbd section.
#
# The partclone bench image ($IMG) served by nbdkit with imgbk's plugin
# (build/nbdkit-imgbk-plugin.so, or $IMGBK_NBDKIT_PLUGIN) against
# `nbdkit file` serving imgbk's restore of the same image ($DIR/nbd-raw.img,
# a sparse file, made at the start of the section and deleted at its end):
# the NBD ceiling, a server that only calls pread(). Both on Unix sockets
# in $DIR; both backing files in the page cache (warm-up run), so the rows
# compare the servers, not the disk. Every measured run starts its server
# afresh (PRE hook: nbdkit returns once serving) and stops it after (POST
# hook), so no checked-group bit or decoded block survives between runs.
# Rows:
#   nbdcopy --no-extents URI /dev/null       sequential, every byte read. To a
#                                            pipe or character device nbdcopy
#                                            (1.14) copies synchronously: one
#                                            connection, one 256 KiB request at
#                                            a time (nbdcopy -v: "connections=1
#                                            ... synchronous=true"), so every
#                                            request's whole round trip counts
#   nbdcopy --no-extents URI null:           the same into nbdcopy's own sink:
#                                            asynchronous, multi-conn (one
#                                            connection per CPU, 64 requests
#                                            in flight); for information
#   nbdrand URI $NBD_RR_READS 1|4 SEED       random 4 KiB reads over 1 or 4
#                                            connections (test/bench/nbdrand.c,
#                                            libnbd), latency median and p99
# for the plugin (checksums verified, the default), the plugin with
# verify=false, and nbdkit file, all with nbdkit's default -t (16 worker
# threads per connection; the plugin's default thread model,
# serialize_requests, answers each connection on one thread: nbd/plugin.c;
# imgbk serve runs the same); the plugin with parallel=true (nbdkit's
# workers: sequential and 4 connections); nbdkit -t 1 file (one thread per
# connection, as the plugin); and the same sequential read through the FUSE
# mount (imgbk mount, dd bs=1M, cold mount as in the mount section).
# Page cache: both backing files are in it, but not alike: a file written
# in small pieces (image.pc, by partclone) sits in small folios, read about
# half as fast by pread as one written in big pieces or read from disk
# (nbd-raw.img, by imgbk restore) (measured with dd on this machine); the
# section leaves that as it finds it, against the plugin.
# Goal: the plugin at >= 0.8x nbdkit file, sequential and random.
# Besides the times, every server's own CPU seconds (/proc/PID/stat, read
# before it is stopped) and their ratios: on a machine others load, a run's
# time is mostly its share of the CPUs, its CPU seconds much less so; and
# the bytes each server read (/proc/PID/io rchar: its pread()s of the backing
# file, plus the 28-byte request headers) against the image's size: 1.00
# when the plugin reads every checksum group once (a group whose slot was
# reused before all its requests came would be read again).
# --no-extents: both servers send every byte. With nbdcopy's defaults it
# first asks for block status: nbdkit file answers from the sparse file's
# holes (and nbdcopy skips them), the plugin reports no extents (the library
# has no call that tells used from unused ranges), so the two would do
# different work. One more row shows nbdkit file with nbdcopy's defaults
# (measured slower than --no-extents here: the queries cost more than the
# holes save on a file in the page cache).
#
# Environment: BENCH_NBD_RR_READS=20000 reads per nbdrand run.

NBD_RR_READS=${BENCH_NBD_RR_READS:-20000}
NBD_RR_SEED=4242
NBD_RAW=$DIR/nbd-raw.img
NBD_PID=$DIR/nbd.pid
NBD_SOCK=$DIR/nbd.sock
NBD_URI="nbd+unix:///?socket=$NBD_SOCK"

# nbd_up imgbk|imgbk-n|imgbk-p|file|file-t1: start nbdkit on $NBD_SOCK (background, pid file)
nbd_up() {
	rm -f "$NBD_SOCK" "$NBD_PID"
	case $1 in
	imgbk)   nbdkit -r -U "$NBD_SOCK" -P "$NBD_PID" "$NBD_PLUGIN" "$IMG" ;;
	imgbk-n) nbdkit -r -U "$NBD_SOCK" -P "$NBD_PID" "$NBD_PLUGIN" "$IMG" verify=false ;;
	imgbk-p) nbdkit -r -U "$NBD_SOCK" -P "$NBD_PID" "$NBD_PLUGIN" "$IMG" parallel=true ;;
	file)    nbdkit -r -U "$NBD_SOCK" -P "$NBD_PID" file "$NBD_RAW" ;;
	file-t1) nbdkit -r -t 1 -U "$NBD_SOCK" -P "$NBD_PID" file "$NBD_RAW" ;;
	esac
}

# nbd_down [NAME]: stop the server and wait (<= 10 s) until it has exited;
# with NAME, first append the server's CPU seconds (user + system, all its
# threads) to logs/NAME.srv and the bytes it read to logs/NAME.rchar
nbd_down() {
	_p=$(cat "$NBD_PID" 2>/dev/null)
	[ -n "$_p" ] || return 0
	if [ -n "${1:-}" ]; then
		awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' \
			"/proc/$_p/stat" >> "logs/$1.srv"
		awk '$1 == "rchar:" { print $2 }' "/proc/$_p/io" >> "logs/$1.rchar"
	fi
	kill "$_p" 2>/dev/null
	_i=0
	while kill -0 "$_p" 2>/dev/null && [ "$_i" -lt 500 ]; do
		sleep 0.02
		_i=$((_i + 1))
	done
	rm -f "$NBD_PID" "$NBD_SOCK"
	return 0
}

# nbd_srv NAME [EXT [FORMAT]]: the median of NAME's server CPU seconds
# (logs/NAME.srv; or of logs/NAME.EXT) over the timed runs (the first line,
# the warm-up run's, left out), or -
nbd_srv() {
	awk -v fmt="${3:-%.2f}" 'NR > 1 { v[++n] = $1 }
	END {
		for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
		if (n) printf fmt "\n", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; else print "-"
	}' "logs/$1.${2:-srv}" 2>/dev/null || echo -
}

# nbd_read_line NAME: NAME's bytes read (median) and that / the image's size
nbd_read_line() {
	eval "_l=\$L_$1"
	_r=$(nbd_srv "$1" rchar %.0f)
	printf '%-54s %14s %8s\n' "$_l" "$_r" "$(awk -v r="$_r" -v s="$(stat -c %s "$IMG")" \
		'BEGIN { if (r + 0 > 0) printf "%.3f", r / s; else print "-" }')"
}

# nbd_srv_ratio LABEL FILE_ROW PLUGIN_ROW: server CPU of FILE_ROW / of PLUGIN_ROW
nbd_srv_ratio() {
	_f=$(nbd_srv "$2") _i=$(nbd_srv "$3")
	printf '%-70s %s\n' "$1" "$(awk -v f="$_f" -v i="$_i" 'BEGIN { if (f + 0 > 0 && i + 0 > 0) printf "%.2f", f / i; else print "-" }')"
}

# nbd_lat NAME: "median_us p99_us" of NAME's nbdrand runs (median over the
# runs of each), from logs/NAME.lat
nbd_lat() {
	awk '{ for (i = 1; i < NF; i++) { if ($i == "median_us") m[++n] = $(i + 1); if ($i == "p99_us") p[n] = $(i + 1) } }
	function med(a, k,   i, j, t) {
		for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	END { if (n) printf "%.0f %.0f\n", med(m, n), med(p, n); else print "- -" }' "logs/$1.lat"
}

bench_nbd() {
	echo
	echo "==== nbd: nbdkit + imgbk's plugin vs nbdkit file (the NBD ceiling) ($(cut -d' ' -f1-3 /proc/loadavg)) ===="
	for t in nbdkit nbdcopy pkg-config; do
		command -v "$t" >/dev/null 2>&1 || { echo "bench: nbd section skipped: $t is missing"; return 0; }
	done
	pkg-config --exists libnbd || { echo "bench: nbd section skipped: no libnbd development files"; return 0; }
	NBD_PLUGIN=${IMGBK_NBDKIT_PLUGIN:-$REPO/build/nbdkit-imgbk-plugin.so}
	[ -f "$NBD_PLUGIN" ] || { echo "bench: nbd section skipped: no plugin $NBD_PLUGIN (make)"; return 0; }
	"$CC" -O2 -pthread -o bin/nbdrand "$HERE/nbdrand.c" $(pkg-config --cflags --libs libnbd) ||
		{ tfail nbd "cannot compile nbdrand.c"; return 1; }

	echo "bench: imgbk restore image.pc nbd-raw.img (the file nbdkit file serves); checking the export"
	rm -f "$NBD_RAW"
	"$IMGBK" restore -q "$IMG" "$NBD_RAW" || { tfail nbd "imgbk restore failed"; return 1; }
	"$IMGBK" index -q "$IMG" || { tfail nbd "imgbk index failed"; return 1; }
	nbd_up imgbk || { tfail nbd "nbdkit with the plugin did not start"; return 1; }
	if nbdcopy "$NBD_URI" - | cmp -s - "$NBD_RAW"; then same_nbd=yes; else same_nbd=no; FAILED="$FAILED nbd-mismatch"; fi
	nbd_down
	mkdir -p "$MA" || return 1
	FUSE_ROW=nseq_fuse
	[ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1 || FUSE_ROW=

	SECTION_BYTES=$(stat -c %s "$NBD_RAW")
	RRB=$((NBD_RR_READS * 4096))
	NC="nbdcopy --no-extents"
	tdef nseq_file "nbdkit file: nbdcopy --no-extents" "$NC '$NBD_URI' /dev/null"
	tdef nseq_filex "nbdkit file: nbdcopy (holes skipped)" "nbdcopy '$NBD_URI' /dev/null"
	PRE_nseq_filex='nbd_up file' POST_nseq_filex='nbd_down nseq_filex'
	tdef nseq_im "nbdkit imgbk: nbdcopy --no-extents" "$NC '$NBD_URI' /dev/null"
	tdef nseq_imn "nbdkit imgbk verify=false: nbdcopy --no-extents" "$NC '$NBD_URI' /dev/null"
	tdef nseq_imp "nbdkit imgbk parallel=true: nbdcopy" "$NC '$NBD_URI' /dev/null"
	PRE_nseq_imp='nbd_up imgbk-p' POST_nseq_imp='nbd_down nseq_imp'
	tdef nseq_file1 "nbdkit -t 1 file: nbdcopy --no-extents" "$NC '$NBD_URI' /dev/null"
	tdef nseq_filen "nbdkit file: nbdcopy --no-extents to null:" "$NC '$NBD_URI' null:"
	tdef nseq_imnull "nbdkit imgbk: nbdcopy --no-extents to null:" "$NC '$NBD_URI' null:"
	PRE_nseq_filen='nbd_up file' POST_nseq_filen='nbd_down nseq_filen'
	PRE_nseq_imnull='nbd_up imgbk' POST_nseq_imnull='nbd_down nseq_imnull'
	PRE_nseq_file1='nbd_up file-t1' POST_nseq_file1='nbd_down nseq_file1'
	tdef nseq_fuse "imgbk mount (FUSE): dd bs=1M" "dd if='$MA/image.pc' of=/dev/null bs=1M"
	PRE_nseq_file='nbd_up file' PRE_nseq_im='nbd_up imgbk' PRE_nseq_imn='nbd_up imgbk-n'
	POST_nseq_file='nbd_down nseq_file' POST_nseq_im='nbd_down nseq_im' POST_nseq_imn='nbd_down nseq_imn'
	PRE_nseq_fuse='mnt_up imgbk' POST_nseq_fuse='mnt_down nseq_fuse "$MA"'
	for c in 1 4; do
		for s in file im imn imp; do
			case $s in
			file) l="nbdkit file" up=file ;;
			im) l="nbdkit imgbk" up=imgbk ;;
			imn) l="nbdkit imgbk verify=false" up=imgbk-n ;;
			imp) l="nbdkit imgbk parallel=true" up=imgbk-p ;;
			esac
			: > "logs/nrr${c}_$s.lat"
			tdef nrr${c}_$s "$l: $NBD_RR_READS x 4 KiB, $c conn(s)" \
				"bin/nbdrand '$NBD_URI' $NBD_RR_READS $c $NBD_RR_SEED >> '$DIR/logs/nrr${c}_$s.lat'" "" $RRB
			eval "PRE_nrr${c}_$s='nbd_up $up' POST_nrr${c}_$s='nbd_down nrr${c}_$s'"
		done
	done
	NNAMES="nseq_file nseq_filex nseq_im nseq_imn nseq_imp nseq_file1 nseq_filen nseq_imnull $FUSE_ROW nrr1_file nrr1_im nrr1_imn nrr4_file nrr4_im nrr4_imn nrr4_imp"
	for n in $NNAMES; do : > "logs/$n.srv"; : > "logs/$n.rchar"; done
	trounds "$NNAMES"

	# the same bytes from both servers: nbdrand's sums (every run)
	s1=$(for n in nrr1_file nrr1_im nrr1_imn; do sed -n 's/.* sum //p' "logs/$n.lat"; done | sort -u | wc -l)
	s4=$(for n in nrr4_file nrr4_im nrr4_imn nrr4_imp; do sed -n 's/.* sum //p' "logs/$n.lat"; done | sort -u | wc -l)
	[ "$s1" = 1 ] && [ "$s4" = 1 ] && same_rr=yes || { same_rr=no; FAILED="$FAILED nbdrand-mismatch"; }

	echo
	echo "image: $IMG ($(stat -c %s "$IMG") bytes), exported: $SECTION_BYTES bytes; nbdkit file serves nbd-raw.img"
	echo "(imgbk's restore of it). nbdcopy of the plugin's export identical to the restore: $same_nbd (cmp, once);"
	echo "nbdrand sums equal across the servers: $same_rr. Every run starts its server afresh (the FUSE row:"
	echo "mounts afresh); backing files in the page cache; median of $RUNS alternating runs; MB/s = bytes / median s."
	echo
	ttable "$NNAMES"
	echo
	printf '%-54s %10s %10s\n' "random 4 KiB reads: latency of one request" "median us" "p99 us"
	for n in nrr1_file nrr1_im nrr1_imn nrr4_file nrr4_im nrr4_imn nrr4_imp; do
		eval "_l=\$L_$n"
		set -- $(nbd_lat "$n")
		printf '%-54s %10s %10s\n' "$_l" "$1" "$2"
	done
	echo
	echo "server CPU s (nbdkit's own, all threads; median of the timed runs): steadier than the times"
	echo "on a loaded machine, where a run's time is mostly its share of the CPUs"
	for n in $NNAMES; do
		[ "$n" = nseq_fuse ] && continue
		eval "_l=\$L_$n"
		printf '%-54s %10s\n' "$_l" "$(nbd_srv "$n")"
	done
	echo
	printf '%-54s %14s %8s\n' "sequential: bytes the server read (rchar, median)" "bytes" "/ image"
	for n in nseq_file nseq_im nseq_imn nseq_imp nseq_imnull; do
		nbd_read_line "$n"
	done
	echo "(the image: $(stat -c %s "$IMG") bytes; nbdkit file reads the restored partition, holes included)"
	echo
	echo "ratios: time of nbdkit file / time of the plugin (= the plugin's speed / the ceiling), median over the rounds"
	ratio "nbd: sequential read (nbdcopy --no-extents) vs nbdkit file" nseq_file nseq_im ">=" 0.8
	ratio "nbd: $NBD_RR_READS random 4 KiB reads, 1 conn, vs nbdkit file" nrr1_file nrr1_im ">=" 0.8
	ratio "nbd: $NBD_RR_READS random 4 KiB reads, 4 conns, vs nbdkit file" nrr4_file nrr4_im ">=" 0.8
	echo "for information:"
	ratio "nbd verify=false: sequential read vs nbdkit file" nseq_file nseq_imn "" 0
	ratio "nbd verify=false: random 4 KiB, 4 conns, vs nbdkit file" nrr4_file nrr4_imn "" 0
	ratio "nbd parallel=true (old default): sequential vs nbdkit file" nseq_file nseq_imp "" 0
	ratio "nbd parallel=true: random 4 KiB, 4 conns, vs nbdkit file" nrr4_file nrr4_imp "" 0
	ratio "nbd: sequential vs nbdkit -t 1 file (one thread per connection too)" nseq_file1 nseq_im "" 0
	ratio "nbd: sequential, nbdcopy defaults (file skips holes) vs plugin" nseq_filex nseq_im "" 0
	ratio "nbd: sequential to null: (async, multi-conn) vs nbdkit file" nseq_filen nseq_imnull "" 0
	nbd_srv_ratio "server CPU: sequential, nbdkit file / plugin" nseq_file nseq_im
	nbd_srv_ratio "server CPU: random 4 KiB, 1 conn, nbdkit file / plugin" nrr1_file nrr1_im
	nbd_srv_ratio "server CPU: random 4 KiB, 4 conns, nbdkit file / plugin" nrr4_file nrr4_im
	nbd_srv_ratio "server CPU: sequential, nbdkit -t 1 file / plugin" nseq_file1 nseq_im
	nbd_srv_ratio "server CPU: sequential, nbdkit file / plugin parallel=true" nseq_file nseq_imp
	nbd_srv_ratio "server CPU: sequential to null:, nbdkit file / plugin" nseq_filen nseq_imnull
	nbd_srv_ratio "server CPU: random 4 KiB, 4 conns, nbdkit file / plugin parallel=true" nrr4_file nrr4_imp
	[ -n "$FUSE_ROW" ] && ratio "nbd plugin vs FUSE mount: sequential (time fuse / time nbd)" nseq_fuse nseq_im "" 0
	rm -f "$NBD_RAW"
	rmdir "$MA" 2>/dev/null
	return 0
}

#!/bin/sh
# test/deps.sh - install the Debian packages imgbk needs to build, test, demo
# and benchmark, but only those that are missing. Needs root (or sudo) when
# something is missing; does nothing when all are there.
set -u
PKGS="build-essential pkg-config zlib1g-dev libzstd-dev liblzma-dev libbz2-dev liblz4-dev
libxxhash-dev libisal-dev libfuse3-dev fuse3 libcmocka-dev libssl-dev
partclone ntfs-3g partimage e2fsprogs dosfstools mtools btrfs-progs util-linux parted
gzip pigz bzip2 pbzip2 lbzip2 zstd xz-utils lz4 lzop liblzo2-dev lzip liblz-dev lrzip file coreutils strace
clang libclang-rt-14-dev
nbdkit nbdkit-plugin-dev libnbd-bin libnbd-dev qemu-utils"
missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || { echo "deps: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
	{ echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
echo "deps: done"

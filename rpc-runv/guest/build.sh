#!/bin/bash
# Builds the guest kernel (vmlinux, bzImage) and the test initramfs from
# Debian's linux-source-6.1 with linux-6.1.config and patches/, and caches
# them outside the clone, keyed by everything that goes into them:
#
#   $RPC_GUEST_CACHE/guest/<key>/{vmlinux,bzImage,System.map,config,initramfs.cpio}
#   $RPC_GUEST_CACHE/guest/current -> <key>
#
# The key covers the kernel's inputs (package version, fragment, patches,
# KERNEL_RECIPE below); the initramfs is rebuilt in place, in a second,
# whenever init/init.c changes.
#
# RPC_GUEST_CACHE defaults to /var/cache/rpc-runtimes. A cached build is
# reused at once; otherwise this takes ~6.5 min on 2 cores (niced). The
# last line printed is the output directory. Needs linux-source-6.1, gcc,
# make, bc, flex, bison, libelf-dev (.ci/run installs them).
#   --check   exit 0 if the cache holds this build, 1 otherwise; build nothing
#   --keep    keep the build tree (for kernel work); deleted otherwise
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RPC_GUEST_CACHE:-/var/cache/rpc-runtimes}"
tarball=/usr/src/linux-source-6.1.tar.xz
check=0 keep=0
for a in "$@"; do
	case "$a" in
	--check) check=1 ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--check] [--keep]" >&2; exit 2 ;;
	esac
done

# Bump when the kernel build steps below change.
KERNEL_RECIPE=1

srcver="$(dpkg-query -W -f '${Version}' linux-source-6.1 2>/dev/null || echo missing)"
key="$( { echo "linux-source-6.1 $srcver recipe $KERNEL_RECIPE"; cat "$here/linux-6.1.config" \
	"$here"/patches/*.patch; } | sha256sum | cut -c1-16)"
out="$cache/guest/$key"

# initramfs: an uncompressed cpio (a compressed one costs ~40 s per MB to
# unpack where ring 0 is emulated) with /dev/console and a tiny /init.
make_initramfs() { # DIR (holding gen_init_cpio)
	local d="$1"
	gcc -ffreestanding -static -nostdlib -Os -fno-pie -no-pie -fno-stack-protector -fno-asynchronous-unwind-tables \
		-Wl,--build-id=none -o "$d/init" "$here/init/init.c"
	cat >"$d/initramfs.list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
file /init $d/init 0755 0 0
LIST
	"$d/gen_init_cpio" "$d/initramfs.list" >"$d/initramfs.cpio.new"
	mv "$d/initramfs.cpio.new" "$d/initramfs.cpio"
	cp "$here/init/init.c" "$d/init.c"
	rm -f "$d/initramfs.list"
}

if [ -f "$out/.complete" ]; then
	if ! cmp -s "$here/init/init.c" "$out/init.c"; then
		[ $check = 0 ] || exit 1
		echo "guest: init changed, rebuilding the initramfs" >&2
		make_initramfs "$out"
	fi
	ln -sfn "$key" "$cache/guest/current"
	[ $check = 1 ] || echo "$out"
	exit 0
fi
[ $check = 0 ] || exit 1
[ -f "$tarball" ] || { echo "$tarball missing: apt-get install linux-source-6.1" >&2; exit 1; }

start=$(date +%s)
build="$cache/build/$key"
mkdir -p "$build" "$cache/guest"
src="$build/linux-source-6.1"
if [ ! -d "$src" ]; then
	echo "guest: extracting $tarball" >&2
	tar -C "$build" -xf "$tarball"
	for p in "$here"/patches/*.patch; do
		patch -s -d "$src" -p1 <"$p"
	done
fi
cd "$src"
echo "guest: configuring (tinyconfig + linux-6.1.config)" >&2
make -s ARCH=x86_64 tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$here/linux-6.1.config" >/dev/null
make -s ARCH=x86_64 olddefconfig >/dev/null
# Every option of the fragment must have survived Kconfig's dependencies.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" .config || { echo "guest: config: wanted $line, got: $(grep "^${line%%=*}=" .config || echo unset)" >&2; bad=1; } ;;
	"# CONFIG_"*" is not set") opt="${line#\# }"; opt="${opt%% *}"; ! grep -q "^$opt=" .config || { echo "guest: config: wanted $opt unset" >&2; bad=1; } ;;
	esac
done <"$here/linux-6.1.config"
[ $bad = 0 ] || exit 1

echo "guest: building vmlinux and bzImage (make -j$(nproc), nice)" >&2
nice -n 10 make -s ARCH=x86_64 -j"$(nproc)" vmlinux bzImage >/dev/null

tmp="$cache/guest/.tmp-$key"
rm -rf "$tmp" && mkdir -p "$tmp"
cp vmlinux arch/x86/boot/bzImage System.map "$tmp/"
cp .config "$tmp/config"

gcc -O2 -o "$tmp/gen_init_cpio" usr/gen_init_cpio.c
make_initramfs "$tmp"
echo "guest: built in $(($(date +%s) - start)) s" >"$tmp/build-info"
echo "linux-source-6.1 $srcver" >>"$tmp/build-info"
touch "$tmp/.complete"
rm -rf "$out" && mv "$tmp" "$out"
ln -sfn "$key" "$cache/guest/current"
[ $keep = 1 ] || rm -rf "$build"
echo "guest: $(head -1 "$out/build-info")" >&2
echo "$out"

#!/bin/bash
# Installs the crates.io tool CRATE at VERSION with `cargo install
# --locked` into $RPC_GUEST_CACHE/CRATE/VERSION/ (niced) unless it is
# there already, and prints the binary's path (last line). Shared by
# virtiofsd.sh and vhost-device-vsock.sh, which pin the versions.
#
#   cargo-tool.sh CRATE VERSION [--check]
#   --check   print the path and exit 0 if it is installed, exit 1
#             otherwise; install nothing
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CRATE VERSION [--check]" >&2; exit 2; }
crate=$1 version=$2; shift 2
cache="${RPC_GUEST_CACHE:-/var/cache/rpc-runtimes}"
root="$cache/$crate/$version"
bin="$root/bin/$crate"
check=0
for a in "$@"; do
	case "$a" in
	--check) check=1 ;;
	*) echo "usage: $0 CRATE VERSION [--check]" >&2; exit 2 ;;
	esac
done
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
[ $check = 0 ] || exit 1
start=$(date +%s)
# From /, away from the workspace's .cargo/config.toml (static linking,
# explicit target): these tools link their C libraries dynamically.
cd /
echo "$crate: cargo install $crate $version into $root" >&2
nice -n 10 cargo install --quiet --locked --version "$version" --root "$root" "$crate" >&2
"$bin" --version >/dev/null
echo "$crate: installed in $(($(date +%s) - start)) s" >&2
echo "$bin"

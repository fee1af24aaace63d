#!/bin/bash
# Installs virtiofsd (the rust-vmm virtio-fs backend, crates.io crate
# `virtiofsd`, not packaged in Debian 12) for rpc-vmm's `--fs` device and
# its tests, and prints the binary's path (last line). Cached and
# idempotent: an installed binary of VERSION is reused at once; otherwise
# `cargo install --locked` builds it from crates.io (niced; 75 s on 2 idle
# cores, 111 s beside another build). Needs libseccomp-dev and
# libcap-ng-dev (`make guest-deps` installs them).
#
#   $RPC_GUEST_CACHE/virtiofsd/<VERSION>/bin/virtiofsd
#
#   --check   print the path and exit 0 if it is installed, exit 1
#             otherwise; install nothing
set -euo pipefail
VERSION=1.14.0
cache="${RPC_GUEST_CACHE:-/var/cache/rpc-runtimes}"
root="$cache/virtiofsd/$VERSION"
bin="$root/bin/virtiofsd"
check=0
for a in "$@"; do
	case "$a" in
	--check) check=1 ;;
	*) echo "usage: $0 [--check]" >&2; exit 2 ;;
	esac
done
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
[ $check = 0 ] || exit 1
start=$(date +%s)
# From /, away from the workspace's .cargo/config.toml (static linking,
# explicit target): virtiofsd links libseccomp and libcap-ng dynamically.
cd /
echo "virtiofsd: cargo install virtiofsd $VERSION into $root" >&2
nice -n 10 cargo install --quiet --locked --version "$VERSION" --root "$root" virtiofsd >&2
"$bin" --version >/dev/null
echo "virtiofsd: installed in $(($(date +%s) - start)) s" >&2
echo "$bin"

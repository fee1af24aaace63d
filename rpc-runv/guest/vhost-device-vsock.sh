#!/bin/bash
# Installs vhost-device-vsock (rust-vmm's vhost-user vsock backend,
# crates.io crate `vhost-device-vsock`, not packaged in Debian 12): rpc-runv's
# QEMU backend serves the guest's virtio-vsock device with it, as a
# Firecracker-style hybrid vsock (a unix socket taking `CONNECT <port>\n`),
# the protocol rpc-vmm's own device speaks. Prints the binary's path (last
# line). Cached and idempotent: an installed binary of VERSION is reused at
# once; otherwise `cargo install --locked` builds it from crates.io (niced).
# VERSION is the newest release; it builds with our toolchain.
#
#   $RPC_GUEST_CACHE/vhost-device-vsock/<VERSION>/bin/vhost-device-vsock
#
#   --check   print the path and exit 0 if it is installed, exit 1
#             otherwise; install nothing
set -euo pipefail
VERSION=0.3.0
cache="${RPC_GUEST_CACHE:-/var/cache/rpc-runtimes}"
root="$cache/vhost-device-vsock/$VERSION"
bin="$root/bin/vhost-device-vsock"
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
# explicit target).
cd /
echo "vhost-device-vsock: cargo install vhost-device-vsock $VERSION into $root" >&2
nice -n 10 cargo install --quiet --locked --version "$VERSION" --root "$root" vhost-device-vsock >&2
"$bin" --version >/dev/null
echo "vhost-device-vsock: installed in $(($(date +%s) - start)) s" >&2
echo "$bin"

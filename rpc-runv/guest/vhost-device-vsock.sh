#!/bin/bash
# Installs vhost-device-vsock (rust-vmm's vhost-user vsock backend,
# crates.io crate `vhost-device-vsock`, not packaged in Debian 12):
# rpc-runv's QEMU backend serves the guest's virtio-vsock device with it,
# as a Firecracker-style hybrid vsock (a unix socket taking
# `CONNECT <port>\n`), the protocol rpc-vmm's own device speaks. Prints
# the binary's path (last line):
# $RPC_GUEST_CACHE/vhost-device-vsock/<VERSION>/bin/vhost-device-vsock.
# VERSION is the newest release; it builds with our toolchain.
#   --check   exit 0 if installed, 1 otherwise; install nothing
set -euo pipefail
VERSION=0.3.0
exec "$(dirname "$0")/cargo-tool.sh" vhost-device-vsock "$VERSION" "$@"

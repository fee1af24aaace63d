#!/bin/bash
# Installs virtiofsd (the rust-vmm virtio-fs backend, crates.io crate
# `virtiofsd`, not packaged in Debian 12) for rpc-vmm's `--fs` device,
# rpc-runv's VMs and their tests, and prints the binary's path (last
# line): $RPC_GUEST_CACHE/virtiofsd/<VERSION>/bin/virtiofsd. Cached; a
# build takes 75 s on 2 idle cores (111 s beside another build). Needs
# libseccomp-dev and libcap-ng-dev (`make guest-deps` installs them).
#   --check   exit 0 if installed, 1 otherwise; install nothing
set -euo pipefail
VERSION=1.14.0
exec "$(dirname "$0")/cargo-tool.sh" virtiofsd "$VERSION" "$@"

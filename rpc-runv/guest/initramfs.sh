#!/bin/bash
# Builds the agent initramfs of an rpc-runv guest: an uncompressed cpio
# (a compressed one costs ~40 s per MB to unpack where ring 0 is
# emulated) holding
#   /init                   the agent (rpc-agent, static)
#   /usr/lib/rpc/rpc-runc   the guest runtime (rpc_proto::guest::GUEST_RUNTIME, static)
#   /dev/console            and empty /dev /proc /sys /run /tmp
# with gen_init_cpio from the guest kernel build (build.sh) in
# $RPC_GUEST_CACHE/guest/current (default /var/cache/rpc-runtimes).
# Prints the output path.
#
#   rpc-runv/guest/initramfs.sh AGENT RUNC OUT.cpio
#   e.g. rpc-runv/guest/initramfs.sh target/x86_64-unknown-linux-gnu/ci/rpc-agent \
#        target/x86_64-unknown-linux-gnu/ci/rpc-runc /tmp/agent.cpio
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 AGENT RUNC OUT.cpio" >&2; exit 2; }
agent="$(realpath -e "$1")" || { echo "$0: no agent binary at $1" >&2; exit 1; }
runc="$(realpath -e "$2")" || { echo "$0: no runtime binary at $2" >&2; exit 1; }
out="$3"
cache="${RPC_GUEST_CACHE:-/var/cache/rpc-runtimes}"
gen="$cache/guest/current/gen_init_cpio"
[ -x "$gen" ] || { echo "$0: $gen missing: run rpc-runv/guest/build.sh first" >&2; exit 1; }
for f in "$agent" "$runc"; do
	[ -x "$f" ] || { echo "$0: $f is not executable" >&2; exit 1; }
	# gen_init_cpio's list is whitespace-separated.
	case "$f" in *[[:space:]]*) echo "$0: $f: no whitespace in paths, please" >&2; exit 1 ;; esac
	# The guest has no dynamic loader or libc: static binaries only.
	if readelf -l "$f" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		echo "$0: $f is dynamically linked (the guest has no ld.so): build it with the workspace's crt-static target" >&2
		exit 1
	fi
done
list="$(mktemp)"
trap 'rm -f "$list" "$out.new"' EXIT
cat >"$list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /run 0755 0 0
dir /tmp 1777 0 0
dir /usr 0755 0 0
dir /usr/lib 0755 0 0
dir /usr/lib/rpc 0755 0 0
file /init $agent 0755 0 0
file /usr/lib/rpc/rpc-runc $runc 0755 0 0
LIST
"$gen" "$list" >"$out.new"
mv "$out.new" "$out"
realpath "$out"

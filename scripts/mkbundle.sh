#!/bin/sh
# Make a busybox bundle in $1 (rootfs from Debian's busybox-static) whose
# process runs "$2" under sh -c. Used by `make run`.
set -eu
dir=$1; shift
cmd=${1:-'echo "hello from $(hostname) on Linux $(uname -r): pid $$, uid $(id -u)"'}
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/tmp" "$dir/rootfs/etc"
cp /bin/busybox "$dir/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
rm -f "$dir/config.json"
"${RUNTIME:-target/release/rpc-runc}" spec --bundle "$dir"
python3 - "$dir/config.json" "$cmd" <<'PY'
import json, sys
p, cmd = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", cmd]
json.dump(c, open(p, "w"), indent=2)
PY

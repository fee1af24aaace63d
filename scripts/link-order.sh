#!/bin/bash
# Regenerate rpc-runc/link-order.txt: the functions a container's life
# executes, in first-call order, so the linker (lld --symbol-ordering-file,
# see rpc-runc/build.rs) packs them together. The kernel maps text 64 KiB
# at a time around each fault ("fault-around"), so hot code scattered over
# 3 MB of text made nearly all of it resident in every process of ours.
#
# Runs the runtime under valgrind's callgrind (instruction-level, so every
# executed function is seen, not a sample) through the common paths: run,
# create/start/state/delete, run -d + exec + kill, with and without the
# default seccomp profile. Needs root, valgrind and busybox-static; run it
# after `make build` when the hot path changed (stale names are harmless:
# lld skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/rpc-runc}
OUT=${OUT:-rpc-runc/link-order.txt}
# --if-stale (make build): only when fewer than 90% of the listed names
# are symbols of $BIN (a dependency change renamed them), and not under CI;
# exit 0 when the list was remade (relink), 1 when not.
if [ "${1:-}" = --if-stale ]; then
	total=$(grep -c . "$OUT" || true)
	have=$(nm "$BIN" 2>/dev/null | awk '{print $NF}' | sort -u | comm -12 - <(sort -u "$OUT") | wc -l)
	if [ "$total" -gt 0 ] && [ $((have * 100)) -ge $((total * 90)) ]; then
		exit 1
	fi
	if [ -n "${CI:-}" ]; then
		# CI builds what is committed: no machine-made tracked file, no
		# profiling minutes. (A stale list costs memory, not correctness.)
		echo "link-order: stale ($have of $total names in $BIN); not re-profiled under CI: run make link-order and commit it" >&2
		exit 1
	fi
	if [ "$(id -u)" != 0 ] || ! command -v valgrind >/dev/null || ! command -v busybox >/dev/null; then
		echo "link-order: stale ($have of $total names in $BIN); re-profiling needs root, valgrind and busybox" >&2
		exit 1
	fi
	echo "link-order: stale ($have of $total names in $BIN): re-profiling" >&2
fi
command -v valgrind >/dev/null || { echo "link-order: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d /tmp/rpc-link-order.XXXXXX)
trap 'umount "$work/bin" 2>/dev/null; rm -rf "$work" /tmp/rpc-link-order-cg' EXIT
# Profile a copy on a read-only mount: the runtime then runs as it is
# instead of re-executing itself through a sealed view (linux/exe_seal.rs),
# which valgrind would follow as a second program.
mkdir -p "$work/bin"
cp "$BIN" "$work/bin/rpc-runc"
mount --bind "$work/bin" "$work/bin"
mount -o remount,bind,ro "$work/bin"
BIN=$work/bin/rpc-runc
root=$work/root
scripts/mkbundle.sh "$work/b" 'true' >/dev/null
cp -a "$work/b" "$work/plain"
# valgrind keeps some fds for itself and lowers RLIMIT_NOFILE: no rlimits.
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
for b, seccomp in (("b", True), ("plain", False)):
    p = f"{w}/{b}/config.json"
    c = json.load(open(p))
    c["process"].pop("rlimits", None)
    c["process"]["args"] = ["true"]
    c["root"]["readonly"] = False
    if not seccomp:
        c["linux"].pop("seccomp", None)
    json.dump(c, open(p, "w"))
PY
# init dumps its profile after pivot_root: the same path must exist in
# the rootfs (collected from both places below).
cgdir=/tmp/rpc-link-order-cg
rm -rf "$cgdir" && mkdir -p "$cgdir" "$work/b/rootfs$cgdir" "$work/plain/rootfs$cgdir"
n=0
cg() {
	n=$((n + 1))
	# init execs the program: dump its profile just before (the trampoline).
	valgrind --tool=callgrind --trace-children=yes --demangle=no --dump-before='*trampoline*Trampoline*exec*' \
		--callgrind-out-file="$cgdir/cg.$n.%p" "$BIN" --root "$root" "$@" >/dev/null 2>"$work/vg.$n" || true
}
cg run --bundle "$work/plain" lo1
cg run --bundle "$work/b" lo2
cg create --bundle "$work/plain" lo3
cg start lo3
cg state lo3
cg delete lo3
python3 - "$work/plain/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["sleep", "30"]; json.dump(c, open(sys.argv[1], "w"))
PY
cg run -d --bundle "$work/plain" lo4
cg exec lo4 true
cg kill lo4 KILL
sleep 0.2
cg delete --force lo4
"$BIN" --root "$root" delete --force lo4 >/dev/null 2>&1 || true
python3 - "$OUT" "$cgdir"/cg.* "$work"/*/rootfs"$cgdir"/cg.* <<'PY'
import re, sys
out, files = sys.argv[1], sys.argv[2:]
order, seen = [], set()
for f in sorted(files, key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"[.]", p)]):
    for line in open(f, errors="replace"):
        m = re.match(r"^c?fn=\(\d+\) (\S+)", line)
        if not m:
            continue
        name = re.sub(r"'\d+$", "", m.group(1))
        if name.startswith("0x") or name in seen:
            continue
        seen.add(name)
        order.append(name)
with open(out, "w") as o:
    o.write("".join(n + "\n" for n in order))
print(f"link-order: {len(order)} functions from {len(files)} profiles -> {out}")
PY

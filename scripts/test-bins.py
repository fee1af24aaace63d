#!/usr/bin/env python3
"""Run test binaries that the workspace build already made, without
building anything of one package again.

`cargo test -p rpc-runc` resolves features for rpc-runc alone, which
differ from the whole workspace's (serde_core, memchr, bitflags, syn):
cargo then compiles most of the dependency graph, runtime-core and every
rpc-runc test binary a second time (minutes of CPU on 2 cores) only to run
tests that `cargo test --workspace` has just built. This script asks
cargo, with the workspace's selection, for the test executables (all
fresh: nothing is compiled) and runs those of one package the way
`cargo test` does: from the package's directory, with cargo's variables,
one binary after the other, stopping at the first that fails.

    test-bins.py --package rpc-runc [--kind test] [--profile ci] [-- ARGS...]

ARGS go to every test binary (e.g. --test-threads=4). $CARGO names cargo.
"""

import argparse
import json
import os
import subprocess
import sys


def executables(cargo, profile, package, kinds):
    cmd = [cargo, "test", "--workspace", "--profile", profile, "--tests", "--no-run", "--message-format=json-render-diagnostics"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.exit(f"test-bins: `{' '.join(cmd)}` failed ({p.returncode})")
    out = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m.get("profile", {}).get("test"):
            continue
        t = m["target"]
        # package_id: "path+file:///…/rpc-runc#0.1.0" (or "…#name@0.1.0")
        pid = m.get("package_id", "")
        name = pid.rsplit("#", 1)[-1].split("@")[0] if "@" in pid.rsplit("#", 1)[-1] else pid.rsplit("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if name != package or not set(t["kind"]) & kinds:
            continue
        manifest = os.path.dirname(m["manifest_path"])
        out.append((t["src_path"], m["executable"], manifest, name))
    return sorted(set(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", required=True)
    ap.add_argument("--kind", action="append", help="target kinds to run (default: test, i.e. integration tests)")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    cargo = os.environ.get("CARGO", "cargo")
    bins = executables(cargo, a.profile, a.package, set(a.kind or ["test"]))
    if not bins:
        sys.exit(f"test-bins: no test binaries of package {a.package}")
    for src, exe, manifest, name in bins:
        rel = os.path.relpath(src, manifest)
        print(f"     Running {rel} ({os.path.relpath(exe)})", flush=True)
        env = dict(os.environ, CARGO=cargo, CARGO_MANIFEST_DIR=manifest, CARGO_PKG_NAME=name)
        rc = subprocess.run([exe, *a.args], cwd=manifest, env=env, check=False).returncode
        if rc != 0:
            print(f"error: test failed, to rerun pass `--test {os.path.splitext(os.path.basename(src))[0]}` ({exe} exited {rc})", flush=True)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())

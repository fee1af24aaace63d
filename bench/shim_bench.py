#!/usr/bin/env python3
"""Benchmark our containerd shim against containerd's Go shim + runc.

Python 3.11, standard library only.  Must run as root, with Debian's
containerd installed and `make build` done.

A private containerd (config, root, state, sockets under a temp dir; CRI
plugin off) gets our shim binaries first on its PATH and a busybox image
built here from busybox-static.  Then, interleaved A B A B ... for N rounds
after warm-up rounds:

  * `ctr run --rm IMG ID /bin/true` wall time, through
      A: io.containerd.rpc-runc.v2 (our shim driving rpc-runc)
      B: io.containerd.runc.v2     (containerd's Go shim driving runc)
  * the shim's resident set (VmRSS) while one idle container (`sleep`)
    runs, read from /proc after the task has settled.

Prints medians and the ratio of ours to Go's.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
IMAGE = "docker.io/rpc/busybox:bench"
OURS = "io.containerd.rpc-runc.v2"
GO = "io.containerd.runc.v2"


def blob(dirpath: str, data: bytes) -> tuple[str, int]:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(dirpath, d), "wb") as f:
        f.write(data)
    return d, len(data)


def build_image(path: str) -> None:
    busybox = next(p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.isfile(p))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        t.add(busybox, "bin/busybox")
        for a in applets:
            if a != "busybox":
                ti = tarfile.TarInfo("bin/" + a)
                ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
                t.addfile(ti)
    oci = tempfile.mkdtemp()
    blobs = os.path.join(oci, "blobs", "sha256")
    os.makedirs(blobs)
    ld, ls = blob(blobs, layer.getvalue())
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + ld]}}
    cd, cs = blob(blobs, json.dumps(cfg).encode())
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": cs},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + ld, "size": ls}]}
    md, ms = blob(blobs, json.dumps(man).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:" + md, "size": ms, "platform": {"architecture": "amd64", "os": "linux"},
             "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "bench"}}]}
    with open(os.path.join(oci, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(oci, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with tarfile.open(path, "w") as t:
        for name in os.listdir(oci):
            t.add(os.path.join(oci, name), name)
    shutil.rmtree(oci)


class Daemon:
    def __init__(self, tmp: str):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "c.sock")
        self.ns = "bench"
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        for n in ("containerd-shim-rpc-runc-v2", "rpc-runc"):
            src = os.path.join(REL, n)
            if not os.path.isfile(src):
                sys.exit(f"{src} missing: run `make build` first")
            os.symlink(src, os.path.join(bindir, n))
        cfg = os.path.join(tmp, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'''version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{tmp}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/opt"
''')
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
        self.log = open(os.path.join(tmp, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while subprocess.run(self.ctr_args("version"), capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("containerd did not start")
            time.sleep(0.05)
        tarball = os.path.join(tmp, "busybox.tar")
        build_image(tarball)
        self.ctr("images", "import", tarball)

    def ctr_args(self, *args: str) -> list[str]:
        return ["ctr", "-a", self.sock, "-n", self.ns, *args]

    def ctr(self, *args: str) -> str:
        r = subprocess.run(self.ctr_args(*args), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise SystemExit(f"ctr {args}: {r.stderr}")
        return r.stdout

    def run_args(self, runtime: str, *rest: str) -> list[str]:
        return self.ctr_args("run", "--fifo-dir", os.path.join(self.tmp, "fifo"), "--runtime", runtime, *rest)

    def stop(self) -> None:
        for line in self.ctr("containers", "ls", "-q").split():
            subprocess.run(self.ctr_args("task", "kill", "-s", "SIGKILL", line), capture_output=True)
            time.sleep(0.2)
            subprocess.run(self.ctr_args("task", "delete", line), capture_output=True)
            subprocess.run(self.ctr_args("containers", "delete", line), capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["umount", "-R", "-l", self.tmp], capture_output=True)
        # the runtimes' state dirs for this namespace (both shims' defaults)
        for rt in ("rpc-runc", "runc"):
            shutil.rmtree(os.path.join("/run/containerd", rt, self.ns), ignore_errors=True)


def vmrss(pid: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def shim_rss_kib(d: Daemon, runtime: str, cid: str) -> tuple[int, int]:
    """(shim RSS, RSS of the shim's helper processes) in KiB: our shim
    watches OOM through a `rpc-runc events` child, the Go shim in-process."""
    subprocess.run(d.run_args(runtime, "-d", IMAGE, cid, "sleep", "1000"), check=True, capture_output=True)
    time.sleep(1.0)  # let the shim settle (events stream, copy threads)
    rss, helpers = 0, 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()
            if "containerd-shim" in cmd and d.sock in cmd:
                rss = vmrss(pid)
            elif " events --interval " in cmd and cmd.rstrip().endswith(" " + cid):
                helpers += vmrss(pid)
        except OSError:
            continue
    subprocess.run(d.ctr_args("task", "kill", "-s", "SIGKILL", cid), capture_output=True)
    for _ in range(100):
        if subprocess.run(d.ctr_args("task", "delete", cid), capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    d.ctr("containers", "delete", cid)
    return rss, helpers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    if not shutil.which("containerd") or not shutil.which("containerd-shim-runc-v2"):
        sys.exit("needs Debian's containerd (apt-get install containerd)")
    tmp = tempfile.mkdtemp(prefix="rpc-shim-bench-")
    d = Daemon(tmp)
    try:
        wall: dict[str, list[float]] = {OURS: [], GO: []}
        rss: dict[str, list[int]] = {OURS: [], GO: []}
        helpers: dict[str, list[int]] = {OURS: [], GO: []}
        n = 0
        for r in range(a.warmup + a.rounds):
            for rt in (OURS, GO):
                n += 1
                t0 = time.perf_counter()
                p = subprocess.run(d.run_args(rt, "--rm", IMAGE, f"b{n}", "/bin/true"), capture_output=True)
                dt = time.perf_counter() - t0
                if p.returncode != 0:
                    raise SystemExit(f"{rt}: {p.stderr.decode()}")
                if r >= a.warmup:
                    wall[rt].append(dt)
        for i in range(3):
            for rt in (OURS, GO):
                r_, h_ = shim_rss_kib(d, rt, f"rss{i}{'o' if rt == OURS else 'g'}")
                rss[rt].append(r_)
                helpers[rt].append(h_)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    mo, mg = statistics.median(wall[OURS]), statistics.median(wall[GO])
    ro, rg = statistics.median(rss[OURS]), statistics.median(rss[GO])
    print(f"{a.rounds} rounds, medians")
    print("| measure | rpc shim + rpc-runc | Go shim + runc | ours/Go |")
    print("|---|---|---|---|")
    print(f"| `ctr run --rm` /bin/true, wall | {mo * 1000:.1f} ms | {mg * 1000:.1f} ms | {mo / mg:.2f} |")
    print(f"| shim RSS, one idle container | {ro / 1024:.1f} MiB | {rg / 1024:.1f} MiB | {ro / rg:.2f} |")
    ho, hg = statistics.median(helpers[OURS]), statistics.median(helpers[GO])
    print(f"| shim + its OOM watcher process | {(ro + ho) / 1024:.1f} MiB | {(rg + hg) / 1024:.1f} MiB | {(ro + ho) / (rg + hg):.2f} |")


if __name__ == "__main__":
    main()

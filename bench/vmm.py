#!/usr/bin/env python3
"""rpc-vmm benchmark (make bench-vmm): ours vs qemu-system-x86_64 -M microvm.

Measures, interleaved round by round, medians printed:
  - process start to the first guest serial byte, with a test guest
    (tests/guests/hello.c; ours only: QEMU cannot enter it directly);
  - VMM CPU time (user+sys) and peak RSS of that run: setup cost plus a
    guest that runs a few hundred instructions;
  - Linux boot to init (the marker the test initramfs prints), wall and
    CPU, and peak RSS, ours vs QEMU microvm on the same vmlinux (PVH),
    initrd and command line.

Standard library only; needs /dev/kvm, gcc, the cached guest kernel
(rpc-runv/guest/build.sh) and, for the comparison, qemu-system-x86.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUESTS = os.path.join(ROOT, "rpc-runv/vmm/tests/guests")
MARKER = b"RPC-GUEST-INIT-OK"
EMULATION_OPTS = ("noxsave nofsgsbase clearcpuid=308,295,298,145,151,158,306,534,515,141 "
                  "tsc=reliable no_timer_check")
CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet " + EMULATION_OPTS
GCC_FLAGS = ["-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-no-pie", "-mno-red-zone",
             "-mgeneral-regs-only", "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-Os",
             "-Wl,-Ttext=0x100000", "-Wl,--build-id=none", "-Wl,-e,_start", "-Wl,-z,noexecstack"]


def rss_split(pid, guest_mib):
    """(total Rss, Rss of the guest RAM mapping) in KiB, from /proc/PID/smaps."""
    total = guest = 0
    size = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
                    total += rss
                    if size == guest_mib * 1024:
                        guest += rss
    except OSError:
        return None
    return total, guest


def run_until(argv, marker, timeout, guest_mib=128, stop_after=None):
    """Runs argv until it exits (or `stop_after` s after the marker, then
    SIGKILL). Returns dict: first (s to first byte or marker), wall, cpu,
    overhead (KiB of RSS outside guest RAM at the marker), rc."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    seen = None
    overhead = None
    buf = b""
    fd = p.stdout.fileno()
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            break
        if chunk:
            buf += chunk
            if seen is None and (marker is None or marker in buf):
                seen = time.monotonic() - start
                split = rss_split(p.pid, guest_mib)
                if split:
                    overhead = split[0] - split[1]
        else:
            time.sleep(0.001)
        now = time.monotonic() - start
        if now > timeout or (stop_after is not None and seen is not None and now > seen + stop_after):
            p.kill()
            break
    _, status, ru = os.wait4(p.pid, 0)
    return {"first": seen, "wall": time.monotonic() - start, "cpu": ru.ru_utime + ru.ru_stime,
            "overhead": overhead, "rc": os.waitstatus_to_exitcode(status)}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, unit, scale=1.0):
    return "-" if v is None else f"{v * scale:.1f} {unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", default=os.path.join(ROOT, "target/release/rpc-vmm"))
    ap.add_argument("--guest-dir", default=None, help="cached guest build (default: build.sh's)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--rounds", type=int, default=20, help="test-guest rounds")
    ap.add_argument("--linux-rounds", type=int, default=3)
    args = ap.parse_args()

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("bench-vmm: /dev/kvm not usable")
    tmp = tempfile.mkdtemp(prefix="rpc-vmm-bench-")
    try:
        hello = os.path.join(tmp, "hello")
        subprocess.run(["gcc", *GCC_FLAGS, "-o", hello, os.path.join(GUESTS, "hello.c")], check=True)

        spin = os.path.join(tmp, "spin")
        subprocess.run(["gcc", *GCC_FLAGS, "-o", spin, os.path.join(GUESTS, "spin.c")], check=True)
        first, cpu, over = [], [], []
        for _ in range(args.rounds):
            r = run_until([args.vmm, "--kernel", hello], None, 30)
            if r["rc"] != 7:
                sys.exit(f"bench-vmm: test guest exited {r['rc']}")
            first.append(r["first"])
            cpu.append(r["cpu"])
            # RSS outside guest RAM while a guest runs (it spins).
            o = run_until([args.vmm, "--kernel", spin], None, 30, stop_after=0.05)
            over.append(o["overhead"])
        print(f"test guest, {args.rounds} rounds (rpc-vmm only; medians)")
        print(f"  start to first serial byte   {fmt(med(first), 'ms', 1e3)}")
        print(f"  VMM CPU, whole run           {fmt(med(cpu), 'ms', 1e3)}  (setup + a few hundred emulated guest instructions)")
        print(f"  VMM RSS outside guest RAM    {fmt(med(over), 'MiB', 1 / 1024)}")

        gdir = args.guest_dir
        if gdir is None:
            out = subprocess.run(["bash", os.path.join(ROOT, "rpc-runv/guest/build.sh"), "--check"])
            if out.returncode != 0:
                print("Linux boot: no cached guest kernel (run rpc-runv/guest/build.sh); skipped")
                return
            gdir = os.path.join(os.environ.get("RPC_GUEST_CACHE", "/var/cache/rpc-runtimes"), "guest/current")
        kernel = os.path.join(gdir, "vmlinux")
        initrd = os.path.join(gdir, "initramfs.cpio")
        ours = [args.vmm, "--kernel", kernel, "--initrd", initrd, "--cmdline", CMDLINE]
        qemu = None
        if args.qemu:
            # This host's KVM refuses IA32_ARCH_CAPABILITIES, which -cpu host sets.
            qemu = [args.qemu, "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on", "-enable-kvm",
                    "-cpu", "host,-arch-capabilities", "-m", "128", "-smp", "1", "-nodefaults", "-no-user-config",
                    "-nographic", "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
                    "-append", CMDLINE]
        else:
            print("qemu-system-x86_64 not found: Linux boot of rpc-vmm only")
        res = {"rpc-vmm": [], "qemu microvm": []}
        for _ in range(args.linux_rounds):
            # QEMU microvm has no i8042, so the guest's reset hangs it:
            # both are stopped 3 s after the marker if still running.
            res["rpc-vmm"].append(run_until(ours, MARKER, 600, stop_after=3))
            if qemu:
                res["qemu microvm"].append(run_until(qemu, MARKER, 600, stop_after=3))
        print(f"Linux boot to init, {args.linux_rounds} rounds interleaved (medians)")
        print(f"  {'':14} {'to init':>10} {'CPU':>10} {'RSS outside guest RAM':>22} {'exit':>6}")
        for name, rs in res.items():
            if not rs:
                continue
            if any(r["first"] is None for r in rs):
                print(f"  {name:14} did not reach init in some rounds: {[r['rc'] for r in rs]}")
            print(f"  {name:14} {fmt(med([r['first'] for r in rs]), 's'):>10} {fmt(med([r['cpu'] for r in rs]), 's'):>10} "
                  f"{fmt(med([r['overhead'] for r in rs]), 'MiB', 1 / 1024):>22} {str(sorted(set(r['rc'] for r in rs))):>6}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

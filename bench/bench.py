#!/usr/bin/env python3
"""Benchmark OCI runtimes (rpc-runc vs runc vs crun) on the same busybox bundle.

Python 3.11, standard library only.  Must run as root.  See bench/README.md.

Every timed invocation is started with os.posix_spawn and reaped with
os.wait4, which gives:
  * wall time  - time.perf_counter() from just before the spawn to the
                 return of wait4 (exit noticed through a pidfd, no polling);
  * CPU time   - ru_utime + ru_stime of the runtime process plus all of its
                 descendants that were reaped (waited for) inside its tree.
  * peak RSS   - ru_maxrss (KiB) of the runtime process as seen by wait4 in
                 its parent.  It cannot be taken from the timed invocation:
                 Linux folds the peak RSS of the memory image a process had
                 *before* execve into its ru_maxrss, and a child spawned by
                 Python starts with Python's image (~15 MiB), which would
                 hide the runtime's own peak.  So every timed invocation is
                 followed (same round, untimed) by an identical one run
                 under a small `time` program (GNU time, or busybox time with
                 its unit bug calibrated away) that forks+execs the runtime
                 from a tiny image and reports wait4's ru_maxrss: the largest
                 resident set of the runtime process or any reaped descendant.
Runtimes are interleaved A B C A B C ... for N rounds so that machine drift
affects all of them alike; warm-up rounds are run first and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ENV_GUARD = "RPC_BENCH_IN_PRIVATE_MNTNS"
UNIFIED = "/sys/fs/cgroup/unified"
UNIFIED_CONTROLLERS = UNIFIED + "/cgroup.controllers"
OURS = "rpc-runc"
DEFAULT_OURS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release", "rpc-runc")
DEFAULT_RUNTIMES = [(OURS, None), ("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")]
ALL_SCENARIOS = ["run", "split", "seq100", "exec"]
SEQ_COUNT = 100
SPAWN_TIMEOUT = 60.0
SANITY_MARKER = ".bench-sanity"


def log(msg: str = "") -> None:
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):
        # stdout went away (e.g. `| head`): keep going silently so that the
        # cleanup still runs to the end.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except OSError:
            pass


def note(msg: str) -> None:
    log(f"note: {msg}")


# --------------------------------------------------------------------------
# Private mount namespace (hybrid cgroup host work-around for crun)
# --------------------------------------------------------------------------

def hybrid_unified_has_controllers() -> bool:
    """True when /sys/fs/cgroup/unified is a cgroup2 tree holding controllers
    while v1 controllers are mounted too (crun 1.8.1 refuses such a host)."""
    try:
        with open(UNIFIED_CONTROLLERS) as f:
            return bool(f.read().strip())
    except OSError:
        return False


def maybe_reexec_in_private_ns() -> None:
    if os.environ.get(ENV_GUARD):
        return
    if not hybrid_unified_has_controllers():
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        note("hybrid cgroup host but no `unshare` found: running in the host "
             "mount namespace; crun will probably fail and be skipped")
        return
    os.environ[ENV_GUARD] = "1"
    script = os.path.abspath(__file__)
    argv = [unshare, "-m", "--propagation", "private",
            sys.executable, script, *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def hide_unified_controllers(workdir: str) -> bool:
    """Inside the private mount namespace, bind-mount an empty file over
    /sys/fs/cgroup/unified/cgroup.controllers.  Returns True if done."""
    if not os.environ.get(ENV_GUARD):
        return False
    try:
        if os.readlink("/proc/self/ns/mnt") == os.readlink("/proc/1/ns/mnt"):
            note("expected a private mount namespace but we are in pid 1's; "
                 "not touching the cgroup tree")
            return False
    except OSError:
        pass
    if not hybrid_unified_has_controllers():
        return False
    empty = os.path.join(workdir, "empty-cgroup.controllers")
    open(empty, "w").close()
    r = subprocess.run(["mount", "--bind", empty, UNIFIED_CONTROLLERS],
                       capture_output=True, text=True)
    if r.returncode != 0:
        note(f"bind mount over {UNIFIED_CONTROLLERS} failed: {r.stderr.strip()}")
        return False
    return True


# --------------------------------------------------------------------------
# Timed process execution
# --------------------------------------------------------------------------

class Result:
    __slots__ = ("rc", "wall_ms", "user_ms", "sys_ms", "maxrss_kib", "err")

    def __init__(self, rc, wall_ms, user_ms, sys_ms, maxrss_kib, err=""):
        self.rc = rc
        self.wall_ms = wall_ms
        self.user_ms = user_ms
        self.sys_ms = sys_ms
        self.maxrss_kib = maxrss_kib
        self.err = err

    @property
    def cpu_ms(self) -> float:
        return self.user_ms + self.sys_ms

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Spawner:
    """posix_spawn + wait4, stdin from /dev/null, stdout+stderr to a log file
    (a file, not a pipe, so a detached container that inherits it can never
    block us)."""

    def __init__(self, workdir: str):
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.logpath = os.path.join(workdir, "invocation.log")
        self.logfd = os.open(self.logpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.env = dict(os.environ)
        self.env.pop(ENV_GUARD, None)
        self.have_pidfd = hasattr(os, "pidfd_open")
        self.inflight: int | None = None  # pid being waited for

    def reap_inflight(self, timeout: float = 15.0) -> None:
        """After an interrupt: let the runtime call in progress finish (so its
        container, if any, is in a consistent state for delete --force), and
        kill it if it takes too long."""
        pid, self.inflight = self.inflight, None
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                done, _, _ = os.wait4(pid, os.WNOHANG)
                if done:
                    return
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
        except ChildProcessError:
            pass

    def _read_log(self) -> str:
        try:
            os.lseek(self.logfd, 0, os.SEEK_SET)
            data = os.read(self.logfd, 65536)
        except OSError:
            return ""
        return data.decode(errors="replace").strip()

    def run(self, argv: list[str], timeout: float = SPAWN_TIMEOUT) -> Result:
        # Truncate the log; O_APPEND is not used, so reset the offset too.
        # A detached container may still hold the fd; writes from it land
        # at its own offset, which is harmless for error reporting.
        os.ftruncate(self.logfd, 0)
        os.lseek(self.logfd, 0, os.SEEK_SET)
        fa = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.logfd, 1),
            (os.POSIX_SPAWN_DUP2, self.logfd, 2),
        ]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, self.env, file_actions=fa)
        self.inflight = pid
        status, ru = self._wait(pid, timeout)
        t1 = time.perf_counter()
        self.inflight = None
        if status is None:
            return Result(-1, (t1 - t0) * 1e3, 0.0, 0.0, 0,
                          f"timed out after {timeout:.0f}s (killed)")
        rc = os.waitstatus_to_exitcode(status)
        err = "" if rc == 0 else self._read_log()
        return Result(rc, (t1 - t0) * 1e3, ru.ru_utime * 1e3, ru.ru_stime * 1e3,
                      ru.ru_maxrss, err)

    def _wait(self, pid: int, timeout: float):
        if self.have_pidfd:
            try:
                pfd = os.pidfd_open(pid)
            except OSError:
                pfd = None
            if pfd is not None:
                try:
                    p = select.poll()
                    p.register(pfd, select.POLLIN)
                    if not p.poll(timeout * 1000):
                        os.kill(pid, signal.SIGKILL)
                        os.wait4(pid, 0)
                        return None, None
                finally:
                    os.close(pfd)
        _, status, ru = os.wait4(pid, 0)
        return status, ru


class RssProbe:
    """Runs a command under a small `time` program and reads ru_maxrss (KiB)
    of the command from it (see module docstring for why)."""

    def __init__(self, workdir: str, spawner: Spawner):
        self.sp = spawner
        self.out = os.path.join(workdir, "rss.out")
        self.prefix: list[str] | None = None
        self.factor = 1.0
        self.desc = "none"
        self.floor_kib = None
        gnu = "/usr/bin/time"
        if os.access(gnu, os.X_OK) and "GNU" in (quiet([gnu, "--version"]).stdout
                                                  + quiet([gnu, "--version"]).stderr):
            self.prefix = [gnu, "-f", "%M", "-o", self.out]
            self.desc = "GNU time (%M)"
        else:
            bb = find_busybox()
            self.prefix = [bb, "time", "-f", "%M", "-o", self.out]
            self.desc = "busybox time (%M)"
            if not self._calibrate():
                self.prefix = None
                self.desc = "unavailable (busybox time calibration failed)"
        if self.prefix is not None:
            bb = find_busybox()
            res = self.run([bb, "true"])
            self.floor_kib = res.maxrss_kib if res.ok else None

    def _calibrate(self) -> bool:
        """busybox <= 1.36 multiplies ru_maxrss (already KiB) by pagesize/1024.
        Measure a program whose peak is far above Python's own image both
        directly and through the probe, and derive the factor."""
        code = "b = b'x' * (128 << 20)"
        direct = self.sp.run([sys.executable, "-c", code])
        probed = self.run([sys.executable, "-c", code])
        if not (direct.ok and probed.ok and direct.maxrss_kib and probed.maxrss_kib):
            return False
        ratio = probed.maxrss_kib / direct.maxrss_kib
        page = os.sysconf("SC_PAGE_SIZE") / 1024
        if 0.8 < ratio < 1.25:
            self.factor = 1.0
        elif 0.8 * page < ratio < 1.25 * page:
            self.factor = 1.0 / page
            self.desc += f", reported value divided by {page:.0f} (busybox unit bug)"
        else:
            return False
        return True

    def run(self, argv: list[str]) -> Result:
        if self.prefix is None:
            return Result(-1, 0, 0, 0, None, "no RSS probe")
        try:
            os.unlink(self.out)
        except FileNotFoundError:
            pass
        res = self.sp.run(self.prefix + argv)
        rss = None
        try:
            with open(self.out) as f:
                lines = [l.strip() for l in f if l.strip()]
            rss = int(round(int(lines[-1]) * self.factor))
        except (OSError, ValueError, IndexError):
            pass
        res.maxrss_kib = rss
        return res


def sweep_leftovers(id_prefix: str, needle: str) -> list[str]:
    """Safety net for buggy runtimes: after `delete --force`, SIGKILL any
    process still in a cgroup named after one of our containers or whose
    command line contains `needle` (our work dir), then rmdir such cgroups.  Only
    processes started by this benchmark can match (ids carry our pid)."""
    found = []
    me = os.getpid()
    for _ in range(2):
        victims = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                        continue  # already dead, waiting to be reaped
                with open(f"/proc/{pid}/cgroup") as f:
                    cg = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"/{id_prefix}" in cg or needle in cmd:
                victims.append((pid, cmd.strip()))
        for pid, cmd in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                found.append(f"process {pid} ({cmd[:100]})")
            except OSError:
                pass
        if not victims:
            break
        time.sleep(0.2)
    base = "/sys/fs/cgroup"
    dirs = []
    try:
        hier = [os.path.join(base, h) for h in os.listdir(base)]
    except OSError:
        hier = []
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        hier.append(base)  # pure cgroup v2
    for h in hier:
        try:
            for e in os.scandir(h):
                if e.is_dir(follow_symlinks=False) and e.name.startswith(id_prefix):
                    dirs.append(e.path)
        except OSError:
            continue
    for d in dirs:
        # children first (e.g. sub-cgroups a runtime created)
        for root, subdirs, _ in sorted(os.walk(d, topdown=False), key=lambda x: -len(x[0])):
            try:
                os.rmdir(root)
            except OSError:
                pass
        if not os.path.exists(d):
            found.append(f"cgroup {d}")
    return found


def quiet(argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Untimed helper call (state, delete --force, list, version)."""
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, -1, "", f"timeout: {e}")


# --------------------------------------------------------------------------
# Bundle
# --------------------------------------------------------------------------

def find_busybox() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p):
            return p
    sys.exit("error: busybox not found (install busybox-static)")


def make_spec(bundle: str, spec_tools: list[str]) -> None:
    for tool in spec_tools:
        r = quiet([tool, "spec", "--bundle", bundle])
        if r.returncode != 0:
            r = subprocess.run([tool, "spec"], cwd=bundle, capture_output=True, text=True)
        if r.returncode == 0 and os.path.exists(os.path.join(bundle, "config.json")):
            return
    sys.exit("error: could not generate config.json with `spec` from any of: "
             + ", ".join(spec_tools))


def build_bundles(workdir: str, spec_tools: list[str]) -> tuple[str, str]:
    """bundle/ runs /bin/true; bundle-sleep/ runs sleep 1000 and
    bundle-sanity/ a marker-writing shell, both on the same rootfs."""
    bundle = os.path.join(workdir, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(find_busybox(), os.path.join(rootfs, "bin", "busybox"))
    for name in ("true", "sh", "sleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", name))
    make_spec(bundle, spec_tools)
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = False
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)

    sleep_bundle = os.path.join(workdir, "bundle-sleep")
    os.makedirs(sleep_bundle)
    cfg["process"]["args"] = ["/bin/sleep", "1000"]
    cfg["root"]["path"] = rootfs
    with open(os.path.join(sleep_bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    sanity_bundle = os.path.join(workdir, "bundle-sanity")
    os.makedirs(sanity_bundle)
    cfg["process"]["args"] = ["/bin/sh", "-c", f"echo ok > /tmp/{SANITY_MARKER}"]
    with open(os.path.join(sanity_bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return bundle, sleep_bundle, sanity_bundle


# --------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------

class Runtime:
    def __init__(self, name: str, path: str, root: str, spawner: Spawner, tag: str):
        self.name = name
        self.path = path
        self.root = root
        self.sp = spawner
        self.tag = tag
        self.counter = 0
        self.live: set[str] = set()  # ids that may exist in our root
        self.probe: RssProbe | None = None  # set => invocations measure RSS only

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return f"{self.tag}{self.name}-{kind}-{self.counter}"

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def timed(self, *args: str, timeout: float = SPAWN_TIMEOUT) -> Result:
        if self.probe is not None:
            return self.probe.run(self.cmd(*args))
        return self.sp.run(self.cmd(*args), timeout=timeout)

    def state(self, cid: str) -> str | None:
        r = quiet(self.cmd("state", cid), timeout=10)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout).get("status")
        except ValueError:
            return None

    def wait_status(self, cid: str, want: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(cid) == want:
                return True
            time.sleep(0.002)
        return False

    def force_delete(self, cid: str) -> None:
        quiet(self.cmd("delete", "--force", cid), timeout=20)
        self.live.discard(cid)

    def list_ids(self) -> list[str]:
        r = quiet(self.cmd("list", "-q"), timeout=10)
        if r.returncode != 0:
            return []
        return [l.strip() for l in r.stdout.splitlines() if l.strip()]

    def cleanup(self) -> list[str]:
        ids = set(self.live) | set(self.list_ids())
        for cid in sorted(ids):
            self.force_delete(cid)
        return sorted(ids)

    def version(self) -> str:
        r = quiet([self.path, "--version"], timeout=10)
        first = (r.stdout or r.stderr).strip().splitlines()
        return first[0] if first else "?"


# --------------------------------------------------------------------------
# Scenarios.  Each "step" runs one sample for one runtime and returns a dict
# {metric_name: Result-like sample} or raises StepFailed.
# --------------------------------------------------------------------------

class StepFailed(Exception):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP: handled like Ctrl-C (clean up, then exit)."""


def _on_term(signum, frame):
    raise Terminated(signal.Signals(signum).name)


def sample(res: Result) -> dict:
    return {"wall_ms": res.wall_ms, "cpu_ms": res.cpu_ms, "user_ms": res.user_ms,
            "sys_ms": res.sys_ms, "maxrss_kib": res.maxrss_kib}


def fail(rt: Runtime, what: str, res: Result) -> StepFailed:
    msg = res.err.strip().replace("\n", " | ")[:400] or "(no output)"
    return StepFailed(f"{rt.name} {what}: exit {res.rc}: {msg}")


def step_run(rt: Runtime, ctx: dict) -> dict:
    cid = rt.new_id("run")
    rt.live.add(cid)
    res = rt.timed("run", "--bundle", ctx["bundle"], cid)
    if not res.ok:
        rt.force_delete(cid)
        raise fail(rt, "run", res)
    rt.live.discard(cid)  # run without --keep deletes the container itself
    return {"run": sample(res)}


def step_split(rt: Runtime, ctx: dict) -> dict:
    cid = rt.new_id("split")
    rt.live.add(cid)
    out = {}
    try:
        res = rt.timed("create", "--bundle", ctx["bundle"], cid)
        if not res.ok:
            raise fail(rt, "create", res)
        out["split:create"] = sample(res)
        res = rt.timed("start", cid)
        if not res.ok:
            raise fail(rt, "start", res)
        out["split:start"] = sample(res)
        # untimed: wait until /bin/true has exited
        if not rt.wait_status(cid, "stopped"):
            raise StepFailed(f"{rt.name}: container {cid} never reached 'stopped' "
                             f"(state: {rt.state(cid)})")
        res = rt.timed("delete", cid)
        if not res.ok:
            raise fail(rt, "delete", res)
        out["split:delete"] = sample(res)
        rt.live.discard(cid)
        return out
    finally:
        if cid in rt.live:
            rt.force_delete(cid)


def step_seq100(rt: Runtime, ctx: dict) -> dict:
    if rt.probe is not None:
        # RSS pass: the peak of one `run` (all 100 runs are identical).
        return {"seq100": step_run(rt, ctx)["run"]}
    wall = user = sys_ = 0.0
    rss = 0
    for _ in range(SEQ_COUNT):
        s = step_run(rt, ctx)["run"]
        wall += s["wall_ms"]
        user += s["user_ms"]
        sys_ += s["sys_ms"]
    return {"seq100": {"wall_ms": wall, "cpu_ms": user + sys_, "user_ms": user,
                       "sys_ms": sys_, "maxrss_kib": None}}


def step_exec(rt: Runtime, ctx: dict) -> dict:
    cid = ctx["exec_ids"][rt.name]
    res = rt.timed("exec", cid, "/bin/true")
    if not res.ok:
        raise fail(rt, "exec", res)
    return {"exec": sample(res)}


def sanity_check(rt: Runtime, ctx: dict) -> None:
    """Make sure `run` really runs the container process (a stub that just
    exits 0 would otherwise win every race)."""
    marker_name = SANITY_MARKER
    marker = os.path.join(ctx["rootfs"], "tmp", marker_name)
    try:
        os.unlink(marker)
    except FileNotFoundError:
        pass
    cid = rt.new_id("sanity")
    rt.live.add(cid)
    try:
        res = rt.timed("run", "--bundle", ctx["sanity_bundle"], cid, timeout=20)
        if not res.ok:
            raise fail(rt, f"run (sanity: sh -c 'echo ok > /tmp/{SANITY_MARKER}')", res)
        try:
            with open(marker) as f:
                content = f.read().strip()
        except OSError:
            content = None
        if content != "ok":
            raise StepFailed(f"{rt.name} run exited 0 but the container process did "
                             f"not run (marker /tmp/{marker_name} not written)")
        rt.live.discard(cid)
    finally:
        if cid in rt.live:
            rt.force_delete(cid)
            left = sweep_leftovers(cid, cid)
            if left:
                log(f"warning: {rt.name} left behind after delete --force (removed): "
                    + "; ".join(left))
        try:
            os.unlink(marker)
        except FileNotFoundError:
            pass


def setup_exec(rt: Runtime, ctx: dict) -> None:
    cid = rt.new_id("sleeper")
    rt.live.add(cid)
    res = rt.timed("create", "--bundle", ctx["sleep_bundle"], cid)
    if not res.ok:
        raise fail(rt, "create (sleep 1000)", res)
    res = rt.timed("start", cid)
    if not res.ok:
        raise fail(rt, "start (sleep 1000)", res)
    if not rt.wait_status(cid, "running", timeout=5):
        raise StepFailed(f"{rt.name}: sleep container not running (state: {rt.state(cid)})")
    ctx["exec_ids"][rt.name] = cid


def teardown_exec(rt: Runtime, ctx: dict) -> None:
    cid = ctx["exec_ids"].pop(rt.name, None)
    if cid:
        rt.force_delete(cid)


SCENARIOS = {
    # name: (step, metrics, setup, teardown, warm-up rounds override)
    "run": (step_run, ["run"], None, None, None),
    "split": (step_split, ["split:create", "split:start", "split:delete"], None, None, None),
    "seq100": (step_seq100, ["seq100"], None, None, 1),
    "exec": (step_exec, ["exec"], setup_exec, teardown_exec, None),
}


def run_scenario(name: str, runtimes: list[Runtime], ctx: dict, rounds: int,
                 warmup: int, data: dict, skipped: dict, probe: RssProbe) -> None:
    step, metrics, setup, teardown, warm_override = SCENARIOS[name]
    if warm_override is not None:
        warmup = min(warmup, warm_override)
    active = []
    for rt in runtimes:
        if setup is not None:
            try:
                setup(rt, ctx)
            except StepFailed as e:
                skipped.setdefault(name, {})[rt.name] = str(e)
                log(f"  skip {rt.name} for {name}: {e}")
                if teardown:
                    teardown(rt, ctx)
                continue
        active.append(rt)
    try:
        # warm-up, also used to detect runtimes that cannot do this scenario
        for w in range(warmup):
            for rt in list(active):
                try:
                    step(rt, ctx)
                except StepFailed as e:
                    skipped.setdefault(name, {})[rt.name] = str(e)
                    log(f"  skip {rt.name} for {name}: fails in warm-up: {e}")
                    active.remove(rt)
        for m in metrics:
            for rt in active:
                data.setdefault(m, {}).setdefault(rt.name, [None] * rounds)
        t_start = time.monotonic()
        for r in range(rounds):
            # timed pass: A B C ...
            for rt in active:
                try:
                    out = step(rt, ctx)
                except StepFailed as e:
                    log(f"  round {r}: {e}")
                    continue
                for m, s in out.items():
                    # wait4's ru_maxrss here includes Python's pre-exec image;
                    # the real value comes from the RSS pass below.
                    s["maxrss_kib"] = None
                    data[m][rt.name][r] = s
            # RSS pass (untimed, same round): the same step under the probe
            if probe.prefix is None:
                continue
            for rt in active:
                if all(data[m][rt.name][r] is None for m in metrics):
                    continue
                rt.probe = probe
                try:
                    out = step(rt, ctx)
                except StepFailed as e:
                    log(f"  round {r} (RSS pass): {e}")
                    continue
                finally:
                    rt.probe = None
                for m, s in out.items():
                    if data[m][rt.name][r] is not None:
                        data[m][rt.name][r]["maxrss_kib"] = s["maxrss_kib"]
            if name == "seq100" or (r + 1) % 10 == 0 or r + 1 == rounds:
                log(f"  {name}: round {r + 1}/{rounds} "
                    f"({time.monotonic() - t_start:.1f}s)")
    finally:
        if teardown is not None:
            for rt in active:
                teardown(rt, ctx)


# --------------------------------------------------------------------------
# Statistics and report
# --------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def quartiles(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return (None, None)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def summarize(data: dict, runtimes: list[str]) -> dict:
    summary = {}
    for metric, per_rt in data.items():
        ms = {}
        for name in runtimes:
            samples = per_rt.get(name)
            if samples is None:
                continue
            ok = [s for s in samples if s is not None]
            walls = [s["wall_ms"] for s in ok]
            q1, q3 = quartiles(walls)
            ms[name] = {
                "n": len(ok),
                "failed": len(samples) - len(ok),
                "wall_ms_median": med(walls),
                "wall_ms_q1": q1,
                "wall_ms_q3": q3,
                "cpu_ms_median": med([s["cpu_ms"] for s in ok]),
                "user_ms_median": med([s["user_ms"] for s in ok]),
                "sys_ms_median": med([s["sys_ms"] for s in ok]),
                "maxrss_mib_median": med([s["maxrss_kib"] / 1024 for s in ok
                                          if s["maxrss_kib"] is not None]),
            }
        ratios = {}
        ours = per_rt.get(OURS)
        if ours is not None:
            for other in runtimes:
                if other == OURS or other not in per_rt:
                    continue
                theirs = per_rt[other]
                r = {}
                for key, field in (("wall", "wall_ms"), ("cpu", "cpu_ms"),
                                   ("rss", "maxrss_kib")):
                    a = med([s[field] for s in ours if s is not None])
                    b = med([s[field] for s in theirs if s is not None])
                    r[f"{key}_ratio_of_medians"] = (a / b) if a is not None and b else None
                    paired = [x[field] / y[field] for x, y in zip(ours, theirs)
                              if x is not None and y is not None
                              and x[field] is not None and y[field]]
                    r[f"{key}_median_paired_ratio"] = med(paired)
                    r[f"{key}_pairs"] = len(paired)
                ratios[f"{OURS}/{other}"] = r
        summary[metric] = {"runtimes": ms, "ratios": ratios}
    return summary


def fmt(x, spec=".2f", width=8):
    return f"{'-':>{width}}" if x is None else f"{x:{width}{spec}}"


def print_table(summary: dict, order: list[str], runtimes: list[str]) -> None:
    log()
    log("Medians per scenario and runtime (wall/CPU in ms; seq100 = totals for "
        f"{SEQ_COUNT} runs; RSS = peak of runtime + reaped children)")
    hdr = (f"{'scenario':<14} {'runtime':<10} {'n':>3} {'wall ms':>9} "
           f"{'wall IQR':>17} {'cpu ms':>9} {'user':>8} {'sys':>8} {'RSS MiB':>8}")
    log(hdr)
    log("-" * len(hdr))
    for metric in order:
        if metric not in summary:
            continue
        for name in runtimes:
            s = summary[metric]["runtimes"].get(name)
            if s is None:
                continue
            iqr = (f"{s['wall_ms_q1']:7.2f}..{s['wall_ms_q3']:<8.2f}"
                   if s["wall_ms_q1"] is not None else f"{'-':>17}")
            fails = f"  ({s['failed']} failed)" if s["failed"] else ""
            log(f"{metric:<14} {name:<10} {s['n']:>3} {fmt(s['wall_ms_median'], width=9)} "
                f"{iqr:>17} {fmt(s['cpu_ms_median'], width=9)} "
                f"{fmt(s['user_ms_median'])} {fmt(s['sys_ms_median'])} "
                f"{fmt(s['maxrss_mib_median'])}{fails}")
    log()
    any_ratio = any(summary[m]["ratios"] for m in summary)
    if not any_ratio:
        log(f"Ratios {OURS}/<other>: n/a ({OURS} was not benchmarked)")
        return
    log(f"Ratios {OURS}/<other> (<1 means {OURS} is lower): "
        "median/median and [median of paired per-round ratios]")
    hdr = f"{'scenario':<14} {'vs':<16} {'wall':>16} {'cpu':>16} {'RSS':>16}"
    log(hdr)
    log("-" * len(hdr))
    for metric in order:
        if metric not in summary:
            continue
        for key, r in summary[metric]["ratios"].items():
            cells = []
            for m in ("wall", "cpu", "rss"):
                a, b = r[f"{m}_ratio_of_medians"], r[f"{m}_median_paired_ratio"]
                cells.append(f"{fmt(a, width=6)} [{fmt(b, width=6)}]")
            log(f"{metric:<14} {key:<16} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Compare OCI runtimes (rpc-runc, runc, crun) on a busybox bundle.")
    p.add_argument("--rounds", type=int, default=30,
                   help="counted rounds per scenario (default 30)")
    p.add_argument("--warmup", type=int, default=3,
                   help="uncounted warm-up rounds per scenario (default 3; seq100 uses at most 1)")
    p.add_argument("--ours", default=DEFAULT_OURS,
                   help=f"path of the rpc-runc binary (default {DEFAULT_OURS})")
    p.add_argument("--runtime", action="append", default=[], metavar="NAME=PATH",
                   help="add a runtime or override one of rpc-runc/runc/crun (repeatable)")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help="comma-separated subset of: " + ",".join(ALL_SCENARIOS))
    p.add_argument("--json", metavar="FILE", help="write raw samples and summary as JSON")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    scen = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = [s for s in scen if s not in ALL_SCENARIOS]
    if bad or not scen:
        p.error(f"unknown scenario(s) {bad}; choose from {ALL_SCENARIOS}")
    a.scenarios = scen
    rts = []
    for name, path in DEFAULT_RUNTIMES:
        rts.append([name, a.ours if name == OURS else path])
    for spec in a.runtime:
        if "=" not in spec:
            p.error(f"--runtime expects NAME=PATH, got {spec!r}")
        name, path = spec.split("=", 1)
        name = name.strip()
        if not name or "/" in name:
            p.error(f"bad runtime name {name!r}")
        for e in rts:
            if e[0] == name:
                e[1] = path
                break
        else:
            rts.append([name, path])
    a.runtime_list = [(n, p_) for n, p_ in rts]
    return a


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("error: bench.py must run as root (the runtimes create namespaces, "
                 "cgroups and mounts); try: sudo python3 bench/bench.py")
    maybe_reexec_in_private_ns()
    # Ctrl-C => KeyboardInterrupt even if we were started with SIGINT ignored
    # (e.g. as a background job of a non-interactive shell); TERM/HUP alike.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)

    workdir = tempfile.mkdtemp(prefix="rpc-bench-")
    runtimes: list[Runtime] = []
    spawner = None
    exit_code = 0
    try:
        ns_trick = hide_unified_controllers(workdir)
        if ns_trick:
            note("hybrid cgroup host (cgroup v1 controllers + a cgroup2 tree at "
                 f"{UNIFIED} holding a controller), which crun 1.8.1 refuses. "
                 "The benchmark re-executed itself in a private mount namespace "
                 f"(unshare -m --propagation private) and bind-mounted an empty file "
                 f"over {UNIFIED_CONTROLLERS}; ALL runtimes run in that namespace "
                 "and see the same host.")
        spawner = Spawner(workdir)
        tag = f"b{os.getpid()}-"  # prefix of every container id we create
        available = []
        skipped_runtimes: dict = {}
        for name, path in args.runtime_list:
            if not (path and os.path.isfile(path) and os.access(path, os.X_OK)):
                log(f"skip {name}: binary not found or not executable at {path}")
                skipped_runtimes[name] = f"binary not found or not executable at {path}"
                continue
            root = os.path.join(workdir, f"root-{name}")
            os.makedirs(root)
            available.append(Runtime(name, os.path.abspath(path), root, spawner, tag))
        runtimes = list(available)  # from here on, the finally block cleans them up
        if not available:
            log("error: no runtime available")
            return 1
        spec_tools = [p for p in ("/usr/sbin/runc",) if os.path.isfile(p)] + \
                     [rt.path for rt in available]
        bundle, sleep_bundle, sanity_bundle = build_bundles(workdir, spec_tools)
        ctx = {"bundle": bundle, "sleep_bundle": sleep_bundle,
               "sanity_bundle": sanity_bundle,
               "rootfs": os.path.join(bundle, "rootfs"), "exec_ids": {}}
        for rt in list(available):
            log(f"runtime {rt.name:<10} {rt.path}  ({rt.version()})  --root {rt.root}")
            try:
                sanity_check(rt, ctx)
            except StepFailed as e:
                log(f"skip {rt.name}: sanity check failed: {e}")
                skipped_runtimes[rt.name] = f"sanity check failed: {e}"
                available.remove(rt)
        if not available:
            log("error: no runtime passed the sanity check")
            return 1
        probe = RssProbe(workdir, spawner)
        floor = ("" if probe.floor_kib is None
                 else f"; floor (busybox true under it) {probe.floor_kib / 1024:.2f} MiB")
        log(f"RSS probe: {probe.desc}{floor}")
        log(f"bundle {bundle}; rounds {args.rounds}, warm-up {args.warmup}, "
            f"scenarios {','.join(args.scenarios)}")
        data: dict = {}
        skipped: dict = {}
        for scen in args.scenarios:
            log(f"scenario {scen}:")
            run_scenario(scen, available, ctx, args.rounds, args.warmup, data, skipped,
                         probe)

        names = [rt.name for rt in available]
        order = [m for s in args.scenarios for m in SCENARIOS[s][1]]
        summary = summarize(data, names)
        print_table(summary, order, names)
        for name, why in skipped_runtimes.items():
            log(f"skipped: {name} (all scenarios): {why}")
        if skipped:
            log()
            for scen, per in skipped.items():
                for name, why in per.items():
                    log(f"skipped: {scen} / {name}: {why}")
        if args.json:
            out = {
                "meta": {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "kernel": os.uname().release,
                    "cpus": os.cpu_count(),
                    "rounds": args.rounds,
                    "warmup": args.warmup,
                    "seq_count": SEQ_COUNT,
                    "private_mount_ns_cgroup_workaround": ns_trick,
                    "runtimes": {rt.name: {"path": rt.path, "version": rt.version()}
                                 for rt in available},
                    "rss_probe": probe.desc,
                    "rss_probe_floor_kib": probe.floor_kib,
                    "units": {"wall_ms": "ms", "cpu_ms": "ms (user+sys)",
                              "maxrss_kib": "KiB"},
                },
                "samples": data,
                "summary": summary,
                "skipped": skipped,
                "skipped_runtimes": skipped_runtimes,
            }
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
            log(f"\nraw numbers written to {args.json}")
    except KeyboardInterrupt as e:
        exit_code = 143 if isinstance(e, Terminated) else 130
        log(f"\ninterrupted ({str(e) or 'SIGINT'}); cleaning up")
    finally:
        # Do not let a second Ctrl-C / TERM abort the cleanup.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            if spawner is not None:
                spawner.reap_inflight()
        except Exception as e:  # keep cleaning up whatever happens
            log(f"cleanup: {e!r}")
        removed = []
        for rt in runtimes:
            try:
                removed += [f"{rt.name}:{cid}" for cid in rt.cleanup()]
            except Exception as e:
                log(f"cleanup {rt.name}: {e!r}")
        if exit_code and removed:
            log("deleted containers: " + ", ".join(removed))
        try:
            leftovers = sweep_leftovers(f"b{os.getpid()}-", workdir)
        except Exception as e:
            leftovers = [f"sweep failed: {e!r}"]
        if leftovers:
            log("warning: left behind by a runtime after delete --force, removed "
                "by the benchmark: " + "; ".join(leftovers))
        shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

//! cgroups and the resource commands on this machine's real hierarchies:
//! limits that bite (OOM kill, pids limit, cpu quota), seen from the host
//! files and from inside the container (its cgroup namespace), pause and
//! resume, update, events, ps, kill --all, device rules, and cleanup. What
//! the host's cgroup2 tree offers (eBPF device filter, cgroup.freeze,
//! cgroup.kill) is tested on a private directory of it.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn events_stats(t: &Harness) -> Value {
    let o = t.rt(&["events", "--stats", &t.id]);
    o.assert_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one event expected: {}", o.describe());
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", o.describe()))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Wait until a file in the shared dir has `want` (trimmed).
fn wait_shared(t: &Harness, name: &str, want: impl Fn(&str) -> bool) -> bool {
    wait_until(T, || want(t.shared_file(name).trim()))
}

#[test]
fn memory_limit_oom_kills_and_reports_an_oom_event() {
    let mut t = harness!("cg-oom");
    t.share().cgroupns(false);
    t.resource("memory", json!({"limit": 32 << 20, "swap": 32 << 20}));
    // dd's 64M buffer cannot fit in 32M: the kernel OOM-kills dd, the
    // shell (init) lives on and reports, and reads its own oom_control.
    t.sh("while [ ! -e /shared/go ]; do sleep 0.05; done; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $? > /shared/rc; \
         cat /sys/fs/cgroup/memory/memory.oom_control > /shared/oom_control; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /shared/limit; sleep 300");
    t.run_detached().assert_ok();
    let pid = t.pid();
    assert_eq!(cg_read(pid, "memory", "memory.limit_in_bytes"), (32u64 << 20).to_string());
    // the event stream: registered once it printed its first stats event
    let (mut child, op, ep) = t.spawn(&["events", "--interval", "200ms", &t.id]);
    assert!(
        wait_until(T, || fs::read_to_string(&op).unwrap_or_default().contains("\"stats\"")),
        "no stats event: {}",
        fs::read_to_string(&ep).unwrap_or_default()
    );
    fs::write(t.shared.join("go"), "").unwrap();
    assert!(wait_shared(&t, "rc", |s| !s.is_empty()), "dd did not finish");
    assert_eq!(t.shared_file("rc").trim(), "137", "dd was not SIGKILLed");
    assert!(wait_shared(&t, "limit", |s| !s.is_empty()));
    assert_eq!(t.shared_file("limit").trim(), (32u64 << 20).to_string(), "limit not visible inside");
    let inside = t.shared_file("oom_control");
    assert!(inside.lines().any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"), "inside: {inside}");
    let got = wait_until(T, || {
        fs::read_to_string(&op)
            .unwrap_or_default()
            .lines()
            .any(|l| serde_json::from_str::<Value>(l).map(|v| v["type"] == "oom" && v["id"] == t.id.as_str()).unwrap_or(false))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(got, "no oom event: {}", fs::read_to_string(&op).unwrap_or_default());
    // the failure count shows in the stats
    let s = events_stats(&t);
    assert!(u(&s["data"]["memory"]["usage"]["max"]) >= (32 << 20) - (1 << 20), "the limit was not reached: {s}");
    assert_eq!(u(&s["data"]["memory"]["usage"]["limit"]), 32 << 20);
    t.delete_force().assert_ok();
    t.assert_no_leftovers(&t.id, "cg-oom-none");
}

#[test]
fn events_stream_ends_when_the_container_stops() {
    let mut t = harness!("cg-events-stream");
    t.args(&["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 300"]);
    t.run_detached().assert_ok();
    let (child, op, ep) = t.spawn(&["events", "--interval", "100ms", &t.id]);
    assert!(wait_until(T, || fs::read_to_string(&op).unwrap_or_default().lines().count() >= 3));
    t.kill("KILL").assert_ok();
    let o = t.wait_spawned(child, op, ep, T);
    assert!(o.ok(), "events did not end cleanly: {}", o.describe());
    let evs: Vec<Value> = o.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert!(evs.len() >= 3);
    let totals: Vec<u64> = evs.iter().filter(|e| e["type"] == "stats").map(|e| u(&e["data"]["cpu"]["usage"]["total"])).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "cpu usage went backwards: {totals:?}");
    assert!(totals[0] > 0);
}

#[test]
fn events_of_a_stopped_container_fail() {
    let mut t = harness!("cg-events-stopped");
    t.args(&["true"]);
    t.run_detached().assert_ok();
    assert!(t.wait_status("stopped", T));
    let o = t.rt(&["events", "--stats", &t.id]);
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "not running"), "{}", o.describe());
    let o = t.rt(&["events", "--interval", "1x", &t.id]);
    o.assert_fail();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let mut t = harness!("cg-pids");
    t.cgroupns(false);
    t.resource("pids", json!({"limit": 10}));
    // Only shell builtins after the loop: no fork is left to us.
    // A forked child is "sh" until it has exec'd sleep: count again until
    // every process but this shell is a sleep (builtins only: no fork).
    t.sh("(for i in $(seq 1 40); do sleep 100 & done) 2>/dev/null; \
         read cur < /sys/fs/cgroup/pids/pids.current; t=0; c=0; \
         while [ $t -lt 2000 ] && [ $c -lt $((cur-1)) ]; do t=$((t+1)); c=0; \
           for p in /proc/[0-9]*; do read n < $p/comm 2>/dev/null && [ \"$n\" = sleep ] && c=$((c+1)); done; done; \
         read max < /sys/fs/cgroup/pids/pids.max; \
         read ev < /sys/fs/cgroup/pids/pids.events; echo \"sleeps=$c cur=$cur max=$max $ev\"");
    let out = t.run_ok();
    let f: std::collections::HashMap<&str, &str> = out.split_whitespace().filter_map(|w| w.split_once('=')).collect();
    let sleeps: u32 = f["sleeps"].parse().unwrap();
    assert!((1..=9).contains(&sleeps), "{out}");
    assert_eq!(f["max"], "10", "{out}");
    assert!(f["cur"].parse::<u32>().unwrap() <= 10, "{out}");
    // "max N": forks the limit refused (the loop's shell dies at the first)
    let refused: u32 = out.split_whitespace().last().unwrap().parse().unwrap();
    assert!(refused >= 1, "{out}");
}

#[test]
fn without_a_cgroup_namespace_the_mount_shows_only_the_containers_own_cgroups() {
    // runc's rule: no cgroup namespace, so each hierarchy is the
    // container's own directory bind-mounted, never the host's whole tree
    // (a fresh cgroup mount in the host's namespace shows its root).
    let mut t = harness!("cg-no-ns");
    t.remove_namespace("cgroup");
    t.resource("memory", json!({"limit": 48 << 20}));
    t.sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup/pids; \
         grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo");
    let out = t.run();
    out.assert_ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some((48u64 << 20).to_string().as_str()), "{}", out.stdout);
    // the container's cgroup has no child cgroups; the host's root has ours
    assert!(!out.stdout.contains(&format!("\n{}\n", t.id)), "the host's tree is visible: {}", out.stdout);
    let mnt = out.stdout.lines().find(|l| l.contains(" /sys/fs/cgroup/memory ")).unwrap_or_default().to_string();
    let root = mnt.split_whitespace().nth(3).unwrap_or_default();
    assert!(root.ends_with(&format!("/{}", t.id)), "memory mount root {root:?}: {mnt}");
    assert!(mnt.split_whitespace().nth(5).unwrap_or_default().split(',').any(|o| o == "ro"), "{mnt}");
}

#[test]
fn cpu_quota_and_cpuset_in_the_files_and_inside() {
    let mut t = harness!("cg-cpu");
    t.share().cgroupns(false);
    t.resource("cpu", json!({"shares": 512, "quota": 20000, "period": 100000, "cpus": "1", "mems": "0"}));
    t.sh(
        "cd /sys/fs/cgroup; for f in cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares cpuset/cpuset.cpus cpuset/cpuset.mems; do \
         echo \"$f $(cat $f)\"; done > /shared/files; grep Cpus_allowed_list /proc/self/status > /shared/allowed; \
         while :; do :; done & sleep 1; kill $!; grep nr_throttled cpu/cpu.stat > /shared/throttled; sleep 300",
    );
    t.run_detached().assert_ok();
    let pid = t.pid();
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg_read(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(cg_read(pid, "cpuset", "cpuset.cpus"), "1");
    assert!(wait_shared(&t, "throttled", |s| !s.is_empty()));
    assert_eq!(
        t.shared_file("files"),
        "cpu/cpu.cfs_quota_us 20000\ncpu/cpu.cfs_period_us 100000\ncpu/cpu.shares 512\ncpuset/cpuset.cpus 1\ncpuset/cpuset.mems 0\n"
    );
    assert_eq!(t.shared_file("allowed").split_whitespace().last(), Some("1"));
    // a busy loop at 20% of a CPU for a second is throttled
    let n: u64 = t.shared_file("throttled").split_whitespace().last().unwrap().parse().unwrap();
    assert!(n > 0, "not throttled: {}", t.shared_file("throttled"));
    let s = events_stats(&t);
    assert!(u(&s["data"]["cpu"]["throttling"]["throttledPeriods"]) > 0, "{s}");
    assert_eq!(s["data"]["cpuset"]["cpus"], json!([1]));
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let mut t = harness!("cg-pause");
    t.share();
    t.sh("i=0; while :; do i=$((i+1)); echo $i > /shared/count; sleep 0.02; done");
    t.run_detached().assert_ok();
    let pid = t.pid();
    let count = || t.shared_file("count").trim().parse::<u64>().unwrap_or(0);
    assert!(wait_until(T, || count() > 3));
    t.rt(&["pause", &t.id]).assert_ok();
    assert_eq!(t.status().as_deref(), Some("paused"));
    assert_eq!(cg_read(pid, "freezer", "freezer.state"), "FROZEN");
    let a = count();
    // watched for 400 ms: fails at the first count while paused
    holds_for(Duration::from_millis(400), || count() == a);
    assert_eq!(count(), a, "the container kept counting while paused");
    // pausing twice is an error; so is resuming a running container later
    t.rt(&["pause", &t.id]).assert_fail();
    t.rt(&["resume", &t.id]).assert_ok();
    assert_eq!(t.status().as_deref(), Some("running"));
    assert_eq!(cg_read(pid, "freezer", "freezer.state"), "THAWED");
    assert!(wait_until(T, || count() > a + 3), "no progress after resume");
    t.rt(&["resume", &t.id]).assert_fail();
    // a paused container can still be force-deleted
    t.rt(&["pause", &t.id]).assert_ok();
    t.delete_force().assert_ok();
    assert!(wait_until(T, || !pid_alive(pid)));
    assert!(wait_until(T, || cgroup_dirs_named(&t.id).is_empty()), "{:?}", cgroup_dirs_named(&t.id));
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let mut t = harness!("cg-update");
    t.share().cgroupns(false);
    t.resource("memory", json!({"limit": 64 << 20, "swap": 128 << 20}));
    t.resource("pids", json!({"limit": 20}));
    t.resource("cpu", json!({"quota": 20000, "period": 100000}));
    // The container reports its own limits on demand.
    t.sh(
        "cd /sys/fs/cgroup; while :; do if [ -e /shared/ask ]; then rm /shared/ask; \
         for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus; do \
         read v < $f; echo \"$f=$v\"; done > /shared/seen.tmp; mv /shared/seen.tmp /shared/seen; fi; sleep 0.05; done",
    );
    t.run_detached().assert_ok();
    let pid = t.pid();
    let inside = |t: &Harness| -> String {
        let _ = fs::remove_file(t.shared.join("seen"));
        fs::write(t.shared.join("ask"), "").unwrap();
        assert!(wait_until(T, || t.shared.join("seen").exists()));
        t.shared_file("seen")
    };
    let mem = |p| cg_read(p, "memory", "memory.limit_in_bytes");
    let memsw = |p| cg_read(p, "memory", "memory.memsw.limit_in_bytes");
    // growing past the current memsw: memsw must be raised first
    t.rt(&["update", "--memory", "256m", "--memory-swap", "512m", &t.id]).assert_ok();
    assert_eq!((mem(pid), memsw(pid)), ((256u64 << 20).to_string(), (512u64 << 20).to_string()));
    // shrinking below the current memory: memory must be lowered first
    t.rt(&["update", "--memory", "32m", "--memory-swap", "48m", &t.id]).assert_ok();
    assert_eq!((mem(pid), memsw(pid)), ((32u64 << 20).to_string(), (48u64 << 20).to_string()));
    t.rt(&["update", "--pids-limit", "7", "--cpu-quota", "30000", "--cpu-period", "50000", "--cpuset-cpus", "0", &t.id]).assert_ok();
    let seen = inside(&t);
    for want in [
        format!("memory/memory.limit_in_bytes={}", 32u64 << 20),
        format!("memory/memory.memsw.limit_in_bytes={}", 48u64 << 20),
        "pids/pids.max=7".into(),
        "cpu/cpu.cfs_quota_us=30000".into(),
        "cpu/cpu.cfs_period_us=50000".into(),
        "cpuset/cpuset.cpus=0".into(),
    ] {
        assert!(seen.lines().any(|l| l == want), "{want} not seen inside:\n{seen}");
    }
    // -r FILE: LinuxResources JSON
    let f = t.dir.join("res.json");
    fs::write(&f, json!({"pids": {"limit": 9}, "cpu": {"quota": -1}}).to_string()).unwrap();
    t.rt(&["update", "-r", f.to_str().unwrap(), &t.id]).assert_ok();
    assert_eq!(cg_read(pid, "pids", "pids.max"), "9");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "-1");
    // --resources -: from stdin (containerd's way)
    let mut c = t.command(&["update", "--resources", "-", &t.id]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    use std::io::Write;
    ch.stdin
        .take()
        .unwrap()
        .write_all(json!({"memory": {"limit": 100 << 20, "swap": 200 << 20}, "pids": {"limit": -1}}).to_string().as_bytes())
        .unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((mem(pid), memsw(pid)), ((100u64 << 20).to_string(), (200u64 << 20).to_string()));
    assert_eq!(cg_read(pid, "pids", "pids.max"), "max");
    // -1 lifts memory and memsw
    t.rt(&["update", "--memory", "-1", &t.id]).assert_ok();
    assert_eq!(mem(pid), "9223372036854771712");
    assert_eq!(memsw(pid), "9223372036854771712");
}

#[test]
fn update_with_bad_input_changes_nothing() {
    let mut t = harness!("cg-update-bad");
    t.resource("memory", json!({"limit": 64 << 20}));
    t.resource("pids", json!({"limit": 20}));
    t.resource("cpu", json!({"quota": 20000, "period": 100000, "cpus": "0-1"}));
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    let snapshot = || {
        [
            ("memory", "memory.limit_in_bytes"),
            ("memory", "memory.memsw.limit_in_bytes"),
            ("pids", "pids.max"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.rt_runtime_us"),
            ("cpuset", "cpuset.cpus"),
        ]
        .map(|(c, f)| cg_read(pid, c, f))
    };
    let before = snapshot();
    let res = t.dir.join("bad.json");
    fs::write(&res, r#"{"pids": {"limit": 5}, "devices": [{"allow": true, "type": "x", "access": "rwm"}]}"#).unwrap();
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--memory", "-5"], "memory"),
        (vec!["--pids-limit", "-2", "--memory", "10m"], "pids"),
        (vec!["--cpuset-cpus", "99", "--pids-limit", "5"], "cpu 99"),
        (vec!["--cpuset-cpus", "1-0"], "invalid"),
        (vec!["--cpu-quota", "5", "--pids-limit", "5"], "quota"),
        (vec!["--memory", "100m", "--memory-swap", "50m"], "swap"),
        (vec!["--cpu-share", "1"], "shares"),
        (vec!["--blkio-weight", "5"], "weight"),
        (vec!["-r", res.to_str().unwrap()], "type"),
        // valid values the kernel refuses after memory was written: rolled back
        (vec!["--memory", "100m", "--cpu-rt-runtime", "2000000"], "rt_runtime"),
    ];
    for (args, word) in bad {
        let mut a = vec!["update"];
        a.extend(args.iter());
        a.push(&t.id);
        let o = t.rt(&a);
        o.assert_fail();
        assert!(contains_ci(&o.stderr, word), "error does not mention {word:?}: {}", o.describe());
        assert_eq!(snapshot(), before, "{args:?} changed something");
    }
    // updating a stopped container fails
    t.kill("KILL").assert_ok();
    assert!(t.wait_status("stopped", T));
    t.rt(&["update", "--pids-limit", "5", &t.id]).assert_fail();
}

#[test]
fn device_cgroup_denies_open_of_a_device_not_allowed() {
    // mknod is allowed by runc's default list (c *:* m, b *:* m), open is not
    let mut t = harness!("cg-devices");
    for set in ["bounding", "effective", "permitted"] {
        t.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    }
    t.sh("mknod /tmp/fuse c 10 229 && echo mknod-ok; chmod 666 /tmp/fuse; \
         if (exec 3</tmp/fuse) 2>&1; then echo OPENED; else echo denied; fi; \
         mknod /tmp/blk b 7 0 && echo mknod-blk-ok; if head -c1 /tmp/blk >/dev/null 2>&1; then echo BLK-OPENED; else echo blk-denied; fi; \
         echo x > /dev/null && echo null-ok");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().filter(|l| !l.contains("can't open")).collect();
    assert!(l.contains(&"mknod-ok") && l.contains(&"denied") && !out.contains("OPENED"), "{out}");
    assert!(l.contains(&"mknod-blk-ok") && l.contains(&"blk-denied") && l.contains(&"null-ok"), "{out}");
    assert!(contains_ci(&out, "not permitted"), "open should fail with EPERM: {out}");

    // the same device allowed by linux.resources.devices opens
    let mut t2 = harness!("cg-devices-allowed");
    t2.config["process"]["capabilities"] = t.config["process"]["capabilities"].clone();
    t2.resource(
        "devices",
        json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]),
    );
    t2.sh("mknod /tmp/fuse c 10 229; if (exec 3</tmp/fuse); then echo opened; else echo DENIED; fi");
    assert_eq!(t2.run_ok(), "opened\n");

    // the host's view of the rules
    let mut t3 = harness!("cg-devices-list");
    t3.args(&["sleep", "300"]);
    t3.run_detached().assert_ok();
    let list = cg_read(t3.pid(), "devices", "devices.list");
    for want in ["c *:* m", "b *:* m", "c 1:3 rwm", "c 136:* rwm", "c 10:200 rwm"] {
        assert!(list.lines().any(|l| l == want), "{want} missing: {list}");
    }
    assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
}

/// A private directory on the host's cgroup2 tree.
struct Cg2Dir(PathBuf);

impl Cg2Dir {
    fn new(name: &str) -> Option<Cg2Dir> {
        let root = Path::new("/sys/fs/cgroup/unified");
        if !is_root() || !root.join("cgroup.controllers").exists() {
            testkit::skip!("needs root and the cgroup2 tree at {}", root.display());
            return None;
        }
        let d = root.join(format!("rpct-{name}-{}", std::process::id()));
        let _ = fs::remove_dir(&d);
        fs::create_dir(&d).unwrap();
        Some(Cg2Dir(d))
    }

    /// busybox sh that moves itself into the directory first.
    fn spawn(&self, script: &str, out: &Path) -> std::process::Child {
        Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("echo $$ > {}/cgroup.procs || exit 99; {script}", self.0.display())])
            .stdin(Stdio::null())
            .stdout(fs::File::create(out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Cg2Dir {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("cgroup.kill"), "1");
        let _ = fs::write(self.0.join("cgroup.freeze"), "0");
        wait_until(T, || fs::remove_dir(&self.0).is_ok() || !self.0.exists());
    }
}

#[test]
fn ebpf_device_filter_on_the_host_cgroup2_tree() {
    use runtime_core::linux::cgroups::devices_bpf::{self, Rule};
    let Some(cg) = Cg2Dir::new("bpf") else { return };
    let tmp = std::env::temp_dir().join(format!("rpct-bpf-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    // deny all; /dev/null rw; /dev/zero read only; no mknod wildcard
    let rules = [
        Rule { allow: false, kind: 'a', major: -1, minor: -1, access: 7 },
        Rule { allow: true, kind: 'c', major: 1, minor: 3, access: devices_bpf::ACC_READ | devices_bpf::ACC_WRITE },
        Rule { allow: true, kind: 'c', major: 1, minor: 5, access: devices_bpf::ACC_READ },
    ];
    devices_bpf::apply(&cg.0, &rules).unwrap();
    assert_eq!(devices_bpf::attached(&cg.0).unwrap(), 1);
    // applying again replaces the program
    devices_bpf::apply(&cg.0, &rules).unwrap();
    assert_eq!(devices_bpf::attached(&cg.0).unwrap(), 1);
    let out = tmp.join("out");
    let script = format!(
        "echo x > /dev/null && echo null-w; head -c1 /dev/zero > /dev/null && echo zero-r; \
         (echo x > /dev/zero) 2>/dev/null || echo zero-w-denied; (head -c1 /dev/urandom > /dev/null) 2>/dev/null || echo urandom-denied; \
         mknod {0}/n c 1 3 2>/dev/null || echo mknod-denied; mkfifo {0}/fifo && echo fifo-ok",
        tmp.display()
    );
    let mut ch = cg.spawn(&script, &out);
    let (st, _) = wait_child(&mut ch, T);
    assert!(st.is_some());
    let got = fs::read_to_string(&out).unwrap();
    assert_eq!(got, "null-w\nzero-r\nzero-w-denied\nurandom-denied\nmknod-denied\nfifo-ok\n");
    // outside the cgroup everything works
    let o = Command::new("/bin/busybox").args(["sh", "-c", "head -c1 /dev/urandom > /dev/null && echo ok"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn cgroup2_freeze_and_kill_on_the_host_tree() {
    use runtime_core::linux::cgroups;
    let Some(cg) = Cg2Dir::new("freeze") else {
        return;
    };
    let out = std::env::temp_dir().join(format!("rpct-freeze-{}", std::process::id()));
    let mut ch = cg.spawn(&format!("i=0; while :; do i=$((i+1)); echo $i > {}.n; sleep 0.02; done", out.display()), &out);
    let n = || fs::read_to_string(format!("{}.n", out.display())).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
    assert!(wait_until(T, || n() > 3));
    let dirs = vec![cg.0.clone()];
    cgroups::freeze(&dirs, true).unwrap();
    assert!(cgroups::is_frozen(&dirs));
    assert!(fs::read_to_string(cg.0.join("cgroup.events")).unwrap().contains("frozen 1"));
    let a = n();
    holds_for(Duration::from_millis(300), || n() == a);
    assert_eq!(n(), a, "counting while frozen");
    cgroups::freeze(&dirs, false).unwrap();
    assert!(!cgroups::is_frozen(&dirs));
    assert!(wait_until(T, || n() > a + 2));
    // cgroup.kill takes everything, even while frozen
    cgroups::freeze(&dirs, true).unwrap();
    cgroups::kill_all(&dirs);
    let (st, timed_out) = wait_child(&mut ch, T);
    assert!(!timed_out, "not killed");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st.unwrap()), Some(9));
    assert!(wait_until(T, || cgroups::pids(&dirs).is_empty()));
    let _ = fs::remove_file(format!("{}.n", out.display()));
    let _ = fs::remove_file(&out);
}

#[test]
fn events_stats_are_plausible() {
    let mut t = harness!("cg-stats");
    t.resource("memory", json!({"limit": 64 << 20}));
    t.resource("pids", json!({"limit": 50}));
    t.share();
    t.sh("sleep 300 & sleep 300 & i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; head -c 8000000 /dev/zero > /dev/shm/x; echo done > /shared/done; sleep 300");
    t.run_detached().assert_ok();
    assert!(wait_shared(&t, "done", |s| s == "done"));
    let s = events_stats(&t);
    assert_eq!(s["type"], "stats");
    assert_eq!(s["id"], t.id.as_str());
    let d = &s["data"];
    let cpu = u(&d["cpu"]["usage"]["total"]);
    assert!(cpu > 1_000_000 && cpu < 100_000_000_000, "cpu ns {cpu}");
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert_eq!(d["cpu"]["usage"]["percpu"].as_array().map(|a| a.len()), Some(ncpu));
    let mem = u(&d["memory"]["usage"]["usage"]);
    assert!(mem > 8_000_000 && mem < 64 << 20, "memory usage {mem}");
    assert_eq!(u(&d["memory"]["usage"]["limit"]), 64 << 20);
    assert!(u(&d["memory"]["usage"]["max"]) >= mem);
    assert!(
        d["memory"]["raw"]["shmem"].as_u64().unwrap_or(0) >= 8_000_000
            || d["memory"]["raw"]["total_shmem"].as_u64().unwrap_or(0) >= 8_000_000,
        "{}",
        d["memory"]["raw"]
    );
    let ps = t.rt(&["ps", "--format", "json", &t.id]);
    ps.assert_ok();
    let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
    assert_eq!(u(&d["pids"]["current"]), pids.len() as u64, "{}", d["pids"]);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert_eq!(u(&d["pids"]["limit"]), 50);
    assert!(d["blkio"].is_object() && d["hugetlb"].is_object() && d["intel_rdt"].is_object());
    // the network namespace has only lo: nothing to report
    assert!(d["network_interfaces"].is_null());
}

#[test]
fn ps_lists_the_container_processes() {
    let mut t = harness!("cg-ps");
    t.args(&["sh", "-c", "sleep 301 & sleep 302 & wait"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    let o = t.rt(&["ps", "--format", "json", &t.id]);
    o.assert_ok();
    let mut pids: Vec<i32> = serde_json::from_str(o.stdout.trim()).unwrap();
    pids.sort();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&pid));
    for p in &pids {
        assert!(fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap().contains(&t.id));
    }
    let o = t.rt(&["ps", &t.id]);
    o.assert_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].contains("PID") && lines[0].contains("CMD"), "{}", o.stdout);
    assert_eq!(lines.len(), 4, "{}", o.stdout);
    assert!(o.stdout.contains("sleep 301") && o.stdout.contains("sleep 302"));
    let o = t.rt(&["ps", &t.id, "-o", "pid,comm"]);
    o.assert_ok();
    assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);
    assert_eq!(o.stdout.lines().filter(|l| l.trim_end().ends_with("sleep")).count(), 2, "{}", o.stdout);
    t.rt(&["ps", "--format", "xml", &t.id]).assert_fail();
}

#[test]
fn kill_all_without_a_pid_namespace() {
    // no pid namespace: killing init leaves the others; --all takes them all
    let mut t = harness!("cg-kill-all");
    t.remove_namespace("pid");
    let marker = format!("cg-kill-all-marker-{}", std::process::id());
    t.args(&["sh", "-c", "sleep 300 & sleep 300 & sleep 300; exit 0", &marker]);
    t.run_detached().assert_ok();
    assert!(wait_until(T, || t.rt(&["ps", "--format", "json", &t.id]).stdout.matches(',').count() == 3));
    let pids: Vec<i32> = serde_json::from_str(t.rt(&["ps", "--format", "json", &t.id]).stdout.trim()).unwrap();
    t.rt(&["kill", "--all", &t.id, "KILL"]).assert_ok();
    assert!(wait_until(T, || pids.iter().all(|p| !pid_alive(*p))), "survivors: {pids:?}");
    assert!(t.wait_status("stopped", T));
    t.delete().assert_ok();
    t.assert_no_leftovers(&t.id, &marker);
}

#[test]
fn delete_removes_every_cgroup_including_nested_ones() {
    let mut t = harness!("cg-delete-nested");
    t.share().cgroupns(true);
    // the container makes child cgroups of its own and moves a process there
    t.sh("mkdir /sys/fs/cgroup/pids/child /sys/fs/cgroup/memory/child && \
         sh -c 'echo $$ > /sys/fs/cgroup/pids/child/cgroup.procs; echo $$ > /sys/fs/cgroup/memory/child/cgroup.procs; exec sleep 300' & \
         sleep 0.3; echo ok > /shared/ready; sleep 300");
    t.run_detached().assert_ok();
    let pid = t.pid();
    assert!(wait_shared(&t, "ready", |s| s == "ok"));
    // one directory in every hierarchy, the unified one too (hybrid)
    let dirs = cgroup_dirs_named(&t.id);
    for c in ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"] {
        assert!(dirs.iter().any(|d| d.starts_with(format!("/sys/fs/cgroup/{c}/"))), "no {c} dir: {dirs:?}");
    }
    let child = host_cgroup_dir(pid, "pids").unwrap().join("child");
    assert!(child.exists());
    assert!(!fs::read_to_string(child.join("cgroup.procs")).unwrap().trim().is_empty());
    t.delete_force().assert_ok();
    t.assert_no_leftovers(&t.id, "cg-delete-nested-none");
}

#[test]
fn delete_after_the_runtime_was_killed_mid_create() {
    let mut t = harness!("cg-kill9");
    let marker = format!("{}.{}", 600, std::process::id() % 1000);
    // createRuntime runs after the cgroups exist and init is in them
    t.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", marker]}]});
    t.args(&["sleep", "300"]);
    t.write_config();
    t.track(&t.id);
    let b = t.bundle_str();
    let (mut child, _op, _ep) = t.spawn(&["create", "--bundle", &b, &t.id]);
    let hook_running = || !processes_with_marker(&format!("sleep {marker}")).is_empty();
    assert!(wait_until(T, hook_running), "the hook did not start");
    // state written ahead: the cgroup paths are recorded
    let st: Value = serde_json::from_str(&fs::read_to_string(t.root.join(&t.id).join("state.json")).unwrap()).unwrap();
    let recorded: Vec<PathBuf> = st["cgroups"].as_array().unwrap().iter().map(|p| PathBuf::from(p.as_str().unwrap())).collect();
    assert!(!recorded.is_empty() && recorded.iter().all(|p| p.exists()), "{recorded:?}");
    // SAFETY: kill takes plain integers; the child is ours and not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    for p in processes_with_marker(&format!("sleep {marker}")) {
        // SAFETY: kill takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(p, libc::SIGKILL);
        }
    }
    assert_eq!(t.status().as_deref(), Some("stopped"));
    t.delete().assert_ok();
    assert!(recorded.iter().all(|p| !p.exists()), "left: {recorded:?}");
    t.assert_no_leftovers(&t.id, &format!("sleep {marker}"));
}

#[test]
fn bad_resources_fail_create_and_leave_nothing() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Box<dyn Fn(&mut Harness)>, &str)> = vec![
        ("dotdot", Box::new(|t: &mut Harness| t.config["linux"]["cgroupsPath"] = json!("/rpct/../../etc")), ".."),
        (
            "neg-mem",
            Box::new(|t: &mut Harness| {
                t.resource("memory", json!({"limit": -5}));
            }),
            "memory.limit",
        ),
        (
            "neg-pids",
            Box::new(|t: &mut Harness| {
                t.resource("pids", json!({"limit": -3}));
            }),
            "pids.limit",
        ),
        (
            "cpus",
            Box::new(|t: &mut Harness| {
                t.resource("cpu", json!({"cpus": "7"}));
            }),
            "CPU 7",
        ),
        (
            "mems",
            Box::new(|t: &mut Harness| {
                t.resource("cpu", json!({"mems": "3"}));
            }),
            "node 3",
        ),
        (
            "devtype",
            Box::new(|t: &mut Harness| {
                t.resource("devices", json!([{"allow": true, "type": "x", "access": "rwm"}]));
            }),
            "type",
        ),
        (
            "devaccess",
            Box::new(|t: &mut Harness| {
                t.resource("devices", json!([{"allow": true, "type": "c", "access": "rwx"}]));
            }),
            "access",
        ),
        (
            "quota",
            Box::new(|t: &mut Harness| {
                t.resource("cpu", json!({"quota": 10}));
            }),
            "quota",
        ),
        (
            "hugepage",
            Box::new(|t: &mut Harness| {
                t.resource("hugepageLimits", json!([{"pageSize": "3MB", "limit": 1}]));
            }),
            "page size",
        ),
        (
            "netcls",
            Box::new(|t: &mut Harness| {
                t.resource("network", json!({"classID": 7}));
            }),
            "net_cls",
        ),
        (
            "swap",
            Box::new(|t: &mut Harness| {
                t.resource("memory", json!({"limit": 64 << 20, "swap": 32 << 20}));
            }),
            "swap",
        ),
    ];
    for (name, edit, word) in cases {
        let mut t = harness!(&format!("cg-bad-{name}"));
        let marker = format!("cg-bad-{name}-{}", std::process::id());
        t.marked_sleep(&marker);
        edit(&mut t);
        let o = t.create();
        o.assert_fail();
        assert!(contains_ci(&o.stderr, word), "{name}: error does not mention {word:?}: {}", o.describe());
        t.assert_no_leftovers(&t.id, &marker);
    }
}

#[test]
fn cgroups_path_absolute_relative_and_non_empty() {
    let mut t = harness!("cg-path");
    let abs = format!("/rpct-abs-{}/{}", std::process::id(), t.id);
    t.config["linux"]["cgroupsPath"] = json!(abs);
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    // absolute: from the root of every hierarchy (memory too, though we
    // ourselves live below /process_api there)
    for c in ["memory", "pids", "cpu"] {
        assert_eq!(host_cgroup_dir(pid, c).unwrap(), Path::new("/sys/fs/cgroup").join(c).join(abs.trim_start_matches('/')));
    }
    t.delete_force().assert_ok();
    // the parent is not ours to remove (runc leaves it too): the test does
    for e in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let parent = e.path().join(format!("rpct-abs-{}", std::process::id()));
        assert!(!parent.join(&t.id).exists());
        let _ = fs::remove_dir(parent);
    }

    // relative: below the runtime's own cgroup in each hierarchy
    let mut t = harness!("cg-path-rel");
    t.config["linux"]["cgroupsPath"] = json!(format!("rpct-rel-{}/{}", std::process::id(), t.id));
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    let me = std::process::id() as i32;
    for c in ["memory", "pids"] {
        let want = host_cgroup_dir(me, c).unwrap().join(format!("rpct-rel-{}", std::process::id())).join(&t.id);
        assert_eq!(host_cgroup_dir(pid, c).unwrap(), want);
    }
    t.delete_force().assert_ok();
    for c in ["memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd", "unified"] {
        if let Some(d) = host_cgroup_dir(
            me,
            if c == "unified" {
                ""
            } else if c == "systemd" {
                "name=systemd"
            } else {
                c
            },
        ) {
            let _ = fs::remove_dir(d.join(format!("rpct-rel-{}", std::process::id())));
        }
    }

    // an existing cgroup holding a process is refused, and left alone
    let mut t = harness!("cg-path-busy");
    let dir = Path::new("/sys/fs/cgroup/pids").join(&t.id);
    fs::create_dir(&dir).unwrap();
    let mut other = Command::new("/bin/busybox")
        .args(["sh", "-c", &format!("echo $$ > {}/cgroup.procs; exec sleep 300", dir.display())])
        .spawn()
        .unwrap();
    assert!(wait_until(T, || !fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().trim().is_empty()));
    t.config["linux"]["cgroupsPath"] = json!(format!("/{}", t.id));
    t.args(&["sleep", "300"]);
    let o = t.create();
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "not empty"), "{}", o.describe());
    assert!(other.try_wait().unwrap().is_none(), "the other process was killed");
    assert!(dir.exists());
    let _ = other.kill();
    let _ = other.wait();
    // once empty it is joined
    assert!(wait_until(T, || fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().trim().is_empty()));
    t.create().assert_ok();
    assert_eq!(host_cgroup_dir(t.pid(), "pids").unwrap(), dir);
    t.delete().assert_ok();
    assert!(!dir.exists());
}

#[test]
fn hugetlb_limit_lives_on_the_unified_tree() {
    // hybrid host: hugetlb is only on the cgroup2 hierarchy
    let mut t = harness!("cg-hugetlb");
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() || !Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists()
    {
        testkit::skip!("no 2MB huge pages or no cgroup2 tree");
        return;
    }
    let offered = fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap();
    if !offered.split_whitespace().any(|c| c == "hugetlb") {
        testkit::skip!("the cgroup2 tree has no hugetlb controller");
        return;
    }
    let subtree = Path::new("/sys/fs/cgroup/unified/cgroup.subtree_control");
    let was_on = fs::read_to_string(subtree).unwrap_or_default().split_whitespace().any(|c| c == "hugetlb");
    t.resource("hugepageLimits", json!([{"pageSize": "2MB", "limit": 4 << 20}]));
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    assert_eq!(cg_read(pid, "", "hugetlb.2MB.max"), (4u64 << 20).to_string());
    let s = events_stats(&t);
    assert!(s["data"]["hugetlb"]["2MB"].is_object(), "{s}");
    // unified key/values go to the same directory
    t.delete_force().assert_ok();
    let mut t = harness!("cg-unified");
    t.resource("unified", json!({"cgroup.max.descendants": "3", "hugetlb.2MB.max": "2097152"}));
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    assert_eq!(cg_read(t.pid(), "", "cgroup.max.descendants"), "3");
    assert_eq!(cg_read(t.pid(), "", "hugetlb.2MB.max"), "2097152");
    t.delete_force().assert_ok();
    // leave the host's tree as we found it
    if !was_on {
        let _ = fs::write(subtree, "-hugetlb");
    }
}

#[test]
fn blkio_throttle_and_weight_where_available() {
    let mut t = harness!("cg-blkio");
    let (ma, mi) = (254, 0);
    t.resource("blockIO", json!({"throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}], "throttleWriteIOPSDevice": [{"major": ma, "minor": mi, "rate": 100}]}));
    t.args(&["sleep", "300"]);
    let o = t.run_detached();
    if !o.ok() && contains_ci(&o.stderr, "No such device") {
        testkit::skip!("no block device {ma}:{mi} here");
        return;
    }
    o.assert_ok();
    let pid = t.pid();
    assert_eq!(cg_read(pid, "blkio", "blkio.throttle.read_bps_device"), format!("{ma}:{mi} 1048576"));
    assert_eq!(cg_read(pid, "blkio", "blkio.throttle.write_iops_device"), format!("{ma}:{mi} 100"));
    t.rt(&["update", "-r", "-", &t.id]); // no stdin: an empty document is an error, nothing changes
    assert_eq!(cg_read(pid, "blkio", "blkio.throttle.read_bps_device"), format!("{ma}:{mi} 1048576"));
    let dir = host_cgroup_dir(pid, "blkio").unwrap();
    let weight = ["blkio.weight", "blkio.bfq.weight"].iter().find(|f| dir.join(f).exists());
    match weight {
        Some(f) => {
            t.rt(&["update", "--blkio-weight", "300", &t.id]).assert_ok();
            assert!(cg_read(pid, "blkio", f).contains("300"));
        }
        None => {
            testkit::skip!(
                "blkio weight: this host's blkio controller has no weight file (the block devices do not use CFQ/BFQ); \
                 checking the clear error instead"
            );
            let o = t.rt(&["update", "--blkio-weight", "300", &t.id]);
            o.assert_fail();
            assert!(contains_ci(&o.stderr, "no weight"), "{}", o.describe());
        }
    }
}

#[test]
fn systemd_cgroup_flag_is_refused_clearly() {
    let mut t = harness!("cg-systemd");
    t.global_args.push("--systemd-cgroup".into());
    t.args(&["true"]);
    let o = t.create();
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "systemd"), "{}", o.describe());
    let _ = Instant::now();
}

/// A memory limit too low for init to set up: it is OOM-killed before it
/// is ready, and the error says so (runc's words) instead of "init exited
/// before it was ready". Nothing is left behind.
#[test]
fn init_oom_killed_at_create_is_reported_as_such() {
    for (i, ns) in [(0, "direct"), (1, "stage-1")] {
        let mut t = harness!("cg-oom-init");
        let marker = format!("cg-oom-init-{}-{i}", std::process::id());
        t.marked_sleep(&marker);
        t.resource("memory", json!({"limit": 1}));
        if ns == "stage-1" {
            // A time namespace needs stage-1 (init is its child).
            t.set_namespace(json!({"type": "time"}));
        }
        let o = t.run();
        assert!(!o.timed_out, "{ns}: {}", o.describe());
        o.assert_fail();
        eprintln!("{ns}: {}", o.stderr);
        assert!(o.stderr.contains("OOM-killed (memory limit too low?)"), "{ns}: {}", o.describe());
        t.assert_no_leftovers(&t.id, &marker);
    }
}

/// issue 19 #7: the "cgroup must be empty" rule holds under races. Two
/// creates with one cgroupsPath (other ids, under two --root dirs) at
/// once, ten times: each time exactly one succeeds (both did, every
/// time); the other fails naming the cgroup and leaves nothing; the
/// winner is not harmed by it.
#[test]
fn concurrent_creates_of_one_cgroup_path_have_one_winner() {
    let mut t = harness!("cg-race");
    let marker = format!("marker-{}", t.id);
    t.marked_sleep(&marker);
    let cg = format!("/rpct-race-{}/{}", std::process::id(), t.id);
    t.config["linux"]["cgroupsPath"] = json!(cg);
    t.write_config();
    let other_root = t.dir.join("state2");
    let root_of = |i: usize| if i % 2 == 1 { other_root.clone() } else { t.root.clone() };
    // The runtime with an explicit --root (the harness adds its own).
    let cmd = |root: &Path, args: &[&str]| {
        let mut c = Command::new(runtime_path());
        c.arg("--root").arg(root).args(args).current_dir(&t.dir).stdin(Stdio::null());
        c
    };
    let b = t.bundle_str();
    for round in 0..10 {
        let ids: Vec<String> = (0..2).map(|i| t.other_id(&format!("{round}-{i}"))).collect();
        let kids: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (o, e) = (t.dir.join(format!("race-{round}-{i}.out")), t.dir.join(format!("race-{round}-{i}.err")));
                let mut c = cmd(&root_of(i), &["create", "--bundle", &b, id]);
                c.stdout(fs::File::create(&o).unwrap()).stderr(fs::File::create(&e).unwrap());
                (c.spawn().unwrap(), o, e)
            })
            .collect();
        let outs: Vec<Out> = kids.into_iter().map(|(c, o, e)| t.wait_spawned(c, o, e, Duration::from_secs(30))).collect();
        let won: Vec<usize> = (0..outs.len()).filter(|&i| outs[i].ok()).collect();
        // (The winner under the other root is deleted even if an assert fails.)
        let _cleanup = won.iter().map(|&w| Deleter(cmd(&root_of(w), &["delete", "--force", &ids[w]]))).collect::<Vec<_>>();
        assert_eq!(won.len(), 1, "round {round}: exactly one create may win: {:#?}", outs.iter().map(|o| o.describe()).collect::<Vec<_>>());
        let (w, l) = (won[0], 1 - won[0]);
        assert!(outs[l].stderr.contains(cg.trim_start_matches('/')), "the error must name the cgroup: {}", outs[l].describe());
        assert!(!root_of(l).join(&ids[l]).exists(), "state left for {}: {}", ids[l], outs[l].describe());
        // One process in the cgroup: the winner's init, still there.
        let st = t.exec(cmd(&root_of(w), &["state", &ids[w]]), T);
        st.assert_ok();
        assert!(st.stdout.contains("\"created\""), "{}", st.describe());
        let pid = serde_json::from_str::<Value>(&st.stdout).unwrap()["pid"].as_i64().unwrap();
        let procs = fs::read_to_string(Path::new("/sys/fs/cgroup/memory").join(cg.trim_start_matches('/')).join("cgroup.procs")).unwrap();
        assert_eq!(procs.lines().collect::<Vec<_>>(), [pid.to_string()], "{procs}");
        if round == 0 {
            // It starts and runs: the loser did not take it down with it.
            t.exec(cmd(&root_of(w), &["start", &ids[w]]), T).assert_ok();
            assert!(wait_until(T, || processes_with_marker(&marker).len() == 1), "{:?}", processes_with_marker(&marker));
        }
        t.exec(cmd(&root_of(w), &["delete", "--force", &ids[w]]), T).assert_ok();
        assert!(wait_until(Duration::from_secs(3), || processes_with_marker(&marker).is_empty()));
    }
    for e in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let parent = e.path().join(format!("rpct-race-{}", std::process::id()));
        assert!(!parent.join(&t.id).exists(), "cgroup left in {}", parent.display());
        let _ = fs::remove_dir(parent);
    }
}

/// Runs a `delete --force` when dropped.
struct Deleter(Command);

impl Drop for Deleter {
    fn drop(&mut self) {
        let _ = self.0.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// issue 19 #8: an --interval Go cannot hold, zero or negative is a clear
/// error, never a panic (it aborted with 134).
#[test]
fn events_interval_out_of_range_is_an_error() {
    let mut t = harness!("cg-events-interval");
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    for bad in ["18446744073709551615s", "9999999999h", "-5s", "0s", "1e9s"] {
        let o = t.rt(&["events", "--interval", bad, &t.id]);
        assert_eq!(o.code(), 1, "{bad}: {}", o.describe());
        assert!(contains_any_ci(&o.stderr, &["interval", "duration"]), "{bad}: {}", o.describe());
    }
}

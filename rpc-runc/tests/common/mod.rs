//! Shared helpers for the rpc-runc integration tests.
//!
//! The runtime under test is `$RPC_RUNTIME` if set, else the `rpc-runc` binary
//! built by cargo, so the same suite can be validated against the reference
//! runc: `RPC_RUNTIME=/usr/sbin/runc cargo test -p rpc-runc --tests`.
//!
//! Every test gets a [`Harness`]: a fresh temp dir holding a bundle (busybox
//! rootfs + config.json built from a `serde_json::Value` the test can edit), a
//! private `--root` state dir and a unique container id. Dropping the harness
//! force-deletes every container it created and removes the temp dir, so tests
//! clean up even when they panic.
//!
//! Runtime invocations write their stdout/stderr to files (never pipes): a
//! `create`/`run -d` hands its stdio to the container process, so a pipe would
//! only reach EOF when the container exits. For a foreground `run` the files
//! hold what the container printed.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `let t = harness!("name");`: a new [`Harness`], or return from the test
/// (after printing why) when not root.
#[allow(unused_macros)]
macro_rules! harness {
    ($name:expr) => {
        match $crate::common::Harness::new($name) {
            Some(h) => h,
            None => return,
        }
    };
}

/// Default time limit for one runtime invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime binary under test.
pub fn runtime_path() -> PathBuf {
    match std::env::var_os("RPC_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rpc-runc")),
    }
}

/// File name of the runtime binary (e.g. `runc` or `rpc-runc`).
pub fn runtime_name() -> String {
    runtime_path().file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// First line of `RUNTIME --version`.
pub fn runtime_version_line() -> String {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        Command::new(runtime_path())
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// True when the runtime under test is the reference runc (used only to skip
/// checks of features the installed runc 1.1 does not have).
pub fn is_reference_runc() -> bool {
    runtime_version_line().starts_with("runc version")
}

/// True for runc older than 1.2 (no time namespace, ...).
pub fn is_runc_before_1_2() -> bool {
    let l = runtime_version_line();
    if let Some(v) = l.strip_prefix("runc version ") {
        let mut it = v.split(|c: char| !c.is_ascii_digit());
        let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        return major < 1 || (major == 1 && minor < 2);
    }
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skip helper: records the skip (`testkit::skip`) and returns true when
/// not root.
pub fn skip_unless_root(test: &str) -> bool {
    testkit::skip::unless_root(env!("CARGO_PKG_NAME"), &format!("{test}: namespaces, mounts, cgroups"))
}

/// Case-insensitive substring test.
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// Case-insensitive: does `hay` contain any of `needles`?
pub fn contains_any_ci(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| contains_ci(hay, n))
}

/// Result of one command (`testkit::cli`, shared with the shim's tests and
/// the conformance runner).
#[allow(unused_imports)] // each test binary uses its own part
pub use testkit::cli::{holds_for, wait_child, wait_until, Out};

/// Assertions on an [`Out`] (in the tests, not in testkit: they panic with
/// the whole transcript).
pub trait OutExt {
    fn assert_ok(&self) -> &Self;
    fn assert_fail(&self) -> &Self;
}

impl OutExt for Out {
    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert!(self.ok(), "expected success: {}", self.describe());
        self
    }
    #[track_caller]
    fn assert_fail(&self) -> &Self {
        assert!(!self.timed_out && !self.ok(), "expected failure: {}", self.describe());
        self
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Build a busybox rootfs in `rootfs`.
pub fn make_rootfs(rootfs: &Path) {
    static BUSYBOX: OnceLock<testkit::Busybox> = OnceLock::new();
    BUSYBOX.get_or_init(|| testkit::Busybox::find().expect("busybox-static")).install(rootfs).expect("busybox rootfs");
    for d in ["proc", "sys", "dev", "etc", "tmp", "root", "home/tester"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\ntty:x:5:\nusers:x:100:\ntester:x:1000:\ngrp2000:x:2000:\nnogroup:x:65534:\n").unwrap();
    fs::write(rootfs.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
}

/// The `runc spec` default configuration, except `process.terminal` is false
/// (tests read the container's output from plain files) and `root.readonly`
/// is false (tests that want it set it).
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The seccomp filter that hides the system calls newer kernels brought
/// (`testkit::oldkernel`), built once.
pub fn old_kernel() -> &'static testkit::oldkernel::Filter {
    static F: OnceLock<testkit::oldkernel::Filter> = OnceLock::new();
    F.get_or_init(testkit::oldkernel::Filter::newer_syscalls)
}

/// One test's bundle, state root and container id(s).
pub struct Harness {
    pub name: String,
    /// Temp dir holding everything below.
    pub dir: PathBuf,
    /// Private `--root` for the runtime.
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host dir that [`Harness::share`] bind-mounts at `/shared`.
    pub shared: PathBuf,
    /// The container id of this test.
    pub id: String,
    /// The config.json written by `create`/`run` (edit freely before).
    pub config: Value,
    ids: RefCell<Vec<String>>,
    seq: Cell<u32>,
    /// Extra global flags put before the subcommand (e.g. `--log`).
    pub global_args: Vec<String>,
}

impl Harness {
    /// New harness, or None (after printing why) when not root.
    pub fn new(name: &str) -> Option<Harness> {
        if skip_unless_root(name) {
            return None;
        }
        Some(Self::new_unchecked(name))
    }

    /// New harness without the root check (for tests that need no privileges).
    pub fn new_unchecked(name: &str) -> Harness {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let short: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let dir = PathBuf::from(format!("/tmp/rpct-{}-{}-{}", short, pid, n));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.join("state");
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        let shared = dir.join("shared");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&rootfs).unwrap();
        fs::create_dir_all(&shared).unwrap();
        fs::create_dir_all(dir.join("out")).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        make_rootfs(&rootfs);
        let id = format!("{}-{}-{}", short, pid, n);
        Harness {
            name: name.to_string(),
            dir,
            root,
            bundle,
            rootfs,
            shared,
            id,
            config: default_config(),
            ids: RefCell::new(Vec::new()),
            seq: Cell::new(0),
            global_args: Vec::new(),
        }
    }

    // ----- config editing -----

    /// Set `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Set `process.args` to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Append a mount to `mounts`.
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Bind-mount the host dir [`Harness::shared`] read-write at `/shared`.
    pub fn share(&mut self) -> &mut Self {
        let src = self.shared.to_string_lossy().into_owned();
        self.add_mount(json!({
            "destination": "/shared", "type": "bind", "source": src,
            "options": ["rbind", "rw"]
        }))
    }

    /// Content of a file in the shared dir ("" if missing).
    pub fn shared_file(&self, name: &str) -> String {
        fs::read_to_string(self.shared.join(name)).unwrap_or_default()
    }

    /// Set `process.args` to a long sleep whose command line carries
    /// `marker` (as the shell's $0), for leftover-process checks.
    pub fn marked_sleep(&mut self, marker: &str) -> &mut Self {
        self.args(&["sh", "-c", "sleep 300; exit 0", marker])
    }

    /// Add a namespace entry (replacing one of the same type).
    pub fn set_namespace(&mut self, ns: Value) -> &mut Self {
        let t = ns["type"].as_str().unwrap().to_string();
        let arr = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        arr.retain(|n| n["type"] != t.as_str());
        arr.push(ns);
        self
    }

    /// Remove a namespace type from the config.
    pub fn remove_namespace(&mut self, t: &str) -> &mut Self {
        let arr = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        arr.retain(|n| n["type"] != t);
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.bundle.join("config.json")
    }

    /// Write `self.config` to the bundle's config.json.
    pub fn write_config(&self) {
        let s = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.config_path(), s).unwrap();
    }

    // ----- ids -----

    /// Register an id for cleanup on drop.
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.borrow_mut();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// A second unique id (tracked for cleanup).
    pub fn other_id(&self, suffix: &str) -> String {
        let id = format!("{}-{}", self.id, suffix);
        self.track(&id);
        id
    }

    // ----- running the runtime -----

    fn next_out(&self) -> (PathBuf, PathBuf) {
        let n = self.seq.get();
        self.seq.set(n + 1);
        (self.dir.join(format!("out/{n}.stdout")), self.dir.join(format!("out/{n}.stderr")))
    }

    /// Build the runtime command line `RUNTIME --root ROOT [global] ARGS`.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = testkit::cli::command(&runtime_path(), &self.root, &self.global_args, args);
        if testkit::oldkernel::enabled() {
            // SAFETY: install only makes the prctl (no allocation).
            unsafe { std::os::unix::process::CommandExt::pre_exec(&mut c, || old_kernel().install()) };
        }
        c.current_dir(&self.dir);
        c
    }

    /// Run the runtime with these args (after `--root ROOT`).
    pub fn rt<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        self.rt_timeout(args, CMD_TIMEOUT)
    }

    pub fn rt_timeout<S: AsRef<OsStr>>(&self, args: &[S], timeout: Duration) -> Out {
        let c = self.command(args);
        self.exec(c, timeout)
    }

    /// Run a prepared command with stdout/stderr going to fresh files.
    pub fn exec(&self, c: Command, timeout: Duration) -> Out {
        let (op, ep) = self.next_out();
        let cmd = format!("{:?}", c);
        testkit::cli::run_to_files(c, cmd, op, ep, timeout)
    }

    /// Spawn the runtime in the background, its output going to the files
    /// returned. Wait for it with [`Harness::wait_spawned`].
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> (Child, PathBuf, PathBuf) {
        let (op, ep) = self.next_out();
        let mut c = self.command(args);
        c.stdout(fs::File::create(&op).unwrap());
        c.stderr(fs::File::create(&ep).unwrap());
        let child = c.spawn().expect("spawn runtime");
        (child, op, ep)
    }

    pub fn wait_spawned(&self, mut child: Child, op: PathBuf, ep: PathBuf, timeout: Duration) -> Out {
        let start = Instant::now();
        let (status, timed_out) = wait_child(&mut child, timeout);
        Out::collect("spawned runtime".into(), status, timed_out, op, ep, start.elapsed())
    }

    pub fn bundle_str(&self) -> String {
        self.bundle.to_string_lossy().into_owned()
    }

    /// Write config and `create --bundle B ID`.
    pub fn create(&self) -> Out {
        self.create_id(&self.id.clone(), &[])
    }

    /// Write config and `create --bundle B EXTRA... ID`.
    pub fn create_id(&self, id: &str, extra: &[&str]) -> Out {
        self.write_config();
        self.track(id);
        let b = self.bundle_str();
        let mut a: Vec<&str> = vec!["create", "--bundle", &b];
        a.extend_from_slice(extra);
        a.push(id);
        self.rt(&a)
    }

    /// Write config and run the container in the foreground: the returned
    /// stdout/stderr are the container's.
    pub fn run(&self) -> Out {
        self.run_with(&[])
    }

    pub fn run_with(&self, extra: &[&str]) -> Out {
        self.write_config();
        let id = self.id.clone();
        self.track(&id);
        let b = self.bundle_str();
        let mut a: Vec<&str> = vec!["run", "--bundle", &b];
        a.extend_from_slice(extra);
        a.push(&id);
        self.rt(&a)
    }

    /// Foreground `run`, asserting success, returning the container's stdout.
    #[track_caller]
    pub fn run_ok(&self) -> String {
        let o = self.run();
        assert!(o.ok(), "container run failed: {}", o.describe());
        o.stdout
    }

    /// Write config and `run -d`.
    pub fn run_detached(&self) -> Out {
        self.run_with(&["-d"])
    }

    pub fn start(&self) -> Out {
        self.rt(&["start", &self.id])
    }

    pub fn state(&self) -> Out {
        self.rt(&["state", &self.id])
    }

    /// Parsed `state ID` (panics if the command fails).
    #[track_caller]
    pub fn state_json(&self) -> Value {
        self.state_of(&self.id)
    }

    #[track_caller]
    pub fn state_of(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]);
        assert!(o.ok(), "state failed: {}", o.describe());
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", o.describe()))
    }

    /// `status` field of `state ID`, or None if state fails.
    pub fn status_of(&self, id: &str) -> Option<String> {
        let o = self.rt(&["state", id]);
        if !o.ok() {
            return None;
        }
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v["status"].as_str().map(|s| s.to_string())
    }

    pub fn status(&self) -> Option<String> {
        self.status_of(&self.id)
    }

    /// Wait until `state ID` reports `want`.
    pub fn wait_status(&self, want: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.status().as_deref() == Some(want))
    }

    /// The container's pid from `state` (host pid namespace).
    #[track_caller]
    pub fn pid(&self) -> i32 {
        self.state_json()["pid"].as_i64().expect("pid in state") as i32
    }

    pub fn kill(&self, sig: &str) -> Out {
        self.rt(&["kill", &self.id, sig])
    }

    pub fn delete(&self) -> Out {
        self.rt(&["delete", &self.id])
    }

    pub fn delete_force(&self) -> Out {
        self.rt(&["delete", "--force", &self.id])
    }

    /// Does the state root hold an entry for `id`?
    pub fn state_dir_exists(&self, id: &str) -> bool {
        !id.is_empty() && self.root.join(id).exists()
    }

    /// Entries in the state root (sorted).
    pub fn root_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Assert nothing is left behind for `id`: no state dir, no process whose
    /// command line carries `marker`, no cgroup dir named after the id.
    #[track_caller]
    pub fn assert_no_leftovers(&self, id: &str, marker: &str) {
        assert!(!self.state_dir_exists(id), "state dir left under --root for {id:?}: {:?}", self.root_entries());
        let ok = wait_until(Duration::from_secs(3), || processes_with_marker(marker).is_empty());
        assert!(ok, "leftover processes with marker {marker}: {:?}", processes_with_marker(marker));
        let ok = wait_until(Duration::from_secs(3), || cgroup_dirs_named(id).is_empty());
        assert!(ok, "leftover cgroup dirs for {id}: {:?}", cgroup_dirs_named(id));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let ids: Vec<String> = self.ids.borrow().clone();
        for id in ids.iter().rev() {
            let _ = testkit::cli::delete_force(&runtime_path(), &self.root, &self.global_args, id, Duration::from_secs(10));
        }
        reap_leftovers(&self.dir, &ids);
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Last-resort cleanup for a misbehaving runtime (the leak checks of the
/// tests run before this): SIGKILL processes still in a cgroup named after
/// one of our ids or whose command line names our temp dir, then remove
/// those cgroup dirs. Anything found is reported on stderr.
fn reap_leftovers(dir: &Path, ids: &[String]) {
    let mut cgs: Vec<PathBuf> = Vec::new();
    for id in ids.iter().filter(|i| !i.is_empty() && !i.contains('/') && !i.starts_with('.')) {
        cgs.extend(cgroup_dirs_named(id).into_iter().filter(|p| p.file_name().map(|n| n == id.as_str()).unwrap_or(false)));
    }
    let mut pids: Vec<i32> = processes_with_marker(&format!("{}/", dir.display()));
    for cg in &cgs {
        if let Ok(procs) = fs::read_to_string(cg.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    pids.sort();
    pids.dedup();
    let me = std::process::id() as i32;
    pids.retain(|&p| p > 1 && p != me);
    if pids.is_empty() && cgs.is_empty() {
        return;
    }
    eprintln!("cleanup: runtime left processes {pids:?} and cgroups {cgs:?} behind; removing them");
    for p in &pids {
        // SAFETY: kill takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(*p, libc::SIGKILL);
        }
    }
    wait_until(Duration::from_secs(3), || pids.iter().all(|p| !pid_alive(*p)));
    cgs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for cg in cgs {
        let _ = fs::remove_dir(&cg);
    }
}

#[allow(unused_imports)] // each test binary uses its own part
pub use testkit::{pid_alive, unmount_under};

/// Pids (other than ours) whose command line contains `marker`.
pub fn processes_with_marker(marker: &str) -> Vec<i32> {
    testkit::processes_matching(|cmd| cmd.contains(marker))
}

/// Directories under /sys/fs/cgroup whose name starts with `id`.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if id.is_empty() {
        return found;
    }
    fn walk(d: &Path, id: &str, depth: u32, found: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(id) {
                found.push(p.clone());
            }
            walk(&p, id, depth + 1, found);
        }
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut found);
    found
}

/// Namespace link of this (host-side) test process, e.g. `net:[4026531840]`.
pub fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Namespace link of process `pid`.
pub fn pid_ns(pid: i32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Current hard RLIMIT_NOFILE of the test process.
pub fn host_nofile_hard() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit to a valid, writable struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_max
}

/// (soft, hard) of an rlimit of the test process (RLIM_INFINITY = u64::MAX).
pub fn host_rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit to a valid, writable struct.
    unsafe {
        libc::getrlimit(resource, &mut r);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Value of a `Key:\tvalue` line in a /proc/*/status text.
pub fn status_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Capability name -> bit number.
pub fn cap_bit(name: &str) -> u32 {
    const CAPS: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let n = name.trim_start_matches("CAP_");
    CAPS.iter().position(|c| *c == n).unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// Bitmask of a set of capability names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_bit(n)))
}

/// Parse a hex capability mask as printed in /proc/PID/status.
pub fn parse_hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim(), 16).unwrap_or_else(|_| panic!("bad hex {s:?}"))
}

/// Lines of /proc/self/mounts (or similar) whose mount point is `target`.
pub fn mount_lines<'a>(mounts: &'a str, target: &str) -> Vec<&'a str> {
    mounts.lines().filter(|l| l.split_whitespace().nth(1) == Some(target)).collect()
}

/// Options field of the last mount at `target` in a /proc/mounts text.
pub fn mount_options(mounts: &str, target: &str) -> Option<Vec<String>> {
    mount_lines(mounts, target).last().and_then(|l| l.split_whitespace().nth(3)).map(|o| o.split(',').map(|s| s.to_string()).collect())
}

/// Write a file (creating parent dirs).
pub fn write_file(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let mut f = fs::File::create(p).unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

// ----- cgroup helpers (tests/cgroups.rs) -----

/// The host directory of `pid`'s cgroup in the v1 hierarchy holding
/// `controller` (or the unified tree for `""`), from /proc/PID/cgroup.
pub fn host_cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let hit = if controller.is_empty() { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == controller) };
        if hit {
            let mount = if controller.is_empty() {
                "unified".to_string()
            } else {
                ctrls.split(',').map(|c| c.trim_start_matches("name=")).collect::<Vec<_>>().join(",")
            };
            return Some(Path::new("/sys/fs/cgroup").join(mount).join(path.trim_start_matches('/')));
        }
    }
    None
}

/// Trimmed content of a file in `pid`'s cgroup for `controller`.
pub fn cg_read(pid: i32, controller: &str, file: &str) -> String {
    host_cgroup_dir(pid, controller).and_then(|d| fs::read_to_string(d.join(file)).ok()).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl Harness {
    /// A private cgroup namespace with /sys/fs/cgroup mounted (read-only
    /// unless `rw`): the container sees its own cgroups at the root.
    pub fn cgroupns(&mut self, rw: bool) -> &mut Self {
        self.set_namespace(json!({"type": "cgroup"}));
        let opts = if rw {
            json!(["nosuid", "noexec", "nodev", "relatime", "rw"])
        } else {
            json!(["nosuid", "noexec", "nodev", "relatime", "ro"])
        };
        for m in self.config["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = opts.clone();
            }
        }
        self
    }

    /// Set `linux.resources.KEY`.
    pub fn resource(&mut self, key: &str, v: Value) -> &mut Self {
        self.config["linux"]["resources"][key] = v;
        self
    }
}

/// Receive one message with an fd (SCM_RIGHTS) on a unix socket: the
/// payload and the fd (console sockets, seccomp agents; `testkit::fdpass`).
/// The caller owns the returned fd.
pub fn recv_fd_msg(sock: &impl std::os::fd::AsRawFd) -> std::io::Result<(String, std::os::fd::RawFd)> {
    use std::os::fd::IntoRawFd;
    testkit::recv_fd_msg(sock.as_raw_fd()).map(|(payload, fd)| (payload, fd.into_raw_fd()))
}

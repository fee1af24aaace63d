//! Shared by the integration tests: skipping without /dev/kvm or gcc,
//! building the freestanding test guests (tests/guests/*.c) with gcc, and
//! running rpc-vmm with a deadline.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why the tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Some(format!("/dev/kvm: {e}"));
    }
    match Command::new("gcc").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("gcc not found (needed to build the test guests)".into()),
    }
}

/// Returns true (after recording why: `testkit::skip`) if the test must be
/// skipped.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(why) => {
            testkit::skip!("{test}: {why}");
            true
        }
        None => false,
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rpc-vmm-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles tests/guests/NAME.c into DIR/NAME: a static ELF linked at
/// 1 MiB, entered in long mode at `_start`.
pub fn build_guest(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests").join(format!("{name}.c"));
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args([
            "-ffreestanding",
            "-nostdlib",
            "-static",
            "-fno-pic",
            "-no-pie",
            "-mno-red-zone",
            "-mgeneral-regs-only",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-Os",
            "-Wall",
            "-Werror",
            "-Wno-unused-function",
            "-Wl,-Ttext=0x100000",
            "-Wl,--build-id=none",
            "-Wl,-e,_start",
            "-Wl,-z,noexecstack",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run gcc");
    assert!(o.status.success(), "gcc {name}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// rpc-vmm, as built by cargo for this test run.
pub fn vmm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rpc-vmm")
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Waits for `child` at most `timeout`, killing it past that (and failing
/// the test).
pub fn wait(mut child: Child, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait rpc-vmm") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            panic!("rpc-vmm still running after {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default(), elapsed: start.elapsed() }
}

/// Starts rpc-vmm with `args`, stdout and stderr piped, stdin null.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(vmm_bin()).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn rpc-vmm")
}

/// rpc-vmm running, its stdout read line by line in the background, for
/// tests that act on the host when the guest says so.
pub struct Live {
    child: Child,
    pub stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// stdout so far.
    pub out: String,
    err: std::thread::JoinHandle<String>,
    start: Instant,
}

impl Live {
    /// Starts rpc-vmm with `args`; stdin piped when `stdin`, else null.
    pub fn spawn(args: &[&str], stdin: bool) -> Live {
        Live::spawn_with(args, stdin, |_| {})
    }

    /// [`Live::spawn`], with `setup` changing the command first.
    pub fn spawn_with(args: &[&str], stdin: bool, setup: impl FnOnce(&mut Command)) -> Live {
        let mut cmd = Command::new(vmm_bin());
        cmd.args(args).stdin(if stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn rpc-vmm");
        let out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Live { stdin: child.stdin.take(), child, lines, out: String::new(), err, start: Instant::now() }
    }

    /// Waits at most `timeout` for the stdout line `marker`; false if the
    /// output ended or the time ran out first.
    pub fn wait_line(&mut self, marker: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line == marker;
                    self.out.push_str(&line);
                    self.out.push('\n');
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits at most `timeout` for rpc-vmm to exit (killing it past that,
    /// and failing the test): the whole run, `elapsed` from the spawn.
    pub fn finish(mut self, timeout: Duration) -> Run {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait rpc-vmm") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.out.extend(self.lines.try_iter().map(|l| l + "\n"));
                panic!("rpc-vmm still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}", self.out, self.err.join().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader ends at EOF, once the process is gone.
        self.out.extend(self.lines.iter().map(|l| l + "\n"));
        Run { status, stdout: self.out, stderr: self.err.join().unwrap_or_default(), elapsed: self.start.elapsed() }
    }
}

/// Runs rpc-vmm with `args` to completion (at most `timeout`).
pub fn run(args: &[&str], timeout: Duration) -> Run {
    wait(spawn(args), timeout)
}

/// The virtiofsd binary (rpc-runv/guest/virtiofsd.sh, or `RPC_VIRTIOFSD`)
/// if installed; otherwise skips, saying why, or fails under CI (`CI`).
pub fn virtiofsd(test: &str) -> Option<PathBuf> {
    if skip(test) {
        return None;
    }
    if let Some(p) = std::env::var_os("RPC_VIRTIOFSD") {
        return Some(p.into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/virtiofsd.sh");
    let out = Command::new("bash").arg(&script).arg("--check").output().expect("run virtiofsd.sh --check");
    if out.status.success() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        return Some(path.into());
    }
    let why = format!("virtiofsd is not installed (run {})", script.display());
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}");
    }
    testkit::skip!("{test}: {why}");
    None
}

/// Why the virtio-net tests cannot run here (they need root, `ip`,
/// `unshare` and /dev/net/tun for a tap in a private network namespace),
/// if they cannot.
pub fn net_skip_reason() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (tap in a new network namespace)".into());
    }
    for tool in ["ip", "unshare"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

/// Returns true (after recording why) if a virtio-net test must be skipped.
pub fn net_skip(test: &str) -> bool {
    if skip(test) {
        return true;
    }
    match net_skip_reason() {
        Some(why) => {
            testkit::skip!("{test}: {why}");
            true
        }
        None => false,
    }
}

/// Runs rpc-vmm with `args` and `--net-tap rvm0` in a new network
/// namespace (`unshare -n`) where the tap rvm0 exists, is up and has
/// 10.0.2.1/24: nothing outside sees it, and it goes with the process.
pub fn run_in_netns(args: &[&str], timeout: Duration) -> Run {
    let script = "set -e; ip tuntap add dev rvm0 mode tap; ip addr add 10.0.2.1/24 dev rvm0; ip link set rvm0 up; \
                  exec \"$0\" \"$@\" --net-tap rvm0";
    let child = Command::new("unshare")
        .args(["-n", "sh", "-c", script, vmm_bin()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    wait(child, timeout)
}

/// A running virtiofsd (its own process group, killed with it on drop).
pub struct Backend {
    child: Child,
    log: PathBuf,
}

impl Backend {
    /// Starts `bin` serving `shared` on `socket`, and waits until it listens.
    ///
    /// `--rlimit-nofile 0`: root here lacks CAP_SYS_RESOURCE, so virtiofsd
    /// must not raise its fd limit. The default namespace sandbox (new
    /// mount, pid and net namespaces, pivot_root into the shared dir)
    /// works as root here, so it is kept.
    pub fn start(bin: &Path, shared: &Path, socket: &Path, dir: &Path) -> Backend {
        let log = dir.join("virtiofsd.log");
        let child = Command::new(bin)
            .arg("--rlimit-nofile")
            .arg("0")
            .arg("--socket-path")
            .arg(socket)
            .arg("--shared-dir")
            .arg(shared)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("virtiofsd log"))
            .process_group(0)
            .spawn()
            .expect("spawn virtiofsd");
        let mut b = Backend { child, log };
        let start = Instant::now();
        // The socket file appears at bind(), before listen(): a connect
        // then is refused. virtiofsd logs this line once it listens.
        while !b.log_text().contains("Waiting for vhost-user socket connection") {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("virtiofsd exited ({st}) before listening: {}", b.log_text());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "virtiofsd did not listen: {}", b.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        b
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL to the whole group (virtiofsd forks into its sandbox).
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Sends `sig` to the whole group.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of the process group we created.
        unsafe {
            libc::kill(-(self.child.id() as i32), sig);
        }
    }

    /// Waits (at most `timeout`) for virtiofsd to exit by itself.
    pub fn exited_within(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

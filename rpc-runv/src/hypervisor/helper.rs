//! A vhost-user backend the host starts for a VM (virtiofsd,
//! vhost-device-vsock): started with its sockets checked free, put into
//! the caller's cgroups before it runs, waited for until every socket it
//! serves listens (or it exits, or a deadline passes), and stopped with
//! its whole process tree and its sockets removed.
//!
//! Readiness is read from the kernel, not guessed from a file appearing:
//! a socket file exists between bind() and listen(), and a client such as
//! QEMU gives up at once on ECONNREFUSED. A socket listens when
//! /proc/<pid>/net/unix lists its path with `__SO_ACCEPTCON`; the helper
//! may have moved to its own network namespace (virtiofsd's sandbox does),
//! so the views of the helper, its children and ours are all read.
//! Connecting to find out is no option: virtiofsd serves exactly one
//! client and exits when it leaves.

use super::{Error, Result};
use runtime_core::linux::process as proc_;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Code run in the helper's process between fork and exec. Only
/// async-signal-safe calls (the caller may have threads): no allocation,
/// no locks; raw system calls on fds opened beforehand.
pub type PreExec = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// How to start a helper; the same for every helper.
#[derive(Clone)]
pub struct SpawnOpts {
    /// The helper's stdout and stderr are appended here; None: discarded.
    /// Its tail is quoted in the error when it fails to start.
    pub log: Option<PathBuf>,
    /// `cgroup.procs` files (one per hierarchy on hybrid hosts) the helper
    /// joins before exec, so killing the container's cgroup kills it even
    /// if whoever started it is gone by then. Opened before the fork: a
    /// missing one is an error naming it, and nothing starts.
    pub cgroup_procs: Vec<PathBuf>,
    /// Run last in the child before exec (after setsid and the cgroups).
    pub pre_exec: Option<PreExec>,
    /// How long the helper may take to listen (it is killed past that).
    pub listen_timeout: Duration,
}

impl Default for SpawnOpts {
    fn default() -> SpawnOpts {
        SpawnOpts { log: None, cgroup_procs: Vec::new(), pre_exec: None, listen_timeout: Duration::from_secs(10) }
    }
}

impl std::fmt::Debug for SpawnOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnOpts")
            .field("log", &self.log)
            .field("cgroup_procs", &self.cgroup_procs)
            .field("pre_exec", &self.pre_exec.is_some())
            .field("listen_timeout", &self.listen_timeout)
            .finish()
    }
}

/// What a helper is started as (built by [`super::virtiofsd`] and
/// [`super::vsockd`]).
pub(crate) struct Program<'a> {
    pub name: &'static str,
    pub path: &'a Path,
    pub args: Vec<OsString>,
    /// Sockets it serves: free before, listening when it is ready.
    pub sockets: Vec<PathBuf>,
    /// Files it leaves beside them (virtiofsd's `<socket>.pid`), removed
    /// at stop like the sockets.
    pub extra_files: Vec<PathBuf>,
}

/// A started helper. Dropping it stops it (tests, and callers that fail
/// half-way, leave nothing behind); [`Helper::detach`] hands it over to a
/// later process as a [`HelperRecord`] instead.
#[derive(Debug)]
pub struct Helper {
    program: &'static str,
    child: Option<Child>,
    pid: i32,
    start_time: u64,
    files: Vec<PathBuf>,
}

/// A helper as a later process knows it (e.g. from a container's state):
/// enough to stop it without mistaking another process that reuses its
/// pid, and to remove its files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HelperRecord {
    pub program: String,
    pub pid: i32,
    /// Its start time (clock ticks since boot, /proc/<pid>/stat field 22).
    pub start_time: u64,
    /// Its sockets and other files, removed at stop.
    pub files: Vec<PathBuf>,
}

/// How long a SIGKILLed helper may take to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn spawn(p: Program<'_>, opts: &SpawnOpts) -> Result<Helper> {
    for s in &p.sockets {
        if !s.is_absolute() {
            return Err(Error::BadSpec { field: "socket", why: format!("{} is not an absolute path", s.display()) });
        }
        free_socket_path(s)?;
    }
    let cgroups: Vec<OwnedFd> = opts
        .cgroup_procs
        .iter()
        .map(|c| {
            OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC).open(c).map(OwnedFd::from).map_err(|e| Error::io("opening", c, e))
        })
        .collect::<Result<_>>()?;
    let (out, err) = match &opts.log {
        Some(l) => {
            let f = OpenOptions::new().create(true).append(true).open(l).map_err(|e| Error::io("opening log", l, e))?;
            let f2 = f.try_clone().map_err(|e| Error::io("opening log", l, e))?;
            (Stdio::from(f), Stdio::from(f2))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = Command::new(p.path);
    cmd.args(&p.args).stdin(Stdio::null()).stdout(out).stderr(err);
    let cg_fds: Vec<i32> = cgroups.iter().map(|f| f.as_raw_fd()).collect();
    let user = opts.pre_exec.clone();
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls on fds opened above (cg_fds is
    // allocated before the fork, only read here); the caller's hook is
    // documented to the same rule.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: the VM's lifetime, not the caller's
            // terminal, decides when it ends (no ^C of a shell reaches it).
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &cg_fds {
                // "0": the writing process, on cgroup v1 and v2 alike.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            match &user {
                Some(f) => f(),
                None => Ok(()),
            }
        });
    }
    let child = cmd.spawn().map_err(|e| Error::Spawn { program: p.name, path: p.path.to_path_buf(), source: e })?;
    drop(cgroups);
    let pid = child.id() as i32;
    let start_time = proc_::start_time(pid).unwrap_or(0);
    let mut files = p.sockets.clone();
    files.extend(p.extra_files.iter().cloned());
    let mut h = Helper { program: p.name, child: Some(child), pid, start_time, files };
    h.wait_listening(&p.sockets, opts)?;
    Ok(h)
}

/// A socket path we are about to serve: free, or a dead socket left by a
/// crash (removed). A live socket there, or anything not a socket, is an
/// error: it belongs to someone else.
fn free_socket_path(s: &Path) -> Result<()> {
    match std::fs::symlink_metadata(s) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("checking socket path", s, e)),
        Ok(m) if !m.file_type().is_socket() => Err(Error::io(
            "socket path",
            s,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "something that is not a socket is there"),
        )),
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(s).is_ok() {
                return Err(Error::SocketInUse(s.to_path_buf()));
            }
            std::fs::remove_file(s).map_err(|e| Error::io("removing stale socket", s, e))
        }
    }
}

impl Helper {
    pub fn program(&self) -> &'static str {
        self.program
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its sockets and other files (removed at stop).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Whether it still runs (a helper whose VM went away may exit on
    /// its own: virtiofsd does).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn wait_listening(&mut self, sockets: &[PathBuf], opts: &SpawnOpts) -> Result<()> {
        let deadline = Instant::now() + opts.listen_timeout;
        let mut nap = Duration::from_millis(2);
        loop {
            let exited = match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(st))) => Some(st.to_string()),
                Some(Err(e)) => Some(format!("unknown status: {e}")),
                _ => None,
            };
            if let Some(status) = exited {
                let socket = sockets.first().cloned().unwrap_or_default();
                let _ = self.stop_inner();
                return Err(Error::ExitedEarly { program: self.program, socket, status, log: tail(opts.log.as_deref()) });
            }
            let pending: Vec<&PathBuf> = sockets.iter().filter(|s| !listening(s, self.pid)).collect();
            let Some(first) = pending.first() else { return Ok(()) };
            if Instant::now() >= deadline {
                let socket = first.to_path_buf();
                let _ = self.stop_inner();
                return Err(Error::NotListening {
                    program: self.program,
                    socket,
                    timeout_ms: opts.listen_timeout.as_millis(),
                    log: tail(opts.log.as_deref()),
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    /// What a later process needs to stop it; this handle then forgets it
    /// (no stop on drop). The caller's process should not outlive it long:
    /// the helper stays its child, a zombie once it exits, until the
    /// caller exits too.
    pub fn detach(mut self) -> HelperRecord {
        let r = self.record();
        self.child = None;
        self.files.clear();
        r
    }

    pub fn record(&self) -> HelperRecord {
        HelperRecord { program: self.program.to_string(), pid: self.pid, start_time: self.start_time, files: self.files.clone() }
    }

    /// Kills it and its children, reaps it, removes its sockets and files.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let r = kill_tree(self.pid, self.start_time, self.program);
        if let Some(mut c) = self.child.take() {
            // Gone or not, never leave a zombie behind: wait only when
            // kill_tree saw it go (otherwise wait could block for ever).
            if r.is_ok() {
                let _ = c.wait();
            }
        }
        let f = remove_files(&self.files);
        self.files.clear();
        r.and(f)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_inner();
        }
    }
}

impl HelperRecord {
    /// Kills the helper and its children if it still runs (the pid checked
    /// against its start time) and removes its files. Idempotent.
    pub fn stop(&self) -> Result<()> {
        let r = kill_tree(self.pid, self.start_time, "helper");
        let f = remove_files(&self.files);
        r.and(f)
    }

    /// Whether the very process recorded still runs.
    pub fn running(&self) -> bool {
        proc_::alive(self.pid, self.start_time)
    }
}

/// SIGKILL to `pid` (if it is still the process started at `start`) and
/// every descendant found before, then waits for all to be gone.
fn kill_tree(pid: i32, start: u64, program: &str) -> Result<()> {
    // Descendants first collected, while they are still ours to find:
    // killed, pid's children are reparented and out of sight.
    let mut all = vec![(pid, start)];
    let mut i = 0;
    while i < all.len() {
        let (p, st) = all[i];
        if proc_::alive(p, st) {
            all.extend(children(p).into_iter().filter_map(|c| Some((c, proc_::start_time(c)?))));
        }
        i += 1;
    }
    for &(p, st) in &all {
        let _ = proc_::signal_checked(p, st, libc::SIGKILL);
    }
    for &(p, st) in &all {
        if !runtime_core::linux::probe::wait_gone(p, st, STOP_TIMEOUT) {
            return Err(Error::io(
                "stopping",
                format!("{program} pid {p}"),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "still there 5 s after SIGKILL"),
            ));
        }
    }
    Ok(())
}

/// The children of every thread of `pid` (/proc/<pid>/task/*/children).
fn children(pid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut v = Vec::new();
    for t in rd.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
        }
    }
    v
}

fn remove_files(files: &[PathBuf]) -> Result<()> {
    for f in files {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("removing", f, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `path` is a listening unix socket in the network namespace of
/// `pid`, of one of its children, or ours.
pub(crate) fn listening(path: &Path, pid: i32) -> bool {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut views = vec!["/proc/self".to_string(), format!("/proc/{pid}")];
    views.extend(children(pid).into_iter().map(|c| format!("/proc/{c}")));
    let want = format!(" {}", path.display());
    for v in views {
        // One read per namespace: the same table under another pid.
        let Ok(ns) = std::fs::read_link(format!("{v}/ns/net")) else { continue };
        if seen.contains(&ns) {
            continue;
        }
        seen.push(ns);
        let Ok(table) = std::fs::read_to_string(format!("{v}/net/unix")) else { continue };
        if table.lines().skip(1).any(|l| l.ends_with(&want) && listening_flags(l)) {
            return true;
        }
    }
    false
}

/// The Flags column (the fourth) of a /proc/net/unix line has
/// `__SO_ACCEPTCON` (0x10000) on a listening socket.
fn listening_flags(line: &str) -> bool {
    const SO_ACCEPTCON: u32 = 0x10000;
    line.split_whitespace().nth(3).and_then(|f| u32::from_str_radix(f, 16).ok()).is_some_and(|f| f & SO_ACCEPTCON != 0)
}

/// The last 2 KiB of a log, for an error message.
fn tail(log: Option<&Path>) -> Option<String> {
    let mut f = File::open(log?).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(2048);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from)).ok()?;
    let mut b = Vec::new();
    f.read_to_end(&mut b).ok()?;
    Some(String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_flag_is_read_from_the_fourth_column() {
        assert!(listening_flags("0000000042a885f0: 00000002 00000000 00010000 0001 01 5959321 /tmp/x/fs.sock"));
        assert!(!listening_flags("0000000042a885f0: 00000003 00000000 00000000 0001 03  59593 /tmp/x/fs.sock"));
        assert!(!listening_flags("garbage"));
    }

    #[test]
    fn a_listener_of_ours_is_seen_and_a_bound_socket_is_not() {
        let d = std::env::temp_dir().join(format!("rpc-runv-helper-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("l.sock");
        let _ = std::fs::remove_file(&p);
        assert!(!listening(&p, std::process::id() as i32));
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(listening(&p, std::process::id() as i32));
        drop(l);
        // The file stays, the listener is gone: not listening.
        assert!(p.exists());
        assert!(!listening(&p, std::process::id() as i32));
        // A dead socket is removed, a live one refused, a file left alone.
        free_socket_path(&p).unwrap();
        assert!(!p.exists());
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(matches!(free_socket_path(&p), Err(Error::SocketInUse(_))));
        let f = d.join("file");
        std::fs::write(&f, b"data").unwrap();
        assert!(matches!(free_socket_path(&f), Err(Error::Io { .. })));
        assert_eq!(std::fs::read(&f).unwrap(), b"data");
        let _ = std::fs::remove_dir_all(&d);
    }
}

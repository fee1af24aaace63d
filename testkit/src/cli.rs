//! Driving a runtime binary through its command line, the one way
//! rpc-runc's tests (`Harness`), the shim's tests and the conformance
//! runner (`Ctx`) do it: `RUNTIME --root ROOT [global flags] ARGS`, stdin
//! from /dev/null, stdout and stderr to files, a time limit.
//!
//! Output goes to files, never pipes: `create` and `run -d` hand their
//! stdio to the container, so a pipe would reach EOF only when the
//! container exits. For a foreground `run` the files hold what the
//! container printed.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command, as the caller wants it shown.
    pub cmd: String,
    /// None when it timed out or could not be spawned.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub elapsed: Duration,
}

impl Out {
    /// Read what a finished command wrote to its files.
    pub fn collect(
        cmd: String,
        status: Option<ExitStatus>,
        timed_out: bool,
        stdout_path: PathBuf,
        stderr_path: PathBuf,
        elapsed: Duration,
    ) -> Out {
        Out {
            cmd,
            status,
            timed_out,
            stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
            stdout_path,
            stderr_path,
            elapsed,
        }
    }

    /// Exit code; a death by signal N is 128+N (shell style), a timeout
    /// -1, a command that could not be spawned -2.
    pub fn code(&self) -> i32 {
        match self.status {
            _ if self.timed_out => -1,
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            None => -2,
        }
    }

    pub fn ok(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// The command, its exit code and all it printed.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> code {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.code(),
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.stdout,
            self.stderr
        )
    }

    /// One line: the command, its exit code and the end of its stderr.
    pub fn brief(&self) -> String {
        let mut s = format!("`{}` ", self.cmd);
        if self.timed_out {
            s.push_str(&format!("timed out after {:.0}s", self.elapsed.as_secs_f64()));
        } else {
            s.push_str(&format!("exited {}", self.code()));
        }
        let e = tail(&self.stderr, 2);
        if !e.is_empty() {
            s.push_str(": ");
            s.push_str(&e);
        }
        s
    }

    /// stdout and stderr together (for message checks).
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Re-read the stdout file (a detached container may still be writing it).
    pub fn reread_stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
}

/// `RUNTIME --root ROOT GLOBAL... ARGS...`, stdin from /dev/null.
pub fn command<G: AsRef<OsStr>, S: AsRef<OsStr>>(runtime: &Path, root: &Path, global: &[G], args: &[S]) -> Command {
    let mut c = Command::new(runtime);
    c.arg("--root").arg(root);
    c.args(global);
    c.args(args);
    c.stdin(Stdio::null());
    c
}

/// Run `c` with stdout and stderr going to fresh files at these paths,
/// for at most `timeout` (then its process group, if it leads one, and
/// it are killed). `cmd` is how the command is shown.
pub fn run_to_files(mut c: Command, cmd: String, stdout_path: PathBuf, stderr_path: PathBuf, timeout: Duration) -> Out {
    let start = Instant::now();
    let files = File::create(&stdout_path).and_then(|o| Ok((o, File::create(&stderr_path)?)));
    let (so, se) = match files {
        Ok(f) => f,
        Err(e) => {
            let mut o = Out::collect(cmd, None, false, stdout_path, stderr_path, Duration::ZERO);
            o.stderr = format!("cannot create the output files: {e}");
            return o;
        }
    };
    c.stdout(so).stderr(se);
    let (status, timed_out) = match c.spawn() {
        Ok(mut child) => {
            drop(c); // close our copies of the files
            wait_child(&mut child, timeout)
        }
        Err(e) => {
            let _ = fs::write(&stderr_path, format!("cannot spawn {cmd}: {e}"));
            (None, false)
        }
    };
    Out::collect(cmd, status, timed_out, stdout_path, stderr_path, start.elapsed())
}

/// Wait for `child` at most `timeout`; on timeout kill its process group
/// (when it leads one: `process_group(0)`) and it. Returns its status and
/// whether it timed out. Waits on a pidfd where the kernel has them, so
/// a quick command costs no polling delay.
pub fn wait_child(child: &mut Child, timeout: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = Instant::now() + timeout;
    let pidfd = pidfd_open(child.id() as i32);
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return (Some(st), false),
            Ok(None) => {}
            Err(_) => return (None, false),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let pid = child.id() as i32;
            // SAFETY: getpgid and kill on our own, not yet reaped child
            // (its pid cannot have been reused).
            unsafe {
                if libc::getpgid(pid) == pid {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            return (child.wait().ok(), true);
        }
        match &pidfd {
            Some(fd) => {
                crate::console::wait_readable(std::os::fd::AsRawFd::as_raw_fd(fd), left);
            }
            None => {
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// A pidfd for `pid` (readable when it exits), or None on kernels before
/// 5.3.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a new descriptor, ours alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Poll `f` until it returns true or `timeout` passes; its last answer.
/// For conditions no event announces (a status in `state`, a file a
/// container writes); never a fixed sleep.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Does `f` hold throughout `window` (checked every 10 ms)? False at the
/// first check where it does not, so a test proving that something did
/// NOT happen fails as soon as it happens, instead of sleeping a fixed
/// time and looking once.
pub fn holds_for(window: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + window;
    loop {
        if !f() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

/// The ids `RUNTIME --root ROOT list -q` prints (none if it fails).
pub fn list_ids(runtime: &Path, root: &Path) -> Vec<String> {
    let out = command(runtime, root, &[] as &[&str], &["list", "-q"]).stderr(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
        }
        _ => Vec::new(),
    }
}

/// `RUNTIME --root ROOT delete --force ID`, output discarded, at most
/// `timeout`: the cleanup every driver does on drop.
pub fn delete_force(runtime: &Path, root: &Path, global: &[impl AsRef<OsStr>], id: &str, timeout: Duration) -> io::Result<bool> {
    let mut c = command(runtime, root, global, &["delete", "--force", id]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut ch = c.spawn()?;
    let (st, _) = wait_child(&mut ch, timeout);
    Ok(st.is_some_and(|s| s.success()))
}

/// Last `n` non-empty lines, joined, cleaned of runc's log prefixes, cut to
/// a readable length.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<String> = s.lines().map(|l| l.trim()).filter(|l| !l.is_empty()).map(clean_log_line).collect();
    let start = lines.len().saturating_sub(n);
    cut(&lines[start..].join(" | "), 300)
}

/// `time="..." level=error msg="x"` -> `x`; a JSON log line -> its msg.
fn clean_log_line(l: &str) -> String {
    if let Some(i) = l.find("msg=\"") {
        let rest = &l[i + 5..];
        let end = rest.rfind('"').unwrap_or(rest.len());
        return rest[..end].replace("\\\"", "\"");
    }
    if l.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
    }
    l.to_string()
}

/// At most `max` characters, with an ellipsis when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut o: String = s.chars().take(max).collect();
    o.push('…');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("testkit-cli-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn output_and_codes() {
        let d = tmp("codes");
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = run_to_files(c, "sh".into(), d.join("1.out"), d.join("1.err"), Duration::from_secs(10));
        assert_eq!((o.code(), o.ok(), o.stdout.as_str(), o.stderr.as_str()), (3, false, "out\n", "err\n"));
        let mut c = Command::new("sh");
        c.args(["-c", "kill -9 $$"]);
        assert_eq!(run_to_files(c, "sh".into(), d.join("2.out"), d.join("2.err"), Duration::from_secs(10)).code(), 137);
        let o = run_to_files(Command::new("/nonexistent/x"), "x".into(), d.join("3.out"), d.join("3.err"), Duration::from_secs(1));
        assert_eq!(o.code(), -2);
        assert!(o.stderr.contains("cannot spawn"), "{}", o.stderr);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        use std::os::unix::process::CommandExt;
        let d = tmp("timeout");
        let mut c = Command::new("sh");
        // the grandchild would keep the group alive without the group kill
        c.args(["-c", "sleep 300 & echo $! > bg; wait"]).current_dir(&d).process_group(0);
        let t0 = Instant::now();
        let o = run_to_files(c, "sh".into(), d.join("o"), d.join("e"), Duration::from_millis(300));
        assert!(o.timed_out && o.code() == -1, "{}", o.describe());
        assert!(t0.elapsed() < Duration::from_secs(5));
        let bg: i32 = fs::read_to_string(d.join("bg")).unwrap().trim().parse().unwrap();
        assert!(wait_until(Duration::from_secs(5), || !crate::pid_alive(bg)), "background sleep {bg} survived");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn holds_for_stops_at_the_first_violation() {
        let t0 = Instant::now();
        assert!(holds_for(Duration::from_millis(50), || true));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        let t0 = Instant::now();
        let mut n = 0;
        assert!(!holds_for(Duration::from_secs(30), || {
            n += 1;
            n < 3
        }));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn log_lines_are_cleaned() {
        assert_eq!(tail("time=\"x\" level=error msg=\"bad \\\"id\\\"\"\n", 1), "bad \"id\"");
        assert_eq!(tail("{\"level\":\"error\",\"msg\":\"no such \\\"c\\\"\",\"time\":\"t\"}\n", 1), "no such \"c\"");
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(cut("abcdef", 3), "abc…");
    }
}

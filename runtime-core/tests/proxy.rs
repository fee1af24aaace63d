//! The host-side proxy (runtime-core's `proxy`), driven as a backend whose
//! processes are not host children will drive it: the inner side is a
//! unix socket to a server process (standing in for a guest agent or an
//! exec server) that runs the real process, here `sh -c SCRIPT`; a
//! "runtime" process spawns the proxy with its stdio and exits, as
//! `exec -d --pid-file` does; this process is the subreaper (the shim)
//! that signals and reaps the proxy.
//!
//! Control protocol, one line each: proxy -> server `sig N`, `winsz R C`;
//! server -> proxy `exit code N` or `exit signal N`. The server logs what
//! it was asked to a file the cases read.
//!
//! (No libtest harness: the cases fork, so they run one after the other
//! in a single-threaded process.)

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use runtime_core::proxy::{self, Exit, Inner};

const LIMIT: Duration = Duration::from_secs(10);

// ----- the inner side, over the control socket -----

struct SocketInner {
    ctl: UnixStream,
    buf: Vec<u8>,
    stdio: Option<proxy::Stdio>,
}

fn io_err(context: &str, source: std::io::Error) -> runtime_core::Error {
    runtime_core::Error::Io { context: context.into(), source }
}

impl SocketInner {
    fn send(&mut self, line: String) -> runtime_core::Result<()> {
        self.ctl.write_all(line.as_bytes()).map_err(|e| io_err("control socket", e))
    }
}

impl Inner for SocketInner {
    fn stdio(&mut self) -> proxy::Stdio {
        self.stdio.take().unwrap_or_default()
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.ctl.as_raw_fd())
    }

    fn exit(&mut self) -> runtime_core::Result<Option<Exit>> {
        let mut b = [0u8; 256];
        let mut eof = false;
        loop {
            match self.ctl.read(&mut b) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("control socket", e)),
            }
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        for line in text.lines() {
            let n = |s: &str| s.trim().parse::<i32>().unwrap();
            if let Some(c) = line.strip_prefix("exit code ") {
                return Ok(Some(Exit::Code(n(c))));
            }
            if let Some(s) = line.strip_prefix("exit signal ") {
                return Ok(Some(Exit::Signal(n(s))));
            }
        }
        // The status may come just before the close: only then is it lost.
        if eof {
            return Err(io_err("control socket", std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the server")));
        }
        Ok(None)
    }

    fn signal(&mut self, sig: i32) -> runtime_core::Result<()> {
        self.send(format!("sig {sig}\n"))
    }

    fn resize(&mut self, rows: u16, cols: u16) -> runtime_core::Result<()> {
        self.send(format!("winsz {rows} {cols}\n"))
    }
}

// ----- processes -----

fn fork() -> i32 {
    // SAFETY: this process is single-threaded (no libtest harness).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

/// In a forked child: close every fd above 2 but `keep`.
fn close_others(keep: &[RawFd]) {
    for fd in 3..1024 {
        if !keep.contains(&fd) {
            // SAFETY: closing fds of this (forked) process.
            unsafe { libc::close(fd) };
        }
    }
}

fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open {pid}: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd we own.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Wait (poll) until `fd` is readable; false at the deadline.
fn readable(fd: RawFd, until: Instant) -> bool {
    let left = until.saturating_duration_since(Instant::now()).as_millis() as i32;
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, left) > 0 }
}

fn log_line(log: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    writeln!(f, "{line}").unwrap();
}

/// The server: run `sh -c script` on the given stdio, obey the control
/// socket, report the exit. Never returns.
// (Every way out of its loop waits for the child, then _exits: the lint
// does not follow the loop.)
#[allow(clippy::zombie_processes)]
fn serve(mut ctl: UnixStream, stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd, script: &str, log: &Path) -> ! {
    let mut child = Command::new("sh").arg("-c").arg(script).stdin(stdin).stdout(stdout).stderr(stderr).spawn().unwrap();
    let pid = child.id() as i32;
    log_line(log, &format!("remote-pid {pid}"));
    let done = pidfd(pid);
    let mut buf = Vec::new();
    loop {
        let mut fds = [
            libc::pollfd { fd: ctl.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: done.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: a valid pollfd array.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if fds[0].revents != 0 {
            let mut b = [0u8; 256];
            let n = ctl.read(&mut b).unwrap_or(0);
            if n == 0 {
                // The proxy is gone: so is the process.
                let _ = child.kill();
                let _ = child.wait();
                // SAFETY: leave at once.
                unsafe { libc::_exit(0) };
            }
            buf.extend_from_slice(&b[..n]);
            while let Some(i) = buf.iter().position(|&c| c == b'\n') {
                let line: String = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..=i);
                if let Some(s) = line.strip_prefix("sig ") {
                    let sig: i32 = s.parse().unwrap();
                    log_line(log, &format!("signal {sig}"));
                    // SAFETY: plain syscall to our child.
                    unsafe { libc::kill(pid, sig) };
                } else if let Some(w) = line.strip_prefix("winsz ") {
                    log_line(log, &format!("resize {w}"));
                }
            }
        }
        if fds[1].revents != 0 {
            use std::os::unix::process::ExitStatusExt;
            let st = child.wait().unwrap();
            let msg = match (st.code(), st.signal()) {
                (Some(c), _) => format!("exit code {c}\n"),
                (None, Some(s)) => format!("exit signal {s}\n"),
                _ => unreachable!(),
            };
            let _ = ctl.write_all(msg.as_bytes());
            // SAFETY: leave at once.
            unsafe { libc::_exit(0) };
        }
    }
}

/// One proxied process and the host ends of the proxy's stdio.
struct Case {
    log: PathBuf,
    dir: PathBuf,
    server: i32,
    proxy: i32,
    /// The proxy's stdin (None when it is a terminal).
    stdin: Option<std::fs::File>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    out: Vec<u8>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: valid array.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

impl Case {
    /// Start the server with `script` and the proxy for it. `tty`: the
    /// proxy's stdin is this terminal (and the inner side has one).
    fn start(name: &str, script: &str, tty: Option<RawFd>) -> Case {
        let dir = std::env::temp_dir().join(format!("rpc-proxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        std::fs::write(&log, "").unwrap();
        let (ctl_a, ctl_b) = pair();
        let (in_a, in_b) = pair();
        let (out_a, out_b) = pair();
        let (err_a, err_b) = pair();
        let server = fork();
        if server == 0 {
            close_others(&[ctl_b.as_raw_fd(), in_b.as_raw_fd(), out_b.as_raw_fd(), err_b.as_raw_fd()]);
            serve(ctl_b, in_b.into(), out_b.into(), err_b.into(), script, &log);
        }
        drop((ctl_b, in_b, out_b, err_b));
        let (stdin_r, stdin_w) = pipe();
        let (stdout_r, stdout_w) = pipe();
        let (stderr_r, stderr_w) = pipe();
        let (pid_r, pid_w) = pipe();
        // The "runtime": spawns the proxy with its stdio, says its pid
        // (the pid file) and exits.
        let runtime = fork();
        if runtime == 0 {
            let stdin = tty.unwrap_or(stdin_r.as_raw_fd());
            // SAFETY: dup2 onto this process's stdio.
            unsafe {
                libc::dup2(stdin, 0);
                libc::dup2(stdout_w.as_raw_fd(), 1);
                libc::dup2(stderr_w.as_raw_fd(), 2);
            }
            let keep = [ctl_a.as_raw_fd(), in_a.as_raw_fd(), out_a.as_raw_fd(), err_a.as_raw_fd(), pid_w.as_raw_fd()];
            close_others(&keep);
            ctl_a.set_nonblocking(true).unwrap();
            let stdio =
                proxy::Stdio { stdin: Some(in_a.into()), stdout: Some(out_a.into()), stderr: Some(err_a.into()), terminal: tty.is_some() };
            let mut inner = SocketInner { ctl: ctl_a, buf: vec![], stdio: Some(stdio) };
            let code = match proxy::spawn(&mut inner) {
                Ok(pid) => {
                    let mut f = std::fs::File::from(pid_w);
                    let _ = f.write_all(pid.to_string().as_bytes());
                    0
                }
                Err(_) => 1,
            };
            // SAFETY: leave at once (the proxy holds what it needs).
            unsafe { libc::_exit(code) };
        }
        drop((ctl_a, in_a, out_a, err_a, stdout_w, stderr_w, pid_w, stdin_r));
        let mut st = 0;
        // SAFETY: valid out-pointer; `runtime` is our child.
        unsafe { libc::waitpid(runtime, &mut st, 0) };
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "the runtime could not spawn the proxy");
        // One read, not to EOF: the proxy inherited the write end (a
        // real runtime writes a file).
        let mut b = [0u8; 32];
        let n = std::fs::File::from(pid_r).read(&mut b).unwrap();
        let proxy: i32 = String::from_utf8_lossy(&b[..n]).parse().expect("the proxy's pid");
        let stdin = if tty.is_some() { None } else { Some(std::fs::File::from(stdin_w)) };
        Case { log, dir, server, proxy, stdin, stdout: stdout_r, stderr: stderr_r, out: vec![] }
    }

    /// Read the proxy's stdout until it holds `what`.
    #[track_caller]
    fn expect_out(&mut self, what: &str) {
        let until = Instant::now() + LIMIT;
        while !String::from_utf8_lossy(&self.out).contains(what) {
            assert!(readable(self.stdout.as_raw_fd(), until), "no {what:?} from the proxy; got {:?}", String::from_utf8_lossy(&self.out));
            let mut b = [0u8; 4096];
            // SAFETY: valid buffer.
            let n = unsafe { libc::read(self.stdout.as_raw_fd(), b.as_mut_ptr() as *mut _, b.len()) };
            assert!(n > 0, "the proxy's stdout closed before {what:?}; got {:?}", String::from_utf8_lossy(&self.out));
            self.out.extend_from_slice(&b[..n as usize]);
        }
    }

    /// Wait until the server's log has `line`.
    #[track_caller]
    fn expect_log(&self, line: &str) {
        let until = Instant::now() + LIMIT;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.lines().any(|l| l == line) {
                return;
            }
            assert!(Instant::now() < until, "the server was never asked {line:?}; its log:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain syscall to the proxy's pid.
        assert_eq!(unsafe { libc::kill(self.proxy, sig) }, 0);
    }

    /// Reap the proxy (ours: we are the subreaper); its wait status, and
    /// all it wrote to stdout and stderr.
    #[track_caller]
    fn finish(mut self) -> (i32, String, String) {
        let pfd = pidfd(self.proxy);
        assert!(readable(pfd.as_raw_fd(), Instant::now() + LIMIT), "the proxy did not exit");
        let mut st = 0;
        // SAFETY: valid out-pointer; the proxy is our child now.
        assert_eq!(unsafe { libc::waitpid(self.proxy, &mut st, 0) }, self.proxy);
        let mut out = std::mem::take(&mut self.out);
        std::fs::File::from(self.stdout.try_clone().unwrap()).read_to_end(&mut out).unwrap();
        let mut err = Vec::new();
        std::fs::File::from(self.stderr.try_clone().unwrap()).read_to_end(&mut err).unwrap();
        (st, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        for pid in log.lines().filter_map(|l| l.strip_prefix("remote-pid ")).filter_map(|p| p.parse::<i32>().ok()) {
            // SAFETY: plain syscall; a leftover of this case, if any.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for pid in [self.server, self.proxy] {
            // SAFETY: our children; reap whatever is left.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn exited(st: i32, code: i32, ctx: &str) {
    assert!(libc::WIFEXITED(st), "the proxy did not exit but was killed by signal {}: {ctx}", libc::WTERMSIG(st));
    assert_eq!(libc::WEXITSTATUS(st), code, "{ctx}");
}

// ----- the cases -----

/// stdout and stderr are relayed, stdin is relayed and then closed (cat
/// ends only at its EOF), and the exit code is the proxy's.
fn relays_stdio_closes_stdin_and_exits_with_the_code() {
    let mut c = Case::start("stdio", "echo out-line; echo err-line >&2; cat; exit 5", None);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"in-line\n").unwrap();
    drop(stdin);
    let (st, out, err) = c.finish();
    let ctx = format!("stdout {out:?}, stderr {err:?}");
    exited(st, 5, &ctx);
    assert_eq!(out, "out-line\nin-line\n", "{ctx}");
    assert_eq!(err, "err-line\n", "{ctx}");
}

/// SIGTERM sent to the proxy reaches the process, which handles it.
fn forwards_sigterm() {
    let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 1 & wait $!; done";
    let mut c = Case::start("term", script, None);
    c.expect_out("ready");
    c.signal(libc::SIGTERM);
    c.expect_log("signal 15");
    let (st, out, err) = c.finish();
    let ctx = format!("stdout {out:?}, stderr {err:?}");
    exited(st, 3, &ctx);
    assert!(out.contains("got-term"), "{ctx}");
}

/// A process killed by signal N: the proxy exits with 128+N.
fn a_signal_death_is_128_plus_n() {
    let mut c = Case::start("sig", "echo ready; exec sleep 100", None);
    c.expect_out("ready");
    c.signal(libc::SIGUSR1);
    let (st, out, err) = c.finish();
    exited(st, 128 + libc::SIGUSR1, &format!("stdout {out:?}, stderr {err:?}"));
}

/// With a terminal: its size is relayed at once and after SIGWINCH.
fn relays_the_terminal_size() {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: valid out-pointers; no name, default termios and size.
    assert_eq!(unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) }, 0);
    // SAFETY: fresh fds we own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    proxy::set_size(master.as_raw_fd(), 40, 100).unwrap();
    let mut c = Case::start("tty", "echo ready; exec sleep 100", Some(slave.as_raw_fd()));
    drop(slave);
    c.expect_out("ready");
    c.expect_log("resize 40 100");
    proxy::set_size(master.as_raw_fd(), 50, 132).unwrap();
    c.signal(libc::SIGWINCH);
    c.expect_log("resize 50 132");
    c.signal(libc::SIGTERM);
    let (st, out, err) = c.finish();
    exited(st, 128 + libc::SIGTERM, &format!("stdout {out:?}, stderr {err:?}"));
    drop(master);
}

/// The server dies (the VM, the agent): the proxy does not wait for the
/// process (still running, holding its stdout) but exits with LOST and
/// says why.
fn exits_lost_when_the_inner_side_vanishes() {
    let mut c = Case::start("lost", "echo ready; exec sleep 100", None);
    c.expect_out("ready");
    // SAFETY: plain syscall to our child.
    unsafe { libc::kill(c.server, libc::SIGKILL) };
    let (st, out, err) = c.finish();
    let ctx = format!("stdout {out:?}, stderr {err:?}");
    exited(st, proxy::LOST, &ctx);
    assert!(err.contains("lost the process"), "{ctx}");
}

fn main() {
    // The proxy outlives the "runtime" that spawned it: we reap it, as the
    // shim does.
    // SAFETY: plain prctl.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let tests: [(&str, fn()); 5] = [
        ("relays_stdio_closes_stdin_and_exits_with_the_code", relays_stdio_closes_stdin_and_exits_with_the_code),
        ("forwards_sigterm", forwards_sigterm),
        ("a_signal_death_is_128_plus_n", a_signal_death_is_128_plus_n),
        ("relays_the_terminal_size", relays_the_terminal_size),
        ("exits_lost_when_the_inner_side_vanishes", exits_lost_when_the_inner_side_vanishes),
    ];
    let (mut passed, mut failed) = (0, vec![]);
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!("\nproxy: {passed} passed; {} failed {failed:?}", failed.len());
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}

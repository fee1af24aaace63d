//! The host side of a container process, written once: relay stdio (or a
//! terminal, with its size), forward signals, and end with the process's
//! exit status (128+N for a signal N).
//!
//! `run` and `exec` in the foreground relay for a process that is their own
//! child (`lifecycle::run::forward`). Backends whose processes are not host
//! children (a process in a micro-VM's guest, one started by an exec
//! server) implement [`Inner`] over their channel and [`spawn`] a proxy
//! process: its host pid is what `exec -d --pid-file` reports, so that the
//! shim or conmon can signal it (the signal reaches the inner process) and
//! reap it (its status is the inner process's).
//!
//! When the inner side vanishes without a status (its channel closed, the
//! VM died), the proxy says so on stderr and its status is [`LOST`], the
//! status containerd reports for an exit it could not learn.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Error, Result};

/// The status of a proxy whose inner side vanished without one
/// (containerd's `UnknownExitStatus`).
pub const LOST: i32 = 255;

/// How the inner process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// exit(2) with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// As a shell reports it: the code, or 128+N for signal N.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// The inner process's stdio as fds the proxy reads and writes. With a
/// terminal, `stdin` and `stdout` are usually both the pty master (two
/// handles of it) and `stderr` is None.
#[derive(Default)]
pub struct Stdio {
    /// What the host's stdin is written to; closed at the host's EOF.
    pub stdin: Option<OwnedFd>,
    /// Read, and written to the host's stdout.
    pub stdout: Option<OwnedFd>,
    /// Read, and written to the host's stderr.
    pub stderr: Option<OwnedFd>,
    /// The inner process has a terminal: the host's is put in raw mode and
    /// its size relayed (at once and on every SIGWINCH).
    pub terminal: bool,
}

/// The inner side of a proxied process: whatever reaches it (a host
/// child, an agent in a guest, an exec server).
pub trait Inner {
    /// Its stdio endpoints; taken once, before the relay starts.
    fn stdio(&mut self) -> Stdio;
    /// A fd that turns readable when [`Inner::exit`] may have news, or
    /// None when news come as SIGCHLD (a child of the proxy's process).
    fn wake_fd(&self) -> Option<RawFd>;
    /// Without blocking: Some once the process has ended, None while it
    /// runs; an error when the inner side is gone without a status.
    fn exit(&mut self) -> Result<Option<Exit>>;
    /// Deliver `sig` to the process.
    fn signal(&mut self, sig: i32) -> Result<()>;
    /// The terminal's size changed (only called with `Stdio::terminal`).
    fn resize(&mut self, rows: u16, cols: u16) -> Result<()>;
}

/// The signals a relay must not take over: the synchronous ones, which
/// mean a fault of the proxy itself.
const FAULTS: [Signal; 7] =
    [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGABRT, Signal::SIGTRAP, Signal::SIGSYS];

fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    for s in FAULTS {
        set.remove(s);
    }
    set
}

/// Block every signal we forward, before the process can exit: a SIGCHLD
/// (or a signal meant for it) delivered before the relay reads its
/// signalfd would otherwise be lost, or kill us.
pub fn block_all() -> Result<SigSet> {
    let set = forwardable();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::Sys { context: "sigprocmask".into(), source: e })?;
    Ok(set)
}

/// Fork a host process that relays for `inner` until it ends, and exits
/// with its status ([`Exit::status`], or [`LOST`]). Returns its pid, for
/// the caller's pid file; the caller's subreaper reaps it.
///
/// The proxy inherits the caller's fds: stdio is what it relays to, and
/// the caller closes (or marks close-on-exec and never execs) anything
/// else the proxy must not hold. The caller must be single-threaded.
pub fn spawn(inner: &mut dyn Inner) -> Result<i32> {
    spawn_then(inner, None)
}

/// [`spawn`] for an inner process with a terminal whose host side is the
/// pty `slave` (its master went to the caller's console socket): the
/// proxy makes the slave its controlling terminal in a session of its own
/// and its stdio, so it gets SIGWINCH when the master is resized and
/// relays the size.
pub fn spawn_tty(inner: &mut dyn Inner, slave: OwnedFd) -> Result<i32> {
    spawn_then(inner, Some(slave))
}

fn spawn_then(inner: &mut dyn Inner, slave: Option<OwnedFd>) -> Result<i32> {
    // Blocked before the fork, so that a signal sent to the proxy's pid at
    // once is forwarded rather than acted on; restored in the caller.
    let set = forwardable();
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
        .map_err(|e| Error::Sys { context: "sigprocmask".into(), source: e })?;
    // SAFETY: the caller is single-threaded (documented above).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if let Some(t) = &slave {
            let fd = t.as_raw_fd();
            // SAFETY: the child's own session, terminal and stdio; plain
            // calls on a fd it holds.
            let ok = unsafe { libc::setsid() >= 0 && libc::ioctl(fd, libc::TIOCSCTTY, 0) == 0 && (0..3).all(|n| libc::dup2(fd, n) == n) };
            if !ok {
                say(&format!("proxy: taking the terminal: {}", std::io::Error::last_os_error()));
                // SAFETY: leave without running the caller's destructors.
                unsafe { libc::_exit(LOST) };
            }
        }
        drop(slave);
        let status = match relay(inner, &set) {
            Ok(s) => s,
            Err(e) => {
                say(&format!("proxy: {e}"));
                LOST
            }
        };
        // SAFETY: leave without running the caller's destructors.
        unsafe { libc::_exit(status) };
    }
    let forked =
        if pid < 0 { Err(Error::Io { context: "fork of the proxy".into(), source: std::io::Error::last_os_error() }) } else { Ok(pid) };
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    forked
}

fn say(msg: &str) {
    crate::log::error(msg);
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{msg}\n").as_bytes());
}

/// The host terminal's mode, restored when the relay ends.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
        if let Some(t) = &saved {
            let mut r = t.clone();
            nix::sys::termios::cfmakeraw(&mut r);
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &r);
        }
        RawMode(saved)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

/// The size of the host's terminal (on stdin), if it is one.
fn host_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data, filled by the ioctl.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer for TIOCGWINSZ.
    (unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Set the size of the terminal whose master (or slave) is `fd`.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: a valid winsize for TIOCSWINSZ.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(Error::Io { context: format!("setting the terminal size to {rows}x{cols}"), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

fn resize(inner: &mut dyn Inner) {
    if let Some((rows, cols)) = host_size() {
        if let Err(e) = inner.resize(rows, cols) {
            crate::log::warn(&format!("proxy: relaying the terminal size: {e}"));
        }
    }
}

/// Write all of `buf` to `to`; false when it cannot take more. A socket
/// gets MSG_NOSIGNAL: a closed peer must not raise a SIGPIPE that the
/// relay would then forward.
fn write_all(to: RawFd, mut buf: &[u8]) -> bool {
    let mut socket = true;
    while !buf.is_empty() {
        let n = if socket {
            // SAFETY: valid buffer range.
            let n = unsafe { libc::send(to, buf.as_ptr() as *const _, buf.len(), libc::MSG_NOSIGNAL) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
                socket = false;
                continue;
            }
            n
        } else {
            // SAFETY: valid buffer range.
            unsafe { libc::write(to, buf.as_ptr() as *const _, buf.len()) }
        };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Copy what `from` has to `to`; false at EOF or on an error either side.
fn copy(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    let n = loop {
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(from, buf.as_mut_ptr() as *mut _, buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break n;
    };
    n > 0 && write_all(to, &buf[..n as usize])
}

/// After the exit: what the process wrote before it is already queued on
/// our side; take it without waiting for an EOF that a process it left
/// behind (holding the same stdout) may never give.
fn drain(from: &OwnedFd, to: RawFd) {
    // SAFETY: setting O_NONBLOCK on our own handle.
    unsafe { libc::fcntl(from.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    while copy(from.as_raw_fd(), to) {}
}

/// Relay for `inner` until it ends; its status. `set` is what the caller
/// blocked ([`block_all`]): those signals are read here, and all but
/// SIGCHLD, SIGWINCH (the terminal's size), SIGURG (Go's preemption) and
/// a SIGPIPE raised by our own writes are forwarded.
pub fn relay(inner: &mut dyn Inner, set: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(|e| Error::Sys { context: "signalfd".into(), source: e })?;
    let Stdio { mut stdin, mut stdout, mut stderr, terminal } = inner.stdio();
    let _raw = if terminal {
        let r = RawMode::enter();
        resize(inner);
        r
    } else {
        RawMode(None)
    };
    // SAFETY: plain call.
    let me = unsafe { libc::getpid() } as u32;
    loop {
        // The exit first: it may be pending already.
        let ended = match inner.exit() {
            Ok(Some(x)) => Some(Ok(x.status())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        if let Some(r) = ended {
            for (from, to) in [(&stdout, 1), (&stderr, 2)] {
                if let Some(f) = from {
                    drain(f, to);
                }
            }
            return r.or_else(|e| {
                say(&format!("proxy: lost the process: {e}; its exit status is unknown ({LOST})"));
                Ok(LOST)
            });
        }
        let fd = |o: &Option<OwnedFd>| o.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut fds = [
            libc::pollfd { fd: sfd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: inner.wake_fd().unwrap_or(-1), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if stdin.is_some() { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fd(&stdout), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fd(&stderr), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: a valid pollfd array.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok(Some(si)) = sfd.read_signal() {
                let sig = si.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD | libc::SIGURG => {}
                    libc::SIGWINCH if terminal => resize(inner),
                    libc::SIGWINCH => {}
                    libc::SIGPIPE if si.ssi_pid == me => {}
                    _ => {
                        if let Err(e) = inner.signal(sig) {
                            crate::log::warn(&format!("proxy: forwarding signal {sig}: {e}"));
                        }
                    }
                }
            }
        }
        // Host EOF (or a broken inner stdin): close it, so the process
        // sees its EOF too.
        if fds[2].revents != 0 && !stdin.as_ref().is_some_and(|i| copy(0, i.as_raw_fd())) {
            stdin = None;
        }
        if fds[3].revents != 0 && !stdout.as_ref().is_some_and(|o| copy(o.as_raw_fd(), 1)) {
            stdout = None;
        }
        if fds[4].revents != 0 && !stderr.as_ref().is_some_and(|o| copy(o.as_raw_fd(), 2)) {
            stderr = None;
        }
    }
}

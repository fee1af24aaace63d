//! `run`: create + start, and in the foreground wait for the container's
//! process, forwarding signals (and a terminal) to it, then delete it.
//! Exits with the process's status (signal N gives 128+N).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::{create, CreateArgs};
use super::{delete, start, Runtime};
use crate::error::{Error, Result};
use crate::linux::tty;

/// Block every signal we forward, before the container can exit: a
/// SIGCHLD delivered before we wait would otherwise be lost.
pub fn block_all() -> Result<SigSet> {
    let mut set = SigSet::all();
    for s in [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGABRT, Signal::SIGTRAP, Signal::SIGSYS] {
        set.remove(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::Sys { context: "sigprocmask".into(), source: e })?;
    Ok(set)
}

pub fn run(rt: &Runtime, id: &str, mut a: CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        a.detached = true;
        create(rt, id, a)?;
        if let Err(e) = start::start(rt, id) {
            let _ = delete::delete(rt, id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // The bundle first, with signals as they came: reading it may block
    // (a slow filesystem) and must stay interruptible.
    let bundle = crate::bundle::Bundle::load(&a.bundle)?;
    // Blocked before the container exists, so no SIGCHLD is lost.
    let set = block_all()?;
    // A terminal in the foreground: our own console socket.
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    a.loaded = Some(bundle);
    let mut ours: Option<OwnedFd> = None;
    if terminal && a.console_socket.is_none() {
        let (x, y) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::Io { context: "socketpair".into(), source: e })?;
        a.console = Some(OwnedFd::from(y));
        ours = Some(OwnedFd::from(x));
    }
    let pid = create(rt, id, a)?;
    let master = match ours {
        Some(sock) => match tty::recv_fd(sock.as_raw_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete::delete(rt, id, true);
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = start::start(rt, id) {
        let _ = delete::delete(rt, id, true);
        return Err(e);
    }
    let status = forward(pid, &set, master.as_ref());
    if !keep {
        let _ = delete::delete(rt, id, true);
    }
    status
}

struct RawMode(Option<nix::sys::termios::Termios>);

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

fn resize(master: &OwnedFd) {
    // SAFETY: winsize is a valid out/in buffer.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn copy(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: valid buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr() as *mut _, buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        // SAFETY: valid buffer range.
        let w = unsafe { libc::write(to, buf[off..].as_ptr() as *const _, n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

/// Forward signals (and terminal I/O) until `pid` exits; its status.
pub fn forward(pid: i32, set: &SigSet, master: Option<&OwnedFd>) -> Result<i32> {
    if pid <= 0 {
        return Err(Error::Container(format!("internal error: no process to wait for (pid {pid})")));
    }
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(|e| Error::Sys { context: "signalfd".into(), source: e })?;
    let _raw = match master {
        Some(m) => {
            let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
            if let Some(t) = &saved {
                let mut r = t.clone();
                nix::sys::termios::cfmakeraw(&mut r);
                let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &r);
            }
            resize(m);
            RawMode(saved)
        }
        None => RawMode(None),
    };
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    loop {
        // Reap first: the exit may already be pending.
        say_if_killed_at_exec(pid);
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => {
                    drain(master, master_open);
                    return Ok(code);
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    drain(master, master_open);
                    return Ok(128 + sig as i32);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let mut fds = vec![libc::pollfd { fd: sfd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(m) = master {
            fds.push(libc::pollfd { fd: if master_open { m.as_raw_fd() } else { -1 }, events: libc::POLLIN, revents: 0 });
            fds.push(libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok(Some(si)) = sfd.read_signal() {
                let sig = si.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD => {}
                    libc::SIGWINCH => {
                        if let Some(m) = master {
                            resize(m);
                        }
                    }
                    libc::SIGURG => {}
                    _ if pid > 0 => {
                        // SAFETY: plain syscall; pid > 0 (never a group).
                        unsafe { libc::kill(pid, sig) };
                    }
                    _ => {}
                }
            }
        }
        if let Some(m) = master {
            if master_open && fds[1].revents != 0 && !copy(m.as_raw_fd(), 1) {
                master_open = false;
            }
            if stdin_open && fds[2].revents != 0 && !copy(0, m.as_raw_fd()) {
                stdin_open = false;
            }
        }
    }
}

fn drain(master: Option<&OwnedFd>, open: bool) {
    if let (Some(m), true) = (master, open) {
        // SAFETY: setting O_NONBLOCK on our fd.
        unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        while copy(m.as_raw_fd(), 1) {}
    }
}

/// A process killed by SIGSYS before it became the program (a seccomp
/// profile that kills execve): its status alone (159) would say nothing,
/// so say why. Peeked before the reap, while /proc still shows its comm:
/// still ours (the exec of the trampoline was killed) or the trampoline's
/// (/proc/self/fd/N gives a number; its exec of the program was killed).
fn say_if_killed_at_exec(pid: i32) {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer; WNOWAIT leaves the child to be reaped.
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut si, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    // SAFETY: a CLD_KILLED/CLD_DUMPED record has si_status.
    if r != 0 || !matches!(si.si_code, libc::CLD_KILLED | libc::CLD_DUMPED) || unsafe { si.si_status() } != libc::SIGSYS {
        return;
    }
    let comm = |p: &str| crate::linux::kfile::read(format!("/proc/{p}/comm")).ok().map(|s| s.trim_end().to_string());
    let Some(theirs) = comm(&pid.to_string()) else { return };
    let at_exec = comm("self").as_deref() == Some(theirs.as_str()) || (!theirs.is_empty() && theirs.bytes().all(|b| b.is_ascii_digit()));
    if at_exec {
        let msg = "the container's process was killed by SIGSYS at exec: linux.seccomp must allow execve(2) (and execveat(2))";
        crate::log::error(msg);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{msg}\n").as_bytes());
    }
}

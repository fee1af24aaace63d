//! `run`: create + start, and in the foreground wait for the container's
//! process, forwarding signals (and a terminal) to it, then delete it.
//! Exits with the process's status (signal N gives 128+N).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::signal::SigSet;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::{create, CreateArgs};
use super::{delete, start, Runtime};
use crate::error::{Error, Result};
use crate::linux::tty;
use crate::proxy;

/// (The relay's: `exec` in the foreground blocks them the same way.)
pub use crate::proxy::block_all;

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

/// The container's process as the proxy's inner side: our own child
/// (init, or an exec'd process cloned with CLONE_PARENT), reaped here;
/// with a terminal, our end of it.
struct HostChild<'a> {
    pid: i32,
    master: Option<&'a OwnedFd>,
}

impl proxy::Inner for HostChild<'_> {
    fn stdio(&mut self) -> proxy::Stdio {
        // Without a terminal the process has our stdio itself: nothing
        // to relay. With one, both directions go through the master.
        let Some(m) = self.master else { return proxy::Stdio::default() };
        let dup = || m.try_clone().ok();
        proxy::Stdio { stdin: dup(), stdout: dup(), stderr: None, terminal: true }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    fn exit(&mut self) -> Result<Option<proxy::Exit>> {
        say_if_killed_at_exec(self.pid);
        loop {
            // Any child: others of ours (a stage-1) are reaped on the way.
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == self.pid => return Ok(Some(proxy::Exit::Code(code))),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == self.pid => return Ok(Some(proxy::Exit::Signal(sig as i32))),
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(None),
                Ok(_) => continue,
            }
        }
    }

    fn signal(&mut self, sig: i32) -> Result<()> {
        // SAFETY: plain syscall; pid > 0 (never a group).
        if unsafe { libc::kill(self.pid, sig) } != 0 {
            return Err(Error::Io { context: format!("signal {sig} to pid {}", self.pid), source: std::io::Error::last_os_error() });
        }
        Ok(())
    }

    fn resize(&mut self, rows: u16, cols: u16) -> Result<()> {
        let Some(m) = self.master else { return Ok(()) };
        proxy::set_size(m.as_raw_fd(), rows, cols)
    }
}

/// Forward signals (and terminal I/O) until `pid` exits; its status.
pub fn forward(pid: i32, set: &SigSet, master: Option<&OwnedFd>) -> Result<i32> {
    if pid <= 0 {
        return Err(Error::Container(format!("internal error: no process to wait for (pid {pid})")));
    }
    proxy::relay(&mut HostChild { pid, master }, set)
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

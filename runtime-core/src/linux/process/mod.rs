//! The process chain of create and the typed messages between its links.
//!
//! runtime (parent) --fork--> stage-1 --clone(CLONE_PARENT)--> init
//!
//! stage-1 joins the cgroups and the namespaces given by path, unshares the
//! new ones (the user namespace first, mapped by the parent), then clones
//! init with CLONE_PARENT so init is the runtime's own child (the runtime
//! can reap it) and, once the runtime exits, the child of the caller's
//! subreaper (containerd's shim, conmon). Nothing is re-executed: init is a
//! fork of the runtime that execs the user's program through a sealed
//! trampoline (trampoline.rs), so /proc/self/exe never points at our binary
//! from inside a running container, and both stages are non-dumpable while
//! they hold host state.

pub mod spawn;
pub mod step;
pub mod sync;
pub mod trampoline;

/// Start time of `pid` in clock ticks since boot (field 22 of stat), and
/// its state letter. None when it does not exist.
pub fn stat(pid: i32) -> Option<(u64, char)> {
    let s = crate::linux::kfile::read(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    // rest starts at field 3 (state); start time is field 22.
    let st = f.nth(18)?.parse().ok()?;
    Some((st, state))
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.0)
}

/// The process exists, is the one we started, and has not exited (a zombie
/// counts as exited).
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(stat(pid), Some((st, state)) if st == start && state != 'Z' && state != 'X')
}

/// Send `sig` to the process `pid` started at `start`, never to another
/// process that has its pid since. With a pidfd the check and the signal
/// are about one process; without (before Linux 5.3) the window is the
/// few instructions between them. Err(ESRCH) when it is gone.
pub fn signal_checked(pid: i32, start: u64, sig: i32) -> std::io::Result<()> {
    let gone = || std::io::Error::from_raw_os_error(libc::ESRCH);
    if !alive(pid, start) {
        return Err(gone());
    }
    if let Some(Ok(fd)) = crate::linux::probe::pidfd_open(pid) {
        use std::os::fd::AsRawFd;
        // The pidfd now pins the process: re-check it is ours.
        if start_time(pid) != Some(start) {
            return Err(gone());
        }
        return crate::linux::probe::pidfd_send_signal(fd.as_raw_fd(), sig);
    }
    // SAFETY: plain syscall.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

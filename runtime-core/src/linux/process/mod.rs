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

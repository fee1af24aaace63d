//! A container's claim on its cgroup. runc's rule is that a container's
//! cgroup is its own: one holding processes is refused. Checking that it
//! is empty and then joining it are far apart (the whole of create), so
//! two creates with one cgroupsPath could both pass the check and share
//! it, and deleting one would kill the other. The claim closes that gap:
//! an exclusive flock on the cgroup directory itself, taken before the
//! check, held until init has joined. The directory is the same whatever
//! --root the creates use.
//!
//! It is taken without waiting: a second create fails at once, naming the
//! cgroup. The children of create (stage-1, init) close their copies of
//! the lock's fd first thing (`Claim::fd` goes into `CreateOpts`): a parked
//! init holding a directory of the host's cgroupfs would hand a container
//! process with CAP_SYS_PTRACE a way out through /proc/1/fd/N/.. (tested).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Held until dropped (by create, once init has joined the cgroup).
pub struct Claim {
    fd: Option<OwnedFd>,
}

impl Claim {
    /// The lock's fd, for the children to close.
    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// The lock's fd, to hold (the claim lasts as long as it is open).
    pub fn into_fd(self) -> Option<OwnedFd> {
        self.fd
    }
}

/// Make the container's first cgroup directory (as `create` would) and
/// lock it; then check the cgroups are reusable. One lock stands for all
/// the hierarchies: one cgroupsPath gives the same directory in each.
/// The directory is left when the check fails: another create may hold
/// it, and an empty one is harmless (runc leaves existing ones too).
pub fn claim(dirs: &[PathBuf]) -> Result<Claim> {
    let Some(first) = dirs.first() else { return Ok(Claim { fd: None }) };
    let made = super::create_one(first, super::pure_v2(dirs))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(first)
        .map_err(|e| Error::Cgroup { path: first.clone(), msg: format!("opening: {e}") })?;
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => {
                return Err(Error::Cgroup {
                    path: first.clone(),
                    msg: "container's cgroup is in use by another container (being created, or its init not yet started)".into(),
                })
            }
            _ => return Err(Error::Cgroup { path: first.clone(), msg: format!("locking: {e}") }),
        }
    }
    // A directory this create made is empty (nothing joins it without
    // the claim): only the others need a look, as before (a fresh
    // container's are missing: one failed open each).
    super::check_reusable(if made { &dirs[1..] } else { dirs })?;
    Ok(Claim { fd: Some(f.into()) })
}

/// Remove `dir` if no create holds its claim and no process is in it (a
/// create killed after its claim made it and before recording it): what
/// another container uses is left alone.
pub fn remove_unclaimed(dir: &std::path::Path) {
    let Ok(f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW).open(dir)
    else {
        return;
    };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return;
    }
    if super::pids_recursive(dir).is_empty() {
        let _ = std::fs::remove_dir(dir);
    }
}

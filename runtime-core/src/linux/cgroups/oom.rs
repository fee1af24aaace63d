//! Noticing OOM kills: on v1 an eventfd registered for memory.oom_control
//! through cgroup.event_control, on v2 inotify on memory.events and its
//! oom_kill counter.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::resources::Layout;
use super::stats::kv;
use crate::error::{Error, Result};

enum Kind {
    V1 { efd: OwnedFd, _control: std::fs::File },
    V2 { inotify: OwnedFd, last: u64 },
}

pub struct OomWatcher {
    kind: Kind,
    dir: PathBuf,
}

/// What a wake-up meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// n new OOM events.
    Oom(u64),
    Nothing,
    /// The cgroup was removed.
    Gone,
}

/// How many processes the kernel has OOM-killed in the container's memory
/// cgroup (v1 memory.oom_control, v2 memory.events); None without one.
pub fn kill_count(dirs: &[PathBuf]) -> Option<u64> {
    let l = Layout::new(dirs);
    if let Some(d) = super::v1::memory_dir(&l) {
        return kv(d, "memory.oom_control").get("oom_kill").copied();
    }
    l.v2_with("memory.events").and_then(|d| kv(d, "memory.events").get("oom_kill").copied())
}

impl OomWatcher {
    /// Watch the container's memory cgroup; None without one.
    pub fn new(dirs: &[PathBuf]) -> Result<Option<OomWatcher>> {
        let l = Layout::new(dirs);
        if let Some(d) = super::v1::memory_dir(&l) {
            return Self::v1(d).map(Some);
        }
        if let Some(d) = l.v2_with("memory.events") {
            return Self::v2(d).map(Some);
        }
        Ok(None)
    }

    fn v1(d: &Path) -> Result<OomWatcher> {
        let err = |what: &str, e: std::io::Error| Error::Cgroup { path: d.to_path_buf(), msg: format!("{what}: {e}") };
        // SAFETY: plain syscall.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(err("eventfd", std::io::Error::last_os_error()));
        }
        // SAFETY: the kernel returned a new fd.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        let control = std::fs::File::open(d.join("memory.oom_control")).map_err(|e| err("opening memory.oom_control", e))?;
        std::fs::write(d.join("cgroup.event_control"), format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))
            .map_err(|e| err("registering for OOM events", e))?;
        Ok(OomWatcher { kind: Kind::V1 { efd, _control: control }, dir: d.to_path_buf() })
    }

    fn v2(d: &Path) -> Result<OomWatcher> {
        let err = |what: &str, e: std::io::Error| Error::Cgroup { path: d.to_path_buf(), msg: format!("{what}: {e}") };
        // SAFETY: plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(err("inotify_init1", std::io::Error::last_os_error()));
        }
        // SAFETY: the kernel returned a new fd.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(d.join("memory.events").as_os_str().as_encoded_bytes())
            .map_err(|_| err("path", std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: valid fd and C string.
        if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
            return Err(err("watching memory.events", std::io::Error::last_os_error()));
        }
        let last = kv(d, "memory.events").get("oom_kill").copied().unwrap_or(0);
        Ok(OomWatcher { kind: Kind::V2 { inotify, last }, dir: d.to_path_buf() })
    }

    /// Poll this for POLLIN.
    pub fn fd(&self) -> RawFd {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_raw_fd(),
            Kind::V2 { inotify, .. } => inotify.as_raw_fd(),
        }
    }

    /// Consume what woke us.
    pub fn read(&mut self) -> Notice {
        match &mut self.kind {
            Kind::V1 { efd, .. } => {
                let mut buf = [0u8; 8];
                // SAFETY: valid buffer of 8 bytes.
                let n = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr() as *mut _, 8) };
                if n != 8 {
                    return Notice::Nothing;
                }
                // The eventfd also fires when the cgroup goes away.
                if !self.dir.join("memory.oom_control").exists() {
                    return Notice::Gone;
                }
                Notice::Oom(u64::from_ne_bytes(buf).max(1))
            }
            Kind::V2 { inotify, last } => {
                let mut buf = [0u8; 4096];
                let mut any = false;
                loop {
                    // SAFETY: valid buffer.
                    let n = unsafe { libc::read(inotify.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len()) };
                    if n <= 0 {
                        break;
                    }
                    any = true;
                }
                if !self.dir.join("memory.events").exists() {
                    return Notice::Gone;
                }
                let now = kv(&self.dir, "memory.events").get("oom_kill").copied().unwrap_or(0);
                let new = now.saturating_sub(*last);
                *last = now;
                if new > 0 {
                    Notice::Oom(new)
                } else {
                    let _ = any;
                    Notice::Nothing
                }
            }
        }
    }

    /// Wait up to `ms` for a notice (-1: forever).
    pub fn wait(&mut self, ms: i32) -> Notice {
        let mut p = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n <= 0 {
            return Notice::Nothing;
        }
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::cgroups::fake::FakeTree;

    #[test]
    fn v2_oom_kill_counter_via_inotify() {
        let t = FakeTree::new("oom");
        let mut w = OomWatcher::new(std::slice::from_ref(&t.dir)).unwrap().unwrap();
        assert_eq!(w.wait(50), Notice::Nothing);
        std::fs::write(t.dir.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(w.wait(2000), Notice::Oom(1));
        // a change without a new kill is nothing
        std::fs::write(t.dir.join("memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(w.wait(2000), Notice::Nothing);
        std::fs::write(t.dir.join("memory.events"), "low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\n").unwrap();
        assert_eq!(w.wait(2000), Notice::Oom(2));
    }
}

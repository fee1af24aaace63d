//! How one container's cgroups are driven. `Cgroupfs` writes the
//! cgroup filesystem directly (v1, v2 or hybrid, as the host mounts
//! them); a systemd driver (a transient scope over D-Bus) and a v1-only
//! driver for old kernels can sit behind the same trait later, leaving
//! the backends that use it unchanged.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::claim::Claim;
use super::oom::OomWatcher;
use super::resources::Res;
use crate::error::Result;
use crate::stats::Stats;

pub trait Manager {
    /// The container's directory in each hierarchy (what init joins).
    fn dirs(&self) -> &[PathBuf];
    /// Take the cgroup for this container, refusing one in use.
    fn claim(&self) -> Result<Claim>;
    /// Make the directories.
    fn create(&self) -> Result<()>;
    /// Write the config's resources (and the device rules).
    fn apply(&self, r: &LinuxResources) -> Result<()>;
    /// `update`: change resources of a live container.
    fn update(&self, res: &Res) -> Result<()>;
    /// The processes in it (and in its sub-cgroups).
    fn pids(&self) -> Vec<i32>;
    fn freeze(&self, frozen: bool) -> Result<()>;
    fn is_frozen(&self) -> bool;
    /// SIGKILL every process in it.
    fn kill_all(&self);
    /// Send `sig` to every process in it; how many were signalled.
    fn signal_all(&self, sig: i32) -> usize;
    /// Remove it if nothing is left in it; false (changing nothing) if not.
    fn remove_if_empty(&self) -> bool;
    /// Remove it (after the processes are gone).
    fn destroy(&self) -> Result<()>;
    /// Usage now; `pid` is the container's init (for its network stats).
    fn stats(&self, pid: Option<i32>) -> Stats;
    /// A watcher of OOM kills; None without a memory controller.
    fn oom_watcher(&self) -> Result<Option<OomWatcher>>;
}

/// Direct cgroupfs writes: the fastest path, ordered where the kernel
/// cares (see `cgroups`).
pub struct Cgroupfs {
    dirs: Vec<PathBuf>,
}

impl Cgroupfs {
    pub fn new(dirs: Vec<PathBuf>) -> Cgroupfs {
        Cgroupfs { dirs }
    }
}

impl Manager for Cgroupfs {
    fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
    fn claim(&self) -> Result<Claim> {
        super::claim::claim(&self.dirs)
    }
    fn create(&self) -> Result<()> {
        super::create(&self.dirs)
    }
    fn apply(&self, r: &LinuxResources) -> Result<()> {
        super::resources::apply(&self.dirs, r, &[])
    }
    fn update(&self, res: &Res) -> Result<()> {
        super::resources::update(&self.dirs, res)
    }
    fn pids(&self) -> Vec<i32> {
        super::pids(&self.dirs)
    }
    fn freeze(&self, frozen: bool) -> Result<()> {
        super::freeze(&self.dirs, frozen)
    }
    fn is_frozen(&self) -> bool {
        super::is_frozen(&self.dirs)
    }
    fn kill_all(&self) {
        super::kill_all(&self.dirs)
    }
    fn signal_all(&self, sig: i32) -> usize {
        super::signal_all(&self.dirs, sig)
    }
    fn remove_if_empty(&self) -> bool {
        super::remove_if_empty(&self.dirs)
    }
    fn destroy(&self) -> Result<()> {
        super::destroy(&self.dirs)
    }
    fn stats(&self, pid: Option<i32>) -> Stats {
        super::stats::collect(&self.dirs, pid)
    }
    fn oom_watcher(&self) -> Result<Option<OomWatcher>> {
        OomWatcher::new(&self.dirs)
    }
}

//! What differs between the three runtimes is where the container's
//! processes live. The lifecycle (state machine, locking, hooks on the
//! host, the CLI) is written once in `lifecycle`; a backend supplies the
//! process side.

use std::os::fd::OwnedFd;

use crate::bundle::Bundle;
use crate::error::Result;
use crate::linux::process::spawn::Parent;
use crate::state::State;

/// Options of `create`/`run` that reach the backend.
pub struct CreateOpts {
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub extra_env: Vec<String>,
    /// create: the listening socket init parks on until `start`.
    pub exec_listener: Option<OwnedFd>,
    /// Host fds the runtime holds that the container's processes must not
    /// (the cgroup claim): the children close them first thing.
    pub host_fds: Vec<std::os::fd::RawFd>,
    /// create: the container's process is this program, not
    /// `process.args` (a backend's VMM, say); see `process::step`.
    pub exec_step: Option<crate::linux::process::step::ExecStep>,
}

pub trait Backend {
    /// Recorded in the state ("native", "compat", "microvm").
    fn name(&self) -> &'static str;

    /// Make the container and park its process before exec. Returns the
    /// host pid the caller's subreaper will own (init itself, or a proxy).
    /// `lock_fd` holds the state lock: no child may keep it open.
    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        state_dir_fd: i32,
        lock_fd: i32,
        opts: CreateOpts,
        parent: &mut dyn Parent,
    ) -> Result<i32>;

    /// Start `process` inside the running container; returns the host pid
    /// the caller's subreaper will own.
    fn exec(
        &self,
        st: &State,
        bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        caps: Option<&crate::linux::caps::CapSets>,
        opts: CreateOpts,
        parent: &mut dyn Parent,
    ) -> Result<i32>;

    /// Deliver a signal to the container's init (or to all its processes).
    fn signal(&self, st: &State, sig: i32, all: bool) -> Result<()>;

    /// Tear down what create made (cgroups, host mounts), after the
    /// processes are gone.
    fn destroy(&self, st: &State) -> Result<()>;

    /// `destroy` when nothing is left to kill (the usual end of a stopped
    /// container), in the fewest steps; false, having changed nothing that
    /// `destroy` would not, when something is left.
    fn destroy_if_empty(&self, _st: &State) -> bool {
        false
    }

    /// Freeze or thaw.
    fn pause(&self, st: &State, frozen: bool) -> Result<()>;

    /// Is the container frozen?
    fn paused(&self, st: &State) -> bool;
}

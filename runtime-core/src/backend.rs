//! The seam between the lifecycle and where a container's processes
//! live. The verbs in `lifecycle` own the state machine, locking, id
//! rules, hooks and the CLI, and reach the container only through a
//! `Backend`: the native one (`native`: namespaces and cgroups on this
//! host), and those still to come (a compat backend for old kernels, a
//! micro-VM one). Everything that depends on where the processes are
//! (host resources, the create/start handshake, exec, signals, pids,
//! resources, stats, OOM events, the freezer, teardown, what `features`
//! reports) is a method here.
//!
//! A backend keeps what it needs across invocations in the state's
//! payload (`State::payload`), which the lifecycle records and never
//! reads; `check` refuses a state made by another backend.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::bundle::Bundle;
use crate::error::Result;
use crate::linux::caps::CapSets;
use crate::linux::cgroups::resources::Res;
use crate::state::{Dir, State};

pub use crate::linux::cgroups::oom::Notice;
pub use crate::stats::Stats;

/// Options of `create`/`run` that reach the backend.
#[derive(Default)]
pub struct CreateOpts {
    /// Connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 3..3+n are passed to the process (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: i32,
    /// Extra environment for the process (LISTEN_FDS/LISTEN_PID).
    pub extra_env: Vec<String>,
    /// The container's process is this program, not `process.args` (a
    /// backend's VMM, say), inside the namespaces and cgroups made for
    /// the container; see `linux::process::step`.
    pub exec_step: Option<crate::linux::process::step::ExecStep>,
}

/// Options of `exec` that reach the backend.
#[derive(Default)]
pub struct ExecOpts {
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
}

/// What the lifecycle does while a backend creates: it owns the state
/// and the hooks, the backend says when.
pub trait CreateHooks {
    /// The container's process has a host pid: record it (write-ahead)
    /// before anything else is made.
    fn on_pid(&mut self, pid: i32) -> Result<()>;
    /// The container's mounts are made: run the prestart and
    /// createRuntime hooks; returns the state JSON (creating, created)
    /// for the hooks that run in the container.
    fn on_hooks(&mut self, pid: i32) -> Result<(String, String)>;
}

/// OOM notices of one container, for `events`.
pub trait OomEvents {
    /// Wait up to `ms` milliseconds (0: just look) for OOM kills.
    fn wait(&mut self, ms: i32) -> Notice;
}

pub trait Backend {
    /// Recorded in the state ("native", "compat", "microvm").
    fn name(&self) -> &'static str;

    /// Adjust the OCI features document to what this backend can do.
    fn features(&self, _doc: &mut serde_json::Value) {}

    /// Is this state ours to handle, and sound? Called on every state the
    /// lifecycle loads (the payload of a state file is not trusted: it
    /// names what `delete --force` kills and removes).
    fn check(&self, st: &State, path: &Path) -> Result<()>;

    /// Plan the host resources of a new container from its config (its
    /// cgroup directories), changing nothing: the payload to record
    /// before anything is made. Refuses a config it cannot run.
    fn plan(&self, id: &str, bundle: &Bundle) -> Result<serde_json::Value>;

    /// Reserve what `plan` named (a cgroup is claimed and checked unused),
    /// once the state directory exists and before the state is written
    /// (what is in another container's use must never be recorded as
    /// this one's). The fds returned are held until create ends; the
    /// container's processes never inherit them.
    fn reserve(&self, st: &State, dir: &Dir) -> Result<Vec<OwnedFd>>;

    /// A create died between `reserve` and its first state write, and
    /// `delete --force` found its directory: undo what `reserve` made,
    /// never what another container holds.
    fn forget(&self, _dir: &Path) {}

    /// Make the container and park its process before the program runs.
    /// Returns the host pid the caller's subreaper will own (init itself,
    /// or a process standing for it).
    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        dir: &Dir,
        held: Vec<OwnedFd>,
        opts: CreateOpts,
        hooks: &mut dyn CreateHooks,
    ) -> Result<i32>;

    /// Is the container created and waiting for `start`? Asked only while
    /// its recorded process is alive.
    fn parked(&self, st: &State, dir: &Path) -> bool;

    /// Let the parked process run the program. An error means it did not
    /// run and never will.
    fn start(&self, st: &State, dir: &Dir) -> Result<()>;

    /// Start `process` inside the running container; returns the host
    /// pid the caller's subreaper will own.
    fn exec(
        &self,
        st: &State,
        bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        caps: Option<&CapSets>,
        opts: ExecOpts,
    ) -> Result<i32>;

    /// Deliver a signal to the container's process (checked to be the one
    /// recorded, never a recycled pid), or to all its processes.
    fn signal(&self, st: &State, sig: i32, all: bool) -> Result<()>;

    /// Kill every process of the container and wait for its recorded
    /// process to be gone (`delete`). `paused`: it is frozen.
    fn kill_and_wait(&self, st: &State, paused: bool) -> Result<()>;

    /// The container's processes, as host pids.
    fn pids(&self, st: &State) -> Result<Vec<i32>>;

    /// Change the container's resources.
    fn update(&self, st: &State, res: &Res) -> Result<()>;

    /// The container's resource usage now.
    fn stats(&self, st: &State) -> Result<Stats>;

    /// A source of OOM notices, or None where there is none.
    fn oom_events(&self, st: &State) -> Result<Option<Box<dyn OomEvents>>>;

    /// Freeze or thaw.
    fn pause(&self, st: &State, frozen: bool) -> Result<()>;

    /// Is the container frozen?
    fn paused(&self, st: &State) -> bool;

    /// Tear down what create made (cgroups, host mounts), killing what is
    /// left of the container's processes first.
    fn destroy(&self, st: &State) -> Result<()>;

    /// `destroy` when nothing is left to kill (the usual end of a stopped
    /// container), in the fewest steps; false, having changed nothing that
    /// `destroy` would not, when something is left.
    fn destroy_if_empty(&self, _st: &State) -> bool {
        false
    }
}

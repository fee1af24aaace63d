//! rpc-agent: the guest agent of rpc-runv. As the micro-VM's pid 1 it
//! mounts what containers need (`boot`), listens on vsock port
//! [`rpc_proto::guest::AGENT_PORT`] and serves the host's connections
//! (`agent`) by driving the guest rpc-runc binary (`runtime`), relaying
//! each process's stdio between its pipes and its stream connections
//! (`relay`). In the host's tests it runs as an ordinary process on a
//! unix socket (`--listen-unix`), a child subreaper, with the host's
//! rpc-runc.
//!
//! One thread, one epoll loop (`poller`): the runtime's children run while
//! the loop serves other connections; every read and write is
//! non-blocking, and nothing a connection sends can panic it (no unwrap,
//! expect or indexing outside the tests: the lints below).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod agent;
pub mod boot;
mod conn;
pub mod poller;
mod procs;
mod relay;
mod requests;
pub mod runtime;

use std::path::PathBuf;

pub use agent::Agent;
pub use runtime::{Executor, RealExecutor};

/// Where the agent runs and what it drives.
#[derive(Debug, Clone)]
pub struct Config {
    /// The runtime binary (the guest's: [`rpc_proto::guest::GUEST_RUNTIME`]).
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub root: PathBuf,
    /// The agent's own directory: `bundles/<id>/` (config.json, pid files,
    /// console sockets, exec process files) and `calls/` (the runtime's
    /// JSON log of each call, removed once read).
    pub state: PathBuf,
}

impl Config {
    /// The guest's: the paths both ends agree on.
    pub fn guest() -> Config {
        use rpc_proto::guest::{GUEST_ROOT, GUEST_RUNTIME};
        Config { runtime: GUEST_RUNTIME.into(), root: GUEST_ROOT.into(), state: "/run/rpc".into() }
    }

    /// `BUNDLES_DIR` in the guest.
    pub fn bundles(&self) -> PathBuf {
        self.state.join("bundles")
    }

    pub fn calls(&self) -> PathBuf {
        self.state.join("calls")
    }
}

/// The agent's version, as Welcome says it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the loop until a Shutdown's reply is out; returns its status.
pub fn serve(agent: &mut Agent) -> std::io::Result<i32> {
    loop {
        agent.turn(-1)?;
        if let Some(status) = agent.shutdown_due() {
            return Ok(status);
        }
    }
}

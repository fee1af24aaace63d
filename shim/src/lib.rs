//! containerd-shim-v2 for the rpc runtimes: one binary, installed as
//! containerd-shim-rpc-{runc,runlxc,runv}-v2, that drives the runtime
//! through its runc-compatible command line.

pub mod error;
pub mod io;
pub mod metrics;
pub mod runtime;
pub mod service;
pub mod shim;

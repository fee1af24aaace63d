//! runtime-core: what rpc-runc, rpc-runlxc and rpc-runv share. The
//! lifecycle (`lifecycle`), the bundle and state, the CLI, and the Linux
//! isolation layer (`linux`); a `Backend` decides where processes live.

pub mod backend;
pub mod bounded;
pub mod bundle;
pub mod cli;
pub mod error;
pub mod fault;
pub mod features;
pub mod hooks;
pub mod host;
pub mod id;
pub mod lifecycle;
pub mod linux;
pub mod log;
pub mod native;
pub mod proxy;
pub mod spec;
pub mod state;
pub mod stats;

pub use error::{Error, Result};

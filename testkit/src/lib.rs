//! Test support shared by the rpc runtimes' integration tests, the shim's
//! tests and the conformance runner: a busybox-static rootfs, receiving an
//! fd over a unix socket (console sockets, seccomp agents), and looking at
//! the host for what a runtime left behind (processes, mounts, cgroups,
//! descriptors: `leaks`), and the fuzzing harness of the parsers (`fuzz`).
//!
//! Only std and libc: the conformance runner stays a CLI-only driver of any
//! runtime, and nothing here knows one.

pub mod busybox;
pub mod fdpass;
pub mod fuzz;
pub mod host;
pub mod leaks;
pub mod oldkernel;

pub use busybox::Busybox;
pub use fdpass::recv_fd_msg;
pub use host::{pid_alive, processes_matching, unmount_under};

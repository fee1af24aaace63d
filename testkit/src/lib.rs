//! Test support shared by the rpc runtimes' integration tests, the shim's
//! tests and the conformance runner: a busybox-static rootfs, driving a
//! runtime's command line (`cli`), the console socket and receiving an fd
//! over a unix socket (console sockets, seccomp agents), counted skips
//! (`skip`), looking at the host for what a runtime left behind
//! (processes, mounts, cgroups, descriptors: `leaks`), and the fuzzing
//! harness of the parsers (`fuzz`).
//!
//! The conformance runner stays a CLI-only driver of any runtime: nothing
//! here knows one. What is not test code (fd passing, mountinfo escapes)
//! comes from runtime-core, which the runtimes and the shim share.

pub mod busybox;
pub mod cli;
pub mod console;
pub mod fdpass;
pub mod fuzz;
pub mod host;
pub mod leaks;
pub mod oldkernel;
pub mod skip;

pub use busybox::Busybox;
pub use fdpass::recv_fd_msg;
pub use host::{pid_alive, processes_matching, unmount_under};

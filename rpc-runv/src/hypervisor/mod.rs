//! Starting and stopping the VM's host processes: the hypervisor (QEMU
//! `-M microvm`, or rpc-vmm) and its vhost-user helpers (virtiofsd for
//! the shared tree, vhost-device-vsock for the agent's channel on QEMU).
//!
//! Nothing here assumes who calls it. In a container the VM is the
//! container's process: a supervisor exec'd by runtime-core's exec step
//! runs [`qemu::argv`] inside the container's namespaces and cgroups, while
//! the host side starts the helpers first ([`virtiofsd::spawn`],
//! [`vsockd::spawn`]) into the same cgroups ([`SpawnOpts::cgroup_procs`]).
//! Tests and direct users start everything at once with [`launch::start`].
//!
//! - [`spec`]: what a VM is made of ([`LaunchSpec`]) and where its sockets are;
//! - [`qemu`]: QEMU's command line, and QEMU as a child process ([`qemu::Vm`]);
//! - [`helper`]: a started vhost-user backend ([`Helper`]): readiness, stop;
//! - [`virtiofsd`], [`vsockd`]: the two backends' command lines;
//! - [`launch`]: helpers + QEMU in order, undone on any failure;
//! - [`binaries`]: where the programs, kernel and initrd are;
//! - [`choose`]: which hypervisor (and accelerator) runs, and why.

pub mod binaries;
pub mod choose;
mod error;
pub mod helper;
pub mod launch;
pub mod qemu;
pub mod spec;
pub mod virtiofsd;
pub mod vsockd;

pub use error::{Error, Result};
pub use helper::{Helper, HelperRecord, SpawnOpts};
pub use spec::{Accel, LaunchSpec, Tap};

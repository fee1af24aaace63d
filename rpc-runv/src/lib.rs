//! rpc-runv: the runV/Kata equivalent. Each container runs in its own
//! micro-VM; the host side is runtime-core's lifecycle over the
//! [`backend::MicroVm`] backend, the guest side our agent (rpc-agent)
//! driving the same rpc-runc binary inside the VM.
//!
//! - [`backend`]: the Backend: what each verb does with the VM;
//! - [`hostspec`]: the host side's derived config (a native container
//!   whose process is the [`supervisor`]);
//! - [`guestspec`]: the config the guest's rpc-runc gets;
//! - [`sizing`]: vCPUs and RAM from the config;
//! - [`launch`], [`record`]: what is kept in the state directory;
//! - [`agent`]: the host's connections to the guest agent;
//! - [`exec`]: a process run in the guest, a host proxy standing for it;
//! - [`hypervisor`]: QEMU, virtiofsd, vhost-device-vsock, and which runs.

pub mod agent;
pub mod backend;
pub mod error;
pub mod exec;
pub mod guestspec;
pub mod hostspec;
pub mod hypervisor;
pub mod launch;
pub mod record;
pub mod sizing;
pub mod supervisor;

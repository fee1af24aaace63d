//! rpc-vmm: the KVM micro-VM monitor under rpc-runv.
//!
//! A VM is built from a [`VmConfig`] in one place ([`vm::Vm::new`]) and run
//! to completion by [`vm::Vm::run`], which returns why it stopped
//! ([`VmExit`]); [`VmExit::exit_code`] is the process exit status of
//! `rpc-vmm`, part of the contract with rpc-runv (see README.md).
//!
//! Everything a guest can write (port and MMIO accesses, virtqueue
//! descriptors, device registers) is bounds-checked: a bad access is
//! counted and reported on stderr, never a panic of the VMM.

pub mod config;
pub mod devices;
pub mod error;
pub mod layout;
pub mod memory;
pub mod report;
pub mod vcpu;
pub mod vm;
pub mod x86;

pub use config::{BlockConfig, FsConfig, KernelImage, NetConfig, VmConfig};

/// Lock a mutex shared between vCPU threads and the event loop. Poison is
/// ignored: a device's state stays usable even if a thread died holding it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub use error::{Error, Result};
pub use vm::{Vm, VmExit};

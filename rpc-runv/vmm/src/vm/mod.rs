//! A VM: built from a [`VmConfig`](crate::VmConfig) by [`Vm::new`]
//! (`builder`: KVM setup, memory, boot, devices, vCPUs) and run by
//! [`Vm::run`] (`event_loop`: the vCPU threads and the epoll loop over host
//! signals, stdin, the vCPUs' stop event and the devices' host sockets and
//! tap) until it stops, with a [`VmExit`] (`exit`). Nothing in it sleeps:
//! it waits on fds, and stopping waits for the vCPU threads to end.

mod builder;
mod event_loop;
mod exit;

use std::sync::{Arc, Mutex};

use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::epoll::Epoll;
use vmm_sys_util::eventfd::EventFd;

use crate::devices::virtio::console::ConsoleHost;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::NetHost;
use crate::devices::virtio::vsock::VsockHost;
use crate::devices::Devices;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

pub use exit::{VmExit, EXIT_GUEST_CRASH, EXIT_OK, EXIT_TRIPLE_FAULT, EXIT_VMM_ERROR};

/// The console's ports (host ends) and transport.
type ConsoleParts = (Vec<Arc<Mutex<ConsoleHost>>>, Arc<Mutex<MmioTransport>>);

/// The tap's host side and the net transport.
type NetParts = (Arc<Mutex<NetHost>>, Arc<Mutex<MmioTransport>>);

/// The vsock's host side and transport.
type VsockParts = (Arc<Mutex<VsockHost>>, Arc<Mutex<MmioTransport>>);

/// A VM ready to run.
pub struct Vm {
    _kvm: Kvm,
    _vm: VmFd,
    _mem: GuestMemoryMmap,
    vcpus: Vec<VcpuFd>,
    devices: Arc<Devices>,
    reporter: Arc<Reporter>,
    console: Option<ConsoleParts>,
    net: Option<NetParts>,
    vsock: Option<VsockParts>,
    epoll: Epoll,
    serial_input: bool,
    /// Written when the VM stops (see [`crate::vcpu::Shared`]).
    stop_evt: EventFd,
}

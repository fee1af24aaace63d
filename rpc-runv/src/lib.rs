//! rpc-runv: the runV/Kata equivalent. Each container (or each pod) runs
//! in its own micro-VM; the host side is runtime-core's lifecycle over the
//! [`backend::MicroVm`] backend, the guest side our agent driving the
//! same rpc-runc binary inside the VM.

pub mod hypervisor;

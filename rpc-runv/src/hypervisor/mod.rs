//! Starting and stopping the VM's host processes: the hypervisor (QEMU
//! `-M microvm`, or rpc-vmm) and its vhost-user helpers (virtiofsd for
//! the shared tree, vhost-device-vsock for the agent's channel on QEMU).

//! A whole QEMU VM started from one process: its helpers, then QEMU. For
//! tests and direct use; a container's host side runs the same steps
//! split between the runtime (helpers) and the supervisor (QEMU).
//!
//! Order matters: QEMU connects to the helpers' sockets at start and
//! fails when they do not listen yet. Any failure undoes what was started
//! (the handles stop on drop), and a bad spec starts nothing.

use super::binaries::Binaries;
use super::helper::{Helper, SpawnOpts};
use super::qemu::{self, Vm};
use super::spec::{LaunchSpec, GUEST_CID};
use super::{virtiofsd, vsockd, Result};
use std::path::PathBuf;

/// How the processes are started.
#[derive(Debug, Clone)]
pub struct Opts {
    pub qemu: PathBuf,
    pub virtiofsd: virtiofsd::Opts,
    pub vsockd: vsockd::Opts,
}

impl Opts {
    /// The programs of `bins`; the helpers log to `virtiofsd.log` and
    /// `vhost-device-vsock.log` in `spec.vm_dir`.
    pub fn new(bins: &Binaries, spec: &LaunchSpec) -> Opts {
        let mut fs = virtiofsd::Opts::new(bins.virtiofsd.clone());
        fs.spawn = SpawnOpts { log: Some(spec.vm_dir.join("virtiofsd.log")), ..SpawnOpts::default() };
        let mut vs = vsockd::Opts::new(bins.vhost_vsock.clone());
        vs.spawn = SpawnOpts { log: Some(spec.vm_dir.join("vhost-device-vsock.log")), ..SpawnOpts::default() };
        Opts { qemu: bins.qemu.clone(), virtiofsd: fs, vsockd: vs }
    }
}

/// A running VM and its helpers. Dropping it stops everything.
#[derive(Debug)]
pub struct Running {
    pub vm: Vm,
    pub virtiofsd: Helper,
    pub vsockd: Helper,
}

pub fn start(spec: &LaunchSpec, o: &Opts) -> Result<Running> {
    spec.validate()?;
    let fs = virtiofsd::spawn(&spec.shared_dir, &spec.fs_socket(), &o.virtiofsd)?;
    let vs = vsockd::spawn(GUEST_CID, &spec.vsock_vhost_socket(), &spec.vsock_uds(), &o.vsockd)?;
    let vm = qemu::spawn(spec, &o.qemu)?;
    Ok(Running { vm, virtiofsd: fs, vsockd: vs })
}

impl Running {
    /// Kills QEMU, then the helpers, and removes their sockets. The logs
    /// (serial, QEMU's, the helpers') stay in the VM's directory.
    pub fn stop(self) -> Result<()> {
        let Running { mut vm, virtiofsd, vsockd } = self;
        let a = vm.kill();
        let b = virtiofsd.stop();
        let c = vsockd.stop();
        a.and(b).and(c)
    }
}

//! What a VM is made of, whichever hypervisor runs it, and where its
//! per-VM files live: every socket and the serial log are in `vm_dir`, so
//! one directory (a bind mount at `/vm` inside the container) carries all
//! of them and removing it removes every trace.

use super::{Error, Result};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// The virtio-fs tag the guest mounts (the test init and the agent both
/// mount `rpcfs`).
pub const FS_TAG: &str = "rpcfs";

/// The guest's vsock context id: one VM per device, so the first free one.
pub const GUEST_CID: u32 = 3;

/// Largest vCPU count microvm's MP-table-less topology is asked for;
/// QEMU refuses more than its own limit anyway, with a worse message.
pub const MAX_VCPUS: u32 = 255;

/// Smallest guest memory our kernel boots in (and QEMU's memfd needs
/// whole MiB).
pub const MIN_MEM_MIB: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// QEMU's emulator: no /dev/kvm needed; on this project's CI host
    /// (a KVM without VMX/SVM, guest ring 0 emulated) much the faster.
    Tcg,
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guest NIC's backend: an open tap fd (inherited by the hypervisor
/// at the same number) and the MAC the guest sees (the veth's, §1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tap {
    pub fd: RawFd,
    pub mac: [u8; 6],
}

impl Tap {
    pub fn mac_string(&self) -> String {
        let m = self.mac;
        format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Serializable, so a supervisor exec'd in the container can be handed
/// the spec as is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchSpec {
    pub vcpus: u32,
    pub mem_mib: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line (the caller's: console, agent options).
    pub cmdline: String,
    pub accel: Accel,
    /// Sockets (`fs.sock`, `vsock.vhost`, `vsock.sock`) and `serial.log`.
    pub vm_dir: PathBuf,
    /// The tree virtiofsd serves as tag [`FS_TAG`] (virtiofsd's concern:
    /// QEMU only sees the socket).
    pub shared_dir: PathBuf,
    pub tap: Option<Tap>,
}

impl LaunchSpec {
    /// virtiofsd's vhost-user socket, which QEMU connects to.
    pub fn fs_socket(&self) -> PathBuf {
        self.vm_dir.join("fs.sock")
    }

    /// vhost-device-vsock's vhost-user socket, which QEMU connects to.
    pub fn vsock_vhost_socket(&self) -> PathBuf {
        self.vm_dir.join("vsock.vhost")
    }

    /// The hybrid vsock socket the host dials (`CONNECT <port>\n`): the
    /// same protocol on rpc-vmm and on QEMU.
    pub fn vsock_uds(&self) -> PathBuf {
        self.vm_dir.join("vsock.sock")
    }

    /// The guest's serial console (ttyS0), written by the hypervisor.
    pub fn serial_log(&self) -> PathBuf {
        self.vm_dir.join("serial.log")
    }

    /// Checks what can be checked before anything starts, so a bad spec
    /// starts nothing: sizes, paths absolute, kernel and initrd regular
    /// files, vm_dir and shared_dir directories, the command line fit for
    /// a kernel (no NUL, no newline).
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: String| Err(Error::BadSpec { field, why });
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return bad("vcpus", format!("{} is outside 1..={MAX_VCPUS}", self.vcpus));
        }
        if self.mem_mib < MIN_MEM_MIB {
            return bad("mem_mib", format!("{} MiB is below the {MIN_MEM_MIB} MiB the guest needs", self.mem_mib));
        }
        if self.cmdline.contains(['\0', '\n']) {
            return bad("cmdline", format!("{:?} holds a NUL or a newline", self.cmdline));
        }
        check_file("kernel", &self.kernel)?;
        check_file("initrd", &self.initrd)?;
        check_dir("vm_dir", &self.vm_dir)?;
        check_dir("shared_dir", &self.shared_dir)?;
        if let Some(t) = self.tap {
            if t.fd < 0 {
                return bad("tap", format!("fd {} is not a file descriptor", t.fd));
            }
            if t.mac[0] & 1 != 0 {
                return bad("tap", format!("MAC {} is a multicast address", t.mac_string()));
            }
        }
        Ok(())
    }
}

fn check_abs(field: &'static str, p: &Path) -> Result<()> {
    if p.is_absolute() {
        Ok(())
    } else {
        Err(Error::BadSpec { field, why: format!("{} is not an absolute path", p.display()) })
    }
}

fn check_file(field: &'static str, p: &Path) -> Result<()> {
    check_abs(field, p)?;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::BadSpec { field, why: format!("{} is not a regular file", p.display()) }),
        Err(e) => Err(Error::BadSpec { field, why: format!("{}: {e}", p.display()) }),
    }
}

fn check_dir(field: &'static str, p: &Path) -> Result<()> {
    check_abs(field, p)?;
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::BadSpec { field, why: format!("{} is not a directory", p.display()) }),
        Err(e) => Err(Error::BadSpec { field, why: format!("{}: {e}", p.display()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> LaunchSpec {
        let f = dir.join("k");
        std::fs::write(&f, b"x").unwrap();
        LaunchSpec {
            vcpus: 1,
            mem_mib: 128,
            kernel: f.clone(),
            initrd: f,
            cmdline: "console=ttyS0".into(),
            accel: Accel::Tcg,
            vm_dir: dir.to_path_buf(),
            shared_dir: dir.to_path_buf(),
            tap: None,
        }
    }

    fn field(r: Result<()>) -> &'static str {
        match r {
            Err(Error::BadSpec { field, .. }) => field,
            other => panic!("expected BadSpec, got {other:?}"),
        }
    }

    #[test]
    fn validate_names_the_bad_field() {
        let d = std::env::temp_dir().join(format!("rpc-runv-spec-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ok = spec(&d);
        ok.validate().unwrap();
        assert_eq!(field(LaunchSpec { vcpus: 0, ..ok.clone() }.validate()), "vcpus");
        assert_eq!(field(LaunchSpec { mem_mib: 8, ..ok.clone() }.validate()), "mem_mib");
        assert_eq!(field(LaunchSpec { cmdline: "a\nb".into(), ..ok.clone() }.validate()), "cmdline");
        assert_eq!(field(LaunchSpec { kernel: d.join("none"), ..ok.clone() }.validate()), "kernel");
        assert_eq!(field(LaunchSpec { kernel: "k".into(), ..ok.clone() }.validate()), "kernel");
        assert_eq!(field(LaunchSpec { initrd: d.clone(), ..ok.clone() }.validate()), "initrd");
        assert_eq!(field(LaunchSpec { vm_dir: d.join("k"), ..ok.clone() }.validate()), "vm_dir");
        assert_eq!(field(LaunchSpec { shared_dir: d.join("none"), ..ok.clone() }.validate()), "shared_dir");
        let tap = Tap { fd: 5, mac: [1, 2, 3, 4, 5, 6] };
        assert_eq!(field(LaunchSpec { tap: Some(tap), ..ok.clone() }.validate()), "tap");
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! vhost-device-vsock: the guest's virtio-vsock device for QEMU, served
//! as a Firecracker-style hybrid vsock: QEMU connects to its vhost-user
//! socket, the host dials its unix socket (`uds_path`) and sends
//! `CONNECT <port>\n`, the same protocol as rpc-vmm's own device
//! (`rpc_proto::hvsock` dials both). Unlike virtiofsd it outlives its VM
//! (it waits for the next QEMU), so it is always stopped explicitly.

use super::helper::{self, Helper, Program, SpawnOpts};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// vhost-device-vsock's arguments (its `--vm` form; the separate flags
/// are deprecated upstream).
pub fn args(cid: u32, vhost_socket: &Path, uds_path: &Path) -> super::Result<Vec<OsString>> {
    // `--vm` is a comma-separated key=value list with no escape: a path
    // holding a comma or '=' would be cut into other keys.
    for (field, p) in [("vsock vhost socket", vhost_socket), ("vsock uds path", uds_path)] {
        if p.to_string_lossy().contains([',', '=']) {
            return Err(super::Error::BadSpec { field, why: format!("{} holds ',' or '=', which --vm cannot carry", p.display()) });
        }
    }
    if cid < 3 {
        return Err(super::Error::BadSpec { field: "guest cid", why: format!("{cid} is reserved (0-2: hypervisor, local, host)") });
    }
    Ok(vec!["--vm".into(), format!("guest-cid={cid},socket={},uds-path={}", vhost_socket.display(), uds_path.display()).into()])
}

#[derive(Debug, Clone)]
pub struct Opts {
    /// The binary ([`super::binaries::vhost_vsock`] finds it).
    pub program: PathBuf,
    pub spawn: SpawnOpts,
}

impl Opts {
    pub fn new(program: PathBuf) -> Opts {
        Opts { program, spawn: SpawnOpts::default() }
    }
}

/// Starts vhost-device-vsock for guest `cid`, QEMU's side on
/// `vhost_socket`, the host's on `uds_path`; returns once both listen.
pub fn spawn(cid: u32, vhost_socket: &Path, uds_path: &Path, o: &Opts) -> super::Result<Helper> {
    helper::spawn(
        Program {
            name: "vhost-device-vsock",
            path: &o.program,
            args: args(cid, vhost_socket, uds_path)?,
            sockets: vec![vhost_socket.to_path_buf(), uds_path.to_path_buf()],
            extra_files: Vec::new(),
        },
        &o.spawn,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_their_refusals() {
        let a = args(3, Path::new("/vm/vsock.vhost"), Path::new("/vm/vsock.sock")).unwrap();
        assert_eq!(a, ["--vm", "guest-cid=3,socket=/vm/vsock.vhost,uds-path=/vm/vsock.sock"]);
        assert!(args(3, Path::new("/vm/a,b"), Path::new("/vm/u")).is_err());
        assert!(args(3, Path::new("/vm/v"), Path::new("/vm/a=b")).is_err());
        assert!(args(2, Path::new("/vm/v"), Path::new("/vm/u")).is_err());
    }
}

//! virtiofsd, the virtio-fs backend serving a VM's shared tree: one per
//! VM, on a vhost-user socket QEMU (or rpc-vmm) connects to. It serves one
//! connection and exits when its VM goes away.

use super::helper::{self, Helper, Program, SpawnOpts};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// virtiofsd's isolation of itself (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// Its own mount/pid/net namespaces with the shared dir as root (needs
    /// CAP_SYS_ADMIN in its user namespace): the default.
    Namespace,
    Chroot,
    /// No isolation (unprivileged tests only).
    None,
}

impl Sandbox {
    fn as_str(self) -> &'static str {
        match self {
            Sandbox::Namespace => "namespace",
            Sandbox::Chroot => "chroot",
            Sandbox::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Opts {
    /// The virtiofsd binary ([`super::binaries::virtiofsd`] finds it).
    pub program: PathBuf,
    pub sandbox: Sandbox,
    /// `--cache`: auto (the default), always, never, metadata.
    pub cache: &'static str,
    /// Tell the guest which directories are mount points (the bundle's
    /// rootfs and bind mounts are submounts of the shared tree, §1.8).
    pub announce_submounts: bool,
    pub readonly: bool,
    /// `--rlimit-nofile`: Some(0) keeps the limit it inherits (e.g. the
    /// container's) instead of raising it to a million.
    pub rlimit_nofile: Option<u64>,
    pub spawn: SpawnOpts,
    /// `--seccomp`: kill (the default), log, trap or none.
    pub seccomp: &'static str,
}

impl Opts {
    /// The defaults for `program`: namespace sandbox, cache=auto,
    /// announced submounts, read-write, inherited fd limit.
    pub fn new(program: PathBuf) -> Opts {
        Opts {
            program,
            sandbox: Sandbox::Namespace,
            cache: "auto",
            announce_submounts: true,
            readonly: false,
            rlimit_nofile: Some(0),
            spawn: SpawnOpts::default(),
            seccomp: "kill",
        }
    }
}

/// virtiofsd's arguments for serving `shared_dir` on `socket`.
pub fn args(shared_dir: &Path, socket: &Path, o: &Opts) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--socket-path".into(),
        socket.into(),
        "--shared-dir".into(),
        shared_dir.into(),
        format!("--sandbox={}", o.sandbox.as_str()).into(),
        format!("--cache={}", o.cache).into(),
    ];
    if o.seccomp != "kill" {
        a.push(format!("--seccomp={}", o.seccomp).into());
    }
    a.push(if o.announce_submounts { "--announce-submounts" } else { "--no-announce-submounts" }.into());
    if o.readonly {
        a.push("--readonly".into());
    }
    if let Some(n) = o.rlimit_nofile {
        a.push(format!("--rlimit-nofile={n}").into());
    }
    a
}

/// Starts virtiofsd for `shared_dir` on `socket` and returns once the
/// socket listens. Stopping it removes the socket and the `<socket>.pid`
/// file virtiofsd keeps beside it.
pub fn spawn(shared_dir: &Path, socket: &Path, o: &Opts) -> super::Result<Helper> {
    if !shared_dir.is_dir() {
        return Err(super::Error::BadSpec { field: "shared_dir", why: format!("{} is not a directory", shared_dir.display()) });
    }
    let mut pid_file = socket.as_os_str().to_owned();
    pid_file.push(".pid");
    helper::spawn(
        Program {
            name: "virtiofsd",
            path: &o.program,
            args: args(shared_dir, socket, o),
            sockets: vec![socket.to_path_buf()],
            extra_files: vec![PathBuf::from(pid_file)],
        },
        &o.spawn,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_default() {
        let a = args(Path::new("/s"), Path::new("/vm/fs.sock"), &Opts::new("/bin/virtiofsd".into()));
        let a: Vec<&str> = a.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            a,
            [
                "--socket-path",
                "/vm/fs.sock",
                "--shared-dir",
                "/s",
                "--sandbox=namespace",
                "--cache=auto",
                "--announce-submounts",
                "--rlimit-nofile=0"
            ]
        );
    }
}

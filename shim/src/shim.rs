//! The shim's life around the Task service: `start` (spawn the long-lived
//! shim, print its address, one shim per pod), `delete` (clean up after a
//! dead shim), and serving.

use std::path::Path;
use std::sync::Arc;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, StartOpts};
use log::warn;

use crate::runtime::Runtime;
use crate::service::{unmount_rootfs, Service};

/// The runtime binary a shim name stands for:
/// `io.containerd.rpc-runc.v2` / `containerd-shim-rpc-runc-v2` -> rpc-runc.
pub fn binary_for(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let mid = base
        .strip_prefix("containerd-shim-")
        .and_then(|s| s.strip_suffix("-v2"))
        .or_else(|| base.strip_prefix("io.containerd.").and_then(|s| s.strip_suffix(".v2")));
    match mid {
        Some(m) if m.starts_with("rpc-") && m != "rpc" => m.to_string(),
        _ => "rpc-runc".to_string(),
    }
}

/// The runtime id containerd knows this shim by, from the binary name.
pub fn runtime_id_for(argv0: &str) -> String {
    format!("io.containerd.{}.v2", binary_for(argv0))
}

pub struct RpcShim {
    id: String,
    socket: String,
    namespace: String,
    bundle: String,
    binary: String,
    exit: Arc<ExitSignal>,
}

/// The pod a container belongs to (CRI annotation), so one shim serves it.
fn grouping(bundle: &Path, id: &str) -> String {
    let spec = std::fs::read(bundle.join("config.json")).ok();
    let v: serde_json::Value = spec.and_then(|s| serde_json::from_slice(&s).ok()).unwrap_or_default();
    for key in ["io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"] {
        if let Some(s) = v.pointer(&format!("/annotations/{}", key.replace('/', "~1"))).and_then(|s| s.as_str()) {
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    id.to_string()
}

fn remove_socket(address: &str) {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.is_empty() {
        return;
    }
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Does a shim accept connections on `address`? A non-blocking connect:
/// refused (or absent) means nobody listens; a full backlog (EAGAIN) still
/// means a live, busy shim.
fn listening(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let Ok(sock) = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = nix::sys::socket::UnixAddr::new(path) else { return false };
    match nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&sock), &addr) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EAGAIN || e == nix::errno::Errno::EINPROGRESS,
    }
}

impl containerd_shim::Shim for RpcShim {
    type T = Service;

    fn new(runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        // containerd-shim 0.11 hands SIGPIPE to signal-hook, which makes
        // every write to a closed pipe a signal: in `start` and `delete`,
        // whose wake-up socket is gone while they exit, a SIGCHLD made the
        // handler send into a closed socket, whose SIGPIPE sent again,
        // forever (containerd waited on `start` for good); in the
        // long-lived shim, a log write to a fifo containerd no longer
        // reads raised SIGPIPE, which broke the reaper's waitpid with
        // EINTR, whose warning was logged again: two threads spun at 100%
        // CPU and the pod's tasks never ended (CI, 10 tasks in one pod).
        // Ignored, a write to a closed pipe is an EPIPE error, as in any
        // Rust program. (After the crate's setup_signals, which runs first.)
        // SAFETY: plain call.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        RpcShim {
            id: args.id.clone(),
            socket: args.socket.clone(),
            namespace: args.namespace.clone(),
            bundle: args.bundle.clone(),
            binary: binary_for(runtime_id),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let cwd = std::env::current_dir().map_err(|e| containerd_shim::Error::Other(format!("cwd: {e}")))?;
        let group = grouping(&cwd, &opts.id);
        let (_, address) = containerd_shim::spawn(opts, &group, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = if self.bundle.is_empty() {
            std::env::current_dir().map_err(|e| containerd_shim::Error::Other(format!("cwd: {e}")))?
        } else {
            self.bundle.clone().into()
        };
        match Runtime::load(&bundle) {
            Ok(rt) => {
                if let Err(e) = rt.output(&["delete", "--force", &self.id], None) {
                    warn!("cleaning up {}: {e}", self.id);
                }
            }
            Err(e) => warn!("cleaning up {}: {e}", self.id),
        }
        unmount_rootfs(&bundle);
        // The dead shim's socket (its address file is in the bundle). In a
        // pod the address is the pod's shim, which containerd also asks to
        // clean up after each member task that goes: removing the socket of
        // that live shim made the pod's next task start a second one.
        if let Ok(address) = containerd_shim::util::read_address() {
            if !listening(&address) {
                remove_socket(&address);
            }
        }
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 137,
            exited_at: MessageField::some(containerd_shim::util::timestamp()?),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
        // containerd may have removed the bundle (and the address file the
        // library reads to find the socket) already: remove it here.
        remove_socket(&self.socket);
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        Service::new(&self.namespace, &self.binary, publisher, self.exit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_the_runtime() {
        assert_eq!(binary_for("/usr/local/bin/containerd-shim-rpc-runc-v2"), "rpc-runc");
        assert_eq!(binary_for("containerd-shim-rpc-runlxc-v2"), "rpc-runlxc");
        assert_eq!(binary_for("containerd-shim-rpc-runv-v2"), "rpc-runv");
        assert_eq!(binary_for("containerd-shim-rpc-v2"), "rpc-runc");
        assert_eq!(binary_for("io.containerd.rpc-runv.v2"), "rpc-runv");
        assert_eq!(runtime_id_for("containerd-shim-rpc-runlxc-v2"), "io.containerd.rpc-runlxc.v2");
    }
}

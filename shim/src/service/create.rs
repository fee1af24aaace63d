//! Create: which runtime runs the container (the runc options), the
//! rootfs mounts, and `runtime create`, with the id reserved throughout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_shim::api::{CreateTaskRequest, CreateTaskResponse, Options};
use containerd_shim::protos::events::task::{TaskCreate, TaskIO};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use log::{debug, warn};

use super::process::{read_pid, Container, Process};
use super::{lock, Service};
use crate::error::{io, Error, Result};
use crate::io::{prepare, ProcessIo, StdioPaths};
use crate::runtime::Runtime;

/// Where a runtime binary is looked for, given its name.
pub fn resolve_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

/// The runc.v1 Options containerd sends with Create, if any.
pub fn decode_options(any: Option<&Any>) -> Result<Options> {
    let Some(any) = any else { return Ok(Options::default()) };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        return Options::parse_from_bytes(&any.value).map_err(|source| Error::Protobuf { context: "decoding runc options".into(), source });
    }
    // CRI sends other option types (runtimeoptions.v1.Options) for
    // non-runc runtime types; they carry nothing this shim uses.
    debug!("ignoring runtime options of type {}", any.type_url);
    Ok(Options::default())
}

/// A Create in flight for one id (see `Inner::creating`); released when
/// dropped, which is a no-op once the container took its place.
struct Reservation<'a> {
    svc: &'a Service,
    id: String,
    /// Still ours to release (a later Create may hold the same id once
    /// the container took our place and was deleted again).
    held: bool,
}

impl Reservation<'_> {
    /// The container is in the map now: drop the reservation. Called
    /// with the `containers` lock held.
    fn fulfil(&mut self) {
        lock(&self.svc.inner.creating).remove(&self.id);
        self.held = false;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            let _containers = lock(&self.svc.inner.containers);
            lock(&self.svc.inner.creating).remove(&self.id);
        }
    }
}

impl Service {
    /// Reserves `id` for a Create: AlreadyExists if a container of that
    /// id exists or is being created.
    fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let containers = lock(&self.inner.containers);
        let mut creating = lock(&self.inner.creating);
        if containers.contains_key(id) || creating.contains(id) {
            return Err(Error::AlreadyExists(format!("container {id} already exists")));
        }
        creating.insert(id.to_string());
        Ok(Reservation { svc: self, id: id.to_string(), held: true })
    }

    pub(super) fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(Error::Unimplemented("restoring from a checkpoint is not supported by the rpc shim".into()));
        }
        // Reserve the id before anything touches the bundle or the
        // runtime: a concurrent Create of the same id fails here at once
        // instead of racing this one through `runtime create`. The
        // reservation is dropped on every early return; on success it is
        // swapped for the container under the same lock.
        let mut reservation = self.reserve(&req.id)?;
        let bundle = PathBuf::from(&req.bundle);
        let opts = decode_options(req.options.as_ref())?;
        let binary = if opts.binary_name.is_empty() { self.inner.default_binary.clone() } else { opts.binary_name.clone() };
        let binary = resolve_binary(&binary);
        let base_root = if opts.root.is_empty() {
            let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rpc-runc".into());
            PathBuf::from("/run/containerd").join(name)
        } else {
            PathBuf::from(&opts.root)
        };
        let runtime = Runtime {
            binary,
            root: base_root.join(&self.inner.namespace),
            systemd_cgroup: opts.systemd_cgroup,
            no_pivot_root: opts.no_pivot_root,
            no_new_keyring: opts.no_new_keyring,
            log: bundle.join("log.json"),
            io_owner: (opts.io_uid != 0 || opts.io_gid != 0).then_some((opts.io_uid, opts.io_gid)),
        };
        if !opts.shim_cgroup.is_empty() {
            if let Err(e) = containerd_shim::cgroup::add_task_to_cgroup(&opts.shim_cgroup, std::process::id()) {
                warn!("moving the shim to {}: {e}", opts.shim_cgroup);
            }
        }
        runtime.save(&bundle)?;

        // Mount the snapshot (overlay etc.) on bundle/rootfs.
        let rootfs = bundle.join("rootfs");
        let mut rootfs_mounted = false;
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs).map_err(io(format!("creating {}", rootfs.display())))?;
            for m in &req.rootfs {
                let res = containerd_shim::mount::mount_rootfs(Some(&m.type_), Some(&m.source), &m.options, &rootfs);
                if let Err(e) = res {
                    unmount_rootfs(&bundle);
                    return Err(Error::Shim { context: format!("mounting {} rootfs {}", m.type_, m.source), source: e });
                }
            }
            rootfs_mounted = true;
        }

        let stdio = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        let result = self.create_init(&req.id, &bundle, &runtime, &stdio);
        let (pid, pio) = match result {
            Ok(v) => v,
            Err(e) => {
                if rootfs_mounted {
                    unmount_rootfs(&bundle);
                }
                return Err(e);
            }
        };
        let mut init = Process::new("", stdio.clone());
        init.pid = pid;
        init.io = pio;
        let early = {
            let mut containers = lock(&self.inner.containers);
            reservation.fulfil();
            containers.insert(
                req.id.clone(),
                Container {
                    id: req.id.clone(),
                    bundle: bundle.clone(),
                    runtime,
                    rootfs_mounted,
                    init,
                    execs: HashMap::new(),
                    paused: false,
                    events_pid: None,
                },
            );
            self.end_flight(Some(pid))
        };
        self.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: String::new(),
            pid: pid as u32,
            ..Default::default()
        });
        if let Some(code) = early {
            // init died before create returned: its exit follows TaskCreate.
            if let Some(c) = lock(&self.inner.containers).get_mut(&req.id) {
                self.process_exited(&req.id, &mut c.init, code);
            }
        }
        Ok(CreateTaskResponse { pid: pid as u32, ..Default::default() })
    }

    /// `runtime create`; leaves one in-flight mark for the caller to end.
    fn create_init(&self, id: &str, bundle: &Path, runtime: &Runtime, stdio: &StdioPaths) -> Result<(i32, ProcessIo)> {
        let (rt, mut pio) = prepare(stdio, &self.inner.socket_dir, runtime.io_owner, (&self.inner.namespace, id))?;
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut args: Vec<std::ffi::OsString> =
            vec!["create".into(), "--bundle".into(), bundle.into(), "--pid-file".into(), pid_file.clone().into()];
        if let Some(s) = &rt.console_socket {
            args.push("--console-socket".into());
            args.push(s.path.clone().into());
        }
        if runtime.no_pivot_root {
            args.push("--no-pivot".into());
        }
        if runtime.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        args.push(id.into());
        self.begin_flight();
        if let Err(e) = runtime.run_with_stdio(&args, rt.stdin, rt.stdout, rt.stderr) {
            self.end_flight(None);
            return Err(e);
        }
        // The runtime created the container: from here on, a failure
        // deletes it (the id is reserved by this Create, so it is ours).
        let res = read_pid(&pid_file).and_then(|pid| match &rt.console_socket {
            Some(sock) => pio.attach_console(sock).map(|_| pid),
            None => Ok(pid),
        });
        match res {
            Ok(pid) => Ok((pid, pio)),
            Err(e) => {
                if let Err(de) = runtime.output(&["delete", "--force", id], None) {
                    warn!("deleting {id} after a failed create: {de}");
                }
                self.end_flight(None);
                Err(e)
            }
        }
    }
}

pub fn unmount_rootfs(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    let Some(p) = rootfs.to_str() else { return };
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(p), libc::MNT_DETACH) {
        warn!("unmounting {p}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn runc_options_decode() {
        let opts = Options {
            binary_name: "/opt/bin/rpc-runv".into(),
            root: "/run/x".into(),
            systemd_cgroup: true,
            no_pivot_root: true,
            io_uid: 1000,
            ..Default::default()
        };
        let any =
            Any { type_url: "containerd.runc.v1.Options".into(), value: opts.write_to_bytes().expect("encode"), ..Default::default() };
        let got = decode_options(Some(&any)).expect("decode");
        assert_eq!(got.binary_name, "/opt/bin/rpc-runv");
        assert_eq!(got.root, "/run/x");
        assert!(got.systemd_cgroup && got.no_pivot_root);
        assert_eq!(got.io_uid, 1000);
        // other option types (CRI's runtimeoptions) are ignored, garbage is an error
        let other = Any { type_url: "runtimeoptions.v1.Options".into(), value: vec![1, 2, 3], ..Default::default() };
        assert_eq!(decode_options(Some(&other)).expect("ignored").binary_name, "");
        let bad = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![0xff, 0xff], ..Default::default() };
        assert!(decode_options(Some(&bad)).is_err());
        assert_eq!(decode_options(None).expect("none").root, "");
    }
}

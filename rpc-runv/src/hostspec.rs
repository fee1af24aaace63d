//! The host side of a VM: a native container, derived from the user's
//! config, whose process is our supervisor (the exec step) and, under it,
//! the hypervisor and its helpers. It has the config's network namespace
//! (a CNI netns keeps its path) and cgroup (sized for the VM), a new
//! mount, pid, ipc and uts namespace, a read-only root of its own holding
//! only what the hypervisor needs, and the container's rootfs and bind
//! sources mounted at /shared/<id>/ for virtiofsd: those mounts live and
//! die with the host-side mount namespace, nothing is mounted on the host.

use std::path::{Path, PathBuf};

use runtime_core::bundle::Bundle;
use serde_json::{json, Value};

use crate::error::{io, Error, Result};
use crate::guestspec;
use crate::sizing::Size;

/// Inside the host side: the state's `vm/` directory (sockets, logs, the
/// launch description).
pub const VM_DIR: &str = "/vm";
/// Inside the host side: the tree virtiofsd shares (`<id>/rootfs`, `<id>/m<N>`).
pub const SHARED: &str = "/shared";
/// Inside the host side: the hypervisor's files, bound read-only.
pub const FILES: &str = "/rpc";

/// Capabilities of the supervisor (root in the host side's namespaces):
/// what virtiofsd needs to serve the guest's files as their owners
/// (credentials, ownership, modes, device nodes), to sandbox itself
/// (SYS_ADMIN, SYS_CHROOT), and KILL for its children.
const CAPS: [&str; 12] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_MKNOD",
    "CAP_SETFCAP",
    "CAP_SYS_ADMIN",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
];

/// A host file the hypervisor needs, bound read-only at `FILES/<name>`.
pub struct HostFile {
    pub name: &'static str,
    pub path: PathBuf,
}

fn bind(source: &Path, dest: &str, ro: bool) -> Value {
    let mut opts = vec!["rbind", "nosuid", "nodev"];
    if ro {
        opts.push("ro");
    }
    json!({ "destination": dest, "type": "bind", "source": source, "options": opts })
}

/// Makes `<dir>/vmroot`: the host side's root, empty but for the merged
/// /usr's links (/bin, /lib... as on the host) and the mount points.
pub fn make_root(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("vmroot");
    std::fs::create_dir_all(&root).map_err(io(format!("creating {}", root.display())))?;
    for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(top);
        if let Ok(target) = std::fs::read_link(&host) {
            std::os::unix::fs::symlink(&target, root.join(top)).map_err(io(format!("linking {} in {}", top, root.display())))?;
        }
    }
    for d in ["usr", "etc", "proc", "dev", "tmp", "vm", "rpc", "shared"] {
        std::fs::create_dir_all(root.join(d)).map_err(io(format!("creating {}/{d}", root.display())))?;
    }
    Ok(root)
}

/// The host side's bundle for container `bundle`'s VM, in state directory
/// `dir` (with `vmroot` made by [`make_root`]).
pub fn derive(id: &str, bundle: &Bundle, dir: &Path, size: &Size, files: &[HostFile], kvm: bool) -> Result<Bundle> {
    let config: Value = serde_json::from_slice(&bundle.raw).map_err(|e| Error::Invalid(format!("config.json: {e}")))?;
    let linux = config.get("linux").cloned().unwrap_or_else(|| json!({}));
    let terminal = config.pointer("/process/terminal").and_then(Value::as_bool).unwrap_or(false);

    // Namespaces: the config's network one as it is (a CNI netns by
    // path); the rest new and our own. A user namespace is not run yet.
    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"})];
    for n in linux.get("namespaces").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        match n.get("type").and_then(Value::as_str) {
            Some("network") => namespaces.push(n.clone()),
            Some("user") => {
                return Err(Error::Invalid(format!("container {id}: linux.namespaces: rpc-runv does not run user namespaces yet")));
            }
            _ => {}
        }
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
        bind(Path::new("/usr"), "/usr", true),
        bind(&dir.join("vm"), VM_DIR, false),
    ];
    if Path::new("/etc/ld.so.cache").exists() {
        mounts.push(bind(Path::new("/etc/ld.so.cache"), "/etc/ld.so.cache", true));
    }
    for f in files {
        mounts.push(bind(&f.path, &format!("{FILES}/{}", f.name), true));
    }
    // Read-write even for a read-only root: the guest's rpc-runc makes
    // mount points in it before it remounts the root read-only, as runc
    // does on the host.
    mounts.push(bind(&bundle.rootfs, &format!("{SHARED}/{id}/rootfs"), false));
    for b in guestspec::binds(&config) {
        let src = Path::new(&b.source);
        if !src.is_absolute() {
            return Err(Error::Invalid(format!("container {id}: mounts: bind source {:?} is not absolute", b.source)));
        }
        mounts.push(bind(src, &format!("{SHARED}/{id}/m{}", b.n), false));
    }

    let mut devices = vec![];
    let mut allow = vec![json!({"allow": false, "access": "rwm"})];
    if kvm {
        devices.push(json!({"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 0o660, "uid": 0, "gid": 0}));
        allow.push(json!({"allow": true, "type": "c", "major": 10, "minor": 232, "access": "rwm"}));
    }
    let mut resources = json!({ "devices": allow });
    if let Some(l) = size.host_mem_limit {
        resources["memory"] = json!({ "limit": l });
    }
    if let Some(cpu) = linux.pointer("/resources/cpu") {
        resources["cpu"] = cpu.clone();
    }
    let mut host_linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "devices": devices,
    });
    if let Some(p) = linux.get("cgroupsPath") {
        host_linux["cgroupsPath"] = p.clone();
    }

    let caps: Vec<&str> = CAPS.to_vec();
    let spec = json!({
        "ociVersion": config.get("ociVersion").cloned().unwrap_or_else(|| json!("1.0.2")),
        "root": { "path": dir.join("vmroot"), "readonly": true },
        "process": {
            "terminal": terminal,
            "consoleSize": config.pointer("/process/consoleSize").cloned().unwrap_or(Value::Null),
            "user": { "uid": 0, "gid": 0 },
            // Not run (the exec step is): the spec needs one.
            "args": ["rpc-runv-vm"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": true,
            // virtiofsd keeps a file open per guest inode it serves.
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 16384, "soft": 16384 }]
        },
        "hostname": "rpc-runv",
        "mounts": mounts,
        "linux": host_linux,
    });
    let mut spec = spec;
    if spec["process"]["consoleSize"].is_null() {
        if let Some(p) = spec["process"].as_object_mut() {
            p.remove("consoleSize");
        }
    }
    let spec = serde_json::from_value(spec).map_err(|e| Error::Invalid(format!("container {id}: the VM's host-side config: {e}")))?;
    Ok(Bundle::derived(&bundle.dir, &dir.join("vmroot"), spec)?)
}

//! Validation of a parsed config.json: what the runtime relies on,
//! reported by JSON path before anything is made.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::log;

/// What config.json's `process` and an `exec --process` file must both
/// satisfy; the error is (JSON path with `prefix`, message).
pub(super) fn check_process(p: &oci_spec::runtime::Process, prefix: &str) -> std::result::Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((format!("{prefix}{f}"), m));
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return err("args", "must not be empty".into());
    }
    if !p.cwd().is_absolute() {
        return err("cwd", format!("{:?} must be an absolute path", p.cwd()));
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return err(&format!("env[{i}]"), format!("{e:?} is not of the form KEY=value"));
        }
        if e.starts_with('=') {
            return err(&format!("env[{i}]"), format!("environment variable name can't be empty: {e:?}"));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if !seen.insert(format!("{:?}", r.typ())) {
            return err(&format!("rlimits[{i}]"), format!("duplicate rlimit {:?}", r.typ()));
        }
        if r.soft() > r.hard() {
            return err(&format!("rlimits[{i}]"), "soft limit is greater than the hard limit".into());
        }
    }
    // runc 1.2's range; the kernel would clamp it silently.
    if let Some(n) = p.scheduler().as_ref().and_then(|s| *s.nice()).filter(|n| !(-20..=19).contains(n)) {
        return err("scheduler.nice", format!("{n} is outside -20..19"));
    }
    Ok(())
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Validate what the runtime relies on; returns the canonical rootfs.
pub fn validate(path: &Path, dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let err = |f: &str, m: String| Err(Error::config(path, f, m));
    // ociVersion: a semver whose major is 1.
    let ver = spec.version();
    let major = ver.split('.').next().unwrap_or("");
    if ver.split('.').count() < 3 || major.parse::<u32>().is_err() {
        return err("ociVersion", format!("{ver:?} is not a semantic version"));
    }
    if major != "1" {
        return err("ociVersion", format!("unsupported major version {major} in {ver:?} (this runtime implements 1.x)"));
    }
    // root.path
    let Some(root) = spec.root() else {
        return err("root", "must be set".into());
    };
    if root.path().as_os_str().is_empty() {
        return err("root.path", "must not be empty".into());
    }
    let rp = if root.path().is_absolute() { root.path().clone() } else { dir.join(root.path()) };
    let rootfs = match std::fs::canonicalize(&rp) {
        Ok(p) if p.is_dir() => p,
        Ok(p) => return err("root.path", format!("{} is not a directory", p.display())),
        Err(e) => return err("root.path", format!("{}: {e}", rp.display())),
    };
    // process
    match spec.process() {
        Some(p) => check_process(p, "process.").map_err(|(f, m)| Error::config(path, f, m))?,
        None => return err("process", "must be set".into()),
    }
    // mounts
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return err(&format!("mounts[{i}].destination"), format!("{:?} must be an absolute path", m.destination()));
        }
    }
    let linux = spec.linux().as_ref();
    // namespaces
    let mut types = HashSet::new();
    let nss = linux.and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]);
    for (i, n) in nss.iter().enumerate() {
        if !types.insert(n.typ()) {
            return err(&format!("linux.namespaces[{i}]"), format!("duplicate namespace type {}", ns_name(n.typ())));
        }
        if let Some(p) = n.path() {
            if !p.is_absolute() {
                return err(&format!("linux.namespaces[{i}].path"), format!("{p:?} must be an absolute path"));
            }
        }
    }
    let private = |t| nss.iter().any(|n| n.typ() == t);
    if !private(LinuxNamespaceType::Mount) {
        return err("linux.namespaces", "a mount namespace is required".into());
    }
    if linux.and_then(|l| l.uid_mappings().as_ref()).is_some_and(|m| !m.is_empty())
        || linux.and_then(|l| l.gid_mappings().as_ref()).is_some_and(|m| !m.is_empty())
    {
        if !private(LinuxNamespaceType::User) {
            return err("linux.uidMappings", "user namespace mappings given without a user namespace".into());
        }
    } else if nss.iter().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none()) {
        return err("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings".into());
    }
    // What the kernel would refuse when the maps are written.
    for (field, m) in [
        ("linux.uidMappings", linux.and_then(|l| l.uid_mappings().as_deref())),
        ("linux.gidMappings", linux.and_then(|l| l.gid_mappings().as_deref())),
    ] {
        if let Err((f, msg)) = super::idmap::check_mappings(field, m.unwrap_or(&[])) {
            return err(&f, msg);
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !private(LinuxNamespaceType::Uts) {
        return err("hostname", "unable to set hostname without a private UTS namespace".into());
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !private(LinuxNamespaceType::Uts) {
        return err("domainname", "unable to set domainname without a private UTS namespace".into());
    }
    if linux.and_then(|l| l.time_offsets().as_ref()).is_some_and(|t| !t.is_empty())
        && !nss.iter().any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
    {
        return err("linux.timeOffsets", "time offsets given without a new time namespace".into());
    }
    // sysctl, as runc validates it: never a host sysctl write.
    if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctls.keys().collect();
        keys.sort();
        for k in keys {
            let f = format!("linux.sysctl.{k}");
            if k.contains("..") || k.starts_with('/') || k.contains('\0') {
                return err(&f, "invalid sysctl name".into());
            }
            let norm = k.replace('/', ".");
            let ipc =
                norm.starts_with("kernel.shm") || norm.starts_with("kernel.msg") || norm == "kernel.sem" || norm.starts_with("fs.mqueue.");
            if ipc {
                if !private(LinuxNamespaceType::Ipc) {
                    return err(&f, "requires a private IPC namespace".into());
                }
            } else if norm.starts_with("net.") {
                if !private(LinuxNamespaceType::Network) {
                    return err(&f, "requires a private network namespace".into());
                }
            } else if norm == "kernel.hostname" || norm == "kernel.domainname" {
                if !private(LinuxNamespaceType::Uts) {
                    return err(&f, "requires a private UTS namespace".into());
                }
            } else {
                return err(&f, "sysctl is not in a separate kernel namespace".into());
            }
        }
    }
    for (i, d) in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten().enumerate() {
        // Cleaned first: `/dev/../etc/x` is not under /dev.
        if let Err((f, m)) = super::devices::check(d) {
            return err(&format!("linux.devices[{i}].{f}"), m);
        }
    }
    // runc refuses intelRdt on a host without it; we have no RDT support
    // (`features` says so), and ignoring it would drop an isolation the
    // config asked for.
    if linux.and_then(|l| l.intel_rdt().as_ref()).is_some() {
        return err("linux.intelRdt", "Intel RDT is not supported by this runtime".into());
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if !matches!(p, "" | "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable" | "runbindable") {
            return err("linux.rootfsPropagation", format!("unknown propagation {p:?}"));
        }
    }
    for (kind, hooks) in super::hook_lists(spec) {
        for (i, h) in hooks.iter().enumerate() {
            if !h.path().is_absolute() {
                return err(&format!("hooks.{kind}[{i}].path"), format!("{:?} must be an absolute path", h.path()));
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return err(&format!("hooks.{kind}[{i}].timeout"), "must be greater than zero".into());
            }
        }
    }
    if let Some(p) = spec.process().as_ref().and_then(|p| p.apparmor_profile().as_ref()) {
        if !p.is_empty() && !crate::host::apparmor_enabled() {
            log::warn(&format!("process.apparmorProfile {p:?} ignored: AppArmor is not enabled on this host"));
        }
    }
    Ok(rootfs)
}

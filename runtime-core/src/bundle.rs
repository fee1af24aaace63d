//! The OCI bundle: `config.json` read with oci-spec, leniently where the
//! spec and runc are lenient, then validated. The first problem is reported
//! by its JSON path: `config.json: process.args: must not be empty`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use crate::error::{Context, Error, Result};
use crate::linux::caps::CapSets;
use crate::log;

pub const CONFIG: &str = "config.json";

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs.
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// The capability sets, parsed by us (unknown names dropped with a warning).
    pub caps: Option<CapSets>,
    /// config.json's bytes as read: create keeps them in the container's
    /// snapshot (see `state`), what exec goes by.
    pub raw: Vec<u8>,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).with_ctx(|| format!("bundle {}", dir.display()))?;
        let path = dir.join(CONFIG);
        let data = read_config(&path)?;
        let (spec, caps) = parse(&path, &data)?;
        let rootfs = validate(&path, &dir, &spec)?;
        Ok(Bundle { dir, rootfs, spec, caps, raw: data })
    }

    /// The bundle as create read it, from the container's snapshot at
    /// `path`: parsed, not validated again (create did, and the rootfs is
    /// the one create resolved, not what the path points to now).
    pub fn recorded(dir: &Path, rootfs: &Path, path: &Path, raw: &[u8]) -> Result<Bundle> {
        let (spec, caps) = parse(path, raw)?;
        Ok(Bundle { dir: dir.to_path_buf(), rootfs: rootfs.to_path_buf(), spec, caps, raw: vec![] })
    }

    pub fn namespaces(&self) -> &[oci_spec::runtime::LinuxNamespace] {
        self.spec.linux().as_ref().and_then(|l| l.namespaces().as_deref()).unwrap_or(&[])
    }

    /// True when the config asks for a new namespace of this type (no path).
    pub fn new_ns(&self, t: LinuxNamespaceType) -> bool {
        self.namespaces().iter().any(|n| n.typ() == t && n.path().is_none())
    }

    pub fn has_ns(&self, t: LinuxNamespaceType) -> bool {
        self.namespaces().iter().any(|n| n.typ() == t)
    }
}

/// The most config.json may hold. runc sets no bound, but a bundle's
/// config is rarely past a few hundred KiB (a large seccomp profile);
/// the bound keeps `/dev/zero` or a growing file from eating memory.
pub const CONFIG_MAX: u64 = 16 << 20;

/// Read config.json: a regular file (symlinks followed, as runc does), at
/// most CONFIG_MAX bytes. Opened non-blocking and without becoming our
/// controlling terminal, so a FIFO or a device is refused by fstat instead
/// of hanging the open (or the read) of a process that cannot be
/// interrupted by anything but SIGKILL.
pub fn read_config(path: &Path) -> Result<Vec<u8>> {
    use crate::bounded::ReadError;
    crate::bounded::read_regular(path, CONFIG_MAX, true).map_err(|e| match e {
        ReadError::Io(source) => Error::Io { context: path.display().to_string(), source },
        ReadError::NotRegular(kind) => Error::BadFile { path: path.into(), msg: format!("is {kind}; config.json must be a regular file") },
        e => Error::BadFile { path: path.into(), msg: e.to_string() },
    })
}

/// What `parse` reads of config.json beside oci-spec's typed parse.
#[derive(serde::Deserialize)]
struct RawConfig<'a> {
    #[serde(borrow, default)]
    process: Option<RawProcess<'a>>,
}

#[derive(serde::Deserialize)]
struct RawProcess<'a> {
    #[serde(borrow, default)]
    capabilities: Option<crate::linux::caps::RawCapSets<'a>>,
}

/// Parse config.json: JSON errors by line, type errors by JSON path,
/// capability names parsed leniently.
pub fn parse(path: &Path, data: &[u8]) -> Result<(Spec, Option<CapSets>)> {
    // Straight into the typed spec when it takes it, the capability names
    // read as written beside it (a skim that allocates only their list).
    // What oci-spec refuses (a capability name it does not know, which the
    // spec says to ignore, or an error to report by JSON path) goes the
    // lenient way below: three times the work (a Value, printed, parsed
    // again).
    // A NUL byte (only ever written `\u0000` in JSON) cannot reach a path,
    // an argument or a name the kernel takes: the lenient way finds the
    // string that holds it and reports it by JSON path.
    let nul = data.windows(6).any(|w| w == b"\\u0000");
    if let Some(mut spec) = (!nul).then(|| serde_json::from_slice::<Spec>(data).ok()).flatten() {
        if let Ok(raw) = serde_json::from_slice::<RawConfig>(data) {
            if let Some(p) = spec.process_mut() {
                p.set_capabilities(None);
            }
            let caps = raw.process.and_then(|p| p.capabilities).map(|c| CapSets::from_raw(&c));
            return Ok((spec, caps));
        }
    }
    let mut v: Value =
        serde_json::from_slice(data).map_err(|e| Error::config(path, format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
    if let Some(at) = nul_at(&v, "") {
        return Err(Error::config(path, at, "contains a NUL byte"));
    }
    // Capabilities: oci-spec refuses names it does not know, runc and the
    // spec ignore them. Take them out, parse them ourselves.
    let caps = match v.pointer_mut("/process/capabilities").map(Value::take) {
        Some(Value::Null) | None => None,
        Some(c) => Some(CapSets::from_json(&c).map_err(|(f, m)| Error::config(path, format!("process.capabilities.{f}"), m))?),
    };
    if let Some(p) = v.get_mut("process").and_then(Value::as_object_mut) {
        p.remove("capabilities");
    }
    let spec: Spec = typed(path, &v)?;
    Ok((spec, caps))
}

/// The JSON path of the first string (or member name) holding a NUL byte,
/// annotations aside: they are only stored, as runc stores them.
fn nul_at(v: &Value, here: &str) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then(|| here.to_string()),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, e)| nul_at(e, &format!("{here}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, e)| {
            let p = if here.is_empty() { k.clone() } else { format!("{here}.{k}") };
            if p == "annotations" {
                return None;
            }
            if k.contains('\0') {
                return Some(p);
            }
            nul_at(e, &p)
        }),
        _ => None,
    }
}

/// What config.json's `process` and an `exec --process` file must both
/// satisfy; the error is (JSON path with `prefix`, message).
fn check_process(p: &oci_spec::runtime::Process, prefix: &str) -> std::result::Result<(), (String, String)> {
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

/// Parse an OCI `process` object (`exec --process FILE`), with the same
/// leniency for capability names as config.json.
pub fn parse_process(path: &Path, data: &[u8]) -> Result<(oci_spec::runtime::Process, Option<CapSets>)> {
    let mut v: Value =
        serde_json::from_slice(data).map_err(|e| Error::config(path, format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
    let caps = match v.get_mut("capabilities").map(Value::take) {
        Some(Value::Null) | None => None,
        Some(c) => Some(CapSets::from_json(&c).map_err(|(f, m)| Error::config(path, format!("capabilities.{f}"), m))?),
    };
    if let Some(o) = v.as_object_mut() {
        o.remove("capabilities");
    }
    if let Some(at) = nul_at(&v, "") {
        return Err(Error::config(path, at, "contains a NUL byte"));
    }
    let p: oci_spec::runtime::Process = typed(path, &v)?;
    check_process(&p, "").map_err(|(f, m)| Error::config(path, f, m))?;
    Ok((p, caps))
}

/// Deserialize into an oci-spec type, reporting a type error by its JSON
/// path. The value is printed pretty (one member per line) and parsed from
/// that text, so the error's line number maps back to a path; one code
/// path for success and failure keeps the binary small.
pub fn typed<T: serde::de::DeserializeOwned>(path: &Path, v: &Value) -> Result<T> {
    let text = serde_json::to_vec_pretty(v).map_err(|e| Error::config(path, "", e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map(|(m, _)| m.to_string()).unwrap_or(msg);
        let mut at = path_at_line(&text, e.line());
        // serde reports a missing member at the end of its object, whose
        // path `path_at_line` gives: name the member itself.
        if let Some(field) = msg.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            at = if at.is_empty() { field.to_string() } else { format!("{at}.{field}") };
        }
        Error::config(path, at, msg)
    })
}

/// The JSON path of the member on `line` (1-based) of pretty-printed JSON;
/// on a closing line, the path of the container it closes.
fn path_at_line(text: &[u8], line: usize) -> String {
    // Each open container: its name in the path and, for arrays, the
    // index of the next element.
    let mut stack: Vec<(String, Option<usize>)> = Vec::new();
    let mut here = String::new();
    for (n, raw) in String::from_utf8_lossy(text).lines().enumerate() {
        let l = raw.trim();
        let closing = l.starts_with('}') || l.starts_with(']');
        if closing {
            if n + 1 >= line {
                return dotted(&stack);
            }
            stack.pop();
            continue;
        }
        let (name, rest) = if let Some(r) = l.strip_prefix('"').and_then(|r| r.split_once("\": ")) {
            (r.0.to_string(), r.1)
        } else {
            match stack.last_mut() {
                Some((_, Some(i))) => {
                    let s = format!("[{i}]");
                    *i += 1;
                    (s, l)
                }
                _ => (String::new(), l),
            }
        };
        let prefix = dotted(&stack);
        here = if prefix.is_empty() {
            name.clone()
        } else if name.starts_with('[') {
            format!("{prefix}{name}")
        } else if name.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if n + 1 >= line {
            break;
        }
        let rest = rest.trim_end_matches(',');
        if rest.ends_with('{') {
            stack.push((name, None));
        } else if rest.ends_with('[') {
            stack.push((name, Some(0)));
        }
    }
    here
}

/// `a.b[1].c` from the names of the open containers.
fn dotted(stack: &[(String, Option<usize>)]) -> String {
    stack.iter().map(|(k, _)| k.as_str()).filter(|k| !k.is_empty()).fold(String::new(), |acc, k| {
        if acc.is_empty() || k.starts_with('[') {
            acc + k
        } else {
            acc + "." + k
        }
    })
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
        if let Err((f, msg)) = crate::linux::namespaces::check_mappings(field, m.unwrap_or(&[])) {
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
        if let Err((f, m)) = crate::linux::devices::check(d) {
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
    for (kind, hooks) in crate::hooks::all(spec) {
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
        if !p.is_empty() && !crate::linux::lsm::apparmor_enabled() {
            log::warn(&format!("process.apparmorProfile {p:?} ignored: AppArmor is not enabled on this host"));
        }
    }
    Ok(rootfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"/"}},"process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]}},"linux":{{"namespaces":[{{"type":"mount"}}]}}{extra}}}"#
        )
    }

    fn check(s: &str) -> Result<PathBuf> {
        let p = Path::new("config.json");
        let (spec, _) = parse(p, s.as_bytes())?;
        validate(p, Path::new("/"), &spec)
    }

    #[test]
    fn good_config_validates() {
        check(&cfg("")).unwrap();
    }

    #[test]
    fn reports_by_json_path() {
        let e = check(r#"{"ociVersion":"1.0.2","root":{"path":"/"},"process":{"cwd":"/","user":{"uid":0,"gid":0},"args":[]},"linux":{"namespaces":[{"type":"mount"}]}}"#).unwrap_err();
        assert_eq!(e.to_string(), "config.json: process.args: must not be empty");
        let e = check(&cfg("").replace("1.0.2", "2.0.0")).unwrap_err();
        assert!(e.to_string().contains("ociVersion"), "{e}");
        let e = check(&cfg("").replace(r#""uid":0"#, r#""uid":"x""#)).unwrap_err();
        assert!(e.to_string().contains("process.user.uid"), "{e}");
        let e = check("{not json").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn missing_members_are_named() {
        let e = check(&cfg("").replace(r#""cwd":"/","#, "")).unwrap_err();
        assert!(e.to_string().contains("process.cwd: missing field `cwd`"), "{e}");
        let e = check(&cfg("").replace(r#""user":{"uid":0,"gid":0},"#, "")).unwrap_err();
        assert!(e.to_string().contains("process.user: missing field `user`"), "{e}");
        let e = check(&cfg(r#","mounts":[{"type":"tmpfs"}]"#)).unwrap_err();
        assert!(e.to_string().contains("mounts[0].destination: missing field"), "{e}");
    }

    #[test]
    fn nul_bytes_are_named() {
        let e = check(&cfg("").replace(r#""args":["sh"]"#, r#""args":["sh","a\u0000b"]"#)).unwrap_err();
        assert_eq!(e.to_string(), "config.json: process.args[1]: contains a NUL byte");
        let e = check(&cfg(r#","hostname":"a\u0000""#)).unwrap_err();
        assert!(e.to_string().contains("config.json: hostname: contains a NUL byte"), "{e}");
        // annotations are only stored; an escaped backslash is no NUL
        check(
            &cfg(r#","annotations":{"a":"b\u0000"},"hostname":"\\u0000""#)
                .replace(r#"[{"type":"mount"}]"#, r#"[{"type":"mount"},{"type":"uts"}]"#),
        )
        .unwrap();
    }

    #[test]
    fn empty_root_path() {
        let e = check(&cfg("").replace(r#""path":"/""#, r#""path":"""#)).unwrap_err();
        assert_eq!(e.to_string(), "config.json: root.path: must not be empty");
    }

    #[test]
    fn paths_from_pretty_lines() {
        let v: Value = serde_json::from_str(r#"{"a":{"b":[1,{"c":2}],"d":3},"e":[[1],[2]]}"#).unwrap();
        let t = serde_json::to_vec_pretty(&v).unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(path_at_line(&t, line("\"c\"")), "a.b[1].c");
        assert_eq!(path_at_line(&t, line("\"d\"")), "a.d");
        let v: Value = serde_json::from_str(r#"{"m":[{"x":1},{"y":"bad"}]}"#).unwrap();
        let t = serde_json::to_vec_pretty(&v).unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        let l = text.lines().position(|l| l.contains("bad")).unwrap() + 1;
        assert_eq!(path_at_line(&t, l), "m[1].y");
    }

    #[test]
    fn unknown_capabilities_are_ignored() {
        let s = cfg("").replace(r#""args":["sh"]"#, r#""args":["sh"],"capabilities":{"bounding":["CAP_CHOWN","CAP_NOT_A_CAP"]}"#);
        let (_, caps) = parse(Path::new("c"), s.as_bytes()).unwrap();
        assert_eq!(caps.unwrap().bounding.len(), 1);
    }

    #[test]
    fn capability_names_oci_spec_would_normalise_are_ignored_on_both_paths() {
        let odd = r#""CAP_CAP_NET_RAW","net_raw","NET_ADMIN","CAP_ſYS_ADMIN","CAP_KILL""#;
        for extra in ["", r#","CAP_NOT_A_CAP""#] {
            let s = cfg("").replace(r#""args":["sh"]"#, &format!(r#""args":["sh"],"capabilities":{{"bounding":[{odd}{extra}]}}"#));
            let (_, caps) = parse(Path::new("c"), s.as_bytes()).unwrap();
            assert_eq!(caps.unwrap().bounding, vec![caps::Capability::CAP_KILL], "with {extra:?}");
        }
    }

    #[test]
    fn typed_and_lenient_parses_agree_on_capabilities() {
        // Known names: the one-pass typed parse; an unknown one sends the
        // same sets through the lenient path. Both give the same sets.
        let caps = r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_CHOWN"],"effective":["CAP_KILL"],"ambient":[]}"#;
        let s = cfg("").replace(r#""args":["sh"]"#, &format!(r#""args":["sh"],"capabilities":{caps}"#));
        let (spec, fast) = parse(Path::new("c"), s.as_bytes()).unwrap();
        assert!(spec.process().as_ref().unwrap().capabilities().is_none(), "the sets live in CapSets only");
        let slow = CapSets::from_json(&serde_json::from_str(caps).unwrap()).unwrap();
        let sorted = |mut v: Vec<caps::Capability>| {
            v.sort_by_key(|c| c.index());
            v
        };
        let fast = fast.unwrap();
        assert_eq!(sorted(fast.bounding), sorted(slow.bounding.clone()));
        assert_eq!(slow.bounding.len(), 2);
        assert_eq!(fast.effective, slow.effective);
        assert!(fast.ambient.is_empty() && fast.permitted.is_empty() && fast.inheritable.is_empty());
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let e = check(
            &cfg(r#","x":1"#)
                .replace(r#""namespaces":[{"type":"mount"}]"#, r#""namespaces":[{"type":"mount"}],"sysctl":{"net.ipv4.ip_forward":"1"}"#),
        )
        .unwrap_err();
        assert!(e.to_string().contains("linux.sysctl.net.ipv4.ip_forward: requires a private network namespace"), "{e}");
        let e = check(&cfg("").replace(
            r#""namespaces":[{"type":"mount"}]"#,
            r#""namespaces":[{"type":"mount"},{"type":"ipc"}],"sysctl":{"kernel.panic":"1"}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not in a separate kernel namespace"), "{e}");
        check(&cfg("").replace(
            r#""namespaces":[{"type":"mount"}]"#,
            r#""namespaces":[{"type":"mount"},{"type":"ipc"}],"sysctl":{"kernel.shmmax":"1"}"#,
        ))
        .unwrap();
    }

    #[test]
    fn devices_under_dev_and_numbers_that_fit() {
        let dev = |d: &str| {
            check(&cfg("").replace(r#""namespaces":[{"type":"mount"}]"#, &format!(r#""namespaces":[{{"type":"mount"}}],"devices":[{d}]"#)))
        };
        dev(r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229}"#).unwrap();
        let e = dev(r#"{"path":"/dev/../etc/x","type":"b","major":8,"minor":0}"#).unwrap_err();
        assert!(e.to_string().contains("linux.devices[0].path"), "{e}");
        let e = dev(r#"{"path":"/dev/x","type":"c","major":4294967297,"minor":0}"#).unwrap_err();
        assert!(e.to_string().contains("linux.devices[0].major"), "{e}");
        let e = dev(r#"{"path":"/dev/x","type":"c","major":1,"minor":-1}"#).unwrap_err();
        assert!(e.to_string().contains("linux.devices[0].minor"), "{e}");
    }

    #[test]
    fn duplicate_namespaces_and_relative_mounts() {
        let e = check(&cfg("").replace(r#"[{"type":"mount"}]"#, r#"[{"type":"mount"},{"type":"mount"}]"#)).unwrap_err();
        assert!(e.to_string().contains("linux.namespaces[1]"), "{e}");
        let e = check(&cfg(r#","mounts":[{"destination":"rel","type":"tmpfs"}]"#)).unwrap_err();
        assert!(e.to_string().contains("mounts[0].destination"), "{e}");
    }
}

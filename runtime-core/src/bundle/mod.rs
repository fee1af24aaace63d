//! The OCI bundle: `config.json` read with oci-spec, leniently where the
//! spec and runc are lenient, then validated. The first problem is reported
//! by its JSON path: `config.json: process.args: must not be empty`.

//!
//! `validate` checks what the runtime relies on, `json` reports a type
//! error by its JSON path; `caps`, `idmap` and `devices` hold what the
//! config's capabilities, id maps and devices must be, which the Linux
//! layer applies. This module depends on no part of `linux` (which takes
//! a `Bundle`): what both ask of the kernel is in `crate::host`.

pub mod caps;
pub mod devices;
pub mod idmap;
mod json;
mod validate;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use crate::error::{Context, Error, Result};

pub use caps::CapSets;
pub use json::typed;
pub use validate::{ns_name, validate};

pub const CONFIG: &str = "config.json";

/// The version of the OCI runtime spec this runtime implements (configs of
/// any 1.x are taken). Here, below `linux` and the lifecycle, so that every
/// layer (seccomp's listener message, `features`, `spec`, the lifecycle's
/// state) names it without depending on the lifecycle.
pub const OCI_VERSION: &str = "1.2.0";

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

    /// A bundle a backend made from a spec of its own (rpc-runv's host side
    /// of a VM), not read from a directory: `dir` and `rootfs` as given,
    /// the capabilities parsed from the spec, the raw config its JSON.
    pub fn derived(dir: &Path, rootfs: &Path, spec: Spec) -> Result<Bundle> {
        let raw =
            serde_json::to_vec(&spec).map_err(|e| Error::Container(format!("encoding a derived config for {}: {e}", dir.display())))?;
        let (spec, caps) = parse(&dir.join(CONFIG), &raw)?;
        Ok(Bundle { dir: dir.to_path_buf(), rootfs: rootfs.to_path_buf(), spec, caps, raw })
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
    capabilities: Option<caps::RawCapSets<'a>>,
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
    validate::check_process(&p, "").map_err(|(f, m)| Error::config(path, f, m))?;
    Ok((p, caps))
}

/// The config's hook lists by their names in config.json, in the order
/// they run (`hooks` runs them; here so that validation need not depend on
/// the code that runs them).
pub fn hook_lists(spec: &Spec) -> Vec<(&'static str, &[oci_spec::runtime::Hook])> {
    let Some(h) = spec.hooks() else { return vec![] };
    #[allow(deprecated)]
    let lists = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    lists.into_iter().map(|(k, v)| (k, v.as_deref().unwrap_or(&[]))).collect()
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
            assert_eq!(caps.unwrap().bounding, vec![::caps::Capability::CAP_KILL], "with {extra:?}");
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
        let sorted = |mut v: Vec<::caps::Capability>| {
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

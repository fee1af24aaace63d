//! Host probe: what this machine can express, so that a case the host cannot
//! run is reported as *skipped, because ...* and never as a pass.
//!
//! Everything here is read from /proc and /sys (plus one throw-away cgroup per
//! v1 controller to see which interface files a child cgroup really has).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub const CAP_SYS_RESOURCE: u32 = 24;

/// Capability names by number (as in linux/capability.h).
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn cap_number(name: &str) -> Option<u32> {
    CAP_NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().filter_map(|n| cap_number(n)).fold(0u64, |m, b| m | (1u64 << b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// v1 hierarchies plus a cgroup2 mount (systemd's "hybrid" layout).
    Hybrid,
    /// The unified hierarchy only.
    V2,
    None,
}

/// One controller as the host offers it.
#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    pub name: String,
    /// Mount point of its hierarchy.
    pub mount: PathBuf,
    /// true: a v1 hierarchy; false: the cgroup2 hierarchy.
    pub v1: bool,
    /// Interface files a child cgroup of this controller has.
    pub files: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cgroups {
    pub mode: CgroupMode,
    /// v1 controllers by name (a co-mounted "cpu,cpuacct" is listed under
    /// both names).
    pub v1: BTreeMap<String, Controller>,
    pub v2_mount: Option<PathBuf>,
    /// Controllers listed in the cgroup2 root's cgroup.controllers.
    pub v2_controllers: Vec<String>,
    /// Files of a child cgroup of the cgroup2 hierarchy.
    pub v2_files: BTreeSet<String>,
}

impl Cgroups {
    /// Where a runtime using the v1 hierarchies where present (as runc,
    /// crun and ours do on a hybrid host) finds `controller`.
    pub fn controller(&self, name: &str) -> Option<Controller> {
        if let Some(c) = self.v1.get(name) {
            return Some(c.clone());
        }
        if self.mode == CgroupMode::V2 && self.v2_controllers.iter().any(|c| c == name) {
            return Some(Controller { name: name.to_string(), mount: self.v2_mount.clone()?, v1: false, files: self.v2_files.clone() });
        }
        None
    }

    /// Skip reason unless `controller` offers interface file `file`.
    pub fn need_file(&self, controller: &str, v1_file: &str, v2_file: &str) -> Result<Controller, String> {
        let c = match self.controller(controller) {
            Some(c) => c,
            None => {
                let extra = if self.v2_controllers.iter().any(|c| c == controller) {
                    " (it exists only on the cgroup2 hierarchy of this hybrid host, which runtimes driving the v1 hierarchies do not use)"
                } else {
                    ""
                };
                return Err(format!("host has no {controller} cgroup controller{extra}"));
            }
        };
        let f = if c.v1 { v1_file } else { v2_file };
        if f.is_empty() {
            return Err(format!("no {controller} interface file for this resource on cgroup {}", if c.v1 { "v1" } else { "v2" }));
        }
        if !c.files.contains(f) {
            return Err(format!("host's {controller} cgroup has no {f} file"));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub euid: u32,
    pub kernel: String,
    pub arch: String,
    /// Effective capabilities of the runner (the runtime inherits them).
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub missing_caps: Vec<String>,
    /// soft, hard (u64::MAX = unlimited), by RLIMIT_ name.
    pub rlimits: BTreeMap<String, (u64, u64)>,
    pub oom_score_adj: i32,
    /// Lowest oom_score_adj a process of ours may set.
    pub oom_min: i32,
    pub cgroups: Cgroups,
    /// Namespace types of /proc/self/ns.
    pub namespaces: BTreeSet<String>,
    pub max_user_namespaces: u64,
    pub lsms: Vec<String>,
    pub apparmor: bool,
    pub selinux: bool,
    pub seccomp: bool,
    pub seccomp_arches: Vec<String>,
    /// A block device (major, minor, name) for blkio throttling.
    pub block_device: Option<(u32, u32, String)>,
    pub cpus: Vec<u32>,
    pub mems: Vec<u32>,
    pub unshare: Option<PathBuf>,
    pub busybox: PathBuf,
    /// Propagation of the mount holding the runner's temp dir.
    pub tmp_propagation: String,
}

pub fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn status_hex(status: &str, key: &str) -> u64 {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0)
}

/// Parse a cpu/mem list like "0-3,5".
pub fn parse_list(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                v.extend(a..=b);
            }
        } else if let Ok(n) = part.trim().parse() {
            v.push(n);
        }
    }
    v
}

pub const RLIMITS: &[(&str, i32)] = &[
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

fn probe_rlimits() -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for (name, res) in RLIMITS {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit fills a valid struct.
        if unsafe { libc::getrlimit(*res as _, &mut r) } == 0 {
            m.insert(name.to_string(), (r.rlim_cur, r.rlim_max));
        }
    }
    m
}

/// Mounted cgroup hierarchies from /proc/self/mountinfo.
fn probe_cgroups(tag: &str) -> Cgroups {
    let mut v1 = BTreeMap::new();
    let mut v2_mount = None;
    for line in read("/proc/self/mountinfo").lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mnt = PathBuf::from(&*unescape(pre[4]));
        match post[0] {
            "cgroup2" if v2_mount.is_none() => v2_mount = Some(mnt),
            "cgroup" => {
                for opt in post[2].split(',') {
                    let name = match opt {
                        "rw" | "ro" | "relatime" | "nosuid" | "nodev" | "noexec" | "xattr" | "clone_children" | "noprefix" => continue,
                        o if o.starts_with("release_agent=") => continue,
                        o => o.to_string(),
                    };
                    v1.entry(name.clone()).or_insert(Controller { name, mount: mnt.clone(), v1: true, files: BTreeSet::new() });
                }
            }
            _ => {}
        }
    }
    // Files of a fresh child cgroup, per hierarchy.
    let mut by_mount: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for c in v1.values() {
        if !by_mount.contains_key(&c.mount) {
            by_mount.insert(c.mount.clone(), child_files(&c.mount, tag));
        }
    }
    for c in v1.values_mut() {
        c.files = by_mount.get(&c.mount).cloned().unwrap_or_default();
    }
    let (v2_controllers, v2_files) = match &v2_mount {
        Some(m) => (read(m.join("cgroup.controllers")).split_whitespace().map(String::from).collect(), child_files(m, tag)),
        None => (Vec::new(), BTreeSet::new()),
    };
    let mode = match (v1.is_empty(), v2_mount.is_some()) {
        (false, true) => CgroupMode::Hybrid,
        (false, false) => CgroupMode::V1,
        (true, true) => CgroupMode::V2,
        (true, false) => CgroupMode::None,
    };
    Cgroups { mode, v1, v2_mount, v2_controllers, v2_files }
}

/// Make a throw-away child cgroup, list its files, remove it.
fn child_files(mount: &Path, tag: &str) -> BTreeSet<String> {
    let d = mount.join(format!("rpc-conformance-probe-{tag}"));
    let _ = fs::create_dir(&d);
    let files = fs::read_dir(&d)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let _ = fs::remove_dir(&d);
    files
}

/// Undo mountinfo's octal escapes (\040 for space ...): runtime-core's,
/// through testkit.
pub use testkit::host::unescape;

fn which(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn seccomp_arches(arch: &str) -> Vec<String> {
    let v: &[&str] = match arch {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "ppc64le" => &["SCMP_ARCH_PPC64LE"],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "riscv64" => &["SCMP_ARCH_RISCV64"],
        _ => &[],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// Propagation ("shared", "slave", "private") of the mount containing `p`.
pub fn propagation_of(p: &Path) -> String {
    let mut best: Option<(usize, String)> = None;
    for line in read("/proc/self/mountinfo").lines() {
        let Some((pre, _)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        let mnt = unescape(f[4]).into_owned();
        if p.starts_with(&mnt) {
            let opt = &f[6..];
            let prop = if opt.iter().any(|o| o.starts_with("shared:")) {
                "shared"
            } else if opt.iter().any(|o| o.starts_with("master:")) {
                "slave"
            } else if opt.contains(&"unbindable") {
                "unbindable"
            } else {
                "private"
            };
            if best.as_ref().map(|(l, _)| mnt.len() >= *l).unwrap_or(true) {
                best = Some((mnt.len(), prop.to_string()));
            }
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

impl Host {
    pub fn probe(busybox: &Path, tmp: &Path) -> Host {
        let status = read("/proc/self/status");
        let cap_eff = status_hex(&status, "CapEff:");
        let cap_bnd = status_hex(&status, "CapBnd:");
        let last_cap: u32 = read("/proc/sys/kernel/cap_last_cap").trim().parse().unwrap_or(40);
        let missing_caps = (0..=last_cap)
            .filter(|b| cap_eff & (1u64 << b) == 0)
            .map(|b| CAP_NAMES.get(b as usize).map(|s| s.to_string()).unwrap_or(format!("cap{b}")))
            .collect();
        let oom_score_adj: i32 = read("/proc/self/oom_score_adj").trim().parse().unwrap_or(0);
        let oom_min = if cap_eff & (1 << CAP_SYS_RESOURCE) != 0 { -1000 } else { oom_score_adj };
        let namespaces = fs::read_dir("/proc/self/ns")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with("_for_children"))
                    .collect()
            })
            .unwrap_or_default();
        let mut lsms: Vec<String> =
            read("/sys/kernel/security/lsm").trim().split(',').filter(|s| !s.is_empty()).map(String::from).collect();
        let apparmor = read("/sys/module/apparmor/parameters/enabled").trim() == "Y";
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        if apparmor && !lsms.iter().any(|l| l == "apparmor") {
            lsms.push("apparmor".into());
        }
        if selinux && !lsms.iter().any(|l| l == "selinux") {
            lsms.push("selinux".into());
        }
        let seccomp = status.lines().any(|l| l.starts_with("Seccomp:"));
        // SAFETY: utsname is plain data, for which all zeroes is a valid value.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname fills the struct it is given.
        unsafe { libc::uname(&mut uts) };
        // SAFETY: the utsname fields are NUL-terminated (uname's, or the
        // zeroes it started as), and `uts` outlives the borrow.
        let cstr = |a: &[libc::c_char]| unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }.to_string_lossy().into_owned();
        let arch = cstr(&uts.machine);
        let kernel = cstr(&uts.release);
        let block_device = fs::read_dir("/sys/block").ok().and_then(|rd| {
            let mut devs: Vec<(u32, u32, String)> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let dev = read(e.path().join("dev"));
                    let (a, b) = dev.trim().split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?, name))
                })
                .collect();
            // Prefer a real disk over loop/zram/ram devices.
            devs.sort_by_key(|(_, _, n)| (n.starts_with("loop") || n.starts_with("ram") || n.starts_with("zram"), n.clone()));
            devs.into_iter().next()
        });
        let tag = std::process::id().to_string();
        let cgroups = probe_cgroups(&tag);
        let cpus = match cgroups.v1.get("cpuset") {
            Some(c) => parse_list(&read(c.mount.join("cpuset.effective_cpus"))),
            None => parse_list(&read("/sys/devices/system/cpu/online")),
        };
        let mems = match cgroups.v1.get("cpuset") {
            Some(c) => parse_list(&read(c.mount.join("cpuset.effective_mems"))),
            None => parse_list(&read("/sys/devices/system/node/online")),
        };
        Host {
            // SAFETY: geteuid has no preconditions and cannot fail.
            euid: unsafe { libc::geteuid() },
            kernel,
            arch: arch.clone(),
            cap_eff,
            cap_bnd,
            missing_caps,
            rlimits: probe_rlimits(),
            oom_score_adj,
            oom_min,
            cgroups,
            namespaces,
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces").trim().parse().unwrap_or(0),
            lsms,
            apparmor,
            selinux,
            seccomp,
            seccomp_arches: seccomp_arches(&arch),
            block_device,
            cpus,
            mems,
            unshare: which("unshare"),
            busybox: busybox.to_path_buf(),
            tmp_propagation: propagation_of(tmp),
        }
    }

    pub fn has_cap(&self, cap: u32) -> bool {
        self.cap_eff & (1u64 << cap) != 0
    }

    pub fn hard_limit(&self, rlimit: &str) -> u64 {
        self.rlimits.get(rlimit).map(|r| r.1).unwrap_or(u64::MAX)
    }

    pub fn has_ns(&self, t: &str) -> bool {
        self.namespaces.contains(t)
    }

    /// A few lines for the report header.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.push(format!("kernel {} ({}), euid {}", self.kernel, self.arch, self.euid));
        v.push(format!(
            "capabilities missing from root: {}",
            if self.missing_caps.is_empty() { "none".to_string() } else { self.missing_caps.join(", ") }
        ));
        let nofile = self.rlimits.get("RLIMIT_NOFILE").map(|r| r.1).unwrap_or(0);
        v.push(format!(
            "RLIMIT_NOFILE hard limit {}{}; oom_score_adj range {}..1000",
            fmt_limit(nofile),
            if self.has_cap(CAP_SYS_RESOURCE) { "" } else { " (cannot be raised: no CAP_SYS_RESOURCE)" },
            self.oom_min
        ));
        let c = &self.cgroups;
        let mut v1: Vec<&str> = c.v1.keys().map(|s| s.as_str()).collect();
        v1.dedup();
        v.push(format!(
            "cgroups: {:?}; v1 controllers: {}; cgroup2 at {}: {}",
            c.mode,
            if v1.is_empty() { "none".into() } else { v1.join(", ") },
            c.v2_mount.as_ref().map(|p| p.display().to_string()).unwrap_or("-".into()),
            if c.v2_controllers.is_empty() { "no controllers".into() } else { c.v2_controllers.join(", ") }
        ));
        v.push(format!(
            "namespaces: {}; LSMs: {}; seccomp: {}",
            self.namespaces.iter().cloned().collect::<Vec<_>>().join(", "),
            if self.lsms.is_empty() { "none".into() } else { self.lsms.join(", ") },
            if self.seccomp { "yes" } else { "no" }
        ));
        v
    }
}

pub fn fmt_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse() {
        assert_eq!(parse_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("1\n"), vec![1]);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn caps_map() {
        assert_eq!(cap_number("CAP_SYS_RESOURCE"), Some(24));
        assert_eq!(cap_mask(&["CAP_CHOWN", "CAP_KILL"]), 0b100001);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}

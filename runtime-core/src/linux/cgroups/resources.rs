//! `linux.resources` written to the container's cgroup directories, for
//! `create` and for `update`. Everything is validated before the first
//! write; the writes are recorded and rolled back if one fails, so bad
//! input or a refusing kernel changes nothing. Each controller goes to the
//! hierarchy that has it: v1 files where a v1 controller is mounted, else
//! the v2 names in the unified directory (see `v1`, `v2`).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::devices_bpf::{self, Rule};
use super::{v1, v2};
use crate::error::{Error, Result};

/// runc's default allow list: what every container may use.
pub fn default_device_rules() -> Vec<(char, i64, i64, &'static str)> {
    vec![
        ('c', -1, -1, "m"),
        ('b', -1, -1, "m"),
        ('c', 1, 3, "rwm"),
        ('c', 1, 8, "rwm"),
        ('c', 1, 7, "rwm"),
        ('c', 5, 0, "rwm"),
        ('c', 1, 5, "rwm"),
        ('c', 1, 9, "rwm"),
        ('c', 5, 1, "rwm"),
        ('c', 136, -1, "rwm"),
        ('c', 5, 2, "rwm"),
        ('c', 10, 200, "rwm"),
    ]
}

/// The container's directories sorted by version: the unified (cgroup2)
/// directory is the one under the cgroup2 mount (or, for a tree the mount
/// table does not know, the one with `cgroup.controllers`). A directory is
/// listed only when a file in it is asked about, and a v1 file is looked
/// for first in the hierarchy that mounts its controller, so a create
/// without resources lists one directory (devices) instead of all ten.
pub struct Layout<'a> {
    pub v1: Vec<&'a Path>,
    pub v2: Option<&'a Path>,
    all: Vec<Entry<'a>>,
}

struct Entry<'a> {
    dir: &'a Path,
    /// The v1 controllers of its hierarchy, when the mount table says.
    ctrls: Option<Vec<String>>,
    names: std::cell::OnceCell<Vec<String>>,
}

/// v1 controller names: a file named after one lives in that hierarchy.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

impl<'a> Layout<'a> {
    pub fn new(dirs: &'a [PathBuf]) -> Layout<'a> {
        let hs = super::Hierarchies::cached();
        let mut l = Layout { v1: vec![], v2: None, all: Vec::with_capacity(dirs.len()) };
        for d in dirs {
            // The deepest mountpoint above the directory is its hierarchy.
            let h = hs.list.iter().filter(|h| d.starts_with(&h.mountpoint)).max_by_key(|h| h.mountpoint.as_os_str().len());
            let (ctrls, is_v2) = match h.map(|h| &h.kind) {
                Some(super::Kind::V1(c)) => (Some(c.clone()), Some(false)),
                Some(super::Kind::V2) => (None, Some(true)),
                None => (None, None),
            };
            l.all.push(Entry { dir: d.as_path(), ctrls, names: std::cell::OnceCell::new() });
            let is_v2 = is_v2.unwrap_or_else(|| l.has(d, "cgroup.controllers"));
            if is_v2 && l.v2.is_none() {
                l.v2 = Some(d.as_path());
            } else {
                l.v1.push(d.as_path());
            }
        }
        l
    }

    fn entry(&self, d: &Path) -> Option<&Entry<'a>> {
        // Byte comparison: Path's == walks components, which was slow.
        self.all.iter().find(|e| e.dir.as_os_str() == d.as_os_str())
    }

    /// The files of directory `d` (one of ours), listed on first use.
    fn names(&self, d: &Path) -> &[String] {
        let Some(e) = self.entry(d) else { return &[] };
        e.names.get_or_init(|| {
            let mut n: Vec<String> = std::fs::read_dir(e.dir)
                .map(|rd| rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
                .unwrap_or_default();
            n.sort_unstable();
            n
        })
    }

    /// Whether directory `d` (one of ours) holds `file`.
    pub fn has(&self, d: &Path, file: &str) -> bool {
        self.names(d).binary_search_by(|x| x.as_str().cmp(file)).is_ok()
    }

    /// The v1 directories that may hold files starting with `prefix`: the
    /// hierarchies mounting that controller (and trees the mount table does
    /// not know); all of them for files that belong to no controller.
    fn v1_candidates<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = &'a Path> + 's {
        let ctrl = prefix.split('.').next().unwrap_or("");
        let by_ctrl = V1_CONTROLLERS.contains(&ctrl);
        self.v1
            .iter()
            .copied()
            .filter(move |d| !by_ctrl || self.entry(d).and_then(|e| e.ctrls.as_ref()).is_none_or(|c| c.iter().any(|x| x == ctrl)))
    }

    /// Whether any v1 directory has a file starting with `prefix`.
    pub fn v1_with_prefix(&self, prefix: &str) -> Option<&'a Path> {
        self.v1_candidates(prefix).find(|d| self.names(d).iter().any(|x| x.starts_with(prefix)))
    }

    /// The v1 directory holding `file`.
    pub fn v1_with(&self, file: &str) -> Option<&'a Path> {
        self.v1_candidates(file).find(|d| self.has(d, file))
    }

    /// The unified directory, if it holds `file`.
    pub fn v2_with(&self, file: &str) -> Option<&'a Path> {
        self.v2.filter(|d| self.has(d, file))
    }

    /// Pure v2: no v1 directory at all.
    pub fn pure_v2(&self) -> bool {
        self.v1.is_empty() && self.v2.is_some()
    }
}

/// cpu.idle, which v1 (cpu controller) and v2 name and write alike.
pub(super) fn cpu_idle(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    if let Some(i) = r.cpu_idle {
        if d.join("cpu.idle").exists() {
            tx.write(d, "cpu.idle", &i.to_string())?;
        } else if i != 0 {
            return Err(Error::Usage("linux.resources.cpu.idle: this kernel has no cpu.idle".into()));
        }
    }
    Ok(())
}

/// A recorded write, for rollback.
struct Undo {
    path: PathBuf,
    old: String,
}

/// Writes with an undo log.
#[derive(Default)]
pub struct Tx {
    log: Vec<Undo>,
}

impl Tx {
    pub fn new() -> Tx {
        Tx::default()
    }

    /// Write `v` to `dir/file`; the error names the file and value.
    pub fn write(&mut self, dir: &Path, file: &str, v: &str) -> Result<()> {
        let p = dir.join(file);
        let old = crate::linux::kfile::read(&p).ok();
        std::fs::write(&p, v).map_err(|e| Error::Cgroup { path: p.clone(), msg: format!("writing {v:?}: {}", explain(file, &e)) })?;
        if let Some(old) = old {
            self.log.push(Undo { path: p, old });
        }
        Ok(())
    }

    /// Write and record, leaving the error to the caller (for optional
    /// files the kernel may refuse).
    pub fn try_write(&mut self, dir: &Path, file: &str, v: &str) -> std::io::Result<()> {
        let p = dir.join(file);
        let old = crate::linux::kfile::read(&p).ok();
        std::fs::write(&p, v)?;
        if let Some(old) = old {
            self.log.push(Undo { path: p, old });
        }
        Ok(())
    }

    /// Put back what was there, newest first. Values that depend on each
    /// other (memory and memsw) may need a second pass.
    pub fn rollback(mut self) {
        let mut pending: Vec<Undo> = self.log.drain(..).rev().collect();
        for _ in 0..2 {
            let mut failed = vec![];
            for u in pending {
                if !restore(&u) {
                    failed.push(u);
                }
            }
            pending = failed;
            if pending.is_empty() {
                return;
            }
        }
        for u in pending {
            crate::log::warn(&format!("could not restore {} to {:?}", u.path.display(), u.old.trim()));
        }
    }

    /// Keep the writes.
    pub fn commit(mut self) {
        self.log.clear();
    }
}

fn restore(u: &Undo) -> bool {
    let name = u.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let old = u.old.trim();
    // Per-device files list one device a line and take one line a write.
    let per_line = name.ends_with("_device") || name == "io.max" || name == "rdma.max" || name == "io.weight" || name == "io.bfq.weight";
    if per_line {
        return old.lines().all(|l| std::fs::write(&u.path, l).is_ok());
    }
    // v1 reports "max" limits as a huge number: write them back as -1.
    let v = if old == "9223372036854771712" && name.ends_with("limit_in_bytes") { "-1" } else { old };
    std::fs::write(&u.path, v).is_ok()
}

/// Turn the kernel's terse errno into what the user did wrong.
fn explain(file: &str, e: &std::io::Error) -> String {
    match (file, e.raw_os_error()) {
        ("memory.limit_in_bytes", Some(libc::EBUSY)) | ("memory.max", Some(libc::EBUSY)) => {
            format!("{e} (the container already uses more memory than the new limit)")
        }
        ("memory.limit_in_bytes", Some(libc::EINVAL)) => {
            format!("{e} (the memory limit must not exceed the memory+swap limit)")
        }
        ("memory.memsw.limit_in_bytes", Some(libc::EINVAL)) => {
            format!("{e} (the memory+swap limit must not be below the memory limit)")
        }
        (f, Some(libc::EINVAL)) if f.starts_with("cpuset.") => {
            format!("{e} (not a subset of the parent's cpuset)")
        }
        (_, Some(libc::ENOENT)) => {
            format!("{e} (the kernel has no such file: controller not enabled or not supported)")
        }
        _ => e.to_string(),
    }
}

/// What to change: `linux.resources` normalised to runc's meaning (a zero
/// is "leave as is" for the limits where runc treats it so).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Res {
    pub mem_limit: Option<i64>,
    pub mem_reservation: Option<i64>,
    pub mem_swap: Option<i64>,
    pub mem_kernel: Option<i64>,
    pub mem_kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: Option<bool>,
    pub use_hierarchy: Option<bool>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_burst: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_idle: Option<i64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub blkio_leaf_weight: Option<u16>,
    /// (major, minor, weight, leaf weight)
    pub weight_devices: Vec<(i64, i64, Option<u16>, Option<u16>)>,
    /// (major, minor, rate) for read bps, write bps, read iops, write iops.
    pub throttle: [Vec<(i64, i64, u64)>; 4],
    /// (page size as in the spec, e.g. "2MB", limit in bytes)
    pub hugepages: Vec<(String, i64)>,
    pub net_class_id: Option<u32>,
    pub net_priorities: Vec<(String, u32)>,
    /// (device, hca_handles, hca_objects)
    pub rdma: Vec<(String, Option<u32>, Option<u32>)>,
    pub unified: Vec<(String, String)>,
}

pub const THROTTLE_NAMES: [&str; 4] = ["read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device"];

fn nz_i(v: Option<i64>) -> Option<i64> {
    v.filter(|x| *x != 0)
}
fn nz_u(v: Option<u64>) -> Option<u64> {
    v.filter(|x| *x != 0)
}

impl Res {
    pub fn from_oci(r: &LinuxResources) -> Res {
        let mut o = Res::default();
        if let Some(m) = r.memory() {
            o.mem_limit = nz_i(m.limit());
            o.mem_reservation = nz_i(m.reservation());
            o.mem_swap = nz_i(m.swap());
            o.mem_kernel = nz_i(m.kernel());
            o.mem_kernel_tcp = nz_i(m.kernel_tcp());
            o.swappiness = m.swappiness();
            o.disable_oom_killer = m.disable_oom_killer();
            o.use_hierarchy = m.use_hierarchy();
        }
        if let Some(c) = r.cpu() {
            o.cpu_shares = nz_u(c.shares());
            o.cpu_quota = nz_i(c.quota());
            o.cpu_period = nz_u(c.period());
            o.cpu_burst = c.burst();
            o.cpu_rt_runtime = nz_i(c.realtime_runtime());
            o.cpu_rt_period = nz_u(c.realtime_period());
            o.cpu_idle = c.idle();
            o.cpus = c.cpus().clone().filter(|s| !s.trim().is_empty());
            o.mems = c.mems().clone().filter(|s| !s.trim().is_empty());
        }
        if let Some(p) = r.pids() {
            o.pids_limit = Some(p.limit()).filter(|x| *x != 0);
        }
        if let Some(b) = r.block_io() {
            o.blkio_weight = b.weight().filter(|x| *x != 0);
            o.blkio_leaf_weight = b.leaf_weight().filter(|x| *x != 0);
            o.weight_devices = b.weight_device().iter().flatten().map(|d| (d.major(), d.minor(), d.weight(), d.leaf_weight())).collect();
            let lists = [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ];
            for (i, l) in lists.into_iter().enumerate() {
                o.throttle[i] = l.iter().flatten().map(|d| (d.major(), d.minor(), d.rate())).collect();
            }
        }
        o.hugepages = r.hugepage_limits().iter().flatten().map(|h| (h.page_size().clone(), h.limit())).collect();
        if let Some(n) = r.network() {
            o.net_class_id = n.class_id().filter(|x| *x != 0);
            o.net_priorities = n.priorities().iter().flatten().map(|p| (p.name().clone(), p.priority())).collect();
        }
        let mut rdma: Vec<_> = r.rdma().iter().flatten().map(|(k, v)| (k.clone(), v.hca_handles(), v.hca_objects())).collect();
        rdma.sort_by(|a, b| a.0.cmp(&b.0));
        o.rdma = rdma;
        let mut uni: Vec<_> = r.unified().iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        uni.sort();
        o.unified = uni;
        o
    }

    pub fn has_memory(&self) -> bool {
        self.mem_limit.is_some()
            || self.mem_reservation.is_some()
            || self.mem_swap.is_some()
            || self.mem_kernel.is_some()
            || self.mem_kernel_tcp.is_some()
            || self.swappiness.is_some()
            || self.disable_oom_killer == Some(true)
            || self.use_hierarchy.is_some()
    }

    pub fn has_cpu(&self) -> bool {
        self.cpu_shares.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_period.is_some()
            || self.cpu_burst.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_idle.is_some()
    }

    pub fn has_blkio(&self) -> bool {
        self.blkio_weight.is_some()
            || self.blkio_leaf_weight.is_some()
            || !self.weight_devices.is_empty()
            || self.throttle.iter().any(|t| !t.is_empty())
    }

    /// Check every value before anything is written.
    pub fn validate(&self, l: &Layout) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::Usage(format!("linux.resources.{field}: {msg}")));
        for (f, v) in [
            ("memory.limit", self.mem_limit),
            ("memory.reservation", self.mem_reservation),
            ("memory.swap", self.mem_swap),
            ("memory.kernel", self.mem_kernel),
            ("memory.kernelTCP", self.mem_kernel_tcp),
        ] {
            if let Some(v) = v {
                if v < -1 {
                    return bad(f, format!("invalid value {v}: a limit is a byte count, or -1 for unlimited"));
                }
            }
        }
        if let (Some(s), Some(m)) = (self.mem_swap, self.mem_limit) {
            if s > 0 && m > 0 && s < m {
                return bad("memory.swap", format!("{s} is below memory.limit {m}: memory+swap must be at least the memory limit"));
            }
            if s > 0 && m == -1 {
                return bad("memory.swap", "a memory+swap limit needs a memory limit (memory.limit is -1)".into());
            }
        }
        if let Some(v) = self.swappiness {
            if v > 100 {
                return bad("memory.swappiness", format!("{v} is above 100"));
            }
        }
        if let Some(s) = self.cpu_shares {
            if !(2..=262144).contains(&s) {
                return bad("cpu.shares", format!("{s} is out of range (2 to 262144)"));
            }
        }
        if let Some(q) = self.cpu_quota {
            if q < -1 || (0..1000).contains(&q) {
                return bad("cpu.quota", format!("invalid value {q}: -1 (unlimited) or at least 1000 microseconds"));
            }
        }
        if let Some(p) = self.cpu_period {
            if !(1000..=1_000_000).contains(&p) {
                return bad("cpu.period", format!("{p} is out of range (1000 to 1000000 microseconds)"));
            }
        }
        if let Some(b) = self.cpu_burst {
            let quota = self.cpu_quota.filter(|q| *q > 0);
            if let Some(q) = quota {
                if b > q as u64 {
                    return bad("cpu.burst", format!("{b} is above the quota {q}"));
                }
            }
        }
        if let Some(r) = self.cpu_rt_runtime {
            if r < -1 {
                return bad("cpu.realtimeRuntime", format!("invalid value {r}"));
            }
        }
        if let Some(i) = self.cpu_idle {
            if !(0..=1).contains(&i) {
                return bad("cpu.idle", format!("{i}: must be 0 or 1"));
            }
        }
        if let Some(c) = &self.cpus {
            let want = parse_list(c).map_err(|m| Error::Usage(format!("linux.resources.cpu.cpus: {m}")))?;
            let have = host_cpuset(l, "cpus");
            if let Some(bad_one) = want.iter().find(|c| !have.contains(c)) {
                return bad("cpu.cpus", format!("CPU {bad_one} is not available on this host (available: {})", fmt_list(&have)));
            }
        }
        if let Some(m) = &self.mems {
            let want = parse_list(m).map_err(|e| Error::Usage(format!("linux.resources.cpu.mems: {e}")))?;
            let have = host_cpuset(l, "mems");
            if let Some(bad_one) = want.iter().find(|c| !have.contains(c)) {
                return bad("cpu.mems", format!("memory node {bad_one} is not available on this host (available: {})", fmt_list(&have)));
            }
        }
        if let Some(p) = self.pids_limit {
            if p < -1 {
                return bad("pids.limit", format!("invalid value {p}: a process count, or -1 for unlimited"));
            }
        }
        for (f, w) in [("blockIO.weight", self.blkio_weight), ("blockIO.leafWeight", self.blkio_leaf_weight)] {
            if let Some(w) = w {
                if !(10..=1000).contains(&w) {
                    return bad(f, format!("{w} is out of range (10 to 1000)"));
                }
            }
        }
        for (ma, mi, w, lw) in &self.weight_devices {
            if *ma < 0 || *mi < 0 {
                return bad("blockIO.weightDevice", format!("invalid device {ma}:{mi}"));
            }
            for w in [w, lw].into_iter().flatten() {
                if !(10..=1000).contains(w) {
                    return bad("blockIO.weightDevice", format!("{ma}:{mi}: weight {w} is out of range (10 to 1000)"));
                }
            }
        }
        for (i, t) in self.throttle.iter().enumerate() {
            for (ma, mi, _) in t {
                if *ma < 0 || *mi < 0 {
                    return bad(&format!("blockIO.throttle_{}", THROTTLE_NAMES[i]), format!("invalid device {ma}:{mi}"));
                }
            }
        }
        for (size, limit) in &self.hugepages {
            hugepage_kb(size).ok_or_else(|| {
                Error::Usage(format!("linux.resources.hugepageLimits: invalid page size {size:?} (e.g. \"2MB\", \"1GB\")"))
            })?;
            if *limit < -1 {
                return bad("hugepageLimits", format!("{size}: invalid limit {limit}"));
            }
        }
        for (k, _) in &self.unified {
            if k.contains('/')
                || k.starts_with('.')
                || k.is_empty()
                || k.starts_with("cgroup.") && !matches!(k.as_str(), "cgroup.max.depth" | "cgroup.max.descendants")
            {
                return bad("unified", format!("{k:?} is not a settable cgroup v2 file"));
            }
        }
        Ok(())
    }
}

/// "0-3,5" -> [0,1,2,3,5]
pub fn parse_list(s: &str) -> std::result::Result<Vec<u32>, String> {
    let mut v = vec![];
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.trim().parse().map_err(|_| format!("invalid list {s:?}"))?;
        let b: u32 = b.trim().parse().map_err(|_| format!("invalid list {s:?}"))?;
        if b < a || b - a > 65536 {
            return Err(format!("invalid range {part:?} in {s:?}"));
        }
        v.extend(a..=b);
    }
    if v.is_empty() {
        return Err(format!("empty list {s:?}"));
    }
    Ok(v)
}

fn fmt_list(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// What the container's cpuset may use: the parent's effective set, else
/// the online CPUs / nodes.
fn host_cpuset(l: &Layout, what: &str) -> Vec<u32> {
    let (v1f, v2f, sys) = if what == "cpus" {
        ("cpuset.effective_cpus", "cpuset.cpus.effective", "/sys/devices/system/cpu/online")
    } else {
        ("cpuset.effective_mems", "cpuset.mems.effective", "/sys/devices/system/node/online")
    };
    let from = |p: PathBuf| crate::linux::kfile::read(p).ok().and_then(|s| parse_list(&s).ok());
    if let Some(d) = l.v1_with(&format!("cpuset.{what}")) {
        if let Some(v) = d.parent().and_then(|p| from(p.join(v1f))) {
            return v;
        }
    }
    if let Some(d) = l.v2 {
        if let Some(v) = d.parent().and_then(|p| from(p.join(v2f))) {
            return v;
        }
    }
    from(PathBuf::from(sys)).unwrap_or_else(|| vec![0])
}

/// "2MB" -> 2048 (kB)
pub fn hugepage_kb(size: &str) -> Option<u64> {
    let s = size.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mul = match unit {
        "KB" | "kB" | "K" => 1,
        "MB" | "M" => 1024,
        "GB" | "G" => 1024 * 1024,
        _ => return None,
    };
    Some(n * mul)
}

/// Page sizes of this host in the spec's form ("2MB", "1GB").
pub fn host_hugepage_sizes() -> Vec<String> {
    let mut v: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("hugepages-"))
                        .and_then(|n| n.strip_suffix("kB"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(kb_to_name).collect()
}

pub fn kb_to_name(kb: u64) -> String {
    if kb >= 1024 * 1024 && kb.is_multiple_of(1024 * 1024) {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb >= 1024 && kb.is_multiple_of(1024) {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}KB")
    }
}

/// The spec's page size in the kernel's file names ("2MB").
pub fn hugepage_file_name(size: &str) -> String {
    hugepage_kb(size).map(kb_to_name).unwrap_or_else(|| size.to_string())
}

fn device_rule_of(r: &LinuxDeviceCgroup) -> Result<Option<Rule>> {
    let kind = match r.typ() {
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        // The device cgroup does not control FIFOs.
        Some(LinuxDeviceType::P) => return Ok(None),
        Some(LinuxDeviceType::A) | None => 'a',
    };
    let access = devices_bpf::parse_access(r.access().as_deref().unwrap_or("rwm"))
        .map_err(|e| Error::Usage(format!("linux.resources.devices: {e}")))?;
    let (major, minor) = if kind == 'a' { (-1, -1) } else { (r.major().unwrap_or(-1), r.minor().unwrap_or(-1)) };
    if major < -1 || minor < -1 {
        return Err(Error::Usage(format!("linux.resources.devices: invalid device number {major}:{minor}")));
    }
    Ok(Some(Rule { allow: r.allow(), kind, major, minor, access }))
}

/// The full, ordered rule list: deny everything, the config's rules, the
/// default allow list, then the config's `linux.devices`.
pub fn device_rules(rules: &[LinuxDeviceCgroup], extra: &[(char, i64, i64)]) -> Result<Vec<Rule>> {
    let all = devices_bpf::ACC_MKNOD | devices_bpf::ACC_READ | devices_bpf::ACC_WRITE;
    let mut v = vec![Rule { allow: false, kind: 'a', major: -1, minor: -1, access: all }];
    for r in rules {
        if let Some(x) = device_rule_of(r)? {
            v.push(x);
        }
    }
    for (t, ma, mi, acc) in default_device_rules() {
        v.push(Rule { allow: true, kind: t, major: ma, minor: mi, access: devices_bpf::parse_access(acc)? });
    }
    for (t, ma, mi) in extra {
        if *t == 'b' || *t == 'c' {
            v.push(Rule { allow: true, kind: *t, major: *ma, minor: *mi, access: all });
        }
    }
    Ok(v)
}

/// Apply the device rules: the v1 devices cgroup, else (cgroup v2) the
/// eBPF filter on the unified directory.
pub fn apply_devices(l: &Layout, rules: &[Rule]) -> Result<()> {
    if let Some(d) = l.v1_with("devices.allow") {
        return v1::devices(d, rules);
    }
    if let Some(d) = l.v2 {
        if l.pure_v2() {
            return devices_bpf::apply(d, rules);
        }
    }
    crate::log::debug("no devices cgroup: device rules not enforced");
    Ok(())
}

/// Apply resources at create: validate, write, and the devices.
pub fn apply(dirs: &[PathBuf], r: &LinuxResources, extra_devices: &[(char, i64, i64)]) -> Result<()> {
    let l = Layout::new(dirs);
    let res = Res::from_oci(r);
    let rules = device_rules(r.devices().as_deref().unwrap_or(&[]), extra_devices)?;
    res.validate(&l)?;
    set(&l, &res)?;
    apply_devices(&l, &rules)
}

/// Write `res` (no devices) with rollback on failure.
pub fn set(l: &Layout, res: &Res) -> Result<()> {
    res.validate(l)?;
    let mut tx = Tx::new();
    let r = (|| -> Result<()> {
        v1::apply(l, res, &mut tx)?;
        v2::apply(l, res, &mut tx)?;
        Ok(())
    })();
    match r {
        Ok(()) => {
            tx.commit();
            Ok(())
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

/// `update`: change the limits of a running container.
pub fn update(dirs: &[PathBuf], res: &Res) -> Result<()> {
    set(&Layout::new(dirs), res)
}

/// cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.saturating_sub(2)) * 9999) / 262142
}

/// cpu.weight back to shares (for stats and v1 readers).
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    2 + ((weight - 1) * 262142) / 9999
}

/// blkio weight (v1, 10..1000) to io.weight (v2, 1..10000), as runc converts.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w as u64).saturating_sub(10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10000), 262144);
    }

    #[test]
    fn blkio_conversion_matches_runc() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("1\n").unwrap(), vec![1]);
        assert!(parse_list("2-1").is_err());
        assert!(parse_list("x").is_err());
        assert_eq!(fmt_list(&[0, 1, 2, 5]), "0-2,5");
    }

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_kb("2MB"), Some(2048));
        assert_eq!(hugepage_kb("1GB"), Some(1048576));
        assert_eq!(hugepage_kb("64KB"), Some(64));
        assert_eq!(hugepage_kb("2XB"), None);
        assert_eq!(kb_to_name(2048), "2MB");
        assert_eq!(kb_to_name(1048576), "1GB");
    }

    #[test]
    fn validation_rejects_bad_values() {
        let dirs: Vec<PathBuf> = vec![];
        let l = Layout::new(&dirs);
        let ok = Res {
            mem_limit: Some(1 << 20),
            mem_swap: Some(2 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids_limit: Some(-1),
            ..Default::default()
        };
        ok.validate(&l).unwrap();
        for bad in [
            Res { mem_limit: Some(-5), ..Default::default() },
            Res { mem_limit: Some(2 << 20), mem_swap: Some(1 << 20), ..Default::default() },
            Res { pids_limit: Some(-2), ..Default::default() },
            Res { cpu_quota: Some(10), ..Default::default() },
            Res { cpu_period: Some(10), ..Default::default() },
            Res { cpu_shares: Some(1), ..Default::default() },
            Res { cpus: Some("9999".into()), ..Default::default() },
            Res { cpus: Some("1-0".into()), ..Default::default() },
            Res { swappiness: Some(101), ..Default::default() },
            Res { blkio_weight: Some(5), ..Default::default() },
            Res { hugepages: vec![("3XB".into(), 1)], ..Default::default() },
            Res { unified: vec![("../x".into(), "1".into())], ..Default::default() },
        ] {
            assert!(bad.validate(&l).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn device_rule_list() {
        use oci_spec::runtime::LinuxDeviceCgroupBuilder;
        let deny = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap();
        let v = device_rules(&[deny], &[('c', 1, 1)]).unwrap();
        assert_eq!(v[0].kind, 'a');
        assert!(!v[0].allow);
        assert_eq!(v.last().unwrap().major, 1);
        let bad = LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::C).access("rwx").build().unwrap();
        assert!(device_rules(&[bad], &[]).is_err());
    }
}

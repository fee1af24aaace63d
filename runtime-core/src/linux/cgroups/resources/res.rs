//! `linux.resources` as one model ([`Res`]), normalised to runc's
//! meaning, and its validation before anything is written.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::hugepages::hugepage_kb;
use super::layout::Layout;
use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("1\n").unwrap(), vec![1]);
        assert!(parse_list("2-1").is_err());
        assert!(parse_list("x").is_err());
        assert_eq!(fmt_list(&[0, 1, 2, 5]), "0-2,5");
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
}

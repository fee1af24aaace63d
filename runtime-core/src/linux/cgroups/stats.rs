//! One stats type, read from v1 or v2 files, shown as runc's `events`
//! JSON (the field names of runc's types/events.go) and convertible to
//! containerd's cgroup v1 and v2 metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::resources::{host_hugepage_sizes, Layout};
use super::v1;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 is unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IntelRdt {}

/// runc's `types.Stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<NetworkInterface>>,
    /// Not in runc's JSON: OOM kills so far, and v2's memory.events.
    #[serde(skip)]
    pub oom_kills: u64,
    #[serde(skip)]
    pub memory_events: BTreeMap<String, u64>,
    #[serde(skip)]
    pub v2: bool,
}

fn read(p: &Path) -> Option<String> {
    crate::linux::kfile::read(p).ok()
}

fn read_u64(d: &Path, f: &str) -> u64 {
    read(&d.join(f)).and_then(|s| parse_u64(s.trim())).unwrap_or(0)
}

/// A number; "max" (and v1's "unlimited" value) is u64::MAX.
fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// "key value" lines.
pub fn kv(d: &Path, f: &str) -> BTreeMap<String, u64> {
    read(&d.join(f))
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some((it.next()?.to_string(), parse_u64(it.next()?)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn list(d: &Path, f: &str) -> Vec<u64> {
    read(&d.join(f)).map(|s| s.split_whitespace().filter_map(|x| x.parse().ok()).collect()).unwrap_or_default()
}

fn clock_ticks() -> u64 {
    // SAFETY: plain call.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Read everything the container's cgroups offer. `pid` (init) gives the
/// network interfaces of a private network namespace.
pub fn collect(dirs: &[PathBuf], pid: Option<i32>) -> Stats {
    let l = Layout::new(dirs);
    let mut s = Stats { v2: l.pure_v2(), ..Default::default() };
    cpu(&l, &mut s);
    memory(&l, &mut s);
    if let Some(d) = v1::pids_dir(&l).or_else(|| l.v2_with("pids.current")) {
        s.pids.current = read_u64(d, "pids.current");
        let lim = read_u64(d, "pids.max");
        s.pids.limit = if lim == u64::MAX { 0 } else { lim };
    }
    blkio(&l, &mut s);
    hugetlb(&l, &mut s);
    if let Some(d) = v1::cpuset_dir(&l).or_else(|| l.v2_with("cpuset.cpus.effective")) {
        let get = |f: &str| {
            read(&d.join(f)).and_then(|x| super::resources::parse_list(&x).ok()).unwrap_or_default().into_iter().map(|x| x as u16).collect()
        };
        let (c, m) = if l.v2 == Some(d) { ("cpuset.cpus.effective", "cpuset.mems.effective") } else { ("cpuset.cpus", "cpuset.mems") };
        s.cpuset.cpus = get(c);
        s.cpuset.mems = get(m);
    }
    if let Some(p) = pid {
        s.network_interfaces = network(p);
    }
    s
}

fn cpu(l: &Layout, s: &mut Stats) {
    if let Some(d) = l.v1_with("cpuacct.usage") {
        let u = &mut s.cpu.usage;
        u.total = read_u64(d, "cpuacct.usage");
        u.percpu = list(d, "cpuacct.usage_percpu");
        u.percpu_kernel = list(d, "cpuacct.usage_percpu_sys");
        u.percpu_user = list(d, "cpuacct.usage_percpu_user");
        let st = kv(d, "cpuacct.stat");
        let ns = 1_000_000_000 / clock_ticks();
        u.user = st.get("user").copied().unwrap_or(0) * ns;
        u.kernel = st.get("system").copied().unwrap_or(0) * ns;
        if let Some(c) = v1::cpu_dir(l) {
            let t = kv(c, "cpu.stat");
            s.cpu.throttling = Throttling {
                periods: t.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: t.get("throttled_time").copied().unwrap_or(0),
            };
        }
        return;
    }
    if let Some(d) = l.v2_with("cpu.stat") {
        let t = kv(d, "cpu.stat");
        let g = |k: &str| t.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = g("usage_usec") * 1000;
        s.cpu.usage.user = g("user_usec") * 1000;
        s.cpu.usage.kernel = g("system_usec") * 1000;
        s.cpu.throttling =
            Throttling { periods: g("nr_periods"), throttled_periods: g("nr_throttled"), throttled_time: g("throttled_usec") * 1000 };
    }
}

fn memory(l: &Layout, s: &mut Stats) {
    let m = &mut s.memory;
    if let Some(d) = v1::memory_dir(l) {
        m.raw = kv(d, "memory.stat");
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
        let entry = |prefix: &str| MemoryEntry {
            limit: read_u64(d, &format!("{prefix}limit_in_bytes")),
            usage: read_u64(d, &format!("{prefix}usage_in_bytes")),
            max: read_u64(d, &format!("{prefix}max_usage_in_bytes")),
            failcnt: read_u64(d, &format!("{prefix}failcnt")),
        };
        m.usage = entry("memory.");
        m.swap = entry("memory.memsw.");
        m.kernel = entry("memory.kmem.");
        m.kernel_tcp = entry("memory.kmem.tcp.");
        s.oom_kills = kv(d, "memory.oom_control").get("oom_kill").copied().unwrap_or(0);
        return;
    }
    if let Some(d) = l.v2_with("memory.current") {
        m.raw = kv(d, "memory.stat");
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        s.memory_events = kv(d, "memory.events");
        m.usage = MemoryEntry {
            limit: read_u64(d, "memory.max"),
            usage: read_u64(d, "memory.current"),
            max: read_u64(d, "memory.peak"),
            failcnt: s.memory_events.get("max").copied().unwrap_or(0),
        };
        // runc shows v2 swap as memory+swap, like v1's memsw.
        let swap_lim = read_u64(d, "memory.swap.max");
        m.swap = MemoryEntry {
            limit: if swap_lim == u64::MAX || m.usage.limit == u64::MAX { u64::MAX } else { swap_lim + m.usage.limit },
            usage: read_u64(d, "memory.swap.current") + m.usage.usage,
            max: 0,
            failcnt: 0,
        };
        s.oom_kills = s.memory_events.get("oom_kill").copied().unwrap_or(0);
    }
}

/// "8:0 Read 123" lines (v1 blkio files).
fn blkio_v1_entries(d: &Path, f: &str) -> Vec<BlkioEntry> {
    read(&d.join(f))
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let p: Vec<&str> = l.split_whitespace().collect();
                    if p.len() != 3 {
                        return None;
                    }
                    let (ma, mi) = p[0].split_once(':')?;
                    Some(BlkioEntry { major: ma.parse().ok()?, minor: mi.parse().ok()?, op: p[1].to_string(), value: p[2].parse().ok()? })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn blkio(l: &Layout, s: &mut Stats) {
    if let Some(d) = v1::blkio_dir(l) {
        for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
            let bytes = blkio_v1_entries(d, &format!("{prefix}io_service_bytes_recursive"));
            if !bytes.is_empty() || prefix == "blkio.throttle." {
                s.blkio.io_service_bytes_recursive = bytes;
                s.blkio.io_serviced_recursive = blkio_v1_entries(d, &format!("{prefix}io_serviced_recursive"));
                break;
            }
        }
        return;
    }
    if let Some(d) = l.v2_with("io.stat") {
        for line in read(&d.join("io.stat")).unwrap_or_default().lines() {
            let mut it = line.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|x| x.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
                continue;
            };
            for kvp in it {
                let Some((k, v)) = kvp.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry { major, minor, op: op.into(), value });
            }
        }
    }
}

fn hugetlb(l: &Layout, s: &mut Stats) {
    let sizes = host_hugepage_sizes();
    if let Some(d) = v1::hugetlb_dir(l) {
        for n in sizes {
            s.hugetlb.insert(
                n.clone(),
                Hugetlb {
                    usage: read_u64(d, &format!("hugetlb.{n}.usage_in_bytes")),
                    max: read_u64(d, &format!("hugetlb.{n}.max_usage_in_bytes")),
                    failcnt: read_u64(d, &format!("hugetlb.{n}.failcnt")),
                },
            );
        }
        return;
    }
    if let Some(d) = l.v2 {
        let mut names: Vec<String> = sizes;
        // The directory's own files (a fake tree may list other sizes).
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = f.strip_prefix("hugetlb.").and_then(|x| x.strip_suffix(".current")).filter(|n| !n.contains('.')) {
                    if !names.iter().any(|x| x == n) {
                        names.push(n.to_string());
                    }
                }
            }
        }
        for n in names {
            if !d.join(format!("hugetlb.{n}.current")).exists() {
                continue;
            }
            s.hugetlb.insert(
                n.clone(),
                Hugetlb {
                    usage: read_u64(d, &format!("hugetlb.{n}.current")),
                    max: 0,
                    failcnt: kv(d, &format!("hugetlb.{n}.events")).get("max").copied().unwrap_or(0),
                },
            );
        }
    }
}

/// Interfaces of the container's network namespace (not "lo"); none when
/// it shares ours.
fn network(pid: i32) -> Option<Vec<NetworkInterface>> {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    if std::fs::read_link("/proc/self/ns/net").ok().as_ref() == Some(&theirs) {
        return None;
    }
    let text = read(Path::new(&format!("/proc/{pid}/net/dev")))?;
    let v: Vec<NetworkInterface> = parse_net_dev(&text).into_iter().filter(|i| i.name != "lo").collect();
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

pub fn parse_net_dev(text: &str) -> Vec<NetworkInterface> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let n: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if n.len() < 16 {
                return None;
            }
            Some(NetworkInterface {
                name: name.trim().to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

/// containerd's metrics (io.containerd.cgroups.v1.Metrics and
/// io.containerd.cgroups.v2.Metrics), as their JSON field names.
pub mod containerd {
    use super::*;

    pub mod v1 {
        use super::*;

        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct HugetlbStat {
            pub usage: u64,
            pub max: u64,
            pub failcnt: u64,
            pub pagesize: String,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct PidsStat {
            pub current: u64,
            pub limit: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct CpuUsage {
            pub total: u64,
            pub kernel: u64,
            pub user: u64,
            pub per_cpu: Vec<u64>,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct Throttle {
            pub periods: u64,
            pub throttled_periods: u64,
            pub throttled_time: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct CpuStat {
            pub usage: CpuUsage,
            pub throttling: Throttle,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct MemoryEntry {
            pub limit: u64,
            pub usage: u64,
            pub max: u64,
            pub failcnt: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct MemoryStat {
            pub cache: u64,
            pub rss: u64,
            pub rss_huge: u64,
            pub mapped_file: u64,
            pub dirty: u64,
            pub writeback: u64,
            pub pg_pg_in: u64,
            pub pg_pg_out: u64,
            pub pg_fault: u64,
            pub pg_maj_fault: u64,
            pub inactive_anon: u64,
            pub active_anon: u64,
            pub inactive_file: u64,
            pub active_file: u64,
            pub unevictable: u64,
            pub hierarchical_memory_limit: u64,
            pub hierarchical_swap_limit: u64,
            pub total_cache: u64,
            pub total_rss: u64,
            pub usage: MemoryEntry,
            pub swap: MemoryEntry,
            pub kernel: MemoryEntry,
            pub kernel_tcp: MemoryEntry,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct BlkIoEntry {
            pub op: String,
            pub device: String,
            pub major: u64,
            pub minor: u64,
            pub value: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct BlkIoStat {
            pub io_service_bytes_recursive: Vec<BlkIoEntry>,
            pub io_serviced_recursive: Vec<BlkIoEntry>,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct MemoryOomControl {
            pub oom_kill_disable: u64,
            pub under_oom: u64,
            pub oom_kill: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct Metrics {
            pub hugetlb: Vec<HugetlbStat>,
            pub pids: PidsStat,
            pub cpu: CpuStat,
            pub memory: MemoryStat,
            pub blkio: BlkIoStat,
            /// containerd's NetworkStat has runc's field names.
            pub network: Vec<NetworkInterface>,
            pub memory_oom_control: MemoryOomControl,
        }
    }

    pub mod v2 {
        use super::*;

        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct PidsStat {
            pub current: u64,
            pub limit: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct CpuStat {
            pub usage_usec: u64,
            pub user_usec: u64,
            pub system_usec: u64,
            pub nr_periods: u64,
            pub nr_throttled: u64,
            pub throttled_usec: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct MemoryStat {
            pub anon: u64,
            pub file: u64,
            pub kernel_stack: u64,
            pub slab: u64,
            pub sock: u64,
            pub shmem: u64,
            pub file_mapped: u64,
            pub file_dirty: u64,
            pub file_writeback: u64,
            pub inactive_anon: u64,
            pub active_anon: u64,
            pub inactive_file: u64,
            pub active_file: u64,
            pub unevictable: u64,
            pub pgfault: u64,
            pub pgmajfault: u64,
            pub usage: u64,
            pub usage_limit: u64,
            pub swap_usage: u64,
            pub swap_limit: u64,
            pub max_usage: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct IoEntry {
            pub major: u64,
            pub minor: u64,
            pub rbytes: u64,
            pub wbytes: u64,
            pub rios: u64,
            pub wios: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct IoStat {
            pub usage: Vec<IoEntry>,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct HugeTlbStat {
            pub current: u64,
            pub max: u64,
            pub pagesize: String,
            pub failcnt: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct MemoryEvents {
            pub low: u64,
            pub high: u64,
            pub max: u64,
            pub oom: u64,
            pub oom_kill: u64,
        }
        #[derive(Debug, Default, Serialize, PartialEq)]
        pub struct Metrics {
            pub pids: PidsStat,
            pub cpu: CpuStat,
            pub memory: MemoryStat,
            pub io: IoStat,
            pub hugetlb: Vec<HugeTlbStat>,
            pub memory_events: MemoryEvents,
        }
    }
}

impl Stats {
    /// runc's `{"type":"stats","id":ID,"data":{...}}`.
    pub fn event(&self, id: &str) -> serde_json::Value {
        serde_json::json!({ "type": "stats", "id": id, "data": self })
    }

    pub fn to_containerd_v1(&self) -> containerd::v1::Metrics {
        use containerd::v1::*;
        let r = |k: &str| self.memory.raw.get(k).copied().unwrap_or(0);
        let me = |e: &super::stats::MemoryEntry| MemoryEntry { limit: e.limit, usage: e.usage, max: e.max, failcnt: e.failcnt };
        let blk = |v: &[BlkioEntry]| {
            v.iter()
                .map(|e| BlkIoEntry { op: e.op.clone(), device: String::new(), major: e.major, minor: e.minor, value: e.value })
                .collect()
        };
        Metrics {
            hugetlb: self
                .hugetlb
                .iter()
                .map(|(k, h)| HugetlbStat { usage: h.usage, max: h.max, failcnt: h.failcnt, pagesize: k.clone() })
                .collect(),
            pids: PidsStat { current: self.pids.current, limit: self.pids.limit },
            cpu: CpuStat {
                usage: CpuUsage {
                    total: self.cpu.usage.total,
                    kernel: self.cpu.usage.kernel,
                    user: self.cpu.usage.user,
                    per_cpu: self.cpu.usage.percpu.clone(),
                },
                throttling: Throttle {
                    periods: self.cpu.throttling.periods,
                    throttled_periods: self.cpu.throttling.throttled_periods,
                    throttled_time: self.cpu.throttling.throttled_time,
                },
            },
            memory: MemoryStat {
                cache: self.memory.cache,
                rss: r("rss").max(r("anon")),
                rss_huge: r("rss_huge"),
                mapped_file: r("mapped_file").max(r("file_mapped")),
                dirty: r("dirty").max(r("file_dirty")),
                writeback: r("writeback").max(r("file_writeback")),
                pg_pg_in: r("pgpgin"),
                pg_pg_out: r("pgpgout"),
                pg_fault: r("pgfault"),
                pg_maj_fault: r("pgmajfault"),
                inactive_anon: r("inactive_anon"),
                active_anon: r("active_anon"),
                inactive_file: r("inactive_file"),
                active_file: r("active_file"),
                unevictable: r("unevictable"),
                hierarchical_memory_limit: r("hierarchical_memory_limit"),
                hierarchical_swap_limit: r("hierarchical_memsw_limit"),
                total_cache: r("total_cache"),
                total_rss: r("total_rss"),
                usage: me(&self.memory.usage),
                swap: me(&self.memory.swap),
                kernel: me(&self.memory.kernel),
                kernel_tcp: me(&self.memory.kernel_tcp),
            },
            blkio: BlkIoStat {
                io_service_bytes_recursive: blk(&self.blkio.io_service_bytes_recursive),
                io_serviced_recursive: blk(&self.blkio.io_serviced_recursive),
            },
            network: self.network_interfaces.clone().unwrap_or_default(),
            memory_oom_control: MemoryOomControl { oom_kill_disable: 0, under_oom: 0, oom_kill: self.oom_kills },
        }
    }

    pub fn to_containerd_v2(&self) -> containerd::v2::Metrics {
        use containerd::v2::*;
        let r = |k: &str| self.memory.raw.get(k).copied().unwrap_or(0);
        let ev = |k: &str| self.memory_events.get(k).copied().unwrap_or(0);
        let mut io: BTreeMap<(u64, u64), IoEntry> = BTreeMap::new();
        for (list, bytes) in [(&self.blkio.io_service_bytes_recursive, true), (&self.blkio.io_serviced_recursive, false)] {
            for e in list {
                let x = io.entry((e.major, e.minor)).or_insert_with(|| IoEntry { major: e.major, minor: e.minor, ..Default::default() });
                match (bytes, e.op.as_str()) {
                    (true, "Read") => x.rbytes = e.value,
                    (true, "Write") => x.wbytes = e.value,
                    (false, "Read") => x.rios = e.value,
                    (false, "Write") => x.wios = e.value,
                    _ => {}
                }
            }
        }
        Metrics {
            pids: PidsStat { current: self.pids.current, limit: self.pids.limit },
            cpu: CpuStat {
                usage_usec: self.cpu.usage.total / 1000,
                user_usec: self.cpu.usage.user / 1000,
                system_usec: self.cpu.usage.kernel / 1000,
                nr_periods: self.cpu.throttling.periods,
                nr_throttled: self.cpu.throttling.throttled_periods,
                throttled_usec: self.cpu.throttling.throttled_time / 1000,
            },
            memory: MemoryStat {
                anon: r("anon").max(r("rss")),
                file: r("file").max(r("cache")),
                kernel_stack: r("kernel_stack"),
                slab: r("slab"),
                sock: r("sock"),
                shmem: r("shmem"),
                file_mapped: r("file_mapped").max(r("mapped_file")),
                file_dirty: r("file_dirty").max(r("dirty")),
                file_writeback: r("file_writeback").max(r("writeback")),
                inactive_anon: r("inactive_anon"),
                active_anon: r("active_anon"),
                inactive_file: r("inactive_file"),
                active_file: r("active_file"),
                unevictable: r("unevictable"),
                pgfault: r("pgfault"),
                pgmajfault: r("pgmajfault"),
                usage: self.memory.usage.usage,
                usage_limit: self.memory.usage.limit,
                swap_usage: self.memory.swap.usage.saturating_sub(if self.v2 { self.memory.usage.usage } else { 0 }),
                swap_limit: self.memory.swap.limit,
                max_usage: self.memory.usage.max,
            },
            io: IoStat { usage: io.into_values().collect() },
            hugetlb: self
                .hugetlb
                .iter()
                .map(|(k, h)| HugeTlbStat { current: h.usage, max: h.max, pagesize: k.clone(), failcnt: h.failcnt })
                .collect(),
            memory_events: MemoryEvents { low: ev("low"), high: ev("high"), max: ev("max"), oom: ev("oom"), oom_kill: self.oom_kills },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::cgroups::fake::FakeTree;

    #[test]
    fn v2_stats_from_a_fake_tree() {
        let t = FakeTree::new("stats");
        std::fs::write(t.dir.join("memory.max"), "67108864\n").unwrap();
        std::fs::write(t.dir.join("memory.events"), "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n").unwrap();
        let s = collect(std::slice::from_ref(&t.dir), None);
        assert!(s.v2);
        assert_eq!(s.cpu.usage.total, 1_500_000);
        assert_eq!(s.cpu.usage.user, 1_000_000);
        assert_eq!(s.cpu.usage.kernel, 500_000);
        assert_eq!(s.cpu.throttling.throttled_periods, 1);
        assert_eq!(s.memory.usage.usage, 1048576);
        assert_eq!(s.memory.usage.limit, 67108864);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.memory.cache, 8192);
        assert_eq!(s.oom_kills, 1);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.blkio.io_service_bytes_recursive[1], BlkioEntry { major: 254, minor: 0, op: "Write".into(), value: 8192 });
        assert!(s.hugetlb.contains_key("2MB"));
        // runc's JSON names
        let j = s.event("c1");
        assert_eq!(j["type"], "stats");
        assert_eq!(j["data"]["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(j["data"]["cpu"]["throttling"]["throttledPeriods"], 1);
        assert_eq!(j["data"]["memory"]["usage"]["limit"], 67108864u64);
        assert_eq!(j["data"]["memory"]["raw"]["anon"], 4096);
        assert_eq!(j["data"]["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert!(j["data"]["memory"]["kernelTCP"].is_object());
        assert!(j["data"]["intel_rdt"].is_object());
        // containerd's v2 metrics
        let m = s.to_containerd_v2();
        assert_eq!(m.cpu.usage_usec, 1500);
        assert_eq!(m.memory.anon, 4096);
        assert_eq!(m.memory.usage_limit, 67108864);
        assert_eq!(m.memory.swap_usage, 0);
        assert_eq!(m.io.usage, vec![containerd::v2::IoEntry { major: 254, minor: 0, rbytes: 4096, wbytes: 8192, rios: 1, wios: 2 }]);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.memory_events.max, 7);
        let m1 = s.to_containerd_v1();
        assert_eq!(m1.cpu.usage.total, 1_500_000);
        assert_eq!(m1.memory_oom_control.oom_kill, 1);
        assert_eq!(m1.memory.rss, 4096);
    }

    #[test]
    fn net_dev_parsing() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    5000      10    1    2    0     0          0         0     6000      12    3    4    0     0       0          0\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "eth0");
        assert_eq!(v[1].rx_bytes, 5000);
        assert_eq!(v[1].tx_dropped, 4);
    }
}

//! runc's `events --stats` JSON -> containerd's cgroups v1 `Metrics`, or
//! on a pure cgroup v2 host its v2 `Metrics` (as containerd's runc shim
//! picks by the host's cgroup mode),
//! (what `ctr task metrics` and the CRI stats read), mapped the way
//! containerd's Go runc shim maps runc's stats.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::cgroups_v2::metrics as v2;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: Stats,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Stats {
    cpu: Cpu,
    memory: Memory,
    pids: Pids,
    blkio: Blkio,
    hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cpu {
    usage: CpuUsage,
    throttling: Throttling,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuUsage {
    total: u64,
    percpu: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Throttling {
    periods: u64,
    #[serde(rename = "throttledPeriods")]
    throttled_periods: u64,
    #[serde(rename = "throttledTime")]
    throttled_time: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    limit: u64,
    usage: u64,
    max: u64,
    failcnt: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Memory {
    cache: u64,
    usage: Entry,
    swap: Entry,
    kernel: Entry,
    #[serde(rename = "kernelTCP")]
    kernel_tcp: Entry,
    raw: BTreeMap<String, u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pids {
    current: u64,
    limit: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BlkioEntry {
    major: u64,
    minor: u64,
    op: String,
    value: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive")]
    io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive")]
    io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Hugetlb {
    usage: u64,
    max: u64,
    failcnt: u64,
}

fn entry(e: &Entry) -> MemoryEntry {
    MemoryEntry { limit: e.limit, usage: e.usage, max: e.max, failcnt: e.failcnt, ..Default::default() }
}

fn blkio(v: &[BlkioEntry]) -> Vec<BlkIOEntry> {
    v.iter().map(|e| BlkIOEntry { op: e.op.clone(), major: e.major, minor: e.minor, value: e.value, ..Default::default() }).collect()
}

fn first_stats(out: &[u8]) -> Result<Stats> {
    let text = String::from_utf8_lossy(out);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .find(|e| e.kind == "stats")
        .map(|e| e.data)
        .ok_or_else(|| Error::FailedPrecondition(format!("the runtime printed no stats event: {}", text.trim())))
}

/// Parses the first stats event of `runtime events --stats` output.
pub fn from_runtime_stats(out: &[u8]) -> Result<Metrics> {
    first_stats(out).map(|s| convert(&s))
}

/// The same, as containerd's cgroups v2 `Metrics`.
pub fn from_runtime_stats_v2(out: &[u8]) -> Result<v2::Metrics> {
    first_stats(out).map(|s| convert_v2(&s))
}

/// Whether this host is pure cgroup v2 (cgroup2 mounted at /sys/fs/cgroup):
/// containerd then expects v2 metrics. Hybrid hosts get v1 ones.
pub fn host_is_unified() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// runc reports v2 usage in the v1-shaped JSON (times in ns, memory.stat
/// keys in `raw`, io.stat as Read/Write entries); containerd's v2 message
/// wants microseconds, named memory fields and one entry per device.
fn convert_v2(s: &Stats) -> v2::Metrics {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut m = v2::Metrics::new();
    m.pids = protobuf_some(v2::PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() });
    m.cpu = protobuf_some(v2::CPUStat {
        usage_usec: s.cpu.usage.total / 1000,
        user_usec: s.cpu.usage.user / 1000,
        system_usec: s.cpu.usage.kernel / 1000,
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: s.cpu.throttling.throttled_time / 1000,
        ..Default::default()
    });
    m.memory = protobuf_some(v2::MemoryStat {
        anon: raw("anon"),
        file: raw("file"),
        kernel_stack: raw("kernel_stack"),
        slab: raw("slab"),
        sock: raw("sock"),
        shmem: raw("shmem"),
        file_mapped: raw("file_mapped"),
        file_dirty: raw("file_dirty"),
        file_writeback: raw("file_writeback"),
        anon_thp: raw("anon_thp"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        slab_reclaimable: raw("slab_reclaimable"),
        slab_unreclaimable: raw("slab_unreclaimable"),
        pgfault: raw("pgfault"),
        pgmajfault: raw("pgmajfault"),
        workingset_refault: raw("workingset_refault"),
        workingset_activate: raw("workingset_activate"),
        workingset_nodereclaim: raw("workingset_nodereclaim"),
        pgrefill: raw("pgrefill"),
        pgscan: raw("pgscan"),
        pgsteal: raw("pgsteal"),
        pgactivate: raw("pgactivate"),
        pgdeactivate: raw("pgdeactivate"),
        pglazyfree: raw("pglazyfree"),
        pglazyfreed: raw("pglazyfreed"),
        thp_fault_alloc: raw("thp_fault_alloc"),
        thp_collapse_alloc: raw("thp_collapse_alloc"),
        usage: s.memory.usage.usage,
        usage_limit: s.memory.usage.limit,
        swap_usage: s.memory.swap.usage,
        swap_limit: s.memory.swap.limit,
        max_usage: s.memory.usage.max,
        swap_max_usage: s.memory.swap.max,
        ..Default::default()
    });
    let mut io: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    for (list, bytes) in [(&s.blkio.io_service_bytes_recursive, true), (&s.blkio.io_serviced_recursive, false)] {
        for e in list {
            let d = io.entry((e.major, e.minor)).or_insert_with(|| v2::IOEntry { major: e.major, minor: e.minor, ..Default::default() });
            match (e.op.to_ascii_lowercase().as_str(), bytes) {
                ("read", true) => d.rbytes = e.value,
                ("write", true) => d.wbytes = e.value,
                ("read", false) => d.rios = e.value,
                ("write", false) => d.wios = e.value,
                _ => {}
            }
        }
    }
    m.io = protobuf_some(v2::IOStat { usage: io.into_values().collect(), ..Default::default() });
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| v2::HugeTlbStat { pagesize: size.clone(), current: h.usage, max: h.max, failcnt: h.failcnt, ..Default::default() })
        .collect();
    m
}

fn convert(s: &Stats) -> Metrics {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut m = Metrics::new();
    m.cpu = protobuf_some(CPUStat {
        usage: protobuf_some(CPUUsage {
            total: s.cpu.usage.total,
            kernel: s.cpu.usage.kernel,
            user: s.cpu.usage.user,
            per_cpu: s.cpu.usage.percpu.clone(),
            ..Default::default()
        }),
        throttling: protobuf_some(Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        }),
        ..Default::default()
    });
    m.memory = protobuf_some(MemoryStat {
        cache: if s.memory.cache != 0 { s.memory.cache } else { raw("cache") },
        rss: raw("rss"),
        rss_huge: raw("rss_huge"),
        mapped_file: raw("mapped_file"),
        dirty: raw("dirty"),
        writeback: raw("writeback"),
        pg_pg_in: raw("pgpgin"),
        pg_pg_out: raw("pgpgout"),
        pg_fault: raw("pgfault"),
        pg_maj_fault: raw("pgmajfault"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        hierarchical_memory_limit: raw("hierarchical_memory_limit"),
        hierarchical_swap_limit: raw("hierarchical_memsw_limit"),
        total_cache: raw("total_cache"),
        total_rss: raw("total_rss"),
        total_rss_huge: raw("total_rss_huge"),
        total_mapped_file: raw("total_mapped_file"),
        total_dirty: raw("total_dirty"),
        total_writeback: raw("total_writeback"),
        total_pg_pg_in: raw("total_pgpgin"),
        total_pg_pg_out: raw("total_pgpgout"),
        total_pg_fault: raw("total_pgfault"),
        total_pg_maj_fault: raw("total_pgmajfault"),
        total_inactive_anon: raw("total_inactive_anon"),
        total_active_anon: raw("total_active_anon"),
        total_inactive_file: raw("total_inactive_file"),
        total_active_file: raw("total_active_file"),
        total_unevictable: raw("total_unevictable"),
        usage: protobuf_some(entry(&s.memory.usage)),
        swap: protobuf_some(entry(&s.memory.swap)),
        kernel: protobuf_some(entry(&s.memory.kernel)),
        kernel_tcp: protobuf_some(entry(&s.memory.kernel_tcp)),
        ..Default::default()
    });
    m.pids = protobuf_some(PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() });
    m.blkio = protobuf_some(BlkIOStat {
        io_service_bytes_recursive: blkio(&s.blkio.io_service_bytes_recursive),
        io_serviced_recursive: blkio(&s.blkio.io_serviced_recursive),
        ..Default::default()
    });
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| HugetlbStat { pagesize: size.clone(), usage: h.usage, max: h.max, failcnt: h.failcnt, ..Default::default() })
        .collect();
    m
}

fn protobuf_some<T: Default>(v: T) -> containerd_shim::protos::protobuf::MessageField<T> {
    containerd_shim::protos::protobuf::MessageField::some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_map_to_v1_metrics() {
        let out = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":123,"percpu":[100,23],"kernel":3,"user":120},"throttling":{}},"memory":{"usage":{"limit":1048576,"usage":4096,"max":8192,"failcnt":2},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0},"raw":{"rss":4000,"total_rss":4001,"pgfault":7}},"pids":{"current":3,"limit":10},"blkio":{},"hugetlb":{"2MB":{"failcnt":0}}}}"#;
        let m = from_runtime_stats(out).expect("stats parse");
        assert_eq!(m.cpu.usage.total, 123);
        assert_eq!(m.cpu.usage.per_cpu, vec![100, 23]);
        assert_eq!(m.memory.usage.limit, 1048576);
        assert_eq!(m.memory.usage.failcnt, 2);
        assert_eq!(m.memory.rss, 4000);
        assert_eq!(m.memory.total_rss, 4001);
        assert_eq!(m.memory.pg_fault, 7);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.pids.limit, 10);
        assert_eq!(m.hugetlb.len(), 1);
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
    }

    #[test]
    fn runc_stats_of_a_v2_host_map_to_v2_metrics() {
        let out = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":5000000,"kernel":1000000,"user":4000000},"throttling":{"periods":9,"throttledPeriods":2,"throttledTime":3000}},"memory":{"usage":{"limit":1048576,"usage":4096,"max":8192},"swap":{"usage":10,"limit":20},"raw":{"anon":111,"file":222,"pgmajfault":3}},"pids":{"current":3,"limit":10},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":512},{"major":8,"minor":0,"op":"Write","value":1024}],"ioServicedRecursive":[{"major":8,"minor":0,"op":"Read","value":1},{"major":8,"minor":0,"op":"Write","value":2}]},"hugetlb":{"2MB":{"usage":4,"max":5,"failcnt":1}}}}"#;
        let m = from_runtime_stats_v2(out).expect("stats parse");
        assert_eq!((m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec), (5000, 4000, 1000));
        assert_eq!((m.cpu.nr_periods, m.cpu.nr_throttled, m.cpu.throttled_usec), (9, 2, 3));
        assert_eq!((m.memory.anon, m.memory.file, m.memory.pgmajfault), (111, 222, 3));
        assert_eq!((m.memory.usage, m.memory.usage_limit, m.memory.max_usage), (4096, 1048576, 8192));
        assert_eq!((m.memory.swap_usage, m.memory.swap_limit), (10, 20));
        assert_eq!((m.pids.current, m.pids.limit), (3, 10));
        assert_eq!(m.io.usage.len(), 1);
        let d = &m.io.usage[0];
        assert_eq!((d.major, d.minor, d.rbytes, d.wbytes, d.rios, d.wios), (8, 0, 512, 1024, 1, 2));
        assert_eq!(m.hugetlb.len(), 1);
        assert_eq!((m.hugetlb[0].pagesize.as_str(), m.hugetlb[0].current, m.hugetlb[0].max), ("2MB", 4, 5));
    }

    #[test]
    fn no_stats_event_is_an_error() {
        assert!(from_runtime_stats(b"{\"type\":\"oom\"}\n").is_err());
    }
}

//! The runtime's `events --stats` JSON (runtime-core's stats model, which
//! is runc's JSON too) -> containerd's cgroups v1 or v2 `Metrics`, what
//! `ctr task metrics` and the CRI stats read, mapped the way containerd's
//! Go runc shim maps its cgroup figures.
//!
//! v1 or v2 is the container's cgroup mode, which the runtime says
//! (`cgroupVersion`: a micro-VM's guest may differ from the host); only
//! for a runtime that does not (runc through BinaryName) the host's mode
//! decides, as containerd's runc shim does.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;
use runtime_core::stats::{BlkioEntry, CgroupVersion, MemoryEntry, NetworkInterface, Stats};
use serde::Deserialize;

use crate::error::{Error, Result};

/// One line of `events` output; other event types than "stats" are skipped.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// The first stats event of `runtime events --stats` output.
pub fn first_stats(out: &[u8]) -> Result<Stats> {
    let text = String::from_utf8_lossy(out);
    let data = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .find(|e| e.kind == "stats")
        .map(|e| e.data)
        .ok_or_else(|| Error::FailedPrecondition(format!("the runtime printed no stats event: {}", text.trim())))?;
    serde_json::from_value(data).map_err(|e| Error::FailedPrecondition(format!("the runtime's stats event: {e}: {}", text.trim())))
}

/// The first stats event of `out` as containerd's v1 metrics (whatever
/// version it says: tests/fuzz.rs drives both mappings with this and
/// [`from_runtime_stats_v2`]).
pub fn from_runtime_stats(out: &[u8]) -> Result<v1::Metrics> {
    first_stats(out).map(|s| to_v1(&s))
}

/// The same as containerd's v2 metrics.
pub fn from_runtime_stats_v2(out: &[u8]) -> Result<v2::Metrics> {
    first_stats(out).map(|s| to_v2(&s))
}

/// containerd's metrics of either cgroup version.
#[derive(Debug)]
pub enum Metrics {
    V1(v1::Metrics),
    V2(v2::Metrics),
}

impl Metrics {
    /// As the `Any` of a StatsResponse (type URL io.containerd.cgroups.v1.Metrics
    /// or io.containerd.cgroups.v2.Metrics).
    pub fn into_any(self) -> Result<Any> {
        match self {
            Metrics::V1(m) => containerd_shim::util::convert_to_any(Box::new(m)),
            Metrics::V2(m) => containerd_shim::util::convert_to_any(Box::new(m)),
        }
        .map_err(|source| Error::Shim { context: "encoding metrics".into(), source })
    }
}

/// The metrics containerd expects for these stats: the runtime's cgroup
/// version when it says one, else `host_is_unified()`'s answer.
pub fn for_containerd(s: &Stats, host_is_unified: impl FnOnce() -> bool) -> Metrics {
    let v2 = match s.cgroup_version {
        Some(CgroupVersion::V2) => true,
        Some(CgroupVersion::V1) => false,
        None => host_is_unified(),
    };
    if v2 {
        Metrics::V2(to_v2(s))
    } else {
        Metrics::V1(to_v1(s))
    }
}

/// Whether this host is pure cgroup v2 (cgroup2 mounted at /sys/fs/cgroup).
pub fn host_is_unified() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn some<T>(v: T) -> MessageField<T> {
    MessageField::some(v)
}

fn v1_entry(e: &MemoryEntry) -> v1::MemoryEntry {
    v1::MemoryEntry { limit: e.limit, usage: e.usage, max: e.max, failcnt: e.failcnt, ..Default::default() }
}

fn v1_blkio(v: &[BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    v.iter().map(|e| v1::BlkIOEntry { op: e.op.clone(), major: e.major, minor: e.minor, value: e.value, ..Default::default() }).collect()
}

fn interfaces(s: &Stats) -> &[NetworkInterface] {
    s.network_interfaces.as_deref().unwrap_or_default()
}

/// containerd's cgroups v1 `Metrics`: runc's figures field by field, swap
/// as memory + swap (memsw) as v1 has it.
pub fn to_v1(s: &Stats) -> v1::Metrics {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let oom = |k: &str| s.memory.oom_control.get(k).copied().unwrap_or(0);
    let mut m = v1::Metrics::new();
    m.cpu = some(v1::CPUStat {
        usage: some(v1::CPUUsage {
            total: s.cpu.usage.total,
            kernel: s.cpu.usage.kernel,
            user: s.cpu.usage.user,
            per_cpu: s.cpu.usage.percpu.clone(),
            ..Default::default()
        }),
        throttling: some(v1::Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        }),
        ..Default::default()
    });
    m.memory = some(v1::MemoryStat {
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
        usage: some(v1_entry(&s.memory.usage)),
        swap: some(v1_entry(&s.memory.swap)),
        kernel: some(v1_entry(&s.memory.kernel)),
        kernel_tcp: some(v1_entry(&s.memory.kernel_tcp)),
        ..Default::default()
    });
    // v1's memory.oom_control; from v2 figures only the kill count exists.
    m.memory_oom_control = some(v1::MemoryOomControl {
        oom_kill_disable: oom("oom_kill_disable"),
        under_oom: oom("under_oom"),
        oom_kill: s.memory.oom_kills(),
        ..Default::default()
    });
    m.pids = some(v1::PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() });
    m.blkio = some(v1::BlkIOStat {
        io_service_bytes_recursive: v1_blkio(&s.blkio.io_service_bytes_recursive),
        io_serviced_recursive: v1_blkio(&s.blkio.io_serviced_recursive),
        ..Default::default()
    });
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| v1::HugetlbStat { pagesize: size.clone(), usage: h.usage, max: h.max, failcnt: h.failcnt, ..Default::default() })
        .collect();
    m.network = interfaces(s)
        .iter()
        .map(|i| v1::NetworkStat {
            name: i.name.clone(),
            rx_bytes: i.rx_bytes,
            rx_packets: i.rx_packets,
            rx_errors: i.rx_errors,
            rx_dropped: i.rx_dropped,
            tx_bytes: i.tx_bytes,
            tx_packets: i.tx_packets,
            tx_errors: i.tx_errors,
            tx_dropped: i.tx_dropped,
            ..Default::default()
        })
        .collect();
    m
}

/// containerd's cgroups v2 `Metrics`: times in microseconds, memory.stat's
/// named fields, swap alone (memory.swap.current and memory.swap.max, not
/// runc's memory + swap), memory.events, one io entry per device.
pub fn to_v2(s: &Stats) -> v2::Metrics {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let ev = |k: &str| s.memory.events.get(k).copied().unwrap_or(0);
    let swap = s.memory.swap_only();
    let mut m = v2::Metrics::new();
    m.pids = some(v2::PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() });
    m.cpu = some(v2::CPUStat {
        usage_usec: s.cpu.usage.total / 1000,
        user_usec: s.cpu.usage.user / 1000,
        system_usec: s.cpu.usage.kernel / 1000,
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: s.cpu.throttling.throttled_time / 1000,
        ..Default::default()
    });
    m.memory = some(v2::MemoryStat {
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
        swap_usage: swap.usage,
        swap_limit: swap.limit,
        max_usage: s.memory.usage.max,
        swap_max_usage: swap.max,
        ..Default::default()
    });
    m.memory_events = some(v2::MemoryEvents {
        low: ev("low"),
        high: ev("high"),
        max: ev("max"),
        oom: ev("oom"),
        // v1 figures have the kill count only (memory.oom_control).
        oom_kill: s.memory.oom_kills(),
        oom_group_kill: ev("oom_group_kill"),
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
    m.io = some(v2::IOStat { usage: io.into_values().collect(), ..Default::default() });
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| v2::HugeTlbStat { pagesize: size.clone(), current: h.usage, max: h.max, failcnt: h.failcnt, ..Default::default() })
        .collect();
    m.network = interfaces(s)
        .iter()
        .map(|i| v2::NetworkStat {
            name: i.name.clone(),
            rx_bytes: i.rx_bytes,
            rx_packets: i.rx_packets,
            rx_errors: i.rx_errors,
            rx_dropped: i.rx_dropped,
            tx_bytes: i.tx_bytes,
            tx_packets: i.tx_packets,
            tx_errors: i.tx_errors,
            tx_dropped: i.tx_dropped,
            ..Default::default()
        })
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_must_not_be_asked() -> bool {
        panic!("the runtime said its cgroup version: the host's mode must not be asked")
    }

    #[test]
    fn runc_stats_map_to_v1_metrics() {
        let out = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":123,"percpu":[100,23],"kernel":3,"user":120},"throttling":{}},"memory":{"usage":{"limit":1048576,"usage":4096,"max":8192,"failcnt":2},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0},"raw":{"rss":4000,"total_rss":4001,"pgfault":7}},"pids":{"current":3,"limit":10},"blkio":{},"hugetlb":{"2MB":{"failcnt":0}},"intel_rdt":{},"network_interfaces":null}}"#;
        let s = first_stats(out).expect("stats parse");
        // runc does not say its cgroup version: the host's mode decides
        let Metrics::V1(m) = for_containerd(&s, || false) else { panic!("v1 metrics on a v1 host") };
        assert!(matches!(for_containerd(&s, || true), Metrics::V2(_)));
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
        assert!(m.network.is_empty());
    }

    /// v2 figures as runc and runtime-core print them: swap is memory +
    /// swap; containerd's v2 swap_usage and swap_limit are swap alone.
    #[test]
    fn runc_stats_of_a_v2_host_map_to_v2_metrics() {
        let out = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":5000000,"kernel":1000000,"user":4000000},"throttling":{"periods":9,"throttledPeriods":2,"throttledTime":3000}},"memory":{"usage":{"limit":1048576,"usage":4096,"max":8192},"swap":{"usage":4106,"limit":1048596},"raw":{"anon":111,"file":222,"pgmajfault":3}},"pids":{"current":3,"limit":10},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":512},{"major":8,"minor":0,"op":"Write","value":1024}],"ioServicedRecursive":[{"major":8,"minor":0,"op":"Read","value":1},{"major":8,"minor":0,"op":"Write","value":2}]},"hugetlb":{"2MB":{"usage":4,"max":5,"failcnt":1}}}}"#;
        let s = first_stats(out).expect("stats parse");
        let Metrics::V2(m) = for_containerd(&s, || true) else { panic!("v2 metrics on a v2 host") };
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

    /// The runtime's cgroupVersion (a guest's mode) wins over the host's.
    #[test]
    fn the_runtimes_cgroup_version_decides() {
        let v2 = br#"{"type":"stats","id":"c1","data":{"cgroupVersion":2,"memory":{"events":{"max":4,"oom":2,"oom_kill":1}}}}"#;
        let Metrics::V2(m) = for_containerd(&first_stats(v2).unwrap(), host_must_not_be_asked) else { panic!("v2 metrics") };
        assert_eq!((m.memory_events.max, m.memory_events.oom, m.memory_events.oom_kill), (4, 2, 1));
        let v1 = br#"{"type":"stats","id":"c1","data":{"cgroupVersion":1,"memory":{"oomControl":{"oom_kill_disable":1,"under_oom":1,"oom_kill":3}}}}"#;
        let Metrics::V1(m) = for_containerd(&first_stats(v1).unwrap(), host_must_not_be_asked) else { panic!("v1 metrics") };
        let o = &m.memory_oom_control;
        assert_eq!((o.oom_kill_disable, o.under_oom, o.oom_kill), (1, 1, 3));
        let any = Metrics::V1(m).into_any().unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
    }

    #[test]
    fn no_stats_event_is_an_error() {
        assert!(first_stats(b"{\"type\":\"oom\"}\n").is_err());
        let e = first_stats(b"{\"type\":\"stats\",\"data\":{\"cgroupVersion\":7}}\n").unwrap_err();
        assert!(e.to_string().contains("cgroupVersion 7"), "{e}");
    }
}

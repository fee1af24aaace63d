//! runc's `events --stats` JSON -> containerd's cgroups v1 `Metrics`
//! (what `ctr task metrics` and the CRI stats read), mapped the way
//! containerd's Go runc shim maps runc's stats.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
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

/// Parses the first stats event of `runtime events --stats` output.
pub fn from_runtime_stats(out: &[u8]) -> Result<Metrics> {
    let text = String::from_utf8_lossy(out);
    let ev = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .find(|e| e.kind == "stats")
        .ok_or_else(|| Error::FailedPrecondition(format!("the runtime printed no stats event: {}", text.trim())))?;
    Ok(convert(&ev.data))
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
    fn no_stats_event_is_an_error() {
        assert!(from_runtime_stats(b"{\"type\":\"oom\"}\n").is_err());
    }
}

//! The one stats model of the rpc runtimes, whatever backend reads it (host
//! cgroups, a guest agent): what `events` prints and what the shim maps to
//! containerd's v1 and v2 metrics.
//!
//! The JSON is runc's (`types/events.go`: same names, same shapes, so the
//! shim reads runc's output with these types too) plus three fields runc
//! does not print, which other readers ignore:
//! - `cgroupVersion` (1 or 2): the cgroup mode the figures come from, so
//!   the shim picks containerd's v1 or v2 metrics by the container's mode
//!   (a guest VM's), not the host's;
//! - `memory.oomControl`: v1's memory.oom_control (`oom_kill_disable`,
//!   `under_oom`, `oom_kill`);
//! - `memory.events`: v2's memory.events (`low`, `high`, `max`, `oom`,
//!   `oom_kill`, `oom_group_kill`).
//!
//! Every field has a default: runc leaves out empty ones, and a runc binary
//! of another version may print fewer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Which cgroup version the figures were read from. In the JSON: 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum CgroupVersion {
    /// v1 controllers (a hybrid host counts as v1: its memory, cpu, ...
    /// figures are v1's).
    V1,
    /// Pure cgroup v2.
    V2,
}

impl From<CgroupVersion> for u8 {
    fn from(v: CgroupVersion) -> u8 {
        match v {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        }
    }
}

impl TryFrom<u8> for CgroupVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            1 => Ok(CgroupVersion::V1),
            2 => Ok(CgroupVersion::V2),
            _ => Err(format!("cgroupVersion {v}: expected 1 or 2")),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
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
    /// Nanoseconds.
    pub kernel: u64,
    /// Nanoseconds.
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

/// Bytes; u64::MAX is "no limit".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// As runc shows it on v1 and v2 alike: memory + swap (v1's memsw).
    /// On v2 that is memory.current + memory.swap.current, and the limit
    /// memory.max + memory.swap.max (u64::MAX when either is unlimited).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// v1's memory.oom_control. Not in runc's JSON.
    #[serde(rename = "oomControl", skip_serializing_if = "BTreeMap::is_empty")]
    pub oom_control: BTreeMap<String, u64>,
    /// v2's memory.events. Not in runc's JSON.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, u64>,
}

impl Memory {
    /// Processes the kernel OOM-killed in the container's memory cgroup so
    /// far (v1 memory.oom_control, v2 memory.events); 0 when unknown.
    pub fn oom_kills(&self) -> u64 {
        self.events.get("oom_kill").or_else(|| self.oom_control.get("oom_kill")).copied().unwrap_or(0)
    }

    /// Swap alone, which v2 and containerd's v2 metrics report: `swap`
    /// holds memory + swap (see there).
    pub fn swap_only(&self) -> MemoryEntry {
        let limit = if self.swap.limit == u64::MAX || self.usage.limit == u64::MAX {
            u64::MAX
        } else {
            self.swap.limit.saturating_sub(self.usage.limit)
        };
        MemoryEntry {
            limit,
            usage: self.swap.usage.saturating_sub(self.usage.usage),
            // The peak of memory + swap tells nothing of swap's own peak.
            max: 0,
            failcnt: self.swap.failcnt,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 is unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// "Read", "Write", ... (v1's names; v2's io.stat is shown in them).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IntelRdt {}

/// runc's `types.Stats`, plus the cgroup version (see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// By page size ("2MB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// The container's own network namespace's interfaces but "lo"; null
    /// when it shares the host's.
    pub network_interfaces: Option<Vec<NetworkInterface>>,
    /// None: not said (runc does not).
    #[serde(rename = "cgroupVersion", skip_serializing_if = "Option::is_none")]
    pub cgroup_version: Option<CgroupVersion>,
}

impl Stats {
    /// runc's `{"type":"stats","id":ID,"data":{...}}`.
    pub fn event(&self, id: &str) -> serde_json::Value {
        serde_json::json!({ "type": "stats", "id": id, "data": self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What runc 1.1.5 printed for `events --stats` of a busybox container
    /// (memory limit 64 MiB) on this hybrid host: it reads into these types.
    #[test]
    fn reads_runc_output() {
        let line = r#"{"type":"stats","id":"stats13probe","data":{"cpu":{"usage":{"total":15886261,"percpu":[5162163,10724098],"percpu_kernel":[0,8000000],"percpu_user":[4000000,0],"kernel":10000000,"user":0},"throttling":{}},"cpuset":{"cpus":[0,1],"cpu_exclusive":0,"mems":[0],"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":1,"sched_relax_domain_level":-1},"memory":{"cache":12288,"usage":{"limit":67108864,"usage":2240512,"max":2244608,"failcnt":0},"swap":{"limit":9223372036854771712,"usage":2240512,"max":2244608,"failcnt":0},"kernel":{"limit":9223372036854771712,"usage":471040,"max":536576,"failcnt":0},"kernelTCP":{"limit":9223372036854771712,"failcnt":0},"raw":{"active_anon":0,"active_file":12288,"cache":12288,"dirty":12288,"hierarchical_memory_limit":67108864,"hierarchical_memsw_limit":9223372036854771712,"inactive_anon":1437696,"inactive_file":0,"mapped_file":0,"pgfault":638,"pgmajfault":0,"pgpgin":392,"pgpgout":27,"rss":1482752,"rss_huge":0,"shmem":0,"swap":0,"swapcached":0,"total_active_anon":0,"total_active_file":12288,"total_cache":12288,"total_dirty":12288,"total_inactive_anon":1437696,"total_inactive_file":0,"total_mapped_file":0,"total_pgfault":638,"total_pgmajfault":0,"total_pgpgin":392,"total_pgpgout":27,"total_rss":1482752,"total_rss_huge":0,"total_shmem":0,"total_swap":0,"total_swapcached":0,"total_unevictable":0,"total_workingset_refault_anon":0,"total_workingset_refault_file":3,"total_writeback":0,"unevictable":0,"workingset_refault_anon":0,"workingset_refault_file":3,"writeback":0}},"pids":{"current":2},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}}"#;
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s: Stats = serde_json::from_value(v["data"].clone()).unwrap();
        assert_eq!(s.cpu.usage.total, 15886261);
        assert_eq!(s.cpu.usage.percpu, vec![5162163, 10724098]);
        assert_eq!(s.cpu.usage.kernel, 10000000);
        assert_eq!(s.cpuset.cpus, vec![0, 1]);
        assert_eq!(s.memory.cache, 12288);
        assert_eq!((s.memory.usage.limit, s.memory.usage.usage, s.memory.usage.max), (67108864, 2240512, 2244608));
        assert_eq!(s.memory.swap.limit, 9223372036854771712);
        assert_eq!(s.memory.raw["rss"], 1482752);
        assert_eq!(s.pids.current, 2);
        assert_eq!(s.network_interfaces, None);
        assert_eq!(s.cgroup_version, None);
        assert_eq!(s.memory.oom_kills(), 0);
        // and prints back in the same shape
        let again = s.event("stats13probe");
        assert_eq!(again["data"]["memory"]["usage"], v["data"]["memory"]["usage"]);
        assert_eq!(again["data"]["cpu"], v["data"]["cpu"]);
    }

    #[test]
    fn round_trips_with_the_fields_runc_lacks() {
        let mut s = Stats { cgroup_version: Some(CgroupVersion::V2), ..Default::default() };
        s.memory.events = [("oom_kill".to_string(), 2), ("max".to_string(), 5)].into();
        let j = s.event("c1");
        assert_eq!(j["data"]["cgroupVersion"], 2);
        assert_eq!(j["data"]["memory"]["events"]["oom_kill"], 2);
        assert!(j["data"]["memory"].get("oomControl").is_none(), "{j}");
        let back: Stats = serde_json::from_value(j["data"].clone()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.memory.oom_kills(), 2);
        let bad = serde_json::from_str::<Stats>(r#"{"cgroupVersion":3}"#).unwrap_err();
        assert!(bad.to_string().contains("cgroupVersion 3"), "{bad}");
    }

    #[test]
    fn swap_alone_from_memory_plus_swap() {
        let mut m = Memory {
            usage: MemoryEntry { limit: 64 << 20, usage: 10 << 20, max: 0, failcnt: 0 },
            swap: MemoryEntry { limit: (64 << 20) + (32 << 20), usage: (10 << 20) + 4096, max: 0, failcnt: 0 },
            ..Default::default()
        };
        let s = m.swap_only();
        assert_eq!((s.usage, s.limit), (4096, 32 << 20));
        m.swap.limit = u64::MAX;
        assert_eq!(m.swap_only().limit, u64::MAX);
    }
}

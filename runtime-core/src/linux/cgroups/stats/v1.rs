//! The v1 controllers' figures. Each reader returns whether the container
//! has that controller in v1 (else the v2 reader is asked).

use std::path::Path;

use super::super::resources::{host_hugepage_sizes, Layout};
use super::super::v1 as dirs;
use super::{cpu_list, kv, list, read, read_u64};
use crate::stats::{BlkioEntry, Hugetlb, MemoryEntry, Stats, Throttling};

fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant of the C library; no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub(super) fn cpu(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v1_with("cpuacct.usage") else { return false };
    let u = &mut s.cpu.usage;
    u.total = read_u64(d, "cpuacct.usage");
    u.percpu = list(d, "cpuacct.usage_percpu");
    u.percpu_kernel = list(d, "cpuacct.usage_percpu_sys");
    u.percpu_user = list(d, "cpuacct.usage_percpu_user");
    // cpuacct.stat counts clock ticks; runc shows nanoseconds.
    let st = kv(d, "cpuacct.stat");
    let ns = 1_000_000_000 / clock_ticks();
    u.user = st.get("user").copied().unwrap_or(0) * ns;
    u.kernel = st.get("system").copied().unwrap_or(0) * ns;
    if let Some(c) = dirs::cpu_dir(l) {
        let t = kv(c, "cpu.stat");
        s.cpu.throttling = Throttling {
            periods: t.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: t.get("throttled_time").copied().unwrap_or(0),
        };
    }
    true
}

pub(super) fn memory(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = dirs::memory_dir(l) else { return false };
    let m = &mut s.memory;
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
    m.oom_control = kv(d, "memory.oom_control");
    true
}

pub(super) fn pids(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = dirs::pids_dir(l) else { return false };
    s.pids.current = read_u64(d, "pids.current");
    let lim = read_u64(d, "pids.max");
    s.pids.limit = if lim == u64::MAX { 0 } else { lim };
    true
}

/// "8:0 Read 123" lines.
fn blkio_entries(d: &Path, f: &str) -> Vec<BlkioEntry> {
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

pub(super) fn blkio(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = dirs::blkio_dir(l) else { return false };
    // The CFQ files, then BFQ's, then the throttle counters (always there)
    // as runc reads them.
    for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
        let bytes = blkio_entries(d, &format!("{prefix}io_service_bytes_recursive"));
        if !bytes.is_empty() || prefix == "blkio.throttle." {
            s.blkio.io_service_bytes_recursive = bytes;
            s.blkio.io_serviced_recursive = blkio_entries(d, &format!("{prefix}io_serviced_recursive"));
            break;
        }
    }
    true
}

pub(super) fn hugetlb(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = dirs::hugetlb_dir(l) else { return false };
    for n in host_hugepage_sizes() {
        let h = Hugetlb {
            usage: read_u64(d, &format!("hugetlb.{n}.usage_in_bytes")),
            max: read_u64(d, &format!("hugetlb.{n}.max_usage_in_bytes")),
            failcnt: read_u64(d, &format!("hugetlb.{n}.failcnt")),
        };
        s.hugetlb.insert(n, h);
    }
    true
}

pub(super) fn cpuset(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = dirs::cpuset_dir(l) else { return false };
    s.cpuset.cpus = cpu_list(d, "cpuset.cpus");
    s.cpuset.mems = cpu_list(d, "cpuset.mems");
    true
}

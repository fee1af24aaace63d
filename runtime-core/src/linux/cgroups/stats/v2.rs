//! The unified hierarchy's figures, shown in runc's v1-shaped JSON (times
//! in ns, memory.stat in `raw`, io.stat as Read/Write entries, swap as
//! memory + swap). Each reader returns whether the unified directory has
//! that controller's files.

use super::super::resources::{host_hugepage_sizes, Layout};
use super::{cpu_list, kv, read, read_u64};
use crate::stats::{BlkioEntry, Hugetlb, MemoryEntry, Stats, Throttling};

pub(super) fn cpu(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2_with("cpu.stat") else { return false };
    let t = kv(d, "cpu.stat");
    let g = |k: &str| t.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling =
        Throttling { periods: g("nr_periods"), throttled_periods: g("nr_throttled"), throttled_time: g("throttled_usec") * 1000 };
    true
}

pub(super) fn memory(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2_with("memory.current") else { return false };
    let m = &mut s.memory;
    m.raw = kv(d, "memory.stat");
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.events = kv(d, "memory.events");
    m.usage = MemoryEntry {
        limit: read_u64(d, "memory.max"),
        usage: read_u64(d, "memory.current"),
        max: read_u64(d, "memory.peak"),
        failcnt: m.events.get("max").copied().unwrap_or(0),
    };
    // runc shows v2 swap as memory + swap, like v1's memsw, and readers of
    // its JSON expect that; `Memory::swap_only` gives swap alone back.
    let swap_lim = read_u64(d, "memory.swap.max");
    m.swap = MemoryEntry {
        limit: if swap_lim == u64::MAX || m.usage.limit == u64::MAX { u64::MAX } else { swap_lim.saturating_add(m.usage.limit) },
        usage: read_u64(d, "memory.swap.current").saturating_add(m.usage.usage),
        max: 0,
        failcnt: 0,
    };
    true
}

pub(super) fn pids(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2_with("pids.current") else { return false };
    s.pids.current = read_u64(d, "pids.current");
    let lim = read_u64(d, "pids.max");
    s.pids.limit = if lim == u64::MAX { 0 } else { lim };
    true
}

/// io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ..." lines.
pub(super) fn io(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2_with("io.stat") else { return false };
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
    true
}

pub(super) fn hugetlb(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2 else { return false };
    let mut names: Vec<String> = host_hugepage_sizes();
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
    let mut any = false;
    for n in names {
        if !d.join(format!("hugetlb.{n}.current")).exists() {
            continue;
        }
        let h = Hugetlb {
            usage: read_u64(d, &format!("hugetlb.{n}.current")),
            max: 0,
            failcnt: kv(d, &format!("hugetlb.{n}.events")).get("max").copied().unwrap_or(0),
        };
        s.hugetlb.insert(n, h);
        any = true;
    }
    any
}

pub(super) fn cpuset(l: &Layout, s: &mut Stats) -> bool {
    let Some(d) = l.v2_with("cpuset.cpus.effective") else { return false };
    s.cpuset.cpus = cpu_list(d, "cpuset.cpus.effective");
    s.cpuset.mems = cpu_list(d, "cpuset.mems.effective");
    true
}

#[cfg(test)]
mod tests {
    use super::super::collect;
    use crate::linux::cgroups::fake::FakeTree;
    use crate::stats::{BlkioEntry, CgroupVersion};

    #[test]
    fn v2_stats_from_a_fake_tree() {
        let t = FakeTree::new("stats");
        std::fs::write(t.dir.join("memory.max"), "67108864\n").unwrap();
        std::fs::write(t.dir.join("memory.swap.max"), "33554432\n").unwrap();
        std::fs::write(t.dir.join("memory.swap.current"), "12288\n").unwrap();
        std::fs::write(t.dir.join("memory.events"), "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n").unwrap();
        let s = collect(std::slice::from_ref(&t.dir), None);
        assert_eq!(s.cgroup_version, Some(CgroupVersion::V2));
        assert_eq!(s.cpu.usage.total, 1_500_000);
        assert_eq!(s.cpu.usage.user, 1_000_000);
        assert_eq!(s.cpu.usage.kernel, 500_000);
        assert_eq!(s.cpu.throttling.throttled_periods, 1);
        assert_eq!(s.memory.usage.usage, 1048576);
        assert_eq!(s.memory.usage.limit, 67108864);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.memory.cache, 8192);
        // runc's memory + swap, and swap alone back from it
        assert_eq!((s.memory.swap.usage, s.memory.swap.limit), (1048576 + 12288, 67108864 + 33554432));
        assert_eq!((s.memory.swap_only().usage, s.memory.swap_only().limit), (12288, 33554432));
        assert_eq!(s.memory.oom_kills(), 1);
        assert_eq!(s.memory.events["oom"], 2);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.blkio.io_service_bytes_recursive[1], BlkioEntry { major: 254, minor: 0, op: "Write".into(), value: 8192 });
        assert!(s.hugetlb.contains_key("2MB"));
        // runc's JSON names, and ours
        let j = s.event("c1");
        assert_eq!(j["type"], "stats");
        assert_eq!(j["data"]["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(j["data"]["cpu"]["throttling"]["throttledPeriods"], 1);
        assert_eq!(j["data"]["memory"]["usage"]["limit"], 67108864u64);
        assert_eq!(j["data"]["memory"]["raw"]["anon"], 4096);
        assert_eq!(j["data"]["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert!(j["data"]["memory"]["kernelTCP"].is_object());
        assert!(j["data"]["intel_rdt"].is_object());
        assert_eq!(j["data"]["cgroupVersion"], 2);
        assert_eq!(j["data"]["memory"]["events"]["oom_kill"], 1);
    }
}

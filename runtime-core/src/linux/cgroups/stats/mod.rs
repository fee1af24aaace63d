//! Reading a container's cgroup files into the one stats model
//! (`crate::stats::Stats`): `v1` reads the v1 controllers, `v2` the
//! unified hierarchy; on a hybrid host each controller is read where it is
//! mounted. The network figures come from the container's own network
//! namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::resources::Layout;
use crate::stats::{CgroupVersion, NetworkInterface, Stats};

mod v1;
mod v2;

pub(super) fn read(p: &Path) -> Option<String> {
    crate::linux::kfile::read(p).ok()
}

pub(super) fn read_u64(d: &Path, f: &str) -> u64 {
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

pub(super) fn list(d: &Path, f: &str) -> Vec<u64> {
    read(&d.join(f)).map(|s| s.split_whitespace().filter_map(|x| x.parse().ok()).collect()).unwrap_or_default()
}

/// A cpuset list file ("0-3,5") as numbers.
pub(super) fn cpu_list(d: &Path, f: &str) -> Vec<u16> {
    read(&d.join(f))
        .and_then(|x| super::resources::parse_list(&x).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|x| u16::try_from(x).ok())
        .collect()
}

/// Read everything the container's cgroups offer. `pid` (init) gives the
/// network interfaces of a private network namespace.
pub fn collect(dirs: &[PathBuf], pid: Option<i32>) -> Stats {
    let l = Layout::new(dirs);
    let version = if l.pure_v2() {
        Some(CgroupVersion::V2)
    } else if l.v1.is_empty() {
        None
    } else {
        Some(CgroupVersion::V1)
    };
    let mut s = Stats { cgroup_version: version, ..Default::default() };
    // Each controller where it is mounted: v1 first, as on a hybrid host
    // the unified directory has none of the v1-bound controllers.
    let _ = v1::cpu(&l, &mut s) || v2::cpu(&l, &mut s);
    let _ = v1::memory(&l, &mut s) || v2::memory(&l, &mut s);
    let _ = v1::pids(&l, &mut s) || v2::pids(&l, &mut s);
    let _ = v1::blkio(&l, &mut s) || v2::io(&l, &mut s);
    let _ = v1::hugetlb(&l, &mut s) || v2::hugetlb(&l, &mut s);
    let _ = v1::cpuset(&l, &mut s) || v2::cpuset(&l, &mut s);
    if let Some(p) = pid {
        s.network_interfaces = network(p);
    }
    s
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_parsing() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    5000      10    1    2    0     0          0         0     6000      12    3    4    0     0       0          0\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "eth0");
        assert_eq!(v[1].rx_bytes, 5000);
        assert_eq!(v[1].tx_dropped, 4);
    }

    #[test]
    fn no_directories_say_no_version() {
        let s = collect(&[], None);
        assert_eq!(s.cgroup_version, None);
        assert_eq!(s, Stats::default());
    }
}

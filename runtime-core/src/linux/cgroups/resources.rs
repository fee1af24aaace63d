//! `linux.resources` written to the container's cgroup directories. The
//! full set (blkio, hugetlb, rdma, v2 eBPF devices, update ordering) grows
//! here; each write names the file and value on error.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::error::{Error, Result};

fn write(dir: &Path, file: &str, v: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, v).map_err(|e| Error::Cgroup { path: p, msg: format!("writing {v:?}: {e}") })
}

fn dir_with<'a>(dirs: &'a [PathBuf], file: &str) -> Option<&'a Path> {
    dirs.iter().map(PathBuf::as_path).find(|d| d.join(file).exists())
}

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

fn dev_rule(t: char, maj: i64, min: i64, access: &str) -> String {
    let n = |x: i64| if x < 0 { "*".to_string() } else { x.to_string() };
    format!("{t} {}:{} {access}", n(maj), n(min))
}

fn type_char(t: Option<LinuxDeviceType>) -> char {
    match t {
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::P) => 'p',
        Some(LinuxDeviceType::A) | None => 'a',
    }
}

/// v1 devices cgroup: deny everything, then the config's rules in order,
/// then the default allow list and the config's `linux.devices`.
pub fn apply_devices_v1(dir: &Path, rules: &[LinuxDeviceCgroup], extra: &[(char, i64, i64)]) -> Result<()> {
    write(dir, "devices.deny", "a")?;
    for r in rules {
        let t = type_char(r.typ());
        let rule = dev_rule(t, r.major().unwrap_or(-1), r.minor().unwrap_or(-1), r.access().as_deref().unwrap_or("rwm"));
        let rule = if t == 'a' { "a".to_string() } else { rule };
        write(dir, if r.allow() { "devices.allow" } else { "devices.deny" }, &rule)?;
    }
    for (t, ma, mi, acc) in default_device_rules() {
        write(dir, "devices.allow", &dev_rule(t, ma, mi, acc))?;
    }
    for (t, ma, mi) in extra {
        write(dir, "devices.allow", &dev_rule(*t, *ma, *mi, "rwm"))?;
    }
    Ok(())
}

/// cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.saturating_sub(2)) * 9999) / 262142
}

/// Apply resources to the directories (v1 files where a v1 controller has
/// them, else the v2 names).
pub fn apply(dirs: &[PathBuf], r: &LinuxResources, extra_devices: &[(char, i64, i64)]) -> Result<()> {
    if let Some(m) = r.memory() {
        for v in [m.limit(), m.reservation(), m.swap()].into_iter().flatten() {
            if v < -1 {
                return Err(Error::Usage(format!("linux.resources.memory: invalid value {v}")));
            }
        }
        if let Some(d) = dir_with(dirs, "memory.limit_in_bytes") {
            if let Some(l) = m.limit() {
                write(d, "memory.limit_in_bytes", &l.to_string())?;
            }
            if let Some(s) = m.swap() {
                if d.join("memory.memsw.limit_in_bytes").exists() {
                    write(d, "memory.memsw.limit_in_bytes", &s.to_string())?;
                } else if s != m.limit().unwrap_or(-2) {
                    crate::log::warn("memory.swap ignored: the host has no swap accounting");
                }
            }
            if let Some(v) = m.reservation() {
                write(d, "memory.soft_limit_in_bytes", &v.to_string())?;
            }
            if let Some(v) = m.swappiness() {
                if v > 100 {
                    return Err(Error::Usage(format!("linux.resources.memory.swappiness: {v} is above 100")));
                }
                let _ = write(d, "memory.swappiness", &v.to_string());
            }
            if m.disable_oom_killer() == Some(true) {
                write(d, "memory.oom_control", "1")?;
            }
        } else if let Some(d) = dir_with(dirs, "memory.max") {
            let v2 = |x: i64| if x == -1 { "max".to_string() } else { x.to_string() };
            if let Some(l) = m.limit() {
                write(d, "memory.max", &v2(l))?;
            }
            if let Some(v) = m.reservation() {
                write(d, "memory.low", &v2(v))?;
            }
            if let (Some(s), Some(l)) = (m.swap(), m.limit()) {
                if d.join("memory.swap.max").exists() {
                    let sw = if s == -1 { "max".to_string() } else { (s - l).max(0).to_string() };
                    write(d, "memory.swap.max", &sw)?;
                }
            }
        }
    }
    if let Some(p) = r.pids() {
        let v = p.limit();
        let s = if v <= 0 { "max".to_string() } else { v.to_string() };
        if let Some(d) = dir_with(dirs, "pids.max") {
            write(d, "pids.max", &s)?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(d) = dir_with(dirs, "cpu.shares") {
            if let Some(s) = c.shares() {
                write(d, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(d, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(rt) = c.realtime_period() {
                write(d, "cpu.rt_period_us", &rt.to_string())?;
            }
            if let Some(rt) = c.realtime_runtime() {
                write(d, "cpu.rt_runtime_us", &rt.to_string())?;
            }
        } else if let Some(d) = dir_with(dirs, "cpu.weight") {
            if let Some(s) = c.shares() {
                write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = c.quota().filter(|q| *q > 0).map(|q| q.to_string()).unwrap_or_else(|| "max".into());
                write(d, "cpu.max", &format!("{q} {}", c.period().unwrap_or(100_000)))?;
            }
        }
        if let Some(d) = dir_with(dirs, "cpuset.cpus") {
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                write(d, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                write(d, "cpuset.mems", mems)?;
            }
        }
    }
    if let Some(d) = dir_with(dirs, "devices.allow") {
        apply_devices_v1(d, r.devices().as_deref().unwrap_or(&[]), extra_devices)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
    }

    #[test]
    fn device_rule_text() {
        assert_eq!(dev_rule('c', 1, 3, "rwm"), "c 1:3 rwm");
        assert_eq!(dev_rule('c', 136, -1, "rwm"), "c 136:* rwm");
    }
}

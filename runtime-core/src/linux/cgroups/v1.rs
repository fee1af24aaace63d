//! cgroup v1 writers: one directory per controller (cpu and cpuacct may be
//! separate mounts). Only the controllers that have a v1 directory are
//! handled here; `v2` takes the rest.

use std::path::Path;

use super::devices_bpf::Rule;
use super::resources::{cpu_idle, Layout, Res, Tx, THROTTLE_NAMES};
use crate::error::{Error, Result};
use crate::log;

fn read_u64(d: &Path, f: &str) -> Option<u64> {
    crate::linux::kfile::read(d.join(f)).ok()?.trim().parse().ok()
}

/// The v1 directory of a controller, found by its files.
pub fn memory_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("memory.limit_in_bytes")
}
pub fn cpu_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("cpu.shares")
}
pub fn cpuset_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("cpuset.cpus")
}
pub fn pids_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("pids.max")
}
pub fn blkio_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    ["blkio.throttle.read_bps_device", "blkio.weight", "blkio.bfq.weight", "blkio.reset_stats"].iter().find_map(|f| l.v1_with(f))
}
pub fn hugetlb_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with_prefix("hugetlb.")
}
pub fn net_cls_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("net_cls.classid")
}
pub fn net_prio_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("net_prio.ifpriomap")
}
pub fn rdma_dir<'a>(l: &Layout<'a>) -> Option<&'a Path> {
    l.v1_with("rdma.max")
}

pub fn apply(l: &Layout, r: &Res, tx: &mut Tx) -> Result<()> {
    // Each directory is looked up only when its controller has work: a
    // lookup lists the directory.
    if let Some(d) = r.has_memory().then(|| memory_dir(l)).flatten() {
        memory(d, r, tx)?;
    }
    if let Some(d) = r.has_cpu().then(|| cpu_dir(l)).flatten() {
        cpu(d, r, tx)?;
    }
    if let Some(d) = (r.cpus.is_some() || r.mems.is_some()).then(|| cpuset_dir(l)).flatten() {
        if let Some(c) = &r.cpus {
            tx.write(d, "cpuset.cpus", c)?;
        }
        if let Some(m) = &r.mems {
            tx.write(d, "cpuset.mems", m)?;
        }
    }
    if let Some(d) = (r.pids_limit.is_some()).then(|| pids_dir(l)).flatten() {
        if let Some(p) = r.pids_limit {
            tx.write(d, "pids.max", &if p < 0 { "max".to_string() } else { p.to_string() })?;
        }
    }
    if let Some(d) = r.has_blkio().then(|| blkio_dir(l)).flatten() {
        blkio(d, r, tx)?;
    }
    if let Some(d) = (!r.hugepages.is_empty()).then(|| hugetlb_dir(l)).flatten() {
        for (size, limit) in &r.hugepages {
            let name = super::resources::hugepage_file_name(size);
            let f = format!("hugetlb.{name}.limit_in_bytes");
            if !d.join(&f).exists() {
                return Err(Error::Usage(format!(
                    "linux.resources.hugepageLimits: page size {size} is not supported by this host (sizes: {})",
                    super::resources::host_hugepage_sizes().join(", ")
                )));
            }
            let v = if *limit < 0 { "-1".to_string() } else { limit.to_string() };
            tx.write(d, &f, &v)?;
            let rsvd = format!("hugetlb.{name}.rsvd.limit_in_bytes");
            if d.join(&rsvd).exists() {
                tx.write(d, &rsvd, &v)?;
            }
        }
    }
    if let Some(d) = (r.net_class_id.is_some()).then(|| net_cls_dir(l)).flatten() {
        if let Some(c) = r.net_class_id {
            tx.write(d, "net_cls.classid", &c.to_string())?;
        }
    }
    if let Some(d) = (!r.net_priorities.is_empty()).then(|| net_prio_dir(l)).flatten() {
        for (name, prio) in &r.net_priorities {
            tx.write(d, "net_prio.ifpriomap", &format!("{name} {prio}"))?;
        }
    }
    if let Some(d) = (!r.rdma.is_empty()).then(|| rdma_dir(l)).flatten() {
        for (dev, h, o) in &r.rdma {
            tx.write(d, "rdma.max", &rdma_line(dev, *h, *o))?;
        }
    }
    Ok(())
}

pub fn rdma_line(dev: &str, h: Option<u32>, o: Option<u32>) -> String {
    let n = |x: Option<u32>| x.map(|v| v.to_string()).unwrap_or_else(|| "max".into());
    format!("{dev} hca_handle={} hca_object={}", n(h), n(o))
}

/// Memory and memsw in the order the kernel accepts (memsw >= memory at
/// every step): raise memsw first when growing, lower memory first when
/// shrinking, as runc does.
fn memory(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    let has_memsw = d.join("memory.memsw.limit_in_bytes").exists();
    let mut swap = r.mem_swap;
    if r.mem_limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if swap.is_some() && !has_memsw {
        if swap != r.mem_limit && swap != Some(-1) {
            log::warn("linux.resources.memory.swap ignored: this kernel has no swap accounting (memory.memsw.*)");
        }
        swap = None;
    }
    let lim = |v: i64| v.to_string();
    match (r.mem_limit, swap) {
        (Some(m), Some(s)) => {
            let cur = read_u64(d, "memory.limit_in_bytes").unwrap_or(u64::MAX);
            if s == -1 || cur < s as u64 {
                tx.write(d, "memory.memsw.limit_in_bytes", &lim(s))?;
                tx.write(d, "memory.limit_in_bytes", &lim(m))?;
            } else {
                tx.write(d, "memory.limit_in_bytes", &lim(m))?;
                tx.write(d, "memory.memsw.limit_in_bytes", &lim(s))?;
            }
        }
        (Some(m), None) => tx.write(d, "memory.limit_in_bytes", &lim(m))?,
        (None, Some(s)) => tx.write(d, "memory.memsw.limit_in_bytes", &lim(s))?,
        (None, None) => {}
    }
    if let Some(v) = r.mem_reservation {
        tx.write(d, "memory.soft_limit_in_bytes", &lim(v))?;
    }
    if let Some(v) = r.mem_kernel {
        // Gone from recent kernels (the file stays, writes fail).
        if let Err(e) = tx.try_write(d, "memory.kmem.limit_in_bytes", &lim(v)) {
            log::warn(&format!("linux.resources.memory.kernel ignored: the kernel no longer supports kernel memory limits ({e})"));
        }
    }
    if let Some(v) = r.mem_kernel_tcp {
        if d.join("memory.kmem.tcp.limit_in_bytes").exists() {
            tx.write(d, "memory.kmem.tcp.limit_in_bytes", &lim(v))?;
        } else {
            log::warn("linux.resources.memory.kernelTCP ignored: this kernel has no memory.kmem.tcp.limit_in_bytes");
        }
    }
    if let Some(v) = r.swappiness {
        tx.write(d, "memory.swappiness", &v.to_string())?;
    }
    if r.disable_oom_killer == Some(true) {
        tx.write(d, "memory.oom_control", "1")?;
    }
    if let Some(h) = r.use_hierarchy {
        let cur = read_u64(d, "memory.use_hierarchy");
        if cur != Some(h as u64) {
            if let Err(e) = tx.try_write(d, "memory.use_hierarchy", if h { "1" } else { "0" }) {
                log::warn(&format!("linux.resources.memory.useHierarchy={h} ignored: {e} (the kernel fixes it)"));
            }
        }
    }
    Ok(())
}

fn cpu(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    if let Some(s) = r.cpu_shares {
        tx.write(d, "cpu.shares", &s.to_string())?;
    }
    // A smaller period can be refused while the old quota/new period
    // exceeds the parent's: retry it after the quota.
    let mut period_later = None;
    if let Some(p) = r.cpu_period {
        if let Err(e) = tx.try_write(d, "cpu.cfs_period_us", &p.to_string()) {
            if e.raw_os_error() != Some(libc::EINVAL) || r.cpu_quota.is_none() {
                return Err(Error::Cgroup { path: d.join("cpu.cfs_period_us"), msg: format!("writing {p}: {e}") });
            }
            period_later = Some(p);
        }
    }
    if let Some(q) = r.cpu_quota {
        tx.write(d, "cpu.cfs_quota_us", &q.to_string())?;
        if let Some(p) = period_later {
            tx.write(d, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = r.cpu_burst {
        if d.join("cpu.cfs_burst_us").exists() {
            tx.write(d, "cpu.cfs_burst_us", &b.to_string())?;
        } else if b != 0 {
            return Err(Error::Usage("linux.resources.cpu.burst: this kernel has no cpu.cfs_burst_us".into()));
        }
    }
    if let Some(p) = r.cpu_rt_period {
        tx.write(d, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(rt) = r.cpu_rt_runtime {
        tx.write(d, "cpu.rt_runtime_us", &rt.to_string())?;
    }
    cpu_idle(d, r, tx)
}

fn blkio(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    let pick = |names: &[&'static str]| names.iter().copied().find(|f| d.join(f).exists());
    let no_weight = |what: &str| {
        Error::Usage(format!(
            "linux.resources.blockIO.{what}: this host's blkio controller has no weight files (needs the CFQ or BFQ I/O scheduler)"
        ))
    };
    if let Some(w) = r.blkio_weight {
        let f = pick(&["blkio.weight", "blkio.bfq.weight"]).ok_or_else(|| no_weight("weight"))?;
        tx.write(d, f, &w.to_string())?;
    }
    if let Some(w) = r.blkio_leaf_weight {
        let f = pick(&["blkio.leaf_weight"]).ok_or_else(|| no_weight("leafWeight"))?;
        tx.write(d, f, &w.to_string())?;
    }
    for (ma, mi, w, lw) in &r.weight_devices {
        if let Some(w) = w {
            let f = pick(&["blkio.weight_device", "blkio.bfq.weight_device"]).ok_or_else(|| no_weight("weightDevice"))?;
            tx.write(d, f, &format!("{ma}:{mi} {w}"))?;
        }
        if let Some(w) = lw {
            let f = pick(&["blkio.leaf_weight_device"]).ok_or_else(|| no_weight("weightDevice.leafWeight"))?;
            tx.write(d, f, &format!("{ma}:{mi} {w}"))?;
        }
    }
    for (i, list) in r.throttle.iter().enumerate() {
        for (ma, mi, rate) in list {
            tx.write(d, &format!("blkio.throttle.{}", THROTTLE_NAMES[i]), &format!("{ma}:{mi} {rate}"))?;
        }
    }
    Ok(())
}

fn rule_text(r: &Rule) -> String {
    if r.kind == 'a' {
        return "a".into();
    }
    let n = |x: i64| {
        if x < 0 {
            "*".to_string()
        } else {
            x.to_string()
        }
    };
    let mut acc = String::new();
    for (bit, c) in [(2, 'r'), (4, 'w'), (1, 'm')] {
        if r.access & bit != 0 {
            acc.push(c);
        }
    }
    format!("{} {}:{} {acc}", r.kind, n(r.major), n(r.minor))
}

/// The v1 devices cgroup: the rules in order, one write(2) each (the
/// kernel parses one rule per write) through one open file per list.
/// Both files are write-only: there is nothing to roll back to.
pub fn devices(d: &Path, rules: &[Rule]) -> Result<()> {
    use std::io::Write;
    let mut files: [Option<std::fs::File>; 2] = [None, None];
    for r in rules {
        let (i, name) = if r.allow { (0, "devices.allow") } else { (1, "devices.deny") };
        let p = d.join(name);
        let err = |e: std::io::Error| Error::Cgroup { path: p.clone(), msg: format!("writing {:?}: {e}", rule_text(r)) };
        let f = match &mut files[i] {
            Some(f) => f,
            slot => slot.insert(std::fs::OpenOptions::new().write(true).open(&p).map_err(err)?),
        };
        f.write_all(rule_text(r).as_bytes()).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rule_text() {
        let r = Rule { allow: true, kind: 'c', major: 1, minor: 3, access: 7 };
        assert_eq!(rule_text(&r), "c 1:3 rwm");
        let r = Rule { allow: true, kind: 'c', major: 136, minor: -1, access: 6 };
        assert_eq!(rule_text(&r), "c 136:* rw");
        let r = Rule { allow: false, kind: 'a', major: -1, minor: -1, access: 7 };
        assert_eq!(rule_text(&r), "a");
    }

    /// A fake v1 memory directory: the ordering of memory and memsw.
    #[test]
    fn memory_and_memsw_order() {
        let d = std::env::temp_dir().join(format!("rpc-v1-mem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), "100").unwrap();
        std::fs::write(d.join("memory.memsw.limit_in_bytes"), "200").unwrap();
        // A tiny kernel model would be needed to see the order in the
        // files; instead check the final values and that both were written.
        let dirs = vec![d.clone()];
        let l = Layout::new(&dirs);
        let mut tx = Tx::new();
        memory(l.v1[0], &Res { mem_limit: Some(300), mem_swap: Some(400), ..Default::default() }, &mut tx).unwrap();
        tx.commit();
        assert_eq!(crate::linux::kfile::read(d.join("memory.limit_in_bytes")).unwrap(), "300");
        assert_eq!(crate::linux::kfile::read(d.join("memory.memsw.limit_in_bytes")).unwrap(), "400");
        // rollback restores both
        let mut tx = Tx::new();
        memory(l.v1[0], &Res { mem_limit: Some(50), mem_swap: Some(60), ..Default::default() }, &mut tx).unwrap();
        tx.rollback();
        assert_eq!(crate::linux::kfile::read(d.join("memory.limit_in_bytes")).unwrap(), "300");
        assert_eq!(crate::linux::kfile::read(d.join("memory.memsw.limit_in_bytes")).unwrap(), "400");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

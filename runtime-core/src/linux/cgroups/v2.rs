//! cgroup v2 writers: the unified directory, with runc's v1 -> v2
//! conversions (cpu.shares -> cpu.weight, blkio weight -> io.weight,
//! memory+swap -> swap alone). Handles every controller that has no v1
//! directory; a resource that neither version can take is an error.

use std::path::{Path, PathBuf};

use super::resources::{blkio_to_io_weight, cpu_idle, host_hugepage_sizes, hugepage_file_name, shares_to_weight, Layout, Res, Tx};
use super::v1;
use crate::error::{Error, Result};
use crate::log;

/// Controllers a v2 container gets enabled on its way down the tree.
pub const CONTROLLERS: [&str; 8] = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"];

fn unavailable(what: &str, ctrl: &str) -> Error {
    Error::Usage(format!(
        "linux.resources.{what}: the {ctrl} controller is not available on this host (not mounted on v1, not enabled on the cgroup2 tree)"
    ))
}

fn words(p: &Path) -> Vec<String> {
    crate::linux::kfile::read(p).map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// The cgroup2 ancestors of `dir` (closest last), up to the mount root.
fn ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![];
    let mut cur = dir.parent();
    while let Some(p) = cur {
        if !p.join("cgroup.controllers").exists() {
            break;
        }
        v.push(p.to_path_buf());
        cur = p.parent();
    }
    v.reverse();
    v
}

/// Enable `ctrl` in `cgroup.subtree_control` of every ancestor of `dir`
/// that lacks it, so `dir` gets the controller's files.
pub fn enable_controller(dir: &Path, ctrl: &str) -> Result<()> {
    for a in ancestors(dir) {
        if !words(&a.join("cgroup.controllers")).iter().any(|c| c == ctrl) {
            return Err(Error::Cgroup { path: a, msg: format!("the {ctrl} controller is not available here") });
        }
        if words(&a.join("cgroup.subtree_control")).iter().any(|c| c == ctrl) {
            continue;
        }
        let f = a.join("cgroup.subtree_control");
        std::fs::write(&f, format!("+{ctrl}")).map_err(|e| Error::Cgroup { path: f, msg: format!("enabling {ctrl}: {e}") })?;
    }
    Ok(())
}

/// Enable every controller the parent offers, in `parent`'s subtree_control
/// (pure v2: a new container directory gets all of them, as runc does).
pub fn enable_all_in(parent: &Path) {
    let have = words(&parent.join("cgroup.controllers"));
    let on = words(&parent.join("cgroup.subtree_control"));
    let want: Vec<String> = have.iter().filter(|c| CONTROLLERS.contains(&c.as_str()) && !on.contains(c)).map(|c| format!("+{c}")).collect();
    if want.is_empty() {
        return;
    }
    let f = parent.join("cgroup.subtree_control");
    if std::fs::write(&f, want.join(" ")).is_err() {
        // One at a time: one busy controller must not stop the others.
        for w in &want {
            if let Err(e) = std::fs::write(&f, w) {
                log::warn(&format!("{}: enabling {w}: {e}", f.display()));
            }
        }
    }
}

fn num(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// "max" -> -1
fn read_limit(d: &Path, f: &str) -> Option<i64> {
    let s = crate::linux::kfile::read(d.join(f)).ok()?;
    let s = s.trim();
    if s == "max" {
        Some(-1)
    } else {
        s.parse().ok()
    }
}

/// runc's memory.swap.max: the spec's swap is memory+swap, v2's is swap.
pub fn swap_value(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(Error::Usage("linux.resources.memory.swap: cannot set a swap limit without a memory limit".into()));
    }
    if swap < memory {
        return Err(Error::Usage(format!("linux.resources.memory.swap: {swap} is below the memory limit {memory}")));
    }
    Ok(swap - memory)
}

pub fn apply(l: &Layout, r: &Res, tx: &mut Tx) -> Result<()> {
    if r.has_memory() && v1::memory_dir(l).is_none() {
        let d = l.v2_with("memory.max").ok_or_else(|| unavailable("memory", "memory"))?;
        memory(d, r, tx)?;
    }
    if r.has_cpu() && v1::cpu_dir(l).is_none() {
        let d = l.v2_with("cpu.max").or_else(|| l.v2_with("cpu.weight")).ok_or_else(|| unavailable("cpu", "cpu"))?;
        cpu(d, r, tx)?;
    }
    if (r.cpus.is_some() || r.mems.is_some()) && v1::cpuset_dir(l).is_none() {
        let d = l.v2_with("cpuset.cpus").ok_or_else(|| unavailable("cpu.cpus", "cpuset"))?;
        if let Some(c) = &r.cpus {
            tx.write(d, "cpuset.cpus", c)?;
        }
        if let Some(m) = &r.mems {
            tx.write(d, "cpuset.mems", m)?;
        }
    }
    if let Some(p) = r.pids_limit {
        if v1::pids_dir(l).is_none() {
            let d = l.v2_with("pids.max").ok_or_else(|| unavailable("pids", "pids"))?;
            tx.write(d, "pids.max", &num(p))?;
        }
    }
    if r.has_blkio() && v1::blkio_dir(l).is_none() {
        let d =
            l.v2.filter(|d| ["io.max", "io.weight", "io.bfq.weight"].iter().any(|f| d.join(f).exists()))
                .ok_or_else(|| unavailable("blockIO", "io"))?;
        io(d, r, tx)?;
    }
    if !r.hugepages.is_empty() && v1::hugetlb_dir(l).is_none() {
        let d = l.v2.ok_or_else(|| unavailable("hugepageLimits", "hugetlb"))?;
        if !std::fs::read_dir(d).map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with("hugetlb."))).unwrap_or(false) {
            // Hybrid hosts keep hugetlb on the unified tree, off by default.
            enable_controller(d, "hugetlb").map_err(|e| Error::Usage(format!("linux.resources.hugepageLimits: {e}")))?;
        }
        for (size, limit) in &r.hugepages {
            let name = hugepage_file_name(size);
            let f = format!("hugetlb.{name}.max");
            if !d.join(&f).exists() {
                return Err(Error::Usage(format!(
                    "linux.resources.hugepageLimits: page size {size} is not supported by this host (sizes: {})",
                    host_hugepage_sizes().join(", ")
                )));
            }
            tx.write(d, &f, &num(*limit))?;
            let rsvd = format!("hugetlb.{name}.rsvd.max");
            if d.join(&rsvd).exists() {
                tx.write(d, &rsvd, &num(*limit))?;
            }
        }
    }
    let net = r.net_class_id.is_some() || !r.net_priorities.is_empty();
    if net && (r.net_class_id.is_some() && v1::net_cls_dir(l).is_none() || !r.net_priorities.is_empty() && v1::net_prio_dir(l).is_none()) {
        if l.pure_v2() {
            log::warn("linux.resources.network ignored: cgroup v2 has no net_cls/net_prio (use eBPF or nftables)");
        } else {
            let ctrl = if r.net_class_id.is_some() && v1::net_cls_dir(l).is_none() { "net_cls" } else { "net_prio" };
            return Err(unavailable("network", ctrl));
        }
    }
    if !r.rdma.is_empty() && v1::rdma_dir(l).is_none() {
        let d = l.v2_with("rdma.max").ok_or_else(|| unavailable("rdma", "rdma"))?;
        for (dev, h, o) in &r.rdma {
            tx.write(d, "rdma.max", &v1::rdma_line(dev, *h, *o))?;
        }
    }
    if !r.unified.is_empty() {
        let d = l.v2.ok_or_else(|| Error::Usage("linux.resources.unified: this host has no cgroup v2 hierarchy".into()))?;
        for (k, v) in &r.unified {
            if !d.join(k).exists() {
                let ctrl = k.split('.').next().unwrap_or("");
                let offered = ancestors(d).first().map(|root| words(&root.join("cgroup.controllers"))).unwrap_or_default();
                if offered.iter().any(|c| c == ctrl) {
                    enable_controller(d, ctrl).map_err(|e| Error::Usage(format!("linux.resources.unified.{k}: {e}")))?;
                }
                if !d.join(k).exists() {
                    return Err(Error::Usage(format!(
                        "linux.resources.unified.{k}: no such cgroup v2 file (controller {ctrl:?} not available)"
                    )));
                }
            }
            tx.write(d, k, v)?;
        }
    }
    Ok(())
}

fn memory(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    if let Some(s) = r.mem_swap.or(if r.mem_limit == Some(-1) { Some(0) } else { None }) {
        let mem = r.mem_limit.or_else(|| read_limit(d, "memory.max")).unwrap_or(-1);
        let sw = swap_value(s, mem)?;
        if sw != 0 || s != 0 {
            if d.join("memory.swap.max").exists() {
                tx.write(d, "memory.swap.max", &num(sw))?;
            } else if sw > 0 {
                return Err(Error::Usage("linux.resources.memory.swap: this kernel has no swap accounting (memory.swap.max)".into()));
            }
        }
    }
    if let Some(m) = r.mem_limit {
        tx.write(d, "memory.max", &num(m))?;
    }
    if let Some(v) = r.mem_reservation {
        tx.write(d, "memory.low", &num(v))?;
    }
    if r.mem_kernel.is_some() || r.mem_kernel_tcp.is_some() {
        log::warn("linux.resources.memory.kernel/kernelTCP ignored: cgroup v2 accounts kernel memory in memory.max");
    }
    if r.swappiness.is_some() {
        log::warn("linux.resources.memory.swappiness ignored on cgroup v2");
    }
    if r.disable_oom_killer == Some(true) {
        log::warn("linux.resources.memory.disableOOMKiller ignored on cgroup v2");
    }
    Ok(())
}

fn cpu(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    if let Some(s) = r.cpu_shares {
        tx.write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if r.cpu_quota.is_some() || r.cpu_period.is_some() {
        // Keep what is not given.
        let cur = crate::linux::kfile::read(d.join("cpu.max")).unwrap_or_default();
        let mut it = cur.split_whitespace();
        let (cq, cp) = (it.next().unwrap_or("max").to_string(), it.next().unwrap_or("100000").to_string());
        let q = match r.cpu_quota {
            Some(q) => num(q),
            None => cq,
        };
        let p = r.cpu_period.map(|p| p.to_string()).unwrap_or(cp);
        tx.write(d, "cpu.max", &format!("{q} {p}"))?;
    }
    if let Some(b) = r.cpu_burst {
        if d.join("cpu.max.burst").exists() {
            tx.write(d, "cpu.max.burst", &b.to_string())?;
        } else if b != 0 {
            return Err(Error::Usage("linux.resources.cpu.burst: this kernel has no cpu.max.burst".into()));
        }
    }
    if r.cpu_rt_runtime.is_some() || r.cpu_rt_period.is_some() {
        return Err(Error::Usage("linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2".into()));
    }
    cpu_idle(d, r, tx)
}

fn io(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    let bfq = d.join("io.bfq.weight").exists();
    if let Some(w) = r.blkio_weight {
        if bfq {
            tx.write(d, "io.bfq.weight", &w.to_string())?;
        } else if d.join("io.weight").exists() {
            tx.write(d, "io.weight", &format!("default {}", blkio_to_io_weight(w)))?;
        } else {
            return Err(Error::Usage(
                "linux.resources.blockIO.weight: no io.weight or io.bfq.weight (no weight-based I/O scheduling)".into(),
            ));
        }
    }
    if r.blkio_leaf_weight.is_some() {
        log::warn("linux.resources.blockIO.leafWeight ignored: cgroup v2 has no leaf weights");
    }
    for (ma, mi, w, _) in &r.weight_devices {
        if let Some(w) = w {
            if bfq {
                tx.write(d, "io.bfq.weight", &format!("{ma}:{mi} {w}"))?;
            } else {
                tx.write(d, "io.weight", &format!("{ma}:{mi} {}", blkio_to_io_weight(*w)))?;
            }
        }
    }
    let keys = ["rbps", "wbps", "riops", "wiops"];
    for (i, list) in r.throttle.iter().enumerate() {
        for (ma, mi, rate) in list {
            let v = if *rate == 0 { "max".to_string() } else { rate.to_string() };
            tx.write(d, "io.max", &format!("{ma}:{mi} {}={v}", keys[i]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::cgroups::fake::FakeTree;
    use crate::linux::cgroups::resources;

    #[test]
    fn full_v2_path_on_a_fake_tree() {
        let t = FakeTree::new("full");
        let dirs = vec![t.dir.clone()];
        let l = Layout::new(&dirs);
        assert!(l.pure_v2());
        let r = Res {
            mem_limit: Some(64 << 20),
            mem_swap: Some(96 << 20),
            mem_reservation: Some(32 << 20),
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(200_000),
            cpu_burst: Some(10_000),
            cpu_idle: Some(1),
            cpus: Some("1".into()),
            mems: Some("0".into()),
            pids_limit: Some(42),
            blkio_weight: Some(500),
            throttle: [vec![(254, 0, 1048576)], vec![], vec![], vec![(254, 0, 100)]],
            hugepages: vec![("2MB".into(), 4 << 20)],
            unified: vec![("memory.low".into(), "12345".into())],
            ..Default::default()
        };
        resources::set(&l, &r).unwrap();
        assert_eq!(t.read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(t.read("memory.swap.max"), (32u64 << 20).to_string());
        // unified is written after the typed fields and wins
        assert_eq!(t.read("memory.low"), "12345");
        assert_eq!(t.read("cpu.weight"), "39");
        assert_eq!(t.read("cpu.max"), "50000 200000");
        assert_eq!(t.read("cpu.max.burst"), "10000");
        assert_eq!(t.read("cpu.idle"), "1");
        assert_eq!(t.read("cpuset.cpus"), "1");
        assert_eq!(t.read("cpuset.mems"), "0");
        assert_eq!(t.read("pids.max"), "42");
        assert_eq!(t.read("io.weight"), "default 4950");
        // one line a write: the last one stays in the plain file
        assert_eq!(t.read("io.max"), "254:0 wiops=100");
        assert_eq!(t.read("hugetlb.2MB.max"), (4u64 << 20).to_string());

        // update: only the period; the quota is kept
        resources::update(&dirs, &Res { cpu_period: Some(100_000), ..Default::default() }).unwrap();
        assert_eq!(t.read("cpu.max"), "50000 100000");
        // update: unlimited memory also lifts swap
        resources::update(&dirs, &Res { mem_limit: Some(-1), ..Default::default() }).unwrap();
        assert_eq!(t.read("memory.max"), "max");
        assert_eq!(t.read("memory.swap.max"), "max");
        // quota -1 is max
        resources::update(&dirs, &Res { cpu_quota: Some(-1), ..Default::default() }).unwrap();
        assert_eq!(t.read("cpu.max"), "max 100000");
        // pids unlimited
        resources::update(&dirs, &Res { pids_limit: Some(-1), ..Default::default() }).unwrap();
        assert_eq!(t.read("pids.max"), "max");
    }

    #[test]
    fn v2_errors_change_nothing() {
        let t = FakeTree::new("errs");
        let dirs = vec![t.dir.clone()];
        resources::update(&dirs, &Res { mem_limit: Some(100 << 20), pids_limit: Some(10), ..Default::default() }).unwrap();
        // realtime is refused on v2 after memory and pids were written:
        // the writes before it are rolled back
        let bad = Res { mem_limit: Some(1 << 20), pids_limit: Some(5), cpu_rt_runtime: Some(1000), ..Default::default() };
        assert!(resources::update(&dirs, &bad).is_err());
        assert_eq!(t.read("memory.max"), (100u64 << 20).to_string());
        assert_eq!(t.read("pids.max"), "10");
        // swap without a memory limit
        std::fs::write(t.dir.join("memory.max"), "max\n").unwrap();
        assert!(resources::update(&dirs, &Res { mem_swap: Some(1 << 20), ..Default::default() }).is_err());
        // an unknown page size, a unified key that does not exist
        assert!(resources::update(&dirs, &Res { hugepages: vec![("64KB".into(), 1)], ..Default::default() }).is_err());
        assert!(resources::update(&dirs, &Res { unified: vec![("nope.max".into(), "1".into())], ..Default::default() }).is_err());
        // net_cls on pure v2 is only a warning
        resources::update(&dirs, &Res { net_class_id: Some(7), ..Default::default() }).unwrap();
    }

    #[test]
    fn controllers_enabled_down_the_tree() {
        let t = FakeTree::new("enable");
        enable_controller(&t.dir, "hugetlb").unwrap();
        for a in [t.root.clone(), t.root.join("rpc")] {
            assert_eq!(crate::linux::kfile::read(a.join("cgroup.subtree_control")).unwrap(), "+hugetlb");
        }
        assert!(enable_controller(&t.dir, "nope").is_err());
        enable_all_in(&t.root);
        let s = crate::linux::kfile::read(t.root.join("cgroup.subtree_control")).unwrap();
        assert!(s.contains("+memory") && s.contains("+pids") && s.contains("+cpu"), "{s}");
    }

    #[test]
    fn swap_conversion_matches_runc() {
        assert_eq!(swap_value(0, -1).unwrap(), -1);
        assert_eq!(swap_value(-1, 100).unwrap(), -1);
        assert_eq!(swap_value(300, 100).unwrap(), 200);
        assert!(swap_value(50, 100).is_err());
        assert!(swap_value(50, -1).is_err());
    }
}

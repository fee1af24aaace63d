//! cgroups: the host's hierarchies (v1, v2 or hybrid) as a controller ->
//! hierarchy map, the container's directories in each, joining, freezing,
//! killing and removal. Written with direct cgroupfs writes: they are the
//! fastest path and let us order writes where the kernel cares.
//!
//! `resources` validates and writes `linux.resources` (through `v1` and
//! `v2`), `devices_bpf` is the v2 device filter, `stats` reads usage into
//! the one stats model (`crate::stats`), `oom` notices OOM kills.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::linux::mountinfo::unescape;

pub mod claim;
pub mod devices_bpf;
#[cfg(test)]
pub(crate) mod fake;
pub mod manager;
pub mod oom;
pub mod resources;
pub mod stats;
pub mod v1;
pub mod v2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A v1 hierarchy with its controllers (`name=systemd` for named ones).
    V1(Vec<String>),
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The cgroup path the mount's root corresponds to (mountinfo field 4).
    pub root: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    V1,
    V2,
    Hybrid,
}

#[derive(Debug, Clone, Default)]
pub struct Hierarchies {
    pub list: Vec<Hierarchy>,
}

impl Hierarchies {
    /// Read the cgroup mounts of this process's mount namespace.
    pub fn probe() -> Hierarchies {
        let info = crate::linux::kfile::read("/proc/self/mountinfo").unwrap_or_default();
        Self::parse(&info)
    }

    /// `probe` once per process. A create probes before it forks, so the
    /// container's init (a fork) has the answer without reading the mount
    /// table again; its new mount namespace starts as a copy of ours.
    pub fn cached() -> &'static Hierarchies {
        static CACHE: std::sync::OnceLock<Hierarchies> = std::sync::OnceLock::new();
        CACHE.get_or_init(Hierarchies::probe)
    }

    pub fn parse(mountinfo: &str) -> Hierarchies {
        let mut list: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            // Most lines are other filesystems: no splitting for those.
            if !post.starts_with("cgroup") {
                continue;
            }
            let pf: Vec<&str> = pre.split(' ').collect();
            let qf: Vec<&str> = post.split(' ').collect();
            if pf.len() < 5 || qf.len() < 3 {
                continue;
            }
            let mp = PathBuf::from(&*unescape(pf[4]));
            let root = PathBuf::from(&*unescape(pf[3]));
            let kind = match qf[0] {
                "cgroup2" => Kind::V2,
                "cgroup" => {
                    let mut c: Vec<String> = qf[2]
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                                    | "relatime"
                                    | "noatime"
                                    | "clone_children"
                                    | "xattr"
                                    | "noprefix"
                            ) && !o.starts_with("release_agent=")
                        })
                        .map(str::to_string)
                        .collect();
                    c.sort();
                    Kind::V1(c)
                }
                _ => continue,
            };
            // One entry per hierarchy: keep the first mount of each.
            if list.iter().any(|h| h.kind == kind) {
                continue;
            }
            list.push(Hierarchy { mountpoint: mp, root, kind });
        }
        Hierarchies { list }
    }

    pub fn mode(&self) -> Mode {
        let v1 = self.list.iter().any(|h| matches!(h.kind, Kind::V1(_)));
        let v2 = self.list.iter().any(|h| h.kind == Kind::V2);
        match (v1, v2) {
            (true, true) => Mode::Hybrid,
            (false, true) => Mode::V2,
            _ => Mode::V1,
        }
    }

    /// The hierarchy a controller lives on (v1 first, else the v2 tree if
    /// it has the controller enabled).
    pub fn find(&self, controller: &str) -> Option<&Hierarchy> {
        self.list.iter().find(|h| matches!(&h.kind, Kind::V1(c) if c.iter().any(|x| x == controller))).or_else(|| {
            self.list.iter().find(|h| {
                h.kind == Kind::V2
                    && crate::linux::kfile::read(h.mountpoint.join("cgroup.controllers"))
                        .map(|s| s.split_whitespace().any(|c| c == controller))
                        .unwrap_or(false)
            })
        })
    }
}

/// This process's cgroup path in a hierarchy, from /proc/self/cgroup.
fn own_path(h: &Hierarchy, proc_cgroup: &str) -> PathBuf {
    for line in proc_cgroup.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        let hit = match &h.kind {
            Kind::V2 => ctrls.is_empty(),
            Kind::V1(c) => {
                let mut mine: Vec<&str> = ctrls.split(',').collect();
                mine.sort();
                !ctrls.is_empty() && mine == c.iter().map(String::as_str).collect::<Vec<_>>()
            }
        };
        if hit {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// Validate `linux.cgroupsPath`: no `..` components.
pub fn validate_path(p: &Path) -> Result<()> {
    if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::Cgroup { path: p.to_path_buf(), msg: "linux.cgroupsPath must not contain \"..\"".into() });
    }
    Ok(())
}

/// The container's cgroup directory in every hierarchy. `cgroups_path` has
/// runc's meaning: absolute is from the hierarchy root, relative is below
/// the runtime's own cgroup; unset is the id, relative.
pub fn container_dirs(hs: &Hierarchies, cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
    let rel = cgroups_path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(id));
    validate_path(&rel)?;
    if rel.to_str().is_some_and(|s| s.contains(':') && !s.starts_with('/')) {
        return Err(Error::Unsupported(format!(
            "systemd cgroup path {rel:?} (slice:prefix:name; use --systemd-cgroup, not supported yet)"
        )));
    }
    let proc_cg = crate::linux::kfile::read("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for h in &hs.list {
        let full = if rel.is_absolute() { rel.clone() } else { own_path(h, &proc_cg).join(&rel) };
        // Map the cgroup path to the mount: strip the mount's root.
        let inner = full.strip_prefix(&h.root).unwrap_or(&full);
        let inner = inner.strip_prefix("/").unwrap_or(inner);
        if inner.as_os_str().is_empty() {
            return Err(Error::Cgroup { path: full.clone(), msg: "refusing to use the root cgroup".into() });
        }
        out.push(h.mountpoint.join(inner));
    }
    Ok(out)
}

fn write(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).map_err(|e| Error::Cgroup { path: p.to_path_buf(), msg: format!("writing {v:?}: {e}") })
}

/// Refuse a cgroup that already holds processes or is frozen (runc's
/// rule: a container's cgroup is its own). An existing empty one is joined.
/// Runs before the paths are recorded, so a refusal touches nothing.
pub fn check_reusable(dirs: &[PathBuf]) -> Result<()> {
    // No stat first: a missing directory simply lists no processes.
    let mut any = false;
    for d in dirs {
        if std::fs::read_dir(d).is_err() {
            continue;
        }
        any = true;
        let n = pids_recursive(d).len();
        if n > 0 {
            return Err(Error::Cgroup { path: d.clone(), msg: format!("container's cgroup is not empty: {n} process(es) found") });
        }
    }
    if any && is_frozen(dirs) {
        return Err(Error::Container("container's cgroup unexpectedly frozen".into()));
    }
    Ok(())
}

/// mkdir the directories; new cpuset cgroups get their parent's cpus/mems.
/// On a pure v2 host each new level gets the controllers its parent offers.
pub fn create(dirs: &[PathBuf]) -> Result<()> {
    let pure_v2 = pure_v2(dirs);
    for d in dirs {
        create_one(d, pure_v2)?;
    }
    Ok(())
}

fn pure_v2(dirs: &[PathBuf]) -> bool {
    dirs.len() == 1 && Hierarchies::cached().mode() == Mode::V2
}

/// `create` for one of the container's directories; true when this call
/// made it (and no other: mkdir says so to one caller only).
fn create_one(d: &Path, pure_v2: bool) -> Result<bool> {
    if pure_v2 {
        // Each new level needs the controllers enabled above it first.
        if d.exists() {
            return Ok(false);
        }
    } else {
        // mkdir first (one system call in the common case); walk up
        // only when the parent is missing.
        match std::fs::create_dir(d) {
            Ok(()) => {
                init_cpuset(d)?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Cgroup { path: d.to_path_buf(), msg: format!("mkdir: {e}") }),
        }
    }
    // Create level by level so cpuset children are initialised.
    let mut missing = vec![];
    let mut cur = d;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    let mut made = false;
    for m in missing.into_iter().rev() {
        if pure_v2 {
            if let Some(p) = m.parent().filter(|p| p.join("cgroup.controllers").exists()) {
                v2::enable_all_in(p);
            }
        }
        match std::fs::create_dir(&m) {
            Ok(()) => made = m == d,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::Cgroup { path: m, msg: format!("mkdir: {e}") }),
        }
        init_cpuset(&m)?;
    }
    Ok(made)
}

/// A new v1 cpuset cgroup starts with empty cpus and mems, and no task
/// can join it until they are set: copy the parent's. A parent that is
/// still empty (made by a concurrent create that has not filled it yet)
/// is filled first, so parallel creates under one new parent cannot race.
fn init_cpuset(d: &Path) -> Result<()> {
    let empty = |p: &Path| crate::linux::kfile::read(p).map(|s| s.trim().is_empty()).unwrap_or(false);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = d.join(f);
        // Not a cpuset directory (no such file), or already filled.
        if !empty(&mine) {
            continue;
        }
        let Some(parent) = d.parent() else { continue };
        if empty(&parent.join(f)) {
            init_cpuset(parent)?;
        }
        let v = crate::linux::kfile::read(parent.join(f)).unwrap_or_default();
        write(&mine, v.trim())?;
    }
    Ok(())
}

/// Move `pid` (0 = the caller) into every directory.
pub fn join(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        write(&d.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

/// Pids in a cgroup and its descendants (nested cgroups the container made).
pub fn pids_recursive(d: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = crate::linux::kfile::read(d.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).filter(|p: &i32| *p > 0).collect())
        .unwrap_or_default();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.extend(pids_recursive(&e.path()));
            }
        }
    }
    v
}

/// Pids in the container's cgroups, sorted, from every hierarchy (a
/// process moved out of one hierarchy by the container is still found).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    let mut v: Vec<i32> = dirs.iter().flat_map(|d| pids_recursive(d)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The v1 freezer directory, or else the v2 one (callers prefer v1).
fn freezer_dirs(dirs: &[PathBuf]) -> (Option<PathBuf>, Option<PathBuf>) {
    let v1 = dirs.iter().find(|d| d.join("freezer.state").exists()).cloned();
    let v2 = if v1.is_none() { dirs.iter().find(|d| d.join("cgroup.freeze").exists()).cloned() } else { None };
    (v1, v2)
}

pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    let (v1, v2) = freezer_dirs(dirs);
    if let Some(d) = v1 {
        return crate::linux::kfile::read(d.join("freezer.state")).map(|s| s.trim() != "THAWED").unwrap_or(false);
    }
    if let Some(d) = v2 {
        return crate::linux::kfile::read(d.join("cgroup.freeze")).map(|s| s.trim() == "1").unwrap_or(false);
    }
    false
}

/// Freeze or thaw the container, waiting until the kernel says it is done.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let (v1, v2) = freezer_dirs(dirs);
    if let Some(d) = v1 {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        let f = d.join("freezer.state");
        for _ in 0..1000 {
            write(&f, want)?;
            if crate::linux::kfile::read(&f).map(|s| s.trim() == want).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(Error::Cgroup { path: f, msg: format!("did not reach {want}") });
    }
    if let Some(d) = v2 {
        write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        // The kernel says "frozen 1" in cgroup.events once every task stopped.
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..2000 {
            match crate::linux::kfile::read(d.join("cgroup.events")) {
                Ok(s) if s.lines().any(|l| l.trim() == want) => return Ok(()),
                Ok(s) if !s.lines().any(|l| l.starts_with("frozen ")) => return Ok(()),
                Err(_) => return Ok(()),
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        return Err(Error::Cgroup { path: d.join("cgroup.freeze"), msg: format!("did not reach \"{want}\"") });
    }
    Err(Error::Unsupported("pause/resume without a freezer cgroup".into()))
}

/// SIGKILL everything in the container's cgroups: `cgroup.kill` where the
/// kernel has it (atomic against forks), else signal each pid.
pub fn kill_all(dirs: &[PathBuf]) {
    for d in dirs {
        let k = d.join("cgroup.kill");
        if k.exists() {
            let _ = std::fs::write(&k, "1");
        }
    }
    signal_all(dirs, libc::SIGKILL);
}

/// Signal every process in the container's cgroups.
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> usize {
    let mut n = 0;
    for pid in pids(dirs) {
        // SAFETY: kill is a plain syscall.
        if unsafe { libc::kill(pid, sig) } == 0 {
            n += 1;
        }
    }
    n
}

/// Remove the directories if they are empty: one rmdir each, no listing,
/// no freezing. False if one still holds tasks or child cgroups (the
/// kernel says EBUSY): the caller kills what is left and calls `destroy`.
pub fn remove_if_empty(dirs: &[PathBuf]) -> bool {
    let mut all = true;
    for d in dirs {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => all = false,
        }
    }
    all
}

/// Remove the directories (children first), retrying while the kernel still
/// counts exiting tasks (EBUSY).
pub fn destroy(dirs: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    for d in dirs {
        if !d.exists() {
            continue;
        }
        if let Err(e) = rmdir_tree(d) {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn rmdir_tree(d: &Path) -> Result<()> {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path())?;
            }
        }
    }
    let mut nap = std::time::Duration::from_micros(100);
    for _ in 0..200 {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // Tasks still exiting: kill what is left and retry briefly.
                kill_all(&[d.to_path_buf()]);
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(Error::Cgroup { path: d.to_path_buf(), msg: format!("rmdir: {e}") }),
        }
    }
    Err(Error::Cgroup { path: d.to_path_buf(), msg: "rmdir: still busy".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 1 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
35 30 0:31 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct
";

    #[test]
    fn parses_hybrid_host() {
        let hs = Hierarchies::parse(HYBRID);
        assert_eq!(hs.mode(), Mode::Hybrid);
        assert_eq!(hs.list.len(), 5);
        assert_eq!(hs.find("memory").unwrap().mountpoint, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(hs.find("cpuacct").unwrap().mountpoint, Path::new("/sys/fs/cgroup/cpuacct"));
        assert_eq!(hs.list[1].kind, Kind::V1(vec!["name=systemd".into()]));
    }

    #[test]
    fn own_paths() {
        let hs = Hierarchies::parse(HYBRID);
        let pc = "0::/user.slice\n4:memory:/a/b\n2:name=systemd:/sd\n";
        assert_eq!(own_path(&hs.list[0], pc), Path::new("/user.slice"));
        assert_eq!(own_path(&hs.list[2], pc), Path::new("/a/b"));
        assert_eq!(own_path(&hs.list[1], pc), Path::new("/sd"));
    }

    #[test]
    fn cpuset_fills_an_empty_parent_first() {
        let root = std::env::temp_dir().join(format!("rpc-cpuset-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let leaf = root.join("a/b");
        std::fs::create_dir_all(&leaf).unwrap();
        for (d, cpus, mems) in [(root.clone(), "0-1", "0"), (root.join("a"), "", ""), (leaf.clone(), "", "")] {
            std::fs::write(d.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(d.join("cpuset.mems"), mems).unwrap();
        }
        init_cpuset(&leaf).unwrap();
        for d in [root.join("a"), leaf.clone()] {
            assert_eq!(crate::linux::kfile::read(d.join("cpuset.cpus")).unwrap(), "0-1");
            assert_eq!(crate::linux::kfile::read(d.join("cpuset.mems")).unwrap(), "0");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_dotdot() {
        let hs = Hierarchies::parse(HYBRID);
        assert!(container_dirs(&hs, Some(Path::new("/a/../../b")), "x").is_err());
        let d = container_dirs(&hs, Some(Path::new("/rpc/x")), "x").unwrap();
        assert_eq!(d[2], Path::new("/sys/fs/cgroup/memory/rpc/x"));
    }
}

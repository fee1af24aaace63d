//! Leak accounting for the reliability suite: what a runtime (or a shim)
//! could leave behind across thousands of lifecycles, measured from the
//! host. A [`Baseline`] is taken before a run and compared after it.

use std::fs;
use std::path::{Path, PathBuf};

/// What `pid` has open: "fd: target" per descriptor, sorted.
pub fn fd_targets(pid: i32) -> Vec<String> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| format!("{}: {}", e.file_name().to_string_lossy(), fs::read_link(e.path()).unwrap_or_default().display()))
        .collect();
    v.sort();
    v
}

/// Resident set size of `pid` in KiB (VmRSS), if it lives.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|n| n.parse().ok())
}

/// (pid, state letter) of every process whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let Ok(rd) = fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // comm may hold spaces and parentheses: the fields follow the last ')'
            let mut f = stat.rsplit_once(')')?.1.split_whitespace();
            let state = f.next()?.chars().next()?;
            let parent: i32 = f.next()?.parse().ok()?;
            (parent == ppid).then_some((pid, state))
        })
        .collect()
}

/// Zombies among the children of `ppid`.
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    children_of(ppid).into_iter().filter(|(_, s)| *s == 'Z').map(|(p, _)| p).collect()
}

/// Mount points (this process's mount namespace) at or below `dir`, or
/// whose source or options mention it.
pub fn mounts_mentioning(dir: &Path) -> Vec<String> {
    let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let d = dir.to_string_lossy();
    mi.lines().filter(|l| l.contains(d.as_ref())).map(str::to_string).collect()
}

/// Number of mounts in this process's mount namespace.
pub fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo").map(|m| m.lines().count()).unwrap_or(0)
}

/// Directories under /sys/fs/cgroup (every hierarchy) whose name contains
/// `needle`.
pub fn cgroup_dirs_containing(needle: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, needle: &str, depth: u32, found: &mut Vec<PathBuf>) {
        if depth > 10 {
            return;
        }
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            walk(&p, needle, depth + 1, found);
        }
    }
    let mut found = Vec::new();
    if !needle.is_empty() {
        walk(Path::new("/sys/fs/cgroup"), needle, 0, &mut found);
    }
    found
}

/// Entries of a directory (sorted names; empty if it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// What this process holds before a run: its descriptors and children.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub fds: Vec<String>,
    pub children: Vec<i32>,
}

impl Baseline {
    pub fn take() -> Baseline {
        let me = std::process::id() as i32;
        Baseline { fds: fd_targets(me), children: children_of(me).into_iter().map(|(p, _)| p).collect() }
    }

    /// What this process holds now that it did not before: descriptors
    /// (by number and target) and children (live or zombie). Empty: no leak.
    pub fn leaked(&self) -> Vec<String> {
        let me = std::process::id() as i32;
        let mut out: Vec<String> = fd_targets(me).into_iter().filter(|f| !self.fds.contains(f)).map(|f| format!("fd {f}")).collect();
        for (p, s) in children_of(me) {
            if !self.children.contains(&p) {
                out.push(format!("child {p} ({s})"));
            }
        }
        out
    }
}

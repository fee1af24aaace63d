//! Which of the container's cgroup directories is which version, and
//! which holds a given file (listed lazily, once per directory).

use std::path::{Path, PathBuf};

/// The container's directories sorted by version: the unified (cgroup2)
/// directory is the one under the cgroup2 mount (or, for a tree the mount
/// table does not know, the one with `cgroup.controllers`). A directory is
/// listed only when a file in it is asked about, and a v1 file is looked
/// for first in the hierarchy that mounts its controller, so a create
/// without resources lists one directory (devices) instead of all ten.
pub struct Layout<'a> {
    pub v1: Vec<&'a Path>,
    pub v2: Option<&'a Path>,
    all: Vec<Entry<'a>>,
}

struct Entry<'a> {
    dir: &'a Path,
    /// The v1 controllers of its hierarchy, when the mount table says.
    ctrls: Option<Vec<String>>,
    names: std::cell::OnceCell<Vec<String>>,
}

/// v1 controller names: a file named after one lives in that hierarchy.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

impl<'a> Layout<'a> {
    pub fn new(dirs: &'a [PathBuf]) -> Layout<'a> {
        let hs = crate::linux::cgroups::Hierarchies::cached();
        let mut l = Layout { v1: vec![], v2: None, all: Vec::with_capacity(dirs.len()) };
        for d in dirs {
            // The deepest mountpoint above the directory is its hierarchy.
            let h = hs.list.iter().filter(|h| d.starts_with(&h.mountpoint)).max_by_key(|h| h.mountpoint.as_os_str().len());
            let (ctrls, is_v2) = match h.map(|h| &h.kind) {
                Some(crate::linux::cgroups::Kind::V1(c)) => (Some(c.clone()), Some(false)),
                Some(crate::linux::cgroups::Kind::V2) => (None, Some(true)),
                None => (None, None),
            };
            l.all.push(Entry { dir: d.as_path(), ctrls, names: std::cell::OnceCell::new() });
            let is_v2 = is_v2.unwrap_or_else(|| l.has(d, "cgroup.controllers"));
            if is_v2 && l.v2.is_none() {
                l.v2 = Some(d.as_path());
            } else {
                l.v1.push(d.as_path());
            }
        }
        l
    }

    fn entry(&self, d: &Path) -> Option<&Entry<'a>> {
        // Byte comparison: Path's == walks components, which was slow.
        self.all.iter().find(|e| e.dir.as_os_str() == d.as_os_str())
    }

    /// The files of directory `d` (one of ours), listed on first use.
    fn names(&self, d: &Path) -> &[String] {
        let Some(e) = self.entry(d) else { return &[] };
        e.names.get_or_init(|| {
            let mut n: Vec<String> = std::fs::read_dir(e.dir)
                .map(|rd| rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
                .unwrap_or_default();
            n.sort_unstable();
            n
        })
    }

    /// Whether directory `d` (one of ours) holds `file`.
    pub fn has(&self, d: &Path, file: &str) -> bool {
        self.names(d).binary_search_by(|x| x.as_str().cmp(file)).is_ok()
    }

    /// The v1 directories that may hold files starting with `prefix`: the
    /// hierarchies mounting that controller (and trees the mount table does
    /// not know); all of them for files that belong to no controller.
    fn v1_candidates<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = &'a Path> + 's {
        let ctrl = prefix.split('.').next().unwrap_or("");
        let by_ctrl = V1_CONTROLLERS.contains(&ctrl);
        self.v1
            .iter()
            .copied()
            .filter(move |d| !by_ctrl || self.entry(d).and_then(|e| e.ctrls.as_ref()).is_none_or(|c| c.iter().any(|x| x == ctrl)))
    }

    /// Whether any v1 directory has a file starting with `prefix`.
    pub fn v1_with_prefix(&self, prefix: &str) -> Option<&'a Path> {
        self.v1_candidates(prefix).find(|d| self.names(d).iter().any(|x| x.starts_with(prefix)))
    }

    /// The v1 directory holding `file`.
    pub fn v1_with(&self, file: &str) -> Option<&'a Path> {
        self.v1_candidates(file).find(|d| self.has(d, file))
    }

    /// The unified directory, if it holds `file`.
    pub fn v2_with(&self, file: &str) -> Option<&'a Path> {
        self.v2.filter(|d| self.has(d, file))
    }

    /// Pure v2: no v1 directory at all.
    pub fn pure_v2(&self) -> bool {
        self.v1.is_empty() && self.v2.is_some()
    }
}

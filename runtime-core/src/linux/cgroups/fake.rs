//! Test support: a temp dir laid out like a cgroup2 mount (the full v2
//! path is tested on it, since this host is hybrid).

use std::path::PathBuf;

/// A temp dir laid out like a cgroup2 mount with the container's
/// directory below it; the files are plain files the writers fill.
pub struct FakeTree {
    pub root: PathBuf,
    pub dir: PathBuf,
}

impl FakeTree {
    pub fn new(tag: &str) -> FakeTree {
        let root = std::env::temp_dir().join(format!("rpc-fake-cg2-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("rpc").join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        for d in [root.clone(), root.join("rpc")] {
            std::fs::write(d.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n").unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
            std::fs::write(d.join("cpuset.cpus.effective"), "0-1\n").unwrap();
        }
        let files = [
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n"),
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0\n"),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
            ("memory.max", "max\n"),
            ("memory.low", "0\n"),
            ("memory.swap.max", "max\n"),
            ("memory.current", "1048576\n"),
            ("memory.swap.current", "0\n"),
            ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
            ("memory.stat", "anon 4096\nfile 8192\nkernel_stack 0\npgfault 10\n"),
            ("cpu.weight", "100\n"),
            ("cpu.max", "max 100000\n"),
            ("cpu.max.burst", "0\n"),
            ("cpu.idle", "0\n"),
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n"),
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("pids.max", "max\n"),
            ("pids.current", "3\n"),
            ("io.max", ""),
            ("io.weight", "default 100\n"),
            ("io.stat", "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.events", "max 0\n"),
        ];
        for (f, v) in files {
            std::fs::write(dir.join(f), v).unwrap();
        }
        FakeTree { root, dir }
    }

    pub fn read(&self, f: &str) -> String {
        std::fs::read_to_string(self.dir.join(f)).unwrap().trim().to_string()
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

//! Writes to cgroup files with an undo log: a failed `create` or
//! `update` puts back what was there.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A recorded write, for rollback.
struct Undo {
    path: PathBuf,
    old: String,
}

/// Writes with an undo log.
#[derive(Default)]
pub struct Tx {
    log: Vec<Undo>,
}

impl Tx {
    pub fn new() -> Tx {
        Tx::default()
    }

    /// Write `v` to `dir/file`; the error names the file and value.
    pub fn write(&mut self, dir: &Path, file: &str, v: &str) -> Result<()> {
        let p = dir.join(file);
        let old = crate::linux::kfile::read(&p).ok();
        std::fs::write(&p, v).map_err(|e| Error::Cgroup { path: p.clone(), msg: format!("writing {v:?}: {}", explain(file, &e)) })?;
        if let Some(old) = old {
            self.log.push(Undo { path: p, old });
        }
        Ok(())
    }

    /// Write and record, leaving the error to the caller (for optional
    /// files the kernel may refuse).
    pub fn try_write(&mut self, dir: &Path, file: &str, v: &str) -> std::io::Result<()> {
        let p = dir.join(file);
        let old = crate::linux::kfile::read(&p).ok();
        std::fs::write(&p, v)?;
        if let Some(old) = old {
            self.log.push(Undo { path: p, old });
        }
        Ok(())
    }

    /// Put back what was there, newest first. Values that depend on each
    /// other (memory and memsw) may need a second pass.
    pub fn rollback(mut self) {
        let mut pending: Vec<Undo> = self.log.drain(..).rev().collect();
        for _ in 0..2 {
            let mut failed = vec![];
            for u in pending {
                if !restore(&u) {
                    failed.push(u);
                }
            }
            pending = failed;
            if pending.is_empty() {
                return;
            }
        }
        for u in pending {
            crate::log::warn(&format!("could not restore {} to {:?}", u.path.display(), u.old.trim()));
        }
    }

    /// Keep the writes.
    pub fn commit(mut self) {
        self.log.clear();
    }
}

fn restore(u: &Undo) -> bool {
    let name = u.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let old = u.old.trim();
    // Per-device files list one device a line and take one line a write.
    let per_line = name.ends_with("_device") || name == "io.max" || name == "rdma.max" || name == "io.weight" || name == "io.bfq.weight";
    if per_line {
        return old.lines().all(|l| std::fs::write(&u.path, l).is_ok());
    }
    // v1 reports "max" limits as a huge number: write them back as -1.
    let v = if old == "9223372036854771712" && name.ends_with("limit_in_bytes") { "-1" } else { old };
    std::fs::write(&u.path, v).is_ok()
}

/// Turn the kernel's terse errno into what the user did wrong.
fn explain(file: &str, e: &std::io::Error) -> String {
    match (file, e.raw_os_error()) {
        ("memory.limit_in_bytes", Some(libc::EBUSY)) | ("memory.max", Some(libc::EBUSY)) => {
            format!("{e} (the container already uses more memory than the new limit)")
        }
        ("memory.limit_in_bytes", Some(libc::EINVAL)) => {
            format!("{e} (the memory limit must not exceed the memory+swap limit)")
        }
        ("memory.memsw.limit_in_bytes", Some(libc::EINVAL)) => {
            format!("{e} (the memory+swap limit must not be below the memory limit)")
        }
        (f, Some(libc::EINVAL)) if f.starts_with("cpuset.") => {
            format!("{e} (not a subset of the parent's cpuset)")
        }
        (_, Some(libc::ENOENT)) => {
            format!("{e} (the kernel has no such file: controller not enabled or not supported)")
        }
        _ => e.to_string(),
    }
}

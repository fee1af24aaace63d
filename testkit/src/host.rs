//! What a runtime left on the host: processes and mounts.

use std::fs;
use std::path::Path;

pub use runtime_core::linux::mountinfo::unescape;

/// Live processes (not this one, not zombies) whose command line, NULs
/// read as spaces, satisfies `f`.
pub fn processes_matching(f: impl Fn(&str) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            // a zombie has an empty cmdline
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmd.is_empty() && f(&String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

/// Is `pid` a live process (not a zombie)?
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Detach-unmount every mount at or below `dir`, deepest first, so that
/// removing `dir` cannot walk into a bind-mounted host directory a broken
/// runtime leaked into our namespace.
pub fn unmount_under(dir: &Path) {
    let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| unescape(p).into_owned())
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_matched_by_others_only() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(i32::MAX));
        let me = std::process::id() as i32;
        assert!(!processes_matching(|_| true).contains(&me));
        assert!(processes_matching(|_| true).contains(&1) || !Path::new("/proc/1/cmdline").exists());
    }
}

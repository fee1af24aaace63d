//! What the running kernel offers, as both the validation of a bundle
//! and the Linux layer ask it: the last capability, the id map size, the
//! LSMs. A leaf: it depends on no other module of ours, so `bundle` (below
//! `linux`) can ask without depending on `linux`.

/// Highest capability number the running kernel knows (found once). Asked
/// of the kernel itself, PR_CAPBSET_READ failing with EINVAL past the last
/// one, not read from /proc/sys/kernel/cap_last_cap: init may first ask
/// after pivot_root, where that file is the container's and a mount over
/// it could say "5" and keep CAP_SYS_ADMIN in the bounding set
/// (CVE-2025-52881 class).
pub fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        // SAFETY: a read-only prctl.
        let known = |n: u8| unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n), 0, 0, 0) } >= 0;
        if !known(0) {
            return 40;
        }
        // Binary search of the last known in 0..=63.
        let (mut lo, mut hi) = (0u8, 64u8);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if known(mid) {
                lo = mid
            } else {
                hi = mid
            }
        }
        lo
    })
}

/// The most lines a uid_map or gid_map takes: 340 since 4.15, 5 before.
pub fn max_map_lines() -> usize {
    // SAFETY: utsname is plain data; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return 340;
    }
    // SAFETY: uname NUL-terminates release.
    let rel = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut it = rel.split(|c: char| !c.is_ascii_digit()).map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    if (major, minor) < (4, 15) {
        5
    } else {
        340
    }
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").map(|s| s.trim() == "Y").unwrap_or(false)
}

pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cap_is_the_kernels() {
        let want: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
        assert_eq!(last_cap(), want);
    }
}

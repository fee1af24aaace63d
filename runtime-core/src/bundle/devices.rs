//! `linux.devices` entries as the config may give them: a path under /dev
//! (cleaned as runc cleans it) and numbers the kernel's dev_t holds.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxDevice;

/// The largest major and minor the kernel's dev_t holds (mknod(2) takes a
/// 32-bit dev: 12 bits of major, 20 of minor). A bigger number would be
/// truncated into another device.
pub const MAX_MAJOR: i64 = (1 << 12) - 1;
pub const MAX_MINOR: i64 = (1 << 20) - 1;

/// `p` cleaned lexically, as Go's filepath.Clean (runc cleans device
/// paths): `.` and empty components dropped, `..` taking off the one
/// before (never above `/`).
pub fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The device's path, cleaned, when it names a node under /dev (what
/// validation requires: `/dev/../etc/x` would be made on the rootfs).
pub fn dev_path(p: &Path) -> Option<PathBuf> {
    let c = clean(p);
    (p.is_absolute() && c.starts_with("/dev") && c != Path::new("/dev")).then_some(c)
}

/// Check a linux.devices entry's path and numbers; the error names the
/// field (`linux.devices[i].major`) and what was wrong.
pub fn check(d: &LinuxDevice) -> std::result::Result<(), (&'static str, String)> {
    if dev_path(d.path()).is_none() {
        return Err(("path", format!("{:?} must be an absolute path under /dev", d.path())));
    }
    if !(0..=MAX_MAJOR).contains(&d.major()) {
        return Err(("major", format!("{} is out of range (0 to {MAX_MAJOR})", d.major())));
    }
    if !(0..=MAX_MINOR).contains(&d.minor()) {
        return Err(("minor", format!("{} is out of range (0 to {MAX_MINOR})", d.minor())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_kept_under_dev() {
        assert_eq!(clean(Path::new("/dev/../etc/x")), Path::new("/etc/x"));
        assert_eq!(clean(Path::new("/dev//a/./b/../c")), Path::new("/dev/a/c"));
        assert_eq!(clean(Path::new("/../../dev/x")), Path::new("/dev/x"));
        assert_eq!(dev_path(Path::new("/dev/a/../b")).as_deref(), Some(Path::new("/dev/b")));
        for bad in ["/dev/../etc/x", "/dev/..", "/dev", "/dev/.", "dev/x", "/devx/y", "/dev/a/../../etc"] {
            assert!(dev_path(Path::new(bad)).is_none(), "{bad}");
        }
    }
}

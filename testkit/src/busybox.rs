//! A rootfs made of busybox-static: the binary and one symlink per applet.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's busybox-static installs it.
pub const PATHS: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// A busybox binary and the list of its applets.
#[derive(Debug, Clone)]
pub struct Busybox {
    pub binary: PathBuf,
    pub applets: Vec<String>,
    /// The binary is a private copy: rootfs can hard-link it instead of
    /// copying it (never the host's own binary, which a container with a
    /// writable rootfs could then change).
    linkable: bool,
}

impl Busybox {
    /// The host's busybox-static.
    pub fn find() -> io::Result<Busybox> {
        let p =
            PATHS.iter().map(Path::new).find(|p| p.is_file()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "busybox-static is not installed (apt-get install busybox-static)")
            })?;
        Busybox::at(p)
    }

    /// The busybox at `binary`, asked for its applets.
    pub fn at(binary: &Path) -> io::Result<Busybox> {
        let out = Command::new(binary).arg("--list").output()?;
        let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|a| !a.is_empty() && a != "busybox" && !a.contains('/'))
            .collect();
        if applets.iter().all(|a| a != "sh") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} has no sh applet (is it busybox?)", binary.display())));
        }
        Ok(Busybox { binary: binary.to_path_buf(), applets, linkable: false })
    }

    /// A private copy in `dir` that every rootfs made from it hard-links
    /// (one copy per test run rather than one per bundle).
    pub fn private_copy(&self, dir: &Path) -> io::Result<Busybox> {
        fs::create_dir_all(dir)?;
        let binary = dir.join("busybox");
        if !binary.exists() {
            fs::copy(&self.binary, &binary)?;
            fs::set_permissions(&binary, fs::Permissions::from_mode(0o755))?;
        }
        Ok(Busybox { binary, applets: self.applets.clone(), linkable: true })
    }

    /// Put busybox at `rootfs`/bin/busybox with its applets beside it
    /// (directories created as needed; a second call changes nothing).
    pub fn install(&self, rootfs: &Path) -> io::Result<()> {
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin)?;
        let bb = bin.join("busybox");
        // Never copy onto an existing file: it may be a hard link of the
        // private copy, which the copy would truncate.
        let linked = || self.linkable && fs::hard_link(&self.binary, &bb).is_ok();
        if !bb.exists() && !linked() {
            fs::copy(&self.binary, &bb)?;
            fs::set_permissions(&bb, fs::Permissions::from_mode(0o755))?;
        }
        for a in &self.applets {
            let l = bin.join(a);
            if fs::symlink_metadata(&l).is_err() {
                symlink("busybox", &l)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootfs_runs_its_applets() {
        let Ok(host) = Busybox::find() else {
            crate::skip!("busybox-static is not installed");
            return;
        };
        let d = std::env::temp_dir().join(format!("testkit-busybox-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let bb = host.private_copy(&d.join("template")).unwrap();
        let r = d.join("rootfs");
        bb.install(&r).unwrap();
        bb.install(&r).unwrap();
        assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("busybox"));
        let out = Command::new(r.join("bin/sh")).args(["-c", "echo ok"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
        // installed from the host binary: a copy, not a link to it
        let plain = d.join("plain");
        host.install(&plain).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(fs::metadata(plain.join("bin/busybox")).unwrap().ino(), fs::metadata(&host.binary).unwrap().ino());
        fs::remove_dir_all(&d).unwrap();
    }
}

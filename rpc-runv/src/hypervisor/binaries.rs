//! Where the VM's programs and guest files are: an environment variable
//! names each one explicitly, else the place `make guest` (and Debian's
//! qemu-system-x86 package) put it. A missing one is an error that says
//! how to get it.

use super::{Error, Result};
use std::path::{Path, PathBuf};

pub const ENV_QEMU: &str = "RPC_RUNV_QEMU";
pub const ENV_VIRTIOFSD: &str = "RPC_RUNV_VIRTIOFSD";
pub const ENV_VHOST_VSOCK: &str = "RPC_RUNV_VHOST_VSOCK";
pub const ENV_KERNEL: &str = "RPC_RUNV_KERNEL";
pub const ENV_INITRD: &str = "RPC_RUNV_INITRD";
/// The cache `make guest` fills (the guest scripts' `RPC_GUEST_CACHE`).
pub const ENV_CACHE: &str = "RPC_GUEST_CACHE";
/// The agent initramfs containers boot (rpc-agent + the guest rpc-runc).
pub const ENV_AGENT_INITRD: &str = "RPC_RUNV_AGENT_INITRD";
/// The agent initramfs's name next to the rpc-runv binary (`make build`
/// and `make test` put it there) or in [`AGENT_INITRD_INSTALLED`].
pub const AGENT_INITRD_NAME: &str = "rpc-runv-agent.cpio";
pub const AGENT_INITRD_INSTALLED: &str = "/usr/lib/rpc-runv/agent.cpio";
/// The directory the rpc-runv binary was started from (set by its main:
/// once runtime-core re-executes through a sealed view of the binary,
/// /proc/self/exe no longer says).
pub const ENV_HOME: &str = "_RPC_RUNV_HOME";
const DEFAULT_CACHE: &str = "/var/cache/rpc-runtimes";

/// The versions the install scripts pin, read from the scripts themselves
/// so the two can never disagree.
const VIRTIOFSD_SH: &str = include_str!("../../guest/virtiofsd.sh");
const VHOST_VSOCK_SH: &str = include_str!("../../guest/vhost-device-vsock.sh");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub qemu: PathBuf,
    pub virtiofsd: PathBuf,
    pub vhost_vsock: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// All five, or the first missing one as an error.
pub fn find() -> Result<Binaries> {
    Ok(Binaries { qemu: qemu()?, virtiofsd: virtiofsd()?, vhost_vsock: vhost_vsock()?, kernel: kernel()?, initrd: initrd()? })
}

/// The lookup, with the environment and the filesystem as parameters
/// (tests), `env` being `std::env::var_os`'s.
struct Lookup<'a> {
    env: &'a dyn Fn(&str) -> Option<std::ffi::OsString>,
}

impl Lookup<'_> {
    fn cache(&self) -> PathBuf {
        (self.env)(ENV_CACHE).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
    }

    /// `var` if set (it must then exist: a typo is an error, not a silent
    /// fallback), else the first of `defaults` that exists.
    fn one(&self, what: &'static str, var: &str, exec: bool, defaults: Vec<PathBuf>, how: &str) -> Result<PathBuf> {
        if let Some(v) = (self.env)(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(v);
            return if usable(&p, exec) {
                Ok(p)
            } else {
                Err(Error::Missing { what, tried: vec![p], hint: format!("{var} names it, but it is not there or not {}", kind(exec)) })
            };
        }
        if let Some(p) = defaults.iter().find(|p| usable(p, exec)) {
            return Ok(p.clone());
        }
        Err(Error::Missing { what, tried: defaults, hint: format!("{how}, or set {var}") })
    }

    fn qemu(&self) -> Result<PathBuf> {
        let mut d: Vec<PathBuf> = match (self.env)("PATH") {
            Some(p) => std::env::split_paths(&p).map(|d| d.join("qemu-system-x86_64")).collect(),
            None => Vec::new(),
        };
        let usr = PathBuf::from("/usr/bin/qemu-system-x86_64");
        if !d.contains(&usr) {
            d.push(usr);
        }
        self.one("qemu-system-x86_64", ENV_QEMU, true, d, "apt-get install qemu-system-x86 (make guest-deps)")
    }

    fn virtiofsd(&self) -> Result<PathBuf> {
        let p = self.cache().join("virtiofsd").join(pinned(VIRTIOFSD_SH)).join("bin/virtiofsd");
        self.one("virtiofsd", ENV_VIRTIOFSD, true, vec![p], "make guest (rpc-runv/guest/virtiofsd.sh installs it)")
    }

    fn vhost_vsock(&self) -> Result<PathBuf> {
        let p = self.cache().join("vhost-device-vsock").join(pinned(VHOST_VSOCK_SH)).join("bin/vhost-device-vsock");
        self.one("vhost-device-vsock", ENV_VHOST_VSOCK, true, vec![p], "make guest (rpc-runv/guest/vhost-device-vsock.sh installs it)")
    }

    fn kernel(&self) -> Result<PathBuf> {
        let p = self.cache().join("guest/current/bzImage");
        self.one("guest kernel", ENV_KERNEL, false, vec![p], "make guest (rpc-runv/guest/build.sh builds it)")
    }

    fn agent_initrd(&self) -> Result<PathBuf> {
        let mut d = vec![];
        if let Some(dir) = (self.env)(ENV_HOME) {
            d.push(PathBuf::from(dir).join(AGENT_INITRD_NAME));
        }
        d.push(PathBuf::from(AGENT_INITRD_INSTALLED));
        self.one("guest agent initrd", ENV_AGENT_INITRD, false, d, "make build or make test (rpc-runv/guest/initramfs.sh builds it)")
    }

    fn initrd(&self) -> Result<PathBuf> {
        let p = self.cache().join("guest/current/initramfs.cpio");
        self.one("guest initrd", ENV_INITRD, false, vec![p], "make guest (rpc-runv/guest/build.sh builds it)")
    }
}

fn real() -> Lookup<'static> {
    Lookup { env: &|k| std::env::var_os(k) }
}

pub fn qemu() -> Result<PathBuf> {
    real().qemu()
}
pub fn virtiofsd() -> Result<PathBuf> {
    real().virtiofsd()
}
pub fn vhost_vsock() -> Result<PathBuf> {
    real().vhost_vsock()
}
pub fn kernel() -> Result<PathBuf> {
    real().kernel()
}
pub fn initrd() -> Result<PathBuf> {
    real().initrd()
}

/// The initramfs of containers' VMs: the agent and the guest rpc-runc.
pub fn agent_initrd() -> Result<PathBuf> {
    real().agent_initrd()
}

fn usable(p: &Path, exec: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) => m.is_file() && (!exec || m.permissions().mode() & 0o111 != 0),
        Err(_) => false,
    }
}

fn kind(exec: bool) -> &'static str {
    if exec {
        "an executable file"
    } else {
        "a regular file"
    }
}

/// The `VERSION=` an install script pins.
fn pinned(script: &str) -> &str {
    script.lines().find_map(|l| l.strip_prefix("VERSION=")).map(str::trim).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    #[test]
    fn versions_come_from_the_install_scripts() {
        assert_eq!(pinned(VIRTIOFSD_SH), "1.14.0");
        assert!(pinned(VHOST_VSOCK_SH).chars().next().is_some_and(|c| c.is_ascii_digit()), "{}", pinned(VHOST_VSOCK_SH));
    }

    fn with(vars: &[(&str, &Path)], f: impl FnOnce(&Lookup<'_>)) {
        let m: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
        let env = move |k: &str| m.get(k).cloned();
        f(&Lookup { env: &env });
    }

    #[test]
    fn env_overrides_and_cache_defaults() {
        let d = std::env::temp_dir().join(format!("rpc-runv-binaries-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("guest/current")).unwrap();
        std::fs::write(d.join("guest/current/bzImage"), b"k").unwrap();
        let k2 = d.join("other-kernel");
        std::fs::write(&k2, b"k").unwrap();
        with(&[(ENV_CACHE, &d)], |l| {
            assert_eq!(l.kernel().unwrap(), d.join("guest/current/bzImage"));
            // Missing: the error names what, where it looked, and how to get it.
            let e = l.initrd().unwrap_err().to_string();
            assert!(e.contains("guest initrd") && e.contains("initramfs.cpio") && e.contains("make guest"), "{e}");
            let e = l.vhost_vsock().unwrap_err().to_string();
            assert!(e.contains("vhost-device-vsock.sh") && e.contains(ENV_VHOST_VSOCK), "{e}");
        });
        with(&[(ENV_CACHE, &d), (ENV_KERNEL, &k2)], |l| assert_eq!(l.kernel().unwrap(), k2));
        // An override that names nothing is an error, not a fallback.
        let none = d.join("none");
        with(&[(ENV_CACHE, &d), (ENV_KERNEL, &none)], |l| {
            let e = l.kernel().unwrap_err().to_string();
            assert!(e.contains(ENV_KERNEL) && e.contains("none"), "{e}");
        });
        // A non-executable file is no program.
        with(&[(ENV_QEMU, &k2)], |l| assert!(l.qemu().is_err()));
        let _ = std::fs::remove_dir_all(&d);
    }
}

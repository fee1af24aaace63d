//! What the agent does as the guest's pid 1 before it serves: a root that
//! pivot_root works under, the kernel filesystems, cgroup v2 with its
//! controllers enabled, the shared tree, loopback up; and at the end,
//! the status port and the power-off.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};

/// The port rpc-vmm reads the VM's exit status from.
pub const STATUS_PORT: u16 = 0x510;

fn mnt(src: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("mkdir {target}"))?;
    mount(Some(src), target, Some(fstype), flags, data).with_context(|| format!("mounting {fstype} on {target}"))
}

/// Everything pid 1 sets up. Failures of what containers cannot do
/// without are errors; the optional parts (virtiofs, a controller) are
/// reported and skipped.
pub fn pid1() -> Result<()> {
    move_root().context("moving the root off rootfs")?;
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    match mount(Some("devtmpfs"), "/dev", Some("devtmpfs"), MsFlags::MS_NOSUID, Some("mode=0755")) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
        Err(e) => return Err(e).context("mounting devtmpfs on /dev"),
    }
    mnt("devpts", "/dev/pts", "devpts", nosuid, Some("newinstance,ptmxmode=0666,mode=0620,gid=5"))?;
    // /dev/ptmx of devtmpfs opens the initial devpts instance: the one above.
    mnt("shm", "/dev/shm", "tmpfs", nosuid | MsFlags::MS_NODEV, Some("mode=1777"))?;
    mnt("proc", "/proc", "proc", nosuid | MsFlags::MS_NODEV, None)?;
    mnt("sysfs", "/sys", "sysfs", nosuid | MsFlags::MS_NODEV, None)?;
    mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid | MsFlags::MS_NODEV, None)?;
    enable_controllers(Path::new("/sys/fs/cgroup"));
    mnt("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))?;
    fs::create_dir_all("/tmp").context("mkdir /tmp")?;
    let _ = fs::set_permissions("/tmp", fs::Permissions::from_mode(0o1777));
    let shared = rpc_proto::guest::SHARED_DIR;
    fs::create_dir_all(shared).with_context(|| format!("mkdir {shared}"))?;
    if let Err(e) = mount(Some(rpc_proto::guest::FS_TAG), shared, Some("virtiofs"), MsFlags::empty(), None::<&str>) {
        eprintln!("rpc-agent: no virtiofs {} at {shared}: {e}", rpc_proto::guest::FS_TAG);
    }
    // The guest runtime's binary on a read-only mount: its exe seal then
    // costs nothing.
    if let Some(dir) = Path::new(rpc_proto::guest::GUEST_RUNTIME).parent() {
        if dir.is_dir() {
            mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).context("binding the runtime's directory")?;
            mount(None::<&str>, dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
                .context("making the runtime's directory read-only")?;
        }
    }
    if let Err(e) = loopback_up() {
        eprintln!("rpc-agent: lo: {e:#}");
    }
    Ok(())
}

/// pivot_root(2) refuses to work when the caller's root is rootfs (it has
/// no parent mount), which is where an initramfs runs: the root becomes a
/// bind mount of itself, moved over `/` (switch_root's move, without
/// copying anything).
fn move_root() -> Result<()> {
    let new = "/.root";
    fs::create_dir_all(new)?;
    mount(Some("/"), new, None::<&str>, MsFlags::MS_BIND, None::<&str>).context("bind / on /.root")?;
    std::env::set_current_dir(new)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).context("moving /.root onto /")?;
    nix::unistd::chroot(".").context("chroot")?;
    std::env::set_current_dir("/")?;
    // The empty mount point, seen again through the bind mount.
    let _ = fs::remove_dir(new);
    Ok(())
}

/// `+cpu +cpuset +memory +pids +io`, those the kernel has, one by one (a
/// missing one would fail the whole write).
pub fn enable_controllers(root: &Path) {
    let have = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    for c in ["cpu", "cpuset", "memory", "pids", "io"] {
        if have.split_whitespace().any(|h| h == c) {
            if let Err(e) = fs::write(root.join("cgroup.subtree_control"), format!("+{c}")) {
                eprintln!("rpc-agent: enabling the {c} controller: {e}");
            }
        } else {
            eprintln!("rpc-agent: no {c} controller in this kernel");
        }
    }
}

/// `ip link set lo up`.
fn loopback_up() -> Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq the pointer names, which lives
    // across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error()).context("SIOCGIFFLAGS");
    }
    // SAFETY: SIOCGIFFLAGS just set the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq, which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error()).context("SIOCSIFFLAGS");
    }
    Ok(())
}

/// The end of the VM: `status` on the status port (where the hypervisor
/// has one), the filesystems synced, then a reset, which the hypervisor
/// (`-no-reboot`, `reboot=k`) takes as the end.
pub fn power_off(status: i32) -> ! {
    write_status(status);
    nix::unistd::sync();
    // SAFETY: reboot(2) with RB_AUTOBOOT takes no pointers.
    unsafe {
        libc::reboot(libc::RB_AUTOBOOT);
    }
    // Not reached as pid 1 with CAP_SYS_BOOT; anyway, exiting pid 1
    // panics the kernel, which panic=-1 turns into a reset.
    std::process::exit(status & 0xff)
}

#[cfg(target_arch = "x86_64")]
fn write_status(status: i32) {
    // SAFETY: ioperm(2) changes this process's I/O permission bitmap only.
    if unsafe { libc::ioperm(libc::c_ulong::from(STATUS_PORT), 1, 1) } != 0 {
        return;
    }
    let v = (status & 0xff) as u8;
    // SAFETY: the port was granted above; an `out` to a port with no
    // device behind it is dropped by the hypervisor.
    unsafe {
        std::arch::asm!("out dx, al", in("dx") STATUS_PORT, in("al") v, options(nomem, nostack, preserves_flags));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn write_status(_status: i32) {}

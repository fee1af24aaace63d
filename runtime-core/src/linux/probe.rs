//! The one place newer kernel facilities are used. Each has a fallback,
//! because rpc-runlxc runs this core on a 2.6.32 system-call surface:
//! pidfd_open (5.3), pidfd_send_signal (5.1), close_range (5.9), openat2
//! (5.6). A facility found missing (ENOSYS) is remembered for the process.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

static PIDFD: AtomicU8 = AtomicU8::new(UNKNOWN);
static CLOSE_RANGE: AtomicU8 = AtomicU8::new(UNKNOWN);
static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);
static O_PATH: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Does the kernel know O_PATH (2.6.39)? Older ones ignore the flag rather
/// than refuse it: open "/" with it and see whether it stuck. (A kernel
/// with openat2, 5.6, has it: no probe.)
pub fn has_o_path() -> bool {
    if OPENAT2.load(Ordering::Relaxed) == YES {
        return true;
    }
    match O_PATH.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            // SAFETY: open, fcntl and close of our own fd.
            let yes = unsafe {
                let fd = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
                let yes = fd >= 0 && libc::fcntl(fd, libc::F_GETFL) & libc::O_PATH != 0;
                if fd >= 0 {
                    libc::close(fd);
                }
                yes
            };
            if !yes {
                crate::log::debug("the kernel has no O_PATH: path handles are read-only opens");
            }
            O_PATH.store(if yes { YES } else { NO }, Ordering::Relaxed);
            yes
        }
    }
}

fn try_new<T>(
    name: &str,
    flag: &AtomicU8,
    f: impl FnOnce() -> libc::c_long,
    ok: impl FnOnce(libc::c_long) -> T,
) -> Option<std::io::Result<T>> {
    if flag.load(Ordering::Relaxed) == NO {
        return None;
    }
    let r = f();
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            flag.store(NO, Ordering::Relaxed);
            crate::log::debug(&format!("the kernel has no {name} (ENOSYS): using its fallback"));
            return None;
        }
        return Some(Err(e));
    }
    flag.store(YES, Ordering::Relaxed);
    Some(Ok(ok(r)))
}

/// A pidfd for `pid`, or None when the kernel has none.
pub fn pidfd_open(pid: i32) -> Option<std::io::Result<OwnedFd>> {
    // SAFETY: plain syscall; a returned fd is owned by us.
    try_new(
        "pidfd_open",
        &PIDFD,
        || unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) },
        |fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
    )
}

/// Signal through a pidfd (no pid-reuse race).
pub fn pidfd_send_signal(fd: RawFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wait until `fd` (a pidfd) reports the process exited, up to `timeout`.
/// Returns true when it exited.
pub fn poll_fd(fd: RawFd, timeout: Option<Duration>) -> bool {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32,
        };
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return true;
        }
        if r == 0 {
            return false;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// Mark every fd >= `from` close-on-exec (CVE-2024-21626: no host fd may
/// reach the container's process).
pub fn cloexec_from(from: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    if let Some(Ok(_)) = try_new(
        "close_range",
        &CLOSE_RANGE,
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only marks our fds
        // from `from` up close-on-exec; it frees no memory and closes none.
        || unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) },
        |_| (),
    ) {
        return;
    }
    // Fallback: walk our fd table, listed through the verified procfs
    // (after pivot_root "/proc/self/fd" is the container's, and an empty
    // tmpfs over it would hide every fd from this loop); else every fd
    // number up to our limit.
    let fds: Vec<RawFd> = match list_own_fds() {
        Some(v) => v,
        None => {
            let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: a local buffer.
            let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 { r.rlim_cur.min(1 << 20) as RawFd } else { 1024 };
            (from..max.max(from)).collect()
        }
    };
    for fd in fds.into_iter().filter(|&fd| fd >= from) {
        // SAFETY: setting a flag on an fd; EBADF is harmless.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Our open fds, from /proc/self/fd of the verified procfs handle (the
/// listing's own fd among them: already close-on-exec).
fn list_own_fds() -> Option<Vec<RawFd>> {
    let p = super::procfs::ProcFs::open().ok()?;
    let dir = p.open_file("self/fd", libc::O_RDONLY | libc::O_DIRECTORY).ok()?;
    let mut d = nix::dir::Dir::from_fd(dir).ok()?;
    Some(d.iter().filter_map(|e| e.ok()?.file_name().to_str().ok()?.parse::<RawFd>().ok()).collect())
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2 with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: `path` is resolved
/// as if `root` were "/". None when the kernel lacks openat2.
pub fn openat2_in_root(root: RawFd, path: &std::ffi::CStr, flags: i32) -> Option<std::io::Result<OwnedFd>> {
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: 0, resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    // SAFETY: valid pointers for the duration of the call.
    try_new(
        "openat2",
        &OPENAT2,
        || unsafe { libc::syscall(libc::SYS_openat2, root, path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>()) },
        |fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
    )
}

/// Wait for a process that is not our child to go away: pidfd where the
/// kernel has one, else a short backoff on /proc (old kernels only).
pub fn wait_gone(pid: i32, start_time: u64, timeout: Duration) -> bool {
    if let Some(Ok(fd)) = pidfd_open(pid) {
        use std::os::fd::AsRawFd;
        // Still the same process? (pidfd refers to whatever has the pid now.)
        if super::process::start_time(pid) != Some(start_time) {
            return true;
        }
        return poll_fd(fd.as_raw_fd(), Some(timeout));
    }
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(200);
    while Instant::now() < deadline {
        if !super::process::alive(pid, start_time) {
            return true;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    !super::process::alive(pid, start_time)
}

static NEW_MOUNT_API: AtomicU8 = AtomicU8::new(UNKNOWN);

/// openat2 beneath `dir` with the given RESOLVE_* flags (no escape by
/// "..", absolute symlinks or magic links). None without openat2.
pub fn openat2_beneath(dir: RawFd, path: &std::ffi::CStr, flags: i32, resolve: u64) -> Option<std::io::Result<OwnedFd>> {
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: 0, resolve: resolve | libc::RESOLVE_BENEATH };
    // SAFETY: valid pointers for the duration of the call; a returned fd is ours.
    try_new(
        "openat2",
        &OPENAT2,
        || unsafe { libc::syscall(libc::SYS_openat2, dir, path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>()) },
        |fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
    )
}

/// A fresh, detached instance of filesystem `fstype` (fsopen, fsconfig,
/// fsmount: 5.2): reachable only through the fd returned, so nothing can
/// be mounted over it. `attrs` are MOUNT_ATTR_* flags. None without the
/// new mount API.
pub fn fsopen_detached(fstype: &std::ffi::CStr, attrs: u32) -> Option<std::io::Result<OwnedFd>> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: plain syscall with a valid C string; the fd is ours.
    let fs = try_new(
        "fsopen",
        &NEW_MOUNT_API,
        || unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) },
        |fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
    )?;
    Some(fs.and_then(|fs| {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscalls on our fsopen fd; the mount fd is ours.
        unsafe {
            let null = std::ptr::null::<libc::c_char>();
            if libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, null, null, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let m = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs);
            if m < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(OwnedFd::from_raw_fd(m as RawFd))
        }
    }))
}

/// Bind what `src` refers to onto what `target` refers to, both fds
/// (open_tree + move_mount: 5.2), so no path is looked up again and no
/// /proc/self/fd is needed. None without the new mount API.
pub fn bind_fd(src: RawFd, target: RawFd) -> Option<std::io::Result<()>> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: plain syscall on fds we were given; the tree fd is ours.
    let tree = try_new(
        "open_tree",
        &NEW_MOUNT_API,
        || unsafe { libc::syscall(libc::SYS_open_tree, src, c"".as_ptr(), flags) },
        |fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
    )?;
    Some(tree.and_then(|tree| {
        use std::os::fd::AsRawFd;
        let how = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
        // SAFETY: plain syscall on valid fds and empty C strings.
        let r = unsafe { libc::syscall(libc::SYS_move_mount, tree.as_raw_fd(), c"".as_ptr(), target, c"".as_ptr(), how) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }))
}

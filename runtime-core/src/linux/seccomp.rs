//! linux.seccomp: the OCI profile compiled with libseccomp (linked
//! statically; it knows every architecture's syscall table, x32 included)
//! to a classic BPF program in the runtime, before fork. init installs the
//! program with seccomp(2) itself, so the flags (TSYNC, LOG, SPEC_ALLOW,
//! NEW_LISTENER) and the install point are ours.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use crate::error::{Error, Result};
use crate::log;

#[repr(C)]
struct ScmpArgCmp {
    arg: c_uint,
    op: c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp", kind = "static")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_resolve_name(name: *const c_char) -> u32;
    fn seccomp_arch_native() -> u32;
    fn seccomp_arch_add(ctx: *mut c_void, arch: u32) -> c_int;
    fn seccomp_attr_set(ctx: *mut c_void, attr: c_int, value: u32) -> c_int;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_syscall_resolve_num_arch(arch: u32, num: c_int) -> *mut c_char;
    fn seccomp_rule_add_array(ctx: *mut c_void, action: u32, syscall: c_int, arg_cnt: c_uint, arg_array: *const ScmpArgCmp) -> c_int;
    fn seccomp_export_bpf(ctx: *mut c_void, fd: c_int) -> c_int;
}

const SCMP_ACT_KILL_PROCESS: u32 = 0x8000_0000;
const SCMP_ACT_KILL_THREAD: u32 = 0x0000_0000;
const SCMP_ACT_TRAP: u32 = 0x0003_0000;
const SCMP_ACT_NOTIFY: u32 = 0x7fc0_0000;
const SCMP_ACT_LOG: u32 = 0x7ffc_0000;
const SCMP_ACT_ALLOW: u32 = 0x7fff_0000;
const fn act_errno(e: u32) -> u32 {
    0x0005_0000 | (e & 0xffff)
}
const fn act_trace(e: u32) -> u32 {
    0x7ff0_0000 | (e & 0xffff)
}
const SCMP_FLTATR_ACT_BADARCH: c_int = 2;
const SCMP_FLTATR_CTL_NNP: c_int = 3;
const SCMP_FLTATR_CTL_OPTIMIZE: c_int = 8;
const SCMP_FLTATR_API_SYSRAWRC: c_int = 9;
const NR_SCMP_ERROR: c_int = -1;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
pub const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
pub const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 4;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 8;

/// A compiled filter, ready to install (plain data: survives fork).
#[derive(Debug, Clone)]
pub struct Program {
    /// The BPF instructions (struct sock_filter, 8 bytes each).
    pub bpf: Vec<u8>,
    pub flags: libc::c_ulong,
    /// Some action is NOTIFY: the listener fd goes to `listener_path`.
    pub notify: bool,
    pub listener_path: Option<String>,
    pub listener_metadata: Option<String>,
}

struct Ctx(*mut c_void);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: ctx came from seccomp_init.
        unsafe { seccomp_release(self.0) }
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    use LinuxSeccompAction::*;
    Ok(match a {
        ScmpActKill | ScmpActKillThread => SCMP_ACT_KILL_THREAD,
        ScmpActKillProcess => SCMP_ACT_KILL_PROCESS,
        ScmpActTrap => SCMP_ACT_TRAP,
        ScmpActErrno => act_errno(errno.unwrap_or(libc::EPERM as u32)),
        ScmpActTrace => act_trace(errno.unwrap_or(libc::EPERM as u32)),
        ScmpActAllow => SCMP_ACT_ALLOW,
        ScmpActLog => SCMP_ACT_LOG,
        ScmpActNotify => SCMP_ACT_NOTIFY,
        #[allow(unreachable_patterns)]
        _ => return Err(Error::Container(format!("{field}: unsupported seccomp action {a:?}"))),
    })
}

fn op(o: LinuxSeccompOperator) -> c_int {
    use LinuxSeccompOperator::*;
    match o {
        ScmpCmpNe => 1,
        ScmpCmpLt => 2,
        ScmpCmpLe => 3,
        ScmpCmpEq => 4,
        ScmpCmpGe => 5,
        ScmpCmpGt => 6,
        ScmpCmpMaskedEq => 7,
    }
}

/// OCI arch name (SCMP_ARCH_X86_64) to libseccomp's token.
pub fn arch_token(name: &str) -> Option<u32> {
    let short = name.strip_prefix("SCMP_ARCH_").unwrap_or(name).to_ascii_lowercase();
    let c = CString::new(short).ok()?;
    // SAFETY: valid C string.
    let t = unsafe { seccomp_arch_resolve_name(c.as_ptr()) };
    (t != 0).then_some(t)
}

fn check(r: c_int, what: impl FnOnce() -> String) -> Result<()> {
    if r < 0 {
        return Err(Error::Container(format!("{}: {}", what(), std::io::Error::from_raw_os_error(-r))));
    }
    Ok(())
}

/// Compile a profile. Unknown syscall names are skipped with a warning
/// (as runc does); unknown actions, operators and architectures are errors.
pub fn compile(s: &LinuxSeccomp) -> Result<Program> {
    let (ctx, flags, notify) = build(s)?;
    let bpf = export(&ctx)?;
    Ok(Program {
        bpf,
        flags,
        notify,
        listener_path: s.listener_path().as_ref().map(|p| p.display().to_string()),
        listener_metadata: s.listener_metadata().clone(),
    })
}

/// The libseccomp filter of a profile, its seccomp(2) flags, and whether
/// it notifies.
fn build(s: &LinuxSeccomp) -> Result<(Ctx, libc::c_ulong, bool)> {
    let def = action(s.default_action(), s.default_errno_ret(), "linux.seccomp.defaultAction")?;
    // SAFETY: plain constructor.
    let ctx = Ctx(unsafe { seccomp_init(def) });
    if ctx.0.is_null() {
        return Err(Error::Container("linux.seccomp: libseccomp could not make a filter".into()));
    }
    // SAFETY: ctx is valid for all calls below.
    unsafe {
        // We set no_new_privs ourselves; return raw errors; a syscall of an
        // architecture not in the filter gets ENOSYS rather than a kill.
        seccomp_attr_set(ctx.0, SCMP_FLTATR_CTL_NNP, 0);
        seccomp_attr_set(ctx.0, SCMP_FLTATR_API_SYSRAWRC, 1);
        seccomp_attr_set(ctx.0, SCMP_FLTATR_ACT_BADARCH, act_errno(libc::ENOSYS as u32));
        seccomp_attr_set(ctx.0, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    }
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = format!("{a:?}");
        let name = serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or(name);
        let t =
            arch_token(&name).ok_or_else(|| Error::Container(format!("linux.seccomp.architectures[{i}]: unknown architecture {name}")))?;
        // SAFETY: valid ctx. EEXIST (the native arch) is fine.
        let r = unsafe { seccomp_arch_add(ctx.0, t) };
        if r < 0 && r != -libc::EEXIST {
            check(r, || format!("linux.seccomp.architectures[{i}] {name}"))?;
        }
    }
    let mut notify = def == SCMP_ACT_NOTIFY;
    let mut named: BTreeSet<i32> = BTreeSet::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret(), &format!("linux.seccomp.syscalls[{i}].action"))?;
        notify |= act == SCMP_ACT_NOTIFY;
        let args: Vec<ScmpArgCmp> = sc
            .args()
            .iter()
            .flatten()
            .map(|a| ScmpArgCmp { arg: a.index() as c_uint, op: op(a.op()), datum_a: a.value(), datum_b: a.value_two().unwrap_or(0) })
            .collect();
        if args.iter().any(|a| a.arg > 5) {
            return Err(Error::Container(format!("linux.seccomp.syscalls[{i}].args: index above 5")));
        }
        for name in sc.names() {
            let Ok(c) = CString::new(name.as_str()) else { continue };
            // SAFETY: valid C string.
            let nr = unsafe { seccomp_syscall_resolve_name(c.as_ptr()) };
            if nr == NR_SCMP_ERROR {
                log::debug(&format!("seccomp: syscall {name:?} unknown to libseccomp, skipped"));
                continue;
            }
            named.insert(nr);
            if act == def {
                continue; // libseccomp refuses rules that repeat the default
            }
            // Several conditions on one argument cannot be ANDed by
            // libseccomp: runc adds one rule per condition then.
            let mut seen = BTreeSet::new();
            let repeated = args.iter().any(|a| !seen.insert(a.arg));
            let groups: Vec<&[ScmpArgCmp]> = if repeated { args.chunks(1).collect() } else { vec![&args[..]] };
            for g in groups {
                // SAFETY: valid ctx and array.
                let r = unsafe { seccomp_rule_add_array(ctx.0, act, nr, g.len() as c_uint, g.as_ptr()) };
                check(r, || format!("linux.seccomp.syscalls[{i}] ({name})"))?;
            }
        }
    }
    // runc's stub: syscalls newer than any the profile names get ENOSYS,
    // not the default errno, so libc falls back (clone3, openat2, ...).
    if def != SCMP_ACT_ALLOW && !named.is_empty() {
        let max = *named.iter().max().unwrap_or(&0);
        // SAFETY: plain calls; the returned names are malloc'd and freed.
        unsafe {
            let native = seccomp_arch_native();
            let mut misses = 0;
            let mut nr = max + 1;
            while misses < 64 {
                let p = seccomp_syscall_resolve_num_arch(native, nr);
                if p.is_null() {
                    misses += 1;
                } else {
                    misses = 0;
                    libc::free(p as *mut c_void);
                    seccomp_rule_add_array(ctx.0, act_errno(libc::ENOSYS as u32), nr, 0, std::ptr::null());
                }
                nr += 1;
            }
        }
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            #[allow(unreachable_patterns)]
            other => return Err(Error::Container(format!("linux.seccomp.flags: unsupported flag {other:?}"))),
        };
    }
    if notify {
        if s.listener_path().is_none() {
            return Err(Error::Container("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath".into()));
        }
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    Ok((ctx, flags, notify))
}

/// The kernel's limit on one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// The program's bytes. libseccomp writes them to an fd; a pipe that only
/// we read would deadlock past its 64 KiB (8,192 instructions), so the fd
/// is a memfd, which takes any size, read back from its start. Kernels
/// without memfd get a pipe drained by a thread while libseccomp writes.
fn export(ctx: &Ctx) -> Result<Vec<u8>> {
    let io = |what: &str, e: std::io::Error| Error::Io { context: format!("linux.seccomp: {what}"), source: e };
    // SAFETY: valid C string.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_create, c"rpc-seccomp".as_ptr(), libc::MFD_CLOEXEC) } as RawFd;
    let out = if fd >= 0 {
        // SAFETY: a fresh fd we own.
        let m = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: valid ctx and fd.
        check(unsafe { seccomp_export_bpf(ctx.0, m.as_raw_fd()) }, || "linux.seccomp: exporting the filter".into())?;
        let mut f = std::fs::File::from(m);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).map_err(|e| io("reading the filter back", e))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).map_err(|e| io("reading the filter back", e))?;
        out
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(io("memfd_create for the filter", e));
        }
        export_through_pipe(ctx)?
    };
    let n = out.len() / 8;
    if n > MAX_INSNS {
        return Err(Error::Container(format!(
            "linux.seccomp: the profile compiles to {n} BPF instructions, above the kernel's limit of {MAX_INSNS} per filter (BPF_MAXINSNS)"
        )));
    }
    Ok(out)
}

/// Before memfd (3.17): a pipe, read by a thread while libseccomp fills
/// it, so no size can block the write. Joined before we return: the
/// runtime is single-threaded again by the time it forks.
fn export_through_pipe(ctx: &Ctx) -> Result<Vec<u8>> {
    let mut fds = [0; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Io { context: "pipe".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: both fds were just made.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    std::thread::scope(|sc| {
        let reader = sc.spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut out).map(|_| out)
        });
        // SAFETY: valid ctx and fd.
        let exported = check(unsafe { seccomp_export_bpf(ctx.0, w.as_raw_fd()) }, || "linux.seccomp: exporting the filter".into());
        drop(w);
        let read = reader.join().unwrap_or_else(|_| Err(std::io::Error::other("reader thread panicked")));
        exported?;
        read.map_err(|e| Error::Io { context: "reading the filter".into(), source: e })
    })
}

/// Install the program in this process. Returns the listener fd when the
/// filter has NOTIFY actions.
pub fn install(p: &Program) -> Result<Option<OwnedFd>> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog { len: (p.bpf.len() / 8) as u16, filter: p.bpf.as_ptr() };
    // SAFETY: prog points into p.bpf for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, p.flags, &prog as *const SockFprog) };
    if r < 0 {
        return Err(Error::Io {
            context: format!("installing the seccomp filter (flags {:#x})", p.flags),
            source: std::io::Error::last_os_error(),
        });
    }
    if p.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: the kernel returned a new fd.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
    }
    Ok(None)
}

/// Send the listener fd to the agent at listenerPath, with the container
/// process state the OCI spec defines as the payload.
pub fn send_listener(sock: RawFd, fd: RawFd, p: &Program, state_json: &str, pid: i32) -> Result<()> {
    let state: serde_json::Value = serde_json::from_str(state_json).unwrap_or(serde_json::Value::Null);
    let msg = serde_json::json!({
        "ociVersion": crate::bundle::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": p.listener_metadata.clone().unwrap_or_default(),
        "state": state,
    });
    crate::linux::tty::send_fd(sock, fd, &msg.to_string())
}

/// Is `name` a syscall libseccomp knows (for `features`)?
pub fn known_syscall(name: &str) -> bool {
    // SAFETY: libseccomp reads the NUL-terminated name, which outlives the call.
    CString::new(name).map(|c| unsafe { seccomp_syscall_resolve_name(c.as_ptr()) } != NR_SCMP_ERROR).unwrap_or(false)
}

/// libseccomp's version string.
pub fn version() -> String {
    #[repr(C)]
    struct V {
        major: c_uint,
        minor: c_uint,
        micro: c_uint,
    }
    extern "C" {
        fn seccomp_version() -> *const V;
    }
    // SAFETY: libseccomp returns a static struct.
    unsafe {
        let v = seccomp_version();
        if v.is_null() {
            return String::new();
        }
        format!("{}.{}.{}", (*v).major, (*v).minor, (*v).micro)
    }
}

#[allow(dead_code)]
fn cstr_to_string(p: *const c_char) -> String {
    // SAFETY: caller passes a valid C string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile of `n` rules, each on its own argument value (so none
    /// merge): a program of several instructions per rule.
    fn big(n: u64) -> LinuxSeccomp {
        let rules: Vec<_> = (0..n)
            .map(|i| {
                let args: Vec<_> = (0..3).map(|a| serde_json::json!({"index": a, "value": 1000 + i + a, "op": "SCMP_CMP_EQ"})).collect();
                serde_json::json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": args})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})).unwrap()
    }

    /// Past a pipe's 64 KiB, export used to block on a pipe only it read.
    #[test]
    fn a_filter_past_a_pipe_buffer_is_exported_whole_both_ways() {
        let (ctx, _, _) = build(&big(1_000)).unwrap();
        let thread = export_through_pipe(&ctx).unwrap();
        assert!(thread.len() > 65536, "only {} bytes: not past a pipe's buffer", thread.len());
        let e = export(&ctx).unwrap_err().to_string();
        assert!(e.contains(&format!("{} BPF instructions", thread.len() / 8)) && e.contains("limit of 4096"), "{e}");
        // A small one exports the same bytes both ways.
        let (ctx, _, _) = build(&big(10)).unwrap();
        assert_eq!(export(&ctx).unwrap(), export_through_pipe(&ctx).unwrap());
    }
}

//! An older kernel's system-call surface on this one: a seccomp filter,
//! installed in a child before it execs the runtime, that fails the newer
//! calls with ENOSYS as a kernel predating them would. The runtime's
//! fallbacks (runtime-core's probe layer, which rpc-runlxc relies on for
//! 2.6.32) then run for real under the whole test suite.
//!
//! The filter is inherited by everything the runtime starts (container,
//! hooks), and stacks with a container's own seccomp profile.

use std::io;

/// The calls failed, with the kernel that brought them.
#[cfg(target_arch = "x86_64")]
pub const NEWER: &[(&str, libc::c_long, &str)] = &[
    ("memfd_create", libc::SYS_memfd_create, "3.17"),
    ("execveat", libc::SYS_execveat, "3.19"),
    ("open_tree", libc::SYS_open_tree, "5.2"),
    ("move_mount", libc::SYS_move_mount, "5.2"),
    ("fsopen", libc::SYS_fsopen, "5.2"),
    ("fsconfig", libc::SYS_fsconfig, "5.2"),
    ("fsmount", libc::SYS_fsmount, "5.2"),
    ("fspick", libc::SYS_fspick, "5.2"),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal, "5.1"),
    ("pidfd_open", libc::SYS_pidfd_open, "5.3"),
    ("clone3", libc::SYS_clone3, "5.3"),
    ("pidfd_getfd", libc::SYS_pidfd_getfd, "5.6"),
    ("openat2", libc::SYS_openat2, "5.6"),
    ("close_range", libc::SYS_close_range, "5.9"),
    ("mount_setattr", libc::SYS_mount_setattr, "5.12"),
];

/// prctl(PR_SET_MM, PR_SET_MM_MAP) (3.18) fails with EINVAL, as on a kernel
/// without it: the runtime then seals its image by re-executing (see
/// runtime-core's exe_seal) as it must on such a kernel.
#[cfg(target_arch = "x86_64")]
pub const PR_SET_MM_MAP: (libc::c_int, libc::c_ulong) = (libc::PR_SET_MM, 14);

/// Set (non-empty) in the environment: the test harnesses run the runtime
/// under `Filter::newer_syscalls` (`make test` runs part of the suite so).
pub const ENV: &str = "RPC_TEST_OLD_KERNEL";

pub fn enabled() -> bool {
    std::env::var_os(ENV).is_some_and(|v| !v.is_empty())
}

/// A compiled filter. Build it before fork; `install` allocates nothing.
pub struct Filter(Vec<libc::sock_filter>);

const LD_ABS_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl Filter {
    /// ENOSYS for every call of `NEWER`, everything else allowed (other
    /// architectures: everything allowed).
    #[cfg(target_arch = "x86_64")]
    pub fn newer_syscalls() -> Filter {
        let n = NEWER.len();
        // [arch] [nr] n x [nr == NEWER[i] -> ENOSYS] [prctl: 4 to EINVAL]
        // ALLOW ENOSYS EINVAL
        let mut p = vec![
            op(LD_ABS_W, 0, 0, 4), // seccomp_data.arch
            op(JEQ_K, 0, n as u8 + 6, AUDIT_ARCH_X86_64),
            op(LD_ABS_W, 0, 0, 0), // seccomp_data.nr
        ];
        for (i, (_, nr, _)) in NEWER.iter().enumerate() {
            p.push(op(JEQ_K, (n - i + 5) as u8, 0, *nr as u32));
        }
        p.push(op(JEQ_K, 0, 4, libc::SYS_prctl as u32));
        p.push(op(LD_ABS_W, 0, 0, 16)); // args[0], low half
        p.push(op(JEQ_K, 0, 2, PR_SET_MM_MAP.0 as u32));
        p.push(op(LD_ABS_W, 0, 0, 24)); // args[1], low half
        p.push(op(JEQ_K, 2, 0, PR_SET_MM_MAP.1 as u32));
        p.push(op(RET_K, 0, 0, RET_ALLOW));
        p.push(op(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
        p.push(op(RET_K, 0, 0, RET_ERRNO | libc::EINVAL as u32));
        Filter(p)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn newer_syscalls() -> Filter {
        Filter(vec![op(RET_K, 0, 0, RET_ALLOW)])
    }

    /// Install in this process (a `pre_exec` hook: async-signal-safe).
    /// Needs CAP_SYS_ADMIN, which root has; no_new_privs is left alone so
    /// that what the runtime starts behaves as it would otherwise.
    pub fn install(&self) -> io::Result<()> {
        let prog = libc::sock_fprog { len: self.0.len() as u16, filter: self.0.as_ptr() as *mut libc::sock_filter };
        // SAFETY: a valid program that outlives the call.
        if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A child under the filter gets ENOSYS for each newer call, and the
    /// older calls still work.
    #[test]
    fn the_newer_calls_fail_with_enosys_and_the_rest_work() {
        if crate::skip::unless_root(env!("CARGO_PKG_NAME"), "installing a seccomp filter without no_new_privs") {
            return;
        }
        let f: &'static Filter = Box::leak(Box::new(Filter::newer_syscalls()));
        // busybox sh cannot make raw system calls: the child is this test
        // binary again, asked (by env) to report what it sees.
        // SAFETY: the pre_exec closure runs in the forked child: install
        // makes one prctl with a program leaked above (no allocation, no
        // lock), which is async-signal-safe.
        let out = unsafe {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "oldkernel::tests::probe_child", "--nocapture", "--test-threads=1"])
                .env("TESTKIT_PROBE_CHILD", "1")
                .pre_exec(move || f.install())
                .output()
                .unwrap()
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for (name, _, _) in NEWER {
            assert!(text.contains(&format!("{name}=ENOSYS")), "{name}: {text}");
        }
        assert!(text.contains("getpid=ok"), "{text}");
        assert!(text.contains("PR_SET_MM_MAP=EINVAL"), "{text}");
        assert!(text.contains("PR_GET_DUMPABLE=ok"), "{text}");
    }

    #[test]
    fn probe_child() {
        if std::env::var_os("TESTKIT_PROBE_CHILD").is_none() {
            return;
        }
        for (name, nr, _) in NEWER {
            // Arguments that make each call fail fast if it exists.
            // SAFETY: with -1 first (an invalid fd, or a pointer to no
            // memory) and zeroes, each of these calls fails (EBADF, EFAULT,
            // EINVAL) before it acts; under the filter none even runs.
            let r = unsafe { libc::syscall(*nr, -1, 0, 0, 0, 0) };
            let e = io::Error::last_os_error().raw_os_error();
            println!("{name}={}", if r < 0 && e == Some(libc::ENOSYS) { "ENOSYS".into() } else { format!("{r}/{e:?}") });
        }
        // SAFETY: getpid has no preconditions and cannot fail.
        println!("getpid={}", if unsafe { libc::getpid() } > 0 { "ok" } else { "bad" });
        // A NULL map of the right size: EFAULT where the option exists.
        // SAFETY: the kernel reads no memory through a NULL map (EFAULT).
        let r = unsafe { libc::prctl(PR_SET_MM_MAP.0, PR_SET_MM_MAP.1, 0usize, 104usize, 0usize) };
        let e = io::Error::last_os_error().raw_os_error();
        println!("PR_SET_MM_MAP={}", if r < 0 && e == Some(libc::EINVAL) { "EINVAL".into() } else { format!("{r}/{e:?}") });
        // SAFETY: PR_GET_DUMPABLE reads no memory.
        println!("PR_GET_DUMPABLE={}", if unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } >= 0 { "ok" } else { "bad" });
    }
}

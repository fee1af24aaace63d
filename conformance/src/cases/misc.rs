//! sysctl, seccomp, personality (config-linux.md).

use super::Case;
use crate::runner::{kv, Ctx};
use crate::verdict::{Verdict, R};
use crate::{case, check, check_eq, need};
use serde_json::{json, Value};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "sysctl.net",
            "config-linux.md#sysctl",
            "net.* sysctls are set in the container's network namespace (with /proc/sys read-only), not on the host",
            sysctl_net
        ),
        case!(
            "sysctl.ipc",
            "config-linux.md#sysctl",
            "kernel.msg*/fs.mqueue.* sysctls are set in the container's ipc namespace",
            sysctl_ipc
        ),
        case!(
            "seccomp.errno",
            "config-linux.md#seccomp",
            "SCMP_ACT_ERRNO makes the listed syscalls fail with EPERM; the filter is installed (Seccomp: 2)",
            seccomp_errno
        ),
        case!("seccomp.errno-ret", "config-linux.md#seccomp", "errnoRet picks the errno (EACCES)", seccomp_errno_ret),
        case!("seccomp.kill", "config-linux.md#seccomp", "SCMP_ACT_KILL kills the caller (mkdir) with SIGSYS", seccomp_kill),
        case!(
            "seccomp.args",
            "config-linux.md#seccomp",
            "an argument condition (kill with signal 10 only) filters on that argument",
            seccomp_args
        ),
        case!(
            "seccomp.default-action",
            "config-linux.md#seccomp",
            "defaultAction applies to syscalls not listed (SCMP_ACT_ERRNO default with an allow list)",
            seccomp_default
        ),
        case!(
            "personality",
            "config-linux.md#personality",
            "personality LINUX32 makes uname -m report a 32-bit machine",
            personality,
            "1.1.0"
        ),
    ]
}

fn sysctl_net(c: &mut Ctx) -> R {
    let host_fwd = crate::host::read("/proc/sys/net/ipv4/ip_forward");
    let host_somax = crate::host::read("/proc/sys/net/core/somaxconn");
    c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "net.core.somaxconn": "321"});
    let out = c.run_kv("echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo somax=$(cat /proc/sys/net/core/somaxconn)")?;
    check_eq!(out.get("fwd").cloned().unwrap_or_default(), "1", "net.ipv4.ip_forward");
    check_eq!(out.get("somax").cloned().unwrap_or_default(), "321", "net.core.somaxconn");
    check_eq!(crate::host::read("/proc/sys/net/ipv4/ip_forward"), host_fwd, "the host's ip_forward");
    check_eq!(crate::host::read("/proc/sys/net/core/somaxconn"), host_somax, "the host's somaxconn");
    Ok(Verdict::Pass)
}

fn sysctl_ipc(c: &mut Ctx) -> R {
    let host_msgmax = crate::host::read("/proc/sys/kernel/msgmax");
    c.config["linux"]["sysctl"] = json!({"kernel.msgmax": "4096", "fs.mqueue.msg_max": "17"});
    let out = c.run_kv("echo msgmax=$(cat /proc/sys/kernel/msgmax); echo mq=$(cat /proc/sys/fs/mqueue/msg_max)")?;
    check_eq!(out.get("msgmax").cloned().unwrap_or_default(), "4096", "kernel.msgmax");
    check_eq!(out.get("mq").cloned().unwrap_or_default(), "17", "fs.mqueue.msg_max");
    check_eq!(crate::host::read("/proc/sys/kernel/msgmax"), host_msgmax, "the host's kernel.msgmax");
    Ok(Verdict::Pass)
}

fn seccomp(c: &mut Ctx, default: &str, syscalls: Value) -> Result<(), Verdict> {
    need!(c.host.seccomp, "the kernel has no seccomp");
    need!(!c.host.seccomp_arches.is_empty(), "no seccomp architecture names known for {}", c.host.arch);
    c.config["linux"]["seccomp"] = json!({"defaultAction": default, "architectures": c.host.seccomp_arches, "syscalls": syscalls});
    Ok(())
}

fn seccomp_errno(c: &mut Ctx) -> R {
    seccomp(c, "SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]))?;
    let out = c.run_sh("echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2); mkdir /tmp/d 2>&1; echo rc=$?")?;
    let m = kv(&out);
    check_eq!(m.get("seccomp").cloned().unwrap_or_default(), "2", "Seccomp mode in /proc/self/status");
    check!(out.contains("Operation not permitted"), "mkdir did not fail with EPERM: {:?}", crate::runner::cut(&out, 200));
    check!(m.get("rc").map(|r| r != "0").unwrap_or(false), "mkdir succeeded");
    Ok(Verdict::Pass)
}

fn seccomp_errno_ret(c: &mut Ctx) -> R {
    seccomp(c, "SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]))?;
    let out = c.run_sh("mkdir /tmp/d 2>&1; true")?;
    check!(out.contains("Permission denied"), "mkdir did not fail with EACCES: {:?}", crate::runner::cut(&out, 200));
    Ok(Verdict::Pass)
}

fn seccomp_kill(c: &mut Ctx) -> R {
    seccomp(c, "SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]))?;
    // In a subshell: busybox runs mkdir in the shell's own process.
    let out = c.run_sh("(mkdir /tmp/d); echo rc=$?")?;
    check_eq!(kv(&out).get("rc").cloned().unwrap_or_default(), (128 + libc::SIGSYS).to_string(), "exit status of mkdir (128+SIGSYS)");
    Ok(Verdict::Pass)
}

fn seccomp_args(c: &mut Ctx) -> R {
    seccomp(
        c,
        "SCMP_ACT_ALLOW",
        json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": libc::SIGUSR1, "op": "SCMP_CMP_EQ"}]}]),
    )?;
    let out = c.run_sh(
        "trap 'echo got-usr2' USR2; kill -USR1 $$ 2>/dev/null && echo usr1=sent || echo usr1=blocked; kill -USR2 $$ && echo usr2=sent",
    )?;
    let m = kv(&out);
    check_eq!(m.get("usr1").cloned().unwrap_or_default(), "blocked", "kill(pid, SIGUSR1) with a filter on signal 10");
    check_eq!(m.get("usr2").cloned().unwrap_or_default(), "sent", "kill(pid, SIGUSR2) (not filtered)");
    Ok(Verdict::Pass)
}

fn seccomp_default(c: &mut Ctx) -> R {
    // Everything busybox sh + cat need is allowed; getpid/getppid are not.
    seccomp(c, "SCMP_ACT_ALLOW", json!([]))?;
    let allow: Vec<&str> = vec![
        "read",
        "write",
        "open",
        "openat",
        "close",
        "stat",
        "fstat",
        "lstat",
        "newfstatat",
        "statx",
        "poll",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "pread64",
        "readv",
        "writev",
        "access",
        "faccessat",
        "faccessat2",
        "pipe",
        "pipe2",
        "dup",
        "dup2",
        "dup3",
        "fcntl",
        "getdents64",
        "getcwd",
        "chdir",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "kill",
        "uname",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "getrandom",
        "arch_prctl",
        "futex",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "sysinfo",
        "readlink",
        "readlinkat",
        "sigaltstack",
        "madvise",
        "capget",
        "capset",
        "setgroups",
        "setuid",
        "setgid",
        "setresuid",
        "setresgid",
        "prctl",
        "getpgrp",
        "setpgid",
        "getpgid",
        "setsid",
        "tgkill",
        "gettid",
        "nanosleep",
        "clock_nanosleep",
        "clock_gettime",
        "gettimeofday",
        "sched_getaffinity",
        "sched_yield",
        "seccomp",
        "fstatfs",
        "statfs",
        "umask",
        "mremap",
        "epoll_create1",
        "epoll_ctl",
        "epoll_wait",
        "epoll_pwait",
        "select",
        "pselect6",
        "ppoll",
        "socket",
        "connect",
        "sendto",
        "recvfrom",
        "close_range",
        "getrlimit",
        "setrlimit",
        "newuname",
        "utimensat",
        "unlink",
        "unlinkat",
        "mkdir",
        "mkdirat",
        "rename",
        "renameat",
        "renameat2",
        "chmod",
        "fchmod",
        "fchmodat",
        "chown",
        "fchown",
        "fchownat",
        "lchown",
        "getxattr",
        "lgetxattr",
        "fgetxattr",
        "keyctl",
        "membarrier",
        "personality",
        "mount",
        "umount2",
        "pivot_root",
        "sethostname",
        "setdomainname",
        "chroot",
        "fchdir",
        "getppid",
        "getpid",
    ];
    // mkdir and mkdirat are left to the default action.
    let mut allow: Vec<&str> = allow.into_iter().filter(|s| *s != "mkdir" && *s != "mkdirat").collect();
    allow.sort();
    allow.dedup();
    c.config["linux"]["seccomp"]["defaultAction"] = json!("SCMP_ACT_ERRNO");
    c.config["linux"]["seccomp"]["syscalls"] = json!([{"names": allow, "action": "SCMP_ACT_ALLOW"}]);
    let out = c.run_sh("(mkdir /tmp/d) 2>&1; echo rc=$?; grep -c Seccomp /proc/self/status")?;
    let m = kv(&out);
    check!(
        out.contains("Operation not permitted") && m.get("rc").map(|r| r != "0").unwrap_or(false),
        "mkdir (not in the allow list) was not refused with EPERM: {:?}",
        crate::runner::cut(&out, 200)
    );
    check!(out.lines().any(|l| l.trim() == "2"), "allowed syscalls failed: {:?}", crate::runner::cut(&out, 200));
    Ok(Verdict::Pass)
}

fn personality(c: &mut Ctx) -> R {
    need!(c.host.arch == "x86_64" || c.host.arch == "aarch64", "LINUX32 is checked on x86_64 and aarch64 only (host: {})", c.host.arch);
    c.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let out = c.run_sh("uname -m; cat /proc/self/personality")?;
    let m = out.lines().next().unwrap_or("").trim().to_string();
    let want32 = ["i686", "i386", "armv7l", "armv8l"];
    check!(want32.contains(&m.as_str()), "uname -m says {m:?} with personality LINUX32");
    Ok(Verdict::Pass)
}

//! The security regression suite: one test per known runc escape class
//! (and the protections around them), each showing the attack fails here.
//! Every class runs twice (`escape_classes!` below): with the default
//! capabilities, and with CAP_SYS_PTRACE and CAP_SYS_ADMIN added to every
//! capability set, since what stops an attacker holding those (ptrace of
//! our processes, mounting, writing /proc/sys) is what these tests are
//! about. More seccomp checks are in seccomp.rs.
#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// The 2025 runc classes (CVE-2025-31133, -52565, -52881).
#[path = "security/cve_2025.rs"]
mod cve_2025;
use cve_2025::*;

/// Sealing the runtime's image without a second exec.
#[path = "security/seal_in_place.rs"]
mod seal_in_place;

/// Compile a small static C program into the rootfs, or None (printed)
/// when this machine has no C compiler with a static libc.
fn compile_into(t: &Harness, name: &str, src: &str) -> Option<std::path::PathBuf> {
    let c = t.dir.join(format!("{name}.c"));
    write_file(&c, src);
    let out = t.rootfs.join(name);
    match Command::new("gcc").args(["-static", "-O1", "-o"]).arg(&out).arg(&c).output() {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            testkit::skip!("gcc -static failed: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            testkit::skip!("no gcc to build the test program ({e})");
            None
        }
    }
}

fn write_script(path: &Path, text: &str) {
    write_file(path, text);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What our binary prints when it runs with arguments it does not know.
fn ran_the_runtime(out: &Out) -> bool {
    let all = out.all_output();
    all.contains("Usage:") || all.contains(&runtime_version_line()) || all.contains("unrecognized subcommand")
}

/// The capabilities an escape class runs under.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Caps {
    /// runc's `spec` defaults.
    Default,
    /// CAP_SYS_PTRACE and CAP_SYS_ADMIN added to every capability set
    /// (inheritable too, so the ambient ones hold, and a non-root program
    /// keeps them): the container may ptrace, mount and write what root
    /// may in /proc.
    PtraceAndAdmin,
}

impl Caps {
    fn apply(self, t: &mut Harness) {
        if let Caps::PtraceAndAdmin = self {
            let caps = &mut t.config["process"]["capabilities"];
            if caps["inheritable"].is_null() {
                caps["inheritable"] = json!([]);
            }
            for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
                if let Some(a) = t.config["process"]["capabilities"][set].as_array_mut() {
                    for c in ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"] {
                        if !a.iter().any(|x| x == c) {
                            a.push(json!(c));
                        }
                    }
                }
            }
        }
    }
}

/// `escape_classes!(f, ...)`: a module per class `f(caps: Caps)`, with a
/// test under each capability set (`f::default_caps`,
/// `f::with_sys_ptrace_and_sys_admin`), so a failure names both.
macro_rules! escape_classes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn default_caps() {
                    super::$name(super::Caps::Default)
                }
                #[test]
                fn with_sys_ptrace_and_sys_admin() {
                    super::$name(super::Caps::PtraceAndAdmin)
                }
            }
        )*
    };
}

escape_classes!(
    cve_2019_5736_proc_self_exe_interpreter_on_run,
    cve_2019_5736_proc_self_exe_interpreter_as_start_container_hook,
    cve_2019_5736_proc_self_exe_interpreter_on_exec,
    cve_2019_5736_runtime_binary_unreachable_through_parked_init,
    exec_in_progress_cannot_be_ptraced_from_inside,
    cve_2021_30465_mount_destination_symlink_stays_in_rootfs,
    cve_2024_21626_cwd_through_leaked_fd_is_refused,
    cve_2023_27561_proc_or_sys_as_symlink_is_refused,
    cve_2019_16884_fake_proc_is_refused,
    cve_2019_19921_symlink_into_proc_is_refused,
    no_new_privs_blocks_setuid_gain,
    default_seccomp_profile_blocks_keyctl_and_user_namespaces,
    x32_syscalls_meet_the_deny_rules,
    cve_2025_31133_masked_paths_with_dev_null_swapped_for_a_symlink,
    cve_2025_52565_dev_console_swapped_for_a_symlink,
    cve_2025_52881_procfs_writes_redirected_by_overmounts,
    cve_2025_52881_procfs_writes_redirected_by_overmounts_in_a_user_namespace,
    cve_2025_52881_readonly_paths_through_an_overmounted_proc_self_fd,
    cve_2025_52881_cap_last_cap_read_through_an_overmount,
    cve_2025_52881_fd_sweep_through_an_overmounted_proc_self_fd,
    cve_2025_52881_trampoline_exec_through_an_overmounted_proc_self_fd,
);

/// The second variant really holds the two capabilities (else every
/// `with_sys_ptrace_and_sys_admin` test would quietly repeat the first).
#[test]
fn the_capability_variants_are_what_they_say() {
    for (caps, want) in [(Caps::Default, false), (Caps::PtraceAndAdmin, true)] {
        let mut t = harness!("sec-caps");
        caps.apply(&mut t);
        t.sh("grep -E '^Cap(Eff|Prm|Bnd|Amb):' /proc/self/status");
        let out = t.run_ok();
        let bits = cap_mask(&["SYS_PTRACE", "SYS_ADMIN"]);
        for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            let v = parse_hex(&status_field(&out, set).unwrap_or_else(|| panic!("no {set}: {out}")));
            assert_eq!(v & bits == bits, want, "{caps:?}: {set} {v:x}");
        }
    }
}

/// CVE-2019-5736 on run: the image's program is a script whose interpreter
/// is /proc/self/exe. The kernel resolves that while the runtime's process
/// execs it, so a runtime that execs from its own binary would run the
/// host's runtime binary inside the container, to be overwritten through
/// /proc/<pid>/exe. Here the interpreter is a sealed trampoline instead.
fn cve_2019_5736_proc_self_exe_interpreter_on_run(caps: Caps) {
    if is_reference_runc() {
        testkit::skip!("runc runs a sealed copy of itself, which prints its version; this checks our design");
        return;
    }
    let mut t = harness!("sec-5736-run");
    caps.apply(&mut t);
    write_script(&t.rootfs.join("evil"), "#!/proc/self/exe --version\n");
    t.args(&["/evil"]);
    let before = std::fs::read(runtime_path()).unwrap();
    let out = t.run();
    assert!(!ran_the_runtime(&out), "the runtime binary ran inside the container: {}", out.describe());
    assert!(!out.ok(), "{}", out.describe());
    assert!(std::fs::read(runtime_path()).unwrap() == before, "the runtime binary changed");
}

/// CVE-2019-5736 through a startContainer hook: its path is resolved in
/// the container, so the image decides what it is.
fn cve_2019_5736_proc_self_exe_interpreter_as_start_container_hook(caps: Caps) {
    if is_reference_runc() {
        testkit::skip!("runc runs a sealed copy of itself, which prints its version; this checks our design");
        return;
    }
    let mut t = harness!("sec-5736-hook");
    caps.apply(&mut t);
    write_script(&t.rootfs.join("evil"), "#!/proc/self/exe --version\n");
    t.config["hooks"] = json!({"startContainer": [{"path": "/evil"}]});
    t.args(&["true"]);
    let log = t.dir.join("log.json");
    t.global_args = vec!["--log".into(), log.to_string_lossy().into_owned()];
    let out = t.run();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!out.ok(), "{}", out.describe());
    // The hook's output is in the error the container's init logs.
    assert!(logged.contains("startContainer"), "{logged}");
    assert!(!logged.contains("Usage:") && !logged.contains("unrecognized"), "the runtime binary ran as the hook: {logged}");
}

/// CVE-2019-5736 on exec, with a watcher inside that grabs every new
/// process's /proc/<pid>/exe and tries to write through it.
fn cve_2019_5736_proc_self_exe_interpreter_on_exec(caps: Caps) {
    if is_reference_runc() {
        testkit::skip!("runc runs a sealed copy of itself, which prints its version; this checks our design");
        return;
    }
    let mut t = harness!("sec-5736-exec");
    caps.apply(&mut t);
    write_script(&t.rootfs.join("evil"), "#!/proc/self/exe --version\n");
    t.share();
    t.sh("(while :; do for e in /proc/[0-9]*/exe; do \
            case $(readlink $e 2>/dev/null) in *busybox*|'') ;; *) echo \"$(readlink $e)\" >> /shared/seen; \
            echo x 2>/dev/null >> $e && echo WROTE >> /shared/seen;; esac; done; done");
    t.run_detached().assert_ok();
    for _ in 0..5 {
        let out = t.rt(&["exec", &t.id, "/evil"]);
        assert!(!ran_the_runtime(&out), "the runtime binary ran inside the container: {}", out.describe());
        assert!(!out.ok(), "{}", out.describe());
    }
    let seen = std::fs::read_to_string(t.shared.join("seen")).unwrap_or_default();
    assert!(!seen.contains("WROTE"), "wrote through /proc/<pid>/exe: {seen}");
    if caps == Caps::Default {
        assert!(!seen.contains("rpc-runc"), "the runtime binary was visible as a process's exe: {seen}");
    }
    // With CAP_SYS_PTRACE the kernel lets the container see the exe of
    // every process in its pid namespace, a fork of the runtime's too: what
    // it sees is the sealed read-only view (the write above failed), and
    // cve_2019_5736_with_cap_sys_ptrace_* hold a handle and write later.
}

/// CVE-2021-30465 class: a mount destination that is a symlink out of the
/// rootfs is resolved inside it; nothing appears on the host.
fn cve_2021_30465_mount_destination_symlink_stays_in_rootfs(caps: Caps) {
    let mut t = harness!("sf-symlink-dest");
    caps.apply(&mut t);
    let host_target = t.dir.join("host-target");
    std::os::unix::fs::symlink(&host_target, t.rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../tmp", t.rootfs.join("up")).unwrap();
    t.add_mount(json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"}));
    t.add_mount(json!({"destination": "/up/rpct-escape-probe", "type": "tmpfs", "source": "tmpfs"}));
    t.sh("grep -c tmpfs /proc/self/mounts >/dev/null; test -d /evil/sub && echo inside");
    let out = t.run_ok();
    assert!(out.contains("inside"), "{out}");
    assert!(!host_target.exists(), "the runtime created {} on the host", host_target.display());
    assert!(!std::path::Path::new("/tmp/rpct-escape-probe").exists(), "escaped through ../");
    // The mount went where the symlink points *inside* the rootfs.
    assert!(t.rootfs.join(host_target.strip_prefix("/").unwrap()).join("sub").is_dir());
}

/// CVE-2024-21626 class: a cwd through /proc/self/fd/N can never be a
/// host directory the runtime had open.
fn cve_2024_21626_cwd_through_leaked_fd_is_refused(caps: Caps) {
    for n in 3..12 {
        let mut t = harness!("sf-cwd-fd");
        caps.apply(&mut t);
        t.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        t.sh("ls -a . ; cat state.json 2>/dev/null; pwd");
        let out = t.run();
        let all = out.all_output();
        assert!(
            !all.contains("ociVersion") && !all.contains("state.json") && !all.contains("exec.fifo") && !all.contains("exec.sock"),
            "fd {n}: the container saw a host directory: {all}"
        );
    }
}

/// CVE-2019-5736 class: while init is parked (a fork of the runtime), a
/// process sharing its pid namespace can neither read nor write the
/// runtime binary through /proc/1/exe; after start, /proc/1/exe is the
/// container's own program.
fn cve_2019_5736_runtime_binary_unreachable_through_parked_init(caps: Caps) {
    if is_reference_runc() {
        testkit::skip!("runc parks in a re-executed copy of itself; this checks our design");
        return;
    }
    let mut a = harness!("sf-exe");
    caps.apply(&mut a);
    a.args(&["sleep", "300"]);
    a.create().assert_ok();
    let pid = a.pid();
    let mut b = harness!("sf-exe-b");
    caps.apply(&mut b);
    b.set_namespace(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}));
    b.sh(
        "cat /proc/1/exe >/dev/null 2>&1 && echo READ; echo x 2>/dev/null >> /proc/1/exe && echo WROTE; ls -l /proc/1/exe 2>&1; echo done",
    );
    let out = b.run_ok();
    assert!(out.contains("done"), "{out}");
    assert!(!out.contains("WROTE"), "runtime binary writable: {out}");
    // Non-dumpable keeps a default container out altogether; one with
    // CAP_SYS_PTRACE may read the (sealed, read-only) image.
    assert!(caps == Caps::PtraceAndAdmin || !out.contains("READ"), "runtime binary readable: {out}");
    a.start().assert_ok();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(!exe.to_string_lossy().contains("rpc-runc"), "/proc/1/exe is {}", exe.display());
}

/// CVE-2023-27561 (and CVE-2019-19921's original form): /proc and /sys
/// must not be symlinks in the rootfs, or procfs and sysfs would land where
/// the image points. Refused, and nothing is left behind.
fn cve_2023_27561_proc_or_sys_as_symlink_is_refused(caps: Caps) {
    for dir in ["proc", "sys"] {
        let mut t = harness!("sec-27561");
        caps.apply(&mut t);
        let p = t.rootfs.join(dir);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(t.rootfs.join("tmp/elsewhere")).unwrap();
        std::os::unix::fs::symlink("tmp/elsewhere", &p).unwrap();
        if dir == "sys" {
            t.add_mount(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}));
        }
        let marker = format!("{}-m", t.id);
        t.marked_sleep(&marker);
        let out = t.create();
        assert!(!out.ok(), "{dir}: {}", out.describe());
        assert!(out.stderr.contains(&format!("/{dir}")) && out.stderr.contains("symlink"), "{dir}: {}", out.describe());
        t.assert_no_leftovers(&t.id.clone(), &marker);
        assert_eq!(std::fs::read_dir(t.rootfs.join("tmp/elsewhere")).unwrap().count(), 0, "something was mounted through the link");
    }
}

/// CVE-2019-16884: an image (or volume) providing a fake /proc, so the
/// LSM label write lands in a plain file. Only procfs may cover /proc.
fn cve_2019_16884_fake_proc_is_refused(caps: Caps) {
    for (name, m) in [
        ("bind", json!({"destination": "/proc", "type": "bind", "source": "fakeproc", "options": ["rbind"]})),
        ("tmpfs", json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"})),
    ] {
        let mut t = harness!("sec-16884");
        caps.apply(&mut t);
        let fake = t.bundle.join("fakeproc/self/attr");
        std::fs::create_dir_all(&fake).unwrap();
        write_file(&fake.join("exec"), "");
        t.add_mount(m);
        t.config["process"]["apparmorProfile"] = json!("rpc-test-profile");
        let marker = format!("{}-m", t.id);
        t.marked_sleep(&marker);
        let out = t.create();
        assert!(!out.ok(), "{name}: {}", out.describe());
        assert!(out.stderr.contains("/proc") && out.stderr.contains("not of type proc"), "{name}: {}", out.describe());
        t.assert_no_leftovers(&t.id.clone(), &marker);
        assert_eq!(std::fs::read_to_string(fake.join("exec")).unwrap(), "", "{name}: the label went to the fake /proc");
    }
}

/// CVE-2019-19921: a symlink in the image carries a mount into /proc (over
/// /proc itself, or inside it where the runtime writes /proc/self/attr).
fn cve_2019_19921_symlink_into_proc_is_refused(caps: Caps) {
    for (link, target, dest, word) in
        [("evil", "/proc", "/evil", "not of type proc"), ("evil2", "/proc/self", "/evil2/attr", "inside /proc")]
    {
        let mut t = harness!("sec-19921");
        caps.apply(&mut t);
        std::os::unix::fs::symlink(target, t.rootfs.join(link)).unwrap();
        t.add_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        let marker = format!("{}-m", t.id);
        t.marked_sleep(&marker);
        let out = t.create();
        assert!(!out.ok(), "{dest}: {}", out.describe());
        assert!(out.stderr.contains(word), "{dest}: {}", out.describe());
        t.assert_no_leftovers(&t.id.clone(), &marker);
    }
}

/// What the /proc rules still allow: lxcfs-style bind mounts over the few
/// files lxcfs emulates, and procfs itself.
#[test]
fn lxcfs_style_views_over_proc_files_are_allowed() {
    let mut t = harness!("sec-lxcfs");
    let view = t.dir.join("meminfo");
    write_file(&view, "MemTotal:        1024 kB\n");
    t.add_mount(json!({"destination": "/proc/meminfo", "type": "bind", "source": view.to_str().unwrap(), "options": ["bind", "ro"]}));
    t.sh("head -1 /proc/meminfo");
    let out = t.run_ok();
    assert!(out.contains("MemTotal:        1024 kB"), "{out}");
}

const EUID_C: &str = "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"euid=%d\\n\", (int)geteuid());return 0;}\n";

/// no_new_privs: a setuid-root program run by uid 1000 gains euid 0
/// without it, and does not with it.
fn no_new_privs_blocks_setuid_gain(caps: Caps) {
    for nnp in [false, true] {
        let mut t = harness!("sec-nnp");
        caps.apply(&mut t);
        let Some(prog) = compile_into(&t, "euid", EUID_C) else {
            return;
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
        t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        t.config["process"]["noNewPrivileges"] = json!(nnp);
        t.args(&["/euid"]);
        let out = t.run_ok();
        let want = if nnp { "euid=1000" } else { "euid=0" };
        assert!(out.contains(want), "noNewPrivileges {nnp}: {out}");
    }
}

/// The default profile `spec` writes blocks keyctl (the kernel keyring is
/// not namespaced) and unshare(CLONE_NEWUSER); without it both work.
fn default_seccomp_profile_blocks_keyctl_and_user_namespaces(caps: Caps) {
    let mut t = harness!("sec-keyctl");
    caps.apply(&mut t);
    let src = "#include <stdio.h>\n#include <errno.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
               int main(void){long r = syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3 /*SESSION*/, 1);\
               printf(\"keyctl=%ld errno=%d\\n\", r, r < 0 ? errno : 0);return 0;}\n";
    if compile_into(&t, "keyctl", src).is_none() {
        return;
    }
    let spec_dir = t.dir.join("specdir");
    std::fs::create_dir_all(&spec_dir).unwrap();
    t.rt(&["spec", "--bundle", spec_dir.to_str().unwrap()]).assert_ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(spec_dir.join("config.json")).unwrap()).unwrap();
    assert!(!v["linux"]["seccomp"].is_null(), "spec wrote no seccomp profile");
    t.sh("/keyctl; unshare -U true 2>/dev/null; echo unshare=$?");
    let open = t.run_ok();
    assert!(open.contains("errno=0") && open.contains("unshare=0"), "without a profile both work: {open}");
    t.config["linux"]["seccomp"] = v["linux"]["seccomp"].clone();
    let out = t.run_ok();
    assert!(out.contains("keyctl=-1 errno=1"), "keyctl not blocked with EPERM: {out}");
    assert!(out.contains("unshare=1"), "unshare -U not blocked: {out}");
}

/// While `exec` is inside the container's namespaces (here held there by a
/// seccomp NOTIFY nobody answers, just before it would exec), a process of
/// the container cannot read the runtime's memory, environment, fds or
/// binary: the runtime is non-dumpable until it execs. A process of the
/// container itself is readable the same way (the control).
fn exec_in_progress_cannot_be_ptraced_from_inside(caps: Caps) {
    let mut t = harness!("sec-ptrace");
    caps.apply(&mut t);
    let sock = t.dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_NOTIFY"}]});
    p["listenerPath"] = json!(sock.to_str().unwrap());
    t.config["linux"]["seccomp"] = p;
    // Without no_new_privs the filter goes in before the user and the
    // capabilities change, so chdir (the cwd) comes after it.
    t.config["process"]["noNewPrivileges"] = json!(false);
    t.share();
    t.sh("while [ ! -s /shared/target ]; do sleep 0.05; done; p=$(cat /shared/target); \
          { for f in environ maps; do cat /proc/$p/$f >/dev/null 2>&1 && echo \"read $f\"; done; \
            ( exec 3</proc/$p/mem ) 2>/dev/null && echo 'read mem'; \
            for l in exe cwd root; do readlink /proc/$p/$l >/dev/null 2>&1 && echo \"read $l\"; done; \
            for f in /proc/$p/fd/*; do readlink $f >/dev/null 2>&1 && echo \"read $f\"; ( exec 3<$f ) 2>/dev/null && echo \"read (open) $f\"; \
              [ -d $f ] && echo \"dir $f $(readlink $f)\"; done; \
            for l in cwd root; do ls /proc/$p/$l/.. >/dev/null 2>&1 && echo \"walk $l $(readlink /proc/$p/$l)\"; done; \
            cat /proc/1/environ >/dev/null 2>&1 && echo control-ok; test -e /proc/$p/status && echo target-alive; \
          } > /shared/result.tmp; mv /shared/result.tmp /shared/result; sleep 300");
    // The agent answers the container's own notifications (its init's
    // chdir) with "continue", and never reads exec's listener.
    std::thread::spawn(move || {
        let Ok((conn, _)) = listener.accept() else { return };
        let Ok((_, fd)) = recv_fd_msg(&conn) else { return };
        const RECV: libc::c_ulong = 0xc0502100;
        const SEND: libc::c_ulong = 0xc0182101;
        loop {
            let mut req = [0u8; 80];
            // SAFETY: ioctls on the listener with correctly sized buffers.
            if unsafe { libc::ioctl(fd, RECV, req.as_mut_ptr()) } != 0 {
                return;
            }
            let mut resp = [0u8; 24];
            resp[..8].copy_from_slice(&req[..8]);
            resp[20..24].copy_from_slice(&1u32.to_ne_bytes()); // SECCOMP_USER_NOTIF_FLAG_CONTINUE
                                                               // SAFETY: as above.
            unsafe { libc::ioctl(fd, SEND, resp.as_mut_ptr()) };
        }
    });
    t.run_detached().assert_ok();
    let init = t.pid();
    let (mut child, op, ep) = t.spawn(&["exec", &t.id, "true"]);
    let rt = child.id() as i32;
    // exec's process: a child of the runtime, in the container's pid
    // namespace, blocked in the seccomp notification.
    let mut target = None;
    wait_until(T, || {
        target = std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).find(|&p| {
            let st = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            status_field(&st, "PPid").as_deref() == Some(&rt.to_string()) && pid_ns(p, "pid") == pid_ns(init, "pid")
        });
        target.is_some()
    });
    let Some(target) = target else {
        let _ = child.kill();
        let out = t.wait_spawned(child, op, ep, T);
        panic!("exec's process never appeared in the container: {}", out.describe());
    };
    let st = std::fs::read_to_string(format!("/proc/{target}/status")).unwrap();
    let nspid = status_field(&st, "NSpid").unwrap_or_default();
    let inner = nspid.split_whitespace().last().unwrap_or("").to_string();
    std::fs::write(t.shared.join("target"), &inner).unwrap();
    let done = wait_until(T, || t.shared.join("result").exists());
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "the container never reported");
    let log = std::fs::read_to_string(t.shared.join("result")).unwrap_or_default();
    assert!(log.contains("control-ok") && log.contains("target-alive"), "the probe did not run as planned: {log}");
    match caps {
        Caps::Default => assert!(!log.contains("read "), "the container reached exec's process (pid {inner} inside): {log}"),
        // CAP_SYS_PTRACE in the host's user namespace may read any process
        // of its pid namespace (the kernel's rule, runc's init too): what
        // exec's process must not hold is a way to the host.
        Caps::PtraceAndAdmin => {
            assert!(!log.contains("dir /proc/"), "exec's process holds a directory of the host: {log}");
            for l in log.lines().filter(|l| l.starts_with("walk ")) {
                assert!(l.ends_with(" /"), "exec's cwd/root is not the container's root: {log}");
            }
        }
    }
}

/// The x32 ABI (syscall numbers with bit 30 set) cannot go around a deny
/// rule: with x32 in `architectures`, an x32 mkdir meets the same ERRNO
/// rule as the native one. (This host's kernel has no x32 ABI, so a call
/// the filter let through would fail with ENOSYS, not the rule's EACCES.)
fn x32_syscalls_meet_the_deny_rules(caps: Caps) {
    let mut t = harness!("sec-x32");
    caps.apply(&mut t);
    let src = "#include <stdio.h>\n#include <errno.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
               int main(void){long a = syscall(SYS_mkdir, \"/tmp/native\", 0755); int ea = a < 0 ? errno : 0;\
               long b = syscall(0x40000000 | SYS_mkdir, \"/tmp/x32\", 0755); int eb = b < 0 ? errno : 0;\
               printf(\"native=%d x32=%d\\n\", ea, eb);return 0;}\n";
    if compile_into(&t, "x32", src).is_none() {
        return;
    }
    t.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    t.args(&["/x32"]);
    let out = t.run_ok();
    assert!(out.contains("native=13 x32=13"), "{out}");
}

/// The capabilities a privileged-ish container adds: with CAP_SYS_PTRACE
/// in the host's user namespace, non-dumpable no longer keeps it out of
/// our processes in its pid namespace.
fn grant_ptrace_and_admin(t: &mut Harness) {
    for set in ["bounding", "effective", "permitted"] {
        let caps = t.config["process"]["capabilities"][set].as_array_mut().unwrap();
        for c in ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"] {
            caps.push(json!(c));
        }
    }
}

/// A private copy of the runtime binary to attack (the build's own must
/// survive a failing run), and a command line that runs it.
fn runtime_copy(t: &Harness) -> std::path::PathBuf {
    let bin = t.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copy = bin.join("rpc-runc");
    std::fs::copy(runtime_path(), &copy).unwrap();
    copy
}

fn copy_cmd(t: &Harness, copy: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(copy);
    c.arg("--root").arg(&t.root).args(args).current_dir(&t.dir).stdin(std::process::Stdio::null());
    c
}

/// CVE-2019-5736 with CAP_SYS_PTRACE (issue 19, defect 1): a process of
/// the container holding CAP_SYS_PTRACE and CAP_SYS_ADMIN opens
/// /proc/1/exe of the parked init (a fork of the runtime), keeps the
/// handle, and writes through it once no runtime runs the binary; and it
/// walks to the host through any directory the parked init holds open.
/// Neither may reach anything writable of the host.
#[test]
fn cve_2019_5736_with_cap_sys_ptrace_cannot_write_the_runtime_binary() {
    if is_reference_runc() {
        testkit::skip!("checks our binary's protection through a private copy of it");
        return;
    }
    let mut t = harness!("sec-5736-ptrace");
    grant_ptrace_and_admin(&mut t);
    t.share();
    t.args(&["sleep", "300"]);
    t.write_config();
    t.track(&t.id.clone());
    let copy = runtime_copy(&t);
    let before = std::fs::read(&copy).unwrap();
    let b = t.bundle_str();
    t.exec(copy_cmd(&t, &copy, &["create", "--bundle", &b, &t.id]), T).assert_ok();
    let attack = "exec 3</proc/1/exe || echo NOOPEN >> /shared/r; \
        for n in $(ls /proc/1/fd); do [ -d /proc/1/fd/$n ] && ls /proc/1/fd/$n/.. >/dev/null 2>&1 && echo \"DIRFD $n $(readlink /proc/1/fd/$n)\" >> /shared/r; done; \
        echo ready >> /shared/r; \
        while [ ! -e /shared/go ]; do usleep 20000; done; \
        echo PWNED 2>>/shared/r >> /proc/self/fd/3 && echo WROTE >> /shared/r; \
        echo done >> /shared/r";
    t.exec(copy_cmd(&t, &copy, &["exec", "-d", &t.id, "sh", "-c", attack]), T).assert_ok();
    assert!(wait_until(T, || t.shared_file("r").contains("ready")), "attacker not ready: {}", t.shared_file("r"));
    // init execs the program: from here on no process runs the binary.
    t.exec(copy_cmd(&t, &copy, &["start", &t.id]), T).assert_ok();
    std::fs::write(t.shared.join("go"), b"").unwrap();
    assert!(wait_until(T, || t.shared_file("r").contains("done")), "attacker did not finish: {}", t.shared_file("r"));
    let r = t.shared_file("r");
    assert!(!r.contains("WROTE") && std::fs::read(&copy).unwrap() == before, "wrote the runtime binary: {r}");
    assert!(!r.contains("DIRFD"), "the parked init held a host directory the container could walk: {r}");
    t.exec(copy_cmd(&t, &copy, &["delete", "-f", &t.id]), T).assert_ok();
}

/// The same attacker scanning for every new process while the host runs
/// `exec` in a loop (as the issue reproduced it): each exec'd process is a
/// fork of the runtime until its trampoline exec.
#[test]
fn cve_2019_5736_with_cap_sys_ptrace_racing_exec() {
    if is_reference_runc() {
        testkit::skip!("checks our binary's protection through a private copy of it");
        return;
    }
    let mut t = harness!("sec-5736-ptrace-exec");
    grant_ptrace_and_admin(&mut t);
    t.share();
    // Grab the exe of every process that runs the runtime and write it
    // (the open is for writing at once: a fork of the runtime sits in its
    // pid namespace only while a runtime executes the binary, when the
    // write itself fails with ETXTBSY; keep a read handle and retry after).
    t.sh("(while :; do for e in /proc/[0-9]*/exe; do \
            l=$(readlink $e 2>/dev/null); case $l in *rpc-runc*) \
              exec 3<$e && { echo \"$l\" >> /shared/seen; touch /shared/held; \
              while [ ! -e /shared/go ]; do usleep 20000; done; \
              echo x 2>>/shared/seen >> /proc/self/fd/3 && echo WROTE >> /shared/seen; echo done >> /shared/seen; exit 0; };; \
            *) ;; esac; done; done) & while :; do sleep 1; done");
    t.write_config();
    t.track(&t.id.clone());
    let copy = runtime_copy(&t);
    let before = std::fs::read(&copy).unwrap();
    let b = t.bundle_str();
    t.exec(copy_cmd(&t, &copy, &["run", "-d", "--bundle", &b, &t.id]), T).assert_ok();
    for _ in 0..200 {
        if t.shared.join("held").exists() {
            break;
        }
        t.exec(copy_cmd(&t, &copy, &["exec", &t.id, "true"]), T).assert_ok();
    }
    std::fs::write(t.shared.join("go"), b"").unwrap();
    if t.shared.join("held").exists() {
        assert!(wait_until(T, || t.shared_file("seen").contains("done")), "{}", t.shared_file("seen"));
    }
    let seen = t.shared_file("seen");
    assert!(!seen.contains("WROTE") && std::fs::read(&copy).unwrap() == before, "wrote the runtime binary: {seen}");
    eprintln!("attacker caught a runtime process: {}: {seen}", t.shared.join("held").exists());
    t.exec(copy_cmd(&t, &copy, &["delete", "-f", &t.id]), T).assert_ok();
}

/// A static ELF (x86_64) whose PT_INTERP is `interp`: the kernel loads
/// that file as the interpreter, and the program's own code (exit 0) never
/// runs unless the interpreter jumps to it.
fn elf_with_interp(interp: &str) -> Vec<u8> {
    const BASE: u64 = 0x1000_0000;
    let code: [u8; 9] = [0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05]; // exit(0)
    let interp_off = 64 + 2 * 56;
    let code_off = interp_off + interp.len() + 1;
    let total = (code_off + code.len()) as u64;
    let mut v = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v.extend_from_slice(&0x3eu16.to_le_bytes()); // x86_64
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&(BASE + code_off as u64).to_le_bytes()); // entry
    v.extend_from_slice(&64u64.to_le_bytes()); // phoff
    v.extend_from_slice(&0u64.to_le_bytes()); // shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // flags
    for h in [64u16, 56, 2, 0, 0, 0] {
        v.extend_from_slice(&h.to_le_bytes());
    }
    let n = (interp.len() + 1) as u64;
    // PT_INTERP, R
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&4u32.to_le_bytes());
    for x in [interp_off as u64, BASE + interp_off as u64, BASE + interp_off as u64, n, n, 1] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    // PT_LOAD of the whole file, R+X
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&5u32.to_le_bytes());
    for x in [0, BASE, BASE, total, total, 0x1000] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(interp.as_bytes());
    v.push(0);
    v.extend_from_slice(&code);
    v
}

/// An image program whose interpreter is /proc/self/exe, as a `#!` script
/// with no argument and as an ELF's PT_INTERP: /proc/self/exe is then the
/// exec trampoline, which used to exec the program again forever at 100%
/// CPU as the container's pid 1 (deaf to the SIGTERM `run` forwards). It
/// must refuse at once, say why, and exit 126, on run and on exec.
#[test]
fn proc_self_exe_as_interpreter_fails_fast_on_run_and_exec() {
    if is_reference_runc() {
        testkit::skip!("runc runs a sealed copy of itself; this checks our trampoline");
        return;
    }
    let refused = "failed: refused to run the runtime's exec trampoline as its interpreter";
    let check = |what: &str, out: &Out, prog: &str, took: Duration| {
        assert!(!out.timed_out, "{what}: hung (the trampoline exec'd itself): {}", out.describe());
        assert_eq!(out.code(), 126, "{what}: {}", out.describe());
        assert!(out.stderr.contains(&format!("exec {prog} {refused}")), "{what}: {}", out.describe());
        assert!(!ran_the_runtime(out), "{what}: {}", out.describe());
        assert!(took < Duration::from_secs(5), "{what}: slow: {took:?}");
    };
    let before = std::fs::read(runtime_path()).unwrap();
    for (prog, kind) in [("/shebang", "script"), ("/interp", "elf")] {
        let mut t = harness!("sec-interp-loop");
        match kind {
            "script" => write_script(&t.rootfs.join("shebang"), "#!/proc/self/exe\n"),
            _ => {
                std::fs::write(t.rootfs.join("interp"), elf_with_interp("/proc/self/exe")).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(t.rootfs.join("interp"), std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        t.args(&[prog, "a", "b"]);
        let started = std::time::Instant::now();
        let out = t.run();
        check(&format!("run {kind}"), &out, prog, started.elapsed());
        // exec into a running container.
        t.args(&["sleep", "300"]);
        t.run_detached().assert_ok();
        let started = std::time::Instant::now();
        let out = t.rt(&["exec", &t.id, prog, "a"]);
        check(&format!("exec {kind}"), &out, prog, started.elapsed());
        t.delete_force().assert_ok();
    }
    assert!(std::fs::read(runtime_path()).unwrap() == before, "the runtime binary changed");
}

//! The 2025 runc escape classes: masked paths and /dev/null
//! (CVE-2025-31133), /dev/console (CVE-2025-52565), the runtime's procfs
//! writes and mounts through the container's /proc (CVE-2025-52881).
//! Part of security.rs (its `escape_classes!` runs each under both
//! capability sets).

use super::Caps;
use crate::common::*;
use serde_json::json;
use std::process::Command;

/// A createContainer hook runs in the container's mount namespace after
/// the runtime made /dev and mounted /proc, and before pivot_root, masked
/// paths, the console and the procfs writes: it stands in for whoever
/// else can change the container's tree at that moment (a racing process
/// of another container sharing /dev or a volume, mounts propagating in
/// through a shared mount), deterministically.
fn tamper_before_pivot(t: &mut Harness, script: &str) {
    t.config["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
}

/// CVE-2025-31133: masked files are covered with the container's
/// /dev/null. Swapped for a symlink just before, a runtime that binds the
/// path "/dev/null" binds the symlink's target instead, writable (here a
/// host file through /shared; /proc/sys/kernel/core_pattern in the
/// advisory). Only a verified 1:3 character device may be used, as runc
/// 1.2.8 does: the container is refused, naming /dev/null.
pub(crate) fn cve_2025_31133_masked_paths_with_dev_null_swapped_for_a_symlink(caps: Caps) {
    let mut t = harness!("sec-31133");
    caps.apply(&mut t);
    t.share();
    let target = t.shared.join("target");
    write_file(&target, "HOST-FILE\n");
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(&mut t, &format!("rm -f {r}/dev/null && ln -s /shared/target {r}/dev/null"));
    let marker = format!("{}-m", t.id);
    t.args(&[
        "sh",
        "-c",
        "cat /proc/timer_list /proc/keys 2>&1 | head -c 100; echo; echo WROTE > /proc/timer_list; echo WROTE > /proc/keys; echo done",
        &marker,
    ]);
    let out = t.run();
    let now = std::fs::read_to_string(&target).unwrap_or_default();
    assert_eq!(now, "HOST-FILE\n", "a masked path was the symlink's target, writable: {}", out.describe());
    assert!(!out.stdout.contains("HOST-FILE"), "a masked path showed the symlink's target: {}", out.describe());
    assert!(!out.ok(), "ran with /dev/null a symlink: {}", out.describe());
    assert!(out.stderr.contains("/dev/null") && out.stderr.contains("1:3"), "{}", out.describe());
    t.assert_no_leftovers(&t.id.clone(), &marker);
}

/// CVE-2025-52565: the pty is bind-mounted over /dev/console. A symlink
/// there (left by the image when /dev is the image's own, or swapped in
/// a moment before) must not carry the mount, or the creation of a
/// missing /dev/console, anywhere else: the console is a file we made,
/// opened without following links, and the mount goes to that fd.
pub(crate) fn cve_2025_52565_dev_console_swapped_for_a_symlink(caps: Caps) {
    for (how, link) in [("image", "/victim"), ("image, dangling", "/created-by-the-runtime"), ("swapped", "/victim")] {
        let mut t = harness!("sec-52565");
        caps.apply(&mut t);
        write_file(&t.rootfs.join("victim"), "VICTIM\n");
        let r = t.rootfs.display().to_string();
        if how.starts_with("image") {
            // /dev is the image's: no tmpfs over it.
            t.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/dev");
            std::os::unix::fs::symlink(link, t.rootfs.join("dev/console")).unwrap();
        } else {
            tamper_before_pivot(&mut t, &format!("ln -s {link} {r}/dev/console"));
        }
        t.config["process"]["terminal"] = json!(true);
        t.args(&["sleep", "300"]);
        let sock = t.dir.join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let master = std::thread::spawn(move || listener.accept().ok().and_then(|(c, _)| recv_fd_msg(&c).ok()));
        let out = t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]);
        if let Some((_, fd)) = master.join().unwrap() {
            // SAFETY: the master we were sent; closing it when done.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
        out.assert_ok();
        let pid = t.pid();
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let on = |p: &str| info.lines().filter(|l| l.split(' ').nth(4) == Some(p)).count();
        assert_eq!(on(link), 0, "{how}: the pty was mounted over the symlink's target:\n{info}");
        assert!(!t.rootfs.join("created-by-the-runtime").exists(), "{how}: the symlink's target was created");
        assert_eq!(on("/dev/console"), 1, "{how}: no console mount:\n{info}");
        assert_eq!(std::fs::read_to_string(t.rootfs.join("victim")).unwrap(), "VICTIM\n", "{how}");
        let console = std::fs::symlink_metadata(format!("/proc/{pid}/root/dev/console")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(console.file_type().is_char_device(), "{how}: /dev/console is {:?}", console.file_type());
        t.delete_force().assert_ok();
    }
}

/// CVE-2025-52881: the runtime's procfs writes (sysctls, oom_score_adj,
/// LSM labels) must reach the file they name. A bind mount over
/// /proc/1/oom_score_adj or /proc/sys/net/ipv4/ip_forward (another procfs
/// file would pass an "is it procfs" check; here plain files, to see
/// where the value went) must neither receive the value nor pass for the
/// real file.
pub(crate) fn cve_2025_52881_procfs_writes_redirected_by_overmounts(caps: Caps) {
    procfs_overmounts(caps, false);
}

/// The same in a user namespace, where the private procfs instance is
/// made by the container's root. (No oomScoreAdj there: init, not
/// dumpable, may not write its own oom_score_adj from inside a user
/// namespace, with or without this attack; a separate bug.)
pub(crate) fn cve_2025_52881_procfs_writes_redirected_by_overmounts_in_a_user_namespace(caps: Caps) {
    procfs_overmounts(caps, true);
}

fn procfs_overmounts(caps: Caps, userns: bool) {
    let mut t = harness!("sec-52881");
    caps.apply(&mut t);
    if userns {
        t.set_namespace(json!({"type": "user"}));
        t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        t.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }
    let (d1, d2) = (t.dir.join("decoy-oom"), t.dir.join("decoy-sysctl"));
    for d in [&d1, &d2] {
        write_file(d, "");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(
        &mut t,
        &format!(
            "mount --bind {} {r}/proc/1/oom_score_adj && mount --bind {} {r}/proc/sys/net/ipv4/ip_forward",
            d1.display(),
            d2.display()
        ),
    );
    if !userns {
        t.config["process"]["oomScoreAdj"] = json!(123);
    }
    // (A net sysctl: its owner is the container's root, user namespace or
    // not.)
    t.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let marker = format!("{}-m", t.id);
    t.marked_sleep(&marker);
    let out = t.create();
    let (v1, v2) = (std::fs::read_to_string(&d1).unwrap(), std::fs::read_to_string(&d2).unwrap());
    assert!(v1.is_empty() && v2.is_empty(), "the runtime wrote into the overmounts: oom {v1:?}, sysctl {v2:?}: {}", out.describe());
    if !out.ok() {
        // Refused, naming what: fine, if nothing is left behind.
        assert!(
            out.stderr.contains("/proc/sys/net/ipv4/ip_forward") && out.stderr.contains("covered by another mount"),
            "{}",
            out.describe()
        );
        t.assert_no_leftovers(&t.id.clone(), &marker);
        return;
    }
    let pid = t.pid();
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(adj.trim(), if userns { "0" } else { "123" }, "oomScoreAdj not applied");
    let v = Command::new("nsenter").args(["-t", &pid.to_string(), "-n", "cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "1", "sysctl not applied: {v:?}");
}

/// CVE-2025-52881, the runtime's mounts after pivot_root: mount(2) takes
/// paths, and "/proc/self/fd/N" then goes through the container's /proc.
/// With a tmpfs of symlinks over /proc/1/fd, the read-only remount of
/// /proc/sys (and the tmpfs over masked directories) would land on a
/// directory of the attacker's choosing and leave /proc/sys writable:
/// with CAP_SYS_ADMIN, /proc/sys/kernel/core_pattern is the host's.
pub(crate) fn cve_2025_52881_readonly_paths_through_an_overmounted_proc_self_fd(caps: Caps) {
    let mut t = harness!("sec-52881-fd");
    caps.apply(&mut t);
    std::fs::create_dir_all(t.rootfs.join("decoy")).unwrap();
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(
        &mut t,
        &format!("mount -t tmpfs none {r}/proc/1/fd && for i in $(seq 0 64); do ln -s /decoy {r}/proc/1/fd/$i; done"),
    );
    t.config["linux"]["maskedPaths"] = json!(["/proc/acpi", "/proc/keys", "/sys/firmware"]);
    let marker = format!("{}-m", t.id);
    t.marked_sleep(&marker);
    // Seen from the host while init is parked: the program itself could
    // not even start here (its exec goes through /proc/self/fd too).
    let out = t.create();
    if !out.ok() {
        assert!(out.stderr.contains("linux.readonlyPaths") || out.stderr.contains("linux.maskedPaths"), "{}", out.describe());
        t.assert_no_leftovers(&t.id.clone(), &marker);
        return;
    }
    let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", t.pid())).unwrap();
    let opts = |p: &str| {
        info.lines().filter(|l| l.split(' ').nth(4) == Some(p)).map(|l| l.split(' ').nth(5).unwrap_or("").to_string()).next_back()
    };
    assert!(opts("/decoy").is_none(), "the runtime mounted on the decoy:\n{info}");
    let sys = opts("/proc/sys").unwrap_or_default();
    assert!(sys.split(',').any(|o| o == "ro"), "/proc/sys is not read-only ({sys}):\n{info}");
    let fw = opts("/sys/firmware").unwrap_or_default();
    assert!(fw.split(',').any(|o| o == "ro"), "/sys/firmware is not masked ({fw}):\n{info}");
}

/// CVE-2025-52881, a read: the highest capability the kernel knows, which
/// decides what is dropped from the bounding set, must not come from the
/// container's /proc/sys/kernel/cap_last_cap. Overmounted with "5" (and
/// no capability named in the config, so nothing asked the kernel before),
/// the bounding set would keep everything above CAP_KILL, CAP_SYS_ADMIN
/// included, for a setuid or file-capability program to take back.
pub(crate) fn cve_2025_52881_cap_last_cap_read_through_an_overmount(caps: Caps) {
    let mut t = harness!("sec-52881-cap");
    caps.apply(&mut t);
    let fake = t.dir.join("fake-cap-last-cap");
    write_file(&fake, "5\n");
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(&mut t, &format!("mount --bind {} {r}/proc/sys/kernel/cap_last_cap", fake.display()));
    let sets = json!([]);
    t.config["process"]["capabilities"] =
        json!({"bounding": sets, "effective": sets, "permitted": sets, "inheritable": sets, "ambient": sets});
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let st = std::fs::read_to_string(format!("/proc/{}/status", t.pid())).unwrap();
    let bnd = parse_hex(&status_field(&st, "CapBnd").unwrap());
    assert_eq!(bnd, 0, "the bounding set kept {bnd:x}:\n{st}");
}

/// CVE-2025-52881, the fd sweep before exec: on kernels without
/// close_range (the old-kernel rerun, RPC_TEST_OLD_KERNEL) init lists
/// /proc/self/fd to mark every fd close-on-exec. Through the container's
/// /proc, an empty tmpfs over /proc/1/fd hides them all, and an fd the
/// runtime was given (here fd 5, not close-on-exec) would reach the
/// container's program. Seen from the host while init is parked, after
/// the sweep. (With close_range, the default here, there is no listing.)
pub(crate) fn cve_2025_52881_fd_sweep_through_an_overmounted_proc_self_fd(caps: Caps) {
    use std::os::unix::process::CommandExt;
    let mut t = harness!("sec-52881-sweep");
    caps.apply(&mut t);
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(&mut t, &format!("mount -t tmpfs none {r}/proc/1/fd"));
    // No masked or read-only paths: those would refuse the overmount first.
    t.config["linux"]["maskedPaths"] = json!([]);
    t.config["linux"]["readonlyPaths"] = json!([]);
    t.args(&["sleep", "300"]);
    t.write_config();
    t.track(&t.id.clone());
    let b = t.bundle_str();
    let mut c = t.command(&["create", "--bundle", &b, &t.id]);
    let given = std::fs::File::open(t.config_path()).unwrap();
    use std::os::fd::AsRawFd;
    let fd = given.as_raw_fd();
    // (`t.command` already runs the runtime under the old-kernel filter
    // when the suite does.)
    // SAFETY: dup2 in the child before exec.
    unsafe {
        c.pre_exec(move || {
            libc::dup2(fd, 100);
            libc::dup2(100, 5);
            libc::close(100);
            Ok(())
        });
    }
    t.exec(c, std::time::Duration::from_secs(10)).assert_ok();
    let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/5", t.pid())).unwrap_or_default();
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(|f| u32::from_str_radix(f.trim(), 8).unwrap_or(0));
    // An fd 5 that is not close-on-exec would be the program's.
    assert!(flags.is_none_or(|f| f & libc::O_CLOEXEC as u32 != 0), "fd 5 reaches the program:\n{info}");
}

/// CVE-2025-52881 meets CVE-2019-5736: the last exec goes through the
/// trampoline as "/proc/self/fd/N". Through the container's /proc, a
/// tmpfs over /proc/1/fd with "N" a symlink to /proc/self/exe makes that
/// exec run the host's runtime binary inside the container.
pub(crate) fn cve_2025_52881_trampoline_exec_through_an_overmounted_proc_self_fd(caps: Caps) {
    if testkit::oldkernel::enabled() {
        // Before 3.19 there is no execveat: the trampoline can only be
        // exec'd through a /proc path (README, Known limits).
        testkit::skip!("the old-kernel surface has no execveat");
        return;
    }
    let mut t = harness!("sec-52881-tramp");
    caps.apply(&mut t);
    let r = t.rootfs.display().to_string();
    tamper_before_pivot(
        &mut t,
        &format!("mount -t tmpfs none {r}/proc/1/fd && for i in $(seq 0 64); do ln -s /proc/self/exe {r}/proc/1/fd/$i; done"),
    );
    t.config["linux"]["maskedPaths"] = json!([]);
    t.config["linux"]["readonlyPaths"] = json!([]);
    t.args(&["/bin/echo", "the program ran"]);
    let out = t.run();
    let all = out.all_output();
    assert!(
        !(all.contains("Usage:") || all.contains(&runtime_version_line()) || all.contains("unrecognized subcommand")),
        "the runtime binary ran inside the container: {}",
        out.describe()
    );
}

//! Safety from day one: fds are passed only when asked; a runtime killed
//! mid-create leaves what `delete --force` cleans up; a foreground
//! terminal works. (The escape classes, symlinked mount destinations,
//! cwd through a leaked fd and the parked init's /proc/1/exe among them,
//! are in security.rs, each under two capability sets.)
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// No fd of the runtime reaches the container's process.
#[test]
fn only_stdio_reaches_the_process() {
    let mut t = harness!("sf-fds");
    t.sh("ls /proc/self/fd | tr '\\n' ' '");
    let out = t.run_ok();
    // 0 1 2 and the fd ls uses to read the directory (3).
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
}

/// --preserve-fds N passes fds 3..3+N, and nothing beyond.
#[test]
fn preserve_fds_passes_exactly_n() {
    let mut t = harness!("sf-preserve");
    let f = t.dir.join("passed.txt");
    write_file(&f, "through fd 3\n");
    t.sh("cat <&3; ls /proc/self/fd | tr '\\n' ' '");
    t.write_config();
    t.track(&t.id.clone());
    let b = t.bundle_str();
    let mut c = t.command(&["run", "--preserve-fds", "1", "--bundle", &b, &t.id]);
    let f1 = std::fs::File::open(&f).unwrap();
    let f2 = std::fs::File::open(&f).unwrap();
    use std::os::fd::AsRawFd;
    let (a, b2) = (f1.as_raw_fd(), f2.as_raw_fd());
    // SAFETY: dup2 in the child before exec.
    unsafe {
        c.pre_exec(move || {
            // Via high fds, so dup2 never is a no-op that keeps O_CLOEXEC.
            libc::dup2(a, 100);
            libc::dup2(b2, 101);
            libc::dup2(100, 3);
            libc::dup2(101, 4);
            libc::close(100);
            libc::close(101);
            Ok(())
        });
    }
    let out = t.exec(c, T);
    out.assert_ok();
    assert!(out.stdout.contains("through fd 3"), "{}", out.describe());
    let fds: Vec<&str> = out.stdout.lines().last().unwrap_or("").split_whitespace().collect();
    // 0 1 2, the preserved 3, and the fd ls reads with (4): no fd 5.
    assert_eq!(fds, ["0", "1", "2", "3", "4"], "{}", out.describe());
}

/// The probe layer's fallbacks, which rpc-runlxc relies on for 2.6.32:
/// without memfd_create, pidfd, openat2 and close_range (hidden by a
/// seccomp filter) the container runs as before, an fd the runtime was
/// given still does not reach it, and `--debug` says what fell back.
#[test]
fn a_kernel_without_the_newer_syscalls_gets_the_fallbacks() {
    let mut t = harness!("sf-old-kernel");
    t.sh("echo ran; ls /proc/self/fd | tr '\\n' ' '");
    t.write_config();
    t.track(&t.id.clone());
    let log = t.dir.join("debug.log");
    let b = t.bundle_str();
    let mut c = t.command(&["--debug", "--log", log.to_str().unwrap(), "run", "--bundle", &b, &t.id]);
    let leaked = std::fs::File::open(t.config_path()).unwrap();
    use std::os::fd::AsRawFd;
    let fd = leaked.as_raw_fd();
    let filter = old_kernel();
    // SAFETY: dup2 and the filter's prctl in the child before exec.
    unsafe {
        c.pre_exec(move || {
            libc::dup2(fd, 100);
            libc::dup2(100, 5);
            libc::close(100);
            filter.install()
        });
    }
    let out = t.exec(c, T);
    out.assert_ok();
    assert!(out.stdout.starts_with("ran\n"), "{}", out.describe());
    let fds: Vec<&str> = out.stdout.lines().last().unwrap_or("").split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "fd 5 leaked? {}", out.describe());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for name in ["openat2", "close_range", "pidfd_open"] {
        assert!(text.contains(&format!("the kernel has no {name} (ENOSYS)")), "no {name} fallback in the log:\n{text}");
    }
    assert!(text.contains("memfd_create: "), "no memfd fallback in the log:\n{text}");
    // Neither the new mount API nor memfd: the runtime's own image is an
    // unlinked private copy, and the copy's name is gone from --root.
    assert!(
        text.contains("runtime image is protected: PrivateCopy, re-executed through a private unlinked copy"),
        "no copy fallback in the log:\n{text}"
    );
    let left: Vec<_> =
        std::fs::read_dir(&t.root).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".rpc-runtime")).collect();
    assert!(left.is_empty(), "copies left in --root: {left:?}");
}

/// A runtime killed with SIGKILL in the middle of create (here while a
/// createRuntime hook runs) leaves nothing running, and `delete --force`
/// removes the state directory and the cgroups.
#[test]
fn kill_9_mid_create_then_delete_force_cleans_up() {
    let mut t = harness!("sf-kill9");
    let marker = format!("rpct-kill9-hook-{}", t.id);
    t.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30", &marker]}]});
    t.marked_sleep(&format!("{}-proc", t.id));
    t.write_config();
    t.track(&t.id.clone());
    let b = t.bundle_str();
    let (mut child, _, _) = t.spawn(&["create", "--bundle", &b, &t.id]);
    assert!(wait_until(T, || !processes_with_marker(&marker).is_empty()), "hook never ran");
    assert_eq!(t.status().as_deref(), Some("creating"));
    let init = t.state_json()["pid"].as_i64().unwrap_or(0) as i32;
    child.kill().unwrap();
    child.wait().unwrap();
    // init dies with the runtime (it was not ready yet).
    assert!(init == 0 || wait_until(T, || !pid_alive(init)), "init {init} survived its runtime");
    for p in processes_with_marker(&marker) {
        // SAFETY: cleaning up the orphaned hook.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    t.delete_force().assert_ok();
    t.assert_no_leftovers(&t.id.clone(), &format!("{}-proc", t.id));
}

/// Foreground `run` with terminal: true allocates the pty itself.
#[test]
fn foreground_run_with_terminal() {
    let mut t = harness!("sf-tty");
    t.config["process"]["terminal"] = json!(true);
    t.sh("tty; test -t 0 && echo stdin-is-tty; exit 7");
    t.write_config();
    t.track(&t.id.clone());
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two fds.
    assert_eq!(unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) }, 0);
    let b = t.bundle_str();
    let mut c = t.command(&["run", "--bundle", &b, &t.id]);
    // SAFETY: make the pty slave our stdio and controlling terminal.
    unsafe {
        c.pre_exec(move || {
            libc::setsid();
            libc::ioctl(slave, libc::TIOCSCTTY, 0);
            libc::dup2(slave, 0);
            libc::dup2(slave, 1);
            libc::dup2(slave, 2);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    // SAFETY: closing our copy of the slave.
    unsafe { libc::close(slave) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(master, buf.as_mut_ptr() as *mut _, buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    let (status, _) = wait_child(&mut child, T);
    // SAFETY: closing the master.
    unsafe { libc::close(master) };
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("stdin-is-tty"), "{text}");
    assert_eq!(status.and_then(|s| s.code()), Some(7), "{text}");
}

/// Without CAP_SYS_ADMIN the container cannot mount, and so cannot undo
/// masked or read-only paths by remounting or unmounting them.
#[test]
fn masked_and_readonly_paths_cannot_be_undone_from_inside() {
    let mut t = harness!("sf-remount");
    t.sh("mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED; \
          mount -o remount,rw /proc/sys 2>/dev/null && echo REMOUNTED; \
          umount /proc/keys 2>/dev/null && echo UNMASKED; \
          umount -l /proc/sys 2>/dev/null && echo UNMOUNTED; \
          echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo WROTE; \
          cat /proc/keys | wc -c; echo done");
    let out = t.run_ok();
    for bad in ["MOUNTED", "REMOUNTED", "UNMASKED", "UNMOUNTED", "WROTE"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert!(out.contains("done"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "0"), "/proc/keys is not masked: {out}");
}

/// issue 19 #6: --preserve-fds is unsigned, as in runc: a negative count
/// (-3 closed the container's stdout and stderr, -5 passed every fd of
/// the caller) is refused by create, run and exec with an error naming
/// the flag, and nothing is made or run.
#[test]
fn negative_preserve_fds_is_refused() {
    let mut t = harness!("sf-preserve-neg");
    t.sh("echo ran > /ran");
    t.write_config();
    let b = t.bundle_str();
    for n in ["-3", "-5"] {
        for verb in ["create", "run"] {
            for form in [vec![format!("--preserve-fds={n}")], vec!["--preserve-fds".to_string(), n.to_string()]] {
                let mut args: Vec<&str> = vec![verb];
                args.extend(form.iter().map(String::as_str));
                args.extend(["--bundle", &b, &t.id]);
                t.track(&t.id.clone());
                let o = t.rt(&args);
                assert!(!o.ok() && !o.timed_out, "{verb} {n}: {}", o.describe());
                assert!(o.stderr.contains("preserve-fds"), "{verb} {n}: {}", o.describe());
                assert!(t.root_entries().is_empty(), "{verb} {n} left state: {:?}", t.root_entries());
                assert!(!t.rootfs.join("ran").exists(), "{verb} {n}: the process ran");
            }
        }
    }
    // exec: refused, nothing runs in the container.
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    for n in ["-3", "-5"] {
        let o = t.rt(&["exec", "--preserve-fds", n, &t.id, "sh", "-c", "echo ran > /ran"]);
        assert!(!o.ok() && !o.timed_out, "exec {n}: {}", o.describe());
        assert!(o.stderr.contains("preserve-fds"), "exec {n}: {}", o.describe());
        assert!(!t.rootfs.join("ran").exists(), "exec {n}: the process ran");
    }
    // A count still works (fds 3..3+N exactly: preserve_fds_passes_exactly_n).
    t.rt(&["exec", "--preserve-fds", "0", &t.id, "true"]).assert_ok();
}

//! linux.seccomp checked from inside real containers: each action, the
//! argument operators, unknown names, the default profile of `spec`, a
//! NOTIFY listener of ours that answers, and bad profiles.
#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn profile(default: &str, syscalls: Value) -> Value {
    json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": syscalls})
}

fn with(name: &str, seccomp: Value, script: &str) -> Option<(Harness, Out)> {
    let mut t = Harness::new(name)?;
    t.config["linux"]["seccomp"] = seccomp;
    t.sh(script);
    let out = t.run();
    Some((t, out))
}

#[test]
fn errno_action_returns_the_configured_errno() {
    let Some((_, out)) = with(
        "sc-errno",
        profile("SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}])),
        "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touch-ok",
    ) else {
        return;
    };
    assert!(out.stderr.contains("Permission denied"), "{}", out.describe());
    assert!(out.stdout.contains("rc=1") && out.stdout.contains("touch-ok"), "{}", out.describe());
}

#[test]
fn errno_default_is_eperm_and_default_errno_ret_is_used() {
    let Some((_, out)) = with(
        "sc-deferrno",
        profile("SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
        "mkdir /tmp/x",
    ) else {
        return;
    };
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.describe());
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for act in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"] {
        let Some((_, out)) =
            with("sc-kill", profile("SCMP_ACT_ALLOW", json!([{"names": ["chroot"], "action": act}])), "chroot / true; echo rc=$?")
        else {
            return;
        };
        assert!(out.stdout.contains("rc=159"), "{act}: {}", out.describe());
    }
}

#[test]
fn log_and_allow_let_the_call_through() {
    let Some((_, out)) = with(
        "sc-log",
        profile("SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}])),
        "mkdir /tmp/x && echo made",
    ) else {
        return;
    };
    assert!(out.stdout.contains("made"), "{}", out.describe());
}

#[test]
fn argument_operators() {
    // kill(pid, sig): deny by signal number with each operator.
    let cases = [
        ("SCMP_CMP_EQ", 0u64, "kill -0 $$", "kill -CONT $$"),
        ("SCMP_CMP_NE", 18, "kill -0 $$", "kill -CONT $$"),
        ("SCMP_CMP_LT", 1, "kill -0 $$", "kill -CONT $$"),
        ("SCMP_CMP_LE", 0, "kill -0 $$", "kill -CONT $$"),
        ("SCMP_CMP_GT", 17, "kill -CONT $$", "kill -0 $$"),
        ("SCMP_CMP_GE", 18, "kill -CONT $$", "kill -0 $$"),
    ];
    for (op, v, denied, allowed) in cases {
        let p = profile(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": v, "op": op}]}]),
        );
        let Some((_, out)) = with("sc-op", p, &format!("{denied} && echo DENIED-RAN; {allowed} && echo ALLOWED-RAN")) else { return };
        assert!(!out.stdout.contains("DENIED-RAN") && out.stdout.contains("ALLOWED-RAN"), "{op}: {}", out.describe());
    }
}

#[test]
fn masked_eq_and_several_args() {
    // chmod(path, mode) / fchmodat(dfd, path, mode): deny setting setuid.
    let p = profile(
        "SCMP_ACT_ALLOW",
        json!([
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
            // kill(pid > 1 AND sig == 0): two args in one rule.
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]),
    );
    let Some((_, out)) = with(
        "sc-masked",
        p,
        "touch /tmp/f; chmod 4755 /tmp/f && echo SUID; chmod 755 /tmp/f && echo PLAIN; kill -0 $$ && echo SELF; kill -0 1 && echo INIT",
    ) else {
        return;
    };
    let o = &out.stdout;
    assert!(!o.contains("SUID") && o.contains("PLAIN"), "{}", out.describe());
    // $$ is 1 in a pid namespace: pid > 1 is false, so both are allowed.
    assert!(o.contains("INIT"), "{}", out.describe());
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let p = profile("SCMP_ACT_ALLOW", json!([{"names": ["no_such_syscall_xyz", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
    let Some((_, out)) = with("sc-unknown", p, "mkdir /tmp/x; echo rc=$?") else { return };
    assert!(out.ok() && out.stdout.contains("rc=1"), "{}", out.describe());
}

#[test]
fn default_profile_from_spec_blocks_unshare_and_allows_a_shell() {
    let Some(mut t) = Harness::new("sc-default") else { return };
    let spec_dir = t.dir.join("specdir");
    std::fs::create_dir_all(&spec_dir).unwrap();
    t.rt(&["spec", "--bundle", spec_dir.to_str().unwrap()]).assert_ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(spec_dir.join("config.json")).unwrap()).unwrap();
    if v["linux"]["seccomp"].is_null() {
        testkit::skip!("this runtime's spec has no seccomp profile");
        return;
    }
    t.config["linux"]["seccomp"] = v["linux"]["seccomp"].clone();
    t.sh("unshare -U true; echo unshare=$?; ls / >/dev/null && echo shell-ok; cat /proc/self/status | grep Seccomp:");
    let out = t.run();
    assert!(out.stdout.contains("unshare=1") && out.stdout.contains("shell-ok"), "{}", out.describe());
    assert!(out.stdout.contains("Seccomp:\t2"), "{}", out.describe());
}

#[test]
fn filter_applies_to_exec_too() {
    let Some(mut t) = Harness::new("sc-exec") else { return };
    t.config["linux"]["seccomp"] =
        profile("SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]));
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let out = t.rt(&["exec", &t.id, "sh", "-c", "mkdir /tmp/x"]);
    assert!(!out.ok() && out.stderr.contains("Permission denied"), "{}", out.describe());
}

#[test]
fn bad_profiles_fail_clearly_and_leave_nothing() {
    for (name, p, word) in [
        ("act", json!({"defaultAction": "SCMP_ACT_BOGUS"}), "defaultAction"),
        ("arch", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}), "architectures"),
        (
            "op",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_WHAT"}]}]}),
            "op",
        ),
    ] {
        let Some(mut t) = Harness::new(&format!("sc-bad-{name}")) else { return };
        t.config["linux"]["seccomp"] = p;
        t.marked_sleep(&format!("{}-m", t.id));
        let out = t.create();
        assert!(!out.ok() && out.stderr.contains(word), "{name}: {}", out.describe());
        t.assert_no_leftovers(&t.id.clone(), &format!("{}-m", t.id));
    }
}

/// NOTIFY: the listener fd reaches our agent with the state, and the
/// agent's answer is what the container's syscall returns.
#[test]
fn notify_delivers_the_listener_to_an_agent_that_answers() {
    let Some(mut t) = Harness::new("sc-notify") else { return };
    let sock = t.dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut p = profile("SCMP_ACT_ALLOW", json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]));
    p["listenerPath"] = json!(sock.to_str().unwrap());
    p["listenerMetadata"] = json!("meta-42");
    t.config["linux"]["seccomp"] = p;
    t.sh("mkdir /tmp/x; echo rc=$?");
    let agent = std::thread::spawn(move || -> (String, bool) {
        let (conn, _) = listener.accept().unwrap();
        let (payload, fd) = recv_fd_msg(&conn).unwrap();
        // struct seccomp_notif (80 bytes) / seccomp_notif_resp (24 bytes)
        let mut req = [0u8; 80];
        const RECV: libc::c_ulong = 0xc0502100;
        const SEND: libc::c_ulong = 0xc0182101;
        // SAFETY: ioctls on the listener with correctly sized buffers.
        let ok = unsafe { libc::ioctl(fd, RECV, req.as_mut_ptr()) } == 0;
        let mut answered = false;
        if ok {
            let mut resp = [0u8; 24];
            resp[..8].copy_from_slice(&req[..8]); // id
            resp[16..20].copy_from_slice(&(-libc::EXDEV).to_ne_bytes()); // error
                                                                         // SAFETY: as above.
            answered = unsafe { libc::ioctl(fd, SEND, resp.as_mut_ptr()) } == 0;
        }
        (payload, answered)
    });
    let out = t.run();
    let (payload, answered) = agent.join().unwrap();
    assert!(answered, "agent could not answer; payload {payload}");
    let v: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
    assert_eq!(v["metadata"], "meta-42", "{payload}");
    assert_eq!(v["fds"], json!(["seccompFd"]), "{payload}");
    assert!(v["pid"].as_i64().unwrap_or(0) > 0, "{payload}");
    assert!(out.stderr.contains("cross-device") || out.stderr.contains("Invalid cross"), "{}", out.describe());
    assert!(out.stdout.contains("rc=1"), "{}", out.describe());
    let _ = Duration::from_secs(0);
}

/// A profile past the kernel's 4,096 instructions per filter is a clear
/// error naming linux.seccomp, the count and the limit, whatever its size:
/// 10,000 rules (a program past a pipe's 64 KiB) used to deadlock create.
#[test]
fn oversized_profiles_are_a_clear_error_not_a_hang() {
    for n in [5_000usize, 8_000, 10_000] {
        let Some(mut t) = Harness::new("sc-huge") else { return };
        let marker = format!("sc-huge-{}-{n}", std::process::id());
        t.marked_sleep(&marker);
        let rules: Vec<Value> = (0..n)
            .map(|i| json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 100_000 + i, "op": "SCMP_CMP_EQ"}]}))
            .collect();
        // One architecture: libseccomp takes seconds per 10,000 rules each.
        t.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules});
        let started = std::time::Instant::now();
        let out = t.create();
        assert!(!out.timed_out, "{n} rules: create hung: {}", out.describe());
        out.assert_fail();
        assert!(started.elapsed() < Duration::from_secs(8), "{n} rules: slow: {:?}", started.elapsed());
        assert!(
            out.stderr.contains("linux.seccomp: the profile compiles to") && out.stderr.contains("above the kernel's limit of 4096"),
            "{n} rules: {}",
            out.describe()
        );
        let st = t.state();
        assert!(contains_ci(&st.stderr, "does not exist"), "{}", st.describe());
        t.assert_no_leftovers(&t.id, &marker);
    }
}

/// A profile that makes write(2) fail: init cannot write its byte to the
/// exec fifo, so `start` must fail at once (it used to spin at 100% CPU
/// with `state` saying created) and the program must never run.
#[test]
fn start_fails_when_init_cannot_write_the_exec_fifo() {
    for verb in ["create+start", "run"] {
        let Some(mut t) = Harness::new("sc-nowrite") else { return };
        t.share();
        t.config["linux"]["seccomp"] = profile("SCMP_ACT_ALLOW", json!([{"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]));
        // Without no_new_privs the filter goes in before init parks (with
        // it, only after start released init, as runc does).
        t.config["process"]["noNewPrivileges"] = json!(false);
        let marker = format!("sc-nowrite-{}", t.id);
        t.args(&["sh", "-c", "touch /shared/ran; sleep 300", &marker]);
        let started = std::time::Instant::now();
        let out = if verb == "run" {
            t.run()
        } else {
            t.create().assert_ok();
            t.start()
        };
        assert!(!out.timed_out, "{verb}: hung: {}", out.describe());
        out.assert_fail();
        assert!(started.elapsed() < Duration::from_secs(5), "{verb}: slow: {:?}", started.elapsed());
        assert!(out.stderr.contains("its init process failed before exec"), "{verb}: {}", out.describe());
        assert!(out.stderr.contains("linux.seccomp deny write(2)"), "{verb}: {}", out.describe());
        if verb == "run" {
            t.assert_no_leftovers(&t.id, &marker);
        } else {
            assert!(t.wait_status("stopped", Duration::from_secs(3)), "{verb}: {:?}", t.status());
            t.delete().assert_ok();
        }
        assert!(!t.shared.join("ran").exists(), "{verb}: the program ran");
        assert!(processes_with_marker(&marker).is_empty(), "{verb}: left running");
    }
}

/// A profile that denies a call init itself makes after installing the
/// filter (sendto, which reports Ready): create fails saying seccomp is
/// why, with the errno or the signal, not "init exited before it was
/// ready". Nothing is left behind.
#[test]
fn a_profile_denying_inits_own_calls_is_named_in_the_error() {
    let cases = [
        ("SCMP_ACT_ERRNO", "could not report why (a call failed with: Permission denied"),
        ("SCMP_ACT_KILL", "was killed by SIGSYS before it was ready"),
    ];
    for (action, want) in cases {
        let Some(mut t) = Harness::new("sc-init-denied") else { return };
        let marker = format!("sc-init-denied-{}", t.id);
        t.marked_sleep(&marker);
        t.config["linux"]["seccomp"] = profile("SCMP_ACT_ALLOW", json!([{"names": ["sendto"], "action": action, "errnoRet": 13}]));
        // (Without no_new_privs init installs the filter before it reports.)
        t.config["process"]["noNewPrivileges"] = json!(false);
        let out = t.run();
        assert!(!out.timed_out, "{action}: {}", out.describe());
        out.assert_fail();
        assert!(out.stderr.contains(want), "{action}: {}", out.describe());
        assert!(out.stderr.contains("linux.seccomp denies a system call"), "{action}: {}", out.describe());
        t.assert_no_leftovers(&t.id, &marker);
    }
}

/// A profile that kills execve: the container's process dies of SIGSYS at
/// its exec. `run` still exits 159 (128+SIGSYS, as runc), and now says why.
#[test]
fn execve_killed_by_seccomp_is_explained() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"] {
        let Some(mut t) = Harness::new("sc-kill-execve") else { return };
        t.share();
        t.args(&["sh", "-c", "touch /shared/ran"]);
        t.config["linux"]["seccomp"] = profile("SCMP_ACT_ALLOW", json!([{"names": ["execve", "execveat"], "action": action}]));
        let out = t.run();
        assert!(!out.timed_out, "{action}: {}", out.describe());
        assert_eq!(out.code(), 159, "{action}: {}", out.describe());
        assert!(out.stderr.contains("killed by SIGSYS at exec: linux.seccomp must allow execve"), "{action}: {}", out.describe());
        assert!(!t.shared.join("ran").exists(), "{action}: the program ran");
    }
    // The program's own death by SIGSYS (pid 1 itself, after its exec)
    // is not blamed on exec.
    let Some(mut t) = Harness::new("sc-kill-later") else { return };
    t.args(&["sh", "-c", "exec chroot / true"]);
    t.config["linux"]["seccomp"] = profile("SCMP_ACT_ALLOW", json!([{"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"}]));
    let out = t.run();
    assert_eq!(out.code(), 159, "{}", out.describe());
    assert!(!out.stderr.contains("at exec"), "{}", out.describe());
}

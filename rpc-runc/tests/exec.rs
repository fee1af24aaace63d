//! `exec`: joins every namespace and the cgroup of the container, applies
//! the process settings, returns the status; `--detach --pid-file` leaves
//! the process to the caller's subreaper.
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn running(name: &str) -> Option<Harness> {
    let mut t = Harness::new(name)?;
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    Some(t)
}

#[test]
fn exec_joins_every_namespace() {
    let Some(t) = running("ex-ns") else { return };
    let pid = t.pid();
    let out = t.rt(&["exec", &t.id, "sh", "-c", "for n in mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done"]);
    out.assert_ok();
    let inside: Vec<&str> = out.stdout.lines().collect();
    for (i, n) in ["mnt", "pid", "net", "ipc", "uts", "cgroup"].iter().enumerate() {
        assert_eq!(inside.get(i).copied().unwrap_or(""), pid_ns(pid, n), "{n}: {}", out.describe());
    }
}

#[test]
fn exec_joins_the_cgroup_and_sees_container_root() {
    let Some(t) = running("ex-cg") else { return };
    let pid = t.pid();
    let out = t.rt(&["exec", &t.id, "sh", "-c", "cat /proc/self/cgroup | grep memory; ls /"]);
    out.assert_ok();
    let host = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = host.lines().find(|l| l.contains(":memory:")).unwrap();
    // With a cgroup namespace both read "/"; the line must match init's.
    let theirs = out.stdout.lines().find(|l| l.contains(":memory:")).unwrap_or("");
    assert!(!theirs.is_empty(), "{}", out.describe());
    assert!(mem.ends_with(theirs.rsplit(':').next().unwrap()) || theirs.ends_with(":/"), "{theirs} vs {mem}");
    assert!(out.stdout.contains("bin") && out.stdout.contains("proc"), "{}", out.describe());
}

#[test]
fn exec_exit_status_passes_through() {
    let Some(t) = running("ex-status") else { return };
    assert_eq!(t.rt(&["exec", &t.id, "sh", "-c", "exit 42"]).code(), 42);
    assert_eq!(t.rt(&["exec", &t.id, "sh", "-c", "kill -9 $$"]).code(), 137);
}

#[test]
fn exec_flags_env_cwd_user() {
    let Some(t) = running("ex-flags") else { return };
    let out = t.rt(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1001",
        "--additional-gids",
        "7",
        &t.id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G",
    ]);
    out.assert_ok();
    let l: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(l, ["bar", "/tmp", "1000", "1001", "1001 7"], "{}", out.describe());
}

#[test]
fn exec_process_json_overrides_args() {
    let Some(t) = running("ex-process") else { return };
    let p = t.dir.join("process.json");
    write_file(
        &p,
        &json!({
            "args": ["sh", "-c", "echo from-json $X; grep NoNewPrivs /proc/self/status; ulimit -n"],
            "env": ["PATH=/bin", "X=y"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}],
            "capabilities": {"bounding": ["CAP_KILL", "CAP_NOT_REAL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        })
        .to_string(),
    );
    let out = t.rt(&["exec", "--process", p.to_str().unwrap(), &t.id, "ignored-arg"]);
    out.assert_ok();
    assert!(out.stdout.contains("from-json y"), "{}", out.describe());
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{}", out.describe());
    assert!(out.stdout.trim_end().ends_with("256"), "{}", out.describe());
}

#[test]
fn exec_cap_flag_adds_a_capability() {
    let Some(t) = running("ex-cap") else { return };
    let out = t.rt(&["exec", "--cap", "CAP_SYS_ADMIN", &t.id, "grep", "CapEff", "/proc/self/status"]);
    out.assert_ok();
    let eff = parse_hex(out.stdout.split_whitespace().nth(1).unwrap_or("0"));
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN missing: {}", out.describe());
}

#[test]
fn exec_detached_writes_pid_file_and_is_in_the_container() {
    let Some(t) = running("ex-detach") else { return };
    let pf = t.dir.join("exec.pid");
    let out = t.rt(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), &t.id, "sleep", "200"]);
    out.assert_ok();
    let pid: i32 = std::fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    assert!(pid_alive(pid));
    assert_eq!(pid_ns(pid, "pid"), pid_ns(t.pid(), "pid"));
    // `exec -d` returns once the process is in the container; its last
    // step, the exec of the program by the trampoline, may still be
    // under way.
    let cmd = || std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(5), || cmd().starts_with("sleep\x00200")), "{:?}", cmd());
    // No helper of ours in between: the process's parent is gone or is
    // whoever reaps orphans, never a runtime process.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(1).unwrap().parse().unwrap();
    let pcmd = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(!pcmd.contains("rpc-runc") && !pcmd.contains("runc\0"), "parent {ppid} is {pcmd:?}");
}

#[test]
fn exec_whose_pid_file_cannot_be_written_leaves_no_process() {
    // The process is started before the pid file is written: if that
    // fails, the caller never learns the pid, so nothing may run on.
    let Some(t) = running("ex-badpf") else { return };
    let pf = t.dir.join("no-such-dir/exec.pid");
    let out = t.rt(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), &t.id, "sleep", "4242"]);
    assert!(!out.ok(), "exec succeeded: {}", out.stderr);
    assert!(out.stderr.contains("no-such-dir"), "{}", out.stderr);
    let ps = t.rt(&["ps", "--format", "json", &t.id]);
    ps.assert_ok();
    let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
    for p in pids {
        let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
        assert!(!cmd.contains("4242"), "the exec'd process {p} runs on: {cmd:?}");
    }
}

#[test]
fn exec_many_concurrent() {
    let Some(t) = running("ex-many") else { return };
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let mut c = t.command(&["exec", &t.id, "sh", "-c", &format!("echo n{i}")]);
            c.stdout(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("n{i}"));
    }
}

#[test]
fn exec_into_stopped_or_paused_or_unknown_fails() {
    let Some(t) = running("ex-bad") else { return };
    t.rt(&["pause", &t.id]).assert_ok();
    let out = t.rt(&["exec", &t.id, "true"]);
    assert!(!out.ok() && contains_ci(&out.stderr, "paused"), "{}", out.describe());
    t.rt(&["resume", &t.id]).assert_ok();
    t.kill("KILL").assert_ok();
    assert!(t.wait_status("stopped", T));
    let out = t.rt(&["exec", &t.id, "true"]);
    assert!(!out.ok() && contains_ci(&out.stderr, "stopped"), "{}", out.describe());
    let out = t.rt(&["exec", "no-such-container", "true"]);
    assert!(!out.ok() && contains_ci(&out.stderr, "does not exist"), "{}", out.describe());
    let out = t.rt(&["exec", &t.id]);
    assert!(!out.ok());
}

#[test]
fn exec_bad_process_json_fails_clearly() {
    let Some(t) = running("ex-badjson") else { return };
    let p = t.dir.join("process.json");
    write_file(&p, "{\"args\": [\"true\"], \"cwd\": \"/\", \"user\": {\"uid\": \"zero\"}}");
    let out = t.rt(&["exec", "--process", p.to_str().unwrap(), &t.id]);
    assert!(!out.ok() && out.stderr.contains("user.uid"), "{}", out.describe());
    write_file(&p, "{not json");
    let out = t.rt(&["exec", "--process", p.to_str().unwrap(), &t.id]);
    assert!(!out.ok() && out.stderr.contains("line 1"), "{}", out.describe());
    assert_eq!(t.status().as_deref(), Some("running"));
}

#[test]
fn exec_not_found_in_path() {
    let Some(t) = running("ex-notfound") else { return };
    let out = t.rt(&["exec", &t.id, "no-such-binary"]);
    assert!(!out.ok() && contains_ci(&out.stderr, "executable file not found"), "{}", out.describe());
}

#[test]
fn exec_process_scheduler_io_priority_and_cpu_affinity() {
    let Some(t) = running("ex-sched") else { return };
    let p = t.dir.join("process.json");
    write_file(
        &p,
        &json!({
            "args": ["sleep", "200"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 5},
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6},
            "execCPUAffinity": {"initial": "0", "final": "0"}
        })
        .to_string(),
    );
    let pf = t.dir.join("sched.pid");
    let out = t.rt(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), "--process", p.to_str().unwrap(), &t.id]);
    out.assert_ok();
    let pid: i32 = std::fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    // SAFETY: plain syscalls about another process.
    let (policy, ioprio) = unsafe { (libc::sched_getscheduler(pid), libc::syscall(libc::SYS_ioprio_get, 1, pid)) };
    assert_eq!(policy, 3, "SCHED_BATCH");
    assert_eq!(ioprio, (2 << 13) | 6);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let nice: i32 = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(16).unwrap().parse().unwrap();
    assert_eq!(nice, 5);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Cpus_allowed_list:\t0\n"), "{status}");
}

/// CVE-2024-21626 on exec: a cwd through /proc/self/fd/N never reaches
/// a host directory.
#[test]
fn exec_cwd_through_leaked_fd_is_refused() {
    let Some(t) = running("ex-cwd-fd") else { return };
    for n in 3..10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = t.rt(&["exec", "--cwd", &cwd, &t.id, "sh", "-c", "ls -a .; cat state.json 2>/dev/null"]);
        let all = out.all_output();
        assert!(
            !all.contains("ociVersion") && !all.contains("state.json") && !all.contains("exec.fifo") && !all.contains("exec.sock"),
            "fd {n}: {all}"
        );
    }
}

/// issue 19 #3: the container's isolation is fixed at create. With the
/// pid and network namespaces, the seccomp profile and the capabilities
/// taken out of config.json after create, exec still joins init's
/// namespaces, under its filter and with its capabilities; with
/// config.json gone it still runs (what create read is what counts).
/// (runc 1.1 too keeps the namespaces and seccomp, but takes the process
/// defaults of a flag-built exec from the current config.json, and fails
/// without one: those checks are ours only.)
#[test]
fn exec_keeps_the_isolation_recorded_at_create() {
    let mut t = harness!("ex-frozen-cfg");
    t.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    // The host's view of init, to compare with.
    let init_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let init_cap = status_field(&init_status, "CapEff").unwrap();
    assert_eq!(status_field(&init_status, "Seccomp").as_deref(), Some("2"));
    // Now loosen the bundle as far as it goes.
    t.remove_namespace("pid").remove_namespace("network");
    t.config["linux"].as_object_mut().unwrap().remove("seccomp");
    let all = json!(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_KILL", "CAP_NET_ADMIN"]);
    for set in ["bounding", "effective", "permitted"] {
        t.config["process"]["capabilities"][set] = all.clone();
    }
    t.config["process"]["noNewPrivileges"] = json!(false);
    t.write_config();
    let probe = "grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status; readlink /proc/self/ns/pid; readlink /proc/self/ns/net";
    let check = |out: &Out| {
        out.assert_ok();
        let s = &out.stdout;
        assert_eq!(status_field(s, "Seccomp").as_deref(), Some("2"), "the filter is gone: {}", out.describe());
        if !is_reference_runc() {
            assert_eq!(status_field(s, "NoNewPrivs").as_deref(), Some("1"), "{}", out.describe());
            assert_eq!(status_field(s, "CapEff").as_deref(), Some(init_cap.as_str()), "{}", out.describe());
        }
        let ns: Vec<&str> = s.lines().filter(|l| l.contains(":[")).collect();
        assert_eq!(ns, [pid_ns(pid, "pid"), pid_ns(pid, "net")], "{}", out.describe());
        assert_ne!(ns[0], host_ns("pid"));
    };
    check(&t.rt(&["exec", &t.id, "sh", "-c", probe]));
    // --process takes the process from the file, the isolation still from create.
    let pj = t.dir.join("process.json");
    std::fs::write(&pj, json!({"args": ["sh", "-c", probe], "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "noNewPrivileges": true, "capabilities": t.config["process"]["capabilities"].clone()}).to_string()).unwrap();
    let out = t.rt(&["exec", "--process", pj.to_str().unwrap(), &t.id]);
    out.assert_ok();
    assert_eq!(status_field(&out.stdout, "Seccomp").as_deref(), Some("2"), "{}", out.describe());
    let ns: Vec<&str> = out.stdout.lines().filter(|l| l.contains(":[")).collect();
    assert_eq!(ns, [pid_ns(pid, "pid"), pid_ns(pid, "net")], "{}", out.describe());
    // And with no config.json at all.
    if !is_reference_runc() {
        std::fs::remove_file(t.config_path()).unwrap();
        check(&t.rt(&["exec", &t.id, "sh", "-c", probe]));
    }
}

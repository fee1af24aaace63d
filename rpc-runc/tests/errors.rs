//! Error paths: bad configs, bad ids, wrong lifecycle operations. After a
//! failure nothing may be left behind (state dir, process, cgroup), except
//! where the container legitimately exists.
//!
//! Message wording is only checked for a few key phrases, case-insensitively.
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// A harness whose process carries a unique marker in its argv.
fn marked(name: &str) -> Option<(Harness, String)> {
    let mut t = Harness::new(name)?;
    let marker = format!("marker-{}", t.id);
    t.marked_sleep(&marker);
    Some((t, marker))
}

/// Positive control after a failure: with a valid config the same id can be
/// created (so the failure came from what the test broke, and left nothing
/// behind that blocks the id).
#[track_caller]
fn then_valid_create_works(t: &mut Harness, marker: &str) {
    t.config = default_config();
    t.marked_sleep(marker);
    t.create().assert_ok();
    assert_eq!(t.status().as_deref(), Some("created"));
    assert_eq!(t.root_entries(), std::slice::from_ref(&t.id));
}

#[track_caller]
fn create_fails_cleanly(t: &Harness, marker: &str) -> Out {
    let o = t.create();
    o.assert_fail();
    t.assert_no_leftovers(&t.id, marker);
    let st = t.state();
    assert!(!st.ok() && contains_ci(&st.stderr, "does not exist"), "{}", st.describe());
    o
}

#[test]
fn malformed_config_json() {
    let Some((mut t, marker)) = marked("er-bad-json") else {
        return;
    };
    t.write_config();
    std::fs::write(t.config_path(), "{ \"ociVersion\": \"1.0.2\", \"process\": {").unwrap();
    t.track(&t.id);
    let b = t.bundle_str();
    let o = t.rt(&["create", "--bundle", &b, &t.id]);
    o.assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    then_valid_create_works(&mut t, &marker);
}

#[test]
fn config_json_not_an_object() {
    let Some((mut t, marker)) = marked("er-json-array") else {
        return;
    };
    std::fs::write(t.config_path(), "[1, 2, 3]").unwrap();
    t.track(&t.id);
    let b = t.bundle_str();
    t.rt(&["create", "--bundle", &b, &t.id]).assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    then_valid_create_works(&mut t, &marker);
}

#[test]
fn missing_config_json() {
    let Some((mut t, marker)) = marked("er-no-config") else {
        return;
    };
    t.track(&t.id);
    let b = t.bundle_str();
    let o = t.rt(&["create", "--bundle", &b, &t.id]);
    o.assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    then_valid_create_works(&mut t, &marker);
}

#[test]
fn unknown_oci_version_major() {
    let Some((mut t, marker)) = marked("er-oci-2") else {
        return;
    };
    if is_reference_runc() {
        // runc 1.1.5 does not look at ociVersion at all and runs a "2.0.0"
        // config; the spec makes an unknown major version an error.
        testkit::skip!("runc ignores ociVersion");
        return;
    }
    t.config["ociVersion"] = json!("2.0.0");
    create_fails_cleanly(&t, &marker);
}

#[test]
fn missing_rootfs() {
    let Some((mut t, marker)) = marked("er-no-rootfs") else {
        return;
    };
    t.config["root"]["path"] = json!("no-such-rootfs");
    create_fails_cleanly(&t, &marker);
}

#[test]
fn missing_process_args() {
    let Some((mut t, marker)) = marked("er-no-args") else {
        return;
    };
    t.config["process"]["args"] = json!([]);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn args0_not_found() {
    let Some((mut t, marker)) = marked("er-enoent") else {
        return;
    };
    t.args(&["no-such-binary-xyz", &marker]);
    let o = create_fails_cleanly(&t, &marker);
    assert!(contains_ci(&o.stderr, "executable file not found"), "{}", o.describe());
}

#[test]
fn args0_not_found_with_run() {
    let Some((mut t, marker)) = marked("er-enoent-run") else {
        return;
    };
    t.args(&["no-such-binary-xyz", &marker]);
    let o = t.run();
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "executable file not found"), "{}", o.describe());
    t.assert_no_leftovers(&t.id, &marker);
}

#[test]
fn args0_absolute_path_missing() {
    let Some((mut t, marker)) = marked("er-enoent-abs") else {
        return;
    };
    t.args(&["/bin/no-such-binary", &marker]);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn args0_not_executable() {
    let Some((mut t, marker)) = marked("er-noexec") else {
        return;
    };
    write_file(&t.rootfs.join("bin/plainfile"), "#!/bin/sh\necho hi\n");
    t.args(&["/bin/plainfile", &marker]);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn relative_cwd_fails() {
    // a relative cwd is invalid
    let Some((mut t, marker)) = marked("er-rel-cwd") else {
        return;
    };
    t.config["process"]["cwd"] = json!("relative/dir");
    create_fails_cleanly(&t, &marker);
}

fn bad_id(name: &str, id: &str) {
    let mut t = harness!(name);
    let marker = format!("marker-{}", t.id);
    t.marked_sleep(&marker);
    t.write_config();
    // Only ids without path components are cleaned up with `delete --force`
    // on drop: never hand "..", "." or "../x" to a delete, in case a broken
    // runtime removes ROOT/ID without validating it.
    if !id.is_empty() && id != "." && !id.contains("..") {
        t.track(id);
    }
    let b = t.bundle_str();
    let o = t.rt(&["create", "--bundle", &b, id]);
    o.assert_fail();
    assert!(t.root_entries().is_empty(), "entries under --root after a bad id {id:?}: {:?}", t.root_entries());
    // nothing was made next to the root either (e.g. for "..")
    let siblings: Vec<String> = std::fs::read_dir(&t.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["state", "bundle", "shared", "out"].contains(&n.as_str()))
        .collect();
    assert!(siblings.is_empty(), "unexpected files next to --root: {siblings:?}");
    assert!(wait_until(T, || processes_with_marker(&marker).is_empty()), "process left for bad id {id:?}");
    then_valid_create_works(&mut t, &marker);
}

#[test]
fn bad_id_with_slash() {
    bad_id("er-id-slash", "a/b");
}

#[test]
fn bad_id_dotdot() {
    bad_id("er-id-dotdot", "..");
}

#[test]
fn bad_id_dot() {
    bad_id("er-id-dot", ".");
}

#[test]
fn bad_id_path_traversal() {
    bad_id("er-id-traversal", "../escape");
}

#[test]
fn bad_id_control_char() {
    bad_id("er-id-ctrl", "abc\u{1}def");
}

#[test]
fn bad_id_newline() {
    bad_id("er-id-newline", "abc\ndef");
}

#[test]
fn bad_id_empty() {
    bad_id("er-id-empty", "");
}

#[test]
fn bad_id_too_long() {
    bad_id("er-id-long", &"a".repeat(1025));
}

#[test]
fn duplicate_id() {
    let Some((t, _marker)) = marked("er-dup") else {
        return;
    };
    t.create().assert_ok();
    let pid = t.pid();
    let o = t.create();
    o.assert_fail();
    assert!(contains_any_ci(&o.stderr, &["container with id exists", "already exists"]), "{}", o.describe());
    // the first one is untouched
    let st = t.state_json();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert!(pid_alive(pid));
    t.start().assert_ok();
    assert_eq!(t.status().as_deref(), Some("running"));
}

#[test]
fn duplicate_id_with_run() {
    let Some((t, _marker)) = marked("er-dup-run") else {
        return;
    };
    t.run_detached().assert_ok();
    let pid = t.pid();
    let o = t.run_detached();
    o.assert_fail();
    assert!(contains_any_ci(&o.stderr, &["container with id exists", "already exists"]), "{}", o.describe());
    assert_eq!(t.status().as_deref(), Some("running"));
    assert_eq!(t.pid(), pid);
}

#[test]
fn start_of_a_running_container_fails() {
    let Some((t, _marker)) = marked("er-start-running") else {
        return;
    };
    t.run_detached().assert_ok();
    let pid = t.pid();
    t.start().assert_fail();
    assert_eq!(t.status().as_deref(), Some("running"));
    assert_eq!(t.pid(), pid);
}

#[test]
fn start_twice_fails() {
    let Some((t, _marker)) = marked("er-start-twice") else {
        return;
    };
    t.create().assert_ok();
    t.start().assert_ok();
    t.start().assert_fail();
    assert_eq!(t.status().as_deref(), Some("running"));
}

#[test]
fn start_of_a_stopped_container_fails() {
    let mut t = harness!("er-start-stopped");
    t.share().sh("echo x >> /shared/runs");
    t.create().assert_ok();
    t.start().assert_ok();
    assert!(t.wait_status("stopped", T));
    t.start().assert_fail();
    // watched for 200 ms: fails the moment a second run shows up
    holds_for(Duration::from_millis(200), || t.shared_file("runs") == "x\n");
    assert_eq!(t.shared_file("runs"), "x\n", "the process ran again");
    assert_eq!(t.status().as_deref(), Some("stopped"));
}

#[test]
fn delete_of_a_running_container_without_force_fails() {
    let Some((t, marker)) = marked("er-delete-running") else {
        return;
    };
    t.run_detached().assert_ok();
    let pid = t.pid();
    let o = t.delete();
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "not stopped"), "{}", o.describe());
    assert_eq!(t.status().as_deref(), Some("running"));
    assert!(pid_alive(pid));
    assert!(!processes_with_marker(&marker).is_empty());
    assert!(t.state_dir_exists(&t.id));
}

#[test]
fn kill_of_a_stopped_container_fails() {
    let mut t = harness!("er-kill-stopped");
    t.args(&["true"]);
    t.run_detached().assert_ok();
    assert!(t.wait_status("stopped", T));
    let o = t.kill("KILL");
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "not running"), "{}", o.describe());
}

#[test]
fn kill_with_an_unknown_signal_fails() {
    let Some((t, _marker)) = marked("er-kill-badsig") else {
        return;
    };
    t.run_detached().assert_ok();
    t.kill("NOSUCHSIG").assert_fail();
    t.kill("99999").assert_fail();
    assert_eq!(t.status().as_deref(), Some("running"));
}

fn unknown_id(name: &str, args: &[&str]) {
    let t = harness!(name);
    let o = t.rt(args);
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "does not exist"), "{}", o.describe());
    assert!(t.root_entries().is_empty(), "{:?}", t.root_entries());
}

#[test]
fn state_of_unknown_id() {
    unknown_id("er-unknown-state", &["state", "no-such-ctr"]);
}

#[test]
fn start_of_unknown_id() {
    unknown_id("er-unknown-start", &["start", "no-such-ctr"]);
}

#[test]
fn kill_of_unknown_id() {
    unknown_id("er-unknown-kill", &["kill", "no-such-ctr", "KILL"]);
}

#[test]
fn delete_of_unknown_id() {
    unknown_id("er-unknown-delete", &["delete", "no-such-ctr"]);
}

#[test]
fn hostname_without_uts_namespace_fails() {
    let Some((mut t, marker)) = marked("er-hostname-no-uts") else {
        return;
    };
    t.remove_namespace("uts");
    t.config["hostname"] = json!("nope");
    create_fails_cleanly(&t, &marker);
}

#[test]
fn net_sysctl_without_net_namespace_fails() {
    let Some((mut t, marker)) = marked("er-sysctl-no-net") else {
        return;
    };
    t.remove_namespace("network");
    t.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    create_fails_cleanly(&t, &marker);
}

#[test]
fn non_namespaced_sysctl_fails() {
    let Some((mut t, marker)) = marked("er-sysctl-host") else {
        return;
    };
    t.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    create_fails_cleanly(&t, &marker);
}

#[test]
fn user_namespace_without_mappings_fails() {
    let Some((mut t, marker)) = marked("er-userns-nomap") else {
        return;
    };
    t.set_namespace(json!({"type": "user"}));
    create_fails_cleanly(&t, &marker);
}

#[test]
fn join_a_namespace_path_that_does_not_exist() {
    let Some((mut t, marker)) = marked("er-ns-path") else {
        return;
    };
    t.set_namespace(json!({"type": "network", "path": "/proc/999999999/ns/net"}));
    create_fails_cleanly(&t, &marker);
}

#[test]
fn unknown_namespace_type_fails() {
    let Some((mut t, marker)) = marked("er-ns-type") else {
        return;
    };
    t.set_namespace(json!({"type": "bogus"}));
    create_fails_cleanly(&t, &marker);
}

#[test]
fn bad_mount_fails_cleanly() {
    let Some((mut t, marker)) = marked("er-bad-mount") else {
        return;
    };
    t.add_mount(json!({"destination": "/x", "type": "bind", "source": "/no/such/source/dir", "options": ["bind"]}));
    create_fails_cleanly(&t, &marker);
}

#[test]
fn rlimit_above_hard_limit_fails() {
    // root lacks CAP_SYS_RESOURCE here: raising the hard limit is refused
    let Some((mut t, marker)) = marked("er-rlimit-raise") else {
        return;
    };
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = parse_hex(&status_field(&caps, "CapEff").unwrap());
    if eff & (1 << cap_bit("CAP_SYS_RESOURCE")) != 0 {
        testkit::skip!("we have CAP_SYS_RESOURCE");
        return;
    }
    let h = host_nofile_hard();
    t.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": h + 1000, "soft": h + 1000}]);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn unknown_rlimit_type_fails() {
    let Some((mut t, marker)) = marked("er-rlimit-type") else {
        return;
    };
    t.config["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn terminal_true_with_create_and_no_console_socket_fails() {
    let Some((mut t, marker)) = marked("er-tty-nosock") else {
        return;
    };
    t.config["process"]["terminal"] = json!(true);
    create_fails_cleanly(&t, &marker);
}

#[test]
fn log_file_json_format() {
    let mut t = harness!("er-log-json");
    let log = t.dir.join("runtime.log");
    t.global_args = vec!["--log".into(), log.to_str().unwrap().into(), "--log-format".into(), "json".into()];
    let o = t.rt(&["state", "no-such-ctr"]);
    o.assert_fail();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line not JSON ({e}): {l:?}")))
        .collect();
    assert!(!lines.is_empty(), "nothing logged to {}", log.display());
    let err = lines.iter().find(|l| l["level"] == "error").unwrap_or_else(|| panic!("no error entry: {text}"));
    assert!(contains_ci(err["msg"].as_str().unwrap_or(""), "does not exist"), "{err}");
    assert!(err["time"].is_string(), "{err}");
}

#[test]
fn log_file_text_format_default() {
    let mut t = harness!("er-log-text");
    let log = t.dir.join("runtime.log");
    t.global_args = vec!["--log".into(), log.to_str().unwrap().into()];
    t.rt(&["state", "no-such-ctr"]).assert_fail();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(contains_ci(&text, "does not exist"), "log: {text:?}");
}

#[test]
fn failed_create_then_same_id_works() {
    // a failed create must not block the id
    let Some((mut t, marker)) = marked("er-reuse-id") else {
        return;
    };
    t.config["root"]["path"] = json!("no-such-rootfs");
    t.create().assert_fail();
    t.config["root"]["path"] = json!("rootfs");
    t.marked_sleep(&marker);
    t.create().assert_ok();
    assert_eq!(t.status().as_deref(), Some("created"));
}

/// config.json that is a FIFO (nobody writes it) or a symlink to
/// /dev/zero: a clear error naming the path, at once, from `run` and
/// `create` alike, and nothing left behind.
#[test]
fn config_json_fifo_or_device_is_refused_quickly() {
    for (kind, want) in [("fifo", "is a FIFO"), ("zero", "is a character device")] {
        for verb in ["run", "create"] {
            let Some((mut t, marker)) = marked("er-cfg-special") else {
                return;
            };
            let p = t.config_path();
            match kind {
                "fifo" => {
                    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                    // SAFETY: valid C string.
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
                }
                _ => std::os::unix::fs::symlink("/dev/zero", &p).unwrap(),
            }
            t.track(&t.id);
            let b = t.bundle_str();
            let mut c = t.command(&[verb, "--bundle", &b, &t.id]);
            // SAFETY: one setrlimit between fork and exec. A runtime that
            // reads /dev/zero without bound hits this, not the host.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                    let lim = libc::rlimit { rlim_cur: 2 << 30, rlim_max: 2 << 30 };
                    libc::setrlimit(libc::RLIMIT_AS, &lim);
                    Ok(())
                })
            };
            let started = std::time::Instant::now();
            let o = t.exec(c, Duration::from_secs(5));
            assert!(!o.timed_out, "{verb} with a {kind} config.json hung: {}", o.describe());
            o.assert_fail();
            assert!(started.elapsed() < Duration::from_secs(3), "{verb}: slow: {:?}", started.elapsed());
            let path = p.display().to_string();
            assert!(o.stderr.contains(&format!("{path}: {want}")), "{verb}: {}", o.describe());
            t.assert_no_leftovers(&t.id, &marker);
            std::fs::remove_file(&p).unwrap();
            then_valid_create_works(&mut t, &marker);
        }
    }
}

/// `--log-format` takes text or json only; anything else is an error that
/// names the flag and the values, before the command runs.
#[test]
fn bogus_log_format_is_refused() {
    let t = Harness::new_unchecked("er-log-format");
    let o = t.rt(&["--log-format", "bogus", "list"]);
    o.assert_fail();
    assert!(o.stderr.contains("--log-format"), "{}", o.describe());
    assert!(o.stderr.contains("text") && o.stderr.contains("json"), "{}", o.describe());
    assert!(o.stdout.is_empty(), "the command ran: {}", o.describe());
    t.rt(&["--log-format", "json", "list"]).assert_ok();
}

/// A real-time signal is RTMIN+N / RTMAX-N with N in range, as runc: a
/// negative or too large N is an error, not another signal (RTMIN+-3 was
/// sent as 31, SIGSYS, which kills).
#[test]
fn kill_refuses_real_time_signals_out_of_range() {
    let Some((mut t, marker)) = marked("er-kill-rt") else {
        return;
    };
    // pid 1 ignores signals it has no handler for: trap RTMIN+2 (glibc's
    // RTMIN is 34).
    t.args(&["sh", "-c", "trap 'exit 7' 36; sleep 300 & wait", &marker]);
    t.run_detached().assert_ok();
    for sig in ["RTMIN+-3", "SIGRTMIN-1", "RTMIN+99", "RTMAX+1"] {
        let o = t.kill(sig);
        o.assert_fail();
        assert!(contains_ci(&o.stderr, "invalid signal"), "{sig}: {}", o.describe());
    }
    assert_eq!(t.status().as_deref(), Some("running"), "a refused signal was sent");
    // In range it is delivered.
    t.kill("RTMIN+2").assert_ok();
    assert!(t.wait_status("stopped", T), "{:?}", t.status());
}

/// issue 19 #10: a linux.devices path is cleaned before the "under /dev"
/// check: `/dev/../etc/x` made a host-disk node on the rootfs (kept after
/// delete). Majors and minors the kernel's dev_t cannot hold are refused,
/// not truncated into another device.
#[test]
fn device_outside_dev_or_too_big_is_refused() {
    let cases = [
        (json!({"path": "/dev/../etc/rpct-disk", "type": "b", "major": 8, "minor": 0, "fileMode": 438}), "linux.devices[0].path"),
        (json!({"path": "/dev/rpct-big", "type": "c", "major": 4294967297u64, "minor": 3}), "linux.devices[0].major"),
        (json!({"path": "/dev/rpct-big", "type": "c", "major": 1, "minor": 1048576}), "linux.devices[0].minor"),
    ];
    for (dev, field) in cases {
        let Some((mut t, marker)) = marked("er-dev") else { return };
        t.config["linux"]["devices"] = json!([dev]);
        t.write_config();
        let o = create_fails_cleanly(&t, &marker);
        assert!(o.stderr.contains(field), "{field}: {}", o.describe());
        assert!(!t.rootfs.join("etc/rpct-disk").exists(), "a node was made on the rootfs");
    }
    // Cleaned and under /dev, it is made where it says.
    let mut t = harness!("er-dev-ok");
    t.config["linux"]["devices"] = json!([{"path": "/dev/sub/../rpct-null", "type": "c", "major": 1, "minor": 3}]);
    t.sh("ls -l /dev/rpct-null");
    let out = t.run_ok();
    assert!(out.starts_with('c') && out.contains("1,   3"), "{out}");
}

/// Issue 13: a state directory made by another backend (a --root shared
/// by two runtimes) is refused by every verb, with an error naming both
/// backends, and nothing of the container is touched; `list` leaves it
/// out. Handled as ours, its record would be read as ours (delete
/// --force would kill and remove what it names).
#[test]
fn a_state_made_by_another_backend_is_refused() {
    let Some((t, marker)) = marked("foreign-backend") else { return };
    if is_reference_runc() {
        testkit::skip!("rpc-runc's own state format");
        return;
    }
    t.create().assert_ok();
    t.start().assert_ok();
    let pid = t.pid();
    let path = t.root.join(&t.id).join("state.json");
    let ours = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(v["backend"], "native");
    v["backend"] = json!("microvm");
    std::fs::write(&path, v.to_string()).unwrap();
    let id = t.id.clone();
    for args in [
        vec!["state", &id],
        vec!["kill", &id, "KILL"],
        vec!["kill", "--all", &id, "KILL"],
        vec!["pause", &id],
        vec!["start", &id],
        vec!["exec", &id, "true"],
        vec!["ps", &id],
        vec!["events", "--stats", &id],
        vec!["update", "--memory", "64m", &id],
        vec!["delete", &id],
        vec!["delete", "--force", &id],
    ] {
        let o = t.rt(&args);
        o.assert_fail();
        assert!(o.stderr.contains("microvm") && o.stderr.contains("native") && o.stderr.contains(&id), "{args:?}: {}", o.describe());
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "{args:?} touched the container's process");
        assert!(!processes_with_marker(&marker).is_empty(), "{args:?}: the container's program is gone");
    }
    let l = t.rt(&["list", "-q"]);
    l.assert_ok();
    assert!(!l.stdout.lines().any(|x| x == id), "list shows another backend's container as ours: {}", l.describe());
    // Ours again: it is all still there, and goes as usual.
    std::fs::write(&path, ours).unwrap();
    assert_eq!(t.status().as_deref(), Some("running"));
    t.delete_force().assert_ok();
    t.assert_no_leftovers(&t.id, &marker);
}

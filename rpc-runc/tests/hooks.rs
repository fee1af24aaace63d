//! OCI hooks: order, the state on stdin, args/env, timeout and failures.
//!
//! Where each hook runs (per the OCI runtime spec, as runc does it):
//! - prestart, createRuntime, poststart, poststop: runtime namespace (host);
//! - createContainer: the container's namespaces, after the mounts but before
//!   pivot_root, path resolved in the runtime namespace (the container's mount
//!   namespace still sees the host tree, so host paths work);
//! - startContainer: the container's namespaces after pivot_root, path
//!   resolved in the container's rootfs (so `/bin/sh` is the busybox in it and
//!   it writes to the bind-mounted `/shared`).
#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

const ALL: [&str; 6] = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// Is this hook run inside the container after pivot_root?
fn in_container_root(hook: &str) -> bool {
    hook == "startContainer"
}

/// Path of the shared dir as seen by the hook.
fn shared_for(t: &Harness, hook: &str) -> String {
    if in_container_root(hook) {
        "/shared".into()
    } else {
        t.shared.to_string_lossy().into_owned()
    }
}

fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Every hook appends its name to shared/log and saves its stdin to
/// shared/NAME.json.
fn all_hooks(t: &mut Harness) {
    let mut hooks = serde_json::Map::new();
    for h in ALL {
        let d = shared_for(t, h);
        hooks.insert(h.to_string(), json!([sh_hook(&format!("echo {h} >> {d}/log; cat > {d}/{h}.json"))]));
    }
    t.config["hooks"] = Value::Object(hooks);
}

/// runc 1.1 runs the poststart hooks at the end of `create` (in
/// linuxContainer.start, right after runc init reports ready), i.e. before
/// `start` and before the user process runs, and passes status "created".
/// The OCI spec (and runc >= 1.2) run them after the user process has been
/// started, before `start` returns, with status "running".
fn poststart_at_create() -> bool {
    is_runc_before_1_2()
}

fn log_lines(t: &Harness) -> Vec<String> {
    t.shared_file("log").lines().map(|s| s.to_string()).collect()
}

#[test]
fn all_six_hooks_run_in_order() {
    let mut t = harness!("hk-order");
    all_hooks(&mut t);
    t.share().sh("echo process >> /shared/log; sleep 300");
    t.create().assert_ok();
    if poststart_at_create() {
        assert_eq!(log_lines(&t), ["prestart", "createRuntime", "createContainer", "poststart"], "after create");
        t.start().assert_ok();
        assert!(wait_until(T, || log_lines(&t).len() >= 6), "log: {:?}", log_lines(&t));
        let l = log_lines(&t);
        assert_eq!(l[4..], ["startContainer", "process"], "{l:?}");
    } else {
        assert_eq!(log_lines(&t), ["prestart", "createRuntime", "createContainer"], "after create");
        t.start().assert_ok();
        // poststart has run when `start` returns
        let l = log_lines(&t);
        assert!(l.contains(&"poststart".to_string()), "poststart not run when start returned: {l:?}");
        assert!(wait_until(T, || log_lines(&t).len() >= 6), "log: {:?}", log_lines(&t));
        let l = log_lines(&t);
        assert_eq!(l[..4], ["prestart", "createRuntime", "createContainer", "startContainer"], "{l:?}");
        // the process and poststart race; both come after startContainer
        let mut tail = l[4..].to_vec();
        tail.sort();
        assert_eq!(tail, ["poststart", "process"], "{l:?}");
    }
    t.kill("KILL").assert_ok();
    assert!(t.wait_status("stopped", T));
    assert!(!log_lines(&t).contains(&"poststop".to_string()), "poststop before delete");
    t.delete().assert_ok();
    let l = log_lines(&t);
    assert_eq!(l.last().map(|s| s.as_str()), Some("poststop"), "{l:?}");
    assert_eq!(l.len(), 7, "{l:?}");
}

#[test]
fn hooks_with_run() {
    let mut t = harness!("hk-run");
    all_hooks(&mut t);
    t.share().sh("echo process >> /shared/log");
    t.run().assert_ok();
    let l = log_lines(&t);
    assert_eq!(l.len(), 7, "{l:?}");
    assert_eq!(l.last().map(|s| s.as_str()), Some("poststop"), "{l:?}");
    if poststart_at_create() {
        assert_eq!(l[..6], ["prestart", "createRuntime", "createContainer", "poststart", "startContainer", "process"], "{l:?}");
    } else {
        assert_eq!(l[..4], ["prestart", "createRuntime", "createContainer", "startContainer"], "{l:?}");
        let mut mid = l[4..6].to_vec();
        mid.sort();
        assert_eq!(mid, ["poststart", "process"], "{l:?}");
    }
}

fn hook_state(t: &Harness, hook: &str) -> Value {
    let s = t.shared_file(&format!("{hook}.json"));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{hook} stdin is not JSON ({e}): {s:?}"))
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let mut t = harness!("hk-state");
    all_hooks(&mut t);
    t.config["annotations"] = json!({"org.test.hook": "yes"});
    t.share().args(&["sleep", "300"]);
    t.create().assert_ok();
    let pid = t.pid() as i64;
    t.start().assert_ok();
    assert!(wait_until(T, || t.shared.join("poststart.json").exists()));
    // poststart may still be writing; wait for a complete document
    assert!(wait_until(T, || serde_json::from_str::<Value>(&t.shared_file("poststart.json")).is_ok()));
    t.delete_force().assert_ok();
    let bundle = std::fs::canonicalize(&t.bundle).unwrap();
    for h in ALL {
        let s = hook_state(&t, h);
        assert_eq!(s["id"], t.id.as_str(), "{h}: {s}");
        assert!(s["ociVersion"].is_string(), "{h}: {s}");
        assert_eq!(s["bundle"].as_str().map(std::path::PathBuf::from), Some(bundle.clone()), "{h}: {s}");
        assert_eq!(s["annotations"]["org.test.hook"], "yes", "{h}: {s}");
        let spid = s["pid"].as_i64().unwrap_or(0);
        if h == "createContainer" || h == "startContainer" {
            // runc reports the pid as seen from inside the container's pid
            // namespace (getpid() = 1) for the hooks run in the container;
            // the spec's "as seen by the host" is the state pid.
            assert!(spid == 1 || spid == pid, "{h}: pid {spid}, container pid {pid}: {s}");
        } else if h != "poststop" {
            assert_eq!(spid, pid, "{h}: {s}");
        }
    }
    let status = |h: &str| hook_state(&t, h)["status"].as_str().unwrap_or("").to_string();
    assert_eq!(status("prestart"), "creating");
    assert_eq!(status("createRuntime"), "creating");
    assert_eq!(status("createContainer"), "creating");
    assert_eq!(status("startContainer"), "created");
    assert_eq!(status("poststart"), if poststart_at_create() { "created" } else { "running" });
    assert_eq!(status("poststop"), "stopped");
}

#[test]
fn create_container_hook_runs_in_container_namespaces() {
    let mut t = harness!("hk-cc-ns");
    let d = t.shared.to_string_lossy().into_owned();
    t.config["hooks"] = json!({
        "createContainer": [sh_hook(&format!(
            "readlink /proc/self/ns/mnt > {d}/mnt; readlink /proc/self/ns/net > {d}/net; \
             readlink /proc/self/ns/uts > {d}/uts"))],
        "createRuntime": [sh_hook(&format!("readlink /proc/self/ns/mnt > {d}/rt-mnt"))]
    });
    t.config["hostname"] = json!("hooked");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let pid = t.pid();
    assert_eq!(t.shared_file("mnt").trim(), pid_ns(pid, "mnt"));
    assert_eq!(t.shared_file("net").trim(), pid_ns(pid, "net"));
    // (runc sets the hostname only after this hook, so it is not checked)
    assert_eq!(t.shared_file("uts").trim(), pid_ns(pid, "uts"));
    assert_eq!(t.shared_file("rt-mnt").trim(), host_ns("mnt"));
}

#[test]
fn start_container_hook_path_is_in_the_container() {
    let mut t = harness!("hk-sc-path");
    // a script that exists only in the container's rootfs
    write_file(&t.rootfs.join("hook.sh"), "#!/bin/sh\necho \"in-container $(cat /marker)\" > /shared/sc\n");
    write_file(&t.rootfs.join("marker"), "rootfs-marker");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.rootfs.join("hook.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.config["hooks"] = json!({"startContainer": [{"path": "/hook.sh"}]});
    t.share().args(&["true"]);
    t.run().assert_ok();
    assert_eq!(t.shared_file("sc"), "in-container rootfs-marker\n");
}

#[test]
fn hook_args_and_env() {
    let mut t = harness!("hk-args-env");
    let d = t.shared.to_string_lossy().into_owned();
    t.config["hooks"] = json!({"prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0|$1|$2|$HOOK_VAR|$PATH\" > {d}/out"), "zero", "one", "two words"],
        "env": ["HOOK_VAR=hello hook", "PATH=/hookpath"]
    }]});
    t.args(&["true"]);
    t.run().assert_ok();
    assert_eq!(t.shared_file("out"), "zero|one|two words|hello hook|/hookpath\n");
}

#[test]
fn several_hooks_of_a_kind_run_in_order() {
    let mut t = harness!("hk-several");
    let d = t.shared.to_string_lossy().into_owned();
    t.config["hooks"] = json!({"prestart": [
        sh_hook(&format!("echo a >> {d}/log")),
        sh_hook(&format!("echo b >> {d}/log")),
        sh_hook(&format!("echo c >> {d}/log"))
    ]});
    t.args(&["true"]);
    t.run().assert_ok();
    assert_eq!(t.shared_file("log"), "a\nb\nc\n");
}

fn assert_create_failed_cleanly(t: &Harness, o: &Out, marker: &str) {
    o.assert_fail();
    let st = t.state();
    assert!(!st.ok() && contains_ci(&st.stderr, "does not exist"), "container exists after failed create: {}", st.describe());
    t.assert_no_leftovers(&t.id, marker);
}

#[test]
fn hook_timeout_kills_a_slow_hook_and_fails_create() {
    let mut t = harness!("hk-timeout");
    let marker = format!("marker-{}", t.id);
    t.config["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "7"], "timeout": 1}]});
    t.marked_sleep(&marker);
    let start = Instant::now();
    let o = t.create();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "create took {took:?}: the hook was not killed at its timeout");
    assert_create_failed_cleanly(&t, &o, &marker);
}

#[test]
fn create_runtime_hook_timeout() {
    let mut t = harness!("hk-timeout-cr");
    let marker = format!("marker-{}", t.id);
    t.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "7"], "timeout": 1}]});
    t.marked_sleep(&marker);
    let start = Instant::now();
    let o = t.create();
    assert!(start.elapsed() < Duration::from_secs(6), "hook not killed at its timeout");
    assert_create_failed_cleanly(&t, &o, &marker);
}

#[test]
fn hook_within_timeout_is_fine() {
    let mut t = harness!("hk-timeout-ok");
    let d = t.shared.to_string_lossy().into_owned();
    t.config["hooks"] =
        json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("sleep 0.2; echo done > {d}/x")], "timeout": 5}]});
    t.args(&["true"]);
    t.run().assert_ok();
    assert_eq!(t.shared_file("x"), "done\n");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    let mut t = harness!("hk-fail-cr");
    let marker = format!("marker-{}", t.id);
    t.config["hooks"] = json!({"createRuntime": [sh_hook("exit 1")]});
    t.marked_sleep(&marker);
    let o = t.create();
    assert_create_failed_cleanly(&t, &o, &marker);
    assert!(t.root_entries().is_empty(), "leftovers under --root: {:?}", t.root_entries());
}

#[test]
fn failing_prestart_hook_fails_create() {
    let mut t = harness!("hk-fail-pre");
    let marker = format!("marker-{}", t.id);
    let d = t.shared.to_string_lossy().into_owned();
    t.config["hooks"] = json!({
        "prestart": [sh_hook("exit 3")],
        "createRuntime": [sh_hook(&format!("echo ran > {d}/cr"))]
    });
    t.marked_sleep(&marker);
    let o = t.create();
    assert_create_failed_cleanly(&t, &o, &marker);
    assert_eq!(t.shared_file("cr"), "", "a hook ran after a failed prestart hook");
}

#[test]
fn failing_create_container_hook_fails_create() {
    let mut t = harness!("hk-fail-cc");
    let marker = format!("marker-{}", t.id);
    t.config["hooks"] = json!({"createContainer": [sh_hook("exit 1")]});
    t.marked_sleep(&marker);
    let o = t.create();
    assert_create_failed_cleanly(&t, &o, &marker);
}

#[test]
fn missing_hook_binary_fails_create() {
    let mut t = harness!("hk-missing");
    let marker = format!("marker-{}", t.id);
    t.config["hooks"] = json!({"prestart": [{"path": "/nonexistent/hook-binary"}]});
    t.marked_sleep(&marker);
    let o = t.create();
    assert_create_failed_cleanly(&t, &o, &marker);
}

#[test]
fn failing_start_container_hook_stops_the_container() {
    let mut t = harness!("hk-fail-sc");
    t.config["hooks"] = json!({"startContainer": [sh_hook("exit 1")]});
    t.share().sh("touch /shared/ran; sleep 300");
    t.create().assert_ok();
    // runc 1.1's `start` exits 0 here: it only does the exec fifo handshake,
    // the hook runs in runc init after it. The spec wants an error; both
    // agree that the container stops without running its process.
    let _ = t.start();
    assert!(t.wait_status("stopped", T), "status {:?}", t.status());
    assert!(!t.shared.join("ran").exists(), "the process ran despite a failing startContainer hook");
}

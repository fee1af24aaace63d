//! POSIX-platform hooks (config.md#posix-platform-hooks, runtime.md#lifecycle).

use super::Case;
use crate::bundle::ConfigExt;
use crate::runner::{ns_inode, pid_alive, Ctx, LEAK_VAR};
use crate::verdict::{Rule, Verdict, R};
use crate::{case, check, check_eq};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const T5: Duration = Duration::from_secs(5);

pub const KINDS: &[&str] = &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "hooks.order",
            "runtime.md#lifecycle",
            "prestart and createRuntime, then createContainer run during create; startContainer (before the program) and poststart during start; poststop during delete",
            hooks_order
        ),
        case!("hooks.state.prestart", "config.md#prestart", "prestart gets the state on stdin: id, bundle, pid, annotations, status \"creating\"", |c| hook_state(c, "prestart")),
        case!("hooks.state.createRuntime", "config.md#createruntime-hooks", "createRuntime gets the state on stdin: id, bundle, pid, annotations, status \"creating\"", |c| hook_state(c, "createRuntime")),
        case!("hooks.state.createContainer", "config.md#createcontainer-hooks", "createContainer gets the state on stdin: id, bundle, pid, annotations, status \"creating\"", |c| hook_state(c, "createContainer")),
        case!("hooks.state.startContainer", "config.md#startcontainer-hooks", "startContainer gets the state on stdin: id, bundle, pid, annotations, status \"created\"", |c| hook_state(c, "startContainer")),
        case!("hooks.state.poststart", "config.md#poststart", "poststart gets the state on stdin: id, bundle, pid, annotations, status \"running\"", |c| hook_state(c, "poststart")),
        case!("hooks.state.poststop", "config.md#poststop", "poststop gets the state on stdin: id, bundle, annotations, status \"stopped\"", |c| hook_state(c, "poststop")),
        case!("hooks.env", "config.md#posix-platform-hooks", "a hook's environment is exactly its env (nothing of the runtime's leaks in)", hooks_env),
        case!("hooks.args", "config.md#posix-platform-hooks", "a hook gets its args as argv, unsplit", hooks_args),
        case!("hooks.timeout", "config.md#posix-platform-hooks", "a hook running past its timeout is aborted and create fails (without running the program)", hooks_timeout),
        case!("hooks.fail.prestart", "runtime.md#lifecycle", "a failing prestart hook makes create fail, the container is stopped and the program never runs", |c| hook_fails_create(c, "prestart")),
        case!("hooks.fail.createRuntime", "runtime.md#lifecycle", "a failing createRuntime hook makes create fail, the container is stopped and the program never runs", |c| hook_fails_create(c, "createRuntime")),
        case!("hooks.fail.createContainer", "runtime.md#lifecycle", "a failing createContainer hook makes create fail, the container is stopped and the program never runs", |c| hook_fails_create(c, "createContainer")),
        case!(
            "hooks.fail.startContainer",
            "runtime.md#lifecycle",
            "a failing startContainer hook stops the container without running the program; spec: start fails; runc: start has already returned success when the container init runs the hook",
            hook_fails_start
        ),
        case!(
            "hooks.fail.poststart",
            "runtime.md#lifecycle",
            "spec: a failing poststart hook is logged as a warning and the lifecycle (and later poststart hooks) go on; runc 1.1: poststart runs in create, whose failure removes the container",
            hook_fails_poststart
        ),
        case!(
            "hooks.fail.poststop",
            "runtime.md#lifecycle",
            "a failing poststop hook is logged as a warning: delete completes and later poststop hooks run",
            hook_fails_poststop
        ),
        case!(
            "hooks.runtime-namespace",
            "config.md#posix-platform-hooks",
            "prestart, createRuntime, poststart and poststop run in the runtime's namespaces (mount, network)",
            hooks_runtime_ns
        ),
        case!(
            "hooks.container-namespace",
            "config.md#createcontainer-hooks",
            "createContainer and startContainer run in the container's namespaces (mount, uts, ipc, network, pid)",
            hooks_container_ns
        ),
        case!("hooks.startContainer.path", "config.md#startcontainer-hooks", "startContainer's path resolves in the container (a hook only the rootfs has runs)", hooks_start_path),
        case!(
            "hooks.poststart.timing",
            "runtime.md#lifecycle",
            "spec: poststart runs during start, after the program is executed, before start returns; runc 1.1: poststart runs at the end of create, before the program",
            hooks_poststart_timing
        ),
    ]
}

/// Where a hook of `kind` writes: the host path of the shared dir, except
/// startContainer, which runs in the container and writes to /shared.
fn dir_for(c: &Ctx, kind: &str) -> String {
    if kind == "startContainer" {
        "/shared".into()
    } else {
        c.shared.to_string_lossy().into_owned()
    }
}

/// A hook running `script` under busybox sh. startContainer's path must
/// resolve in the container: /bin/busybox of the rootfs.
fn hook(c: &Ctx, kind: &str, script: &str) -> Value {
    let path = if kind == "startContainer" || kind == "createContainer" {
        "/bin/busybox".to_string()
    } else {
        c.host.busybox.to_string_lossy().into_owned()
    };
    json!({"path": path, "args": ["sh", "-c", script]})
}

/// Add a hook that first reads its stdin (the state) and then runs `script`.
fn add_hook(c: &mut Ctx, kind: &str, script: &str) {
    let h = hook(c, kind, &format!("cat > /dev/null; {script}"));
    c.config.push(&format!("hooks/{kind}"), h);
}

fn hooks_order(c: &mut Ctx) -> R {
    for k in KINDS {
        let d = dir_for(c, k);
        add_hook(c, k, &format!("echo {k} >> {d}/order"));
    }
    let (id, _) = c.create_ready("echo process >> /shared/order; exit 0")?;
    // Where poststart runs is the subject of hooks.poststart.timing.
    let order = |c: &Ctx| -> Vec<String> { c.read_shared("order").lines().filter(|l| *l != "poststart").map(String::from).collect() };
    let after_create = order(c);
    let mut first2 = after_create.iter().take(2).cloned().collect::<Vec<_>>();
    first2.sort();
    check!(
        after_create.len() == 3 && first2 == ["createRuntime", "prestart"] && after_create[2] == "createContainer",
        "after create the hooks run were {after_create:?}, want prestart and createRuntime, then createContainer"
    );
    c.start(&id)?;
    // runc runs startContainer in the container init it has just released,
    // so start may return before it is done: wait for it.
    let deadline = Instant::now() + T5;
    while !order(c).iter().any(|h| h == "startContainer") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.wait_status(&id, "stopped", T5)?;
    let seq = order(c);
    let s = seq.iter().position(|h| h == "startContainer");
    let p = seq.iter().position(|h| h == "process");
    check!(s == Some(3), "startContainer did not run after createContainer: {seq:?}");
    check!(p.is_some() && s < p, "the program did not run after startContainer: {seq:?}");
    check!(c.read_shared("order").lines().any(|l| l == "poststart"), "poststart did not run");
    check!(!seq.iter().any(|h| h == "poststop"), "poststop ran before delete: {seq:?}");
    let o = c.delete(&id);
    check!(o.ok(), "delete failed: {}", o.brief());
    let seq = order(c);
    check_eq!(seq.last().map(|s| s.as_str()), Some("poststop"), "last hook after delete ({seq:?})");
    Ok(Verdict::Pass)
}

fn hook_state(c: &mut Ctx, kind: &str) -> R {
    let d = dir_for(c, kind);
    let h = hook(c, kind, &format!("cat > {d}/{kind}.json.tmp; mv {d}/{kind}.json.tmp {d}/{kind}.json"));
    c.config.push(&format!("hooks/{kind}"), h);
    c.config["annotations"] = json!({"org.opencontainers.conformance.hook": "yes"});
    let (id, host_pid) = c.create_ready("touch /shared/ready; sleep 1000; true")?;
    let file = format!("{kind}.json");
    // runc 1.1 runs poststart at the end of create (hooks.poststart.timing).
    let poststart_in_create = kind == "poststart" && c.sh_path(&file).exists();
    if !matches!(kind, "prestart" | "createRuntime" | "createContainer") && !poststart_in_create {
        c.start(&id)?;
        let deadline = Instant::now() + T5;
        while !c.sh_path(&file).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if kind == "poststop" {
        let o = c.kill(&id, "KILL");
        check!(o.ok(), "kill failed: {}", o.brief());
        c.wait_status(&id, "stopped", T5)?;
        let o = c.delete(&id);
        check!(o.ok(), "delete failed: {}", o.brief());
    }
    let text = c.read_shared(&file);
    check!(!text.is_empty(), "the {kind} hook got no state on stdin (or did not run)");
    let s: Value = serde_json::from_str(&text)
        .map_err(|e| Verdict::Fail(format!("{kind} stdin is not JSON ({e}): {}", crate::runner::cut(&text, 150))))?;
    let want_status = match kind {
        "startContainer" => "created",
        "poststart" if poststart_in_create => "created",
        "poststart" => "running",
        "poststop" => "stopped",
        _ => "creating",
    };
    check!(s["ociVersion"].as_str().map(|v| !v.is_empty()).unwrap_or(false), "no ociVersion in {kind}'s state");
    check_eq!(s["id"].as_str().unwrap_or(""), id.as_str(), "id in {kind}'s state");
    let b = s["bundle"].as_str().unwrap_or("");
    check!(fs::canonicalize(b).ok() == fs::canonicalize(&c.bundle).ok(), "bundle {b:?} in {kind}'s state");
    check_eq!(s["annotations"]["org.opencontainers.conformance.hook"].as_str().unwrap_or(""), "yes", "annotation in {kind}'s state");
    // "For hooks executed in the runtime namespace, it is the pid as seen by
    // the runtime. For hooks executed in the container namespace, it is the
    // pid as seen by the container."
    let in_container = matches!(kind, "createContainer" | "startContainer");
    let pid = if in_container { 1 } else { host_pid };
    if kind != "poststop" {
        check_eq!(
            s["pid"].as_i64().unwrap_or(0),
            pid,
            "pid in {kind}'s state ({})",
            if in_container { "as seen in the container's pid namespace" } else { "as seen by the runtime" }
        );
    }
    check_eq!(s["status"].as_str().unwrap_or(""), want_status, "status in {kind}'s state");
    if poststart_in_create {
        return Ok(Verdict::PassAs(
            Rule::Runc,
            "poststart runs at the end of create (see hooks.poststart.timing); its state says \"created\"".into(),
        ));
    }
    Ok(Verdict::Pass)
}

fn hooks_env(c: &mut Ctx) -> R {
    let d = dir_for(c, "createRuntime");
    let mut h = hook(c, "createRuntime", &format!("cat > /dev/null; env > {d}/env"));
    h["env"] = json!(["HOOK_A=1", "HOOK_B=two words", "PATH=/usr/bin:/bin"]);
    c.config.push("hooks/createRuntime", h);
    c.create_ready("sleep 1000")?;
    let env = c.read_shared("env");
    check!(!env.is_empty(), "the hook did not run");
    check!(env.lines().any(|l| l == "HOOK_A=1"), "HOOK_A=1 missing from the hook's env: {env:?}");
    check!(env.lines().any(|l| l == "HOOK_B=two words"), "HOOK_B missing from the hook's env: {env:?}");
    check!(!env.contains(LEAK_VAR), "the runtime's environment leaked into the hook ({LEAK_VAR})");
    Ok(Verdict::Pass)
}

fn hooks_args(c: &mut Ctx) -> R {
    let d = dir_for(c, "createRuntime");
    let mut h = hook(c, "createRuntime", "");
    h["args"] = json!(["sh", "-c", format!("cat > /dev/null; printf '[%s]' \"$0\" \"$@\" > {d}/args"), "zero", "one", "two words", ""]);
    c.config.push("hooks/createRuntime", h);
    c.create_ready("sleep 1000")?;
    check_eq!(c.read_shared("args"), "[zero][one][two words][]", "argv seen by the hook");
    Ok(Verdict::Pass)
}

fn hooks_timeout(c: &mut Ctx) -> R {
    let mut h = hook(c, "createRuntime", "sleep 30");
    h["timeout"] = json!(1);
    c.config.push("hooks/createRuntime", h);
    c.set_script("touch /shared/ran; sleep 1000");
    let id = c.new_id();
    let t0 = Instant::now();
    let o = c.try_create(&id, &[])?;
    let took = t0.elapsed();
    check!(!o.ok(), "create succeeded although its createRuntime hook ran past its 1 s timeout (took {:.1}s)", took.as_secs_f64());
    check!(took < Duration::from_secs(15), "create took {:.1}s: the hook was not aborted at its timeout", took.as_secs_f64());
    std::thread::sleep(Duration::from_millis(200));
    check!(!c.sh_path("ran").exists(), "the program ran");
    let st = c.status(&id);
    check!(st.is_none() || st.as_deref() == Some("stopped"), "after the failed create the container is {st:?}");
    Ok(Verdict::Pass)
}

fn hook_fails_create(c: &mut Ctx, kind: &str) -> R {
    add_hook(c, kind, "echo failing {kind} hook >&2; exit 1");
    c.set_script("touch /shared/ran; sleep 1000");
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "create succeeded although a {kind} hook failed");
    std::thread::sleep(Duration::from_millis(200));
    check!(!c.sh_path("ran").exists(), "the program ran");
    let st = c.status(&id);
    check!(st.is_none() || st.as_deref() == Some("stopped"), "after the failed {kind} hook the container is {st:?}, want stopped or gone");
    Ok(Verdict::Pass)
}

fn hook_fails_start(c: &mut Ctx) -> R {
    add_hook(c, "startContainer", "exit 1");
    let (id, pid) = c.create_ready("touch /shared/ran; sleep 1000")?;
    let o = c.rt(&["start", &id]);
    check!(c.wait_pid_gone(pid, T5), "the container process {pid} is still alive after its startContainer hook failed");
    check!(!c.sh_path("ran").exists(), "the program ran although a startContainer hook failed");
    let st = c.status(&id);
    check!(st.is_none() || st.as_deref() == Some("stopped"), "after the failed startContainer hook the container is {st:?}");
    if o.ok() {
        return Ok(Verdict::PassAs(
            Rule::Runc,
            "start returns success; the container init reports the hook error and stops without running the program".into(),
        ));
    }
    Ok(Verdict::PassAs(Rule::Spec, "start fails and the container is stopped".into()))
}

fn hook_fails_poststart(c: &mut Ctx) -> R {
    let d = dir_for(c, "poststart");
    add_hook(c, "poststart", &format!("touch {d}/first; exit 1"));
    add_hook(c, "poststart", &format!("touch {d}/second"));
    c.set_script("touch /shared/ran; sleep 1000; true");
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    if !o.ok() && c.sh_path("first").exists() {
        // runc 1.1 runs poststart at the end of create.
        check!(!c.sh_path("ran").exists(), "the program ran");
        let st = c.status(&id);
        check!(st.is_none() || st.as_deref() == Some("stopped"), "create failed but the container is {st:?}");
        return Ok(Verdict::PassAs(
            Rule::Runc,
            "poststart runs at the end of create; its failure fails create and removes the container".into(),
        ));
    }
    check!(o.ok(), "create failed: {}", o.brief());
    let pid = c.pid(&id)?;
    let o = c.rt(&["start", &id]);
    if o.ok() {
        check_eq!(c.status(&id).unwrap_or_default(), "running", "status after start with a failed poststart hook");
        check!(c.sh_path("second").exists(), "start succeeded but the poststart hook after the failing one did not run");
        return Ok(Verdict::PassAs(Rule::Spec, "start succeeds, later poststart hooks run, the container keeps running".into()));
    }
    check!(c.wait_pid_gone(pid, T5), "start failed but the container process {pid} is alive");
    let st = c.status(&id);
    check!(st.is_none() || st.as_deref() == Some("stopped"), "start failed but the container is {st:?}");
    Ok(Verdict::PassAs(Rule::Runc, "start fails and the container is stopped".into()))
}

fn hook_fails_poststop(c: &mut Ctx) -> R {
    let d = dir_for(c, "poststop");
    add_hook(c, "poststop", "echo failing poststop hook >&2; exit 1");
    add_hook(c, "poststop", &format!("touch {d}/second"));
    let (id, _) = c.create_ready("exit 0")?;
    c.start(&id)?;
    c.wait_status(&id, "stopped", T5)?;
    let o = c.delete(&id);
    check!(o.ok(), "delete failed because of a failing poststop hook: {}", o.brief());
    check!(c.status(&id).is_none(), "the container still exists after delete");
    check!(c.sh_path("second").exists(), "the poststop hook after the failing one did not run");
    Ok(Verdict::Pass)
}

fn hooks_runtime_ns(c: &mut Ctx) -> R {
    for k in ["prestart", "createRuntime", "poststart", "poststop"] {
        let d = dir_for(c, k);
        add_hook(c, k, &format!("readlink /proc/self/ns/mnt > {d}/{k}.mnt; readlink /proc/self/ns/net > {d}/{k}.net"));
    }
    let (id, _) = c.create_ready("touch /shared/ready; sleep 1000; true")?;
    c.start(&id)?;
    let o = c.delete_force(&id);
    check!(o.ok(), "delete --force failed: {}", o.brief());
    let me = std::process::id().to_string();
    for k in ["prestart", "createRuntime", "poststart", "poststop"] {
        for t in ["mnt", "net"] {
            let got = c.read_shared(&format!("{k}.{t}"));
            check!(!got.is_empty(), "the {k} hook did not run");
            check_eq!(got.trim(), ns_inode(&me, t), "{t} namespace of the {k} hook");
        }
    }
    Ok(Verdict::Pass)
}

fn hooks_container_ns(c: &mut Ctx) -> R {
    let types = ["mnt", "uts", "ipc", "net", "pid"];
    for k in ["createContainer", "startContainer"] {
        let d = dir_for(c, k);
        let s: String = types.iter().map(|t| format!("echo {t}=$(readlink /proc/self/ns/{t}) >> {d}/{k}.ns; ")).collect();
        add_hook(c, k, &s);
    }
    let (id, pid) = c.create_ready("touch /shared/ready; sleep 1000; true")?;
    c.start(&id)?;
    c.wait_file("startContainer.ns", T5);
    std::thread::sleep(Duration::from_millis(100));
    let p = pid.to_string();
    for k in ["createContainer", "startContainer"] {
        let got = crate::runner::kv(&c.read_shared(&format!("{k}.ns")));
        check!(!got.is_empty(), "the {k} hook did not run");
        for t in types {
            check_eq!(got.get(t).cloned().unwrap_or_default(), ns_inode(&p, t), "{t} namespace of the {k} hook vs the container's");
        }
    }
    Ok(Verdict::Pass)
}

fn hooks_start_path(c: &mut Ctx) -> R {
    let dir = c.rootfs.join("conformance-hooks");
    fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(e.to_string()))?;
    let script = dir.join("start-hook");
    fs::write(&script, "#!/bin/sh\necho ran > /shared/start-hook\n").map_err(|e| Verdict::Fail(e.to_string()))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).map_err(|e| Verdict::Fail(e.to_string()))?;
    c.config.push("hooks/startContainer", json!({"path": "/conformance-hooks/start-hook", "args": ["start-hook"]}));
    let (id, _) = c.create_ready("touch /shared/ready; sleep 1000")?;
    c.start(&id)?;
    check!(c.wait_file("start-hook", T5), "the startContainer hook at a path that exists only in the container did not run");
    Ok(Verdict::Pass)
}

fn hooks_poststart_timing(c: &mut Ctx) -> R {
    let d = dir_for(c, "poststart");
    let h = hook(
        c,
        "poststart",
        &format!(
            "p=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); tr '\\0' ' ' < /proc/$p/cmdline > {d}/cmdline; sleep 1; touch {d}/done"
        ),
    );
    c.config.push("hooks/poststart", h);
    let (id, pid) = c.create_ready("touch /shared/ready; sleep 1000; true")?;
    if c.sh_path("done").exists() {
        let cmd = c.read_shared("cmdline");
        check!(!cmd.contains("touch /shared/ready"), "poststart ran during create, after the program had started");
        c.start(&id)?;
        check!(c.wait_file("ready", T5), "the program did not run after start");
        return Ok(Verdict::PassAs(Rule::Runc, "poststart runs at the end of create, before start and before the program".into()));
    }
    c.start(&id)?;
    check!(c.sh_path("done").exists(), "start returned before the poststart hook finished");
    let cmd = c.read_shared("cmdline");
    check!(pid_alive(pid), "the container died");
    check!(!cmd.is_empty(), "the poststart hook could not read the container process's cmdline");
    check!(
        cmd.contains("touch /shared/ready"),
        "poststart ran during start but before the program was executed (the container process was {:?})",
        crate::runner::cut(cmd.trim(), 60)
    );
    Ok(Verdict::PassAs(Rule::Spec, "poststart runs during start, after the program was executed, and start waits for it".into()))
}

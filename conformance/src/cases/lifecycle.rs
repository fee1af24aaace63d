//! Lifecycle, state and the operations in every status (runtime.md).

use super::Case;
use crate::runner::{cut, pid_alive, Ctx};
use crate::verdict::{Rule, Verdict, R};
use crate::{case, check, check_eq};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T5: Duration = Duration::from_secs(5);
const T10: Duration = Duration::from_secs(10);

pub fn cases() -> Vec<Case> {
    vec![
        case!("create.state", "runtime.md#create", "after create, state says \"created\" and its pid is a live process", create_state),
        case!("create.program-not-run", "runtime.md#create", "create must not run the user-specified program; start runs it", create_not_run),
        case!("create.duplicate-id", "runtime.md#create", "create with an id already in use fails and leaves the existing container as it was", create_dup),
        case!("create.no-config", "runtime.md#create", "create of a bundle without config.json fails and leaves no container", create_no_config),
        case!("create.invalid-config", "runtime.md#create", "create with a config.json that is not JSON fails and leaves no container", create_invalid_config),
        case!("create.missing-rootfs", "config.md#root", "create with a root.path that does not exist fails and leaves no container", create_missing_rootfs),
        case!("create.failure-cleanup", "runtime.md#lifecycle", "a create that fails half-way (bind mount of a missing source) leaves no container and no cgroup", create_failure_cleanup),
        case!("create.id-reuse", "runtime.md#delete", "once a container is deleted its id can be used again", create_id_reuse),
        case!("create.id-path-traversal", "runtime.md#state (id)", "an id like ../x is refused instead of writing state outside --root", create_id_traversal),
        case!("state.fields", "runtime.md#state", "state JSON has ociVersion, id, status, pid and the absolute bundle path", state_fields),
        case!("state.annotations", "runtime.md#state", "state carries the config's annotations", state_annotations),
        case!("state.running", "runtime.md#start", "after start, status is \"running\" and pid is the process running the user program", state_running),
        case!("state.stopped", "runtime.md#state", "once the container process exits, status is \"stopped\"", state_stopped),
        case!(
            "state.stopped-pid",
            "runtime.md#state",
            "spec: pid is required only while created or running (a stopped container has no process; it may be omitted); runc: reports pid 0",
            state_stopped_pid
        ),
        case!(
            "state.paused",
            "runtime.md#state",
            "spec: status is creating, created, running or stopped, so a frozen container is \"running\"; runc: pause (freezer) makes it \"paused\"; either way the processes are frozen and resume thaws them",
            state_paused
        ),
        case!("state.unknown", "runtime.md#query-state", "state of an unknown id fails", state_unknown),
        case!("start.running", "runtime.md#start", "start of a running container fails and has no effect (the program is not run again)", start_running),
        case!("start.stopped", "runtime.md#start", "start of a stopped container fails and has no effect", start_stopped),
        case!("start.unknown", "runtime.md#start", "start of an unknown id fails", start_unknown),
        case!("kill.created", "runtime.md#kill", "kill SIGKILL of a created container stops it without running the program", kill_created),
        case!("kill.running", "runtime.md#kill", "kill SIGTERM reaches the container process (its handler runs) and it stops", kill_running),
        case!("kill.signals", "runtime.md#kill", "SIGHUP, SIGINT, SIGUSR1, SIGUSR2 each reach the container process", kill_signals),
        case!("kill.signal-forms", "runc CLI (kill)", "a signal given as USR1, SIGUSR2 or a number is accepted", kill_signal_forms),
        case!("kill.sigkill", "runtime.md#kill", "SIGKILL stops a running container: status stopped, process gone", kill_sigkill),
        case!("kill.stopped", "runtime.md#kill", "kill of a stopped container fails", kill_stopped),
        case!("kill.unknown", "runtime.md#kill", "kill of an unknown id fails", kill_unknown),
        case!("kill.all", "runc CLI (kill --all)", "kill --all signals every process of the container (here sharing the host pid namespace)", kill_all),
        case!("delete.stopped", "runtime.md#delete", "delete of a stopped container removes it: state fails and its cgroups are gone", delete_stopped),
        case!(
            "delete.created",
            "runtime.md#delete",
            "spec: deleting a container that is not stopped fails and has no effect; runc: delete of a created container kills and removes it",
            delete_created
        ),
        case!("delete.running", "runtime.md#delete", "delete of a running container fails and has no effect", delete_running),
        case!("delete.paused", "runtime.md#delete", "delete of a paused container fails and has no effect; delete --force then removes it", delete_paused),
        case!("delete.unknown", "runtime.md#delete", "delete of an unknown id fails", delete_unknown),
        case!("delete.force-running", "runc CLI (delete --force)", "delete --force of a running container kills and removes it", delete_force_running),
        case!("delete.force-created", "runc CLI (delete --force)", "delete --force of a created container kills and removes it", delete_force_created),
        case!("run.exit-code", "runc CLI (run)", "a foreground run exits with the container process's exit code", run_exit_code),
        case!("run.detached", "runc CLI (run -d)", "run -d leaves a running container", run_detached),
        case!("list", "runc CLI (list)", "list shows created and running containers with their status", list),
        case!("pid-file", "runc CLI (create --pid-file)", "--pid-file holds the container process's pid, the same as state's", pid_file),
    ]
}

fn create_state(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("sleep 1000")?;
    let s = c.state(&id)?;
    check_eq!(s["status"].as_str().unwrap_or(""), "created", "status after create");
    check!(pid_alive(pid), "pid {pid} of the created container is not a live process");
    Ok(Verdict::Pass)
}

fn create_not_run(c: &mut Ctx) -> R {
    let (id, _) = c.create_ready("touch /shared/ran; sleep 1000")?;
    std::thread::sleep(Duration::from_millis(300));
    check!(!c.sh_path("ran").exists(), "the program ran before start");
    c.start(&id)?;
    check!(c.wait_file("ran", T5), "the program did not run after start");
    Ok(Verdict::Pass)
}

fn create_dup(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("sleep 1000")?;
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "a second create with the same id succeeded");
    let s = c.state(&id)?;
    check_eq!(s["status"].as_str().unwrap_or(""), "created", "status of the first container");
    check_eq!(s["pid"].as_i64().unwrap_or(0), pid, "pid of the first container");
    check!(pid_alive(pid), "the first container's process died");
    Ok(Verdict::Pass)
}

fn expect_create_fails(c: &mut Ctx, id: &str, what: &str) -> R {
    let b = c.bundle_str();
    c.track_id(id);
    let o = c.rt(&["create", "--bundle", &b, id]);
    check!(!o.ok(), "create with {what} succeeded");
    check!(c.status(id).is_none(), "a container {id} exists after the failed create");
    Ok(Verdict::Pass)
}

fn create_no_config(c: &mut Ctx) -> R {
    let id = c.new_id();
    let _ = fs::remove_file(c.bundle.join("config.json"));
    expect_create_fails(c, &id, "no config.json")
}

fn create_invalid_config(c: &mut Ctx) -> R {
    let id = c.new_id();
    fs::write(c.bundle.join("config.json"), "{\"ociVersion\": \"1.0.2\", \"process\": ").map_err(|e| Verdict::Fail(e.to_string()))?;
    expect_create_fails(c, &id, "a truncated config.json")
}

fn create_missing_rootfs(c: &mut Ctx) -> R {
    let id = c.new_id();
    c.config["root"]["path"] = json!("no-such-rootfs");
    c.write_config()?;
    expect_create_fails(c, &id, "a missing root.path")
}

/// cgroup directories the container's cgroupsPath names, on every hierarchy.
fn cgroup_dirs(c: &Ctx) -> Vec<PathBuf> {
    let rel = c.cgroups_path.trim_start_matches('/').to_string();
    let mut v: Vec<PathBuf> = c.host.cgroups.v1.values().map(|ctl| ctl.mount.join(&rel)).collect();
    if let Some(m) = &c.host.cgroups.v2_mount {
        v.push(m.join(&rel));
    }
    v.sort();
    v.dedup();
    v
}

fn create_failure_cleanup(c: &mut Ctx) -> R {
    let id = c.new_id();
    let missing = c.dir.join("no-such-source");
    let m = json!({"destination": "/mnt/x", "type": "bind", "source": missing.to_string_lossy(), "options": ["rbind"]});
    c.config["mounts"].as_array_mut().expect("mounts").push(m);
    c.set_script("touch /shared/ran");
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "create with a bind mount of a missing source succeeded");
    check!(c.status(&id).is_none(), "a container exists after the failed create");
    check!(!c.sh_path("ran").exists(), "the program ran");
    let left: Vec<String> = cgroup_dirs(c).into_iter().filter(|d| d.exists()).map(|d| d.display().to_string()).collect();
    check!(left.is_empty(), "cgroups left behind: {}", left.join(", "));
    Ok(Verdict::Pass)
}

fn create_id_reuse(c: &mut Ctx) -> R {
    let (id, _) = c.create_ready("sleep 1000")?;
    let o = c.delete_force(&id);
    check!(o.ok(), "delete --force failed: {}", o.brief());
    check!(c.status(&id).is_none(), "container still exists after delete --force");
    c.create(&id)?;
    check_eq!(c.status(&id).unwrap_or_default(), "created", "status of the re-created container");
    Ok(Verdict::Pass)
}

fn create_id_traversal(c: &mut Ctx) -> R {
    let id = format!("../escape-{}", std::process::id());
    c.set_script("sleep 1000");
    let o = c.try_create(&id, &[])?;
    let escaped = c.dir.join(id.trim_start_matches("../"));
    check!(!o.ok(), "create accepted the id {id:?}{}", if escaped.exists() { " and wrote state outside --root" } else { "" });
    check!(!escaped.exists(), "create failed but left {} outside --root", escaped.display());
    Ok(Verdict::Pass)
}

fn state_fields(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("sleep 1000")?;
    let s = c.state(&id)?;
    let v = s["ociVersion"].as_str().unwrap_or("");
    check!(v.chars().next().map(|ch| ch.is_ascii_digit()).unwrap_or(false), "ociVersion {:?} is not a version", s["ociVersion"]);
    check_eq!(s["id"].as_str().unwrap_or(""), id.as_str(), "id");
    check_eq!(s["status"].as_str().unwrap_or(""), "created", "status");
    check!(s["pid"].as_i64() == Some(pid) && pid > 0, "pid {:?}", s["pid"]);
    let b = s["bundle"].as_str().unwrap_or("");
    check!(Path::new(b).is_absolute(), "bundle {:?} is not an absolute path", s["bundle"]);
    let same = fs::canonicalize(b).ok() == fs::canonicalize(&c.bundle).ok();
    check!(same, "bundle {b:?} is not the bundle {}", c.bundle.display());
    Ok(Verdict::Pass)
}

fn state_annotations(c: &mut Ctx) -> R {
    let ann = json!({"org.opencontainers.conformance.a": "1", "org.opencontainers.conformance.b": "two words"});
    c.config["annotations"] = ann.clone();
    let (id, _) = c.create_ready("sleep 1000")?;
    let s = c.state(&id)?;
    for (k, v) in ann.as_object().expect("object") {
        check_eq!(&s["annotations"][k], v, "annotation {k} in the state");
    }
    Ok(Verdict::Pass)
}

fn state_running(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("touch /shared/ready; sleep 1000; true")?;
    let s = c.state(&id)?;
    check_eq!(s["status"].as_str().unwrap_or(""), "running", "status after start");
    check_eq!(s["pid"].as_i64().unwrap_or(0), pid, "pid after start (same as after create)");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    check!(cmdline.contains("touch /shared/ready"), "pid {pid} runs {cmdline:?}, not the user program");
    Ok(Verdict::Pass)
}

fn start_and_wait_stopped(c: &mut Ctx, script: &str) -> Result<(String, i64), Verdict> {
    let (id, pid) = c.create_ready(script)?;
    c.start(&id)?;
    c.wait_status(&id, "stopped", T10)?;
    Ok((id, pid))
}

fn state_stopped(c: &mut Ctx) -> R {
    let (_, pid) = start_and_wait_stopped(c, "exit 0")?;
    check!(c.wait_pid_gone(pid, T5), "status is stopped but pid {pid} is alive");
    Ok(Verdict::Pass)
}

fn state_stopped_pid(c: &mut Ctx) -> R {
    let (id, pid) = start_and_wait_stopped(c, "exit 0")?;
    let s = c.state(&id)?;
    match s.get("pid") {
        None | Some(serde_json::Value::Null) => Ok(Verdict::PassAs(Rule::Spec, "no pid in the state of a stopped container".into())),
        Some(p) if p.as_i64() == Some(0) => Ok(Verdict::PassAs(Rule::Runc, "pid 0 in the state of a stopped container".into())),
        Some(p) => match p.as_i64() {
            Some(n) if n == pid && !pid_alive(n) => Ok(Verdict::PassAs(
                Rule::Spec,
                format!("keeps the exited process's pid {n} (the spec requires a pid only while created or running)"),
            )),
            Some(n) if pid_alive(n) => Err(Verdict::Fail(format!("state of a stopped container names pid {n}, a live process"))),
            _ => Err(Verdict::Fail(format!("state of a stopped container has pid {p}, not the container's ({pid}), 0 or absent"))),
        },
    }
}

fn freezer_state(c: &Ctx, pid: i64) -> Option<String> {
    let ctl = c.host.cgroups.controller("freezer").or_else(|| {
        if c.host.cgroups.mode == crate::host::CgroupMode::V2 {
            c.host.cgroups.v2_mount.clone().map(|m| crate::host::Controller {
                name: "freezer".into(),
                mount: m,
                v1: false,
                files: Default::default(),
            })
        } else {
            None
        }
    })?;
    let dir = c.cgroup_dir(pid, "freezer").ok()?;
    let f = if ctl.v1 { "freezer.state" } else { "cgroup.freeze" };
    fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string())
}

fn state_paused(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("touch /shared/ready; while :; do date +%s%N > /shared/tick; sleep 0.05; done")?;
    c.pause(&id)?;
    let st = c.status(&id).unwrap_or_default();
    if let Some(f) = freezer_state(c, pid) {
        check!(f == "FROZEN" || f == "1", "after pause the container's freezer says {f:?}");
    }
    let t1 = c.read_shared("tick");
    std::thread::sleep(Duration::from_millis(300));
    check!(c.read_shared("tick") == t1, "the container kept running while paused");
    let o = c.rt(&["resume", &id]);
    check!(o.ok(), "resume failed: {}", o.brief());
    check_eq!(c.status(&id).unwrap_or_default(), "running", "status after resume");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while c.read_shared("tick") == t1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    check!(c.read_shared("tick") != t1, "the container did not run again within 3 s of resume");
    match st.as_str() {
        "paused" => Ok(Verdict::PassAs(Rule::Runc, "status \"paused\" while frozen".into())),
        "running" => Ok(Verdict::PassAs(Rule::Spec, "status stays \"running\" while frozen".into())),
        s => Err(Verdict::Fail(format!("status {s:?} while paused"))),
    }
}

fn state_unknown(c: &mut Ctx) -> R {
    let o = c.rt(&["state", "rpc-conformance-no-such-container"]);
    check!(!o.ok(), "state of an unknown id succeeded: {}", cut(&o.stdout, 100));
    Ok(Verdict::Pass)
}

fn start_running(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("echo run >> /shared/runs; touch /shared/ready; sleep 1000")?;
    let o = c.rt(&["start", &id]);
    check!(!o.ok(), "start of a running container succeeded");
    std::thread::sleep(Duration::from_millis(200));
    check_eq!(c.status(&id).unwrap_or_default(), "running", "status after the refused start");
    check!(pid_alive(pid), "the container process died");
    check_eq!(c.read_shared("runs").lines().count(), 1, "times the program ran");
    Ok(Verdict::Pass)
}

fn start_stopped(c: &mut Ctx) -> R {
    let (id, _) = start_and_wait_stopped(c, "echo run >> /shared/runs")?;
    let o = c.rt(&["start", &id]);
    check!(!o.ok(), "start of a stopped container succeeded");
    std::thread::sleep(Duration::from_millis(200));
    check_eq!(c.status(&id).unwrap_or_default(), "stopped", "status after the refused start");
    check_eq!(c.read_shared("runs").lines().count(), 1, "times the program ran");
    Ok(Verdict::Pass)
}

fn start_unknown(c: &mut Ctx) -> R {
    let o = c.rt(&["start", "rpc-conformance-no-such-container"]);
    check!(!o.ok(), "start of an unknown id succeeded");
    Ok(Verdict::Pass)
}

fn kill_created(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("touch /shared/ran; sleep 1000")?;
    let o = c.kill(&id, "KILL");
    check!(o.ok(), "kill of a created container failed: {}", o.brief());
    check!(c.wait_pid_gone(pid, T5), "the container process survived SIGKILL");
    c.wait_status(&id, "stopped", T5)?;
    check!(!c.sh_path("ran").exists(), "the program ran");
    Ok(Verdict::Pass)
}

/// A script that appends the name of each trapped signal to /shared/sigs.
fn trap_script(sigs: &[&str]) -> String {
    let mut s = String::new();
    for sig in sigs {
        s.push_str(&format!("trap 'echo {sig} >> /shared/sigs' {sig}; "));
    }
    s.push_str("touch /shared/ready; while :; do sleep 1000 & wait $!; done");
    s
}

fn wait_lines(c: &Ctx, name: &str, n: usize) -> bool {
    let deadline = std::time::Instant::now() + T5;
    while c.read_shared(name).lines().count() < n {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn kill_running(c: &mut Ctx) -> R {
    let (id, pid) =
        c.start_ready("trap 'echo TERM > /shared/sig; exit 0' TERM; touch /shared/ready; while :; do sleep 1000 & wait $!; done")?;
    let o = c.kill(&id, "TERM");
    check!(o.ok(), "kill TERM failed: {}", o.brief());
    check!(c.wait_file("sig", T5), "the container's TERM handler did not run");
    check!(c.wait_pid_gone(pid, T5), "the process did not exit after its TERM handler");
    c.wait_status(&id, "stopped", T5)?;
    Ok(Verdict::Pass)
}

fn send_and_expect(c: &mut Ctx, id: &str, sends: &[(&str, &str)]) -> R {
    for (i, (arg, name)) in sends.iter().enumerate() {
        let o = c.kill(id, arg);
        check!(o.ok(), "kill {arg} failed: {}", o.brief());
        check!(wait_lines(c, "sigs", i + 1), "{arg} did not reach the process (got: {:?})", c.read_shared("sigs"));
        let last = c.read_shared("sigs").lines().last().unwrap_or("").to_string();
        check_eq!(last.as_str(), *name, "signal received for kill {arg}");
    }
    Ok(Verdict::Pass)
}

fn kill_signals(c: &mut Ctx) -> R {
    let (id, _) = c.start_ready(&trap_script(&["HUP", "INT", "USR1", "USR2"]))?;
    send_and_expect(c, &id, &[("SIGHUP", "HUP"), ("SIGINT", "INT"), ("SIGUSR1", "USR1"), ("SIGUSR2", "USR2")])
}

fn kill_signal_forms(c: &mut Ctx) -> R {
    let (id, _) = c.start_ready(&trap_script(&["USR1", "USR2"]))?;
    let usr1 = libc::SIGUSR1.to_string();
    send_and_expect(c, &id, &[("USR1", "USR1"), ("SIGUSR2", "USR2"), (usr1.as_str(), "USR1")])
}

fn kill_sigkill(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("touch /shared/ready; sleep 1000")?;
    let o = c.kill(&id, "KILL");
    check!(o.ok(), "kill KILL failed: {}", o.brief());
    check!(c.wait_pid_gone(pid, T5), "the process survived SIGKILL");
    c.wait_status(&id, "stopped", T5)?;
    Ok(Verdict::Pass)
}

fn kill_stopped(c: &mut Ctx) -> R {
    let (id, _) = start_and_wait_stopped(c, "exit 0")?;
    let o = c.kill(&id, "TERM");
    check!(!o.ok(), "kill of a stopped container succeeded");
    check_eq!(c.status(&id).unwrap_or_default(), "stopped", "status after the refused kill");
    Ok(Verdict::Pass)
}

fn kill_unknown(c: &mut Ctx) -> R {
    let o = c.rt(&["kill", "rpc-conformance-no-such-container", "KILL"]);
    check!(!o.ok(), "kill of an unknown id succeeded");
    Ok(Verdict::Pass)
}

fn kill_all(c: &mut Ctx) -> R {
    use crate::bundle::ConfigExt;
    c.config.remove_ns("pid");
    let (id, pid) = c.start_ready("sleep 1000 & echo $! > /shared/child; touch /shared/ready; wait")?;
    let child: i64 = c.read_shared("child").trim().parse().unwrap_or(0);
    check!(child > 0 && pid_alive(child), "no child process to kill (pid {child})");
    let o = c.rt(&["kill", "--all", &id, "KILL"]);
    check!(o.ok(), "kill --all failed: {}", o.brief());
    check!(c.wait_pid_gone(child, T5), "the container's child process {child} survived kill --all");
    check!(c.wait_pid_gone(pid, T5), "the container's init survived kill --all");
    Ok(Verdict::Pass)
}

fn delete_stopped(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("exit 0")?;
    let dirs: Vec<PathBuf> =
        c.host.cgroups.v1.keys().cloned().collect::<Vec<_>>().iter().filter_map(|k| c.cgroup_dir(pid, k).ok()).collect();
    c.start(&id)?;
    c.wait_status(&id, "stopped", T10)?;
    let o = c.delete(&id);
    check!(o.ok(), "delete of a stopped container failed: {}", o.brief());
    check!(c.status(&id).is_none(), "state still succeeds after delete");
    let left: Vec<String> = dirs.iter().filter(|d| d.exists()).map(|d| d.display().to_string()).collect();
    check!(left.is_empty(), "cgroups left after delete: {}", left.join(", "));
    Ok(Verdict::Pass)
}

fn delete_created(c: &mut Ctx) -> R {
    let (id, pid) = c.create_ready("touch /shared/ran; sleep 1000")?;
    let o = c.delete(&id);
    if !o.ok() {
        check_eq!(c.status(&id).unwrap_or_default(), "created", "status after the refused delete");
        check!(pid_alive(pid), "the refused delete killed the container process");
        return Ok(Verdict::PassAs(Rule::Spec, "refuses to delete a created container and leaves it created".into()));
    }
    check!(c.status(&id).is_none(), "delete succeeded but state still works");
    check!(c.wait_pid_gone(pid, T5), "delete succeeded but the container process {pid} is alive");
    check!(!c.sh_path("ran").exists(), "the program ran");
    Ok(Verdict::PassAs(Rule::Runc, "delete of a created container kills and removes it".into()))
}

fn delete_running(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("touch /shared/ready; sleep 1000")?;
    let o = c.delete(&id);
    check!(!o.ok(), "delete (without --force) of a running container succeeded");
    check_eq!(c.status(&id).unwrap_or_default(), "running", "status after the refused delete");
    check!(pid_alive(pid), "the refused delete killed the container process");
    Ok(Verdict::Pass)
}

fn delete_paused(c: &mut Ctx) -> R {
    let (id, pid) = c.start_ready("touch /shared/ready; sleep 1000")?;
    c.pause(&id)?;
    let before = c.status(&id).unwrap_or_default();
    let o = c.delete(&id);
    check!(!o.ok(), "delete (without --force) of a paused container succeeded");
    check_eq!(c.status(&id).unwrap_or_default(), before, "status after the refused delete");
    check!(pid_alive(pid), "the refused delete killed the container process");
    let o = c.delete_force(&id);
    check!(o.ok(), "delete --force of a paused container failed: {}", o.brief());
    check!(c.status(&id).is_none(), "state still works after delete --force");
    check!(c.wait_pid_gone(pid, T5), "the process of the paused container survived delete --force");
    Ok(Verdict::Pass)
}

fn delete_unknown(c: &mut Ctx) -> R {
    let o = c.rt(&["delete", "rpc-conformance-no-such-container"]);
    check!(!o.ok(), "delete of an unknown id succeeded");
    Ok(Verdict::Pass)
}

fn delete_force(c: &mut Ctx, start: bool) -> R {
    let (id, pid) = if start { c.start_ready("touch /shared/ready; sleep 1000")? } else { c.create_ready("sleep 1000")? };
    let o = c.delete_force(&id);
    check!(o.ok(), "delete --force failed: {}", o.brief());
    check!(c.status(&id).is_none(), "state still works after delete --force");
    check!(c.wait_pid_gone(pid, T5), "the container process survived delete --force");
    Ok(Verdict::Pass)
}

fn delete_force_running(c: &mut Ctx) -> R {
    delete_force(c, true)
}

fn delete_force_created(c: &mut Ctx) -> R {
    delete_force(c, false)
}

fn run_exit_code(c: &mut Ctx) -> R {
    c.set_script("echo out; exit 7");
    let id = c.new_id();
    let o = c.run_fg(&id, &[])?;
    check_eq!(o.code(), 7, "exit code of run ({})", o.brief());
    check!(o.stdout.contains("out"), "the container's stdout did not reach run's stdout");
    Ok(Verdict::Pass)
}

fn run_detached(c: &mut Ctx) -> R {
    c.set_script("touch /shared/ready; sleep 1000");
    let id = c.new_id();
    let o = c.run_fg(&id, &["-d"])?;
    check!(o.ok(), "run -d failed: {}", o.brief());
    check!(c.wait_file("ready", T5), "the program did not run");
    check_eq!(c.status(&id).unwrap_or_default(), "running", "status after run -d");
    Ok(Verdict::Pass)
}

fn list(c: &mut Ctx) -> R {
    let (a, _) = c.create_ready("sleep 1000")?;
    let (b, _) = c.start_ready("touch /shared/ready; sleep 1000")?;
    let o = c.rt(&["list"]);
    check!(o.ok(), "list failed: {}", o.brief());
    let line = |id: &str| o.stdout.lines().find(|l| l.split_whitespace().next() == Some(id)).map(String::from);
    let la = line(&a);
    let lb = line(&b);
    check!(
        la.as_deref().map(|l| l.contains("created")).unwrap_or(false),
        "list has no line \"{a} ... created\": {:?}",
        cut(&o.stdout, 300)
    );
    check!(
        lb.as_deref().map(|l| l.contains("running")).unwrap_or(false),
        "list has no line \"{b} ... running\": {:?}",
        cut(&o.stdout, 300)
    );
    Ok(Verdict::Pass)
}

fn pid_file(c: &mut Ctx) -> R {
    c.set_script("sleep 1000");
    let id = c.new_id();
    let pf = c.dir.join("container.pid");
    let pfs = pf.to_string_lossy().into_owned();
    let o = c.try_create(&id, &["--pid-file", &pfs])?;
    check!(o.ok(), "create --pid-file failed: {}", o.brief());
    let text = fs::read_to_string(&pf).map_err(|e| Verdict::Fail(format!("no pid file: {e}")))?;
    let n: i64 = text.trim().parse().map_err(|_| Verdict::Fail(format!("pid file holds {text:?}")))?;
    let pid = c.pid(&id)?;
    check_eq!(n, pid, "pid in --pid-file vs state");
    Ok(Verdict::Pass)
}

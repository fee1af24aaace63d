//! Container lifecycle: create / start / state / kill / delete / run / list.
#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn create_reports_created_with_pid() {
    let mut t = harness!("lc-create-state");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let st = t.state_json();
    assert_eq!(st["status"], "created", "state: {st}");
    assert_eq!(st["id"], t.id.as_str());
    let pid = st["pid"].as_i64().expect("pid") as i32;
    assert!(pid > 0, "state: {st}");
    assert!(pid_alive(pid), "created container's pid {pid} is not alive");
}

#[test]
fn create_parks_the_process_until_start() {
    let mut t = harness!("lc-parked");
    t.share().sh("touch /shared/ran; sleep 300");
    t.create().assert_ok();
    // The event first: init reaches its wait for `start` (asleep, not yet
    // exec'd: still the runtime, not the container's sh).
    let pid = t.pid();
    let parked = || {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        comm.trim() != "sh" && stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("S")
    };
    assert!(wait_until(T, parked), "init {pid} did not park (comm, stat): {:?}", std::fs::read_to_string(format!("/proc/{pid}/stat")));
    // Then it must stay there: watched for 700 ms, failing the moment the
    // process runs.
    holds_for(Duration::from_millis(700), || parked() && !t.shared.join("ran").exists());
    assert!(!t.shared.join("ran").exists(), "the container process ran before `start`");
    assert!(parked(), "init {pid} left its wait for `start` without one");
    assert_eq!(t.status().as_deref(), Some("created"));
    t.start().assert_ok();
    assert!(wait_until(T, || t.shared.join("ran").exists()), "the container process did not run after `start`");
}

#[test]
fn start_makes_it_running_and_runs_the_process() {
    let mut t = harness!("lc-start");
    t.share().sh("echo started > /shared/out; sleep 300");
    t.create().assert_ok();
    let pid = t.pid();
    t.start().assert_ok();
    assert!(wait_until(T, || t.shared_file("out") == "started\n"));
    let st = t.state_json();
    assert_eq!(st["status"], "running", "state: {st}");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64), "pid changed across start");
}

#[test]
fn process_exit_makes_it_stopped() {
    let mut t = harness!("lc-exit-stopped");
    t.args(&["true"]);
    t.create().assert_ok();
    t.start().assert_ok();
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
}

#[test]
fn kill_default_signal_is_sigterm() {
    let mut t = harness!("lc-kill-term");
    // pid 1 of a pid namespace only gets signals it has a handler for
    t.share().sh("trap 'echo TERM > /shared/sig; exit 0' TERM; echo ready > /shared/ready; \
         while true; do sleep 0.1; done");
    t.run_detached().assert_ok();
    assert!(wait_until(T, || t.shared_file("ready") == "ready\n"));
    t.rt(&["kill", &t.id]).assert_ok();
    assert!(wait_until(T, || t.shared_file("sig") == "TERM\n"), "no SIGTERM received");
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
}

fn kill_with(name: &str, sig: &str) {
    let mut t = harness!(name);
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    assert_eq!(t.status().as_deref(), Some("running"));
    let pid = t.pid();
    t.kill(sig).assert_ok();
    assert!(t.wait_status("stopped", T), "status after kill {sig}: {:?}", t.status());
    assert!(wait_until(T, || !pid_alive(pid)), "pid {pid} still alive");
}

#[test]
fn kill_by_short_name() {
    kill_with("lc-kill-KILL", "KILL");
}

#[test]
fn kill_by_sig_name() {
    kill_with("lc-kill-SIGKILL", "SIGKILL");
}

#[test]
fn kill_by_number() {
    kill_with("lc-kill-9", "9");
}

#[test]
fn kill_sends_the_named_signal() {
    let mut t = harness!("lc-kill-usr1");
    t.share().sh("trap 'echo USR1 >> /shared/sig' USR1; trap 'echo HUP >> /shared/sig' HUP; \
         echo ready > /shared/ready; while true; do sleep 0.1; done");
    t.run_detached().assert_ok();
    assert!(wait_until(T, || t.shared_file("ready") == "ready\n"));
    t.kill("USR1").assert_ok();
    assert!(wait_until(T, || t.shared_file("sig") == "USR1\n"), "got {:?}", t.shared_file("sig"));
    t.kill("1").assert_ok(); // SIGHUP by number
    assert!(wait_until(T, || t.shared_file("sig") == "USR1\nHUP\n"), "got {:?}", t.shared_file("sig"));
    assert_eq!(t.status().as_deref(), Some("running"));
}

#[test]
fn kill_all() {
    let mut t = harness!("lc-kill-all");
    t.sh("sleep 300 & sleep 300 & wait");
    t.run_detached().assert_ok();
    t.rt(&["kill", "--all", &t.id, "KILL"]).assert_ok();
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
}

#[test]
fn delete_removes_a_stopped_container() {
    let mut t = harness!("lc-delete");
    t.args(&["true"]);
    t.run_detached().assert_ok();
    assert!(t.wait_status("stopped", T));
    t.delete().assert_ok();
    let o = t.state();
    o.assert_fail();
    assert!(contains_ci(&o.stderr, "does not exist"), "{}", o.describe());
    assert!(!t.state_dir_exists(&t.id), "state dir left: {:?}", t.root_entries());
    assert!(cgroup_dirs_named(&t.id).is_empty(), "cgroup left: {:?}", cgroup_dirs_named(&t.id));
}

#[test]
fn delete_of_a_created_container_kills_it() {
    let mut t = harness!("lc-delete-created");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let pid = t.pid();
    t.delete().assert_ok();
    assert!(wait_until(T, || !pid_alive(pid)), "pid {pid} survived delete");
    assert!(contains_ci(&t.state().stderr, "does not exist"));
    assert!(!t.state_dir_exists(&t.id));
}

#[test]
fn delete_force_of_a_running_container() {
    let mut t = harness!("lc-delete-force");
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    t.delete_force().assert_ok();
    assert!(wait_until(T, || !pid_alive(pid)), "pid {pid} survived delete --force");
    let o = t.state();
    assert!(!o.ok() && contains_ci(&o.stderr, "does not exist"), "{}", o.describe());
    assert!(!t.state_dir_exists(&t.id));
    assert!(wait_until(T, || cgroup_dirs_named(&t.id).is_empty()), "cgroup left: {:?}", cgroup_dirs_named(&t.id));
}

#[test]
fn delete_force_of_unknown_id_succeeds() {
    let t = harness!("lc-delete-force-unknown");
    let o = t.rt(&["delete", "--force", "no-such-container-xyz"]);
    assert_eq!(o.code(), 0, "{}", o.describe());
}

#[test]
fn run_passes_exit_code_through() {
    let mut t = harness!("lc-exit-3");
    t.sh("exit 3");
    let o = t.run();
    assert_eq!(o.code(), 3, "{}", o.describe());
}

#[test]
fn run_exit_code_zero() {
    let mut t = harness!("lc-exit-0");
    t.args(&["true"]);
    assert_eq!(t.run().code(), 0);
    let mut t = harness!("lc-exit-1");
    t.args(&["false"]);
    assert_eq!(t.run().code(), 1);
}

#[test]
fn run_killed_by_signal_gives_128_plus_n() {
    let mut t = harness!("lc-exit-signal");
    t.args(&["sleep", "300"]);
    t.write_config();
    t.track(&t.id);
    let b = t.bundle_str();
    let (child, op, ep) = t.spawn(&["run", "--bundle", &b, &t.id]);
    assert!(t.wait_status("running", T), "container never ran");
    t.kill("KILL").assert_ok();
    let o = t.wait_spawned(child, op, ep, T);
    assert_eq!(o.code(), 128 + 9, "{}", o.describe());
}

#[test]
fn run_self_signalled_process_gives_128_plus_n() {
    // Without a pid namespace the shell is not an init and can kill itself.
    let mut t = harness!("lc-exit-selfsig");
    t.remove_namespace("pid");
    t.sh("kill -USR1 $$; sleep 5");
    let o = t.run();
    assert_eq!(o.code(), 128 + libc::SIGUSR1, "{}", o.describe());
}

#[test]
fn run_foreground_removes_the_container_afterwards() {
    let mut t = harness!("lc-run-removes");
    t.args(&["true"]);
    t.run().assert_ok();
    let o = t.state();
    assert!(!o.ok() && contains_ci(&o.stderr, "does not exist"), "{}", o.describe());
    assert!(!t.state_dir_exists(&t.id));
}

#[test]
fn run_detached_returns_with_a_running_container() {
    let mut t = harness!("lc-run-d");
    t.share().sh("echo up > /shared/up; sleep 300");
    let start = std::time::Instant::now();
    t.run_detached().assert_ok();
    assert!(start.elapsed() < Duration::from_secs(8), "run -d did not return promptly");
    assert_eq!(t.status().as_deref(), Some("running"));
    assert!(wait_until(T, || t.shared_file("up") == "up\n"));
}

#[test]
fn run_detached_output_goes_to_runtime_stdio() {
    let mut t = harness!("lc-run-d-stdio");
    t.sh("echo to-stdout; echo to-stderr >&2");
    let o = t.run_detached();
    o.assert_ok();
    assert!(t.wait_status("stopped", T));
    assert_eq!(o.reread_stdout(), "to-stdout\n");
    assert_eq!(std::fs::read_to_string(&o.stderr_path).unwrap(), "to-stderr\n");
}

#[test]
fn pid_file_holds_the_container_pid() {
    let mut t = harness!("lc-pidfile");
    t.args(&["sleep", "300"]);
    let pf = t.dir.join("ctr.pid");
    t.create_id(&t.id.clone(), &["--pid-file", pf.to_str().unwrap()]).assert_ok();
    let txt = std::fs::read_to_string(&pf).expect("pid file written");
    let pid: i32 = txt.trim().parse().unwrap_or_else(|_| panic!("pid file {txt:?}"));
    assert_eq!(pid, t.pid());
    assert!(pid_alive(pid));
}

#[test]
fn pid_file_relative_path_is_relative_to_cwd() {
    let mut t = harness!("lc-pidfile-rel");
    t.args(&["sleep", "300"]);
    // the harness runs the runtime with cwd = t.dir
    t.create_id(&t.id.clone(), &["--pid-file", "rel.pid"]).assert_ok();
    let txt = std::fs::read_to_string(t.dir.join("rel.pid")).expect("pid file in cwd");
    assert_eq!(txt.trim().parse::<i32>().unwrap(), t.pid());
}

#[test]
fn run_detached_pid_file() {
    let mut t = harness!("lc-run-pidfile");
    t.args(&["sleep", "300"]);
    let pf = t.dir.join("run.pid");
    t.run_with(&["-d", "--pid-file", pf.to_str().unwrap()]).assert_ok();
    let pid: i32 = std::fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    assert_eq!(pid, t.pid());
}

#[test]
fn state_json_has_the_runc_fields() {
    let mut t = harness!("lc-state-fields");
    t.args(&["sleep", "300"]);
    t.config["annotations"] = json!({"org.example.key": "value-1"});
    t.create().assert_ok();
    let st = t.state_json();
    assert!(st["ociVersion"].is_string(), "state: {st}");
    assert_eq!(st["id"], t.id.as_str());
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
    let bundle = std::fs::canonicalize(&t.bundle).unwrap();
    assert_eq!(st["bundle"].as_str().map(std::path::PathBuf::from), Some(bundle), "state: {st}");
    assert_eq!(st["annotations"]["org.example.key"], "value-1", "state: {st}");
    // runc's extra fields, which tools parse too
    let rootfs = std::fs::canonicalize(&t.rootfs).unwrap();
    assert_eq!(st["rootfs"].as_str().map(std::path::PathBuf::from), Some(rootfs), "state: {st}");
    let created = st["created"].as_str().unwrap_or("");
    assert!(
        created.len() >= 20 && created.as_bytes()[4] == b'-' && created.contains('T') && created.ends_with('Z'),
        "created is not an RFC 3339 UTC time: {st}"
    );
    assert!(st["owner"].is_string(), "state: {st}");
}

#[test]
fn state_of_running_and_stopped() {
    let mut t = harness!("lc-state-status");
    t.share().sh("while [ ! -e /shared/go ]; do sleep 0.05; done");
    t.run_detached().assert_ok();
    assert_eq!(t.state_json()["status"], "running");
    std::fs::write(t.shared.join("go"), "").unwrap();
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
    let st = t.state_json();
    assert_eq!(st["id"], t.id.as_str());
}

fn list_setup(name: &str) -> Option<Harness> {
    let mut t = Harness::new(name)?;
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    Some(t)
}

#[test]
fn list_table() {
    let Some(t) = list_setup("lc-list") else {
        return;
    };
    let o = t.rt(&["list"]);
    o.assert_ok();
    let mut lines = o.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], "{}", o.describe());
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row.first().copied(), Some(t.id.as_str()), "{}", o.describe());
    assert_eq!(row.get(1).and_then(|p| p.parse::<i32>().ok()), Some(t.pid()));
    assert_eq!(row.get(2).copied(), Some("created"));
    assert_eq!(row.get(3).copied(), Some(t.bundle_str().as_str()));
    assert!(lines.next().is_none(), "one container only: {}", o.describe());
}

#[test]
fn list_quiet() {
    let Some(t) = list_setup("lc-list-q") else {
        return;
    };
    let o = t.rt(&["list", "-q"]);
    o.assert_ok();
    assert_eq!(o.stdout, format!("{}\n", t.id), "{}", o.describe());
}

#[test]
fn list_json() {
    let Some(t) = list_setup("lc-list-json") else {
        return;
    };
    let o = t.rt(&["list", "--format", "json"]);
    o.assert_ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.describe()));
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 1, "{v}");
    let c = &arr[0];
    assert_eq!(c["id"], t.id.as_str());
    assert_eq!(c["status"], "created");
    assert_eq!(c["pid"].as_i64(), Some(t.pid() as i64));
    assert_eq!(c["bundle"], t.bundle_str().as_str());
    assert!(c["created"].is_string(), "{c}");
    assert!(c.get("owner").is_some(), "{c}");
}

#[test]
fn list_empty_root() {
    let t = harness!("lc-list-empty");
    let o = t.rt(&["list", "-q"]);
    o.assert_ok();
    assert_eq!(o.stdout, "");
    let o = t.rt(&["list", "--format", "json"]);
    o.assert_ok();
    // runc prints `null` for no containers; accept an empty array too
    let v: Value = serde_json::from_str(o.stdout.trim()).unwrap_or(Value::Null);
    assert!(v.is_null() || v.as_array().map(|a| a.is_empty()) == Some(true), "{}", o.describe());
}

#[test]
fn list_shows_several_containers_with_status() {
    let mut t = harness!("lc-list-many");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let id2 = t.other_id("two");
    t.create_id(&id2, &[]).assert_ok();
    t.rt(&["start", &id2]).assert_ok();
    let o = t.rt(&["list", "--format", "json"]);
    o.assert_ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let mut got: Vec<(String, String)> =
        v.as_array().unwrap().iter().map(|c| (c["id"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string())).collect();
    got.sort();
    let mut want = vec![(t.id.clone(), "created".to_string()), (id2, "running".to_string())];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn version_first_line() {
    let out = std::process::Command::new(runtime_path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    let first = s.lines().next().unwrap_or("");
    let want = format!("{} version ", runtime_name());
    assert!(first.starts_with(&want), "first line {first:?} should start with {want:?}");
}

#[test]
fn spec_writes_a_default_config() {
    let t = harness!("lc-spec");
    let dir = t.dir.join("specdir");
    std::fs::create_dir_all(&dir).unwrap();
    t.rt(&["spec", "--bundle", dir.to_str().unwrap()]).assert_ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."), "{v}");
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["root"]["path"], "rootfs");
    let ns: Vec<&str> = v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "namespaces {ns:?}");
    }
    // a second spec refuses to overwrite
    t.rt(&["spec", "--bundle", dir.to_str().unwrap()]).assert_fail();
}

#[test]
fn spec_then_run_works() {
    // the generated spec (terminal off, a command) runs on our rootfs
    let mut t = harness!("lc-spec-run");
    let b = t.bundle_str();
    t.rt(&["spec", "--bundle", &b]).assert_ok();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(t.config_path()).unwrap()).unwrap();
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(["echo", "from-spec"]);
    t.config = v;
    let out = t.run_ok();
    assert_eq!(out, "from-spec\n");
}

#[test]
fn kill_of_a_created_container() {
    let mut t = harness!("lc-kill-created");
    t.share().sh("touch /shared/ran; sleep 300");
    t.create().assert_ok();
    let pid = t.pid();
    t.kill("KILL").assert_ok();
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
    assert!(wait_until(T, || !pid_alive(pid)));
    assert!(!t.shared.join("ran").exists(), "the process ran");
    t.delete().assert_ok();
}

#[test]
fn process_killed_from_the_host_shows_stopped() {
    let mut t = harness!("lc-host-kill");
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    // SAFETY: kill takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(t.wait_status("stopped", T), "status: {:?}", t.status());
    t.delete().assert_ok();
    assert!(!t.state_dir_exists(&t.id));
}

#[test]
fn list_after_delete_is_empty() {
    let mut t = harness!("lc-list-after-delete");
    t.args(&["true"]);
    t.create().assert_ok();
    t.delete().assert_ok();
    let o = t.rt(&["list", "-q"]);
    o.assert_ok();
    assert_eq!(o.stdout, "");
}

#[test]
fn relative_bundle_path() {
    let mut t = harness!("lc-rel-bundle");
    t.args(&["sleep", "300"]);
    t.write_config();
    t.track(&t.id);
    // the harness runs the runtime in t.dir, which holds "bundle"
    t.rt(&["create", "--bundle", "bundle", &t.id]).assert_ok();
    let st = t.state_json();
    let bundle = std::fs::canonicalize(&t.bundle).unwrap();
    assert_eq!(st["bundle"].as_str().map(std::path::PathBuf::from), Some(bundle), "state: {st}");
}

#[test]
fn bundle_defaults_to_cwd() {
    let mut t = harness!("lc-cwd-bundle");
    t.args(&["echo", "cwd-bundle"]);
    t.write_config();
    t.track(&t.id);
    let mut c = t.command(&["run", &t.id]);
    c.current_dir(&t.bundle);
    let o = t.exec(c, CMD_TIMEOUT);
    o.assert_ok();
    assert_eq!(o.stdout, "cwd-bundle\n");
}

/// `state` while another command holds the container's lock (start,
/// pause, delete do) reports the real status, not "creating".
#[test]
fn state_while_the_lock_is_held_elsewhere() {
    let mut t = harness!("lc-state-locked");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let dir = t.root.join(&t.id);
    let held = |want: &str| {
        let mut c = std::process::Command::new("flock");
        c.arg("-x").arg(&dir).arg(runtime_path()).arg("--root").arg(&t.root).arg("state").arg(&t.id);
        let out = t.exec(c, T);
        out.assert_ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(v["status"], want, "{}", out.describe());
    };
    held("created");
    t.start().assert_ok();
    held("running");
}

/// Run the runtime with its address space capped, so that a runtime that
/// reads a state file without bound fails fast instead of taking the
/// machine's memory.
fn rt_capped(t: &Harness, args: &[&str], timeout: Duration) -> Out {
    use std::os::unix::process::CommandExt;
    let mut c = t.command(args);
    // SAFETY: setrlimit in the child before exec.
    unsafe {
        c.pre_exec(|| {
            let r = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            libc::setrlimit(libc::RLIMIT_AS, &r);
            Ok(())
        });
    }
    t.exec(c, timeout)
}

/// issue 19 #9: a state.json swapped for a symlink (to /dev/zero), a FIFO
/// or a huge file is an error naming it, at once: `state` neither eats
/// memory nor hangs, and `list` still lists the others (warning about
/// this one, as runc does).
#[test]
fn state_file_symlink_fifo_or_huge_is_a_clear_error() {
    let mut t = harness!("lc-state-bad");
    t.args(&["sleep", "300"]);
    t.create().assert_ok();
    let good = t.other_id("good");
    t.create_id(&good, &[]).assert_ok();
    let p = t.root.join(&t.id).join("state.json");
    let saved = std::fs::read(&p).unwrap();
    let fifo = |p: &std::path::Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    let cases: [(&str, &dyn Fn()); 3] = [
        ("symbolic link", &|| std::os::unix::fs::symlink("/dev/zero", &p).unwrap()),
        ("FIFO", &|| fifo(&p)),
        ("larger than", &|| std::fs::write(&p, vec![b' '; 2 << 20]).unwrap()),
    ];
    for (what, make) in cases {
        std::fs::remove_file(&p).unwrap();
        make();
        let o = rt_capped(&t, &["state", &t.id], Duration::from_secs(5));
        assert_eq!(o.code(), 1, "{what}: {}", o.describe());
        assert!(o.stderr.contains(p.to_str().unwrap()) && o.stderr.contains(what), "{what}: {}", o.describe());
        let o = rt_capped(&t, &["list", "-q"], Duration::from_secs(5));
        o.assert_ok();
        assert_eq!(o.stdout, format!("{good}\n"), "{what}: {}", o.describe());
        assert!(o.stderr.contains(&t.id) && o.stderr.contains(what), "{what}: a warning names it: {}", o.describe());
    }
    // Put back, it is the container it was.
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, saved).unwrap();
    assert_eq!(t.status().as_deref(), Some("created"));
}

/// issue 19 #9: a corrupt state.json does not hide the container: `list`
/// warns, `delete` refuses naming the file, and `delete --force` still
/// kills its processes and removes its cgroups and state (from what
/// create recorded).
#[test]
fn corrupt_state_is_reported_and_delete_force_cleans_up() {
    let mut t = harness!("lc-state-corrupt");
    let marker = format!("marker-{}", t.id);
    t.marked_sleep(&marker);
    t.run_detached().assert_ok();
    assert!(wait_until(T, || processes_with_marker(&marker).len() == 1));
    let p = t.root.join(&t.id).join("state.json");
    std::fs::write(&p, b"{\"id\": \"half a state").unwrap();
    let o = t.rt(&["list"]);
    o.assert_ok();
    assert!(o.stderr.contains(&t.id) && o.stderr.contains("state.json"), "no warning: {}", o.describe());
    let o = t.delete();
    o.assert_fail();
    assert!(o.stderr.contains(p.to_str().unwrap()), "{}", o.describe());
    assert!(t.state_dir_exists(&t.id));
    let o = t.delete_force();
    o.assert_ok();
    t.assert_no_leftovers(&t.id, &marker);
}

/// `update -r` reads its file bounded (it read /dev/zero without end);
/// `-r -` still takes stdin.
#[test]
fn update_resources_is_read_bounded() {
    let mut t = harness!("lc-update-r");
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let o = rt_capped(&t, &["update", "-r", "/dev/zero", &t.id], Duration::from_secs(5));
    assert_eq!(o.code(), 1, "{}", o.describe());
    assert!(o.stderr.contains("/dev/zero") && o.stderr.contains("larger than"), "{}", o.describe());
    let mut c = t.command(&["update", "-r", "-", &t.id]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(br#"{"pids": {"limit": 77}}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cg_read(t.pid(), "pids", "pids.max").trim(), "77");
}

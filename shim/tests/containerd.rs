//! Our shim under a real containerd, driven with `ctr`: every test starts
//! its own daemon (see common/mod.rs) and checks what a user would see.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn run<'a>(d: &'a Daemon, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = d.run_args(RUNTIME);
    args.extend_from_slice(extra);
    args
}

#[test]
fn run_rm_echo_prints_hi() {
    let d = daemon!("echo");
    let out = d.ctr(&run(&d, &["--rm", IMAGE, "echo1", "echo", "hi"]));
    assert!(out.status.success(), "{}\n{}", out_str(&out), tail(&d.log(), 40));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    d.assert_no_shims();
    assert!(d.ctr_ok(&["containers", "ls", "-q"]).trim().is_empty());
}

#[test]
fn exit_codes_are_exact() {
    let d = daemon!("exitcodes");
    for (code, script) in [(0, "exit 0"), (7, "exit 7"), (255, "exit 255"), (137, "sleep 100 & kill -9 $! ; wait $!; exit $?")] {
        let id = format!("ec{code}");
        let out = d.ctr(&run(&d, &["--rm", IMAGE, &id, "sh", "-c", script]));
        assert_eq!(out.status.code(), Some(code), "{script}: {}", out_str(&out));
    }
    // init killed by a signal from outside: 128 + 9
    let child = d
        .ctr_cmd(&run(&d, &["--rm", IMAGE, "sig", "sleep", "1000"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctr");
    d.wait_status("sig", "RUNNING", Duration::from_secs(10));
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "sig"]);
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(137), "{}", out_str(&out));
    d.assert_no_shims();
}

#[test]
fn runtime_errors_surface_in_ctr() {
    let d = daemon!("errors");
    let out = d.ctr(&run(&d, &["--rm", IMAGE, "bad", "/no/such/program"]));
    assert!(!out.status.success(), "{}", out_str(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // the runtime's --log error line, through the shim, containerd and ctr
    assert!(err.contains("/no/such/program") && err.contains("rpc-runc"), "error does not carry the runtime's message: {err}");
    let _ = d.ctr(&["containers", "delete", "bad"]);
    d.assert_no_shims();
}

#[test]
fn stdin_is_copied_until_eof() {
    let d = daemon!("stdin");
    let mut child = d
        .ctr_cmd(&run(&d, &["--rm", IMAGE, "cat1", "sh", "-c", "cat; echo done"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctr");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"line one\nline two\n").expect("write");
    drop(stdin);
    let out = wait_output(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out_str(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\ndone\n");
    d.assert_no_shims();
}

#[test]
fn detached_task_exec_ps_pause_metrics_kill() {
    let d = daemon!("detached");
    let events = EventLog::start(&d);
    d.ctr_ok(&run(&d, &["-d", IMAGE, "c1", "sleep", "1000"]));
    d.wait_status("c1", "RUNNING", Duration::from_secs(10));
    let init_pid = d.task_pid("c1").expect("task pid");
    assert!(alive(init_pid));

    // exec: output and exact exit code
    let out = d.ctr(&d.exec_args(&["--exec-id", "e1", "c1", "sh", "-c", "echo from-exec; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", out_str(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-exec\n");

    // an exec that cannot start says why (the runtime's error)
    let out = d.ctr(&d.exec_args(&["--exec-id", "bad", "c1", "/no/such/exec"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/exec") && err.contains("rpc-runc exec failed"), "{err}");

    // a detached exec shows up in ps
    d.ctr_ok(&d.exec_args(&["-d", "--exec-id", "bg", "c1", "sleep", "500"]));
    let ps = d.ctr_ok(&["task", "ps", "c1"]);
    assert!(ps.contains(&init_pid.to_string()), "ps lacks the init pid: {ps}");
    assert!(ps.lines().count() >= 3, "ps should list init and the exec: {ps}");
    assert!(ps.contains("bg"), "ps should name the exec: {ps}");

    // pause / resume
    d.ctr_ok(&["task", "pause", "c1"]);
    assert_eq!(d.task_status("c1").as_deref(), Some("PAUSED"));
    assert!(freezer_frozen(init_pid), "init is not frozen");
    d.ctr_ok(&["task", "resume", "c1"]);
    assert_eq!(d.task_status("c1").as_deref(), Some("RUNNING"));
    assert!(!freezer_frozen(init_pid));

    // metrics from the container's cgroups
    let m = d.ctr_ok(&["task", "metrics", "c1"]);
    assert!(m.contains("memory.usage_in_bytes") && m.contains("pids.current"), "metrics: {m}");
    let pids_line = m.lines().find(|l| l.starts_with("pids.current")).unwrap_or_default().to_string();
    assert!(pids_line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 2), "pids: {m}");

    // kill --all, the task stops, delete leaves no shim
    d.ctr_ok(&["task", "kill", "-a", "-s", "SIGKILL", "c1"]);
    d.wait_status("c1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "c1"]);
    d.ctr_ok(&["containers", "delete", "c1"]);
    assert!(!alive(init_pid));
    d.assert_no_shims();
    let topics = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let text = events.stop_when(&topics);
    for topic in topics {
        assert!(text.contains(topic), "no {topic} event: {text}");
    }
}

/// `ctr events` running in the background. No fixed sleeps: `start`
/// returns once ctr is subscribed (it has printed an event this test
/// caused), `stop_when` once the events the test expects have arrived.
struct EventLog {
    child: std::process::Child,
    text: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
}

impl EventLog {
    fn start(d: &Daemon) -> EventLog {
        use std::io::BufRead;
        let mut child = d.ctr_cmd(&["events"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("ctr events");
        let out = child.stdout.take().expect("events stdout");
        let text = std::sync::Arc::new((std::sync::Mutex::new(String::new()), std::sync::Condvar::new()));
        let t = text.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = t.0.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
                t.1.notify_all();
            }
        });
        let log = EventLog { child, text };
        // Subscribed once an event of ours shows up: a namespace created
        // (and removed) for the purpose publishes /namespaces/create.
        let probe = format!("evprobe{}x{}", std::process::id(), d.ns.len());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            d.ctr_ok(&["namespaces", "create", &probe]);
            let _ = d.ctr(&["namespaces", "remove", &probe]);
            if log.wait_for(&[&probe], Duration::from_millis(200)) {
                break;
            }
            assert!(Instant::now() < deadline, "ctr events never showed our probe namespace: {}", log.snapshot());
        }
        log
    }

    fn snapshot(&self) -> String {
        self.text.0.lock().unwrap().clone()
    }

    /// Wait (at most `timeout`) until every one of `needles` has shown up.
    fn wait_for(&self, needles: &[&str], timeout: Duration) -> bool {
        let (m, cv) = &*self.text;
        let deadline = Instant::now() + timeout;
        let mut s = m.lock().unwrap();
        loop {
            if needles.iter().all(|n| s.contains(n)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    /// The events so far, once all of `topics` have arrived (events reach
    /// ctr asynchronously) or 10 s have passed; the caller asserts.
    fn stop_when(mut self, topics: &[&str]) -> String {
        self.wait_for(topics, Duration::from_secs(10));
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.snapshot()
    }
}

fn freezer_frozen(pid: i32) -> bool {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    cg.lines()
        .filter(|l| l.contains(":freezer:"))
        .filter_map(|l| l.split(':').nth(2))
        .any(|p| std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{p}/freezer.state")).is_ok_and(|s| s.trim() == "FROZEN"))
}

fn wait_output(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let deadline = Instant::now() + timeout;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let h = std::thread::spawn(move || {
        let mut o = Vec::new();
        let mut e = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut o);
        }
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut e);
        }
        (o, e)
    });
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let (stdout, stderr) = h.join().unwrap_or_default();
            return std::process::Output { status, stdout, stderr };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctr did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ctr run --rm -t` on a pty of ours sized 33x101; returns (exit
/// code, what the terminal showed).
fn run_on_pty(d: &Daemon, args: &[&str]) -> (Option<i32>, String) {
    let pty = nix::pty::openpty(Some(&nix::pty::Winsize { ws_row: 33, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 }), None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let child =
        d.ctr_cmd(args).stdin(slave.try_clone().expect("dup")).stdout(slave.try_clone().expect("dup")).stderr(slave).spawn().expect("ctr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = master.read_to_end(&mut buf); // EIO once ctr exits
        buf
    });
    let out = wait_output(child, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    (out.status.code(), text)
}

#[test]
fn tty_with_resize() {
    let d = daemon!("tty");
    // ctr resizes after start: give the ResizePty a moment to land
    let (code, text) = run_on_pty(&d, &run(&d, &["--rm", "-t", IMAGE, "tty1", "sh", "-c", "tty; sleep 1; stty size; exit 4"]));
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("/dev/pts/"), "no terminal in the container: {text:?}");
    assert!(text.contains("33 101"), "ResizePty did not reach the container: {text:?}");

    // an exec with its own terminal
    d.ctr_ok(&run(&d, &["-d", IMAGE, "tty2", "sleep", "1000"]));
    d.wait_status("tty2", "RUNNING", Duration::from_secs(10));
    let (code, text) = run_on_pty(&d, &d.exec_args(&["-t", "--exec-id", "x1", "tty2", "sh", "-c", "tty; sleep 1; stty size; exit 5"]));
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("/dev/pts/") && text.contains("33 101"), "exec terminal: {text:?}");
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "tty2"]);
    d.wait_status("tty2", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "tty2"]);
    d.ctr_ok(&["containers", "delete", "tty2"]);
    d.assert_no_shims();
}

#[test]
fn oom_kill_publishes_task_oom() {
    let d = daemon!("oom");
    let events = EventLog::start(&d);
    let out = d.ctr(&run(&d, &["--rm", "--memory-limit", "33554432", IMAGE, "oom1", "sh", "-c", "sleep 0.5; tail /dev/zero"]));
    assert_eq!(out.status.code(), Some(137), "the memory hog should be OOM-killed: {}", out_str(&out));
    let text = events.stop_when(&["/tasks/oom", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    assert!(text.contains("/tasks/oom") && text.contains("oom1"), "no TaskOOM event: {text}");
    for topic in ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"] {
        assert!(text.contains(topic), "no {topic} event: {text}");
    }
    d.assert_no_shims();
}

#[test]
fn shim_killed_with_sigkill_is_cleaned_up() {
    let d = daemon!("shimkill");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "k1", "sleep", "1000"]));
    d.wait_status("k1", "RUNNING", Duration::from_secs(10));
    let pid = d.task_pid("k1").expect("pid");
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "one shim expected: {shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::Signal::SIGKILL).expect("kill shim");
    // containerd sees the shim go, runs `shim delete`, which force-deletes
    // the container through the runtime
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(Instant::now() < deadline, "container init {pid} survived its shim\n{}", tail(&d.log(), 40));
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = d.task_status("k1");
        if st.is_none() || st.as_deref() == Some("STOPPED") {
            break;
        }
        assert!(Instant::now() < deadline, "task still {st:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = d.ctr(&["task", "delete", "k1"]);
    d.ctr_ok(&["containers", "delete", "k1"]);
    assert!(d.task_status("k1").is_none());
    // nothing left in the runtime's state either
    let list =
        std::process::Command::new(runc_bin()).arg("--root").arg(d.runtime_root()).args(["list", "-q"]).output().expect("rpc-runc list");
    assert!(String::from_utf8_lossy(&list.stdout).trim().is_empty(), "runtime still lists: {}", out_str(&list));
    d.assert_no_shims();
}

/// The Docker path: containerd's Go shim (io.containerd.runc.v2) driving
/// rpc-runc through the BinaryName option, as dockerd --add-runtime does.
#[test]
fn go_shim_drives_rpc_runc() {
    let d = daemon!("goshim");
    let bin = runc_bin();
    let bin = bin.to_str().expect("utf-8");
    let root = d.runc_root.to_str().expect("utf-8");
    let fifo = d.fifo_dir.to_str().expect("utf-8");
    let go = |extra: &[&'static str]| {
        let mut a = vec!["run", "--fifo-dir", fifo, "--runtime", "io.containerd.runc.v2", "--runc-binary", bin, "--runc-root", root];
        a.extend_from_slice(extra);
        a
    };
    let out = d.ctr(&go(&["--rm", IMAGE, "g1", "echo", "hi"]));
    assert!(out.status.success(), "{}\n{}", out_str(&out), tail(&d.log(), 30));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = d.ctr(&go(&["--rm", IMAGE, "g0", "sh", "-c", "exit 9"]));
    assert_eq!(out.status.code(), Some(9), "{}", out_str(&out));
    d.ctr_ok(&go(&["-d", IMAGE, "g2", "sleep", "1000"]));
    d.wait_status("g2", "RUNNING", Duration::from_secs(10));
    let out = d.ctr(&d.exec_args(&["--exec-id", "x", "g2", "sh", "-c", "echo in; exit 5"]));
    assert_eq!(out.status.code(), Some(5), "{}", out_str(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    let ps = d.ctr_ok(&["task", "ps", "g2"]);
    assert!(ps.lines().count() >= 2, "{ps}");
    d.ctr_ok(&["task", "pause", "g2"]);
    assert_eq!(d.task_status("g2").as_deref(), Some("PAUSED"));
    d.ctr_ok(&["task", "resume", "g2"]);
    assert_eq!(d.task_status("g2").as_deref(), Some("RUNNING"));
    let m = d.ctr_ok(&["task", "metrics", "g2"]);
    assert!(m.contains("memory.usage_in_bytes"), "{m}");
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "g2"]);
    d.wait_status("g2", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "g2"]);
    d.ctr_ok(&["containers", "delete", "g2"]);
    assert!(d.runc_root.is_dir(), "the Go shim did not use --runc-root");
    let (code, text) = run_on_pty(&d, &go(&["--rm", "-t", IMAGE, "gt", "sh", "-c", "tty; exit 6"]));
    assert_eq!(code, Some(6), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
}

/// What ctr 1.6 cannot ask (Update, Checkpoint, Connect, raw State and
/// Stats), asked over the shim's own ttrpc socket; plus quick execs that
/// exit before the runtime has reported their pid.
#[test]
fn task_api_over_ttrpc_and_quick_execs() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::shim::shim::{CheckpointTaskRequest, ConnectRequest, StateRequest, StatsRequest, UpdateTaskRequest};
    use containerd_shim_protos::ttrpc::context::with_timeout;
    use containerd_shim_protos::{Client, TaskClient};

    let d = daemon!("ttrpc");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "u1", "sleep", "1000"]));
    d.wait_status("u1", "RUNNING", Duration::from_secs(10));
    let init_pid = d.task_pid("u1").expect("pid");

    // exits faster than `exec --detach` can print its pid: status exact
    for i in 0..12 {
        let id = format!("q{i}");
        let script = format!("exit {i}");
        let out = d.ctr(&d.exec_args(&["--exec-id", &id, "u1", "sh", "-c", &script]));
        assert_eq!(out.status.code(), Some(i), "{}", out_str(&out));
    }

    let addr_file = d.dir.join(format!("state/io.containerd.runtime.v2.task/{}/u1/address", d.ns));
    let address = std::fs::read_to_string(&addr_file).expect("shim address file");
    let client = TaskClient::new(Client::connect(address.trim()).expect("connect to the shim"));
    let ctx = || with_timeout(10_000_000_000);

    let c = client.connect(ctx(), &ConnectRequest { id: "u1".into(), ..Default::default() }).expect("Connect");
    assert_eq!(c.task_pid as i32, init_pid);
    assert_eq!(d.shim_pids(), vec![c.shim_pid as i32]);

    let st = client.state(ctx(), &StateRequest { id: "u1".into(), ..Default::default() }).expect("State");
    assert_eq!(st.pid as i32, init_pid);
    assert_eq!(format!("{:?}", st.status.enum_value()), "Ok(RUNNING)");

    // Update: containerd sends the OCI LinuxResources as JSON in an Any
    let res = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: br#"{"memory":{"limit":50331648},"pids":{"limit":77}}"#.to_vec(),
        ..Default::default()
    };
    client.update(ctx(), &UpdateTaskRequest { id: "u1".into(), resources: MessageField::some(res), ..Default::default() }).expect("Update");
    let s = client.stats(ctx(), &StatsRequest { id: "u1".into(), ..Default::default() }).expect("Stats");
    assert_eq!(s.stats.type_url, "io.containerd.cgroups.v1.Metrics");
    let m = d.ctr_ok(&["task", "metrics", "u1"]);
    assert!(m.contains("50331648"), "memory limit not updated: {m}");
    assert!(m.lines().any(|l| l.starts_with("pids.limit") && l.contains("77")), "pids limit not updated: {m}");

    let err = client
        .checkpoint(ctx(), &CheckpointTaskRequest { id: "u1".into(), ..Default::default() })
        .expect_err("checkpoint is not supported");
    let text = format!("{err:?}");
    assert!(text.contains("UNIMPLEMENTED") && text.contains("checkpoint"), "{text}");

    let err = client.state(ctx(), &StateRequest { id: "nope".into(), ..Default::default() }).expect_err("no such task");
    assert!(format!("{err:?}").contains("NOT_FOUND"), "{err:?}");

    drop(client);
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "u1"]);
    d.wait_status("u1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "u1"]);
    d.ctr_ok(&["containers", "delete", "u1"]);
    d.assert_no_shims();
}

/// `binary://` stdio: the container's output goes to a logging binary
/// (ctr --log-uri), which gets it on fds 3 and 4.
#[test]
fn binary_log_driver_gets_the_output() {
    use std::os::unix::fs::PermissionsExt;
    let d = daemon!("binlog");
    let logs = d.dir.join("driver-logs");
    std::fs::create_dir_all(&logs).expect("dir");
    let driver = d.dir.join("log-driver.sh");
    std::fs::write(
        &driver,
        "#!/bin/sh\n\
         dir=\"$2\"\n\
         echo \"$CONTAINER_NAMESPACE $CONTAINER_ID\" > \"$dir/env\"\n\
         cat <&3 > \"$dir/out\" 5>&- &\n\
         cat <&4 > \"$dir/err\" 5>&- &\n\
         exec 5>&-\n\
         wait\n\
         touch \"$dir/done\"\n",
    )
    .expect("driver");
    std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let uri = format!("binary://{}?dir={}", driver.display(), logs.display());
    let out = d.ctr(&run(&d, &["--rm", "--log-uri", &uri, IMAGE, "bl1", "sh", "-c", "echo to-out; echo to-err >&2; exit 2"]));
    assert_eq!(out.status.code(), Some(2), "{}", out_str(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.join("done").exists() {
        assert!(Instant::now() < deadline, "the log driver did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(logs.join("out")).unwrap_or_default(), "to-out\n");
    assert_eq!(std::fs::read_to_string(logs.join("err")).unwrap_or_default(), "to-err\n");
    assert_eq!(std::fs::read_to_string(logs.join("env")).unwrap_or_default(), format!("{} bl1\n", d.ns));
    d.assert_no_shims();
}

/// CloseIO while the stdin copy is stuck on a full pipe (the container
/// never reads stdin) returns at once, and the shim keeps answering.
#[test]
fn close_io_does_not_wait_for_a_stuck_stdin_copy() {
    use containerd_shim_protos::shim::shim::{CloseIORequest, StateRequest};
    use containerd_shim_protos::ttrpc::context::with_timeout;
    use containerd_shim_protos::{Client, TaskClient};

    let d = daemon!("closeio");
    let mut child = d
        .ctr_cmd(&run(&d, &["--rm", IMAGE, "ci1", "sleep", "1000"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr");
    let mut stdin = child.stdin.take().expect("stdin");
    // More than the fifo and the container's pipe hold: the copy blocks.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    d.wait_status("ci1", "RUNNING", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let addr_file = d.dir.join(format!("state/io.containerd.runtime.v2.task/{}/ci1/address", d.ns));
    let address = std::fs::read_to_string(&addr_file).expect("shim address file");
    let client = TaskClient::new(Client::connect(address.trim()).expect("connect to the shim"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = client.close_io(with_timeout(5_000_000_000), &CloseIORequest { id: "ci1".into(), stdin: true, ..Default::default() });
        let st = client.state(with_timeout(5_000_000_000), &StateRequest { id: "ci1".into(), ..Default::default() });
        let _ = tx.send(format!("close_io {:?}, state {:?}", r.map(|_| ()), st.map(|_| ())));
    });
    match rx.recv_timeout(Duration::from_secs(8)) {
        Ok(r) => assert_eq!(r, "close_io Ok(()), state Ok(())"),
        Err(_) => {
            // A deadlocked shim: kill it so the daemon's cleanup can run.
            for p in d.shim_pids() {
                // SAFETY: plain kill of the shim we started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            let _ = child.kill();
            panic!("CloseIO and State did not answer within 8 s: the shim is stuck behind the stdin copy");
        }
    }
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "ci1"]);
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(137), "{}", out_str(&out));
    let _ = writer.join();
    d.assert_no_shims();
}

/// `file://PATH` log URIs: stdout and stderr are appended to the file.
#[test]
fn file_log_uri_gets_the_output() {
    let d = daemon!("filelog");
    let log = d.dir.join("task.log");
    let uri = format!("file://{}", log.display());
    let out = d.ctr(&run(&d, &["--rm", "--log-uri", &uri, IMAGE, "fl1", "sh", "-c", "echo to-out; echo to-err >&2; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", out_str(&out));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("to-out\n") && text.contains("to-err\n"), "log file: {text:?}");
    d.assert_no_shims();
}

/// containerd restarts while a task runs: it reconnects to our shim, and
/// the shim's events (here the exit) still reach the new containerd.
#[test]
fn containerd_restart_keeps_task_and_events() {
    let mut d = daemon!("restart");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "r1", "sleep", "1000"]));
    d.wait_status("r1", "RUNNING", Duration::from_secs(10));
    let pid = d.task_pid("r1");
    let shims = d.shim_pids();
    d.restart();
    assert_eq!(d.task_status("r1").as_deref(), Some("RUNNING"));
    assert_eq!(d.task_pid("r1"), pid);
    assert_eq!(d.shim_pids(), shims, "the same shim serves the task");
    let events = EventLog::start(&d);
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "r1"]);
    d.wait_status("r1", "STOPPED", Duration::from_secs(10));
    let text = events.stop_when(&["/tasks/exit"]);
    assert!(text.contains("/tasks/exit") && text.contains("r1"), "no TaskExit after the restart: {text}");
    d.ctr_ok(&["task", "delete", "r1"]);
    d.ctr_ok(&["containers", "delete", "r1"]);
    d.assert_no_shims();
}

/// A ttrpc client on the shim that serves task `id`.
fn shim_client(d: &Daemon, id: &str) -> containerd_shim_protos::TaskClient {
    let addr_file = d.dir.join(format!("state/io.containerd.runtime.v2.task/{}/{id}/address", d.ns));
    let address = std::fs::read_to_string(&addr_file).expect("shim address file");
    containerd_shim_protos::TaskClient::new(containerd_shim_protos::Client::connect(address.trim()).expect("connect to the shim"))
}

fn ttrpc_ctx() -> containerd_shim_protos::ttrpc::context::Context {
    containerd_shim_protos::ttrpc::context::with_timeout(20_000_000_000)
}

/// Waits until `pred` holds (up to `timeout`); returns whether it did.
fn eventually(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two Creates of one id at once, straight over the shim's ttrpc socket
/// (containerd serializes its own): exactly one creates the container, the
/// other gets ALREADY_EXISTS at once without touching it, and a Delete
/// afterwards leaves no runtime state, no cgroup and no process.
#[test]
fn concurrent_creates_of_one_id() {
    use containerd_shim_protos::shim::shim::{CreateTaskRequest, DeleteRequest, StateRequest};

    let d = daemon!("dupcreate");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "host1", "sleep", "1000"]));
    d.wait_status("host1", "RUNNING", Duration::from_secs(10));
    // the busybox tree the image was built from (common::build_image)
    let rootfs = d.dir.join("image/test/layer");
    assert!(rootfs.join("bin/busybox").is_file(), "no busybox tree at {}", rootfs.display());

    for round in 0..4 {
        let id = format!("dup{round}");
        let bundle = d.dir.join(format!("bundle-{id}"));
        std::fs::create_dir_all(&bundle).expect("bundle");
        let out = std::process::Command::new(runc_bin()).arg("spec").current_dir(&bundle).output().expect("rpc-runc spec");
        assert!(out.status.success(), "{}", out_str(&out));
        let cfg = bundle.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).expect("spec")).expect("spec json");
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        spec["root"] = serde_json::json!({"path": rootfs, "readonly": true});
        let cgroup = format!("/rpcshimtest-{}-{id}", d.ns);
        spec["linux"]["cgroupsPath"] = cgroup.clone().into();
        std::fs::write(&cfg, serde_json::to_vec(&spec).expect("json")).expect("write spec");

        // both requests go out together, each on its own connection
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let client = shim_client(&d, "host1");
                let barrier = barrier.clone();
                let req = CreateTaskRequest { id: id.clone(), bundle: bundle.display().to_string(), ..Default::default() };
                std::thread::spawn(move || {
                    barrier.wait();
                    client.create(ttrpc_ctx(), &req).map(|r| r.pid).map_err(|e| format!("{e:?}"))
                })
            })
            .collect();
        let results: Vec<Result<u32, String>> = handles.into_iter().map(|h| h.join().expect("create thread")).collect();
        let pids: Vec<u32> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        let errs: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(pids.len(), 1, "round {round}: exactly one Create must succeed: {results:?}\n{}", tail(&d.log(), 30));
        assert!(errs[0].contains("ALREADY_EXISTS"), "round {round}: the other must get ALREADY_EXISTS: {results:?}");
        let pid = pids[0] as i32;

        // the winner's container is intact: created, its init alive
        let client = shim_client(&d, "host1");
        let st = client.state(ttrpc_ctx(), &StateRequest { id: id.clone(), ..Default::default() }).expect("State");
        assert_eq!(st.pid as i32, pid);
        assert_eq!(format!("{:?}", st.status.enum_value()), "Ok(CREATED)");
        assert!(alive(pid), "round {round}: init {pid} of the created container is gone");
        let list = std::process::Command::new(runc_bin()).arg("--root").arg(d.runtime_root()).args(["list", "-q"]).output().expect("list");
        assert!(String::from_utf8_lossy(&list.stdout).lines().any(|l| l == id), "runtime does not list {id}: {}", out_str(&list));

        client.delete(ttrpc_ctx(), &DeleteRequest { id: id.clone(), ..Default::default() }).expect("Delete");
        assert!(eventually(Duration::from_secs(5), || !alive(pid)), "round {round}: init {pid} survived Delete");
        assert!(!d.runtime_root().join(&id).exists(), "round {round}: runtime state of {id} left behind");
        let list = std::process::Command::new(runc_bin()).arg("--root").arg(d.runtime_root()).args(["list", "-q"]).output().expect("list");
        assert!(!String::from_utf8_lossy(&list.stdout).lines().any(|l| l == id), "runtime still lists {id}");
        let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroup fs")
            .flatten()
            .map(|e| e.path().join(cgroup.trim_start_matches('/')))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(left.is_empty(), "round {round}: cgroups left: {left:?}");
        let state = client.state(ttrpc_ctx(), &StateRequest { id: id.clone(), ..Default::default() });
        assert!(format!("{state:?}").contains("NOT_FOUND"), "{state:?}");
    }

    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "host1"]);
    d.wait_status("host1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "host1"]);
    d.ctr_ok(&["containers", "delete", "host1"]);
    d.assert_no_shims();
}

/// Open descriptors of a process.
fn fd_count(pid: i32) -> usize {
    fd_list(pid).len()
}

/// What a process's descriptors point to.
fn fd_list(pid: i32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return vec![] };
    rd.flatten()
        .map(|e| format!("{}: {}", e.file_name().to_string_lossy(), std::fs::read_link(e.path()).unwrap_or_default().display()))
        .collect()
}

/// An exec whose terminal cannot be wired up (its stdin fifo or its output
/// path does not exist) fails its Start and leaves no process behind, no
/// descriptor in the shim, and a task that still execs and deletes.
#[test]
fn exec_with_a_broken_terminal_leaves_no_process() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::shim::shim::{DeleteRequest, ExecProcessRequest, KillRequest, PidsRequest, StartRequest, StateRequest};

    let d = daemon!("badtty");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "t1", "sleep", "1000"]));
    d.wait_status("t1", "RUNNING", Duration::from_secs(10));
    let init_pid = d.task_pid("t1").expect("pid");
    let client = shim_client(&d, "t1");
    let shim = d.shim_pids()[0];
    let missing = d.dir.join("no-such-dir");
    let fifo = d.dir.join("out-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // a first call, so the shim has accepted our connection before we count
    client.state(ttrpc_ctx(), &StateRequest { id: "t1".into(), ..Default::default() }).expect("State");
    let fds_before = fd_count(shim);
    let fd_names = fd_list(shim);

    // (exec id, stdin, stdout, the sleep's distinctive argument)
    let cases = [
        ("badin", missing.join("stdin").display().to_string(), fifo.display().to_string(), "4241"),
        ("badout", String::new(), missing.join("stdout").display().to_string(), "4242"),
    ];
    for (exec_id, stdin, stdout, arg) in &cases {
        let process = serde_json::json!({
            "terminal": true, "args": ["sleep", arg], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
        });
        let spec = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: serde_json::to_vec(&process).expect("json"),
            ..Default::default()
        };
        let req = ExecProcessRequest {
            id: "t1".into(),
            exec_id: exec_id.to_string(),
            terminal: true,
            stdin: stdin.clone(),
            stdout: stdout.clone(),
            spec: MessageField::some(spec),
            ..Default::default()
        };
        client.exec(ttrpc_ctx(), &req).expect("Exec");
        let start = StartRequest { id: "t1".into(), exec_id: exec_id.to_string(), ..Default::default() };
        let err = client.start(ttrpc_ctx(), &start).expect_err("Start with a broken terminal must fail");
        assert!(format!("{err:?}").contains("no-such-dir"), "{exec_id}: the error should name the bad path: {err:?}");

        // nothing of it runs: not in the container, not anywhere
        let leftover = || {
            let pids = client.pids(ttrpc_ctx(), &PidsRequest { id: "t1".into(), ..Default::default() }).expect("Pids");
            let mut left: Vec<u32> = pids.processes.iter().map(|p| p.pid).filter(|&p| p as i32 != init_pid).collect();
            left.extend(processes_matching(|c| c.trim_end() == format!("sleep {arg}")).into_iter().map(|p| p as u32));
            left
        };
        assert!(eventually(Duration::from_secs(3), || leftover().is_empty()), "{exec_id}: processes left: {:?}", leftover());

        // it is finished for the shim: a second Start does not run it,
        // Kill finds nothing to signal, Delete removes it
        let st = client.state(ttrpc_ctx(), &StateRequest { id: "t1".into(), exec_id: exec_id.to_string(), ..Default::default() });
        let st = st.expect("State of the failed exec");
        assert_eq!(format!("{:?}", st.status.enum_value()), "Ok(STOPPED)", "{exec_id}: {st:?}");
        assert!(client.start(ttrpc_ctx(), &start).is_err(), "{exec_id}: a second Start ran it");
        assert!(leftover().is_empty(), "{exec_id}: the second Start left {:?}", leftover());
        let kill = KillRequest { id: "t1".into(), exec_id: exec_id.to_string(), signal: 9, ..Default::default() };
        assert!(client.kill(ttrpc_ctx(), &kill).is_err(), "{exec_id}: Kill of a process that never ran succeeded");
        client
            .delete(ttrpc_ctx(), &DeleteRequest { id: "t1".into(), exec_id: exec_id.to_string(), ..Default::default() })
            .expect("Delete exec");
    }
    // no descriptor (console socket, fifo, pty master) stays open in the shim
    assert!(
        eventually(Duration::from_secs(3), || fd_count(shim) <= fds_before),
        "shim fds: {fd_names:?} before, {:?} after",
        fd_list(shim)
    );

    // the task is still usable: another exec runs, the task deletes
    let out = d.ctr(&d.exec_args(&["--exec-id", "ok1", "t1", "sh", "-c", "echo fine; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", out_str(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
    drop(client);
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "t1"]);
    d.wait_status("t1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "t1"]);
    d.ctr_ok(&["containers", "delete", "t1"]);
    d.assert_no_shims();
}

/// The long-lived shim ignores SIGPIPE: with containerd-shim's handler, a
/// write to a closed pipe (its log fifo) became a signal that broke the
/// reaper's waitpid, whose warning was logged again, and the shim spun.
#[test]
fn the_shim_ignores_sigpipe() {
    let d = daemon!("sigpipe");
    d.ctr_ok(&run(&d, &["-d", IMAGE, "sp1", "sleep", "1000"]));
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", shims[0])).expect("shim status");
    let ign = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(0)).unwrap_or(0);
    assert!(ign & (1 << (libc::SIGPIPE - 1)) != 0, "SIGPIPE is not ignored by the shim: SigIgn {ign:#x}");
    d.ctr_ok(&["task", "kill", "-s", "KILL", "sp1"]);
    d.wait_status("sp1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "sp1"]);
    d.ctr_ok(&["containers", "delete", "sp1"]);
}

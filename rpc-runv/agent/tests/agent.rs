//! The agent on the host (`--listen-unix`, a child subreaper) driving the
//! real rpc-runc on busybox bundles, spoken to with rpc-proto's client
//! over its unix socket: what the host side of rpc-runv will do over
//! vsock.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rpc_proto::client::Client;
use rpc_proto::frame::{encode, read_frame, Frame};
use rpc_proto::msg::{ErrorCode, Event, Kind, Reply, Request, Role, Which};
use rpc_proto::Error;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);
static N: AtomicU32 = AtomicU32::new(0);

/// The rpc-runc the agent drives: the workspace's, built beside us.
fn runtime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RPC_AGENT_RUNTIME") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_BIN_EXE_rpc-agent")).with_file_name("rpc-runc");
    p.is_file().then_some(p)
}

/// One agent process with its own runtime root, state and rootfs.
struct Fixture {
    dir: PathBuf,
    sock: PathBuf,
    root: PathBuf,
    rootfs: PathBuf,
    runtime: PathBuf,
    child: Child,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if testkit::skip::unless_root(env!("CARGO_PKG_NAME"), "the agent runs real containers") {
            return None;
        }
        let Some(runtime) = runtime() else {
            testkit::skip!("rpc-runc is not built next to rpc-agent (cargo build --profile ci -p rpc-runc)");
            return None;
        };
        let Ok(bb) = testkit::Busybox::find() else {
            testkit::skip!("busybox-static is not installed");
            return None;
        };
        let dir = PathBuf::from(format!("/tmp/rpc-agent-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        bb.install(&rootfs).unwrap();
        for d in ["proc", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let sock = dir.join("agent.sock");
        let root = dir.join("root");
        let child = Command::new(env!("CARGO_BIN_EXE_rpc-agent"))
            .arg("--listen-unix")
            .arg(&sock)
            .arg("--root")
            .arg(&root)
            .arg("--runtime")
            .arg(&runtime)
            .arg("--state")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let f = Fixture { dir, sock, root, rootfs, runtime, child };
        let t0 = Instant::now();
        while UnixStream::connect(&f.sock).is_err() {
            assert!(t0.elapsed() < T, "the agent did not listen on {}", f.sock.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(f)
    }

    fn connect(&self, role: Role) -> Result<(Client, rpc_proto::client::Welcome), Error> {
        Client::connect(UnixStream::connect(&self.sock).unwrap(), role, "agent-test", Instant::now() + T)
    }

    fn control(&self) -> Client {
        self.connect(Role::Control).unwrap().0
    }

    fn stream(&self, id: &str, exec: Option<&str>, which: Which) -> UnixStream {
        let (c, _) = self.connect(Role::Stream { container: id.into(), exec: exec.map(str::to_string), which }).unwrap();
        let s = UnixStream::from(c.into_fd().unwrap());
        s.set_read_timeout(Some(T)).unwrap();
        s
    }

    fn wait(&self, id: &str, exec: Option<&str>) -> Client {
        self.connect(Role::Wait { container: id.into(), exec: exec.map(str::to_string) }).unwrap().0
    }

    fn config(&self, args: &[&str]) -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                "args": args,
                "env": ["PATH=/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": { "path": self.rootfs, "readonly": false },
            "hostname": "agent",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] }
            ],
            "linux": {
                "namespaces": [ { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" } ]
            }
        })
    }

    fn create(&self, c: &mut Client, id: &str, args: &[&str]) -> i32 {
        let req = Request::Create {
            id: id.into(),
            config: self.config(args),
            sandbox: false,
            ns_from_sandbox: vec![],
            sandbox_id: None,
            terminal: false,
        };
        match c.call(&req, T).unwrap() {
            Reply::Created { guest_pid } => guest_pid,
            r => panic!("create {id}: {r:?}"),
        }
    }

    /// The runtime's own view: ids in its root.
    fn listed(&self) -> String {
        let out = Command::new(&self.runtime).arg("--root").arg(&self.root).args(["list", "-q"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in self.listed().lines() {
            let _ = Command::new(&self.runtime).arg("--root").arg(&self.root).args(["delete", "--force", id]).output();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok(r: Result<Reply, Error>) {
    match r {
        Ok(Reply::Ok) => {}
        r => panic!("expected ok: {r:?}"),
    }
}

fn read_all(mut s: &UnixStream) -> String {
    let mut v = String::new();
    s.read_to_string(&mut v).unwrap();
    v
}

/// Whether the agent closed `s` altogether: a write then fails (EPIPE).
fn closed_for_writing(mut s: &UnixStream) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < T {
        if s.write_all(b"x").is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn exit_of(mut w: Client) -> Event {
    let e = w.next_event(Instant::now() + T).unwrap().expect("an Exit before the close");
    // then the agent closes
    assert!(w.next_event(Instant::now() + T).unwrap().is_none());
    e
}

fn agent_error(r: Result<Reply, Error>) -> (ErrorCode, String) {
    match r {
        Err(Error::Agent { code, msg }) => (code, msg),
        r => panic!("expected an error from the agent: {r:?}"),
    }
}

#[test]
fn hello_gets_welcome_and_a_version_mismatch_an_error() {
    let Some(f) = Fixture::new() else { return };
    let (mut c, w) = f.connect(Role::Control).unwrap();
    assert_eq!(w.proto, 1);
    assert_eq!(w.agent, env!("CARGO_PKG_VERSION"));
    assert_eq!(c.call(&Request::Ping, T).unwrap(), Reply::Pong);

    let mut s = UnixStream::connect(&f.sock).unwrap();
    let hello = Request::Hello { proto: [2, 3], role: Role::Control, client: "future".into() };
    s.write_all(&encode(Kind::Request, 1, &hello).unwrap()).unwrap();
    let fr = read_frame(&s, Instant::now() + T).unwrap();
    assert_eq!((fr.kind, fr.id), (Kind::Error, 1));
    let e = fr.error().unwrap();
    assert_eq!(e.code, ErrorCode::Version);
    assert!(e.msg.contains("protocol 1") && e.msg.contains("2 to 3"), "{}", e.msg);
    // and closed
    assert!(matches!(read_frame(&s, Instant::now() + T), Err(Error::Closed)));
}

#[test]
fn create_start_relays_output_and_exit_status() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    let pid = f.create(&mut c, "out", &["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    assert!(pid > 0);
    let out = f.stream("out", None, Which::Stdout);
    let err = f.stream("out", None, Which::Stderr);
    let w = f.wait("out", None);
    ok(c.call(&Request::Start { id: "out".into() }, T));
    assert_eq!(read_all(&out), "hi\n");
    assert_eq!(read_all(&err), "oops\n");
    assert_eq!(exit_of(w), Event::Exit { status: 3, signal: None });
    // The end of an output stream is a full close, not a shutdown(WR)
    // alone (which vhost-device-vsock would not pass on as an EOF).
    assert!(closed_for_writing(&out), "stdout stream only half-closed");
    // a wait after the end gets the Exit at once
    assert_eq!(exit_of(f.wait("out", None)), Event::Exit { status: 3, signal: None });
    ok(c.call(&Request::Delete { id: "out".into(), force: false }, T));
    assert_eq!(f.listed(), "");
    assert!(!f.dir.join("state/bundles/out").exists());
}

#[test]
fn output_written_before_the_stream_attaches_is_kept() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "early", &["sh", "-c", "echo early; exit 0"]);
    let w = f.wait("early", None);
    ok(c.call(&Request::Start { id: "early".into() }, T));
    // The process ended (no stream attached: nothing to wait for)...
    assert_eq!(exit_of(w), Event::Exit { status: 0, signal: None });
    // ...and its output waited in the pipe.
    assert_eq!(read_all(&f.stream("early", None, Which::Stdout)), "early\n");
}

#[test]
fn a_stream_connected_before_create_is_attached() {
    let Some(f) = Fixture::new() else { return };
    let out = f.stream("before", None, Which::Stdout);
    let w = f.wait("before", None);
    let mut c = f.control();
    f.create(&mut c, "before", &["sh", "-c", "echo first"]);
    ok(c.call(&Request::Start { id: "before".into() }, T));
    assert_eq!(read_all(&out), "first\n");
    assert_eq!(exit_of(w), Event::Exit { status: 0, signal: None });
}

#[test]
fn stdin_is_relayed_until_the_hosts_half_close() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "cat", &["sh", "-c", "cat; echo done"]);
    let mut inp = f.stream("cat", None, Which::Stdin);
    let out = f.stream("cat", None, Which::Stdout);
    let w = f.wait("cat", None);
    ok(c.call(&Request::Start { id: "cat".into() }, T));
    // More than the agent's 64 KiB buffer and a pipe's: backpressure, not loss.
    let big: String = (0..20000).map(|i| format!("{i:05}\n")).collect();
    let writer = {
        let mut inp2 = inp.try_clone().unwrap();
        let big = big.clone();
        std::thread::spawn(move || {
            inp2.write_all(big.as_bytes()).unwrap();
            inp2.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let got = read_all(&out);
    writer.join().unwrap();
    assert_eq!(got.len(), big.len() + 5);
    assert!(got == format!("{big}done\n"), "stdout differs from stdin");
    assert_eq!(exit_of(w), Event::Exit { status: 0, signal: None });
    let _ = inp.flush();
}

#[test]
fn close_stdin_ends_the_input() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "cls", &["sh", "-c", "cat; echo eof"]);
    let out = f.stream("cls", None, Which::Stdout);
    let w = f.wait("cls", None);
    ok(c.call(&Request::Start { id: "cls".into() }, T));
    ok(c.call(&Request::CloseStdin { id: "cls".into(), exec_id: None }, T));
    assert_eq!(read_all(&out), "eof\n");
    assert_eq!(exit_of(w), Event::Exit { status: 0, signal: None });
}

fn process(args: &[&str]) -> Value {
    json!({ "args": args, "cwd": "/", "env": ["PATH=/bin"], "user": { "uid": 0, "gid": 0 } })
}

#[test]
fn exec_has_its_own_streams_and_status_and_signals_reach_a_trap() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    let script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    f.create(&mut c, "ex", &["sh", "-c", script]);
    let mut out = f.stream("ex", None, Which::Stdout);
    let w = f.wait("ex", None);
    ok(c.call(&Request::Start { id: "ex".into() }, T));
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");

    let eout = f.stream("ex", Some("e1"), Which::Stdout);
    let eerr = f.stream("ex", Some("e1"), Which::Stderr);
    let ew = f.wait("ex", Some("e1"));
    let req = Request::Exec {
        id: "ex".into(),
        exec_id: "e1".into(),
        process: process(&["sh", "-c", "echo in exec; echo e >&2; exit 5"]),
        terminal: false,
    };
    match c.call(&req, T).unwrap() {
        Reply::Execed { guest_pid } => assert!(guest_pid > 0),
        r => panic!("{r:?}"),
    }
    assert_eq!(read_all(&eout), "in exec\n");
    assert_eq!(read_all(&eerr), "e\n");
    assert_eq!(exit_of(ew), Event::Exit { status: 5, signal: None });

    // The runtime's own words for a failed exec.
    let req = Request::Exec { id: "ex".into(), exec_id: "e2".into(), process: process(&["/no/such/binary"]), terminal: false };
    let (code, msg) = agent_error(c.call(&req, T));
    assert_eq!(code, ErrorCode::Failed);
    assert!(msg.contains("/no/such/binary"), "{msg}");

    match c.call(&Request::Pids { id: "ex".into() }, T).unwrap() {
        Reply::Pids { pids } => assert!(!pids.is_empty()),
        r => panic!("{r:?}"),
    }
    ok(c.call(&Request::Signal { id: "ex".into(), exec_id: None, sig: libc::SIGTERM, all: false }, T));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(exit_of(w), Event::Exit { status: 7, signal: None });
    ok(c.call(&Request::Delete { id: "ex".into(), force: false }, T));
    assert_eq!(f.listed(), "");
}

#[test]
fn stats_report_memory_and_delete_force_leaves_nothing() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "st", &["sleep", "100"]);
    ok(c.call(&Request::Start { id: "st".into() }, T));
    match c.call(&Request::Stats { id: "st".into() }, T).unwrap() {
        Reply::Stats { stats } => assert!(stats.memory.usage.usage > 0, "{stats:?}"),
        r => panic!("{r:?}"),
    }
    let w = f.wait("st", None);
    ok(c.call(&Request::Delete { id: "st".into(), force: true }, T));
    assert_eq!(exit_of(w), Event::Exit { status: 137, signal: Some(9) });
    assert_eq!(f.listed(), "");
    assert!(!f.dir.join("state/bundles/st").exists());
    // gone for the agent too
    let (code, _) = agent_error(c.call(&Request::Start { id: "st".into() }, T));
    assert_eq!(code, ErrorCode::NotFound);
}

#[test]
fn a_failed_create_keeps_the_runtimes_message_and_leaves_nothing() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    let mut config = f.config(&["sh"]);
    config["root"]["path"] = json!(f.dir.join("no-such-rootfs"));
    let req = Request::Create { id: "bad".into(), config, sandbox: false, ns_from_sandbox: vec![], sandbox_id: None, terminal: false };
    let (code, msg) = agent_error(c.call(&req, T));
    assert_eq!(code, ErrorCode::Failed);
    assert!(msg.contains("no-such-rootfs"), "{msg}");
    assert_eq!(f.listed(), "");
    assert!(!f.dir.join("state/bundles/bad").exists());
    // bad ids never reach the disk
    let req = Request::Create {
        id: "../x".into(),
        config: f.config(&["sh"]),
        sandbox: false,
        ns_from_sandbox: vec![],
        sandbox_id: None,
        terminal: false,
    };
    assert_eq!(agent_error(c.call(&req, T)).0, ErrorCode::Invalid);
}

/// Reads the first frame (or the close) after `bytes` on a new connection.
fn after(f: &Fixture, bytes: &[u8]) -> Result<Frame, Error> {
    let mut s = UnixStream::connect(&f.sock).unwrap();
    s.write_all(bytes).unwrap();
    read_frame(&s, Instant::now() + T)
}

fn error_or_close(r: Result<Frame, Error>) {
    match r {
        Ok(fr) => assert_eq!(fr.kind, Kind::Error, "{fr:?}"),
        Err(Error::Closed) => {}
        Err(e) => panic!("neither an error frame nor a close: {e}"),
    }
}

#[test]
fn bad_frames_get_an_error_or_a_close_and_the_agent_serves_on() {
    let Some(f) = Fixture::new() else { return };
    // garbage: a length under the minimum
    error_or_close(after(&f, b"garbage!garbage!"));
    // a huge length
    error_or_close(after(&f, &[0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0]));
    // an unknown kind
    error_or_close(after(&f, &[9, 0, 0, 0, 7, 1, 0, 0, 0, b'{', b'}', 0, 0]));
    // a request before the Hello
    let fr = after(&f, &encode(Kind::Request, 5, &Request::Ping).unwrap()).unwrap();
    assert_eq!((fr.kind, fr.id), (Kind::Error, 5));
    assert_eq!(fr.error().unwrap().code, ErrorCode::Invalid);
    // not JSON
    error_or_close(after(&f, &rpc_proto::frame::encode_raw(Kind::Request, 1, b"{{{{").unwrap()));

    // On a control connection: an unknown type is `unsupported`, and the
    // connection goes on.
    let (c, _) = f.connect(Role::Control).unwrap();
    let fd = c.into_fd().unwrap();
    let mut s = UnixStream::from(fd);
    s.write_all(&rpc_proto::frame::encode_raw(Kind::Request, 9, br#"{"type":"frobnicate"}"#).unwrap()).unwrap();
    let fr = read_frame(&s, Instant::now() + T).unwrap();
    assert_eq!((fr.kind, fr.id, fr.error().unwrap().code), (Kind::Error, 9, ErrorCode::Unsupported));
    s.write_all(&rpc_proto::frame::encode_raw(Kind::Request, 10, br#"{"type":"start"}"#).unwrap()).unwrap();
    let fr = read_frame(&s, Instant::now() + T).unwrap();
    assert_eq!((fr.kind, fr.id, fr.error().unwrap().code), (Kind::Error, 10, ErrorCode::Invalid));
    s.write_all(&encode(Kind::Request, 11, &Request::Ping).unwrap()).unwrap();
    let fr = read_frame(&s, Instant::now() + T).unwrap();
    assert_eq!((fr.kind, fr.id, fr.reply().unwrap()), (Kind::Reply, 11, Reply::Pong));
    // a close mid-frame
    s.write_all(&[100, 0, 0, 0, 1]).unwrap();
    drop(s);

    // a stream for a process with no terminal asking for a tty
    let mut c = f.control();
    f.create(&mut c, "notty", &["true"]);
    let r = f.connect(Role::Stream { container: "notty".into(), exec: None, which: Which::Tty });
    assert!(matches!(r, Err(Error::Agent { code: ErrorCode::Invalid, .. })), "{r:?}");

    // and the agent still serves
    assert_eq!(f.control().call(&Request::Ping, T).unwrap(), Reply::Pong);
    assert!(f.child.id() > 0);
}

#[test]
fn shutdown_ends_the_agent_after_its_reply() {
    let Some(mut f) = Fixture::new() else { return };
    let mut c = f.control();
    ok(c.call(&Request::Shutdown { status: 0 }, T));
    let t0 = Instant::now();
    loop {
        if let Some(st) = f.child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(t0.elapsed() < T, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_terminal_is_one_stream_both_ways_and_resize_sets_its_size() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    let mut config = f.config(&["sh", "-c", "stty size; read line; echo got $line; exit 4"]);
    config["process"]["terminal"] = json!(true);
    let req = Request::Create { id: "tty".into(), config, sandbox: false, ns_from_sandbox: vec![], sandbox_id: None, terminal: true };
    assert!(matches!(c.call(&req, T).unwrap(), Reply::Created { .. }));
    // a pipe stream on a terminal is refused
    let r = f.connect(Role::Stream { container: "tty".into(), exec: None, which: Which::Stdout });
    assert!(matches!(r, Err(Error::Agent { code: ErrorCode::Invalid, .. })), "{r:?}");
    let mut tty = f.stream("tty", None, Which::Tty);
    let w = f.wait("tty", None);
    ok(c.call(&Request::Resize { id: "tty".into(), exec_id: None, rows: 33, cols: 77 }, T));
    ok(c.call(&Request::Start { id: "tty".into() }, T));
    tty.write_all(b"hello\n").unwrap();
    let all = read_all(&tty);
    assert!(all.contains("33 77"), "{all:?}");
    assert!(all.contains("got hello"), "{all:?}");
    assert_eq!(exit_of(w), Event::Exit { status: 4, signal: None });
}

#[test]
fn quick_execs_all_get_their_exit() {
    // An exec'd process that ends before its pid file is read: its exit
    // is held until then (the shim's rule), not lost.
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "q", &["sleep", "100"]);
    ok(c.call(&Request::Start { id: "q".into() }, T));
    for i in 0..8 {
        let e = format!("q{i}");
        let w = f.wait("q", Some(&e));
        let req =
            Request::Exec { id: "q".into(), exec_id: e.clone(), process: process(&["sh", "-c", &format!("exit {i}")]), terminal: false };
        assert!(matches!(c.call(&req, T).unwrap(), Reply::Execed { .. }));
        assert_eq!(exit_of(w), Event::Exit { status: i, signal: None }, "exec {e}");
    }
    ok(c.call(&Request::Delete { id: "q".into(), force: true }, T));
}

#[test]
fn a_newer_stream_replaces_the_one_attached() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "re", &["sh", "-c", "echo one"]);
    let old = f.stream("re", None, Which::Stdout);
    let new = f.stream("re", None, Which::Stdout);
    // the old one ends at once, empty
    assert_eq!(read_all(&old), "");
    ok(c.call(&Request::Start { id: "re".into() }, T));
    assert_eq!(read_all(&new), "one\n");
}

#[test]
fn an_exec_with_a_terminal_is_one_stream_both_ways() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.control();
    f.create(&mut c, "xt", &["sleep", "100"]);
    ok(c.call(&Request::Start { id: "xt".into() }, T));
    // As rpc-runv's exec -t does: the wait first, the terminal's stream
    // once the exec has its pty (what it prints waits in the pty).
    let w = f.wait("xt", Some("e1"));
    let mut p = process(&["sh", "-c", "read line; echo got $line; exit 6"]);
    p["terminal"] = json!(true);
    let req = Request::Exec { id: "xt".into(), exec_id: "e1".into(), process: p, terminal: true };
    assert!(matches!(c.call(&req, T).unwrap(), Reply::Execed { .. }));
    let mut tty = f.stream("xt", Some("e1"), Which::Tty);
    tty.write_all(b"hello\n").unwrap();
    let all = read_all(&tty);
    assert!(all.contains("got hello"), "{all:?}");
    assert_eq!(exit_of(w), Event::Exit { status: 6, signal: None });
    ok(c.call(&Request::Delete { id: "xt".into(), force: true }, T));
}
